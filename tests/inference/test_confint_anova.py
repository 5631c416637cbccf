"""Profile/Wald/bootstrap intervals and LR tests against lme4 1.1-31 (tests/fixtures)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmm_nb
from glmm_nb import ModelError
from tests.conftest import FIXTURES, load_case

REF = json.loads((FIXTURES / "lme4_profile.json").read_text())


@pytest.fixture(scope="module")
def cbpp():
    case, df = load_case("cbpp_laplace")
    return df, glmm_nb.glmm(case["formula"], df)


@pytest.fixture(scope="module")
def sleep_ml():
    case, df = load_case("sleepstudy_ml")
    return df, glmm_nb.glmm(case["formula"], df, family="gaussian", reml=False)


@pytest.mark.parametrize("which", ["cbpp_laplace", "sleepstudy_ml"])
def test_profile_intervals_match_lme4(which, cbpp, sleep_ml):
    _df, m = cbpp if which == "cbpp_laplace" else sleep_ml
    ci = m.confint(method="profile")
    assert list(ci.columns) == ["conf_low", "conf_high"]
    for term, (lo, hi) in REF[which]["confint"].items():
        assert abs(ci.loc[term, "conf_low"] - lo) < 2e-3 * max(1, abs(lo)), term
        assert abs(ci.loc[term, "conf_high"] - hi) < 2e-3 * max(1, abs(hi)), term


def test_issue_values_for_cbpp(cbpp):
    """The values quoted in the issue (4 decimals)."""
    _df, m = cbpp
    ci = m.confint()
    want = {"sd__(Intercept)|herd": (0.3461, 1.1000), "(Intercept)": (-1.9012, -0.9478),
            "period[T.2]": (-1.6168, -0.4078), "period[T.3]": (-1.8010, -0.5115),
            "period[T.4]": (-2.5008, -0.8008)}
    for term, (lo, hi) in want.items():
        assert abs(ci.loc[term, "conf_low"] - lo) < 2e-3 and abs(ci.loc[term, "conf_high"] - hi) < 2e-3


def test_wald_intervals(cbpp):
    _df, m = cbpp
    ci = m.confint(method="wald", level=0.9)
    ct = m.coef_table(conf_level=0.9)
    np.testing.assert_allclose(ci.loc[ct.index].to_numpy(), ct[["conf_low", "conf_high"]].to_numpy())
    sd = ci.loc["sd__(Intercept)|herd"]
    prof = m.confint(method="profile", level=0.9).loc["sd__(Intercept)|herd"]
    assert 0 < sd.conf_low < 0.642 < sd.conf_high
    assert abs(sd.conf_high - sd.conf_low - (prof.conf_high - prof.conf_low)) < 0.25  # same scale as the profile
    with pytest.raises(ModelError, match="method must be"):
        m.confint(method="exact")


def test_bootstrap_reproducible_and_parallel(cbpp):
    _df, m = cbpp
    b1 = m.bootstrap(12, seed=5, progress=False)
    b2 = m.bootstrap(12, seed=5, n_jobs=2, progress=False)
    assert b1.nsim == 12 and b1.n_failed + len(b1.draws) == 12
    pd.testing.assert_frame_equal(b1.draws, b2.draws)
    assert list(b1.draws.columns) == list(m.fixef.index) + ["sd__(Intercept)|herd"]
    # bootstrap distribution centred near the estimates
    assert abs(b1.draws["period[T.2]"].mean() - m.fixef["period[T.2]"]) < 3 * m.coef_table().std_error["period[T.2]"]
    ci = m.confint(method="bootstrap", nsim=12, seed=5)
    assert (ci.conf_low <= ci.conf_high).all()


def test_lrt_cbpp(cbpp):
    df, m = cbpp
    m0 = glmm_nb.glmm(REF["cbpp_laplace"]["lrt_vs"], df)
    tab = glmm_nb.anova(m, m0)
    assert list(tab.columns[:8]) == ["npar", "aic", "bic", "loglik", "deviance", "chisq", "df", "p_value"]
    row = tab.iloc[1]
    assert abs(row.chisq - 25.610) < 2e-3 and row.df == 3
    assert np.isnan(row.p_value_boundary) and "no variance parameter" in row.test


def test_lrt_sleepstudy_boundary(sleep_ml):
    df, m = sleep_ml
    m0 = glmm_nb.glmm(REF["sleepstudy_ml"]["lrt_vs"], df, family="gaussian", reml=False)
    row = glmm_nb.anova(m0, m).iloc[1]
    assert abs(row.chisq - 42.139) < 2e-3 and row.df == 2
    expect = 0.5 * stats.chi2.sf(row.chisq, 1) + 0.5 * stats.chi2.sf(row.chisq, 2)
    assert row.p_value_boundary == pytest.approx(expect)
    assert "p_value_boundary" in row.test


def test_anova_refusals(cbpp, sleep_ml):
    df, m = cbpp
    other = glmm_nb.glmm(REF["cbpp_laplace"]["formula"], df.iloc[:-4])
    with pytest.raises(ModelError, match="different data"):
        glmm_nb.anova(m, other)
    _sdf, s = sleep_ml
    sdf = _sdf
    a = glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", sdf, family="gaussian", reml=False)
    b = glmm_nb.glmm("Reaction ~ 1 + (Days || Subject)", sdf, family="gaussian", reml=False)
    with pytest.raises(ModelError, match="not nested"):
        glmm_nb.anova(a, b)
    r1 = glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", sdf, family="gaussian")
    r0 = glmm_nb.glmm("Reaction ~ 1 + (1 | Subject)", sdf, family="gaussian")
    with pytest.warns(UserWarning, match="maximum likelihood"):
        tab = glmm_nb.anova(r0, r1)  # lme4: refits REML fits by ML to compare fixed effects
    ml = glmm_nb.anova(r0.refit(reml=False), r1.refit(reml=False))
    np.testing.assert_allclose(tab.loglik.to_numpy(), ml.loglik.to_numpy(), rtol=1e-10)
    assert "maximum likelihood" in tab.attrs["note"]
    with pytest.raises(ModelError, match="fitted model"):
        glmm_nb.anova()
    assert "chisq" in glmm_nb.anova(m).columns  # one model: type III tests (issue 15)
    with pytest.raises(ModelError, match="not a fitted glmm"):
        glmm_nb.anova(m, "m0")


def test_profile_of_a_reml_fit_is_lme4s(sleep_ml):
    """lme4's confint() on a REML fit profiles the ML deviance (lme4 #325/#838); so do we, saying so."""
    from glmm_nb.inference.profile import profile_confint

    df, _m = sleep_ml
    m = glmm_nb.glmm(REF["sleepstudy_reml"]["formula"], df, family="gaussian")  # REML, the default
    with pytest.warns(UserWarning, match="ML deviance, as lme4's confint does"):
        ci = profile_confint(m, parm=["Days", "sigma"])
    assert "reml=False" in ci.attrs["note"]
    for term in ("Days", "sigma"):
        lo, hi = REF["sleepstudy_reml"]["confint"][term]
        assert abs(ci.loc[term, "conf_low"] - lo) < 2e-3 * max(1, abs(lo)), term
        assert abs(ci.loc[term, "conf_high"] - hi) < 2e-3 * max(1, abs(hi)), term


def test_wald_interval_of_an_sd_uses_the_analytic_curvature(cbpp):
    """For a random intercept the SD is theta: its Wald half-width is z * sqrt(V[theta, theta])
    with V the (theta, beta) covariance from the analytic-gradient Hessian."""
    _df, m = cbpp
    ci = m.confint(method="wald").loc["sd__(Intercept)|herd"]
    se = np.sqrt(m.extras["vcov_theta_beta"][0, 0])
    np.testing.assert_allclose((ci.conf_high - ci.conf_low) / 2, stats.norm.ppf(0.975) * se, rtol=1e-3)
