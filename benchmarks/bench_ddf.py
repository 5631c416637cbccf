"""Cost of small-sample df (issue 15): Satterthwaite and Kenward-Roger for all coefficients.

Cases (simulated with a fixed seed):

* ``crossed_100`` — the issue's target: 100 clusters and 5 covariance parameters,
  ``y ~ x + z + (1 + x | g) + (1 | h)`` (3 theta for g, 1 for h, plus sigma), g with 100
  levels crossed with h (20 levels), 10 rows per g level (n = 1000). Target: Satterthwaite
  under 0.2 s.
* ``slope_1000`` — ``y ~ x + z + (1 + x | g)``, 1000 clusters of 10 (n = 10 000): scaling of the
  one-term (batched) path.

Timed: ``ddf_table(m, "satterthwaite")`` and ``ddf_table(m, "kenward-roger")`` on a fresh copy
of the fit each time (so nothing is cached), median of ``--reps``. With ``Rscript`` and
lmerTest/pbkrtest installed, the same data are fitted by ``lmer`` and R's time for
``summary(as_lmerModLmerTest(m))`` (Satterthwaite) and ``summary(m, ddf = "Kenward-Roger")``
is measured in the same run, and the df are compared.

    python benchmarks/bench_ddf.py [--cases a,b] [--reps 5] [--no-r]

Measured on the 2-core worker (November 2026, other jobs running): crossed_100 Satterthwaite
~35 ms (lmerTest ~220 ms), Kenward-Roger ~30 ms (pbkrtest ~21 s: it inverts the n x n
marginal covariance); slope_1000 Satterthwaite ~60 ms (lmerTest ~520 ms), Kenward-Roger ~18 ms
(pbkrtest ~2.2 s). Kenward-Roger with several random-effect terms uses dense Q x Q algebra,
O(Q^3): ~1 s at Q = 950, ~7 s at Q = 2050 random effects (limit 3000); with one term it is
batched over clusters and linear in their number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import glmm_nb  # noqa: E402
from glmm_nb.inference.ddf import ddf_table  # noqa: E402


def simulate(case: str, seed: int = 15) -> tuple[pd.DataFrame, str]:
    rng = np.random.default_rng(seed)
    if case == "crossed_100":
        J, per, H = 100, 10, 20
        g = np.repeat(np.arange(J), per)
        h = rng.integers(0, H, J * per)
        formula = "y ~ x + z + (1 + x | g) + (1 | h)"
    elif case == "slope_1000":
        J, per, H = 1000, 10, 1
        g = np.repeat(np.arange(J), per)
        h = np.zeros(J * per, dtype=int)
        formula = "y ~ x + z + (1 + x | g)"
    else:
        raise SystemExit(f"unknown case {case}")
    n = g.size
    x, z = rng.normal(size=n), rng.normal(size=n)
    L = np.linalg.cholesky(np.array([[1.0, 0.2], [0.2, 0.3]]))
    b = rng.normal(size=(J, 2)) @ L.T
    c = 0.5 * rng.normal(size=H)
    y = 1.0 + 0.4 * x - 0.3 * z + b[g, 0] + b[g, 1] * x + c[h] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "z": z, "g": [f"g{k}" for k in g], "h": [f"h{k}" for k in h]})
    return df, formula


def time_py(m, ddf: str, reps: int) -> tuple[float, pd.DataFrame]:
    times, tab = [], None
    for _ in range(reps):
        fresh = dataclasses.replace(m)  # a new object: no cached Hessian / KR matrices
        t0 = time.perf_counter()
        tab = ddf_table(fresh, ddf=ddf)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), tab


_R = r"""
suppressMessages({{library(lmerTest); library(pbkrtest)}})
d <- read.csv("{path}")
m <- lme4::lmer({formula}, data = d)
med <- function(f) median(sapply(1:{reps}, function(i) system.time(f())[["elapsed"]]))
t_s <- med(function() summary(as_lmerModLmerTest(m)))
t_k <- med(function() summary(as_lmerModLmerTest(m), ddf = "Kenward-Roger"))
s <- summary(as_lmerModLmerTest(m))$coefficients
k <- summary(as_lmerModLmerTest(m), ddf = "Kenward-Roger")$coefficients
cat(jsonlite::toJSON(list(t_satt = t_s, t_kr = t_k, df_satt = unname(s[, "df"]), df_kr = unname(k[, "df"])),
                     digits = NA, auto_unbox = TRUE))
"""


def run_r(df: pd.DataFrame, formula: str, reps: int) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        df.to_csv(path, index=False)
        script = Path(tmp) / "b.R"
        script.write_text(_R.format(path=path, formula=formula, reps=reps))
        res = subprocess.run(["Rscript", str(script)], capture_output=True, text=True, timeout=3600)
        if res.returncode != 0:
            print("R failed:", res.stderr.strip().splitlines()[-1:] or res.stderr)
            return None
        return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="crossed_100,slope_1000")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    for case in args.cases.split(","):
        df, formula = simulate(case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = glmm_nb.glmm(formula, df, family="gaussian")
        ncov = len(m.theta) + 1
        t_s, tab_s = time_py(m, "satterthwaite", args.reps)
        t_k, tab_k = time_py(m, "kenward-roger", args.reps)
        print(f"{case}: n={m.nobs}, groups={m.ngroups}, {ncov} covariance parameters, p={len(m.fixef)}")
        flag = "OK" if (case != "crossed_100" or t_s < 0.2) else "ABOVE TARGET 0.2 s"
        print(f"  glmm_nb Satterthwaite {t_s * 1e3:8.1f} ms  [{flag}]")
        print(f"  glmm_nb Kenward-Roger {t_k * 1e3:8.1f} ms")
        r = None if args.no_r else run_r(df, formula, max(1, min(args.reps, 3)))
        if r:
            print(f"  lmerTest Satterthwaite {r['t_satt'] * 1e3:7.1f} ms  (ratio glmm_nb/R {t_s / r['t_satt']:.3f})")
            print(f"  pbkrtest Kenward-Roger {r['t_kr'] * 1e3:7.1f} ms  (ratio glmm_nb/R {t_k / r['t_kr']:.3f})")
            ds = np.max(np.abs(tab_s["df"].to_numpy() / np.array(r["df_satt"]) - 1))
            dk = np.max(np.abs(tab_k["df"].to_numpy() / np.array(r["df_kr"]) - 1))
            print(f"  max relative df difference vs R: Satterthwaite {ds:.1e}, Kenward-Roger {dk:.1e}")


if __name__ == "__main__":
    main()
