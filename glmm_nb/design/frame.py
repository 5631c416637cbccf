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
from ..formula import ParsedFormula
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
        for v in required_variables(t.lhs, t.text):
            used.setdefault(v, f"the term {t.text}")
        for v in t.group_vars:
            used.setdefault(v, f"the term {t.text}")
    for v in extra:
        used.setdefault(v, "the zero-part formula")
    for v, where in used.items():
        if v not in data.columns:
            called = re.search(rf"(?<![\w.`]){re.escape(v)}\s*\(", parsed.text)
            kind = "function" if called else "column"
            raise FormulaError(f"unknown {kind} '{v}' in {where}")
    return used


def vector_argument(arg, data: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    """``weights=`` / ``offset=`` as a column name or an array of the data's length."""
    if arg is None:
        return None, None
    if isinstance(arg, str):
        if arg not in data.columns:
            raise DataError(f"{what}= names the column '{arg}', which is not in the data")
        return data[arg].to_numpy(dtype=float), arg
    vec = np.asarray(arg, dtype=float).ravel()
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
    d = data.loc[mask] if n_dropped else data
    if w_user is not None:
        w_user = w_user[mask]
        if np.any(w_user < 0):
            raise DataError(f"weights must be non-negative; found {w_user[w_user < 0][0]:g}")
    if off_user is not None:
        off_user = off_user[mask]
    return ModelFrame(d, tuple(cols), n_dropped, w_user, off_user, w_col, off_col)
