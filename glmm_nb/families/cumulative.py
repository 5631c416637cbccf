r"""Cumulative links, the cell probabilities of an ordinal response and their derivatives.

The distribution side of the ordinal family (:class:`glmm_nb.families.Ordinal`): what a
family supplies for the other families as ``loglik_kernel``/``working`` (per-observation
log-densities and their derivatives), here per cell of the ordered response.

Model (``ordinal::clm``'s convention). For an observation with linear predictor
:math:`\eta = x'\beta + o + z'b` and thresholds :math:`\alpha_1 < \dots < \alpha_{K-1}`,

.. math:: P(Y \le k \mid \eta) = F(\alpha_k - \eta), \qquad
          p = P(Y = k) = F(a) - F(c),\quad a = \alpha_k - \eta,\ c = \alpha_{k-1} - \eta,

with :math:`\alpha_0 = -\infty`, :math:`\alpha_K = +\infty` (categories coded 0..K−1 here, so
a category-0 row has no lower threshold and a category-(K−1) row no upper one). A positive
:math:`\beta` shifts mass towards the higher categories. :math:`F` is the logistic, normal or
Gumbel-minimum (cloglog: :math:`F(x) = 1 - e^{-e^x}`) distribution function; all three
densities are log-concave, so :math:`\log p` is concave in :math:`\eta` (Prékopa) and the
observed information below is non-negative.

Numerics. :math:`p` is formed without cancellation in the tails: :math:`S(c) - S(a)` when
:math:`c > 0` (both ends in the upper tail, :math:`S = 1 - F`), :math:`F(a) - F(c)` otherwise.
Where that leaves :math:`p < 10^{-200}` the row is recomputed in log space,
:math:`\log p = \log S(c) + \log(1 - S(a)/S(c))` or :math:`\log F(a) + \log(1 - F(c)/F(a))`,
with density ratios :math:`f(x)/p = \exp(\log f(x) - \log p)`. :math:`f'/f = \psi_1`,
:math:`f''/f = \psi_2` are closed forms per link.

Derivatives. With :math:`A_m = f^{(m-1)}(a)/p` and :math:`C_m = -f^{(m-1)}(c)/p`
(zero where the threshold is absent) and :math:`D_m = A_m + C_m`, for
:math:`\ell = \log p` as a function of :math:`\eta` and of the two thresholds it touches:

* score :math:`r = \partial\ell/\partial\eta = -D_1`;
* observed information :math:`W = -\partial^2\ell/\partial\eta^2 = D_1^2 - D_2 \ge 0`
  (``ordinal``'s ``hess.u``: its Laplace approximation uses this, not an expected information);
* :math:`\partial W/\partial\eta = 2D_1^3 - 3D_1D_2 + D_3`;
* for the upper threshold (``X = A``) and the lower one (``X = C``):
  :math:`\partial\ell/\partial\alpha = X_1`,
  :math:`\partial r/\partial\alpha = D_1X_1 - X_2`,
  :math:`\partial W/\partial\alpha = 2D_1X_2 - 2D_1^2X_1 - X_3 + D_2X_1`
  (the two sum to :math:`-\partial/\partial\eta`, since η shifts both thresholds).

Thresholds are optimised as :math:`\tau = (\alpha_1, \log(\alpha_2 - \alpha_1), \dots)`, so any
real τ gives increasing thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import special

from ..errors import ModelError

__all__ = [
    "CumulativeLink",
    "get_cumulative_link",
    "CUMULATIVE_LINKS",
    "thresholds_from_tau",
    "tau_from_thresholds",
    "threshold_jacobian",
    "start_thresholds",
    "Cells",
    "row_thresholds",
    "cell_terms",
    "category_probs",
    "marginal_category_probs",
    "draw_categories",
]

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
_X_MAX = 700.0  # exp(x) overflows above ~709
_P_MIN = 1e-200  # below this cell probability the log-space path takes over


def log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x <= 0, accurate at both ends (Mächler 2012)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(x > -np.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


class CumulativeLink:
    """A latent distribution F, as the likelihood needs it.

    Fast path: ``oriented(x, ff)`` (F(x), or S(x) = 1 − F(x) where the float flag ``ff`` is 1),
    ``pdf(x, P)``
    (the density; ``P`` is ``oriented``'s value at x, which the logistic reuses) and
    ``psi(x, F)`` → (f'/f, f''/f) with F the plain distribution function at x. Log-space
    ``logF``, ``logS``, ``logf`` serve the far tails. ``cdf`` and ``quantile`` for predictions
    and start values.
    """

    name = "link"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LogitCL(CumulativeLink):
    name = "logit"

    def oriented(self, x, ff):
        return 1.0 / (1.0 + np.exp((2.0 * ff - 1.0) * x))  # numpy's exp is vectorized; expit is not

    def pdf(self, x, P):
        return P * (1.0 - P)

    def psi(self, x, F):
        return 1.0 - 2.0 * F, 1.0 - 6.0 * F * (1.0 - F)

    def logF(self, x):
        return -np.logaddexp(0.0, -x)

    def logS(self, x):
        return -np.logaddexp(0.0, x)

    def logf(self, x):
        return -np.logaddexp(0.0, -x) - np.logaddexp(0.0, x)

    def cdf(self, x):
        return special.expit(x)

    def quantile(self, p):
        return special.logit(p)


class ProbitCL(CumulativeLink):
    name = "probit"

    def oriented(self, x, ff):
        return special.ndtr((1.0 - 2.0 * ff) * x)

    def pdf(self, x, P):
        return np.exp(-0.5 * x * x - _LOG_SQRT_2PI)

    def psi(self, x, F):
        return -x, x * x - 1.0

    def logF(self, x):
        return special.log_ndtr(x)

    def logS(self, x):
        return special.log_ndtr(-x)

    def logf(self, x):
        return -0.5 * x * x - _LOG_SQRT_2PI

    def cdf(self, x):
        return special.ndtr(x)

    def quantile(self, p):
        return special.ndtri(p)


class CloglogCL(CumulativeLink):
    """F(x) = 1 − exp(−e^x) (the complementary log-log link of ``clm``)."""

    name = "cloglog"

    def oriented(self, x, ff):
        e = np.exp(np.minimum(x, _X_MAX))
        return ff * np.exp(-e) - (1.0 - ff) * np.expm1(-e)

    def pdf(self, x, P):
        return np.exp(x - np.exp(np.minimum(x, _X_MAX)))

    def psi(self, x, F):
        e = np.exp(np.minimum(x, _X_MAX))
        return 1.0 - e, (1.0 - e) ** 2 - e

    def logF(self, x):
        return log1mexp(-np.exp(np.minimum(x, _X_MAX)))

    def logS(self, x):
        return -np.exp(np.minimum(x, _X_MAX))

    def logf(self, x):
        return x - np.exp(np.minimum(x, _X_MAX))

    def cdf(self, x):
        return -np.expm1(-np.exp(np.minimum(x, _X_MAX)))

    def quantile(self, p):
        return np.log(-np.log1p(-p))


CUMULATIVE_LINKS = {"logit": LogitCL, "probit": ProbitCL, "cloglog": CloglogCL}


def get_cumulative_link(link: str | CumulativeLink) -> CumulativeLink:
    """``"logit"``, ``"probit"`` or ``"cloglog"`` → a :class:`CumulativeLink`."""
    if isinstance(link, CumulativeLink):
        return link
    if not isinstance(link, str) or link.lower() not in CUMULATIVE_LINKS:
        raise ModelError(f"unknown link {link!r} for an ordinal model; choose 'logit', 'probit' or 'cloglog'")
    return CUMULATIVE_LINKS[link.lower()]()


# --------------------------------------------------------------------------- thresholds
def thresholds_from_tau(tau: np.ndarray) -> np.ndarray:
    """α = (τ1, τ1 + e^τ2, τ1 + e^τ2 + e^τ3, ...)."""
    tau = np.asarray(tau, dtype=float)
    return tau[0] + np.concatenate([[0.0], np.cumsum(np.exp(tau[1:]))])


def tau_from_thresholds(alpha: np.ndarray) -> np.ndarray:
    """Inverse of :func:`thresholds_from_tau` (α must be strictly increasing)."""
    alpha = np.asarray(alpha, dtype=float)
    d = np.diff(alpha)
    if np.any(d <= 0):
        raise ModelError("thresholds must be strictly increasing")
    return np.concatenate([[alpha[0]], np.log(d)])


def threshold_jacobian(tau: np.ndarray) -> np.ndarray:
    """J[k, j] = ∂α_k/∂τ_j, lower triangular: column 0 ones, column j ≥ 1 e^τj from row j on."""
    tau = np.asarray(tau, dtype=float)
    m = tau.size
    J = np.tril(np.ones((m, m)) * np.concatenate([[1.0], np.exp(tau[1:])])[None, :])
    return J


def start_thresholds(y: np.ndarray, ncat: int, link: CumulativeLink, weights=None) -> np.ndarray:
    """α_k = F⁻¹(weighted proportion of Y ≤ k): the fit with β = 0 and no random effects."""
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    counts = np.bincount(y, weights=w, minlength=ncat)
    cum = np.cumsum(counts)[:-1] / counts.sum()
    cum = np.clip(cum, 1e-6, 1 - 1e-6)
    alpha = link.quantile(cum)
    alpha = np.maximum.accumulate(alpha + 1e-3 * np.arange(alpha.size))  # strictly increasing
    return alpha


# ------------------------------------------------------------------------------ cells
@dataclass
class Cells:
    """Per-observation pieces of ℓ = w log p (arrays of η's shape). Derivative fields are None
    below the ``order`` asked for. ``l_up, r_up, w_up`` are ∂ℓ, ∂r, ∂W with respect to the
    row's upper threshold; ``*_lo`` for its lower one (zero where absent)."""

    logp: np.ndarray
    r: np.ndarray | None = None
    W: np.ndarray | None = None
    dW: np.ndarray | None = None
    l_up: np.ndarray | None = None
    l_lo: np.ndarray | None = None
    r_up: np.ndarray | None = None
    r_lo: np.ndarray | None = None
    w_up: np.ndarray | None = None
    w_lo: np.ndarray | None = None


def _tail_logp(link, a, c, has_up, has_lo):
    """log p in log space (rows whose p is below the fast path's range); a, c finite."""
    lFa, lSc = link.logF(a), link.logS(c)
    lSa, lFc = link.logS(a), link.logF(c)
    mid = np.where(c > 0.0, lSc + log1mexp(lSa - lSc), lFa + log1mexp(lFc - lFa))
    return np.where(has_up & has_lo, mid, np.where(has_up, lFa, lSc))


def row_thresholds(alpha: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's upper and lower threshold (0 where absent: the top/bottom category).

    ``alpha`` is (K−1,) (common thresholds) or (n, K−1) (row-specific thresholds, e.g. with
    nominal effects).
    """
    alpha = np.asarray(alpha, dtype=float)
    y = np.asarray(y)
    if alpha.ndim == 1:
        return np.append(alpha, 0.0)[y], np.concatenate([[0.0], alpha])[y]
    n = alpha.shape[0]
    full = np.concatenate([np.zeros((n, 1)), alpha, np.zeros((n, 1))], axis=1)
    rows = np.arange(n)
    return full[rows, y + 1], full[rows, y]


def cell_terms(link: CumulativeLink, alpha: np.ndarray, y: np.ndarray, eta: np.ndarray,
               pw: np.ndarray | None = None, order: int = 0) -> Cells:
    """Log cell probabilities (``order`` 0), with the score, the observed information and
    ∂ℓ/∂α (1), and ∂W/∂η and the other threshold derivatives (2); weighted by ``pw``.

    ``eta`` is (n,) or (n, m) (one column per quadrature node); ``y`` holds codes 0..K−1;
    ``alpha`` is (K−1,) or (n, K−1) (row-specific thresholds, which must not cross on the rows'
    own categories). p = F(a) − F(c) is formed in the orientation without cancellation
    (S(c) − S(a) when c > 0); rows with p < 1e-200 are recomputed in log space.
    """
    alpha = np.asarray(alpha, dtype=float)
    K1 = alpha.shape[-1]
    y = np.asarray(y)
    has_up, has_lo = y < K1, y > 0
    hu, hl = has_up.astype(float), has_lo.astype(float)
    aup, alo = row_thresholds(alpha, y)  # 0 where absent: masked below
    if eta.ndim == 2:
        hu, hl, aup, alo = hu[:, None], hl[:, None], aup[:, None], alo[:, None]
        pw = None if pw is None else pw[:, None]
    # masks as float factors: np.where with scattered masks costs ~10x an arithmetic pass
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        a = aup - hu * eta  # the row's upper end (0 where absent)
        c = alo - hl * eta
        ff = (c > 0.0).astype(float)  # both ends in the upper tail: use S = 1 - F
        Pa = hu * link.oriented(a, ff) + (1.0 - hu) * (1.0 - ff)  # F(+inf) = 1, S(+inf) = 0
        Pc = hl * link.oriented(c, ff)  # F(-inf) = 0 (ff = 0 there)
        p = (1.0 - 2.0 * ff) * (Pa - Pc)
        logp = np.log(p)
        tail = ~(p > _P_MIN)
        any_tail = bool(tail.any())
        if any_tail:
            shape = np.broadcast_shapes(a.shape, hu.shape)
            tu, tl = np.broadcast_to(hu, shape)[tail] > 0, np.broadcast_to(hl, shape)[tail] > 0
            at, ct = np.broadcast_to(a, shape)[tail], np.broadcast_to(c, shape)[tail]
            logp[tail] = _tail_logp(link, at, ct, tu, tl)
        if order == 0:
            return Cells(logp if pw is None else pw * logp)
        A1 = hu * link.pdf(a, Pa) / p
        C1 = -hl * link.pdf(c, Pc) / p
        if any_tail:
            A1[tail] = np.where(tu, np.exp(link.logf(at) - logp[tail]), 0.0)
            C1[tail] = np.where(tl, -np.exp(link.logf(ct) - logp[tail]), 0.0)
        psa1, psa2 = link.psi(a, Pa + ff * (1.0 - 2.0 * Pa))  # plain F: P, or 1 - P where flipped
        psc1, psc2 = link.psi(c, Pc + ff * (1.0 - 2.0 * Pc))
    A2, C2 = A1 * psa1, C1 * psc1
    D1, D2 = A1 + C1, A2 + C2
    r = -D1
    W = D1 * D1 - D2
    out = Cells(logp, r, W, l_up=A1, l_lo=C1)
    if order >= 2:
        A3, C3 = A1 * psa2, C1 * psc2
        D1sq = D1 * D1  # not D1**3: numpy has no fast path for cubes (~100x slower)
        out.dW = D1 * (2.0 * D1sq - 3.0 * D2) + A3 + C3
        out.r_up, out.r_lo = D1 * A1 - A2, D1 * C1 - C2
        out.w_up = 2.0 * D1 * A2 - 2.0 * D1 * D1 * A1 - A3 + D2 * A1
        out.w_lo = 2.0 * D1 * C2 - 2.0 * D1 * D1 * C1 - C3 + D2 * C1
    if pw is not None:
        for f in ("logp", "r", "W", "dW", "l_up", "l_lo", "r_up", "r_lo", "w_up", "w_lo"):
            v = getattr(out, f)
            if v is not None:
                setattr(out, f, pw * v)
    return out


# ------------------------------------------------------------------------ predictions
def category_probs(eta: np.ndarray, alpha: np.ndarray, link: str | CumulativeLink) -> np.ndarray:
    """P(Y = k | η) for k = 0..K−1: an (n, K) array (rows sum to 1).

    ``eta`` is the full linear predictor x'β + o (+ z'b for probabilities conditional on the
    random effects; without it, those of a typical cluster, b = 0).
    """
    link = get_cumulative_link(link)
    eta = np.asarray(eta, dtype=float)
    cum = link.cdf(np.asarray(alpha, float)[None, :] - eta.reshape(-1, 1))
    n = cum.shape[0]
    cum = np.concatenate([np.zeros((n, 1)), cum, np.ones((n, 1))], axis=1)
    return np.maximum(np.diff(cum, axis=1), 0.0).reshape(eta.shape + (alpha.size + 1,))


def marginal_category_probs(eta: np.ndarray, alpha: np.ndarray, link: str | CumulativeLink,
                            re_var: np.ndarray, nodes: int = 40) -> np.ndarray:
    """Population-averaged P(Y = k) = ∫ P(Y = k | η + s·z) φ(z) dz with s² = ``re_var``.

    ``re_var`` (n,) is the variance of each row's random part z'b (for a fitted model
    ``(ReStructure.vals(theta) ** 2).sum(axis=1)``). Gauss-Hermite with ``nodes`` points.
    """
    x, w = hermegauss(nodes)
    w = w / w.sum()
    eta = np.asarray(eta, dtype=float).ravel()
    s = np.sqrt(np.broadcast_to(np.asarray(re_var, dtype=float), eta.shape))
    P = category_probs(eta[:, None] + s[:, None] * x[None, :], alpha, link)  # (n, nodes, K)
    return np.einsum("nmk,m->nk", P, w)


def draw_categories(eta: np.ndarray, alpha: np.ndarray, link: str | CumulativeLink,
                    rng: np.random.Generator) -> np.ndarray:
    """Category codes 0..K−1 drawn given η (any shape): Y = #{k : U > F(α_k − η)}."""
    link = get_cumulative_link(link)
    eta = np.asarray(eta, dtype=float)
    U = rng.random(eta.shape)
    cum = link.cdf(np.asarray(alpha, float) - eta[..., None])
    return np.sum(U[..., None] > cum, axis=-1).astype(np.int64)
