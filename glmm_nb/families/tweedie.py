r"""Tweedie responses with power 1 < p < 2 (glmmTMB's ``tweedie``): non-negative amounts with
exact zeros (rainfall, claims, biomass) — a compound Poisson sum of gamma variables.

Mean :math:`\mu = e^\eta`, Var = :math:`\phi\mu^p`. With :math:`a = (2-p)/(p-1)` the density
(Dunn & Smyth 2005) is

.. math::
   \log f(y) = \frac1\phi\Big(\frac{y\mu^{1-p}}{1-p} - \frac{\mu^{2-p}}{2-p}\Big)
   + [y > 0]\,\big(\log W(y, \phi, p) - \log y\big),\qquad
   W = \sum_{j\ge1} W_j,\quad
   \log W_j = j\log z - \log\Gamma(j+1) - \log\Gamma(aj),

:math:`\log z = a\log y - a\log(p-1) - (1+a)\log\phi - \log(2-p)` (so :math:`P(y=0) =
\exp(-\mu^{2-p}/(\phi(2-p)))`). The series is summed, in one vectorized pass over a ragged
set of terms, over a window around its largest term :math:`j_{max} \approx y^{2-p}/(\phi(2-p))`
wide enough that the terms at both ends are below :math:`e^{-37}` times the largest (Dunn and
Smyth's rule; rows whose window is too narrow get a wider one). :math:`\log W` depends on
(y, φ, p) and not on μ, so it is computed once per (φ, p) and reused by every PIRLS step.

Derivatives: :math:`\ell_\mu = \mu^{-p}(y-\mu)/\phi`,
:math:`\ell_{\mu\mu} = -(p y\mu^{-p-1} + (1-p)\mu^{-p})/\phi`,
:math:`\ell_{\mu\mu\mu} = (p(p+1)y\mu^{-p-2} + p(1-p)\mu^{-p-1})/\phi`. With weights
:math:`\pi_j = W_j/W`: :math:`\partial\log W/\partial\log\phi = -(1+a)E_\pi[j]` and
:math:`\partial\log W/\partial p = E_\pi[j\,(\partial_p\log z - a'\psi(aj))]`,
:math:`a' = -1/(p-1)^2`. The optimizer's shape parameter is :math:`\mathrm{logit}(p - 1)`
(glmmTMB's ``psi``), :math:`dp/dx = (p-1)(2-p)`.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import DataError, ModelError
from .base import Family
from .shape import ShapeFamily

__all__ = ["Tweedie", "tweedie_series"]

_DROP = 37.0  # terms below exp(-37) of the largest are left out (Dunn & Smyth)


def _window_terms(y, phi, p, lo, hi, want_grad):
    """log W and its derivatives for rows y (> 0) over windows [lo, hi] of j (ragged, one pass)."""
    a = (2 - p) / (p - 1)
    logz = a * np.log(y) - a * np.log(p - 1) - (1 + a) * np.log(phi) - np.log(2 - p)
    size = hi - lo + 1
    row = np.repeat(np.arange(y.size), size)
    start = np.cumsum(size) - size
    j = (np.arange(row.size) - np.repeat(start, size) + np.repeat(lo, size)).astype(float)
    lw = j * logz[row] - special.gammaln(j + 1) - special.gammaln(a * j)
    first = start
    last = start + size - 1
    mx = np.maximum.reduceat(lw, start)
    e = np.exp(lw - mx[row])
    tot = np.add.reduceat(e, start)
    logw = mx + np.log(tot)
    ends_ok = (lw[last] - mx < -_DROP) & ((lo == 1) | (lw[first] - mx < -_DROP))
    if not want_grad:
        return logw, None, None, ends_ok
    pi = e / tot[row]
    ej = np.add.reduceat(pi * j, start)
    da = -1.0 / (p - 1) ** 2
    dlogz = da * (np.log(y) - np.log(p - 1) - np.log(phi)) - a / (p - 1) + 1 / (2 - p)
    ejpsi = np.add.reduceat(pi * j * special.digamma(a * j), start)
    return logw, -(1 + a) * ej, ej * dlogz - da * ejpsi, ends_ok


def tweedie_series(y, phi: float, p: float, want_grad: bool = False):
    """``log W(y, phi, p)`` of the Dunn–Smyth series for y > 0 (a 1-d array), and with
    ``want_grad`` its derivatives in log(phi) and in p (else None, None)."""
    y = np.asarray(y, dtype=float)
    out = [np.empty(y.size), np.empty(y.size), np.empty(y.size)]
    jmax = np.maximum(y ** (2 - p) / (phi * (2 - p)), 1.0)
    idx = np.arange(y.size)
    half = np.ceil(8.0 * np.sqrt(jmax)) + 3
    for _ in range(12):  # widen the windows of the rows whose end terms are not yet negligible
        lo = np.maximum(1, np.floor(jmax[idx] - half[idx])).astype(np.int64)
        hi = np.ceil(jmax[idx] + half[idx]).astype(np.int64)
        logw, dphi, dp, ok = _window_terms(y[idx], phi, p, lo, hi, want_grad)
        done = idx[ok]
        out[0][done] = logw[ok]
        if want_grad:
            out[1][done], out[2][done] = dphi[ok], dp[ok]
        idx = idx[~ok]
        if not idx.size:
            break
        half[idx] *= 2
    else:  # pragma: no cover - a window of 8 * 2^12 sqrt(jmax) terms always suffices
        raise ModelError("the Tweedie series did not converge")
    return out[0], (out[1] if want_grad else None), (out[2] if want_grad else None)


class Tweedie(ShapeFamily):
    name = "tweedie"
    links = ("log",)
    canonical_link = None
    mean_word = "mean"
    dispersion_name = "phi"
    dispersion_meaning = "Var = phi mu^power"
    shape_name = "power"
    shape_meaning = "Tweedie power 1 < p < 2 (near 1: Poisson-like; near 2: gamma-like)"
    shape_param = "logit(power-1)"
    default_shape = 1.5

    @property
    def ratio_name(self):
        return "ratio of means"

    def shape_from_x(self, x):
        return float(1.0 + special.expit(x))

    def shape_to_x(self, s):
        return float(special.logit(s - 1.0))

    # -- the series, cached per (y, phi, p) ------------------------------------------------------
    _cache = (None, None, None)  # (key, y held, (logW, dlogphi, dp)) — a cache only

    def _series(self, y, want_grad=False):
        y = np.asarray(y, dtype=float)
        key = (y.__array_interface__["data"][0], y.shape, y.strides, self._d(), self.shape)
        ckey, cy, val = self._cache
        if ckey == key and cy is not None and (val[1] is not None or not want_grad):
            return val
        flat = y.ravel()
        pos = flat > 0
        lw, dphi, dp = (np.zeros(flat.size) for _ in range(3))
        if pos.any():
            a, b, c = tweedie_series(flat[pos], self._d(), self.shape, want_grad)
            lw[pos] = a
            if want_grad:
                dphi[pos], dp[pos] = b, c
        val = (lw.reshape(y.shape), dphi.reshape(y.shape) if want_grad else None,
               dp.reshape(y.shape) if want_grad else None)
        self._cache = (key, y, val)
        return val

    # -- the distribution ----------------------------------------------------------------------
    def loglik_const(self, y, pw):
        y = np.asarray(y, dtype=float)
        return -pw * np.log(np.where(y > 0, y, 1.0))

    def _k(self, y, mu, d):
        p = self.shape
        return (y * mu ** (1 - p) / (1 - p) - mu ** (2 - p) / (2 - p)) / d

    def logpdf_kernel(self, y, mu, d):
        return self._k(y, mu, d) + self._series(y)[0]

    def dmu(self, y, mu, d):
        p = self.shape
        mp = mu ** (-p)
        return (mp * (y - mu) / d, -(p * y * mp / mu + (1 - p) * mp) / d,
                (p * (p + 1) * y * mp / mu**2 + p * (1 - p) * mp / mu) / d)

    def dextra(self, y, mu, d, p):
        _lw, dlw_phi, dlw_p = self._series(y, want_grad=True)
        l1, l2, _ = self.dmu(y, mu, d)
        lm = np.log(mu)
        m1p, m2p = mu ** (1 - p), mu ** (2 - p)
        l_phi = -self._k(y, mu, d) + dlw_phi
        k_p = (y * (-lm * m1p / (1 - p) + m1p / (1 - p) ** 2) - (-lm * m2p / (2 - p) + m2p / (2 - p) ** 2)) / d
        mp = mu ** (-p)
        l1_p = -lm * mp * (y - mu) / d
        l2_p = (-y * mp / mu * (1 - p * lm) + mp * (1 + (1 - p) * lm)) / d
        dpdx = (p - 1) * (2 - p)
        return (np.stack(np.broadcast_arrays(l_phi, dpdx * (k_p + dlw_p)), axis=-1),
                np.stack(np.broadcast_arrays(-l1, dpdx * l1_p), axis=-1),
                np.stack(np.broadcast_arrays(-l2, dpdx * l2_p), axis=-1))

    def variance_at(self, mu, d):
        return d * mu**self.shape

    def dvariance(self, mu):
        return self._d() * self.shape * mu ** (self.shape - 1)

    def dev_resid(self, y, mu, pw):
        """The Tweedie unit deviance 2 w [y^(2-p)/((1-p)(2-p)) - y mu^(1-p)/(1-p) + mu^(2-p)/(2-p)]."""
        p = self.shape
        y = np.asarray(y, dtype=float)
        return 2 * pw * (np.where(y > 0, y ** (2 - p), 0.0) / ((1 - p) * (2 - p)) - y * mu ** (1 - p) / (1 - p)
                         + mu ** (2 - p) / (2 - p))

    def start_mu(self, y, pw):
        return np.asarray(y, dtype=float) + 0.1

    def start_dispersion(self, y, mu, pw):
        v = np.sum(pw * (y - mu) ** 2 / mu**self.shape) / np.sum(pw)
        return float(np.clip(v, 1e-3, 1e3))

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        if np.any(y < 0):
            raise DataError(f"response '{name}' must be non-negative for the tweedie family; "
                            f"{int((y < 0).sum())} row(s) are negative (e.g. {y[y < 0][0]:g})")
        if len(y) and np.all(y == 0):
            raise DataError(f"response '{name}' is zero in every row; there is nothing to model")

    def draw(self, rng, mu, d, size):
        """Compound Poisson-gamma: N ~ Poisson(mu^(2-p)/(phi(2-p))), y = Gamma(N a, phi(p-1)mu^(p-1))."""
        p = self.shape
        mu = np.broadcast_to(mu, size)
        n = rng.poisson(mu ** (2 - p) / (d * (2 - p)))
        return rng.gamma((2 - p) / (p - 1) * n, d * (p - 1) * mu ** (p - 1))

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size)

    def latent_variance(self, eta_mean, re_var, sigma):
        # log link, lognormal approximation (Nakagawa et al. 2017): ln(1 + Var/mu^2) = ln(1 + phi mu^(p-2))
        mu = np.exp(eta_mean + re_var / 2)
        return float(np.log1p(self._d() * mu ** (self.shape - 2)))

    def statsmodels_family(self):
        import statsmodels.api as sm

        return sm.families.Tweedie(link=self._sm_link(), var_power=self.shape)
