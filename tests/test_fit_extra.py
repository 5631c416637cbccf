"""More lme4 1.1-31 cross-checks run here: probit and cloglog links, uncorrelated (||) and
nested (/) random effects. R code::

    lmer(Reaction ~ Days + (Days || Subject), sleepstudy)
    glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial("probit"))
    glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial("cloglog"))
    glmer(r2 ~ Anger + Gender + (1 | btype/item), VerbAgg, binomial)
    glmer(y ~ lbase*trt + lage + V4 + (1|subject), epil, poisson, nAGQ = 10)
    glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial("probit"), nAGQ = 15)

Tolerances at what the fits reach (measured: fixed effects 7e-5, SDs 4e-5, log-likelihood within
3e-5 of lme4's, standard errors 1e-4): fixed effects and SDs 5e-4, log-likelihood two-sided
(at most 2e-4 above lme4's, 1e-4 below), standard errors 2e-3.
"""

import json

import numpy as np
import pytest

import glmm_nb
from tests.conftest import FIXTURES, load_case

EXTRA = {k: v for k, v in json.loads((FIXTURES / "lme4_extra.json").read_text()).items() if not k.startswith("_")}


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_matches_lme4(name):
    ref = EXTRA[name]
    _case, df = load_case(ref["data"])
    agq = {"method": "agq", "nagq": ref["nagq"]} if "nagq" in ref else {}
    m = glmm_nb.glmm(ref["formula"], df, family=ref["family"], link=ref["link"], **agq)
    fe = np.array(ref["fixef"])
    assert np.all(np.abs(m.fixef.to_numpy() - fe) <= 5e-4 * np.maximum(1, np.abs(fe)))
    vc = m.varcorr()
    sd = np.array(ref["sdcor"])
    assert np.all(np.abs(vc.sdcor.to_numpy() - sd) <= 5e-4 * np.maximum(1, sd))
    assert list(vc.grp) == ref["grp"]
    if "loglik" in ref:
        assert -1e-4 <= m.loglik - ref["loglik"] <= 2e-4, (m.loglik, ref["loglik"])
    if "se" in ref:
        np.testing.assert_allclose(m.coef_table().std_error, ref["se"], rtol=2e-3)


def test_proportions_with_weights_equal_cbind():
    case, df = load_case("cbpp_laplace")
    a = glmm_nb.glmm(case["formula"], df)
    b = glmm_nb.glmm("p ~ period + (1 | herd)", df.assign(p=df.incidence / df["size"]), weights="size")
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-6)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)


def test_offset_argument_equals_formula_offset_and_shifts_intercept():
    case, df = load_case("epil_poisson")
    a = glmm_nb.glmm("y ~ lbase + trt + (1 | subject)", df, family="poisson")
    b = glmm_nb.glmm("y ~ lbase + trt + offset(np.log(2) + 0 * lbase) + (1 | subject)", df, family="poisson")
    c = glmm_nb.glmm("y ~ lbase + trt + (1 | subject)", df, family="poisson", offset=np.full(len(df), np.log(2)))
    assert b.fixef["(Intercept)"] == pytest.approx(a.fixef["(Intercept)"] - np.log(2), abs=1e-6)
    np.testing.assert_allclose(b.fixef, c.fixef, atol=1e-8)
    np.testing.assert_allclose(a.fixef.iloc[1:], b.fixef.iloc[1:], atol=1e-6)
