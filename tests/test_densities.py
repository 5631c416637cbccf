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


def test_nbinom2_density_keeps_precision_at_its_poisson_limit():
    """The NB2 log-density for theta up to 4e13 against 60-digit mpmath values (lgamma(y + theta) -
    lgamma(theta) + theta log theta + y log mu - (y + theta) log(mu + theta) - lgamma(y + 1)): the
    textbook form lost 0.37 per observation at theta = 3.8e13, enough for a ZINB refit of Poisson
    data to report a log-likelihood 57 units too high."""
    from scipy import special

    from glmm_nb.families.dispersion import NegativeBinomial2

    y = np.array([0, 1, 3, 7, 20, 150.0])
    mu = np.array([0.5, 2, 3.3, 6, 25, 140.0])
    ref = {4e8: [-0.4999999996875, -1.3068528194400546, -1.5099920674482514, -1.9828450839690293,
                 -2.958099957139471, -3.7737425205280486],
           3.8e13: [-0.4999999999999967, -1.3068528194400546, -1.5099920638107895, -1.9828450764691083,
                    -2.958099963389404, -3.773742458028697]}
    f = NegativeBinomial2()
    for d, want in ref.items():
        got = f.logpdf_kernel(y, mu, d) - special.gammaln(y + 1)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)
        # its derivative in log(theta) against a central difference of the density
        h = 1e-4
        num = (f.logpdf_kernel(y, mu, d * np.exp(h)) - f.logpdf_kernel(y, mu, d * np.exp(-h))) / (2 * h)
        np.testing.assert_allclose(f.dpsi(y, mu, d)[0], num, rtol=0, atol=1e-8)
