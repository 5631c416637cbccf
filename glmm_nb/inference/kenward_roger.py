r"""Kenward-Roger's adjusted covariance, degrees of freedom and scaled F (pbkrtest 0.5).

The marginal covariance of y is linear in the variance parameters
:math:`\gamma = (\mathrm{vech}\,\Sigma_1, \dots, \mathrm{vech}\,\Sigma_K, \sigma^2)`:

.. math::
   \Sigma = \sum_r \gamma_r G_r,\qquad G_r = Z_k (I_{J_k}\otimes E_{ab}) Z_k' \text{ for the
   entry } (a, b) \text{ of term } k,\qquad G_{\sigma^2} = W^{-1}

(:math:`E_{ab}` is 1 at (a, b) and (b, a); W the prior weights; pbkrtest takes W = I). With
:math:`\Phi = (X'\Sigma^{-1}X)^{-1}` (= ``vcov(beta)``):

.. math::
   P_r = -X'\Sigma^{-1}G_r\Sigma^{-1}X,\quad
   Q_{rs} = X'\Sigma^{-1}G_r\Sigma^{-1}G_s\Sigma^{-1}X,\quad
   K_{rs} = \mathrm{tr}(\Sigma^{-1}G_r\Sigma^{-1}G_s),

   \mathcal I_{rs} = K_{rs} - 2\,\mathrm{tr}(\Phi Q_{rs}) + \mathrm{tr}(\Phi P_r \Phi P_s),\qquad
   W = 2\mathcal I^{-1},\qquad
   \Phi_A = \Phi + 2\Phi\Big[\sum_{r,s} W_{rs}(Q_{rs} - P_r\Phi P_s)\Big]\Phi.

None of these needs an n × n matrix. Writing :math:`\Sigma^{-1} = \sigma^{-2}(W - W\tilde Z
M^{-1}\tilde Z'W)` (:math:`\tilde Z = Z\Lambda`, :math:`M = I + \tilde Z'W\tilde Z`) and
:math:`C = Z'WZ`, everything is expressed through

.. math::
   \Omega = Z'\Sigma^{-1}Z = \sigma^{-2}(C - C\Lambda M^{-1}\Lambda'C),\quad
   \Psi = Z'\Sigma^{-1}X,\quad
   \Omega_2 = Z'\Sigma^{-1}W^{-1}\Sigma^{-1}Z = \sigma^{-4}(C - C\Lambda(M^{-1} + M^{-2})\Lambda'C),

   \mathrm{tr}(\Sigma^{-1}W^{-1}\Sigma^{-1}W^{-1}) = \sigma^{-4}(n - Q + \mathrm{tr}\,M^{-2}),

and :math:`I_J\otimes E_{ab}` only moves rows of these (a pair of index arrays). With one
grouping term all Q × Q matrices are block diagonal and are held as a batch of J blocks of
q × q; with several terms they are dense Q × Q (Q ≤ ``DENSE_MAX_Q``).

Structured terms (``diag cs ar1 toep ou exp gau mat``): their covariance is a non-linear function
of their parameters φ, whose derivatives :math:`\partial\Sigma/\partial\varphi_j = \sum_{a\le b}
(\partial\Sigma_{k,ab}/\partial\varphi_j)\,G_{ab}` are linear combinations of the unstructured
:math:`G_{ab}`: P, Q and K are computed for every vech entry as above and projected with that
Jacobian (:func:`structure_jacobian`). As pbkrtest, the second-derivative term of Kenward & Roger
(1997) is left out (zero for pbkrtest's linear structures).

For a q-row hypothesis :math:`L`: :math:`\Theta = L'(L\Phi L')^{-1}L`,
:math:`A_1 = \sum_{rs} W_{rs}\,\mathrm{tr}(\Theta\Phi P_r\Phi)\,\mathrm{tr}(\Theta\Phi P_s\Phi)`,
:math:`A_2 = \sum_{rs} W_{rs}\,\mathrm{tr}(\Theta\Phi P_r\Phi\Theta\Phi P_s\Phi)`, and
pbkrtest's ``.KR_adjust`` turns them into the denominator df and the F scaling;
:math:`F = \lambda\,(L\hat\beta)'(L\Phi_AL')^{-1}(L\hat\beta)/q`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from ..design.reterms import tril_index
from ..errors import ModelError
from .modelinfo import cache_get, cache_put, is_lmm

__all__ = ["KenwardRogerInfo", "kenward_roger_info", "vcov_kr"]

DENSE_MAX_Q = 3000
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class KenwardRogerInfo:
    """Kenward-Roger ingredients of one REML fit.

    Attributes
    ----------
    vcov : ndarray (p, p)
        :math:`\\Phi`, the unadjusted covariance of beta.
    vcov_adj : ndarray (p, p)
        :math:`\\Phi_A`.
    P : ndarray (r, p, p)
        :math:`P_r` per variance parameter.
    W : ndarray (r, r)
        :math:`2\\mathcal I^{-1}`, the asymptotic covariance of the variance parameters.
    names : tuple of str
        The variance parameters (``term:a,b`` and ``sigma2``).
    """

    vcov: np.ndarray
    vcov_adj: np.ndarray
    P: np.ndarray
    W: np.ndarray
    names: tuple

    def _A12(self, L: np.ndarray) -> tuple[float, float]:
        Phi = self.vcov
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        U = np.einsum("ab,bc,rcd,de->rae", Theta, Phi, self.P, Phi)  # Theta Phi P_r Phi
        tr = np.einsum("raa->r", U)
        A1 = float(tr @ self.W @ tr)
        A2 = float(np.einsum("rs,rab,sba->", self.W, U, U))
        return A1, A2

    @staticmethod
    def _df_from(A1, A2, q):
        """pbkrtest's ``Lb_ddf`` / ``.KR_adjust``: denominator df and F scaling."""
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0 = 1 + c1 * B
        V1 = 1 - c2 * B
        V2 = 1 - c3 * B
        V0 = np.where(np.abs(V0) < 1e-10, 0.0, V0)
        x = 1 - A2 / q
        ratio = np.where((np.abs(x) < 1e-14) & (np.abs(V1) < 1e-14), 1.0, x / np.where(V1 == 0, np.inf, V1))
        rho = ratio**2 * V0 / V2 / q
        df2 = 4 + (q + 2) / (q * rho - 1)
        scaling = np.where(np.abs(df2 - 2) < 1e-2, 1.0, df2 * (1 - A2 / q) / (df2 - 2))
        return df2, scaling

    def df(self, L: np.ndarray) -> float:
        """Kenward-Roger denominator df of the hypothesis ``L beta = 0`` (pbkrtest's ``Lb_ddf``)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        A1, A2 = self._A12(L)
        return float(self._df_from(A1, A2, L.shape[0])[0])

    def df_rows(self, L: np.ndarray) -> np.ndarray:
        """The df of each row of ``L`` taken alone, vectorized (one-row Theta is rank one, so
        :math:`A_1 = A_2 = t'Wt` with :math:`t_r = l'\\Phi P_r\\Phi l / l'\\Phi l`)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        Phi = self.vcov
        LPhi = L @ Phi
        v = np.einsum("ip,ip->i", LPhi, L)
        t = np.einsum("ip,rpq,iq->ir", LPhi, self.P, LPhi) / v[:, None]
        A = np.einsum("ir,rs,is->i", t, self.W, t)
        return np.asarray(self._df_from(A, A, 1)[0], dtype=float)

    def ftest(self, L: np.ndarray, beta: np.ndarray, rhs: np.ndarray) -> dict:
        """pbkrtest's ``KRmodcomp`` for ``L beta = rhs``: scaled F, ndf, ddf, p-value."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        q = int(np.linalg.matrix_rank(L))
        if q < L.shape[0]:
            # keep a basis of the row space (pbkrtest works with rank(L) in the formulas)
            _u, _s, vt = np.linalg.svd(L, full_matrices=False)
            rhs = (_u[:, :q].T @ rhs)
            L = _s[:q, None] * vt[:q]
        A1, A2 = self._A12(L)
        df2, scaling = self._df_from(A1, A2, q)
        b = beta - (np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else 0.0)
        Lb = L @ b
        wald = float(Lb @ np.linalg.solve(L @ self.vcov_adj @ L.T, Lb))
        F = float(scaling) * wald / q
        return {"F": F, "num_df": q, "den_df": float(df2), "p_value": float(stats.f.sf(F, q, df2)),
                "F_scaling": float(scaling)}


# ------------------------------------------------------------------------- block algebra
class _Blocks:
    """Z-space algebra in one of two layouts with the same flat index ``cols``:
    one term → (J, q, ·) batches; several terms → one dense (1, Q, ·) block."""

    def __init__(self, m):
        spec = m.spec
        w = np.asarray(spec.weights, dtype=float)
        keep = w > 0
        self.w = w[keep]
        self.X = np.asarray(spec.X, dtype=float)[keep]
        self.n = int(keep.sum())
        terms = spec.terms
        q = [t.q for t in terms]
        offsets = np.cumsum([0] + [t.q * t.nlevels for t in terms])
        self.Q = int(offsets[-1])
        self.Zraw = np.concatenate([np.asarray(t.Zvals, dtype=float)[keep] for t in terms], axis=1)
        self.cols = np.concatenate(
            [(offsets[k] + np.asarray(t.codes)[keep] * t.q)[:, None] + np.arange(t.q)[None, :]
             for k, t in enumerate(terms)], axis=1)
        theta = np.asarray(m.theta, dtype=float)
        Ts = [t.T(theta[sl]) for sl, t in zip(spec.theta_slices(), terms)]
        if len(terms) == 1:
            self.J, self.d = terms[0].nlevels, q[0]
            self.Lam = Ts[0][None]
        else:
            if self.Q > DENSE_MAX_Q:
                raise ModelError(
                    f"Kenward-Roger with several random-effect terms works with dense {self.Q} x {self.Q} "
                    f"matrices, more than this version's limit of {DENSE_MAX_Q}; use ddf='satterthwaite'"
                )
            self.J, self.d = 1, self.Q
            Lam = np.zeros((self.Q, self.Q))
            for k, t in enumerate(terms):
                idx = offsets[k] + np.arange(t.nlevels)[:, None] * t.q  # (J_k, 1)
                for a, b in zip(*np.nonzero(Ts[k])):  # I_J ⊗ T_k
                    Lam[(idx + a).ravel(), (idx + b).ravel()] = Ts[k][a, b]
            self.Lam = Lam[None]
        # parameters: (src, dst) index arrays within the block dimension d
        self.params, self.names = [], []
        for k, t in enumerate(terms):
            base = (offsets[k] + np.arange(t.nlevels) * t.q) if self.J == 1 else np.zeros(1, dtype=int)
            rr, cc = tril_index(t.q)
            for a, b in zip(rr, cc):
                ia, ib = (base + a), (base + b)
                if a == b:
                    self.params.append((ia, ia))
                else:
                    self.params.append((np.r_[ia, ib], np.r_[ib, ia]))
                nm = t.col_names[a] if a == b else f"{t.col_names[b]},{t.col_names[a]}"
                self.names.append(f"{t.label}:{nm}")
        self.names.append("sigma2")

    # flat (Q, ·) <-> batched (J, d, ·)
    def batch(self, A):
        return A.reshape(self.J, self.d, *A.shape[1:])

    def Zt(self, V: np.ndarray) -> np.ndarray:
        """Z'V for V (n, c) → batched (J, d, c)."""
        c = V.shape[1]
        out = np.zeros((self.Q, c))
        for s in range(self.Zraw.shape[1]):
            for j in range(c):
                out[:, j] += np.bincount(self.cols[:, s], weights=self.Zraw[:, s] * V[:, j], minlength=self.Q)
        return self.batch(out)

    def Zmul(self, A: np.ndarray) -> np.ndarray:
        """Z A for A batched (J, d, c) → (n, c)."""
        flat = A.reshape(self.Q, -1)
        return np.einsum("is,isc->ic", self.Zraw, flat[self.cols])

    def crossprod(self) -> np.ndarray:
        """C = Z'WZ in the batched layout (J, d, d)."""
        s = self.Zraw.shape[1]
        if self.J > 1:
            C = np.zeros((self.J, self.d, self.d))
            codes = self.cols[:, 0] // self.d
            for a in range(s):
                for b in range(a, s):
                    acc = np.bincount(codes, weights=self.w * self.Zraw[:, a] * self.Zraw[:, b], minlength=self.J)
                    C[:, a, b] += acc
                    if a != b:
                        C[:, b, a] += acc
            return C
        Q = self.Q
        C = np.zeros(Q * Q)
        for a in range(s):
            for b in range(s):
                C += np.bincount(self.cols[:, a] * Q + self.cols[:, b],
                                 weights=self.w * self.Zraw[:, a] * self.Zraw[:, b], minlength=Q * Q)
        return C.reshape(1, Q, Q)


def _tr(A):
    return np.swapaxes(A, -1, -2)


def kenward_roger_info(m) -> KenwardRogerInfo:
    """Kenward-Roger's :math:`\\Phi_A`, :math:`P_r` and :math:`W` for a REML fit (cached).

    Raises
    ------
    ModelError
        Not a gaussian REML fit, or too many random effects for the dense multi-term path.
    """
    if not is_lmm(m):
        raise ModelError(f"Kenward-Roger applies to linear mixed models (family 'gaussian'), not '{m.family}'")
    if not m.reml:
        raise ModelError("Kenward-Roger's method is only available for REML fits; refit with reml=True")
    hit = cache_get(_CACHE, m)
    if hit is not None:
        return hit
    with threadpool_limits(limits=1, user_api="blas"):  # small dense blocks: threads only add overhead
        info = _compute(m)
    cache_put(_CACHE, m, info)
    return info


def _compute(m) -> KenwardRogerInfo:
    bl = _Blocks(m)
    s2 = float(m.sigma) ** 2
    X, w = bl.X, bl.w
    C = bl.crossprod()
    Lam = bl.Lam
    M = _tr(Lam) @ C @ Lam + np.eye(bl.d)[None]
    Minv = np.linalg.inv(M)
    CL = C @ Lam                                   # C Λ
    ZtWX = bl.Zt(w[:, None] * X)                   # (J, d, p)
    LtZtWX = _tr(Lam) @ ZtWX
    Omega = (C - CL @ Minv @ _tr(CL)) / s2
    Psi = (ZtWX - CL @ (Minv @ LtZtWX)) / s2
    Omega2 = (C - CL @ (Minv + Minv @ Minv) @ _tr(CL)) / s2**2
    # row space: TT = Σ^{-1}X, and Σ^{-1}(W^{-1}TT)
    def sinv(V):  # Σ^{-1} V for V (n, c)
        inner = Minv @ (_tr(Lam) @ bl.Zt(w[:, None] * V))
        return (w[:, None] * V - w[:, None] * bl.Zmul(Lam @ inner)) / s2
    TT = sinv(X)
    VW = TT / w[:, None]
    SVW = sinv(VW)
    Ups = bl.Zt(SVW)                               # Z'Σ^{-1}W^{-1}Σ^{-1}X, (J, d, p)
    nre = len(bl.params)
    R = nre + 1
    p = X.shape[1]
    P = np.empty((R, p, p))
    Qm = np.empty((R, R, p, p))
    K = np.empty((R, R))
    for r, (sr, dr) in enumerate(bl.params):
        P[r] = -np.einsum("jip,jiq->pq", Psi[:, sr], Psi[:, dr])
        for s_, (ss, ds) in enumerate(bl.params[: r + 1]):
            Qm[r, s_] = np.einsum("jip,jil,jlq->pq", Psi[:, sr], Omega[:, dr][:, :, ds], Psi[:, ss])
            Qm[s_, r] = Qm[r, s_].T
            K[r, s_] = K[s_, r] = np.einsum("jil,jli->", Omega[:, sr][:, :, ds], Omega[:, ss][:, :, dr])
        Qm[r, nre] = np.einsum("jip,jiq->pq", Psi[:, sr], Ups[:, dr])
        Qm[nre, r] = Qm[r, nre].T
        K[r, nre] = K[nre, r] = np.sum(Omega2[:, sr, dr])
    P[nre] = -TT.T @ VW
    Qm[nre, nre] = VW.T @ SVW
    K[nre, nre] = (bl.n - bl.Q + np.sum(Minv * Minv)) / s2**2
    P = 0.5 * (P + _tr(P))
    names = tuple(bl.names)
    if any(t.structured for t in m.spec.terms):  # onto the structures' parameters: dΣ/dφ_j = Σ_ab D_j,ab G_ab
        A, names = structure_jacobian(m)
        P = np.einsum("ur,rab->uab", A, P)
        Qm = np.einsum("ur,vs,rsab->uvab", A, A, Qm)
        K = A @ K @ A.T
    Phi = np.asarray(m.vcov, dtype=float)
    PhiP = Phi[None] @ P                           # Φ P_r
    IE2 = K - 2 * np.einsum("ab,rsab->rs", Phi, Qm) + np.einsum("rab,sba->rs", PhiP, PhiP)
    ev = np.linalg.eigvalsh(IE2)
    W = 2 * (np.linalg.inv(IE2) if np.min(np.abs(ev)) > 1e-10 else np.linalg.pinv(IE2))
    W = 0.5 * (W + W.T)
    U = np.einsum("rs,rsab->ab", W, Qm) - np.einsum("rs,rab,bc,scd->ad", W, P, Phi, P)
    PhiA = Phi + 2 * Phi @ U @ Phi
    return KenwardRogerInfo(Phi, 0.5 * (PhiA + PhiA.T), P, W, names)


def structure_jacobian(m) -> tuple[np.ndarray, tuple]:
    r"""The derivatives of the covariance parameters :math:`\gamma` (each term's vech Σ_k, then σ²)
    with respect to the fit's parameters: a structured term's theta (its SDs relative to σ and its
    correlation parameters, :mod:`glmm_nb.design.covstruct`) with σ² held, from
    :math:`\partial\Sigma_k/\partial\theta_j = \sigma^2(\partial_jT\,T' + T\,\partial_jT')`; an unstructured
    term keeps its vech entries; σ² keeps itself (an SD parameter's derivative spans Σ_k itself, so
    the tangent space is that of (absolute SDs, correlation parameters, σ²)). Returns ``(A, names)``
    with A (new parameters × γ)."""
    spec = m.spec
    theta = np.asarray(m.theta, dtype=float)
    s2 = float(m.sigma) ** 2
    rows, names, col = [], [], 0
    ngamma = sum(t.q * (t.q + 1) // 2 for t in spec.terms) + 1
    for t, sl in zip(spec.terms, spec.theta_slices()):
        r, c = tril_index(t.q)
        k = r.size
        if t.structured:
            T = t.T(theta[sl])
            for dT, pname in zip(t.structure.dT(theta[sl]), t.structure.param_names(t.col_names)):
                dS = s2 * (dT @ T.T + T @ dT.T)
                row = np.zeros(ngamma)
                row[col : col + k] = dS[r, c]
                rows.append(row)
                names.append(f"{t.label}:{pname}")
        else:
            for i in range(k):
                row = np.zeros(ngamma)
                row[col + i] = 1.0
                rows.append(row)
                a, b = r[i], c[i]
                names.append(f"{t.label}:{t.col_names[a] if a == b else f'{t.col_names[b]},{t.col_names[a]}'}")
        col += k
    last = np.zeros(ngamma)
    last[-1] = 1.0
    rows.append(last)
    names.append("sigma2")
    return np.array(rows), tuple(names)


def vcov_kr(m):
    """Kenward-Roger's adjusted covariance matrix of the fixed effects (pbkrtest's ``vcovAdj``)."""
    import pandas as pd

    names = list(m.fixef.index)
    return pd.DataFrame(kenward_roger_info(m).vcov_adj, index=names, columns=names)
