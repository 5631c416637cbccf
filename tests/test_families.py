"""Links and families: derivatives against finite differences, log-densities against scipy."""

import numpy as np
import pytest
from scipy import stats

from glmm_nb import ModelError, get_family


@pytest.mark.parametrize("fam, link", [("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"), ("poisson", "log")])
def test_working_quantities_are_derivatives(fam, link):
    f = get_family(fam, link)
    eta = np.linspace(-2, 2, 9)
    y = (np.arange(9) % 2).astype(float) if fam == "binomial" else np.arange(9.0)
    pw = np.full(9, 3.0) if fam == "binomial" else np.ones(9)
    h = 1e-6
    ll = lambda e: f.loglik_obs(y, f.link.inverse(e), pw)  # noqa: E731
    _mu, r, W, Wobs, dW = f.working(eta, y, pw)
    np.testing.assert_allclose(r, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-8)
    rp = f.working(eta + h, y, pw)
    rm = f.working(eta - h, y, pw)
    np.testing.assert_allclose(Wobs, -(rp[1] - rm[1]) / (2 * h), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dW, (rp[2] - rm[2]) / (2 * h), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(f.link.link(f.link.inverse(eta)), eta, rtol=1e-10)


def test_log_densities_against_scipy():
    b = get_family("binomial")
    y, n, mu = np.array([0.25, 1.0, 0.0]), np.array([4.0, 2.0, 5.0]), np.array([0.3, 0.6, 0.2])
    np.testing.assert_allclose(b.loglik_obs(y, mu, n), stats.binom.logpmf(y * n, n, mu))
    eta = b.link.link(mu)
    np.testing.assert_allclose(b.loglik_const(y, n) + b.loglik_kernel(y, eta, n), stats.binom.logpmf(y * n, n, mu))
    p = get_family("poisson")
    yc, lam = np.array([0.0, 3.0, 7.0]), np.array([0.5, 2.0, 9.0])
    np.testing.assert_allclose(p.loglik_obs(yc, lam, np.ones(3)), stats.poisson.logpmf(yc, lam))


def test_bad_family_and_link():
    with pytest.raises(ModelError, match="unknown family 'tweedy'"):
        get_family("tweedy")
    with pytest.raises(ModelError, match="link 'probit' is not available for the poisson"):
        get_family("poisson", "probit")
