"""The model frame: which columns a model uses, and the rows kept (lme4's ``na.omit``).

Each variable is recorded with the place in the formula that uses it, so an unknown column is
reported where it occurs. Rows with a missing value in any used column (or in ``weights=`` /
``offset=``) are dropped and counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula import ParsedFormula, position_columns
from .checks import check_names, check_numeric_column, close_names, numpy_dtypes
from .matrices import required_variables

__all__ = ["ModelFrame", "used_variables", "vector_argument", "model_frame"]


def used_variables(parsed: ParsedFormula, data: pd.DataFrame, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Variables the model uses → where (for messages), in order of first appearance.

    Raises :class:`FormulaError` for a name that is not a column of ``data``.
    """
    used: dict[str, str] = {}
    resp_exprs = list(parsed.cbind) if parsed.cbind else [parsed.response]
    for e in resp_exprs:
        name = e.strip().strip("`")
        if name in data.columns:
            used.setdefault(name, "the response")
        else:
            for v in required_variables(f"0 + I({e})", f"the response '{e}'"):
                used.setdefault(v, f"the response '{e}'")
    for v in required_variables(parsed.fixed, "the fixed part"):
        used.setdefault(v, f"the fixed part '{parsed.fixed}'")
    for o in parsed.offsets:
        for v in required_variables(f"0 + I({o})", f"offset({o})"):
            used.setdefault(v, f"offset({o})")
    for t in parsed.random:
        coords = position_columns(t.lhs, t.text)
        for v in coords if coords is not None else required_variables(t.lhs, t.text):
            used.setdefault(v, f"the term {t.text}")
        for v in t.group_vars:
            used.setdefault(v, f"the term {t.text}")
    for v in extra:
        used.setdefault(v, "the zero-part formula")
    resolved: dict[str, str] = {}
    for v, where in used.items():
        names = dotted_columns(v, parsed.text, data)
        if not names:
            called = re.search(rf"(?<![\w.`]){re.escape(v)}\s*\(", parsed.text)
            if called:
                raise FormulaError(f"unknown function '{v}' in {where}{function_hint(v)}")
            raise FormulaError(f"unknown column '{v}' in {where}{close_names(v, data.columns)}")
        for name in names:
            resolved.setdefault(name, where)
    check_names(data, resolved)
    return resolved


_NAME = re.compile(r"`([^`]+)`|([A-Za-z_][\w.]*)")


def dotted_columns(v: str, text: str, data: pd.DataFrame) -> list[str]:
    """The columns a variable ``v`` stands for. formulaic reads a dotted name ``x.1`` as ``x``
    (attribute access): when the formula writes ``x.1`` and the data have that column, ``x.1``
    is meant (and ``x`` too only if the formula also writes it alone)."""
    tokens = {quoted or bare for quoted, bare in _NAME.findall(text)}
    dotted = [t for t in sorted(tokens) if t.startswith(v + ".") and t in data.columns]
    if v in data.columns and (v in tokens or not dotted):
        return [v, *dotted]
    return dotted


_R_FUNCTIONS = {
    "factor": "for a categorical variable write C(z) (R's factor(z))",
    "as.factor": "for a categorical variable write C(z) (R's as.factor(z))",
    "ordered": "for a categorical variable write C(z)",
    "as.numeric": "write the column itself, or I(...) for arithmetic",
    "relevel": "set the reference level with C(z, contr.treatment('level'))",
    "ns": "natural splines are cr(x, df=...) in formulaic",
}


def function_hint(name: str) -> str:
    """A hint for an unknown function: R's idioms translated, numpy's functions named."""
    if name in _R_FUNCTIONS:
        return f"; {_R_FUNCTIONS[name]}"
    if hasattr(np, name):
        return f"; use np.{name}(...)"
    return ""


def vector_argument(arg, data: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    """``weights=`` / ``offset=`` as a column name or a vector of the data's length.

    A pandas Series is aligned on the data's index (a Series whose labels are not the data's
    is refused); text is refused naming the argument.
    """
    if arg is None:
        return None, None
    if isinstance(arg, str):
        if arg not in data.columns:
            raise DataError(f"{what}= names the column '{arg}', which is not in the data"
                            f"{close_names(arg, data.columns)}")
        check_names(data, [arg])
        return check_numeric_column(data[arg], arg, f"the {what}="), arg
    if isinstance(arg, pd.Series):
        if not arg.index.equals(data.index):
            if arg.index.has_duplicates or data.index.has_duplicates or len(arg) != len(data) \
                    or not data.index.isin(arg.index).all():
                raise DataError(
                    f"{what}= is a pandas Series whose index does not match the data's rows; give it the "
                    f"data's index (or pass {what}=series.to_numpy() to use it by position)"
                )
            arg = arg.reindex(data.index)  # the same labels in another order: align on them
        label = str(arg.name) if arg.name is not None else "Series"
        return check_numeric_column(arg, label, f"the {what}="), None
    try:
        vec = np.asarray(arg, dtype=float).ravel()
    except (TypeError, ValueError):
        raise DataError(f"{what}= must be a column name or a vector of numbers; the {type(arg).__name__} "
                        "given holds values that are not numbers") from None
    if vec.shape[0] != len(data):
        raise DataError(f"{what}= has {vec.shape[0]} values but the data have {len(data)} rows")
    return vec, None


@dataclass(frozen=True, eq=False)
class ModelFrame:
    """The rows kept, with the user's weights and offset for those rows."""

    data: pd.DataFrame
    columns: tuple[str, ...]
    n_dropped: int
    weights: np.ndarray | None
    offset: np.ndarray | None
    weights_column: str | None
    offset_column: str | None


def model_frame(data: pd.DataFrame, columns, weights=None, offset=None) -> ModelFrame:
    """Drop the rows with a missing value in ``columns`` (or the weights/offset), counted."""
    if len(data) == 0:
        raise DataError("the data frame has no rows")
    w_user, w_col = vector_argument(weights, data, "weights")
    off_user, off_col = vector_argument(offset, data, "offset")
    cols = list(columns)
    mask = ~data[cols].isna().any(axis=1).to_numpy()
    if w_user is not None:
        mask &= ~np.isnan(w_user)
    if off_user is not None:
        mask &= ~np.isnan(off_user)
    n_dropped = int((~mask).sum())
    if not mask.any():
        raise DataError(
            f"no rows left after dropping the {n_dropped} with a missing value in "
            f"{', '.join(cols)}"
        )
    d = numpy_dtypes(data.loc[mask, cols] if n_dropped else data[cols])
    if w_user is not None:
        w_user = w_user[mask]
        if np.any(w_user < 0):
            raise DataError(f"weights must be non-negative; found {w_user[w_user < 0][0]:g}")
        if not np.any(w_user > 0):
            raise DataError("all weights are zero: no observation carries information")
    if off_user is not None:
        off_user = off_user[mask]
    return ModelFrame(d, tuple(cols), n_dropped, w_user, off_user, w_col, off_col)
