"""predict / simulate on reference data, new levels, bad newdata."""

import numpy as np
import pytest
from scipy import special

import glmm_nb
from glmm_nb import DataError, DataWarning, ModelError
from tests.conftest import load_case


@pytest.fixture(scope="module")
def slope():
    case, df = load_case("contraception_slope")
    return df, glmm_nb.glmm(case["formula"], df)


def test_conditional_prediction_from_fixef_and_ranef(slope):
    df, m = slope
    re = m.ranef()["district"]
    X = np.asarray(m.spec.X)
    eta = X @ m.fixef.to_numpy()
    b = re.loc[df["district"].astype(str), ["(Intercept)", "urban[T.Y]"]].to_numpy()
    eta_c = eta + b[:, 0] + b[:, 1] * (df["urban"] == "Y").to_numpy()
    np.testing.assert_allclose(m.predict(type="link"), eta_c, atol=1e-10)
    np.testing.assert_allclose(m.predict(), special.expit(eta_c), atol=1e-12)
    np.testing.assert_allclose(m.predict(re="none", type="link"), eta, atol=1e-10)


def test_marginal_prediction_against_monte_carlo(slope):
    df, m = slope
    row = df.iloc[[3]]
    S = m.covariance_matrices()["district"].to_numpy()
    z = np.array([1.0, float(row["urban"].iloc[0] == "Y")])
    eta = m.predict(newdata=row, re="none", type="link")[0]
    draws = np.random.default_rng(0).normal(size=2_000_000) * np.sqrt(z @ S @ z)
    mc = special.expit(eta + draws).mean()
    assert m.predict(newdata=row, re="marginal")[0] == pytest.approx(mc, abs=1e-3)


def test_new_levels_are_flagged_and_get_zero(slope):
    df, m = slope
    new = df.iloc[:4].copy()
    new["district"] = new["district"].astype(str)
    new.loc[new.index[:2], "district"] = "999"
    with pytest.warns(DataWarning, match="2 row"):
        p = m.predict(newdata=new, type="link")
    np.testing.assert_allclose(p[:2], m.predict(newdata=new.iloc[:2], re="none", type="link"))
    np.testing.assert_allclose(p[2:], m.predict(type="link")[2:4])


def test_bad_newdata(slope):
    df, m = slope
    with pytest.raises(DataError, match="'age2'"):
        m.predict(newdata=df.drop(columns=["age2"]))
    with pytest.raises(DataError, match="'district'"):
        m.simulate(newdata=df.drop(columns=["district"]))
    with pytest.raises(ModelError, match="type must be"):
        m.predict(type="probability")


def test_simulate_shapes_seed_and_means(slope):
    df, m = slope
    s1 = m.simulate(nsim=400, seed=3)
    s2 = m.simulate(nsim=400, seed=3)
    assert s1.shape == (len(df), 400) and np.array_equal(s1, s2)
    assert set(np.unique(s1)) <= {0.0, 1.0}
    # new random effects: mean over simulations ≈ population-averaged prediction
    assert abs(s1.mean() - m.predict(re="marginal").mean()) < 0.01
    sc = m.simulate(nsim=400, seed=4, re="conditional")
    assert abs(sc.mean() - m.predict().mean()) < 0.01
    sn = m.simulate(nsim=2, seed=1, newdata=df.iloc[:10])
    assert sn.shape == (10, 2)


def test_simulate_binomial_counts_and_poisson():
    case, df = load_case("cbpp_laplace")
    m = glmm_nb.glmm(case["formula"], df)
    s = m.simulate(nsim=3, seed=1)
    assert np.all(s <= df["size"].to_numpy()[:, None]) and np.all(s == np.round(s))
    case, df = load_case("epil_poisson")
    m = glmm_nb.glmm(case["formula"], df, family="poisson")
    s = m.simulate(nsim=200, seed=2)
    assert abs(s.mean() / df["y"].mean() - 1) < 0.15
