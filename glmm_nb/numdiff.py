"""Finite-difference derivatives shared by the likelihood, the result builder and inference.

Pure numerics (numpy only), at the bottom of the import graph.
"""

from __future__ import annotations

import numpy as np

__all__ = ["central_diff", "fd_hessian", "fd_hessian_fun"]


def central_diff(fun, x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central differences of a scalar or vector function: shape (k,) or (m, k)."""
    x = np.asarray(x, dtype=float)
    cols = []
    for j, h in enumerate(steps):
        e = np.zeros(x.size)
        e[j] = h
        cols.append((np.asarray(fun(x + e)) - np.asarray(fun(x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


def fd_hessian(grad, x: np.ndarray, g0: np.ndarray, step: np.ndarray | None = None) -> np.ndarray:
    """Symmetrised forward-difference Hessian of an analytic gradient (``g0`` at ``x``)."""
    x = np.asarray(x, dtype=float)
    k = x.size
    h = step if step is not None else 1e-5 * np.maximum(np.abs(x), 1e-1)
    H = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h[j]
        H[:, j] = (grad(x + e) - g0) / h[j]
    return 0.5 * (H + H.T)


def fd_hessian_fun(fun, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian from function values only."""
    x = np.asarray(x, dtype=float)
    k = x.size
    hs = h * np.maximum(np.abs(x), 1e-1)
    f0 = fun(x)
    H = np.empty((k, k))
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = hs[i]
        H[i, i] = (fun(x + ei) - 2 * f0 + fun(x - ei)) / hs[i] ** 2
        for j in range(i):
            ej = np.zeros(k)
            ej[j] = hs[j]
            H[i, j] = H[j, i] = (
                fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)
            ) / (4 * hs[i] * hs[j])
    return H
