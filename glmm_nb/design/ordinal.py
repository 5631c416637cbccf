"""Design pieces of an ordinal (cumulative-link) model: the ordered response, and X without intercept.

:func:`glmm_nb.design.model_spec` calls these for a family whose ``ordinal`` attribute is true.
The response becomes the category codes 0..K−1 (floats) with the category labels recorded in
``ModelSpec.levels``; the fixed-effect matrix is built and checked for collinearity with the
intercept present — exactly the check an ordinal model needs (a column constant within the data
is aliased with the thresholds) — and the ``(Intercept)`` column is then removed: the K − 1
thresholds take its place.

Response rules
--------------
* an **ordered** ``pd.Categorical``: its category order is the scale; every category must be
  observed among the rows used, else :class:`~glmm_nb.errors.DataError` names the column and
  the empty categories;
* integers (or integer-valued floats, nullable integers): the scale is the sorted distinct
  values observed;
* an unordered categorical or strings: refused, because their order (often alphabetical) is not
  known to be the scale — make it ordered first;
* fewer than three categories: refused, pointing to ``family="binomial"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError
from ..formula import ParsedFormula
from .matrices import INTERCEPT

__all__ = ["ordinal_response", "read_ordinal_response", "drop_intercept"]


def ordinal_response(col: pd.Series, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Category codes (float, NaN where missing) and the category labels of an ordinal response.

    Parameters
    ----------
    col : pandas.Series
        The response column (missing values allowed).
    name : str
        Column name, for messages.

    Returns
    -------
    codes : ndarray (n,)
        0..K−1 as floats, NaN for a missing response.
    levels : tuple of str
        The K category labels in scale order.

    Raises
    ------
    DataError
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        if not col.cat.ordered:
            cats = ", ".join(map(str, col.cat.categories[:6]))
            raise DataError(
                f"response '{name}' is an unordered categorical (categories {cats}); its order "
                f"may not be the scale. Make it ordered, e.g. data['{name}'] = "
                f"data['{name}'].cat.as_ordered() after checking the category order"
            )
        codes = col.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes, tuple(str(c) for c in col.cat.categories)
    if pd.api.types.is_bool_dtype(col):
        raise DataError(
            f"response '{name}' is binary (True/False); an ordinal model needs at least three "
            "categories — use family='binomial'"
        )
    if not pd.api.types.is_numeric_dtype(col):
        raise DataError(
            f"response '{name}' must be an ordered pandas Categorical or integers for an ordinal "
            f"model, not {col.dtype}; e.g. pd.Categorical(data['{name}'], categories=[...], ordered=True)"
        )
    v = col.to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(v)
    if np.any(np.isinf(v)):
        raise DataError(f"response '{name}' has infinite values")
    if np.any(v[ok] != np.round(v[ok])):
        bad = v[ok][v[ok] != np.round(v[ok])][0]
        raise DataError(
            f"response '{name}' has non-integer values (e.g. {bad:g}); an ordinal response is an "
            "ordered Categorical or integer scores"
        )
    uniq, inv = np.unique(v[ok], return_inverse=True)
    codes = np.full(v.shape, np.nan)
    codes[ok] = inv
    return codes, tuple(str(int(u)) for u in uniq)


def read_ordinal_response(parsed: ParsedFormula, data: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...], str]:
    """``(codes, levels, name)`` of the response of an ordinal model on the rows used.

    Raises
    ------
    FormulaError
        ``cbind(...)`` or an expression instead of a column.
    DataError
        A response that is not ordered, an unobserved category, fewer than three categories.
    """
    if parsed.cbind is not None:
        raise FormulaError("cbind(successes, failures) is a binomial response, not an ordinal one")
    name = parsed.response.strip().strip("`")
    if name not in data.columns:
        raise FormulaError(
            f"the response of an ordinal model must be a column of the data; '{parsed.response}' is not"
        )
    codes, levels = ordinal_response(data[name], name)
    if np.any(np.isnan(codes)):  # pragma: no cover - the model frame has dropped them
        raise DataError(f"response '{name}' has missing values")
    counts = np.bincount(codes.astype(np.int64), minlength=len(levels))
    empty = [lv for lv, c in zip(levels, counts) if c == 0]
    if empty:
        hint = (f"; drop them with data['{name}'] = data['{name}'].cat.remove_unused_categories()"
                if isinstance(data[name].dtype, pd.CategoricalDtype) else "")
        raise DataError(
            f"response '{name}' has categories with no observation among the {len(codes)} rows used: "
            f"{', '.join(empty)}{hint}"
        )
    if len(levels) < 3:
        raise DataError(
            f"response '{name}' has {len(levels)} categories ({', '.join(levels)}); an ordinal model "
            "needs at least three — for two use family='binomial'"
        )
    return codes, levels, name


def drop_intercept(X: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """X and its names without the ``(Intercept)`` column (the thresholds replace it).

    Raises
    ------
    ModelError
        The formula removed the intercept (``0 +`` / ``- 1``).
    """
    if INTERCEPT not in names:
        raise ModelError(
            "an ordinal model has thresholds in place of an intercept, and removing the intercept "
            "('0 +' or '- 1') would code a factor's first level as well; keep the intercept in the formula"
        )
    keep = [j for j, nm in enumerate(names) if nm != INTERCEPT]
    return np.ascontiguousarray(np.asarray(X)[:, keep]), tuple(names[j] for j in keep)
