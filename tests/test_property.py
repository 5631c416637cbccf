"""Property-based test (issue 16): random data frames (dtypes, NaN, inf, empty, duplicated
names) and random formula strings thrown at ``glmm()`` give a fit or a glmm_nb error — no other
exception type, no hang (30 s per example at most), no change to the input.

Kept small (few examples, frames of at most 40 rows) so the suite stays fast; derandomized so
that a run is reproducible.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import glmm_nb  # noqa: E402
from glmm_nb import GLMMError  # noqa: E402

NAMES = ["y", "x", "g", "z", "w", "x.1", "site id", "Intercept", "class", "h"]


@st.composite
def columns(draw, n):
    kind = draw(st.sampled_from(["float", "int", "bool", "text", "cat", "nullable", "string", "object", "nan",
                                 "count"]))
    rng = np.random.default_rng(draw(st.integers(0, 10**6)))
    if kind == "float":
        v = rng.normal(size=n)
        if n and draw(st.booleans()):
            v[rng.integers(0, n)] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300]))
        return pd.Series(v)
    if kind == "int":
        return pd.Series(rng.integers(0, draw(st.integers(1, 6)), n))
    if kind == "count":
        return pd.Series(rng.poisson(2, n))
    if kind == "bool":
        return pd.Series(rng.random(n) < 0.5)
    if kind == "text":
        return pd.Series(rng.choice(["a", "b", "c:d", "1", ""], n))
    if kind == "cat":
        return pd.Series(pd.Categorical(rng.choice(["u", "v", "w"], n), categories=["u", "v", "w", "unused"]))
    if kind == "nullable":
        s = pd.Series(rng.integers(0, 4, n), dtype="Int64")
        if n:
            s.iloc[0] = pd.NA
        return s
    if kind == "string":
        return pd.Series(rng.choice(["p", "q"], n), dtype="string")
    if kind == "object":
        return pd.Series([draw(st.sampled_from([1, "a", None, 2.5, True])) for _ in range(n)], dtype=object)
    return pd.Series(np.full(n, np.nan))


@st.composite
def frames(draw):
    """A usable frame (response, covariates, groups), then a few hostile changes."""
    n = draw(st.sampled_from([30, 12, 40, 4, 1, 0]))
    rng = np.random.default_rng(draw(st.integers(0, 10**6)))
    g = rng.integers(0, draw(st.integers(1, 8)), n)
    df = pd.DataFrame({
        "y": rng.integers(0, 2, n) if draw(st.booleans()) else rng.poisson(2, n),
        "x": rng.normal(size=n), "w": rng.integers(1, 4, n), "z": rng.choice(["a", "b", "c"], n),
        "g": g, "h": rng.integers(0, 3, n), "x.1": rng.normal(size=n), "site id": g,
    })
    for _ in range(draw(st.sampled_from([0, 0, 1, 2, 3]))):
        change = draw(st.sampled_from(["dtype", "nan", "nan", "duplicate", "intercept", "drop", "constant"]))
        name = draw(st.sampled_from(list(df.columns)))
        if change == "dtype":
            df[name] = draw(columns(n)).to_numpy() if draw(st.booleans()) else draw(columns(n)).values
        elif change == "nan" and n:
            col = df[name].astype(object)
            col.iloc[int(rng.integers(0, n))] = draw(st.sampled_from([np.nan, None, np.inf, -np.inf, pd.NA]))
            df[name] = col
        elif change == "duplicate":
            df = pd.concat([df, df[[name]]], axis=1)
        elif change == "intercept":
            df["Intercept"] = rng.normal(size=n)
        elif change == "drop":
            df = df.drop(columns=[name])
        elif change == "constant":
            df[name] = 0
    if draw(st.booleans()):
        df = df.convert_dtypes()
    return df


TERMS = ["x", "x", "z", "z", "w", "x.1", "`site id`", "class", "Intercept", "C(z)", "x:z", "x*w", "I(x**2)",
         "np.log(x)",
         "factor(z)", "I(x^2)", "{x + 1}", "offset(w)", "nope", "0", "1", "-1", "poly(x, 2)"]
BARS = ["(1 | g)", "(x | g)", "(x || g)", "(1 | g/h)", "(1 | g:h)", "(1 | `site id`)", "(0 + x | z)", "(1 | nope)",
        "(1 | x)", "(z | g)", "(1 + x | h)"]
JUNK = ["", "(", ")", "|", "~", "^", "`", "#", "{", "cbind(", ",", "+"]


@st.composite
def formulas(draw):
    # hypothesis prefers small integers and first choices: those are the usual, usable forms
    lhs = "y" if draw(st.integers(0, 2)) < 2 else draw(st.sampled_from(["cbind(y, w)", "x", "nope", "y + w", ""]))
    fixed = draw(st.lists(st.sampled_from(TERMS), max_size=3))
    bars = draw(st.lists(st.sampled_from(BARS), min_size=1, max_size=2, unique=True)) if draw(st.integers(0, 9)) < 9 \
        else []
    text = f"{lhs} ~ " + " + ".join(fixed + bars or ["1"])
    if draw(st.integers(0, 7)) == 7:  # a little junk somewhere
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.sampled_from(JUNK)) + text[pos:]
    return text


@settings(max_examples=60, deadline=30_000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(df=frames(), formula=formulas(),
       family=st.sampled_from(["binomial", "poisson", "gaussian", "nbinom2", "gamma"]), agq=st.booleans())
def test_glmm_answers_every_input(df, formula, family, agq):
    before = df.copy(deep=True)
    kw = {"method": "agq", "nagq": 3} if agq and family != "gaussian" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = glmm_nb.glmm(formula, df, family=family, **kw)
        except GLMMError as exc:
            assert "\n" not in str(exc).strip(), str(exc)
        else:
            assert isinstance(m, glmm_nb.MixedModel)
            m.summary()
    pd.testing.assert_frame_equal(df, before)
