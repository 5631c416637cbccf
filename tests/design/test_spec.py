"""ModelSpec: design matrices against lme4's bookkeeping, every syntax form, every error."""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from glmm_nb import DataError, DataWarning, FormulaError, build_spec
from tests.conftest import GLMM_CASES, load_case, r_name


@pytest.mark.parametrize("case_id", GLMM_CASES)
def test_reference_cases_match_lme4_bookkeeping(case_id):
    case, df = load_case(case_id)
    spec = build_spec(case["formula"], df, case["family"])
    assert spec.nobs == case["nobs"]
    assert spec.ngroups == case["ngroups"]
    # random-effect columns per term = variance rows per grp in VarCorr
    var_rows = {}
    for row in case["varcorr"]:
        if row["var2"] is None and row["grp"] != "Residual":
            var_rows[row["grp"]] = var_rows.get(row["grp"], 0) + 1
    assert {t.label: t.q for t in spec.terms} == var_rows
    # lme4's term order (decreasing number of levels)
    assert [t.label for t in spec.terms] == list(dict.fromkeys(r["grp"] for r in case["varcorr"] if r["grp"] != "Residual"))
    assert list(spec.x_names) == [r_name(n, case, df) for n in case["fixef"]]


def test_contraception_slope_columns():
    case, df = load_case("contraception_slope")
    spec = build_spec(case["formula"], df, "binomial")
    assert spec.terms[0].col_names == ("(Intercept)", "urban[T.Y]")
    assert spec.terms[0].Zvals.shape == (1934, 2)
    assert spec.theta_lower().tolist() == [0.0, -np.inf, 0.0]
    assert spec.theta_start().tolist() == [1.0, 0.0, 1.0]


@pytest.fixture
def toy(rng):
    n = 120
    df = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "t": rng.uniform(1, 3, n),
            "count": rng.poisson(2, n),
            "a": pd.Categorical(rng.choice(["a1", "a2", "a3"], n), categories=["a3", "a1", "a2"]),
            "b": rng.choice(["b1", "b2"], n),
            "g": rng.integers(1, 13, n),
            "f": pd.Categorical(rng.choice(["lo", "hi"], n), categories=["lo", "hi"]),
        }
    )
    return df


def test_categorical_level_order_is_honoured(toy):
    spec = build_spec("y ~ a + (1 | g)", toy)
    assert spec.x_names == ("(Intercept)", "a[T.a1]", "a[T.a2]")  # a3 is the reference


@pytest.mark.parametrize(
    "fixed, names",
    [
        ("x * z", ("(Intercept)", "x", "z", "x:z")),
        ("C(b)", ("(Intercept)", "C(b)[T.b2]")),
        ("I(x**2)", ("(Intercept)", "I(x ** 2)")),
        ("np.log(t)", ("(Intercept)", "np.log(t)")),
        ("0 + x", ("x",)),
        ("x - 1", ("x",)),
    ],
)
def test_fixed_part_forms(toy, fixed, names):
    spec = build_spec(f"y ~ {fixed} + (1 | g)", toy)
    assert spec.x_names == names


def test_random_slope_forms(toy):
    s = build_spec("y ~ x + (x | g)", toy)
    assert s.terms[0].col_names == ("(Intercept)", "x") and s.ntheta == 3
    s = build_spec("y ~ x + (0 + x | g)", toy)
    assert s.terms[0].col_names == ("x",) and s.ntheta == 1
    np.testing.assert_allclose(s.terms[0].Zvals[:, 0], toy["x"])


def test_uncorrelated_bars_split_per_column(toy):
    s = build_spec("y ~ x + (x || g)", toy)
    assert [(t.label, t.col_names) for t in s.terms] == [("g", ("(Intercept)",)), ("g.1", ("x",))]
    assert s.ntheta == 2 and s.ngroups == {"g": 12}


def test_nested_and_interaction_grouping(toy):
    s = build_spec("y ~ (1 | b/g)", toy)
    groups = [t.group for t in s.terms]
    assert set(groups) == {"b", "b:g"}
    combos = toy.groupby(["b", "g"]).ngroups
    assert s.ngroups["b:g"] == combos and s.ngroups["b"] == 2
    # lme4 orders the terms by decreasing number of levels
    assert s.terms[0].group == "b:g"
    s2 = build_spec("y ~ (1 | b:g)", toy)
    assert s2.ngroups == {"b:g": combos}
    assert s2.terms[0].levels[0] == "b1:1"


def test_categorical_random_slope(toy):
    s = build_spec("y ~ f + (f | g)", toy)
    assert s.terms[0].col_names == ("(Intercept)", "f[T.hi]")
    s = build_spec("y ~ f + (0 + f | g)", toy)
    assert s.terms[0].col_names == ("f[lo]", "f[hi]")  # full dummy coding, as lme4


def test_crossed_terms(toy):
    s = build_spec("y ~ x + (1 | g) + (1 | b)", toy)
    assert s.ngroups == {"g": 12, "b": 2}


def test_responses(toy):
    bool_df = toy.assign(yb=toy.y.astype(bool))
    np.testing.assert_array_equal(build_spec("yb ~ x + (1 | g)", bool_df).y, toy.y)
    cat = toy.assign(yc=pd.Categorical(np.where(toy.y == 1, "yes", "no"), categories=["no", "yes"]))
    np.testing.assert_array_equal(build_spec("yc ~ x + (1 | g)", cat).y, toy.y)
    s = build_spec("cbind(count, 5 - count) ~ x + (1 | g)", toy.assign(count=toy["count"].clip(0, 5)))
    np.testing.assert_allclose(s.weights, 5.0)
    prop = toy.assign(p=toy["count"].clip(0, 5) / 5)
    s = build_spec("p ~ x + (1 | g)", prop, weights=np.full(len(toy), 5.0))
    np.testing.assert_allclose(s.y * s.weights, toy["count"].clip(0, 5))
    s = build_spec("count ~ x + (1 | g)", toy, family="poisson")
    np.testing.assert_array_equal(s.y, toy["count"])


def test_offsets_and_weights(toy):
    s = build_spec("count ~ x + offset(np.log(t)) + (1 | g)", toy, family="poisson")
    np.testing.assert_allclose(s.offset, np.log(toy.t))
    s = build_spec("count ~ x + (1 | g)", toy, family="poisson", offset="t", weights="t")
    np.testing.assert_allclose(s.offset, toy.t)
    np.testing.assert_allclose(s.weights, toy.t)


def test_missing_rows_are_dropped_and_counted(toy):
    df = toy.copy()
    df.loc[[3, 7], "x"] = np.nan
    df.loc[11, "g"] = np.nan
    df.loc[20, "z"] = np.nan  # not used by the model: kept
    s = build_spec("y ~ x + (1 | g)", df)
    assert s.n_dropped == 3 and s.nobs == len(df) - 3
    assert 3 not in s.row_index and 20 in s.row_index


def test_new_data_rebuilds_with_same_encoding(toy):
    s = build_spec("y ~ a + x + (1 + x | g)", toy)
    new = toy.head(5).copy()
    new.loc[new.index[0], "g"] = 99
    d = s.design_for(new)
    assert d.X.shape == (5, 4)
    np.testing.assert_allclose(d.X[1:], np.asarray(s.X)[1:5])
    assert d.codes[0][0] == -1 and d.new_levels[0] == ("99",)
    np.testing.assert_array_equal(d.codes[0][1:], np.asarray(s.terms[0].codes)[1:5])
    with pytest.raises(DataError, match="'x'"):
        s.design_for(toy.drop(columns="x"))


def test_spec_is_frozen(toy):
    s = build_spec("y ~ x + (1 | g)", toy)
    with pytest.raises(ValueError, match="read-only"):
        s.X[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.family = "poisson"


# ------------------------------------------------------------------------------ errors
def test_unknown_column(toy):
    with pytest.raises(FormulaError, match="unknown column 'nope'"):
        build_spec("y ~ nope + (1 | g)", toy)
    with pytest.raises(FormulaError, match="unknown column 'gg'"):
        build_spec("y ~ x + (1 | gg)", toy)
    with pytest.raises(FormulaError, match="unknown column 'w'"):
        build_spec("y ~ x + (w | g)", toy)


def test_no_random_effect_hints_glm(toy):
    with pytest.raises(FormulaError, match="use a GLM"):
        build_spec("y ~ x", toy)


def test_non_integer_float_grouping_warns(toy):
    with pytest.warns(DataWarning, match="grouping column 'gf'"):
        build_spec("y ~ x + (1 | gf)", toy.assign(gf=toy.g + 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_spec("y ~ x + (1 | gf)", toy.assign(gf=toy.g.astype(float)))


def test_response_support(toy):
    with pytest.raises(DataError, match=r"response 'count' must lie in \[0, 1\]"):
        build_spec("count ~ x + (1 | g)", toy.assign(count=toy["count"] + 2), family="binomial")
    with pytest.raises(DataError, match="negative counts"):
        build_spec("x ~ z + (1 | g)", toy, family="poisson")
    with pytest.raises(DataError, match="proportions"):
        build_spec("p ~ x + (1 | g)", toy.assign(p=0.5), family="binomial")
    with pytest.raises(DataError, match="two levels"):
        build_spec("a ~ x + (1 | g)", toy, family="binomial")


def test_empty_after_dropping(toy):
    with pytest.raises(DataError, match="no rows left"):
        build_spec("y ~ x + (1 | g)", toy.assign(x=np.nan))


def test_bad_weights(toy):
    with pytest.raises(DataError, match="weights= names the column 'ww'"):
        build_spec("y ~ x + (1 | g)", toy, weights="ww")
    with pytest.raises(DataError, match="non-negative"):
        build_spec("y ~ x + (1 | g)", toy, weights=-np.ones(len(toy)))
    with pytest.raises(DataError, match="3 values"):
        build_spec("y ~ x + (1 | g)", toy, offset=[1, 2, 3])


def test_more_culprits(toy):
    with pytest.raises(FormulaError, match="unknown function 'foo'"):
        build_spec("y ~ foo(x) + (1 | g)", toy)
    with pytest.raises(DataError, match="fixed-effect column 'x' has non-finite values"):
        build_spec("y ~ x + (1 | g)", toy.assign(x=np.where(np.arange(len(toy)) == 3, np.inf, toy.x)))
    with pytest.raises(DataError, match="grouping factor 'one' has a single level"):
        build_spec("y ~ x + (1 | one)", toy.assign(one=1))
    with pytest.raises(DataError, match="response 'z' is constant"):
        build_spec("z ~ x + (1 | g)", toy.assign(z=2.0), family="gaussian")
    with pytest.raises(DataError, match="has no rows"):
        build_spec("y ~ x + (1 | g)", toy.iloc[:0])
    with pytest.raises(DataError, match="offset has non-finite"), np.errstate(divide="ignore"):
        build_spec("count ~ x + offset(np.log(z)) + (1 | g)", toy.assign(z=0.0), family="poisson")
