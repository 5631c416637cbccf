"""The numeric core never imports IPython, ipywidgets, jinja2 or altair."""

import subprocess
import sys


def test_numeric_core_imports_no_display_stack():
    code = (
        "import sys, glmm_nb, glmm_nb.api, glmm_nb.formula, glmm_nb.design, glmm_nb.likelihood, glmm_nb.results,"
        " glmm_nb.optimize, glmm_nb.inference, glmm_nb.marginal, glmm_nb.datasets;"
        "bad = [m for m in ('IPython', 'ipywidgets', 'jinja2', 'altair') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, f"numeric core imported: {out.stdout} {out.stderr}"
