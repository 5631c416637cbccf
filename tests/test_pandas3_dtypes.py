"""pandas 3 dtypes through every entry point (issue 24): a CSV read with pandas' defaults (the
``str`` dtype under pandas 3), ``string[pyarrow]``, nullable ``Int64`` / ``Float64`` and
``boolean`` columns fit the lme4 model, and predict, marginal effects, emmeans, plots and the
report give the same numbers as the same data held as categoricals."""

import warnings

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from tests.conftest import FIXTURES, load_case

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def fits():
    case, cat = load_case("contraception_slope")
    raw = pd.read_csv(FIXTURES / "data" / case["data"])  # pandas' defaults: text columns are str in pandas 3
    raw["district"] = raw["district"].astype("Int64")
    raw["age"] = raw["age"].astype("Float64")
    raw["use"] = raw["use"].astype("Int64")
    raw["livch"] = raw["livch"].astype("string[pyarrow]")
    raw["urbanY"] = (raw["urban"] == "Y").astype("boolean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_cat = glmm_nb.glmm(case["formula"], cat)
        m_raw = glmm_nb.glmm(case["formula"], raw)
        m_bool = glmm_nb.glmm(case["formula"].replace("urban", "urbanY"), raw)
    return case, cat, raw, m_cat, m_raw, m_bool


def test_frame_has_pandas_nullable_and_text_dtypes(fits):
    _case, _cat, raw, *_ = fits
    assert pd.api.types.is_string_dtype(raw["urban"]) and not isinstance(raw["urban"].dtype, pd.CategoricalDtype)
    assert str(raw["livch"].dtype).startswith("string") and str(raw["use"].dtype) == "Int64"
    assert str(raw["urbanY"].dtype) == "boolean"


def test_fit_matches_lme4_with_every_dtype(fits):
    case, _cat, _raw, m_cat, m_raw, m_bool = fits
    for m in (m_raw, m_bool):
        assert -1e-4 <= m.loglik - case["loglik"] <= 5e-4
        np.testing.assert_allclose(m.fixef.to_numpy(), list(case["fixef"].values()), atol=1e-3)
    assert m_raw.loglik == pytest.approx(m_cat.loglik, abs=1e-9)
    assert list(m_bool.fixef.index)[3] == "urbanY"  # a boolean is its 0/1 indicator


def test_predict_effects_emmeans_plots_report_on_text_columns(fits):
    _case, cat, raw, m_cat, m_raw, m_bool = fits
    new_raw, new_cat = raw.head(25), cat.head(25)
    for re in ("conditional", "none"):
        np.testing.assert_allclose(m_raw.predict(new_raw, re=re), m_cat.predict(new_cat, re=re), rtol=1e-9)
    # issue 24: a raw pandas ValueError ("could not convert string to float: 'Y'") before
    me_raw, me_cat = m_raw.marginal_effects("urban", nsim=50), m_cat.marginal_effects("urban", nsim=50)
    np.testing.assert_allclose(me_raw.select_dtypes("number"), me_cat.select_dtypes("number"), rtol=1e-9)
    me_bool = m_bool.marginal_effects("urbanY", nsim=50)
    np.testing.assert_allclose(me_bool.select_dtypes("number"), me_cat.select_dtypes("number"), rtol=1e-6)
    with pytest.raises(glmm_nb.DataError, match="'livch' has 4 levels"):
        m_raw.marginal_effects("livch")
    e_raw = m_raw.emmeans("livch", type="response").to_frame()
    e_cat = m_cat.emmeans("livch", type="response").to_frame()
    np.testing.assert_allclose(e_raw.select_dtypes("number"), e_cat.select_dtypes("number"), rtol=1e-9)
    assert m_bool.emmeans("urbanY").to_frame().shape[0] == 2
    spec = m_raw.plot.effects("urban").to_dict()
    assert "datasets" in spec
    html = m_raw.report(diagnostics_nsim=20, svg_fallback=False).html
    assert "urban" in html and "Traceback" not in html
