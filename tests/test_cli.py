"""The glmm-nb command: the README's demo, and fit on a CSV file."""

import pytest

from glmm_nb.cli import main
from tests.conftest import FIXTURES, reproduce_code, run_reproduce


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


def test_unreadable_inputs_and_outputs_are_one_liners(capsys, tmp_path, monkeypatch):
    """Issue 16: empty, binary, Latin-1 and folder inputs, and -o into a missing or unwritable
    folder, end in `glmm-nb: …` with exit status 2 — the output path before any fitting."""
    import glmm_nb.cli as cli

    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "latin.csv").write_bytes("y,g,x\n1,caf\xe9,2\n0,th\xe9,3\n".encode("latin-1"))
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "header.csv").write_text("y,g,x\n")
    formula = "y ~ x + (1 | g)"
    cases = [
        ([str(tmp_path / "empty.csv"), formula], "is empty"),
        ([str(tmp_path / "binary.csv"), formula], "is not a text (CSV) file"),
        ([str(tmp_path / "latin.csv"), formula], "is not utf-8 text (byte 0xe9 on line 2); give its encoding, "
                                                 "e.g. --encoding latin-1"),
        ([str(tmp_path / "folder.csv"), formula], "is a folder, not a CSV file"),
        ([str(tmp_path / "header.csv"), formula], "the data frame has no rows"),
        ([str(tmp_path / "latin.csv"), formula, "--encoding", "klingon"], "unknown encoding 'klingon'"),
    ]
    for argv, message in cases:
        assert main(["fit", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("glmm-nb: ") and message in err and len(err.strip().splitlines()) == 1, err
    # latin-1 read as such
    with pytest.warns(UserWarning):  # two rows: separated, of course
        assert main(["fit", str(tmp_path / "latin.csv"), formula, "--encoding", "latin-1"]) == 0
    assert "groups:  g, 2" in capsys.readouterr().out.replace("Number of obs: 2, ", "")

    calls = []
    monkeypatch.setattr(cli, "read_data", lambda *a: calls.append(a))  # the fit must not even start
    data = str(FIXTURES / "data" / "cbpp.csv")
    for out, message in ((tmp_path / "missing" / "r.html", "the folder"), (tmp_path / "folder.csv", "is a folder"),
                         (tmp_path / "empty.csv" / "r.html", "is not a folder"),
                         ("/proc/r.html", "cannot write into '/proc'")):
        assert main(["fit", data, "incidence ~ period + (1 | herd)", "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("glmm-nb: -o ") and message in err and len(err.strip().splitlines()) == 1, err
    assert calls == []
    assert main(["demo", "-o", str(tmp_path / "empty.csv" / "demo")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_cli_help_version_sep_and_formats(capsys, tmp_path):
    import json
    import subprocess
    import sys

    import glmm_nb

    assert main([]) == 0 and "usage: glmm-nb" in capsys.readouterr().out
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"glmm-nb {glmm_nb.__version__}"
    src = (FIXTURES / "data" / "cbpp.csv").read_text().replace(",", ";")
    semi = tmp_path / "cbpp_semicolon.csv"
    semi.write_text(src)
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    assert main(["fit", str(semi), formula, "--factor", "period", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["term"] for r in rows][:2] == ["(Intercept)", "period[T.2]"] and "conf_low" in rows[0]
    assert main(["fit", str(semi), formula, "--factor", "period", "--sep", ";", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("effect,group,term,estimate") and len(out) == 6
    # piping into a reader that stops early ends quietly (no BrokenPipeError traceback)
    cmd = [sys.executable, "-m", "glmm_nb.cli", "fit", str(semi), formula, "--factor", "period"]
    p1 = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p1.stdout.read(10)
    p1.stdout.close()
    err = p1.stderr.read().decode()
    p1.wait()
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_cli_report_reproduce_reads_the_csv(capsys, tmp_path):
    """The report written by ``glmm-nb fit -o`` holds code that reads the same CSV (its
    separator, the --factor column as a factor) and refits the same model."""
    import warnings

    import glmm_nb

    src = (FIXTURES / "data" / "cbpp.csv").read_text().replace(",", ";")
    semi = tmp_path / "cbpp_semicolon.csv"
    semi.write_text(src)
    out = tmp_path / "r.html"
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    assert main(["fit", str(semi), formula, "--factor", "period", "-o", str(out)]) == 0
    code = reproduce_code(out.read_text())
    assert f"pd.read_csv({str(semi)!r}, sep=';')" in code
    ns = run_reproduce(code)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandas as pd

        d = pd.read_csv(semi, sep=";")
        d["period"] = pd.Categorical(d["period"].astype(str))
        ref = glmm_nb.glmm(formula, d)
    assert ns["m"].loglik == pytest.approx(ref.loglik, abs=1e-9)
    assert list(ns["m"].fixef.index) == list(ref.fixef.index)
