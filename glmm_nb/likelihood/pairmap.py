r"""The Schur complement's coupling term and the LMM gradient's trace by a precomputed pair map.

With the coupling block ``B`` (first factor × remaining ``Q2`` columns) stored at its pattern —
one entry per pair ``p`` = (level ``j``, column ``c_p``), sorted by level and then column — and
:math:`G = A^{-1}B` at the same pattern,

.. math::
   (B'G)_{cc'} = \sum_j \sum_a B_{(j,a)c}\,G_{(j,a)c'}
   = \sum_{(p, p') \in \mathcal P,\ c_p = c,\ c_{p'} = c'} \sum_a B_{ap} G_{ap'},

where :math:`\mathcal P` holds the pairs of pairs met within one level. The lower triangle
(:math:`c' \le c`) needs the pairs with :math:`p' \le p` (within a level a larger pair index
is a larger column), :math:`\sum_j n_j(n_j+1)/2` of them for levels with :math:`n_j` pairs.
:class:`PairMap` lists them once per model (theta-free) in level order, each with the index of
its target entry :math:`(c_p, c_{p'})` of ``S``; each evaluation is then a ``np.repeat`` of the
first pair's values, a gather of the second's (both cache-local in level order), a product and
one ``np.bincount`` over the targets — no sparse-product symbolic phase, no Python loop over
levels. The LMM gradient's trace
:math:`\mathrm{tr}(S^{-1}G_a'G_b)` (``a``, ``b`` columns of the first term) uses the same targets
and only the lower triangle of :math:`S^{-1}`:

.. math::
   \mathrm{tr}(S^{-1}G_a'G_b) = \sum_{t} w_t\,(S^{-1})_t
   \sum_{(p,p') \to t} (G_{ap}G_{bp'} + G_{ap'}G_{bp}), \qquad
   w_t = 1 \text{ off the diagonal}, \ \tfrac12 \text{ on it}.

Why (measured on lme4's InstEval, 2,972 students × 1,156 other columns, 73,421 rows,
:math:`1.8\cdot10^6` pairs of pairs meeting :math:`1.45\cdot10^5` entries of S): ``S`` and the
trace's :math:`G'G` together take 15–30 ms per evaluation (one gather, two ``bincount``), where
scipy's ``B'G`` (``csr_matmat`` and its ``maxnnz`` pass) took 18–24 ms for ``S`` alone and
``G'G`` about 20 ms more; a target-sorted layout with ``np.add.reduceat`` measured 11 ms for
``S`` against 8.7 ms for this one (its gathers are random). Building the map costs about 0.1 s
once per model. The compiled loops of :mod:`glmm_nb.likelihood.kernels` do the same work
without index arrays but cost 0.47 s to import numba and load the cached code (far more on a
cold cache), more than a fit of this size spends forming ``S``; they are used for the large
designs, where the map's 16 bytes per pair of pairs would not fit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PairMap", "ScalarPlan", "pair_count"]


def pair_count(jptr: np.ndarray) -> int:
    """Number of pairs of pairs (p' ≤ p) met within the levels delimited by ``jptr``."""
    n = np.diff(jptr).astype(np.int64)
    return int(np.sum(n * (n + 1) // 2))


class PairMap:
    """Pairs of pairs within levels, with their target entry of the lower triangle of S.

    Parameters
    ----------
    jptr : ndarray
        Level pointers into the pairs (sorted by level, then column).
    pair_col : ndarray
        Column (0 … Q2-1) of each pair.
    Q2 : int
        Order of S.

    Attributes
    ----------
    reps : ndarray
        For each pair p, the number of pairs p' ≤ p of its level (``np.repeat`` of per-pair
        values gives the first pair of every pair of pairs, in order).
    p2 : ndarray
        The second pair p' of each pair of pairs.
    tinv : ndarray
        Target (index into ``tkey``) of each pair of pairs.
    tkey : ndarray
        Target entries (row ≥ column) of S, as flat C-order indices, sorted.
    weight : ndarray
        1 off the diagonal, 0.5 on it (the trace's weights), per target.
    """

    def __init__(self, jptr: np.ndarray, pair_col: np.ndarray, Q2: int):
        jptr = np.asarray(jptr, dtype=np.int64)
        n = np.diff(jptr)
        nnz = int(jptr[-1])
        lev = np.repeat(np.arange(n.size), n)
        start = jptr[lev]  # first pair of each pair's level
        self.reps = reps = np.arange(nnz, dtype=np.int64) - start + 1  # pair p meets p' = start .. p
        first = np.cumsum(reps) - reps
        self.size = size = int(reps.sum())
        self.p2 = np.arange(size, dtype=np.intp) - np.repeat(first - start, reps)
        col = np.asarray(pair_col, dtype=np.int64)
        key = np.repeat(col * Q2, reps) + col[self.p2]
        if Q2 * Q2 <= max(4 * size, 1 << 22):  # a dense mark of S's entries is cheaper than a sort
            seen = np.zeros(Q2 * Q2, dtype=bool)
            seen[key] = True
            self.tkey = np.flatnonzero(seen)
            rank = np.cumsum(seen, dtype=np.intp) - 1
            self.tinv = rank[key]
        else:
            self.tkey, self.tinv = np.unique(key, return_inverse=True)
        self.weight = np.where(self.tkey // Q2 == self.tkey % Q2, 0.5, 1.0)

    def _sum(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Per target, the sum over its pairs of pairs (p, p') of first[p] * second[p']."""
        prod = np.repeat(first, self.reps)
        prod *= second[self.p2]
        return np.bincount(self.tinv, weights=prod, minlength=self.tkey.size)

    def subtract_lower(self, S: np.ndarray, Bv: np.ndarray, Gv: np.ndarray, gram: bool = False):
        """S[c, c'] -= (B'G)[c, c'] on the lower triangle (c' ≤ c); Bv, Gv (q1, nnzB).

        With ``gram`` (q1 = 1) also returns the per-target sums of G'G (for :meth:`trace_gram`),
        sharing the gather of ``G``; else None.
        """
        if Bv.shape[0] == 1:
            g2 = Gv[0][self.p2]
            prod = np.repeat(Bv[0], self.reps)
            prod *= g2
            vals = np.bincount(self.tinv, weights=prod, minlength=self.tkey.size)
            if gram:
                prod = np.repeat(Gv[0], self.reps)
                prod *= g2
                K = 2.0 * np.bincount(self.tinv, weights=prod, minlength=self.tkey.size)
        else:
            vals = self._sum(Bv[0], Gv[0])
            for a in range(1, Bv.shape[0]):
                vals += self._sum(Bv[a], Gv[a])
        flat = S.reshape(-1)  # S is C-contiguous: a view
        flat[self.tkey] -= vals
        return K if gram and Bv.shape[0] == 1 else None

    def _lower_values(self, Slow: np.ndarray) -> np.ndarray:
        if Slow.flags.c_contiguous:
            return Slow.reshape(-1)[self.tkey]
        return Slow[np.divmod(self.tkey, Slow.shape[1])]

    def trace_gram(self, Slow: np.ndarray, K: np.ndarray) -> float:
        """tr(S^{-1} G'G) from the per-target sums ``K`` of :meth:`subtract_lower` (``gram``)."""
        return float(np.sum(K * self.weight * self._lower_values(Slow)))

    def trace(self, Slow: np.ndarray, Ga: np.ndarray, Gb: np.ndarray) -> float:
        """tr(S^{-1} G_a'G_b) from the lower triangle of S^{-1} (``Slow``) and the values of
        columns a and b of the first term's G at the pattern (nnzB,)."""
        K = self._sum(Ga, Gb)
        K += K if Ga is Gb else self._sum(Gb, Ga)
        return self.trace_gram(Slow, K)


class ScalarPlan:
    r"""The pair map's sums precomputed up to theta, for an LMM whose terms are all scalar.

    With fixed weights and scalar terms, :math:`B_p = \theta_1\theta_{k(c_p)} N_p` and
    :math:`A_j = 1 + \theta_1^2 a_j` with theta-free :math:`N_p = \sum_{i \in p} w_i z_{1i}z_{ki}`
    and :math:`a_j = \sum_{i \in j} w_i z_{1i}^2`, so for a target t = (c, c')

    .. math::
       (B'G)_t = \theta_1^2\theta_{k(c)}\theta_{k(c')} \sum_m \frac{P_{tm}}{1 + \theta_1^2 a_m},
       \qquad (G'G)_t = \theta_1^2\theta_{k(c)}\theta_{k(c')} \sum_m
       \frac{P_{tm}}{(1 + \theta_1^2 a_m)^2},

    where :math:`a_m` are the distinct values of :math:`a_j` (a few dozen where the first
    factor's levels differ only in their numbers of rows) and :math:`P_{tm}` sums
    :math:`N_pN_{p'}` over the pairs of pairs of target t in levels with :math:`a_j = a_m`. An
    evaluation is one sparse product ``P @ [f, f²]`` (sequential, where the pair map scatters).
    On InstEval (86 distinct :math:`a_j`): :math:`1.08\cdot10^6` entries of ``P`` for
    :math:`1.8\cdot10^6` pairs of pairs, 4.7 ms per evaluation for both sums against 22 ms by
    the pair map, built once in about 0.1 s.
    """

    def __init__(self, pm: PairMap, pair_lev: np.ndarray, a_lev: np.ndarray, Np: np.ndarray, col_term: np.ndarray,
                 Q2: int):
        import scipy.sparse as sp

        self.am, minv = np.unique(a_lev, return_inverse=True)
        nT, nm = pm.tkey.size, self.am.size
        vals = np.repeat(Np, pm.reps)
        vals *= Np[pm.p2]
        m = np.repeat(minv[pair_lev], pm.reps)
        P = sp.csr_matrix((vals, (pm.tinv, m)), shape=(nT, nm))
        P.sum_duplicates()
        self.P = P
        self.trow = col_term[pm.tkey // Q2]
        self.tcol = col_term[pm.tkey % Q2]

    @property
    def nnz(self) -> int:
        return int(self.P.nnz)

    def sums(self, theta1: float, theta_rest: np.ndarray, gram: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(B'G) per target and, with ``gram``, 2 (G'G) per target (the convention of
        :meth:`PairMap.subtract_lower`); ``theta_rest`` holds the remaining terms' thetas."""
        f = 1.0 / (1.0 + theta1 * theta1 * self.am)
        Y = self.P @ (np.column_stack([f, f * f]) if gram else f[:, None])
        scale = theta1 * theta1 * theta_rest[self.trow] * theta_rest[self.tcol]
        return scale * Y[:, 0], (2.0 * scale * Y[:, 1] if gram else None)
