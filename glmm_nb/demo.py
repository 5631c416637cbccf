"""The quick-start notebook (example 1) and ``glmm-nb demo``, which executes it headlessly.

``quickstart_notebook()`` is the single definition of the quick-start notebook:
``example_notebooks/01_quickstart.ipynb`` is written from it (a test checks they agree) and the
demo runs it with nbclient in the folder the user names, leaving the executed notebook and the
report there.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

__all__ = ["quickstart_notebook", "run_notebook", "run_demo"]

REPORT_NAME = "quickstart_report.html"


def quickstart_notebook() -> nbformat.NotebookNode:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [
        md("# glmm_nb quick start\n\nPatients are clustered in hospitals: outcomes of patients in the same "
           "hospital are correlated, so an ordinary logistic regression overstates what the data know. "
           "A GLMM gives each hospital its own random intercept.\n\nData: `hospitals`, simulated "
           "(seed 11) — 40 hospitals of 8 to 120 patients, a randomised treatment, age, recovery."),
        code("import glmm_nb\n%load_ext glmm_nb\n\ndf = glmm_nb.datasets.load(\"hospitals\")\ndf.head()"),
        md("Fit with the `%%glmm` cell magic: the first word names the result, the body is an lme4 formula."),
        code(f"%%glmm fit --data df --family binomial --report {REPORT_NAME}\n"
             "# recovery by treatment and age, random intercept per hospital\n"
             "recovered ~ treat + age + (1 | hospital)"),
        md("The result is an ordinary Python object: tables as DataFrames."),
        code("fit.coef_table()"),
        code("fit.varcorr()"),
        code("print(f\"ICC {fit.icc():.3f}, median odds ratio {fit.mor()['hospital']:.2f}\")"),
        md("Conditional (this hospital's patient) vs marginal (the population of hospitals):"),
        code("fit.compare()"),
        md(f"The full report was written to `{REPORT_NAME}` — one self-contained HTML file to share."),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run_notebook(nb: nbformat.NotebookNode, cwd: str | Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Execute a notebook in ``cwd`` with a fresh ipykernel (nbclient).

    The kernel talks over local IPC sockets in a private temporary folder, not TCP: a TCP kernel
    without keys prints Jupyter's "Kernel is running over TCP without encryption" warning as the
    demo's first line (and would listen on a port)."""
    import tempfile

    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="glmm_nb_kernel_") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"))
        client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    return nb


def run_demo(out_dir: str | Path) -> tuple[Path, Path]:
    """Execute the quick-start notebook in ``out_dir``; return (notebook, report) paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nb = run_notebook(quickstart_notebook(), out)
    nb_path = out / "quickstart.ipynb"
    nbformat.write(nb, nb_path)
    return nb_path, out / REPORT_NAME
