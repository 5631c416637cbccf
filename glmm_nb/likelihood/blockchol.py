r"""Compiled (numba) batched factorization of one term's blocks :math:`M_j = I + \sum_{i \in j} W_i v_i v_i'`.

For a term with q columns and J levels (q ≥ 2): one pass over the rows accumulates the lower
triangles of the J blocks (in row order, the summation order of ``np.bincount``), then each block
is factored in turn (one thread: measured faster than threads for blocks this small): Cholesky :math:`M_j = L_j L_j'`,
:math:`\log|M_j| = 2\sum_a \log L_{j,aa}`, solves by two triangular solves, and
:math:`M_j^{-1} = L_j^{-T} L_j^{-1}` only where asked (the gradient's rows). This is the
work numpy's batched ``cholesky``/``inv``/``einsum`` do, without their per-matrix overhead, which
dominates for many small blocks (AR(1) over 8 visits of 2,500 subjects: measured in
:mod:`benchmarks.bench_structured`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["block_factor", "chol_solve", "inverse_from_chol", "rows_times_blocks", "scatter_add"]


@njit(cache=True)
def _factor(codes, W, vals, J, q):  # pragma: no cover - compiled
    M = np.zeros((J, q, q))
    for i in range(codes.size):
        j = codes[i]
        for a in range(q):
            va = W[i] * vals[i, a]
            for b in range(a + 1):
                M[j, a, b] += va * vals[i, b]
    L = np.zeros((J, q, q))
    logdets = np.zeros(J)
    bad = np.zeros(J, dtype=np.bool_)
    for j in range(J):
        for a in range(q):
            s = M[j, a, a] + 1.0
            for k in range(a):
                s -= L[j, a, k] * L[j, a, k]
            if not s > 0.0:
                bad[j] = True
                break
            d = np.sqrt(s)
            L[j, a, a] = d
            logdets[j] += 2.0 * np.log(d)
            for b in range(a + 1, q):
                t = M[j, b, a]
                for k in range(a):
                    t -= L[j, b, k] * L[j, a, k]
                L[j, b, a] = t / d
    return L, logdets, bad


@njit(cache=True)
def _inverse(L):  # pragma: no cover - compiled
    J, q = L.shape[0], L.shape[1]
    Minv = np.zeros((J, q, q))
    Li = np.zeros((q, q))  # scratch: L_j^{-1}
    for j in range(J):
        for c in range(q):  # L^{-1}, lower triangular, by forward substitution
            Li[c, c] = 1.0 / L[j, c, c]
            for a in range(c + 1, q):
                t = 0.0
                for k in range(c, a):
                    t -= L[j, a, k] * Li[k, c]
                Li[a, c] = t / L[j, a, a]
        for a in range(q):  # M^{-1} = L^{-T} L^{-1}
            for b in range(a + 1):
                t = 0.0
                for k in range(a, q):
                    t += Li[k, a] * Li[k, b]
                Minv[j, a, b] = t
                Minv[j, b, a] = t
    return Minv


@njit(cache=True)
def _chol_solve(L, rhs):  # pragma: no cover - compiled
    J, q = L.shape[0], L.shape[1]
    x = np.empty((J, q))
    for j in range(J):
        for a in range(q):  # L y = rhs
            t = rhs[j, a]
            for k in range(a):
                t -= L[j, a, k] * x[j, k]
            x[j, a] = t / L[j, a, a]
        for a in range(q - 1, -1, -1):  # L' x = y
            t = x[j, a]
            for k in range(a + 1, q):
                t -= L[j, k, a] * x[j, k]
            x[j, a] = t / L[j, a, a]
    return x


def block_factor(codes: np.ndarray, W: np.ndarray, vals: np.ndarray, q: int, J: int):
    """``(L, logdet, None)`` of the J blocks (see the module docstring): the inverses are formed
    only when asked (:func:`inverse_from_chol`; PIRLS needs solves only, :func:`chol_solve`).
    Raises :class:`numpy.linalg.LinAlgError` when a block is not positive definite."""
    L, logdets, bad = _factor(np.ascontiguousarray(codes, dtype=np.int64), np.ascontiguousarray(W, dtype=float),
                              np.ascontiguousarray(vals, dtype=float), int(J), int(q))
    if bad.any():
        raise np.linalg.LinAlgError("M is not positive definite")
    return L, float(np.sum(logdets)), None


def inverse_from_chol(L: np.ndarray) -> np.ndarray:
    """:math:`M_j^{-1} = L_j^{-T}L_j^{-1}` for each block, (J, q, q)."""
    return _inverse(L)


def chol_solve(L: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """:math:`M_j^{-1} r_j` for each block by two triangular solves; ``rhs`` (J, q) → (J, q)."""
    return _chol_solve(L, np.ascontiguousarray(rhs, dtype=float))


@njit(cache=True)
def _rows_times_blocks(codes, Minv, vals):  # pragma: no cover - compiled
    n, q = vals.shape
    out = np.zeros((n, q))
    for i in range(n):
        j = codes[i]
        for a in range(q):
            t = 0.0
            for b in range(q):
                t += Minv[j, a, b] * vals[i, b]
            out[i, a] = t
    return out


def rows_times_blocks(codes: np.ndarray, Minv: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Row i of the result is ``Minv[codes[i]] @ vals[i]`` (n, q), without forming (n, q, q)."""
    return _rows_times_blocks(np.ascontiguousarray(codes, dtype=np.int64), np.ascontiguousarray(Minv, dtype=float),
                              np.ascontiguousarray(vals, dtype=float))


@njit(cache=True)
def _scatter_add(cols, vals, v, Q):  # pragma: no cover - compiled
    out = np.zeros(Q)
    n, s = cols.shape
    for i in range(n):
        for k in range(s):
            out[cols[i, k]] += vals[i, k] * v[i]
    return out


def scatter_add(cols: np.ndarray, vals: np.ndarray, v: np.ndarray, Q: int) -> np.ndarray:
    """:math:`\tilde Z'v`: ``out[cols[i, k]] += vals[i, k] v[i]`` in row-major order — the sum
    ``np.bincount(cols.ravel(), (vals * v[:, None]).ravel())`` forms, in the same order."""
    return _scatter_add(cols, np.ascontiguousarray(vals, dtype=float), np.ascontiguousarray(v, dtype=float), int(Q))
