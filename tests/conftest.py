"""Shared helpers: reference cases copied from lme4 1.1-31 / geepack 1.3.9 (tests/fixtures/cases) and
glmmTMB 1.1.5 (tests/fixtures/cases_tmb)."""

from __future__ import annotations

import html
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.stem for p in (FIXTURES / "cases").glob("*.json"))
GLMM_CASES = [c for c in CASES if not c.startswith("gee")]


def reproduce_code(page: str) -> str:
    """The code of a report page's Reproduce section, unescaped."""
    return html.unescape(re.search(r"<pre><code>(.*?)</code></pre>", page, re.S).group(1))


def run_reproduce(code: str, namespace: dict | None = None) -> dict:
    """Execute a report's Reproduce code (its warnings silenced) in ``namespace``; return it."""
    ns = {} if namespace is None else namespace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(code, ns)  # noqa: S102 - the report's own code
    return ns


def load_case(case_id: str) -> tuple[dict, pd.DataFrame]:
    """The reference record and its data, factors as categoricals in R's level order."""
    path = FIXTURES / "cases" / f"{case_id}.json"
    if not path.exists():  # glmmTMB references (families beyond lme4's)
        path = FIXTURES / "cases_tmb" / f"{case_id}.json"
    case = json.loads(path.read_text())
    df = pd.read_csv(FIXTURES / "data" / case["data"])
    for col, levels in case["categorical"].items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    return case, df


def r_name(name: str, case: dict, data: pd.DataFrame) -> str:
    """Map an R coefficient name (``period2``, ``lbase:trtprogabide``) to formulaic's."""
    if name == "(Intercept)":
        return name
    parts = []
    for part in name.split(":"):
        if part in data.columns:
            parts.append(part)
            continue
        for var, levels in case["categorical"].items():
            hit = [lv for lv in levels if part == f"{var}{lv}"]
            if hit:
                parts.append(f"{var}[T.{hit[0]}]")
                break
        else:
            raise KeyError(part)
    return ":".join(parts)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)
