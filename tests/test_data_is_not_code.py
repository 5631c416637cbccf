"""Formulas are code; data are not (issue 16). Column names, factor levels and CSV headers that
look like Python go through every entry point without being evaluated, and no module of the
package evaluates text itself."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.cli import main

PKG = Path(glmm_nb.__file__).parent


def payload(sentinel: Path) -> str:
    return f"__import__('pathlib').Path({str(sentinel)!r}).touch()"


@pytest.fixture
def hostile(tmp_path):
    sentinel = tmp_path / "pwned"
    code = payload(sentinel)
    rng = np.random.default_rng(7)
    n = 160
    d = pd.DataFrame({
        "x": rng.normal(size=n),
        "z": rng.choice([code, "b", f"{{{code}}}"], n),  # factor levels that look like code
        "g": rng.choice([f"g{i}_{code}" if i % 2 else f"`{i}`" for i in range(10)], n),
        code: rng.normal(size=n),  # a column named like code, never used
        f"x` + I({code}) + `w": rng.normal(size=n),  # a column that would break out of backticks
    })
    d["y"] = (rng.random(n) < 0.5).astype(int)
    return d, sentinel


def test_names_and_levels_are_never_evaluated(hostile, tmp_path):
    d, sentinel = hostile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glmm_nb.glmm("y ~ x + z + (1 | g)", d)
        m.predict(d.iloc[:20])
        m.simulate(newdata=d.iloc[:20], seed=1)
        m.compare(gee="g")
        m.marginal_effects("x")
        m.causal_checks()
        glmm_nb.anova(m)
        m.emmeans("z")
        m.summary()
        m.report(diagnostics_nsim=20, svg_fallback=False, emmeans="z").save(tmp_path / "r.html")
    assert not sentinel.exists()


def test_csv_headers_are_never_evaluated(hostile, tmp_path, capsys):
    d, sentinel = hostile
    path = tmp_path / "hostile.csv"
    d.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", str(path), "y ~ x + z + (1 | g)", "--factor", "z", "--factor", payload(sentinel)]) == 0
        # code in the formula is formulaic's business; here it is refused as unreadable, in one line
        assert main(["fit", str(path), f"y ~ x + ({payload(sentinel)} | g)"]) == 2
    assert capsys.readouterr().err.startswith("glmm-nb: ")
    assert not sentinel.exists()


def test_the_builder_never_puts_a_breakout_name_in_a_formula(hostile):
    pytest.importorskip("ipywidgets")
    d, sentinel = hostile
    b = glmm_nb.ModelBuilder(d)
    assert all("`" not in o for o in b.fixed.options)
    b.response.value = "y"
    b.fixed.value = tuple(o for o in b.fixed.options if o != "y")
    b.groups.value = ("g",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b.fit()
    assert not sentinel.exists()


def test_the_package_evaluates_no_text():
    """No eval/exec/compile and no pandas eval/query anywhere in glmm_nb: the only evaluation of
    text is formulaic's, of the formula the user wrote."""
    bad = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id in ("eval", "exec", "compile", "__import__"):
                    bad.append(f"{path.relative_to(PKG)}:{node.lineno} {f.id}()")
                if isinstance(f, ast.Attribute) and f.attr in ("eval", "query"):  # pandas' text evaluation
                    bad.append(f"{path.relative_to(PKG)}:{node.lineno} .{f.attr}()")
    assert bad == []
