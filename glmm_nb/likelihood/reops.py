r"""Random-effect algebra shared by PIRLS, the Laplace and AGQ deviances and the LMM.

With :math:`\tilde Z = Z\Lambda(\theta)` every row of :math:`\tilde Z` has the same number ``s``
of structural non-zeros (one per random-effect column of every term), so it is stored as two
(n, s) arrays: ``cols`` (column indices into the Q spherical effects u) and ``vals``.
Nothing is ever a dense n × Q matrix.

The one matrix to factor is :math:`M = I + \tilde Z' W \tilde Z` (Q × Q, symmetric positive
definite). Two factorizations sit behind one interface:

* :class:`BlockFactor` — one term (one grouping factor): M is block diagonal with J blocks of
  q × q, built by ``bincount`` and factored as a batch of small Cholesky factors, vectorized
  over clusters;
* :class:`~glmm_nb.likelihood.schur.SchurFactor` — several terms (nested or crossed): the
  first term's blocks are eliminated as a batch and the Schur complement of the remaining
  terms is factored densely (MixedModels.jl's blocked Cholesky; why, and what it costs, in
  :mod:`glmm_nb.likelihood.schur`). Its memory is proportional to the data plus
  :math:`16 Q_2^2` bytes for the remaining terms' :math:`Q_2` columns; where that does not fit
  it raises :class:`~glmm_nb.errors.ModelError` naming the terms and the memory needed.

The factorization interface (``fac = rs.factor(vals, W)``), the same for both classes:

``fac.logdet``
    :math:`\log|M|`.
``fac.solve(rhs)``
    :math:`M^{-1}` rhs for rhs of shape (Q,) or (Q, p).
``fac.P(vals)``
    :math:`\tilde Z M^{-1}` restricted to each row's own columns, (n, s): the leverages
    :math:`h_i = \tilde z_i' M^{-1} \tilde z_i` and everything the analytic gradients need.
``fac.inv_blocks_term(k)``
    Diagonal blocks of :math:`M^{-1}` for term ``k``, (J_k, q_k, q_k): the conditional
    covariances of the spherical effects. (``BlockFactor.inv_blocks()`` is the older name for
    ``inv_blocks_term(0)``.)
``fac.inv_blocks_sum(k)``
    Their sum over levels, (q_k, q_k), cheaper than the blocks themselves for several terms
    (the LMM gradient's traces).
``fac.chol_blocks()``
    ``BlockFactor`` only: lower Cholesky factors of the blocks, for AGQ node placement.

Gradients. The deviance functions differentiate with respect to the entries of each T_k (the
``entries`` below: lme4's theta for unstructured terms); :meth:`ReStructure.theta_grad` chains
those to the term's own parameters (:meth:`glmm_nb.design.covstruct.Structure.chain`), the
identity for unstructured terms. :meth:`ReStructure.row_grad` forms the per-entry sums
:math:`\sum_i z_{ia} H_{i,b}` for all entries of a term at once (one product per term).
"""

from __future__ import annotations

from dataclasses import dataclass

from functools import cached_property

import numpy as np

from ..design import ModelSpec
from ..design.reterms import tril_index
from .schur import BINCOUNT_MAX_Q, CrossStructure, SchurFactor, block_chol, padded_rows, unpad_rows

__all__ = ["ReStructure", "BlockFactor", "SchurFactor", "keeps_states", "row_constant", "STATE_CACHE_BYTES"]


@dataclass(frozen=True, eq=False)
class ThetaEntry:
    """Where one theta entry acts: term ``k``, row ``a`` / column ``b`` of T_k."""

    term: int
    a: int
    b: int
    slot_b: int  # slot of column b of term k in the (n, s) arrays


class ReStructure:
    """Fixed index structure of Z for one model, and Z~ = Z Lambda(theta) on demand."""

    def __init__(self, spec: ModelSpec):
        self.n = spec.nobs
        self.terms = spec.terms
        self.q = [t.q for t in spec.terms]
        self.nlev = [t.nlevels for t in spec.terms]
        self.offsets = np.cumsum([0] + [q * j for q, j in zip(self.q, self.nlev)])
        self.Q = int(self.offsets[-1])
        self.s = int(sum(self.q))
        self.slot0 = np.cumsum([0] + self.q)
        cols = np.empty((self.n, self.s), dtype=np.int64)
        for k, t in enumerate(spec.terms):
            base = self.offsets[k] + t.codes * t.q
            for b in range(t.q):
                cols[:, self.slot0[k] + b] = base + b
        self.cols = cols
        self.Zv = [np.asarray(t.Zvals, dtype=float) for t in spec.terms]
        # position terms (pos()): one indicator per row — Z~ is a row gather of T, Z~'H a scatter
        self.pos_idx = [np.argmax(z, axis=1) if t.structure.coords is not None else None
                        for z, t in zip(self.Zv, spec.terms)]
        self.single = len(spec.terms) == 1
        self.codes0 = spec.terms[0].codes if self.single else None
        entries = []
        for k, t in enumerate(spec.terms):
            r, c = tril_index(t.q)
            for a, b in zip(r, c):
                entries.append(ThetaEntry(k, int(a), int(b), int(self.slot0[k] + b)))
        self.entries = entries
        self.ntau = len(entries)
        self.slices = spec.theta_slices()
        self.structured = any(t.structured for t in spec.terms)
        self._squares = None  # (vals, vals * vals) of the last factor(): PIRLS factors M several times per vals
        # a random intercept alone ((1 | g)): Z~ = theta in every row, held as a broadcast (n, 1)
        # view, so that Z~u is a gather of theta u, Z~'v theta times a bincount of v, and the blocks
        # of M are 1 + theta^2 sum W (see row_constant)
        self.intercept_only = (self.single and self.q[0] == 1 and self.pos_idx[0] is None
                               and bool(np.all(self.Zv[0] == 1.0)))

    # ---------------------------------------------------------------------------- theta
    def Ts(self, theta: np.ndarray) -> list[np.ndarray]:
        return [t.T(theta[sl]) for sl, t in zip(self.slices, self.terms)]

    def theta_grad(self, theta: np.ndarray, g_tau: np.ndarray) -> np.ndarray:
        """Gradient in theta from the gradient ``g_tau`` in the T entries (``entries`` order)."""
        if not self.structured:
            return g_tau
        out, start = [], 0
        for t, sl in zip(self.terms, self.slices):
            r, c = tril_index(t.q)
            G = np.zeros((t.q, t.q))
            G[r, c] = g_tau[start : start + r.size]
            start += r.size
            out.append(t.structure.chain(theta[sl], G))
        return np.concatenate(out)

    def row_grad(self, H: np.ndarray) -> np.ndarray:
        r"""Per entry (a, b) of term k: :math:`\sum_i z_{ia} H_{i, slot_b}`, (ntau,).

        A scalar term sums by numpy's pairwise sum (the result does not depend on the arrays'
        memory alignment, so two fits of the same data agree to the last bit); a vector term takes
        one matrix product.
        """
        if self.intercept_only:  # z = 1: the sum of H
            return np.array([np.sum(H[:, 0])])
        out = []
        for k, t in enumerate(self.terms):
            r, c = tril_index(t.q)
            if self.pos_idx[k] is not None:  # indicator rows: Z'H by a sort-free scatter of rows
                G = np.zeros((t.q, t.q))
                np.add.at(G, self.pos_idx[k], H[:, self.slot0[k] : self.slot0[k + 1]])
                out.append(G[r, c])
            elif r.size == 1:
                Zk, s0 = self.Zv[k], self.slot0[k]
                out.append(np.array([np.sum(Zk[:, a] * H[:, s0 + b]) for a, b in zip(r, c)]))
            else:
                out.append((self.Zv[k].T @ H[:, self.slot0[k] : self.slot0[k + 1]])[r, c])
        return np.concatenate(out)

    def vals(self, theta: np.ndarray) -> np.ndarray:
        """Non-zeros of Z~ = Z Lambda (n, s); read-only and of zero memory (a broadcast of
        theta) for a random intercept alone."""
        if self.intercept_only:
            return np.broadcast_to(np.float64(self.Ts(theta)[0][0, 0]), (self.n, 1))
        out = np.empty((self.n, self.s))
        for k, T in enumerate(self.Ts(theta)):
            if self.pos_idx[k] is not None:  # indicator rows: a gather of T's rows
                out[:, self.slot0[k] : self.slot0[k + 1]] = T[self.pos_idx[k]]
            elif T.shape == (1, 1):  # a scalar term: one product, not an (n, 1) @ (1, 1) matmul
                np.multiply(self.Zv[k][:, 0], T[0, 0], out=out[:, self.slot0[k]])
            else:
                out[:, self.slot0[k] : self.slot0[k + 1]] = self.Zv[k] @ T
        return out

    # ----------------------------------------------------------------------- products
    def mult(self, vals: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Z~ u, (n,)."""
        c = row_constant(vals)
        if c is not None:
            return (c * u)[self.codes0]
        if self.s == 1:
            return vals[:, 0] * u[self.cols[:, 0]]
        return np.einsum("ns,ns->n", vals, u[self.cols])

    def tmult(self, vals: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Z~' v for v of shape (n,) → (Q,), or (n, p) → (Q, p)."""
        c = row_constant(vals)
        if c is not None and v.ndim == 1:
            return c * np.bincount(self.codes0, weights=v, minlength=self.Q)
        if v.ndim == 1 and self.structured:  # compiled: the same sums as the bincount, no temporaries
            from .blockchol import scatter_add

            return scatter_add(self.cols, vals, v, self.Q)
        if v.ndim == 1:
            return np.bincount(
                self.cols.ravel(), weights=(vals * v[:, None]).ravel(), minlength=self.Q
            )
        out = np.empty((self.Q, v.shape[1]))
        for j in range(v.shape[1]):
            out[:, j] = self.tmult(vals, v[:, j])
        return out

    def vals_change(self, vals: np.ndarray, vals0: np.ndarray) -> np.ndarray:
        """``vals - vals0`` (a broadcast again where both are one number per row)."""
        c, c0 = row_constant(vals), row_constant(vals0)
        if c is not None and c0 is not None:
            return np.broadcast_to(np.float64(c - c0), vals.shape)
        return vals - vals0

    def squares(self, vals: np.ndarray) -> np.ndarray:
        """``vals * vals``, kept for the last ``vals`` array (a cache: PIRLS factors M at several
        weights for one theta)."""
        hit = self._squares
        if hit is None or hit[0] is not vals:
            hit = self._squares = (vals, vals * vals)
        return hit[1]

    @cached_property
    def cross(self) -> CrossStructure:
        """Index structure of the first term's coupling with the others (several terms)."""
        return CrossStructure(self)

    def factor(self, vals: np.ndarray, W: np.ndarray, gram: bool = False, theta: np.ndarray | None = None):
        """Factor M = I + Z~'WZ~ for these values of Z~ and weights (see the module docstring).

        ``gram=True`` hints that ``inv_blocks_sum`` will be asked for (the LMM gradient), so
        the Schur factorization forms what it needs in the same pass as S. ``theta`` (with
        ``vals = self.vals(theta)`` and weights fixed between calls: the LMM) lets it use sums
        precomputed up to theta.
        """
        if self.single:
            return BlockFactor(self, vals, W)
        return SchurFactor(self, vals, W, gram=gram, theta=theta)


def row_constant(vals: np.ndarray) -> float | None:
    """The value of a one-column Z~ that is one number in every row (the broadcast that
    :meth:`ReStructure.vals` returns for a random intercept alone), else None."""
    if vals.ndim == 2 and vals.shape[1] == 1 and vals.shape[0] and vals.strides[0] == 0:
        return float(vals[0, 0])
    return None


STATE_CACHE_BYTES = 2**28  # deviance functions keep states while two dense Schur blocks fit this


def keeps_states(fac) -> bool:
    """Whether a deviance function may keep this factorization's states (last and lowest):
    two copies of its dense block within ``STATE_CACHE_BYTES``."""
    return 16.0 * fac.dense_block**2 <= STATE_CACHE_BYTES


class BlockFactor:
    """M = I + Z~'WZ~ for one term: J blocks of q × q, handled as a batch."""

    dense_block = 0  # columns of a dense block: none

    def __init__(self, rs: ReStructure, vals: np.ndarray, W: np.ndarray | None, sums: np.ndarray | None = None):
        """``sums``: for a random intercept alone, the sums of W per level where the caller has
        them (no pass over the rows; ``W`` is not read then)."""
        q, J = rs.q[0], rs.nlev[0]
        self.rs, self.q, self.J = rs, q, J
        codes = rs.codes0
        if q == 1:
            c = row_constant(vals)
            if c is not None:
                m = 1.0 + (c * c) * (np.bincount(codes, weights=W, minlength=J) if sums is None else sums)
            else:
                m = 1.0 + np.bincount(codes, weights=W * rs.squares(vals)[:, 0], minlength=J)
            if not np.all(m > 0):  # as Cholesky would: negative weights made M indefinite
                raise np.linalg.LinAlgError("M is not positive definite")
            self.m = m
            self.logdet = float(np.sum(np.log(m)))
            return
        self.L, self.logdet, self._Minv = block_chol(codes, W, vals, q, J, compiled=rs.structured)

    @property
    def Minv(self) -> np.ndarray:
        """The blocks' inverses (J, q, q); formed on first use where the factorization gave L only."""
        if self._Minv is None:
            from .blockchol import inverse_from_chol

            self._Minv = inverse_from_chol(self.L)
        return self._Minv

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        q, J = self.q, self.J
        if q == 1:
            return rhs / (self.m if rhs.ndim == 1 else self.m[:, None])
        if rhs.ndim == 1 and self._Minv is None:  # compiled factor: two triangular solves per block
            from .blockchol import chol_solve

            return chol_solve(self.L, rhs.reshape(J, q)).ravel()
        if q > BINCOUNT_MAX_Q:  # large blocks: batched BLAS products
            if rhs.ndim == 1:
                return np.matmul(self.Minv, rhs.reshape(J, q, 1)).ravel()
            return np.matmul(self.Minv, rhs.reshape(J, q, -1)).reshape(J * q, -1)
        if rhs.ndim == 1:
            return np.einsum("jab,jb->ja", self.Minv, rhs.reshape(J, q)).ravel()
        p = rhs.shape[1]
        return np.einsum("jab,jbp->jap", self.Minv, rhs.reshape(J, q, p)).reshape(J * q, p)

    def inv_blocks(self) -> np.ndarray:
        """Diagonal blocks of M^{-1}, (J, q, q)."""
        if self.q == 1:
            return (1.0 / self.m)[:, None, None]
        return self.Minv

    def inv_blocks_term(self, k: int = 0) -> np.ndarray:
        """Diagonal blocks of M^{-1} for term ``k`` (only 0 here), (J, q, q)."""
        if k != 0:
            raise IndexError(f"a single-term factorization has no term {k}")
        return self.inv_blocks()

    def inv_blocks_sum(self, k: int = 0) -> np.ndarray:
        """Sum over levels of the diagonal blocks of M^{-1}, (q, q)."""
        return self.inv_blocks_term(k).sum(axis=0)

    def chol_blocks(self) -> np.ndarray:
        """Lower Cholesky factors of the blocks of M, (J, q, q)."""
        if self.q == 1:
            return np.sqrt(self.m)[:, None, None]
        if self.L is None:  # blocks factored on their low-rank side (schur._low_rank_blocks)
            self.L = np.linalg.cholesky(np.linalg.inv(self.Minv))
        return self.L

    def P(self, vals: np.ndarray) -> np.ndarray:
        """(Z~ M^{-1}) at each row's own columns, (n, s)."""
        codes = self.rs.codes0
        if self.q == 1:
            c = row_constant(vals)
            if c is not None:
                return (c / self.m)[codes][:, None]
            return vals / self.m[codes][:, None]
        if self.q > BINCOUNT_MAX_Q:  # never form (n, q, q): one batched product per level
            V = padded_rows(codes, self.J, vals)
            return unpad_rows(codes, self.J, np.matmul(V, self.Minv))
        if self.rs.structured:
            from .blockchol import rows_times_blocks

            return rows_times_blocks(codes, self.Minv, vals)
        return np.einsum("nab,nb->na", self.Minv[codes], vals)
