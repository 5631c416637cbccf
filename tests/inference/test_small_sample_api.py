"""The user-facing doors of small-sample inference: coef_table(ddf=), summary labels,
anova(m), m.emmeans, predict(se_fit=, interval=), fitted/residuals and the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb import ModelError
from tests.conftest import FIXTURES, load_case

REF = json.loads((FIXTURES / "ddf" / "sleepstudy_lmm_df.json").read_text())


@pytest.fixture(scope="module")
def sleep():
    case, df = load_case("sleepstudy_reml")
    return df, glmm_nb.glmm(case["formula"], df, family="gaussian")


def test_lmm_coef_table_defaults_to_satterthwaite(sleep):
    _df, m = sleep
    ct = m.coef_table()
    assert list(ct.columns) == ["estimate", "std_error", "df", "statistic", "p_value", "conf_low", "conf_high"]
    for k, ref in REF["satterthwaite"]["df"].items():
        assert ct.loc[k, "df"] == pytest.approx(ref, rel=1e-3)
        p = REF["satterthwaite"]["p"][k]
        assert abs(ct.loc[k, "p_value"] - p) <= max(1e-3 * p, 1e-6 if p > 1e-12 else 1e-15)
    kr = m.coef_table(ddf="kenward-roger")
    for k, se in REF["kenward_roger"]["se"].items():
        assert kr.loc[k, "std_error"] == pytest.approx(se, rel=1e-4)
    z = m.coef_table(ddf="asymptotic")
    assert np.isinf(z["df"]).all()
    text = m.summary()
    assert "t value" in text and "Pr(>|t|)" in text and "z value" not in text and "Pr(>|z|)" not in text
    assert "satterthwaite" in text


def test_glmm_keeps_z_tests():
    case, df = load_case("cbpp_laplace")
    m = glmm_nb.glmm(case["formula"], df)
    text = m.summary()
    assert "z value" in text and "Pr(>|z|)" in text and "t value" not in text
    with pytest.raises(ModelError):
        m.coef_table(ddf="satterthwaite")
    tab = glmm_nb.anova(m)
    assert list(tab.columns[:2]) == ["chisq", "df"] and tab.loc["period", "df"] == 3


def test_anova_of_one_model_is_type3(sleep):
    _df, m = sleep
    tab = glmm_nb.anova(m)
    ref = REF["anova_type3"]["satterthwaite"][0]
    assert tab.loc["Days", "F"] == pytest.approx(ref["F"], rel=1e-4)
    assert tab.loc["Days", "den_df"] == pytest.approx(ref["den_df"], rel=1e-3)
    kr = glmm_nb.anova(m, ddf="kenward-roger")
    assert kr.loc["Days", "den_df"] == pytest.approx(REF["anova_type3"]["kenward_roger"][0]["den_df"], rel=1e-6)
    assert kr.loc["Days", "F"] == pytest.approx(REF["anova_type3"]["kenward_roger"][0]["F"], rel=1e-5)


def test_emmeans_and_predict_intervals(sleep):
    df, m = sleep
    machines = pd.read_csv(FIXTURES / "data" / "machines.csv")
    mm = glmm_nb.glmm("score ~ Machine + (1 | Worker)", machines, family="gaussian")
    emm = mm.emmeans("Machine")
    frame = emm.to_frame()
    np.testing.assert_allclose(frame.emmean, machines.groupby("Machine").score.mean().to_numpy(), rtol=1e-8)
    assert len(emm.pairs().to_frame()) == 3
    # re="none" needs no grouping column; the SE is the delta-method sqrt(x' V x)
    new = df.drop(columns="Subject").head(4)
    out = m.predict(new, re="none", se_fit=True, interval="confidence")
    X = np.c_[np.ones(4), new.Days.to_numpy()]
    np.testing.assert_allclose(out.se_fit, np.sqrt(np.einsum("ij,jk,ik->i", X, m.vcov.to_numpy(), X)), rtol=1e-10)
    np.testing.assert_allclose(m.predict(new, re="none"), X @ m.fixef.to_numpy(), rtol=1e-12)


def test_fitted_and_residuals():
    case, df = load_case("grouseticks_poisson")
    m = glmm_nb.glmm(case["formula"], df, family="poisson")
    mu, y = m.fitted().to_numpy(), np.asarray(m.spec.y)
    np.testing.assert_allclose(m.residuals().to_numpy(), y - mu)
    np.testing.assert_allclose(m.residuals("pearson").to_numpy(), (y - mu) / np.sqrt(mu))
    dev = m.residuals("deviance").to_numpy()
    np.testing.assert_allclose(np.sum(dev**2), m.deviance, rtol=1e-10)
    with pytest.raises(ModelError, match="type must be"):
        m.residuals("nope")


def test_report_of_an_lmm_shows_df_and_emmeans():
    machines = pd.read_csv(FIXTURES / "data" / "machines.csv")
    m = glmm_nb.glmm("score ~ Machine + (1 | Worker)", machines, family="gaussian")
    html = m.report(emmeans="Machine", diagnostics_nsim=20).html
    assert "<th>df</th>" in html and "t tests with satterthwaite degrees of freedom" in html
    assert "Estimated marginal means: Machine" in html and "Pairwise comparisons (tukey adjustment)" in html
