"""Internal checks of the small-sample machinery against brute-force dense algebra.

* Kenward-Roger: pbkrtest's formulas written out with the n × n marginal covariance (and the
  residual block W^{-1}, which pbkrtest itself takes as I — so weighted fits are checked here
  only), for one term with a random slope (batched path) and nested terms (dense path).
* Satterthwaite: the Hessian (analytic in sigma) against central differences of the deviance
  at an explicit sigma, and the finite-difference Jacobian of vcov(beta) against the analytic
  chain rule through the variance components, dPhi/dgamma_r = -Phi P_r Phi.
* Multiplicity adjustments against R's p.adjust / ptukey / emmeans:::.pdunnx values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.design.reterms import theta_to_T, tril_index
from glmm_nb.errors import ModelError
from glmm_nb.inference.contrasts import adjust_pvalues
from glmm_nb.inference.ddf import satterthwaite_info
from glmm_nb.inference.kenward_roger import kenward_roger_info
from glmm_nb.inference.type3 import type3_contrasts
from glmm_nb.likelihood import LmmDevfun
from tests.conftest import FIXTURES


def _fit(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmm_nb.glmm(formula, df, family="gaussian", **kw)


@pytest.fixture(scope="module")
def weighted_slope():
    df = pd.read_csv(FIXTURES / "data" / "sleepstudy_unbal.csv", dtype={"Subject": str})
    df = df[df.Subject.isin(sorted(df.Subject.unique())[:9])].copy()
    df["w"] = np.random.default_rng(3).uniform(0.5, 2.0, len(df))
    return _fit("Reaction ~ Days + (Days | Subject)", df, weights="w")


@pytest.fixture(scope="module")
def nested():
    df = pd.read_csv(FIXTURES / "data" / "machines_unbal.csv", dtype={"Worker": str})
    return _fit("score ~ Machine + (1 | Worker) + (1 | Worker:Machine)", df)


def _dense_z(t, n):
    Z = np.zeros((n, t.nlevels * t.q))
    for a in range(t.q):
        Z[np.arange(n), np.asarray(t.codes) * t.q + a] = np.asarray(t.Zvals)[:, a]
    return Z


def brute_kr(m):
    """pbkrtest's vcovAdj with explicit n × n matrices (W^{-1} for the residual)."""
    spec = m.spec
    X, n = np.asarray(spec.X), m.nobs
    s2 = m.sigma**2
    G, gam = [], []
    for t, sl in zip(spec.terms, spec.theta_slices()):
        T = theta_to_T(m.theta[sl], t.q)
        S = s2 * T @ T.T
        Z = _dense_z(t, n)
        for a, b in zip(*tril_index(t.q)):
            E = np.zeros((t.q, t.q))
            E[a, b] = E[b, a] = 1.0
            G.append(Z @ np.kron(np.eye(t.nlevels), E) @ Z.T)
            gam.append(S[a, b])
    G.append(np.diag(1.0 / np.asarray(spec.weights)))
    gam.append(s2)
    Sigma = sum(g * Gr for g, Gr in zip(gam, G))
    SI = np.linalg.inv(Sigma)
    Phi = np.asarray(m.vcov)
    R = len(G)
    P = np.array([-X.T @ SI @ Gr @ SI @ X for Gr in G])
    Q = np.array([[X.T @ SI @ G[r] @ SI @ G[s] @ SI @ X for s in range(R)] for r in range(R)])
    K = np.array([[np.trace(SI @ G[r] @ SI @ G[s]) for s in range(R)] for r in range(R)])
    IE2 = np.array([[K[r, s] - 2 * np.trace(Phi @ Q[r, s]) + np.trace(Phi @ P[r] @ Phi @ P[s])
                     for s in range(R)] for r in range(R)])
    W = 2 * np.linalg.inv(IE2)
    U = sum(W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s]) for r in range(R) for s in range(R))
    return Phi + 2 * Phi @ U @ Phi, P, W, np.linalg.inv(X.T @ SI @ X)


@pytest.mark.parametrize("which", ["weighted_slope", "nested"])
def test_kenward_roger_against_dense_algebra(which, request):
    m = request.getfixturevalue(which)
    PhiA, P, W, Phi_direct = brute_kr(m)
    np.testing.assert_allclose(np.asarray(m.vcov), Phi_direct, rtol=1e-6)
    kr = kenward_roger_info(m)
    np.testing.assert_allclose(kr.P, P, rtol=1e-7, atol=1e-12 * np.abs(P).max())
    np.testing.assert_allclose(kr.W, W, rtol=1e-7, atol=1e-12 * np.abs(W).max())
    np.testing.assert_allclose(kr.vcov_adj, PhiA, rtol=1e-8)
    assert np.all(np.diag(kr.vcov_adj) >= np.diag(kr.vcov))


def test_satterthwaite_hessian_and_jacobian(weighted_slope):
    m = weighted_slope
    info = satterthwaite_info(m)
    dev = LmmDevfun(m.spec, reml=True)
    x0 = info.varpar
    k = x0.size

    def f(x):
        return dev.deviance_sigma(x[:-1], x[-1])

    h = 1e-3 * np.maximum(np.abs(x0), 0.1)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            H[i, j] = (f(x0 + ei + ej) - f(x0 + ei - ej) - f(x0 - ei + ej) + f(x0 - ei - ej)) / (4 * h[i] * h[j])
    np.testing.assert_allclose(info.hessian, H, rtol=1e-4, atol=1e-6 * np.abs(H).max())
    # Jacobian of vcov(beta) by the chain rule through gamma = (sigma² vech(TT'), sigma²)
    kr = kenward_roger_info(m)
    dPhi = -np.einsum("ab,rbc,cd->rad", kr.vcov, kr.P, kr.vcov)  # dPhi/dgamma_r
    t = m.spec.terms[0]
    T = theta_to_T(m.theta, t.q)
    rr, cc = tril_index(t.q)
    s = m.sigma
    J = np.empty_like(info.jacobian)
    for j, (a, b) in enumerate(zip(rr, cc)):
        E = np.zeros((t.q, t.q))
        E[a, b] = 1.0
        dS = s**2 * (E @ T.T + T @ E.T)
        J[j] = np.einsum("r,rab->ab", np.r_[dS[rr, cc], 0.0], dPhi)
    J[-1] = np.einsum("r,rab->ab", np.r_[2 * s * (T @ T.T)[rr, cc], 2 * s], dPhi)
    np.testing.assert_allclose(info.jacobian, J, rtol=1e-5, atol=1e-9 * np.abs(J).max())


def test_type3_needs_treatment_coding():
    df = pd.read_csv(FIXTURES / "data" / "oats.csv", dtype={"nitrof": str})
    m = _fit("yield ~ C(Variety, contr.sum) * nitro + (1 | Block/Variety)", df)
    with pytest.raises(ModelError, match="treatment"):
        type3_contrasts(m)


def test_adjustments_match_r():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005])
    t = np.zeros(5)
    df = np.full(5, np.inf)
    np.testing.assert_allclose(adjust_pvalues(p, t, df, "holm", 3), [0.040, 0.090, 0.090, 0.200, 0.025])
    np.testing.assert_allclose(adjust_pvalues(p, t, df, "fdr", 3), [0.025, 0.050, 0.050, 0.200, 0.025])
    np.testing.assert_allclose(adjust_pvalues(p, t, df, "bonferroni", 3), np.minimum(1, 5 * p))
    np.testing.assert_allclose(adjust_pvalues(p, t, df, "sidak", 3), 1 - (1 - p) ** 5)
    # ptukey(3, 3, Inf, lower = FALSE); ptukey(3.5, 4, 12.5, lower = FALSE)
    got = adjust_pvalues(np.ones(2), np.array([3, 3.5]) / np.sqrt(2), np.array([np.inf, 12.5]), "tukey", 3)
    np.testing.assert_allclose(got[0], 0.0855425716549576, rtol=1e-6)
    got = adjust_pvalues(np.ones(2), np.array([3.5, 3.5]) / np.sqrt(2), np.array([12.5, 12.5]), "tukey", 4)
    np.testing.assert_allclose(got[0], 0.113111035632403, rtol=1e-6)
    # 1 - emmeans:::.pdunnx(2.5, 3, 20)
    got = adjust_pvalues(np.ones(3), np.full(3, 2.5), np.full(3, 20.0), "dunnettx", 4)
    np.testing.assert_allclose(got[0], 1 - 0.943793022891962, rtol=1e-6)
    assert adjust_pvalues(np.array([0.03]), np.ones(1), np.ones(1), "tukey", 2)[0] == 0.03
