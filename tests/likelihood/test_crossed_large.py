"""Several large grouping factors: every factorization path gives one likelihood, a second
factor with more than 8,000 effects fits, and a block too big for memory is a clear error."""

import numpy as np
import pandas as pd
import pytest

import glmm_nb
import glmm_nb.likelihood.schur as SC
from glmm_nb import build_spec, get_family
from glmm_nb.errors import ModelError
from glmm_nb.likelihood import LaplaceDevfun, LmmDevfun

PATHS = {
    "dense, pair map": {},
    "dense, pair map without the scalar plan": {"SCALAR_PLAN": False},
    "dense, scipy products": {"PAIRMAP_MAX_PAIRS": -1},
    "dense, compiled kernels": {"NUMBA_MIN_WORK": 0},
    "sparse LDL'": {"SPARSE_MIN_Q2": 0, "SPARSE_MAX_FILL": 1.0, "SPARSE_MAX_PAIRS": 1e9},
}


def _data(seed=4, n=900, ja=120, jb=45, binary=False):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, ja, n)
    b = rng.integers(0, jb, n)
    x = rng.normal(size=n)
    eta = 0.3 + 0.5 * x + 0.8 * rng.normal(size=ja)[a] + 0.6 * rng.normal(size=jb)[b]
    eta += 0.3 * rng.normal(size=jb)[b] * x
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float) if binary else eta + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b),
                         "c": pd.Categorical(rng.integers(0, 5, n))})


FORMULAS = ["y ~ x + (1 | a) + (1 | b)", "y ~ x + (1 | a) + (x | b) + (1 | c)", "y ~ x + (x | a) + (1 | b)",
            "y ~ x + (1 | c/b)"]


@pytest.mark.parametrize("formula", FORMULAS)
@pytest.mark.parametrize("reml", [True, False])
def test_lmm_deviance_same_on_every_path(formula, reml, monkeypatch):
    spec = build_spec(formula, _data(), "gaussian")
    theta = spec.theta_start() * 0.7 + 0.2 * (spec.theta_start() == 0)
    out = {}
    for name, patch in PATHS.items():
        with monkeypatch.context() as mp:
            for k, v in patch.items():
                mp.setattr(SC, k, v)
            dev = LmmDevfun(spec, reml=reml)
            out[name] = dev.value_and_grad(theta)
            if name == "sparse LDL'":
                assert dev.state(theta).fac.ldl is not None
    ref = out["dense, scipy products"]
    for name, (f, g) in out.items():
        assert f == pytest.approx(ref[0], abs=1e-8), name
        np.testing.assert_allclose(g, ref[1], rtol=1e-8, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("path", list(PATHS))
def test_laplace_gradient_on_every_path(path, monkeypatch):
    for k, v in PATHS[path].items():
        monkeypatch.setattr(SC, k, v)
    spec = build_spec("y ~ x + (1 | a) + (x | b)", _data(binary=True), "binomial")
    dv = LaplaceDevfun(spec, get_family("binomial"))
    phi = np.concatenate([spec.theta_start() * 0.8 + 0.1 * (spec.theta_start() == 0), [0.2, 0.4]])
    _f, g = dv.value_and_grad(phi)
    h = 1e-5
    num = np.array([(dv(phi + e) - dv(phi - e)) / (2 * h) for e in np.eye(phi.size) * h])
    np.testing.assert_allclose(g, num, rtol=2e-4, atol=2e-4)


def _clustered(n_clusters=425, per=20, n_a=12_000, seed=7):
    """Students (a) within departments taking courses (b) of their department: 8,500 courses,
    12,000 students, two to three rows each — crossed, but the coupling stays within clusters."""
    rng = np.random.default_rng(seed)
    dept = rng.integers(0, n_clusters, n_a)
    reps = rng.integers(2, 4, n_a)
    a = np.repeat(np.arange(n_a), reps)
    b = dept[a] * per + rng.integers(0, per, a.size)
    x = rng.normal(size=a.size)
    y = 1 + 0.4 * x + 0.7 * rng.normal(size=n_a)[a] + 0.5 * rng.normal(size=n_clusters * per)[b]
    y += rng.normal(size=a.size)
    return pd.DataFrame({"y": y, "x": x, "a": pd.Categorical(a), "b": pd.Categorical(b), "dept": dept[a]})


def _exact_ml_loglik(df, beta, sd_a, sd_b, sigma):
    """Gaussian log-density cluster by cluster (independent dense computation)."""
    ll = 0.0
    for _d, g in df.groupby("dept"):
        r = g.y.to_numpy() - beta[0] - beta[1] * g.x.to_numpy()
        a, b = g.a.cat.codes.to_numpy(), g.b.cat.codes.to_numpy()
        V = sigma**2 * np.eye(len(g)) + sd_a**2 * (a[:, None] == a) + sd_b**2 * (b[:, None] == b)
        _s, ld = np.linalg.slogdet(V)
        ll -= 0.5 * (ld + r @ np.linalg.solve(V, r) + len(g) * np.log(2 * np.pi))
    return ll


def test_second_factor_with_more_than_8000_effects_fits():
    df = _clustered()
    m = glmm_nb.glmm("y ~ x + (1 | a) + (1 | b)", df, family="gaussian", reml=False)
    assert m.ngroups["b"] > 8000 and m.ngroups["a"] == 12_000
    assert m.converged
    vc = m.varcorr()
    sd = dict(zip(vc.grp, vc.sdcor))
    ll = _exact_ml_loglik(df, m.fixef.to_numpy(), sd["a"], sd["b"], sd["Residual"])
    assert m.loglik == pytest.approx(ll, abs=1e-6)


def test_too_big_second_factor_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(SC, "MEMORY_LIMIT", 2**20)  # 1 MiB: a 300 × 300 block with its inverse is 1.4 MB
    df = _data(n=3000, ja=400, jb=300)
    with pytest.raises(ModelError, match=r"\(1 \| b\) \(300 columns\).*\(1 \| a\).*0\.0 GB with its inverse and work space"):
        glmm_nb.glmm("y ~ x + (1 | a) + (1 | b)", df, family="gaussian")


def test_compiled_kernels_from_two_threads(monkeypatch):
    """numba's workqueue layer aborts on concurrent parallel kernels; the lock serializes them."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(SC, "NUMBA_MIN_WORK", 0)
    spec = build_spec("y ~ x + (1 | a) + (1 | b)", _data(), "gaussian")
    dev = LmmDevfun(spec)
    thetas = [np.array([0.5 + 0.05 * k, 0.6]) for k in range(8)]
    with ThreadPoolExecutor(2) as ex:
        out = list(ex.map(dev.value_and_grad, thetas))
    for th, (f, g) in zip(thetas, out):
        assert f == pytest.approx(dev(th), abs=1e-9)


def test_lapack_threads_only_on_idle_cores(monkeypatch):
    """The cost cliff at 1,000 levels of the second factor: two OpenBLAS threads on a busy machine
    made a fit 10 times slower (16-28 s against 3 s); threads are the idle cores only (measured
    now: likelihood/threads.py, tests/likelihood/test_threads.py), within the caller's limit."""
    from contextlib import nullcontext

    import glmm_nb.likelihood.threads as TH

    monkeypatch.setattr(TH, "caller_threads", lambda: 2)
    monkeypatch.setattr(TH, "idle_threads", lambda: 1)  # other processes busy
    assert isinstance(SC.blas_threads(5000, SC.THREADED_MIN_Q2), nullcontext)
    monkeypatch.setattr(TH, "idle_threads", lambda: 2)  # this process alone: both cores
    assert not isinstance(SC.blas_threads(5000, SC.THREADED_MIN_Q2), nullcontext)
    assert isinstance(SC.blas_threads(SC.THREADED_MIN_Q2 - 1, SC.THREADED_MIN_Q2), nullcontext)  # small: never
    monkeypatch.setattr(TH, "caller_threads", lambda: 1)  # the caller asked for one thread
    assert isinstance(SC.blas_threads(5000, SC.THREADED_MIN_Q2), nullcontext)
