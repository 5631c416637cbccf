"""Gaussian LMMs against mixedlm (Rust), alternating fresh processes in the same run (issue 28).

* ``slope``: ``y ~ x + z + (1 + x | g)``, 200,000 rows, 4,000 clusters, ML (bench_peers' data);
* ``intercept``: ``y ~ x + z + (1 | g)``, the same data, ML;
* ``insteval``: ``y ~ service + (1 | s) + (1 | d) + (1 | dept:service)``, REML, lme4's InstEval
  (bench_peers.insteval: exported by Rscript, else a simulated data set of its shape).

Every fit runs in a fresh process after a warm-up fit of the same model; the packages alternate
(glmm_nb, mixedlm, glmm_nb, ...) so that a change of the machine's load hits both alike.
``--load N`` starts N busy-looping processes beside the fits; ``--threads one`` pins every pool
(OMP, OpenBLAS, MKL, numba) to one thread, ``default`` leaves them alone. ``--root`` points at
another checkout of glmm_nb (before/after comparisons in one run).

    python benchmarks/bench_lmm.py --cases slope insteval --reps 3 [--load 2] [--threads default]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from bench_peers import busy, insteval, simulate

ROOT = str(Path(__file__).resolve().parents[1])
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
FORMULA = {
    "slope": ("y ~ x + z + (1 + x | g)", False, ["g"]),
    "intercept": ("y ~ x + z + (1 | g)", False, ["g"]),
    "insteval": ("y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", True, ["s", "d", "dept", "service"]),
}

RUNNER = r'''
import json, sys, time
sys.path.insert(0, sys.argv[4])
import pandas as pd
pkg, path, case = sys.argv[1:4]
formula, reml = json.loads(sys.argv[5])
d = pd.read_pickle(path)

def fit():
    if pkg == "glmm_nb":
        import glmm_nb
        m = glmm_nb.glmm(formula, d, family="gaussian", reml=reml)
        return m.loglik, m.opt.evaluations
    import mixedlm
    m = mixedlm.lmer(formula, d.astype({c: str for c in d.columns if str(d[c].dtype) == "category"}), REML=reml)
    return float(m.logLik().value), None

fit()
t0, c0 = time.perf_counter(), time.process_time()
ll, ev = fit()
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0, "loglik": ll, "evals": ev}))
'''


def data(case: str) -> pd.DataFrame:
    if case == "insteval":
        d = insteval()
        for c in ("s", "d", "dept", "service"):
            d[c] = pd.Categorical(d[c].astype(str))
        return d[["y", "s", "d", "dept", "service"]]
    d = simulate("lmm_slope_200k")
    return d.assign(g=pd.Categorical(d.g.astype(str)))


def run(pkg: str, path: Path, case: str, threads: str, root: str) -> dict:
    env = dict(os.environ, **(ONE_THREAD if threads == "one" else {}))
    formula, reml, _ = FORMULA[case]
    out = subprocess.run([sys.executable, "-c", RUNNER, pkg, str(path), case, root, json.dumps([formula, reml])],
                         env=env, capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=["slope", "insteval"], choices=list(FORMULA))
    ap.add_argument("--packages", nargs="*", default=["glmm_nb", "mixedlm"])
    ap.add_argument("--roots", nargs="*", default=[ROOT], help="glmm_nb checkouts, compared in the same run")
    ap.add_argument("--threads", choices=["one", "default", "both"], default="one",
                    help="both: glmm_nb alternately pinned to one thread and with default threads")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--load", type=int, default=0)
    a = ap.parse_args()
    with busy(a.load), tempfile.TemporaryDirectory() as tmp:
        print(f"threads: {a.threads}; load: {a.load}; medians of {a.reps} alternating fresh processes; "
              f"loadavg {os.getloadavg()[0]:.2f}")
        for case in a.cases:
            path = Path(tmp) / f"{case}.pkl"
            data(case).to_pickle(path)
            thr = ["one", "default"] if a.threads == "both" else [a.threads]
            who = [(p, r, t) for p in a.packages for r in (a.roots if p == "glmm_nb" else [None])
                   for t in (thr if p == "glmm_nb" else thr[-1:])]
            res = {w: [] for w in who}
            for _ in range(a.reps):
                for pkg, root, t in who:
                    res[(pkg, root, t)].append(run(pkg, path, case, t, root or ROOT))
            for (pkg, root, t), runs in res.items():
                secs = [r["seconds"] for r in runs]
                cpu = [r["cpu"] for r in runs]
                name = pkg if root is None or len(a.roots) == 1 else f"{pkg}@{Path(root).name}"
                name += f" ({t})" if a.threads == "both" else ""
                print(f"{case:<10} {name:<24} {statistics.median(secs):8.3f} s (cpu {statistics.median(cpu):7.3f})"
                      f"  loglik {runs[0]['loglik']:.6f}  evals {runs[0]['evals']}  all {[round(s, 3) for s in secs]}",
                      flush=True)
        print(f"loadavg at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
