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
(scipy's HiGHS), for large data by constraint generation from a working set of rows
(:func:`_direction`): milliseconds for categorical designs, a fraction of a second for 10^6
continuous rows.
"""

from __future__ import annotations


import numpy as np

from ..errors import SeparationWarning, warn

__all__ = ["separated_columns", "sample_certifies_overlap", "ordinal_separated_columns", "warn_separation", "separation_message"]

_OBJ_TOL = 1e-7
_COEF_TOL = 1e-6
_WHOLE = 4000  # rows solved as one LP; above, constraint generation


def _lp(A: np.ndarray) -> np.ndarray | None:
    """Konis's LP on the signed rows ``A``: a separating direction, or None."""
    from scipy.optimize import linprog

    if A.shape[1] == 0 or A.shape[0] == 0:
        return None
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(A)), bounds=[(-1, 1)] * A.shape[1], method="highs")
    if res.status != 0 or -res.fun <= _OBJ_TOL * max(1.0, np.abs(A).sum(axis=1).max()):
        return None
    return res.x


def _direction(A: np.ndarray) -> np.ndarray | None:
    """A separating direction of the signed rows ``A`` (or None), by constraint generation.

    Small problems go to the LP whole. Large ones start from a working set of rows (a random
    sample plus, for every column, the rows where it is largest and smallest): a separating
    direction of the working set is checked on all rows, and violated rows join the set; when
    the working set has full column rank and no separating direction, no direction separates
    all rows either (every direction with ``A_w d >= 0`` has ``A_w d = 0``, so ``d = 0``).
    """
    n, p = A.shape
    if n <= _WHOLE:
        return _lp(A)
    rng = np.random.default_rng(0)
    k = 10
    W = set(rng.integers(0, n, _WHOLE // 2).tolist())
    for j in range(p):  # the extreme rows of every column (a rare dummy's rows among them)
        W.update(np.argpartition(A[:, j], k)[:k].tolist())
        W.update(np.argpartition(-A[:, j], k)[:k].tolist())
    scale = np.abs(A).max()
    for _ in range(30):
        idx = np.fromiter(W, dtype=np.int64)
        sub = A[idx]
        d = _lp(sub)
        if d is None:
            if np.linalg.matrix_rank(sub) == p:
                return None
            W.update(rng.integers(0, n, _WHOLE // 2).tolist())
            continue
        Ad = A @ d
        viol = Ad < -1e-9 * scale
        nv = int(viol.sum())
        if not nv:
            return d
        worst = np.nonzero(viol)[0] if nv <= _WHOLE // 2 else np.argpartition(Ad, _WHOLE // 2)[: _WHOLE // 2]
        W.update(worst.tolist())
    return _lp(A)


_QUICK_ROWS = 2 * _WHOLE  # above: first try to certify overlap on a sample of rows


def sample_certifies_overlap(X: np.ndarray, succ: np.ndarray, fail: np.ndarray, scale: np.ndarray) -> bool:
    """True when a random sample of rows already proves that no direction separates the
    outcome: the LP finds no separating direction of the sample's signed rows and they have
    full column rank, so every direction with ``A_w d >= 0`` has ``A_w d = 0``, hence ``d = 0`` —
    and a direction separating all rows would separate the sample. False: undecided (the full
    check runs). Costs a sample, not a pass over the signed rows."""
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(X), size=_WHOLE // 2, replace=False))
    Xw = X[idx] / scale
    A = np.concatenate([Xw[succ[idx]], -Xw[fail[idx]]])
    if len(A) < X.shape[1] or np.linalg.matrix_rank(A) < X.shape[1]:
        return False
    return _lp(A) is None


def separated_columns(X: np.ndarray, y: np.ndarray, pw: np.ndarray, names) -> tuple[str, ...]:
    """Names of the fixed-effect columns along which the outcome is separated (empty: none).

    The LP's direction may involve columns that merely ride along (with complete separation on
    ``x`` any small multiple of another covariate separates too); the columns reported are
    those without which the outcome is no longer separated — the culprits — or, when no single
    column is essential, every column of the direction. The intercept is listed last.
    """
    X = np.asarray(X, dtype=float)
    if X.shape[1] == 0:
        return ()
    y, pw = np.asarray(y, dtype=float), np.asarray(pw, dtype=float)
    succ, fail = (y * pw) > 0, ((1 - y) * pw) > 0
    if not succ.any() or not fail.any():
        return tuple(names)  # a constant outcome: everything runs off (refused earlier as constant)
    scale = np.maximum(X.max(axis=0), -X.min(axis=0))
    scale[scale == 0] = 1.0
    if len(X) > _QUICK_ROWS and sample_certifies_overlap(X, succ, fail, scale):
        return ()
    Xs = X / scale
    A = np.concatenate([Xs[succ], -Xs[fail]])  # s_i x_i'
    if len(A) <= 50_000:  # categorical designs collapse to a few distinct rows
        A = np.unique(np.round(A, 12), axis=0)
    delta = _direction(A)
    if delta is None:
        return ()
    flagged = [j for j in range(X.shape[1]) if abs(delta[j]) > _COEF_TOL]
    essential = []
    if len(flagged) <= 20:
        for j in flagged:
            keep = [k for k in range(X.shape[1]) if k != j]
            if _direction(A[:, keep]) is None:  # without column j: no separation
                essential.append(j)
    chosen = essential or flagged
    out = [names[j] for j in chosen]
    return tuple(sorted(out, key=lambda n: n == "(Intercept)"))


def ordinal_separated_columns(X: np.ndarray, y: np.ndarray, pw: np.ndarray, names, ncat: int) -> tuple[str, ...]:
    r"""Separation in a cumulative-link model: the fixed-effect columns whose estimates are infinite.

    With :math:`P(Y \le k) = F(\alpha_k - x'\beta)`, moving along :math:`(\gamma, \delta)`
    (thresholds, coefficients) never lowers a row's probability when :math:`\gamma_k - x_i'\delta
    \ge 0` for a row in category :math:`k < K` and :math:`x_i'\delta - \gamma_{k-1} \ge 0` for a
    row in category :math:`k > 1`, with the thresholds kept in order (:math:`\gamma_{k+1} \ge
    \gamma_k`). Konis's linear program on these signed rows (columns ``[gamma, delta]``) finds
    such a direction; the coefficients with :math:`\delta_j \ne 0` run to ±infinity. ``y`` holds
    the category codes 0..K−1.
    """
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    if p == 0 or ncat < 2:
        return ()
    keep = np.asarray(pw, dtype=float) > 0
    X, y = X[keep], np.asarray(y)[keep].astype(np.int64)
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale
    k1 = ncat - 1
    E = np.eye(k1)
    up = y < k1  # gamma_k - x'delta >= 0 with k = y
    lo = y > 0   # x'delta - gamma_{k-1} >= 0
    order = np.c_[E[1:] - E[:-1], np.zeros((k1 - 1, p))]
    A = np.concatenate([np.c_[E[y[up]], -Xs[up]], np.c_[-E[y[lo] - 1], Xs[lo]], order])
    if len(A) <= 50_000:
        A = np.unique(np.round(A, 12), axis=0)

    def direction(cols):
        d = _direction(A[:, list(range(k1)) + [k1 + j for j in cols]])
        return None if d is None else d[k1:]

    delta = direction(range(p))
    if delta is None:
        return ()
    flagged = [j for j in range(p) if abs(delta[j]) > _COEF_TOL]
    if not flagged:  # only the thresholds move (an empty category): not a coefficient's problem
        return ()
    essential = []
    if len(flagged) <= 20:
        for j in flagged:
            others = [k for k in range(p) if k != j]
            d = direction(others)
            if d is None or not np.any(np.abs(d) > _COEF_TOL):
                essential.append(j)
    return tuple(names[j] for j in (essential or flagged))


def separation_message(columns) -> str:
    """The plain-words explanation of separation along ``columns``."""
    cols = ", ".join(map(repr, columns))
    return (
        f"separation: the outcome is perfectly predicted along the fixed effect(s) {cols} (complete or "
        "quasi-complete separation, the linear-programming check of R's detectseparation); their "
        "maximum-likelihood estimates are infinite, so the reported estimates, standard errors and "
        "intervals are not meaningful. Merge or drop the categories (or values) that have only successes "
        "or only failures (ordinal responses: only the lowest or only the highest categories), or use a "
        "penalized (bias-reduced) fit."
    )


def warn_separation(columns) -> None:
    warn(separation_message(columns), SeparationWarning)
