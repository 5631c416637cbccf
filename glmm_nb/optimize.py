"""Optimizer driver, the optimizer record, and the post-fit convergence checks.

Only ``f(par)`` (with its gradient where one exists), a start and bounds reach the optimizer,
as in lme4. L-BFGS-B (scipy) uses the analytic Laplace gradient; fixed-effect columns are
rescaled internally so that all parameters live on comparable scales.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize as sopt

from .design.reterms import tril_index

__all__ = ["OptSummary", "central_diff", "minimize_devfun", "fd_hessian", "fd_hessian_fun", "singular_terms"]


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer was given and what it returned (MixedModels.jl's ``OptSummary``)."""

    optimizer: str
    start: np.ndarray
    final: np.ndarray
    objective: float
    iterations: int
    evaluations: int
    time: float
    messages: tuple[str, ...]
    converged: bool
    tolerances: dict = field(default_factory=dict)
    gradient: np.ndarray | None = None
    scaled_gradient: float | None = None
    hessian_eigenvalues: np.ndarray | None = None


def minimize_devfun(
    fun,
    start: np.ndarray,
    lower: np.ndarray,
    scale: np.ndarray | None = None,
    jac: bool = True,
    maxiter: int = 2000,
    label: str = "L-BFGS-B",
) -> OptSummary:
    """Minimise ``fun`` (returning ``(f, grad)`` when ``jac``) from ``start`` with lower bounds.

    ``scale`` divides each parameter for the optimizer (x_opt = x * scale).
    """
    start = np.asarray(start, dtype=float)
    scale = np.ones_like(start) if scale is None else np.asarray(scale, dtype=float)
    bounds = [(lo * s if np.isfinite(lo) else None, None) for lo, s in zip(lower, scale)]
    nev = [0]

    def f(z):
        nev[0] += 1
        x = z / scale
        if jac:
            v, g = fun(x)
            if not np.isfinite(v):
                return 1e300, np.zeros_like(z)
            return v, g / scale
        v = fun(x)
        return v if np.isfinite(v) else 1e300

    t0 = time.perf_counter()
    tol = {"ftol": 1e-14, "gtol": 1e-7, "maxiter": maxiter, "maxcor": 20}
    res = sopt.minimize(f, start * scale, jac=jac, method="L-BFGS-B", bounds=bounds, options=tol)
    elapsed = time.perf_counter() - t0
    msg = res.message if isinstance(res.message, str) else res.message.decode()
    return OptSummary(
        optimizer=label,
        start=start,
        final=res.x / scale,
        objective=float(res.fun),
        iterations=int(res.nit),
        evaluations=nev[0],
        time=elapsed,
        messages=(msg,),
        converged=bool(res.success) or "REL_REDUCTION_OF_F" in msg,
        tolerances=tol,
    )


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


def singular_terms(spec, theta: np.ndarray, tol: float = 1e-4) -> list[str]:
    """Terms with a theta diagonal entry below ``tol`` (lme4's ``isSingular``)."""
    out = []
    for t, sl in zip(spec.terms, spec.theta_slices()):
        r, c = tril_index(t.q)
        diag = theta[sl][r == c]
        if np.any(np.abs(diag) < tol):
            out.append(t.text if t.label == t.group else f"{t.text} ({t.label})")
    return out
