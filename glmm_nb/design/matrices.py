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
           "eval_numeric", "check_finite", "drop_collinear", "clearly_full_rank"]

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
        formula = formulaic.Formula(expr)
        found = set(formula.required_variables) | _transform_arguments(formula)
    except FormulaicError as exc:
        raise formula_error(exc, where) from None
    except SyntaxError as exc:  # Python syntax inside a term (formulaic parses terms as Python)
        raise FormulaError(f"cannot read {where}: invalid Python in '{expr}' ({exc.msg}); names with dots, "
                           "spaces or operators go in backticks") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise FormulaError(f"cannot read {where}: {exc}") from None

    def first(v: str) -> tuple[int, str]:
        pos = expr.find(v)
        return (pos if pos >= 0 else len(expr), v)

    return sorted(found, key=first)


def _transform_arguments(formula) -> set[str]:
    """The plain names inside Python factors — formulaic leaves out the variables of its
    stateful transforms (``center(x)``, ``scale(x)``, ``poly(x, 2)``, ``bs(x, 3)``): names
    neither called nor the base of an attribute (``np`` of ``np.log``)."""
    import ast

    out: set[str] = set()
    for term in formula:
        for factor in term.factors:
            if str(getattr(factor.eval_method, "value", factor.eval_method)) != "python":
                continue
            try:
                tree = ast.parse(str(factor.expr), mode="eval")
            except SyntaxError:
                continue
            skip = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            skip |= {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            out |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in skip}
    return out


def check_time_columns(names, data: pd.DataFrame, where: str) -> None:
    """Dates and durations are not numbers a model can multiply: a clear :class:`DataError`."""
    for v in names:
        if v not in data.columns:
            continue
        dt = data[v].dtype
        if (pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt)
                or isinstance(dt, pd.PeriodDtype)):
            raise DataError(
                f"column '{v}' in {where} holds dates or durations ({dt}), not numbers: convert it to the "
                f"scale you mean, e.g. days since the start (data['{v}'] - data['{v}'].min()).dt.days or "
                f"the year data['{v}'].dt.year; for a factor, its text data['{v}'].astype(str)"
            )


def model_matrix(expr: str, data: pd.DataFrame, where: str, spec=None) -> pd.DataFrame:
    """formulaic's model matrix of ``expr`` (or of a stored formulaic ``spec`` for new data)."""
    used = (spec.variables_by_source.get("data", set()) if spec is not None
            else required_variables(expr, where) if expr.strip() else ())
    check_time_columns(sorted(used), data, where)
    try:
        if spec is not None:
            mm = spec.get_model_matrix(data, na_action="ignore")
        else:
            mm = formulaic.model_matrix(expr, data, na_action="ignore")
    except FormulaicError as exc:
        raise formula_error(exc, where) from None
    except SyntaxError as exc:
        raise FormulaError(f"cannot read {where}: invalid Python ({exc.msg}); names with dots, spaces or "
                           "operators go in backticks") from None
    except (TypeError, ValueError, KeyError, NameError, AttributeError, ArithmeticError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormulaError(f"cannot evaluate {where}: {first}") from None
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


def clearly_full_rank(X: np.ndarray, tol: float = 1e-7, margin: float = 1e3) -> bool:
    """True when no column of ``X`` comes near :func:`drop_collinear`'s rule: every column's
    residual on the columns before it is more than ``margin * tol`` of its norm.

    One pass over the rows (the Gram matrix X'X); in column order its Cholesky diagonal is
    exactly those residual norms. Forming X'X squares the condition number, so the Gram matrix
    decides only where it cannot be wrong: a relative residual above ``margin * tol`` (1e-4)
    is a squared ratio of 1e-8, far above the rounding of X'X (~1e-16 relative). Anything
    nearer the rule (False) goes to the Gram-Schmidt pass on X itself.
    """
    G = X.T @ X
    d = np.diagonal(G).copy()
    if not np.all(d > 0) or not np.all(np.isfinite(G)):
        return False
    Gs = G / np.sqrt(np.outer(d, d))  # unit diagonal: the residuals come out relative
    try:
        L = np.linalg.cholesky(Gs)
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.diagonal(L) > margin * tol))


def drop_collinear(X: np.ndarray, names: tuple[str, ...], tol: float = 1e-7):
    """Drop linearly dependent columns with lme4's rule, warning with their names.

    lme4 (``chkRank.drop.cols``, R's ``qr`` with limited pivoting) keeps the columns in formula
    order and drops a column that is (to relative tolerance ``tol``) a linear combination of the
    columns before it — so a later column goes, never the intercept before it. The warning names
    each dropped column and the combination it equals.

    Returns ``(X, names, dropped_names)``.
    """
    from ..errors import DataWarning, warn

    p = X.shape[1]
    if p == 0:
        return X, names, ()
    if clearly_full_rank(X, tol):
        return X, names, ()
    norms = np.linalg.norm(X, axis=0)
    Q = np.zeros((X.shape[0], 0))
    keep: list[int] = []
    for j in range(p):  # columns, not rows: p is small
        r = X[:, j].copy()
        for _ in range(2):  # Gram-Schmidt twice is enough for working precision
            r -= Q @ (Q.T @ r)
        nr = np.linalg.norm(r)
        if norms[j] > 0 and nr > tol * norms[j]:
            keep.append(j)
            Q = np.column_stack([Q, r / nr])
    if len(keep) == p:
        return X, names, ()
    dropped_idx = [j for j in range(p) if j not in keep]
    dropped = tuple(names[j] for j in dropped_idx)
    parts = []
    for j in dropped_idx:
        if norms[j] == 0:
            parts.append(f"{names[j]} (all zero)")
            continue
        coef = np.linalg.lstsq(X[:, keep], X[:, j], rcond=None)[0]
        big = [(c, names[k]) for c, k in zip(coef, keep) if abs(c) > 1e-8 * max(1.0, np.abs(coef).max())]
        combo = " + ".join(f"{c:.4g}·{n}" for c, n in big[:4]) + (" + …" if len(big) > 4 else "")
        parts.append(f"{names[j]} = {combo}" if combo else names[j])
    warn(
        f"fixed-effect model matrix is rank deficient; dropping {len(dropped)} column(s), each a linear "
        f"combination of earlier columns (lme4's rule): {'; '.join(parts)}",
        DataWarning,
    )
    return X[:, keep], tuple(names[j] for j in keep), dropped
