"""Every example notebook executes without error (nbclient + ipykernel), in a temp folder."""

from pathlib import Path

import nbformat
import pytest

from glmm_nb.demo import quickstart_notebook, run_notebook

NOTEBOOKS = sorted((Path(__file__).parent.parent / "example_notebooks").glob("*.ipynb"))
MAX_BYTES = 500_000  # an executed example notebook, as nbformat writes it


def test_there_are_five_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


def test_quickstart_file_is_the_demo_notebook():
    on_disk = nbformat.read(NOTEBOOKS[0], as_version=4)
    assert [c.source for c in on_disk.cells] == [c.source for c in quickstart_notebook().cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    run_notebook(nb, tmp_path, timeout=300)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    stderr = [o.text for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "stream" and o.name == "stderr" and "glmm:" in o.text]
    assert not stderr, stderr
    size = len(nbformat.writes(nb))
    print(f"{path.name}: {size:,} bytes executed")
    assert size <= MAX_BYTES, f"{path.name} executed is {size:,} bytes"
