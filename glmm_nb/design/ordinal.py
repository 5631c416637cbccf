"""Design stage of an ordinal (cumulative-link) model: the ordered response and X without intercept.

An ordinal model has no intercept: its K − 1 thresholds take that role. The design reuses
:func:`glmm_nb.design.build_spec` unchanged — on a copy of the data whose response column holds
the category codes 0..K−1 as floats (rows with a missing response become NaN, so that
``build_spec`` drops them and counts them like any other incomplete row) — and then removes the
``(Intercept)`` column. ``build_spec`` checks collinearity with the intercept present, which is
exactly the check an ordinal model needs (a column constant within the data is aliased with the
thresholds).

Response rules
--------------
* an **ordered** ``pd.Categorical``: its category order is the scale; every category must be
  observed (among the rows used), else :class:`~glmm_nb.errors.DataError` names the column and
  the empty categories;
* integers (or integer-valued floats): the scale is the sorted distinct values observed;
* an unordered categorical or strings: refused, because their order (often alphabetical) is not
  known to be the scale — make it ordered first;
* fewer than three categories: refused, pointing to ``family="binomial"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError
from ..formula import parse_formula
from .spec import ModelSpec, build_spec

__all__ = ["OrdinalSpec", "ordinal_response", "build_ordinal_spec", "threshold_names"]

INTERCEPT = "(Intercept)"


def threshold_names(levels) -> tuple[str, ...]:
    """clm's threshold names from the category labels: ``"1|2", "2|3", ...``."""
    levels = [str(v) for v in levels]
    return tuple(f"{a}|{b}" for a, b in zip(levels[:-1], levels[1:]))


def ordinal_response(col: pd.Series, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Category codes (float, NaN where missing) and the category labels of an ordinal response.

    Parameters
    ----------
    col : pandas.Series
        The response column (all rows; missing values allowed).
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
        levels = tuple(str(c) for c in col.cat.categories)
        return codes, levels
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


@dataclass(frozen=True, eq=False)
class OrdinalSpec:
    """Everything the ordinal likelihood needs besides the random-effect structure.

    Attributes
    ----------
    spec : ModelSpec
        Built with ``family="gaussian"`` on the category codes; ``spec.X`` still has the
        intercept column (for the lead's generic code) — use :attr:`X` here.
    y : ndarray of int (n,)
        Category codes 0..K−1 of the rows used.
    X : ndarray (n, p)
        Fixed-effect matrix without the intercept column.
    x_names : tuple of str
    levels : tuple of str
        Category labels in scale order (K of them).
    threshold_names : tuple of str
        ``"1|2", "2|3", ...`` (K − 1).
    response_name : str
    """

    spec: ModelSpec
    y: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    levels: tuple[str, ...]
    threshold_names: tuple[str, ...]
    response_name: str

    @property
    def ncat(self) -> int:
        return len(self.levels)

    @property
    def nobs(self) -> int:
        return int(self.y.shape[0])


def build_ordinal_spec(formula: str, data: pd.DataFrame, weights=None, offset=None) -> OrdinalSpec:
    """Formula + data → :class:`OrdinalSpec` for a cumulative-link mixed model.

    Parameters
    ----------
    formula : str
        lme4 syntax with a response column name on the left, e.g.
        ``"rating ~ temp + contact + (1 | judge)"``. The intercept is implied (the thresholds
        replace it); ``0 +`` / ``- 1`` is refused.
    data : pandas.DataFrame
    weights, offset : str or array-like, optional
        As in :func:`glmm_nb.design.build_spec` (the offset adds to x'β).

    Raises
    ------
    FormulaError, DataError, ModelError
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    parsed = parse_formula(formula) if isinstance(formula, str) else formula
    if parsed.cbind is not None:
        raise FormulaError("cbind(successes, failures) is a binomial response, not an ordinal one")
    name = parsed.response.strip().strip("`")
    if name not in data.columns:
        raise FormulaError(
            f"the response of an ordinal model must be a column of the data; '{parsed.response}' is not"
        )
    codes, levels = ordinal_response(data[name], name)
    work = data.copy(deep=False)
    work[name] = codes
    spec = build_spec(parsed, work, family="gaussian", weights=weights, offset=offset)
    y = np.asarray(spec.y).astype(np.int64)
    counts = np.bincount(y, minlength=len(levels))
    empty = [lv for lv, c in zip(levels, counts) if c == 0]
    if empty:
        hint = (f"; drop them with data['{name}'] = data['{name}'].cat.remove_unused_categories()"
                if isinstance(data[name].dtype, pd.CategoricalDtype) else "")
        raise DataError(
            f"response '{name}' has categories with no observation among the {len(y)} rows used: "
            f"{', '.join(empty)}{hint}"
        )
    if len(levels) < 3:
        raise DataError(
            f"response '{name}' has {len(levels)} categories ({', '.join(levels)}); an ordinal model "
            "needs at least three — for two use family='binomial'"
        )
    if INTERCEPT not in spec.x_names:
        raise ModelError(
            "an ordinal model has thresholds in place of an intercept, and removing the intercept "
            "('0 +' or '- 1') would code a factor's first level as well; keep the intercept in the formula"
        )
    keep = [j for j, nm in enumerate(spec.x_names) if nm != INTERCEPT]
    X = np.ascontiguousarray(np.asarray(spec.X)[:, keep])
    X.setflags(write=False)
    y.setflags(write=False)
    return OrdinalSpec(
        spec=spec,
        y=y,
        X=X,
        x_names=tuple(spec.x_names[j] for j in keep),
        levels=levels,
        threshold_names=threshold_names(levels),
        response_name=name,
    )
