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

from .errors import ModelError
from .progress import counted

__all__ = ["restart_edge", "OptSummary", "minimize_devfun", "converged_by_gradient", "optimizer_message"]


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


def optimizer_message(message) -> str:
    """L-BFGS-B's stop message in words: scipy's "ABNORMAL: " (an empty reason) and
    "ABNORMAL_TERMINATION_IN_LNSRCH" mean the line search found no lower deviance along the
    search direction — usually a gradient inconsistent with the deviance (noise, a kink) near
    the optimum."""
    msg = (message if isinstance(message, str) else message.decode()).strip()
    head, _, reason = msg.partition(":")
    if head.startswith("ABNORMAL"):
        reason = reason.strip() or head.partition("ABNORMAL")[2].strip("_ ").replace("_", " ").lower()
        told = f" ({reason})" if reason else ""
        return ("L-BFGS-B stopped abnormally: its line search found no lower deviance along the search direction"
                f"{told}, which happens when the gradient and the deviance disagree near the optimum")
    return msg


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
    fun = counted(fun)  # the fit's progress bar, if one can show (else fun itself)
    start = np.asarray(start, dtype=float)
    scale = np.ones_like(start) if scale is None else np.asarray(scale, dtype=float)
    upper = np.full(start.size, np.inf) if upper is None else np.asarray(upper, dtype=float)
    bounds = [(lo * s if np.isfinite(lo) else None, hi * s if np.isfinite(hi) else None)
              for lo, hi, s in zip(lower, upper, scale)]
    nev = [0]
    lowest = [np.inf]

    def bad() -> float:
        # a deviance that cannot be evaluated (non-finite, or a factorization failing or a
        # power overflowing at an extreme trial point of the line search) is a large finite
        # value, so that the line search's interpolation steps back instead of overflowing
        lo = lowest[0] if np.isfinite(lowest[0]) else 0.0
        return lo + 1e8 * max(1.0, abs(lo))

    def f(z):
        nev[0] += 1
        x = z / scale
        if jac:
            try:
                v, g = fun(x)
            except (np.linalg.LinAlgError, ArithmeticError):
                v, g = np.inf, None
            if not np.isfinite(v) or not np.all(np.isfinite(g)):
                return bad(), np.zeros_like(z)
            lowest[0] = min(lowest[0], v)
            return v, g / scale
        try:
            v = fun(x)
        except (np.linalg.LinAlgError, ArithmeticError):
            v = np.inf
        if not np.isfinite(v):
            return bad()
        lowest[0] = min(lowest[0], v)
        return v

    t0 = time.perf_counter()
    tol = {"ftol": 1e-14, "gtol": 1e-7, "maxiter": maxiter, "maxcor": 20}
    if np.all(lower == upper):  # every parameter held: the deviance there is the whole answer
        try:
            out = fun(start)
            value = float(out[0] if jac else out)
        except (np.linalg.LinAlgError, ArithmeticError):
            value = np.inf
        if not np.isfinite(value):
            raise ModelError("every parameter is held fixed (fixed=) at values where the deviance cannot be "
                             f"evaluated: {', '.join(f'{v:g}' for v in start)}")
        return OptSummary(optimizer=label, start=start, final=start.copy(), objective=value, iterations=0,
                          evaluations=1, time=time.perf_counter() - t0,
                          messages=("every parameter held fixed: evaluated, not optimized",),
                          converged=True, tolerances=tol)
    res = sopt.minimize(f, start * scale, jac=jac, method="L-BFGS-B", bounds=bounds, options=tol)
    elapsed = time.perf_counter() - t0
    msg = optimizer_message(res.message)
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
        gradient=np.asarray(res.jac, dtype=float) * scale if jac else None,
    )


EDGE_STEPS = (0.01, 0.1, 0.5)
RESTART_GRAD_TOL = 1e-3  # no fresh restart below this projected gradient (or 1e-8 |f|)


def converged_by_gradient(opt: OptSummary, lower: np.ndarray, upper: np.ndarray) -> bool:
    """Whether the optimizer's end point has a projected gradient below
    ``max(RESTART_GRAD_TOL, 1e-8 |f|)`` (False where the run recorded no gradient).

    Measured over the 1,120 optimizer runs of the test suite: a restart from the end point
    lowered the deviance only where this gradient was at least 0.64; below 1e-2 it never
    lowered it by more than 1.2e-9, and it cost 2–15 evaluations each time (15 of 28 on a
    MovieLens-1M-shaped LMM).
    """
    g = opt.gradient
    if g is None or not np.all(np.isfinite(g)):
        return False
    x = np.asarray(opt.final, dtype=float)
    pg = np.where(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0)) | (lower == upper), 0.0, g)
    pgi = float(np.max(np.abs(pg))) if pg.size else 0.0
    return pgi <= max(RESTART_GRAD_TOL, 1e-8 * abs(opt.objective))


def _merge(old: OptSummary, new: OptSummary, note: str, extra_evals: int = 0) -> OptSummary:
    import dataclasses

    return dataclasses.replace(
        new, start=old.start, evaluations=old.evaluations + new.evaluations + extra_evals, time=old.time + new.time,
        iterations=old.iterations + new.iterations,
        messages=tuple(dict.fromkeys(old.messages + new.messages + (note,))))


def restart_edge(value, run, opt: OptSummary, lower: np.ndarray, upper: np.ndarray | None = None,
                 steps=EDGE_STEPS, max_restarts: int = 3) -> OptSummary:
    """Restart the optimizer where it may have stopped short (lme4's ``restart_edge``, and a
    fresh start of the quasi-Newton memory).

    1. L-BFGS-B stopping on "relative reduction of f" can stall after a line search that
       probed far outside (theta of 1e8): one run from its end point with fresh memory is
       kept when it lowers the deviance. Not tried where the end point's projected gradient
       is already negligible (:func:`converged_by_gradient`).
    2. The deviance depends on a diagonal theta only through its square near 0, so its
       derivative at the bound is exactly 0 and a gradient method that reaches the bound (by
       projection) stops there even when the deviance decreases inside. For each parameter at
       a bound of 0 the deviance is evaluated a few steps inside (``steps``); if one is lower,
       the optimizer runs again from the best of them.

    ``value(x)`` is the deviance, ``run(start)`` the optimizer; at most ``max_restarts`` of each.
    """
    lower = np.asarray(lower, dtype=float)
    upper = np.full(lower.size, np.inf) if upper is None else np.asarray(upper, dtype=float)

    def better(new, old):
        return new.objective < old.objective - 1e-10 * max(1.0, abs(old.objective))

    def safe(x):
        try:
            return float(value(x))
        except (np.linalg.LinAlgError, ArithmeticError):
            return np.inf

    for _ in range(max_restarts):
        if converged_by_gradient(opt, lower, upper):
            break
        new = run(np.asarray(opt.final, dtype=float))
        if not better(new, opt):
            break
        opt = _merge(opt, new, "restarted from its end point with fresh quasi-Newton memory")
    for _ in range(max_restarts):
        x = np.asarray(opt.final, dtype=float)
        edge = (lower == 0) & (upper > lower) & (np.abs(x - lower) <= 1e-4)  # at or near the bound
        if not edge.any():
            return opt
        f0 = safe(x)
        best = None
        for i in np.nonzero(edge)[0]:
            for t in steps:
                z = x.copy()
                z[i] = t
                fz = safe(z)
                if np.isfinite(fz) and fz < f0 - 1e-9 * max(1.0, abs(f0)) and (best is None or fz < best[0]):
                    best = (fz, z)
        if best is None:
            return opt
        new = run(best[1])
        if not better(new, opt):
            return opt
        opt = _merge(opt, new, "restarted inside from a variance on its boundary (lme4's restart_edge)",
                     int(edge.sum()) * len(steps))
    return opt
