"""The ordinal deviance functions: clmm's log-likelihood at its own estimates (Laplace and AGQ),
the AGQ log-likelihood against per-cluster numerical integrals (scipy.integrate.quad), analytic
gradients against central differences (Laplace, AGQ, nominal effects), cell probabilities in the
far tails, category probabilities and draws, and the response rules of the design stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from glmm_nb.errors import DataError, FormulaError, ModelError
from glmm_nb.families import get_family
from glmm_nb.families.cumulative import (
    category_probs,
    cell_terms,
    draw_categories,
    get_cumulative_link,
    marginal_category_probs,
    tau_from_thresholds,
)
from glmm_nb.likelihood import OrdinalAgqDevfun, OrdinalLaplaceDevfun
from glmm_nb.pipeline import build_spec

LINKS = ["logit", "probit", "cloglog"]
CDF = {"logit": special.expit, "probit": special.ndtr, "cloglog": lambda x: -np.expm1(-np.exp(x))}


def devfuns(formula, df, link="logit", weights=None, nagq=None):
    fam = get_family("ordinal", link)
    spec = build_spec(formula, df, family=fam, weights=weights)
    if nagq is None:
        return spec, OrdinalLaplaceDevfun(spec, fam)
    return spec, OrdinalAgqDevfun(spec, fam, nagq=nagq)


def test_deviance_at_clmm_estimates(wine):
    """At clmm's estimates our Laplace and AGQ log-likelihoods reproduce clmm's logLik."""
    case, df = wine
    for ref, sd, nagq in [(case, case["varcorr"][0]["sdcor"], None), (case["agq10"], case["agq10"]["sd"], 10)]:
        _spec, dev = devfuns(case["formula"], df, nagq=nagq)
        phi = dev.join([sd], list(ref["beta"].values()), tau_from_thresholds(list(ref["thresholds"].values())))
        assert abs(-dev(phi) / 2 - ref["loglik"]) < 2e-5


@pytest.mark.parametrize("link", LINKS)
def test_agq_loglik_equals_numerical_integral(link, sim):
    df = sim(n=60, J=8, K=4, seed=11)
    spec, agq = devfuns("y ~ x + z + (1 | g)", df, link, nagq=25)
    _spec, lap = devfuns("y ~ x + z + (1 | g)", df, link)
    sigma, alpha, beta = 1.3, np.array([-1.0, 0.2, 1.1]), np.array([0.5, -0.3])
    F = CDF[link]
    exact = 0.0
    y, eta_f, codes = spec.y.astype(int), np.asarray(spec.X) @ beta, spec.terms[0].codes
    up = np.append(alpha, np.inf)
    lo = np.concatenate([[-np.inf], alpha])
    for j in range(8):
        m = codes == j

        def integrand(b, m=m):
            e = eta_f[m] + b
            return np.prod(F(up[y[m]] - e) - F(lo[y[m]] - e)) * stats.norm.pdf(b, 0, sigma)

        val, _err = integrate.quad(integrand, -12 * sigma, 12 * sigma, epsabs=0, epsrel=1e-12, limit=200)
        exact += np.log(val)
    phi = np.r_[sigma, beta, tau_from_thresholds(alpha)]
    assert abs(-agq(phi) / 2 - exact) < 1e-7
    assert abs(-lap(phi) / 2 - exact) > 1e-4  # Laplace is an approximation: the check has teeth


def test_nagq1_equals_laplace(sim):
    df = sim(n=300, J=30)
    _s, lap = devfuns("y ~ x + z + (1 | g)", df)
    _s, agq1 = devfuns("y ~ x + z + (1 | g)", df, nagq=1)
    for phi in ([0.8, 0.5, -0.4, -1.2, 0.0, -0.3, 0.2], [1.5, 0.9, 0.3, -0.5, -1.0, 0.1, -0.2]):
        assert abs(agq1(np.array(phi)) - lap(np.array(phi))) < 1e-8


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
@pytest.mark.parametrize("formula, kw", GRAD_MODELS)
def test_laplace_gradient_matches_finite_differences(link, formula, kw, sim):
    df = sim(n=400, **kw)
    spec, dev = devfuns(formula, df, link, weights="w")
    rng = np.random.default_rng(2)
    theta = spec.theta_start() * 0.7 + 0.1 * rng.random(spec.ntheta)
    phi = dev.join(theta, 0.3 * rng.normal(size=dev.p), tau_from_thresholds([-1.2, -0.3, 0.4, 1.3]))
    f, g = dev.value_and_grad(phi)
    assert np.isfinite(f)
    np.testing.assert_allclose(g, _fd(dev, phi), rtol=1e-5, atol=1e-4 * max(1.0, np.abs(g).max()))


def test_nominal_gradient_matches_finite_differences(sim):
    """Thresholds varying with z (nominal effects): value and gradient in Gamma."""
    df = sim(n=400)
    fam = get_family("ordinal", "logit")
    spec = build_spec("y ~ x + (1 | g)", df, family=fam, weights="w")
    Xn = df[["z"]].to_numpy(float)
    dev = OrdinalLaplaceDevfun(spec, fam, nominal=Xn)
    phi = dev.join([0.8], [0.6], tau_from_thresholds([-1.2, -0.3, 0.4, 1.3]), [[0.3, 0.5, 0.4, 0.6]])
    f, g = dev.value_and_grad(phi)
    np.testing.assert_allclose(g, _fd(dev, phi), rtol=1e-5, atol=1e-4 * max(1.0, np.abs(g).max()))
    # equal nominal coefficients = the same shift of every threshold = a location effect -gamma
    base = OrdinalLaplaceDevfun(build_spec("y ~ x + z + (1 | g)", df, family=fam, weights="w"), fam)
    same = dev.join([0.8], [0.6], tau_from_thresholds([-1.2, -0.3, 0.4, 1.3]), [[0.4] * 4])
    assert abs(dev(same) - base(base.join([0.8], [0.6, -0.4], tau_from_thresholds([-1.2, -0.3, 0.4, 1.3])))) < 1e-9
    crossing = dev.join([0.8], [0.6], tau_from_thresholds([-1.2, -0.3, 0.4, 1.3]), [[0.0, 2.0, 0.0, 0.0]])
    assert dev(crossing) == np.inf


@pytest.mark.parametrize("link", LINKS)
def test_agq_gradient_matches_finite_differences(link, sim):
    df = sim(n=300, J=25)
    _s, dev = devfuns("y ~ x + z + (1 | g)", df, link, weights="w", nagq=7)
    phi = dev.join([0.9], [0.4, -0.2], tau_from_thresholds([-1.2, -0.3, 0.4, 1.3]))
    _f, g = dev.value_and_grad(phi)
    np.testing.assert_allclose(g, _fd(dev, phi), rtol=1e-5, atol=1e-5 * np.abs(g).max())


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


def test_row_specific_thresholds_equal_common_ones():
    logit = get_cumulative_link("probit")
    alpha = np.array([-1.0, 0.2, 1.5])
    y, eta = np.array([0, 1, 2, 3, 1]), np.array([0.3, -0.2, 1.0, 0.1, 2.0])
    a = cell_terms(logit, alpha, y, eta, order=2)
    b = cell_terms(logit, np.tile(alpha, (5, 1)), y, eta, order=2)
    for f in ("logp", "r", "W", "dW", "l_up", "l_lo", "w_up", "w_lo"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-14, atol=1e-15)


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


# ---------------------------------------------------------------------------- response
def test_response_errors(wine):
    case, df = wine
    fam = get_family("ordinal")
    d = df.copy()
    d["rating"] = d["rating"].cat.as_unordered()
    with pytest.raises(DataError, match="'rating' is an unordered categorical"):
        build_spec(case["formula"], d, family=fam)
    d = df.copy()
    d["rating"] = d["rating"].cat.add_categories(["6"])
    with pytest.raises(DataError, match="'rating' has categories with no observation.*6"):
        build_spec(case["formula"], d, family=fam)
    d = df.copy()
    hi_lo = np.where(df["rating"].cat.codes > 2, "hi", "lo")
    d["rating"] = pd.Categorical(hi_lo, categories=["lo", "hi"], ordered=True)
    with pytest.raises(DataError, match="binomial"):
        build_spec(case["formula"], d, family=fam)
    d = df.copy()
    d["rating"] = d["rating"].astype(str)
    with pytest.raises(DataError, match="ordered pandas Categorical or integers"):
        build_spec(case["formula"], d, family=fam)
    d = df.copy()
    d["rating"] = d["rating"].cat.codes + 0.5
    with pytest.raises(DataError, match="non-integer"):
        build_spec(case["formula"], d, family=fam)
    with pytest.raises(ModelError, match="keep the intercept"):
        build_spec("rating ~ 0 + temp + (1 | judge)", df, family=fam)
    with pytest.raises(FormulaError, match="binomial response"):
        build_spec("cbind(rating, rating) ~ temp + (1 | judge)", df, family=fam)
    with pytest.raises(ModelError, match="link 'cauchit' is not available for the ordinal family"):
        get_family("ordinal", "cauchit")


def test_spec_of_an_ordinal_model(wine):
    case, df = wine
    spec = build_spec(case["formula"], df, family="ordinal")
    assert spec.levels == ("1", "2", "3", "4", "5")
    assert spec.x_names == ("temp[T.warm]", "contact[T.yes]")  # no intercept
    np.testing.assert_array_equal(spec.y, df["rating"].cat.codes.to_numpy())
    d = df.copy()
    d.loc[[0, 5], "rating"] = np.nan
    spec = build_spec(case["formula"], d, family="ordinal")
    assert spec.nobs == 70 and spec.n_dropped == 2
    d = df.copy()
    d["score"] = pd.array(np.where(np.arange(72) == 3, pd.NA, df["rating"].cat.codes + 1), dtype="Int64")
    spec = build_spec("score ~ temp + (1 | judge)", d, family="ordinal")
    assert spec.levels == ("1", "2", "3", "4", "5") and spec.nobs == 71


def test_offset_acts_as_a_coefficient_fixed_at_one(sim):
    df = sim(n=300, J=30)
    df["o"] = 0.3 * df["x"] + 0.1
    _s, a = devfuns("y ~ z + offset(o) + (1 | g)", df, "probit")
    _s, b = devfuns("y ~ z + o + (1 | g)", df, "probit")
    tau = tau_from_thresholds([-1.0, -0.2, 0.5, 1.4])
    assert abs(a(a.join([0.7], [0.4], tau)) - b(b.join([0.7], [0.4, 1.0], tau))) < 1e-9
