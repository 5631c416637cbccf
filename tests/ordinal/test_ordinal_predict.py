"""Predictions, simulation and simulated residuals of an ordinal model: category probabilities
conditional on the random effects (against F(α − η) from the modes by hand), for a typical
cluster (new data without grouping columns), population-averaged (against the probit closed
form Φ((α − η)/√(1 + σ²)) and a numerical integral); simulated category frequencies against the
predicted probabilities; randomized quantile residuals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from glmm_nb import glmm
from glmm_nb.errors import ModelError


@pytest.fixture(scope="module")
def probit_fit(sim):
    df = sim(n=500, J=30, seed=3)
    return df, glmm("y ~ x + z + (1 | g)", df, family="ordinal", link="probit")


def test_conditional_probabilities_by_hand(wine_fits):
    _case, m, _ = wine_fits
    P = m.predict(type="prob")
    assert list(P.columns) == ["1", "2", "3", "4", "5"] and P.index.equals(m.spec.row_index)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    b = m.ranef()["judge"]["(Intercept)"]
    eta = np.asarray(m.spec.X) @ m.fixef.to_numpy() + b.loc[m.spec.frame["judge"].astype(str)].to_numpy()
    cum = special.expit(m.thresholds.to_numpy()[None, :] - eta[:, None])
    ref = np.diff(np.column_stack([np.zeros(len(eta)), cum, np.ones(len(eta))]), axis=1)
    np.testing.assert_allclose(P.to_numpy(), ref, atol=1e-12)
    np.testing.assert_allclose(m.predict(type="cum_prob").to_numpy(), cum, atol=1e-12)
    np.testing.assert_allclose(m.predict(type="link"), eta, atol=1e-12)
    cls = m.predict(type="class")
    assert cls.cat.ordered and list(cls.cat.categories) == list(P.columns)
    assert (cls.astype(str).to_numpy() == P.columns.to_numpy()[P.to_numpy().argmax(axis=1)]).all()


def test_typical_cluster_needs_no_grouping_column(wine_fits):
    _case, m, _ = wine_fits
    new = pd.DataFrame({"temp": pd.Categorical(["cold", "warm"], categories=["cold", "warm"]),
                        "contact": pd.Categorical(["yes", "yes"], categories=["no", "yes"])})
    P = m.predict(new, re="none")
    eta = np.array([0.0, m.fixef["temp[T.warm]"]]) + m.fixef["contact[T.yes]"]
    cum = special.expit(m.thresholds.to_numpy()[None, :] - eta[:, None])
    np.testing.assert_allclose(P.to_numpy()[:, 0], cum[:, 0], atol=1e-12)
    np.testing.assert_allclose(P.to_numpy()[:, -1], 1 - cum[:, -1], atol=1e-12)


def test_population_averaged_probit_closed_form(probit_fit):
    df, m = probit_fit
    s2 = float(m.varcorr().vcov.iloc[0])
    Pm = m.predict(df.iloc[:20], re="marginal")
    eta = np.asarray(m.spec.X)[:20] @ m.fixef.to_numpy()
    cum = special.ndtr((m.thresholds.to_numpy()[None, :] - eta[:, None]) / np.sqrt(1 + s2))
    ref = np.diff(np.column_stack([np.zeros(20), cum, np.ones(20)]), axis=1)
    np.testing.assert_allclose(Pm.to_numpy(), ref, atol=1e-10)
    Pt = m.predict(df.iloc[:20], re="none")
    assert np.abs(Pm.to_numpy() - Pt.to_numpy()).max() > 0.01  # averaging flattens: the check has teeth


def test_population_averaged_logit_against_quadrature(wine_fits):
    _case, m, _ = wine_fits
    s = float(m.varcorr().sdcor.iloc[0])
    Pm = m.predict(re="marginal").to_numpy()[:3]
    eta = (np.asarray(m.spec.X) @ m.fixef.to_numpy())[:3]
    alpha = np.r_[-np.inf, m.thresholds.to_numpy(), np.inf]
    for i in range(3):
        for k in range(5):
            val = integrate.quad(lambda b: (special.expit(alpha[k + 1] - eta[i] - b) - special.expit(alpha[k] - eta[i] - b))
                                 * stats.norm.pdf(b, 0, s), -12 * s, 12 * s, epsabs=1e-13)[0]
            assert abs(Pm[i, k] - val) < 1e-9


def test_prediction_errors(wine_fits):
    _case, m, _ = wine_fits
    with pytest.raises(ModelError, match="type='prob'"):
        m.predict(type="response")
    fit = m.fitted()  # clmm's fitted(): P(observed category) (tests/ordinal/test_ordinal_emmeans.py)
    assert fit.between(0, 1).all() and fit.size == m.nobs
    with pytest.raises(ModelError, match="no population-averaged linear predictor"):
        m.predict(type="link", re="marginal")
    with pytest.raises(ModelError, match="type='zero_prob' is not for an ordinal model"):
        m.predict(type="zero_prob")
    with pytest.raises(ModelError, match="type='prob'"):
        m.predict(se_fit=True, type="response")
    with pytest.raises(ModelError, match="ordinal response"):
        m.marginal_effects("temp")


def test_simulated_frequencies_match_probabilities(wine_fits):
    _case, m, _ = wine_fits
    sims = m.simulate(nsim=4000, seed=2, re="conditional")
    assert sims.shape == (72, 4000) and set(np.unique(sims)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    freq = np.stack([(sims == k).mean(axis=1) for k in range(5)], axis=1)
    np.testing.assert_allclose(freq, m.predict(type="prob").to_numpy(), atol=0.03)
    new = m.simulate(nsim=4000, seed=3)  # new random effects: the population-averaged probabilities
    freq = np.stack([(new == k).mean(axis=1) for k in range(5)], axis=1)
    np.testing.assert_allclose(freq, m.predict(re="marginal").to_numpy(), atol=0.03)


def test_randomized_residuals(probit_fit):
    _df, m = probit_fit
    d = m.diagnose(nsim=200, seed=4)
    r = d.residuals.to_numpy()
    assert r.size == 500 and np.unique(r).size == 500  # randomized: no ties for a discrete response
    assert d.tests.loc["uniformity (KS)", "p_value"] > 0.01
    assert "zero-inflation" not in d.tests.index
    assert list(d.convergence.parameter)[-4:] == ["0|1", "log(1|2 - 0|1)", "log(2|3 - 1|2)", "log(3|4 - 2|3)"]
