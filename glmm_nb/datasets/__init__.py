"""Small bundled data sets, real and simulated, each with its source.

Real (CSV files shipped with the package):

* ``cbpp``: contagious bovine pleuropneumonia in 15 Ethiopian herds, Lesnoff et al. (2004),
  as distributed with R's lme4 package.
* ``sleepstudy``: reaction times under sleep deprivation, Belenky et al. (2003), via lme4.
* ``contraception``: 1988 Bangladesh Fertility Survey, Huq & Cleland (1990), via R's mlmRev.
* ``wine``: bitterness of wine rated 1–5 (an ordered categorical) by 9 judges, by temperature and
  skin contact, Randall (1989), via R's ordinal package.

Simulated (generated on load from a fixed seed by the functions below, so they are the same
everywhere):

* ``hospitals``: patients (binary recovery) in 40 hospitals of unequal size, a randomised
  treatment and age; random hospital intercepts (SD 0.8).
* ``repeated``: a binary symptom measured at 6 visits on 150 people, a treatment-by-time
  effect and large random intercepts (SD 2) — the setting where conditional and marginal
  effects differ most.
* ``observational``: 100 small hospitals where an unobserved hospital quality raises both the chance
  of treatment and the chance of recovery (cluster-level confounding; true within-hospital
  treatment effect log-OR 0.5).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["load", "available", "SOURCES"]

_CATEGORICAL = {
    "cbpp": {"herd": [str(i) for i in range(1, 16)], "period": ["1", "2", "3", "4"]},
    "sleepstudy": {},
    "contraception": {"livch": ["0", "1", "2", "3+"], "urban": ["N", "Y"]},
    "wine": {"rating": ["1", "2", "3", "4", "5"], "temp": ["cold", "warm"], "contact": ["no", "yes"],
             "bottle": [str(i) for i in range(1, 9)], "judge": [str(i) for i in range(1, 10)]},
}
_ORDERED = {"wine": ("rating",)}  # ordered categoricals (the response of an ordinal model)

SOURCES = {
    "cbpp": "Lesnoff et al. (2004), Prev. Vet. Med.; R package lme4",
    "sleepstudy": "Belenky et al. (2003), J. Sleep Res.; R package lme4",
    "contraception": "Huq & Cleland (1990), Bangladesh Fertility Survey; R package mlmRev",
    "wine": "Randall (1989), The analysis of sensory data by generalised linear model; R package ordinal",
    "hospitals": "simulated by glmm_nb.datasets (seed 11)",
    "repeated": "simulated by glmm_nb.datasets (seed 12)",
    "observational": "simulated by glmm_nb.datasets (seed 13)",
}


def _expit(x):
    return 1 / (1 + np.exp(-x))


def _hospitals() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    J = 40
    sizes = rng.integers(8, 120, J)
    h = np.repeat(np.arange(J), sizes)
    n = h.size
    treat = rng.integers(0, 2, n)
    age = np.round(rng.normal(60, 12, n), 0)
    eta = -0.4 + 0.7 * treat - 0.03 * (age - 60) + 0.8 * rng.normal(size=J)[h]
    y = (rng.random(n) < _expit(eta)).astype(int)
    return pd.DataFrame({"hospital": pd.Categorical([f"H{i + 1:02d}" for i in h]), "treat": treat,
                         "age": age, "recovered": y})


def _repeated() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    J, T = 150, 6
    pid = np.repeat(np.arange(J), T)
    visit = np.tile(np.arange(T), J).astype(float)
    treat = np.repeat(rng.integers(0, 2, J), T)
    b = 2.0 * rng.normal(size=J)
    eta = 0.5 + b[pid] - 0.25 * visit - 0.4 * treat * visit
    y = (rng.random(J * T) < _expit(eta)).astype(int)
    return pd.DataFrame({"person": pd.Categorical([f"P{i + 1:03d}" for i in pid]), "visit": visit,
                         "treat": treat, "symptom": y})


def _observational() -> pd.DataFrame:
    rng = np.random.default_rng(13)
    J = 100
    sizes = rng.integers(5, 20, J)
    h = np.repeat(np.arange(J), sizes)
    quality = rng.normal(size=J)
    p_treat = _expit(1.5 * quality)[h]
    treat = (rng.random(h.size) < p_treat).astype(int)
    eta = -0.2 + 0.5 * treat + 1.0 * quality[h]
    y = (rng.random(h.size) < _expit(eta)).astype(int)
    return pd.DataFrame({"hospital": pd.Categorical([f"H{i + 1:02d}" for i in h]), "treat": treat, "recovered": y})


_SIMULATED = {"hospitals": _hospitals, "repeated": _repeated, "observational": _observational}


def available() -> list[str]:
    return sorted(list(_CATEGORICAL) + list(_SIMULATED))


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a DataFrame, factors as ordered-level categoricals."""
    if name in _SIMULATED:
        return _SIMULATED[name]()
    if name not in _CATEGORICAL:
        from ..errors import DataError

        raise DataError(f"no bundled data set {name!r}; available: {', '.join(available())}")
    with resources.files(__name__).joinpath(f"{name}.csv").open("r") as fh:
        df = pd.read_csv(fh)
    for col, levels in _CATEGORICAL[name].items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels, ordered=col in _ORDERED.get(name, ()))
    if name == "sleepstudy":
        df["Subject"] = pd.Categorical(df["Subject"].astype(str))
    if name == "contraception":
        df["district"] = pd.Categorical(
            df["district"].astype(str), categories=sorted(df["district"].astype(str).unique(), key=int)
        )
    return df
