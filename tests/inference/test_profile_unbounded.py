"""Issue 27: the profile of t's degrees of freedom on nearly gaussian data levels off towards the
gaussian limit; its upper limit is unbounded (inf, with a note), not a crossing found in the
numerical noise of df ~ 1e13. References: the gaussian ML fit (the t model at df = infinity)
and refits with log(df) held at each limit (2 x the log-likelihood drop = z^2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmm_nb
from glmm_nb.inference.profile import profile_confint
from tests.conftest import load_case

Z2 = stats.norm.ppf(0.975) ** 2


def _near_gaussian() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(30), 10)
    x = rng.normal(size=300)
    y = 1 + 0.5 * x + 0.7 * rng.normal(size=30)[g] + rng.normal(size=300)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g]})


def _drop_at_df(m, df_value: float) -> float:
    """2 x (logLik at the estimate - logLik with df held at ``df_value``): an independent fit."""
    held = glmm_nb.glmm(m.formula, m.spec.frame, family="t", fixed={"log(df)": np.log(df_value)})
    return 2 * (m.loglik - held.loglik)


@pytest.mark.filterwarnings("ignore::glmm_nb.ConvergenceWarning")  # the flat df direction, as expected
def test_t_df_profile_upper_limit_is_unbounded_on_nearly_gaussian_data():
    d = _near_gaussian()
    m = glmm_nb.glmm("y ~ x + (1 | g)", d, family="t")
    ml = glmm_nb.glmm("y ~ x + (1 | g)", d, family="gaussian", reml=False)
    # the profile at df = infinity is the gaussian ML fit: within the cut-off, so no upper limit
    assert 2 * (m.loglik - ml.loglik) < Z2
    prof = profile_confint(m, parm=["df", "sigma"])
    lo, hi = prof.loc["df"]
    assert hi == np.inf
    assert "profile of df levels off below the cut-off as df -> infinity (the gaussian limit)" in prof.attrs["note"]
    assert "no upper limit, reported as inf" in prof.attrs["note"]
    assert np.isfinite(lo) and 1 < lo < m.dispersion["df"]
    assert _drop_at_df(m, lo) == pytest.approx(Z2, abs=2e-3)
    assert np.all(np.isfinite(prof.loc["sigma"]))  # the rule is for the levelling parameter only


def test_t_df_profile_limits_stay_finite_when_the_data_set_them():
    case, df = load_case("t_sim")
    m = glmm_nb.glmm(case["formula"], df, family="t")
    prof = profile_confint(m, parm=["df"])
    lo, hi = prof.loc["df"]
    assert np.isfinite(lo) and np.isfinite(hi) and lo < m.dispersion["df"] < hi
    assert prof.attrs["note"] == ""
    assert _drop_at_df(m, lo) == pytest.approx(Z2, abs=2e-3)
    assert _drop_at_df(m, hi) == pytest.approx(Z2, abs=2e-3)
