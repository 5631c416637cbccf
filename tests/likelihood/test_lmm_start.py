"""The LMM's ANOVA start for random intercepts: the REML estimate itself on a balanced one-way
design (closed form), lme4's start elsewhere, and the same optimum either way."""

import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.likelihood import LmmDevfun, anova_theta_start
from glmm_nb.pipeline import make_devfun, make_request, start_values


def _balanced(seed=0, J=40, m=6):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), m)
    y = 2.0 + 0.8 * rng.normal(size=J)[g] + rng.normal(size=J * m)
    return pd.DataFrame({"y": y, "g": g})


def test_balanced_one_way_start_is_the_reml_estimate():
    d = _balanced()
    req = make_request("y ~ 1 + (1 | g)", d, family="gaussian")
    dev = make_devfun(req)
    start = anova_theta_start(req.spec, dev.y, dev.X, dev.w)
    # closed form: REML = ANOVA for a balanced one-way layout, tau2 = (MSB - MSW) / m
    J, m = 40, 6
    means = d.groupby("g").y.mean().to_numpy()
    msb = m * np.sum((means - d.y.mean()) ** 2) / (J - 1)
    msw = np.sum((d.y.to_numpy() - np.repeat(means, m)) ** 2) / (J * m - J)
    fit = glmm_nb.glmm("y ~ 1 + (1 | g)", d, family="gaussian")
    assert fit.sigma ** 2 == pytest.approx(msw, rel=1e-6)
    assert fit.theta[0] == pytest.approx(np.sqrt((msb - msw) / m / msw), rel=1e-6)
    # the start uses var(r) - tau2 for sigma2 (the crossed-design rule): close, not equal
    assert start[0] == pytest.approx(fit.theta[0], rel=0.05)
    assert np.array_equal(start_values(req, dev), start)


def test_other_structures_keep_lme4s_start_and_every_start_finds_the_optimum():
    ss = glmm_nb.datasets.load("sleepstudy")
    req = make_request("Reaction ~ Days + (Days | Subject)", ss, family="gaussian")
    dev = make_devfun(req)
    assert anova_theta_start(req.spec, dev.y, dev.X, dev.w) is None
    assert np.array_equal(start_values(req, dev), req.spec.theta_start())
    d = _balanced(seed=3)
    d["h"] = np.tile(np.arange(12), len(d) // 12)  # a crossed second factor
    d["y"] += 0.5 * np.random.default_rng(4).normal(size=12)[d.h]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glmm_nb.glmm("y ~ 1 + (1 | g) + (1 | h)", d, family="gaussian")
        b = glmm_nb.glmm("y ~ 1 + (1 | g) + (1 | h)", d, family="gaussian", start=[1.0, 1.0])
    assert isinstance(make_devfun(a.request), LmmDevfun)
    assert not np.allclose(a.opt.start, [1.0, 1.0])  # the ANOVA start was used
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5)
