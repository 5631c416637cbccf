"""Laplace and LMM fits against R lme4 1.1-31 on real data (tests/fixtures/cases), and against
glmmTMB 1.1.5 on the same GLMMs (tests/fixtures/tmb_exact.json).

Tolerances are what the fits reach, measured (issue 16: a log-likelihood off by +1, standard
errors off by 1.5 % or correlations off by 2 % must fail):

* against lme4: fixed effects 1e-3 (relative where |value| > 1; reached 4e-4), random-effect
  SDs 1e-3 (reached 2e-4), correlations 5e-4 absolute (reached 5e-5), conditional modes 1e-3
  and conditional SDs 5e-4 (reached 4e-4, 1e-4). The log-likelihood two-sided: at most 5e-4
  above lme4's (lme4 stops short by up to 3.9e-4) and 1e-4 below. Standard errors: exact for
  LMMs (1e-4, reached 2e-5); for GLMMs lme4 takes them from a finite-difference Hessian whose
  error reaches 1.3 % on cbpp, so they are checked at 1.5 % there — and tightly against
  glmmTMB's exact (automatic-differentiation) Hessian:
* against glmmTMB: log-likelihood 1e-6 (reached 5e-8), fixed effects 2e-4 (3e-5), standard
  errors 2e-3 (4e-4), SDs 1e-4 (5e-6), correlations 1e-4 (1e-6).
"""

import json

import numpy as np
import pytest

import glmm_nb
from tests.conftest import FIXTURES, GLMM_CASES, load_case, r_name

TMB = {k: v for k, v in json.loads((FIXTURES / "tmb_exact.json").read_text()).items() if not k.startswith("_")}

LAPLACE_CASES = [c for c in GLMM_CASES if load_case(c)[0]["method"] == "laplace"]


def _close(got, want, tol):
    got, want = np.asarray(got, float), np.asarray(want, float)
    scale = np.maximum(np.abs(want), 1.0)
    assert np.all(np.abs(got - want) <= tol * scale), (got, want)


@pytest.fixture(scope="module")
def fits():
    out = {}
    for cid in LAPLACE_CASES:
        case, df = load_case(cid)
        m = glmm_nb.glmm(case["formula"], df, family=case["family"], link=case["link"], reml=bool(case["reml"]))
        out[cid] = (case, df, m)
    return out


@pytest.mark.parametrize("case_id", LAPLACE_CASES)
def test_estimates_match_lme4(fits, case_id):
    case, df, m = fits[case_id]
    names = [r_name(n, case, df) for n in case["fixef"]]
    _close(m.fixef[names], list(case["fixef"].values()), 1e-3)
    ct = m.coef_table()
    lmm = case["family"] == "gaussian"
    np.testing.assert_allclose(ct.loc[names, "std_error"], list(case["se"].values()),
                               rtol=1e-4 if lmm else (1.5e-2 if case_id == "cbpp_laplace" else 6e-3))
    # two-sided: lme4 may stop a little short of the maximum, never beyond it
    assert -1e-4 <= m.loglik - case["loglik"] <= (1e-6 if lmm else 5e-4), (m.loglik, case["loglik"])
    assert m.converged
    assert m.nobs == case["nobs"] and m.ngroups == case["ngroups"]


@pytest.mark.parametrize("case_id", LAPLACE_CASES)
def test_varcorr_matches_lme4(fits, case_id):
    case, _df, m = fits[case_id]
    vc = m.varcorr()
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    assert len(vc) == len(case["varcorr"])
    for got, want in zip(vc.itertuples(), case["varcorr"]):
        assert got.grp == want["grp"]
        if want["var2"] is None:
            assert got.var2 is None or got.var2 != got.var2  # None / NaN
            _close(got.sdcor, want["sdcor"], 1e-3)
        else:
            assert abs(got.sdcor - want["sdcor"]) <= 5e-4


@pytest.mark.parametrize("case_id", LAPLACE_CASES)
def test_conditional_modes_match_lme4(fits, case_id):
    case, _df, m = fits[case_id]
    re = m.ranef(condvar=True)
    for grp, ref in case["ranef"].items():
        terms = ref["terms"] if isinstance(ref["terms"], list) else [ref["terms"]]
        frame = re[grp].loc[ref["levels"]]
        modes = np.array(ref["modes"])
        _close(frame[[_term(t, case) for t in terms]].to_numpy(), modes, 1e-3)
        cond = np.array(ref["cond_sd"])
        if len(terms) == 1:
            cond = cond.reshape(-1, 1)[: len(ref["levels"])]
        else:
            cond = cond[: len(ref["levels"])]
        got = frame[[f"condsd_{_term(t, case)}" for t in terms]].to_numpy()
        _close(got, cond, 5e-4)


@pytest.mark.parametrize("case_id", sorted(TMB))
def test_glmms_match_glmmtmb_exactly(fits, case_id):
    """The same Laplace likelihood as glmmTMB, whose Hessian is exact: tight on everything."""
    case, df, m = fits[case_id]
    ref = TMB[case_id]
    names = [r_name(n, case, df) for n in ref["fixef"]]
    assert abs(m.loglik - ref["loglik"]) <= 1e-6, (m.loglik, ref["loglik"])
    _close(m.fixef[names], list(ref["fixef"].values()), 2e-4)
    np.testing.assert_allclose(m.coef_table().loc[names, "std_error"], list(ref["se"].values()), rtol=2e-3)
    vc = m.varcorr()
    sds = np.sort(vc[vc.var2.isna()].sdcor.to_numpy())
    np.testing.assert_allclose(sds, np.sort(np.atleast_1d(ref["sd"])), rtol=1e-4)
    cors = np.atleast_1d(ref["cor"]) if ref["cor"] != {} else np.array([])
    np.testing.assert_allclose(vc[vc.var2.notna()].sdcor.to_numpy(), cors, atol=1e-4)


def _term(name, case):
    if name == "(Intercept)":
        return name
    for var, levels in case["categorical"].items():
        for lv in levels:
            if name == f"{var}{lv}":
                return f"{var}[T.{lv}]"
    return name


def test_lme4_information_criteria(fits):
    for cid, (case, _df, m) in fits.items():
        assert abs(m.aic - case["aic"]) < 2e-3 + abs(m.loglik - case["loglik"]) * 2, cid
        assert abs(m.deviance - case["deviance"]) < 0.05, cid


def test_summary_header_and_tables(fits):
    _case, _df, m = fits["cbpp_laplace"]
    text = m.summary()
    assert text.startswith(
        "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)"
    )
    assert "Family: binomial  ( logit )" in text and "herd" in text and "period[T.4]" in text
    ct = m.coef_table(conf_level=0.9)
    assert list(ct.columns) == ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
    assert np.allclose(ct.conf_high - ct.estimate, 1.6448536 * ct.std_error)
    _c, _d, lmm = fits["sleepstudy_reml"]
    assert lmm.summary().startswith("Linear mixed model fit by REML")
    assert lmm.varcorr().grp.iloc[-1] == "Residual"
    assert "<table" in m._repr_html_()


def test_result_is_frozen(fits):
    _case, _df, m = fits["cbpp_laplace"]
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        m.loglik = 0.0
    assert m.opt.evaluations > 0 and m.opt.time > 0 and m.opt.final.shape == (5,)


def test_singular_fit_is_flagged_by_term(rng):
    import pandas as pd

    from glmm_nb import SingularFitWarning

    n = 400
    df = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 20, n)})
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-(0.3 + 0.5 * df.x)))).astype(int)
    with pytest.warns(SingularFitWarning, match=r"\(1 \| g\)"):
        m = glmm_nb.glmm("y ~ x + (1 | g)", df)
    assert m.singular and m.theta[0] < 1e-4
    assert any(msg.startswith("Singular fit") for msg in m.messages)
    assert "Singular fit" in m.summary()


def test_tidy_broom_mixed_layout(fits):
    _case, _df, m = fits["sleepstudy_reml"]
    t = m.tidy(conf_int=True)
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic", "p_value",
                               "conf_low", "conf_high"]
    assert t.effect.tolist() == ["fixed"] * 2 + ["ran_pars"] * 4
    assert t.term.tolist()[2:] == ["sd__(Intercept)", "sd__Days", "cor__(Intercept).Days", "sd__Observation"]
    assert t.group.tolist()[2:] == ["Subject", "Subject", "Subject", "Residual"]
    np.testing.assert_allclose(t.estimate.iloc[:2], m.fixef)
    np.testing.assert_allclose(t.estimate.iloc[2:], m.varcorr().sdcor)
    assert t.std_error.iloc[2:].isna().all()
