"""The ModelBuilder in a real browser: JupyterLab serves a notebook that shows the builder,
headless Chromium (Debian's ``chromium``, driven by Playwright through ``executable_path``)
runs it, clicks Fit, types a second formula, clicks Fit again, opens the Compare tab and reads
the rendered numbers (lme4's likelihood-ratio statistic from fixtures/workbench_refs.json).

Skipped, with the reason, where Chromium, Playwright or JupyterLab is missing (.ci/run installs
Chromium; the test extra brings Playwright and JupyterLab). Set GLMM_NB_WIDGET_SHOT=path.png
to keep a screenshot of the widget after the fit and the comparison.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from tests.conftest import FIXTURES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
pytest.importorskip("jupyterlab", reason="JupyterLab not installed (pip install jupyterlab)")
pytest.importorskip("ipywidgets")

REFS = json.loads((FIXTURES / "workbench_refs.json").read_text())
F1 = "use ~ age + (1 | district)"
F2 = "use ~ age + urban + (1 | district)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free local port, with a notebook that shows the builder."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import glmm_nb\n"
        "df = glmm_nb.datasets.load('contraception')\n"
        f"b = glmm_nb.ModelBuilder(df, formula={F1!r}, family='binomial', name='df')\n"
        "b")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "builder.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--allow-root"]  # CI runs as root
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "lab.log").read_text()[-2000:])
        yield f"{base}/lab/tree/builder.ipynb?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_builder_fits_and_compares_in_chromium(lab, tmp_path):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.goto(lab, timeout=120_000)
        # run the cell once the kernel is idle
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_selector("#jp-main-statusbar >> text=/Idle/", timeout=120_000)
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Shift+Enter")
        fit = page.locator(".jupyter-widgets button", has_text=re.compile(r"^Fit$"))
        fit.wait_for(timeout=120_000)
        formula_box = page.locator(".widget-text", has_text="Formula").locator("input")
        assert formula_box.input_value() == F1  # the spec given in Python reached the browser
        fit.click()
        page.wait_for_selector("text=/m1: converged in/", timeout=120_000)
        # a second model typed into the formula box, fitted, then the comparison
        formula_box.fill(F2)
        formula_box.press("Enter")
        page.wait_for_timeout(500)
        fit.click()
        page.wait_for_selector("text=/m2: converged in/", timeout=120_000)
        page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text="Compare").first.click()
        table = page.locator(".jupyter-widgets table.dataframe").first
        table.wait_for(timeout=60_000)
        # the comparison re-renders when m2 arrives: wait for its row, not just for a table (a loaded machine
        # showed the m1-only table first)
        table.locator("tbody tr th", has_text="m2").first.wait_for(timeout=60_000)
        rows = {r.locator("th").first.inner_text().strip(): [c.inner_text().strip() for c in r.locator("td").all()]
                for r in table.locator("tbody tr").all()}
        head = [h.inner_text().strip() for h in table.locator("thead tr").first.locator("th").all()][1:]
        m2 = dict(zip(head, rows["m2"]))
        assert m2["vs"] == "m1" and m2["df"] == "4"
        chisq = REFS["contraception_anova"]["chisq"][1]
        assert abs(float(m2["chisq"]) - chisq) < 1e-3, (m2["chisq"], chisq)
        assert -1e-4 <= float(m2["logLik"]) - REFS["contraception_anova"]["loglik"][1] <= 6e-4  # 4 decimals shown
        assert m2["chi_df"] == "1" and float(m2["p_value"]) == pytest.approx(REFS["contraception_anova"]["p"][1],
                                                                             rel=2e-3)
        news = page.get_by_role("button", name="No")  # JupyterLab's "get notified about news?" toast
        if news.count():
            news.first.click()
        shot = os.environ.get("GLMM_NB_WIDGET_SHOT") or str(tmp_path / "widget.png")
        page.locator(".jupyter-widgets.widget-vbox").first.screenshot(path=shot)
        assert os.path.getsize(shot) > 10_000
        browser.close()
