r"""The beta-binomial family (glmmTMB's ``betabinomial``): overdispersed successes out of trials.

With :math:`n` trials, :math:`k` successes, mean proportion :math:`\mu = g^{-1}(\eta)` and
precision :math:`\phi` (:math:`a = \mu\phi`, :math:`b = (1-\mu)\phi`):

.. math::
   \log f(k) = \log\binom{n}{k} + \log\Gamma(k + a) + \log\Gamma(n - k + b) - \log\Gamma(n + \phi)
   - \log\Gamma(a) - \log\Gamma(b) + \log\Gamma(\phi),

:math:`E[k] = n\mu`, :math:`\mathrm{Var}[k] = n\mu(1-\mu)\,(1 + (n-1)/(\phi+1))` (glmmTMB's φ,
``sigma()``). As :math:`\phi\to\infty` it is the binomial (:attr:`limit_family`). Derivatives
(:math:`D_m(x) = \psi^{(m)}(k + a) - \psi^{(m)}(a)`, :math:`E_m = \psi^{(m)}(n-k+b) - \psi^{(m)}(b)`):
:math:`\ell_\mu = \phi(D_0 - E_0)`, :math:`\ell_{\mu\mu} = \phi^2(D_1 + E_1)`,
:math:`\ell_{\mu\mu\mu} = \phi^3(D_2 - E_2)`, and in :math:`\log\phi`:
:math:`\ell_{\log\phi} = \phi[\mu D_0 + (1-\mu)E_0 - \psi(n+\phi) + \psi(\phi)]`,
:math:`\partial\ell_\mu/\partial\log\phi = \ell_\mu + \phi^2(\mu D_1 - (1-\mu)E_1)`,
:math:`\partial\ell_{\mu\mu}/\partial\log\phi = 2\ell_{\mu\mu} + \phi^3(\mu D_2 + (1-\mu)E_2)`.

The response is read as binomial responses are (``cbind(successes, failures)``, or a
proportion with ``weights=`` the trials), so the prior weight of a row *is* its number of
trials; prior weights on top of ``cbind`` trials are refused (they would change the model).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import DataError, ModelError
from .base import Family
from .classic import Binomial
from .dispersion import DispersionFamily, _tri_tetra
from .links import EPS

__all__ = ["BetaBinomial"]

_psi0 = special.digamma


class BetaBinomial(DispersionFamily):
    name = "betabinomial"
    links = ("logit", "probit", "cloglog")
    canonical_link = None
    reads_cbind = True
    discrete = True
    mean_word = "probability"
    dispersion_name = "phi"
    dispersion_meaning = "precision: Var = n mu (1 - mu) (1 + (n - 1)/(phi + 1)) (larger phi, closer to binomial)"
    limit_family = Binomial  # phi -> infinity

    @property
    def logistic(self) -> bool:
        return self.link.name == "logit"

    # -- counts from (y, pw): y is the proportion, pw the trials ------------------------------
    @staticmethod
    def _nk(y, pw):
        n = np.asarray(pw, dtype=float)
        return n, np.round(np.asarray(y, dtype=float) * n)

    def loglik_const(self, y, pw):
        n, k = self._nk(y, pw)
        return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)

    def _kernel(self, k, n, mu, d):
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        a, b = mu * d, (1 - mu) * d
        return (special.gammaln(k + a) + special.gammaln(n - k + b) - special.gammaln(n + d)
                - special.gammaln(a) - special.gammaln(b) + special.gammaln(d))

    def loglik_kernel(self, y, eta, pw):
        n, k = self._nk(y, pw)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._kernel(k, n, self.link.inverse(eta), self._d())

    def loglik_obs(self, y, mu, pw):
        n, k = self._nk(y, pw)
        return self.loglik_const(y, pw) + self._kernel(k, n, mu, self._d())

    def _polys(self, k, n, mu, d):
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        a, b = mu * d, (1 - mu) * d
        (t1ka, t2ka), (t1a, t2a) = _tri_tetra(k + a), _tri_tetra(a)
        (t1nb, t2nb), (t1b, t2b) = _tri_tetra(n - k + b), _tri_tetra(b)
        D = (_psi0(k + a) - _psi0(a), t1ka - t1a, t2ka - t2a)
        E = (_psi0(n - k + b) - _psi0(b), t1nb - t1b, t2nb - t2b)
        return mu, D, E

    def working(self, eta, y, pw):
        """``mu, r, W, Wobs, dW`` (W = W_obs: the observed information, as glmmTMB)."""
        n, k = self._nk(y, pw)
        d = self._d()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mu, m1, m2, m3 = self._link_derivs(eta)
            _, D, E = self._polys(k, n, mu, d)
        l1, l2, l3 = d * (D[0] - E[0]), d * d * (D[1] + E[1]), d**3 * (D[2] - E[2])
        r = l1 * m1
        Wobs = -(l2 * m1 * m1 + l1 * m2)
        dW = -(l3 * m1**3 + 3 * l2 * m1 * m2 + l1 * m3)
        return mu, r, Wobs, Wobs, dW

    def dispersion_pieces(self, eta, y, pw):
        """(dl/dlog phi, dr/dlog phi, dW_obs/dlog phi) per observation."""
        n, k = self._nk(y, pw)
        d = self._d()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mu0, m1, m2, _m3 = self._link_derivs(eta)
            mu, D, E = self._polys(k, n, mu0, d)
        lp = d * (mu * D[0] + (1 - mu) * E[0] - _psi0(n + d) + _psi0(d))
        l1 = d * (D[0] - E[0])
        l2 = d * d * (D[1] + E[1])
        l1p = l1 + d * d * (mu * D[1] - (1 - mu) * E[1])
        l2p = 2 * l2 + d**3 * (mu * D[2] + (1 - mu) * E[2])
        return lp, l1p * m1, -(l2p * m1 * m1 + l1p * m2)

    def variance_at(self, mu, d):
        """The variance function of the proportion for one trial, mu(1 - mu) (the GLM start's
        IRLS weight); the response's variance with n trials is :meth:`response_variance`."""
        return mu * (1 - mu)

    def response_variance(self, mu, pw):
        """Var(k/n) = mu (1 - mu) (1 + (n - 1)/(phi + 1)) / n with n = ``pw`` trials."""
        n = np.asarray(pw, dtype=float)
        return mu * (1 - mu) * (1 + (n - 1) / (self._d() + 1)) / np.maximum(n, 1.0)

    def dev_resid(self, y, mu, pw):
        """2 (l(k; mu = y) - l(k; mu)) at the fitted phi."""
        n, k = self._nk(y, pw)
        d = self._d()
        sat = np.clip(np.asarray(y, dtype=float), 1e-10, 1 - 1e-10)
        return 2 * (self._kernel(k, n, sat, d) - self._kernel(k, n, mu, d))

    def start_mu(self, y, pw):
        return (pw * np.asarray(y, dtype=float) + 0.5) / (pw + 1.0)

    def start_dispersion(self, y, mu, pw):
        """Moment estimate: the mean ratio of the squared residual to the binomial variance is
        1 + (n - 1)/(phi + 1)."""
        n = np.asarray(pw, dtype=float)
        ok = n > 1
        if not ok.any():
            return 10.0
        ratio = n[ok] * (y[ok] - mu[ok]) ** 2 / np.maximum(mu[ok] * (1 - mu[ok]), EPS)
        rho = (np.mean(ratio) - 1) / max(np.mean(n[ok] - 1), 1e-8)  # intra-class correlation 1/(phi+1)
        return float(np.clip(1 / max(rho, 1e-3) - 1, 0.5, 1e3))

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        bad = (y < 0) | (y > 1)
        if np.any(bad):
            raise DataError(f"response '{name}' must lie in [0, 1] for the betabinomial family "
                            f"(a proportion with weights=trials, or cbind(successes, failures)); found {y[bad][0]:g}")
        if weights_given and np.any(np.asarray(trials) != 1):
            raise DataError(
                f"the betabinomial family reads the trials from '{name}'; prior weights on top of them "
                "are not supported (drop weights=, or give a proportion with weights= the trials)"
            )
        if len(trials) and np.all(np.asarray(trials) <= 1) and not weights_given:
            raise DataError(
                f"response '{name}' has one trial per row: a beta-binomial with one trial is a Bernoulli "
                "and its phi is not identified; use family='binomial', or give cbind(successes, failures)"
            )

    def observed(self, y, pw):
        return Binomial.observed(self, y, pw)

    def draw(self, rng, mu, d, size, trials):
        mu = np.clip(np.broadcast_to(mu, size), 1e-12, 1 - 1e-12)
        n = np.broadcast_to(np.round(np.asarray(trials)).astype(np.int64)[:, None], size)
        return rng.binomial(n, rng.beta(mu * d, (1 - mu) * d)).astype(float)

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size, trials)

    def to_mean_scale(self, sims, trials):
        return Binomial.to_mean_scale(self, sims, trials)

    def latent_variance(self, eta_mean, re_var, sigma):
        """The binomial's link-scale variance (pi^2/3 for logit) plus the beta part's by the delta
        method, 1/(mu(1 - mu)(1 + phi)) — the observation-level variance of the latent scale."""
        base = {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}[self.link.name]
        mu = float(self.link.inverse(np.asarray(eta_mean)))
        me = float(self.link.mu_eta(np.asarray(eta_mean)))
        return float(base + mu * (1 - mu) / ((1 + self._d()) * me * me))

    def statsmodels_family(self):
        raise ModelError("GEE has no beta-binomial family; use family='binomial' for the GEE")
