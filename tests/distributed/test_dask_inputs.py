"""Dask inputs that once failed inside formulaic or a worker: string covariates (Dask's string
dtype, levels differing by partition), stateful transforms, ordinal responses."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")

import glmm_nb  # noqa: E402
from glmm_nb import DataError, ModelError  # noqa: E402


def _data():
    rng = np.random.default_rng(2)
    n = 600
    g = np.sort(rng.integers(0, 30, n))
    f = np.where(g < 10, rng.choice(["a", "b"], n), rng.choice(["b", "c", "d"], n))  # levels differ by partition
    return pd.DataFrame({"y": rng.poisson(2, n), "x": rng.normal(size=n), "f": f, "g": g})


def test_string_covariate_on_dask_is_the_in_memory_fit():
    """Before: "Term `f` has generated too many columns compared to specification" from a worker."""
    d = _data()
    dk = dd.from_pandas(d, npartitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glmm_nb.glmm("y ~ x + f + (1 | g)", dk, family="poisson")
        m0 = glmm_nb.glmm("y ~ x + f + (1 | g)", d, family="poisson")
    assert list(m.fixef.index) == list(m0.fixef.index) == ["(Intercept)", "x", "f[T.b]", "f[T.c]", "f[T.d]"]
    assert m.loglik == pytest.approx(m0.loglik, abs=1e-7)
    np.testing.assert_allclose(m.fixef, m0.fixef, atol=1e-6)
    np.testing.assert_allclose(m.predict(dk).compute().to_numpy(), m0.predict(d), rtol=1e-6)
    with pytest.raises(DataError, match="factor 'f' has new level\\(s\\) 'zz'"):
        m.predict(d.iloc[:3].assign(f="zz"))


def test_transforms_and_ordinal_on_dask_say_what_is_missing():
    d = _data()
    dk = dd.from_pandas(d, npartitions=3)
    with pytest.raises(ModelError, match="transforms that learn from the data \\(center\\(x\\)\\)"):
        glmm_nb.glmm("y ~ center(x) + (1 | g)", dk, family="poisson")  # before: "name 'x' is not defined"
    d["r"] = pd.Categorical(np.array(["lo", "mid", "hi"])[d.y.clip(0, 2)], categories=["lo", "mid", "hi"],
                            ordered=True)
    with pytest.raises(ModelError, match="ordinal .*not available on Dask data yet"):
        glmm_nb.glmm("r ~ x + (1 | g)", dd.from_pandas(d, npartitions=3), family="ordinal")


def test_stateful_transforms_in_memory():
    """formulaic does not report the variables of center()/scale(): the model frame kept them out."""
    d = _data()
    m = glmm_nb.glmm("y ~ center(x) + (1 | g)", d, family="poisson")
    ref = glmm_nb.glmm("y ~ xc + (1 | g)", d.assign(xc=d.x - d.x.mean()), family="poisson")
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-8)
    assert m.loglik == pytest.approx(ref.loglik, abs=1e-9)
