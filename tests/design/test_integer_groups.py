"""Integer grouping columns take an O(n) path (a mark per value instead of a sort): the same
levels, labels and codes as the general path (np.unique and value_label), including negative
values, wide ranges (which fall back to sorting), unsigned types and missing values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glmm_nb.design.grouping import column_levels, value_label


def reference(values: np.ndarray):
    u, inv = np.unique(values, return_inverse=True)
    return tuple(value_label(x) for x in u), inv.ravel()


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).integers(-5, 50, 1000),
    np.random.default_rng(1).integers(0, 10**12, 1000),  # wide range: sorted
    np.array([3, 3, 7, 200], dtype=np.uint8),
    np.random.default_rng(2).integers(0, 20_000, 200_000),
    np.array([-(2**62), 2**62, 0]),
])
def test_integer_codes_match_the_sorting_path(values):
    labels, codes = column_levels(pd.Series(values), "g")
    ref_labels, ref_codes = reference(values)
    assert labels == ref_labels
    np.testing.assert_array_equal(codes, ref_codes)


def test_missing_values_keep_code_minus_one():
    labels, codes = column_levels(pd.Series([5, None, 3, 5], dtype="Int64"), "g")
    assert labels == ("3", "5")
    np.testing.assert_array_equal(codes, [1, -1, 0, 1])
