"""Zero-inflated and hurdle count models against glmmTMB 1.1.5, finite differences, an
independent integral and simulation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate, special, stats

import glmm_nb
from glmm_nb import DataError, FormulaError, ModelError
from glmm_nb.families import get_family, zero_inflated
from glmm_nb.pipeline import make_devfun, make_request
from tests.conftest import FIXTURES, load_case

EXTRA = json.loads((FIXTURES / "cases_tmb" / "zisim_glmmtmb_extra.json").read_text())["cases"]


def _check(m, fixef, se, zi, zi_se, sd, loglik, disp=None):
    # every quantity lands within 2e-5 of glmmTMB (its values are stored to 7 significant digits)
    np.testing.assert_allclose(m.fixef.to_numpy(), fixef, rtol=1e-4)
    np.testing.assert_allclose(m.coef_table().std_error.to_numpy(), se, rtol=1e-4)
    np.testing.assert_allclose(m.zi_fixef.to_numpy(), zi, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(m.coef_table(part="zi").std_error.to_numpy(), zi_se, rtol=1e-4)
    assert abs(float(m.varcorr().sdcor.iloc[0]) - sd) <= 1e-4 * sd
    assert -6e-4 <= m.loglik - loglik <= 6e-4, (m.loglik, loglik)  # 7 significant digits: +-5e-4
    if disp is not None:
        assert abs(float(m.dispersion.iloc[0]) - disp) <= 1e-4 * disp


def test_zip_matches_glmmtmb():
    case, df = load_case("zisim_zip")
    m = glmm_nb.glmm(case["formula"], df, family="poisson", ziformula=case["ziformula"])
    assert m.converged and m.npar == 4
    _check(m, list(case["fixef"].values()), list(case["se"].values()), list(case["zi_fixef"].values()),
           list(case["zi_se"].values()), case["varcorr"][0]["sdcor"], case["loglik"])
    # the truth of the simulation: structural-zero probability 0.25
    assert abs(special.expit(m.zi_fixef.iloc[0]) - 0.25) < 0.06


@pytest.mark.parametrize("ref", EXTRA, ids=lambda r: r["glmmtmb_family"])
def test_zinb_and_hurdle_match_glmmtmb(ref):
    _case, df = load_case("zisim_zip")
    m = glmm_nb.glmm("y ~ x + (1 | g)", df, family=ref["family"], ziformula=ref["ziformula"], hurdle=ref["hurdle"])
    assert m.converged
    # glmmTMB's log-likelihoods are printed to 7 significant digits here
    _check(m, ref["fixef"], ref["se"], ref["zi_fixef"], ref["zi_se"], ref["sd"], ref["loglik"], ref["dispersion"])


@pytest.mark.parametrize("base, hurdle", [("poisson", False), ("poisson", True), ("negative_binomial", False),
                                          ("negative_binomial", True), ("nbinom1", False)])
def test_zero_part_pieces_are_derivatives(base, hurdle):
    class Spec:  # the zero part's design of four rows: intercept and one covariate
        zi_X = np.array([[1, 0.3], [1, -1.0], [1, 0.5], [1, 2.0]])
        zi_names = ("(Intercept)", "x")
        zi_terms = ()  # no random effects in the zero part
        zi_ntheta = 0

    fam0 = zero_inflated(get_family(base), hurdle)
    nd = fam0.n_dispersion
    x = np.r_[[np.log(2.5)] * nd, -0.4, 0.7]
    fam = fam0.at_extra(x, Spec)
    y, pw = np.array([0.0, 0.0, 3.0, 1.0]), np.array([1.0, 2.0, 1.0, 0.5])
    eta = np.array([0.2, 1.1, -0.3, 0.8])
    mu = np.exp(eta)
    # the log-density against its definition
    b = fam.base
    f = np.exp(b.loglik_obs(y, mu, np.ones(4)))
    f0 = np.exp(b.loglik_obs(np.zeros(4), mu, np.ones(4)))
    pi = special.expit(Spec.zi_X @ x[nd:])
    ref = np.where(y == 0, pi, (1 - pi) * f / (1 - f0)) if hurdle else np.where(y == 0, pi + (1 - pi) * f0, (1 - pi) * f)
    np.testing.assert_allclose(fam.loglik_obs(y, mu, pw), pw * np.log(ref), rtol=1e-12)
    h = 1e-6
    ll = lambda e, g=fam: g.loglik_obs(y, g.link.inverse(e), pw)  # noqa: E731
    _mu, r, _W, Wo, dW = fam.working(eta, y, pw)
    np.testing.assert_allclose(r, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    wp, wm = fam.working(eta + h, y, pw), fam.working(eta - h, y, pw)
    np.testing.assert_allclose(Wo, -(wp[1] - wm[1]) / (2 * h), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dW, (wp[3] - wm[3]) / (2 * h), rtol=1e-5, atol=1e-7)
    lp, rp, Wp = fam.extra_pieces(eta, y, pw)
    for k in range(len(x)):
        e = np.zeros(len(x))
        e[k] = h
        fp, fm = fam0.at_extra(x + e, Spec), fam0.at_extra(x - e, Spec)
        np.testing.assert_allclose(lp[:, k], (ll(eta, fp) - ll(eta, fm)) / (2 * h), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(rp[:, k], (fp.working(eta, y, pw)[1] - fm.working(eta, y, pw)[1]) / (2 * h),
                                   rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(Wp[:, k], (fp.working(eta, y, pw)[3] - fm.working(eta, y, pw)[3]) / (2 * h),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family, hurdle", [("negative_binomial", False), ("negative_binomial", True)])
def test_laplace_gradient_with_a_zero_part(family, hurdle):
    _case, df = load_case("zisim_zip")
    req = make_request("y ~ x + (1 + x | g)", df, family=family, ziformula="~ x", hurdle=hurdle)
    dev = make_devfun(req)
    phi = np.array([0.5, 0.05, 0.2, 0.9, 0.35, np.log(5.0), -0.8, -0.1])
    _v, g = dev.value_and_grad(phi)
    fd = np.array([(dev(phi + e) - dev(phi - e)) / 2e-6 for e in np.eye(phi.size) * 1e-6])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_agq_zip_loglik_is_the_integral():
    case, df = load_case("zisim_zip")
    df = df[df.g.isin(df.g.cat.categories[:20])].copy()
    df["g"] = df.g.cat.remove_unused_categories()
    m = glmm_nb.glmm(case["formula"], df, family="poisson", ziformula="~ 1", method="agq", nagq=20)
    fam = m.fitted_family
    pi = float(special.expit(m.zi_fixef.iloc[0]))
    sd, beta = float(m.varcorr().sdcor.iloc[0]), m.fixef.to_numpy()
    total = 0.0
    for _, d in df.groupby("g", observed=True):
        y, x = d.y.to_numpy(float), d.x.to_numpy(float)

        def f(b):
            mu = np.exp(beta[0] + beta[1] * x + b)
            p = np.where(y == 0, pi + (1 - pi) * np.exp(-mu), (1 - pi) * stats.poisson.pmf(y, mu))
            return np.exp(np.sum(np.log(p))) * stats.norm.pdf(b, 0, sd)

        total += np.log(integrate.quad(f, -8 * sd, 8 * sd, epsabs=0, epsrel=1e-11, limit=200)[0])
    assert abs(m.loglik - total) < 1e-5, (m.loglik, total)
    assert fam.has_zero_part


def test_predictions_simulation_and_diagnostics():
    case, df = load_case("zisim_zip")
    m = glmm_nb.glmm(case["formula"], df, family="poisson", ziformula="~ 1")
    mu, pr, z = (m.predict(type=t) for t in ("conditional", "response", "zero_prob"))
    np.testing.assert_allclose(pr, (1 - z) * mu)
    np.testing.assert_allclose(z, special.expit(m.zi_fixef.iloc[0]))
    sims = m.simulate(400, seed=2)
    assert abs(sims.mean() / pr.mean() - 1) < 0.02
    # population-averaged mean: the conditional mean's marginal times (1 - pi)
    np.testing.assert_allclose(m.predict(type="response", re="marginal"),
                               (1 - z) * m.predict(type="conditional", re="marginal"), rtol=1e-10)
    ok = m.diagnose(nsim=200)
    assert ok.tests.loc["zero-inflation", "p_value"] > 0.05
    pois = glmm_nb.glmm(case["formula"], df, family="poisson")
    bad = pois.diagnose(nsim=200)
    assert bad.tests.loc["zero-inflation", "p_value"] < 0.05
    # the advice comes from refitting: the zero-inflated Poisson has the lowest AIC (the data are ZIP)
    assert bad.alternatives.best == "zero-inflated Poisson"
    assert any(x.startswith("Family: the zero-inflated Poisson refit") and "ziformula='~ 1'" in x
               for x in bad.messages)
    ame = m.marginal_effects("x")
    assert ame.loc["marginal", "p1"] < m.refit(ziformula=None).marginal_effects("x").loc["marginal", "p1"] * 1.5


def test_zero_part_in_tables_intervals_and_report():
    case, df = load_case("zisim_zip")
    m = glmm_nb.glmm(case["formula"], df, family="poisson", ziformula="~ x")
    td = m.tidy()
    assert list(td.query("component == 'zi'").term) == ["(Intercept)", "x"]
    ci = m.confint("wald")
    zt = m.coef_table(part="zi")
    np.testing.assert_allclose(ci.loc["zi~x"].to_numpy(), zt.loc["x", ["conf_low", "conf_high"]].to_numpy())
    prof = glmm_nb.inference.profile.profile_confint(m, parm=["zi~x"]).loc["zi~x"]
    held = m.refit(fixed={"zi~x": prof.conf_high})
    assert 2 * (m.loglik - held.loglik) == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-3)
    assert "Zero-inflation model" in m.summary()
    html = m.report(diagnostics_nsim=20).html
    assert "The odds of a structural zero are" in html


def test_zero_part_errors():
    case, df = load_case("zisim_zip")
    with pytest.raises(ModelError, match="needs ziformula"):
        glmm_nb.glmm(case["formula"], df, family="poisson", hurdle=True)
    with pytest.raises(ModelError, match="count family"):
        glmm_nb.glmm(case["formula"], df.assign(y=(df.y > 0).astype(int)), family="binomial", ziformula="~ 1")
    with pytest.raises(DataError, match="hurdle models take"):
        glmm_nb.glmm(case["formula"], df, family="nbinom1", ziformula="~ 1", hurdle=True)
    with pytest.raises(ModelError, match="no zero part"):
        glmm_nb.glmm(case["formula"], df, family="poisson").coef_table(part="zi")
