"""formulaic glue: the variables an expression uses, model matrices, numeric vectors.

formulaic has no ``(x | g)`` syntax; the random-effect bars are split off by
:mod:`glmm_nb.formula` and every remaining piece (fixed part, a term's left-hand side, an
offset or response expression) is evaluated here, with formulaic's errors turned into
:class:`~glmm_nb.errors.FormulaError` naming the culprit.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import formulaic
from formulaic.errors import FormulaicError

from ..errors import DataError, FormulaError

__all__ = ["INTERCEPT", "formula_error", "required_variables", "model_matrix", "rename_intercept",
           "eval_numeric", "check_finite", "drop_collinear"]

INTERCEPT = "(Intercept)"


def formula_error(exc: Exception, where: str) -> FormulaError:
    """A formulaic error as one line naming ``where``."""
    msg = str(exc)
    m = re.search(r"`([^`]+)` is not present in the dataset", msg)
    if m:
        return FormulaError(f"unknown column '{m.group(1)}' in {where}")
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    first = re.sub(r"\x1b\[[0-9;]*m|[⧛⧚]", "", first)
    return FormulaError(f"cannot read {where}: {first}")


def required_variables(expr: str, where: str) -> list[str]:
    """Variables an expression uses, in order of first appearance (deterministic)."""
    try:
        found = set(formulaic.Formula(expr).required_variables)
    except FormulaicError as exc:
        raise formula_error(exc, where) from None

    def first(v: str) -> tuple[int, str]:
        pos = expr.find(v)
        return (pos if pos >= 0 else len(expr), v)

    return sorted(found, key=first)


def model_matrix(expr: str, data: pd.DataFrame, where: str, spec=None) -> pd.DataFrame:
    """formulaic's model matrix of ``expr`` (or of a stored formulaic ``spec`` for new data)."""
    try:
        if spec is not None:
            mm = spec.get_model_matrix(data, na_action="ignore")
        else:
            mm = formulaic.model_matrix(expr, data, na_action="ignore")
    except FormulaicError as exc:
        raise formula_error(exc, where) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise FormulaError(f"cannot evaluate {where}: {exc}") from None
    return mm


def rename_intercept(cols) -> tuple[str, ...]:
    """formulaic's ``Intercept`` → lme4's ``(Intercept)``."""
    return tuple(INTERCEPT if c == "Intercept" else str(c) for c in cols)


def eval_numeric(expr: str, data: pd.DataFrame, where: str) -> np.ndarray:
    """A numeric vector from a column name or an expression such as ``size - incidence``."""
    name = expr.strip().strip("`")
    if name in data.columns:
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise DataError(f"{where} '{name}' must be numeric, not {col.dtype}")
        return col.to_numpy(dtype=float)
    mm = model_matrix(f"0 + I({expr})", data, f"{where} '{expr}'")
    return mm.to_numpy(dtype=float)[:, 0]


def check_finite(M: np.ndarray, names, what: str) -> None:
    """Raise :class:`DataError` naming the first column of ``M`` with a non-finite value."""
    bad = ~np.isfinite(M)
    if bad.any():
        j = int(np.nonzero(bad.any(axis=0))[0][0])
        v = M[bad[:, j], j][0]
        raise DataError(f"{what} '{names[j]}' has non-finite values (e.g. {v:g}); remove or recode them")


def drop_collinear(X: np.ndarray, names: tuple[str, ...]):
    """Drop linearly dependent columns (pivoted QR, as lm/lme4), warning with their names.

    Returns ``(X, names, dropped_names)``.
    """
    from scipy.linalg import qr

    from ..errors import DataWarning, warn

    if X.shape[1] == 0:
        return X, names, ()
    _q, r, piv = qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    tol = d.max() * max(X.shape) * np.finfo(float).eps * 1e3 if d.size else 0
    rank = int(np.sum(d > tol))
    if rank == X.shape[1]:
        return X, names, ()
    keep = np.sort(piv[:rank])
    dropped = tuple(names[i] for i in sorted(piv[rank:]))
    warn(
        f"fixed-effect model matrix is rank deficient; dropping {len(dropped)} column(s): "
        f"{', '.join(dropped)}",
        DataWarning,
    )
    return X[:, keep], tuple(names[i] for i in keep), dropped
