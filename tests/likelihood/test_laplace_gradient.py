"""The analytic Laplace gradient against central finite differences of the deviance."""

import numpy as np
import pytest

from glmm_nb import build_spec, get_family
from glmm_nb.likelihood import LaplaceDevfun
from tests.conftest import load_case


@pytest.mark.parametrize(
    "case_id, link",
    [
        ("cbpp_laplace", "logit"),
        ("cbpp_laplace", "probit"),
        ("cbpp_laplace", "cloglog"),
        ("contraception_slope", "logit"),
        ("epil_poisson", "log"),
        ("verbagg_crossed", "logit"),
        ("grouseticks_poisson", "log"),  # sparse coupling block in the Schur factorization
    ],
)
def test_gradient_matches_finite_differences(case_id, link):
    case, df = load_case(case_id)
    spec = build_spec(case["formula"], df, case["family"])
    dv = LaplaceDevfun(spec, get_family(case["family"], link))
    rng = np.random.default_rng(3)
    theta = spec.theta_start() * 0.6 + 0.2 * rng.random(spec.ntheta)
    phi = np.concatenate([theta, 0.9 * np.array(list(case["fixef"].values()))])
    _f, g = dv.value_and_grad(phi)
    h = 1e-5 * np.maximum(np.abs(phi), 1e-2)
    num = np.array([(dv(phi + e) - dv(phi - e)) / (2 * s) for e, s in zip(np.diag(h), h)])
    np.testing.assert_allclose(g, num, rtol=2e-4, atol=2e-3)


def test_cbpp_laplace_deviance_at_lme4_estimates():
    """At lme4's estimates our Laplace log-likelihood reproduces lme4's logLik."""
    case, df = load_case("cbpp_laplace")
    spec = build_spec(case["formula"], df, "binomial")
    dv = LaplaceDevfun(spec, get_family("binomial"))
    phi = np.r_[case["varcorr"][0]["sdcor"], list(case["fixef"].values())]
    assert abs(-dv(phi) / 2 - case["loglik"]) < 1e-3


def _simulated_intercept(family, n=3000, J=60, seed=7):
    import pandas as pd

    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.6, J)[g]
    if family == "binomial":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    elif family == "negative_binomial":
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(eta)))
    elif family == "gamma":
        y = rng.gamma(3.0, np.exp(eta) / 3.0)
    else:
        y = rng.poisson(np.exp(eta))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": g})


@pytest.mark.parametrize("family, phi", [("binomial", [0.55, 0.2, 0.45]), ("poisson", [0.7, 0.35, 0.5]),
                                         ("negative_binomial", [0.5, 0.25, 0.55, np.log(2.5)]),
                                         ("gamma", [0.65, 0.35, 0.45, np.log(0.6)])])
def test_random_intercept_gradient_by_cluster_sums(family, phi):
    """(1 | g): the gradient from sums per cluster (Z~ a broadcast of theta) equals the general
    (n, s) computation on a full copy of Z~, and central differences of the deviance."""
    import dataclasses

    spec = build_spec("y ~ x + (1 | g)", _simulated_intercept(family), family)
    dv = LaplaceDevfun(spec, get_family(family))
    phi = np.array(phi)
    st = dv.state(phi)
    assert dv.rs.intercept_only and st.vals.strides[0] == 0
    g = dv.gradient(st)
    g_general = dv.gradient(dataclasses.replace(st, vals=np.ascontiguousarray(st.vals)))
    np.testing.assert_allclose(g, g_general, rtol=1e-10, atol=1e-9)
    h = 1e-5 * np.maximum(np.abs(phi), 1e-2)
    num = np.array([(dv(phi + e) - dv(phi - e)) / (2 * s) for e, s in zip(np.diag(h), h)])
    np.testing.assert_allclose(g, num, rtol=5e-5, atol=1e-3)  # PIRLS stops at a decrement of 1e-12
