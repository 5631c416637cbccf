r"""Zero-truncated count families (glmmTMB's ``truncated_poisson``, ``truncated_nbinom2``,
``truncated_nbinom1``): counts that cannot be zero (group sizes, lengths of stay in days).

With :math:`f` the count density of mean :math:`\mu = e^\eta` (the mean *before*
truncation, glmmTMB's conditional mean) and :math:`\ell_0 = \log f(0)`,

.. math:: \log p(y) = \log f(y) - \log(1 - e^{\ell_0}), \qquad y \ge 1,

:math:`E[y] = \mu/(1 - f(0))`, :math:`\mathrm{Var}[y] = (V(\mu) + \mu^2)/(1 - f(0)) - E[y]^2`.
The η-derivatives of the truncation term :math:`t = \log(1 - e^{\ell_0})` are the hurdle
model's (:mod:`.zeroinfl`): with :math:`v = e^{\ell_0}/(1 - e^{\ell_0})`,
:math:`-t' = v\ell_0'`, :math:`-t'' = v(1+v)\ell_0'^2 + v\ell_0''`,
:math:`-t''' = v(1+v)(1+2v)\ell_0'^3 + 3v(1+v)\ell_0'\ell_0'' + v\ell_0'''` (in the code
:math:`\ell_0' = r_0`, :math:`\ell_0'' = -W_0`, :math:`\ell_0''' = -dW_0`). The count part's
dispersion (NB) is the extra parameter, on its own scale.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import DataError, ModelError
from .base import Family
from .classic import Poisson
from .dispersion import NegativeBinomial1, NegativeBinomial2

__all__ = ["Truncated", "TruncatedPoisson", "TruncatedNB2", "TruncatedNB1"]


class Truncated(Family):
    """A zero-truncated version of the count family ``base_class``."""

    base_class: type = Poisson
    observed_laplace = True
    discrete = True
    mean_word = "rate"

    def __init__(self, link=None, dispersion: float | None = None):
        base = self.base_class(link) if dispersion is None else self.base_class(link).at_dispersion(dispersion)
        self.base = base
        self.link = base.link
        self.links = base.links
        self.canonical = False
        self.n_dispersion = base.n_dispersion
        self.dispersion = base.dispersion
        self.dispersion_name = base.dispersion_name
        self.dispersion_meaning = base.dispersion_meaning

    def __repr__(self) -> str:
        return f"Family({self.name!r}, link={self.link.name!r}, base={self.base!r})"

    def _with_base(self, base) -> "Truncated":
        out = copy.copy(self)
        out.base = base
        out.dispersion = base.dispersion
        return out

    # -- extra parameters: the count part's -------------------------------------------------
    def at_dispersion(self, d):
        return self._with_base(self.base.at_dispersion(d)) if self.n_dispersion else self

    def n_extra(self, spec) -> int:
        return self.base.n_extra(spec)

    def extra_names(self, spec) -> list[str]:
        return self.base.extra_names(spec)

    def at_extra(self, x, spec):
        return self._with_base(self.base.at_extra(x, spec)) if self.n_dispersion else self

    def extra_start(self, y, mu, pw, spec):
        return self.base.extra_start(y, mu, pw, spec)

    def to_dispersion(self, psi, k: int = 0):
        return self.base.to_dispersion(psi, k)

    def from_dispersion(self, d, k: int = 0):
        return self.base.from_dispersion(d, k)

    @property
    def start_family(self) -> Family:
        return self.base

    @property
    def ratio_name(self):
        return self.base.ratio_name

    # -- the density -------------------------------------------------------------------------
    def _l0(self, eta):
        """log f(0) and v = f(0)/(1 - f(0))."""
        l0 = self.base.loglik_kernel(np.zeros_like(eta), eta, np.ones_like(eta))
        l0 = np.minimum(l0, -1e-300)
        return l0, 1.0 / np.expm1(-l0)

    def loglik_const(self, y, pw):
        return self.base.loglik_const(y, pw)

    def loglik_kernel(self, y, eta, pw):
        eta = np.asarray(eta, dtype=float)
        y = np.broadcast_to(np.asarray(y, dtype=float), eta.shape)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            l0, _v = self._l0(eta)
            return pw * (self.base.loglik_kernel(y, eta, np.ones_like(eta)) - np.log(-np.expm1(l0)))

    def working(self, eta, y, pw):
        eta = np.asarray(eta, dtype=float)
        y = np.broadcast_to(np.asarray(y, dtype=float), eta.shape)
        ones = np.ones_like(eta)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mu, r, _W, Wo, dW = self.base.working(eta, y, ones)
            _m0, r0, _W0, Wo0, dW0 = self.base.working(eta, np.zeros_like(eta), ones)
            _l0, v = self._l0(eta)
        vv = v * (1 + v)
        r = r + v * r0
        Wo = Wo - vv * r0**2 + v * Wo0
        dW = dW - vv * (1 + 2 * v) * r0 * r0 * r0 + 3 * vv * r0 * Wo0 + v * dW0
        return mu, pw * r, pw * Wo, pw * Wo, pw * dW

    def extra_pieces(self, eta, y, pw):
        eta = np.asarray(eta, dtype=float)
        y = np.broadcast_to(np.asarray(y, dtype=float), eta.shape)
        ones = np.ones_like(eta)
        zeros = np.zeros_like(eta)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            _mu, r0, _W0, Wo0, _dW0 = self.base.working(eta, zeros, ones)
            _l0, v = self._l0(eta)
            lb, rb, wb = self.base.extra_pieces(eta, y, ones)
            l0p, r0p, w0p = self.base.extra_pieces(eta, zeros, ones)
        v, vv, r0, Wo0 = (a[..., None] for a in (v, v * (1 + v), r0, Wo0))
        lp = lb + v * l0p
        rp = rb + vv * l0p * r0 + v * r0p
        wp = wb - vv * (1 + 2 * v) * l0p * r0**2 - 2 * vv * r0 * r0p + vv * l0p * Wo0 + v * w0p
        w = np.asarray(pw, dtype=float)[..., None]
        return w * lp, w * rp, w * wp

    def zero_count_prob(self, mu):
        eta = self.link.link(np.maximum(mu, 1e-300))
        return np.exp(self.base.loglik_kernel(np.zeros_like(eta), eta, np.ones_like(eta)))

    def mean(self, mu):
        """E[y] = mu / (1 - f(0))."""
        return mu / np.maximum(1 - self.zero_count_prob(mu), 1e-300)

    def variance(self, mu):
        return self.base.variance(mu)

    def dvariance(self, mu):
        return self.base.dvariance(mu)

    def response_variance(self, mu, pw):
        """Var(y) of the truncated count: (V(mu) + mu^2)/(1 - f0) - E[y]^2, per prior weight."""
        q = np.maximum(1 - self.zero_count_prob(mu), 1e-300)
        m = mu / q
        return ((self.base.variance(mu) + mu * mu) / q - m * m) / np.asarray(pw, dtype=float)

    def dev_resid(self, y, mu, pw):
        """-2 × the log-density (no saturated model of its own, as the hurdle families)."""
        eta = self.link.link(np.maximum(mu, 1e-300))
        return -2.0 * (self.loglik_const(y, pw) + self.loglik_kernel(y, eta, pw))

    def start_mu(self, y, pw):
        return self.base.start_mu(y, pw)

    def check_response(self, y, trials, weights_given, name):
        self.base.check_response(y, trials, weights_given, name)
        zero = np.asarray(y) == 0
        if zero.any():
            raise DataError(f"response '{name}' has {int(zero.sum())} zero(s): a {self.name} model is for counts "
                            "that cannot be zero; for zeros of their own use a hurdle model (ziformula=, hurdle=True)")

    def simulate(self, rng, mu, trials, scale, size):
        mu = np.broadcast_to(mu, size)
        y = self.base.simulate(rng, mu, trials, scale, size)
        for _ in range(200):  # redraw the zeros (vectorized rounds)
            z = y == 0
            if not z.any():
                break
            y[z] = self.base.simulate(rng, mu, trials, scale, size)[z]
        y[y == 0] = 1.0  # mean so small that 200 rounds drew no positive count: the smallest one
        return y

    def latent_variance(self, eta_mean, re_var, sigma):
        return self.base.latent_variance(eta_mean, re_var, sigma)

    def statsmodels_family(self):
        raise ModelError(f"GEE has no {self.name} family")


class TruncatedPoisson(Truncated):
    name = "truncated_poisson"
    base_class = Poisson


class TruncatedNB2(Truncated):
    name = "truncated_nbinom2"
    base_class = NegativeBinomial2
    limit_family = TruncatedPoisson
    limit_text = "theta -> infinity"


class TruncatedNB1(Truncated):
    name = "truncated_nbinom1"
    base_class = NegativeBinomial1
    limit_family = TruncatedPoisson
    limit_text = "alpha -> 0"
