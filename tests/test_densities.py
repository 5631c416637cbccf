"""The log-density the fit evaluates — ``loglik_const + loglik_kernel``, the split the Laplace and
AGQ deviances use — against scipy, normalising constants included (issue 16: a Poisson fit
missing its log(y!) used to pass the suite)."""

import numpy as np
import pytest
from scipy import stats

from glmm_nb import get_family

Y_COUNT = np.array([0.0, 1, 3, 7, 12, 40])
MU_COUNT = np.array([0.5, 1.3, 2.0, 9.0, 4.0, 35.0])
PW = np.array([1.0, 2.0, 1.0, 0.5, 3.0, 1.0])


def _scipy(name, y, mu, d):
    return {
        "poisson": lambda: stats.poisson.logpmf(y, mu),
        "negative_binomial": lambda: stats.nbinom.logpmf(y, d, d / (d + mu)),
        "nbinom1": lambda: stats.nbinom.logpmf(y, mu / d, 1 / (1 + d)),
        "gamma": lambda: stats.gamma.logpdf(y, d**-2, scale=mu * d**2),
        "beta": lambda: stats.beta.logpdf(y, mu * d, (1 - mu) * d),
    }[name]()


CASES = {
    "poisson": (Y_COUNT, MU_COUNT, None),
    "negative_binomial": (Y_COUNT, MU_COUNT, 1.7),
    "nbinom1": (Y_COUNT, MU_COUNT, 0.8),
    "gamma": (np.array([0.3, 2.0, 5, 1.2, 0.01, 9.0]), np.array([0.5, 2.0, 3, 4, 0.2, 7.0]), 0.6),
    "beta": (np.array([0.1, 0.5, 0.8, 0.33, 0.02, 0.97]), np.array([0.3, 0.6, 0.7, 0.2, 0.1, 0.9]), 7.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fitted_log_density_is_scipys(name):
    y, mu, d = CASES[name]
    for link in get_family(name).links:
        f = get_family(name, link)
        f = f.at_dispersion(d) if d is not None else f
        eta = f.link.link(mu)
        want = PW * _scipy(name, y, mu, d)
        np.testing.assert_allclose(f.loglik_const(y, PW) + f.loglik_kernel(y, eta, PW), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(f.loglik_obs(y, mu, PW), want, rtol=1e-12, atol=1e-12)
        assert np.any(np.abs(f.loglik_const(y, PW)) > 0.5)  # the constant is there and not small


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_fitted_binomial_log_density_is_scipys(link):
    f = get_family("binomial", link)
    n = np.array([1.0, 4.0, 2.0, 5.0, 30.0, 1.0])
    k = np.array([1.0, 1.0, 2.0, 0.0, 17.0, 0.0])
    mu = np.array([0.7, 0.3, 0.6, 0.2, 0.55, 0.01])
    want = stats.binom.logpmf(k, n, mu)
    np.testing.assert_allclose(f.loglik_const(k / n, n) + f.loglik_kernel(k / n, f.link.link(mu), n), want,
                               rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(f.loglik_obs(k / n, mu, n), want, rtol=1e-11, atol=1e-12)
