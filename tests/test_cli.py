"""The glmm-nb command: the README's demo, and fit on a CSV file."""

from glmm_nb.cli import main
from tests.conftest import FIXTURES


def test_demo_without_output_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Laplace Approximation" in out and "treat" in out
    assert list(tmp_path.iterdir()) == []


def test_demo_runs_the_quickstart_notebook(capsys, tmp_path):
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / "quickstart.ipynb").exists()
    assert "<html" in (tmp_path / "demo" / "quickstart_report.html").read_text()


def test_fit_csv_report_and_one_line_errors(capsys, tmp_path):
    data = str(FIXTURES / "data" / "cbpp.csv")
    out = tmp_path / "r.html"
    rc = main(["fit", data, "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--factor", "period",
               "--method", "agq", "--nagq", "10", "-o", str(out)])
    assert rc == 0 and "nAGQ = 10" in capsys.readouterr().out and out.exists()
    rc = main(["fit", data, "incidence ~ nope + (1 | herd)", "--family", "poisson"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == "glmm-nb: unknown column 'nope' in the fixed part 'nope'"
    rc = main(["fit", str(tmp_path / "missing.csv"), "y ~ (1 | g)"])
    assert rc == 2 and "no such data file" in capsys.readouterr().err
