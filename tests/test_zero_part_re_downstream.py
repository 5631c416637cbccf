"""Random effects in the zero part, downstream of the fit (issue 27 item 6): population-averaged
predictions, marginal coefficients, average marginal effects and the effect claims against
brute-force integrals that do not use the factorization the package uses (scipy's dblquad and
a 2-D product grid summed term by term)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, special, stats

import glmm_nb
from glmm_nb.marginal.claims import effect_claim
from glmm_nb.marginal.coefs import marginal_coefs
from tests.conftest import FIXTURES

ZRE = pd.read_csv(FIXTURES / "data" / "zresim.csv")
ZNB = pd.read_csv(FIXTURES / "data" / "zinbre.csv")


@pytest.fixture(scope="module")
def fits():
    return {"zip": glmm_nb.glmm("y ~ x + (1 | g)", ZRE, family="poisson", ziformula="~ x + (1 | g)"),
            "hurdle": glmm_nb.glmm("y ~ x + (1 | g)", ZRE, family="poisson", ziformula="~ x + (1 | g)", hurdle=True),
            "zinb": glmm_nb.glmm("y ~ x + (1 | g)", ZNB, family="negative_binomial", ziformula="~ x + (1 | g)")}


def _sds(m):
    cm = m.covariance_matrices()
    return np.sqrt(cm["g"].iloc[0, 0]), np.sqrt(cm["zi:g"].iloc[0, 0])


def _count_mean(m, key, mu):
    """E[y | not a structural zero]: mu (zero-inflated) or the zero-truncated mean (hurdle)."""
    if key == "hurdle":
        return mu / (1 - np.exp(-mu))
    return mu


def _dblquad_mean(m, key, x):
    """E over both parts' (independent) effects of (1 - pi) h(mu) at covariate x, by dblquad."""
    sc, sz = _sds(m)
    b, g = m.fixef.to_numpy(), m.zi_fixef.to_numpy()

    def f(s, t):
        mu = np.exp(b[0] + b[1] * x + t)
        return ((1 - special.expit(g[0] + g[1] * x + s)) * _count_mean(m, key, mu)
                * stats.norm.pdf(t, 0, sc) * stats.norm.pdf(s, 0, sz))

    return integrate.dblquad(f, -12 * sc, 12 * sc, -12 * sz, 12 * sz, epsabs=1e-12, epsrel=1e-11)[0]


def _grid_means(m, key, x, nodes=80):
    """The same expectation for many rows on an 80 x 80 product grid, summed over both axes
    jointly (no factorization)."""
    sc, sz = _sds(m)
    b, g = m.fixef.to_numpy(), m.zi_fixef.to_numpy()
    z, w = hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    T, S = np.meshgrid(sc * z, sz * z, indexing="ij")
    W = np.outer(w, w)
    x = np.asarray(x, dtype=float)[:, None, None]
    mu = np.exp(b[0] + b[1] * x + T)
    val = (1 - special.expit(g[0] + g[1] * x + S)) * _count_mean(m, key, mu)
    return np.sum(val * W, axis=(1, 2))


@pytest.mark.parametrize("key", ["zip", "hurdle"])
def test_population_averaged_predictions_match_dblquad(fits, key):
    m = fits[key]
    nd = ZRE.iloc[[0, 13, 500]]
    got = m.predict(nd, type="response", re="marginal")
    ref = [_dblquad_mean(m, key, x) for x in nd.x]
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    # the mean without the zero part's effects (what was computed before) is off by percents
    sc, _ = _sds(m)
    assert np.abs(got / m.predict(nd, type="response", re="none") - 1).min() > 0.01
    sc, sz = _sds(m)
    g = m.zi_fixef.to_numpy()
    zp = [integrate.quad(lambda s: special.expit(g[0] + g[1] * x + s) * stats.norm.pdf(s, 0, sz), -12 * sz, 12 * sz,
                         epsabs=1e-13)[0] for x in nd.x]
    np.testing.assert_allclose(m.predict(nd, type="zero_prob", re="marginal"), zp, rtol=1e-6)
    b = m.fixef.to_numpy()
    cond = [integrate.quad(lambda t: _count_mean(m, "zip", np.exp(b[0] + b[1] * x + t)) * stats.norm.pdf(t, 0, sc),
                           -12 * sc, 12 * sc, epsabs=1e-13)[0] for x in nd.x]
    np.testing.assert_allclose(m.predict(nd, type="conditional", re="marginal"), cond, rtol=1e-6)
    # the fitted rows, and new data without the grouping column (the group never matters here)
    np.testing.assert_allclose(m.predict(type="response", re="marginal")[[0, 13, 500]], ref, rtol=1e-6)
    np.testing.assert_allclose(m.predict(nd[["x"]], type="response", re="marginal"), ref, rtol=1e-6)


@pytest.mark.parametrize("key", ["zip", "hurdle"])
def test_marginal_coefficients_match_a_dense_grid(fits, key):
    m = fits[key]
    mu_pa = _grid_means(m, key, ZRE.x.to_numpy())
    X = np.column_stack([np.ones(len(ZRE)), ZRE.x.to_numpy()])
    ref = np.linalg.lstsq(X, np.log(mu_pa), rcond=None)[0]
    tab = m.compare()
    np.testing.assert_allclose(tab.marginal.to_numpy(), ref, rtol=1e-6)
    mc = marginal_coefs(m)
    assert mc.estimate.to_numpy() == pytest.approx(ref, rel=1e-6)
    assert (mc.std_error > 0).all()


def test_marginal_coefficient_ses_include_the_zero_part_variance(fits):
    """The delta method runs through the zero part's theta too: moving it moves the map."""
    from glmm_nb.marginal.coefs import marginal_map, parameter_covariance

    m = fits["zip"]
    f = marginal_map(m)
    th, b, g, zt = np.asarray(m.theta), m.fixef.to_numpy(), m.zi_fixef.to_numpy(), np.asarray(m.zi_theta)
    assert np.abs(f(th, b, g, zt * 1.2) - f(th, b, g, zt)).max() > 1e-3
    phi, V = parameter_covariance(m)
    assert phi.size == th.size + b.size + g.size + zt.size == V.shape[0]
    # the zero part's theta's variance is the inverse Hessian's, as the fit's own table reports it
    vf = m.extras["vcov_theta_beta"]
    assert V[-1, -1] == pytest.approx(vf[-1, -1], rel=1e-12) and V[-1, -1] > 0


@pytest.mark.parametrize("key", ["zip", "zinb"])
def test_marginal_effects_and_the_claim_state_the_population_means(fits, key):
    m = fits[key]
    d = ZRE if key == "zip" else ZNB
    me = m.marginal_effects("x", nsim=20)
    r = me.loc["marginal"]
    if key == "zip":
        p0 = float(np.mean(_grid_means(m, key, d.x.to_numpy())))
        p1 = float(np.mean(_grid_means(m, key, d.x.to_numpy() + 1)))
        assert r.p0 == pytest.approx(p0, rel=1e-6) and r.p1 == pytest.approx(p1, rel=1e-6)
    assert r.ratio == pytest.approx(r.p1 / r.p0, rel=1e-12)
    c = effect_claim(m, "x")
    assert c.population == pytest.approx(r.ratio, rel=1e-10)
    assert c.means["population"] == pytest.approx((r.p0, r.p1), rel=1e-10)
    text = c.population_sentence()
    assert f"{r.ratio:.4g}" in text and "zero part included" in text and "not defined" not in text
    # the direction word compares the two printed numbers
    word, pct = c.direction
    lc, lp = np.log(c.conditional), np.log(c.population)
    assert word == ("closer" if abs(lp) < abs(lc) else "farther")
    assert pct == pytest.approx(abs(1 - lp / lc) * 100, rel=1e-9)


# ------------------------------------------------------------- intervals of the zero part's SD
CI = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_zi_re_ci.json").read_text())
ZSD = "zi~sd__(Intercept)|g"


@pytest.mark.parametrize("key", ["zip", "zinb"])
def test_wald_intervals_of_both_sds_match_glmmtmb(fits, key):
    """glmmTMB's Wald interval of an SD is exp(log SD -/+ z se(log SD)); ours is on the SD scale,
    SD -/+ z se(SD) with se(SD) = SD se(log SD) at the optimum (the delta method, exact there)."""
    m, ref = fits[key], CI[key]
    ci = m.confint(method="wald")
    assert ci.index[-1] == ZSD and "sd__(Intercept)|g" in ci.index
    z = stats.norm.ppf(0.975)
    for row, k in (("sd__(Intercept)|g", 0), (ZSD, 1)):
        sd, se = np.exp(ref["log_sd"][k]), np.exp(ref["log_sd"][k]) * ref["se_log_sd"][k]
        lo, hi = ci.loc[row]
        assert (lo + hi) / 2 == pytest.approx(sd, rel=2e-4)
        assert (hi - lo) / (2 * z) == pytest.approx(se, rel=2e-3)
        # glmmTMB's own (log-scale) limits, from the same two numbers
        np.testing.assert_allclose(ref["wald"][k], np.exp(np.log(sd) + np.array([-z, z]) * ref["se_log_sd"][k]),
                                   rtol=1e-6)


@pytest.mark.parametrize("key,parm", [("zip", [ZSD, "sd__(Intercept)|g", "zi~x"]), ("zinb", [ZSD])])
def test_profile_intervals_of_the_zero_part_sd_match_glmmtmb(fits, key, parm):
    """Profile limits against glmmTMB's likelihood-ratio limits (uniroot), and each zero-part SD
    limit on the chi-square cut-off: a fit with that SD held there (the public chain's
    ``fixed=``) is z^2 / 2 log-likelihood units below the optimum."""
    from glmm_nb.inference.profile import profile_confint

    m, ref = fits[key], CI[key]
    ci = profile_confint(m, parm=parm)
    np.testing.assert_allclose(ci.loc[ZSD].to_numpy(), ref["profile"][1], rtol=1e-3)
    if "sd__(Intercept)|g" in parm:  # the count part's, with the zero part's theta in its place
        np.testing.assert_allclose(ci.loc["sd__(Intercept)|g"].to_numpy(), ref["profile"][0], rtol=1e-3)
        # a fixed effect's profile moves the zero part's SD along (not held at the last gamma)
        wald = m.confint(method="wald").loc["zi~x"].to_numpy()
        np.testing.assert_allclose(ci.loc["zi~x"].to_numpy(), wald, atol=0.05)
    d = ZRE if key == "zip" else ZNB
    fam = "poisson" if key == "zip" else "negative_binomial"
    z = stats.norm.ppf(0.975)
    for v in ci.loc[ZSD]:
        held = glmm_nb.glmm("y ~ x + (1 | g)", d, family=fam, ziformula="~ x + (1 | g)",
                            fixed={"zi~g.(Intercept)": float(v)})
        assert 2 * (m.loglik - held.loglik) == pytest.approx(z**2, abs=2e-3)


def test_bootstrap_includes_the_zero_part_sd(fits):
    from glmm_nb.inference.bootstrap import bootstrap
    from glmm_nb.inference.simulate import simulate
    from glmm_nb.pipeline import refit

    m = fits["zip"]
    b = bootstrap(m, nsim=2, seed=8)
    assert list(b.draws.columns)[-1] == ZSD and len(b.draws) == 2
    y = simulate(m, nsim=2, seed=8, re="new")[:, 0]
    r = refit(m, y=y, start=np.asarray(m.opt.final))
    assert b.draws[ZSD].iloc[0] == pytest.approx(np.sqrt(r.covariance_matrices()["zi:g"].iloc[0, 0]), rel=1e-8)
    ci = m.confint(method="bootstrap", nsim=2, seed=8)
    assert ci.index[-1] == ZSD
    assert ci.loc[ZSD].to_numpy() == pytest.approx(b.draws[ZSD].quantile([0.025, 0.975]).to_numpy(), rel=1e-12)
