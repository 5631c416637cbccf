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

__all__ = ["OptSummary", "minimize_devfun"]


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
    upper: np.ndarray | None = None,
) -> OptSummary:
    """Minimise ``fun`` (returning ``(f, grad)`` when ``jac``) from ``start`` with bounds.

    ``scale`` multiplies each parameter for the optimizer (x_opt = x * scale). A parameter
    with equal lower and ``upper`` bounds is held fixed.
    """
    start = np.asarray(start, dtype=float)
    scale = np.ones_like(start) if scale is None else np.asarray(scale, dtype=float)
    upper = np.full(start.size, np.inf) if upper is None else np.asarray(upper, dtype=float)
    bounds = [(lo * s if np.isfinite(lo) else None, hi * s if np.isfinite(hi) else None)
              for lo, hi, s in zip(lower, upper, scale)]
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
