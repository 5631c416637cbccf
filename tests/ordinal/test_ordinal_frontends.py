"""family="ordinal" through the report, the glmm-nb command and the widget (the %%glmm magics:
tests/magics/test_magics.py, which owns the test IPython shell)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import glmm_nb
from glmm_nb.cli import main
from glmm_nb.families import family_names
from glmm_nb.report.focal import choose_focus
from glmm_nb.report.ordinal import category_curves


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", html)


def test_wine_dataset_is_bundled():
    df = glmm_nb.datasets.load("wine")
    assert df["rating"].cat.ordered and list(df["rating"].cat.categories) == ["1", "2", "3", "4", "5"]
    assert "ordinal" in family_names()


def test_report_of_an_ordinal_model(wine_fits):
    _case, m, _ = wine_fits
    r = m.report(svg_fallback=False, diagnostics_nsim=60)
    html = _text(r.html)
    for s in ["1. Model", "2. Fixed effects", "4. Conditional vs marginal", "6. Causal caveats", "Thresholds",
              "Proportional odds", "nominal effects", "cumulative odds ratio"]:
        assert s in html
    th = m.coef_table(part="thresholds")
    for v in th.estimate:
        assert f"{v:.4g}" in html
    assert "Not computed — category" not in html and "Not computed — proportional" not in html
    nt = m.nominal_test()
    assert f"{nt.loc['contact', 'lrt']:.3g}" in html
    specs = [json.loads(s) for s in re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', r.html)]
    titles = [json.dumps(s.get("title", "")) for s in specs]
    assert any("Category probabilities against temp" in t for t in titles)
    assert html.count('class="chart"') == html.count('type="application/json"')
    assert "family=&#39;ordinal&#39;" in html


def test_category_curves_data(wine_fits, sim):
    _case, m, _ = wine_fits
    f = choose_focus(m, "temp")
    assert (m.spec.frame["contact"] == "yes").sum() == (m.spec.frame["contact"] == "no").sum()  # a tie
    assert f.discrete and f.held == {"contact": ("no", "reference level; all 2 levels equally common")}
    d = category_curves(m, f)
    assert set(d.curve) == {"typical cluster (random effects 0)", "population-averaged"}
    sums = d.groupby(["curve", "x"]).probability.sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-12)
    typical = d[(d.curve.str.startswith("typical")) & (d.x == "warm")].probability.to_numpy()
    new = m.spec.frame.iloc[:1].copy()
    new["temp"] = "warm"
    new["contact"] = m.spec.frame["contact"].mode().iloc[0]
    np.testing.assert_allclose(typical, m.predict(new, re="none").to_numpy()[0], atol=1e-12)
    df = sim(n=300)
    m2 = glmm_nb.glmm("y ~ x + z + (1 | g)", df, family="ordinal")
    html = _text(m2.report(svg_fallback=False, diagnostics_nsim=40).html)
    assert "Category probabilities against x" in html and "x: within one cluster the cumulative odds ratio" in html


def test_cli_fits_an_ordinal_model(tmp_path, capsys):
    data = tmp_path / "wine.csv"
    df = glmm_nb.datasets.load("wine")
    df["rating"] = df["rating"].map({"1": "dry", "2": "low", "3": "mid", "4": "high", "5": "top"})
    df.to_csv(data, index=False)
    rc = main(["fit", str(data), "rating ~ temp + contact + (1 | judge)", "--family", "ordinal",
               "--ordered", "rating=dry,low,mid,high,top", "-o", str(tmp_path / "r.html")])
    out = capsys.readouterr().out
    assert rc == 0 and "Threshold coefficients" in out and "dry|low" in out and (tmp_path / "r.html").exists()
    rc = main(["fit", str(data), "rating ~ temp + (1 | judge)", "--family", "ordinal"])
    assert rc == 2 and "ordered pandas Categorical or integers" in capsys.readouterr().err
    rc = main(["fit", str(data), "rating ~ temp + (1 | judge)", "--family", "ordinal", "--ordered", "rating=dry,low"])
    assert rc == 2 and "not in the order given" in capsys.readouterr().err


def test_widget_offers_and_fits_ordinal():
    pytest.importorskip("ipywidgets")
    b = glmm_nb.ModelBuilder(glmm_nb.datasets.load("wine"), name="wine")
    assert "ordinal" in b.family.options
    b.response.value = "rating"
    b.fixed.value = ("temp", "contact")
    b.groups.value = ("judge",)
    b.family.value = "ordinal"
    assert list(b.link.options) == ["logit", "probit", "cloglog"]
    assert b.cell.startswith("%%glmm result --data wine --family ordinal")
    b.fit_button.click()
    assert b.result.family == "ordinal" and "Cumulative Link Mixed Model" in b.output.value
    assert abs(b.result.loglik - (-81.5654)) < 1e-3
