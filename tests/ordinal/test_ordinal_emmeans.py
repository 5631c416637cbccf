"""Ordinal EMMs in emmeans' five modes against emmeans 1.8.4-1 on ordinal::clmm
(tests/fixtures/ordinal/wine_emmeans_modes.R / .json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb import ModelError

FIXTURES = Path(__file__).parents[1] / "fixtures"
REF = json.loads((FIXTURES / "ordinal" / "wine_emmeans_modes.json").read_text())


@pytest.fixture(scope="module")
def wine_tc():
    df = pd.read_csv(FIXTURES / "data" / "wine.csv")
    df["rating"] = pd.Categorical(df.rating.astype(str), categories=list("12345"), ordered=True)
    df["judge"] = df.judge.astype(str)
    return glmm_nb.glmm("rating ~ temp + contact + (1 | judge)", df, family="ordinal")


CASES = [  # (fixture key, specs, by, mode, emmeans' column)
    ("temp_latent", "temp", None, "latent", "emmean"),
    ("temp_contact_latent", ["temp", "contact"], None, "latent", "emmean"),
    ("temp_linear.predictor", "temp", None, "linear.predictor", "emmean"),
    ("cut_by_temp_linear.predictor", "cut", "temp", "linear.predictor", "emmean"),
    ("temp_cum.prob", "temp", None, "cum.prob", "cumprob"),
    ("cut_by_temp_cum.prob", "cut", "temp", "cum.prob", "cumprob"),
    ("rating_by_temp_prob", "rating", "temp", "prob", "prob"),
    ("rating_by_temp_contact_prob", "rating", ["temp", "contact"], "prob", "prob"),
    ("temp_mean.class", "temp", None, "mean.class", "mean.class"),
]


@pytest.mark.parametrize("key, specs, by, mode, col", CASES, ids=[c[0] for c in CASES])
def test_modes_match_emmeans_on_clmm(wine_tc, key, specs, by, mode, col):
    ref = REF[key]
    e = wine_tc.emmeans(specs, by=by, type=mode).to_frame()
    for v in [specs] if isinstance(specs, str) else specs:  # same rows in the same order
        assert e[v].astype(str).tolist() == ref[v]
    name = col.replace(".", "_")
    # clmm's optimum and ours differ by ~2e-5 in the estimates; the SEs agree to 5e-5
    np.testing.assert_allclose(e[name].to_numpy(), ref[col], rtol=1e-4, atol=3e-5)
    np.testing.assert_allclose(e.std_error.to_numpy(), ref["SE"], rtol=2e-4)
    np.testing.assert_allclose(e.conf_low.to_numpy(), ref["asymp.LCL"], rtol=2e-4, atol=5e-5)
    np.testing.assert_allclose(e.conf_high.to_numpy(), ref["asymp.UCL"], rtol=2e-4, atol=5e-5)


def test_latent_is_the_default_and_pairs_are_the_coefficient(wine_tc):
    e = wine_tc.emmeans("temp")
    np.testing.assert_allclose(e.to_frame().emmean, REF["temp_latent"]["emmean"], atol=3e-5)
    pr = e.pairs().to_frame()
    ref = REF["temp_latent_pairs"]
    np.testing.assert_allclose(pr.estimate, ref["estimate"], rtol=1e-5)
    np.testing.assert_allclose(pr.std_error, ref["SE"], rtol=2e-4)
    np.testing.assert_allclose(pr.p_value, ref["p.value"], rtol=2e-3)
    # the probabilities of a row's categories sum to one; averaging over them leaves 1/K
    tab = wine_tc.emmeans("rating", by="temp", type="prob").to_frame()
    np.testing.assert_allclose(tab.groupby("temp", observed=True).prob.sum(), 1.0, rtol=1e-12)


def test_ordinal_emmeans_refuse_a_scale_they_do_not_have(wine_tc):
    with pytest.raises(ModelError, match="emmeans' modes.*'prob'"):
        wine_tc.emmeans("temp", type="response")
    html = wine_tc.report(diagnostics_nsim=10, emmeans="temp").html
    assert "cold - warm" in html and f"{REF['temp_latent_pairs']['estimate'][0]:.2f}" in html


def test_fitted_and_residuals_of_an_ordinal_fit(wine_tc):
    """fitted(): clmm's fitted values, the probability of each row's observed category; residuals()
    say why there are none instead of complaining about a type the caller never passed."""
    np.testing.assert_allclose(wine_tc.fitted().to_numpy()[:8], REF["fitted_first8"], rtol=5e-5)
    with pytest.raises(ModelError, match="ordinal model has no residuals"):
        wine_tc.residuals()
