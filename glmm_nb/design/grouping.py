"""Grouping factors: levels (lme4's order) and integer codes, single factors and interactions."""

from __future__ import annotations


import numpy as np
import pandas as pd

from ..errors import DataWarning, warn

__all__ = ["factor_codes", "grouping_codes"]


def factor_codes(col: pd.Series, name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Levels (lme4 order, unused dropped) and integer codes of one grouping column."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.remove_unused_categories()
        return tuple(str(c) for c in cats.cat.categories), cats.cat.codes.to_numpy().astype(np.int64)
    values = col.to_numpy()
    if pd.api.types.is_float_dtype(col):
        if np.any(values != np.round(values)):
            bad = values[values != np.round(values)][0]
            warn(
                f"grouping column '{name}' holds non-integer numbers (e.g. {bad}); "
                "each distinct value is treated as its own group — is that intended?",
                DataWarning)
    uniq, codes = np.unique(values, return_inverse=True)
    if pd.api.types.is_float_dtype(col) and np.all(uniq == np.round(uniq)):
        labels = tuple(str(int(u)) for u in uniq)
    else:
        labels = tuple(str(u) for u in uniq)
    return labels, codes.astype(np.int64)


def grouping_codes(data: pd.DataFrame, vars_: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """Levels and codes of a grouping factor or of the interaction ``a:b`` of several."""
    parts = [factor_codes(data[v], v) for v in vars_]
    if len(parts) == 1:
        return parts[0]
    # interaction a:b with lme4/R level order: the first factor varies slowest
    sizes = [len(lv) for lv, _ in parts]
    combined = np.zeros(len(data), dtype=np.int64)
    for (_lv, codes), size in zip(parts, sizes):
        combined = combined * size + codes
    uniq, codes = np.unique(combined, return_inverse=True)
    labels = []
    for u in uniq:
        idx = []
        for size in reversed(sizes):
            idx.append(u % size)
            u //= size
        idx.reverse()
        labels.append(":".join(parts[k][0][i] for k, i in enumerate(idx)))
    return tuple(labels), codes.astype(np.int64)
