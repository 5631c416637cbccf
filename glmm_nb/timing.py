"""Where a fit's time goes: a stopwatch over the stages of the chain and the read-only record
:class:`FitTimings` every result carries (``m.timings``).

The stages, in the order a fit runs them:

* ``design``: formula, model frame, X, Z and the spec (everything before the fit proper);
* ``checks``: the data checks the design runs (response, counts, rank of X, identifiability,
  separation) — charged here, not to ``design``;
* ``starts``: the deviance function's set-up and the start values (GLM fit, theta start);
* ``optimizer``: the minimisation (``evaluations``: the deviance evaluations of the whole fit);
* ``agq``: the quadrature stage of an AGQ fit (0 otherwise);
* ``hessian``: the Hessian at the optimum (standard errors, convergence check);
* ``result``: everything else after the optimizer (the result record, its tables).

A nested stage's time is charged to it and not to the stage around it, and the calls between two
outermost stages to the one that follows, so the stages add up to ``total`` (the wall time from
the start of the fit to the result), apart from the microseconds it takes to store the record.
Standard library only: the design layer marks its checks here.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["STAGES", "FitTimings", "Stopwatch", "stopwatch", "stage", "active"]

STAGES = ("design", "checks", "starts", "optimizer", "agq", "hessian", "result")

_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("glmm_nb_stopwatch", default=None)


class FitTimings(Mapping):
    """Seconds per stage of one fit (``design checks starts optimizer agq hessian result``) and
    ``total``; ``evaluations``: the deviance evaluations of the fit. Read-only."""

    __slots__ = ("_seconds", "evaluations")

    def __init__(self, seconds: Mapping[str, float], evaluations: int = 0):
        object.__setattr__(self, "_seconds", {k: float(seconds.get(k, 0.0)) for k in (*STAGES, "total")})
        object.__setattr__(self, "evaluations", int(evaluations))

    def __setattr__(self, name, value):
        raise AttributeError("FitTimings is read-only")

    def __getitem__(self, key: str) -> float:
        return self._seconds[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._seconds)

    def __len__(self) -> int:
        return len(self._seconds)

    def __reduce__(self):
        return (FitTimings, (dict(self._seconds), self.evaluations))

    @property
    def setup_fraction(self) -> float:
        """The share of ``total`` outside the optimizer and the AGQ stage (set-up and post-fit)."""
        t = self._seconds["total"]
        return (t - self._seconds["optimizer"] - self._seconds["agq"]) / t if t > 0 else 0.0

    def as_dict(self) -> dict:
        """Stage seconds, ``total`` and ``evaluations`` as a plain dict (for JSON)."""
        return {**self._seconds, "evaluations": self.evaluations}

    def __str__(self) -> str:
        parts = [f"{k} {v:.3g} s" for k, v in self._seconds.items() if k != "total" and (v > 0 or k != "agq")]
        return (", ".join(parts) + f"; total {self._seconds['total']:.3g} s "
                f"({self.evaluations} deviance evaluations)")

    def __repr__(self) -> str:
        return f"FitTimings({self})"


class Stopwatch:
    """Stage times of one fit; :meth:`stage` nests (the inner stage's time leaves the outer's)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self._acc = dict.fromkeys(STAGES, 0.0)
        self._open: list[list] = []  # [name, start, time of the stages nested in it]
        self._last = self.t0  # end of the last outermost stage

    @contextmanager
    def stage(self, name: str):
        if name not in self._acc:
            raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
        # an outermost stage starts where the last one ended: the calls between them are its set-up
        entry = [name, time.perf_counter() if self._open else self._last, 0.0]
        self._open.append(entry)
        try:
            yield self
        finally:
            self._open.remove(entry)
            now = time.perf_counter()
            elapsed = now - entry[1]
            self._acc[name] += elapsed - entry[2]
            if self._open:
                self._open[-1][2] += elapsed
            else:
                self._last = now

    def snapshot(self, evaluations: int = 0) -> FitTimings:
        """The times so far, open stages included up to now."""
        now = time.perf_counter()
        acc = dict(self._acc)
        inner = 0.0
        for name, start, nested in reversed(self._open):  # innermost first
            elapsed = now - start
            acc[name] += elapsed - nested - inner
            inner = elapsed
        return FitTimings({**acc, "total": now - self.t0}, evaluations)


@contextmanager
def stopwatch():
    """The active stopwatch, or a new one made active for the block."""
    sw = _ACTIVE.get()
    if sw is not None:
        yield sw
        return
    sw = Stopwatch()
    token = _ACTIVE.set(sw)
    try:
        yield sw
    finally:
        _ACTIVE.reset(token)


def active() -> Stopwatch | None:
    """The stopwatch of the fit running in this context, if any."""
    return _ACTIVE.get()


@contextmanager
def stage(name: str):
    """Charge the block to stage ``name`` of the active stopwatch (nothing without one)."""
    sw = _ACTIVE.get()
    if sw is None:
        yield None
        return
    with sw.stage(name):
        yield sw
