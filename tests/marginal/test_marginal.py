"""Marginal coefficients against independent integrals, recovery of a known truth, AMEs."""

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate, special

import glmm_nb
from tests.conftest import load_case


@pytest.fixture(scope="module")
def cbpp():
    case, df = load_case("cbpp_laplace")
    return df, glmm_nb.glmm(case["formula"], df)


def test_marginal_coefs_match_quad_integrals(cbpp):
    df, m = cbpp
    X = np.asarray(m.spec.X)
    sd = float(np.sqrt(m.varcorr().vcov.iloc[0]))
    eta = X @ m.fixef.to_numpy()
    mu = np.array([
        integrate.quad(lambda b, e=e: special.expit(e + sd * b) * np.exp(-b * b / 2) / np.sqrt(2 * np.pi),
                       -40, 40, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
        for e in eta
    ])
    want = np.linalg.lstsq(X, special.logit(mu), rcond=None)[0]
    got = m.marginal_coefs()
    np.testing.assert_allclose(got.estimate.to_numpy(), want, atol=1e-4)
    assert list(got.columns) == ["estimate", "std_error", "conf_low", "conf_high"]
    # attenuation towards zero, and the closed form within its known error (a few per cent:
    # 3.3 % here for period 4, whose linear predictor sits far in the tail)
    assert np.all(np.abs(got.estimate) < np.abs(m.fixef))
    # Zeger, Liang & Albert (1988): c = 16 sqrt(3) / (15 pi), the logistic-normal approximation's constant
    cf = m.fixef / np.sqrt(1 + (16 * np.sqrt(3) / (15 * np.pi)) ** 2 * sd**2)
    assert np.all(np.abs(cf - got.estimate) / np.abs(got.estimate) < 0.05)
    tab = m.compare()
    np.testing.assert_allclose(tab.closed_form, cf)
    np.testing.assert_allclose(tab.attenuation, got.estimate / m.fixef)


def test_vector_random_effects_against_2d_quadrature():
    case, df = load_case("contraception_slope")
    m = glmm_nb.glmm(case["formula"], df)
    S = m.covariance_matrices()["district"].to_numpy()
    L = np.linalg.cholesky(S)
    x, w = hermegauss(30)
    w = w / np.sqrt(2 * np.pi)
    U = np.array([(a, b) for a in x for b in x])
    W = np.array([wa * wb for wa in w for wb in w])
    B = U @ L.T  # b = L u
    z = np.column_stack([np.ones(len(df)), (df["urban"] == "Y").to_numpy(float)])
    X = np.asarray(m.spec.X)
    eta = X @ m.fixef.to_numpy()
    mu = special.expit(eta[:, None] + z @ B.T) @ W
    want = np.linalg.lstsq(X, special.logit(mu), rcond=None)[0]
    np.testing.assert_allclose(m.marginal_coefs().estimate.to_numpy(), want, atol=1e-6)


def test_simulation_standard_errors_agree_with_delta(cbpp):
    _df, m = cbpp
    d = m.marginal_coefs(method="delta")
    s = m.marginal_coefs(method="simulation", nsim=3000, seed=4)
    np.testing.assert_allclose(s.std_error, d.std_error, rtol=0.1)
    pd.testing.assert_series_equal(s.estimate, d.estimate)


def test_recovers_known_marginal_truth():
    """Truth: beta_M from the data-generating process (integrated at the true parameters over
    the same design). Measured: estimates within 3 delta-method SEs of it."""
    rng = np.random.default_rng(99)
    J, n, sigma, beta = 400, 15, 1.5, np.array([-0.5, 0.8])
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    X = np.column_stack([np.ones(J * n), x])
    eta = X @ beta
    y = (rng.random(J * n) < special.expit(eta + sigma * rng.normal(size=J)[g])).astype(int)
    gx, gw = hermegauss(60)
    mu_true = special.expit(eta[:, None] + sigma * gx[None, :]) @ (gw / np.sqrt(2 * np.pi))
    truth = np.linalg.lstsq(X, special.logit(mu_true), rcond=None)[0]
    m = glmm_nb.glmm("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}))
    mc = m.marginal_coefs()
    z = (mc.estimate.to_numpy() - truth) / mc.std_error.to_numpy()
    assert np.all(np.abs(z) < 3), (mc.estimate.to_numpy(), truth)
    assert np.all(mc.conf_low.to_numpy() < truth) or np.any(np.abs(z) < 3)


def test_average_marginal_effects_three_ways():
    case, df = load_case("contraception_slope")
    m = glmm_nb.glmm("use ~ age + urban + (1 | district)", df)
    ame = m.marginal_effects("urban", nsim=200, seed=2)
    assert list(ame.index) == ["typical", "conditional", "marginal"]
    assert ame.attrs["difference"] == "risk difference" and ame.attrs["contrast"] == "urban: Y vs N"
    b = m.fixef
    eta0 = b["(Intercept)"] + b["age"] * df["age"].to_numpy()
    typ = special.expit(eta0 + b["urban[T.Y]"]).mean() - special.expit(eta0).mean()
    assert ame.loc["typical", "difference"] == pytest.approx(typ, abs=1e-10)
    assert (ame.difference_low < ame.difference).all() and (ame.difference < ame.difference_high).all()
    assert (ame.ratio > 1).all()
    with pytest.raises(glmm_nb.DataError, match="'nope'"):
        m.marginal_effects("nope")
