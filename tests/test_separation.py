"""Separation in binomial fits (issue 16): the linear-programming check of R's detectseparation
(Konis 2007) names the covariate; a profile of a separated fit says why at once."""

import time
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.design import separated_columns
from glmm_nb.design.matrices import clearly_full_rank, drop_collinear
from glmm_nb.design.separation import sample_certifies_overlap
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


def test_a_sample_certifies_overlap_only_where_it_may():
    """Large data: a sample of rows proves overlap (skipping the full check) when the outcome
    overlaps; a separation the sample shows, or a rare column it misses, goes to the full check,
    which still names the culprit."""
    rng = np.random.default_rng(2)
    n = 200_000
    X = np.c_[np.ones(n), rng.normal(size=(n, 2))]
    y = (rng.random(n) < 1 / (1 + np.exp(-X[:, 1]))).astype(float)
    succ, fail = y > 0, y < 1
    assert sample_certifies_overlap(X, succ, fail, np.abs(X).max(axis=0))
    ys = (X[:, 1] > 0.1).astype(float)  # complete separation on a
    assert not sample_certifies_overlap(X, ys > 0, ys < 1, np.abs(X).max(axis=0))
    assert separated_columns(X, ys, np.ones(n), ["(Intercept)", "a", "b"]) == ("a", "(Intercept)")
    Z = np.c_[X, (np.arange(n) % 50_000 == 0).astype(float)]  # 4 rows of a dummy, all failures
    y2 = y.copy()
    y2[Z[:, 3] > 0] = 0
    assert not sample_certifies_overlap(Z, y2 > 0, y2 < 1, np.abs(Z).max(axis=0))  # rank-deficient sample
    assert separated_columns(Z, y2, np.ones(n), ["(Intercept)", "a", "b", "rare"]) == ("rare",)


def test_the_gram_shortcut_of_the_rank_check_decides_only_clear_cases():
    """clearly_full_rank says True only far from drop_collinear's rule (relative residual 1e-7);
    near or past it, the Gram-Schmidt pass decides as before."""
    rng = np.random.default_rng(4)
    n = 5_000
    x = rng.normal(size=n)
    base = np.c_[np.ones(n), x, rng.normal(size=n)]
    assert clearly_full_rank(base)
    for eps, clear, dropped in ((1e-3, True, ()), (1e-6, False, ()), (1e-9, False, ("w",))):
        X = np.c_[base, 2 * x + 1 + eps * rng.normal(size=n)]  # w: relative residual about eps / 2.2
        assert clearly_full_rank(X) == clear
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, names, out = drop_collinear(X, ("(Intercept)", "x", "z", "w"))
        assert out == dropped, eps
    assert not clearly_full_rank(np.c_[base, np.zeros(n)])


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
