r"""A log-linear model of the dispersion (glmmTMB's ``dispformula``): the dispersion differs by row.

For a family with a dispersion :math:`d` (gaussian σ, NB2 θ, NB1 α, Gamma σ, beta φ,
beta-binomial φ, Tweedie φ, t σ — each on glmmTMB's ``sigma()`` scale),

.. math:: k \log d_i = x_{d,i}'\delta,

with :math:`X_d` the design of ``dispformula`` (``"~ h"``; fixed effects only) and :math:`k`
the family's ``disp_power``, so that δ is glmmTMB's ``fixef(m)$disp``: the gaussian models
:math:`\log\sigma^2` (k = 2), Gamma the log shape :math:`-2\log\sigma` (k = −2), the others
:math:`\log d`. The family's
log-density and its derivatives are elementwise in :math:`d`, so the base family is evaluated
with the vector :math:`d` in place of a scalar, and the score of :math:`\delta` is the chain
rule :math:`\partial\ell_i/\partial\delta_j = (x_{d,ij}/k)\,\partial\ell_i/\partial\log d_i` (the same
for the η-score and observed weight, which the Laplace gradient needs). A shape parameter (t's
df, Tweedie's power) stays one number and comes first among the extra parameters.

The gaussian family is fitted here by the Laplace approximation of :class:`GaussianML` (exact
for a gaussian response, whose log-density is quadratic in η), by maximum likelihood as
glmmTMB does.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import DataError, ModelError
from .base import Family
from .classic import Gaussian
from .dispersion import DispersionFamily

__all__ = ["GaussianML", "DispersionModel", "with_dispersion_model"]


class GaussianML(DispersionFamily):
    r"""The gaussian family with σ as an ordinary dispersion parameter (not profiled): the form a
    dispersion model needs. Identity link; :math:`\ell = -\tfrac12\log(2\pi) - \log\sigma -
    (y-\mu)^2/(2\sigma^2)`."""

    name = "gaussian"
    links = ("identity",)
    canonical_link = None
    dispersion_name = "sigma"
    dispersion_meaning = "residual SD"
    limit_family = None
    disp_power = 2.0  # glmmTMB models log(sigma^2)

    def logpdf_kernel(self, y, mu, d):
        return -0.5 * np.log(2 * np.pi) - np.log(d) - 0.5 * ((y - mu) / d) ** 2

    def dmu(self, y, mu, d):
        s2 = d * d
        return (y - mu) / s2, -1.0 / s2 + 0 * mu, 0.0 * mu

    def dpsi(self, y, mu, d):
        z2 = ((y - mu) / d) ** 2
        return -1.0 + z2, -2.0 * (y - mu) / (d * d), 2.0 / (d * d) + 0 * mu

    def variance_at(self, mu, d):
        return d * d + 0 * mu

    def saturated_mean(self, y):
        return np.asarray(y, dtype=float)

    def start_mu(self, y, pw):
        return np.asarray(y, dtype=float)

    def start_dispersion(self, y, mu, pw):
        return float(max(np.sqrt(np.sum(pw * (y - mu) ** 2) / np.sum(pw)), 1e-8))

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        if len(y) and np.ptp(y) == 0:
            raise DataError(f"response '{name}' is constant ({y[0]:g}); there is nothing to model")

    def draw(self, rng, mu, d, size):
        return np.broadcast_to(mu, size) + d * rng.standard_normal(size)

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size)

    def latent_variance(self, eta_mean, re_var, sigma):
        return float(self._d()) ** 2

    def statsmodels_family(self):
        return Gaussian().statsmodels_family()


class DispersionModel(Family):
    """``base`` (a family with a dispersion) with log d = X_d delta per row."""

    observed_laplace = True
    has_disp_model = True

    def __init__(self, base: Family):
        if not base.n_dispersion or base.has_zero_part:
            raise ModelError(f"dispformula= needs a family with a dispersion parameter (gaussian, negative_binomial, "
                             f"nbinom1, gamma, beta, betabinomial, tweedie, t), not {base.name}")
        self.base = base
        self.name = base.name
        self.link = base.link
        self.links = base.links
        self.canonical = False
        self.n_dispersion = base.n_dispersion - 1  # a shape parameter stays one number
        self.dispersion = None
        self.dispersion_name = base.dispersion_name  # the modelled one (the summary's disp part)
        self.dispersion_meaning = base.dispersion_meaning
        self.discrete, self.reads_cbind, self.count_like = base.discrete, base.reads_cbind, base.count_like
        self.mean_word = base.mean_word
        self.limit_family = None
        self.delta = None
        self._Xd = None

    def __repr__(self) -> str:
        return f"DispersionModel({self.base!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, DispersionModel) and other.base == self.base

    def __hash__(self) -> int:
        return hash(("disp", hash(self.base)))

    @property
    def is_default_link(self) -> bool:
        return self.base.is_default_link

    @property
    def logistic(self) -> bool:
        return self.base.logistic

    @property
    def ratio_name(self):
        return self.base.ratio_name

    @property
    def disp_power(self) -> float:
        """k of the base family: the dispersion model's linear predictor is k log d."""
        return self.base.disp_power

    @property
    def dispersion_names(self) -> tuple[str, ...]:
        return tuple(self.base.dispersion_names[1:])

    @property
    def disp_scale_text(self) -> str:
        """What the dispersion model's linear predictor is, in words."""
        k, name = self.base.disp_power, self.base.dispersion_name
        return {1.0: f"log {name}", 2.0: f"log {name}^2", -2.0: f"log shape = -2 log {name}"}.get(k, f"{k:g} log {name}")

    @property
    def dispersion_meanings(self) -> tuple[str, ...]:
        return tuple(self.base.dispersion_meanings[1:])

    # -- extra parameters: [shape], delta ----------------------------------------------------
    def n_extra(self, spec) -> int:
        return self.n_dispersion + spec.disp_X.shape[1]

    def extra_names(self, spec) -> list[str]:
        return self.base.extra_names(spec)[1:] + [f"disp~{c}" for c in spec.disp_names]

    def dispersion_at(self, Xd) -> np.ndarray:
        """d = exp(X_d delta) for a dispersion design (rows of new data)."""
        return np.exp(np.asarray(Xd, dtype=float) @ self.delta / self.base.disp_power)

    def at_extra(self, x, spec) -> "DispersionModel":
        x = np.asarray(x, dtype=float)
        nd = self.n_dispersion
        out = copy.copy(self)
        out.delta = x[nd:].copy()
        out._Xd = np.asarray(spec.disp_X, dtype=float)
        b = copy.copy(self.base)
        b.dispersion = out.dispersion_at(out._Xd)
        if nd:
            b.shape = self.base.shape_from_x(float(x[0]))
        out.base = b
        return out

    def to_dispersion(self, psi, k: int = 0):
        return self.base.to_dispersion(psi, k + 1)

    def from_dispersion(self, d, k: int = 0):
        return self.base.from_dispersion(d, k + 1)

    def at_dispersion(self, d):
        return self

    def with_disp_design(self, Xd) -> "DispersionModel":
        """The fitted family at the rows of another dispersion design (new data)."""
        out = copy.copy(self)
        out._Xd = np.asarray(Xd, dtype=float)
        out.base = copy.copy(self.base)
        out.base.dispersion = self.dispersion_at(out._Xd)
        return out

    def extra_start(self, y, mu, pw, spec) -> np.ndarray:
        x0 = self.base.extra_start(y, mu, pw, spec)
        delta = np.zeros(spec.disp_X.shape[1])
        if "(Intercept)" in spec.disp_names:
            delta[list(spec.disp_names).index("(Intercept)")] = self.base.disp_power * x0[0]
        return np.concatenate([x0[1:], delta])

    @property
    def start_family(self) -> Family:
        return self.base

    def _b(self, ndim: int) -> Family:
        """The base family with d shaped for arrays of ``ndim`` dimensions (AGQ: rows × nodes)."""
        d = self.base.dispersion
        if d is None:
            raise DataError("the dispersion model needs its coefficients (a fitted model sets them)")
        if ndim <= 1:
            return self.base
        b = copy.copy(self.base)
        b.dispersion = np.reshape(d, d.shape + (1,) * (ndim - 1))
        return b

    # -- the Family interface: the base at the rows' dispersions ---------------------------------
    def loglik_const(self, y, pw):
        return self.base.loglik_const(y, pw)

    def loglik_kernel(self, y, eta, pw):
        return self._b(np.ndim(eta)).loglik_kernel(y, eta, pw)

    def loglik_obs(self, y, mu, pw):
        return self._b(np.ndim(mu)).loglik_obs(y, mu, pw)

    def working(self, eta, y, pw):
        return self._b(np.ndim(eta)).working(eta, y, pw)

    def extra_pieces(self, eta, y, pw):
        lp, rp, wp = self._b(np.ndim(eta)).extra_pieces(eta, y, pw)
        Xd = self._Xd.reshape(self._Xd.shape[:1] + (1,) * (np.ndim(eta) - 1) + self._Xd.shape[1:])
        Xd = Xd / self.base.disp_power
        nd = self.n_dispersion
        return tuple(np.concatenate([a[..., 1:1 + nd], a[..., :1] * Xd], axis=-1) for a in (lp, rp, wp))

    def variance(self, mu):
        return self._b(np.ndim(mu)).variance(mu)

    def dvariance(self, mu):
        return self._b(np.ndim(mu)).dvariance(mu)

    def response_variance(self, mu, pw):
        return self._b(np.ndim(mu)).response_variance(mu, pw)

    def dev_resid(self, y, mu, pw):
        return self._b(np.ndim(mu)).dev_resid(y, mu, pw)

    def start_mu(self, y, pw):
        return self.base.start_mu(y, pw)

    def check_response(self, y, trials, weights_given, name):
        self.base.check_response(y, trials, weights_given, name)

    def observed(self, y, pw):
        return self.base.observed(y, pw)

    def to_mean_scale(self, sims, trials):
        return self.base.to_mean_scale(sims, trials)

    def simulate(self, rng, mu, trials, scale, size):
        return self._b(len(size)).simulate(rng, mu, trials, scale, size)

    def latent_variance(self, eta_mean, re_var, sigma):
        """The base family's distribution-specific variance averaged over the rows' dispersions
        (each distinct value weighted by its rows; beyond 2,000 distinct values, at 2,000
        equally spaced quantiles of them): ICC and R² then describe the data's average row."""
        d = np.asarray(self.base.dispersion, dtype=float)
        vals, counts = np.unique(d, return_counts=True)
        if vals.size > 2000:
            vals, counts = np.quantile(d, (np.arange(2000) + 0.5) / 2000), np.ones(2000)
        out = [self.base.at_dispersion(float(v)).latent_variance(eta_mean, re_var, sigma) for v in vals]
        return float(np.average(out, weights=counts))

    def statsmodels_family(self):
        raise ModelError("GEE has no dispersion model; fit the GEE without dispformula")


def with_dispersion_model(base: Family) -> DispersionModel:
    """``base`` with a dispersion model; the gaussian becomes :class:`GaussianML` (not profiled)."""
    if base.profiled_lmm:
        base = GaussianML(base.link)
    return DispersionModel(base)
