"""The glmm-nb command: the README's demo, and fit on a CSV file."""

import numpy as np
import pandas as pd
import pytest

from glmm_nb.cli import main
from glmm_nb.datasets import load as glmm_nb_load
from tests.conftest import FIXTURES, load_case, reproduce_code, run_reproduce


def test_demo_without_output_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Laplace Approximation" in out and "treat" in out
    assert list(tmp_path.iterdir()) == []


def test_demo_runs_the_quickstart_notebook(capfd, tmp_path):
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 0
    out, err = capfd.readouterr()  # the kernel's own stderr too (file-descriptor level)
    assert out.startswith("Generalized linear mixed model") and "without encryption" not in out + err
    assert "WARNING" not in err
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


def test_cli_json_keeps_exact_numbers(capsys):
    """Issue 24: `--format json` rounded p-values to 10 decimals (cHEIGHT's 1.5e-11 printed 0.0).
    Every number now round-trips exactly; NaN is null. Reference: glmmTMB's estimate and SE of
    cHEIGHT (fixtures/cases_tmb/grouseticks_nb2.json) give the Wald p-value."""
    import json

    from scipy import stats

    case, _ = load_case("grouseticks_nb2")
    data = str(FIXTURES / "data" / "grouseticks.csv")
    args = ["fit", data, case["formula"], "--family", "negative_binomial", "--factor", "YEAR", "--factor", "BROOD",
            "--factor", "LOCATION"]
    assert main([*args, "--format", "json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text
    rows = {r["term"]: r for r in json.loads(text)}
    z = case["fixef"]["cHEIGHT"] / case["se"]["cHEIGHT"]
    p_ref = 2 * stats.norm.sf(abs(z))
    assert 1e-12 < p_ref < 1e-10
    assert rows["cHEIGHT"]["p_value"] == pytest.approx(p_ref, rel=0.3)  # a 2 % SE error moves p by ~ 20 %
    assert rows["cHEIGHT"]["std_error"] == pytest.approx(case["se"]["cHEIGHT"], rel=5e-3)
    assert main([*args, "--format", "csv"]) == 0
    import io

    import pandas as pd

    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    got = csv.set_index("term")
    assert rows["cHEIGHT"]["p_value"] == got.loc["cHEIGHT", "p_value"]  # bit for bit
    assert rows["sd__(Intercept)"]["std_error"] is None or isinstance(rows["sd__(Intercept)"]["std_error"], float)


def test_cli_zero_part_weights_offset_and_ordered_levels(capsys, tmp_path):
    """--ziformula / --hurdle / --weights / --offset reach the fit (glmmTMB / lme4 values in
    fixtures/workbench_refs.json); --ordered refuses labels without an order and a repeated
    level in one line, exit status 2."""
    import json

    refs = json.loads((FIXTURES / "workbench_refs.json").read_text())
    zi = str(FIXTURES / "data" / "zisim.csv")
    for extra, ref in ((["--ziformula", "~ 1"], refs["zisim_zip"]), (["--ziformula", "~1", "--hurdle"],
                                                                     refs["zisim_hurdle"])):
        assert main(["fit", zi, "y ~ x + (1 | g)", "--family", "poisson", *extra, "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        zrow = [r for r in rows if r["component"] == "zi"]
        assert len(zrow) == 1 and abs(zrow[0]["estimate"] - ref["zi"]["(Intercept)"]) < 1e-3
    op = str(FIXTURES / "data" / "offset_poisson.csv")
    tab = tmp_path / "op.csv"
    d = pd.read_csv(op)
    d["logt"] = np.log(d["t"])
    d.to_csv(tab, index=False)
    assert main(["fit", str(tab), "y ~ f + (1 | g)", "--family", "poisson", "--offset", "logt", "--format", "json"]) == 0
    rows = {r["term"]: r for r in json.loads(capsys.readouterr().out)}
    for term, value in refs["offset_poisson"]["fixef"].items():
        key = term if term == "(Intercept)" else f"f[T.{term[1:]}]"
        assert abs(rows[key]["estimate"] - value) < 1e-3
    cb = tmp_path / "cbpp.csv"
    d = pd.read_csv(FIXTURES / "data" / "cbpp.csv")
    d["prop"] = d["incidence"] / d["size"]
    d.to_csv(cb, index=False)
    assert main(["fit", str(cb), "prop ~ period + (1 | herd)", "--factor", "period", "--weights", "size",
                 "--format", "json"]) == 0
    rows = {r["term"]: r for r in json.loads(capsys.readouterr().out)}
    assert abs(rows["period[T.4]"]["estimate"] - refs["cbpp_weights"]["fixef"]["period4"]) < 1e-3
    assert main(["fit", str(cb), "prop ~ period + (1 | herd)", "--weights", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "glmm-nb: --weights names the column 'nope', which is not in cbpp.csv"
    wine = tmp_path / "wine.csv"
    w = glmm_nb_load("wine")
    w["rating"] = w["rating"].astype(str).map({"1": "dry", "2": "low", "3": "mid", "4": "high", "5": "top"})
    w.to_csv(wine, index=False)
    f = "rating ~ temp + (1 | judge)"
    assert main(["fit", str(wine), f, "--family", "ordinal", "--ordered", "rating"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "order may not be the scale" in err and "rating=" in err
    assert main(["fit", str(wine), f, "--family", "ordinal", "--ordered", "rating=low,low,mid,high,top"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("glmm-nb: --ordered rating=low,low,mid,high,top: the level 'low' is listed twice in "
                           "'low,low,mid,high,top'")
    assert main(["fit", str(wine), f, "--family", "ordinal", "--ordered", "rating=dry,low,,high,top"]) == 2
    assert "an empty level" in capsys.readouterr().err
