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
    # narrow signed types whose range exceeds the type: offsets from the minimum must not wrap
    np.array([-100, 100, 5, 100, 30], dtype=np.int8),
    np.array([-10, 120, 5], dtype=np.int8),
    np.random.default_rng(3).integers(-20_000, 20_000, 12_000).astype(np.int16),
    np.array([0, 255, 7], dtype=np.uint8),
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


@pytest.mark.parametrize("values, labels", [
    (["b", "a", None, "b"], ("a", "b")),
    ([2, 1.0, None, 2], ("1", "2")),
    ([True, False, True], ("False", "True")),
    ([np.int64(3), 5, 3], ("3", "5")),
])
def test_object_columns_of_one_kind_by_type_inference(values, labels):
    """Object columns of one kind take pandas' C type inference instead of a loop over rows:
    the same labels as the per-value path (value_label of the sorted distinct values)."""
    got, codes = column_levels(pd.Series(values, dtype=object), "g")
    assert got == labels
    present = [v for v in values if v is not None]
    assert [got[c] for c in codes if c >= 0] == [value_label(v) for v in present]


def test_object_columns_mixing_kinds_are_still_named():
    from glmm_nb.errors import DataError

    with pytest.raises(DataError, match=r"mixes kinds of values: number \(1\), text \('a'\)"):
        column_levels(pd.Series([1, "a", 1], dtype=object), "g")
    with pytest.raises(DataError, match="infinite values"):
        column_levels(pd.Series([1.0, float("inf")], dtype=object), "g")
