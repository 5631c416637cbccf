"""Progress displays (issue 17): a fit still running after the delay shows a bar counting its
deviance evaluations, closed at the end (also on an error); short fits and progress=False print
nothing; a profile shows a bar over its parameters' limits; refits inside a bootstrap show none."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import glmm_nb
from glmm_nb import ModelError, progress
from glmm_nb.optimize import minimize_devfun

FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


class FakeBar:
    made: list = []

    def __init__(self, desc, total, unit, initial):
        self.desc, self.total, self.unit, self.n = desc, total, unit, initial
        self.postfix, self.closed = "", False
        FakeBar.made.append(self)

    def update(self, n):
        self.n += n

    def set_postfix_str(self, s, refresh=True):
        self.postfix = s

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    """Bars always on, no delay, recorded instead of drawn; the session setting restored."""
    FakeBar.made = []
    monkeypatch.setattr(progress, "make_bar", FakeBar)
    old = glmm_nb.set_progress(True, delay=0)
    yield FakeBar.made
    glmm_nb.set_progress(**old)


@pytest.fixture(scope="module")
def cbpp():
    return glmm_nb.datasets.load("cbpp")


def test_fit_bar_counts_the_deviance_evaluations(bars, cbpp, monkeypatch):
    import glmm_nb.pipeline as pipeline

    runs = []  # every optimizer run's own count (a restart that is not kept included)

    def recorded(*args, **kw):
        runs.append(minimize_devfun(*args, **kw))
        return runs[-1]

    monkeypatch.setattr(pipeline, "minimize_devfun", recorded)
    m = glmm_nb.glmm(FORMULA, cbpp)
    assert len(bars) == 1
    bar = bars[0]
    assert bar.desc == "glmm_nb fit" and bar.unit == "eval" and bar.closed
    assert bar.n == sum(r.evaluations for r in runs) >= m.opt.evaluations > 10
    assert bar.postfix.startswith("deviance ")
    assert abs(float(bar.postfix.split()[1]) - m.opt.objective) <= 1e-5 * abs(m.opt.objective)


def test_short_fit_prints_nothing(cbpp, capsys, monkeypatch):
    old = glmm_nb.set_progress(True)  # on, with the default delay of 2 s: this fit takes less
    try:
        made = []
        real = progress.make_bar
        monkeypatch.setattr(progress, "make_bar", lambda *a: made.append(a) or real(*a))
        glmm_nb.glmm(FORMULA, cbpp)
    finally:
        glmm_nb.set_progress(**old)
    assert made == []
    assert capsys.readouterr().err == ""


def test_progress_false_prints_nothing(bars, cbpp, capsys):
    glmm_nb.glmm(FORMULA, cbpp, control={"progress": False})
    assert bars == []
    glmm_nb.set_progress(False, delay=0)
    glmm_nb.glmm(FORMULA, cbpp)
    assert bars == [] and capsys.readouterr().err == ""
    with pytest.raises(ModelError, match=r"control\['progress'\] must be True or False"):
        glmm_nb.glmm(FORMULA, cbpp, control={"progress": "yes"})


def test_real_bar_is_drawn_on_stderr(cbpp, capsys):
    old = glmm_nb.set_progress(True, delay=0)
    try:
        glmm_nb.glmm(FORMULA, cbpp)
    finally:
        glmm_nb.set_progress(**old)
    err = capsys.readouterr().err
    assert "glmm_nb fit" in err and "eval" in err


def test_error_during_fit_closes_the_bar(bars, cbpp, monkeypatch):
    import glmm_nb.pipeline as pipeline

    def broken(*args, **kw):
        raise ModelError("broken on purpose")

    monkeypatch.setattr(pipeline, "build_result", broken)
    with pytest.raises(ModelError, match="broken on purpose"):
        glmm_nb.glmm(FORMULA, cbpp)
    assert len(bars) == 1 and bars[0].closed and bars[0].n > 0


def test_error_inside_an_evaluation_is_counted_and_closes(bars):
    calls = [0]

    def f(x):
        calls[0] += 1
        if calls[0] == 4:
            raise RuntimeError("evaluation failed")
        return float(np.sum(x**2))

    with pytest.raises(RuntimeError), progress.fit_progress():
        minimize_devfun(f, np.ones(2), np.full(2, -np.inf), jac=False)
    assert len(bars) == 1 and bars[0].closed and bars[0].n == 4


def test_profile_shows_a_bar(bars, cbpp):
    m = glmm_nb.glmm(FORMULA, cbpp)
    bars.clear()
    ci = m.confint(method="profile")
    assert len(bars) == 1
    bar = bars[0]
    assert bar.desc == "profile intervals" and bar.total == 2 * len(ci) == bar.n and bar.closed
    assert bar.postfix == ci.index[-1]


def test_profile_follows_the_fit_setting(bars, cbpp):
    m = glmm_nb.glmm(FORMULA, cbpp, control={"progress": False})
    m.confint(method="profile")
    assert bars == []


def test_bootstrap_refits_show_no_bar_of_their_own(bars, cbpp):
    m = glmm_nb.glmm(FORMULA, cbpp)
    bars.clear()
    m.bootstrap(nsim=2, seed=1, progress=False)
    assert bars == []


def test_the_bar_waits_for_the_delay():
    now = [0.0]
    made = []
    p = progress.Progress("work", unit="eval", delay=2.0, clock=lambda: now[0])
    p_make = progress.make_bar
    try:
        progress.make_bar = lambda *a: made.append(FakeBar(*a)) or made[-1]
        for t in (0.1, 0.5, 1.9):
            now[0] = t
            p.evaluation(10.0)
        assert made == [] and p.n == 3
        now[0] = 2.5
        p.evaluation(9.0)
        p.evaluation(8.0)
        assert len(made) == 1 and made[0].n == 5 and made[0].postfix == "deviance 8"
        p.close()
        assert made[0].closed
    finally:
        progress.make_bar = p_make


def test_auto_setting(monkeypatch):
    old = glmm_nb.set_progress(None)
    try:
        monkeypatch.delenv("GLMM_NB_PROGRESS", raising=False)
        monkeypatch.setattr(progress, "_in_kernel", lambda: False)
        monkeypatch.setattr(sys, "stderr", type("NotATerminal", (), {"isatty": lambda self: False})())
        assert progress.progress_enabled() is False  # batch jobs and CI: no bars
        assert progress.progress_enabled(True) is True
        monkeypatch.setattr(sys, "stderr", type("Terminal", (), {"isatty": lambda self: True})())
        assert progress.progress_enabled() is True
        monkeypatch.setenv("GLMM_NB_PROGRESS", "0")
        assert progress.progress_enabled() is False
        monkeypatch.setattr(progress, "_in_kernel", lambda: True)
        monkeypatch.setenv("GLMM_NB_PROGRESS", "")
        assert progress.progress_enabled() is True
    finally:
        glmm_nb.set_progress(**old)
    with pytest.raises(ModelError, match="progress must be True, False or None"):
        glmm_nb.set_progress("on")


def test_no_meter_means_the_function_itself():
    def f(x):
        return 1.0

    assert progress.counted(f) is f
    with progress.Progress("off", enabled=False, counts_evaluations=True):
        assert progress.counted(f) is f


def test_bootstrap_bar_follows_the_progress_setting(cbpp, capsys):
    quiet = glmm_nb.glmm(FORMULA, cbpp, control={"progress": False})
    capsys.readouterr()
    quiet.bootstrap(nsim=2, seed=1)  # default: the fit's setting (off)
    assert "bootstrap refits" not in capsys.readouterr().err
    old = glmm_nb.set_progress(False)
    try:
        glmm_nb.glmm(FORMULA, cbpp).bootstrap(nsim=2, seed=1)  # the session setting (off)
        assert "bootstrap refits" not in capsys.readouterr().err
        quiet.bootstrap(nsim=2, seed=1, progress=True)  # asked for: a text bar on stderr
        assert "bootstrap refits" in capsys.readouterr().err
    finally:
        glmm_nb.set_progress(**old)


def test_set_progress_delay_alone_keeps_the_switch():
    old = glmm_nb.set_progress(False)
    try:
        glmm_nb.set_progress(delay=5)
        assert glmm_nb.progress.progress_enabled() is False
        assert glmm_nb.set_progress(None) == {"enabled": False, "delay": 5.0}
    finally:
        glmm_nb.set_progress(**old)
