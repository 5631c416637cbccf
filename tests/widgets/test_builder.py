"""The ModelBuilder widget, driven headlessly."""

import pytest

import glmm_nb

pytest.importorskip("ipywidgets")


@pytest.fixture
def builder():
    return glmm_nb.ModelBuilder(glmm_nb.datasets.load("contraception"), name="contra")


def test_formula_and_cell_update_live(builder):
    b = builder
    b.response.value = "use"
    b.fixed.value = ("age", "urban")
    assert b.formula == "use ~ age + urban"
    b.groups.value = ("district",)
    assert b.formula == "use ~ age + urban + (1 | district)"
    slopes, correlated = b._slopes["district"]
    slopes.value = ("urban",)
    assert b.formula == "use ~ age + urban + (1 + urban | district)"
    correlated.value = False
    assert b.formula == "use ~ age + urban + (1 + urban || district)"
    assert "use ~ age + urban + (1 + urban || district)" in b.formula_label.value
    b.method.value = "agq"
    assert not b.nagq.disabled
    assert b.cell_area.value == b.cell == (
        "%%glmm result --data contra --family binomial --method agq --nagq 10\n"
        "use ~ age + urban + (1 + urban || district)"
    )
    b.family.value = "poisson"
    assert list(b.link.options) == ["log"] and b.link.value == "log"


def test_fit_and_export(builder, tmp_path):
    b = builder
    b.response.value = "use"
    b.fixed.value = ("age", "urban")
    b.groups.value = ("district",)
    b.fit_button.click()
    assert isinstance(b.result, glmm_nb.GLMMResult)
    assert b.result.formula == "use ~ age + urban + (1 | district)"
    assert b.progress.value == b.progress.max and b.status.value.startswith("done")
    assert "Generalized linear mixed model" in b.output.value
    assert b.report_frame.value == "" and not b.show_report.disabled  # the ~1 MB report only when asked for
    b.show_report.value = True
    assert "<iframe" in b.report_frame.value
    b.show_report.value = False
    assert b.report_frame.value == ""
    path = tmp_path / "w.html"
    b.export_path.value = str(path)
    b.export_button.click()
    assert path.exists() and path.read_text() == b.report.html


def test_fit_error_is_shown_not_raised(builder):
    b = builder
    b.response.value = "age"  # not a binary response
    b.groups.value = ("district",)
    b.fit_button.click()
    assert b.result is None and "must lie in [0, 1]" in b.status.value


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
