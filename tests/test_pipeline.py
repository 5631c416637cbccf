"""The public chain: a family defined here fits end to end, refit() is the one door back in,
and failures of the inner loop and of refits are reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import glmm_nb
from glmm_nb import ConvergenceWarning, ModelError
from glmm_nb.families import Link, Poisson, register_link
from glmm_nb.pipeline import fit, make_devfun, make_request, minimize, start_values
from glmm_nb.results import build_result
from tests.conftest import load_case


class Sqrt(Link):
    """eta = sqrt(mu) (mu = eta², for eta > 0)."""

    name = "sqrt"

    def link(self, mu):
        return np.sqrt(mu)

    def inverse(self, eta):
        return np.maximum(eta, 1e-8) ** 2

    def mu_eta(self, eta):
        return 2 * np.maximum(eta, 1e-8)

    def mu_eta2(self, eta):
        return np.full_like(np.asarray(eta, dtype=float), 2.0)


class SqrtPoisson(Poisson):
    """A Poisson family with a sqrt link, defined outside the package: the base class's generic
    Fisher/observed weights and the Poisson log-density do the rest."""

    name = "sqrt_poisson"
    links = ("sqrt",)
    canonical_link = None

    def loglik_kernel(self, y, eta, pw):
        mu = self.link.inverse(eta)
        return pw * (special.xlogy(y, mu) - mu)


register_link(Sqrt)


@pytest.fixture(scope="module")
def sqrt_data():
    rng = np.random.default_rng(11)
    J, nj = 60, 8
    g = np.repeat(np.arange(J), nj)
    x = rng.uniform(0, 1, J * nj)
    eta = 2.0 + 0.8 * x + rng.normal(0, 0.4, J)[g]
    y = rng.poisson(np.maximum(eta, 0) ** 2)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def _quad_loglik(df, beta, sd):
    """Independent marginal log-likelihood: one 1-D integral per cluster (scipy.quad)."""
    fam = SqrtPoisson()
    total = 0.0
    for _, d in df.groupby("g"):
        y, x = d.y.to_numpy(float), d.x.to_numpy(float)

        def f(b):
            eta = beta[0] + beta[1] * x + b
            return np.exp(np.sum(fam.loglik_obs(y, fam.link.inverse(eta), np.ones_like(y)))) * stats.norm.pdf(b, 0, sd)

        total += np.log(integrate.quad(f, -8 * sd, 8 * sd, epsabs=0, epsrel=1e-11, limit=200)[0])
    return total


def test_a_family_defined_outside_the_package_fits_end_to_end(sqrt_data):
    fam = SqrtPoisson()
    # step by step through the public chain ...
    req = make_request("y ~ x + (1 | g)", sqrt_data, family=fam, method="agq", nagq=20)
    dev = make_devfun(req, "laplace")
    opt = minimize(req, dev, start_values(req, dev))
    from glmm_nb.pipeline import agq_stage

    dev, opt = agq_stage(req, opt)
    m = build_result(req, dev, opt)
    # ... and in one call; both the same
    m2 = glmm_nb.glmm("y ~ x + (1 | g)", sqrt_data, family=fam, method="agq", nagq=20)
    np.testing.assert_allclose(m.fixef, m2.fixef, rtol=1e-10)
    assert m.converged and m.family == "sqrt_poisson" and m.link == "sqrt"
    sd = float(m.varcorr().sdcor.iloc[0])
    # the log-likelihood is the true marginal likelihood at the estimates (independent integral)
    ll = _quad_loglik(sqrt_data, m.fixef.to_numpy(), sd)
    assert abs(m.loglik - ll) < 1e-6, (m.loglik, ll)
    # and the estimates are a maximum of it: any small move lowers the integral
    for d in ([0.02, 0, 0], [0, 0.02, 0], [0, 0, 0.02], [-0.02, 0, 0]):
        assert _quad_loglik(sqrt_data, m.fixef.to_numpy() + d[:2], sd + d[2]) < ll
    # near the simulation truth (2.0, 0.8, 0.4)
    np.testing.assert_allclose(m.fixef.to_numpy(), [2.0, 0.8], atol=0.15)
    assert "sqrt_poisson" in m2.summary() and m2.predict().shape == (len(sqrt_data),)


@pytest.fixture(scope="module")
def sleep():
    case, df = load_case("sleepstudy_reml")
    return df, glmm_nb.glmm(case["formula"], df, family="gaussian")


def test_refit_changes_one_thing(sleep):
    df, m = sleep
    ml = m.refit(reml=False)
    direct = glmm_nb.glmm("Reaction ~ Days + (Days | Subject)", df, family="gaussian", reml=False)
    np.testing.assert_allclose(ml.loglik, direct.loglik, rtol=1e-12)
    assert type(ml) is type(m) and ml.reml is False and ml.request.reml is False
    half = m.refit(data=df.iloc[: len(df) // 2])
    np.testing.assert_allclose(
        half.fixef, glmm_nb.glmm("Reaction ~ Days + (Days | Subject)", df.iloc[: len(df) // 2], family="gaussian").fixef,
        rtol=1e-10)
    y2 = np.asarray(m.spec.y) * 2
    doubled = m.refit(y=y2)
    np.testing.assert_allclose(doubled.fixef, 2 * m.fixef, rtol=1e-6)
    with pytest.raises(ModelError, match="cannot change 'nope'"):
        m.refit(nope=1)


def test_refit_with_fixed_parameters_holds_them():
    case, df = load_case("cbpp_laplace")
    m = glmm_nb.glmm(case["formula"], df)
    held = m.refit(fixed={"period[T.2]": 0.0})
    assert held.fixef["period[T.2]"] == 0.0
    assert held.loglik < m.loglik  # a restricted maximum
    # the restricted fit is the maximum over the other parameters: the LR statistic equals
    # the profile computed by the profile code at the same point
    from glmm_nb.inference.profile import ProfileProblem

    prob = ProfileProblem(m)
    d, _x = prob.restricted("period[T.2]", 0.0, None)
    np.testing.assert_allclose(-2 * held.loglik, d, rtol=1e-6)
    with pytest.raises(ModelError, match="cannot hold 'zzz' fixed"):
        m.refit(fixed={"zzz": 1.0})


def test_pirls_failure_is_reported():
    case, df = load_case("cbpp_laplace")
    with pytest.warns(ConvergenceWarning, match="PIRLS did not converge"):
        m = glmm_nb.glmm(case["formula"], df, control={"pirls_maxit": 1})
    assert not m.converged
    assert any("PIRLS" in s for s in m.messages)


def test_mundlak_refit_failure_is_reported():
    case, df = load_case("contraception_slope")
    with pytest.warns(ConvergenceWarning):
        m = glmm_nb.glmm(case["formula"], df, control={"maxiter": 2})
    with pytest.warns(ConvergenceWarning, match="within/between refit did not converge"):
        c = m.causal_checks()
    assert c.flags.loc["within/between refit not converged", "applies"]


def test_fit_records_its_request():
    case, df = load_case("cbpp_agq25")
    m = glmm_nb.glmm(case["formula"], df, method="agq", nagq=5)
    r = m.request
    assert (r.method, r.nagq, r.family.name, r.family.link.name) == ("agq", 5, "binomial", "logit")
    again = fit(r)
    np.testing.assert_allclose(again.loglik, m.loglik, rtol=1e-12)
