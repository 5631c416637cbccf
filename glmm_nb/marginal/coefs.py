r"""Population-averaged (marginal) coefficients implied by a fitted GLMM.

For each observation the marginal mean averages the conditional mean over the fitted
random-effect distribution, :math:`\mu^M_i = E_b[g^{-1}(x_i'\beta + z_i'b)]`. Because the
random effects of all terms are independent normals, :math:`z_i'b \sim N(0, v_i)` with
:math:`v_i = \sum_k z_{ik}'\Sigma_k z_{ik}`, so the expectation is one-dimensional for scalar and
vector random effects alike and is computed by 60-point Gauss-Hermite quadrature
(deterministic; GLMMadaptive uses Monte Carlo). The marginal coefficients are the least-squares
fit on the link scale, :math:`\beta^M = (X'X)^{-1}X'g(\mu^M)` (Hedeker et al. 2018).

Zero-inflated and hurdle models: the population-averaged mean includes the zero part,
:math:`E_b[(1-\pi_i)\mu_i]` (hurdle: :math:`E_b[(1-\pi_i)\mu_i/(1-f(0;\mu_i))]`), and the zero
part's coefficients :math:`\gamma` join :math:`(\theta, \beta)` in the map. With random effects in
the zero part (independent of the count part's, as glmmTMB's) :math:`\pi_i` is replaced by its
average :math:`E_s[\mathrm{expit}(\zeta_i + s_i)]` over them
(:func:`glmm_nb.inference.simulate.marginal_zero_prob`), and their theta joins the map too.

Standard errors: the delta method through the map :math:`(\theta, \beta[, \gamma]) \mapsto \beta^M`
(Jacobian by central differences) with the covariance of :math:`(\theta, \beta)` from the
inverse Hessian of the deviance; or, with ``method="simulation"``, by drawing
:math:`(\theta, \beta)` from that normal approximation (seeded) — percentile intervals. Against
a parametric bootstrap of 1,000 refits (``benchmarks/check_marginal_se.py``, a Poisson random
slope) the delta-method SEs agreed to 1–3 % with 50 clusters and were 4–8 % off with 30 clusters
and a larger slope variance — the small-sample spread of the conditional Wald SEs themselves:
with few clusters, check them with ``m.bootstrap()``.

For a logistic random intercept the attenuation has the closed-form approximation
:math:`\beta^M \approx \beta / \sqrt{1 + c^2\sigma^2}`, :math:`c = 16\sqrt3/(15\pi)`
(Zeger, Liang & Albert 1988), shown beside the exact value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from scipy import special

from ..design import check_int, check_seed
from ..errors import ModelError
from ..inference.simulate import expit_normal_mean, re_row_variance
from ..numdiff import central_diff
from ..results import wald_table
from .ordinal import ordinal_marginal_coefs

__all__ = ["marginal_coefs", "marginal_map", "closed_form_attenuation", "parameter_covariance", "parameter_draws",
           "parameter_draws_all", "C_ZEGER"]

C_ZEGER = 16 * np.sqrt(3) / (15 * np.pi)
_X, _W = hermegauss(60)
_W = _W / np.sqrt(2 * np.pi)


def _re_variance(spec, theta: np.ndarray) -> np.ndarray:
    Ts = [t.T(theta[sl]) for t, sl in zip(spec.terms, spec.theta_slices())]
    return re_row_variance([t.Zvals for t in spec.terms], [T @ T.T for T in Ts])


def marginal_map(m):
    """The function (theta, beta[, gamma]) → beta_M for the fitted model's data; gamma are the
    zero part's coefficients of a zero-inflated or hurdle model, whose population-averaged mean
    includes the zero part: E_b[(1 - pi) mu] (zero-inflated) or E_b[(1 - pi) mu / (1 - f(0; mu))]
    (hurdle), mu = g^-1(eta + z'b)."""
    spec = m.spec
    fam = m.fitted_family
    X = np.asarray(spec.X)
    off = np.asarray(spec.offset)
    pinv = np.linalg.pinv(X)
    if fam.link.name == "inverse":
        raise ModelError("the population-averaged mean does not exist for the inverse link: E_b[1/(eta + z'b)] has "
                         "no finite value (the normal random effect puts probability on both sides of the pole), so "
                         "there are no marginal coefficients; refit with link='log' to compare")
    zi_X = None if spec.zi_X is None else np.asarray(spec.zi_X, dtype=float)
    zi_Z = [np.asarray(t.Zvals, dtype=float) for t in spec.zi_terms]

    def f(theta: np.ndarray, beta: np.ndarray, gamma: np.ndarray | None = None,
          zi_theta: np.ndarray | None = None) -> np.ndarray:
        eta = X @ beta + off
        sd = np.sqrt(_re_variance(spec, theta))
        mu = fam.link.inverse(eta[:, None] + sd[:, None] * _X[None, :])
        if zi_X is not None:
            g = m.zi_fixef.to_numpy() if gamma is None else gamma
            zeta = zi_X @ g
            if zi_Z:  # the zero part's random effects: pi by its average over them
                zt = np.asarray(m.zi_theta if zi_theta is None or not np.size(zi_theta) else zi_theta, dtype=float)
                Ts = [t.T(zt[sl]) for t, sl in zip(spec.zi_terms, spec.zi_theta_slices())]
                zeta = special.logit(expit_normal_mean(zeta, re_row_variance(zi_Z, [T @ T.T for T in Ts])))
            mu = fam.with_zeta(zeta[:, None]).mean(mu)
        return pinv @ (fam.link.link(mu @ _W) - off)

    return f


def closed_form_attenuation(m) -> pd.Series | None:
    """beta / sqrt(1 + c² sigma²) for a logistic model whose only random effect is one intercept
    (a cumulative logit model: its thresholds too)."""
    terms = m.spec.terms
    if not m.request.family.logistic or any(t.col_names != ("(Intercept)",) for t in terms):
        return None
    s2 = sum(float(m.covariance_matrices()[t.label].iloc[0, 0]) for t in terms)
    coef = pd.concat([m.fixef, m.thresholds]) if len(m.thresholds) else m.fixef
    return coef / np.sqrt(1 + C_ZEGER**2 * s2)


def parameter_covariance(m) -> tuple[np.ndarray, np.ndarray]:
    """(theta, beta[, gamma[, zero-part theta]]) and their covariance from the deviance Hessian
    (gamma: the zero part's coefficients); with theta on its boundary only beta's (and gamma's)
    covariance is available and theta is held fixed."""
    gamma = m.zi_fixef.to_numpy()
    zt = np.asarray(m.zi_theta, dtype=float)
    phi = np.concatenate([np.asarray(m.theta), m.fixef.to_numpy(), gamma, zt])
    nt, p, nz = len(m.theta), len(m.fixef), len(gamma)
    V = m.extras.get("vcov_theta_beta")
    if V is not None:  # theta, beta, dispersion(s), zero part[, delta, zero-part theta]: keep all but the
        nd = m.request.family.n_dispersion  # dispersion(s) and delta
        keep = np.r_[np.arange(nt + p), np.arange(nt + p + nd, nt + p + nd + nz), np.arange(V.shape[0] - zt.size,
                                                                                             V.shape[0])]
        return phi, V[np.ix_(keep, keep)]
    V = np.zeros((phi.size, phi.size))
    V[nt:nt + p, nt:nt + p] = m.vcov.to_numpy()
    if nz and m.zi_vcov.size:
        V[nt + p:nt + p + nz, nt + p:nt + p + nz] = m.zi_vcov.to_numpy()
    return phi, V


def parameter_draws(m, nsim: int, seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """(theta, beta) drawn from the normal approximation (seeded); theta's diagonal, which
    enters only through T T', folded to be non-negative. (The zero part's coefficients are
    drawn jointly but not returned: see :func:`parameter_draws_all`.)"""
    return [(th, b) for th, b, _g, _z in parameter_draws_all(m, nsim, seed)]


def parameter_draws_all(m, nsim: int, seed) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(theta, beta, gamma, zero-part theta) drawn jointly from the normal approximation
    (seeded); the diagonals of both thetas folded to be non-negative."""
    phi, V = parameter_covariance(m)
    nt, p, nz = len(m.theta), len(m.fixef), len(m.zi_fixef)
    draws = np.random.default_rng(check_seed(seed)).multivariate_normal(phi, V, size=check_int(nsim, "nsim", 1),
                                                                         method="eigh")
    lower = m.spec.theta_lower()
    zl = np.concatenate([t.theta_lower() for t in m.spec.zi_terms]) if m.spec.zi_terms else np.zeros(0)
    return [(np.where(np.isfinite(lower), np.abs(d[:nt]), d[:nt]), d[nt:nt + p], d[nt + p:nt + p + nz],
             np.where(np.isfinite(zl), np.abs(d[nt + p + nz:]), d[nt + p + nz:])) for d in draws]


def marginal_coefs(m, method: str = "delta", level: float = 0.95, nsim: int = 2000, seed: int | None = 1) -> pd.DataFrame:
    """Marginal coefficients with ``estimate std_error conf_low conf_high`` (see module doc).

    Ordinal models: the population-averaged coefficients and thresholds
    (:func:`glmm_nb.marginal.ordinal.ordinal_marginal_coefs`)."""
    if m.request.family.ordinal:
        return ordinal_marginal_coefs(m, method=method, level=level, nsim=nsim, seed=seed)
    if method not in ("delta", "simulation"):
        raise ModelError(f"method must be 'delta' or 'simulation', not {method!r}")
    beta, theta = m.fixef.to_numpy(), np.asarray(m.theta)
    names = list(m.fixef.index)
    if m.request.family.link.name == "identity" and not m.request.family.has_zero_part:  # marginal = conditional
        ct = m.coef_table(conf_level=level)
        return ct[["estimate", "std_error", "conf_low", "conf_high"]]
    f = marginal_map(m)
    est = f(theta, beta)
    phi, V = parameter_covariance(m)
    nt, p, nz = len(theta), len(beta), len(m.zi_fixef)
    if method == "delta":
        J = central_diff(lambda x: f(x[:nt], x[nt:nt + p], x[nt + p:nt + p + nz], x[nt + p + nz:]), phi,
                         1e-5 * np.maximum(1.0, np.abs(phi)))
        se = np.sqrt(np.maximum(np.diag(J @ V @ J.T), 0))
        return wald_table(pd.Series(est, index=names), se, level)[["estimate", "std_error", "conf_low", "conf_high"]]
    else:
        sims = np.array([f(th, b, g, z) for th, b, g, z in parameter_draws_all(m, nsim, seed)])
        se = sims.std(axis=0, ddof=1)
        a = (1 - level) / 2
        lo, hi = np.quantile(sims, a, axis=0), np.quantile(sims, 1 - a, axis=0)
    out = pd.DataFrame({"estimate": est, "std_error": se, "conf_low": lo, "conf_high": hi}, index=names)
    out.index.name = "term"
    return out
