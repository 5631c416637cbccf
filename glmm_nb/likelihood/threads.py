r"""Threads during a fit: one, except large dense blocks on cores that are idle *now*.

A fit runs its dense algebra on one BLAS thread (:func:`fit_threads`): its blocks are small,
and OpenBLAS's workers spin between calls. Two sections can use more: LAPACK on a large dense
Schur block (:func:`blas_threads`) and the compiled pattern loops (:func:`kernel_threads`).
They get :func:`thread_budget` threads: the cores that other processes left idle since the
previous call, never more than the caller allowed.

Why "idle now". Threads on busy cores cost far more than they give: a worker that is
descheduled holds up every other (OpenBLAS's factorization waits for all of them, spinning).
Measured on InstEval's 1,156-column block (2 cores, other processes busy on both): a fit with
two LAPACK threads took 37 s of wall and 13.8 s of CPU, with one 3.5 s and 1.4 s (the same 13
evaluations, the same optimum). The 1-minute load average used before lags a new load by a
minute, long enough to fall into that: with two busy loops started beside a machine whose load
average still read 0.3, the InstEval fit took 110 s and 60 s (27 s and 17 s of CPU) by the load
average and 10.2 s and 7.6 s (1.8 s of CPU) by this measure, alternating in one run. :func:`idle_threads` instead reads the machine's busy
time (``/proc/stat``) since its previous call and subtracts this process's own CPU time (its
spinning workers included): what the *other* processes used over the last evaluation. The first
call of a fit (no recent sample) and platforms without ``/proc/stat`` get one thread.

The caller's limits. :func:`fit_threads` records the thread limits in force when the fit starts
(``threadpoolctl.threadpool_limits``, ``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``/
``MKL_NUM_THREADS`` as the libraries read them) before it pins BLAS to one thread; the threaded
sections never exceed them, and numba's kernels also stay within ``numba.get_num_threads()``
(``NUMBA_NUM_THREADS``, ``numba.set_num_threads``).
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from contextlib import contextmanager, nullcontext

from threadpoolctl import ThreadpoolController

__all__ = ["fit_threads", "blas_threads", "kernel_threads", "thread_budget", "idle_threads", "caller_threads",
           "KERNEL_LOCK"]

# numba's default (workqueue) threading layer aborts the process when two Python threads run
# parallel kernels at once: the compiled kernels are called under this lock
KERNEL_LOCK = threading.Lock()
MIN_INTERVAL = 0.05  # seconds: shorter intervals keep the previous measurement (10 ms ticks)
MAX_AGE = 10.0  # seconds: an older sample says nothing about now (one thread, and a new sample)
SLACK = 0.3  # of a core: another process using less than 0.7 of a core leaves it to us

_CALLER: contextvars.ContextVar[int | None] = contextvars.ContextVar("glmm_nb_caller_threads", default=None)
_CONTROLLER: ThreadpoolController | None = None
_STATE_LOCK = threading.Lock()
_sample: tuple[float, float, float] | None = None  # (monotonic s, machine busy CPU-s, own CPU-s)
_others: float | None = None  # CPUs the other processes used over the last interval


def controller() -> ThreadpoolController:
    """One threadpoolctl controller per process (finding the libraries costs milliseconds)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def _pool_threads() -> int:
    """The threads the BLAS and OpenMP pools allow now (the smallest; 1 if there are none)."""
    counts = [lib.num_threads for lib in controller().lib_controllers if lib.user_api in ("blas", "openmp")]
    return max(1, min(counts)) if counts else 1


def caller_threads() -> int:
    """The caller's thread limit: recorded by :func:`fit_threads`, else the pools' setting now."""
    k = _CALLER.get()
    return _pool_threads() if k is None else k


@contextmanager
def fit_threads():
    """The fit's thread setting: the caller's limits recorded, BLAS pinned to one thread."""
    token = _CALLER.set(_pool_threads())
    try:
        with controller().limit(limits=1, user_api="blas"):
            yield
    finally:
        _CALLER.reset(token)


_CPUS: int | None = None


def _cgroup_quota() -> float | None:
    """CPUs a container's CPU quota allows (cgroup v2 ``cpu.max``, v1 ``cfs_quota_us``), or None."""
    for path, parse in (("/sys/fs/cgroup/cpu.max", lambda t: t.split()),
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda t: [t.strip(), None])):
        try:
            with open(path) as fh:
                quota, period = parse(fh.read())
            if period is None:
                with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fh:
                    period = fh.read().strip()
        except (OSError, ValueError):
            continue
        if quota not in ("max", "-1") and float(quota) > 0 and float(period) > 0:
            return float(quota) / float(period)
        return None
    return None


def _cpus() -> int:
    """CPUs this process may run on: its affinity, within a container's CPU quota (the machine's
    idle time in /proc/stat says nothing about a quota: threads beyond it are throttled)."""
    global _CPUS
    if _CPUS is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            n = os.cpu_count() or 1
        quota = _cgroup_quota()
        _CPUS = max(1, min(n, int(quota))) if quota is not None else n
    return _CPUS


def _read_sample() -> tuple[float, float, float] | None:
    """(time, CPU-seconds the whole machine was busy, CPU-seconds of this process), or None."""
    try:
        with open("/proc/stat") as fh:
            f = fh.readline().split()
    except OSError:  # pragma: no cover - not Linux
        return None
    v = [int(x) for x in f[1:9]]  # user nice system idle iowait irq softirq steal
    t = os.times()
    return time.monotonic(), (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK"), t.user + t.system


def others_busy(sample=None) -> float | None:
    """CPUs the other processes used since the previous call (None: no sample of the last
    ``MAX_AGE`` seconds to compare with). ``sample`` replaces the reading (tests)."""
    global _sample, _others
    now = _read_sample() if sample is None else sample
    if now is None:
        return None
    with _STATE_LOCK:
        prev = _sample
        if prev is None or now[0] - prev[0] > MAX_AGE or now[0] < prev[0]:
            _sample, _others = now, None
            return None
        dt = now[0] - prev[0]
        if dt < MIN_INTERVAL:
            return _others
        _sample = now
        _others = max(0.0, (now[1] - prev[1]) - (now[2] - prev[2])) / dt
        return _others


def idle_threads(sample=None) -> int:
    """This thread plus the cores the other processes left idle over the last interval."""
    busy = others_busy(sample)
    if busy is None:
        return 1
    return max(1, min(_cpus(), int(_cpus() + SLACK - busy)))


def thread_budget() -> int:
    """Threads for a parallel section now: the idle cores, within the caller's limit."""
    return max(1, min(idle_threads(), caller_threads()))


def blas_threads(size: int, min_size: int):
    """LAPACK threads for a dense block of ``size`` columns: the budget from ``min_size`` on."""
    if size < min_size:
        return nullcontext()
    k = thread_budget()
    if k <= 1:
        return nullcontext()
    return controller().limit(limits=k, user_api="blas")


@contextmanager
def kernel_threads():
    """A compiled parallel kernel: under the lock, on the budget's numba threads."""
    import numba

    with KERNEL_LOCK:
        before = numba.get_num_threads()
        numba.set_num_threads(max(1, min(before, thread_budget())))
        try:
            yield
        finally:
            numba.set_num_threads(before)
