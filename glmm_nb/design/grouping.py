"""Grouping factors — the one place where grouping values become groups, for the fit and for
new data alike.

A grouping column's values become *labels* one value at a time (:func:`value_label`): a
category or string as written, a whole number as an integer (``3`` and ``3.0`` are both
``"3"``), other numbers with ``str``. The groups of one column are its distinct non-missing
values in lme4's order (sorted; a categorical's own order). An interaction ``a:b`` is built
from the *codes* of its columns, never from joined text: its groups are the combinations
present, ordered with the first column varying slowest (R's ``interaction``), and labelled
``"a_level:b_level"`` — if two different combinations would print alike (``('1:2', '3')`` and
``('1', '2:3')``) the data are refused, since tables and predictions name groups by label.

New data (predictions, simulations) are mapped with :func:`map_groups` through the fitted
per-column levels, again by codes: a row whose grouping value is missing is *missing* (code
-1, predicted at the population level), a row whose value or combination was not seen in the
fit is *new* (code -1 as well, reported separately).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, DataWarning, warn

__all__ = ["Grouping", "MappedGroups", "value_label", "column_levels", "factor_codes", "grouping", "grouping_codes",
           "map_groups"]


@dataclass(frozen=True, eq=False)
class Grouping:
    """The groups of a grouping factor (one column or an interaction of several).

    Attributes
    ----------
    levels : tuple of str
        Group labels in lme4's order.
    codes : ndarray of int, shape (n,)
        Group of each row; -1 where a grouping value is missing.
    var_levels : tuple of tuple of str
        Per grouping column, its level labels in order.
    level_codes : ndarray of int, shape (J, k)
        Per group, the codes of its k columns' levels (the group's identity).
    """

    levels: tuple[str, ...]
    codes: np.ndarray
    var_levels: tuple[tuple[str, ...], ...]
    level_codes: np.ndarray


@dataclass(frozen=True, eq=False)
class MappedGroups:
    """New data mapped onto a fitted grouping factor: ``codes`` (-1 for missing or new),
    ``missing`` (bool mask), ``new_levels`` (labels of groups not seen in the fit)."""

    codes: np.ndarray
    missing: np.ndarray
    new_levels: tuple[str, ...]


def value_label(v) -> str:
    """The label of one grouping value (whole numbers print as integers)."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        f = float(v)
        if np.isfinite(f) and f == np.round(f) and abs(f) < 2**63:
            return str(int(f))
        return str(f)
    return str(v)


def _value_kind(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, numbers.Number):
        return "number"
    if isinstance(v, str):
        return "text"
    return type(v).__name__


_INFERRED_KIND = {"string": "text", "integer": "number", "floating": "number", "mixed-integer-float": "number",
                  "decimal": "number", "complex": "number", "boolean": "bool"}


def _one_kind(values: np.ndarray) -> str | None:
    """The one kind of all ``values`` (pandas' C type inference), or None when they mix kinds or
    pandas cannot say (the per-value check then decides and names the kinds)."""
    return _INFERRED_KIND.get(pd.api.types.infer_dtype(values, skipna=True))


def _check_values(col: pd.Series, name: str, present: np.ndarray) -> None:
    """Refuse infinite values and columns that mix kinds of values (numbers and text)."""
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        vals = col.to_numpy(dtype=float, na_value=np.nan)
        if np.any(np.isinf(vals)):
            raise DataError(f"grouping column '{name}' has infinite values; a group must be a finite value or a label")
        return
    if col.dtype == object:
        kind = _one_kind(col.to_numpy()[present])
        if kind == "text" or kind == "bool":
            return
        if kind == "number":
            vals = col.to_numpy()[present].astype(float)
            if np.any(np.isinf(vals)):
                raise DataError(f"grouping column '{name}' has infinite values; a group must be a finite value or "
                                "a label")
            return
        kinds = {}
        for v in col.to_numpy()[present]:
            kinds.setdefault(_value_kind(v), v)
        if len(kinds) > 1:
            shown = ", ".join(f"{k} ({kinds[k]!r})" for k in sorted(kinds))
            raise DataError(
                f"grouping column '{name}' mixes kinds of values: {shown}; make it one kind, "
                f"e.g. data['{name}'].astype(str)"
            )
        if "number" in kinds and any(isinstance(v, numbers.Real) and not np.isfinite(float(v))
                                     for v in col.to_numpy()[present]):
            raise DataError(f"grouping column '{name}' has infinite values; a group must be a finite value or a label")


def column_levels(col: pd.Series, name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Level labels (lme4's order, unused dropped) and codes of one grouping column.

    Missing values get code -1. Raises :class:`DataError` for infinite values and for columns
    mixing numbers and text.
    """
    present = ~col.isna().to_numpy()
    _check_values(col, name, present)
    codes = np.full(len(col), -1, dtype=np.int64)
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.remove_unused_categories()
        return tuple(value_label(c) for c in cats.cat.categories), cats.cat.codes.to_numpy().astype(np.int64)
    values = col.to_numpy()[present]
    if pd.api.types.is_float_dtype(col):
        values = values.astype(float)
        frac = values != np.round(values)
        if np.any(frac):
            warn(
                f"grouping column '{name}' holds non-integer numbers (e.g. {values[frac][0]}); "
                "each distinct value is treated as its own group — is that intended?",
                DataWarning,
            )
    elif col.dtype == object:
        one = _one_kind(values)
        kinds = {one} if one is not None else {_value_kind(v) for v in values}
        if kinds == {"number"}:
            values = values.astype(float)
        elif kinds <= {"text"}:
            values = values.astype(str)
        else:
            values = np.array([value_label(v) for v in values], dtype=str)
    if values.dtype.kind in "iu" and values.size:  # integer codes: labels are the numbers, no sort needed
        uniq, inv = _dense_unique(values)
        codes[present] = inv
        return tuple(map(str, uniq.tolist())), codes
    uniq, inv = np.unique(values, return_inverse=True)
    labels = tuple(value_label(u) for u in uniq)
    if len(set(labels)) < len(labels):  # e.g. 1.0000000000000002 and 1.0 both print '1'
        raise DataError(f"grouping column '{name}' has distinct values that print alike; round or recode it")
    codes[present] = inv.ravel()
    return labels, codes


def _dense_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of integers in O(n) where their range is at
    most a few times their number (a mark per value in the range), else by sorting."""
    lo, hi = int(values.min()), int(values.max())
    if hi - lo > 4 * values.size + 1024:
        uniq, inv = np.unique(values, return_inverse=True)
        return uniq, inv.ravel()
    # in 64 bits: a narrow signed type (int8, int16) wraps when its range exceeds the type
    wide = values.astype(np.int64 if values.dtype.kind == "i" else np.uint64)
    off = (wide - wide.dtype.type(lo)).astype(np.intp)
    seen = np.zeros(hi - lo + 1, dtype=bool)
    seen[off] = True
    rank = np.cumsum(seen, dtype=np.int64) - 1
    return np.flatnonzero(seen).astype(wide.dtype) + wide.dtype.type(lo), rank[off]


factor_codes = column_levels  # the name other modules use


def grouping(data: pd.DataFrame, vars_: tuple[str, ...]) -> Grouping:
    """The groups of a grouping factor or of the interaction ``a:b`` of several columns."""
    parts = [column_levels(data[v], v) for v in vars_]
    if len(parts) == 1:
        levels, codes = parts[0]
        return Grouping(levels, codes, (levels,), np.arange(len(levels), dtype=np.int64)[:, None])
    sizes = np.array([len(lv) for lv, _ in parts], dtype=np.int64)
    C = np.stack([c for _, c in parts], axis=1)  # (n, k)
    present = np.all(C >= 0, axis=1)
    combined = np.zeros(len(data), dtype=np.int64)
    for j, size in enumerate(sizes):  # mixed radix, the first column varies slowest
        combined = combined * size + np.maximum(C[:, j], 0)
    uniq, inv = np.unique(combined[present], return_inverse=True)
    level_codes = np.empty((len(uniq), len(sizes)), dtype=np.int64)
    rest = uniq.copy()
    for j in range(len(sizes) - 1, -1, -1):
        level_codes[:, j] = rest % sizes[j]
        rest //= sizes[j]
    labels = tuple(":".join(parts[j][0][c] for j, c in enumerate(row)) for row in level_codes)
    if len(set(labels)) < len(labels):
        seen: dict[str, tuple] = {}
        for row, lab in zip(level_codes, labels):
            combo = tuple(parts[j][0][c] for j, c in enumerate(row))
            if lab in seen:
                raise DataError(
                    f"the groups {seen[lab]} and {combo} of {':'.join(vars_)} both print as '{lab}' "
                    "(a level contains ':'); recode the levels so that each group has its own name"
                )
            seen[lab] = combo
    codes = np.full(len(data), -1, dtype=np.int64)
    codes[present] = inv.ravel()
    var_levels = tuple(lv for lv, _ in parts)
    return Grouping(labels, codes, var_levels, level_codes)


def grouping_codes(data: pd.DataFrame, vars_: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """Levels and codes (-1 for a missing value) of a grouping factor; see :func:`grouping`."""
    g = grouping(data, vars_)
    return g.levels, g.codes


def map_groups(data: pd.DataFrame, vars_: tuple[str, ...], var_levels, level_codes) -> MappedGroups:
    """Map the rows of new data onto the groups of a fitted grouping factor.

    Parameters
    ----------
    vars_ : tuple of str
        The grouping columns.
    var_levels, level_codes
        The fitted factor's per-column levels and per-group column codes (:class:`Grouping`).
    """
    n = len(data)
    missing = np.zeros(n, dtype=bool)
    sizes = np.array([len(lv) for lv in var_levels], dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    for j, v in enumerate(vars_):
        labels, c = column_levels(data[v], v)
        missing |= c < 0
        lookup = {lv: i for i, lv in enumerate(var_levels[j])}
        to_fit = np.array([lookup.get(lv, -1) for lv in labels] + [-1], dtype=np.int64)
        mapped = to_fit[np.where(c >= 0, c, len(labels))]
        # an unseen level of one column makes the row's key impossible (negative)
        key = np.where((key < 0) | (mapped < 0), -1, key * sizes[j] + np.maximum(mapped, 0))
    fitted = np.zeros(len(level_codes), dtype=np.int64)
    for j in range(len(vars_)):
        fitted = fitted * sizes[j] + np.asarray(level_codes)[:, j]
    order = np.argsort(fitted)
    pos = np.clip(np.searchsorted(fitted[order], key), 0, max(len(fitted) - 1, 0))
    hit = (key >= 0) & (fitted[order][pos] == key) if len(fitted) else np.zeros(n, dtype=bool)
    codes = np.where(hit & ~missing, order[pos], -1).astype(np.int64)
    new = ~missing & (codes < 0)
    new_labels: tuple[str, ...] = ()
    if new.any():
        combos = data.loc[new, list(vars_)].drop_duplicates()
        new_labels = tuple(dict.fromkeys(":".join(value_label(x) for x in row)
                                         for row in combos.itertuples(index=False)))
    return MappedGroups(codes, missing, new_labels)
