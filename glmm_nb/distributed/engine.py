"""Where the partitions live and how one map-reduce step runs.

* :class:`ClientEngine` — a ``distributed.Client`` is active: every partition's
  :class:`~.partition.PartitionModel` is built once on a worker and stays there (a future);
  each step submits one small task per partition *pinned to the worker that holds it* (the
  model never travels; its PIRLS warm start stays current), and gathers parameter-sized
  results. While waiting it checks that those workers are alive: a worker that dies (killed,
  out of memory) ends the fit at once with :class:`DaskFitError`, which carries the best
  parameter vector so far for ``start=`` — never a hang on tasks that cannot run.
* :class:`LocalEngine` — no client: the partitions are computed by Dask's local scheduler and
  the models kept in this process; steps run on a thread pool.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import GLMMError, ModelError
from .partition import build_partition, call

__all__ = ["DaskFitError", "ClientEngine", "LocalEngine", "make_engine", "current_client"]


class DaskFitError(ModelError):
    """A Dask worker died, or a partition's task failed, during a fit.

    Attributes
    ----------
    start : ndarray or None
        The best parameter vector reached before the failure; pass it as ``start=`` to resume.
    """

    def __init__(self, message: str, start=None):
        super().__init__(message)
        self.start = None if start is None else np.asarray(start, dtype=float)


def current_client():
    """The active ``distributed.Client``, or None (Dask's local scheduler)."""
    try:
        from distributed import get_client
    except ImportError:  # dask without distributed
        return None
    try:
        return get_client()
    except ValueError:
        return None


class _Tracker:
    """Best parameter vector so far, for the resume hint of an error."""

    def __init__(self):
        self.best = None
        self.value = np.inf

    def record(self, phi, value) -> None:
        if np.isfinite(value) and value < self.value:
            self.best, self.value = np.array(phi, dtype=float), float(value)


class _Base:
    def __init__(self):
        self.tracker = _Tracker()
        self.steps = 0

    def _fail(self, what: str, exc: BaseException | None = None):
        hint = ("" if self.tracker.best is None else
                " The best parameter vector reached is on this error as .start; resume with "
                "glmm(..., start=err.start).")
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        return DaskFitError(f"{what} (step {self.steps}){detail}.{hint}", self.tracker.best)

    def map_sum(self, name: str, *args):
        """Sum the partitions' results (numbers, arrays, or tuples of them)."""
        res = self.map(name, *args)
        first = res[0]
        if isinstance(first, tuple):
            return tuple(sum(r[i] for r in res) for i in range(len(first)))
        return sum(res)


class LocalEngine(_Base):
    """Models in this process; steps on a thread pool."""

    def __init__(self, models: list):
        super().__init__()
        self.models = models
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(len(models), os.cpu_count() or 1)))
        self.where = "this process (Dask's local scheduler)"

    @property
    def npartitions(self) -> int:
        return len(self.models)

    def map(self, name: str, *args) -> list:
        self.steps += 1
        try:
            return list(self.pool.map(lambda m: call(m, name, *args), self.models))
        except GLMMError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a partition ends the fit with the resume hint
            raise self._fail("a partition's task failed", exc) from exc

    def keep(self, mask) -> None:
        self.models = [m for m, k in zip(self.models, mask) if k]

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def _worker_states(dask_scheduler=None) -> dict:
    """Each worker's status on the scheduler ("running", "paused", …)."""
    return {a: ws.status.name for a, ws in dask_scheduler.workers.items()}


class ClientEngine(_Base):
    """Models as futures on the workers; pinned tasks; detection of dead and paused workers.

    A worker that Dask pauses (its memory above the pause fraction of ``memory_limit``, 80% by
    default) runs no task; the partitions it holds are live data that will not shrink, so after
    ``pause_timeout`` seconds the fit stops with :class:`DaskFitError` instead of waiting.
    """

    def __init__(self, client, futures: list, poll: float = 1.0, pause_timeout: float = 60.0):
        super().__init__()
        self.client = client
        self.futures = futures
        self.poll = poll
        self.pause_timeout = pause_timeout
        self._paused_since: float | None = None
        who = client.who_has(futures)
        self.addrs = [next(iter(who[f.key])) for f in futures]
        self.where = f"{len(set(self.addrs))} Dask worker(s) (dashboard: {client.dashboard_link})"

    @property
    def npartitions(self) -> int:
        return len(self.futures)

    def map(self, name: str, *args) -> list:
        self.steps += 1
        client = self.client
        futs = [client.submit(call, f, name, *args, pure=False, workers=[a], allow_other_workers=False)
                for f, a in zip(self.futures, self.addrs)]
        return self._gather(futs)

    def _gather(self, futs) -> list:
        from distributed import wait

        while True:
            try:
                wait(futs, timeout=self.poll)
            except TimeoutError:
                pass
            errored = [f for f in futs if f.status == "error"]
            if errored:
                self.client.cancel(futs)
                exc = errored[0].exception()
                if isinstance(exc, GLMMError):
                    raise exc
                raise self._fail("a partition's task failed", exc) from exc
            if all(f.status == "finished" for f in futs):
                return self.client.gather(futs)
            alive = set(self.client.nthreads())
            lost = sorted(set(self.addrs) - alive)
            if lost or any(f.status in ("lost", "cancelled") for f in futs):
                self.client.cancel(futs)
                raise self._fail(f"Dask worker(s) {', '.join(lost) or '?'} left the cluster during the fit "
                                 "(killed, or over its memory limit); the partitions it held are gone")
            self._check_paused(futs)

    def _check_paused(self, futs) -> None:
        try:
            states = self.client.run_on_scheduler(_worker_states)
        except Exception:  # noqa: BLE001 - an older scheduler: no pause check
            return
        paused = sorted(a for a in set(self.addrs) if states.get(a) == "paused")
        if not paused:
            self._paused_since = None
            return
        now = time.perf_counter()
        self._paused_since = self._paused_since or now
        if now - self._paused_since > self.pause_timeout:
            self.client.cancel(futs)
            raise self._fail(f"Dask worker(s) {', '.join(paused)} paused for {self.pause_timeout:.0f}s: their memory "
                             "is above Dask's pause threshold while they hold partitions of the fit; give the workers "
                             "more memory (memory_limit) or add workers")

    def keep(self, mask) -> None:
        drop = [f for f, k in zip(self.futures, mask) if not k]
        self.futures = [f for f, k in zip(self.futures, mask) if k]
        self.addrs = [a for a, k in zip(self.addrs, mask) if k]
        if drop:
            self.client.cancel(drop)

    def close(self) -> None:
        self.client.cancel(self.futures)
        self.futures = []


def make_engine(collection, plan, client=None, progress: bool = False, poll: float = 1.0,
                pause_timeout: float = 60.0):
    """Build one :class:`~.partition.PartitionModel` per partition of ``collection`` (one pass
    over the data: read, shuffle if planned, build) and return the engine that holds them."""
    import dask

    t0 = time.perf_counter()
    plan_node = dask.delayed(plan, pure=True)
    tasks = [dask.delayed(build_partition, pure=True)(p, plan_node) for p in collection.to_delayed()]
    if client is None:
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                models = list(dask.compute(*tasks))
        else:
            models = list(dask.compute(*tasks))
        engine = LocalEngine(models)
    else:
        futures = client.compute(tasks)
        if progress:
            from distributed import progress as dask_progress

            print(f"glmm_nb: building {len(futures)} partitions on the cluster; dashboard {client.dashboard_link}")
            dask_progress(futures)
        from distributed import wait

        wait(futures)
        bad = [f for f in futures if f.status == "error"]
        if bad:
            exc = bad[0].exception()
            client.cancel(futures)
            if isinstance(exc, GLMMError):
                raise exc
            raise DaskFitError(f"building the partitions failed: {type(exc).__name__}: {exc}")
        engine = ClientEngine(client, futures, poll=poll, pause_timeout=pause_timeout)
    engine.build_time = time.perf_counter() - t0
    return engine
