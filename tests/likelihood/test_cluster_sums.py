"""PIRLS from sums per cluster (glmm_nb.likelihood.cluster_sums) for ``(1 | g)`` alone with the
log-link Poisson and Gamma: the same modes, deviance, conditional log-likelihood, row state and
gradient as the row PIRLS (forced by ``cluster_pirls = None``; both run to a tighter tolerance,
and also at the default one), the modes and the deviance
against an independent per-cluster minimisation of the penalized deviance made of the family's
own log-density, and the row path wherever the reduced form would not be exact (a clipped mean,
other families, other random parts)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from glmm_nb import build_spec, get_family
from glmm_nb.families.kernel import Clusters
from glmm_nb.likelihood import LaplaceDevfun
from glmm_nb.likelihood.cluster_sums import ClusterPirls


def _data(family, n=700, J=30, seed=11, scale=0.6):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    eta = 0.4 + 0.5 * x + rng.normal(0, scale, J)[g]
    if family == "gamma":
        y = rng.gamma(2.5, np.exp(eta) / 2.5)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def _devfuns(family, weights=None, offset=None, data=None):
    df = _data(family) if data is None else data
    spec = build_spec("y ~ x + (1 | g)", df, family, weights=weights, offset=offset)
    fast = LaplaceDevfun(spec, get_family(family))
    row = LaplaceDevfun(spec, get_family(family))
    row.cluster_pirls = None  # the row PIRLS always
    fast.tol = row.tol = TIGHT  # both to the modes' rounding
    return fast, row


TIGHT = 1e-18  # at the default 1e-12 both paths stop up to ~1e-6 short of the modes, differently


# (theta, beta0, beta1[, log sigma]): theta near 0, moderate, large; dispersions apart
POINTS = [(1e-5, 0.3, 0.4), (0.6, 0.4, 0.5), (3.0, -0.5, 1.2), (0.05, 1.5, -0.3)]
SIGMAS = [np.log(0.3), np.log(0.8), np.log(2.0)]


def _phis(family):
    if family == "poisson":
        return [np.array(p) for p in POINTS]
    return [np.array([*p, s]) for p, s in zip(POINTS, SIGMAS + [SIGMAS[0]])]


def _variants(family):
    rng = np.random.default_rng(5)
    n = len(_data(family))
    return {"plain": {}, "weights": {"weights": rng.uniform(0.3, 2.5, n)},
            "offset": {"offset": rng.normal(0.0, 0.4, n)},
            "both": {"weights": rng.uniform(0.3, 2.5, n), "offset": rng.normal(0.0, 0.4, n)}}


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1.0)


@pytest.mark.parametrize("family", ["gamma", "poisson"])
@pytest.mark.parametrize("variant", ["plain", "weights", "offset", "both"])
def test_equals_the_row_path(family, variant):
    fast, row = _devfuns(family, **_variants(family)[variant])
    assert fast.cluster_pirls is not None
    for phi in _phis(family):
        a, b = fast.state(phi), row.state(phi)
        assert a.cluster_modes is not None and b.cluster_modes is None  # the two paths did run
        assert a.converged and b.converged
        assert _rel(a.deviance, b.deviance) < 1e-9
        assert _rel(a.loglik_cond, b.loglik_cond) < 1e-9
        np.testing.assert_allclose(a.u, b.u, rtol=0, atol=1e-7)
        for name in ("eta", "mu", "r", "W", "Wobs", "dW"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-9, err_msg=name)
        assert a.fac.logdet == pytest.approx(b.fac.logdet, rel=1e-9, abs=1e-9)
        fa, ga = fast.value_and_grad(phi)
        fb, gb = row.value_and_grad(phi)
        assert fa == a.deviance and fb == b.deviance
        np.testing.assert_allclose(ga, gb, rtol=1e-7, atol=1e-7 * max(1.0, float(np.max(np.abs(gb)))))
        # the same formulas at the same modes: the row gradient of the reduced state
        g_rows = fast.gradient(dataclasses.replace(a, cluster_modes=None))
        np.testing.assert_allclose(ga, g_rows, rtol=1e-9, atol=1e-9 * max(1.0, float(np.max(np.abs(gb)))))
        # both as fits run them (tol 1e-12): the same deviance to that convergence
        fast.tol = row.tol = 1e-12
        c = fast.pirls(*fast.split(phi), u0=np.zeros(fast.rs.Q), family=fast.family_at(phi))
        d = row.pirls(*row.split(phi), u0=np.zeros(row.rs.Q), family=row.family_at(phi))
        fast.tol = row.tol = TIGHT
        assert c.cluster_modes is not None and d.cluster_modes is None
        assert _rel(c.deviance, d.deviance) < 1e-9 and _rel(c.loglik_cond, d.loglik_cond) < 1e-9
        np.testing.assert_allclose(c.u, d.u, rtol=0, atol=2e-6)


@pytest.mark.parametrize("family", ["gamma", "poisson"])
def test_warm_started_path_equals_the_row_path(family):
    """An optimizer-like sequence of points (warm starts from the last modes), then the row path
    taken after reduced runs (from their modes; they leave no predicted start)."""
    fast, row = _devfuns(family, **_variants(family)["both"])
    rng = np.random.default_rng(2)
    base = _phis(family)[1]
    for _ in range(8):
        phi = base * (1 + 0.15 * rng.normal(size=base.size))
        a, b = fast.state(phi), row.state(phi)
        assert a.cluster_modes is not None
        assert _rel(a.deviance, b.deviance) < 1e-9
        np.testing.assert_allclose(a.u, b.u, rtol=0, atol=1e-7)
        np.testing.assert_allclose(fast.gradient(a), row.gradient(b), rtol=1e-7, atol=1e-6)
    fast.cluster_pirls = None
    phi = base * 1.1
    np.testing.assert_allclose(fast.state(phi).u, row.state(phi).u, rtol=0, atol=1e-7)


def _brute_force(family, dv, phi):
    """Modes by a bounded scalar minimisation per cluster of the penalized deviance made of the
    family's own log-density, and the Laplace deviance there (independent of the kernels)."""
    theta, beta = dv.split(phi)
    th = float(theta[0])
    fam = dv.family_at(phi)
    y, pw, codes = dv.y, dv.pw, dv.rs.codes0
    eta_f = dv.X @ beta + dv.off
    J = dv.rs.Q
    u = np.zeros(J)
    for j in range(J):  # an independent check: a loop over clusters is the point here
        rows = codes == j

        def pen(uj, rows=rows):
            mu = np.exp(eta_f[rows] + th * uj)
            return -2.0 * np.sum(fam.loglik_obs(y[rows], mu, pw[rows])) + uj * uj

        u[j] = optimize.minimize_scalar(pen, bounds=(-12.0, 12.0), method="bounded",
                                        options={"xatol": 1e-10}).x
    eta = eta_f + th * u[codes]
    mu = np.exp(eta)
    W = fam.working(eta, y, pw)[3]  # the Laplace weights (observed information; Fisher for Poisson)
    m = 1.0 + th * th * np.bincount(codes, weights=W, minlength=J)
    ll = float(np.sum(fam.loglik_obs(y, mu, pw)))
    return u, -2.0 * ll + u @ u + np.sum(np.log(m)), ll


@pytest.mark.parametrize("family", ["gamma", "poisson"])
def test_against_a_brute_force_per_cluster_minimisation(family):
    fast, _row = _devfuns(family, **_variants(family)["both"])
    for phi in _phis(family)[1:3]:
        st = fast.state(phi)
        assert st.cluster_modes is not None
        u, dev, ll = _brute_force(family, fast, phi)
        np.testing.assert_allclose(st.u, u, rtol=0, atol=2e-6)
        assert _rel(st.deviance, dev) < 1e-9  # the deviance is flat at the modes
        assert _rel(st.loglik_cond, ll) < 1e-7


def test_the_gradient_matches_differences_of_the_deviance():
    fast, _row = _devfuns("gamma", **_variants("gamma")["both"])
    phi = _phis("gamma")[1]
    _f, g = fast.value_and_grad(phi)
    h = 1e-5 * np.maximum(np.abs(phi), 1e-2)
    num = np.array([(fast(phi + e) - fast(phi - e)) / (2 * s) for e, s in zip(np.diag(h), h)])
    np.testing.assert_allclose(g, num, rtol=5e-5, atol=1e-3)


def test_clipped_fixed_part_takes_the_row_path():
    """A row whose fixed part is below log(EPS) (its mean clipped): no cluster form."""
    df = _data("poisson")
    off = np.zeros(len(df))
    off[3] = -40.0
    fast, row = _devfuns("poisson", offset=off, data=df)
    phi = _phis("poisson")[1]
    a, b = fast.state(phi), row.state(phi)
    assert a.cluster_modes is None
    assert a.deviance == b.deviance
    np.testing.assert_array_equal(a.u, b.u)


def test_modes_leaving_the_unclipped_range_take_the_row_path():
    """eta_f in range, but a cluster's mode pushes a row below log(EPS): the conservative check
    at the mode sends the run to the row path (and a run without that row stays reduced)."""
    df = _data("poisson")
    g0 = int(df["g"].iloc[3])
    df.loc[df["g"] == g0, "y"] = 0.0  # that cluster's mode is negative
    off = np.zeros(len(df))
    off[3] = -35.9  # log(EPS) = -36.04: eta_f itself is in range
    fast, row = _devfuns("poisson", offset=off, data=df)
    phi = np.array([2.0, 0.4, 0.5])
    _theta, beta = fast.split(phi)
    K = fast.family.kernel(fast.data)
    eta_f = fast.X @ beta + fast.off
    assert float(np.min(eta_f)) > np.log(np.finfo(float).eps)
    form = K.cluster_form(eta_f, fast.cluster_pirls.clusters)
    assert form is not None  # the fixed part alone passes
    a, b = fast.state(phi), row.state(phi)
    assert a.cluster_modes is None  # the check at the mode did fail
    assert float(np.min(b.eta)) < np.log(np.finfo(float).eps)  # a row's mean is clipped there
    assert a.deviance == b.deviance
    np.testing.assert_array_equal(a.u, b.u)
    off[3] = -30.0
    fast2, row2 = _devfuns("poisson", offset=off, data=df)
    c, d = fast2.state(phi), row2.state(phi)
    assert c.cluster_modes is not None and _rel(c.deviance, d.deviance) < 1e-9


def test_exact_is_conservative():
    clusters = Clusters(np.array([0, 0, 1, 1]), 2, np.ones(4))
    K = get_family("poisson").kernel(_response(np.array([1.0, 2.0, 0.0, 3.0])))
    form = K.cluster_form(np.array([-30.0, 1.0, 0.0, 2.0]), clusters)
    assert form.exact(np.array([-6.0, 690.0]))  # -36 and 692: within [log EPS, 700]
    assert not form.exact(np.array([-6.1, 0.0]))  # -36.1 < log EPS (-36.04)
    assert not form.exact(np.array([0.0, 698.5]))  # 2 + 698.5 > 700
    assert form.exact(np.array([-6.0, 0.0]))


def _response(y):
    from glmm_nb.families.kernel import ResponseData

    fam = get_family("poisson")
    pw = np.ones_like(y)
    return ResponseData(y, pw, float(np.sum(fam.loglik_const(y, pw))))


@pytest.mark.parametrize("family, formula", [
    ("binomial", "y ~ x + (1 | g)"),  # no cluster form (not exp-linear)
    ("negative_binomial", "y ~ x + (1 | g)"),
    ("poisson", "y ~ x + (1 | g) + (1 | h)"),  # several terms
    ("poisson", "y ~ x + (1 + x | g)"),  # a random slope
])
def test_other_models_take_the_row_path(family, formula):
    df = _data("poisson")
    df["h"] = np.arange(len(df)) % 7
    if family == "binomial":
        df["y"] = (df["y"] > 1).astype(float)
    spec = build_spec(formula, df, family)
    dv = LaplaceDevfun(spec, get_family(family))
    phi = np.r_[spec.theta_start(), 0.3, 0.4, [np.log(2.0)] if dv.nx else []]
    st = dv.state(phi)
    assert st.cluster_modes is None
    if formula == "y ~ x + (1 | g)":
        assert dv.cluster_pirls is not None  # eligible structure, but the kernel has no form
    else:
        assert dv.cluster_pirls is None


@pytest.mark.parametrize("family", ["gamma", "poisson"])
def test_fit_equals_the_row_path_fit(family, monkeypatch):
    import glmm_nb

    df = _data(family, n=1500, J=40)
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(df))
    m = glmm_nb.glmm("y ~ x + (1 | g)", df, family=family, weights=w)
    monkeypatch.setattr(ClusterPirls, "modes", lambda *args, **kwargs: None)
    r = glmm_nb.glmm("y ~ x + (1 | g)", df, family=family, weights=w)
    assert m.loglik == pytest.approx(r.loglik, rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), r.fixef.to_numpy(), rtol=1e-5, atol=1e-6)
