"""Speed of negative binomial, Gamma, beta, beta-binomial, Tweedie and zero-inflated Poisson
models with random effects in the zero part (``zip_re_*``: the joint Laplace, analytic gradient) against
glmmTMB (issues "Negative binomial, Gamma and beta mixed models" and "The rest of glmmTMB's
model space").

Each case is simulated with a fixed seed and fitted by glmm_nb (fresh process) and — when
``Rscript`` with glmmTMB is installed — by ``glmmTMB`` on the same data in the same run,
printing the time ratio and the log-likelihood difference (glmm_nb − glmmTMB; never below
−1e-3 is the target).

    python benchmarks/bench_families.py [--cases a,b] [--no-r]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_laplace import time_glmm_nb  # noqa: E402

CASES = {  # case: (rows, clusters, formula, glmm_nb family, glmmTMB family, target ratio)
    "nb2_ri_100k": (100_000, 2_000, "y ~ x1 + x2 + (1 | g)", "negative_binomial", "nbinom2", 0.1),
    "gamma_ri_100k": (100_000, 2_000, "y ~ x1 + x2 + (1 | g)", "gamma", "Gamma(link = 'log')", 0.1),
    "beta_slope_50k": (50_000, 1_000, "y ~ x1 + x2 + (1 + x1 | g)", "beta", "beta_family()", 0.2),
    "zinb2_ri_100k": (100_000, 2_000, "y ~ x1 + x2 + (1 | g)", "negative_binomial", "nbinom2", 0.2),
    "betabin_ri_100k": (100_000, 2_000, "cbind(k, n - k) ~ x1 + x2 + (1 | g)", "betabinomial", "betabinomial", 0.1),
    "tweedie_ri_100k": (100_000, 2_000, "y ~ x1 + x2 + (1 | g)", "tweedie", "tweedie", 0.1),
    # random effects in the zero part (the joint Laplace of likelihood/zire.py): on the count part's
    # factor (one block-diagonal term) and on another, crossed factor h (the Schur path)
    "zip_re_same_10k": (10_000, 1_000, "y ~ x1 + (1 | g)", "poisson", "poisson", 0.1),
    "zip_re_other_10k": (10_000, 1_000, "y ~ x1 + (1 | g)", "poisson", "poisson", 0.1),
}
ZI = {"zinb2_ri_100k": "~ x1", "zip_re_same_10k": "~ x1 + (1 | g)", "zip_re_other_10k": "~ x1 + (1 | h)"}


def simulate(case: str, seed: int = 1) -> pd.DataFrame:
    n, J, *_ = CASES[case]
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    b0 = rng.normal(0, 0.5, J)[g]
    if case.startswith("zip_re"):  # ZIP, 50 levels of h crossed with g; logit pi = -0.8 + 0.5 x1 + b_z
        h = rng.integers(0, 50, n)
        zeta = -0.8 + 0.5 * x1 + (rng.normal(0, 0.8, J)[g] if "same" in case else rng.normal(0, 0.8, 50)[h])
        y = np.where(rng.random(n) < 1 / (1 + np.exp(-zeta)), 0, rng.poisson(np.exp(0.6 + 0.3 * x1 + b0)))
        return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g, "h": h})
    if case.startswith("nb2") or case.startswith("zinb2"):
        mu = np.exp(0.5 + 0.3 * x1 - 0.2 * x2 + b0)
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
        if case in ZI:  # structural zeros with logit pi = -1 + 0.5 x1
            y = np.where(rng.random(n) < 1 / (1 + np.exp(1.0 - 0.5 * x1)), 0, y)
    elif case.startswith("betabin"):  # trials 1-20, logit pi = -0.5 + 0.4 x1 - 0.2 x2 + b, phi = 6
        trials = rng.integers(1, 21, n)
        mu = 1 / (1 + np.exp(-(-0.5 + 0.4 * x1 - 0.2 * x2 + b0)))
        k = rng.binomial(trials, rng.beta(mu * 6, (1 - mu) * 6))
        return pd.DataFrame({"k": k, "n": trials, "x1": x1, "x2": x2, "g": g})
    elif case.startswith("tweedie"):  # compound Poisson-gamma, phi = 1.2, power 1.5
        mu = np.exp(0.4 + 0.5 * x1 - 0.2 * x2 + b0)
        p, phi = 1.5, 1.2
        counts = rng.poisson(mu ** (2 - p) / (phi * (2 - p)))
        y = rng.gamma((2 - p) / (p - 1) * counts, phi * (p - 1) * mu ** (p - 1))
    elif case.startswith("gamma"):
        mu = np.exp(1.0 + 0.3 * x1 - 0.2 * x2 + b0)
        y = rng.gamma(4.0, mu / 4.0)
    else:
        b1 = rng.normal(0, 0.3, J)[g]
        mu = 1 / (1 + np.exp(-(-0.3 + (0.5 + b1) * x1 - 0.4 * x2 + b0)))
        y = np.clip(rng.beta(mu * 12, (1 - mu) * 12), 1e-6, 1 - 1e-6)
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g})


_R = r"""
suppressMessages(library(glmmTMB))
d <- read.csv("{path}")
d$g <- factor(d$g)
if (!is.null(d$h)) d$h <- factor(d$h)
t0 <- proc.time()[["elapsed"]]
m <- glmmTMB({formula}, data = d, family = {family}{zi})
el <- proc.time()[["elapsed"]] - t0
cat(sprintf('{{"time": %.4f, "loglik": %.6f, "sigma": %.6f}}\n', el, as.numeric(logLik(m)), sigma(m)))
"""


def r_available() -> bool:
    return bool(shutil.which("Rscript")) and subprocess.run(
        ["Rscript", "-e", "library(glmmTMB)"], capture_output=True).returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    use_r = not args.no_r and r_available()
    if not use_r:
        print("(Rscript with glmmTMB not found: timing glmm_nb only)")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            n, J, formula, fam, r_fam, target = CASES[case]
            path = Path(tmp) / f"{case}.csv"
            simulate(case).to_csv(path, index=False)
            res = time_glmm_nb(path, ["g", "h"] if case.startswith("zip_re") else ["g"], formula, fam,
                               ziformula=ZI.get(case))
            line = (f"{case:16s} rows={n:>8,d}  glmm_nb {res['time']:6.2f} s  peak {res['peak_mb']:6.0f} MB  "
                    f"logLik {res['loglik']:.3f}")
            if use_r:
                zi = f", ziformula = {ZI[case]}" if case in ZI else ""
                rout = subprocess.run(["Rscript", "-e", _R.format(path=path, formula=formula, family=r_fam, zi=zi)],
                                      capture_output=True, text=True)
                if rout.returncode == 0:
                    r = json.loads(rout.stdout.strip().splitlines()[-1])
                    ratio = res["time"] / r["time"]
                    line += (f"  | glmmTMB {r['time']:6.2f} s  logLik {r['loglik']:.3f}  ratio {ratio:.3f}  "
                             f"ΔlogLik {res['loglik'] - r['loglik']:+.4f}  target ≤ {target}: "
                             f"{'met' if ratio <= target and res['loglik'] - r['loglik'] >= -1e-3 else 'MISSED'}")
                else:
                    line += f"  | glmmTMB failed: {rout.stderr.strip().splitlines()[-1:]}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
