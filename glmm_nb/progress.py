"""Progress displays for long work: a fit still running after a delay, profiles.

A bar appears only once the work has run for ``delay`` seconds (2 by default), so short fits
never flash one; it is a widget in notebooks and a text bar in terminals (``tqdm.auto``), and
it is closed when the work ends, also on an error.

Whether bars are shown at all (``progress``):

* ``control={"progress": False}`` (or ``True``) for one fit — profiles of that model follow it;
* :func:`set_progress` for the session (``glmm_nb.set_progress(False)``);
* else the environment variable ``GLMM_NB_PROGRESS`` (``0``/``1``);
* else *auto*: on in a Jupyter kernel and when stderr is a terminal, off otherwise, so logs of
  batch jobs and CI stay clean.

Cost: a fit with bars off runs the optimizer on the deviance function itself; with bars on, each
deviance evaluation adds a counter increment and one ``time.perf_counter()`` call until the bar
shows. No thread and no tqdm object exists before the delay has passed. A fit inside other
long work (a profile, a bootstrap, another fit) shows no bar of its own.
"""

from __future__ import annotations

import contextvars
import os
import sys
import time

__all__ = ["set_progress", "progress_enabled", "Progress", "fit_progress", "quiet", "counted", "make_bar",
           "DEFAULT_DELAY"]

DEFAULT_DELAY = 2.0
_OPTIONS = {"progress": None, "delay": DEFAULT_DELAY}
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("glmm_nb_progress", default=None)


_KEEP = object()  # set_progress(delay=5) leaves the on/off setting as it is


def set_progress(enabled=_KEEP, delay: float | None = None) -> dict:
    """Session-wide progress setting.

    Parameters
    ----------
    enabled : bool or None
        True: always show bars for long work; False: never; None: auto (a Jupyter kernel or a
        terminal on stderr). Not given: unchanged.
    delay : float, optional
        Seconds a fit or profile must run before its bar appears (default 2).

    Returns
    -------
    dict
        The previous settings (``set_progress(**old)`` restores them).
    """
    from .errors import ModelError

    old = {"enabled": _OPTIONS["progress"], "delay": _OPTIONS["delay"]}
    if enabled is not _KEEP and enabled is not None and not isinstance(enabled, bool):
        raise ModelError(f"progress must be True, False or None (auto), not {enabled!r}")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not delay >= 0:
            raise ModelError(f"the progress delay must be a number of seconds ≥ 0, not {delay!r}")
        _OPTIONS["delay"] = float(delay)
    if enabled is not _KEEP:
        _OPTIONS["progress"] = enabled
    return old


def _in_kernel() -> bool:
    """True inside a Jupyter (ipykernel) session; IPython is looked up, never imported."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and hasattr(shell, "kernel")


def progress_enabled(setting: bool | None = None) -> bool:
    """Whether to show bars: ``setting`` (a fit's ``control["progress"]``) if given, else the
    session setting, else ``GLMM_NB_PROGRESS``, else auto (a Jupyter kernel or a terminal)."""
    if setting is not None:
        return bool(setting)
    if _OPTIONS["progress"] is not None:
        return bool(_OPTIONS["progress"])
    env = os.environ.get("GLMM_NB_PROGRESS", "").strip().lower()
    if env in ("0", "false", "off", "no"):
        return False
    if env in ("1", "true", "on", "yes"):
        return True
    if _in_kernel():
        return True
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def make_bar(desc: str, total: int | None, unit: str, initial: int):
    """The display itself: a ``tqdm.auto`` bar (a widget in notebooks, text elsewhere)."""
    from tqdm.auto import tqdm

    return tqdm(desc=desc, total=total, unit=unit, initial=initial, leave=False, dynamic_ncols=True)


class Progress:
    """A bar that appears only when the work is still running after ``delay`` seconds.

    Parameters
    ----------
    desc : str
        What runs ("glmm_nb fit", "profile intervals").
    total : int, optional
        Steps expected (None: a running count).
    unit : str
    enabled : bool
        False: a no-op (nothing is ever shown).
    delay : float, optional
        Seconds before the bar appears (default: the session setting).
    counts_evaluations : bool
        True for a fit: :func:`counted` routes the optimizer's deviance evaluations here.
    clock : callable
        Seconds (``time.perf_counter``; tests pass a fake clock).
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True,
                 delay: float | None = None, counts_evaluations: bool = False, clock=time.perf_counter):
        self.desc, self.total, self.unit = desc, total, unit
        self.enabled = bool(enabled)
        self.delay = _OPTIONS["delay"] if delay is None else float(delay)
        self.counts_evaluations = counts_evaluations and self.enabled
        self.clock = clock
        self.n = 0
        self.bar = None
        self.postfix = ""
        self.t0 = clock() if self.enabled else 0.0

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        """Count ``n`` steps; show the bar once the delay has passed."""
        self.n += n
        if not self.enabled:
            return
        if postfix is not None:
            self.postfix = postfix
        if self.bar is None:
            if self.clock() - self.t0 < self.delay:
                return
            self.bar = make_bar(self.desc, self.total, self.unit, self.n)
        else:
            self.bar.update(n)
        if self.postfix:
            self.bar.set_postfix_str(self.postfix, refresh=False)

    def evaluation(self, value) -> None:
        """One deviance evaluation, the deviance shown in the postfix."""
        if self.bar is None:
            self.n += 1
            if self.clock() - self.t0 < self.delay:
                return
            self.n -= 1
        try:
            shown = f"deviance {float(value):.6g}"
        except (TypeError, ValueError):
            shown = None
        self.update(1, shown)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self._token)
        self.close()


def fit_progress(setting: bool | None = None, desc: str = "glmm_nb fit") -> Progress:
    """The progress of one fit (a context manager): counts the optimizer's deviance evaluations
    (:func:`counted`); silent inside other long work or when bars are off."""
    enabled = _ACTIVE.get() is None and progress_enabled(setting)
    return Progress(desc, unit="eval", enabled=enabled, counts_evaluations=True)


def quiet() -> Progress:
    """A context in which fits show no bar (bootstrap refits, refits of a profile)."""
    return Progress("", enabled=False)


def counted(fun):
    """``fun`` counted by the active fit's progress (its return value, or the first element of
    a ``(value, gradient)`` pair, as the deviance); ``fun`` itself when no fit bar can show."""
    meter = _ACTIVE.get()
    if meter is None or not meter.counts_evaluations:
        return fun

    def fun_counted(x):
        try:
            out = fun(x)
        except BaseException:
            meter.evaluation(float("nan"))
            raise
        meter.evaluation(out[0] if isinstance(out, tuple) else out)
        return out

    return fun_counted
