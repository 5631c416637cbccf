"""Random effects in the zero part, downstream of the fit (issue 27 item 6): population-averaged
predictions, marginal coefficients, average marginal effects and the effect claims against
brute-force integrals that do not use the factorization the package uses (scipy's dblquad and
a 2-D product grid summed term by term)."""

from __future__ import annotations

import json
import math
import re

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

    def f(s, t):  # scalar maths: dblquad calls it some 10^5 times
        mu = math.exp(b[0] + b[1] * x + t)
        h = mu / -math.expm1(-mu) if key == "hurdle" else mu
        dens = math.exp(-0.5 * (t / sc) ** 2 - 0.5 * (s / sz) ** 2) / (2 * math.pi * sc * sz)
        return h * dens / (1 + math.exp(g[0] + g[1] * x + s))

    return integrate.dblquad(f, -10 * sc, 10 * sc, -10 * sz, 10 * sz, epsabs=1e-10, epsrel=1e-9)[0]


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
    if key == "zip":  # the report states the same number, zero part included
        page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m.report(diagnostics_nsim=20).html))
        assert f"(zero part included) multiplies the population-averaged rate by {r.ratio:.4g}" in page



def test_marginal_effect_intervals_carry_the_zero_part_uncertainty(fits):
    """The draws behind the intervals include gamma and the zero part's theta: the typical
    cluster's rate ratio recomputed by hand from the same draws gives the same quantiles (and
    with gamma held at its estimate the interval would be narrower)."""
    from glmm_nb.marginal.coefs import parameter_draws_all

    m = fits["zip"]
    me = m.marginal_effects("x", nsim=200, seed=3)
    x = ZRE.x.to_numpy()
    ratios, held = [], []
    for th, b, g, zt in parameter_draws_all(m, 200, 3):
        assert zt.size == 1 and zt[0] >= 0
        p = [np.mean((1 - special.expit(g[0] + g[1] * (x + s))) * np.exp(b[0] + b[1] * (x + s))) for s in (0, 1)]
        ratios.append(p[1] / p[0])
        gh = m.zi_fixef.to_numpy()
        q = [np.mean((1 - special.expit(gh[0] + gh[1] * (x + s))) * np.exp(b[0] + b[1] * (x + s))) for s in (0, 1)]
        held.append(q[1] / q[0])
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    assert me.loc["typical", "ratio_low"] == pytest.approx(lo, rel=1e-10)
    assert me.loc["typical", "ratio_high"] == pytest.approx(hi, rel=1e-10)
    assert np.ptp(np.quantile(held, [0.025, 0.975])) < 0.9 * (hi - lo)


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


# ------------------------------------------------------------------------------------------ AGQ
SMALL = ZRE[ZRE.g.isin(["g01", "g02", "g03", "g04", "g05", "g06"])].reset_index(drop=True)
PHI = np.array([0.6, 0.8, 0.3, -0.7, 0.5, 0.9])  # theta, beta (2), gamma (2), zero-part theta


def _case_phi(family):
    return PHI if family == "poisson" else np.r_[PHI[:3], np.log(1.7), PHI[3:]]


def _brute_loglik(d, phi, hurdle, size=None, k=240, half=6.0):
    """Sum over clusters of log of the 2-D integral of p(y_j | b) N(b_c; 0, tc^2) N(b_z; 0, tz^2)
    on a k x k Gauss-Legendre grid over the square +-``half`` around each cluster's mode (ten
    prior SDs; the log-density written from scipy.stats, tests/test_zero_part_re.py) — no
    scaling at the mode's curvature, no Gauss-Hermite."""
    from scipy import optimize

    from tests.test_zero_part_re import _cluster_terms, _logdens

    tc, b0, b1, g0, g1, tz = phi
    t, w = np.polynomial.legendre.leggauss(k)
    total = 0.0
    for h, (_, c) in zip(_cluster_terms(d, phi, hurdle, size), d.groupby("g")):
        b = optimize.minimize(lambda v: -h(v), np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
        bc, bz = np.meshgrid(b[0] + half * t, b[1] + half * t, indexing="ij")
        bc, bz = bc.ravel()[:, None], bz.ravel()[:, None]
        y, x = c.y.to_numpy(float)[None, :], c.x.to_numpy(float)[None, :]
        lf = (_logdens(y, b0 + b1 * x + bc, g0 + g1 * x + bz, hurdle, size).sum(axis=1)
              + stats.norm.logpdf(bc[:, 0], 0, tc) + stats.norm.logpdf(bz[:, 0], 0, tz))
        total += special.logsumexp(lf, b=np.outer(w, w).ravel() * half**2)
        # the integrand at the square's edges is negligible
        edge = np.r_[lf.reshape(k, k)[[0, -1], :].ravel(), lf.reshape(k, k)[:, [0, -1]].ravel()]
        assert edge.max() - lf.max() < np.log(1e-10)
    return total


@pytest.mark.parametrize("hurdle,family,size", [(False, "poisson", None), (True, "poisson", None),
                                                (False, "negative_binomial", 1.7)])
def test_agq_matches_the_integral_and_nagq_1_is_laplace(hurdle, family, size):
    from glmm_nb.likelihood import ZiReAgqDevfun
    from glmm_nb.pipeline import make_devfun, make_request

    req = make_request("y ~ x + (1 | g)", SMALL, family=family, ziformula="~ x + (1 | g)", hurdle=hurdle,
                       method="agq", nagq=25)
    phi = _case_phi(family)
    lap = make_devfun(req, "laplace")(phi)
    assert ZiReAgqDevfun(req.spec, req.family, 1)(phi) == pytest.approx(lap, abs=1e-9)
    agq = make_devfun(req)
    assert isinstance(agq, ZiReAgqDevfun)
    ref = _brute_loglik(SMALL, PHI, hurdle, size)
    assert -agq(phi) / 2 == pytest.approx(ref, abs=1e-6)
    assert abs(-lap / 2 - ref) > 1e-3  # Laplace is an approximation here, AGQ converges to the integral


def test_agq_fit_and_refusal_with_two_factors(fits):
    from glmm_nb.likelihood import ZiReAgqDevfun
    from glmm_nb.pipeline import make_devfun

    m = glmm_nb.glmm("y ~ x + (1 | g)", ZRE, family="poisson", ziformula="~ x + (1 | g)", method="agq", nagq=7)
    lap = fits["zip"]
    assert m.converged and m.nagq == 7
    phi = np.asarray(m.opt.final)
    dev = make_devfun(m.request)
    # its optimum: the AGQ deviance is lowest there (not at the Laplace estimates), gradient ~ 0
    assert -2 * m.loglik == pytest.approx(dev(phi), abs=1e-8)
    assert dev(np.asarray(lap.opt.final)) - dev(phi) > 1e-3
    assert np.abs(dev.exact_gradient(phi)).max() < 1e-2
    # at the estimates 7 nodes per dimension are within 2e-3 of 15 (1.5e-3 measured), where
    # Laplace is 0.6 off
    ll15 = -ZiReAgqDevfun(m.spec, m.request.family, 15)(phi) / 2
    assert ll15 == pytest.approx(m.loglik, abs=2e-3)
    assert abs(-make_devfun(m.request, "laplace")(phi) / 2 - ll15) > 0.3
    assert abs(m.loglik - lap.loglik) > 0.1
    assert m.varcorr().set_index("grp").loc["zi:g", "sdcor"] > 0
    # the zero part on another factor: the integral does not factor by cluster
    d = ZRE.assign(h=[f"p{(int(g[1:]) + 1) // 2:02d}" for g in ZRE.g])
    with pytest.raises(glmm_nb.ModelError, match=r"one grouping factor.*\(1 \| g\).*\(1 \| h\)"):
        glmm_nb.glmm("y ~ x + (1 | g)", d, family="poisson", ziformula="~ x + (1 | h)", method="agq", nagq=3)


def test_lrt_of_the_zero_part_variance_is_a_boundary_test(fits):
    """anova(m0, m) adding (1 | g) to the zero part: one new variance on its boundary, the 50:50
    chi-bar-square (Self & Liang 1987), and each row labelled with its zero part."""
    m = fits["zip"]
    m0 = glmm_nb.glmm("y ~ x + (1 | g)", ZRE, family="poisson", ziformula="~ x")
    a = glmm_nb.anova(m, m0)
    assert list(a.index) == ["y ~ x + (1 | g), zi ~ x", "y ~ x + (1 | g), zi ~ x + (1 | g)"]
    row = a.iloc[1]
    chisq = 2 * (m.loglik - m0.loglik)
    assert row.chisq == pytest.approx(chisq, rel=1e-12) and row.df == 1
    assert row.p_value == pytest.approx(stats.chi2.sf(chisq, 1), rel=1e-12)
    assert row.p_value_boundary == pytest.approx(0.5 * stats.chi2.sf(chisq, 1), rel=1e-12)
    assert "one new variance" in row.test and "p_value_boundary" in row.test
    # a zero part without the smaller model's coefficient is not nested in it
    d = ZRE.assign(x2=ZRE.x**2)
    m1 = glmm_nb.glmm("y ~ x + (1 | g)", d, family="poisson", ziformula="~ x2 + (1 | g)")
    with pytest.raises(glmm_nb.ModelError, match=r"zero part's coefficient\(s\) x of"):
        glmm_nb.anova(m1, m0)
