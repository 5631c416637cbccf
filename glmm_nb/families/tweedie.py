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
    if np.all(lo == lo[0]):  # one window for all rows (most often j = 1 ..): the tables broadcast
        J = lo[0] + np.arange(width)[None, :]
    else:
        J = lo[:, None] + np.arange(width)[None, :]
    lw = logz[:, None] * J
    lw -= tab_lg[J]
    mx = lw.max(axis=1)
    e = lw - mx[:, None]
    ends_ok = (e[:, -1] < -_DROP) & ((lo == 1) | (e[:, 0] < -_DROP))
    np.exp(e, out=e)
    tot = e.sum(axis=1)
    logw = mx + np.log(tot)
    if not want_grad:
        return logw, None, None, ends_ok
    e /= tot[:, None]
    e *= J
    return logw, e.sum(axis=1), (e * tab_psi[J]).sum(axis=1), ends_ok


_T_UP = np.concatenate([[0.0], np.logspace(-5, 7, 3000)])
_H_UP = (1 + _T_UP) * np.log1p(_T_UP) - _T_UP  # increasing, convex
_T_DOWN = 1 - np.logspace(-12, 0, 3000)[::-1]  # 0 .. 1 - 1e-12
_H_DOWN = (1 - _T_DOWN) * np.log1p(-_T_DOWN) + _T_DOWN  # increasing from 0 to 1


def _reach(J, a, side: int, drop: float = _DROP + 3):
    """How far from the largest term j = J the terms have fallen by ``drop`` nats, on each
    side. With d/dj log W_j ≈ -(1 + a) log(j/J) (Stirling), the fall over k = tJ steps is
    (1 + a) J h(t), h(t) = (1 + t) log(1 + t) - t upwards and (1 - t) log(1 - t) + t
    downwards; t = h^-1(drop / ((1 + a) J)) is read from a table of h (vectorized over rows),
    with a 3 % margin (the windows are then checked term by term)."""
    c = drop / ((1 + a) * J)
    if side > 0:
        t = np.interp(c, _H_UP, _T_UP, right=_T_UP[-1])
        return np.ceil(1.03 * t * J) + 1
    t = np.interp(c, _H_DOWN, _T_DOWN, right=1.0)
    return np.where(t >= 1.0, J, np.ceil(1.03 * t * J) + 1)


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
    down, up = _reach(jmax, a, -1), _reach(jmax, a, +1)
    out = [np.empty(y.size), np.zeros(y.size), np.zeros(y.size)]
    todo = np.arange(y.size)
    for _ in range(14):  # widen the windows of the rows whose end terms are not yet negligible
        lo = np.maximum(1, np.floor(jmax[todo] - down[todo])).astype(np.int64)
        need = np.ceil(jmax[todo] + up[todo]).astype(np.int64) - lo + 1
        width = (4 * np.ceil(need / 4)).astype(np.int64)
        top = int((lo + width).max())
        jj = np.arange(top + 1, dtype=float)
        with np.errstate(divide="ignore"):
            tab_lg = special.gammaln(jj + 1) + special.gammaln(a * jj)
            tab_psi = special.digamma(a * jj) if want_grad else None
        failed = []
        group = width * 2 + (lo > 1)  # blocks of one width, the rows starting at j = 1 apart
        for key in np.unique(group):
            rows = np.flatnonzero(group == key)
            w = key // 2
            idx = todo[rows]
            logw, ej, ejpsi, ok = _block_terms(logz[idx], lo[rows], int(w), tab_lg, tab_psi, want_grad)
            out[0][idx[ok]] = logw[ok]
            if want_grad:
                out[1][idx[ok]], out[2][idx[ok]] = ej[ok], ejpsi[ok]
            failed.append(idx[~ok])
        todo = np.concatenate(failed)
        if not todo.size:
            break
        down[todo] *= 2
        up[todo] *= 2
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
        m1p = mu ** (1 - p)
        return (y * m1p / (1 - p) - m1p * mu / (2 - p)) / d

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
        mp = mu ** (-p)
        m1p = mp * mu
        m2p = m1p * mu
        l_phi = -(y * m1p / (1 - p) - m2p / (2 - p)) / d + dlw_phi
        k_p = (y * (-lm * m1p / (1 - p) + m1p / (1 - p) ** 2) - (-lm * m2p / (2 - p) + m2p / (2 - p) ** 2)) / d
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
