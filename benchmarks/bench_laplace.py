"""Speed of Laplace fits against R's lme4 on simulated data (issue "Estimation core").

Each case is simulated with a fixed seed, fitted by glmm_nb in a fresh process (fit time,
peak RSS, log-likelihood, and the fit's stages from ``m.timings``), and — when ``Rscript``
with lme4 is installed — fitted by ``glmer`` on the same data in the same run (median of
``--r-reps`` fits), printing the ratio. The fit time starts after glmm_nb has loaded: since
``import glmm_nb`` became lazy (PEP 562) its first ``glmm_nb.glmm`` loads the package, which
the child times apart ("import"). Counting that load as fit time is what made
poisson_crossed_50k look twice as slow (0.49 -> 0.97-1.10 s) in December 2026; the fit itself
had not changed (CPU time per warm fit equal at 1678bc6 and 5790cc2).

    python benchmarks/bench_laplace.py [--cases a,b] [--no-r]
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
sys.path.insert(0, str(HERE.parent))


def simulate(case: str, seed: int = 1) -> tuple[pd.DataFrame, str, str]:
    rng = np.random.default_rng(seed)
    if case in ("logit_ri_100k", "logit_ri_1m"):
        n, J = (100_000, 2_000) if case == "logit_ri_100k" else (1_000_000, 20_000)
        g = rng.integers(0, J, n)
        X = rng.normal(size=(n, 5))
        eta = -0.5 + X @ np.array([0.3, -0.2, 0.1, 0.4, -0.3]) + rng.normal(size=J)[g]
        df = pd.DataFrame(X, columns=[f"x{k}" for k in range(1, 6)])
        df["g"] = g
        df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
        return df, "y ~ x1 + x2 + x3 + x4 + x5 + (1 | g)", "binomial"
    if case in ("logit_slope_50k", "agq_slope_20k"):
        n, J = (50_000, 1_000) if case == "logit_slope_50k" else (20_000, 1_000)
        g = rng.integers(0, J, n)
        x = rng.normal(size=n)
        L = np.linalg.cholesky(np.array([[1.0, 0.15], [0.15, 0.25]]))
        b = rng.normal(size=(J, 2)) @ L.T
        eta = -0.3 + b[g, 0] + (0.5 + b[g, 1]) * x
        df = pd.DataFrame({"x": x, "g": g})
        df["y"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
        return df, "y ~ x + (1 + x | g)", "binomial"
    if case == "poisson_crossed_50k":
        n = 50_000
        a = rng.integers(0, 500, n)
        bb = rng.integers(0, 200, n)
        x = rng.normal(size=n)
        eta = 0.5 + 0.2 * x + 0.4 * rng.normal(size=500)[a] + 0.3 * rng.normal(size=200)[bb]
        df = pd.DataFrame({"x": x, "a": a, "b": bb, "y": rng.poisson(np.exp(eta))})
        return df, "y ~ x + (1 | a) + (1 | b)", "poisson"
    raise SystemExit(f"unknown case {case}")


CASES = ["logit_ri_100k", "logit_slope_50k", "poisson_crossed_50k", "logit_ri_1m"]
TARGETS = {"logit_ri_100k": 0.04, "logit_slope_50k": 0.1, "poisson_crossed_50k": 0.2}

_CHILD = r"""
import json, resource, sys, time, warnings
sys.path.insert(0, {root!r})
import pandas as pd
import glmm_nb
glmm_nb.glmm  # the API's imports (scipy.stats …, ~1-3 s) before the clock starts: R's library() is not timed either
df = pd.read_parquet({path!r}) if {path!r}.endswith('.parquet') else pd.read_csv({path!r})
for c in {factors!r}:
    df[c] = pd.Categorical(df[c])
t0 = time.perf_counter()
glmm = glmm_nb.glmm  # the package loads on first use (PEP 562): start-up, timed apart from the fit
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
m = glmm({formula!r}, df, family={family!r}, method={method!r}, nagq={nagq}, ziformula={ziformula!r})
el = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(time=el, peak_mb=peak, loglik=m.loglik, converged=m.converged, import_time=t_import,
                      stages=m.timings.as_dict())))
"""

_R = r"""
suppressMessages(library(lme4))
d <- read.csv("{path}")
for (c in c({factors})) d[[c]] <- factor(d[[c]])
ts <- c()
for (i in seq_len({reps})) {{
  t0 <- proc.time()[["elapsed"]]
  m <- glmer({formula}, data = d, family = {family}, nAGQ = {nagq})
  ts <- c(ts, proc.time()[["elapsed"]] - t0)
}}
cat(sprintf('{{"time": %.4f, "loglik": %.6f}}\n', median(ts), as.numeric(logLik(m))))
"""


def time_glmm_nb(path: Path, factors, formula: str, family: str, method="laplace", nagq=1, ziformula=None) -> dict:
    """Fit in a fresh process: time, peak RSS (MB), log-likelihood, convergence."""
    child = _CHILD.format(root=str(HERE.parent), path=str(path), factors=list(factors), formula=formula,
                          family=family, method=method, nagq=nagq, ziformula=ziformula)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case(case: str, tmp: Path, use_r: bool, r_reps: int, method="laplace", nagq=1) -> dict:
    df, formula, family = simulate(case)
    factors = [c for c in ("g", "a", "b") if c in df.columns]
    path = tmp / f"{case}.csv"
    df.to_csv(path, index=False)
    res = {"case": case, "rows": len(df), **time_glmm_nb(path, factors, formula, family, method, nagq)}
    if use_r:
        rcode = _R.format(path=str(path), factors=", ".join(f'"{f}"' for f in factors), reps=r_reps,
                          formula=formula, family=family, nagq=nagq)
        rout = subprocess.run(["Rscript", "-e", rcode], capture_output=True, text=True)
        if rout.returncode == 0:
            r = json.loads(rout.stdout.strip().splitlines()[-1])
            res.update(r_time=r["time"], r_loglik=r["loglik"], ratio=res["time"] / r["time"],
                       loglik_diff=res["loglik"] - r["loglik"])
        else:
            res["r_error"] = rout.stderr.strip().splitlines()[-1:]
    return res


def r_available() -> bool:
    if not shutil.which("Rscript"):
        return False
    return subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True).returncode == 0


def report(res: dict, target: float | None) -> None:
    line = (f"{res['case']:22s} rows={res['rows']:>9,d}  glmm_nb {res['time']:7.2f} s  "
            f"peak {res['peak_mb']:7.0f} MB  logLik {res['loglik']:.3f}")
    st = res.get("stages")
    if st:  # where the time went: a regression shows its stage
        line += ("\n" + " " * 23 + f"import {res['import_time']:.2f} s (not in the fit time); "
                 + ", ".join(f"{k} {st[k]:.3f}" for k in ("design", "checks", "starts", "optimizer", "agq", "hessian",
                                                           "result") if st[k] or k != "agq")
                 + f" s; {st['evaluations']} evaluations")
    if "r_time" in res:
        line += (f"  | lme4 {res['r_time']:7.2f} s  logLik {res['r_loglik']:.3f}  "
                 f"ratio {res['ratio']:.3f}  ΔlogLik {res['loglik_diff']:+.4f}")
        if target:
            line += f"  target ≤ {target}: {'met' if res['ratio'] <= target else 'MISSED'}"
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--r-reps", type=int, default=1)
    args = ap.parse_args()
    use_r = not args.no_r and r_available()
    if not use_r:
        print("(Rscript with lme4 not found: timing glmm_nb only)")
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            res = run_case(case, Path(tmp), use_r and case != "logit_ri_1m", args.r_reps)
            report(res, TARGETS.get(case))
            if case == "logit_ri_1m":
                ok = res["time"] < 15 and res["peak_mb"] < 1536
                print(f"{'':22s} target < 15 s and < 1.5 GB: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
