"""The GLM start (likelihood.glm) and the moment start of the SDs.

glm_fit against closed forms (a binary covariate: the MLE is each group's observed log-odds or
log-mean), on the small-data path (R's deviance rule) and on the sampled path of large data,
including the fallback for a rare dummy; moment_theta against the same estimator written
row by row with pandas groupby, and near the simulated SD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glmm_nb.datasets import load
from glmm_nb.families import get_family
from glmm_nb.likelihood import glm_fit, glm_irls, moment_theta
from glmm_nb.likelihood import glm as glm_module
from glmm_nb.pipeline import build_spec


def closed_form(y, d, link):
    m0, m1 = y[d == 0].mean(), y[d == 1].mean()
    return np.array([link(m0), link(m1) - link(m0)])


def logit(p):
    return np.log(p / (1 - p))


def _binary_covariate(n, family):
    """(d, y, X): a 0/1 covariate, a response of ``family`` with its linear predictor
    -0.4 + 0.9 d, and the design [1, d]."""
    rng = np.random.default_rng(7)
    d = (rng.random(n) < 0.3).astype(float)
    eta = -0.4 + 0.9 * d
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float) if family == "binomial" else \
        rng.poisson(np.exp(eta)).astype(float)
    return d, y, np.c_[np.ones(n), d]


@pytest.mark.parametrize("n", [5_000, 300_000])
@pytest.mark.parametrize("family, link", [("binomial", logit), ("poisson", np.log)])
def test_binary_covariate_reaches_the_closed_form(n, family, link):
    d, y, X = _binary_covariate(n, family)
    fam = get_family(family)
    beta, eta_hat, mu = glm_fit(X, y, np.ones(n), np.zeros(n), fam)
    np.testing.assert_allclose(beta, closed_form(y, d, link), rtol=0, atol=2e-7)
    np.testing.assert_allclose(eta_hat, X @ beta, rtol=1e-12)
    np.testing.assert_allclose(mu, fam.link.inverse(X @ beta), rtol=1e-12)


def test_a_rare_dummy_on_large_data_falls_back_to_all_rows():
    rng = np.random.default_rng(8)
    n = 300_000
    d = (rng.random(n) < 0.3).astype(float)
    rare = np.zeros(n)
    rare[rng.choice(n, 40, replace=False)] = 1.0  # ~7 rows in a 50,000-row sample: too few
    y = (rng.random(n) < 1 / (1 + np.exp(0.4 - 0.9 * d - 1.5 * rare))).astype(float)
    X = np.c_[np.ones(n), d, rare]
    assert np.count_nonzero(X[np.sort(np.random.default_rng(0).choice(n, glm_module.SUBSAMPLE, replace=False)), 2]) \
        < glm_module.SAMPLE_MIN_NONZERO
    beta = glm_irls(X, y, np.ones(n), np.zeros(n), get_family("binomial"))
    # full IRLS as before: compared with a few Newton steps of our own from it (score ~ 0)
    mu = 1 / (1 + np.exp(-X @ beta))
    score = X.T @ (y - mu)
    info = X.T @ (X * (mu * (1 - mu))[:, None])
    assert np.max(np.abs(np.linalg.solve(info, score))) < 1e-6


def moments_by_groupby(y, mu, pw, fam, codes):
    """The module docstring's estimator, row by row through pandas (v = 1: intercept terms)."""
    eta = fam.link.link(mu)
    me = fam.link.mu_eta(eta)
    df = pd.DataFrame({"g": codes, "w": pw * me**2 / fam.variance(mu), "r": (y - mu) / me})
    df["wr"] = df.w * df.r
    per = df.groupby("g").agg(W=("w", "sum"), S=("wr", "sum"))
    per["b"] = per.S / per.W
    df = df.join(per.b, on="g")
    phi = float(np.sum(df.w * (df.r - df.b) ** 2)) / (len(df) - len(per))
    return np.sqrt(max(float(np.mean(per.b**2) - phi * np.mean(1 / per.W)), 0.0))


def test_moment_theta_is_the_stated_estimator():
    cbpp = load("cbpp")
    fam = get_family("binomial")
    spec = build_spec("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, fam)
    beta, eta, mu = glm_fit(spec.X, spec.y, spec.weights, spec.offset, fam)
    got = moment_theta(spec.terms, spec.y, eta, mu, spec.weights, fam)
    want = moments_by_groupby(spec.y, mu, spec.weights, fam, spec.terms[0].codes)
    np.testing.assert_allclose(got, [want], rtol=1e-10)
    slope = build_spec("cbind(incidence, size - incidence) ~ period + (period | herd)", cbpp, fam)
    assert moment_theta(slope.terms, slope.y, eta, mu, slope.weights, fam) is None  # a vector term: lme4's start


def test_moment_theta_is_near_the_simulated_sd():
    rng = np.random.default_rng(3)
    n, J, sd = 60_000, 600, 0.6
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    lam = np.exp(0.3 + 0.4 * x + rng.normal(0, sd, J)[g])
    data = pd.DataFrame({"y": rng.poisson(lam), "x": x, "g": g})
    fam = get_family("poisson")
    spec = build_spec("y ~ x + (1 | g)", data, fam)
    beta, eta, mu = glm_fit(spec.X, spec.y, spec.weights, spec.offset, fam)
    est = moment_theta(spec.terms, spec.y, eta, mu, spec.weights, fam)[0]
    assert 0.5 < est < 0.7, est


@pytest.mark.parametrize("n", [5_000, 300_000])
@pytest.mark.parametrize("family, link", [("binomial", logit), ("poisson", np.log)])
def test_start_mode_needs_no_deviance_and_is_near_the_closed_form(n, family, link, monkeypatch):
    """glm_fit(start=True), the mixed model's start: stopped by the step rule (no deviance pass
    at all), one pass over all rows after the sample on large data, and within what the
    optimizer refines of the GLM's estimate (here 1e-3; not the 2e-7 of the default rule)."""
    d, y, X = _binary_covariate(n, family)
    fam = get_family(family)

    def no_deviance(*args, **kwargs):
        raise AssertionError("start mode evaluated the deviance")

    monkeypatch.setattr(type(fam), "dev_resid", no_deviance)
    beta, eta_hat, mu = glm_fit(X, y, np.ones(n), np.zeros(n), fam, start=True)
    exact = closed_form(y, d, link)
    assert np.max(np.abs(beta - exact)) < 1e-3
    np.testing.assert_allclose(eta_hat, X @ beta, rtol=1e-12)
    np.testing.assert_allclose(mu, fam.link.inverse(X @ beta), rtol=1e-12)


def test_start_mode_under_separation_falls_back_to_the_deviance_rule():
    """A covariate that separates the response: IRLS's steps never settle (the coefficient runs
    off), so the start mode gives up on the step rule after START_MAXIT steps and returns R's
    rule's answer (the default's), not a fifty-step walk."""
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    y = (x > 0.3).astype(float)
    X = np.c_[np.ones(n), x]
    fam = get_family("binomial")
    start = glm_fit(X, y, np.ones(n), np.zeros(n), fam, start=True)[0]
    default = glm_fit(X, y, np.ones(n), np.zeros(n), fam)[0]
    np.testing.assert_array_equal(start, default)
    assert abs(default[1]) > 10  # separated: a large slope
