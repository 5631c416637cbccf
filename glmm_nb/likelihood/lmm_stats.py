r"""The profiled (RE)ML deviance of a one-factor LMM and its gradient from per-cluster sums.

With one grouping factor (J levels, q random-effect columns, :math:`\tilde Z_j = Z_j T`) every
quantity of :mod:`glmm_nb.likelihood.lmm` is a function of the weighted cross-products of each
cluster's rows, formed once:

.. math::
   C_j = Z_j'WZ_j, \quad E_j = Z_j'WX_j, \quad f_j = Z_j'Wy_j \quad (j = 1..J), \qquad
   X'WX,\ X'Wy,\ y'Wy,

with ``y`` the response less the offset. For a theta, with :math:`M_j = I + T'C_jT`,
:math:`F_j = M_j^{-1}T'E_j` and :math:`g_j = M_j^{-1}T'f_j`,

.. math::
   R_X'R_X = X'WX - \textstyle\sum_j E_j'T F_j, \qquad
   \hat\beta = (R_X'R_X)^{-1}\big(X'Wy - \sum_j E_j'T g_j\big), \qquad \hat u_j = g_j - F_j\hat\beta,

:math:`\log|M| = \sum_j \log|M_j|`, and the penalized residual sum of squares is the quadratic
form of the normal equations evaluated at their solution :math:`s = (\hat u, \hat\beta)`,
:math:`r^2 = y'Wy - 2 s'b + s'As` (b their right-hand side, A their matrix): exact to second
order in the solution's rounding. Its cancellation is against :math:`y'Wy`, so ``y`` is first
replaced by its residual from the weighted least-squares fit of X (β shifts by that fit's
coefficients; u and :math:`r^2` do not change) and :math:`y'Wy \ge r^2` is of the size of
:math:`r^2` itself (at u = 0, β at the least-squares fit, the penalized sum equals it).

The gradient in the entries :math:`T_{ab}` (the row formula of :mod:`.lmm` summed per cluster;
no inverse of T, so it holds on the boundary):

.. math::
   \frac{\partial \log|A|}{\partial T} = 2\sum_j C_jT\,(M_j^{-1} + F_j R^{-1} F_j')
   - 2\sum_j E_j R^{-1} F_j', \qquad
   \frac{\partial r^2}{\partial T} = -2\sum_j (f_j - E_j\hat\beta - C_jT\hat u_j)\,\hat u_j',

with :math:`R = R_X'R_X`; ML drops the two terms with :math:`R^{-1}`
(:math:`\log|A| = \log|M| + \log|R|` for REML, :math:`\log|M|` for ML). Each evaluation costs
:math:`O(J q^2 (q + p) + p^3)`: batched over the clusters, independent of the rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["ClusterStats", "StatsEval"]


SMALL_Q = 4  # blocks up to this size are factored entry by entry over all clusters at once


class ClusterStats:
    """Per-cluster cross-products of one grouping factor's rows (one pass over the data).

    Stored with the clusters last (``C`` (q, q, J), ``E`` (q, p, J), ``f`` (q, J)), so that every
    step of an evaluation is a product of small matrices with (., J) arrays (BLAS) or an
    elementwise operation on length-J vectors: vectorized over the clusters, with loops only over
    the q columns of the term.

    Parameters
    ----------
    codes : (n,) int — each row's level; Z : (n, q); X : (n, p); y : (n,) response less the
    offset; w : (n,) prior weights; J : number of levels.
    """

    def __init__(self, codes: np.ndarray, Z: np.ndarray, X: np.ndarray, y: np.ndarray, w: np.ndarray, J: int):
        n, q = Z.shape
        p = X.shape[1]
        self.J, self.q, self.p = J, q, p
        wX = w[:, None] * X
        self.XtWX = X.T @ wX
        # y less its weighted least-squares fit on X: y'Wy is then of the size of r^2 (no cancellation)
        self.beta0 = np.linalg.lstsq(self.XtWX, wX.T @ y, rcond=None)[0]
        yc = y - X @ self.beta0
        self.XtWy = wX.T @ yc
        self.yWy = float(np.dot(w * yc, yc))
        ind = sp.csr_matrix((w, (codes, np.arange(n))), shape=(J, n))  # row j: weights of cluster j
        ZXy = np.empty((n, q + p + 1))
        ZXy[:, :q], ZXy[:, q : q + p], ZXy[:, -1] = Z, X, yc
        C = np.empty((q, q, J))
        E = np.empty((q, p, J))
        f = np.empty((q, J))
        for a in range(q):  # a loop over the q columns of Z; the rows go to one sparse product each
            za = Z[:, a]
            rows = ZXy[:, a:] if np.all(za == 1.0) else za[:, None] * ZXy[:, a:]  # an intercept: as it is
            S = (ind @ rows).T  # (q - a + p + 1, J): Z_j'W[z_a, z_{a+1}.., X, y]
            C[a, a:] = S[: q - a]
            C[a + 1 :, a] = S[1 : q - a]
            E[a] = S[q - a : q - a + p]
            f[a] = S[-1]
        self.C, self.E, self.f = C, E, f

    def evaluate(self, T: np.ndarray, reml: bool, n_eff: int, sum_log_w: float) -> "StatsEval":
        return StatsEval(self, T, reml, n_eff, sum_log_w)


def _chol_inv(M: np.ndarray) -> tuple[float, np.ndarray]:
    """log-determinant and inverses of J symmetric positive definite blocks stored as (q, q, J)."""
    q, J = M.shape[0], M.shape[2]
    if q > SMALL_Q:
        Mb = np.ascontiguousarray(M.transpose(2, 0, 1))
        L = np.linalg.cholesky(Mb)
        logdet = 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
        return logdet, np.ascontiguousarray(np.linalg.inv(Mb).transpose(1, 2, 0))
    L = [[None] * q for _ in range(q)]
    for i in range(q):  # Cholesky, entry by entry, all clusters at once
        for k in range(i + 1):
            s = M[i, k].copy()
            for m in range(k):
                s -= L[i][m] * L[k][m]
            if i == k:
                if not np.all(s > 0):
                    raise np.linalg.LinAlgError("M is not positive definite")
                L[i][i] = np.sqrt(s)
            else:
                L[i][k] = s / L[k][k]
    logdet = 2.0 * float(sum(np.sum(np.log(L[i][i])) for i in range(q)))
    Li = [[None] * q for _ in range(q)]  # L^{-1}, lower
    for i in range(q):
        Li[i][i] = 1.0 / L[i][i]
        for k in range(i):
            s = L[i][k] * Li[k][k]
            for m in range(k + 1, i):
                s = s + L[i][m] * Li[m][k]
            Li[i][k] = -s * Li[i][i]
    Minv = np.empty((q, q, J))
    for a in range(q):  # M^{-1} = L^{-T} L^{-1}
        for b in range(a + 1):
            s = Li[a][a] * Li[a][b]
            for m in range(a + 1, q):
                s = s + Li[m][a] * Li[m][b]
            Minv[a, b] = s
            Minv[b, a] = s
    return logdet, Minv


def _blocks_times(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Per cluster A_j B_j for A (q, r, J) and B (r, m, J): (q, m, J)."""
    out = np.zeros((A.shape[0], B.shape[1], A.shape[2]))
    for a in range(A.shape[0]):
        for b in range(A.shape[1]):
            out[a] += A[a, b] * B[b]
    return out


class StatsEval:
    """The profiled deviance at one T (the module docstring): ``deviance``, ``beta``, ``u``
    (J, q), ``pwrss``, ``RX2``; :meth:`grad_T` the gradient in T's entries (q, q)."""

    def __init__(self, cs: ClusterStats, T: np.ndarray, reml: bool, n_eff: int, sum_log_w: float):
        q, p, J = cs.q, cs.p, cs.J
        self.cs, self.T, self.reml = cs, T, reml
        Tt = np.ascontiguousarray(T.T)
        CT = np.ascontiguousarray((Tt @ cs.C.reshape(q, q * J)).reshape(q, q, J).transpose(1, 0, 2))  # C_j T
        M = (Tt @ CT.reshape(q, q * J)).reshape(q, q, J)  # T'C_jT
        M[range(q), range(q)] += 1.0
        logdet, Minv = _chol_inv(M)
        TE = (Tt @ cs.E.reshape(q, p * J)).reshape(q, p, J)  # T'E_j
        Tf = Tt @ cs.f  # T'f_j (q, J)
        F = _blocks_times(Minv, TE)  # (q, p, J)
        g = _blocks_times(Minv, Tf[:, None, :])[:, 0]  # (q, J)
        RX2 = cs.XtWX - sum(TE[a] @ F[a].T for a in range(q))
        rhs = cs.XtWy - sum(TE[a] @ g[a] for a in range(q))
        beta = np.linalg.solve(RX2, rhs)
        u = g - np.stack([beta @ F[a] for a in range(q)])
        # r^2 = y'Wy - 2 s'b + s'As at s = (u, beta)
        Mu = _blocks_times(M, u[:, None, :])[:, 0]
        TEb = np.stack([beta @ TE[a] for a in range(q)])
        sAs = float(np.sum(u * Mu) + 2.0 * np.sum(u * TEb) + beta @ cs.XtWX @ beta)
        sb = float(np.sum(u * Tf) + beta @ cs.XtWy)
        pwrss = cs.yWy - 2.0 * sb + sAs
        nu = n_eff - (p if reml else 0)
        # r^2 cancelled to nothing (a residual variance near zero): no value; the caller's guard
        # (LmmDevfun.STATS_MAX_CANCEL) sends this theta to the rows
        dev = logdet + nu * (1.0 + np.log(2.0 * np.pi * pwrss / nu)) - sum_log_w if pwrss > 0 else np.nan
        if reml:
            dev += np.linalg.slogdet(RX2)[1]
        self.CT, self.Minv, self.F, self.RX2, self.nu = CT, Minv, F, RX2, nu
        self.beta_c, self.u_qj, self.pwrss, self.logdet = beta, u, pwrss, logdet
        self.deviance = float(dev)

    @property
    def beta(self) -> np.ndarray:
        """beta on the scale of the original response."""
        return self.beta_c + self.cs.beta0

    @property
    def u(self) -> np.ndarray:
        """The spherical random effects, (J, q)."""
        return self.u_qj.T

    def grad_T(self) -> np.ndarray:
        """Gradient of the deviance in the entries of T, (q, q) (the module docstring)."""
        cs, CT, u = self.cs, self.CT, self.u_qj
        q, p, J = cs.q, cs.p, cs.J
        G = 2.0 * sum(CT[:, b] @ self.Minv[b].T for b in range(q))
        if self.reml:
            Rinv = np.linalg.inv(self.RX2)
            FR = np.stack([Rinv @ self.F[a] for a in range(q)]).reshape(q, p * J)  # R^{-1} F_j'
            G += 2.0 * (_blocks_times(CT, self.F).reshape(q, p * J) @ FR.T)
            G -= 2.0 * (cs.E.reshape(q, p * J) @ FR.T)
        resid = cs.f - np.stack([self.beta_c @ cs.E[a] for a in range(q)]) - _blocks_times(CT, u[:, None, :])[:, 0]
        G -= (2.0 * self.nu / self.pwrss) * (resid @ u.T)
        return G
