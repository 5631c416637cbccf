r"""Compiled (numba) loops over the coupling pattern of two grouping factors.

Imported only by :mod:`glmm_nb.likelihood.schur`, and only for designs whose coupling work
:math:`\sum_j n_j^2` (``n_j`` coupling entries of level ``j`` of the first factor) is large;
small crossed and nested designs use scipy's sparse products instead, so they never pay the
import or the first-call compilation (cached on disk afterwards).

Pattern layout (see :class:`glmm_nb.likelihood.schur.CrossStructure`): the coupling block
``B`` (first factor × remaining columns) has one entry per pair ``p`` = (level ``j``,
column ``c``), sorted by level and then column; ``jptr`` delimits each level's pairs,
``pair_col`` holds ``c``, and ``cptr``/``cpairs`` list the pairs of each column.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["schur_lower", "schur_gram_lower", "pattern_h", "warm"]


@njit(parallel=True, cache=True)
def schur_lower(S, cptr, cpairs, pair_lev, pair_col, jptr, Bv, Gv):  # pragma: no cover - compiled
    """S[c, c'] -= sum_j sum_a B[(j,a), c] G[(j,a), c'] for c' <= c (lower triangle).

    Parallel over the rows c of S, so no two threads write the same row.
    """
    Q2 = cptr.size - 1
    q1 = Bv.shape[0]
    for c in prange(Q2):
        row = S[c]
        for idx in range(cptr[c], cptr[c + 1]):
            p = cpairs[idx]
            j = pair_lev[p]
            if q1 == 1:
                v = Bv[0, p]
                for p2 in range(jptr[j], p + 1):
                    row[pair_col[p2]] -= v * Gv[0, p2]
            else:
                for p2 in range(jptr[j], p + 1):
                    acc = 0.0
                    for a in range(q1):
                        acc += Bv[a, p] * Gv[a, p2]
                    row[pair_col[p2]] -= acc


@njit(parallel=True, cache=True)
def schur_gram_lower(S, K, cptr, cpairs, pair_lev, pair_col, jptr, b, g):  # pragma: no cover
    """One scalar first term (q1 = 1): S[c, c'] -= b_p g_p' and K[c, c'] += g_p g_p' for
    c' <= c in one pass, K = G'G being what the LMM gradient's trace needs."""
    Q2 = cptr.size - 1
    for c in prange(Q2):
        row = S[c]
        krow = K[c]
        for idx in range(cptr[c], cptr[c + 1]):
            p = cpairs[idx]
            j = pair_lev[p]
            v = b[p]
            w = g[p]
            for p2 in range(jptr[j], p + 1):
                c2 = pair_col[p2]
                gp = g[p2]
                row[c2] -= v * gp
                krow[c2] += w * gp


@njit(parallel=True, cache=True)
def pattern_h(Sinv, cptr, cpairs, pair_lev, pair_col, jptr, Gv, H):  # pragma: no cover - compiled
    """H[a, p] = (G S^{-1})[(j,a), c_p] at the pattern of B (S^{-1} symmetric, full).

    Row-major like :func:`schur_lower`: for each column c, the row c of S^{-1} stays in cache
    while the pairs of every level that meets c are summed.
    """
    Q2 = cptr.size - 1
    q1 = Gv.shape[0]
    for c in prange(Q2):
        row = Sinv[c]
        for idx in range(cptr[c], cptr[c + 1]):
            p = cpairs[idx]
            j = pair_lev[p]
            for a in range(q1):
                acc = 0.0
                for p2 in range(jptr[j], jptr[j + 1]):
                    acc += Gv[a, p2] * row[pair_col[p2]]
                H[a, p] = acc


def warm() -> None:
    """Compile (or load from the cache) every kernel on a tiny problem."""
    jptr = np.array([0, 2], dtype=np.int64)
    col = np.array([0, 1], dtype=np.int64)
    G = np.ones((1, 2))
    S = np.eye(2)
    schur_lower(S.copy(), np.array([0, 1, 2], dtype=np.int64), np.array([0, 1], dtype=np.int64),
                np.zeros(2, dtype=np.int64), col, jptr, G, G)
    pattern_h(S, np.array([0, 1, 2], dtype=np.int64), np.array([0, 1], dtype=np.int64),
              np.zeros(2, dtype=np.int64), col, jptr, G, np.empty((1, 2)))
