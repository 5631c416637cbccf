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
