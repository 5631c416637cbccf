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
    t = glmm_nb.table([m1, m2], labels=["period", "null"])
    f = t.to_frame()
    assert list(f.columns) == ["period", "null"]
    assert f.loc["period[T.2]", "null"] == ""  # empty where the model has no such row
    ct = m1.coef_table()
    lo, hi = ct.loc["period[T.2]", ["conf_low", "conf_high"]]
    assert f.loc["period[T.2]", "period"] == f"{ct.loc['period[T.2]', 'estimate']:.3g} [{lo:.3g}, {hi:.3g}]"
    assert f.loc["AIC", "null"] == f"{m2.aic:.6g}" and f.loc["N", "period"] == "56"
    assert f.loc["Groups (herd)", "null"] == "15"
    assert f.loc["SD ((Intercept) | herd)", "period"] == f"{m1.varcorr().sdcor.iloc[0]:.3g}"
    se = glmm_nb.table(m1, show="se", stars=True).to_frame()
    assert se.loc["period[T.4]", "(1)"].endswith(f"*** ({ct.loc['period[T.4]', 'std_error']:.3g})")
    html = t._repr_html_()
    assert "<table>" in html and "Random effects" in html
    assert t.to_markdown().splitlines()[0] == "| | period | null |"
    tex = t.to_latex()
    assert tex.startswith(r"\begin{tabular}{lrr}") and r"period[T.2]" in tex and r"\bottomrule" in tex


def test_table_to_docx(two, tmp_path):
    docx = pytest.importorskip("docx")
    path = glmm_nb.table(list(two)).to_docx(tmp_path / "models.docx")
    doc = docx.Document(str(path))
    cells = [c.text for c in doc.tables[0].rows[2].cells]
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
