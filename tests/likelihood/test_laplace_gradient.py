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
