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
* :class:`DenseFactor` — several terms (nested or crossed): M assembled as a sparse product and
  factored densely (LAPACK Cholesky), which for the Q of a few thousand that crossed designs
  have is faster than a sparse factorization.

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

__all__ = ["ReStructure", "BlockFactor", "DenseFactor"]

DENSE_MAX_Q = 8000


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
        return DenseFactor(self, vals, W)


class BlockFactor:
    """M = I + Z~'WZ~ for one term: J blocks of q × q, handled as a batch."""

    def __init__(self, rs: ReStructure, vals: np.ndarray, W: np.ndarray):
        q, J = rs.q[0], rs.nlev[0]
        self.rs, self.q, self.J = rs, q, J
        codes = rs.codes0
        if q == 1:
            m = 1.0 + np.bincount(codes, weights=W * vals[:, 0] ** 2, minlength=J)
            self.m = m
            self.logdet = float(np.sum(np.log(m)))
            return
        M = np.empty((J, q, q))
        for a in range(q):
            for b in range(a + 1):
                acc = np.bincount(codes, weights=W * vals[:, a] * vals[:, b], minlength=J)
                M[:, a, b] = acc
                M[:, b, a] = acc
        M[:, np.arange(q), np.arange(q)] += 1.0
        L = np.linalg.cholesky(M)
        self.L = L
        self.logdet = float(2.0 * np.sum(np.log(L[:, np.arange(q), np.arange(q)])))
        Linv = np.linalg.inv(L)
        self.Minv = np.einsum("jka,jkb->jab", Linv, Linv)

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


class DenseFactor:
    """M = I + Z~'WZ~ for several terms, factored by dense Cholesky."""

    def __init__(self, rs: ReStructure, vals: np.ndarray, W: np.ndarray):
        self.rs = rs
        n, s, Q = rs.n, rs.s, rs.Q
        if Q > DENSE_MAX_Q:
            from ..errors import ModelError

            raise ModelError(
                f"{Q} random effects across several grouping factors exceed this version's "
                f"dense limit of {DENSE_MAX_Q}"
            )
        S = sp.csr_matrix(
            ((vals * np.sqrt(W)[:, None]).ravel(), rs.cols.ravel(), np.arange(0, n * s + 1, s)),
            shape=(n, Q),
        )
        M = (S.T @ S).toarray()
        M[np.diag_indices(Q)] += 1.0
        self.cf = sla.cho_factor(M, lower=True, check_finite=False)
        self.logdet = float(2.0 * np.sum(np.log(np.diag(self.cf[0]))))
        self._Minv = None

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return sla.cho_solve(self.cf, rhs, check_finite=False)

    @property
    def Minv(self) -> np.ndarray:
        if self._Minv is None:
            self._Minv = sla.cho_solve(self.cf, np.eye(self.rs.Q), check_finite=False)
        return self._Minv

    def P(self, vals: np.ndarray) -> np.ndarray:
        cols = self.rs.cols
        G = self.Minv[cols[:, :, None], cols[:, None, :]]  # (n, s, s)
        return np.einsum("nst,ns->nt", G, vals)

    def inv_blocks_term(self, k: int) -> np.ndarray:
        rs = self.rs
        q, J, off = rs.q[k], rs.nlev[k], rs.offsets[k]
        idx = off + np.arange(J)[:, None] * q + np.arange(q)[None, :]
        return self.Minv[idx[:, :, None], idx[:, None, :]]
