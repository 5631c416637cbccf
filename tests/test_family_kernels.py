"""The families' fast kernels (:mod:`glmm_nb.families.kernel`) against independent references:
the log-likelihood against scipy.stats' densities summed row by row, the working pieces
(score, observed weight and its derivative) against central differences of those densities in
eta, the extra parameter's pieces against differences in log(dispersion), and everything
against the generic kernel made of the family's own methods."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from glmm_nb.families import get_family
from glmm_nb.families.kernel import Kernel, ResponseData

N = 400


def _case(name, d, weighted, rng):
    eta = rng.normal(0.2, 1.3, N)
    pw = rng.integers(1, 5, N).astype(float) if weighted else np.ones(N)
    if name == "binomial":
        y = rng.binomial(pw.astype(int), 0.35) / pw
    elif name == "gamma":
        y = rng.gamma(2.0, 1.5, N)
    else:
        y = rng.negative_binomial(2, 0.3, N).astype(float)
    fam = get_family(name)
    if d is not None:
        fam = fam.at_dispersion(d)
    return fam, eta, y, pw


def _logdens(name, d, y, eta, pw):
    """Per-row log-density from scipy.stats (the prior weight multiplies it, as in glmer)."""
    mu = np.exp(eta) if name != "binomial" else 1 / (1 + np.exp(-eta))
    if name == "negative_binomial":
        return pw * stats.nbinom.logpmf(y, d, d / (d + mu))
    if name == "gamma":
        nu = d ** -2.0
        return pw * stats.gamma.logpdf(y, a=nu, scale=mu / nu)
    if name == "poisson":
        return pw * stats.poisson.logpmf(y, mu)
    return stats.binom.logpmf(np.round(y * pw), pw, mu)


CASES = [("negative_binomial", 2.3), ("negative_binomial", 0.4), ("gamma", 0.6), ("gamma", 0.1),
         ("binomial", None), ("poisson", None)]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name,d", CASES)
def test_kernel_matches_scipy_and_differences(name, d, weighted):
    rng = np.random.default_rng(11)
    fam, eta, y, pw = _case(name, d, weighted, rng)
    data = ResponseData(y, pw, float(np.sum(fam.loglik_const(y, pw))))
    K = fam.kernel(data)
    assert type(K) is not Kernel  # the fast kernel is the one under test
    ll = K.loglik(eta)
    assert ll == pytest.approx(float(np.sum(_logdens(name, d, y, eta, pw))), abs=1e-8, rel=1e-12)
    mu, r, W, Wobs = K.working(eta)
    dW = K.dW(eta)
    # five-point differences (error O(h^4)) of the per-row log-densities and of W_obs
    h = 2e-3
    f = [_logdens(name, d, y, eta + k * h, pw) for k in (-2, -1, 0, 1, 2)]
    np.testing.assert_allclose(mu, np.exp(eta) if name != "binomial" else 1 / (1 + np.exp(-eta)), rtol=1e-14)
    scale = np.max(np.abs(Wobs))
    np.testing.assert_allclose(r, (8 * (f[3] - f[1]) - (f[4] - f[0])) / (12 * h), rtol=1e-6, atol=1e-8 * scale)
    d2 = (-f[4] + 16 * f[3] - 30 * f[2] + 16 * f[1] - f[0]) / (12 * h * h)
    np.testing.assert_allclose(Wobs, -d2, rtol=1e-6, atol=1e-8 * scale)
    if fam.canonical:
        np.testing.assert_array_equal(W, Wobs)
    g = [K.working(eta + k * h)[3] for k in (-2, -1, 1, 2)]
    np.testing.assert_allclose(dW, (8 * (g[2] - g[1]) - (g[3] - g[0])) / (12 * h), rtol=1e-6, atol=1e-8 * scale)
    # the generic kernel (the family's own methods) to rounding
    G = Kernel(fam, data)
    assert ll == pytest.approx(G.loglik(eta), abs=1e-9, rel=1e-14)
    for a, b in zip((*K.working(eta), K.dW(eta)), (*G.working(eta), G.dW(eta))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(G.dW(eta), fam.working(eta, y, pw)[4], rtol=1e-15)
    K.working(eta + 0.1)  # dW at another eta than the last working(): computed afresh
    np.testing.assert_allclose(K.dW(eta), G.dW(eta), rtol=1e-10, atol=1e-300)
    if d is None:
        return
    # the dispersion's pieces: d/dpsi (psi = log d) of the log-likelihood, the score and W_obs
    lp, rp, Wp = K.extra_pieces(eta)
    hp = 1e-5
    fam_hi, fam_lo = fam.at_dispersion(d * np.exp(hp)), fam.at_dispersion(d * np.exp(-hp))
    K_hi, K_lo = fam_hi.kernel(data), fam_lo.kernel(data)
    assert lp[0] == pytest.approx((K_hi.loglik(eta) - K_lo.loglik(eta)) / (2 * hp), rel=1e-7)
    w_hi, w_lo = K_hi.working(eta), K_lo.working(eta)
    np.testing.assert_allclose(rp[:, 0], (w_hi[1] - w_lo[1]) / (2 * hp), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(Wp[:, 0], (w_hi[3] - w_lo[3]) / (2 * hp), rtol=1e-6, atol=1e-9)
    glp, grp, gWp = G.extra_pieces(eta)
    assert lp[0] == pytest.approx(glp[0], rel=1e-10)
    np.testing.assert_allclose(rp, grp, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(Wp, gWp, rtol=1e-10, atol=1e-300)


def test_kernel_memo_is_by_array_not_by_value():
    """working() reuses the inverse link of loglik() at the same eta array only: a new array
    (same or different values) is computed afresh."""
    rng = np.random.default_rng(2)
    fam, eta, y, pw = _case("negative_binomial", 1.5, False, rng)
    data = ResponseData(y, pw, float(np.sum(fam.loglik_const(y, pw))))
    K = fam.kernel(data)
    K.loglik(eta)
    other = eta + 0.5
    np.testing.assert_allclose(K.working(other)[0], np.exp(other), rtol=1e-14)
    np.testing.assert_allclose(K.working(eta)[0], np.exp(eta), rtol=1e-14)


def test_logit_kernel_beyond_the_exponential_range():
    """Linear predictors at +-800 (exp overflows): the stable softplus, finite pieces."""
    fam = get_family("binomial")
    y = np.array([1.0, 0.0, 1.0, 0.0])
    eta = np.array([800.0, -800.0, 3.0, -2.0])
    data = ResponseData(y, np.ones(4), 0.0)
    K = fam.kernel(data)
    expect = 0.0 + 0.0 - np.log1p(np.exp(-3.0)) - np.log1p(np.exp(-2.0))
    assert K.loglik(eta) == pytest.approx(expect, rel=1e-14)
    assert K.loglik(-eta) == pytest.approx(-800.0 - 800.0 - 3 - np.log1p(np.exp(-3.0)) - 2 - np.log1p(np.exp(-2.0)),
                                           rel=1e-14)
    mu, r, W, Wobs = K.working(eta)
    dW = K.dW(eta)
    assert np.all(np.isfinite(dW))
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(W)) and np.all(W > 0)
    np.testing.assert_allclose(mu, [1.0, 0.0, 1 / (1 + np.exp(-3.0)), 1 / (1 + np.exp(2.0))], rtol=1e-14, atol=1e-300)


def test_nb2_kernel_at_the_poisson_limit():
    """theta = 1e13: the kernel's log-likelihood is the Poisson one (the textbook NB2 form loses
    ~0.1 per row there; the kernel sums lgamma(y + theta) - lgamma(theta) - y log theta by
    its series)."""
    rng = np.random.default_rng(5)
    y = rng.poisson(4.0, 300).astype(float)
    eta = rng.normal(1.3, 0.3, 300)
    nb = get_family("negative_binomial").at_dispersion(1e13)
    po = get_family("poisson")
    ones = np.ones(300)
    ll_nb = nb.kernel(ResponseData(y, ones, float(np.sum(nb.loglik_const(y, ones))))).loglik(eta)
    ll_po = float(np.sum(stats.poisson.logpmf(y, np.exp(eta))))
    assert ll_nb == pytest.approx(ll_po, abs=1e-8)


@pytest.mark.parametrize("name,d", [("negative_binomial", 1.7), ("nbinom1", 0.8)])
def test_deviance_residuals_against_scipy(name, d):
    """2 w (log f(y; y) - log f(y; mu)) from scipy's NB densities (NB2's residuals skip the
    lgamma terms that cancel; NB1's keep the generic form)."""
    rng = np.random.default_rng(4)
    y = rng.negative_binomial(2, 0.3, 200).astype(float)
    mu = np.exp(rng.normal(1.0, 0.8, 200))
    pw = rng.integers(1, 3, 200).astype(float)
    fam = get_family(name).at_dispersion(d)
    sat = np.maximum(y, 1e-10)
    if name == "negative_binomial":
        logf = lambda m: stats.nbinom.logpmf(y, d, d / (d + m))  # noqa: E731
    else:
        logf = lambda m: stats.nbinom.logpmf(y, m / d, 1 / (1 + d))  # noqa: E731
    np.testing.assert_allclose(fam.dev_resid(y, mu, pw), 2 * pw * (logf(sat) - logf(mu)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("trials", [1, 4])
def test_binomial_deviance_residuals_against_scipy(trials):
    """0/1 responses and proportions out of several trials: 2 (log f(k; y) - log f(k; mu))."""
    rng = np.random.default_rng(6)
    pw = np.full(300, float(trials))
    mu = 1 / (1 + np.exp(-rng.normal(0, 1.5, 300)))
    k = rng.binomial(trials, mu).astype(float)
    y = k / pw
    fam = get_family("binomial")
    expect = 2 * (stats.binom.logpmf(k, pw, y) - stats.binom.logpmf(k, pw, mu))
    np.testing.assert_allclose(fam.dev_resid(y, mu, pw), expect, rtol=1e-9, atol=1e-10)


def test_nb2_dispersion_pieces_at_a_huge_mean():
    """Linear predictors of 300-600 (an optimizer's excursion): NB2's dispersion pieces in the
    log-dispersion, r_psi = w d mu (y - mu)/s^2 and W_psi = w d mu (mu (2d + y) - y d)/s^3
    (s = mu + d), against the same written with factors that stay in range, d (mu/s)((y - mu)/s)
    and d (mu/s)^2 (2d + y - y d/mu)/s: -> -d and 0, not an underflow to 0 or a NaN."""
    d = 2.0
    y = np.array([3.0, 0.0, 7.0, 1.0])
    eta = np.array([300.0, 360.0, 400.0, 600.0])
    K = get_family("negative_binomial").at_dispersion(d).kernel(ResponseData(y, np.ones(4), 0.0))
    K.loglik(eta)
    _lp, rp, Wp = K.extra_pieces(eta)
    mu = np.exp(eta)
    s = mu + d
    np.testing.assert_allclose(rp[:, 0], d * (mu / s) * ((y - mu) / s), rtol=1e-12)
    np.testing.assert_allclose(rp[:, 0], -d, rtol=1e-12)
    np.testing.assert_allclose(Wp[:, 0], d * (mu / s) ** 2 * (2 * d + y - y * d / mu) / s, rtol=1e-12, atol=0)
