"""Per-fit cost of the one-factor Laplace GLMM fits of issue 28 (bench_peers' data), before
and after a change: each fit in a fresh process pinned to one thread, after a warm-up fit,
alternating the two source trees, medians over ``--reps``.

    python benchmarks/bench_laplace_eval.py --before /path/to/old/tree --reps 3
    python benchmarks/bench_laplace_eval.py --profile nb2_100k     # cProfile of one fit

Prints wall and CPU seconds (CPU time is the steadier figure on a shared machine), the log-likelihood of each tree and their difference (same optimum: < 1e-6).
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_peers import CASES, ONE_THREAD, simulate  # noqa: E402

RUNNER = r'''
import json, sys, time
import pandas as pd
path, family, profile = sys.argv[1:4]
d = pd.read_parquet(path)
import glmm_nb
fit = lambda: glmm_nb.glmm("y ~ x + z + (1 | g)", d, family=family)
fit()
if profile == "1":
    import cProfile, pstats
    pr = cProfile.Profile(time.process_time); pr.enable(); m = fit(); pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(40)
    sys.exit()
c0, t0 = time.process_time(), time.perf_counter(); m = fit(); t, c = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": t, "cpu": c, "loglik": float(m.loglik)}))
'''

GLMM_CASES = [c for c in CASES if CASES[c][2] != "gaussian"]


def run(tree: str, path: Path, family: str, profile: bool = False) -> dict | str:
    env = dict(os.environ, **ONE_THREAD, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", RUNNER, str(path), family, "1" if profile else "0"], env=env,
                         capture_output=True, text=True, cwd=tree, timeout=3600)
    if profile:
        return out.stdout + out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(lines[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=GLMM_CASES, choices=GLMM_CASES)
    ap.add_argument("--before", help="the source tree to compare with")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profile", help="cProfile one fit of this case (this tree)")
    a = ap.parse_args()
    after = str(HERE.parent)
    with tempfile.TemporaryDirectory() as tmp:
        if a.profile:
            path = Path(tmp) / "d.parquet"
            simulate(a.profile).to_parquet(path)
            print(run(after, path, CASES[a.profile][2], profile=True))
            return
        trees = [("after", after)] + ([("before", a.before)] if a.before else [])
        for name in a.cases:
            path = Path(tmp) / f"{name}.parquet"
            simulate(name).to_parquet(path)
            res = {t: [] for t, _ in trees}
            for _ in range(a.reps):
                for t, tree in (trees if _ % 2 == 0 else trees[::-1]):
                    res[t].append(run(tree, path, CASES[name][2]))
            cells = []
            for t, _tree in trees:
                secs = statistics.median(r["seconds"] for r in res[t])
                cpu = statistics.median(r["cpu"] for r in res[t])
                cells.append(f"{t} {secs:6.3f} s (cpu {cpu:6.3f})  ll {res[t][0]['loglik']:.8f}")
            if a.before:
                d = res["after"][0]["loglik"] - res["before"][0]["loglik"]
                ratio = statistics.median(r["seconds"] for r in res["after"]) / statistics.median(
                    r["seconds"] for r in res["before"])
                cells.append(f"ratio {ratio:.2f}  dll {d:+.2e}")
            print(f"{name:<15} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
