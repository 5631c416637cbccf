"""Shared data for the ordinal tests: the wine data with clmm's references (ordinal 2022.11-16,
tests/fixtures/ordinal) and a latent-logistic simulator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load_wine() -> tuple[dict, pd.DataFrame]:
    case = json.loads((FIXTURES / "ordinal" / "wine_clmm.json").read_text())
    df = pd.read_csv(FIXTURES / "data" / case["data"])
    for col, levels in case["categorical"].items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels, ordered=col == "rating")
    return case, df


def simulate_ordinal(n=600, J=40, K=5, slope=False, crossed=False, seed=5) -> pd.DataFrame:
    """y in 0..K-1 with logit P(Y <= k) = alpha_k - eta, eta = 0.7 x - 0.5 z + b_g (+ slope, + b_h)."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    h = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    z = rng.integers(0, 2, n)
    eta = 0.7 * x - 0.5 * z + 0.9 * rng.normal(size=J)[g]
    if slope:
        eta = eta + 0.4 * rng.normal(size=J)[g] * x
    if crossed:
        eta = eta + 0.6 * rng.normal(size=12)[h]
    alpha = np.linspace(-1.5, 1.5, K - 1)
    u = rng.random(n)
    y = np.sum((eta + np.log(u / (1 - u)))[:, None] > alpha[None, :], axis=1)
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g, "h": h, "w": rng.integers(1, 4, n).astype(float)})


@pytest.fixture
def wine():
    """(clmm reference record, wine data with rating an ordered Categorical)."""
    return load_wine()


@pytest.fixture(scope="module")
def wine_fits():
    """Laplace and nAGQ = 10 fits of the wine model through glmm()."""
    from glmm_nb import glmm

    case, df = load_wine()
    return case, glmm(case["formula"], df, family="ordinal"), glmm(case["formula"], df, family="ordinal",
                                                                     method="agq", nagq=10)


@pytest.fixture(scope="session")
def sim():
    """The simulator (a fixture: test modules cannot import this conftest by name, tests/ has one too)."""
    return simulate_ordinal


@pytest.fixture(scope="module")
def variants():
    return json.loads((FIXTURES / "ordinal" / "wine_variants_clmm.json").read_text())
