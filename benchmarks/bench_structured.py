"""Poisson GLMM with AR(1) random effects over 8 visits, 2,500 subjects (20,000 rows):
glmm_nb against glmmTMB 1.1.5 on the same data in the same run (issue 26's speed target:
glmm_nb ≤ 0.1 × glmmTMB).

    python benchmarks/bench_structured.py [--subjects 2500] [--reps 3]

Simulates log μ = 0.2 + 0.3 x + b_{id,t}, b_id ~ AR(1) (SD 0.6, ρ 0.7), writes a CSV, times
``glmmTMB(y ~ x + ar1(timef + 0 | id), family = poisson)`` with Rscript (median of --reps) and
``glmm_nb.glmm`` (median of --reps), and prints both log-likelihoods and the ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import glmm_nb

R_CODE = r"""
suppressMessages(library(glmmTMB))
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$timef <- factor(d$timef); d$id <- factor(d$id)
secs <- c()
for (i in seq_len(as.integer(args[2]))) {
  t0 <- Sys.time()
  m <- glmmTMB(y ~ x + ar1(timef + 0 | id), data = d, family = poisson)
  secs <- c(secs, as.numeric(Sys.time() - t0, units = "secs"))
}
cat(jsonlite::toJSON(list(seconds = median(secs), loglik = as.numeric(logLik(m)),
                          fixef = unname(fixef(m)$cond)), digits = NA, auto_unbox = TRUE))
"""


def simulate(J: int, K: int = 8, seed: int = 26) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rho, sd = 0.7, 0.6
    b = np.empty((J, K))
    b[:, 0] = rng.normal(0, sd, J)
    for k in range(1, K):
        b[:, k] = rho * b[:, k - 1] + rng.normal(0, sd * np.sqrt(1 - rho**2), J)
    ids = np.repeat(np.arange(J), K)
    t = np.tile(np.arange(K), J)
    x = rng.normal(size=J * K)
    y = rng.poisson(np.exp(0.2 + 0.3 * x + b[ids, t]))
    return pd.DataFrame({"id": [f"s{i:05d}" for i in ids], "timef": [f"t{k + 1}" for k in t], "x": x, "y": y})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=2500)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    d = simulate(a.subjects)
    with tempfile.TemporaryDirectory() as tmp:
        csv, rfile = Path(tmp) / "ar1.csv", Path(tmp) / "bench.R"
        d.to_csv(csv, index=False)
        rfile.write_text(R_CODE)
        r = json.loads(subprocess.run(["Rscript", str(rfile), str(csv), str(a.reps)], check=True,
                                      capture_output=True, text=True).stdout)
    d["timef"] = pd.Categorical(d["timef"])
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        m = glmm_nb.glmm("y ~ x + ar1(timef + 0 | id)", d, family="poisson", control={"progress": False})
        times.append(time.perf_counter() - t0)
    ours = float(np.median(times))
    print(f"rows {len(d)}, subjects {a.subjects}, median of {a.reps}")
    print(f"glmmTMB 1.1.5: {r['seconds']:.2f} s  logLik {r['loglik']:.6f}  fixef {np.round(r['fixef'], 6)}")
    print(f"glmm_nb:       {ours:.2f} s  logLik {m.loglik:.6f}  fixef {np.round(m.fixef.to_numpy(), 6)}")
    print(f"ratio glmm_nb / glmmTMB = {ours / r['seconds']:.3f}  (target ≤ 0.1); {m.structure_text()}")


if __name__ == "__main__":
    main()
