r"""Sparse LDL' factorization and selected inverse of a Schur complement with little fill.

Used by :class:`glmm_nb.likelihood.schur.SchurFactor` when the remaining terms' Schur
complement ``S`` is large but sparse — nested designs, or crossings where each level of the
first factor meets few levels of the others — so that its dense Q2 × Q2 block would be
wasteful (or would not fit). Dense crossings (users × items) keep the dense block.

* Ordering: SuperLU's minimum degree on :math:`S + S'` (``scipy.sparse.linalg.splu`` with
  ``MMD_AT_PLUS_A``), once per model, on the pattern.
* Symbolic and numeric factorization :math:`PSP' = LDL'` (unit lower ``L`` in CSC, rows
  sorted): T. Davis's up-looking LDL algorithm (elimination tree, row patterns by reach),
  compiled with numba; :math:`\log|S| = \sum \log d_k`.
* Selected inverse :math:`Z = S^{-1}` on the pattern of :math:`L + L'` (Takahashi et al.
  1973): for :math:`j = n, \dots, 1`, :math:`Z_{ij} = -\sum_{k \in \mathcal L_j} Z_{ik}
  L_{kj}` for :math:`i \in \mathcal L_j` and :math:`Z_{jj} = 1/d_j - \sum_{k \in \mathcal L_j}
  L_{kj} Z_{kj}`. Every entry of ``S`` (and so every pair of columns met within a level of the
  first factor) is in that pattern, which is all the gradients and conditional covariances
  need.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit
from scipy.sparse.linalg import splu

__all__ = ["SparseLDL", "ldl_symbolic"]


@njit(cache=True)
def ldl_symbolic(n, Ap, Ai, P, Pinv):  # pragma: no cover - compiled
    """Elimination tree and column counts of L for P A P' (A: full symmetric pattern, CSC)."""
    parent = np.full(n, -1, np.int64)
    flag = np.empty(n, np.int64)
    lnz = np.zeros(n, np.int64)
    for k in range(n):
        flag[k] = k
        kk = P[k]
        for p in range(Ap[kk], Ap[kk + 1]):
            i = Pinv[Ai[p]]
            if i < k:
                while flag[i] != k:
                    if parent[i] == -1:
                        parent[i] = k
                    lnz[i] += 1
                    flag[i] = k
                    i = parent[i]
    Lp = np.zeros(n + 1, np.int64)
    for k in range(n):
        Lp[k + 1] = Lp[k] + lnz[k]
    return parent, Lp


@njit(cache=True)
def ldl_numeric(n, Ap, Ai, Ax, Lp, parent, P, Pinv, Li, Lx, D):  # pragma: no cover - compiled
    """Up-looking LDL' of P A P'; returns -1 on success or the first non-positive pivot."""
    Y = np.zeros(n)
    flag = np.empty(n, np.int64)
    pattern = np.empty(n, np.int64)
    lnz = np.zeros(n, np.int64)
    for k in range(n):
        top = n
        flag[k] = k
        kk = P[k]
        for p in range(Ap[kk], Ap[kk + 1]):
            i = Pinv[Ai[p]]
            if i <= k:
                Y[i] += Ax[p]
                ln = 0
                while flag[i] != k:
                    pattern[ln] = i
                    ln += 1
                    flag[i] = k
                    i = parent[i]
                while ln > 0:
                    top -= 1
                    ln -= 1
                    pattern[top] = pattern[ln]
        D[k] = Y[k]
        Y[k] = 0.0
        while top < n:
            i = pattern[top]
            top += 1
            yi = Y[i]
            Y[i] = 0.0
            p2 = Lp[i] + lnz[i]
            for p in range(Lp[i], p2):
                Y[Li[p]] -= Lx[p] * yi
            lki = yi / D[i]
            D[k] -= lki * yi
            Li[p2] = k
            Lx[p2] = lki
            lnz[i] += 1
        if D[k] <= 0.0:
            return k
    return -1


@njit(cache=True)
def ldl_solve(Lp, Li, Lx, D, x):  # pragma: no cover - compiled
    """x <- (L D L')^{-1} x in place, x of shape (n, m)."""
    n = D.size
    m = x.shape[1]
    for j in range(n):
        for p in range(Lp[j], Lp[j + 1]):
            for c in range(m):
                x[Li[p], c] -= Lx[p] * x[j, c]
    for j in range(n):
        for c in range(m):
            x[j, c] /= D[j]
    for j in range(n - 1, -1, -1):
        for p in range(Lp[j], Lp[j + 1]):
            for c in range(m):
                x[j, c] -= Lx[p] * x[Li[p], c]


@njit(cache=True)
def ldl_selinv(Lp, Li, Lx, D, Zx, Zd):  # pragma: no cover - compiled
    """Selected inverse on the pattern of L (Zx strictly lower, Zd diagonal)."""
    n = D.size
    pos = np.full(n, -1, np.int64)
    acc = np.zeros(Lx.size)
    for j in range(n - 1, -1, -1):
        lo, hi = Lp[j], Lp[j + 1]
        for t in range(lo, hi):
            pos[Li[t]] = t
            acc[t] = 0.0
        for t in range(lo, hi):
            k = Li[t]
            lkj = Lx[t]
            acc[t] -= Zd[k] * lkj
            for u in range(Lp[k], Lp[k + 1]):
                i = Li[u]
                pi = pos[i]
                if pi >= 0:
                    acc[pi] -= Zx[u] * lkj
                    acc[t] -= Zx[u] * Lx[pi]
        s = 0.0
        for t in range(lo, hi):
            Zx[t] = acc[t]
            s += Lx[t] * acc[t]
            pos[Li[t]] = -1
        Zd[j] = 1.0 / D[j] - s


@njit(cache=True)
def _find(Lp, Li, i, k):  # pragma: no cover - compiled
    lo, hi = Lp[k], Lp[k + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if Li[mid] < i:
            lo = mid + 1
        else:
            hi = mid
    if lo < Lp[k + 1] and Li[lo] == i:
        return lo
    return -1


@njit(cache=True)
def sel_entries(Lp, Li, Zx, Zd, Pinv, r, c, out):  # pragma: no cover - compiled
    """out[t] = S^{-1}[r[t], c[t]] (original numbering); NaN outside the pattern."""
    for t in range(r.size):
        i, k = Pinv[r[t]], Pinv[c[t]]
        if i == k:
            out[t] = Zd[i]
            continue
        if i < k:
            i, k = k, i
        p = _find(Lp, Li, i, k)
        out[t] = Zx[p] if p >= 0 else np.nan


@njit(cache=True)
def sel_pattern_h(Lp, Li, Zx, Zd, Pinv, jptr, pair_col, Gv, H):  # pragma: no cover - compiled
    """H[a, p] = sum_{p2 in level(p)} Gv[a, p2] S^{-1}[c_p, c_p2]."""
    q1 = Gv.shape[0]
    for j in range(jptr.size - 1):
        for p in range(jptr[j], jptr[j + 1]):
            i0 = Pinv[pair_col[p]]
            for a in range(q1):
                H[a, p] = 0.0
            for p2 in range(jptr[j], jptr[j + 1]):
                i, k = i0, Pinv[pair_col[p2]]
                if i == k:
                    z = Zd[i]
                else:
                    if i < k:
                        i, k = k, i
                    z = Zx[_find(Lp, Li, i, k)]
                for a in range(q1):
                    H[a, p] += Gv[a, p2] * z


@njit(cache=True)
def full_schur_values(Ap, Ai, x, jptr, pair_col, Bv, Gv):  # pragma: no cover - compiled
    """x[(c, c2)] -= sum_a B[(j,a), c] G[(j,a), c2] over the levels j (full CSC pattern)."""
    q1 = Bv.shape[0]
    for j in range(jptr.size - 1):
        for p in range(jptr[j], jptr[j + 1]):
            c = pair_col[p]
            for p2 in range(jptr[j], jptr[j + 1]):
                pos = _find(Ap, Ai, c, pair_col[p2])
                v = 0.0
                for a in range(q1):
                    v += Bv[a, p] * Gv[a, p2]
                x[pos] -= v


@njit(cache=True)
def level_pairs(jptr, pair_col, Q2):  # pragma: no cover - compiled
    """Flat keys r * Q2 + c (r >= c) of every pair of columns met within a level."""
    tot = 0
    for j in range(jptr.size - 1):
        m = jptr[j + 1] - jptr[j]
        tot += m * (m + 1) // 2
    out = np.empty(tot, np.int64)
    t = 0
    for j in range(jptr.size - 1):
        for p in range(jptr[j], jptr[j + 1]):
            for p2 in range(jptr[j], p + 1):
                out[t] = pair_col[p] * Q2 + pair_col[p2]
                t += 1
    return out


class SparseLDL:
    """Pattern, ordering and symbolic factorization of S (built once per model).

    ``lower_keys`` are the flat indices r * Q2 + c (r >= c) of S's lower triangle.
    """

    def __init__(self, Q2: int, lower_keys: np.ndarray):
        r, c = lower_keys // Q2, lower_keys % Q2
        off = r != c
        rows = np.concatenate([r, c[off]])
        cols = np.concatenate([c, r[off]])
        A = sp.csc_matrix((np.ones(rows.size), (rows, cols)), shape=(Q2, Q2))
        A.sort_indices()
        self.Q2 = Q2
        self.Ap, self.Ai = A.indptr.astype(np.int64), A.indices.astype(np.int64)
        # minimum degree ordering on the pattern of a diagonally dominant matrix with it
        colidx = np.repeat(np.arange(Q2), np.diff(self.Ap))
        deg = np.diff(self.Ap).astype(float)
        M = sp.csc_matrix((np.where(self.Ai == colidx, deg[colidx] + 1.0, -1e-3), self.Ai, self.Ap),
                          shape=(Q2, Q2))
        lu = splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                  options={"SymmetricMode": True})
        self.P = np.asarray(lu.perm_c, dtype=np.int64)
        self.Pinv = np.empty(Q2, np.int64)
        self.Pinv[self.P] = np.arange(Q2)
        self.parent, self.Lp = ldl_symbolic(Q2, self.Ap, self.Ai, self.P, self.Pinv)
        self.nnzL = int(self.Lp[-1])
        cnt = np.diff(self.Lp).astype(float)
        self.flops = float(np.sum(cnt**2))

    def positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in the full CSC pattern of entries (r, c) and (c, r) for flat keys."""
        r, c = keys // self.Q2, keys % self.Q2
        full = np.repeat(np.arange(self.Q2, dtype=np.int64), np.diff(self.Ap)) * self.Q2 + self.Ai
        return np.searchsorted(full, c * self.Q2 + r), np.searchsorted(full, r * self.Q2 + c)
