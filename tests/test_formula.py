"""The lme4 bar-syntax parser (glmm_nb.formula)."""

import pytest

from glmm_nb import FormulaError, parse_formula


def test_cbind_response_and_single_bar():
    f = parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert f.cbind == ("incidence", "size - incidence")
    assert f.response is None
    assert f.fixed == "period"
    assert [(t.lhs, t.group, t.correlated) for t in f.random] == [("1", "herd", True)]


@pytest.mark.parametrize(
    "formula, expected",
    [
        ("y ~ x + (x | g)", [("x", "g", ("g",), True)]),
        ("y ~ x + (1 + x | g)", [("1 + x", "g", ("g",), True)]),
        ("y ~ x + (0 + x | g)", [("0 + x", "g", ("g",), True)]),
        ("y ~ x + (x || g)", [("x", "g", ("g",), False)]),
        ("y ~ (1 | a/b)", [("1", "a", ("a",), True), ("1", "a:b", ("a", "b"), True)]),
        (
            "y ~ (1 | a/b/c)",
            [("1", "a", ("a",), True), ("1", "a:b", ("a", "b"), True), ("1", "a:b:c", ("a", "b", "c"), True)],
        ),
        ("y ~ (1 | a:b)", [("1", "a:b", ("a", "b"), True)]),
        ("y ~ x + (1 | a) + (1 | b)", [("1", "a", ("a",), True), ("1", "b", ("b",), True)]),
        ("y ~ (urban | district)", [("urban", "district", ("district",), True)]),
    ],
)
def test_bar_forms(formula, expected):
    got = [(t.lhs, t.group, t.group_vars, t.correlated) for t in parse_formula(formula).random]
    assert got == expected


@pytest.mark.parametrize(
    "formula, fixed",
    [
        ("y ~ a * b + (1 | g)", "a * b"),
        ("y ~ C(x) + I(x**2) + np.log(z) + (1 | g)", "C(x) + I(x**2) + np.log(z)"),
        ("y ~ 0 + x + (1 | g)", "0 + x"),
        ("y ~ x - 1 + (1 | g)", "x - 1"),
        ("y ~ (1 | g)", "1"),
        ("y ~ I(a + b) + (1 | g)", "I(a + b)"),
    ],
)
def test_fixed_part_left_to_formulaic(formula, fixed):
    assert parse_formula(formula).fixed == fixed


def test_offset_is_taken_out():
    f = parse_formula("y ~ x + offset(log(t)) + (1 | g)")
    assert f.offsets == ("log(t)",)
    assert f.fixed == "x"


@pytest.mark.parametrize(
    "formula, needle",
    [
        ("y ~ x + (1 | g", "unbalanced parentheses"),
        ("y ~ x + 1 | g)", "unbalanced parentheses"),
        ("y ~ x + ( | g)", "nothing left of the bar"),
        ("y ~ x + (1 | )", "nothing right of the bar"),
        ("y ~ x + 1 | g", "must be in parentheses"),
        ("~ x + (1 | g)", "no response"),
        ("y ~ ", "nothing right of '~'"),
        ("y x (1|g)", "exactly one '~'"),
        ("cbind(a) ~ x + (1 | g)", "exactly two arguments"),
        ("y ~ x + (1 | a/)", "empty side of '/'"),
        ("", "empty"),
    ],
)
def test_syntax_errors_name_the_culprit(formula, needle):
    with pytest.raises(FormulaError, match=needle):
        parse_formula(formula)
