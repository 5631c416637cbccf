"""Dask engine (issue 19): a random-intercept logistic model with 5 covariates on data that
never sit in one process's memory.

* the generator writes a parquet data set in chunks of ``--chunk`` rows (one file each, never
  the whole set in memory): ``--rows`` rows, ``--clusters`` clusters, y ~ Bernoulli(expit(
  -1 + 0.5 x1 - 0.3 x2 + 0.2 x3 + 0.1 x4 - 0.4 x5 + b_g)), b ~ N(0, 0.8²), x5 binary;
  ``--layout scattered`` (default) spreads every cluster's rows over all files (rows in time
  order, clusters round-robin: the fit must shuffle), ``clustered`` writes whole clusters per file;
* the fit runs on ``LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="4GB")``
  (``--workers``, ``--memory``), while a monitor samples every worker's resident memory;
* ``--check`` (default for ≤ 2,000,000 rows) also fits the same file in memory (pandas) and
  compares: log-likelihood (relative), estimates and standard errors.

    python benchmarks/bench_dask.py --rows 1000000 --clusters 10000        # agreement check
    python benchmarks/bench_dask.py --rows 50000000 --clusters 500000      # the large run
    python benchmarks/bench_dask.py --path visits --keep                   # the README's data set

Not part of the tests. The machine's cores may be shared with other work: times are what was
measured, on what was free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

BETA = np.array([-1.0, 0.5, -0.3, 0.2, 0.1, -0.4])
SD = 0.8
FORMULA = "y ~ x1 + x2 + x3 + x4 + x5 + (1 | g)"


def generate(path: Path, rows: int, clusters: int, chunk: int, layout: str, seed: int = 19) -> float:
    """Write the data set chunk by chunk; return the seconds taken."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    b = np.random.default_rng(seed).normal(0.0, SD, clusters)  # one draw per cluster (4 MB at 500k)
    per = rows // clusters
    for k, start in enumerate(range(0, rows, chunk)):
        i = np.arange(start, min(rows, start + chunk))
        g = i % clusters if layout == "scattered" else np.minimum(i // per, clusters - 1)
        rng = np.random.default_rng([seed, k])
        X = rng.standard_normal((i.size, 5))
        X[:, 4] = rng.random(i.size) < 0.5
        eta = BETA[0] + X @ BETA[1:] + b[g]
        y = (rng.random(i.size) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
        table = pa.table({"y": y, **{f"x{j + 1}": X[:, j] for j in range(5)}, "g": g.astype(np.int64)})
        pq.write_table(table, path / f"part-{k:05d}.parquet")
    return time.perf_counter() - t0


class MemoryMonitor(threading.Thread):
    """Samples each worker's resident memory every ``every`` seconds; notes workers that vanish."""

    def __init__(self, client, every: float = 2.0):
        super().__init__(daemon=True)
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}
        self.seen: set[str] = set()
        self.lost: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        def rss():
            return psutil.Process().memory_info().rss

        while not self.stop.is_set():
            try:
                now = self.client.run(rss)
            except Exception:  # noqa: BLE001 - a worker restarting mid-sample
                now = {}
            for w, v in now.items():
                self.peak[w] = max(self.peak.get(w, 0), v)
            workers = set(self.client.nthreads())
            self.lost |= self.seen - workers
            self.seen |= workers
            self.stop.wait(self.every)


def fit_dask(path: Path, workers: int, memory: str, progress: bool):
    import dask
    import distributed

    import glmm_nb

    # the partitions' models are the working set: keep them in memory (no spilling to disk);
    # a worker that reaches 95% of its limit is still restarted, which the fit reports
    dask.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False})
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        mon = MemoryMonitor(client)
        mon.start()
        t0 = time.perf_counter()
        try:
            m = glmm_nb.glmm(FORMULA, str(path), family="binomial", engine="dask",
                             control={"progress": progress})
        finally:
            mon.stop.set()
            mon.join()
        elapsed = time.perf_counter() - t0
        limit = cluster.workers[0].memory_manager.memory_limit if hasattr(cluster.workers[0], "memory_manager") else None
    return m, elapsed, mon, limit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--clusters", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--layout", choices=("scattered", "clustered"), default="scattered")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory", default="4GB")
    ap.add_argument("--dir", default=None, help="where to write the parquet set (default: a temporary dir)")
    ap.add_argument("--path", default=None, help="the parquet set's own directory (overrides --dir)")
    ap.add_argument("--keep", action="store_true", help="keep the data set afterwards")
    ap.add_argument("--reuse", action="store_true", help="fit an existing data set in --dir")
    ap.add_argument("--check", action="store_true", default=None)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    check = args.check if args.check is not None else args.rows <= 2_000_000
    base = Path(args.dir) if args.dir else Path(os.environ.get("TMPDIR", "/tmp")) / "glmm_nb_bench_dask"
    path = Path(args.path) if args.path else base / f"rows{args.rows}_g{args.clusters}_{args.layout}"
    out: dict = {"rows": args.rows, "clusters": args.clusters, "layout": args.layout, "workers": args.workers,
                 "memory_limit": args.memory, "cpu_count": os.cpu_count()}
    if not (args.reuse and path.exists()):
        out["generate_s"] = generate(path, args.rows, args.clusters, args.chunk, args.layout)
        print(f"generated {args.rows:,} rows / {args.clusters:,} clusters in {out['generate_s']:.1f}s -> {path}")
    out["disk_mb"] = sum(f.stat().st_size for f in path.glob("*.parquet")) / 2**20
    m, elapsed, mon, _limit = fit_dask(path, args.workers, args.memory, args.progress)
    info = m.extras["dask"]
    out.update(fit_s=elapsed, timings=info.timings, npartitions=info.npartitions, shuffled=info.plan.shuffled,
               evaluations=int(m.opt.evaluations), iterations=int(m.opt.iterations), loglik=m.loglik,
               converged=bool(m.converged), fixef=m.fixef.round(6).to_dict(), sd=float(np.sqrt(m.theta[0] ** 2)),
               worker_peak_rss_mb={w: v / 2**20 for w, v in mon.peak.items()}, workers_lost=sorted(mon.lost))
    print(m.summary())
    print(f"Dask fit: {elapsed:.1f}s ({info.timings}); peak worker RSS (MB): "
          f"{ {w[-5:]: round(v / 2**20) for w, v in mon.peak.items()} }; workers lost: {sorted(mon.lost) or 'none'}")
    if check:
        import pandas as pd

        import glmm_nb

        t0 = time.perf_counter()
        df = pd.read_parquet(path)
        m0 = glmm_nb.glmm(FORMULA, df, family="binomial")
        out["memory_fit_s"] = time.perf_counter() - t0
        se0, se1 = np.sqrt(np.diag(m0.vcov)), np.sqrt(np.diag(m.vcov))
        out["check"] = {"loglik_rel": abs(m.loglik - m0.loglik) / abs(m0.loglik),
                        "fixef_max_abs": float(np.max(np.abs(m.fixef - m0.fixef))),
                        "theta_abs": float(np.max(np.abs(m.theta - m0.theta))),
                        "se_max_rel": float(np.max(np.abs(se1 / se0 - 1)))}
        print(f"in memory: {out['memory_fit_s']:.1f}s; agreement {out['check']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    if not args.keep and not args.dir and not args.path:
        shutil.rmtree(path, ignore_errors=True)
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
