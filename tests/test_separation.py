"""Separation in binomial fits (issue 16): the linear-programming check of R's detectseparation
(Konis 2007) names the covariate; a profile of a separated fit says why at once."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.design import separated_columns
from glmm_nb.errors import ModelError, SeparationWarning
from tests.conftest import GLMM_CASES, load_case


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(5)
    n = 200
    d = pd.DataFrame({"g": rng.integers(0, 10, n), "x": rng.normal(size=n), "z": rng.choice(list("abc"), n),
                      "w": rng.normal(size=n)})
    d["y"] = (rng.random(n) < 0.5).astype(int)
    return d


def test_quasi_complete_separation_names_the_level(frame):
    d = frame.copy()
    d.loc[d.z == "c", "y"] = 0  # level c: failures only
    with pytest.warns(SeparationWarning, match=r"perfectly predicted along the fixed effect\(s\) 'z\[T.c\]'"):
        m = glmm_nb.glmm("y ~ x + z + (1 | g)", d)
    assert m.spec.meta["separated"] == ("z[T.c]",)
    assert m.fixef["z[T.c]"] < -10  # the estimate runs off, as the warning says
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match=r"profile intervals are not available: separation: .*'z\[T.c\]'"):
        m.confint(method="profile")
    assert time.perf_counter() - t0 < 1.0  # at once, not after a minute of profiling


def test_complete_separation_names_the_covariate_not_bystanders(frame):
    d = frame.assign(y=(frame.x > 0.1).astype(int))
    with pytest.warns(SeparationWarning, match=r"'x', '\(Intercept\)'"):
        glmm_nb.glmm("y ~ x + w + (1 | g)", d)
    X = np.c_[np.ones(len(d)), d.x, d.w]
    assert separated_columns(X, (d.x > 0).to_numpy(float), np.ones(len(d)), ["(Intercept)", "x", "w"]) == ("x",)
    # cbind counts: a row with both successes and failures pins its direction to 0
    k = (d.x > 0).to_numpy(float) * 3
    assert separated_columns(X, k / 3, np.full(len(d), 3.0), ["(Intercept)", "x", "w"]) == ("x",)
    # mixed rows (successes and failures) across the range of x: no separation
    y = np.where(np.arange(len(d)) % 7 == 0, 1 / 3, k / 3)
    assert separated_columns(X, y, np.full(len(d), 3.0), ["(Intercept)", "x", "w"]) == ()


def test_large_data_are_checked_by_constraint_generation():
    rng = np.random.default_rng(1)
    n = 300_000
    X = np.c_[np.ones(n), rng.normal(size=(n, 2))]
    y = (rng.random(n) < 0.5).astype(float)
    names = ["(Intercept)", "a", "b"]
    assert separated_columns(X, y, np.ones(n), names) == ()
    Z = np.c_[X, (np.arange(n) < 5).astype(float)]
    y2 = y.copy()
    y2[:5] = 0
    assert separated_columns(Z, y2, np.ones(n), names + ["rare"]) == ("rare",)


@pytest.mark.parametrize("case_id", [c for c in GLMM_CASES if load_case(c)[0]["family"] == "binomial"])
def test_reference_data_are_not_separated(case_id):
    case, df = load_case(case_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeparationWarning)
        req = glmm_nb.make_request(case["formula"], df, family="binomial", link=case["link"])
    assert req.spec.meta["separated"] == ()


def test_the_summary_says_it(frame):
    d = frame.copy()
    d.loc[d.z == "c", "y"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glmm_nb.glmm("y ~ x + z + (1 | g)", d)
    assert any(msg.startswith("Separation: the outcome is perfectly predicted along the fixed effect(s) 'z[T.c]'")
               for msg in m.messages)
    assert "Separation: the outcome is perfectly predicted" in m.summary()
