"""ICC, R², MOR against the textbook formulas; simulated-residual diagnostics."""

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb import ModelError
from tests.conftest import load_case


def test_icc_r2_mor_logistic_random_intercept():
    case, df = load_case("cbpp_laplace")
    m = glmm_nb.glmm(case["formula"], df)
    s2 = m.varcorr().vcov.iloc[0]
    eta_f = np.asarray(m.spec.X) @ m.fixef.to_numpy()
    vf = np.var(eta_f)
    assert m.icc() == pytest.approx(s2 / (s2 + np.pi**2 / 3), rel=1e-12)
    r2 = m.r2()
    tot = vf + s2 + np.pi**2 / 3
    assert r2["marginal"] == pytest.approx(vf / tot) and r2["conditional"] == pytest.approx((vf + s2) / tot)
    assert m.mor()["herd"] == pytest.approx(np.exp(np.sqrt(2 * s2) * 0.6744897501960817), rel=1e-10)


def test_icc_gaussian_and_poisson():
    case, df = load_case("sleepstudy_reml")
    m = glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", df, family="gaussian")
    vc = m.varcorr()
    s2, e2 = vc.vcov.iloc[0], vc.vcov.iloc[1]
    assert m.icc() == pytest.approx(s2 / (s2 + e2))
    case, df = load_case("epil_poisson")
    p = glmm_nb.glmm(case["formula"], df, family="poisson")
    s2 = p.varcorr().vcov.iloc[0]
    lam = np.exp(np.mean(np.asarray(p.spec.X) @ p.fixef.to_numpy()) + s2 / 2)
    assert p.icc() == pytest.approx(s2 / (s2 + np.log(1 + 1 / lam)))
    with pytest.raises(ModelError, match="logistic"):
        p.mor()


def test_random_slope_icc_uses_variance_at_observed_covariates():
    case, df = load_case("contraception_slope")
    m = glmm_nb.glmm(case["formula"], df)
    S = m.covariance_matrices()["district"].to_numpy()
    z = np.column_stack([np.ones(len(df)), (df["urban"] == "Y").to_numpy(float)])
    v = np.mean(np.einsum("na,ab,nb->n", z, S, z))
    assert m.icc() == pytest.approx(v / (v + np.pi**2 / 3))


def test_diagnostics_well_specified_and_overdispersed(rng):
    n, J = 1500, 50
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    eta = 0.5 + 0.3 * x + 0.5 * rng.normal(size=J)[g]
    ok = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": g})
    d = glmm_nb.glmm("y ~ x + (1 | g)", ok, family="poisson").diagnose(nsim=200, seed=1)
    assert set(d.tests.index) == {"uniformity (KS)", "dispersion", "zero-inflation"}
    assert d.tests.loc["uniformity (KS)", "p_value"] > 0.001
    assert d.tests.loc["dispersion", "p_value"] > 0.001
    assert d.residuals.between(0, 1).all() and len(d.residuals) == n
    assert {"parameter", "estimate", "gradient"} <= set(d.convergence.columns)
    over = ok.assign(y=rng.negative_binomial(1.5, 1.5 / (1.5 + np.exp(eta))))
    d2 = glmm_nb.glmm("y ~ x + (1 | g)", over, family="poisson").diagnose(nsim=200, seed=1)
    assert d2.tests.loc["dispersion", "statistic"] > 1.5
    assert d2.tests.loc["dispersion", "p_value"] < 0.01
    assert d2.tests.loc["uniformity (KS)", "p_value"] < 0.01
