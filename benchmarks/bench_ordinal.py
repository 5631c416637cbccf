"""Speed of ordinal (cumulative-logit) mixed-model fits against R's ``ordinal::clmm`` (issue 14).

Simulated data: 50,000 rows, 1,000 clusters, 5 categories, random intercept (SD 0.8), two
covariates (one continuous, one binary). glmm_nb fits through ``glmm(..., family="ordinal")``
(the whole public chain, result built) in a fresh process; when ``Rscript``
with the ``ordinal`` package is installed, ``clmm`` fits the same CSV in the same run (median
of ``--r-reps`` fits) and the ratio and the log-likelihood difference are printed.
Target: glmm_nb ≤ 0.2 × clmm's time (Laplace).

    python benchmarks/bench_ordinal.py [--cases laplace,agq10] [--no-r] [--r-reps 1]
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

HERE = Path(__file__).resolve().parent
FORMULA = "y ~ x + z + (1 | g)"
CASES = {"laplace": ("laplace", 1), "agq10": ("agq", 10)}
TARGETS = {"laplace": 0.2}


def simulate(n: int = 50_000, J: int = 1_000, seed: int = 1) -> pd.DataFrame:
    """Latent-logistic simulation: Y = #{k : α_k < η + ε}, ε logistic, so logit P(Y ≤ k) = α_k − η."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    z = rng.integers(0, 2, n)
    eta = 0.6 * x - 0.4 * z + 0.8 * rng.normal(size=J)[g]
    alpha = np.array([-1.5, -0.3, 0.7, 1.8])
    u = rng.random(n)
    latent = eta + np.log(u / (1 - u))
    y = np.sum(latent[:, None] > alpha[None, :], axis=1) + 1
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g})


_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import pandas as pd
from glmm_nb import glmm
df = pd.read_csv({path!r})
df["y"] = pd.Categorical(df["y"], categories=[1, 2, 3, 4, 5], ordered=True)
df["g"] = pd.Categorical(df["g"])
t0 = time.perf_counter()
m = glmm({formula!r}, df, family="ordinal", method={method!r}, nagq={nagq})
el = time.perf_counter() - t0
print(json.dumps(dict(time=el, loglik=m.loglik, converged=bool(m.converged),
                      sd=float(m.varcorr().sdcor.iloc[0]), beta=m.fixef.tolist(), thresholds=m.thresholds.tolist())))
"""


_R = r"""
suppressMessages(library(ordinal))
d <- read.csv("{path}")
d$y <- factor(d$y, levels = 1:5, ordered = TRUE)
d$g <- factor(d$g)
ts <- c()
for (i in seq_len({reps})) {{
  t0 <- proc.time()[["elapsed"]]
  m <- clmm({formula}, data = d, nAGQ = {nagq})
  ts <- c(ts, proc.time()[["elapsed"]] - t0)
}}
cat(sprintf('{{"time": %.4f, "loglik": %.6f, "sd": %.6f}}\n', median(ts), as.numeric(logLik(m)),
            as.numeric(attr(VarCorr(m)$g, "stddev"))))
"""


def r_available() -> bool:
    if not shutil.which("Rscript"):
        return False
    return subprocess.run(["Rscript", "-e", "library(ordinal)"], capture_output=True).returncode == 0


def run_case(case: str, path: Path, use_r: bool, r_reps: int) -> dict:
    method, nagq = CASES[case]
    child = _CHILD.format(root=str(HERE.parent), path=str(path), formula=FORMULA, method=method, nagq=nagq)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    res = {"case": case, **json.loads(out.stdout.strip().splitlines()[-1])}
    if use_r:
        rcode = _R.format(path=str(path), reps=r_reps, formula=FORMULA, nagq=nagq)
        rout = subprocess.run(["Rscript", "-e", rcode], capture_output=True, text=True)
        if rout.returncode == 0:
            r = json.loads(rout.stdout.strip().splitlines()[-1])
            res.update(r_time=r["time"], r_loglik=r["loglik"], r_sd=r["sd"], ratio=res["time"] / r["time"],
                       loglik_diff=res["loglik"] - r["loglik"])
        else:
            res["r_error"] = rout.stderr.strip().splitlines()[-1:]
    return res


def report(res: dict, target: float | None) -> None:
    line = (f"{res['case']:8s} glmm_nb {res['time']:7.2f} s  logLik {res['loglik']:.3f}  "
            f"SD {res['sd']:.4f}  converged {res['converged']}")
    if "r_time" in res:
        line += (f"  | clmm {res['r_time']:7.2f} s  logLik {res['r_loglik']:.3f}  SD {res['r_sd']:.4f}  "
                 f"ratio {res['ratio']:.3f}  ΔlogLik {res['loglik_diff']:+.4f}")
        if target:
            line += f"  target ≤ {target}: {'met' if res['ratio'] <= target else 'MISSED'}"
    elif "r_error" in res:
        line += f"  | clmm failed: {res['r_error']}"
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--r-reps", type=int, default=1)
    args = ap.parse_args()
    use_r = not args.no_r and r_available()
    if not use_r:
        print("(Rscript with the ordinal package not found: timing glmm_nb only)")
    df = simulate()
    print(f"simulated: {len(df):,d} rows, {df['g'].nunique():,d} clusters, {df['y'].nunique()} categories; "
          f"formula {FORMULA}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ordinal.csv"
        df.to_csv(path, index=False)
        for case in args.cases.split(","):
            report(run_case(case, path, use_r, args.r_reps), TARGETS.get(case))


if __name__ == "__main__":
    main()
