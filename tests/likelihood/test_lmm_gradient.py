"""The analytic gradient of the profiled LMM deviance against central finite differences."""

import numpy as np
import pandas as pd
import pytest

import glmm_nb.likelihood.schur as SC
from glmm_nb import build_spec
from glmm_nb.likelihood import LmmDevfun
from tests.conftest import load_case


def _crossed(seed=2, n=600, ja=40, jb=25, slope=False, weights=False):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, ja, n)
    b = rng.integers(0, jb, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(size=ja)[a] + 0.7 * rng.normal(size=jb)[b] + rng.normal(size=n)
    if slope:
        y += 0.4 * rng.normal(size=jb)[b] * x
    df = pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b),
                       "c": pd.Categorical(rng.integers(0, 6, n))})
    if weights:
        df["w"] = rng.uniform(0.5, 2.0, n)
    return df


def _sleep():
    _case, df = load_case("sleepstudy_reml")
    return df


CASES = {
    "sleepstudy slope": (_sleep, "Reaction ~ Days + (Days | Subject)", {}),
    "crossed": (_crossed, "y ~ x + (1 | a) + (1 | b)", {}),
    "crossed, three terms": (_crossed, "y ~ x + (1 | a) + (1 | b) + (1 | c)", {}),
    "crossed, slope on the second": (lambda: _crossed(slope=True), "y ~ x + (1 | a) + (x | b)", {}),
    "slope on the first": (lambda: _crossed(ja=20, jb=60, slope=True), "y ~ x + (x | a) + (1 | b)", {}),
    "nested": (_crossed, "y ~ x + (1 | c/a)", {}),
    "weights": (lambda: _crossed(weights=True), "y ~ x + (1 | a) + (1 | b)", {"weights": "w"}),
}


def _fd(dev, theta, h=1e-6):
    return np.array([(dev(theta + e) - dev(theta - e)) / (2 * h) for e in np.eye(theta.size) * h])


RUNS = [(c, reml, "pairmap", m) for c in CASES for reml in (True, False) for m in ("trace", "rows")]
RUNS += [(c, True, "scipy", "trace") for c in CASES if c != "sleepstudy slope"]
RUNS += [(c, True, "compiled", m) for c in CASES if c != "sleepstudy slope"  # one factor: no kernels
         for m in ("trace", "rows")]


@pytest.mark.parametrize("case, reml, kernels, method", RUNS)
def test_gradient_matches_central_differences(case, reml, kernels, method, monkeypatch):
    if kernels == "compiled":
        monkeypatch.setattr(SC, "NUMBA_MIN_WORK", 0)
    if kernels == "scipy":
        monkeypatch.setattr(SC, "PAIRMAP_MAX_PAIRS", -1)
    monkeypatch.setattr(LmmDevfun, "grad_method", method)
    make, formula, kw = CASES[case]
    spec = build_spec(formula, make(), "gaussian", **kw)
    dev = LmmDevfun(spec, reml=reml)
    rng = np.random.default_rng(5)
    theta = spec.theta_start() * rng.uniform(0.3, 1.2, spec.ntheta) + 0.15 * (spec.theta_start() == 0)
    f, g = dev.value_and_grad(theta)
    assert f == pytest.approx(dev(theta), abs=1e-10)
    num = _fd(dev, theta)
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(num).max()))


@pytest.mark.parametrize("case", ["crossed", "crossed, slope on the second", "sleepstudy slope"])
def test_gradient_on_the_boundary(case):
    """A zero variance (singular T): the gradient needs no division by theta."""
    make, formula, kw = CASES[case]
    spec = build_spec(formula, make(), "gaussian", **kw)
    dev = LmmDevfun(spec)
    theta = spec.theta_start() * 0.8 + 0.1 * (spec.theta_start() == 0)
    theta[-1] = 0.0  # last diagonal entry of the last term
    _f, g = dev.value_and_grad(theta)
    np.testing.assert_allclose(g, _fd(dev, theta), rtol=1e-5, atol=1e-5)


def test_sleepstudy_gradient_vanishes_at_lme4_estimate():
    case, df = load_case("sleepstudy_reml")
    spec = build_spec(case["formula"], df, "gaussian")
    dev = LmmDevfun(spec)
    vc = {(r["var1"], r["var2"]): r for r in case["varcorr"]}
    s = next(r["sdcor"] for r in case["varcorr"] if r["grp"] == "Residual")
    s0 = vc[("(Intercept)", None)]["sdcor"] / s
    s1 = vc[("Days", None)]["sdcor"] / s
    rho = vc[("(Intercept)", "Days")]["sdcor"]
    theta = np.array([s0, rho * s1, s1 * np.sqrt(1 - rho**2)])
    f, g = dev.value_and_grad(theta)
    assert -f / 2 == pytest.approx(case["loglik"], abs=1e-5)
    assert np.abs(g).max() < 1e-3
