r"""Population-averaged (marginal) coefficients of an ordinal (cumulative-link) mixed model.

The conditional model says :math:`g(P(Y_i \le k \mid b)) = \alpha_k - x_i'\beta - o_i - z_i'b`.
Averaged over the fitted random-effect distribution, each observation's cumulative
probabilities are :math:`P^M_{ik} = E_b[F(\alpha_k - x_i'\beta - o_i - z_i'b)]` with
:math:`z_i'b \sim N(0, v_i)` (60-point Gauss-Hermite, as for the other families). The marginal
thresholds and coefficients are the least-squares fit of the same cumulative-link form on the
link scale over all rows and thresholds,

.. math:: g(P^M_{ik}) + o_i \approx \alpha^M_k - x_i'\beta^M,

the ordinal counterpart of Hedeker et al. (2018). With the logit link, :math:`e^{\beta^M}` are
the population-averaged cumulative odds ratios; for a random intercept
:math:`\beta^M \approx \beta/\sqrt{1 + c^2\sigma^2}` (Zeger, Liang & Albert 1988) — the
attenuation that makes a cluster-specific effect look weaker across the population.

Standard errors: the delta method through :math:`(\theta, \beta, \tau) \mapsto (\beta^M,
\alpha^M)` (Jacobian by central differences) with the covariance of the optimizer's parameters
from the inverse Hessian of the deviance (parameters on a bound held fixed); or
``method="simulation"``: draws from that normal approximation (seeded), percentile intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss

from ..errors import ModelError
from ..inference.simulate import re_row_variance
from ..numdiff import central_diff
from ..results import wald_table

__all__ = ["ordinal_marginal_map", "ordinal_marginal_coefs"]

_X, _W = hermegauss(60)
_W = _W / np.sqrt(2 * np.pi)
_EPS = 1e-12


def ordinal_marginal_map(m):
    """The function φ = (θ, β, τ) → (β^M, α^M) for the fitted model's rows."""
    spec = m.spec
    fam = m.request.family
    F = fam.cumulative_link
    X = np.asarray(spec.X, dtype=float)
    off = np.asarray(spec.offset, dtype=float)
    n, p = X.shape
    K1 = len(m.thresholds)
    nt = len(m.theta)
    # stacked design of the rows × thresholds: [indicator of k, -x_i]
    D = np.concatenate([np.kron(np.eye(K1), np.ones((n, 1))), -np.tile(X, (K1, 1))], axis=1)
    pinv = np.linalg.pinv(D)

    def f(phi: np.ndarray) -> np.ndarray:
        theta, beta, tau = phi[:nt], phi[nt : nt + p], phi[nt + p :]
        Ts = [t.T(theta[sl]) for t, sl in zip(spec.terms, spec.theta_slices())]
        sd = np.sqrt(re_row_variance([t.Zvals for t in spec.terms], [T @ T.T for T in Ts]))
        alpha = fam.thresholds(tau)
        eta = X @ beta + off
        cum = np.stack([F.cdf(a - eta[:, None] - sd[:, None] * _X[None, :]) @ _W for a in alpha], axis=1)
        target = F.quantile(np.clip(cum, _EPS, 1 - _EPS)) + off[:, None]  # (n, K-1)
        coef = pinv @ target.T.ravel()  # rows stacked threshold by threshold
        return np.concatenate([coef[K1:], coef[:K1]])

    return f


def ordinal_marginal_coefs(m, method: str = "delta", level: float = 0.95, nsim: int = 2000,
                           seed: int | None = 1) -> pd.DataFrame:
    """Marginal coefficients then thresholds: ``estimate std_error conf_low conf_high component``
    (``component`` "cond" for the coefficients, "thresholds"); see the module docstring."""
    if method not in ("delta", "simulation"):
        raise ModelError(f"method must be 'delta' or 'simulation', not {method!r}")
    f = ordinal_marginal_map(m)
    phi = np.asarray(m.opt.final, dtype=float)
    est = f(phi)
    names = list(m.fixef.index) + list(m.thresholds.index)
    V = m.extras.get("vcov_phi")
    if V is None:
        V = np.full((phi.size, phi.size), np.nan)
    if method == "delta":
        J = central_diff(f, phi, 1e-5 * np.maximum(1.0, np.abs(phi)))
        se = np.sqrt(np.maximum(np.diag(J @ V @ J.T), 0)) if np.all(np.isfinite(V)) else np.full(est.size, np.nan)
        out = wald_table(pd.Series(est, index=names), se, level)[["estimate", "std_error", "conf_low", "conf_high"]]
    else:
        if not np.all(np.isfinite(V)):
            raise ModelError("the covariance of the estimates is not available (Hessian not positive definite)")
        draws = np.random.default_rng(seed).multivariate_normal(phi, V, size=nsim, method="eigh")
        lower = m.spec.theta_lower()
        nt = len(m.theta)
        draws[:, :nt] = np.where(np.isfinite(lower), np.abs(draws[:, :nt]), draws[:, :nt])
        sims = np.array([f(d) for d in draws])
        a = (1 - level) / 2
        out = pd.DataFrame({"estimate": est, "std_error": sims.std(axis=0, ddof=1),
                            "conf_low": np.quantile(sims, a, axis=0), "conf_high": np.quantile(sims, 1 - a, axis=0)},
                           index=names)
    out["component"] = ["cond"] * len(m.fixef) + ["thresholds"] * len(m.thresholds)
    out.index.name = "term"
    return out
