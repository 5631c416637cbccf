"""``m.timings``: where a fit's time went, per stage, for every kind of fit.

Not a speed target: the stages must exist, be non-negative, add up to the total, sit where the
fit spends them (an AGQ stage only for AGQ, checks inside the design's time) and count the
optimizer's evaluations. The stopwatch's nesting rule is checked on a known schedule of sleeps.
"""

from __future__ import annotations

import pickle
import time

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.datasets import load
from glmm_nb.timing import STAGES, FitTimings, Stopwatch, stage, stopwatch

KEYS = (*STAGES, "total")


def check_parts(m, agq: bool = False) -> FitTimings:
    t = m.timings
    assert isinstance(t, FitTimings)
    assert tuple(t) == KEYS
    assert all(t[k] >= 0 for k in KEYS), dict(t)
    parts = sum(t[k] for k in STAGES)
    # the stages tile the fit: only storing the record itself is left out
    assert parts == pytest.approx(t["total"], rel=1e-9, abs=1e-9), dict(t)
    assert t["optimizer"] > 0 and t["starts"] > 0 and t["result"] > 0 and t["hessian"] > 0
    assert (t["agq"] > 0) == agq
    assert t.evaluations == m.opt.evaluations > 0
    return t


@pytest.fixture(scope="module")
def cbpp():
    return load("cbpp")


def test_laplace_and_agq_and_refit(cbpp):
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    m = glmm_nb.glmm(f, cbpp, family="binomial")
    t = check_parts(m)
    assert t["design"] > 0 and t["checks"] > 0  # the separation check and the rank of X ran
    a = glmm_nb.glmm(f, cbpp, family="binomial", method="agq", nagq=7)
    check_parts(a, agq=True)
    r = m.refit(method="agq", nagq=5)  # a refit times its own request (no new design here)
    check_parts(r, agq=True)
    r2 = m.refit(data=cbpp.iloc[::-1])  # a new design: timed as design
    assert check_parts(r2)["design"] > 0


def test_lmm_ordinal_zero_inflated():
    sleep = load("sleepstudy")
    for reml in (True, False):
        check_parts(glmm_nb.glmm("Reaction ~ Days + (Days | Subject)", sleep, family="gaussian", reml=reml))
    rng = np.random.default_rng(3)
    n, J = 400, 40
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.5 * x + rng.normal(0, 0.7, J)[g]
    ylat = eta + rng.logistic(size=n)
    d = pd.DataFrame({"y": np.digitize(ylat, [-1.0, 0.0, 1.0]), "x": x, "g": g})
    check_parts(glmm_nb.glmm("y ~ x + (1 | g)", d, family="ordinal"))
    lam = np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, J)[g])
    d["c"] = np.where(rng.random(n) < 0.3, 0, rng.poisson(lam))
    check_parts(glmm_nb.glmm("c ~ x + (1 | g)", d, family="poisson", ziformula="~ 1"))
    check_parts(glmm_nb.glmm("c ~ x + (1 | g)", d, family="poisson", ziformula="~ (1 | g)"))


def test_dask_fit_has_timings(cbpp):
    dd = pytest.importorskip("dask.dataframe")
    pytest.importorskip("distributed")
    ddf = dd.from_pandas(cbpp.sample(frac=1, random_state=1), npartitions=3)
    m = glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", ddf, family="binomial")
    t = check_parts(m)
    assert t["design"] > 0  # the plan and the partitions' passes


def test_timings_are_read_only_and_plain(cbpp):
    m = glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    t = m.timings
    with pytest.raises(TypeError):
        t["total"] = 0.0  # a Mapping, not a dict
    with pytest.raises(AttributeError):
        t.evaluations = 0
    d = t.as_dict()
    assert d["evaluations"] == t.evaluations and d["total"] == t["total"]
    assert pickle.loads(pickle.dumps(t)).as_dict() == d
    s = str(t)
    assert f"{t['total']:.3g} s" in s and f"({t.evaluations} deviance evaluations)" in s
    assert "agq" not in s  # a Laplace fit has no AGQ stage to show
    assert 0 < t.setup_fraction < 1
    assert t.setup_fraction == pytest.approx(1 - t["optimizer"] / t["total"])


def test_stopwatch_nesting_on_a_known_schedule():
    with stopwatch() as sw:
        time.sleep(0.01)  # before the first stage: charged to it
        with sw.stage("design"):
            time.sleep(0.02)
            with stage("checks"):  # nested: charged to checks, not to design
                time.sleep(0.2)
        with sw.stage("result"):
            time.sleep(0.01)
            with stage("hessian"):
                time.sleep(0.2)
                inner = sw.snapshot()  # open stages count up to now
        t = sw.snapshot(7)
    # generous upper bounds (a loaded machine oversleeps), far below the nested 0.2 s
    assert t["checks"] >= 0.2 and 0.03 <= t["design"] < 0.03 + 0.1
    assert t["hessian"] >= 0.2 and 0.01 <= t["result"] < 0.01 + 0.1
    assert sum(t[k] for k in STAGES) == pytest.approx(t["total"], abs=1e-3)  # the snapshot came after
    assert sum(inner[k] for k in STAGES) == pytest.approx(inner["total"], abs=1e-9)
    assert inner["hessian"] >= 0.2 and 0.01 <= inner["result"] < 0.01 + 0.1
    assert t.evaluations == 7
    with stage("design"):  # no active stopwatch: nothing to charge, no error
        pass
    with pytest.raises(ValueError, match="unknown stage"):
        with Stopwatch().stage("setup"):
            pass
