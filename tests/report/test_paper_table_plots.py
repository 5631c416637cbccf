"""Models side by side for papers (glmm_nb.table) and the report's charts from Python (m.plot)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pytest

import glmm_nb
from glmm_nb import ModelError
from tests.conftest import load_case


@pytest.fixture(scope="module")
def two():
    case, df = load_case("cbpp_laplace")
    m1 = glmm_nb.glmm(case["formula"], df)
    m2 = glmm_nb.glmm("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", df)
    return m1, m2


def test_table_lines_up_models(two):
    m1, m2 = two
    case, _ = load_case("cbpp_laplace")
    t = glmm_nb.table([m1, m2], labels=["period", "null"])
    f = t.to_frame()
    assert list(f.columns) == ["period", "null"] and f.index.is_unique
    assert f.loc["period[T.2]", "null"] == ""  # empty where the model has no such row
    ct = m1.coef_table()
    # one count of decimals per model and block: the smallest magnitude keeps 3 significant digits
    lo, hi = ct.loc["period[T.2]", ["conf_low", "conf_high"]]
    assert f.loc["period[T.2]", "period"] == f"{ct.loc['period[T.2]', 'estimate']:.3f} [{lo:.3f}, {hi:.3f}]"
    assert f.loc["period[T.2]", "period"].startswith(f"{case['fixef']['period2']:.3f} [")  # lme4: -0.992
    assert f.loc["AIC", "null"] == f"{m2.aic:.2f}" and f.loc["N", "period"] == "56"
    assert f.loc["AIC", "period"] == f"{case['aic']:.2f}"
    assert f.loc["Groups (herd)", "null"] == "15"
    assert f.loc["SD ((Intercept) | herd)", "period"] == f"{case['varcorr'][0]['sdcor']:.3f}"
    se = glmm_nb.table(m1, show="se", stars=True).to_frame()
    assert se.loc["period[T.4]", "(1)"].endswith(f"*** ({ct.loc['period[T.4]', 'std_error']:.3f})")
    html = t._repr_html_()
    assert "<table>" in html and "Random effects" in html
    assert t.to_markdown().splitlines()[0] == "| | period | null |"
    tex = t.to_latex()
    assert tex.startswith(r"\begin{tabular}{lrr}") and r"period[T.2]" in tex and r"\bottomrule" in tex
    assert r"SD ((Intercept) \textbar{} herd)" in tex and r"\textit{Random effects}" in tex


def _md_cells(line: str) -> list[str]:
    """The cells of a Markdown pipe-table row (escaped pipes stay in their cell)."""
    import re

    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_markdown_escapes_pipes_and_every_value_stays_in_its_column(two):
    """Issue 24: `SD ((Intercept) | herd)` moved every value of its row one column right."""
    t = glmm_nb.table(list(two), labels=["a", "b"])
    f = t.to_frame()
    rows = {c[0]: c[1:] for c in map(_md_cells, t.to_markdown().splitlines()) if c and c[0]}
    assert rows["SD ((Intercept) | herd)"] == list(f.loc["SD ((Intercept) | herd)"])
    assert rows["period[T.3]"] == list(f.loc["period[T.3]"])
    assert all(len(c) == 3 for c in map(_md_cells, t.to_markdown().splitlines()[:-3]) if c)


def test_block_decimals_keep_significant_digits():
    from glmm_nb.papertable import block_decimals

    assert block_decimals([1.0026], 3) == 2 and f"{1.0026:.2f}" == "1.00"  # not "1"
    assert block_decimals([1.0026], 5) == 4 and f"{1.0026:.4f}" == "1.0026"
    assert block_decimals([1.4, 1.31], 3) == 2  # "1.40" beside "1.31", never "1.4"
    assert block_decimals([-0.0046, 0.00071, 12.5], 3) == 6  # 0.000710
    assert block_decimals([3.2e-9, 1.0], 3) is None  # scientific notation, digits kept
    with pytest.raises(ModelError, match="digits"):
        glmm_nb.table(glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", glmm_nb.datasets.load("sleepstudy"),
                                   family="gaussian"), digits=0)


def test_zero_part_dispersion_thresholds_and_ci_labels(tmp_path):
    """Zero-inflation, hurdle, dispersion and threshold blocks are labelled in every format,
    the frame's index is unique, and conf_level=0.975 is "97.5 % CI" (glmmTMB values from
    fixtures/workbench_refs.json)."""
    import json

    import pandas as pd

    from tests.conftest import FIXTURES

    refs = json.loads((FIXTURES / "workbench_refs.json").read_text())
    zi = pd.read_csv(FIXTURES / "data" / "zisim.csv")
    zip_ = glmm_nb.glmm("y ~ x + (1 | g)", zi, family="poisson", ziformula="~ 1")
    hur = glmm_nb.glmm("y ~ x + (1 | g)", zi, family="poisson", ziformula="~ 1", hurdle=True)
    nb = glmm_nb.glmm("y ~ x + (1 | g)", zi, family="negative_binomial")
    t = glmm_nb.table([zip_, hur, nb], labels=["ZIP", "hurdle", "NB2"], conf_level=0.975)
    f = t.to_frame()
    assert f.index.is_unique
    zrow, hrow = f.loc["zi: (Intercept)"], f.loc["hurdle: (Intercept)"]
    assert zrow["ZIP"].startswith(f"{refs['zisim_zip']['zi']['(Intercept)']:.3f} [")
    assert hrow["hurdle"].startswith(f"{refs['zisim_hurdle']['zi']['(Intercept)']:.3f} [")
    assert zrow["hurdle"] == "" and hrow["ZIP"] == ""
    ct = zip_.coef_table(conf_level=0.975, part="zi")
    lo = ct["conf_low"].iloc[0]
    assert f"[{lo:.3f}," in zrow["ZIP"] and abs(lo - ct["estimate"].iloc[0] + 2.2414 * ct["std_error"].iloc[0]) < 1e-3
    assert "Cells: estimate [97.5 % CI]." in t.notes
    theta = nb.dispersion["theta"]
    assert f.loc["theta", "NB2"] == f"{theta:.{max(0, 2 - int(np.floor(np.log10(theta))))}f}"
    assert any(n.startswith("Dispersion theta: NB2") for n in t.notes)
    md, tex, html = t.to_markdown(), t.to_latex(), t.to_html()
    for heading in ("Zero-inflation (log-odds of a structural zero)", "Hurdle zero part (log-odds of a zero)",
                    "Dispersion"):
        assert f"| **{heading}** |" in md and f"\\textit{{{heading}}}" in tex and f">{heading}</th>" in html
    docx = pytest.importorskip("docx")
    doc = docx.Document(str(t.to_docx(tmp_path / "zi.docx")))
    texts = [r.cells[0].text for r in doc.tables[0].rows]
    assert "Zero-inflation (log-odds of a structural zero)" in texts and texts.count("(Intercept)") == 3
    wine = glmm_nb.datasets.load("wine")
    o = glmm_nb.glmm("rating ~ temp + (1 | judge)", wine, family="ordinal")
    t = glmm_nb.table(o)
    f = t.to_frame()
    assert list(f.index[:5]) == ["temp[T.warm]", "threshold: 1|2", "threshold: 2|3", "threshold: 3|4",
                                 "threshold: 4|5"]
    thr = o.coef_table(part="thresholds")
    assert f.loc["threshold: 1|2", "(1)"].startswith(f"{thr['estimate'].iloc[0]:.3f} [")
    assert "| 1\\|2 |" in t.to_markdown() and any("Thresholds:" in n for n in t.notes)


def test_table_to_docx(two, tmp_path):
    docx = pytest.importorskip("docx")
    path = glmm_nb.table(list(two)).to_docx(tmp_path / "models.docx")
    doc = docx.Document(str(path))
    cells = [c.text for c in doc.tables[0].rows[1].cells]
    assert cells[0] == "Fixed effects"  # the block's heading row
    cells = [c.text for c in doc.tables[0].rows[3].cells]
    assert cells[0] == "period[T.2]" and cells[2] == ""
    with pytest.raises(glmm_nb.GLMMError, match="does not exist"):
        glmm_nb.table(list(two)).to_docx(tmp_path / "nope" / "x.docx")


def test_table_refuses_bad_input(two):
    with pytest.raises(ModelError, match="fitted models"):
        glmm_nb.table(["a"])
    with pytest.raises(ModelError, match="2 labels for 1 models"):
        glmm_nb.table(two[0], labels=["a", "b"])
    with pytest.raises(ModelError, match="show must be"):
        glmm_nb.table(two[0], show="x")


def test_plots_are_the_report_charts(two):
    m1, _ = two
    coefs = m1.plot.coefs()
    assert isinstance(coefs, alt.LayerChart)
    spec = coefs.to_dict()
    data = next(d for d in spec["datasets"].values() if "term" in d[0])
    assert sorted(r["term"] for r in data) == ["period[T.2]", "period[T.3]", "period[T.4]"]
    est = {r["term"]: r["estimate"] for r in data}  # odds ratios on a log axis
    np.testing.assert_allclose(est["period[T.2]"], np.exp(m1.fixef["period[T.2]"]), rtol=1e-12)
    layer_x = [ly["encoding"]["x"] for ly in spec["layer"] if "x" in ly.get("encoding", {})]
    assert any(x.get("scale", {}).get("type") == "log" and "odds ratio" in x.get("title", "") for x in layer_x)
    assert spec["height"] == 26 * 3  # the height scales with the number of terms
    cat = m1.plot.caterpillar()
    assert len(next(d for d in cat.to_dict()["datasets"].values() if "level" in d[0])) == 15
    assert isinstance(m1.plot.diagnostics(nsim=20), alt.HConcatChart)
    with pytest.raises(ModelError, match="no random effect"):
        m1.plot.caterpillar(group="nope")
    case, df = load_case("contraception_slope")
    mc = glmm_nb.glmm(case["formula"], df)
    eff = mc.plot.effects("age").to_dict()
    curves = {r["curve"] for r in next(d for d in eff["datasets"].values() if "curve" in d[0])}
    assert "population-averaged" in curves and "typical cluster (random effects 0)" in curves
