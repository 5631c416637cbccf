"""Speed of zero-inflated fits with random effects in the zero part (issue 27 item 6).

A ZIP with ``(1 | g)`` in both parts (simulated, fixed seed): glmm_nb's joint Laplace and AGQ
(``nagq`` points per dimension over each cluster's two effects) against glmmTMB's Laplace fit of
the same data in the same run, each in a fresh process; prints times, log-likelihoods and the
ratios to glmmTMB (glmmTMB has no AGQ: the AGQ ratio is what the exact-integral fit costs
against glmmTMB's approximate one).

    python benchmarks/bench_zi_re.py [--n 10000] [--clusters 500] [--nagq 5] [--no-r]
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

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import pandas as pd
import glmm_nb
d = pd.read_csv({path!r})
d["g"] = d["g"].astype(str)
t0 = time.perf_counter()
m = glmm_nb.glmm("y ~ x + (1 | g)", d, family="poisson", ziformula="~ x + (1 | g)", method={method!r}, nagq={nagq})
print(json.dumps(dict(time=time.perf_counter() - t0, loglik=m.loglik, converged=bool(m.converged))))
"""

_R = r"""
suppressMessages(library(glmmTMB))
d <- read.csv("{path}"); d$g <- factor(d$g)
t0 <- Sys.time()
m <- glmmTMB(y ~ x + (1 | g), ziformula = ~ x + (1 | g), family = poisson, data = d)
cat(sprintf('{{"time": %.6f, "loglik": %.10f}}', as.numeric(Sys.time() - t0, units = "secs"), as.numeric(logLik(m))))
"""


def simulate(n: int, J: int, seed: int = 27) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    bc, bz = rng.normal(0, 0.6, J), rng.normal(0, 0.9, J)
    mu = np.exp(0.7 + 0.3 * x + bc[g])
    pz = 1 / (1 + np.exp(-(-0.8 + 0.5 * x + bz[g])))
    y = np.where(rng.random(n) < pz, 0, rng.poisson(mu))
    return pd.DataFrame({"y": y, "x": x.round(6), "g": [f"c{k:04d}" for k in g]})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--clusters", type=int, default=500)
    ap.add_argument("--nagq", type=int, default=5)
    ap.add_argument("--no-r", action="store_true")
    args = ap.parse_args()
    use_r = not args.no_r and shutil.which("Rscript") is not None
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "zi_re.csv")
        simulate(args.n, args.clusters).to_csv(path, index=False)
        out = {}
        for label, method, nagq in (("laplace", "laplace", 1), (f"agq{args.nagq}", "agq", args.nagq)):
            code = _CHILD.format(root=str(ROOT), path=path, method=method, nagq=nagq)
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            out[label] = json.loads(run.stdout.strip().splitlines()[-1])
        if use_r:
            run = subprocess.run(["Rscript", "-e", _R.format(path=path)], capture_output=True, text=True)
            if run.returncode == 0:
                out["glmmTMB"] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"ZIP, (1 | g) in both parts: {args.n:,} rows, {args.clusters:,} clusters")
    ref = out.get("glmmTMB")
    for label, r in out.items():
        ratio = f"  ratio to glmmTMB {r['time'] / ref['time']:.2f}" if ref and label != "glmmTMB" else ""
        print(f"  {label:>8}: {r['time']:7.2f} s  logLik {r['loglik']:.4f}{ratio}")


if __name__ == "__main__":
    main()
