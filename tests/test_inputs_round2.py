"""Inputs that once gave a raw or misleading error: one clear line naming the culprit, or the
model the user meant."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb import DataError, ModelError
from tests.conftest import FIXTURES

ZI = pd.read_csv(FIXTURES / "data" / "zisim.csv")


@pytest.mark.parametrize("name", ["größe", "école", "群"])
def test_non_ascii_grouping_names(name):
    """Before: FormulaError "grouping factor 'größe' must be a column name"."""
    d = ZI.rename(columns={"g": name})
    m = glmm_nb.glmm(f"y ~ x + (1 | {name})", d, family="poisson")
    ref = glmm_nb.glmm("y ~ x + (1 | g)", ZI, family="poisson")
    assert m.ngroups == {name: 50} and list(m.ranef()) == [name]
    assert m.loglik == pytest.approx(ref.loglik, abs=1e-9)
    np.testing.assert_allclose(m.predict(d.iloc[:3]), ref.predict(ZI.iloc[:3]), rtol=1e-10)
    with pytest.raises(glmm_nb.FormulaError, match="grouping factor '1x'"):
        glmm_nb.glmm("y ~ x + (1 | 1x)", d.assign(**{"1x": 1}), family="poisson")


def test_emmeans_of_a_numeric_column_coded_as_a_factor():
    """Before: any emmeans on a model with C(h): "factor 'h' has new level(s) '3.495'"."""
    rng = np.random.default_rng(3)
    d = ZI.assign(h=rng.choice([1.2, 2.5, 3.495, 7.0], len(ZI)))
    m = glmm_nb.glmm("y ~ x + C(h) + (1 | g)", d, family="poisson")
    e = m.emmeans("h").to_frame()
    assert e.h.tolist() == [1.2, 2.5, 3.495, 7.0]
    b, V = m.fixef.to_numpy(), m.vcov.to_numpy()
    xbar = m.spec.frame.x.mean()
    for k, level in enumerate(e.h):  # the EMM of a level: intercept + its contrast + slope at mean x
        L = np.r_[1.0, xbar, [float(k == j) for j in (1, 2, 3)]]
        assert list(m.fixef.index)[2 + k - 1] == f"C(h)[T.{level}]" if k else True
        assert e.emmean[k] == pytest.approx(L @ b, rel=1e-12)
        assert e.std_error[k] == pytest.approx(np.sqrt(L @ V @ L), rel=1e-12)
    x = m.emmeans("x").to_frame()  # averaged over h's four levels
    L = np.r_[1.0, xbar, 0.25, 0.25, 0.25]
    assert x.emmean[0] == pytest.approx(L @ b, rel=1e-12)


def test_an_empty_zero_part_is_no_zero_part():
    """Before: ziformula='~ 0' -> "fit failed numerically (LinAlgError) ... check the response"."""
    m0 = glmm_nb.glmm("y ~ x + (1 | g)", ZI, family="poisson", ziformula="~ 0")
    ref = glmm_nb.glmm("y ~ x + (1 | g)", ZI, family="poisson")
    assert m0.family == "poisson" and not len(m0.zi_fixef) and m0.loglik == pytest.approx(ref.loglik, abs=1e-9)
    with pytest.raises(ModelError, match="hurdle=True needs a zero part; ziformula '~ 0'"):
        glmm_nb.glmm("y ~ x + (1 | g)", ZI, family="poisson", ziformula="~ 0", hurdle=True)


def test_identity_link_out_of_range_is_not_blamed_on_the_data():
    rng = np.random.default_rng(1)
    n = 300
    x, g = rng.normal(size=n), rng.integers(0, 10, n)
    mu = np.maximum(0.3 + x + 0.2 * rng.normal(size=10)[g], 0.05)
    d = pd.DataFrame({"y": rng.gamma(5, mu / 5), "x": x, "g": g})
    with pytest.raises(ModelError, match="identity link the gamma family's mean is not kept in its range.*'log'"):
        with pytest.warns(RuntimeWarning):
            glmm_nb.glmm("y ~ x + (1 | g)", d, family="gamma", link="identity")


def test_dates_in_the_fixed_part():
    """Before: numpy's "ufunc 'multiply' cannot use operands"; a duration was silently nanoseconds."""
    d = ZI.assign(t=pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(ZI)), unit="D"),
                  td=pd.to_timedelta(np.arange(len(ZI)), unit="h"))
    for f, col in (("y ~ t + (1 | g)", "t"), ("y ~ td + (1 | g)", "td"), ("y ~ x + (t | g)", "t")):
        with pytest.raises(DataError, match=f"column '{col}' .*holds dates or durations.*dt.days"):
            glmm_nb.glmm(f, d, family="poisson")
    m = glmm_nb.glmm("y ~ x + (1 | g)", d, family="poisson", ziformula="~ 1")
    with pytest.raises(DataError, match="column 't'"):
        m.refit(ziformula="~ t", data=d)


def test_effect_plot_messages():
    """Before: an intercept-only model's error led with "GEE: not asked for"; an ordinal model got
    "no prediction curves for this model"."""
    m = glmm_nb.glmm("y ~ 1 + (1 | g)", ZI, family="poisson")
    with pytest.raises(ModelError, match="^no effect curves: the model has no covariate to vary$"):
        m.plot.effects()
    w = pd.read_csv(FIXTURES / "data" / "wine.csv")
    w["rating"] = pd.Categorical(w.rating.astype(str), categories=list("12345"), ordered=True)
    mo = glmm_nb.glmm("rating ~ temp + contact + (1 | judge)", w, family="ordinal")
    spec = mo.plot.effects("temp").to_dict()
    rows = pd.DataFrame([r for ds in spec["datasets"].values() for r in ds])
    np.testing.assert_allclose(rows.groupby(["x", "curve"]).probability.sum().to_numpy(), 1.0, rtol=1e-9)
    # the typical cluster's curve (contact held at 'no') is emmeans' P(rating = k) at temp, contact = no
    import json

    ref = json.loads((FIXTURES / "ordinal" / "wine_emmeans_modes.json").read_text())["rating_by_temp_contact_prob"]
    typical = rows[rows.curve.str.startswith("typical")]
    for temp in ("cold", "warm"):
        want = [p for p, t, c in zip(ref["prob"], ref["temp"], ref["contact"]) if t == temp and c == "no"]
        np.testing.assert_allclose(typical[typical.x == temp].probability.to_numpy(), want, rtol=1e-4)
