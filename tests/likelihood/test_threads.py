"""Threads during a fit (likelihood/threads.py): the idle-core measure, and the caller's limits
honoured by every threaded section (a functional check in fresh processes, not a timing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import glmm_nb.likelihood.threads as TH

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(TH, "_sample", None)
    monkeypatch.setattr(TH, "_others", None)
    monkeypatch.setattr(TH, "_cpus", lambda: 2)


def test_idle_cores_are_measured_now(fresh):
    """(time, machine busy CPU-s, own CPU-s) samples: the other processes' use since the last one."""
    assert TH.idle_threads((100.0, 50.0, 10.0)) == 1  # no earlier sample: one thread
    assert TH.idle_threads((100.5, 50.55, 10.5)) == 2  # 0.5 s: the machine busy with us only (0.1 core else)
    assert TH.idle_threads((101.0, 51.55, 11.0)) == 1  # another process used 1 of the 2 cores
    assert TH.idle_threads((101.01, 51.56, 11.01)) == 1  # too short an interval: the last measure
    assert TH.idle_threads((101.5, 52.45, 11.2)) == 1  # 0.7 core of another process: not idle
    assert TH.idle_threads((102.0, 52.85, 11.6)) == 2  # idle again
    assert TH.idle_threads((150.0, 60.0, 12.0)) == 1  # a stale sample says nothing about now
    assert TH.idle_threads((150.5, 60.5, 12.5)) == 2


def test_a_new_load_is_seen_within_one_interval(fresh):
    """The 1-minute load average lagged a new load by a minute (InstEval: 37 s instead of 3.5 s
    on two threads over busy cores); the measure follows it from the next call on."""
    TH.idle_threads((0.0, 0.0, 0.0))
    assert TH.idle_threads((0.2, 0.2, 0.2)) == 2
    assert TH.idle_threads((0.4, 0.8, 0.4)) == 1  # two busy processes started: 2 cores of others
    assert TH.idle_threads((0.6, 1.4, 0.6)) == 1


_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, pandas as pd
from threadpoolctl import threadpool_info, threadpool_limits
import numba
import glmm_nb
import glmm_nb.likelihood.schur as SC
import glmm_nb.likelihood.threads as TH
from scipy.linalg import lapack

mode = sys.argv[2]
SC.THREADED_MIN_Q2 = 0  # every dense block threaded, and the compiled kernels used: a small design
SC.NUMBA_MIN_WORK = 0
TH.idle_threads = lambda sample=None: 8  # as on an idle machine with many cores
seen = {"blas": [], "numba": []}
def blas_now():
    return min(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
for name in ("dpotrf", "dpotri"):
    f = getattr(lapack, name)
    def wrapped(*a, _f=f, **k):
        seen["blas"].append(blas_now())
        return _f(*a, **k)
    setattr(lapack, name, wrapped)
inner = SC.kernel_threads
class Kernel:
    def __enter__(self):
        self.cm = inner()
        self.cm.__enter__()
        seen["numba"].append(numba.get_num_threads())
    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)
SC.kernel_threads = Kernel
rng = np.random.default_rng(4)
n = 900
a, b = rng.integers(0, 120, n), rng.integers(0, 45, n)
x = rng.normal(size=n)
y = 0.5 * x + rng.normal(size=120)[a] + 0.6 * rng.normal(size=45)[b] + rng.normal(size=n)
d = pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b)})
if mode == "threadpool_limits":
    with threadpool_limits(1):
        m = glmm_nb.glmm("y ~ x + (1 | a) + (1 | b)", d, family="gaussian")
else:
    m = glmm_nb.glmm("y ~ x + (1 | a) + (1 | b)", d, family="gaussian")
seen["after"] = blas_now()
seen["loglik"] = m.loglik
print(json.dumps(seen))
"""


def _child(mode: str, **env) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), mode], env=e, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores to tell one thread from several")
def test_threaded_sections_respect_the_callers_limits():
    free = _child("none", OPENBLAS_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    # the control: unlimited, the dense blocks and the kernels run on two threads (so the checks
    # below can fail), and the fit leaves the caller's BLAS setting as it found it
    assert free["blas"] and set(free["blas"]) == {2} and free["after"] == 2
    assert free["numba"] and set(free["numba"]) == {2}
    limited = _child("threadpool_limits", OPENBLAS_NUM_THREADS="2", NUMBA_NUM_THREADS="2")
    assert set(limited["blas"]) == {1} and set(limited["numba"]) == {1}
    env1 = _child("none", OPENBLAS_NUM_THREADS="2", NUMBA_NUM_THREADS="1")
    assert set(env1["numba"]) == {1}
    blas1 = _child("none", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="2")
    assert set(blas1["blas"]) == {1} and set(blas1["numba"]) == {1}  # one thread asked for: one everywhere
    for r in (limited, env1, blas1):
        assert r["loglik"] == pytest.approx(free["loglik"], abs=1e-8)


def test_a_container_quota_caps_the_cores(monkeypatch, tmp_path):
    """docker --cpus=1 on a many-core host: /proc/stat shows the host idle, the quota throttles."""
    real_open = open

    def fake_open(path, *a, **k):
        if str(path) == "/sys/fs/cgroup/cpu.max":
            f = tmp_path / "cpu.max"
            f.write_text("150000 100000\n")
            return real_open(f, *a, **k)
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(TH, "_CPUS", None)
    monkeypatch.setattr(TH.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert TH._cpus() == 1
    monkeypatch.setattr(TH, "_CPUS", None)
    monkeypatch.setattr(TH, "_cgroup_quota", lambda: None)
    assert TH._cpus() == 16
    monkeypatch.setattr(TH, "_CPUS", None)
