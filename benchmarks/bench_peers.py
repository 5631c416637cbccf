"""glmm_nb against the Python peers a user would pick instead: gpboost (Laplace GLMMs) and
mixedlm (Rust, lme4-style), on the same simulated data, each fit in a fresh process after a
warm-up fit of the same model, medians over ``--reps`` processes.

    pip install -e ".[bench]"          # gpboost, mixedlm
    python benchmarks/bench_peers.py --threads one --reps 3
    python benchmarks/bench_peers.py --threads default --cases logistic_100k nb2_100k
    python benchmarks/bench_peers.py --load 2    # the same with two CPU-bound processes beside it

``--threads one`` pins every pool to one thread (OMP, OpenBLAS, MKL, numba and gpboost's own
``num_parallel_threads``); ``default`` leaves them alone. ``--load N`` starts N busy-looping
processes for the duration of the run (the "loaded machine" of issue 28). Each line prints the
median seconds and the log-likelihood of every package; a peer that is not installed, or has no
such model, prints "-". The log-likelihoods are on each package's own scale: gpboost reports its
Laplace approximation (for crossed effects another approximation), mixedlm lme4's. gpboost's
random slope is uncorrelated with the intercept (lme4's ``||``), so its log-likelihood there is
of a smaller model. A smoke test on 1 % of the rows (``--scale 100``, 2026-12-07, loaded machine)
ran every case; the figures of issue 28 need a quiet machine and full size.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                               "VECLIB_MAXIMUM_THREADS")}

# name: (rows, clusters, family, random part)
CASES = {
    "logistic_100k": (100_000, 2_000, "binomial", "intercept"),
    "nb2_100k": (100_000, 2_000, "negative_binomial", "intercept"),
    "gamma_100k": (100_000, 2_000, "gamma", "intercept"),
    "logistic_1m": (1_000_000, 20_000, "binomial", "intercept"),
    "lmm_slope_200k": (200_000, 4_000, "gaussian", "slope"),
}


def simulate(name: str, seed: int = 1, scale: int = 1) -> pd.DataFrame:
    n, J, family, re = CASES[name]
    n, J = n // scale, max(J // scale, 10)
    rng = np.random.default_rng(seed)
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    z = rng.normal(size=n)
    b0 = rng.normal(0, 0.6, J)[g]
    eta = 0.2 + 0.5 * x - 0.3 * z + b0
    if re == "slope":
        eta = eta + rng.normal(0, 0.3, J)[g] * x
    if family == "binomial":
        y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    elif family == "negative_binomial":
        mu = np.exp(eta)
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    elif family == "gamma":
        y = rng.gamma(3.0, np.exp(eta) / 3.0)
    else:
        y = eta + rng.normal(size=n)
    return pd.DataFrame({"y": y.astype(float), "x": x, "z": z, "g": g})


# --------------------------------------------------------------------------- one fit, in a child process
RUNNER = r'''
import json, sys, time
import numpy as np, pandas as pd
pkg, path, family, re, threads = sys.argv[1:6]
d = pd.read_parquet(path)
formula = "y ~ x + z + " + ("(1 + x | g)" if re == "slope" else "(1 | g)")

def fit_glmm_nb():
    import glmm_nb
    kw = {"reml": False} if family == "gaussian" else {}
    m = glmm_nb.glmm(formula, d, family=family, **kw)
    return m.loglik

def fit_gpboost():
    import gpboost as gpb
    lik = {"binomial": "bernoulli_logit", "negative_binomial": "negative_binomial", "gamma": "gamma",
           "gaussian": "gaussian"}[family]
    X = np.column_stack([np.ones(len(d)), d.x, d.z])
    kw = {"num_parallel_threads": 1} if threads == "one" else {}
    if re == "slope":
        if family != "gaussian":
            raise NotImplementedError
        kw.update(group_rand_coef_data=d.x.to_numpy(), ind_effect_group_rand_coef=[1])
    m = gpb.GPModel(group_data=d.g.to_numpy(), likelihood=lik, **kw)
    m.fit(y=d.y.to_numpy(), X=X)
    return -float(m.get_current_neg_log_likelihood())

def fit_mixedlm():
    import mixedlm
    if family == "gaussian":
        return float(mixedlm.lmer(formula, d.assign(g=d.g.astype(str)), REML=False).logLik().value)
    if family != "binomial":
        raise NotImplementedError
    fam = mixedlm.families.Binomial()
    return float(mixedlm.glmer(formula, d.assign(g=d.g.astype(str)), family=fam).logLik().value)

fit = {"glmm_nb": fit_glmm_nb, "gpboost": fit_gpboost, "mixedlm": fit_mixedlm}[pkg]
try:
    fit()  # warm-up: imports, JIT compilation, caches
    t0 = time.perf_counter()
    ll = fit()
    print(json.dumps({"seconds": time.perf_counter() - t0, "loglik": ll}))
except (ImportError, NotImplementedError) as exc:
    print(json.dumps({"seconds": None, "loglik": None, "why": type(exc).__name__}))
'''


def run_one(pkg: str, path: Path, name: str, threads: str) -> dict:
    _, _, family, re = CASES[name]
    env = dict(os.environ, **(ONE_THREAD if threads == "one" else {}))
    out = subprocess.run([sys.executable, "-c", RUNNER, pkg, str(path), family, re, threads], env=env,
                         capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"seconds": None, "loglik": None, "why": (out.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(lines[-1])


def _burn(stop) -> None:
    x = 0.0
    while not stop.is_set():
        x = (x + 1.0) * 0.999999


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--packages", nargs="*", default=["glmm_nb", "gpboost", "mixedlm"])
    ap.add_argument("--threads", choices=["one", "default"], default="one")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--load", type=int, default=0, help="CPU-bound processes running beside the fits")
    ap.add_argument("--scale", type=int, default=1, help="divide rows and clusters by this (a smoke test)")
    a = ap.parse_args()
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(a.load)]
    for p in burners:
        p.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"threads: {a.threads}; load: {a.load} busy process(es); medians of {a.reps} fresh processes")
            print(f"{'case':<16}" + "".join(f"{p:>24}" for p in a.packages) + "   ratio to gpboost / mixedlm")
            for name in a.cases:
                path = Path(tmp) / f"{name}.parquet"
                simulate(name, scale=a.scale).to_parquet(path)
                res = {}
                for pkg in a.packages:
                    runs = [run_one(pkg, path, name, a.threads) for _ in range(a.reps)]
                    secs = [r["seconds"] for r in runs if r["seconds"] is not None]
                    res[pkg] = (statistics.median(secs) if secs else None,
                                next((r["loglik"] for r in runs if r["loglik"] is not None), None),
                                next((r.get("why") for r in runs if r.get("why")), ""))
                cells = []
                for pkg in a.packages:
                    s, ll, why = res[pkg]
                    cells.append(f"{s:8.2f} s {ll:12.2f}" if s is not None else f"{'- (' + why + ')':>24}"[:24])
                ours = res.get("glmm_nb", (None,))[0]
                ratios = [f"{ours / res[p][0]:.2f}" if ours and res.get(p, (None,))[0] else "-"
                          for p in ("gpboost", "mixedlm")]
                print(f"{name:<16}" + "".join(f"{c:>24}" for c in cells) + "   " + " / ".join(ratios), flush=True)
    finally:
        stop.set()
        for p in burners:
            p.join(timeout=5)


if __name__ == "__main__":
    main()
