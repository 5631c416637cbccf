"""The glmm-nb command: the README's demo, and fit on a CSV file."""

from glmm_nb.cli import main
from tests.conftest import FIXTURES


def test_demo_prints_the_cbpp_summary(capsys, tmp_path):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Laplace Approximation" in out and "period[T.2]" in out
    assert (tmp_path / "cbpp_summary.txt").read_text().startswith("Generalized linear mixed model")


def test_fit_csv_and_one_line_errors(capsys):
    data = str(FIXTURES / "data" / "cbpp.csv")
    rc = main(["fit", data, "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--factor", "period"])
    assert rc == 0 and "herd" in capsys.readouterr().out
    rc = main(["fit", data, "incidence ~ nope + (1 | herd)", "--family", "poisson"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip() == "glmm-nb: unknown column 'nope' in the fixed part 'nope'"
