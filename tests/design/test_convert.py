"""Data frames of other libraries (issue 17): polars frames and pyarrow tables give the fit of the
same pandas frame to the last digit; categorical levels are kept; nulls drop rows, counted as for
pandas; anything else is one DataError naming its type."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb import DataError
from glmm_nb.design import convert

pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")

FORMULA = "y ~ x + f + (1 | g)"


@pytest.fixture(scope="module")
def frames():
    """A pandas frame with a categorical factor (declared, not sorted, levels: the reference is
    'mid'), text groups, an integer response and a null in x (one row dropped)."""
    rng = np.random.default_rng(17)
    n, k = 240, 15
    g = rng.integers(0, k, n)
    f = rng.choice(["lo", "mid", "hi"], n)
    x = rng.normal(size=n)
    eta = 0.2 + 0.5 * x + (f == "hi") * 0.6 + rng.normal(0, 0.7, k)[g]
    d = pd.DataFrame({"x": x, "f": pd.Categorical(f, categories=["mid", "lo", "hi"]), "g": [f"c{i:02d}" for i in g],
                      "y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.int64)})
    d.loc[7, "x"] = np.nan
    p = pl.from_pandas(d).with_columns(pl.col("f").cast(pl.Enum(["mid", "lo", "hi"])))
    return d, p


def fit(data, formula=FORMULA, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmm_nb.glmm(formula, data, **kw)


def same_fit(a, b):
    assert list(a.fixef.index) == list(b.fixef.index)
    np.testing.assert_allclose(b.fixef.to_numpy(), a.fixef.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=1e-12)
    assert abs(a.loglik - b.loglik) <= 1e-12
    assert a.n_dropped == b.n_dropped == 1


def test_polars_and_arrow_give_the_pandas_fit(frames):
    d, p = frames
    assert p["x"].null_count() == 1 and isinstance(p.schema["f"], pl.Enum)
    m = fit(d)
    assert list(m.fixef.index) == ["(Intercept)", "x", "f[T.lo]", "f[T.hi]"]  # 'mid' is the reference: levels kept
    same_fit(m, fit(p))
    same_fit(m, fit(pa.Table.from_pandas(d)))
    same_fit(m, fit(p.to_arrow()))


def test_polars_categorical_levels_sorted_as_pandas_sorts_them(frames):
    d, p = frames
    ds = d.assign(f=d.f.astype(str).astype("category"))  # pandas: sorted levels, 'hi' the reference
    ps = p.with_columns(pl.col("f").cast(pl.String).cast(pl.Categorical))
    out = convert.to_pandas(ps)
    assert isinstance(out.f.dtype, pd.CategoricalDtype) and list(out.f.cat.categories) == ["hi", "lo", "mid"]
    same_fit(fit(ds), fit(ps))


def test_conversion_without_pyarrow(frames, monkeypatch):
    d, p = frames
    monkeypatch.setattr(convert, "_has_pyarrow", lambda: False)
    out = convert.to_pandas(p)
    assert list(out.f.cat.categories) == ["mid", "lo", "hi"] and out.x.isna().sum() == 1
    same_fit(fit(d), fit(p))
    table = pa.Table.from_pandas(d)  # the interchange protocol (__dataframe__) without pyarrow's reader
    assert list(convert.to_pandas(table).f.cat.categories) == ["mid", "lo", "hi"]
    same_fit(fit(d), fit(table))


def test_nulls_in_text_and_integer_columns_drop_rows(frames):
    d, p = frames
    p2 = p.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("g")).alias("g"),
                        pl.when(pl.int_range(pl.len()) == 11).then(None).otherwise(pl.col("y")).alias("y"))
    assert fit(p2).n_dropped == 3
    out = convert.to_pandas(p2)
    assert out.g.isna().sum() == 1 and out.y.isna().sum() == 1


def test_pandas_passes_through_untouched(frames):
    d, _ = frames
    assert convert.to_pandas(d) is d


def test_predict_refit_simulate_gee_take_polars(frames):
    d, p = frames
    m = fit(d)
    nd, npl = d.iloc[20:40], p[20:40]
    np.testing.assert_array_equal(m.predict(npl), m.predict(nd))
    np.testing.assert_array_equal(m.predict(npl, re="none", type="link"), m.predict(nd, re="none", type="link"))
    a, b = m.predict(npl, se_fit=True), m.predict(nd, se_fit=True)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    np.testing.assert_array_equal(m.simulate(newdata=npl, seed=3), m.simulate(newdata=nd, seed=3))
    same_fit(m.refit(data=d), m.refit(data=p))
    g1 = glmm_nb.gee("y ~ x + f", d.dropna(), cluster="g")
    g2 = glmm_nb.gee("y ~ x + f", p.drop_nulls(), cluster="g")
    np.testing.assert_allclose(g2.params.to_numpy(), g1.params.to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad, name", [
    ([(1.0, 2.0, "a"), (0.0, 1.0, "b")], "list"),
    (np.zeros((10, 3)), "numpy.ndarray"),
    (np.zeros(3, dtype=[("x", float), ("y", float)]), "numpy.ndarray"),
    (pd.Series([1.0, 2.0]), "pandas.Series"),
    ("data.csv", "str"),
    (None, "NoneType"),
])
def test_unsupported_types_are_named(frames, bad, name):
    with pytest.raises(DataError) as err:
        fit(bad)
    msg = str(err.value)
    assert f"not a {name}" in msg and "pandas DataFrame, a polars DataFrame, a pyarrow Table" in msg
    assert "\n" not in msg
    if bad is None:  # predict(None) is the fitted data
        return
    m = fit(frames[0])
    with pytest.raises(DataError, match=f"newdata must be a data frame .* not a {name}"):
        m.predict(bad)


def test_dask_engine_takes_polars_and_predicts_on_it():
    pytest.importorskip("dask.dataframe")
    cbpp = glmm_nb.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    a = fit(cbpp, f, engine="dask")
    b = fit(pl.from_pandas(cbpp), f, engine="dask")
    np.testing.assert_allclose(b.fixef.to_numpy(), a.fixef.to_numpy(), rtol=0, atol=1e-12)
    # the partitions' sums differ in the last bit between the two inputs (the deviance at the same
    # start: 2.8e-14 of 200), so the two fits agree to rounding, not bit for bit
    np.testing.assert_allclose(np.asarray(b.predict(pl.from_pandas(cbpp.iloc[:9]))),
                               np.asarray(a.predict(cbpp.iloc[:9])), rtol=1e-12, atol=0)
