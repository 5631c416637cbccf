"""%%glmm / %glmm through a real IPython InteractiveShell."""

import pytest

import glmm_nb
from glmm_nb.magics.args import ArgError, clean_body, parse_line
from tests.conftest import reproduce_code, run_reproduce

IPython = pytest.importorskip("IPython")


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "glmm_nb")
    shell.user_ns["df"] = glmm_nb.datasets.load("cbpp")
    yield shell
    shell.run_line_magic("config", "GlmmMagic.family = 'binomial'")


def test_cell_magic_stores_displays_and_writes_report(ip, tmp_path, capsys):
    path = tmp_path / "fit.html"
    ip.run_cell(f"%%glmm fit --data df --family binomial --method agq --nagq 10 --report {path}\n"
                "# a comment line\n\ncbind(incidence, size - incidence) ~ period + (1 | herd)\n")
    m = ip.user_ns["fit"]
    assert isinstance(m, glmm_nb.GLMMResult) and m.nagq == 10
    assert path.exists() and "<html" in path.read_text()
    assert "data = df  # the data frame the model was fitted to" in path.read_text()  # Reproduce runs here
    ns = run_reproduce(reproduce_code(path.read_text()), {"df": ip.user_ns["df"]})
    assert ns["m"].loglik == pytest.approx(m.loglik, abs=1e-9) and ns["m"].nagq == 10
    out = capsys.readouterr().out
    assert "Adaptive Gauss-Hermite Quadrature, nAGQ = 10" in out and f"Report written to {path}" in out


def test_displayed_html(ip):
    from glmm_nb.magics.run import MagicOutput

    m = ip.user_ns.get("fit") or glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", ip.user_ns["df"])
    html = MagicOutput(m, None, None)._repr_html_()
    assert "<table" in html and "period[T.2]" in html


def test_line_magic_returns_result_and_var_expansion(ip):
    ip.run_cell("m1 = %glmm --data df cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert ip.user_ns["m1"].nobs == 56
    ip.user_ns["grp"] = "herd"
    ip.run_cell("%%glmm m2 --data df --quiet\ncbind(incidence, size - incidence) ~ 1 + (1 | {grp})")
    assert ip.user_ns["m2"].ngroups == {"herd": 15}


def test_config_defaults(ip):
    ip.run_line_magic("config", "GlmmMagic.family = 'poisson'")
    ip.run_cell("%%glmm p --data df --quiet\nincidence ~ period + (1 | herd)")
    assert ip.user_ns["p"].family == "poisson"
    ip.run_line_magic("config", "GlmmMagic.family = 'binomial'")


@pytest.mark.parametrize(
    "cell, message",
    [
        ("%%glmm --data nothere\ny ~ x + (1 | g)", "glmm: unknown data frame 'nothere': no such variable in the notebook"),
        ("%%glmm --data df\nincidence ~ nope + (1 | herd)", "glmm: unknown column 'nope' in the fixed part 'nope'"),
        ("%%glmm --data df --method pql\nincidence ~ period + (1 | herd)", "glmm: unknown method 'pql'; choose 'laplace' or 'agq'"),
        ("%%glmm --data df\nincidence ~ period + (1 | herd", "glmm: unbalanced parentheses"),
        ("%%glmm --data df --bogus 1\nincidence ~ period + (1 | herd)", "glmm: unknown option --bogus; see %%glmm?"),
    ],
)
def test_analyst_errors_are_one_line(ip, capsys, cell, message):
    from IPython.core.error import UsageError

    res = ip.run_cell(cell)
    err = capsys.readouterr().err
    # the cell fails (Run All stops there) with one line and no traceback
    assert isinstance(res.error_in_exec, UsageError)
    assert err.strip().startswith("UsageError: " + message) and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_full_traceback_on_request(ip):
    ip.run_line_magic("config", "GlmmMagic.short_errors = False")
    try:
        res = ip.run_cell("%%glmm --data df\nincidence ~ nope + (1 | herd)")
        assert isinstance(res.error_in_exec, glmm_nb.FormulaError)
    finally:
        ip.run_line_magic("config", "GlmmMagic.short_errors = True")


def test_generated_help(ip):
    doc = ip.find_cell_magic("glmm").__doc__
    for opt in ("--data", "--family", "--link", "--method", "--nagq", "--reml", "--ml", "--weights", "--offset",
                "--report", "--quiet", "--marginal"):
        assert opt in doc


def test_parsing_is_separate_from_execution():
    a = parse_line("fit --data df --nagq=7 --method agq --ml", cell=True)
    assert (a.name, a.data, a.nagq, a.method, a.reml) == ("fit", "df", 7, "agq", False)
    b = parse_line("--data df y ~ x + (1 | g)", cell=False)
    assert b.formula == "y ~ x + (1 | g)" and b.name is None
    with pytest.raises(ArgError, match="needs a value"):
        parse_line("--data", cell=True)
    assert clean_body("  # c\n y ~ x  # trailing\n\n + (1 | g)\n") == "y ~ x + (1 | g)"
    with pytest.raises(ArgError, match="more than one formula"):
        clean_body("y ~ x + (1|g)\nz ~ x + (1|g)")


def test_braces_backticks_and_report_folder(ip, capsys, tmp_path):
    """Issue 16: formulaic's {…} is not evaluated against the notebook; '#' inside backticks is a
    name; --report into a missing folder is refused before the fit."""
    from glmm_nb.magics.args import expand_names

    df = ip.user_ns["df"].copy()
    df["herd #"] = df["herd"]
    ip.user_ns["dfh"] = df
    ip.user_ns["size"] = 1000  # a notebook variable that must not leak into {size + 1}
    ip.run_cell("%%glmm b1 --data dfh --family poisson --quiet\nincidence ~ {size + 1} + (1 | `herd #`)  # note")
    m = ip.user_ns["b1"]
    assert "size + 1" in m.fixef.index and m.ngroups == {"herd #": 15}
    ip.run_cell("b2 = %glmm --data dfh --family poisson incidence ~ {np.log(size)} + (1 | herd)")
    assert "np.log(size)" in ip.user_ns["b2"].fixef.index
    assert expand_names("y ~ x + (1 | {grp}) + {x + 1} + {n}", {"grp": "herd", "n": [1]}) == \
        "y ~ x + (1 | herd) + {x + 1} + {n}"
    assert clean_body("y ~ x + (1 | `site #3`) # comment\n") == "y ~ x + (1 | `site #3`)"
    ip.user_ns.pop("b3", None)
    res = ip.run_cell(f"%%glmm b3 --data dfh --family poisson --report {tmp_path / 'no' / 'r.html'}\n"
                      "incidence ~ period + (1 | herd)")
    err = capsys.readouterr().err
    assert res.error_in_exec is not None and "b3" not in ip.user_ns
    assert err.strip().startswith("UsageError: glmm: --report") and "does not exist" in err
    assert len(err.strip().splitlines()) == 1


def test_ordinal_family(ip, tmp_path, capsys):
    ip.user_ns["wine"] = glmm_nb.datasets.load("wine")
    path = tmp_path / "o.html"
    ip.run_cell(f"%%glmm om --data wine --family ordinal --link probit --report {path}\n"
                "rating ~ temp + contact + (1 | judge)\n")
    m = ip.user_ns["om"]
    assert m.family == "ordinal" and m.link == "probit" and len(m.thresholds) == 4
    assert "Threshold coefficients" in capsys.readouterr().out and path.exists()
    ip.run_cell("m2 = %glmm --data wine --family ordinal --method agq --nagq 7 rating ~ temp + (1 | judge)")
    assert ip.user_ns["m2"].nagq == 7 and ip.user_ns["m2"].family == "ordinal"
    assert "ordinal" in glmm_nb.magics.args.help_text()


def test_line_magic_takes_the_cell_grammar_and_reports_are_linked(ip, tmp_path):
    """``%glmm m2 --data df formula`` stores m2 (one grammar for both magics); a --report is
    shown as a link unless --embed asks for it inline."""
    from glmm_nb.magics.run import MagicOutput

    ip.user_ns.pop("m2", None)
    res = ip.run_cell("%glmm m2 --data df --family binomial cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert res.error_in_exec is None and "m2" in ip.user_ns
    assert ip.user_ns["m2"].family == "binomial"
    m = ip.user_ns["m2"]
    rep = m.report(diagnostics_nsim=10)
    path = rep.save(tmp_path / "r.html")
    small = MagicOutput(m, path, rep)._repr_html_()
    big = MagicOutput(m, path, rep, embed=True)._repr_html_()
    assert 'href="' in small and "<iframe" not in small and len(small) < 20_000
    assert "<iframe" in big and len(big) > 10 * len(small)


def test_polars_data_in_the_magic_and_the_builder(ip):
    pl = pytest.importorskip("polars")
    df = ip.user_ns["df"]
    ip.user_ns["pdf"] = pl.from_pandas(df)
    ip.run_cell("%%glmm pm --data pdf --quiet\ncbind(incidence, size - incidence) ~ period + (1 | herd)")
    ref = glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", df)
    assert ip.user_ns["pm"].loglik == pytest.approx(ref.loglik, abs=1e-10)
    from glmm_nb.widgets import ModelBuilder

    assert list(ModelBuilder(pl.from_pandas(df)).data.columns) == list(df.columns)


def test_zero_part_hurdle_and_ordered_in_both_magics(ip):
    """Issue 24: `--ziformula '~ 1'` was "unknown option"; --ziformula, --hurdle and --ordered
    now work with the same grammar in %%glmm and %glmm (glmmTMB values in
    fixtures/workbench_refs.json)."""
    import json

    import pandas as pd

    from tests.conftest import FIXTURES

    refs = json.loads((FIXTURES / "workbench_refs.json").read_text())
    ip.user_ns["zi"] = pd.read_csv(FIXTURES / "data" / "zisim.csv")
    ip.run_cell("%%glmm zip --data zi --family poisson --ziformula '~ 1' --quiet\ny ~ x + (1 | g)")
    zip_ = ip.user_ns["zip"]
    assert -1e-4 <= zip_.loglik - refs["zisim_zip"]["loglik"] <= 5e-4
    ip.run_cell("hur = %glmm --data zi --family poisson --ziformula='~1' --hurdle y ~ x + (1 | g)")
    hur = ip.user_ns["hur"]
    assert -1e-4 <= hur.loglik - refs["zisim_hurdle"]["loglik"] <= 5e-4
    assert abs(hur.zi_fixef.iloc[0] - refs["zisim_hurdle"]["zi"]["(Intercept)"]) < 1e-3
    args = parse_line("--data zi --ziformula \"~ x\" --hurdle y ~ x + (1 | `g g`)", cell=False)
    assert (args.ziformula, args.hurdle, args.formula) == ("~ x", True, "y ~ x + (1 | `g g`)")
    with pytest.raises(ArgError, match="quote a zero-part formula"):
        parse_line("--data zi --ziformula ~ x y ~ x + (1 | g)", cell=False)
    wine = glmm_nb.datasets.load("wine")
    wine["rating"] = wine["rating"].astype(str).map({"1": "dry", "2": "low", "3": "mid", "4": "high", "5": "top"})
    ip.user_ns["wine"] = wine
    ip.run_cell("%%glmm w --data wine --family ordinal --ordered rating=dry,low,mid,high,top --quiet\n"
                "rating ~ temp + contact + (1 | judge)")
    assert abs(ip.user_ns["w"].loglik - (-81.5654)) < 1e-3
    assert str(ip.user_ns["wine"]["rating"].dtype) != "category"  # the notebook's frame is not changed
    from glmm_nb.magics.run import run_magic
    from glmm_nb.errors import DataError

    bad = parse_line("--data wine --family ordinal --ordered rating=dry,dry,mid,high,top", cell=True)
    with pytest.raises(DataError, match="'dry' is listed twice"):
        run_magic(bad, "rating ~ temp + (1 | judge)", ip.user_ns, {})
    bad = parse_line("--data wine --family ordinal --ordered rating", cell=True)
    with pytest.raises(DataError, match="order may not be the scale"):
        run_magic(bad, "rating ~ temp + (1 | judge)", ip.user_ns, {})
    # the model builder's cell text runs as written
    pytest.importorskip("ipywidgets")
    b = glmm_nb.ModelBuilder(ip.user_ns["zi"], formula="y ~ x + (1 | g)", family="poisson", ziformula="~ 1",
                             hurdle=True, name="zi")
    ip.run_cell(b.cell.replace("%%glmm result", "%%glmm from_cell --quiet", 1))
    assert ip.user_ns["from_cell"].loglik == pytest.approx(hur.loglik, abs=1e-8)
