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
\exp(-\mu^{2-p}/(\phi(2-p)))`). The series is summed, vectorized over rows (dense blocks
of equal window width, see :func:`tweedie_series`), over a window around its largest term :math:`j_{max} \approx y^{2-p}/(\phi(2-p))`
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


def _block_terms(logz, lo, width, tab_lg, tab_psi, want_grad):
    """log W (and the weighted sums the derivatives need) for rows summing j = lo .. lo + width - 1
    as one dense (rows, width) block; extra terms past a row's window only add accuracy."""
    J = lo[:, None] + np.arange(width)[None, :]
    lw = J * logz[:, None] - tab_lg[J]
    mx = lw.max(axis=1)
    e = np.exp(lw - mx[:, None])
    tot = e.sum(axis=1)
    logw = mx + np.log(tot)
    ends_ok = (lw[:, -1] - mx < -_DROP) & ((lo == 1) | (lw[:, 0] - mx < -_DROP))
    if not want_grad:
        return logw, None, None, ends_ok
    e /= tot[:, None]
    e *= J
    return logw, e.sum(axis=1), (e * tab_psi[J]).sum(axis=1), ends_ok


def tweedie_series(y, phi: float, p: float, want_grad: bool = False):
    """``log W(y, phi, p)`` of the Dunn–Smyth series for y > 0 (a 1-d array), and with
    ``want_grad`` its derivatives in log(phi) and in p (else None, None).

    The terms' j-dependent special functions, log Γ(j + 1) + log Γ(aj) and ψ(aj), depend on
    (φ, p) only through ``a``: they are tabulated once per call over j = 1 .. max, so each term
    costs a multiply-add and an exp. Rows are summed in dense blocks of equal (power-of-two)
    window width — a loop over at most a few widths, never over rows.
    """
    y = np.asarray(y, dtype=float)
    a = (2 - p) / (p - 1)
    logy = np.log(y)
    logz = a * logy - a * np.log(p - 1) - (1 + a) * np.log(phi) - np.log(2 - p)
    jmax = np.maximum(y ** (2 - p) / (phi * (2 - p)), 1.0)
    half = np.ceil(6.5 * np.sqrt(jmax / (1 + a))) + 2  # ~9 SDs of the terms' near-Gaussian shape
    out = [np.empty(y.size), np.zeros(y.size), np.zeros(y.size)]
    todo = np.arange(y.size)
    for _ in range(14):  # widen the windows of the rows whose end terms are not yet negligible
        lo = np.maximum(1, np.floor(jmax[todo] - half[todo])).astype(np.int64)
        need = np.ceil(jmax[todo] + half[todo]).astype(np.int64) - lo + 1
        width = np.maximum(8, 2 ** np.ceil(np.log2(need))).astype(np.int64)
        top = int((lo + width).max())
        jj = np.arange(top + 1, dtype=float)
        with np.errstate(divide="ignore"):
            tab_lg = special.gammaln(jj + 1) + special.gammaln(a * jj)
            tab_psi = special.digamma(a * jj) if want_grad else None
        failed = []
        for w in np.unique(width):
            rows = np.flatnonzero(width == w)
            idx = todo[rows]
            logw, ej, ejpsi, ok = _block_terms(logz[idx], lo[rows], int(w), tab_lg, tab_psi, want_grad)
            out[0][idx[ok]] = logw[ok]
            if want_grad:
                out[1][idx[ok]], out[2][idx[ok]] = ej[ok], ejpsi[ok]
            failed.append(idx[~ok])
        todo = np.concatenate(failed)
        if not todo.size:
            break
        half[todo] *= 2
    else:  # pragma: no cover - a window of 2^14 times the width always suffices
        raise ModelError("the Tweedie series did not converge")
    if not want_grad:
        return out[0], None, None
    da = -1.0 / (p - 1) ** 2
    dlogz = da * (logy - np.log(p - 1) - np.log(phi)) - a / (p - 1) + 1 / (2 - p)
    return out[0], -(1 + a) * out[1], out[1] * dlogz - da * out[2]


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

    def __getstate__(self):  # a cache only: not shipped to Dask workers or pickled with a model
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}

    def _series(self, y, want_grad=True):
        """(log W, its log-phi and p derivatives) per row of ``y`` (0 where y = 0), computed
        together (the optimizer asks for the value and the gradient at each point) and kept for
        the last (y, phi, p) — PIRLS evaluates the density many times at one (phi, p)."""
        y = np.asarray(y, dtype=float)
        d = self._d()
        dkey = float(d) if np.ndim(d) == 0 else (np.shape(d), hash(np.ascontiguousarray(d).tobytes()))
        key = (y.__array_interface__["data"][0], y.shape, y.strides, dkey, self.shape)
        ckey, cy, val = self._cache
        if ckey == key and cy is not None and (val[1] is not None or not want_grad):
            return val
        flat = y.ravel()
        pos = flat > 0
        lw, dphi, dp = (np.zeros(flat.size) for _ in range(3))
        if pos.any():  # phi: one number, or one per row (a dispersion model)
            phi = d if np.ndim(d) == 0 else np.broadcast_to(d, y.shape).ravel()[pos]
            a, b, c = tweedie_series(flat[pos], phi, self.shape, want_grad)
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
