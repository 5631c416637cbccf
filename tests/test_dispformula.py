"""Dispersion models (dispformula=) against glmmTMB 1.1.5: the wave-3 heteroscedastic LMM and own
fits of gaussian, NB2 (grouseticks), Gamma (sleepstudy), beta-binomial and Tweedie models;
gradients by finite differences, AGQ against a numerical integral."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import glmm_nb
from glmm_nb import FormulaError, ModelError
from glmm_nb.pipeline import make_devfun, make_request
from tests.conftest import FIXTURES, load_case

OWN = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_disp.json").read_text())
FAM = {"gauss_disp1": ("gaussian", "dispsim.csv"), "tweedie_disp": ("tweedie", "tweediesim.csv"),
       "betabin_disp": ("betabinomial", "betabinsim.csv"), "nb2_disp": ("nbinom2", "grouseticks.csv"),
       "gamma_disp": ("gamma", "sleepstudy.csv"), "t_disp": ("t", "tdispsim.csv")}


def _vals(x):
    return np.atleast_1d(np.array(list(x.values()) if isinstance(x, dict) else x, dtype=float))


def _data(key):
    d = pd.read_csv(FIXTURES / "data" / FAM[key][1])
    for col in ("YEAR", "BROOD", "Subject"):
        if col in d:
            d[col] = d[col].astype(str)
    return d


def test_heteroscedastic_lmm_matches_glmmtmb():
    case, df = load_case("disp_gauss")
    m = glmm_nb.glmm(case["formula"], df, family="gaussian", dispformula=case["dispformula"], reml=False)
    # measured: log-likelihood within 1e-11, estimates 2e-8, SEs 1e-7 relative
    assert abs(m.loglik - case["loglik"]) < 1e-6 and m.npar == case["df"]
    np.testing.assert_allclose(m.fixef.to_numpy(), _vals(case["fixef"]), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), _vals(case["se"]), rtol=5e-4)
    np.testing.assert_allclose(m.varcorr().vcov.iloc[0], case["cov"][0]["matrix"][0][0], rtol=1e-4)
    # glmmTMB's gaussian dispersion model is of log sigma^2
    np.testing.assert_allclose(m.disp_fixef.to_numpy(), _vals(case["disp_fixef"]), rtol=1e-5)
    pd_ = m.predict(type="dispersion")
    np.testing.assert_allclose(pd_[[0, -1]], case["disp_at"]["sigma"], rtol=1e-5)
    lo = np.exp(0.5 * m.disp_fixef.sum())
    assert pd_[np.asarray(df.h == "lo")] == pytest.approx(lo)
    new = pd.DataFrame({"h": pd.Categorical(["lo", "hi"], categories=["hi", "lo"]), "x": [0.0, 1.0]})
    np.testing.assert_allclose(m.predict(new, type="dispersion"), [lo, np.exp(0.5 * m.disp_fixef.iloc[0])])
    assert "Dispersion model (log sigma^2): ~ h" in m.summary()
    tid = m.tidy()
    assert list(tid.query("component == 'disp'").term) == ["(Intercept)", "h[T.lo]"]
    ct = m.coef_table(part="disp")
    w = m.confint("wald").loc["disp~h[T.lo]"]
    np.testing.assert_allclose(w.to_numpy(), ct.loc["h[T.lo]", ["conf_low", "conf_high"]].to_numpy(dtype=float))
    # residuals standardised by each row's own sigma
    r = m.residuals("pearson").to_numpy()
    np.testing.assert_allclose(r, (df.y - m.fitted()) / pd_, rtol=1e-10)
    with pytest.raises(ModelError, match="reml=False"):
        glmm_nb.glmm(case["formula"], df, family="gaussian", dispformula="~ h")


@pytest.mark.filterwarnings("ignore::glmm_nb.ConvergenceWarning")
@pytest.mark.parametrize("key", list(FAM))
def test_matches_own_glmmtmb_fits(key):
    ref, (fam, _) = OWN[key], FAM[key]
    kw = {"reml": False} if fam == "gaussian" else ({"link": "log"} if fam == "gamma" else {})
    m = glmm_nb.glmm(ref["formula"], _data(key), family=fam, dispformula=ref["dispformula"], **kw)
    # measured: log-likelihoods within 5e-8; coefficients within 1.2e-5; SEs within 5e-5 relative
    assert abs(m.loglik - ref["loglik"]) < 1e-6, (m.loglik, ref["loglik"])
    assert m.npar == ref["df"]
    np.testing.assert_allclose(m.fixef.to_numpy(), _vals(ref["fixef"]), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), _vals(ref["se"]), rtol=5e-4)
    np.testing.assert_allclose(m.disp_fixef.to_numpy(), _vals(ref["disp_fixef"]), rtol=1e-4, atol=5e-5)
    if _vals(ref["disp_se"]).size:
        np.testing.assert_allclose(m.coef_table(part="disp").std_error, _vals(ref["disp_se"]), rtol=5e-4)
    np.testing.assert_allclose(m.varcorr().vcov.iloc[0], ref["var"], rtol=5e-4)
    np.testing.assert_allclose(m.predict(type="dispersion")[:6], ref["disp_head"], rtol=2e-5)
    for k, v in (ref["family_params"] or {}).items():
        np.testing.assert_allclose(m.dispersion[{"Tweedie power": "power", "Student-t df": "df"}[k]], v, rtol=5e-5)


@pytest.mark.parametrize("fam, form, disp", [("nbinom2", "TICKS ~ cHEIGHT + (1 | BROOD)", "~ YEAR"),
                                             ("tweedie", "y ~ x + (1 + x | g)", "~ x"),
                                             ("t", "y ~ x + (1 + x | g)", "~ h")])
def test_laplace_gradient_with_a_dispersion_model(fam, form, disp):
    d = {"nbinom2": lambda: _data("nb2_disp"), "tweedie": lambda: _data("tweedie_disp"),
         "t": lambda: load_case("disp_gauss")[1]}[fam]()
    req = make_request(form, d, family=fam, dispformula=disp)
    dev = make_devfun(req)
    nx = req.family.n_extra(req.spec)
    phi = np.concatenate([[0.6, 0.1, 0.25][: req.spec.ntheta], np.full(req.spec.p, 0.2), np.linspace(0.3, -0.2, nx)])
    _v, g = dev.value_and_grad(phi)
    fd = np.array([(dev(phi + e) - dev(phi - e)) / 2e-6 for e in np.eye(phi.size) * 1e-6])
    np.testing.assert_allclose(g, fd, rtol=2e-5, atol=5e-5)


def test_agq_with_a_dispersion_model_is_the_integral():
    d = _data("betabin_disp")
    d = d[d.g.isin(sorted(d.g.unique())[:10])]
    m = glmm_nb.glmm("cbind(k, n - k) ~ x + (1 | g)", d, family="betabinomial", dispformula="~ x",
                     method="agq", nagq=20)
    fam, sd, beta = m.fitted_family, float(m.varcorr().sdcor.iloc[0]), m.fixef.to_numpy()
    y, pw, eta0 = np.asarray(m.spec.y), np.asarray(m.spec.weights), np.asarray(m.spec.X) @ beta
    phi = m.predict(type="dispersion")
    total = 0.0
    base = fam.base
    for lev in sorted(d.g.unique()):
        s = np.asarray(d.g == lev)

        def f(b):
            b_fam = base.at_dispersion(1.0)
            b_fam.dispersion = phi[s]
            mu = fam.link.inverse(eta0[s] + b)
            return np.exp(np.sum(b_fam.loglik_obs(y[s], mu, pw[s]))) * stats.norm.pdf(b, 0, sd)

        total += np.log(integrate.quad(f, -8 * sd, 8 * sd, epsabs=0, epsrel=1e-11, limit=200)[0])
    assert abs(m.loglik - total) < 1e-5, (m.loglik, total)


def test_dispersion_model_inputs():
    case, df = load_case("disp_gauss")
    with pytest.raises(FormulaError, match="fixed effects only"):
        glmm_nb.glmm(case["formula"], df, family="gaussian", dispformula="~ h + (1 | g)", reml=False)
    with pytest.raises(FormulaError, match="'nope'"):
        glmm_nb.glmm(case["formula"], df, family="gaussian", dispformula="~ nope", reml=False)
    with pytest.raises(ModelError, match="dispersion parameter"):
        glmm_nb.glmm("y ~ x + (1 | g)", df.assign(y=np.round(np.abs(df.y))), family="poisson", dispformula="~ h")
    m = glmm_nb.glmm(case["formula"], df, family="gaussian", dispformula="~ h", reml=False)
    one = m.refit(dispformula="~ 1")
    assert one.npar == m.npar - 1
    row = glmm_nb.anova(m, one).iloc[1]
    assert row.df == 1 and row.chisq == pytest.approx(2 * (m.loglik - one.loglik))
    # the homoscedastic ML fit is the same model as lmer's ML fit
    ml = glmm_nb.glmm(case["formula"], df, family="gaussian", reml=False)
    assert one.loglik == pytest.approx(ml.loglik, abs=1e-6)
    # ICC: the residual variance averaged over the rows (here the two groups' sigma^2 by their sizes)
    s2 = np.mean(m.predict(type="dispersion") ** 2)
    v = m.varcorr().vcov.iloc[0]
    assert m.icc() == pytest.approx(v / (v + s2), rel=1e-12)
    prof = glmm_nb.inference.profile.profile_confint(m, parm=["disp~h[T.lo]"]).loc["disp~h[T.lo]"]
    for v in prof:  # the LR statistic at each limit is the chi-square cut-off
        held = m.refit(fixed={"disp~h[T.lo]": v})
        assert 2 * (m.loglik - held.loglik) == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-3)
    sims = m.simulate(2000, seed=4)  # each row's own sigma: the lo rows vary less
    lo = np.asarray(df.h == "lo")
    ratio = sims[lo].std(axis=1).mean() / sims[~lo].std(axis=1).mean()
    assert 0.3 < ratio < 0.7
    new = pd.DataFrame({"h": pd.Categorical(["lo"] * 3 + ["hi"] * 3, categories=["hi", "lo"]), "x": 0.0,
                        "g": ["g01"] * 6})
    sims = m.simulate(20000, seed=5, newdata=new, re="conditional")  # the residual SD of each new row
    np.testing.assert_allclose(sims.std(axis=1), m.predict(new, type="dispersion"), rtol=0.03)
