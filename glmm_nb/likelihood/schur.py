r"""Blocked Cholesky factor of :math:`M = I + \tilde Z'W\tilde Z` for several random-effect terms.

Order the columns of M as the first term's (the grouping factor with most levels, lme4's
order; ``J1`` levels of ``q1`` columns) and then all the others (``Q2`` columns):

.. math::
   M = \begin{pmatrix} A & B \\ B' & D \end{pmatrix}, \qquad
   A = \mathrm{blockdiag}_j(A_j), \qquad S = D - B'A^{-1}B = L_{22}L_{22}',

so :math:`\log|M| = \sum_j \log|A_j| + \log|S|` and, with :math:`G = A^{-1}B`,
:math:`M^{-1} = \begin{pmatrix} A^{-1} + G S^{-1} G' & -G S^{-1} \\ -S^{-1}G' & S^{-1}
\end{pmatrix}`. This is MixedModels.jl's blocked L with two blocks: the first factor's blocks
:math:`A_j` are factored as a batch of q1 × q1 Cholesky factors (never fill), ``B`` and ``G``
are kept at the pattern of the data (one entry per distinct (level, column) pair, so memory is
proportional to the data), and the Schur complement ``S`` is factored either

* densely by LAPACK (Q2 × Q2; crossed designs, where ``S`` fills in), or
* as a sparse LDL' with a minimum-degree ordering and its selected inverse
  (:mod:`glmm_nb.likelihood.sparse_ldl`) when ``S`` has at least ``SPARSE_MIN_Q2`` columns and
  its factor would hold less than ``SPARSE_MAX_FILL`` of a dense one (nested designs, sparse
  crossings: a second factor of any size).

Nothing of size J1 × Q2 or n × Q is ever formed.

Why this and not a general sparse Cholesky (chosen by measurement). After the first factor is
eliminated, crossed designs (users × items, students × lecturers) make ``S`` dense: every pair
of items rated by a common user is coupled. A CHOLMOD-like supernodal factorization with a
fill-reducing ordering (lme4) ends with the same dense trailing block, so the blocked form does
the same arithmetic without a symbolic phase and with BLAS-3 on the whole block; the sparse
LDL' covers the designs where ``S`` stays sparse. Measured on a MovieLens-1M-shaped design
(6,040 × 3,706, 1.0 M rows, :math:`\sum_j n_j^2 = 4.1\cdot10^8`): forming ``S`` takes
0.35–0.8 s of CPU with the compiled pattern loop (:mod:`glmm_nb.likelihood.kernels`) against
1.8 s for scipy's sparse product ``B'G`` and 2.2–2.8 s for a dense ``syrk`` over the rating
matrix; LAPACK factors ``S`` in 0.45 s. lme4 (CHOLMOD) took 827 s of CPU for the same REML fit,
33 s per deviance evaluation. No PyPI package offers CHOLMOD as a binary wheel for Linux x86-64
and arm64 (scikit-sparse needs a system SuiteSparse; cvxopt/kvxopt bundle it under the GPL),
and scipy's SuperLU is an LU without selected inversion (used here only for its ordering).

Designs with ``sum_j n_j^2`` below ``NUMBA_MIN_WORK`` (e.g. InstEval) form ``S`` — and, for
the LMM gradient, the sums of :math:`G'G` its trace needs — in one pass of a precomputed pair
map (:mod:`glmm_nb.likelihood.pairmap`: numpy gathers and ``bincount``) and never import
numba; scipy's sparse products remain the fallback where the map's index arrays would be large
(``PAIRMAP_MAX_PAIRS``). Measured on InstEval (:math:`1.8\cdot10^6` pairs of pairs): 15–30 ms
per evaluation for ``S`` and :math:`G'G` together, against 18–24 ms for ``S`` alone by scipy's
``B'G`` plus about 20 ms for the trace's ``G'G``, and 4.7 ms where an LMM's terms are all
scalar (the map's sums precomputed up to theta, ``SCALAR_PLAN``); importing numba and loading
its cached kernels costs 0.47 s, more than a whole InstEval fit spends forming ``S``. Larger
designs use the compiled loops (numba, cached on disk).

Threads. The core runs single-threaded BLAS (small blocks); ``dpotrf``/``dpotri`` of a dense
block with at least ``THREADED_MIN_Q2`` columns, and the compiled pattern loops, run on the
cores that are idle now, within the caller's limits (:mod:`glmm_nb.likelihood.threads`, which
says why and what threads on busy cores cost). Measured (quiet machine, 2 cores, OpenBLAS):
InstEval's 1,156-column block takes 51–57 ms for factor and inverse on one thread and 31–34 ms
on two; 3,706 columns take 0.97–1.08 s and 0.62–0.74 s.

Selected inverse. The Laplace gradient, the LMM gradient and the conditional covariances
need :math:`M^{-1}` only at the pattern of the data: :math:`S^{-1}` (dense, ``dpotri``, read
from its lower triangle and mirrored only where whole rows are needed, or the
sparse selected inverse), :math:`H = GS^{-1}` at the pairs of ``B`` (one dot product of length
:math:`n_j` per pair, :math:`\sum_j n_j^2` work in all, the same as forming ``S``), and the
first factor's diagonal blocks :math:`A_j^{-1} + \sum_{p \in j} G_p H_p'`. The LMM gradient
needs only their sum, :math:`\sum_j A_j^{-1} + [\mathrm{tr}(S^{-1}G_a'G_b)]_{ab}`, with
:math:`G'G` formed in the same pass as ``S`` (``gram=True``).

Memory. ``S`` (then its factor) and, when asked for, :math:`S^{-1}` (and one work array of the
same size for the LMM gradient's traces) are the only dense arrays: :math:`16`–:math:`24\,Q_2^2`
bytes. Where that exceeds the memory available the factorization raises a
:class:`~glmm_nb.errors.ModelError` naming the terms of the dense block and the memory it
needs, before allocating anything.
"""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from ..errors import ModelError
from .threads import KERNEL_LOCK, blas_threads, idle_threads, kernel_threads

__all__ = ["CrossStructure", "SchurFactor", "block_chol", "available_memory", "idle_threads", "padded_rows",
           "unpad_rows", "KERNEL_LOCK"]

NUMBA_MIN_WORK = 20_000_000  # sum_j n_j^2 q1^2 above which the compiled kernels are used
THREADED_MIN_Q2 = 1000  # dense blocks at least this large use every core (LAPACK; measured below)
MEMORY_FRACTION = 0.8  # of the memory available, for the dense block and its inverse
MEMORY_LIMIT: int | None = None  # bytes; overrides the measured limit (tests)
CHUNK_ENTRIES = 4_000_000  # dense scratch per chunk in the scipy fallback of H
SPARSE_MIN_Q2 = 1500  # a sparse LDL' of S is considered from this many columns on
SPARSE_MAX_FILL = 0.05  # ... and used while its factor holds less than this share of Q2²/2
SPARSE_MAX_PAIRS = 0.25  # not tried when the levels meet more than this × Q2² column pairs
SCALAR_PLAN = True  # LMMs with scalar terms: the pair map's sums precomputed up to theta
PAIRMAP_MAX_PAIRS = 12_000_000  # pairs of pairs up to which S is formed by the pair map (16 B each)


def available_memory() -> int:
    """Bytes of memory available to this process (``MemAvailable``), or all physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))  # pragma: no cover


def block_chol(codes: np.ndarray, W: np.ndarray, vals: np.ndarray, q: int, J: int, compiled: bool = False):
    """Per-level blocks ``I + sum_i W_i v_i v_i'`` (J, q, q) of one term: Cholesky factors,
    log-determinant and inverses, batched over levels. ``compiled`` (structured terms): small
    blocks through :mod:`.blockchol` (numba, loaded only then: a plain fit never loads numba)."""
    if compiled and 2 <= q <= BINCOUNT_MAX_Q:  # many small blocks, without numpy's per-block overhead
        from .blockchol import block_factor

        return block_factor(codes, W, vals, q, J)
    if q <= BINCOUNT_MAX_Q:
        M = np.empty((J, q, q))
        for a in range(q):
            for b in range(a + 1):
                acc = np.bincount(codes, weights=W * vals[:, a] * vals[:, b], minlength=J)
                M[:, a, b] = acc
                M[:, b, a] = acc
    else:  # many columns (a spatial term): rows padded per level, one batched product
        V = padded_rows(codes, J, vals)
        Vw = padded_rows(codes, J, vals * W[:, None])
        if 2 * V.shape[1] <= q:  # few rows per level: Woodbury on the n_j × n_j side
            return _low_rank_blocks(V, Vw, q)
        M = np.matmul(Vw.transpose(0, 2, 1), V)
    M[:, np.arange(q), np.arange(q)] += 1.0
    if q == 1:
        if not np.all(M > 0):  # as Cholesky would: negative weights made a block indefinite
            raise np.linalg.LinAlgError("M is not positive definite")
        L = np.sqrt(M)
        return L, float(np.sum(np.log(M[:, 0, 0]))), 1.0 / M
    L = np.linalg.cholesky(M)
    logdet = float(2.0 * np.sum(np.log(np.einsum("jaa->ja", L))))
    if J == 1 and q > BINCOUNT_MAX_Q:  # one large block (a spatial field): LAPACK's inverse from L
        Mi, info = lapack.dpotri(L[0], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("M is not positive definite")
        Mi = np.tril(Mi) + np.tril(Mi, -1).T
        return L, logdet, Mi[None]
    Linv = np.linalg.inv(L)
    if q <= BINCOUNT_MAX_Q:
        return L, logdet, np.einsum("jka,jkb->jab", Linv, Linv)
    return L, logdet, np.matmul(Linv.transpose(0, 2, 1), Linv)


BINCOUNT_MAX_Q = 16  # larger blocks are summed by a batched product of padded rows


def _low_rank_blocks(V: np.ndarray, Vw: np.ndarray, q: int):
    r"""``(None, logdet, Minv)`` of blocks :math:`M_j = I_q + V_j'W_jV_j` whose levels have at most
    half as many rows as columns (an ou() term over many time points, few per subject), by
    Woodbury and Sylvester on the small side, :math:`K_j = I + W_jV_jV_j'` (n_max × n_max; padded
    rows are zero and give identity rows): :math:`M_j^{-1} = I - V_j'K_j^{-1}W_jV_j`,
    :math:`|M_j| = |K_j|`. No Cholesky factor of M is formed (None: AGQ never meets such a term)."""
    K = np.matmul(Vw, V.transpose(0, 2, 1))
    K[:, np.arange(K.shape[1]), np.arange(K.shape[1])] += 1.0
    sign, logdets = np.linalg.slogdet(K)
    if not np.all(sign > 0):
        raise np.linalg.LinAlgError("M is not positive definite")
    X = np.linalg.solve(K, Vw)  # (J, n_max, q)
    Minv = -np.matmul(V.transpose(0, 2, 1), X)
    Minv[:, np.arange(q), np.arange(q)] += 1.0
    return None, float(np.sum(logdets)), 0.5 * (Minv + Minv.transpose(0, 2, 1))


def padded_rows(codes: np.ndarray, J: int, A: np.ndarray) -> np.ndarray:
    """Rows of ``A`` (n, k) grouped by level into a zero-padded (J, n_max, k) array, in row order
    within each level (a scatter, no loop over levels); :func:`unpad_rows` inverts it."""
    order, slot, nmax = _pad_index(codes, J)
    out = np.zeros((J, nmax, A.shape[1]))
    out[codes[order], slot] = A[order]
    return out


def unpad_rows(codes: np.ndarray, J: int, P: np.ndarray) -> np.ndarray:
    """The (n, k) rows of a padded (J, n_max, k) array, back in data order."""
    order, slot, _ = _pad_index(codes, J)
    out = np.empty((codes.size, P.shape[2]))
    out[order] = P[codes[order], slot]
    return out


def _pad_index(codes: np.ndarray, J: int):
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=J)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    slot = np.arange(codes.size) - starts[codes[order]]
    return order, slot, int(counts.max()) if counts.size else 0


def _ptr(keys: np.ndarray, m: int) -> np.ndarray:
    out = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=m), out=out[1:])
    return out


def _tril_dot(A: np.ndarray, K: np.ndarray, bs: int = 512) -> tuple[float, float]:
    """Sums of A * K over the lower triangle and over the strict lower triangle, by row blocks."""
    low = diag = 0.0
    for i in range(0, A.shape[0], bs):
        low += float(np.sum(np.tril(A[i : i + bs, : i + bs] * K[i : i + bs, : i + bs], i)))
        diag += float(np.einsum("ii->", A[i : i + bs, i : i + bs] * K[i : i + bs, i : i + bs]))
    return low, low - diag


class CrossStructure:
    """Index structure (theta-free) of the coupling between the first term and the rest.

    Built once per model. ``bp`` (n, s2) maps each row's remaining slots to the pairs of
    ``B``; ``dkey``/``dinv`` are the lower-triangle entries of ``D`` met within rows.
    """

    def __init__(self, rs):
        q1, J1 = rs.q[0], rs.nlev[0]
        self.q1, self.J1 = q1, J1
        self.off1 = J1 * q1
        self.Q2 = Q2 = rs.Q - self.off1
        self.s2 = s2 = rs.s - q1
        n = rs.n
        self.codes = codes = rs.terms[0].codes
        c2 = rs.cols[:, q1:] - self.off1
        self.c2 = c2
        ukey, inv = np.unique((codes.astype(np.int64)[:, None] * Q2 + c2).ravel(), return_inverse=True)
        self.bp = inv.reshape(n, s2)
        self.pair_lev = ukey // Q2
        self.pair_col = ukey % Q2
        self.nnzB = ukey.size
        self.jptr = _ptr(self.pair_lev, J1)
        self.cpairs = np.argsort(self.pair_col, kind="stable").astype(np.int64)
        self.cptr = _ptr(self.pair_col, Q2)
        cnt = np.diff(self.jptr).astype(float)
        self.work = float(np.sum(cnt**2)) * q1 * q1
        # D's entries met within rows, lower triangle (row >= column), as flat C-order indices
        self.tu = [(t, u) for t in range(s2) for u in range(t, s2)]
        dk = np.empty((n, len(self.tu)), dtype=np.int64)
        for m, (t, u) in enumerate(self.tu):
            dk[:, m] = np.maximum(c2[:, t], c2[:, u]) * Q2 + np.minimum(c2[:, t], c2[:, u])
        self.dkey, dinv = np.unique(dk.ravel(), return_inverse=True)
        self.dinv = dinv.reshape(n, len(self.tu))
        # G = A^{-1}B as CSR (rows (j, a)); data = Gv.ravel()[csr_perm] (q1 = 1: B's own order)
        if q1 == 1:
            self.csr_perm, self.csr_indices, self.csr_indptr = None, self.pair_col, self.jptr
        else:
            rows = (self.pair_lev[None, :] * q1 + np.arange(q1)[:, None]).ravel()
            cols = np.tile(self.pair_col, q1)
            perm = np.lexsort((cols, rows))
            self.csr_perm = perm
            self.csr_indices = cols[perm]
            self.csr_indptr = _ptr(rows, self.off1)
        self._plan = None  # (weights, ScalarPlan or None)
        first = rs.terms[0].text
        rest = list(dict.fromkeys(t.text for t in rs.terms[1:]))
        self.first_text, self.rest_text = first, rest

    @cached_property
    def sparse(self):
        """A :class:`~glmm_nb.likelihood.sparse_ldl.SparseLDL` when S is large and its factor
        sparse, else None (dense block)."""
        Q2 = self.Q2
        pairs = self.work / (self.q1 * self.q1)
        if Q2 < SPARSE_MIN_Q2 or pairs > SPARSE_MAX_PAIRS * Q2 * Q2:
            return None
        from .sparse_ldl import SparseLDL, level_pairs

        diag = np.arange(Q2, dtype=np.int64) * (Q2 + 1)
        keys = np.unique(np.concatenate([level_pairs(self.jptr, self.pair_col, Q2), self.dkey, diag]))
        ldl = SparseLDL(Q2, keys)
        if ldl.nnzL > SPARSE_MAX_FILL * Q2 * Q2 / 2:
            return None
        ldl.dpos = ldl.positions(self.dkey)
        ldl.diagpos = ldl.positions(diag)[0]
        return ldl

    @cached_property
    def pairmap(self):
        """A :class:`~glmm_nb.likelihood.pairmap.PairMap` for the dense path below the compiled
        kernels' threshold (when its index arrays stay small), else None."""
        from .pairmap import PairMap, pair_count

        if self.work >= NUMBA_MIN_WORK or pair_count(self.jptr) > PAIRMAP_MAX_PAIRS:
            return None
        return PairMap(self.jptr, self.pair_col, self.Q2)

    def scalar_plan(self, rs, W: np.ndarray):
        """A :class:`~glmm_nb.likelihood.pairmap.ScalarPlan` for these (fixed) weights where every
        term is scalar and the plan is smaller than the pair map, else None (kept for ``W``)."""
        if self._plan is not None and self._plan[0] is W:
            return self._plan[1]
        plan = None
        pm = self.pairmap
        if SCALAR_PLAN and pm is not None and all(q == 1 for q in rs.q):
            from .pairmap import ScalarPlan

            z = [np.asarray(rs.Zv[k][:, 0], dtype=float) for k in range(len(rs.q))]
            a_lev = np.bincount(self.codes, weights=W * z[0] ** 2, minlength=self.J1)
            wz = (W * z[0])[:, None] * np.column_stack(z[1:])
            Np = np.bincount(self.bp.ravel(), weights=wz.ravel(), minlength=self.nnzB)
            col_term = np.repeat(np.arange(len(rs.q) - 1), rs.nlev[1:])
            if np.unique(a_lev).size * 4 < self.J1:  # levels share their a_j: P is small
                plan = ScalarPlan(pm, self.pair_lev, a_lev, Np, col_term, self.Q2)
        self._plan = (W, plan)
        return plan

    def csr(self, v: np.ndarray) -> sp.csr_matrix:
        """A (J1 q1 × Q2) CSR matrix with values ``v`` (q1, nnzB) at B's pattern."""
        data = v[0] if self.csr_perm is None else v.ravel()[self.csr_perm]
        return sp.csr_matrix((data, self.csr_indices, self.csr_indptr), shape=(self.off1, self.Q2))

    def check_memory(self) -> None:
        """Raise a ModelError before allocating a dense block (with its inverse and, for the
        compiled path's gradient traces, one work array) that would not fit in memory."""
        need = (24.0 if self.work >= NUMBA_MIN_WORK else 16.0) * self.Q2 * self.Q2
        limit = MEMORY_LIMIT if MEMORY_LIMIT is not None else MEMORY_FRACTION * available_memory()
        if need > limit:
            terms = " + ".join(self.rest_text)
            raise ModelError(
                f"the random effects of {terms} ({self.Q2:,} columns) are coupled through "
                f"{self.first_text}: an exact likelihood needs their dense {self.Q2:,} × "
                f"{self.Q2:,} block, {need / 2**30:.1f} GB with its inverse and work space, more than the "
                f"{limit / 2**30:.1f} GB of memory available. Fit fewer levels of "
                f"{self.rest_text[0]} (e.g. drop rare ones) or a simpler random-effect structure."
            )


class SchurFactor:
    """M = I + Z~'WZ~ for several terms by block elimination of the first term.

    Attributes
    ----------
    logdet : float
        log|M|.
    """

    def __init__(self, rs, vals: np.ndarray, W: np.ndarray, gram: bool = False, theta: np.ndarray | None = None):
        cs = rs.cross
        self._K = None
        self.rs, self.cs = rs, cs
        q1, Q2, nnzB = cs.q1, cs.Q2, cs.nnzB
        self.q1, self.J1, self.off1, self.Q2 = q1, cs.J1, cs.off1, Q2
        self.dense_block = Q2  # the Factorization contract's size of the (Schur) block
        _L1, self.logdet_A, self.Ainv = block_chol(cs.codes, W, vals, q1, cs.J1)
        rest = vals[:, q1:]
        Bv = np.empty((q1, nnzB))
        for a in range(q1):
            Bv[a] = np.bincount(cs.bp.ravel(), weights=((W * vals[:, a])[:, None] * rest).ravel(),
                                minlength=nnzB)
        if q1 == 1:
            Gv = Bv * self.Ainv[cs.pair_lev, 0, 0]
        else:
            Gv = np.einsum("pab,bp->ap", self.Ainv[cs.pair_lev], Bv)
        self.Gv = Gv
        self.G = cs.csr(Gv)
        prod = np.empty(cs.dinv.shape)
        for m, (t, u) in enumerate(cs.tu):
            prod[:, m] = W * rest[:, t] * rest[:, u]
        Dv = np.bincount(cs.dinv.ravel(), weights=prod.ravel(), minlength=cs.dkey.size)
        self.ldl = cs.sparse
        if self.ldl is not None:
            self._factor_sparse(Bv, Gv, Dv)
        else:
            self._factor_dense(Bv, Gv, Dv, gram, theta, W)
        self._Sinv = None
        self._Slow = None
        self._H = None
        self._B11 = None

    def _factor_dense(self, Bv, Gv, Dv, gram: bool = False, theta=None, W=None) -> None:
        cs, Q2 = self.cs, self.Q2
        cs.check_memory()
        S = np.zeros((Q2, Q2))
        S.ravel()[cs.dkey] = Dv
        S.ravel()[:: Q2 + 1] += 1.0
        if cs.work >= NUMBA_MIN_WORK and gram and self.q1 == 1:
            from .kernels import schur_gram_lower

            self._K = np.zeros((Q2, Q2))  # G'G (lower), for inv_blocks_sum, in the same pass
            with kernel_threads():
                schur_gram_lower(S, self._K, cs.cptr, cs.cpairs, cs.pair_lev, cs.pair_col, cs.jptr, Bv[0], Gv[0])
        elif cs.work >= NUMBA_MIN_WORK:
            from .kernels import schur_lower

            with kernel_threads():
                schur_lower(S, cs.cptr, cs.cpairs, cs.pair_lev, cs.pair_col, cs.jptr, Bv, Gv)
        elif cs.pairmap is not None:  # G'G per target for the trace, in the same pass
            plan = cs.scalar_plan(self.rs, W) if theta is not None else None
            if plan is not None:  # fixed weights, scalar terms: sums precomputed up to theta
                th = np.array([T[0, 0] for T in self.rs.Ts(theta)])
                BtG, self._K = plan.sums(th[0], th[1:], gram)
                S.reshape(-1)[cs.pairmap.tkey] -= BtG
            else:
                self._K = cs.pairmap.subtract_lower(S, Bv, Gv, gram=gram and self.q1 == 1)
        else:
            BtG = (cs.csr(Bv).T @ self.G).tocoo()
            low = BtG.row >= BtG.col
            S[BtG.row[low], BtG.col[low]] -= BtG.data[low]
        with blas_threads(Q2, THREADED_MIN_Q2):
            U, info = lapack.dpotrf(S.T, lower=0, overwrite_a=1, clean=0)
        if info != 0:
            raise np.linalg.LinAlgError("the Schur complement is not positive definite")
        self.U = U  # F-ordered upper factor: U'U = S (its C-ordered lower triangle is L22)
        self.logdet = self.logdet_A + float(2.0 * np.sum(np.log(np.diagonal(U))))

    def _factor_sparse(self, Bv, Gv, Dv) -> None:
        from .sparse_ldl import full_schur_values, ldl_numeric

        cs, ldl, Q2 = self.cs, self.ldl, self.Q2
        x = np.zeros(ldl.Ai.size)
        lo, up = ldl.dpos
        np.add.at(x, lo, Dv)
        off = lo != up
        np.add.at(x, up[off], Dv[off])
        x[ldl.diagpos] += 1.0
        full_schur_values(ldl.Ap, ldl.Ai, x, cs.jptr, cs.pair_col, Bv, Gv)
        self.Li = np.empty(ldl.nnzL, np.int64)
        self.Lx = np.empty(ldl.nnzL)
        self.D = np.empty(Q2)
        k = ldl_numeric(Q2, ldl.Ap, ldl.Ai, x, ldl.Lp, ldl.parent, ldl.P, ldl.Pinv, self.Li, self.Lx, self.D)
        if k >= 0:
            raise np.linalg.LinAlgError("the Schur complement is not positive definite")
        self.logdet = self.logdet_A + float(np.sum(np.log(self.D)))
        self._Z = None

    def _solve_S(self, t: np.ndarray) -> np.ndarray:
        if self.ldl is None:
            return lapack.dpotrs(self.U, t, lower=0)[0]
        from .sparse_ldl import ldl_solve

        P = self.ldl.P
        y = np.ascontiguousarray(t[P].reshape(self.Q2, -1))
        ldl_solve(self.ldl.Lp, self.Li, self.Lx, self.D, y)
        out = np.empty_like(y)
        out[P] = y
        return out.reshape(t.shape)

    @property
    def Z(self) -> tuple[np.ndarray, np.ndarray]:
        """Sparse path: S^{-1} on the pattern of L (strictly lower values, diagonal)."""
        if self._Z is None:
            from .sparse_ldl import ldl_selinv

            Zx, Zd = np.empty(self.ldl.nnzL), np.empty(self.Q2)
            ldl_selinv(self.ldl.Lp, self.Li, self.Lx, self.D, Zx, Zd)
            self._Z = (Zx, Zd)
        return self._Z

    def _s_entries(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """S^{-1}[r, c] for matching index arrays."""
        if self.ldl is None:  # from the lower triangle: no need to mirror S^{-1}
            return self.Slow[np.maximum(r, c), np.minimum(r, c)]
        from .sparse_ldl import sel_entries

        Zx, Zd = self.Z
        shape = np.broadcast(r, c).shape
        r1 = np.ascontiguousarray(np.broadcast_to(r, shape).ravel(), dtype=np.int64)
        c1 = np.ascontiguousarray(np.broadcast_to(c, shape).ravel(), dtype=np.int64)
        out = np.empty(r1.size)
        sel_entries(self.ldl.Lp, self.Li, Zx, Zd, self.ldl.Pinv, r1, c1, out)
        return out.reshape(shape)

    # ----------------------------------------------------------------------------- solves
    def _ainv(self, r1: np.ndarray) -> np.ndarray:
        J1, q1 = self.J1, self.q1
        if q1 == 1:
            d = self.Ainv[:, 0, 0]
            return r1 * (d if r1.ndim == 1 else d[:, None])
        if r1.ndim == 1:
            return np.einsum("jab,jb->ja", self.Ainv, r1.reshape(J1, q1)).ravel()
        p = r1.shape[1]
        return np.einsum("jab,jbp->jap", self.Ainv, r1.reshape(J1, q1, p)).reshape(J1 * q1, p)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """M^{-1} rhs for rhs of shape (Q,) or (Q, p)."""
        r1, r2 = rhs[: self.off1], rhs[self.off1 :]
        t = np.asarray(r2 - self.G.T @ r1, dtype=float)
        x2 = self._solve_S(t)
        x1 = self._ainv(r1) - self.G @ x2
        return np.concatenate([x1, x2])

    # --------------------------------------------------------------- selected inverse
    @property
    def Slow(self) -> np.ndarray:
        """S^{-1} with a valid lower triangle (C-ordered; the upper triangle holds leftovers
        until :attr:`Sinv` mirrors it in place): all the traces and entries need."""
        if self._Slow is None:
            C = np.array(self.U, order="F", copy=True)
            with blas_threads(self.Q2, THREADED_MIN_Q2):
                Ci, info = lapack.dpotri(C, lower=0, overwrite_c=1)
            if info != 0:  # pragma: no cover - U came from a successful dpotrf
                raise np.linalg.LinAlgError("dpotri failed")
            self._Slow = Ci.T  # C-ordered, lower triangle valid
        return self._Slow

    @property
    def Sinv(self) -> np.ndarray:
        """S^{-1}, dense and symmetric (Q2 × Q2): :attr:`Slow` mirrored in place."""
        if self._Sinv is None:
            Q2, Sinv = self.Q2, self.Slow
            bs = 512
            for i in range(0, Q2, bs):  # mirror the lower triangle blockwise (no Q2² temporary)
                Sinv[:i, i : i + bs] = Sinv[i : i + bs, :i].T
                blk = Sinv[i : i + bs, i : i + bs]
                blk[...] = np.tril(blk) + np.tril(blk, -1).T
            self._Sinv = Sinv
        return self._Sinv

    @property
    def H(self) -> np.ndarray:
        """(G S^{-1})[(j, a), c] at the pairs (j, c) of B, shape (q1, nnzB)."""
        if self._H is None:
            cs = self.cs
            H = np.empty((self.q1, cs.nnzB))
            if self.ldl is not None:
                from .sparse_ldl import sel_pattern_h

                Zx, Zd = self.Z
                sel_pattern_h(self.ldl.Lp, self.Li, Zx, Zd, self.ldl.Pinv, cs.jptr, cs.pair_col, self.Gv, H)
                self._H = H
                return H
            Sinv = self.Sinv
            if cs.work >= NUMBA_MIN_WORK:
                from .kernels import pattern_h

                with kernel_threads():
                    pattern_h(Sinv, cs.cptr, cs.cpairs, cs.pair_lev, cs.pair_col, cs.jptr, self.Gv, H)
            else:
                q1 = self.q1
                step = max(1, CHUNK_ENTRIES // max(1, q1 * self.Q2))
                for j0 in range(0, self.J1, step):
                    j1 = min(self.J1, j0 + step)
                    Hd = np.asarray(self.G[j0 * q1 : j1 * q1] @ Sinv)
                    pr = slice(cs.jptr[j0], cs.jptr[j1])
                    lev, col = cs.pair_lev[pr] - j0, cs.pair_col[pr]
                    for a in range(q1):
                        H[a, pr] = Hd[lev * q1 + a, col]
            self._H = H
        return self._H

    @property
    def B11(self) -> np.ndarray:
        """Diagonal blocks of M^{-1} for the first term: A_j^{-1} + G_j S^{-1} G_j', (J1, q1, q1)."""
        if self._B11 is None:
            cs, H, Gv, q1 = self.cs, self.H, self.Gv, self.q1
            B11 = self.Ainv.copy()
            for a in range(q1):
                for b in range(q1):
                    B11[:, a, b] += np.bincount(cs.pair_lev, weights=H[a] * Gv[b], minlength=self.J1)
            self._B11 = B11
        return self._B11

    def inv_blocks_sum(self, k: int) -> np.ndarray:
        r"""Sum over levels of the diagonal blocks of M^{-1} for term ``k``, (q_k, q_k).

        For the first term this is :math:`\sum_j A_j^{-1} + [\mathrm{tr}(S^{-1}G_a'G_b)]_{ab}`,
        which needs neither H nor the per-level blocks.
        """
        if k > 0:
            return self.inv_blocks_term(k).sum(axis=0)
        if self._B11 is not None or self.ldl is not None:
            return self.B11.sum(axis=0)
        cs, q1, Sinv = self.cs, self.q1, self.Slow
        if cs.pairmap is not None:
            out = self.Ainv.sum(axis=0)
            if self._K is not None:
                out += cs.pairmap.trace_gram(Sinv, self._K)
                self._K = None
                return out
            for a in range(q1):
                for b in range(a + 1):
                    out[a, b] += cs.pairmap.trace(Sinv, self.Gv[a], self.Gv[b])
                    out[b, a] = out[a, b]
            return out
        if self._K is not None:
            low, strict = _tril_dot(Sinv, self._K)
            self._K = None
            return self.Ainv.sum(axis=0) + (low + strict)
        if cs.work >= NUMBA_MIN_WORK:  # K_ab = G_a'G_b (lower triangle) by the Schur kernel
            from .kernels import schur_lower

            out = self.Ainv.sum(axis=0)
            K = np.empty((self.Q2, self.Q2))
            low = {}
            for a in range(q1):
                for b in range(q1):
                    K[...] = 0.0
                    with kernel_threads():
                        schur_lower(K, cs.cptr, cs.cpairs, cs.pair_lev, cs.pair_col, cs.jptr,
                                    self.Gv[a : a + 1], self.Gv[b : b + 1])
                    low[a, b] = [-v for v in _tril_dot(Sinv, K)]
            for a in range(q1):
                for b in range(q1):
                    out[a, b] += low[a, b][0] + low[b, a][1]  # lower of K_ab, strict lower of K_ba
            return out
        Gk = [sp.csr_matrix((self.Gv[a], cs.pair_col, cs.jptr), shape=(self.J1, self.Q2)) for a in range(q1)]
        out = self.Ainv.sum(axis=0)
        for a in range(q1):
            for b in range(a + 1):
                K = (Gk[a].T @ Gk[b]).tocoo()
                out[a, b] += float(np.sum(self.Sinv[K.row, K.col] * K.data))
                out[b, a] = out[a, b]
        return out

    def inv_blocks_term(self, k: int) -> np.ndarray:
        """Diagonal blocks of M^{-1} for term ``k``, (J_k, q_k, q_k)."""
        if k == 0:
            return self.B11
        rs = self.rs
        q, J = rs.q[k], rs.nlev[k]
        idx = rs.offsets[k] - self.off1 + np.arange(J)[:, None] * q + np.arange(q)[None, :]
        return self._s_entries(idx[:, :, None], idx[:, None, :])

    def P(self, vals: np.ndarray) -> np.ndarray:
        """(Z~ M^{-1}) at each row's own columns, (n, s)."""
        cs, q1 = self.cs, self.q1
        s2 = cs.s2
        B11 = self.B11[cs.codes]  # (n, q1, q1)
        H = self.H
        v1, v2 = vals[:, :q1], vals[:, q1:]
        out = np.empty(vals.shape)
        out[:, :q1] = np.einsum("nab,na->nb", B11, v1)
        Hrow = [H[:, cs.bp[:, t]] for t in range(s2)]  # (q1, n): M^{-1}[(j,a), c_t] = -H
        for t in range(s2):
            out[:, :q1] -= (Hrow[t] * v2[:, t]).T
        for t in range(s2):
            acc = -np.einsum("an,na->n", Hrow[t], v1)
            for u in range(s2):
                acc += v2[:, u] * self._s_entries(cs.c2[:, u], cs.c2[:, t])
            out[:, q1 + t] = acc
        return out
