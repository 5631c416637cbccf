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
* :class:`SchurFactor` — several terms (nested or crossed): the first term's block of M is
  block diagonal and is eliminated cluster by cluster; the remaining terms' Schur complement
  (a few hundred or thousand columns) is factored densely by LAPACK.

``P = rows of`` :math:`\tilde Z M^{-1}` restricted to each row's own columns, (n, s), gives the
leverages :math:`h_i = \tilde z_i' M^{-1} \tilde z_i` and everything the analytic gradient needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..design import ModelSpec
from ..design.reterms import theta_to_T, tril_index

__all__ = ["ReStructure", "BlockFactor", "SchurFactor"]

DENSE_MAX_Q = 8000
BINCOUNT_MAX_Q2 = 2000  # D by bincounts up to this many columns, by a sparse product above
SPARSE_B_DENSITY = 0.05  # coupling block kept sparse below this fill


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
        self.single = len(spec.terms) == 1
        self.codes0 = spec.terms[0].codes if self.single else None
        entries = []
        for k, t in enumerate(spec.terms):
            r, c = tril_index(t.q)
            for a, b in zip(r, c):
                entries.append(ThetaEntry(k, int(a), int(b), int(self.slot0[k] + b)))
        self.entries = entries
        self.slices = spec.theta_slices()

    # ---------------------------------------------------------------------------- theta
    def Ts(self, theta: np.ndarray) -> list[np.ndarray]:
        return [theta_to_T(theta[sl], q) for sl, q in zip(self.slices, self.q)]

    def vals(self, theta: np.ndarray) -> np.ndarray:
        """Non-zeros of Z~ = Z Lambda (n, s)."""
        out = np.empty((self.n, self.s))
        for k, T in enumerate(self.Ts(theta)):
            out[:, self.slot0[k] : self.slot0[k + 1]] = self.Zv[k] @ T
        return out

    # ----------------------------------------------------------------------- products
    def mult(self, vals: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Z~ u, (n,)."""
        if self.s == 1:
            return vals[:, 0] * u[self.cols[:, 0]]
        return np.einsum("ns,ns->n", vals, u[self.cols])

    def tmult(self, vals: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Z~' v for v of shape (n,) → (Q,), or (n, p) → (Q, p)."""
        if v.ndim == 1:
            return np.bincount(
                self.cols.ravel(), weights=(vals * v[:, None]).ravel(), minlength=self.Q
            )
        out = np.empty((self.Q, v.shape[1]))
        for j in range(v.shape[1]):
            out[:, j] = self.tmult(vals, v[:, j])
        return out

    def factor(self, vals: np.ndarray, W: np.ndarray):
        if self.single:
            return BlockFactor(self, vals, W)
        return SchurFactor(self, vals, W)


def _block_chol(codes: np.ndarray, W: np.ndarray, vals: np.ndarray, q: int, J: int):
    """Per-level blocks I + sum_i W_i v_i v_i' (J, q, q) of one term: Cholesky factors, log
    determinant and inverses, batched over levels."""
    M = np.empty((J, q, q))
    for a in range(q):
        for b in range(a + 1):
            acc = np.bincount(codes, weights=W * vals[:, a] * vals[:, b], minlength=J)
            M[:, a, b] = acc
            M[:, b, a] = acc
    M[:, np.arange(q), np.arange(q)] += 1.0
    L = np.linalg.cholesky(M)
    logdet = float(2.0 * np.sum(np.log(np.einsum("jaa->ja", L))))
    Linv = np.linalg.inv(L)
    return L, logdet, np.einsum("jka,jkb->jab", Linv, Linv)


class BlockFactor:
    """M = I + Z~'WZ~ for one term: J blocks of q × q, handled as a batch."""

    def __init__(self, rs: ReStructure, vals: np.ndarray, W: np.ndarray):
        q, J = rs.q[0], rs.nlev[0]
        self.rs, self.q, self.J = rs, q, J
        codes = rs.codes0
        if q == 1:
            m = 1.0 + np.bincount(codes, weights=W * vals[:, 0] ** 2, minlength=J)
            if not np.all(m > 0):  # as Cholesky would: negative weights made M indefinite
                raise np.linalg.LinAlgError("M is not positive definite")
            self.m = m
            self.logdet = float(np.sum(np.log(m)))
            return
        self.L, self.logdet, self.Minv = _block_chol(codes, W, vals, q, J)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        q, J = self.q, self.J
        if q == 1:
            return rhs / (self.m if rhs.ndim == 1 else self.m[:, None])
        if rhs.ndim == 1:
            return np.einsum("jab,jb->ja", self.Minv, rhs.reshape(J, q)).ravel()
        p = rhs.shape[1]
        return np.einsum("jab,jbp->jap", self.Minv, rhs.reshape(J, q, p)).reshape(J * q, p)

    def inv_blocks(self) -> np.ndarray:
        """Diagonal blocks of M^{-1}, (J, q, q)."""
        if self.q == 1:
            return (1.0 / self.m)[:, None, None]
        return self.Minv

    def inv_blocks_term(self, k: int) -> np.ndarray:
        """Diagonal blocks of M^{-1} of term ``k`` (the only term), (J, q, q)."""
        return self.inv_blocks()

    def chol_blocks(self) -> np.ndarray:
        """Lower Cholesky factors of the blocks of M, (J, q, q)."""
        if self.q == 1:
            return np.sqrt(self.m)[:, None, None]
        return self.L

    def P(self, vals: np.ndarray) -> np.ndarray:
        """(Z~ M^{-1}) at each row's own columns, (n, s)."""
        codes = self.rs.codes0
        if self.q == 1:
            return vals / self.m[codes][:, None]
        return np.einsum("nab,nb->na", self.Minv[codes], vals)


class SchurFactor:
    """M = I + Z~'WZ~ for several terms, by block elimination of the first term.

    The first term (the one with most levels, lme4's order) makes M's leading block A
    block diagonal (J1 blocks of q1 × q1); the other terms' Q2 columns form a small dense
    block D. With B the coupling block and G = A^{-1}B, the Schur complement
    S = D - B'G (Q2 × Q2) is factored densely (MixedModels.jl's blocked Cholesky):
    log|M| = log|A| + log|S|.
    """

    def __init__(self, rs: ReStructure, vals: np.ndarray, W: np.ndarray):
        self.rs = rs
        q1, J1 = rs.q[0], rs.nlev[0]
        off1 = J1 * q1
        Q2 = rs.Q - off1
        if Q2 > DENSE_MAX_Q:
            from ..errors import ModelError

            raise ModelError(
                f"the grouping factors after the first have {Q2} random effects in all, more "
                f"than this version's dense limit of {DENSE_MAX_Q}"
            )
        self.q1, self.J1, self.off1, self.Q2 = q1, J1, off1, Q2
        codes = rs.terms[0].codes
        self.codes = codes
        _LA, self.logdet_A, self.Ainv = _block_chol(codes, W, vals, q1, J1)
        rest = slice(q1, rs.s)
        c2 = rs.cols[:, rest] - off1
        # coupling block B = Z1~' W Z2~: at most n non-zeros per pair of slots. Nested and
        # sparsely crossed designs keep B and G = A^{-1} B sparse; dense crossings use arrays.
        pairs = [(a, t) for a in range(q1) for t in range(c2.shape[1])]
        if rs.n * len(pairs) < SPARSE_B_DENSITY * off1 * Q2:
            B = sp.csr_matrix(
                (np.concatenate([W * vals[:, a] * vals[:, q1 + t] for a, t in pairs]),
                 (np.concatenate([rs.cols[:, a] for a, _ in pairs]), np.concatenate([c2[:, t] for _, t in pairs]))),
                shape=(off1, Q2),
            )
            Ainv_sp = sp.bsr_matrix((self.Ainv, np.arange(J1), np.arange(J1 + 1)), shape=(off1, off1))
            self.G = (Ainv_sp @ B).tocsr()
        else:
            Bd = np.zeros(off1 * Q2)
            for a, t in pairs:
                Bd += np.bincount(rs.cols[:, a] * Q2 + c2[:, t], weights=W * vals[:, a] * vals[:, q1 + t],
                                  minlength=off1 * Q2)
            B = Bd.reshape(off1, Q2)
            self.G = np.einsum("jab,jbc->jac", self.Ainv, B.reshape(J1, q1, Q2)).reshape(off1, Q2)
        # D = I + Z2~' W Z2~ (Q2 × Q2): pair-by-pair bincounts while Q2² is small, else sparse
        s2 = rs.s - q1
        if Q2 <= BINCOUNT_MAX_Q2:
            D = np.zeros(Q2 * Q2)
            for t in range(s2):
                for u in range(t, s2):
                    acc = np.bincount(c2[:, t] * Q2 + c2[:, u], weights=W * vals[:, q1 + t] * vals[:, q1 + u],
                                      minlength=Q2 * Q2)
                    D += acc
                    if u != t:
                        D += acc.reshape(Q2, Q2).T.ravel()
            D = D.reshape(Q2, Q2)
        else:
            n = rs.n
            S2 = sp.csr_matrix(
                ((vals[:, rest] * np.sqrt(W)[:, None]).ravel(), c2.ravel(), np.arange(0, n * s2 + 1, s2)),
                shape=(n, Q2),
            )
            D = (S2.T @ S2).toarray()
        D[np.diag_indices(Q2)] += 1.0
        BtG = B.T @ self.G
        Schur = D - (BtG.toarray() if sp.issparse(BtG) else np.asarray(BtG))
        self.cf = sla.cho_factor(Schur, lower=True, check_finite=False)
        self.logdet = self.logdet_A + float(2.0 * np.sum(np.log(np.diag(self.cf[0]))))
        self._Sinv = None

    def _ainv(self, r1: np.ndarray) -> np.ndarray:
        J1, q1 = self.J1, self.q1
        if r1.ndim == 1:
            return np.einsum("jab,jb->ja", self.Ainv, r1.reshape(J1, q1)).ravel()
        p = r1.shape[1]
        return np.einsum("jab,jbp->jap", self.Ainv, r1.reshape(J1, q1, p)).reshape(J1 * q1, p)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        r1, r2 = rhs[: self.off1], rhs[self.off1 :]
        x2 = sla.cho_solve(self.cf, r2 - self.G.T @ r1, check_finite=False)
        x1 = self._ainv(r1) - self.G @ x2
        return np.concatenate([x1, x2])

    @property
    def Sinv(self) -> np.ndarray:
        if self._Sinv is None:
            self._Sinv = sla.cho_solve(self.cf, np.eye(self.Q2), check_finite=False)
            self._H = np.asarray(self.G @ self._Sinv)  # -(M^{-1})_{12}
            q1 = self.q1
            # diagonal blocks of M^{-1} for the first term: A^{-1} + G S^{-1} G', per level
            B11 = self.Ainv.copy()
            for a in range(q1):
                Ha = self._H[a::q1]
                for b in range(q1):
                    Gb = self.G[b::q1]
                    prod = Gb.multiply(Ha) if sp.issparse(Gb) else Gb * Ha
                    B11[:, a, b] += np.asarray(prod.sum(axis=1)).ravel()
            self._B11 = B11
        return self._Sinv

    def _entries(self, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
        """(M^{-1})[c1, c2] for matching arrays of column indices (rows share levels)."""
        Sinv, H, off1 = self.Sinv, self._H, self.off1
        out = np.empty(c1.shape)
        f1, f2 = c1 < off1, c2 < off1
        both = f1 & f2
        if both.any():
            a, b = c1[both], c2[both]
            out[both] = self._B11[a // self.q1, a % self.q1, b % self.q1]
        m = f1 & ~f2
        out[m] = -H[c1[m], c2[m] - off1]
        m = ~f1 & f2
        out[m] = -H[c2[m], c1[m] - off1]
        m = ~f1 & ~f2
        out[m] = Sinv[c1[m] - off1, c2[m] - off1]
        return out

    def P(self, vals: np.ndarray) -> np.ndarray:
        cols = self.rs.cols
        n, s = cols.shape
        G = np.empty((n, s, s))
        for a in range(s):
            for b in range(a, s):
                G[:, a, b] = self._entries(cols[:, a], cols[:, b])
                G[:, b, a] = G[:, a, b]
        return np.einsum("nst,ns->nt", G, vals)

    def inv_blocks_term(self, k: int) -> np.ndarray:
        rs = self.rs
        q, J, off = rs.q[k], rs.nlev[k], rs.offsets[k]
        idx = off + np.arange(J)[:, None] * q + np.arange(q)[None, :]
        a = np.broadcast_to(idx[:, :, None], (J, q, q)).ravel()
        b = np.broadcast_to(idx[:, None, :], (J, q, q)).ravel()
        return self._entries(a, b).reshape(J, q, q)
