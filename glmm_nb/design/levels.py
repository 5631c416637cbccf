"""An ordinal response's level order, given by the analyst (CLI ``--ordered``, the magics'
``--ordered``, the model builder's level box).

The order of an ordinal response is part of the model: ``ordered_column`` makes a column an
ordered Categorical only from an order the analyst wrote, or from numbers (whose order is the
scale). Words without an order are refused, as :func:`glmm_nb.glmm` refuses them: sorting
"high, low, mid" alphabetically would fit a different model without a word of warning.
"""

from __future__ import annotations

import pandas as pd

from ..errors import DataError

__all__ = ["ordered_column", "parse_levels"]


def parse_levels(text: str, what: str) -> list[str]:
    """``"a,b,c"`` as a list of levels; an empty or repeated level is a DataError naming it."""
    levels = [v.strip() for v in text.split(",")]
    if any(not v for v in levels):
        raise DataError(f"{what}: an empty level in '{text}' (write the levels low to high, separated by commas)")
    seen: set[str] = set()
    for v in levels:
        if v in seen:
            raise DataError(f"{what}: the level '{v}' is listed twice in '{text}'")
        seen.add(v)
    return levels


def _as_text(col: pd.Series) -> pd.Series:
    """Values as the labels an analyst writes: 1.0 in a file is "1"."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.map(lambda v: v if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
    return col.astype(object).map(lambda v: v if pd.isna(v) else str(v))


def ordered_column(col: pd.Series, levels, name: str, what: str) -> pd.Categorical:
    """``col`` as an ordered Categorical with categories ``levels`` (low to high; a list or a
    ``"a,b,c"`` string), or — ``levels`` None or empty — numbers in numeric order (an ordered
    Categorical stays as it is). ``what`` names the option in messages."""
    if isinstance(levels, str):
        levels = parse_levels(levels, what) if levels.strip() else None
    elif levels is not None:
        levels = parse_levels(",".join(map(str, levels)), what) if len(levels) else None
    if levels is None:
        if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.ordered:
            return col.array
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            return pd.Categorical(col, categories=sorted(col.dropna().unique()), ordered=True)
        shown = ", ".join(sorted(map(str, col.dropna().unique()))[:6])
        raise DataError(f"{what}: the values of '{name}' are labels ({shown}), whose order may not be the scale; "
                        f"give it low to high, e.g. {name}=" + ",".join(sorted(map(str, col.dropna().unique()))[:3]))
    text = _as_text(col)
    unknown = sorted(set(text.dropna()) - set(levels))
    if unknown:
        raise DataError(f"{what}: the values {', '.join(unknown)} of '{name}' are not in the order given")
    return pd.Categorical(text, categories=levels, ordered=True)
