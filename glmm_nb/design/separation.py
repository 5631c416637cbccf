r"""Complete and quasi-complete separation in binomial models (Konis 2007; R's
``detectseparation``).

The maximum-likelihood estimate of a binomial model is infinite exactly when some non-zero
direction :math:`\delta` of the fixed effects never moves a fitted probability the wrong way:
:math:`x_i'\delta \ge 0` for every row with a success and :math:`x_i'\delta \le 0` for every
row with a failure (a row with both is held at 0). Along such a direction the likelihood keeps
increasing, the estimate runs off (−270 with SE 1e6 is typical) and the optimizer reports at
best a generic convergence problem. Random effects do not rescue it: they are penalized, the
fixed effects are not.

Following Konis's linear program we maximize :math:`\sum_i s_i x_i'\delta` (:math:`s_i = +1`
for a success row, −1 for a failure row) subject to :math:`s_i x_i'\delta \ge 0` and
:math:`-1 \le \delta_j \le 1`, with the columns of X scaled to unit maximum. The optimum is 0
when there is no separation and positive otherwise; the columns with :math:`\delta_j \ne 0` are
the coefficients that run to ±infinity. The program runs on the distinct (row, sign) pairs
(scipy's HiGHS; milliseconds for categorical designs).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import SeparationWarning

__all__ = ["separated_columns", "warn_separation", "separation_message"]

_OBJ_TOL = 1e-7
_COEF_TOL = 1e-6


def separated_columns(X: np.ndarray, y: np.ndarray, pw: np.ndarray, names) -> tuple[str, ...]:
    """Names of the fixed-effect columns along which the outcome is separated (empty: none)."""
    from scipy.optimize import linprog

    X = np.asarray(X, dtype=float)
    if X.shape[1] == 0:
        return ()
    y, pw = np.asarray(y, dtype=float), np.asarray(pw, dtype=float)
    succ, fail = (y * pw) > 0, ((1 - y) * pw) > 0
    if not succ.any() or not fail.any():
        return tuple(names)  # a constant outcome: everything runs off (refused earlier as constant)
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale
    A = np.concatenate([Xs[succ], -Xs[fail]])  # s_i x_i'
    A = np.unique(np.round(A, 12), axis=0)
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(A)), bounds=[(-1, 1)] * X.shape[1], method="highs")
    if res.status != 0 or -res.fun <= _OBJ_TOL * max(1.0, np.abs(A).sum(axis=1).max()):
        return ()
    delta = res.x
    return tuple(n for n, d in zip(names, delta) if abs(d) > _COEF_TOL)


def separation_message(columns) -> str:
    """The plain-words explanation of separation along ``columns``."""
    cols = ", ".join(map(repr, columns))
    return (
        f"separation: the outcome is perfectly predicted along the fixed effect(s) {cols} (complete or "
        "quasi-complete separation, the linear-programming check of R's detectseparation); their "
        "maximum-likelihood estimates are infinite, so the reported estimates, standard errors and "
        "intervals are not meaningful. Merge or drop the categories (or values) that have only successes "
        "or only failures, or use a penalized (bias-reduced) fit."
    )


def warn_separation(columns) -> None:
    warnings.warn(separation_message(columns), SeparationWarning, stacklevel=5)
