"""The response: ``y`` on the mean scale, binomial trials, and the family's support check.

The family object decides what is allowed: ``cbind(successes, failures)`` and two-level
factors for families that read them (binomial), numbers otherwise; its ``check_response``
names the column and the offending value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..formula import ParsedFormula
from .grouping import factor_codes
from .matrices import eval_numeric

__all__ = ["read_response", "response_variables"]


def response_variables(parsed: ParsedFormula, data: pd.DataFrame) -> list[tuple[str, str]]:
    """(expression, name-or-expression) pairs of the response's pieces."""
    exprs = list(parsed.cbind) if parsed.cbind else [parsed.response]
    return [(e, e.strip().strip("`")) for e in exprs]


def read_response(parsed: ParsedFormula, data: pd.DataFrame, family) -> tuple[np.ndarray, np.ndarray, str]:
    """Return ``(y, trials, name)``: y on the mean scale, trials the binomial sizes (or 1).

    ``family`` is a :class:`glmm_nb.families.Family`.
    """
    n = len(data)
    ones = np.ones(n)
    if parsed.cbind is not None:
        if not family.reads_cbind:
            raise DataError(f"cbind(successes, failures) needs family='binomial', not '{family.name}'")
        s = eval_numeric(parsed.cbind[0], data, "successes")
        f = eval_numeric(parsed.cbind[1], data, "failures")
        for vec, expr in ((s, parsed.cbind[0]), (f, parsed.cbind[1])):
            if np.any(vec < 0):
                raise DataError(f"cbind: '{expr}' has negative counts (e.g. {vec[vec < 0][0]:g})")
        trials = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, s / np.where(trials > 0, trials, 1), 0.0)
        return y, trials, f"cbind({parsed.cbind[0]}, {parsed.cbind[1]})"

    expr = parsed.response
    name = expr.strip().strip("`")
    if name in data.columns:
        col = data[name]
        if pd.api.types.is_bool_dtype(col):
            return col.to_numpy(dtype=float), ones, name
        if family.reads_cbind and not pd.api.types.is_numeric_dtype(col):
            levels, codes = factor_codes(col, name)
            if isinstance(col.dtype, pd.CategoricalDtype):
                levels = tuple(str(c) for c in col.cat.categories)
                codes = col.cat.codes.to_numpy()
            if len(levels) != 2:
                raise DataError(
                    f"response '{name}' must have two levels for the {family.name} family; "
                    f"it has {len(levels)}: {', '.join(levels[:5])}"
                )
            return (codes == 1).astype(float), ones, name
        if not pd.api.types.is_numeric_dtype(col):
            raise DataError(f"response '{name}' must be numeric for the {family.name} family")
        y = col.to_numpy(dtype=float)
    else:
        y = eval_numeric(expr, data, "response")
    return y, ones, expr
