"""HTML reports: sections and numbers for three reference models, templates, size/time."""

import re

import numpy as np
import pytest

import glmm_nb
from glmm_nb.report import Report
from tests.conftest import load_case


def _fit(case_id, **kw):
    case, df = load_case(case_id)
    return glmm_nb.glmm(case["formula"], df, family=case["family"], reml=bool(case["reml"]), **kw)


SECTIONS = ["1. Model", "2. Fixed effects", "3. Random-effect structure", "4. Conditional vs marginal",
            "5. Diagnostics", "6. Causal caveats", "7. Reproduce"]


def _text(html):
    return re.sub(r"\s+", " ", html)


@pytest.mark.parametrize("case_id", ["contraception_slope", "grouseticks_poisson", "sleepstudy_reml"])
def test_reports_for_reference_models(case_id):
    m = _fit(case_id)
    r = m.report(svg_fallback=False, diagnostics_nsim=60)
    assert isinstance(r, Report)
    html = _text(r.html)
    for s in SECTIONS:
        assert s in html
    assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched
    # numbers from the result appear as printed
    ct = m.coef_table()
    for term in ct.index:
        assert f"{ct.loc[term, 'estimate']:.4g}" in html
    vc = m.varcorr()
    assert f"{vc.sdcor.iloc[0]:.4g}" in html
    assert f"{m.nobs}" in html and f"{m.loglik:.8g}" in html
    assert html.count('class="chart"') == html.count('type="application/json"')
    assert "glmm_nb.glmm(" in html


def test_report_specifics():
    m = _fit("contraception_slope")
    html = _text(m.report(svg_fallback=False, gee_cluster="district", diagnostics_nsim=60).html)
    assert "odds ratio" in html and "correlated" in html and "slope(s) for urban[T.Y] that vary by district" in html
    gee = glmm_nb.gee("use ~ age + age2 + urban + livch", m.spec.frame, cluster="district")
    assert f"{gee.params['urban[T.Y]']:.4g}" in html
    assert re.search(r"Not computed: [^<]*median odds ratio", html)  # no intercept-only term
    tab = m.compare(gee)
    cond = np.exp(tab.loc["age", "conditional"])
    p0, p1 = m.marginal_effects("age", nsim=10).loc["marginal", ["p0", "p1"]]
    assert f"one unit more of age multiplies the odds by {cond:.4g}" in html
    assert f"multiplies the population-averaged odds by {(p1 / (1 - p1)) / (p0 / (1 - p0)):.4g}" in html
    p = _fit("grouseticks_poisson")
    html = _text(p.report(svg_fallback=False, diagnostics_nsim=60).html)
    assert "rate ratio" in html and "crossed" in html
    lmm = _fit("sleepstudy_reml")
    html = _text(lmm.report(svg_fallback=False, diagnostics_nsim=60).html)
    assert "Residual" in html and "REML" in html and "averaging changes nothing" in html
    b = lmm.fixef["Days"]
    assert f"one unit more of Days changes the mean by {b:.4g}." in html
    assert f"changes the population-averaged mean by {b:.4g} — the same as the conditional effect" in html


def test_not_computed_lines_and_gee_hint():
    m = _fit("cbpp_laplace")
    html = _text(m.report(svg_fallback=False, diagnostics_nsim=60).html)
    assert "Not computed: GEE: not asked for" in html
    assert html.count('class="missing"') <= 1  # one line per section at most (here: section 4 only)
    assert "Predicted probability against period" in html  # cbpp's only covariate, a factor, at its levels
    assert "<th>GEE</th>" not in html  # no all-dash column
    assert "Median odds ratio: herd" in html


def test_save_and_iframe(tmp_path):
    m = _fit("cbpp_laplace")
    r = m.report(diagnostics_nsim=60)
    out = r.save(tmp_path / "cbpp.html")
    assert out.read_text(encoding="utf-8") == r.html
    frame = r.embed()._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "<script" not in frame.split('srcdoc="', 1)[1][:200]
    # in a notebook: the key findings and a link to the saved file, never the whole report
    compact = r._repr_html_()
    assert "Key findings" in compact and f'href="{out}"' in compact and len(compact) < 5000
    assert "<script" not in compact and 'href="#' not in compact  # no dead in-page links
    assert repr(r).startswith("<glmm_nb Report: 0.") and str(out) in repr(r) and len(repr(r)) < 300
    fresh = m.report(svg_fallback=False, diagnostics_nsim=20)
    assert "Not saved yet" in fresh._repr_html_() and "not saved" in repr(fresh)
    assert "data:image/svg+xml;base64," in r.html  # static fallback
    assert len(r) < 1.0e6


def test_user_template_dir(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "_reproduce.html.j2").write_text("<section><h2>7. Reproduce</h2><p>CUSTOM {{ model.nobs }}</p></section>")
    m = _fit("cbpp_laplace")
    html = m.report(template_dir=tmp_path, svg_fallback=False, diagnostics_nsim=60).html
    assert "CUSTOM 56" in html and "1. Model" in html
    with pytest.raises(glmm_nb.GLMMError, match="is not a folder"):
        m.report(template_dir=tmp_path / "nope")


def test_charts_are_preaggregated():
    m = _fit("verbagg_crossed")
    r = m.report(svg_fallback=False, diagnostics_nsim=40)
    specs = re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', r.html, re.S)
    import json

    for s in specs:
        spec = json.loads(s)
        for ds in spec.get("datasets", {}).values():
            assert len(ds) <= 5000
    assert np.isfinite(r.seconds)
