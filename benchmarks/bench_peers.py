"""glmm_nb against the Python peers a user would pick instead: gpboost (Laplace GLMMs) and
mixedlm (Rust, lme4-style), on the same data, each fit in a fresh process after a warm-up fit of
the same model, medians over ``--reps`` processes.

    pip install -e ".[bench]"          # gpboost, mixedlm
    python benchmarks/bench_peers.py --threads one --reps 3 --json peers.json
    python benchmarks/bench_peers.py --threads default --cases logistic_100k nb2_100k
    python benchmarks/bench_peers.py --load 2    # the same with two CPU-bound processes beside it

Cases: ``y ~ x + z + (1 | g)`` logistic, NB2 and Gamma(log) on 100,000 rows / 2,000 clusters and
logistic on 1,000,000 / 20,000; the gaussian random slope ``y ~ x + z + (1 + x | g)`` by ML on
200,000 / 4,000; bench_laplace.py's crossed Poisson ``y ~ x + (1 | a) + (1 | b)`` (50,000 rows,
500 x 200 levels); and InstEval ``y ~ service + (1 | s) + (1 | d) + (1 | dept:service)`` by REML
(lme4's data exported by Rscript when R with lme4 is installed, else a simulated data set of its
shape; the JSON says which). gpboost has no REML, so it has no InstEval line ("-"); mixedlm fits
it with ``lmer(..., REML=True)``. The fixed-effect covariates are simulated standard normals,
the grouping factors integer codes (strings for mixedlm and for InstEval's factors).

``--threads one`` pins every pool to one thread (OMP, OpenBLAS, MKL, numba, rayon for mixedlm and gpboost's own
``num_parallel_threads``); ``default`` leaves them alone. ``--load N`` starts N busy-looping
processes for the duration of the run (the "loaded machine" of issue 28). Each line prints the
median seconds and the log-likelihood of every package; a peer that is not installed, or has no
such model, prints "-". Under each case, glmm_nb's stages (``m.timings`` of its median run):
design, checks, starts, optimizer, AGQ, Hessian, result, the deviance evaluations and the share
of set-up and post-fit in the total. ``--json PATH`` writes every run (seconds, log-likelihood,
glmm_nb's stages) after each case. The log-likelihoods are on each package's own scale: gpboost
reports its Laplace approximation (for crossed effects another approximation), mixedlm lme4's.
gpboost's random slope is uncorrelated with the intercept (lme4's ``||``), so its
log-likelihood there is of a smaller model. ``--scale 100`` divides rows and levels by 100 (a
smoke test: it runs every case; the figures of issue 28 need a quiet machine and full size).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from bench_crossed import insteval_data

ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                               "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")}  # rayon: mixedlm (Rust)

# name: (rows, clusters, family, random part); the random part decides the formula (FORMULAS)
CASES = {
    "logistic_100k": (100_000, 2_000, "binomial", "intercept"),
    "nb2_100k": (100_000, 2_000, "negative_binomial", "intercept"),
    "gamma_100k": (100_000, 2_000, "gamma", "intercept"),
    "logistic_1m": (1_000_000, 20_000, "binomial", "intercept"),
    "lmm_slope_200k": (200_000, 4_000, "gaussian", "slope"),
    "poisson_crossed_50k": (50_000, 500, "poisson", "crossed"),
    "insteval_reml": (73_421, 2_972, "gaussian_reml", "insteval"),
}
FORMULAS = {
    "intercept": "y ~ x + z + (1 | g)",
    "slope": "y ~ x + z + (1 + x | g)",
    "crossed": "y ~ x + (1 | a) + (1 | b)",
    "insteval": "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
}


def simulate(name: str, seed: int = 1, scale: int = 1) -> pd.DataFrame:
    n, J, family, re = CASES[name]
    if re == "insteval":
        return insteval(scale)
    if re == "crossed":  # bench_laplace.py's case: 500 x 200 levels
        return crossed_poisson(seed, scale)
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


def crossed_poisson(seed: int = 1, scale: int = 1) -> pd.DataFrame:
    """bench_laplace.py's poisson_crossed_50k: 50,000 rows, (1 | a) + (1 | b) with 500 x 200 levels."""
    rng = np.random.default_rng(seed)
    n = 50_000 // scale
    a = rng.integers(0, 500, n)
    b = rng.integers(0, 200, n)
    x = rng.normal(size=n)
    eta = 0.5 + 0.2 * x + 0.4 * rng.normal(size=500)[a] + 0.3 * rng.normal(size=200)[b]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)).astype(float), "x": x, "a": a, "b": b})


def insteval(scale: int = 1) -> pd.DataFrame:
    """lme4's InstEval (exported by Rscript), else a simulated data set of its shape
    (bench_crossed.insteval_data); ``attrs["source"]`` says which."""
    with tempfile.TemporaryDirectory() as tmp:
        df, source = insteval_data(Path(tmp), bool(shutil.which("Rscript")), scale)
    df = df[["y", "s", "d", "dept", "service"]].astype({"y": float})
    df.attrs["source"] = source
    return df


# --------------------------------------------------------------------------- one fit, in a child process
RUNNER = r"""
import json, sys, time
import numpy as np, pandas as pd
pkg, path, family, re, threads, formula = sys.argv[1:7]
d = pd.read_parquet(path)
FACTORS = {"intercept": ["g"], "slope": ["g"], "crossed": ["a", "b"], "insteval": ["s", "d", "dept", "service"]}[re]
timings = None

def fit_glmm_nb():
    global timings
    import glmm_nb
    data = d.astype({c: str for c in FACTORS}) if re == "insteval" else d
    if family.startswith("gaussian"):
        m = glmm_nb.glmm(formula, data, family="gaussian", reml=family == "gaussian_reml")
    else:
        m = glmm_nb.glmm(formula, data, family=family)
    timings = m.timings.as_dict()
    return m.loglik

def fit_gpboost():
    import gpboost as gpb
    if family == "gaussian_reml":  # gpboost has no REML: no such model there
        raise NotImplementedError
    lik = {"binomial": "bernoulli_logit", "negative_binomial": "negative_binomial", "gamma": "gamma",
           "gaussian": "gaussian", "poisson": "poisson"}[family]
    kw = {"num_parallel_threads": 1} if threads == "one" else {}
    if re == "crossed":
        X = np.column_stack([np.ones(len(d)), d.x])
        m = gpb.GPModel(group_data=d[["a", "b"]].to_numpy(), likelihood=lik, **kw)
    else:
        X = np.column_stack([np.ones(len(d)), d.x, d.z])
        if re == "slope":
            if family != "gaussian":
                raise NotImplementedError
            kw.update(group_rand_coef_data=d.x.to_numpy(), ind_effect_group_rand_coef=[1])
        m = gpb.GPModel(group_data=d.g.to_numpy(), likelihood=lik, **kw)
    m.fit(y=d.y.to_numpy(), X=X)
    return -float(m.get_current_neg_log_likelihood())

def fit_mixedlm():
    import mixedlm
    data = d.astype({c: str for c in FACTORS})
    if family.startswith("gaussian"):
        return float(mixedlm.lmer(formula, data, REML=family == "gaussian_reml").logLik().value)
    fam = {"binomial": getattr(mixedlm.families, "Binomial", None),
           "poisson": getattr(mixedlm.families, "Poisson", None)}.get(family)
    if fam is None:
        raise NotImplementedError
    return float(mixedlm.glmer(formula, data, family=fam()).logLik().value)

fit = {"glmm_nb": fit_glmm_nb, "gpboost": fit_gpboost, "mixedlm": fit_mixedlm}[pkg]
try:
    fit()  # warm-up: imports, JIT compilation, caches
    t0 = time.perf_counter()
    ll = fit()
    print(json.dumps({"seconds": time.perf_counter() - t0, "loglik": ll, "timings": timings}))
except (ImportError, NotImplementedError) as exc:
    print(json.dumps({"seconds": None, "loglik": None, "why": type(exc).__name__}))
"""


def run_one(pkg: str, path: Path, name: str, threads: str) -> dict:
    _, _, family, re = CASES[name]
    env = dict(os.environ, **(ONE_THREAD if threads == "one" else {}))
    out = subprocess.run([sys.executable, "-c", RUNNER, pkg, str(path), family, re, threads, FORMULAS[re]], env=env,
                         capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"seconds": None, "loglik": None, "why": (out.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(lines[-1])


def stage_line(timings: dict | None) -> str:
    """glmm_nb's ``m.timings`` of the median run, one line."""
    if not timings:
        return ""
    keys = [k for k in ("design", "checks", "starts", "optimizer", "agq", "hessian", "result") if timings.get(k)]
    total = timings["total"]
    setup = (total - timings.get("optimizer", 0.0) - timings.get("agq", 0.0)) / total if total else 0.0
    return (" " * 16 + "glmm_nb stages: " + ", ".join(f"{k} {timings[k]:.3f}" for k in keys)
            + f" s; {timings['evaluations']} evaluations; set-up + post-fit {100 * setup:.0f} % of {total:.2f} s")


def burn(stop) -> None:
    """A CPU-bound loop until ``stop`` is set (the busy processes of ``--load``)."""
    x = 0.0
    while not stop.is_set():
        x = (x + 1.0) * 0.999999


@contextmanager
def busy(n: int):
    """``n`` CPU-bound processes (:func:`burn`) running for the duration of the block."""
    stop = mp.Event()
    procs = [mp.Process(target=burn, args=(stop,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--packages", nargs="*", default=["glmm_nb", "gpboost", "mixedlm"])
    ap.add_argument("--threads", choices=["one", "default"], default="one")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--load", type=int, default=0, help="CPU-bound processes running beside the fits")
    ap.add_argument("--scale", type=int, default=1, help="divide rows and clusters by this (a smoke test)")
    ap.add_argument("--json", default=None, help="also write every run's figures to this JSON file")
    a = ap.parse_args()
    record = {"threads": a.threads, "load": a.load, "reps": a.reps, "scale": a.scale, "cases": {}}
    with busy(a.load), tempfile.TemporaryDirectory() as tmp:
        print(f"threads: {a.threads}; load: {a.load} busy process(es); medians of {a.reps} fresh processes")
        print(f"{'case':<20}" + "".join(f"{p:>24}" for p in a.packages) + "   ratio to gpboost / mixedlm")
        for name in a.cases:
            path = Path(tmp) / f"{name}.parquet"
            data = simulate(name, scale=a.scale)
            data.to_parquet(path)
            res, runs_of = {}, {}
            for pkg in a.packages:
                runs = [run_one(pkg, path, name, a.threads) for _ in range(a.reps)]
                runs_of[pkg] = runs
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
            print(f"{name:<20}" + "".join(f"{c:>24}" for c in cells) + "   " + " / ".join(ratios), flush=True)
            timed = [r for r in runs_of.get("glmm_nb", []) if r.get("seconds") is not None]
            median_run = sorted(timed, key=lambda r: r["seconds"])[(len(timed) - 1) // 2] if timed else None
            if median_run:
                print(stage_line(median_run.get("timings")), flush=True)
            record["cases"][name] = {
                "rows": len(data), "formula": FORMULAS[CASES[name][3]], "family": CASES[name][2],
                "data": data.attrs.get("source", "simulated"),
                "packages": {pkg: {"median_seconds": res[pkg][0], "loglik": res[pkg][1], "why": res[pkg][2] or None,
                                   "runs": runs_of[pkg]} for pkg in a.packages},
                "ratio": {p: (ours / res[p][0] if ours and res.get(p, (None,))[0] else None)
                          for p in ("gpboost", "mixedlm") if p in res}}
            if a.json:  # after every case: a long run keeps what it measured
                Path(a.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
