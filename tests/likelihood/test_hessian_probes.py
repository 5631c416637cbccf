"""The Laplace deviance's Hessian at an optimum. For a random intercept alone (no extra
parameter, working = observed weights) each forward-difference probe's gradient comes from sums
per cluster instead of a PIRLS run (LaplaceDevfun.hessian). It must equal the same forward
differences with every probe's modes found by PIRLS run to the rounding floor (to 2e-6, where
leaving out the chord step or a term of the gradient is off by 1e-5 to 1e-3), lie within the
forward difference's own error of an independent central-difference Hessian, and cost no
deviance evaluation per probe."""

import numpy as np
import pandas as pd
import pytest

from glmm_nb import build_spec, get_family, glmm
from glmm_nb.likelihood import LaplaceDevfun
from glmm_nb.likelihood.contracts import default_hessian
from glmm_nb.pipeline import make_devfun
from tests.conftest import load_case


def _data(seed=5, n=4000, J=80):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    off = rng.normal(0, 0.2, n)
    eta = 0.3 + 0.5 * x - 0.2 * z + rng.normal(0, 0.7, J)[g]
    k = rng.integers(1, 6, n)
    mu = np.exp(eta)
    return pd.DataFrame({
        "yn": rng.negative_binomial(2, 2 / (2 + mu)).astype(float),
        "yg": rng.gamma(3.0, mu / 3.0),
        "x": x, "z": z, "g": g, "off": off, "k": k,
        "yb": rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float),
        "yp": rng.poisson(np.exp(eta + off)).astype(float),
        "yk": rng.binomial(k, 1 / (1 + np.exp(-eta))) / k,
    })


def _optimum(dv, spec):
    """The Laplace optimum by L-BFGS-B on the analytic gradient (tight)."""
    from scipy.optimize import minimize

    x0 = np.concatenate([spec.theta_start(), np.zeros(spec.p)])
    lower = np.concatenate([spec.theta_lower(), np.full(spec.p, -np.inf)])
    res = minimize(dv.value_and_grad, x0, jac=True, method="L-BFGS-B",
                   bounds=[(lo if np.isfinite(lo) else None, None) for lo in lower],
                   options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 500})
    return res.x


def _reference_hessian(dv, phi):
    """Central differences of the analytic gradient, every PIRLS run to the rounding floor."""
    tol = dv.tol
    dv.tol = 1e-30
    h = 1e-4 * np.maximum(np.abs(phi), 0.1)
    H = np.empty((phi.size, phi.size))
    for j in range(phi.size):
        e = np.zeros(phi.size)
        e[j] = h[j]
        H[:, j] = (dv.value_and_grad(phi + e)[1] - dv.value_and_grad(phi - e)[1]) / (2 * h[j])
    dv.tol = tol
    return 0.5 * (H + H.T)


CASES = {
    "logistic": ("yb ~ x + z + (1 | g)", "binomial", "logit", {}),
    "poisson_offset": ("yp ~ x + z + (1 | g)", "poisson", "log", {"offset": "off"}),
    "binomial_trials": ("yk ~ x + (1 | g)", "binomial", "logit", {"weights": "k"}),
    "nb2": ("yn ~ x + z + (1 | g)", "negative_binomial", "log", {}),  # a dispersion
    "gamma": ("yg ~ x + z + (1 | g)", "gamma", "log", {}),  # a dispersion; PIRLS from sums per cluster
    "gamma_dispformula": ("yg ~ x + (1 | g)", "gamma", "log", {"dispformula": "~ x"}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_cluster_sum_probes_equal_the_reference_hessian(name):
    formula, family, link, kw = CASES[name]
    df = _data()
    opts = {"weights": df[kw["weights"]].to_numpy()} if "weights" in kw else {}
    if "offset" in kw:
        opts["offset"] = df[kw["offset"]].to_numpy()
    if "dispformula" in kw:
        opts["dispformula"] = kw["dispformula"]
    m = glmm(formula, df, family=family, link=link, **opts)
    dv = make_devfun(m.request, "laplace")
    phi = m.opt.final
    before = dv.nevals
    H = dv.hessian(phi)
    if dv.state(phi).cluster_modes is None:
        assert dv.nevals == before  # no PIRLS run, not even at the base point: all from sums per cluster
    else:  # log-link Poisson and gamma: PIRLS from sums per cluster at the base and each probe
        assert dv.nevals - before == 1 + phi.size
    tol = 2e-6
    dv.reset_modes()  # the base point's modes too, from scratch
    dv.tol = 1e-30
    fwd = default_hessian(dv, phi)  # the same probes, each a PIRLS run to the rounding floor
    dv.tol = 1e-12
    assert np.max(np.abs(H - fwd)) < tol * np.max(np.abs(fwd))
    se, se_fwd = np.sqrt(np.diag(np.linalg.inv(H))), np.sqrt(np.diag(np.linalg.inv(fwd)))
    np.testing.assert_allclose(se, se_fwd, rtol=tol)
    ref = _reference_hessian(dv, phi)  # the forward difference's own error: up to 3e-4 here
    assert np.max(np.abs(H - ref)) < 1e-3 * np.max(np.abs(ref))


def test_other_models_keep_the_pirls_probes():
    """A random slope (several columns), a non-canonical link with Fisher weights and a
    dispersion parameter: probes by PIRLS runs (one evaluation each), as accurate as before."""
    case, df = load_case("cbpp_laplace")
    spec = build_spec(case["formula"], df, "binomial")
    dv = LaplaceDevfun(spec, get_family("binomial", "probit"))
    phi = _optimum(dv, spec)
    dv.value_and_grad(phi)
    before = dv.nevals
    H = dv.hessian(phi)
    assert dv.nevals - before == 1 + phi.size
    ref = _reference_hessian(dv, phi)
    assert np.max(np.abs(H - ref)) < 1e-4 * np.max(np.abs(ref))


@pytest.mark.parametrize("name", ["logistic", "nb2", "gamma"])
def test_hessian_at_a_state_reached_from_afar(name):
    """The optimum's PIRLS state reached from a point 1e-2 away stops up to ~1e-6 short of the
    modes: the Hessian must not carry that into its differences (the base point's exact gradient
    against probes at moved modes was 5e-3 off here; the cluster-sum path's kept state, 1e-3)."""
    formula, family, link, kw = CASES[name]
    df = _data(seed=11)
    m = glmm(formula, df, family=family, link=link)
    dv = make_devfun(m.request, "laplace")
    phi = m.opt.final
    dv.reset_modes()
    dv.value_and_grad(phi + 1e-2 * np.random.default_rng(3).normal(size=phi.size))
    dv.value_and_grad(phi)
    H = dv.hessian(phi)
    dv.reset_modes()
    dv.tol = 1e-30
    exact = default_hessian(dv, phi)
    assert np.max(np.abs(H - exact)) < 2e-6 * np.max(np.abs(exact))
