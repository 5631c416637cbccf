"""The report's key findings, focal covariate, caterpillar sampling, Reproduce code and size."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.report.charts import CATERPILLAR_ENDS, CATERPILLAR_MAX, caterpillar_sample
from tests.conftest import reproduce_code, run_reproduce


def _text(html):
    return re.sub(r"\s+", " ", html)


def _fit(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmm_nb.glmm(formula, df, **kw)


@pytest.fixture(scope="module")
def confounded():
    """400 clinics; x has a between-clinic effect (0.8 + 0.3) unlike its within effect (0.3)."""
    rng = np.random.default_rng(3)
    J, n = 400, 8000
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    xb = rng.normal(size=J)[g]
    treat = rng.integers(0, 2, n)
    eta = 0.3 * x + 0.8 * xb + 0.5 * treat + 0.6 * rng.normal(size=J)[g]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    df = pd.DataFrame({"y": y, "age": x + xb, "treatment": treat, "clinic": [f"C{i:03d}" for i in g]})
    return df, _fit("y ~ age + treatment + (1 | clinic)", df)


@pytest.fixture(scope="module")
def confounded_report(confounded):
    _df, m = confounded
    return m.report(diagnostics_nsim=40)


def _specs(html):
    return [json.loads(s) for s in re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', html, re.S)]


def test_key_findings_come_first_with_effects_and_every_flag(confounded, confounded_report):
    _df, m = confounded
    html = _text(confounded_report.html)
    box = html[html.index('id="findings"'):html.index('id="model"')]
    assert html.index('id="findings"') < html.index("1. Model")
    ct = m.coef_table()
    # the treatment first, as an odds ratio with its interval, then age
    tr = ct.loc["treatment"]
    assert box.index("<b>treatment</b>") < box.index("<b>age</b>")
    got = re.search(r"<b>treatment</b>: odds ratio ([\d.]+) \(95 % CI ([\d.]+) to ([\d.]+)\), p &lt; 0.001", box).groups()
    for text, want in zip(got, np.exp([tr.estimate, tr.conf_low, tr.conf_high])):
        assert float(text) == round(want, len(text.split(".")[1]))  # exactly the rounded value
    p0, p1 = m.marginal_effects("treatment", nsim=10).loc["marginal", ["p0", "p1"]]
    pa = (p1 / (1 - p1)) / (p0 / (1 - p0))
    assert f"applied to everyone (treatment = 1 rather than 0) it multiplies the population-averaged odds by " \
           f"{pa:.4g}" in box
    assert f"{(1 - np.log(pa) / m.fixef['treatment']) * 100:.1f} % closer to no effect (section 4)" in box
    # age's between effect differs: its line carries the caveat, and the flag list names the test
    age_line = box[box.index("<b>age</b>"):box.index("</li>", box.index("<b>age</b>"))]
    checks = m.causal_checks()
    wb = checks.within_between.loc["age"]
    assert "within-cluster and between-cluster effects differ" in age_line
    assert f"within odds ratio {np.exp(wb['within']):.3g}, between {np.exp(wb['between']):.3g}" in age_line
    assert "Within ≠ between: Mundlak test" in box and 'href="#caveats"' in box
    treat_line = box[box.index("<b>treatment</b>"):box.index("</li>", box.index("<b>treatment</b>"))]
    assert "caution" not in treat_line  # constant share: the treatment varies within clinics only by chance


def test_clean_and_flagged_models():
    df = glmm_nb.datasets.load("hospitals")
    m = _fit("recovered ~ treat + age + (1 | hospital)", df, family="binomial")
    html = _text(m.report(svg_fallback=False, diagnostics_nsim=250).html)
    box = html[html.index('id="findings"'):html.index('id="model"')]
    assert "<b>No flags</b>" in box
    # a singular fit and few clusters are flagged at the top
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(np.arange(6), 30), "x": rng.normal(size=180)})
    d["y"] = (rng.random(180) < 1 / (1 + np.exp(-0.5 * d.x))).astype(int)
    s = _fit("y ~ x + (1 | g)", d)
    assert s.singular
    box = _text(s.report(svg_fallback=False, diagnostics_nsim=40).html)
    box = box[box.index('id="findings"'):box.index('id="model"')]
    assert "Flags</b>" in box and "singular" in box.lower() and "Few clusters: 6 levels" in box


def test_overdispersion_and_zero_inflation_are_flagged_for_counts_only():
    rng = np.random.default_rng(5)
    n, J = 1200, 40
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    mu = np.exp(0.8 + 0.3 * x + 0.4 * rng.normal(size=J)[g])
    y = rng.negative_binomial(1.0, 1.0 / (1.0 + mu))  # NB2, theta = 1: overdispersed
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    p = _fit("y ~ x + (1 | g)", d, family="poisson")
    html = _text(p.report(svg_fallback=False, diagnostics_nsim=60).html)
    box = html[html.index('id="findings"'):html.index('id="model"')]
    assert "Family: the negative binomial (NB2) refit fits better than the Poisson model" in box
    assert 'href="#diagnostics"' in box
    assert "the dispersion test fails" not in box  # the advice says it; no second flag for the same test
    assert "<td class=\"l\">zero-inflation</td>" in html
    b = _fit("recovered ~ treat + age + (1 | hospital)", glmm_nb.datasets.load("hospitals"), family="binomial")
    assert "zero-inflation" not in b.diagnose(nsim=30).tests.index
    assert "zero-inflation" not in _text(b.report(svg_fallback=False, diagnostics_nsim=30).html)


def test_focal_covariate_held_values_and_curve_numbers(confounded, confounded_report):
    df, m = confounded
    spec = next(s for s in _specs(confounded_report.html) if "Predicted probability" in str(s.get("title")))
    assert spec["title"]["text"] == "Predicted probability against treatment"
    mean_age = float(df.age.mean())
    assert spec["title"]["subtitle"] == f"other covariates at age = {mean_age:.4g} (mean)"
    assert spec["encoding"]["x"]["type"] == "nominal"  # a 0/1 treatment at its two values
    assert spec["encoding"]["color"]["legend"]["labelLimit"] == 0  # legend never truncated
    rows = next(iter(spec["datasets"].values()))
    typ = {r["x"]: r["value"] for r in rows if r["curve"] == "typical cluster (random effects 0)"}
    b = m.fixef
    expit = lambda e: 1 / (1 + np.exp(-e))  # noqa: E731
    for t in (0, 1):  # closed form at the held values (random effects 0)
        assert typ[t] == pytest.approx(expit(b["(Intercept)"] + b["treatment"] * t + b["age"] * mean_age), rel=1e-10)
    # focus= picks another covariate: a continuous one on a 40-point grid, treatment held at its mode
    eff = m.plot.effects("age").to_dict()
    assert eff["title"]["subtitle"] == f"other covariates at treatment = {df.treatment.mode().iloc[0]} (most common)"
    rows = next(iter(eff["datasets"].values()))
    xs = sorted({r["x"] for r in rows})
    assert len(xs) == 40 and xs[0] == pytest.approx(np.quantile(df.age, 0.02))
    html = _text(m.report(focus="age", svg_fallback=False, diagnostics_nsim=20).html)
    assert "Predicted probability against age" in html


def test_caterpillar_samples_hundreds_of_levels_with_the_rule_stated(confounded, confounded_report):
    spec = next(s for s in _specs(confounded_report.html) if "conditional SD" in str(s.get("title")))
    assert spec["title"]["subtitle"] == (f"{CATERPILLAR_MAX} of 400 levels: the {CATERPILLAR_ENDS} lowest, the "
                                         f"{CATERPILLAR_ENDS} highest and evenly spaced ranks in between")
    data = max(spec["datasets"].values(), key=len)
    ranks = [r["rank"] for r in data]
    assert len(data) == CATERPILLAR_MAX and ranks == sorted(ranks)
    assert ranks[:CATERPILLAR_ENDS] == list(range(1, CATERPILLAR_ENDS + 1))
    assert ranks[-CATERPILLAR_ENDS:] == list(range(400 - CATERPILLAR_ENDS + 1, 401))
    modes = confounded[1].ranef()["clinic"]["(Intercept)"]
    assert data[0]["mode"] == pytest.approx(modes.min()) and data[-1]["mode"] == pytest.approx(modes.max())
    labels = [ly for ly in spec["layer"] if ly.get("mark", {}).get("type") == "text"]
    assert len(labels) == 2  # the lowest and highest level named
    small = pd.DataFrame({"level": list("abc"), "mode": [0.3, -1.0, 2.0], "sd": 0.1, "n": 5})
    d, rule = caterpillar_sample(small)
    assert list(d.level) == ["b", "a", "c"] and rule == "all 3 levels, sorted"


def test_report_size_and_each_dataset_once(confounded_report):
    assert len(confounded_report) <= 1_000_000
    hosp = _fit("recovered ~ treat + age + (1 | hospital)", glmm_nb.datasets.load("hospitals"), family="binomial")
    r = hosp.report()
    assert len(r) <= 1_000_000
    seen = []
    for spec in _specs(r.html):
        assert "values" not in str(spec.get("data", {}))  # data only in the named datasets
        for ds in spec.get("datasets", {}).values():
            if len(ds) > 2:
                assert ds not in seen
                seen.append(ds)


def test_reproduce_code_runs(tmp_path, monkeypatch):
    hospitals = glmm_nb.datasets.load("hospitals")
    hospitals["ward"] = pd.Categorical(np.where(hospitals.age > 60, "old", "young"), categories=["young", "old"])
    m = glmm_nb.glmm("recovered ~ treat + ward + (1 | hospital)", hospitals, family="binomial")
    assert m.extras["data_source"] == "hospitals"  # the caller's variable name
    code = reproduce_code(m.report(svg_fallback=False, diagnostics_nsim=20).html)
    assert "data = hospitals" in code
    monkeypatch.chdir(tmp_path)
    ns = run_reproduce(code, {"hospitals": hospitals})
    assert ns["m"].loglik == pytest.approx(m.loglik, abs=1e-9)
    # from a CSV: the categorical column comes back with its level order (reference level kept)
    path = tmp_path / "h.csv"
    hospitals.to_csv(path, index=False)
    code = reproduce_code(m.report(data_source=str(path), svg_fallback=False, diagnostics_nsim=20).html)
    assert f"pd.read_csv({str(path)!r})" in code and "categories=['young', 'old']" in code
    ns = run_reproduce(code)
    assert ns["m"].loglik == pytest.approx(m.loglik, abs=1e-9)
    assert ns["m"].fixef.index.tolist() == m.fixef.index.tolist()


def test_factor_effects_are_named_against_their_reference():
    cbpp = glmm_nb.datasets.load("cbpp")
    m = _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
    box = _text(m.report(svg_fallback=False, diagnostics_nsim=20).findings_html)
    or2 = np.exp(m.fixef["period[T.2]"])
    hit = re.search(r"<b>period 2 \(vs 1\)</b>: odds ratio ([\d.]+)", box)
    assert hit and float(hit.group(1)) == round(or2, len(hit.group(1).split(".")[1]))
    assert box.index("period 2 (vs 1)") < box.index("period 3 (vs 1)") < box.index("period 4 (vs 1)")
