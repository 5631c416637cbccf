"""The proportional-odds check against ordinal::clmm2's nominal-effects fits (Laplace; script
tests/fixtures/ordinal/wine_nominal_clmm2.R), population-averaged coefficients (the probit
closed form β/√(1 + σ²), equality without random-effect variance, the logit attenuation), and
intervals of the thresholds: Wald, profile (clmm2's profile of the SD; the threshold limits
checked by an independent constrained minimisation) and bootstrap."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from glmm_nb import glmm
from glmm_nb.errors import ModelError
from glmm_nb.families.cumulative import tau_from_thresholds
from glmm_nb.inference.profile import profile_confint
from glmm_nb.pipeline import make_devfun

NOMINAL = json.loads((Path(__file__).parents[1] / "fixtures" / "ordinal" / "wine_nominal_clmm2.json").read_text())
CLMM2_PROFILE_SD = (0.5013471918, 2.267034167)  # confint(profile(clmm2(...)), level = 0.95), stDev


def test_nominal_test_matches_clmm2(wine_fits):
    _case, m, agq = wine_fits
    tab = m.nominal_test()
    assert list(tab.index) == ["<none>", "temp", "contact"]
    assert abs(tab.loc["<none>", "loglik"] - NOMINAL["proportional"]["loglik"]) < 1e-3
    assert abs(tab.loc["contact", "loglik"] - NOMINAL["nominal_contact"]["loglik"]) < 1e-3
    assert abs(tab.loc["temp", "loglik"] - NOMINAL["nominal_temp"]["loglik"]) < 1e-3  # boundary fit in clmm2 too
    np.testing.assert_allclose(tab.loc[["contact", "temp"], "lrt"], [NOMINAL["lrt_contact"], NOMINAL["lrt_temp"]],
                               atol=2e-3)
    assert (tab.loc[["temp", "contact"], "df"] == 3).all() and (tab.loc[["temp", "contact"], "npar"] == 10).all()
    np.testing.assert_allclose(tab.loc["contact", "p_value"], stats.chi2.sf(NOMINAL["lrt_contact"], 3), atol=1e-3)
    one = agq.nominal_test(["contact"])  # an AGQ model is checked through its Laplace refit
    assert list(one.index) == ["<none>", "contact"] and abs(one.loc["contact", "lrt"] - NOMINAL["lrt_contact"]) < 2e-3
    with pytest.raises(ModelError, match="unknown term"):
        m.nominal_test(["judge"])


def test_nominal_test_detects_non_proportional_odds(sim):
    """z acts on the lowest split only: the check flags z, not x."""
    df = sim(n=1500, J=50, seed=21)
    rng = np.random.default_rng(0)
    lift = (df["y"] == 0) & (df["z"] == 1) & (rng.random(len(df)) < 0.6)
    df.loc[lift, "y"] = 2
    m = glmm("y ~ x + z + (1 | g)", df, family="ordinal")
    tab = m.nominal_test()
    assert tab.loc["z", "p_value"] < 1e-4 and tab.loc["x", "p_value"] > 0.01
    assert tab.converged.all()
    m3 = glmm("y ~ x + z + (1 | g)", sim(n=400, K=3), family="ordinal", link="cloglog")  # one df per term
    t3 = m3.nominal_test()
    assert (t3.df.iloc[1:] == 1).all() and t3.converged.all() and (t3.lrt.iloc[1:] > 1e-3).all()
    inter = glmm("y ~ x * z + (1 | g)", df, family="ordinal").nominal_test()
    assert np.isnan(inter.loc["x", "lrt"]) and np.isnan(inter.loc["x:z", "lrt"])


def test_marginal_coefficients_probit_closed_form(sim):
    df = sim(n=500, J=30, seed=3)
    m = glmm("y ~ x + z + (1 | g)", df, family="ordinal", link="probit")
    s2 = float(m.varcorr().vcov.iloc[0])
    mc = m.marginal_coefs()
    assert list(mc.index) == ["x", "z", "0|1", "1|2", "2|3", "3|4"]
    assert mc.component.tolist() == ["cond"] * 2 + ["thresholds"] * 4
    exact = np.r_[m.fixef.to_numpy(), m.thresholds.to_numpy()] / np.sqrt(1 + s2)
    np.testing.assert_allclose(mc.estimate.to_numpy(), exact, rtol=1e-8)
    # delta method of the exact map: d(beta/sqrt(1 + s^2)) by hand
    assert np.all(mc.std_error > 0) and np.all(mc.std_error < np.sqrt(np.diag(m.vcov)).max() * 2)
    tab = m.compare()
    np.testing.assert_allclose(tab.attenuation, 1 / np.sqrt(1 + s2), rtol=1e-7)
    assert tab.closed_form.isna().all()  # Zeger's formula is for the logit link


def test_marginal_equals_conditional_without_variance(wine_fits):
    _case, m, _ = wine_fits
    import dataclasses

    flat = dataclasses.replace(m, theta=np.array([0.0]),
                               opt=dataclasses.replace(m.opt, final=np.r_[0.0, m.opt.final[1:]]))
    mc = flat.marginal_coefs()
    np.testing.assert_allclose(mc.estimate.to_numpy(), np.r_[m.fixef.to_numpy(), m.thresholds.to_numpy()], rtol=1e-9)


def test_logit_attenuation(wine_fits):
    _case, m, _ = wine_fits
    tab = m.compare()
    assert list(tab.index) == ["temp[T.warm]", "contact[T.yes]", "1|2", "2|3", "3|4", "4|5"]
    assert (tab.attenuation < 0.95).all() and (tab.attenuation > 0.8).all()
    s2 = float(m.varcorr().vcov.iloc[0])
    np.testing.assert_allclose(tab.closed_form, tab.conditional / np.sqrt(1 + (16 * np.sqrt(3) / (15 * np.pi)) ** 2 * s2))
    sim = m.marginal_coefs(method="simulation", nsim=400, seed=2)
    np.testing.assert_allclose(sim.std_error, m.marginal_coefs().std_error, rtol=0.25)


def test_wald_intervals(wine_fits):
    _case, m, _ = wine_fits
    ci = m.confint("wald")
    th = m.coef_table(part="thresholds")
    np.testing.assert_allclose(ci.loc[list(th.index)].to_numpy(), th[["conf_low", "conf_high"]].to_numpy())
    assert list(ci.index) == ["sd__(Intercept)|judge", "temp[T.warm]", "contact[T.yes]", "1|2", "2|3", "3|4", "4|5"]


def _profile_deviance(m, k: int, v: float) -> float:
    """Independent: min over (theta, beta, the other thresholds) with threshold k at v, on the
    threshold scale itself (a general-purpose optimizer, numerical gradients)."""
    dev = make_devfun(m.request)
    nt, p = len(m.theta), len(m.fixef)
    alpha0 = m.thresholds.to_numpy()
    others = [j for j in range(len(alpha0)) if j != k]

    def f(z):
        alpha = np.insert(z[nt + p:], k, v)
        if np.any(np.diff(alpha) <= 0):
            return 1e10
        return dev(np.r_[z[:nt], z[nt:nt + p], tau_from_thresholds(alpha)])

    z0 = np.r_[m.theta, m.fixef.to_numpy(), alpha0[others]]
    res = optimize.minimize(f, z0, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000,
                                                                  "maxfev": 40000})
    return float(res.fun)


def test_profile_intervals(wine_fits):
    _case, m, _ = wine_fits
    prof = profile_confint(m, parm=["sd__(Intercept)|judge", "2|3"])
    np.testing.assert_allclose(prof.loc["sd__(Intercept)|judge"].to_numpy(), CLMM2_PROFILE_SD, atol=2e-3)
    d_hat = -2 * m.loglik
    z2 = stats.norm.ppf(0.975) ** 2
    for v in prof.loc["2|3"]:
        assert abs(_profile_deviance(m, 1, v) - d_hat - z2) < 2e-3
    wald = m.confint("wald").loc["2|3"]
    assert prof.loc["2|3", "conf_high"] > wald.conf_high  # the profile is asymmetric here


def test_bootstrap_columns(wine_fits):
    _case, m, _ = wine_fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = m.bootstrap(nsim=6, seed=1, progress=False)
    assert list(b.draws.columns) == ["temp[T.warm]", "contact[T.yes]", "sd__(Intercept)|judge", "1|2", "2|3", "3|4",
                                     "4|5"]
    assert len(b.draws) + b.n_failed == 6 and len(b.draws) >= 4
    assert isinstance(b.confint(), pd.DataFrame)
