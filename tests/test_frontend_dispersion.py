"""Issue 27's front ends: a dispersion model (dispformula) and the new families (betabinomial …)
through ``glmm-nb fit``, ``%%glmm`` / ``%glmm`` and the ModelBuilder — each fit compared with
glmm() called directly (the same numbers) and with glmmTMB 1.1.5 (fixtures/cases_tmb:
disp_gauss.json, betabinom_sim.json, glmmtmb_disp.json with its R code in glmmtmb_disp.R);
bad input refused in one line naming the culprit (exit status 2 for the command)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.cli import main
from glmm_nb.families import family_names
from tests.conftest import FIXTURES, load_case

NEW_FAMILIES = ("betabinomial", "t", "tweedie", "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2")
OWN = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_disp.json").read_text())
GAUSS, GAUSS_DF = load_case("disp_gauss")  # y ~ x + (1 | g), dispformula ~ h (ML)
BB, BB_DF = load_case("betabinom_sim")  # cbind(k, n - k) ~ x + (1 | g)
BBD = OWN["betabin_disp"]  # the same with dispformula ~ x
DISPSIM, BETABINSIM = str(FIXTURES / "data" / "dispsim.csv"), str(FIXTURES / "data" / "betabinsim.csv")


def _vals(d):
    return np.array(list(d.values()), dtype=float)


@pytest.fixture(scope="module")
def direct():
    """The three models fitted by glmm() itself."""
    return {"gauss": glmm_nb.glmm(GAUSS["formula"], GAUSS_DF, family="gaussian", dispformula="~ h", reml=False),
            "bb": glmm_nb.glmm(BB["formula"], BB_DF, family="betabinomial"),
            "bbd": glmm_nb.glmm(BBD["formula"], BB_DF, family="betabinomial", dispformula=BBD["dispformula"])}


def _check_against_glmmtmb(key, m):
    """The stored glmmTMB values (log-likelihood to 1e-6, coefficients to 1e-4)."""
    ref = {"gauss": GAUSS, "bb": BB, "bbd": BBD}[key]
    assert abs(m.loglik - ref["loglik"]) < 1e-6
    np.testing.assert_allclose(m.fixef.to_numpy(), _vals(ref["fixef"]), rtol=1e-4, atol=1e-5)
    if key != "bb":
        np.testing.assert_allclose(m.disp_fixef.to_numpy(), _vals(ref["disp_fixef"]), rtol=1e-4, atol=5e-5)


def _same_fit(m, d):
    assert m.loglik == pytest.approx(d.loglik, abs=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), d.fixef.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(m.disp_fixef.to_numpy(), d.disp_fixef.to_numpy(), rtol=1e-8)
    assert m.spec.disp_formula == d.spec.disp_formula


# ---------------------------------------------------------------------------------------- CLI
def _cli_rows(capsys, args):
    assert main(["fit", *args, "--format", "json"]) == 0
    return pd.DataFrame(json.loads(capsys.readouterr().out))


def test_cli_dispformula_and_betabinomial(capsys, direct):
    for key, args in (("gauss", [DISPSIM, GAUSS["formula"], "--family", "gaussian", "--ml", "--dispformula", "~ h"]),
                      ("bb", [BETABINSIM, BB["formula"], "--family", "betabinomial"]),
                      ("bbd", [BETABINSIM, BBD["formula"], "--family", "betabinomial", "--dispformula", "~ x"])):
        got = _cli_rows(capsys, args)
        want = direct[key].tidy(conf_int=True)
        assert list(got.columns) == list(want.columns) and list(got.term) == list(want.term)
        np.testing.assert_allclose(got.estimate.to_numpy(float), want.estimate.to_numpy(float), rtol=1e-8)
        _check_against_glmmtmb(key, direct[key])
        if key != "bb":  # the dispersion model's rows, against glmmTMB's fixef(m)$disp
            disp = got[got.component == "disp"]
            ref = BBD if key == "bbd" else GAUSS
            np.testing.assert_allclose(disp.estimate.to_numpy(float), _vals(ref["disp_fixef"]), rtol=1e-4, atol=5e-5)
    assert main(["fit", DISPSIM, GAUSS["formula"], "--family", "gaussian", "--ml", "--dispformula", "~ h"]) == 0
    assert "Dispersion model (log sigma^2): ~ h" in capsys.readouterr().out


def test_cli_lists_the_new_families_and_refuses_bad_dispersion_models(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert all(f in helptext for f in NEW_FAMILIES) and "--dispformula FORMULA" in helptext
    cases = (
        ([DISPSIM, "y ~ x + (1 | g)", "--family", "gaussian", "--dispformula", "~ h"],
         "glmm-nb: a gaussian model with --dispformula is fitted by maximum likelihood (as glmmTMB): add --ml"),
        ([BETABINSIM, "k ~ x + (1 | g)", "--family", "poisson", "--dispformula", "~ x"],
         "glmm-nb: --dispformula needs a family with a dispersion parameter (gaussian, negative_binomial, nbinom1, "
         "gamma, beta, betabinomial, t, tweedie, truncated_nbinom2, truncated_nbinom1), not poisson"),
        ([BETABINSIM, BB["formula"], "--family", "betabinomial", "--dispformula", "x"],
         "glmm-nb: dispformula 'x' must be a right-hand side such as '~ h'"),
        ([BETABINSIM, BB["formula"], "--family", "betabinomial", "--dispformula", "~ nope"],
         None),
    )
    for args, message in cases:
        assert main(["fit", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("glmm-nb: ")
        if message:
            assert err == message
        else:
            assert "nope" in err


# ------------------------------------------------------------------------------------- magics
@pytest.fixture(scope="module")
def ip():
    pytest.importorskip("IPython")
    from IPython.testing.globalipapp import get_ipython, start_ipython

    shell = start_ipython() or get_ipython()  # the one test shell (tests/magics may have started it)
    shell.run_line_magic("load_ext", "glmm_nb")
    shell.user_ns["dg"], shell.user_ns["bb"] = GAUSS_DF, BB_DF
    return shell


def test_magics_dispformula_and_betabinomial(ip, direct):
    ip.run_cell("%%glmm mg --data dg --family gaussian --ml --dispformula '~ h' --quiet\ny ~ x + (1 | g)")
    ip.run_cell("mb = %glmm --data bb --family betabinomial cbind(k, n - k) ~ x + (1 | g)")
    ip.run_cell("mbd = %glmm --data bb --family betabinomial --dispformula='~ x' cbind(k, n - k) ~ x + (1 | g)")
    for name, key in (("mg", "gauss"), ("mb", "bb"), ("mbd", "bbd")):
        m = ip.user_ns[name]
        _same_fit(m, direct[key])
        _check_against_glmmtmb(key, m)
    from glmm_nb.magics.args import parse_line

    a = parse_line("--data bb --dispformula \"~ x\" --family t y ~ x + (1 | g)", cell=False)
    assert (a.dispformula, a.family, a.formula) == ("~ x", "t", "y ~ x + (1 | g)")


@pytest.mark.parametrize("cell, message", [
    ("%%glmm --data dg --family gaussian --dispformula '~ h'\ny ~ x + (1 | g)",
     "glmm: a gaussian model with --dispformula is fitted by maximum likelihood (as glmmTMB): add --ml"),
    ("%%glmm --data bb --family binomial --dispformula '~ x'\ncbind(k, n - k) ~ x + (1 | g)",
     "glmm: --dispformula needs a family with a dispersion parameter"),
    ("%glmm --data bb --family betabinomial --dispformula ~ x cbind(k, n - k) ~ x + (1 | g)",
     "glmm: --dispformula '~': quote a dispersion formula that holds spaces, e.g. --dispformula '~ h'"),
    ("%%glmm --data bb --family betabinomial --dispformula '~ (1 | g)'\ncbind(k, n - k) ~ x + (1 | g)",
     "glmm: dispformula '~ (1 | g)' takes fixed effects only"),
])
def test_magics_refuse_bad_dispersion_models_in_one_line(ip, capsys, cell, message):
    from IPython.core.error import UsageError

    res = ip.run_cell(cell)
    err = capsys.readouterr().err.strip()
    assert isinstance(res.error_in_exec, UsageError)
    assert err.startswith("UsageError: " + message) and len(err.splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------------------------------- widget
def test_builder_dispersion_control_and_new_families(ip, direct):
    pytest.importorskip("ipywidgets")
    assert all(f in glmm_nb.ModelBuilder(BB_DF).family.options for f in NEW_FAMILIES)
    assert tuple(glmm_nb.ModelBuilder(BB_DF).family.options) == family_names()
    b = glmm_nb.ModelBuilder(GAUSS_DF, formula="y ~ x + (1 | g)", family="gaussian", name="dg")
    assert b.reml.value and not b.reml.disabled and not b.dispformula.disabled
    b.dispformula.value = "~ h"  # a gaussian dispersion model is fitted by ML: the REML box says so
    assert not b.reml.value and b.reml.disabled
    assert b.cell == "%%glmm result --data dg --family gaussian --ml --dispformula '~ h'\ny ~ x + (1 | g)"
    m = b.fit()
    _same_fit(m, direct["gauss"])
    _check_against_glmmtmb("gauss", m)
    assert b.compare().loc["m1", "family"] == "gaussian (identity) + dispersion ~ h"
    ip.run_cell(b.cell.replace("%%glmm result", "%%glmm from_cell --quiet", 1))  # the cell fits the same model
    assert ip.user_ns["from_cell"].loglik == pytest.approx(m.loglik, abs=1e-9)
    b.dispformula.value = ""
    assert not b.reml.disabled and "--dispformula" not in b.cell and b.options["dispformula"] is None
    b.family.value = "poisson"  # no dispersion: the control is off and nothing is passed
    b.dispformula.value = "~ h"
    assert b.dispformula.disabled and b.options["dispformula"] is None and "--dispformula" not in b.cell

    b = glmm_nb.ModelBuilder(BB_DF, formula=BB["formula"], family="betabinomial", name="bb")
    assert (b.response_form.value, b.response.value, b.response2.value) == ("trials", "k", "n")
    _same_fit(b.fit(), direct["bb"])
    b.dispformula.value = "~ x"
    assert b.cell.splitlines()[0] == "%%glmm result --data bb --family betabinomial --dispformula '~ x'"
    m = b.fit()
    _same_fit(m, direct["bbd"])
    _check_against_glmmtmb("bbd", m)
    b.dispformula.value = "x"  # not a formula: the status says so in one line, nothing is stored
    assert b.fit() is None and "dispformula &#x27;x&#x27; must be a right-hand side" in b.status.value
    assert len(b.results) == 2
    with pytest.raises(glmm_nb.ModelError, match="dispformula= needs a family with a dispersion parameter .* not "
                                                 "poisson"):
        glmm_nb.ModelBuilder(BB_DF, formula="k ~ x + (1 | g)", family="poisson", dispformula="~ x")
