"""Cumulative-link mixed models: ordinal::clmm 2022.11-16 on the wine data (Laplace and nAGQ = 10),
the AGQ log-likelihood against per-cluster numerical integrals (scipy.integrate.quad), analytic
gradients against central differences, and the response rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from glmm_nb.design.ordinal import build_ordinal_spec
from glmm_nb.errors import DataError, ModelError
from glmm_nb.likelihood.ordinal import OrdinalAgqDevfun, OrdinalLaplaceDevfun
from glmm_nb.likelihood.ordinal_fit import fit_ordinal
from glmm_nb.likelihood.ordinal_links import (
    category_probs,
    cell_terms,
    draw_categories,
    get_cumulative_link,
    marginal_category_probs,
    tau_from_thresholds,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
LINKS = ["logit", "probit", "cloglog"]
CDF = {"logit": special.expit, "probit": special.ndtr, "cloglog": lambda x: -np.expm1(-np.exp(x))}


def wine() -> tuple[dict, pd.DataFrame]:
    case = json.loads((FIXTURES / "ordinal" / "wine_clmm.json").read_text())
    df = pd.read_csv(FIXTURES / "data" / case["data"])
    for col, levels in case["categorical"].items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels, ordered=col == "rating")
    return case, df


def simulated(n=600, J=40, K=5, slope=False, crossed=False, seed=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    h = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    z = rng.integers(0, 2, n)
    eta = 0.7 * x - 0.5 * z + 0.9 * rng.normal(size=J)[g]
    if slope:
        eta = eta + 0.4 * rng.normal(size=J)[g] * x
    if crossed:
        eta = eta + 0.6 * rng.normal(size=12)[h]
    alpha = np.linspace(-1.5, 1.5, K - 1)
    u = rng.random(n)
    y = np.sum((eta + np.log(u / (1 - u)))[:, None] > alpha[None, :], axis=1)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g, "h": h, "w": rng.integers(1, 4, n).astype(float)})


# ----------------------------------------------------------------------- clmm reference
@pytest.fixture(scope="module")
def wine_fits():
    case, df = wine()
    return case, fit_ordinal(case["formula"], df), fit_ordinal(case["formula"], df, method="agq", nagq=10)


def _check(fit, ref, sd_ref, se=None):
    np.testing.assert_allclose(fit.thresholds.to_numpy(), list(ref["thresholds"].values()), rtol=2e-3)
    assert list(fit.thresholds.index) == list(ref["thresholds"])
    np.testing.assert_allclose(fit.beta.to_numpy(), list(ref["beta"].values()), rtol=2e-3)
    assert abs(fit.sd.iloc[0] - sd_ref) < 5e-3
    assert ref["loglik"] - 1e-3 <= fit.loglik <= ref["loglik"] + 1e-2
    assert fit.converged and not fit.messages
    if se is not None:
        ours = fit.se.to_numpy()[: len(se)]
        np.testing.assert_allclose(ours, list(se.values()), rtol=0.02)


def test_wine_laplace_matches_clmm(wine_fits):
    case, lap, _ = wine_fits
    _check(lap, case, case["varcorr"][0]["sdcor"], case["se"])
    assert lap.nobs == case["nobs"] and lap.method == "laplace"
    assert list(lap.beta.index) == ["temp[T.warm]", "contact[T.yes]"]
    assert lap.ranef["judge"].shape == (9, 1)


def test_wine_agq10_matches_clmm(wine_fits):
    case, _, agq = wine_fits
    _check(agq, case["agq10"], case["agq10"]["sd"])
    assert agq.nagq == 10


VARIANTS = json.loads((FIXTURES / "ordinal" / "wine_variants_clmm.json").read_text())


@pytest.mark.parametrize("name", list(VARIANTS))
def test_wine_variants_match_clmm(name):
    """Several grouping factors, a random slope, probit and cloglog links, AGQ, prior weights
    (clmm fits made by tests/fixtures/ordinal/wine_variants_clmm.R; its header explains the
    cloglog references: clmm's random-intercept fast path swaps cloglog and loglog)."""
    ref = VARIANTS[name]
    _case, df = wine()
    df["w"] = (df["judge"].cat.codes + 1) % 3 + 1.0  # R: as.integer(judge) %% 3 + 1
    method = "agq" if ref["nagq"] > 1 else "laplace"
    fit = fit_ordinal(ref["formula"], df, link=ref["link"], method=method, nagq=ref["nagq"], weights=ref["weights"])
    coef = np.r_[fit.thresholds.to_numpy(), fit.beta.to_numpy()]
    np.testing.assert_allclose(coef, list(ref["coef"].values()), rtol=2e-3)
    np.testing.assert_allclose(fit.se.to_numpy()[:6], list(ref["se"].values())[:6], rtol=0.02)
    sds = np.concatenate([np.atleast_1d(v) for v in ref["sd"].values()])
    np.testing.assert_allclose(fit.sd.to_numpy(), sds, atol=5e-3)
    assert ref["loglik"] - 1e-3 <= fit.loglik <= ref["loglik"] + 1e-2


def test_wine_laplace_deviance_at_clmm_estimates():
    """At clmm's estimates our Laplace and AGQ log-likelihoods reproduce clmm's logLik."""
    case, df = wine()
    os_ = build_ordinal_spec(case["formula"], df)
    for ref, sd, dev in [
        (case, case["varcorr"][0]["sdcor"], OrdinalLaplaceDevfun(os_.spec, os_.y, os_.X, os_.ncat)),
        (case["agq10"], case["agq10"]["sd"], OrdinalAgqDevfun(os_.spec, os_.y, os_.X, os_.ncat, nagq=10)),
    ]:
        phi = dev.join([sd], tau_from_thresholds(list(ref["thresholds"].values())), list(ref["beta"].values()))
        assert abs(-dev(phi) / 2 - ref["loglik"]) < 2e-5


# ------------------------------------------------------------------- AGQ vs quadrature
@pytest.mark.parametrize("link", LINKS)
def test_agq_loglik_equals_numerical_integral(link):
    df = simulated(n=60, J=8, K=4, seed=11)
    os_ = build_ordinal_spec("y ~ x + z + (1 | g)", df)
    sigma, alpha, beta = 1.3, np.array([-1.0, 0.2, 1.1]), np.array([0.5, -0.3])
    F = CDF[link]
    exact = 0.0
    y, eta_f, codes = os_.y, os_.X @ beta, os_.spec.terms[0].codes
    up = np.append(alpha, np.inf)
    lo = np.concatenate([[-np.inf], alpha])
    for j in range(8):
        m = codes == j

        def integrand(b, m=m):
            e = eta_f[m] + b
            return np.prod(F(up[y[m]] - e) - F(lo[y[m]] - e)) * stats.norm.pdf(b, 0, sigma)

        val, _err = integrate.quad(integrand, -12 * sigma, 12 * sigma, epsabs=0, epsrel=1e-12, limit=200)
        exact += np.log(val)
    phi = np.r_[sigma, tau_from_thresholds(alpha), beta]
    agq = OrdinalAgqDevfun(os_.spec, os_.y, os_.X, os_.ncat, link, nagq=25)
    lap = OrdinalLaplaceDevfun(os_.spec, os_.y, os_.X, os_.ncat, link)
    assert abs(-agq(phi) / 2 - exact) < 1e-7
    assert abs(-lap(phi) / 2 - exact) > 1e-4  # Laplace is an approximation: the check has teeth


def test_nagq1_equals_laplace():
    df = simulated(n=300, J=30)
    os_ = build_ordinal_spec("y ~ x + z + (1 | g)", df)
    lap = OrdinalLaplaceDevfun(os_.spec, os_.y, os_.X, os_.ncat)
    agq1 = OrdinalAgqDevfun(os_.spec, os_.y, os_.X, os_.ncat, nagq=1)
    for phi in ([0.8, -1.2, 0.0, -0.3, 0.2, 0.5, -0.4], [1.5, -0.5, -1.0, 0.1, -0.2, 0.9, 0.3]):
        assert abs(agq1(np.array(phi)) - lap(np.array(phi))) < 1e-8
    df["yc"] = pd.Categorical(df["y"], ordered=True)
    f1 = fit_ordinal("yc ~ x + z + (1 | g)", df, method="agq", nagq=1)
    f0 = fit_ordinal("yc ~ x + z + (1 | g)", df)
    assert abs(f1.loglik - f0.loglik) < 1e-9


# -------------------------------------------------------------------------- gradients
def _fd(dev, phi):
    h = 1e-5 * np.maximum(1.0, np.abs(phi))
    return np.array([(dev(phi + e) - dev(phi - e)) / (2 * s) for e, s in zip(np.diag(h), h)])


GRAD_MODELS = [
    ("y ~ x + z + (1 | g)", {}),
    ("y ~ x + (1 + x | g)", {"slope": True}),
    ("y ~ x + z + (1 | g) + (1 | h)", {"crossed": True}),  # Schur factorization
]


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("formula, sim", GRAD_MODELS)
def test_laplace_gradient_matches_finite_differences(link, formula, sim):
    df = simulated(n=400, **sim)
    os_ = build_ordinal_spec(formula, df, weights="w")
    dev = OrdinalLaplaceDevfun(os_.spec, os_.y, os_.X, os_.ncat, link)
    rng = np.random.default_rng(2)
    theta = os_.spec.theta_start() * 0.7 + 0.1 * rng.random(os_.spec.ntheta)
    phi = dev.join(theta, tau_from_thresholds([-1.2, -0.3, 0.4, 1.3]), 0.3 * rng.normal(size=dev.p))
    f, g = dev.value_and_grad(phi)
    assert np.isfinite(f)
    np.testing.assert_allclose(g, _fd(dev, phi), rtol=1e-5, atol=1e-4 * max(1.0, np.abs(g).max()))


@pytest.mark.parametrize("link", LINKS)
def test_agq_gradient_matches_finite_differences(link):
    df = simulated(n=300, J=25)
    os_ = build_ordinal_spec("y ~ x + z + (1 | g)", df, weights="w")
    dev = OrdinalAgqDevfun(os_.spec, os_.y, os_.X, os_.ncat, link, nagq=7)
    phi = dev.join([0.9], tau_from_thresholds([-1.2, -0.3, 0.4, 1.3]), [0.4, -0.2])
    _f, g = dev.value_and_grad(phi)
    np.testing.assert_allclose(g, _fd(dev, phi), rtol=1e-5, atol=1e-5 * np.abs(g).max())


def test_agq_vector_random_effects_fit():
    """AGQ with a random slope (q = 2): the fit improves on Laplace's log-likelihood scale
    only slightly and lands close to it."""
    df = simulated(n=400, J=30, slope=True)
    lap = fit_ordinal("y ~ x + (1 + x | g)", df)
    agq = fit_ordinal("y ~ x + (1 + x | g)", df, method="agq", nagq=5)
    assert agq.converged
    np.testing.assert_allclose(agq.beta, lap.beta, atol=0.05)
    assert abs(agq.loglik - lap.loglik) < 1.0
    np.testing.assert_allclose(agq.se, lap.se, rtol=0.1)  # second differences of the AGQ values


# --------------------------------------------------------------- probabilities, tails
def test_cell_log_probabilities_in_the_far_tails():
    logit = get_cumulative_link("logit")
    alpha = np.array([-1.0, 0.0, 1.0])
    # category 0, a = α1 − η = −801: log F(a) = a − log1p(e^a)
    lp = cell_terms(logit, alpha, np.array([0]), np.array([800.0])).logp
    assert abs(lp[0] - (-801.0)) < 1e-9
    # a middle category deep in the upper tail: p = e^{-c} − e^{-a} (1 + O(e^{-c}))
    lp = cell_terms(logit, np.array([0.0, 1.0, 2.0]), np.array([2]), np.array([-750.0])).logp
    assert abs(lp[0] - (-751.0 + np.log1p(-np.exp(-1.0)))) < 1e-9
    for name in LINKS:
        eta = np.array([-60.0, 0.3, 40.0, 9.0])
        cl = cell_terms(get_cumulative_link(name), alpha, np.array([0, 1, 2, 3]), eta, order=2)
        assert np.all(np.isfinite(cl.logp)) and np.all(np.isfinite(cl.W)) and np.all(cl.W >= -1e-12)


@pytest.mark.parametrize("link", LINKS)
def test_category_probabilities(link):
    alpha = np.array([-1.0, 0.3, 1.2])
    eta = np.array([-0.5, 0.0, 2.0])
    P = category_probs(eta, alpha, link)
    F = CDF[link]
    ref = np.diff(np.column_stack([np.zeros(3), F(alpha[None, :] - eta[:, None]), np.ones(3)]), axis=1)
    np.testing.assert_allclose(P, ref, atol=1e-14)
    # population-averaged: against quad of the conditional probabilities over b ~ N(0, 0.8²)
    Pm = marginal_category_probs(eta, alpha, link, re_var=np.full(3, 0.64))
    for i in range(3):
        for k in range(4):
            val = integrate.quad(lambda b: category_probs(np.array([eta[i] + b]), alpha, link)[0, k]
                                 * stats.norm.pdf(b, 0, 0.8), -10, 10, epsabs=1e-13)[0]
            assert abs(Pm[i, k] - val) < 1e-9
    assert not np.allclose(Pm, P, atol=1e-3)  # averaging flattens the probabilities


def test_draw_categories_frequencies():
    rng = np.random.default_rng(4)
    alpha = np.array([-1.0, 0.3, 1.2])
    y = draw_categories(np.full(200_000, 0.4), alpha, "probit", rng)
    freq = np.bincount(y, minlength=4) / y.size
    np.testing.assert_allclose(freq, category_probs(np.array([0.4]), alpha, "probit")[0], atol=4e-3)


def test_simulate_then_refit_recovers_parameters():
    big = simulated(n=8000, J=200, seed=9)
    os_ = build_ordinal_spec("y ~ x + z + (1 | g)", big)
    dev = OrdinalLaplaceDevfun(os_.spec, os_.y, os_.X, os_.ncat, "cloglog")
    alpha, beta = np.array([-1.5, -0.5, 0.5, 1.5]), np.array([0.7, -0.5])
    phi = dev.join([0.8], tau_from_thresholds(alpha), beta)
    ysim = dev.simulate(phi, nsim=2, rng=1)
    assert ysim.shape == (2, 8000) and set(np.unique(ysim)) == {0, 1, 2, 3, 4}
    big["ysim"] = ysim[0]
    fit = fit_ordinal("ysim ~ x + z + (1 | g)", big, link="cloglog")
    se = fit.se
    assert np.all(np.abs(fit.beta.to_numpy() - beta) < 4 * se.iloc[4:6].to_numpy())
    assert np.all(np.abs(fit.thresholds.to_numpy() - alpha) < 4 * se.iloc[:4].to_numpy())
    assert abs(fit.sd.iloc[0] - 0.8) < 4 * se.iloc[6]


# ---------------------------------------------------------------------------- response
def test_integer_response_equals_ordered_categorical():
    case, df = wine()
    df["score"] = df["rating"].cat.codes + 1
    a = fit_ordinal("score ~ temp + contact + (1 | judge)", df)
    b = fit_ordinal(case["formula"], df)
    np.testing.assert_allclose(a.phi, b.phi, rtol=1e-10)
    assert list(a.thresholds.index) == ["1|2", "2|3", "3|4", "4|5"]


def test_response_errors():
    case, df = wine()
    d = df.copy()
    d["rating"] = d["rating"].cat.as_unordered()
    with pytest.raises(DataError, match="'rating' is an unordered categorical"):
        build_ordinal_spec(case["formula"], d)
    d = df.copy()
    d["rating"] = d["rating"].cat.add_categories(["6"])
    with pytest.raises(DataError, match="'rating' has categories with no observation.*6"):
        build_ordinal_spec(case["formula"], d)
    d = df.copy()
    hi_lo = np.where(df["rating"].cat.codes > 2, "hi", "lo")
    d["rating"] = pd.Categorical(hi_lo, categories=["lo", "hi"], ordered=True)
    with pytest.raises(DataError, match="binomial"):
        build_ordinal_spec(case["formula"], d)
    d = df.copy()
    d["rating"] = d["rating"].astype(str)
    with pytest.raises(DataError, match="ordered pandas Categorical or integers"):
        build_ordinal_spec(case["formula"], d)
    with pytest.raises(ModelError, match="keep the intercept"):
        build_ordinal_spec("rating ~ 0 + temp + (1 | judge)", df)
    with pytest.raises(ModelError, match="unknown link"):
        fit_ordinal(case["formula"], df, link="cauchit")
    with pytest.raises(ModelError, match="method='laplace'"):
        fit_ordinal("rating ~ temp + (1 | judge) + (1 | bottle)", df, method="agq", nagq=5)


def test_missing_response_rows_are_dropped():
    case, df = wine()
    d = df.copy()
    d.loc[[0, 5], "rating"] = np.nan
    os_ = build_ordinal_spec(case["formula"], d)
    assert os_.nobs == 70 and os_.spec.n_dropped == 2


def test_offset_acts_as_a_coefficient_fixed_at_one():
    df = simulated(n=300, J=30)
    df["o"] = 0.3 * df["x"] + 0.1
    with_off = build_ordinal_spec("y ~ z + offset(o) + (1 | g)", df)
    as_col = build_ordinal_spec("y ~ z + o + (1 | g)", df)
    a = OrdinalLaplaceDevfun(with_off.spec, with_off.y, with_off.X, with_off.ncat, "probit")
    b = OrdinalLaplaceDevfun(as_col.spec, as_col.y, as_col.X, as_col.ncat, "probit")
    tau = tau_from_thresholds([-1.0, -0.2, 0.5, 1.4])
    assert abs(a(a.join([0.7], tau, [0.4])) - b(b.join([0.7], tau, [0.4, 1.0]))) < 1e-9
