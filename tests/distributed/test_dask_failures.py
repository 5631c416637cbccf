"""A Dask fit without a client (Dask's local scheduler), and what happens when a worker dies or
a partition's task fails: one clear error within seconds (no hang) carrying the best parameter
vector, from which ``start=`` resumes to the same estimates."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import glmm_nb  # noqa: E402
from glmm_nb.datasets import load  # noqa: E402
from glmm_nb.distributed import DaskFitError, engine  # noqa: E402
from glmm_nb.distributed.partition import PartitionModel  # noqa: E402

F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return load("cbpp")


@pytest.fixture(scope="module")
def m0(cbpp):
    return glmm_nb.glmm(F, cbpp, family="binomial")


def ddf(cbpp):
    return dd.from_pandas(cbpp.sample(frac=1, random_state=4), npartitions=3)


def same(m0, m1):
    assert abs(m1.loglik - m0.loglik) <= 1e-8 * abs(m0.loglik)
    np.testing.assert_allclose(m1.fixef.to_numpy(), m0.fixef.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(m1.theta, m0.theta, atol=1e-6)


def test_local_scheduler_without_client(cbpp, m0):
    assert engine.current_client() is None
    m1 = glmm_nb.glmm(F, ddf(cbpp), family="binomial")
    same(m0, m1)
    assert "local scheduler" in m1.messages[-1]


def test_failing_task_is_one_error_and_resume(cbpp, m0, monkeypatch):
    original = PartitionModel.value_and_grad
    calls = {"n": 0}

    def flaky(self, phi, stage):
        calls["n"] += 1
        if calls["n"] == 20:
            raise MemoryError("simulated")
        return original(self, phi, stage)

    monkeypatch.setattr(PartitionModel, "value_and_grad", flaky)
    with pytest.raises(DaskFitError, match=r"task failed \(step \d+\): MemoryError: simulated.*start=err.start") as err:
        glmm_nb.glmm(F, ddf(cbpp), family="binomial")
    assert err.value.start is not None and err.value.start.size == 5
    monkeypatch.undo()
    same(m0, glmm_nb.glmm(F, ddf(cbpp), family="binomial", start=err.value.start))


def _kill_at(monkeypatch, step: int, kill):
    original = engine.ClientEngine.map
    calls = {"n": 0}

    def map_(self, name, *args):
        if name == "value_and_grad":
            calls["n"] += 1
            if calls["n"] == step:
                kill(self)
        return original(self, name, *args)

    monkeypatch.setattr(engine.ClientEngine, "map", map_)


def test_worker_leaving_is_one_error_and_resume(cbpp, m0, monkeypatch):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cl:
        with distributed.Client(cl) as c:
            _kill_at(monkeypatch, 5, lambda eng: c.retire_workers([eng.addrs[0]], close_workers=True))
            t0 = time.perf_counter()
            with pytest.raises(DaskFitError, match="left the cluster") as err:
                glmm_nb.glmm(F, ddf(cbpp), family="binomial", control={"poll": 0.2})
            assert time.perf_counter() - t0 < 30
            monkeypatch.undo()
            same(m0, glmm_nb.glmm(F, ddf(cbpp), family="binomial", start=err.value.start))


def test_killed_worker_process_is_one_error(cbpp, monkeypatch):
    """A worker process killed with SIGKILL (as the OS does when memory runs out)."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        with distributed.Client(cl) as c:
            pids = c.run(os.getpid)

            def kill(eng):
                os.kill(pids[eng.addrs[0]], signal.SIGKILL)

            _kill_at(monkeypatch, 5, kill)
            t0 = time.perf_counter()
            with pytest.raises(DaskFitError, match="left the cluster|task failed") as err:
                glmm_nb.glmm(F, ddf(cbpp), family="binomial", control={"poll": 0.2})
            assert time.perf_counter() - t0 < 60
            assert err.value.start is not None


def test_paused_worker_is_one_error(cbpp, monkeypatch):
    """A worker paused by Dask's memory manager (its partitions cannot shrink) stops the fit."""
    from distributed.core import Status

    # no memory limit: the memory monitor would un-pause the worker (its memory is low)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                                  memory_limit=0) as cl:
        with distributed.Client(cl) as c:
            workers = {w.address: w for w in cl.workers.values()}

            def pause(eng):
                w = workers[eng.addrs[0]]
                cl.loop.add_callback(setattr, w, "status", Status.paused)

            _kill_at(monkeypatch, 5, pause)
            with pytest.raises(DaskFitError, match="paused for 1s") as err:
                glmm_nb.glmm(F, ddf(cbpp), family="binomial", control={"poll": 0.2, "pause_timeout": 1})
            assert err.value.start is not None
            for w in workers.values():
                cl.loop.add_callback(setattr, w, "status", Status.running)
            del c
