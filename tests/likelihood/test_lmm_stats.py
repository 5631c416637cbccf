"""The one-factor LMM deviance from per-cluster sums (likelihood/lmm_stats.py) against the row
path of likelihood/lmm.py (a different computation: Z~ built row by row, M factored from the
rows, residuals formed explicitly) and its gradient against central finite differences."""

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb import build_spec
from glmm_nb.likelihood import LmmDevfun
from tests.conftest import load_case
from tests.test_structured import load as load_structured


def _sim(q=2, n=3000, J=150, seed=4, weights=False, offset=False, mean=0.0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    X = rng.normal(size=(n, 4))
    b = rng.normal(size=(J, q)) @ np.triu(np.full((q, q), 0.3)) + 0.5 * rng.normal(size=(J, q))
    y = mean + X[:, 0] - 0.5 * X[:, 1] + b[g, 0] + np.sum(b[g, 1:] * X[:, : q - 1], axis=1) + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "x4": X[:, 3], "g": pd.Categorical(g)})
    if weights:
        df["w"] = rng.uniform(0.2, 3.0, n)
        df.loc[df.index[:7], "w"] = 0.0  # zero weights drop rows from the likelihood
    if offset:
        df["off"] = rng.normal(size=n)
    return df


def _sleep():
    return load_case("sleepstudy_reml")[1]


SLOPES = {1: "(1 | g)", 2: "(1 + x1 | g)", 3: "(1 + x1 + x2 | g)", 5: "(1 + x1 + x2 + x3 + x4 | g)"}
CASES = {
    "sleepstudy slope": (_sleep, "Reaction ~ Days + (Days | Subject)", {}),
    "intercept": (lambda: _sim(1), "y ~ x1 + x2 + (1 | g)", {}),
    "intercept, weights and offset": (lambda: _sim(1, weights=True, offset=True), "y ~ x1 + x2 + (1 | g)",
                                      {"weights": "w", "offset": "off"}),
    "slope, weights and offset": (lambda: _sim(2, weights=True, offset=True), "y ~ x1 + x2 + (1 + x1 | g)",
                                  {"weights": "w", "offset": "off"}),
    "three columns, large mean": (lambda: _sim(3, mean=1e4), "y ~ x1 + x2 + (1 + x1 + x2 | g)", {}),
    "five columns (batched LAPACK)": (lambda: _sim(5), "y ~ x1 + x2 + (1 + x1 + x2 + x3 + x4 | g)", {}),
    "uncorrelated slope": (lambda: _sim(2), "y ~ x1 + x2 + (1 + x1 || g)", {}),
    "ar1 structure": (lambda: load_structured("ar1_gauss")[1], "y ~ x + ar1(timef + 0 | id)", {}),
    "ar1 and an intercept of one factor": (lambda: load_structured("ar1_gauss")[1],
                                           "y ~ x + ar1(timef + 0 | id) + (1 | id)", {}),
}


def _thetas(spec, rng):
    t0 = spec.theta_start()
    out = [t0 * rng.uniform(0.3, 1.5, t0.size) + 0.2 * rng.normal(size=t0.size) * (t0 == 0)]
    on_bound = out[0].copy()
    lower = np.asarray(spec.theta_lower())
    on_bound[np.isfinite(lower) & (lower == 0)] = 0.0  # every variance at zero
    out.append(on_bound)
    first = out[0].copy()
    first[0] = 0.0 if lower[0] == 0 else first[0]  # only the first
    out.append(first)
    return out


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_the_row_path(case, reml):
    make, formula, kw = CASES[case]
    spec = build_spec(formula, make(), "gaussian", **kw)
    fast, rows = LmmDevfun(spec, reml=reml), LmmDevfun(spec, reml=reml)
    rows.grad_method = "rows"
    assert fast._uses_stats() and not rows._uses_stats()
    rng = np.random.default_rng(11)
    for theta in _thetas(spec, rng):
        f1, g1 = fast.value_and_grad(theta)
        f2, g2 = rows.value_and_grad(theta)
        assert f1 == pytest.approx(f2, rel=1e-9, abs=0)
        assert fast(theta) == f1
        np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(g2).max()))
        ev = fast._stats_eval(theta)
        st = rows.state(theta)
        np.testing.assert_allclose(ev.beta, st.beta, rtol=1e-9, atol=1e-9 * np.abs(st.beta).max())
        s0 = fast.rs.slot0  # u of the row path: term by term, levels within
        u = np.concatenate([ev.u[:, s0[k] : s0[k + 1]].ravel() for k in range(len(s0) - 1)])
        np.testing.assert_allclose(u, st.u, atol=1e-9 * max(1.0, np.abs(st.u).max()))
        assert ev.pwrss == pytest.approx(st.pwrss, rel=1e-10)


@pytest.mark.parametrize("case", ["intercept, weights and offset", "slope, weights and offset", "ar1 structure"])
def test_gradient_matches_central_differences(case):
    make, formula, kw = CASES[case]
    spec = build_spec(formula, make(), "gaussian", **kw)
    dev = LmmDevfun(spec, reml=True)
    theta = _thetas(spec, np.random.default_rng(3))[0]
    _f, g = dev.value_and_grad(theta)
    h = 1e-6
    num = np.array([(dev(theta + e) - dev(theta - e)) / (2 * h) for e in np.eye(theta.size) * h])
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(num).max()))


@pytest.mark.parametrize("reml", [True, False])
def test_fit_reaches_the_row_paths_optimum(reml, monkeypatch):
    """A whole fit through the per-cluster sums lands where the row path's fit does."""
    df = _sim(2, weights=True, offset=True)
    kw = dict(family="gaussian", reml=reml, weights="w", offset="off")
    m1 = glmm_nb.glmm("y ~ x1 + x2 + (1 + x1 | g)", df, **kw)
    monkeypatch.setattr(LmmDevfun, "grad_method", "rows")
    m2 = glmm_nb.glmm("y ~ x1 + x2 + (1 + x1 | g)", df, **kw)
    assert m1.loglik == pytest.approx(m2.loglik, abs=1e-7)
    np.testing.assert_allclose(m1.theta, m2.theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m1.fixef, m2.fixef, rtol=1e-6, atol=1e-8)


def test_near_zero_residual_variance_falls_back_to_the_rows():
    """exp_spatial_gauss: at glmmTMB's optimum the residual SD is 2e-5, so r^2 is 1e-9 of y'Wy
    and would cancel in the sums: the evaluation goes to the rows there, and agrees with them."""
    case, d = load_structured("exp_spatial_gauss")
    spec = build_spec(case["formula"], d, "gaussian")
    fast, rows = LmmDevfun(spec, reml=False), LmmDevfun(spec, reml=False)
    rows.grad_method = "rows"
    theta = spec.theta_start()
    theta[0] = 2e4  # the SD relative to sigma, where the fit ends
    assert fast._stats_eval(theta) is None
    theta[0] = 1.0  # an ordinary residual variance: the sums
    assert fast._stats_eval(theta) is not None
    for t0 in (2e4, 1.0):
        theta[0] = t0
        f1, g1 = fast.value_and_grad(theta)
        f2, g2 = rows.value_and_grad(theta)
        assert f1 == pytest.approx(f2, rel=1e-9, abs=0)
        np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-9 * np.abs(g2).max())


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("case", ["sleepstudy slope", "intercept, weights and offset", "ar1 structure"])
def test_state_matches_the_row_path(case, reml):
    """The state the result builder and the small-sample inference read: beta, u, R_X'R_X and
    M^{-1}Z~'WX from the sums, the rest from the rows; all as the row path's."""
    make, formula, kw = CASES[case]
    spec = build_spec(formula, make(), "gaussian", **kw)
    fast, rows = LmmDevfun(spec, reml=reml), LmmDevfun(spec, reml=reml)
    rows.grad_method = "rows"
    for theta in _thetas(spec, np.random.default_rng(7)):
        a, b = fast.state(theta), rows.state(theta)
        assert a.deviance == pytest.approx(b.deviance, rel=1e-10)
        assert a.sigma == pytest.approx(b.sigma, rel=1e-10)
        for name in ("beta", "u", "RX2", "MiX", "resid"):
            x, y = getattr(a, name), getattr(b, name)
            np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-9 * max(1.0, np.abs(y).max()), err_msg=name)
