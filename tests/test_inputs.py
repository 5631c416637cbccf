"""Every input answered (issue 16): unusual inputs get a correct fit or one clear glmm_nb error
naming the culprit — never a silently wrong answer, never a numpy/pandas traceback, never a
modified data frame."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb import DataError, DataWarning, FormulaError, GLMMError, ModelError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(16)
    n = 240
    d = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 12, n), "z": rng.choice(list("abc"), n)})
    b = rng.normal(0, 0.6, 12)
    eta = 0.3 + 0.5 * d.x + b[d.g] + (d.z == "b") * 0.4
    d["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    d["c"] = rng.poisson(np.exp(eta))
    d["yg"] = eta + rng.normal(size=n)
    return d


@pytest.fixture(scope="module")
def pois(data):
    d = data.assign(g=data.g.astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d, glmm_nb.glmm("c ~ x + z + (1 | g)", d, family="poisson")


def fit(formula, d, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmm_nb.glmm(formula, d, **kw)


# ------------------------------------------------------------------- silently wrong before
def test_missing_grouping_value_in_newdata_is_population_level(pois):
    d, m = pois
    nd = d.iloc[:8].copy()
    full = m.predict(nd)
    nd.loc[nd.index[[0, 3]], "g"] = np.nan  # float column: one NaN used to turn every label into '3.0'
    with pytest.warns(DataWarning, match=r"^2 row\(s\) of newdata have a missing value in the grouping column"):
        got = m.predict(nd)
    np.testing.assert_allclose(got[[1, 2, 4, 5, 6, 7]], full[[1, 2, 4, 5, 6, 7]], rtol=1e-12)
    np.testing.assert_allclose(got[[0, 3]], m.predict(nd.iloc[[0, 3]], re="none"), rtol=1e-12)
    # a categorical NaN used to get code -1, the last level's random effect
    dc = d.assign(g=pd.Categorical(d.g.astype(int)))
    mc = fit("c ~ x + z + (1 | g)", dc, family="poisson")
    ndc = dc.iloc[:4].copy()
    ndc.loc[ndc.index[0], "g"] = np.nan
    with pytest.warns(DataWarning, match="1 row"):
        pc = mc.predict(ndc)
    np.testing.assert_allclose(pc[0], mc.predict(ndc.iloc[[0]], re="none")[0], rtol=1e-12)
    np.testing.assert_allclose(pc[1:], mc.predict(dc.iloc[1:4]), rtol=1e-12)
    with pytest.warns(DataWarning, match="missing value"):  # the interval path maps groups the same way
        iv = m.predict(nd, se_fit=True, re="conditional")
    np.testing.assert_allclose(iv.fit.to_numpy(), got, rtol=1e-10)


def test_unseen_fixed_effect_level_is_an_error(pois):
    d, m = pois
    nd = d.iloc[:3].copy()
    nd["z"] = ["a", "q", "b"]
    with pytest.raises(DataError, match=r"factor 'z' has new level\(s\) 'q'"):
        m.predict(nd)
    with pytest.raises(DataError, match="'q'"):
        m.predict(nd, re="none")
    with pytest.raises(DataError, match="'q'"):
        m.simulate(newdata=nd, seed=1)
    nd["z"] = ["a", np.nan, "b"]  # a missing factor value is a missing prediction, not the reference
    p = m.predict(nd, re="none")
    assert np.isnan(p[1]) and np.all(np.isfinite(p[[0, 2]]))


def test_one_observation_per_group_gaussian_is_refused(data):
    d = data.assign(id=np.arange(len(data)))
    with pytest.raises(DataError, match="number of levels of each grouping factor must be less than the number of "
                                        "observations; id has 240 levels for 240 observations"):
        glmm_nb.glmm("yg ~ x + (1 | id)", d, family="gaussian")
    with pytest.raises(DataError, match=r"number of observations \(240\) is not larger than the number of random "
                                        r"effects \(240\)"):
        glmm_nb.glmm("yg ~ x + (1 + x | g2)", d.assign(g2=np.arange(len(d)) // 2), family="gaussian")
    m = fit("y ~ x + (1 | id)", d)  # GLMMs may (lme4's glmer too)
    assert m.nobs == 240


def test_ambiguous_names_are_refused(data):
    with pytest.raises(FormulaError, match="column named 'Intercept' clashes with the intercept"):
        glmm_nb.glmm("y ~ x + Intercept + (1 | g)", data.assign(Intercept=data.x * 2))
    dup = pd.concat([data, data[["x"]]], axis=1)
    with pytest.raises(DataError, match="2 columns named 'x'"):
        glmm_nb.glmm("y ~ x + (1 | g)", dup)
    fit("y ~ z + (1 | g)", dup)  # the duplicate is not used: fine


def test_interaction_groups_are_built_from_codes():
    rng = np.random.default_rng(3)
    n = 300
    a = rng.choice(["1", "1:2", "7"], n)
    b = np.where(a == "1", "2:3", "3")
    d = pd.DataFrame({"a": a, "b": np.where(rng.random(n) < 0.5, b, "8"), "x": rng.normal(size=n)})
    d["y"] = rng.poisson(2, n)
    with pytest.raises(DataError, match=r"groups \('1', '2:3'\) and \('1:2', '3'\) of a:b both print as '1:2:3'"):
        glmm_nb.glmm("y ~ x + (1 | a:b)", d, family="poisson")
    d2 = d.assign(a=d.a.str.replace(":", "-"), b=d.b.str.replace(":", "-"))
    m = fit("y ~ x + (1 | a:b)", d2, family="poisson")
    assert len(set(m.spec.terms[0].levels)) == m.spec.terms[0].nlevels
    np.testing.assert_allclose(m.predict(d2), m.predict(), rtol=1e-12)
    # new data map by the parts' codes: a known pair in another row order, an unseen pair
    nd = d2.iloc[[5, 0]].copy()
    np.testing.assert_allclose(m.predict(nd), m.predict()[[5, 0]], rtol=1e-12)
    nd = pd.DataFrame({"a": ["7"], "b": ["zz"], "x": [0.0]})
    with pytest.warns(DataWarning, match="not seen in the fit"):
        np.testing.assert_allclose(m.predict(nd), m.predict(nd, re="none"))


def test_weights_series_is_aligned_on_the_index(data):
    d = data.iloc[:120].copy()
    d["p"] = d.y * 0.5 + 0.25
    w = pd.Series(np.arange(1, 121) % 3 * 2 + 2.0, index=d.index)
    a = fit("p ~ x + (1 | g)", d, weights=w.to_numpy())
    b = fit("p ~ x + (1 | g)", d, weights=w.sample(frac=1.0, random_state=1))  # same labels, shuffled
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-8)
    with pytest.raises(DataError, match="index does not match the data's rows"):
        glmm_nb.glmm("p ~ x + (1 | g)", d, weights=pd.Series(w.to_numpy(), index=w.index + 1000))


def test_collinear_columns_follow_lme4(data):
    d = data.assign(x2=2 * data.x, x3=data.x + 1)
    with pytest.warns(DataWarning, match=r"dropping 2 column\(s\).*x2 = 2·x; x3 = 1·\(Intercept\) \+ 1·x"):
        m = glmm_nb.glmm("yg ~ x + x2 + x3 + (1 | g)", d, family="gaussian")
    assert list(m.fixef.index) == ["(Intercept)", "x"]
    with pytest.warns(DataWarning, match=r"x = -1·\(Intercept\) \+ 1·x3"):
        m = glmm_nb.glmm("yg ~ x3 + x + (1 | g)", d, family="gaussian")
    assert list(m.fixef.index) == ["(Intercept)", "x3"]  # the later column goes, never the intercept


def test_constant_and_non_integer_binomial_responses(data):
    for fam, col, value in (("binomial", "y", 0), ("binomial", "y", 1), ("poisson", "c", 0), ("poisson", "c", 3)):
        with pytest.raises(DataError, match="is constant"):
            glmm_nb.glmm(f"{col} ~ x + (1 | g)", data.assign(**{col: value}), family=fam)
    d = data.assign(s=data.y + 0.5, f=1.0)  # trials 1.5 or 2.5
    with pytest.warns(DataWarning, match="non-integer counts in a binomial model"):
        m = glmm_nb.glmm("cbind(s, f) ~ x + (1 | g)", d)
    with pytest.raises(ModelError, match="non-integer numbers of trials"):
        m.simulate(seed=1)
    with pytest.warns(DataWarning, match="non-integer number of successes"):
        glmm_nb.glmm("p ~ x + (1 | g)", data.assign(p=data.y * 0.5 + 0.25), weights=np.full(len(data), 3.0))


def test_arguments_are_type_checked(data, pois):
    d, m = pois
    cases = [
        (lambda: glmm_nb.glmm("yg ~ x + (1 | g)", data, family="gaussian", reml="no"), "reml must be True or False"),
        (lambda: glmm_nb.glmm("y ~ x + (1 | g)", data, nagq=2.0), "nagq must be a positive integer"),
        (lambda: glmm_nb.glmm("y ~ x + (1 | g)", data, control={"maxiter": "x"}), r"control\['maxiter'\]"),
        (lambda: glmm_nb.glmm("y ~ x + (1 | g)", data, control={"max_iter": 5}), "unknown control setting"),
        (lambda: glmm_nb.glmm("y ~ x + (1 | g)", data, start=["a"]), "start must be a vector of numbers"),
        (lambda: glmm_nb.glmm("y ~ x + (1 | g)", data, family=3), "unknown family 3"),
        (lambda: m.simulate(seed="a"), "seed must be None, a non-negative integer"),
        (lambda: m.simulate(nsim=0), "nsim must be at least 1"),
        (lambda: m.predict(type="probability"), "type must be one of 'link', 'response'"),
        (lambda: m.predict(re="random"), "re must be one of"),
        (lambda: m.confint(level=95), "level must be a number between 0 and 1"),
        (lambda: m.confint(method="exact"), "method must be one of 'wald', 'profile', 'bootstrap'"),
        (lambda: m.report(marginal="nope"), "marginal='nope' is not a variable of the model"),
        (lambda: m.report(marginal="g"), "marginal='g' is not a fixed-effect variable"),
        (lambda: m.report(focus="g"), "focus='g' is not a fixed-effect variable"),
        (lambda: m.report(focus="x", marginal="x"), "give focus= or its older name marginal=, not both"),
        (lambda: m.report(diagnostics_nsim="10"), "diagnostics_nsim must be an integer"),
        (lambda: m.compare(gee=3), "gee must be a cluster column name"),
        (lambda: m.compare(gee="clinic"), "gee='clinic' names a column the model does not use"),
        (lambda: m.refit(reml="yes"), "reml must be True or False"),
    ]
    for call, msg in cases:
        with pytest.raises(GLMMError, match=msg):
            call()


def test_compare_and_report_take_the_same_gee(data):
    m = fit("y ~ x + (1 | g)", data)
    by_name = m.compare(gee="g")
    by_result = m.compare(gee=glmm_nb.gee("y ~ x", data, cluster="g"))
    np.testing.assert_allclose(by_name.gee.to_numpy(), by_result.gee.to_numpy(), rtol=1e-8)
    assert np.isfinite(by_name.gee).all()


def test_agq_node_count_is_capped_up_front(data):
    d = data.assign(x2=data.x**2, x3=np.sin(data.x), x4=np.cos(data.x))
    with pytest.raises(ModelError, match=r"nagq\*\*4 = 6,250,000 quadrature nodes per cluster .* use nagq=10 or fewer"):
        glmm_nb.glmm("y ~ x + (1 + x + x2 + x3 | g)", d, method="agq", nagq=50)
    with pytest.raises(ModelError, match=r"nagq\*\*5 = 312,500,000 .* use nagq=6 or fewer"):
        glmm_nb.glmm("y ~ x + (1 + x + x2 + x3 + x4 | g)", d, method="agq", nagq=50)


# --------------------------------------------------------------- clear errors, not internals
def _frames(data):
    d = data.copy()
    out = {}
    out["site id"] = d.assign(**{"site id": d.g})
    out["x.1"] = d.assign(**{"x.1": d.x})
    out["class"] = d.assign(**{"class": d.x})
    out["a-b"] = d.assign(**{"a-b": d.x})
    return out


GOOD = [  # (formula, extra columns key, kwargs): each must fit
    ("y ~ x + (1 | `site id`)", "site id", {}),
    ("y ~ `site id` + (1 | g)", "site id", {}),
    ("y ~ x.1 + (1 | g)", "x.1", {}),
    ("y ~ x + x.1 + (1 | g)", "x.1", {}),
    ("y ~ class + (1 | g)", "class", {}),
    ("y ~ `a-b` + (1 | g)", "a-b", {}),
]


@pytest.mark.parametrize("formula, key, kw", GOOD)
def test_names_that_fit(data, formula, key, kw):
    d = _frames(data)[key]
    m = fit(formula, d, **kw)
    assert m.nobs == len(d)


def test_dotted_names_fit_the_dotted_column(data):
    d = data.assign(**{"x.1": data.x * 3})
    a = fit("y ~ x.1 + (1 | g)", d)
    b = fit("y ~ x + (1 | g)", d)
    assert "x.1" in a.fixef.index
    np.testing.assert_allclose(a.fixef["x.1"] * 3, b.fixef["x"], rtol=1e-5)


ERRORS = [  # (formula, frame mutation, kwargs, error class, message)
    ("y ~ factor(z) + (1 | g)", None, {}, FormulaError, r"factor\(z\) is C\(z\) here"),
    ("y ~ as.factor(z) + (1 | g)", None, {}, FormulaError, r"write C\(z\)"),
    ("y ~ I(x^2) + (1 | g)", None, {}, FormulaError,
     r"'\^' inside a function call .* XOR, not a power: write I\(x\*\*2\)"),
    ("y ~ sqrt(x) + (1 | g)", None, {}, FormulaError, r"unknown function 'sqrt' .* use np.sqrt"),
    ("y ~ agee + (1 | g)", lambda d: d.assign(age=d.x), {}, FormulaError,
     r"unknown column 'agee' in the fixed part 'agee' \(did you mean 'age'\?\)"),
    ("y ~ x + (1 | gg)", None, {}, FormulaError, r"unknown column 'gg' in the term \(1 \| gg\) \(did you mean 'g'\?\)"),
    ("y ~ x + (1 | a-b)", None, {}, FormulaError, r"grouping factor 'a-b' must be a column name .* backticks"),
    ("y ~ x + (1 | gm)", lambda d: d.assign(gm=[1 if i % 2 else f"s{i % 5}" for i in range(len(d))]), {},
     DataError, r"grouping column 'gm' mixes kinds of values"),
    ("y ~ x + (1 | gi)", lambda d: d.assign(gi=np.where(np.arange(len(d)) == 3, np.inf, d.g)), {},
     DataError, r"grouping column 'gi' has infinite values"),
    ("y ~ x + (1 | g)", lambda d: d.assign(w="1"), {"weights": "w"}, DataError,
     r"the weights= column 'w' must be numeric"),
    ("c ~ x + (1 | g)", lambda d: d.assign(o="a"), {"offset": "o", "family": "poisson"}, DataError,
     r"the offset= column 'o' must be numeric"),
    ("y ~ x + (1 | g)", None, {"weights": np.zeros(240)}, DataError, "all weights are zero"),
    ("y ~ x + (1 | g)", None, {"weights": ["a"] * 240}, DataError, "weights= must be a column name or a vector"),
    ("y ~ x + (1 | g)", None, {"weights": "ww"}, DataError, "weights= names the column 'ww'"),
    ("yg ~ x + z + c + y + (1 | g)", lambda d: d.iloc[:5], {"family": "gaussian"}, DataError,
     "the fixed part .* has 6 columns but there are only 5 observations"),
    ("yg ~ x + z + c + (1 | g)", lambda d: d.iloc[:5].assign(g=[0, 0, 1, 1, 2]), {"family": "gaussian"}, DataError,
     "the fixed part has 5 columns for 5 observations: no residual degrees of freedom"),
    ("y ~ x + (1 | g)", lambda d: d.iloc[:0], {}, DataError, "no rows"),
    ("y ~ x", None, {}, FormulaError, "no random-effect term"),
    ("y ~ x + (1 | g", None, {}, FormulaError, "unbalanced parentheses"),
    ("", None, {}, FormulaError, "the formula is empty"),
    ("y ~ x + (1 | g)", None, {"family": "poissonn"}, ModelError, "unknown family 'poissonn'"),
    ("y ~ x + (1 | g)", None, {"method": "pql"}, ModelError, "unknown method 'pql'"),
    ("y ~ x + (1 | g)", None, {"link": "log"}, ModelError, "link 'log' is not available for the binomial family"),
]


@pytest.mark.parametrize("formula, mutate, kw, cls, msg", ERRORS)
def test_clear_errors(data, formula, mutate, kw, cls, msg):
    d = mutate(data) if mutate else data
    before = d.copy(deep=True)
    with pytest.raises(cls, match=msg), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        glmm_nb.glmm(formula, d, **kw)
    pd.testing.assert_frame_equal(d, before)


def test_nullable_and_string_dtypes_fit_as_numpy_ones(data):
    plain = fit("y ~ x + z + (1 | g)", data)
    conv = data.convert_dtypes()
    assert str(conv.z.dtype) == "string" and str(conv.g.dtype) == "Int64"
    before = conv.copy(deep=True)
    m = fit("y ~ x + z + (1 | g)", conv)
    pd.testing.assert_frame_equal(conv, before)
    np.testing.assert_allclose(m.fixef, plain.fixef, rtol=1e-8)
    assert m.loglik == pytest.approx(plain.loglik, abs=1e-8)
    s = data.assign(gs=data.g.astype(str).astype("string"))
    s.loc[s.index[:3], "gs"] = pd.NA  # missing group values are dropped rows, as NaN
    m2 = fit("y ~ x + (1 | gs)", s)
    assert m2.n_dropped == 3
    nd = conv.iloc[:4].copy()
    nd.loc[nd.index[0], "x"] = pd.NA
    p = m.predict(nd)
    assert np.isnan(p[0]) and np.all(np.isfinite(p[1:]))
    o = data.assign(go=data.g.astype(object))
    o.loc[o.index[:2], "go"] = None
    assert fit("y ~ x + (1 | go)", o).n_dropped == 2


def test_simulate_newdata_and_seed(pois):
    d, m = pois
    nd = d.iloc[:5].copy()
    nd.loc[nd.index[1], "x"] = np.nan
    with pytest.raises(DataError, match=r"newdata has missing values in 'x' \(1 row\(s\)\)"):
        m.simulate(newdata=nd, seed=1)
    with pytest.raises(ModelError, match="seed must be"):
        m.simulate(seed=[1, "b"])
    a, b = m.simulate(seed=np.random.default_rng(3)), m.simulate(seed=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_other_frame_types_are_named(data):
    # an object that only offers .to_pandas() (no Arrow or interchange protocol) is named, with the conversion
    FakeFrame = type("DataFrame", (), {"__module__": "otherlib.frame", "to_pandas": lambda self: data})
    with pytest.raises(DataError, match=r"data must be a data frame — a pandas DataFrame, a polars DataFrame, .* not "
                                        r"a otherlib.DataFrame; convert it with data.to_pandas\(\)"):
        glmm_nb.glmm("y ~ x + (1 | g)", FakeFrame())
    with pytest.raises(DataError, match=r"not a dict; wrap it with pd.DataFrame\(data\)"):
        glmm_nb.glmm("y ~ x + (1 | g)", data.to_dict("list"))
    m = fit("y ~ x + (1 | g)", data)
    with pytest.raises(DataError, match="newdata must be a data frame .* not a otherlib.DataFrame"):
        m.predict(FakeFrame())


def test_no_input_is_modified(data):
    d = data.convert_dtypes()
    d.loc[d.index[:4], "x"] = pd.NA
    before = d.copy(deep=True)
    m = fit("y ~ x + z + (1 | g)", d, weights=pd.Series(np.ones(len(d)), index=d.index))
    m.predict(d)
    m.simulate(newdata=d.dropna(), seed=1)
    pd.testing.assert_frame_equal(d, before)


def test_error_messages_are_one_line(data):
    for formula, mutate, kw, _cls, _msg in ERRORS:
        d = mutate(data) if mutate else data
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                glmm_nb.glmm(formula, d, **kw)
        except GLMMError as exc:
            assert "\n" not in str(exc) and not re.search(r"Traceback|\x1b\[", str(exc)), str(exc)
