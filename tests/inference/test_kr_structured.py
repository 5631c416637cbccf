"""Kenward-Roger for LMMs with structured covariance terms (issue 26): the derivatives of V with
respect to a structure's parameters are its vech(Sigma_k) derivatives projected onto pbkrtest's
unstructured G_ab (kenward_roger.structure_jacobian). Checked against pbkrtest 0.5.2's KRmodcomp of
lme4's (1 + Days || Subject) — the same model as diag(1 + Days | Subject) — stored in
fixtures/structured/kr_diag_sleepstudy.json (make_kr_refs.R), and against a brute-force dense
Kenward & Roger (1997) computation written here for ar1 (REML): V = Z Sigma(sd, c) Z' + s2 I over all
300 rows in glmmTMB's parameters (absolute SD, c with rho = c/sqrt(1+c^2), s2), dV by central
differences, the KR formulas (without the second-derivative term, as pbkrtest)."""

import json

import numpy as np
import pytest

import glmm_nb
from glmm_nb.datasets import load as load_dataset
from glmm_nb.inference.kenward_roger import kenward_roger_info
from tests.conftest import FIXTURES
from tests.test_structured import load

KR = json.loads((FIXTURES / "structured" / "kr_diag_sleepstudy.json").read_text())


def test_diag_term_against_pbkrtest_of_the_double_bar_model():
    """df 1e-6 relative (reached 3e-7), F 1e-5 (4e-6: the two optimizers' end points), the adjusted
    covariance 2e-5; the unadjusted df (ignoring the structure, i.e. an unstructured 2 x 2 term)
    differs by far more."""
    m = glmm_nb.glmm("Reaction ~ Days + diag(1 + Days | Subject)", load_dataset("sleepstudy"), family="gaussian",
                     reml=True)
    assert m.loglik == pytest.approx(KR["loglik"], abs=1e-6)
    info = kenward_roger_info(m)
    assert info.names == ("Subject:sd.(Intercept)", "Subject:sd.Days", "sigma2")
    np.testing.assert_allclose(info.vcov_adj, np.array(KR["vcov_adj"]), rtol=2e-5)
    for key in ("days", "both"):
        ref = KR["tests"][key]
        L = np.array(ref["L"], dtype=float)
        got = info.ftest(L, m.fixef.to_numpy(), np.zeros(L.shape[0]))
        assert got["den_df"] == pytest.approx(ref["ddf"], rel=1e-6)
        assert got["F"] == pytest.approx(ref["F"], rel=1e-5)
        assert got["F_scaling"] == pytest.approx(ref["scaling"], rel=1e-6)
    us = glmm_nb.glmm("Reaction ~ Days + (1 + Days | Subject)", load_dataset("sleepstudy"), family="gaussian", reml=True)
    assert abs(kenward_roger_info(us).df(np.array([[0.0, 1.0]])) / KR["tests"]["days"]["ddf"] - 1) > 1e-2


def _dense_kr(X, y, Vfun, phi, beta, Ls, h=1e-5):
    """Kenward & Roger (1997) / pbkrtest from a dense V(phi): (df, F) per hypothesis in ``Ls``."""
    V = Vfun(phi)
    Vi = np.linalg.inv(V)
    Phi = np.linalg.inv(X.T @ Vi @ X)
    dV = []
    for j in range(len(phi)):
        e = np.zeros(len(phi))
        e[j] = h * max(1.0, abs(phi[j]))
        dV.append((Vfun(phi + e) - Vfun(phi - e)) / (2 * e[j]))
    ViX = Vi @ X
    P = [-(ViX.T @ D @ ViX) for D in dV]
    R = len(phi)
    Q = [[ViX.T @ dV[i] @ Vi @ dV[j] @ ViX for j in range(R)] for i in range(R)]
    IE = np.array([[np.trace(Vi @ dV[i] @ Vi @ dV[j]) - 2 * np.trace(Phi @ Q[i][j]) + np.trace(Phi @ P[i] @ Phi @ P[j])
                    for j in range(R)] for i in range(R)])
    W = 2 * np.linalg.inv(IE)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j]) for i in range(R) for j in range(R))
    PhiA = Phi + 2 * Phi @ U @ Phi
    out = []
    for L in Ls:
        q = L.shape[0]
        Th = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
        M = [Th @ Phi @ P[i] @ Phi for i in range(R)]
        A1 = sum(W[i, j] * np.trace(M[i]) * np.trace(M[j]) for i in range(R) for j in range(R))
        A2 = sum(W[i, j] * np.trace(M[i] @ M[j]) for i in range(R) for j in range(R))
        B = (A1 + 6 * A2) / (2 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        Estar = 1 / (1 - A2 / q)
        Vstar = (2 / q) * (1 + c1 * B) / ((1 - c2 * B) ** 2 * (1 - c3 * B))
        rho = Vstar / (2 * Estar**2)
        mdf = 4 + (q + 2) / (q * rho - 1)
        lam = mdf / (Estar * (mdf - 2))
        Lb = L @ beta
        out.append((mdf, lam * Lb @ np.linalg.solve(L @ PhiA @ L.T, Lb) / q))
    return out


def test_ar1_term_against_a_dense_brute_force():
    """ar1_gauss refitted by REML: df and F to 1e-8 relative against _dense_kr (reached 4e-12: the
    central differences of V are exact for its quadratic sd and s2, and accurate in c), for x alone
    and for both coefficients; kenward_roger_info's parameters are the fit's theta (relative SD, c)
    and sigma2, the brute force's glmmTMB's (absolute SD, c, s2): first-order KR depends only on the
    tangent space the parameters span."""
    case, d = load("ar1_gauss")
    m = glmm_nb.glmm(case["formula"], d, family="gaussian", reml=True)
    t = m.spec.terms[0]
    X, y = np.asarray(m.spec.X), np.asarray(m.spec.y, dtype=float)
    n = len(y)
    Z = np.zeros((n, t.nlevels * t.q))
    Z[np.arange(n)[:, None], t.codes[:, None] * t.q + np.arange(t.q)[None, :]] = t.Zvals
    lag = np.abs(np.subtract.outer(np.arange(t.q), np.arange(t.q)))
    par = m.structure_parameters()["id"]

    def Vfun(phi):
        sd, c, s2 = phi
        Sk = sd**2 * (c / np.sqrt(1 + c * c)) ** lag
        return Z @ np.kron(np.eye(t.nlevels), Sk) @ Z.T + s2 * np.eye(n)

    phi = np.array([par["sd"], par["rho"] / np.sqrt(1 - par["rho"] ** 2), m.sigma**2])
    Ls = [np.array([[0.0, 1.0]]), np.eye(2)]
    ref = _dense_kr(X, y, Vfun, phi, m.fixef.to_numpy(), Ls)
    info = kenward_roger_info(m)
    assert info.names == ("id:sd", "id:ar1.rho", "sigma2")
    for L, (df, F) in zip(Ls, ref):
        got = info.ftest(L, m.fixef.to_numpy(), np.zeros(L.shape[0]))
        assert got["den_df"] == pytest.approx(df, rel=1e-8)
        assert got["F"] == pytest.approx(F, rel=1e-8)
    assert m.coef_table(ddf="kenward-roger").loc["x", "df"] == pytest.approx(ref[0][0], rel=1e-8)
