"""Population-averaged predictions (re="marginal") need no grouping column in new data
(issue 24: ordinal type="prob" and Gamma predictions demanded it, then ignored its value).
References: the log-normal mean exp(eta + s^2/2) and a numerical integral over N(0, s^2)."""

import warnings

import numpy as np
import pytest
from scipy import integrate, stats

import glmm_nb


@pytest.fixture(scope="module")
def fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sleep = glmm_nb.datasets.load("sleepstudy")
        gamma = glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", sleep, family="gamma")
        wine = glmm_nb.datasets.load("wine")
        ordinal = glmm_nb.glmm("rating ~ temp + contact + (1 | judge)", wine, family="ordinal")
    return sleep, gamma, wine, ordinal


def test_gamma_marginal_mean_without_the_grouping_column(fits):
    sleep, gamma, *_ = fits
    new = sleep[["Days"]].head(4)
    got = gamma.predict(new, re="marginal")
    s2 = gamma.varcorr()["vcov"].iloc[0]
    eta = gamma.fixef["(Intercept)"] + gamma.fixef["Days"] * new["Days"].to_numpy()
    np.testing.assert_allclose(got, np.exp(eta + s2 / 2), rtol=1e-8)  # log link, random intercept
    with_group = gamma.predict(sleep[["Days", "Subject"]].head(4), re="marginal")
    np.testing.assert_allclose(got, with_group, rtol=1e-12)  # the value of the group never mattered
    with pytest.raises(glmm_nb.DataError, match="Subject"):
        gamma.predict(new, re="conditional")  # conditional predictions do need it


def test_ordinal_marginal_probabilities_without_the_grouping_column(fits):
    *_, wine, ordinal = fits
    new = wine[["temp", "contact"]].drop_duplicates().reset_index(drop=True)
    got = ordinal.predict(new, type="prob", re="marginal")
    sd = float(np.sqrt(ordinal.varcorr()["vcov"].iloc[0]))
    alpha = ordinal.thresholds.to_numpy()
    X = np.column_stack([(new["temp"] == "warm").astype(float), (new["contact"] == "yes").astype(float)])
    eta = X @ ordinal.fixef.to_numpy()
    for i, e in enumerate(eta):
        cum = [integrate.quad(lambda b, a=a: stats.logistic.cdf(a - e - b) * stats.norm.pdf(b, scale=sd),
                              -12 * sd, 12 * sd)[0] for a in alpha]
        ref = np.diff(np.concatenate([[0.0], cum, [1.0]]))
        np.testing.assert_allclose(got.iloc[i].to_numpy(), ref, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)
