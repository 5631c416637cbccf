r"""Families with a dispersion parameter estimated jointly with theta and beta (glmmTMB's scale).

=========  =====================================  ===================  ==================
family     variance                               dispersion ``d``     glmmTMB
=========  =====================================  ===================  ==================
NB2        :math:`\mu + \mu^2/\theta`              :math:`\theta`        ``nbinom2`` sigma
NB1        :math:`\mu(1 + \alpha)`                 :math:`\alpha`        ``nbinom1`` sigma
Gamma      :math:`\sigma^2\mu^2`                   :math:`\sigma = 1/\sqrt{\nu}` ``Gamma`` sigma
beta       :math:`\mu(1-\mu)/(1+\phi)`             :math:`\phi`          ``beta_family`` sigma
=========  =====================================  ===================  ==================

The optimizer works on :math:`\psi = \log d`. Each family gives its log-density
:math:`\ell(y; \mu, d)` with every constant and its derivatives in :math:`\mu` (to third order)
and in :math:`\psi`; :class:`DispersionFamily` turns them into the per-observation pieces on
the linear-predictor scale by the chain rule (:math:`\mu', \mu'', \mu'''` from the link):

.. math::
   r = w\,\ell_\mu\mu', \qquad
   W_{obs} = -w(\ell_{\mu\mu}\mu'^2 + \ell_\mu\mu''), \qquad
   \partial W_{obs}/\partial\eta = -w(\ell_{\mu\mu\mu}\mu'^3 + 3\ell_{\mu\mu}\mu'\mu'' + \ell_\mu\mu''').

The Laplace log-determinant of these families uses the observed information
:math:`I + \tilde Z' W_{obs}\tilde Z` (the exact Hessian of the joint log-density in u, as
TMB and so glmmTMB do); lme4's families keep lme4's Fisher weights.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from ..errors import DataError
from .base import Family
from .classic import Poisson
from .kernel import Clusters, ExpLinearClusters, MemoKernel, ResponseData
from .links import EPS, ETA_MAX, LOG_EPS, Log

__all__ = ["DispersionFamily", "NegativeBinomial2", "NegativeBinomial1", "GammaFamily", "BetaFamily"]

_psi0 = special.digamma
_SHIFT = 7.0  # the asymptotic series below are accurate to ~1e-12 relative from here on


LIMIT_THETA = 1e8  # NB2 theta (1/alpha for NB1) beyond which the fit is at its Poisson limit
_LARGE = 1e3  # d above _LARGE (y + 1)^2: the series below, whose error is O(y^5 / d^4) (below 1e-13)


def _lgamma_ratio(y, d):
    """lgamma(y + d) - lgamma(d) - y log d, accurate for every d (a series when d >> y^2)."""
    y, d = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(d, dtype=float))
    big = d > _LARGE * (y + 1) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = special.gammaln(y + d) - special.gammaln(d) - special.xlogy(y, d)
        s1, s2 = y * (y - 1) / 2, y * (y - 1) * (2 * y - 1) / 6  # sum k, sum k^2, sum k^3 for k < y
        series = s1 / d - s2 / (2 * d**2) + s1**2 / (3 * d**3)
    return np.where(big, series, direct)


def _digamma_ratio(y, d):
    """psi(y + d) - psi(d) (= sum over k < y of 1/(d + k)), accurate for every d."""
    y, d = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(d, dtype=float))
    big = d > _LARGE * (y + 1) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = _psi0(y + d) - _psi0(d)
        series = y / d - (y * (y - 1) / 2) / d**2 + (y * (y - 1) * (2 * y - 1) / 6) / d**3
    return np.where(big, series, direct)


def _tri_tetra(x):
    """Trigamma and tetragamma (psi', psi'') of an array: the recurrence
    psi^(m)(x) = psi^(m)(x + 1) + (-1)^(m+1) m! / x^(m+1) lifts every argument to at least 7,
    then the asymptotic (Bernoulli) series. Vectorized; several times faster than scipy's
    polygamma (which goes through zeta); relative error below 1e-11 (tested)."""
    z = np.array(x, dtype=float, copy=True).ravel()
    t1 = np.zeros_like(z)
    t2 = np.zeros_like(z)
    idx = np.flatnonzero(z < _SHIFT)
    while idx.size:
        zi = z[idx]
        inv = 1.0 / zi
        inv2 = inv * inv
        t1[idx] += inv2
        t2[idx] -= 2.0 * inv2 * inv
        z[idx] = zi + 1.0
        idx = idx[zi + 1.0 < _SHIFT]
    w = 1.0 / (z * z)
    psi1 = 1.0 / z + w / 2 + w / z * (1 / 6 + w * (-1 / 30 + w * (1 / 42 + w * (-1 / 30 + w * 5 / 66))))
    psi2 = -w - w / z - w * w * (0.5 + w * (-1 / 6 + w * (1 / 6 + w * (-3 / 10 + w * 5 / 6))))
    shape = np.shape(x)
    return (t1 + psi1).reshape(shape), (t2 + psi2).reshape(shape)




class DispersionFamily(Family):
    """A family with one dispersion parameter ``d`` (``self.dispersion``; None before a fit).

    Subclasses define ``dispersion_name``, ``dispersion_meaning`` and, in terms of the mean
    ``mu`` and ``d``: :meth:`logpdf_kernel` (the log-density minus :meth:`loglik_const`),
    :meth:`dmu` (its first three mu-derivatives), :meth:`dpsi` (its psi-derivative and the
    psi-derivatives of the first two mu-derivatives), :meth:`variance_at`, :meth:`draw` and
    :meth:`start_dispersion`.
    """

    n_dispersion = 1
    observed_laplace = True
    dispersion_name = "d"
    dispersion_meaning = ""
    # a dispformula's linear predictor is disp_power * log(d), as glmmTMB's (log sigma^2 for the
    # gaussian, log shape = -2 log sigma for Gamma, log d for the others)
    disp_power = 1.0

    def __init__(self, link=None, dispersion: float | None = None):
        super().__init__(link)
        self.dispersion = dispersion

    def at_dispersion(self, d: float) -> "DispersionFamily":
        """A copy with the dispersion parameter set (natural scale)."""
        out = copy.copy(self)
        out.dispersion = float(d)
        return out

    def __repr__(self) -> str:
        d = "" if self.dispersion is None else f", {self.dispersion_name}={self.dispersion:.4g}"
        return f"Family({self.name!r}, link={self.link.name!r}{d})"

    def _d(self) -> float:
        if self.dispersion is None:
            raise DataError(f"the {self.name} family needs its {self.dispersion_name} (a fitted model sets it)")
        return self.dispersion

    # -- distribution pieces (subclasses) ------------------------------------------------------
    def logpdf_kernel(self, y, mu, d):  # pragma: no cover - abstract
        raise NotImplementedError

    def dmu(self, y, mu, d):  # pragma: no cover - abstract
        """(l_mu, l_mumu, l_mumumu)."""
        raise NotImplementedError

    def dpsi(self, y, mu, d):  # pragma: no cover - abstract
        """(l_psi, l_mu_psi, l_mumu_psi) with psi = log d."""
        raise NotImplementedError

    def variance_at(self, mu, d):  # pragma: no cover - abstract
        raise NotImplementedError

    def start_dispersion(self, y, mu, pw) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the Family interface ----------------------------------------------------------------
    def loglik_const(self, y, pw):
        return np.zeros_like(np.asarray(y, dtype=float))

    def loglik_kernel(self, y, eta, pw):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return pw * self.logpdf_kernel(y, self.link.inverse(eta), self._d())

    def loglik_obs(self, y, mu, pw):
        return self.loglik_const(y, pw) + pw * self.logpdf_kernel(y, mu, self._d())

    def variance(self, mu):
        return np.maximum(self.variance_at(mu, self._d()), EPS)

    def dvariance(self, mu):
        h = 1e-6 * np.maximum(np.abs(mu), 1e-3)
        return (self.variance_at(mu + h, self._d()) - self.variance_at(mu - h, self._d())) / (2 * h)

    def dev_resid(self, y, mu, pw):
        """2 w (l(y; y) - l(y; mu)): the unit deviance at the fitted dispersion."""
        d = self._d()
        sat = self.saturated_mean(y)
        return 2 * pw * (self.logpdf_kernel(y, sat, d) - self.logpdf_kernel(y, mu, d))

    def saturated_mean(self, y):
        return np.maximum(np.asarray(y, dtype=float), 1e-10)

    def _link_derivs(self, eta):
        L = self.link
        return L.inverse(eta), L.mu_eta(eta), L.mu_eta2(eta), L.mu_eta3(eta)

    def working(self, eta, y, pw):
        """``mu, r, W, Wobs, dW`` with W = W_obs (the Laplace weights of these families)."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # extreme trial points
            mu, m1, m2, m3 = self._link_derivs(eta)
            l1, l2, l3 = self.dmu(y, mu, self._d())
        r = pw * l1 * m1
        Wobs = -pw * (l2 * m1 * m1 + l1 * m2)
        dW = -pw * (l3 * m1**3 + 3 * l2 * m1 * m2 + l1 * m3)
        return mu, r, Wobs, Wobs, dW

    def fisher_weight(self, eta, pw):
        mu = self.link.inverse(eta)
        me = self.link.mu_eta(eta)
        return pw * me * me / self.variance(mu)

    def dispersion_pieces(self, eta, y, pw):
        """(dl/dpsi, dr/dpsi, dW_obs/dpsi) per observation."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mu, m1, m2, _m3 = self._link_derivs(eta)
            lp, l1p, l2p = self.dpsi(y, mu, self._d())
        return pw * lp, pw * l1p * m1, -pw * (l2p * m1 * m1 + l1p * m2)

    def n_extra(self, spec) -> int:
        return 1

    def extra_names(self, spec) -> list[str]:
        return [f"log({self.dispersion_name})"]

    def at_extra(self, x, spec) -> "DispersionFamily":
        return self.at_dispersion(self.to_dispersion(float(np.asarray(x)[0])))

    def extra_start(self, y, mu, pw, spec) -> np.ndarray:
        return np.array([self.from_dispersion(self.start_dispersion(y, mu, pw))])

    def extra_pieces(self, eta, y, pw):
        return tuple(a[..., None] for a in self.dispersion_pieces(eta, y, pw))

    def to_dispersion(self, psi: float, k: int = 0) -> float:
        """Family parameter ``k`` on its natural scale from the optimizer's (here: exp)."""
        return float(np.exp(psi))

    def from_dispersion(self, d: float, k: int = 0) -> float:
        """Family parameter ``k`` on the optimizer's scale (here: log)."""
        return float(np.log(d))


class NegativeBinomial2(DispersionFamily):
    name = "negative_binomial"
    links = ("log",)
    canonical_link = None
    discrete = True
    count_like = True
    mean_word = "rate"
    dispersion_name = "theta"
    dispersion_meaning = "NB2 size: Var = mu + mu^2/theta (smaller theta, more overdispersion)"
    limit_family = Poisson  # theta -> infinity
    limit_text = "theta -> infinity"

    def dispersion_at_limit(self, psi: float) -> bool:
        # theta above 1e8: mu^2/theta adds under 1e-8 mu to the variance for mu up to 1: Poisson
        return self.to_dispersion(psi) > LIMIT_THETA

    def loglik_const(self, y, pw):
        return -pw * special.gammaln(np.asarray(y, dtype=float) + 1)

    def logpdf_kernel(self, y, mu, d):
        # written as [lgamma(y + d) - lgamma(d) - y log d] - (y + d) log(1 + mu/d) + y log mu: no term
        # grows with d, so the Poisson limit (theta -> infinity) keeps full precision (the textbook form
        # cancels terms of size d log d and loses ~0.1 per observation at theta = 1e13)
        return _lgamma_ratio(y, d) - (y + d) * np.log1p(mu / d) + special.xlogy(y, mu)

    def dmu(self, y, mu, d):
        s = mu + d
        return y / mu - (y + d) / s, -y / mu**2 + (y + d) / s**2, 2 * y / mu**3 - 2 * (y + d) / s**3

    def dpsi(self, y, mu, d):
        s = mu + d
        # dl/dd = psi(y + d) - psi(d) - log(1 + mu/d) + (mu - y)/(mu + d): the textbook form's log d - log(mu + d)
        # and 1 - (y + d)/(mu + d) rewritten so that nothing cancels at large d
        l_d = _digamma_ratio(y, d) - np.log1p(mu / d) + (mu - y) / s
        return d * l_d, d * (y - mu) / s**2, d * (mu - d - 2 * y) / s**3

    def variance_at(self, mu, d):
        return mu + mu * mu / d

    def dev_resid(self, y, mu, pw):
        """2 w (l(y; y) - l(y; mu)), in which lgamma(y + theta) - lgamma(theta) cancels."""
        d = self._d()
        y = np.asarray(y, dtype=float)
        sat = self.saturated_mean(y)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2 * pw * (special.xlogy(y, sat) - special.xlogy(y, mu)
                             - (y + d) * (np.log1p(sat / d) - np.log1p(mu / d)))

    def kernel(self, data: ResponseData):
        if type(self) is NegativeBinomial2 and isinstance(self.link, Log):
            return NB2LogKernel(self, data)
        return super().kernel(data)

    def start_mu(self, y, pw):
        return np.asarray(y, dtype=float) + 0.1

    def start_dispersion(self, y, mu, pw):
        excess = np.sum(pw * ((y - mu) ** 2 - mu))
        return float(np.clip(np.sum(pw * mu**2) / excess, 0.05, 1e3)) if excess > 0 else 1e3

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        bad = (y < 0) | (y != np.round(y))
        if np.any(bad):
            raise DataError(
                f"response '{name}' must hold non-negative whole counts for the {self.name} family; "
                f"{int(bad.sum())} row(s) do not (e.g. {y[bad][0]:g})"
            )

    def draw(self, rng, mu, d, size):
        mu = np.broadcast_to(mu, size)
        return rng.negative_binomial(d, d / (d + mu)).astype(float)

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size)

    def latent_variance(self, eta_mean, re_var, sigma):
        # lognormal approximation (Nakagawa, Johnson & Schielzeth 2017, Table 2): ln(1 + 1/lambda + 1/theta)
        lam = np.exp(eta_mean + re_var / 2)
        return float(np.log1p(1 / lam + 1 / self._d()))

    def statsmodels_family(self):
        import statsmodels.api as sm

        # statsmodels holds alpha = 1/theta fixed (GEE does not estimate it): the GLMM's, or 1
        alpha = 1.0 / self.dispersion if self.dispersion is not None else 1.0
        return sm.families.NegativeBinomial(link=self._sm_link(), alpha=alpha)


class NegativeBinomial1(NegativeBinomial2):
    name = "nbinom1"
    dispersion_name = "alpha"

    def dispersion_at_limit(self, psi: float) -> bool:
        return self.to_dispersion(psi) < 1 / LIMIT_THETA  # alpha -> 0: Poisson
    dispersion_meaning = "NB1: Var = mu (1 + alpha) (alpha = 0 is Poisson)"
    limit_family = Poisson  # alpha -> 0
    limit_text = "alpha -> 0"

    dev_resid = DispersionFamily.dev_resid  # NB2's shortcut is of NB2's density

    def logpdf_kernel(self, y, mu, d):
        k = mu / d
        return (special.gammaln(y + k) - special.gammaln(k) - k * np.log1p(d) + special.xlogy(y, d)
                - y * np.log1p(d))

    def dmu(self, y, mu, d):
        a = 1.0 / d
        k = a * mu
        G = _psi0(y + k) - _psi0(k) - np.log1p(d)
        (t1y, t2y), (t1k, t2k) = _tri_tetra(y + k), _tri_tetra(k)
        return a * G, a * a * (t1y - t1k), a**3 * (t2y - t2k)

    def dpsi(self, y, mu, d):
        a = 1.0 / d
        k = a * mu
        D0 = _psi0(y + k) - _psi0(k)
        G = D0 - np.log1p(d)
        (t1y, t2y), (t1k, t2k) = _tri_tetra(y + k), _tri_tetra(k)
        T = t1y - t1k
        frac = d / (1 + d)
        lp = -k * D0 + k * np.log1p(d) - k * frac + y / (1 + d)
        l1p = -a * G + a * (-k * T - frac)
        l2p = -2 * a * a * T + a * a * (-k * (t2y - t2k))
        return lp, l1p, l2p

    def variance_at(self, mu, d):
        return mu * (1 + d)

    def start_dispersion(self, y, mu, pw):
        return float(np.clip(np.sum(pw * (y - mu) ** 2 / mu) / np.sum(pw) - 1, 0.05, 1e3))

    def draw(self, rng, mu, d, size):
        mu = np.broadcast_to(mu, size)
        return rng.negative_binomial(mu / d, 1 / (1 + d)).astype(float)

    def latent_variance(self, eta_mean, re_var, sigma):
        lam = np.exp(eta_mean + re_var / 2)
        return float(np.log1p((1 + self._d()) / lam))

    def statsmodels_family(self):
        from ..errors import ModelError

        raise ModelError("GEE has no NB1 variance function; use family='negative_binomial' (NB2) for the GEE")


class GammaFamily(DispersionFamily):
    name = "gamma"
    links = ("log", "inverse", "identity")
    canonical_link = None
    mean_word = "mean"
    dispersion_name = "sigma"

    disp_power = -2.0  # glmmTMB's dispersion model is of log(shape) = -2 log(sigma)

    @property
    def ratio_name(self):
        return "ratio of means" if self.link.name == "log" else None
    dispersion_meaning = "coefficient of variation: sigma = 1/sqrt(shape), SD = sigma * mu"

    def loglik_const(self, y, pw):
        return -pw * np.log(np.asarray(y, dtype=float))

    def logpdf_kernel(self, y, mu, d):
        nu = d ** -2.0
        return -special.gammaln(nu) + nu * np.log(nu * y / mu) - nu * y / mu

    def dmu(self, y, mu, d):
        nu = d ** -2.0
        return nu * (y - mu) / mu**2, nu / mu**2 - 2 * nu * y / mu**3, -2 * nu / mu**3 + 6 * nu * y / mu**4

    def dpsi(self, y, mu, d):
        nu = d ** -2.0
        l_nu = np.log(nu) + 1 - np.log(mu) + np.log(y) - y / mu - _psi0(nu)
        l1, l2, _ = self.dmu(y, mu, d)
        return -2 * nu * l_nu, -2 * l1, -2 * l2

    def variance_at(self, mu, d):
        return d * d * mu * mu

    def kernel(self, data: ResponseData):
        if type(self) is GammaFamily and isinstance(self.link, Log):
            return GammaLogKernel(self, data)
        return super().kernel(data)

    def start_mu(self, y, pw):
        return np.asarray(y, dtype=float)

    def start_dispersion(self, y, mu, pw):
        return float(np.sqrt(max(np.sum(pw * ((y - mu) / mu) ** 2) / np.sum(pw), 1e-4)))

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        bad = y <= 0
        if np.any(bad):
            raise DataError(
                f"response '{name}' must be positive for the gamma family; {int(bad.sum())} row(s) are "
                f"zero or negative (e.g. {y[bad][0]:g})"
            )

    def draw(self, rng, mu, d, size):
        nu = d ** -2.0
        return rng.gamma(nu, np.broadcast_to(mu, size) / nu)

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size)

    def latent_variance(self, eta_mean, re_var, sigma):
        # log link, lognormal approximation (Nakagawa et al. 2017): ln(1 + 1/shape) = ln(1 + sigma^2)
        return float(np.log1p(self._d() ** 2))

    def statsmodels_family(self):
        import statsmodels.api as sm

        return sm.families.Gamma(link=self._sm_link())


class BetaFamily(DispersionFamily):
    name = "beta"
    links = ("logit", "probit", "cloglog")
    canonical_link = None
    mean_word = "proportion"
    dispersion_name = "phi"
    dispersion_meaning = "precision: Var = mu (1 - mu) / (1 + phi) (larger phi, less spread)"

    def loglik_const(self, y, pw):
        y = np.asarray(y, dtype=float)
        return -pw * (np.log(y) + np.log1p(-y))

    def logpdf_kernel(self, y, mu, d):
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        return (special.gammaln(d) - special.gammaln(mu * d) - special.gammaln((1 - mu) * d)
                + mu * d * np.log(y) + (1 - mu) * d * np.log1p(-y))

    def dmu(self, y, mu, d):
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        a, b = mu * d, (1 - mu) * d
        ystar = np.log(y) - np.log1p(-y)
        (t1a, t2a), (t1b, t2b) = _tri_tetra(a), _tri_tetra(b)
        return d * (ystar - _psi0(a) + _psi0(b)), -d * d * (t1a + t1b), -d**3 * (t2a - t2b)

    def dpsi(self, y, mu, d):
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        a, b = mu * d, (1 - mu) * d
        ystar = np.log(y) - np.log1p(-y)
        l_d = _psi0(d) - mu * _psi0(a) - (1 - mu) * _psi0(b) + mu * np.log(y) + (1 - mu) * np.log1p(-y)
        (t1a, t2a), (t1b, t2b) = _tri_tetra(a), _tri_tetra(b)
        l1_d = ystar - _psi0(a) + _psi0(b) + d * (-mu * t1a + (1 - mu) * t1b)
        l2_d = -2 * d * (t1a + t1b) - d * d * (mu * t2a + (1 - mu) * t2b)
        return d * l_d, d * l1_d, d * l2_d

    def variance_at(self, mu, d):
        return mu * (1 - mu) / (1 + d)

    def saturated_mean(self, y):
        return np.clip(np.asarray(y, dtype=float), 1e-10, 1 - 1e-10)

    def start_mu(self, y, pw):
        return np.asarray(y, dtype=float)

    def start_dispersion(self, y, mu, pw):
        v = np.sum(pw * (y - mu) ** 2) / np.sum(pw)
        return float(np.clip(np.mean(mu * (1 - mu)) / max(v, 1e-8) - 1, 0.5, 1e4))

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        bad = (y <= 0) | (y >= 1)
        if np.any(bad):
            raise DataError(
                f"response '{name}' must lie strictly between 0 and 1 for the beta family; "
                f"{int(bad.sum())} row(s) do not (e.g. {y[bad][0]:g}). If 0s and 1s are real, the usual "
                "squeeze is (y * (n - 1) + 0.5) / n with n the number of rows (Smithson & Verkuilen "
                "2006); glmm_nb does not apply it for you"
            )

    def draw(self, rng, mu, d, size):
        mu = np.clip(np.broadcast_to(mu, size), 1e-12, 1 - 1e-12)
        return rng.beta(mu * d, (1 - mu) * d)

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size)

    def latent_variance(self, eta_mean, re_var, sigma):
        # observation-level variance on the logit scale by the delta method: Var(y) / (mu(1-mu))^2
        mu = float(self.link.inverse(np.asarray(eta_mean)))
        return float(1.0 / (mu * (1 - mu) * (1 + self._d())))

    def statsmodels_family(self):
        from ..errors import ModelError

        raise ModelError("GEE for beta responses is not available (statsmodels has no beta family)")


def _log_mean(eta):
    """log mu of the log link (:class:`~.links.Log` clips mu to [EPS, exp(ETA_MAX)])."""
    return np.clip(eta, LOG_EPS, ETA_MAX)


class NB2LogKernel(MemoKernel):
    r"""NB2 with the log link at one theta (d). The log-density is
    :math:`[\log\Gamma(y + d) - \log\Gamma(d) - y\log d] + y\log\mu - (y + d)\log(1 + \mu/d)`;
    the bracket is summed once per d over the distinct counts (:func:`_lgamma_ratio`, stable
    at large d), the rest per linear predictor with :math:`\log\mu = \eta`. With
    :math:`s = \mu + d` the working pieces are closed forms of the chain rule of
    :meth:`DispersionFamily.working` (every derivative of the inverse link is :math:`\mu`):
    :math:`r = w d(y - \mu)/s`, :math:`W = w(y + d)d\mu/s^2`,
    :math:`\partial W/\partial\eta = W(d - \mu)/s`.

    A log-likelihood keeps :math:`\mu` and :math:`\log(1 + \mu/d)` for the working pieces and
    the dispersion's pieces at the same linear predictor, and the working pieces keep
    :math:`1/s`: the gradient's pass over the rows then needs no exponential or logarithm."""

    concave = True  # d2l/deta2 = -W = -w (y + d) d mu / s^2 <= 0
    ETA_LOW, ETA_HIGH = LOG_EPS, ETA_MAX  # outside, log mu is clipped (_log_mean): flat in eta

    def __init__(self, family: NegativeBinomial2, data: ResponseData):
        super().__init__(family, data)
        d = self.d = family._d()
        self.const = data.const + data.level_sum(lambda v: _lgamma_ratio(v, d))
        self.yd = data.weighted(data.y + d)
        self.py = data.memo("pw*y", lambda: data.weighted(data.y))

    def _pieces(self, eta):
        """(mu, log(1 + mu/d), log mu) at eta, kept from a loglik call at the same array."""
        hit = self.recall(eta)
        if hit is not None:
            return hit
        with np.errstate(over="ignore", invalid="ignore"):
            lm = _log_mean(eta)
            mu = np.exp(lm)
            t = mu / self.d
            np.log1p(t, out=t)
        return mu, t, lm

    def loglik(self, eta: np.ndarray) -> float:
        mu, t, lm = hit = self._pieces(eta)
        self.remember(eta, hit)
        return float(self.py @ lm) - float(self.yd @ t) + self.const

    def _mu(self, eta):
        return self._pieces(eta)[0]

    def working(self, eta: np.ndarray):
        mu, d, data = self._mu(eta), self.d, self.data
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            inv = mu + d
            np.divide(1.0, inv, out=inv)
            t = inv * d
            r = data.y - mu
            r *= t
            r = data.weighted(r)
            t *= inv
            t *= mu
            W = t
            W *= self.yd
        self.last_working = (eta, mu, W, inv)
        return mu, r, W, W

    def dW_from(self, mu, W, inv):
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.d - mu
            out *= inv
            out *= W
            return out

    def extra_pieces(self, eta: np.ndarray):
        # d/dpsi (psi = log d) of the log-density, of r and of W: with s = mu + d,
        # l_psi = d [psi(y + d) - psi(d) - log(1 + mu/d) + (mu - y)/s] (the digamma ratio once per d
        # over the distinct counts), r_psi = w d mu (y - mu)/s^2, W_psi = w d mu (mu(2d + y) - y d)/s^3
        mu, lt, _lm = self._pieces(eta)
        d, data = self.d, self.data
        y = data.y
        last = self.last_working
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if last is not None and last[0] is eta:
                inv = last[3]
            else:
                inv = 1.0 / (mu + d)
            ymu = y - mu
            a = ymu * inv
            l_d = data.level_sum(lambda v: _digamma_ratio(v, d)) - data.wsum(a) - data.wsum(lt)
            dmi = inv * d
            dmi *= mu
            dmi *= inv  # d mu / s^2, grouped as (d/s)(mu/s): no underflow at a large mu
            rp = ymu
            rp *= dmi
            rp = data.weighted(rp)
            Wp = (2 * d) + y
            Wp *= mu
            Wp -= y * d
            Wp *= dmi
            Wp *= inv
            Wp = data.weighted(Wp)
        return np.array([d * l_d]), rp[:, None], Wp[:, None]


class GammaLogKernel(MemoKernel):
    r"""Gamma with the log link at one sigma (shape :math:`\nu = \sigma^{-2}`). The log-density
    is :math:`-\log\Gamma(\nu) + \nu\log\nu + \nu\log y - \nu\log\mu - \nu y/\mu` (besides
    :meth:`GammaFamily.loglik_const`'s :math:`-\log y`); the terms free of mu are summed once per
    nu, the rest per linear predictor with :math:`q = y e^{-\eta}`:
    :math:`r = w\nu(q - 1)`, :math:`W = w\nu q`, :math:`\partial W/\partial\eta = -W`."""

    concave = True  # d2l/deta2 = -w nu y / mu <= 0
    ETA_LOW, ETA_HIGH = LOG_EPS, ETA_MAX  # outside, log mu is clipped (_log_mean): flat in eta

    def __init__(self, family: GammaFamily, data: ResponseData):
        super().__init__(family, data)
        nu = self.nu = family._d() ** -2.0
        self.sw = data.memo("sum(pw)", lambda: float(np.sum(data.pw)))
        self.slogy = data.memo("sum(pw*log(y))", lambda: data.wsum(np.log(data.y)))
        self.const = data.const + self.sw * (nu * np.log(nu) - special.gammaln(nu)) + nu * self.slogy

    def _lq(self, eta):
        """(log mu, mu, y/mu) at eta (kept from loglik at the same array)."""
        hit = self.recall(eta)
        if hit is not None:
            return hit
        lm = _log_mean(eta)
        mu = np.exp(lm)
        return lm, mu, self.data.y / mu

    def loglik(self, eta: np.ndarray) -> float:
        lm, mu, q = hit = self._lq(eta)
        self.remember(eta, hit)
        return -self.nu * (self.data.wsum(lm) + self.data.wsum(q)) + self.const

    def working(self, eta: np.ndarray):
        _lm, mu, q = self._lq(eta)
        W = self.data.weighted(self.nu * q)
        r = W - (self.nu if self.data.unit_weights else self.nu * self.data.pw)  # w nu (y/mu - 1)
        self.last_working = (eta, W)
        return mu, r, W, W

    def dW_from(self, W):
        return -W

    def cluster_form(self, eta_f: np.ndarray, clusters: Clusters) -> ExpLinearClusters | None:
        r"""With :math:`\eta_i = \eta_{f,i} + a_j`, the log-likelihood is
        :math:`c - \nu\sum_i w_i\eta_{f,i} - \nu\sum_j(n_j a_j + e^{-a_j} S_j)`,
        :math:`S_j = \sum_{i\in j} w_i y_i e^{-\eta_{f,i}}`: linear plus one exponential in each
        :math:`a_j` (k = -1), exact while no row's mean is clipped; None where :math:`\eta_f` is
        already outside that range."""
        lo, hi = float(np.min(eta_f)), float(np.max(eta_f))
        if not (lo >= LOG_EPS and hi <= ETA_MAX):
            return None
        nu, data = self.nu, self.data
        q = np.negative(eta_f)
        np.exp(q, out=q)
        q *= data.y
        if not data.unit_weights:
            q *= data.pw  # w y e^{-eta_f}
        w_eta_f = data.wsum(eta_f)
        return ExpLinearClusters(clusters, eta_f, self.const - nu * w_eta_f, -1.0, -nu * clusters.weights,
                                 q, nu, data.pw, -nu, (lo, hi), LOG_EPS, ETA_MAX, w_eta_f=w_eta_f)

    def cluster_extra_pieces(self, form: ExpLinearClusters, a: np.ndarray):
        r""":meth:`extra_pieces` at shifts ``a`` of ``form`` (this kernel's), summed per cluster:
        (dl/dpsi (1,), the sums of dr/dpsi = -2r and of dW/dpsi = -2W per cluster (J, 1)), with
        :math:`\sum w\eta = \sum w\eta_f + n'a` and :math:`\sum wy/\mu = \sum_j I_j/\nu`."""
        nu = self.nu
        score, info = form.score_information(a)
        w_eta = form.w_eta_f + float(form.clusters.weights @ a)
        lp = -2 * nu * (self.sw * (np.log(nu) + 1 - _psi0(nu)) + self.slogy - w_eta - float(np.sum(info)) / nu)
        return np.array([lp]), -2.0 * score[:, None], -2.0 * info[:, None]

    def extra_pieces(self, eta: np.ndarray):
        lm, _mu, q = self._lq(eta)
        nu, data = self.nu, self.data
        lp = -2 * nu * (self.sw * (np.log(nu) + 1 - _psi0(nu)) + self.slogy - data.wsum(lm) - data.wsum(q))
        W = data.weighted(nu * q)
        r = data.weighted(nu * (q - 1.0))
        return np.array([lp]), -2 * r[:, None], -2 * W[:, None]
