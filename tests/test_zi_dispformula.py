"""Issue 27: a dispersion model (dispformula) together with a zero-inflation part (ziformula) for
NB2 / NB1 counts, against glmmTMB 1.1.5 (fixtures/cases_tmb/glmmtmb_zidisp.R → .json, data
fixtures/data/zinbdisp.csv), the Laplace gradient against finite differences, AGQ against a
numerical integral of scipy's NB density, and the hurdle model refused with its reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import glmm_nb
from glmm_nb import ModelError
from glmm_nb.cli import main
from glmm_nb.pipeline import make_devfun, make_request
from tests.conftest import FIXTURES

REF = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_zidisp.json").read_text())
CSV = FIXTURES / "data" / "zinbdisp.csv"
FORMULA = "y ~ x + (1 | g)"


def _data() -> pd.DataFrame:
    return pd.read_csv(CSV)


def _vals(d):
    return np.array(list(d.values()), dtype=float)


@pytest.fixture(scope="module", params=["nbinom2", "nbinom1"])
def fitted(request):
    fam = request.param
    return fam, glmm_nb.glmm(FORMULA, _data(), family=fam, ziformula="~ 1", dispformula="~ h")


def test_matches_glmmtmb(fitted):
    fam, m = fitted
    ref = REF[fam]
    # measured: log-likelihoods within 5e-9, estimates 1e-5, SEs 1e-5 relative
    assert abs(m.loglik - ref["loglik"]) < 1e-6 and m.npar == ref["df"]
    np.testing.assert_allclose(m.fixef.to_numpy(), _vals(ref["fixef"]), rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov.to_numpy())), _vals(ref["se"]), rtol=5e-4)
    np.testing.assert_allclose(m.zi_fixef.to_numpy(), _vals(ref["zi"]), rtol=1e-4)
    np.testing.assert_allclose(m.coef_table(part="zi").std_error, _vals(ref["zi_se"]), rtol=5e-4)
    np.testing.assert_allclose(m.disp_fixef.to_numpy(), _vals(ref["disp_fixef"]), rtol=1e-4, atol=5e-5)
    np.testing.assert_allclose(m.coef_table(part="disp").std_error, _vals(ref["disp_se"]), rtol=5e-4)
    np.testing.assert_allclose(m.varcorr().vcov.iloc[0], ref["var"], rtol=5e-4)
    np.testing.assert_allclose(m.predict(type="dispersion")[:6], ref["disp_head"], rtol=2e-5)
    np.testing.assert_allclose(m.predict(type="response")[:6], ref["response_head"], rtol=2e-5)
    assert m.converged and ref["converged"]


def test_everything_downstream_reads_both_parts(fitted):
    fam, m = fitted
    d = _data()
    name = "theta" if fam == "nbinom2" else "alpha"
    text = m.summary()
    assert "Zero-inflation" in text or "Zero part" in text
    assert f"Dispersion model (log {name}): ~ h" in text
    tid = m.tidy()
    assert list(tid.component) == ["cond", "cond", "cond", "zi", "disp", "disp"]
    # new rows: each its own dispersion; the zero-inflated mean (1 - pi) mu and its delta-method SE
    new = d.iloc[[0, 5]]
    disp = m.predict(new, type="dispersion")
    assert disp[0] != disp[1] and disp[1] == pytest.approx(np.exp(m.disp_fixef.sum()))
    pi = special.expit(m.zi_fixef.iloc[0])
    eta = m.fixef.iloc[0] + m.fixef.iloc[1] * new.x.to_numpy()
    np.testing.assert_allclose(m.predict(new, type="response", re="none"), (1 - pi) * np.exp(eta), rtol=1e-10)
    from glmm_nb.inference.prediction import predict_interval

    iv = predict_interval(m, new, type="response")
    assert np.all(np.isfinite(iv.se_fit)) and np.all(iv.lower < iv.fit) and np.all(iv.fit < iv.upper)
    assert m.simulate(2, seed=1, newdata=new).shape == (2, 2)
    one = m.refit(dispformula="~ 1")
    row = glmm_nb.anova(one, m).iloc[1]
    assert row.df == 1 and row.chisq == pytest.approx(2 * (m.loglik - one.loglik))
    from glmm_nb.report.sections import disp_part_section

    sec = disp_part_section(m)
    assert sec["name"] == name and sec["rows"][1]["exp"] == pytest.approx(np.exp(m.disp_fixef.iloc[1]))


def test_laplace_gradient_with_zero_part_and_dispersion_model():
    req = make_request("y ~ x + (1 + x | g)", _data(), family="nbinom2", ziformula="~ x", dispformula="~ h + x")
    assert req.family.extra_names(req.spec) == ["zi~(Intercept)", "zi~x", "disp~(Intercept)", "disp~h[T.b]", "disp~x"]
    dev = make_devfun(req)
    phi = np.array([0.5, 0.05, 0.2, 0.9, 0.35, -0.8, -0.1, 0.3, 0.6, -0.2])
    _v, g = dev.value_and_grad(phi)
    fd = np.array([(dev(phi + e) - dev(phi - e)) / 2e-6 for e in np.eye(phi.size) * 1e-6])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-4)


def test_agq_is_the_integral_of_scipys_zinb_density():
    d = _data()
    d = d[d.g.isin(sorted(d.g.unique())[:10])].copy()
    m = glmm_nb.glmm(FORMULA, d, family="nbinom2", ziformula="~ 1", dispformula="~ h", method="agq", nagq=20)
    pi = float(special.expit(m.zi_fixef.iloc[0]))
    sd, beta, delta = float(m.varcorr().sdcor.iloc[0]), m.fixef.to_numpy(), m.disp_fixef.to_numpy()
    total = 0.0
    for _, c in d.groupby("g"):
        y, x = c.y.to_numpy(float), c.x.to_numpy(float)
        theta = np.exp(delta[0] + delta[1] * (c.h == "b").to_numpy(float))

        def f(b):
            mu = np.exp(beta[0] + beta[1] * x + b)
            p = (1 - pi) * stats.nbinom.pmf(y, theta, theta / (theta + mu)) + pi * (y == 0)
            return np.exp(np.sum(np.log(p))) * stats.norm.pdf(b, 0, sd)

        total += np.log(integrate.quad(f, -8 * sd, 8 * sd, epsabs=0, epsrel=1e-11, limit=200)[0])
    assert abs(m.loglik - total) < 1e-5, (m.loglik, total)


def test_cli_fits_it_and_the_hurdle_version_is_refused(capsys):
    assert main(["fit", str(CSV), FORMULA, "--family", "nbinom2", "--ziformula", "~ 1", "--dispformula", "~ h",
                 "--format", "json"]) == 0
    rows = pd.DataFrame(json.loads(capsys.readouterr().out))
    np.testing.assert_allclose(rows[rows.component == "disp"].estimate.to_numpy(float),
                               _vals(REF["nbinom2"]["disp_fixef"]), rtol=1e-4, atol=5e-5)
    np.testing.assert_allclose(rows[rows.component == "zi"].estimate.to_numpy(float), _vals(REF["nbinom2"]["zi"]),
                               rtol=1e-4)
    with pytest.raises(ModelError, match="dispformula= with a hurdle model is not available: its mean depends on "
                                         "each row's dispersion"):
        glmm_nb.glmm(FORMULA, _data(), family="nbinom2", ziformula="~ 1", dispformula="~ h", hurdle=True)
    with pytest.raises(ModelError, match="needs a family with a dispersion parameter"):
        glmm_nb.glmm(FORMULA, _data(), family="poisson", ziformula="~ 1", dispformula="~ h")
