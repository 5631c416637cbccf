"""The pair map's Schur coupling term and trace against dense linear algebra, and the LMM
deviance's cache of its last and lowest evaluations against fresh evaluations."""

import numpy as np
import pandas as pd
import pytest

import glmm_nb.likelihood.schur as SC
from glmm_nb import build_spec
from glmm_nb.likelihood import LmmDevfun
from glmm_nb.likelihood.pairmap import PairMap, pair_count
from glmm_nb.numdiff import fd_hessian


def _pattern(rng, J=40, Q2=25):
    """Random pairs (level, column), sorted by level then column, some levels empty."""
    keys = []
    for j in range(J):
        k = rng.integers(0, 9) if j % 7 else 0
        keys.extend(j * Q2 + np.sort(rng.choice(Q2, size=k, replace=False)))
    keys = np.array(keys, dtype=np.int64)
    lev, col = keys // Q2, keys % Q2
    jptr = np.zeros(J + 1, dtype=np.int64)
    np.cumsum(np.bincount(lev, minlength=J), out=jptr[1:])
    return jptr, col, lev


def _dense(v, lev, col, J, Q2):
    """(q1, nnz) values at the pattern → dense (J q1 × Q2)."""
    q1 = v.shape[0]
    out = np.zeros((J * q1, Q2))
    for a in range(q1):
        out[lev * q1 + a, col] = v[a]
    return out


@pytest.mark.parametrize("q1", [1, 2])
def test_schur_term_and_trace_match_dense(q1):
    rng = np.random.default_rng(3 + q1)
    J, Q2 = 40, 25
    jptr, col, lev = _pattern(rng, J, Q2)
    pm = PairMap(jptr, col, Q2)
    n = np.diff(jptr)
    assert pm.size == pair_count(jptr) == int(np.sum(n * (n + 1) // 2))
    Bv, Gv = rng.normal(size=(q1, col.size)), rng.normal(size=(q1, col.size))
    S0 = rng.normal(size=(Q2, Q2))
    S = S0.copy()
    pm.subtract_lower(S, Bv, Gv)
    B, G = _dense(Bv, lev, col, J, Q2), _dense(Gv, lev, col, J, Q2)
    low = np.tril_indices(Q2)
    np.testing.assert_allclose(S[low], (S0 - B.T @ G)[low], rtol=0, atol=1e-12)
    up = np.triu_indices(Q2, 1)
    np.testing.assert_array_equal(S[up], S0[up])  # the upper triangle is left alone
    X = rng.normal(size=(Q2, Q2))
    Sinv = X @ X.T
    Slow = np.tril(Sinv) + np.triu(rng.normal(size=(Q2, Q2)), 1)  # junk above the diagonal
    for a in range(q1):
        for b in range(a + 1):
            Ga, Gb = G[a::q1], G[b::q1]  # rows (j, a) of G: column a of the first term
            ref = np.trace(Sinv @ Ga.T @ Gb)
            assert pm.trace(Slow, Gv[a], Gv[b]) == pytest.approx(ref, rel=1e-12, abs=1e-10)
            assert pm.trace(np.asfortranarray(Slow), Gv[a], Gv[b]) == pytest.approx(ref, rel=1e-12, abs=1e-10)


def _crossed(seed=2, n=700, ja=90, jb=35):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, ja, n), rng.integers(0, jb, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + 0.8 * rng.normal(size=ja)[a] + 0.6 * rng.normal(size=jb)[b] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b)})


@pytest.mark.parametrize("formula", ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (x | a) + (1 | b)"])
def test_pairmap_path_equals_scipy_products(formula, monkeypatch):
    spec = build_spec(formula, _crossed(), "gaussian")
    theta = spec.theta_start() * 0.6 + 0.1
    dev = LmmDevfun(spec)
    assert dev.state(theta).fac.cs.pairmap is not None
    f, g = dev.value_and_grad(theta)
    monkeypatch.setattr(SC, "PAIRMAP_MAX_PAIRS", -1)
    ref = LmmDevfun(spec)
    assert ref.state(theta).fac.cs.pairmap is None
    f0, g0 = ref.value_and_grad(theta)
    assert f == pytest.approx(f0, rel=1e-13, abs=1e-10)
    np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-10)


def test_cached_evaluations_equal_fresh_ones():
    spec = build_spec("y ~ x + (1 | a) + (1 | b)", _crossed(), "gaussian")
    theta = np.array([0.7, 0.5])
    dev = LmmDevfun(spec)
    f, g = dev.value_and_grad(theta)
    H = fd_hessian(lambda z: dev.value_and_grad(z)[1], theta, dev.value_and_grad(theta)[1])
    # fresh deviance functions for every point: nothing cached
    Href = fd_hessian(lambda z: LmmDevfun(spec).value_and_grad(z)[1], theta, LmmDevfun(spec).value_and_grad(theta)[1])
    np.testing.assert_array_equal(H, Href)
    st = dev.state(theta)  # after the probes: the lowest evaluation's state, kept
    fresh = LmmDevfun(spec).state(theta)
    assert st.deviance == fresh.deviance == f
    np.testing.assert_array_equal(st.beta, fresh.beta)
    np.testing.assert_array_equal(st.u, fresh.u)
    g2 = dev.value_and_grad(theta)[1]
    np.testing.assert_array_equal(g2, g)
    g2[0] = 99.0  # callers get copies
    np.testing.assert_array_equal(dev.value_and_grad(theta)[1], g)


def test_laplace_cached_evaluations_equal_fresh_ones():
    from glmm_nb import get_family
    from glmm_nb.likelihood import LaplaceDevfun

    df = _crossed()
    df["yb"] = (df.y > df.y.median()).astype(float)
    spec = build_spec("yb ~ x + (1 | a) + (1 | b)", df, "binomial")
    fam = get_family("binomial")
    phi = np.array([0.7, 0.5, 0.1, 0.3])
    dev = LaplaceDevfun(spec, fam)
    f, g = dev.value_and_grad(phi)
    H = fd_hessian(lambda z: dev.value_and_grad(z)[1], phi, dev.value_and_grad(phi)[1])
    st = dev.state(phi)
    # the same calls without the cache (PIRLS warm-started in the same order)
    ref = LaplaceDevfun(spec, fam)

    def uncached(z):
        ref._states = ref._grads = (None, None)
        return ref.value_and_grad(z)

    f0, g0 = uncached(phi)
    Href = fd_hessian(lambda z: uncached(z)[1], phi, g0)
    assert f == f0
    np.testing.assert_array_equal(H, Href)
    # PIRLS stops at a Newton decrement below 1e-12, which leaves the Laplace deviance (not
    # stationary in u through log|M|) about 1e-7 from the exact mode's: a state recomputed
    # from other modes agrees to that precision
    assert st.deviance == pytest.approx(LaplaceDevfun(spec, fam).state(phi).deviance, abs=1e-6)
    np.testing.assert_allclose(dev.value_and_grad(phi)[1], g, rtol=1e-5)
    dev.reset_modes()  # forgets the kept evaluations too
    assert dev._states == dev._grads == (None, None)


def test_laplace_predicted_modes_are_closer_and_change_nothing():
    """PIRLS starts from the last modes moved to first order: closer to the new modes than the
    last modes themselves, and the same deviance as from a cold start."""
    from glmm_nb import get_family
    from glmm_nb.likelihood import LaplaceDevfun

    df = _crossed()
    df["yb"] = (df.y > df.y.median()).astype(float)
    spec = build_spec("yb ~ x + (1 | a) + (x | b)", df, "binomial")
    fam = get_family("binomial")
    phi0 = np.array([0.7, 0.5, 0.1, 0.3, 0.1, 0.3])
    phi1 = phi0 + np.array([0.02, -0.03, 0.01, 0.02, -0.05, 0.04])
    dev = LaplaceDevfun(spec, fam)
    st0 = dev.state(phi0)
    theta1, beta1 = dev.split(phi1)
    vals1 = dev.rs.vals(theta1)
    u_pred = dev._predict(vals1, dev.X @ beta1 + dev.off + dev.rs.mult(vals1, st0.u))
    st1 = dev.state(phi1)
    cold = LaplaceDevfun(spec, fam).state(phi1)
    assert np.linalg.norm(u_pred - cold.u) < 0.1 * np.linalg.norm(st0.u - cold.u)
    assert st1.deviance == pytest.approx(cold.deviance, abs=1e-6)
    assert st1.iterations <= cold.iterations


def test_scalar_plan_equals_the_pair_map():
    """Sums precomputed up to theta (scalar terms, fixed weights) against the pair map's."""
    from glmm_nb.likelihood.pairmap import ScalarPlan

    rng = np.random.default_rng(8)
    J, Q2 = 40, 25
    jptr, col, lev = _pattern(rng, J, Q2)
    pm = PairMap(jptr, col, Q2)
    a_lev = rng.integers(1, 5, J).astype(float)  # levels share their a_j
    Np = rng.uniform(0.5, 2.0, col.size)
    col_term = (np.arange(Q2) >= 20).astype(np.int64)  # two further terms: 20 and 5 columns
    plan = ScalarPlan(pm, lev, a_lev, Np, col_term, Q2)
    th1, th_rest = 0.7, np.array([0.4, 1.3])
    Bv = (th1 * th_rest[col_term[col]] * Np)[None, :]
    Gv = Bv / (1.0 + th1**2 * a_lev[lev])
    S = np.zeros((Q2, Q2))
    K = pm.subtract_lower(S, Bv, Gv, gram=True)
    BtG, K2 = plan.sums(th1, th_rest, True)
    np.testing.assert_allclose(-BtG, S.reshape(-1)[pm.tkey], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(K2, K, rtol=1e-12, atol=1e-13)
    assert plan.sums(th1, th_rest, False)[1] is None


@pytest.mark.parametrize("weights", [False, True])
def test_lmm_with_and_without_the_scalar_plan(weights, monkeypatch):
    df = _crossed()
    df["c"] = pd.Categorical(np.arange(len(df)) % 6)
    df["w"] = 1.0 + (df.a.cat.codes.to_numpy() % 2) if weights else 1.0  # levels still share a_j
    spec = build_spec("y ~ x + (1 | a) + (1 | b) + (1 | c)", df, "gaussian", weights="w")
    theta = np.array([0.6, 0.4, 0.3])
    dev = LmmDevfun(spec)
    f, g = dev.value_and_grad(theta)
    assert dev.rs.cross.scalar_plan(dev.rs, dev.w) is not None
    monkeypatch.setattr(SC, "SCALAR_PLAN", False)
    ref = LmmDevfun(spec)
    f0, g0 = ref.value_and_grad(theta)
    assert ref.rs.cross.scalar_plan(ref.rs, ref.w) is None
    assert f == pytest.approx(f0, rel=1e-13, abs=1e-10)
    np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-10)
