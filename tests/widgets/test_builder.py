"""The ModelBuilder workbench, driven headlessly: every glmm() option reaches the fit (checked
against lme4 / glmmTMB values in fixtures/workbench_refs.json, whose R code is in its r_code
key), fit speed, status, results, comparison, plots and the report on demand."""

import json
import time

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from tests.conftest import FIXTURES, load_case

pytest.importorskip("ipywidgets")

REFS = json.loads((FIXTURES / "workbench_refs.json").read_text())


def ll_ok(got: float, ref: float) -> bool:
    """As tests/test_fit_reference: at R's optimum or up to 5e-4 above it (a better optimum)."""
    return -1e-4 <= got - ref <= 5e-4


@pytest.fixture
def builder():
    return glmm_nb.ModelBuilder(glmm_nb.datasets.load("contraception"), name="contra")


def test_formula_and_controls_follow_each_other(builder):
    b = builder
    b.response.value = "use"
    b.fixed.value = ("age", "urban")
    assert b.formula == "use ~ age + urban"
    b.groups.value = ("district",)
    assert b.formula == "use ~ age + urban + (1 | district)"
    slopes, correlated = b.slopes["district"]
    slopes.value = ("urban",)
    assert b.formula == "use ~ age + urban + (1 + urban | district)"
    correlated.value = False
    assert b.formula == "use ~ age + urban + (1 + urban || district)"
    b.method.value = "agq"
    assert not b.nagq.disabled
    assert b.cell_area.value == b.cell == (
        "%%glmm result --data contra --family binomial --method agq --nagq 10\n"
        "use ~ age + urban + (1 + urban || district)")
    # typed formula -> controls
    b.formula_text.value = "use ~ age2 + livch + (1 + age || district)"
    assert b.fixed.value == ("age2", "livch") and b.groups.value == ("district",)
    assert b.slopes["district"][0].value == ("age",) and b.slopes["district"][1].value is False
    assert b.formula_note.value == ""
    # a formula the controls cannot show is kept as typed, and said so
    b.formula_text.value = "use ~ age * urban + (1 | district)"
    assert b.formula == "use ~ age * urban + (1 | district)" and "cannot be shown as controls" in b.formula_note.value
    assert b.fixed.value == ("age2", "livch")  # the controls keep their last state
    b.formula_text.value = "use ~ age + (1 | district"
    assert "never closed" in b.formula_note.value
    b.family.value = "poisson"
    assert list(b.link.options) == ["log"] and b.link.value == "log" and not b.zero.disabled


def test_cbind_forms_offset_and_cell_options():
    cbpp = glmm_nb.datasets.load("cbpp")
    b = glmm_nb.ModelBuilder(cbpp, name="cbpp", family="binomial")
    b.response_form.value = "trials"
    b.response.value = "incidence"
    b.response2.value = "size"
    b.fixed.value = ("period",)
    b.groups.value = ("herd",)
    assert b.formula == "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    b.response_form.value = "failures"
    assert b.formula.startswith("cbind(incidence, size) ~")
    b.formula_text.value = "cbind(incidence, size - incidence) ~ period + offset(log(size)) + (1 | herd)"
    assert (b.response_form.value, b.response2.value, b.offset.value, b.offset_log.value) == (
        "trials", "size", "size", True)
    b.offset_log.value = False
    assert b.formula == "cbind(incidence, size - incidence) ~ period + offset(size) + (1 | herd)"
    b.family.value = "poisson"
    b.zero.value = "hurdle"
    b.ziformula.value = "~ period"
    b.weights.value = "size"
    assert b.cell.splitlines()[0] == ("%%glmm result --data cbpp --family poisson --weights size "
                                      "--ziformula '~ period' --hurdle")
    with pytest.raises(glmm_nb.DataError, match="weights= must name a numeric column"):
        glmm_nb.ModelBuilder(cbpp, weights="nope")


def test_every_option_reaches_the_fit():
    """The README's cbpp model, weights, an offset, a zero part and a hurdle, built in the
    builder, give lme4's / glmmTMB's log-likelihoods."""
    case, cbpp = load_case("cbpp_laplace")
    b = glmm_nb.ModelBuilder(cbpp, formula=case["formula"], family="binomial", name="cbpp")
    assert (b.response_form.value, b.response.value, b.response2.value) == ("trials", "incidence", "size")
    m = b.fit()
    assert ll_ok(m.loglik, case["loglik"])
    np.testing.assert_allclose(m.fixef.to_numpy(), list(case["fixef"].values()), atol=1e-3)
    cbpp["prop"] = cbpp["incidence"] / cbpp["size"]
    b = glmm_nb.ModelBuilder(cbpp, formula="prop ~ period + (1 | herd)", family="binomial", weights="size")
    assert ll_ok(b.fit().loglik, REFS["cbpp_weights"]["loglik"])
    op = pd.read_csv(FIXTURES / "data" / "offset_poisson.csv")
    b = glmm_nb.ModelBuilder(op, formula="y ~ f + (1 | g)", family="poisson", offset="t")
    b.offset_log.value = True
    assert b.formula == "y ~ f + offset(log(t)) + (1 | g)"
    m = b.fit()
    ref = REFS["offset_poisson"]
    assert ll_ok(m.loglik, ref["loglik"])
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), list(ref["se"].values()), rtol=5e-3)
    zi = pd.read_csv(FIXTURES / "data" / "zisim.csv")
    b = glmm_nb.ModelBuilder(zi, formula="y ~ x + (1 | g)", family="poisson", ziformula="~ 1", name="zi")
    m = b.fit()
    assert ll_ok(m.loglik, REFS["zisim_zip"]["loglik"])
    assert abs(m.zi_fixef.iloc[0] - REFS["zisim_zip"]["zi"]["(Intercept)"]) < 1e-3
    b.zero.value = "hurdle"
    m = b.fit()
    assert ll_ok(m.loglik, REFS["zisim_hurdle"]["loglik"])
    assert abs(m.zi_fixef.iloc[0] - REFS["zisim_hurdle"]["zi"]["(Intercept)"]) < 1e-3
    b.zero.value = "none"
    assert ll_ok(b.fit().loglik, REFS["zisim_poisson"]["loglik"])
    assert list(b.results) == ["m1", "m2", "m3"]


def test_ordinal_levels_and_ml():
    wine = glmm_nb.datasets.load("wine")
    words = {"1": "dry", "2": "low", "3": "mid", "4": "high", "5": "top"}
    wine["rating"] = wine["rating"].astype(str).map(words)
    b = glmm_nb.ModelBuilder(wine, formula="rating ~ temp + contact + (1 | judge)", family="ordinal")
    assert b.fit() is None and "ordered pandas Categorical" in b.status.value  # labels need their order
    b.levels.value = "dry,low,mid,mid,top"
    assert b.fit() is None and "listed twice" in b.status.value
    b.levels.value = "dry,low,mid,high,top"
    assert "--ordered rating=dry,low,mid,high,top" in b.cell
    m = b.fit()
    assert abs(m.loglik - (-81.5654)) < 1e-3 and list(m.thresholds.index)[0] == "dry|low"
    sleep = glmm_nb.datasets.load("sleepstudy")
    b = glmm_nb.ModelBuilder(sleep, formula="Reaction ~ Days + (Days | Subject)", family="gaussian")
    b.reml.value = False
    assert "--ml" in b.cell
    assert ll_ok(b.fit().loglik, load_case("sleepstudy_ml")[0]["loglik"])


def test_fit_is_fast_reports_on_demand_and_status_is_honest(builder, tmp_path, monkeypatch):
    b = builder
    b.formula_text.value = "use ~ age + urban + (1 | district)"
    t0 = time.perf_counter()
    glmm_nb.glmm(b.formula, b.data, family="binomial", control={"progress": False})
    direct = time.perf_counter() - t0
    t0 = time.perf_counter()
    b.fit_button.click()
    took = time.perf_counter() - t0
    assert took <= 2 * direct + 0.5, (took, direct)
    assert b.reports == {} and b.report_frame.value == ""  # no report built by Fit
    assert isinstance(b.result, glmm_nb.GLMMResult) and b.progress.value == b.progress.max
    assert b.status.value.startswith("m1: converged in") and "Generalized linear mixed model" in b.output.value
    b.show_report.value = True
    assert "<iframe" in b.report_frame.value and "m1" in b.reports
    b.show_report.value = False
    path = tmp_path / "w.html"
    b.export_path.value = str(path)
    b.export_button.click()
    assert path.read_text() == b.reports["m1"].html
    b.plot_kind.value = "caterpillar"
    b.plot_button.click()
    assert b.plot_html.value.startswith('<img alt="caterpillar" src="data:image/svg+xml;base64,')
    # a fit that stops before converging says so and is never "done"
    import glmm_nb.widgets.builder as wb

    real = wb.glmm
    monkeypatch.setattr(wb, "glmm", lambda *a, **k: real(*a, **{**k, "control": {"maxiter": 3, "progress": False}}))
    b.formula_text.value = "use ~ age + urban + (1 + urban | district)"
    m = b.fit()
    assert not m.converged
    assert "did NOT converge" in b.status.value and "converged in" not in b.status.value
    assert "done" not in b.status.value


def test_singular_fit_is_said_in_the_status():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"x": rng.normal(size=200), "g": rng.integers(0, 10, 200).astype(str)})
    d["y"] = (rng.random(200) < 1 / (1 + np.exp(-0.5 * d.x))).astype(int)  # no group effect
    b = glmm_nb.ModelBuilder(d, formula="y ~ x + (1 | g)", family="binomial")
    m = b.fit()
    assert m.singular and "singular fit" in b.status.value and "variance of (1 | g)" in b.status.value


def test_results_compare_and_table_match_lme4(builder):
    b = builder
    for f in ("use ~ age + (1 | district)", "use ~ age + urban + (1 | district)",
              "use ~ age + urban + (1 + urban | district)"):
        b.formula_text.value = f
        b.fit()
    ref = REFS["contraception_anova"]
    c = b.compare()
    assert list(c.index) == ["m1", "m2", "m3"] and list(c["df"]) == ref["npar"]
    assert all(ll_ok(g, r) for g, r in zip(c["logLik"], ref["loglik"]))
    np.testing.assert_allclose(c["AIC"], ref["AIC"], atol=5e-4)
    np.testing.assert_allclose(c["BIC"], ref["BIC"], atol=5e-4)
    assert list(c["vs"]) == ["", "m1", "m2"]
    np.testing.assert_allclose(c["chisq"].iloc[1:], ref["chisq"][1:], atol=1e-3)
    np.testing.assert_allclose(c["chi_df"].iloc[1:], ref["df"][1:])
    np.testing.assert_allclose(c["p_value"].iloc[1:], ref["p"][1:], rtol=1e-3)
    assert np.isfinite(c.loc["m3", "p_value_boundary"]) and "boundary" in c.loc["m3", "test"]
    assert "m1 vs" not in b.compare_html.value and "m3 vs m2" in b.compare_html.value
    t = b.table()
    assert list(t.to_frame().columns) == ["m1", "m2", "m3"]
    # selecting an earlier model shows it
    b.selected.value = "m1"
    assert b.result is b.results["m1"] and "age" in b.output.value
    # models of different data are shown without a test
    b.formula_text.value = "use ~ age + (1 | livch)"
    b.fit()
    assert b.compare().loc["m4", "vs"] in ("", "m1", "m2", "m3")


def test_fit_error_is_shown_not_raised(builder):
    b = builder
    b.response.value = "age"  # not a binary response
    b.groups.value = ("district",)
    b.fit_button.click()
    assert b.result is None and "must lie in [0, 1]" in b.status.value and b.results == {}


def test_builder_guesses_a_response_and_family():
    from glmm_nb.widgets import guess_response

    contra = glmm_nb.datasets.load("contraception")
    b = glmm_nb.ModelBuilder(contra, name="contra")
    assert (b.response.value, b.family.value, b.link.value) == ("use", "binomial", "logit")
    sleep = glmm_nb.datasets.load("sleepstudy")
    assert guess_response(sleep, list(sleep.columns)) == ("Reaction", "gaussian")
    cbpp = glmm_nb.datasets.load("cbpp")
    col, fam = guess_response(cbpp, list(cbpp.columns))
    assert col != "herd" and fam == "poisson"
