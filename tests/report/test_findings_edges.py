"""Key findings and curves at the edges: non-ratio links, factor contrasts, shared terms, offsets,
separation, intercept-only and ordinal models, zero-inflated Reproduce code."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmm_nb
from tests.conftest import reproduce_code, run_reproduce


def _fit(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmm_nb.glmm(formula, df, **kw)


def _report(m, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.report(svg_fallback=False, diagnostics_nsim=kw.pop("nsim", 20), **kw)


def _text(html):
    return re.sub(r"\s+", " ", html)


def _specs(html):
    return [json.loads(s) for s in re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', html, re.S)]


@pytest.fixture(scope="module")
def hospitals():
    return glmm_nb.datasets.load("hospitals")


def test_probit_link_is_not_called_identity_or_response_scale(hospitals):
    m = _fit("recovered ~ treat + age + (1 | hospital)", hospitals, family="binomial", link="probit")
    html = _text(_report(m).html)
    assert "coincide" not in html and "response scale" not in html
    tab = m.compare()
    r = tab.loc["treat"]
    assert f"treat = 1 rather than 0 changes the probability on the probit scale by {r.conditional:.4g}." in html
    p0, p1 = m.marginal_effects("treat", nsim=10).loc["marginal", ["p0", "p1"]]
    pa = stats.norm.ppf(p1) - stats.norm.ppf(p0)
    assert f"changes the population-averaged probability on the probit scale by {pa:.4g}" in html
    assert pa < 0.95 * r.conditional  # attenuated: the sentence must not say they coincide
    assert f"{(1 - pa / r.conditional) * 100:.1f} % closer to no effect" in html
    assert "<b>treat</b>: probit-scale coefficient" in html and "Coefficients on the probit link scale" in html


def test_gamma_links_and_factor_differences():
    rng = np.random.default_rng(2)
    n, J = 600, 30
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    grp = rng.choice(["a", "b"], n)
    mu = np.exp(1 + 0.2 * x + 0.3 * (grp == "b") + 0.2 * rng.normal(size=J)[g])
    d = pd.DataFrame({"y": rng.gamma(5.0, mu / 5.0), "x": x, "grp": grp, "g": g})
    log = _fit("y ~ x + grp + (1 | g)", d, family="gamma")
    box = _text(_report(log).findings_html)
    assert "Effects as ratios of means" in box and "meanss" not in box
    inv = _fit("y ~ x + (1 | g)", d, family="gamma", link="inverse")
    box = _text(_report(inv).findings_html)
    assert "inverse-scale coefficient" in box and "a positive coefficient means a lower mean" in box
    gau = _fit("y ~ x + grp + (1 | g)", d, family="gaussian")
    box = _text(_report(gau).findings_html)
    b = gau.coef_table().loc["grp[T.b]"]
    hit = re.search(r"<b>grp b \(vs a\)</b>: difference (-?[\d.]+) \(95 % CI", box)
    assert hit and float(hit.group(1)) == pytest.approx(b.estimate, abs=0.6 * 10 ** -len(hit.group(1).split(".")[1]))
    assert "per unit (95" not in box.split("grp b (vs a)")[1].split("</li>")[0]


def test_a_variable_in_several_terms_has_no_single_effect():
    df = glmm_nb.datasets.load("contraception")
    m = _fit("use ~ age + I(age ** 2) + urban + (1 | district)", df)
    html = _text(_report(m, focus="age").html)
    box = html[html.index('id="findings"'):html.index('id="model"')]
    age_line = box[box.index("<b>age</b>"):box.index("</li>", box.index("<b>age</b>"))]
    assert "age also enters I(age ** 2): this coefficient alone is not its effect" in age_line
    assert "averaged over the population" not in age_line
    assert "The effect of age runs through 2 coefficients (age, I(age ** 2))" in html
    assert f"one unit more of age multiplies the odds by {np.exp(m.fixef['age']):.4g}" not in html
    assert "for a typical cluster (random effects 0), one unit more of age multiplies the odds by" in html


def test_offsets_are_held_and_stated():
    rng = np.random.default_rng(4)
    n, J = 800, 40
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    expo = rng.uniform(1, 20, n)
    expo[0] = 1000.0  # the first row must not set the curves' exposure
    y = rng.poisson(expo * np.exp(-1 + 0.3 * x + 0.3 * rng.normal(size=J)[g]))
    d = pd.DataFrame({"y": y, "x": x, "expo": expo, "g": g})
    m = _fit("y ~ x + offset(log(expo)) + (1 | g)", d, family="poisson")
    spec = next(s for s in _specs(_report(m).html) if "Predicted rate" in str(s.get("title")))
    assert spec["title"]["subtitle"] == f"other covariates at expo = {expo.mean():.4g} (mean, in the offset)"
    rows = next(iter(spec["datasets"].values()))
    typ = [r for r in rows if r["curve"] == "typical cluster (random effects 0)"]
    b = m.fixef
    for r in typ[::13]:
        assert r["value"] == pytest.approx(np.exp(b["(Intercept)"] + b["x"] * r["x"]) * expo.mean(), rel=1e-10)
    v = _fit("y ~ x + (1 | g)", d, family="poisson", offset=np.log(expo))
    spec = next(s for s in _specs(_report(v).html) if "Predicted rate" in str(s.get("title")))
    assert spec["title"]["subtitle"] == "other covariates at the offset= vector at 0 (per unit of exposure)"
    code = reproduce_code(_report(v).html)
    compile(code, "reproduce", "exec")  # valid Python, with the offset vector as its own line
    assert "offset=offset" in code and "offset = ...  # the offset= vector" in code


def test_no_flags_says_which_checks_ran(hospitals):
    m = _fit("recovered ~ treat + age + (1 | hospital)", hospitals, family="binomial")
    box = _text(m.report(svg_fallback=False, diagnostics_nsim=250).findings_html)
    assert ("No flags</b> from the checks that ran: convergence; variance components on their boundary; "
            "simulated-residual tests (uniformity (KS), dispersion); few clusters; within vs between cluster "
            "effects of treat, age.") in box or ("No flags</b> from the checks that ran: convergence; variance "
            "components on their boundary; simulated-residual tests (uniformity (KS), dispersion); few clusters; "
            "within vs between cluster effects of age") in box


def test_separation_is_not_estimable_and_charts_stay_valid():
    rng = np.random.default_rng(7)
    n = 300
    g = rng.integers(0, 15, n)
    x = rng.normal(size=n)
    w = rng.normal(size=n)
    y = (x > 0).astype(int)
    d = pd.DataFrame({"y": y, "x": x, "w": w, "g": g})
    m = _fit("y ~ x + w + (1 | g)", d)
    html = _report(m).html
    box = _text(html[html.index('id="findings"'):html.index('id="model"')])
    assert "<b>x</b>: not estimable" in box and "separat" in box.lower()
    assert "<b>w</b>: not estimable: its interval is infinite" in box  # w is not separated, but its SE is huge
    for s in re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', html, re.S):
        assert "Infinity" not in s and "NaN" not in s
        json.loads(s)
    forest = next(s for s in _specs(html) if "Fixed effects" in str(s.get("title")))
    assert forest["title"]["subtitle"] == "not shown (not estimable): x, w"


def test_intercept_only_and_ordinal_thresholds_are_not_ratios(hospitals):
    m = _fit("recovered ~ 1 + (1 | hospital)", hospitals, family="binomial")
    spec = next(s for s in _specs(_report(m).html) if "link scale" in str(s.get("title")))
    rows = next(d for d in spec["datasets"].values() if d and "term" in d[0])
    assert rows[0]["estimate"] == pytest.approx(m.fixef["(Intercept)"], rel=1e-12)  # not exp()
    wine = glmm_nb.datasets.load("wine")
    o = _fit("rating ~ 1 + (1 | judge)", wine, family="ordinal")
    spec = next(s for s in _specs(_report(o).html) if "link scale" in str(s.get("title")))
    rows = next(d for d in spec["datasets"].values() if d and "term" in d[0])
    assert [r["estimate"] for r in rows] == pytest.approx(list(o.thresholds), rel=1e-12)


def test_ordinal_curves_use_the_focus_rule():
    wine = glmm_nb.datasets.load("wine")
    o = _fit("rating ~ temp + contact + (1 | judge)", wine, family="ordinal")
    html = _report(o, focus="contact").html
    spec = next(s for s in _specs(html) if "Category probabilities" in str(s.get("title")))
    assert spec["title"]["text"].startswith("Category probabilities against contact")
    assert (wine.temp == "cold").sum() == (wine.temp == "warm").sum()  # a tie: not "most common"
    assert spec["title"]["subtitle"] == "other covariates at temp = cold (reference level; all 2 levels equally common)"
    box = _text(o.report(focus="contact", svg_fallback=False, diagnostics_nsim=20).findings_html)
    assert box.index("contact yes (vs no)") < box.index("temp warm (vs cold)")  # the focus first


@pytest.mark.parametrize("hurdle", [False, True])
def test_zero_part_models_reproduce(hurdle, tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    n, J = 600, 30
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.8 + 0.3 * x + 0.3 * rng.normal(size=J)[g])) * (rng.random(n) > 0.3)
    counts = pd.DataFrame({"y": y, "x": x, "g": g})
    m = glmm_nb.glmm("y ~ x + (1 | g)", counts, family="poisson", ziformula="~ 1", hurdle=hurdle)
    html = _report(m).html
    box = _text(m.report(svg_fallback=False, diagnostics_nsim=20).findings_html)
    assert "count part" in box
    code = reproduce_code(html)
    assert "family='poisson'" in code and "ziformula='~ 1'" in code and ("hurdle=True" in code) == hurdle
    monkeypatch.chdir(tmp_path)
    ns = run_reproduce(code, {"counts": counts})
    assert ns["m"].loglik == pytest.approx(m.loglik, abs=1e-9)
