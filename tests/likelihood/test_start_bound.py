"""PIRLS's start: u = 0 is ruled out without evaluating it where the log-density is concave in
eta (the tangent bound of LaplaceDevfun._beats_zero) — the same modes and deviances as
evaluating it, fewer log-likelihood evaluations, and the bound itself checked against the
evaluated penalized deviance at u = 0."""

import numpy as np
import pytest

from glmm_nb import build_spec, get_family
from glmm_nb.families.kernel import Kernel
from glmm_nb.likelihood import LaplaceDevfun
from tests.likelihood.test_laplace_gradient import _simulated_intercept


def _row_path(dv):
    """The devfun with the row PIRLS always (not the modes from sums per cluster of (1 | g))."""
    dv.cluster_pirls = None
    return dv


def _path(dv, phis):
    return [dv.state(p) for p in phis]


@pytest.mark.parametrize("family, phi", [("binomial", [0.55, 0.2, 0.45]), ("poisson", [0.7, 0.35, 0.5]),
                                         ("negative_binomial", [0.5, 0.25, 0.55, np.log(2.5)]),
                                         ("gamma", [0.65, 0.35, 0.45, np.log(0.6)])])
def test_bound_changes_nothing_but_the_work(family, phi, monkeypatch):
    spec = build_spec("y ~ x + (1 | g)", _simulated_intercept(family), family)
    rng = np.random.default_rng(1)
    phis = [np.array(phi) * (1 + 0.2 * rng.normal(size=len(phi))) for _ in range(6)]
    calls = {"n": 0}
    fast = _row_path(LaplaceDevfun(spec, get_family(family)))
    kern = type(fast.family.kernel(fast.data) if fast.nx == 0 else fast.family_at(phis[0]).kernel(fast.data))
    assert kern.concave
    loglik = kern.loglik

    def counting(self, eta):
        calls["n"] += 1
        return loglik(self, eta)

    monkeypatch.setattr(kern, "loglik", counting)
    with_bound = _path(fast, phis)
    n_bound = calls["n"]
    monkeypatch.setattr(kern, "concave", False)
    calls["n"] = 0
    without = _path(_row_path(LaplaceDevfun(spec, get_family(family))), phis)
    assert calls["n"] - n_bound >= len(phis) - 1  # u = 0 evaluated in every warm-started run but the first
    for a, b in zip(with_bound, without):
        assert a.deviance == pytest.approx(b.deviance, abs=1e-9)
        np.testing.assert_allclose(a.u, b.u, atol=1e-7)


@pytest.mark.parametrize("family", ["binomial", "negative_binomial", "gamma", "poisson"])
def test_tangent_bound_is_a_lower_bound(family):
    """D_p(0) >= D_p(u) - u'u + 2 u'Z~'r(u) at arbitrary u: the inequality the skip rests on."""
    spec = build_spec("y ~ x + (1 | g)", _simulated_intercept(family), family)
    dv = LaplaceDevfun(spec, get_family(family))
    phi = np.array([0.6, 0.3, 0.5] + ([np.log(1.5)] if dv.nx else []))
    theta, beta = dv.split(phi)
    K = dv.family_at(phi).kernel(dv.data)
    assert K.concave and type(K) is not Kernel
    rs = dv.rs
    vals = rs.vals(theta)
    eta_f = dv.X @ beta + dv.off
    rng = np.random.default_rng(2)
    for scale in (0.1, 1.0, 3.0):
        u = rng.normal(0, scale, rs.Q)
        eta = eta_f + rs.mult(vals, u)
        pdev = -2 * K.loglik(eta) + u @ u
        r = K.working(eta)[1]
        bound = pdev - u @ u + 2 * u @ rs.tmult(vals, r)
        assert -2 * K.loglik(eta_f) >= bound - 1e-9 * abs(bound)


@pytest.mark.parametrize("name,d,y,eta_a,eta_b", [
    ("negative_binomial", 2.0, 3.0, -40.0, -45.0),  # log mu clipped at log(EPS): flat below
    ("gamma", 0.5, 1.0, -40.0, -45.0),
    ("poisson", None, 3.0, 705.0, 710.0),  # eta clipped at ETA_MAX: flat above
    ("negative_binomial", 2.0, 3.0, -5.0, 2.0),  # inside: the tangent bounds
    ("binomial", None, 1.0, 750.0, -3.0),
])
def test_kernels_claim_concavity_only_where_the_tangent_bounds(name, d, y, eta_a, eta_b):
    """The PIRLS start bound uses l(b) <= l(a) + r(a)(b - a) wherever a kernel says the
    log-density is concave between a and b; where the kernel clips the mean the log-density is
    flat in eta (a convex kink) and it must not say so."""
    from glmm_nb.families import get_family
    from glmm_nb.families.kernel import ResponseData

    fam = get_family(name)
    fam = fam.at_dispersion(d) if d is not None else fam
    yy, pw = np.array([y]), np.ones(1)
    K = fam.kernel(ResponseData(yy, pw, float(np.sum(fam.loglik_const(yy, pw)))))
    a, b = np.array([eta_a]), np.array([eta_b])
    la, r, lb = K.loglik(a), K.working(a)[1][0], K.loglik(b)
    holds = lb <= la + r * (eta_b - eta_a) + 1e-9 * abs(la)
    claims = K.concave_on(a, b) if hasattr(K, "concave_on") else K.concave
    assert holds or not claims
