"""Block and Schur factorizations of M = I + Z~'WZ~ against dense linear algebra, every branch."""

import numpy as np
import pytest

import glmm_nb.likelihood.reops as R
import glmm_nb.likelihood.schur as SC
from glmm_nb import build_spec
from tests.conftest import load_case


def _dense(rs, vals, W):
    Z = np.zeros((rs.n, rs.Q))
    for k in range(rs.s):
        np.add.at(Z, (np.arange(rs.n), rs.cols[:, k]), vals[:, k])
    return np.eye(rs.Q) + Z.T @ (W[:, None] * Z), Z


@pytest.mark.parametrize(
    "case_id, formula, family",
    [
        ("grouseticks_poisson", None, "poisson"),  # three scalar terms, sparse coupling
        ("verbagg_crossed", None, "binomial"),  # crossed, dense coupling
        ("contraception_slope", "use ~ age + (urban | district) + (1 | livch)", "binomial"),  # vector first term
        ("contraception_slope", None, "binomial"),  # one term: block factor
    ],
)
@pytest.mark.parametrize("branches", ["default", "scipy", "forced", "sparse"])
def test_factor_matches_dense(case_id, formula, family, branches, monkeypatch):
    if branches == "scipy":  # scipy's sparse products instead of the pair map
        monkeypatch.setattr(SC, "PAIRMAP_MAX_PAIRS", -1)
    if branches == "forced":  # the compiled pattern kernels instead of scipy's sparse products
        monkeypatch.setattr(SC, "NUMBA_MIN_WORK", 0)
    if branches == "sparse":  # sparse LDL' and selected inverse of the Schur complement
        monkeypatch.setattr(SC, "SPARSE_MIN_Q2", 0)
        monkeypatch.setattr(SC, "SPARSE_MAX_FILL", 1.0)
        monkeypatch.setattr(SC, "SPARSE_MAX_PAIRS", 1e9)
    case, df = load_case(case_id)
    spec = build_spec(formula or case["formula"], df, family)
    rs = R.ReStructure(spec)
    rng = np.random.default_rng(1)
    theta = spec.theta_start() * 0.7 + 0.1 * rng.random(spec.ntheta)
    vals = rs.vals(theta)
    W = rng.uniform(0.2, 2.0, rs.n)
    fac = rs.factor(vals, W)
    if branches == "sparse" and len(spec.terms) > 1:
        assert fac.ldl is not None
    M, Z = _dense(rs, vals, W)
    assert fac.logdet == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-12, abs=1e-10)
    b = rng.normal(size=rs.Q)
    np.testing.assert_allclose(fac.solve(b), np.linalg.solve(M, b), rtol=1e-8, atol=1e-10)
    Minv = np.linalg.inv(M)
    P = np.array([[(Z[i] @ Minv)[rs.cols[i, t]] for t in range(rs.s)] for i in range(0, rs.n, max(1, rs.n // 200))])
    np.testing.assert_allclose(fac.P(vals)[:: max(1, rs.n // 200)][: len(P)], P, rtol=1e-8, atol=1e-10)
    for k in range(len(spec.terms)):
        blocks = fac.inv_blocks_term(k)
        q, J, off = rs.q[k], rs.nlev[k], rs.offsets[k]
        j = J // 2
        idx = off + j * q + np.arange(q)
        np.testing.assert_allclose(blocks[j], Minv[np.ix_(idx, idx)], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("formula", ["incidence ~ period + (1 | herd)", "incidence ~ period + (1 + size | herd)"])
def test_random_intercept_alone_is_a_broadcast_and_matches_dense(formula):
    """(1 | herd): Z~ is theta in every row, held as a zero-memory broadcast, and every product
    on it (Z~u, Z~'v, Z~'V, M's factor, P, the per-entry gradient sums) equals the dense
    computation; a vector term keeps full arrays."""
    case, df = load_case("cbpp_laplace")
    spec = build_spec(formula, df, "poisson")
    rs = R.ReStructure(spec)
    rng = np.random.default_rng(3)
    theta = spec.theta_start() * 0.8
    vals = rs.vals(theta)
    assert (R.row_constant(vals) is not None) == rs.intercept_only == (spec.ntheta == 1)
    if rs.intercept_only:
        assert vals.strides[0] == 0 and not vals.flags.writeable
        assert R.row_constant(vals) == pytest.approx(0.8)
        assert R.row_constant(np.ascontiguousarray(vals)) is None  # only the broadcast is read as constant
    W = rng.uniform(0.2, 2.0, rs.n)
    M, Z = _dense(rs, np.asarray(vals), W)
    u, v, V = rng.normal(size=rs.Q), rng.normal(size=rs.n), rng.normal(size=(rs.n, 3))
    np.testing.assert_allclose(rs.mult(vals, u), Z @ u, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(rs.tmult(vals, v), Z.T @ v, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(rs.tmult(vals, V), Z.T @ V, rtol=1e-12, atol=1e-13)
    fac = rs.factor(vals, W)
    assert fac.logdet == pytest.approx(np.linalg.slogdet(M)[1], rel=1e-13)
    Minv = np.linalg.inv(M)
    P = np.array([[(Z[i] @ Minv)[rs.cols[i, t]] for t in range(rs.s)] for i in range(rs.n)])
    np.testing.assert_allclose(fac.P(vals), P, rtol=1e-12, atol=1e-14)
    H = rng.normal(size=(rs.n, rs.s))
    expect = [np.sum(np.asarray(t.Zvals)[:, a] * H[:, b]) for t in spec.terms for a, b in zip(*np.tril_indices(t.q))]
    np.testing.assert_allclose(rs.row_grad(H), expect, rtol=1e-12)
    vals0 = rs.vals(theta * 0.5)
    np.testing.assert_allclose(rs.vals_change(vals, vals0), np.asarray(vals) - np.asarray(vals0), rtol=1e-15)
    with pytest.raises(np.linalg.LinAlgError):  # negative weights making M indefinite, as Cholesky would
        rs.factor(vals, np.full(rs.n, -50.0))
