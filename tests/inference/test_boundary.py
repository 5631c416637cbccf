"""Likelihood-ratio tests on the boundary (issue 16).

Only new variances are on the boundary: an added correlation is an ordinary chi-square test.
The chi-bar-square weights for k new variances, C(k, j)/2^k (Self & Liang 1987; Stram & Lee
1994), are checked against simulation twice: against the asymptotic experiment itself (Z ~
N(0, I), k coordinates constrained to be >= 0) and against likelihood-ratio statistics of
real fits of data simulated under the null.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

import glmm_nb
from glmm_nb.inference.anova import mixture_sf
from glmm_nb.pipeline import make_devfun, minimize, start_values


@pytest.mark.parametrize("k, extra", [(1, 0), (1, 2), (2, 0), (2, 1), (3, 0)])
def test_mixture_matches_the_asymptotic_experiment(k, extra):
    # LR for k parameters restricted to >= 0 and `extra` free ones, with identity information
    z = np.random.default_rng(k * 10 + extra).standard_normal((200_000, k + extra))
    lr = np.sum(np.maximum(z[:, :k], 0) ** 2, axis=1) + np.sum(z[:, k:] ** 2, axis=1)
    for q in (0.01, 0.5, 1.0, 2.0, 3.84, 6.0):
        assert abs(np.mean(lr > q) - mixture_sf(q, k + extra, k)) < 4e-3, q
    assert mixture_sf(0.0, k + extra, k) == 1.0  # a p-value: P(LR >= 0)
    # the naive chi-square is not the null distribution
    assert abs(np.mean(lr > 3.84) - stats.chi2.sf(3.84, k + extra)) > 0.01


def _lr_simulation(formula, nsim, seed, J=60, per=5):
    """LR statistics of ``formula``'s variances (all at 0 under the null: data without group
    effects) against the linear model, from the pipeline's fits."""
    rng = np.random.default_rng(seed)
    n = J * per
    d = pd.DataFrame({"g": np.repeat(np.arange(J), per), "x": rng.normal(size=n)})
    d["y"] = rng.normal(size=n)
    req = glmm_nb.make_request(formula, d, family="gaussian", reml=False)
    out = []
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(nsim):
            y = 1 + 0.5 * d.x.to_numpy() + rng.normal(size=n)
            r = req.replace(spec=dataclasses.replace(req.spec, y=y))
            dev = make_devfun(r)
            best = minimize(r, dev, start_values(r, dev)).objective
            out.append(max(dev(np.zeros(r.spec.ntheta)) - best, 0.0))  # theta = 0 is the linear model
    return np.array(out)


def test_one_new_variance_under_the_null():
    lr = _lr_simulation("y ~ x + (1 | g)", 200, seed=1)
    # the mass at 0 is 1/2 asymptotically (a little more with 60 groups: Crainiceanu & Ruppert 2004)
    assert abs(np.mean(lr < 1e-6) - 0.5) < 0.15
    p = np.array([mixture_sf(x, 1, 1) for x in lr])
    assert 0.15 < np.mean(p <= 0.3) < 0.4
    assert np.mean(stats.chi2.sf(lr, 1) <= 0.3) < 0.15  # the naive chi-square(1): too conservative


def test_two_new_variances_under_the_null():
    lr = _lr_simulation("y ~ x + (x || g)", 120, seed=2)
    zero = np.mean(lr < 1e-6)
    assert abs(zero - 0.25) < 0.12, zero  # 1/4 at 0 (the one-variance weights would put 1/2 there)
    p = np.array([mixture_sf(x, 2, 2) for x in lr])
    for a in (0.1, 0.3):
        assert abs(np.mean(p <= a) - a) < 0.1, (a, np.mean(p <= a))
    assert np.mean(stats.chi2.sf(lr, 2) <= 0.3) < 0.17


@pytest.fixture(scope="module")
def sleep():
    from tests.conftest import load_case

    _case, df = load_case("sleepstudy_ml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {f: glmm_nb.glmm(f, df, family="gaussian", reml=False) for f in (
            "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days || Subject)",
            "Reaction ~ Days + (Days | Subject)")}
    return fits


def test_anova_applies_the_mixture_to_new_variances_only(sleep):
    m0, mu, mc = sleep.values()
    corr = glmm_nb.anova(mu, mc).iloc[1]  # (Days || Subject) -> (Days | Subject): a correlation only
    assert corr.df == 1 and np.isnan(corr.p_value_boundary)
    assert corr.p_value == pytest.approx(stats.chi2.sf(corr.chisq, 1))
    assert "only correlations/covariances are added" in corr.test and "use p_value" in corr.test
    one = glmm_nb.anova(m0, mu).iloc[1]  # one new variance
    assert one.df == 1 and one.p_value_boundary == pytest.approx(0.5 * stats.chi2.sf(one.chisq, 1))
    assert "one new variance" in one.test
    both = glmm_nb.anova(m0, mc).iloc[1]  # a new variance with its covariance: Stram & Lee
    assert both.df == 2
    x = both.chisq
    assert both.p_value_boundary == pytest.approx(0.5 * stats.chi2.sf(x, 1) + 0.5 * stats.chi2.sf(x, 2))


def test_anova_two_new_variances():
    rng = np.random.default_rng(2)
    J, per = 30, 6
    n = J * per
    d = pd.DataFrame({"g": np.repeat(np.arange(J), per), "x": rng.normal(size=n), "z": rng.normal(size=n)})
    d["y"] = 1 + rng.normal(size=J)[d.g] * (1 + 0.7 * d.x - 0.5 * d.z) + rng.normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glmm_nb.glmm("y ~ x + z + (1 | g)", d, family="gaussian", reml=False)
        b = glmm_nb.glmm("y ~ x + z + (x + z || g)", d, family="gaussian", reml=False)
        c = glmm_nb.glmm("y ~ x + z + (1 + x + z | g)", d, family="gaussian", reml=False)
    row = glmm_nb.anova(a, b).iloc[1]
    x = row.chisq
    assert row.df == 2 and row.p_value_boundary == pytest.approx(0.5 * stats.chi2.sf(x, 1) + 0.25 * stats.chi2.sf(x, 2))
    assert "C(2,j)/2^2" in row.test and "approximate" not in row.test
    row = glmm_nb.anova(a, c).iloc[1]  # two new variances in one correlated term: approximate, said so
    assert row.df == 5 and "approximate" in row.test
