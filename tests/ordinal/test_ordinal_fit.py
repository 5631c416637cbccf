"""glmm(family="ordinal") end to end against ordinal::clmm 2022.11-16 on the wine data: Laplace and
nAGQ = 10 (tests/fixtures/ordinal/wine_clmm.json) and the variants of
tests/fixtures/ordinal/wine_variants_clmm.R (crossed factors, a random slope, probit, cloglog,
AGQ, prior weights). Thresholds and coefficients to 2e-3 relative, standard errors to 2 %,
random-effect SDs to 5e-3, log-likelihoods to ±1e-3; and the result's tables and names."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from glmm_nb import glmm
from glmm_nb.errors import ModelError
from glmm_nb.request import parameter_names

R_NAMES = {"tempwarm": "temp[T.warm]", "contactyes": "contact[T.yes]"}


def sds(m) -> np.ndarray:
    vc = m.varcorr()
    return vc[vc.var2.isna()].sdcor.to_numpy()


def check(m, thresholds: dict, beta: dict, sd, loglik: float, se: dict | None = None):
    assert list(m.thresholds.index) == list(thresholds)
    np.testing.assert_allclose(m.thresholds.to_numpy(), list(thresholds.values()), rtol=2e-3)
    assert list(m.fixef.index) == [R_NAMES[k] for k in beta]
    np.testing.assert_allclose(m.fixef.to_numpy(), list(beta.values()), rtol=2e-3)
    np.testing.assert_allclose(sds(m), np.atleast_1d(sd), atol=5e-3)
    assert abs(m.loglik - loglik) <= 1e-3
    if se is not None:
        ours = np.r_[np.sqrt(np.diag(m.thresholds_vcov)), np.sqrt(np.diag(m.vcov))]
        np.testing.assert_allclose(ours, list(se.values())[: len(ours)], rtol=3e-4)  # reached: 6e-5


def test_wine_laplace_matches_clmm(wine_fits):
    case, lap, _ = wine_fits
    check(lap, case["thresholds"], case["beta"], case["varcorr"][0]["sdcor"], case["loglik"], case["se"])
    assert lap.converged and not lap.messages
    assert lap.nobs == case["nobs"] and lap.method == "laplace" and lap.family == "ordinal"
    assert lap.npar == 7 and abs(lap.aic - (-2 * case["loglik"] + 14)) < 2e-3  # clmm's AIC
    assert lap.ranef()["judge"].shape == (9, 2)
    assert lap.levels == ("1", "2", "3", "4", "5")


def test_wine_agq10_matches_clmm(wine_fits):
    case, _, agq = wine_fits
    ref = case["agq10"]
    check(agq, ref["thresholds"], ref["beta"], ref["sd"], ref["loglik"])
    assert agq.nagq == 10 and agq.converged


@pytest.mark.parametrize("name", ["crossed", "probit", "probit_agq10", "cloglog", "cloglog_agq7", "slope", "weights"])
def test_wine_variants_match_clmm(name, variants, wine):
    """Several grouping factors, a random slope, probit and cloglog links, AGQ, prior weights
    (the R script's header explains the cloglog references: clmm's random-intercept fast path
    swaps cloglog and loglog)."""
    ref = variants[name]
    _case, df = wine
    df["w"] = (df["judge"].cat.codes + 1) % 3 + 1.0  # R: as.integer(judge) %% 3 + 1
    method = "agq" if ref["nagq"] > 1 else "laplace"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # crossed, slope: singular fits, as clmm's
        m = glmm(ref["formula"], df, family="ordinal", link=ref["link"], method=method, nagq=ref["nagq"],
                 weights=ref["weights"])
    coef = dict(ref["coef"])
    beta = {k: coef.pop(k) for k in list(coef) if "|" not in k}
    sd = np.concatenate([np.atleast_1d(v) for v in ref["sd"].values()])
    check(m, coef, beta, sd, ref["loglik"], ref["se"])
    assert m.link == ref["link"] and m.nagq == ref["nagq"]


def test_summary_in_clmm_layout(wine_fits):
    _case, lap, agq = wine_fits
    text = lap.summary()
    assert text.startswith("Cumulative Link Mixed Model fitted with the Laplace approximation")
    for piece in ("link threshold", "logit  flexible", "Random effects:", "Coefficients:", "Threshold coefficients:",
                  "1|2", "4|5", "temp[T.warm]", "-81.57", "177.13"):
        assert piece in text
    assert text.index("Coefficients:") < text.index("Threshold coefficients:")
    assert "nAGQ = 10" in agq.summary().splitlines()[0]
    assert "Threshold coefficients" in lap._repr_html_()


def test_tables_and_tidy(wine_fits):
    case, lap, _ = wine_fits
    th = lap.coef_table(part="thresholds")
    np.testing.assert_allclose(th.std_error, list(case["se"].values())[:4], rtol=3e-4)  # reached: 3e-5
    np.testing.assert_allclose(th.statistic, th.estimate / th.std_error)
    assert list(lap.coef_table().index) == ["temp[T.warm]", "contact[T.yes]"]
    td = lap.tidy(conf_int=True)
    assert list(td.columns[:2]) == ["effect", "component"]
    assert td.component.tolist() == ["thresholds"] * 4 + ["cond"] * 3
    assert td.term.tolist()[:4] == ["1|2", "2|3", "3|4", "4|5"]
    assert td.term.tolist()[-1] == "sd__(Intercept)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a singular toy binomial fit
        binary = glmm("y ~ x + (1 | g)", pd.DataFrame({"y": [0, 1] * 20, "x": np.arange(40.0),
                                                        "g": np.repeat(range(8), 5)}), family="binomial")
    with pytest.raises(ModelError, match="no thresholds"):
        binary.coef_table(part="thresholds")


def test_integer_response_equals_ordered_categorical(wine):
    case, df = wine
    df["score"] = df["rating"].cat.codes + 1
    a = glmm("score ~ temp + contact + (1 | judge)", df, family="ordinal")
    b = glmm(case["formula"], df, family="ordinal")
    np.testing.assert_allclose(a.opt.final, b.opt.final, rtol=1e-10)
    assert list(a.thresholds.index) == ["1|2", "2|3", "3|4", "4|5"]
    df["rating2"] = df["rating"].cat.rename_categories(["none", "low", "mid", "high", "top"])
    c = glmm("rating2 ~ temp + contact + (1 | judge)", df, family="ordinal")
    assert list(c.thresholds.index) == ["none|low", "low|mid", "mid|high", "high|top"]


def test_method_checks_and_refit(wine):
    case, df = wine
    with pytest.raises(ModelError, match="method='laplace'"):
        glmm("rating ~ temp + (1 | judge) + (1 | bottle)", df, family="ordinal", method="agq", nagq=5)
    with pytest.raises(ModelError, match="nagq=3 needs method='agq'"):
        glmm(case["formula"], df, family="ordinal", nagq=3)
    m = glmm(case["formula"], df, family="ordinal")
    names = parameter_names(m.request)
    assert names == ["judge.(Intercept)", "temp[T.warm]", "contact[T.yes]", "1|2", "log(2|3 - 1|2)",
                     "log(3|4 - 2|3)", "log(4|5 - 3|4)"]
    held = m.refit(fixed={"temp[T.warm]": 3.0})
    assert held.fixef["temp[T.warm]"] == 3.0 and held.loglik < m.loglik < held.loglik + 0.1
    probit = m.refit(link="probit")
    assert probit.link == "probit" and probit.family == "ordinal" and abs(probit.loglik - (-80.9306)) < 1e-3
    agq1 = m.refit(method="agq", nagq=1)
    assert abs(agq1.loglik - m.loglik) < 1e-9


def test_simulate_then_refit_recovers_parameters(sim):
    """A cloglog model simulated from known values and refitted: estimates within 4 SE."""
    big = sim(n=8000, J=200, seed=9)
    m0 = glmm("y ~ x + z + (1 | g)", big, family="ordinal", link="cloglog")
    truth = dataclasses.replace(m0, theta=np.array([0.8]), fixef=pd.Series([0.7, -0.5], index=m0.fixef.index),
                                thresholds=pd.Series([-1.5, -0.5, 0.5, 1.5], index=m0.thresholds.index))
    ysim = truth.simulate(nsim=2, seed=1)
    assert ysim.shape == (8000, 2) and set(np.unique(ysim)) == {0.0, 1.0, 2.0, 3.0, 4.0}
    fit = m0.refit(y=ysim[:, 0])
    ct, th = fit.coef_table(), fit.coef_table(part="thresholds")
    assert np.all(np.abs(ct.estimate.to_numpy() - [0.7, -0.5]) < 4 * ct.std_error.to_numpy())
    assert np.all(np.abs(th.estimate.to_numpy() - [-1.5, -0.5, 0.5, 1.5]) < 4 * th.std_error.to_numpy())
    assert abs(sds(fit)[0] - 0.8) < 0.15


def test_agq_vector_random_effects(sim):
    """AGQ with a random slope (q = 2): close to Laplace, and converged."""
    df = sim(n=400, J=30, slope=True)
    lap = glmm("y ~ x + (1 + x | g)", df, family="ordinal")
    agq = glmm("y ~ x + (1 + x | g)", df, family="ordinal", method="agq", nagq=5)
    assert agq.converged
    np.testing.assert_allclose(agq.fixef, lap.fixef, atol=0.05)
    np.testing.assert_allclose(agq.thresholds, lap.thresholds, atol=0.05)
    assert abs(agq.loglik - lap.loglik) < 1.0
    np.testing.assert_allclose(np.sqrt(np.diag(agq.vcov)), np.sqrt(np.diag(lap.vcov)), rtol=0.1)
