"""The step rule PIRLS shares across families (Laplace for GLMMs and cumulative-link models).

From the modes ``u`` the full Newton step ``delta`` is tried first and halved until the
penalized deviance does not rise (relative slack 1e-12); below a step of ``MIN_STEP`` the
step fails and the caller decides what that means for convergence.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["halving_step", "MIN_STEP"]

MIN_STEP = 1e-10


def halving_step(u: np.ndarray, delta: np.ndarray, pdev: float,
                 penalized: Callable[[np.ndarray], tuple[float, object]]):
    """``(u_new, pdev_new, extras)`` at the largest accepted step 1, 1/2, 1/4, …, or None.

    ``penalized(u_new)`` returns the penalized deviance there and whatever the caller wants to
    keep from computing it (the linear predictor, the per-cell terms).
    """
    step = 1.0
    while step >= MIN_STEP:
        u_new = u + step * delta
        pdev_new, extras = penalized(u_new)
        if pdev_new <= pdev + 1e-12 * abs(pdev):
            return u_new, pdev_new, extras
        step *= 0.5
    return None
