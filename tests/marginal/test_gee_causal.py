"""GEE against geepack 1.3.9; Mundlak within/between checks on simulated data."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

import glmm_nb
from glmm_nb import FormulaError, ModelError
from tests.conftest import load_case, r_name


def test_gee_matches_geepack():
    case, df = load_case("gee_contraception")
    r = glmm_nb.gee(case["formula"], df, cluster="district", family="binomial", corstr="exchangeable")
    ct = r.coef_table()
    names = [r_name(n, case, df) for n in case["coef"]]
    # reached: estimates 1.4e-4, robust SEs 1.1e-4 relative, alpha 2.4e-4 (geepack's convergence tolerance)
    np.testing.assert_allclose(ct.loc[names, "estimate"], list(case["coef"].values()), atol=4e-4)
    np.testing.assert_allclose(ct.loc[names, "std_error"], list(case["robust_se"].values()), rtol=5e-4)
    assert r.working_correlation == pytest.approx(case["alpha"], abs=6e-4)
    assert list(ct.columns) == ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
    assert r.nclusters == 60


def test_gee_other_structures_and_errors():
    case, df = load_case("gee_contraception")
    ind = glmm_nb.gee(case["formula"], df, cluster="district", corstr="independence")
    ar = glmm_nb.gee(case["formula"], df, cluster="district", corstr="ar1")
    assert ind.params.shape == ar.params.shape == (7,)
    with pytest.raises(FormulaError, match="no random-effect terms"):
        glmm_nb.gee("use ~ age + (1 | district)", df, cluster="district")
    with pytest.raises(ModelError, match="corstr"):
        glmm_nb.gee(case["formula"], df, cluster="district", corstr="unstructured")
    with pytest.raises(glmm_nb.DataError, match="'clinic'"):
        glmm_nb.gee(case["formula"], df, cluster="clinic")


def _sim(rng, confounded: bool, J=60, n=10, beta=0.5):
    g = np.repeat(np.arange(J), n)
    u = rng.normal(size=J)
    x = rng.normal(size=J * n) + (1.0 * u[g] if confounded else rng.normal(size=J)[g])
    eta = -0.5 + beta * x + u[g]
    y = (rng.random(J * n) < special.expit(eta)).astype(int)
    return pd.DataFrame({"y": y, "x": x, "g": g})


def test_mundlak_detects_cluster_confounding():
    """Rejection rates of the within = between test at 5 %, NSIM data sets per scenario."""
    rng = np.random.default_rng(17)
    nsim = 30
    res = {}
    for confounded in (True, False):
        rej, within, glmm_est = 0, [], []
        for _ in range(nsim):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = glmm_nb.glmm("y ~ x + (1 | g)", _sim(rng, confounded))
                c = m.causal_checks()
            rej += c.joint_test["p_value"] < 0.05
            within.append(c.within_between.loc["x", "within"])
            glmm_est.append(m.fixef["x"])
        res[confounded] = (rej / nsim, np.mean(within), np.mean(glmm_est))
    print(f"Mundlak rejection rate: confounded {res[True][0]:.2f}, independent {res[False][0]:.2f}; "
          f"mean within {res[True][1]:.3f}, mean GLMM {res[True][2]:.3f} (truth 0.5)")
    assert res[True][0] >= 0.8
    assert res[False][0] <= 0.17  # 0.05 + 3 MC SE
    assert abs(res[True][1] - 0.5) < 0.06  # within effect recovers the truth
    assert res[True][2] - 0.5 > 0.1  # the standard GLMM is biased upwards


def test_flags_and_shares():
    rng = np.random.default_rng(3)
    df = _sim(rng, False, J=20)
    df["trt"] = (df["g"] % 2).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glmm_nb.glmm("y ~ x + trt + (1 | g)", df)
    c = m.causal_checks()
    assert c.flags.loc["few clusters", "applies"]
    assert c.flags.loc["cluster-level covariate", "applies"]
    assert "trt" in c.flags.loc["cluster-level covariate", "detail"]
    assert c.shares.loc["trt", "between_share"] == pytest.approx(1.0)
    x = df["x"].to_numpy()
    xbar = df.groupby("g")["x"].transform("mean").to_numpy()
    assert c.shares.loc["x", "between_share"] == pytest.approx(np.var(xbar) / np.var(x))
    assert list(c.within_between.index) == ["x"]
    with pytest.raises(ModelError, match="'hospital'"):
        m.causal_checks(cluster="hospital")


def test_balanced_and_factor_covariates_and_offsets():
    """epil: V4 varies within subjects but its subject mean is constant (no between
    information, so no Mundlak term); trt is a subject-level two-level factor."""
    case, df = load_case("epil_poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glmm_nb.glmm(case["formula"], df, family="poisson")
        c = m.causal_checks()
    assert c.shares.loc["V4", "between_share"] == pytest.approx(0.0, abs=1e-12)
    assert c.shares.loc["trt", "between_share"] == pytest.approx(1.0)
    assert c.flags.loc["cluster-level covariate", "applies"]
    assert c.joint_test["df"] == 0 and "not possible" in c.flags.loc["within ≠ between", "detail"]
    # an offset given in the formula or as an argument reaches the refit identically
    rng = np.random.default_rng(0)
    df = df.assign(t=np.exp(0.1 * rng.normal(size=len(df))), noise=rng.normal(size=len(df)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glmm_nb.glmm("y ~ lbase * trt + noise + offset(np.log(t)) + (1 | subject)", df, family="poisson")
        b = glmm_nb.glmm("y ~ lbase * trt + noise + (1 | subject)", df, family="poisson", offset=np.log(df.t))
        ca, cb = a.causal_checks(), b.causal_checks()
    pd.testing.assert_frame_equal(ca.within_between, cb.within_between, rtol=1e-6)
