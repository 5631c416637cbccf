r"""Zero-inflated and hurdle count families (Poisson, NB2, NB1 count parts), as glmmTMB.

With :math:`\pi_i = \mathrm{expit}(\zeta_i)`, :math:`\zeta = X_{zi}\gamma` (the ``ziformula``;
plus :math:`Z_{zi}b_{zi}` when it has random-effect terms, :mod:`glmm_nb.likelihood.zire`)
and :math:`f` the count density with mean :math:`\mu_i = g^{-1}(\eta_i)`:

* zero-inflated: :math:`p(0) = \pi + (1-\pi) f(0)`, :math:`p(y) = (1-\pi) f(y)` for y > 0
  (``pi`` is the probability of a structural zero; mean :math:`(1-\pi)\mu`);
* hurdle: :math:`p(0) = \pi`, :math:`p(y) = (1-\pi) f(y) / (1 - f(0))` for y > 0
  (``pi`` is the probability of a zero; mean :math:`(1-\pi)\mu/(1-f(0))`).

For the Laplace step the η-derivatives follow from the count part's (:math:`\ell_0 = \log f(0)`
and its η-derivatives :math:`\ell_0', \ell_0'', \ell_0'''`). Zero-inflated zeros: with
:math:`q = \mathrm{expit}(\ell_0 - \zeta)` (the chance a zero came from the count part),
:math:`\ell = \log(1-\pi) + \ell_0 - \log q`, :math:`\partial_\eta\ell = q\ell_0'`,
:math:`\partial^2_\eta\ell = q\ell_0'' + q(1-q)\ell_0'^2`,
:math:`\partial^3_\eta\ell = q\ell_0''' + 3q(1-q)\ell_0'\ell_0'' + q(1-q)(1-2q)\ell_0'^3`,
:math:`\partial_\zeta\ell = (1-q) - \pi`. Hurdle positives: :math:`\ell = \log(1-\pi) + \ell_f(y)
- t` with :math:`t = \log(1 - e^{\ell_0})`, :math:`v = e^{\ell_0}/(1-e^{\ell_0})`,
:math:`t' = -v\ell_0'`, :math:`t'' = -v(1+v)\ell_0'^2 - v\ell_0''`,
:math:`t''' = -v(1+v)(1+2v)\ell_0'^3 - 3v(1+v)\ell_0'\ell_0'' - v\ell_0'''`; hurdle zeros carry
no information on η. The Laplace log-determinant uses the observed information (as glmmTMB).
The extra parameters are the count part's log-dispersion (NB), :math:`\gamma` and the zero part's
random-effect theta (if any).
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import special

from ..errors import DataError, ModelError
from .base import Family

__all__ = ["ZeroInflated"]


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


class ZeroInflated(Family):
    """A zero-inflated (``hurdle=False``) or hurdle count family around a count ``base``.

    ``zeta`` (per observation, the logit of ``pi``) is set by :meth:`at_extra` from the
    zero-part coefficients and the spec's zero-part design.
    """

    observed_laplace = True
    has_zero_part = True
    discrete = True
    count_like = True
    mean_word = "rate"

    def __init__(self, base: Family, hurdle: bool = False, zeta=None):
        if not base.count_like or base.profiled_lmm:
            raise ModelError(f"zero-inflation needs a count family (poisson, negative_binomial, nbinom1), "
                             f"not {base.name}")
        if hurdle and base.n_dispersion and base.limit_family is None:  # pragma: no cover - defensive
            raise ModelError("hurdle models need a Poisson or negative binomial count part")
        self.base = base
        self.hurdle = bool(hurdle)
        self.zeta = zeta
        self.link = base.link
        self.canonical = False
        self.name = ("hurdle_" if hurdle else "zi_") + base.name
        self.links = base.links
        self.n_dispersion = base.n_dispersion
        self.dispersion = base.dispersion
        self.dispersion_name = base.dispersion_name
        self.dispersion_meaning = base.dispersion_meaning
        self.overdispersed_alternative = None

    def __repr__(self) -> str:
        return f"ZeroInflated({self.base!r}, hurdle={self.hurdle})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ZeroInflated) and other.base == self.base and other.hurdle == self.hurdle

    def __hash__(self) -> int:
        return hash(("zi", self.hurdle, hash(self.base)))

    @property
    def is_default_link(self) -> bool:
        return self.base.is_default_link

    # -- the extra parameters: [count dispersion(s)], zero part gamma, [dispersion model delta] --
    @property
    def has_disp_model(self) -> bool:
        return self.base.has_disp_model

    def _split(self, spec) -> tuple[int, int]:
        """(count dispersions before gamma, zero-part columns): the base's extra parameters are
        its dispersion(s), then (a dispersion model) its delta, which go after gamma."""
        return self.base.n_dispersion, spec.zi_X.shape[1]

    def _base_x(self, x, spec):
        nd, kz = self._split(spec)
        return np.concatenate([x[:nd], x[nd + kz: x.size - spec.zi_ntheta]])

    def n_extra(self, spec) -> int:
        """Count dispersion(s), the zero part's coefficients, a dispersion model's delta, then the zero
        part's random-effect terms' theta (last)."""
        return self.base.n_extra(spec) + spec.zi_X.shape[1] + spec.zi_ntheta

    def extra_names(self, spec) -> list[str]:
        b, nd = self.base.extra_names(spec), self.base.n_dispersion
        return (b[:nd] + [f"zi~{c}" for c in spec.zi_names] + b[nd:]
                + [f"zi~{n}" for t in spec.zi_terms for n in t.theta_names()])

    def at_extra(self, x, spec) -> "ZeroInflated":
        """At (dispersion, gamma[, zero-part theta]): ``zeta`` = X_zi gamma (no random effects)."""
        x = np.asarray(x, dtype=float)
        nd, kz = self._split(spec)
        out = copy.copy(self)
        out.base = self.base.at_extra(self._base_x(x, spec), spec) if self.base.n_extra(spec) else self.base
        out.dispersion = out.base.dispersion
        out._zi_X = np.asarray(spec.zi_X, dtype=float)
        out.zeta = out._zi_X @ x[nd:nd + kz]
        return out

    def dispersion_at(self, Xd):
        """The dispersion model's d = exp(X_d delta) (a count part with a dispformula)."""
        return self.base.dispersion_at(Xd)

    def with_disp_design(self, Xd) -> "ZeroInflated":
        out = copy.copy(self)
        out.base = self.base.with_disp_design(Xd)
        return out

    @property
    def disp_scale_text(self) -> str:
        return self.base.disp_scale_text

    def zeta_working(self, eta, y, pw):
        r"""The zero-part pieces for a joint Laplace over (eta, zeta) (random effects in both):
        :math:`(\partial_\zeta\ell, -\partial_\eta\partial_\zeta\ell, -\partial^2_\zeta\ell)`
        per row. Zero-inflated zeros: :math:`(1-q)-\pi`, :math:`q(1-q)\ell_0'`,
        :math:`\pi(1-\pi) - q(1-q)`; every other row: :math:`y{=}0` hurdle
        :math:`1-\pi`, else :math:`-\pi`, 0, :math:`\pi(1-\pi)`."""
        y, eta, zeta, zero = self._arrays(y, eta)
        pi = special.expit(zeta)
        pp = pi * (1 - pi)
        if self.hurdle:
            return pw * np.where(zero, 1 - pi, -pi), np.zeros_like(eta), pw * pp
        l0, r0, _Wo0, _dW0 = self._at_zero(eta)
        q = special.expit(l0 - zeta)
        qq = np.where(zero, q * (1 - q), 0.0)
        return pw * np.where(zero, (1 - q) - pi, -pi), pw * qq * r0, pw * (pp - qq)

    def joint_working(self, eta, y, pw):
        """:meth:`working` and :meth:`zeta_working` in one pass (the count part's pieces at zero
        shared): ``(mu, r, W_obs, dW, dl/dzeta, c, b)``, each equal to theirs."""
        if self.hurdle:  # its zero-part pieces need nothing of the count part
            mu, r, _W, Wo, dW = self.working(eta, y, pw)
            return (mu, r, Wo, dW, *self.zeta_working(eta, y, pw))
        y, eta, zeta, zero = self._arrays(y, eta)
        ones = np.ones_like(eta)
        mu, r, _W, Wo, dW = self.base.working(eta, y, ones)  # on the zero rows: the pieces at y = 0
        l0 = self.base.loglik_kernel(np.zeros_like(eta), eta, ones)
        pi = special.expit(zeta)
        q = special.expit(l0 - zeta)
        Q = np.where(zero, q * (1 - q), 0.0)
        r2 = r * r
        r_out = np.where(zero, q * r, r)
        Wo_out = np.where(zero, q * Wo - Q * r2, Wo)
        dW_out = np.where(zero, q * dW + 3 * Q * r * Wo - Q * (1 - 2 * q) * r2 * r, dW)
        rz = np.where(zero, (1 - q) - pi, -pi)
        return (mu, pw * r_out, pw * Wo_out, pw * dW_out, pw * rz, pw * (Q * r), pw * (pi * (1 - pi) - Q))

    def zeta_third(self, eta, y, pw):
        r"""The derivatives of the joint weights (a, b, c) = -(ℓ_ηη, ℓ_ζζ, ℓ_ηζ) a joint Laplace
        gradient needs besides :meth:`working`'s :math:`\partial a/\partial\eta`:
        :math:`(\partial a/\partial\zeta = \partial c/\partial\eta,\ \partial b/\partial\eta =
        \partial c/\partial\zeta,\ \partial b/\partial\zeta)` per row. With :math:`Q = q(1-q)`,
        zero-inflated zeros: :math:`-Q\,W_{o0} + Q(1-2q)\ell_0'^2`, :math:`-Q(1-2q)\ell_0'`,
        :math:`Q(1-2q) + \pi(1-\pi)(1-2\pi)`; every other row (and every hurdle row): 0, 0,
        :math:`\pi(1-\pi)(1-2\pi)`."""
        y, eta, zeta, zero = self._arrays(y, eta)
        pi = special.expit(zeta)
        b_z = pi * (1 - pi) * (1 - 2 * pi)
        if self.hurdle:
            zeros = np.zeros_like(eta)
            return zeros, zeros, pw * b_z
        l0, r0, Wo0, _dW0 = self._at_zero(eta)
        q = special.expit(l0 - zeta)
        Q = np.where(zero, q * (1 - q), 0.0)
        Q2 = Q * (1 - 2 * q)
        return pw * (-Q * Wo0 + Q2 * r0**2), pw * (-Q2 * r0), pw * (Q2 + b_z)

    def zeta_extra_pieces(self, eta, y, pw):
        r"""The derivatives of the zero part's pieces :math:`(\partial_\zeta\ell, c, b)` in the
        count part's extra parameters (its dispersion(s), then a dispersion model's delta: the
        columns of :meth:`extra_pieces` without the zero part's), (..., k) each. They move only
        on the zero-inflated zeros, through :math:`\ell_0` and :math:`\ell_0'` (:math:`\dot\ell_0,
        \dot\ell_0'` their derivatives): :math:`-Q\dot\ell_0`,
        :math:`Q(1-2q)\dot\ell_0\ell_0' + Q\dot\ell_0'`, :math:`-Q(1-2q)\dot\ell_0`."""
        y, eta, zeta, zero = self._arrays(y, eta)
        if not (self.base.n_dispersion or self.base.has_disp_model):
            z = np.zeros(eta.shape + (0,))
            return z, z, z
        ones = np.ones_like(eta)
        l0p, r0p, _w0p = self.base.extra_pieces(eta, np.zeros_like(eta), ones)
        if self.hurdle:
            z = np.zeros_like(l0p)
            return z, z, z
        l0, r0, _Wo0, _dW0 = self._at_zero(eta)
        q = special.expit(l0 - zeta)
        Q = np.where(zero, q * (1 - q), 0.0)[..., None]
        Q2 = Q * (1 - 2 * q)[..., None]
        w = np.asarray(pw, dtype=float)
        w = w.reshape(w.shape + (1,) * (eta.ndim + 1 - w.ndim))
        return w * (-Q * l0p), w * (Q2 * l0p * r0[..., None] + Q * r0p), w * (-Q2 * l0p)

    def with_zeta(self, zeta) -> "ZeroInflated":
        """The same family with another zero-part linear predictor (new data)."""
        out = copy.copy(self)
        out.zeta = np.asarray(zeta, dtype=float)
        return out

    def at_dispersion(self, d: float) -> "ZeroInflated":
        out = copy.copy(self)
        out.base = self.base.at_dispersion(d)
        out.dispersion = out.base.dispersion
        return out

    def to_dispersion(self, psi: float, k: int = 0) -> float:
        return self.base.to_dispersion(psi, k)

    def dispersion_at_limit(self, psi: float) -> bool:
        return self.base.dispersion_at_limit(psi)

    def from_dispersion(self, d: float, k: int = 0) -> float:
        return self.base.from_dispersion(d, k)

    def extra_start(self, y, mu, pw, spec) -> np.ndarray:
        """Base dispersion start, and a zero part that explains the excess zeros by its intercept."""
        start = list(self.base.extra_start(y, mu, pw, spec)) if self.base.n_extra(spec) else []
        b = self.base.at_extra(np.asarray(start), spec) if start else self.base
        f0 = np.exp(b.loglik_kernel(np.zeros_like(y), b.link.link(mu), np.ones_like(y)))
        zero = float(np.mean(y == 0))
        if self.hurdle:
            p0 = zero
        else:
            p0 = (zero - float(np.mean(f0))) / max(1 - float(np.mean(f0)), 1e-3)
        gamma = np.zeros(spec.zi_X.shape[1])
        # glmmTMB's start for a zero part with covariates or random effects (gamma = 0, pi = 1/2): the
        # moment start (the excess zeros on the intercept) ended at local optima — a simulated ZINB with
        # zero-part random effects 7 log-likelihood units below glmmTMB's; Salamanders' ZINB with
        # ziformula ~ mined at mined[T.no] -> -29, 0.047 below glmmTMB's -822.4184 — where 0 reaches it
        if "(Intercept)" in spec.zi_names and not spec.zi_terms and spec.zi_X.shape[1] == 1:
            gamma[list(spec.zi_names).index("(Intercept)")] = special.logit(np.clip(p0, 0.02, 0.98))
        nd = self.base.n_dispersion
        zt = [t.theta_start() for t in spec.zi_terms]
        return np.concatenate([start[:nd], gamma, start[nd:], *zt])

    @property
    def start_family(self) -> Family:
        return self.base.start_family  # the count family itself (without a dispersion model)

    def _z(self, shape):
        z = np.asarray(self.zeta, dtype=float)
        return z.reshape(z.shape + (1,) * (len(shape) - z.ndim))

    # -- pieces of the count part at zero ---------------------------------------------------------
    def _at_zero(self, eta):
        """log f(0), and the count part's score, observed weight and its derivative at y = 0."""
        zeros = np.zeros_like(eta)
        ones = np.ones_like(eta)
        l0 = self.base.loglik_kernel(zeros, eta, ones)  # the constant part is 0 at y = 0
        _mu, r0, _W, Wo0, dW0 = self.base.working(eta, zeros, ones)
        return l0, r0, Wo0, dW0

    def _arrays(self, y, eta):
        y, eta = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(eta, dtype=float))
        zeta = np.broadcast_to(self._z(eta.shape), eta.shape)
        return y, eta, zeta, y == 0

    # -- Family interface ----------------------------------------------------------------------
    def loglik_const(self, y, pw):
        return self.base.loglik_const(y, pw)  # zero at y = 0 for the count families

    def loglik_kernel(self, y, eta, pw):
        y, eta, zeta, zero = self._arrays(y, eta)
        out = np.empty(eta.shape)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if self.hurdle:
                pos = ~zero
                out[zero] = -_softplus(-zeta[zero])
                ep = eta[pos]
                l0 = self.base.loglik_kernel(np.zeros_like(ep), ep, np.ones_like(ep))
                out[pos] = (-_softplus(zeta[pos]) + self.base.loglik_kernel(y[pos], ep, np.ones_like(ep))
                            - np.log(-np.expm1(np.minimum(l0, -1e-300))))
            else:  # log(1 - pi) + log f(y); zeros: log(pi + (1 - pi) f(0)) = logaddexp(zeta, log f(0)) - softplus(zeta)
                lb = self.base.loglik_kernel(y, eta, np.ones_like(eta))  # log f(0) on the zero rows
                sp = _softplus(zeta)
                out = lb - sp
                lz, zz = lb[zero], zeta[zero]
                out[zero] = np.maximum(lz, zz) + np.log1p(np.exp(-np.abs(lz - zz))) - sp[zero]
        return pw * out

    def working(self, eta, y, pw):
        y, eta, zeta, zero = self._arrays(y, eta)
        ones = np.ones_like(eta)
        mu, r, _W, Wo, dW = (np.array(a, dtype=float, copy=True) for a in self.base.working(eta, y, ones))
        if self.hurdle:
            pos = ~zero
            l0, r0, Wo0, dW0 = self._at_zero(eta[pos])
            v = 1.0 / np.expm1(-np.minimum(l0, -1e-12))
            vv = v * (1 + v)
            r[pos] += v * r0
            Wo[pos] += -vv * r0**2 + v * Wo0
            dW[pos] += -vv * (1 + 2 * v) * r0 * r0 * r0 + 3 * vv * r0 * Wo0 + v * dW0
            r[zero] = Wo[zero] = dW[zero] = 0.0
        else:  # on the zero rows the count part's pieces are those at y = 0 (log f(0) from whole
            # arrays, then the zero rows: a dispersion model's d is one value per row)
            l0 = self.base.loglik_kernel(np.zeros_like(eta), eta, ones)[zero]
            r0, Wo0, dW0 = r[zero], Wo[zero], dW[zero]
            q = special.expit(l0 - zeta[zero])
            qq = q * (1 - q)
            r[zero] = q * r0
            Wo[zero] = q * Wo0 - qq * r0**2
            dW[zero] = q * dW0 + 3 * qq * r0 * Wo0 - qq * (1 - 2 * q) * r0 * r0 * r0
        return mu, pw * r, pw * Wo, pw * Wo, pw * dW

    def extra_pieces(self, eta, y, pw):
        """(dl, dr, dW_obs) per extra parameter: (..., k) with k = dispersion + zero-part columns."""
        y, eta, zeta, zero = self._arrays(y, eta)
        pi = special.expit(zeta)
        ones = np.ones_like(eta)
        _mu, r0, _W, Wo0, _dW0 = self.base.working(eta, np.zeros_like(eta), ones)
        l0 = self.base.loglik_kernel(np.zeros_like(eta), eta, ones)
        Xz = np.asarray(self._zi_X)
        Xz = Xz.reshape(Xz.shape[:1] + (1,) * (eta.ndim - 1) + Xz.shape[1:])
        cols_l, cols_r, cols_w = [], [], []
        if self.hurdle:
            lz = np.where(zero, 1 - pi, -pi)
            rz = wz = np.zeros_like(eta)
        else:
            q = special.expit(l0 - zeta)
            qq = q * (1 - q)
            lz = np.where(zero, (1 - q) - pi, -pi)
            rz = np.where(zero, -qq * r0, 0.0)
            wz = np.where(zero, -qq * Wo0 + qq * (1 - 2 * q) * r0**2, 0.0)
        tail_l = tail_r = tail_w = None
        if self.base.n_dispersion or self.base.has_disp_model:
            # each column of the count part's extra parameters (dispersion, dispersion model)
            lb, rbp, wbp = self.base.extra_pieces(eta, y, ones)
            l0p, r0p, w0p = self.base.extra_pieces(eta, np.zeros_like(eta), ones)
            zero, r0, Wo0, l0 = zero[..., None], r0[..., None], Wo0[..., None], l0[..., None]
            if not self.hurdle:
                q, qq = q[..., None], qq[..., None]
            if self.hurdle:
                v = 1.0 / np.expm1(-np.minimum(l0, -1e-12))
                vv = v * (1 + v)
                lp = np.where(zero, 0.0, lb + v * l0p)
                rp = np.where(zero, 0.0, rbp + vv * l0p * r0 + v * r0p)
                wp = np.where(zero, 0.0, wbp - vv * (1 + 2 * v) * l0p * r0**2 - 2 * vv * r0 * r0p
                              + vv * l0p * Wo0 + v * w0p)
            else:
                lp = np.where(zero, q * l0p, lb)
                rp = np.where(zero, qq * l0p * r0 + q * r0p, rbp)
                wp = np.where(zero, qq * l0p * Wo0 + q * w0p - (1 - 2 * q) * qq * l0p * r0**2 - 2 * qq * r0 * r0p, wbp)
            nd = self.base.n_dispersion
            cols_l.append(lp[..., :nd])
            cols_r.append(rp[..., :nd])
            cols_w.append(wp[..., :nd])
            tail_l, tail_r, tail_w = lp[..., nd:], rp[..., nd:], wp[..., nd:]
        cols_l.append(lz[..., None] * Xz)
        cols_r.append(rz[..., None] * Xz)
        cols_w.append(wz[..., None] * Xz)
        if tail_l is not None:  # the dispersion model's delta after gamma
            cols_l.append(tail_l)
            cols_r.append(tail_r)
            cols_w.append(tail_w)
        w = np.asarray(pw, dtype=float)
        w = w.reshape(w.shape + (1,) * (eta.ndim + 1 - w.ndim))
        return (w * np.concatenate(cols_l, axis=-1), w * np.concatenate(cols_r, axis=-1),
                w * np.concatenate(cols_w, axis=-1))

    def variance(self, mu):
        return self.base.variance(mu)

    def dvariance(self, mu):
        return self.base.dvariance(mu)

    def dev_resid(self, y, mu, pw):
        """-2 × the log-density (the model has no saturated counterpart of its own)."""
        eta = self.link.link(np.maximum(mu, 1e-300))
        return -2.0 * (self.loglik_const(y, pw) + self.loglik_kernel(y, eta, pw))

    def start_mu(self, y, pw):
        return self.base.start_mu(y, pw)

    def check_response(self, y, trials, weights_given, name):
        self.base.check_response(y, trials, weights_given, name)
        pos = np.asarray(y, dtype=float)
        pos = pos[pos > 0]
        if self.hurdle and pos.size and np.all(pos == 1):
            raise DataError(
                f"every positive count of '{name}' is 1: the hurdle model's zero-truncated count part has "
                "nothing to fit (its mean runs to 0 and its log-likelihood to a bound, not a maximum). The "
                "response is binary: fit family='binomial'"
            )

    @property
    def pi(self):
        return special.expit(np.asarray(self.zeta, dtype=float))

    def zero_count_prob(self, mu):
        """f(0; mu) of the count part."""
        eta = self.link.link(np.maximum(mu, 1e-300))
        return np.exp(self.base.loglik_kernel(np.zeros_like(eta), eta, np.ones_like(eta)))

    def mean(self, mu):
        """E[y] including the zero part."""
        pi = self.pi.reshape(self._z(np.shape(mu)).shape)
        if self.hurdle:
            return (1 - pi) * mu / np.maximum(1 - self.zero_count_prob(mu), 1e-300)
        return (1 - pi) * mu

    def response_variance(self, mu, pw=1.0):
        r"""Var(y) of the mixture at the count part's mean ``mu`` (with its variance V(mu)):
        zero-inflated :math:`(1-\pi)(V + \mu^2) - ((1-\pi)\mu)^2`; hurdle
        :math:`(1-\pi)(V + \mu^2)/(1 - f(0)) - E[y]^2` (the zero-truncated count's second
        moment). What Pearson residuals divide by, as glmmTMB."""
        mu = np.asarray(mu, dtype=float)
        pi = self.pi.reshape(self._z(np.shape(mu)).shape)
        second = self.base.variance(mu) + mu**2
        if self.hurdle:
            second = second / np.maximum(1 - self.zero_count_prob(mu), 1e-300)
        return ((1 - pi) * second - self.mean(mu) ** 2) / np.asarray(pw, dtype=float)

    def simulate(self, rng, mu, trials, scale, size):
        mu = np.broadcast_to(mu, size)
        pi = self.pi if self.pi.ndim == len(size) else self.pi.reshape(-1, *([1] * (len(size) - 1)))
        pi = np.broadcast_to(pi, size)  # one zeta per row, or per row and draw (new zero-part effects)
        if not self.hurdle:
            y = self.base.simulate(rng, mu, trials, scale, size)
            return np.where(rng.random(size) < pi, 0.0, y)
        y = self.base.simulate(rng, mu, trials, scale, size)
        for _ in range(200):  # zero-truncated draws: redraw the zeros (vectorized rounds)
            z = y == 0
            if not z.any():
                break
            y[z] = self.base.simulate(rng, mu, trials, scale, size)[z]
        y[y == 0] = 1.0  # mean so small that 200 rounds drew no positive count: the smallest one
        return np.where(rng.random(size) < pi, 0.0, y)

    def latent_variance(self, eta_mean, re_var, sigma):
        return self.base.latent_variance(eta_mean, re_var, sigma)

    def statsmodels_family(self):
        raise ModelError("GEE has no zero-inflated families")

    @property
    def ratio_name(self):
        return self.base.ratio_name

    _zi_X = np.zeros((0, 0))  # the zero-part design of the rows being fitted (set by at_extra)


def zero_inflated(base: Family, hurdle: bool = False) -> ZeroInflated:
    """The zero-inflated (or hurdle) version of a count family."""
    if hurdle and base.name not in ("poisson", "negative_binomial"):
        raise DataError("hurdle models take a Poisson or negative_binomial (NB2) count part")
    return ZeroInflated(base, hurdle)
