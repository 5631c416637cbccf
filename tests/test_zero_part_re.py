"""Random effects in the zero part (``ziformula="~ x + (1 | g)"``, issue 27 item 6): the joint
Laplace over the count and zero parts' random effects against glmmTMB 1.1.5
(tests/fixtures/cases_tmb/zi_re_pois.json, the wave-3 case; glmmtmb_zi_re.json from
glmmtmb_zi_re.R: ZIP, hurdle Poisson and ZINB), the Laplace value against an independent
per-cluster computation and against the 2-D integral it approximates, the per-row derivatives
in (eta, zeta) against differences of the log-density, predictions and simulation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize, special, stats

import glmm_nb
from glmm_nb import FormulaError, ModelError
from glmm_nb.families import get_family, zero_inflated
from glmm_nb.pipeline import make_devfun, make_request
from tests.conftest import FIXTURES

REF = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_zi_re.json").read_text())
WAVE3 = json.loads((FIXTURES / "cases_tmb" / "zi_re_pois.json").read_text())
ZRE = pd.read_csv(FIXTURES / "data" / "zresim.csv")
ZNB = pd.read_csv(FIXTURES / "data" / "zinbre.csv")
ZREH = ZRE.assign(h=[f"p{(int(g[1:]) + 1) // 2:02d}" for g in ZRE.g])  # pairs of clusters, as in the R script
CASES = {"zip": (ZRE, "poisson", False, "g"), "hurdle_pois": (ZRE, "poisson", True, "g"),
         "zinb": (ZNB, "negative_binomial", False, "g"), "zip_crossed": (ZREH, "poisson", False, "h")}


@pytest.fixture(scope="module")
def fits():
    return {k: glmm_nb.glmm("y ~ x + (1 | g)", d, family=f, ziformula=f"~ x + (1 | {zg})", hurdle=h)
            for k, (d, f, h, zg) in CASES.items()}


def test_wave3_case_matches_glmmtmb(fits):
    m, ref = fits["zip"], WAVE3
    assert m.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    np.testing.assert_allclose(m.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), list(ref["se"].values()), rtol=1e-4)
    np.testing.assert_allclose(m.zi_fixef.to_numpy(), list(ref["zi_fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(m.zi_vcov)), list(ref["zi_se"].values()), rtol=1e-4)
    cm = m.covariance_matrices()
    assert cm["g"].iloc[0, 0] == pytest.approx(ref["cov"][0]["matrix"][0][0], rel=1e-4)
    assert cm["zi:g"].iloc[0, 0] == pytest.approx(ref["zi_cov"][0]["matrix"][0][0], rel=1e-4)
    assert m.npar == ref["df"]


@pytest.mark.parametrize("key", list(CASES))
def test_fit_matches_glmmtmb(fits, key):
    m, ref = fits[key], REF[key]
    assert m.converged, m.messages
    assert m.loglik == pytest.approx(ref["loglik"], abs=1e-4)
    assert m.npar == ref["df"]
    np.testing.assert_allclose(m.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), list(ref["se"].values()), rtol=1e-4)
    zt = m.coef_table(part="zi")
    np.testing.assert_allclose(zt.estimate.to_numpy(), list(ref["zi_fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(zt.std_error.to_numpy(), list(ref["zi_se"].values()), rtol=1e-4)
    zg = "zi:" + CASES[key][3]
    vc = m.varcorr().set_index("grp")
    assert vc.loc["g", "vcov"] == pytest.approx(ref["cond_var"], rel=1e-4)
    assert vc.loc[zg, "vcov"] == pytest.approx(ref["zi_var"], rel=1e-4)
    if key == "zinb":
        assert m.dispersion.iloc[0] == pytest.approx(ref["sigma"], rel=1e-4)
    re = m.ranef()
    np.testing.assert_allclose(re["g"].iloc[:3, 0], ref["ranef_cond_head"], atol=1e-4)
    np.testing.assert_allclose(re[zg].iloc[:3, 0], ref["ranef_zi_head"], atol=1e-4)
    assert re[zg].index.tolist() == sorted(set(CASES[key][0][CASES[key][3]]))
    assert (re[zg]["condsd_(Intercept)"] > 0).all()
    # Pearson residuals conditional on both parts' modes, as glmmTMB's; hurdle: the variance summed
    # from the pmf (glmmTMB 1.1.5's hurdle variance is wrong, tests/test_zero_part_post.py)
    res = m.residuals(type="pearson").to_numpy()[:5]
    if key != "hurdle_pois":
        np.testing.assert_allclose(res, ref["resid_pearson_head"], rtol=1e-4)
    else:
        lam, pi = m.predict(type="conditional")[:5, None], m.predict(type="zero_prob")[:5, None]
        k = np.arange(1, 200)[None, :]
        pk = (1 - pi) * stats.poisson.pmf(k, lam) / (1 - np.exp(-lam))
        mean, var = (k * pk).sum(1), (k**2 * pk).sum(1) - (k * pk).sum(1) ** 2
        np.testing.assert_allclose(res, (CASES[key][0].y.to_numpy()[:5] - mean) / np.sqrt(var), rtol=1e-6)
        assert np.abs(res / ref["resid_pearson_head"] - 1).max() > 0.01  # not glmmTMB 1.1.5's


@pytest.mark.parametrize("key", list(CASES))
def test_predictions_match_glmmtmb(fits, key):
    m, ref = fits[key], REF[key]
    nd = CASES[key][0].iloc[[r - 1 for r in ref["pred_rows"]]]
    np.testing.assert_allclose(m.predict(nd, type="response"), ref["pred_response"], rtol=1e-4)
    np.testing.assert_allclose(m.predict(nd, type="zero_prob"), ref["pred_zprob"], rtol=1e-4)
    np.testing.assert_allclose(m.predict(type="zero_prob")[[r - 1 for r in ref["pred_rows"]]], ref["pred_zprob"],
                               rtol=1e-4)
    # population level: every random effect 0 (glmmTMB with a missing group; see the R script)
    np.testing.assert_allclose(m.predict(nd, type="response", re="none"), ref["pred_response_none"], rtol=1e-4)
    np.testing.assert_allclose(m.predict(nd, type="zero_prob", re="none"), ref["pred_zprob_none"], rtol=1e-4)
    np.testing.assert_allclose(m.predict(type="zero_prob", re="none")[[r - 1 for r in ref["pred_rows"]]],
                               ref["pred_zprob_none"], rtol=1e-4)


def test_summary_and_tidy_show_the_zero_part_variance(fits):
    m = fits["zinb"]
    text = m.summary()
    assert "zi:g" in text and f"{REF['zinb']['zi_var']:.4f}" in text
    td = m.tidy()
    row = td[(td.effect == "ran_pars") & (td.component == "zi")]
    assert row.group.tolist() == ["g"] and row.term.tolist() == ["sd__(Intercept)"]
    assert row.estimate.iloc[0] == pytest.approx(np.sqrt(REF["zinb"]["zi_var"]), rel=1e-4)
    cond = td[(td.effect == "ran_pars") & (td.component == "cond")]
    assert cond.estimate.iloc[0] == pytest.approx(np.sqrt(REF["zinb"]["cond_var"]), rel=1e-4)


# ------------------------------------------------------------------ the Laplace value itself
SMALL = ZRE[ZRE.g.isin(["g01", "g02", "g03", "g04", "g05", "g06"])].reset_index(drop=True)


def _logdens(y, eta, zeta, hurdle, size=None):
    """Log-density of a ZI / hurdle Poisson (or NB2 of ``size``) written from scipy.stats."""
    mu = np.exp(eta)
    pi = special.expit(zeta)
    if size is None:
        lf, f0 = stats.poisson.logpmf(y, mu), np.exp(-mu)
    else:
        lf, f0 = stats.nbinom.logpmf(y, size, size / (size + mu)), (size / (size + mu)) ** size
    if hurdle:
        return np.where(y == 0, np.log(pi), np.log1p(-pi) + lf - np.log1p(-f0))
    return np.where(y == 0, np.log(pi + (1 - pi) * f0), np.log1p(-pi) + lf)


def _cluster_terms(d, phi, hurdle, size):
    """Per cluster: log p(y_j, b) as a function of b = (b_c, b_z) (variances theta^2)."""
    tc, b0, b1, g0, g1, tz = phi
    out = []
    for _, c in d.groupby("g"):
        y, x = c.y.to_numpy(float), c.x.to_numpy(float)

        def h(b, y=y, x=x):
            return (np.sum(_logdens(y, b0 + b1 * x + b[0], g0 + g1 * x + b[1], hurdle, size))
                    + stats.norm.logpdf(b[0], 0, tc) + stats.norm.logpdf(b[1], 0, tz))
        out.append(h)
    return out


def _independent(d, phi, hurdle, size=None, nodes=40):
    """(Laplace, quadrature) log-likelihoods: per cluster the mode of h by scipy, the Hessian by
    differences, and the 2-D integral by Gauss-Hermite nodes placed at the mode."""
    lap = quad = 0.0
    x, w = hermegauss(nodes)
    w = w / np.sqrt(2 * np.pi)
    for h in _cluster_terms(d, phi, hurdle, size):
        r = optimize.minimize(lambda b: -h(b), np.zeros(2), method="BFGS", options={"gtol": 1e-10})
        b = r.x
        H = np.empty((2, 2))
        e = 1e-4
        for i in range(2):
            for j in range(2):
                ei, ej = np.eye(2)[i] * e, np.eye(2)[j] * e
                H[i, j] = -(h(b + ei + ej) - h(b + ei - ej) - h(b - ei + ej) + h(b - ei - ej)) / (4 * e * e)
        lap += h(b) + np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(H)[1]
        L = np.linalg.cholesky(np.linalg.inv(H))
        Z = np.stack(np.meshgrid(x, x, indexing="ij"), -1).reshape(-1, 2)
        W = np.outer(w, w).ravel()
        pts = b + Z @ L.T
        logf = np.array([h(p) for p in pts]) + 0.5 * np.sum(Z**2, axis=1)
        quad += special.logsumexp(logf, b=W) + 0.5 * np.linalg.slogdet(L @ L.T)[1] + np.log(2 * np.pi)
    return lap, quad


@pytest.mark.parametrize("hurdle,family,size", [(False, "poisson", None), (True, "poisson", None),
                                                (False, "negative_binomial", 1.7)])
def test_laplace_matches_an_independent_computation_and_the_integral(hurdle, family, size):
    req = make_request("y ~ x + (1 | g)", SMALL, family=family, ziformula="~ x + (1 | g)", hurdle=hurdle)
    dev = make_devfun(req)
    phi = np.array([0.6, 0.8, 0.3, -0.7, 0.5, 0.9])
    full = phi if size is None else np.r_[phi[:3], np.log(size), phi[3:]]
    ll = -dev(full) / 2
    lap, quad = _independent(SMALL, phi, hurdle, size)
    assert ll == pytest.approx(lap, abs=2e-6)
    # what it approximates, the 2-D integral per cluster (40 x 40 nodes at the mode): within a
    # few hundredths per cluster of 12 rows, and not equal to it (an approximation)
    assert 1e-5 < abs(ll - quad) < 0.03 * SMALL.g.nunique()


def test_deviance_is_smooth_enough_for_differences():
    """The gradient and Hessian are differences of D: warm- and cold-started PIRLS must agree far
    below the differences' step squared (1e-8 and less)."""
    req = make_request("y ~ x + (1 | g)", ZRE, family="poisson", ziformula="~ x + (1 | g)")
    dev = make_devfun(req)
    phi = np.array([0.54, 0.86, 0.27, -0.88, 0.48, 0.75])
    e = np.zeros(6)
    e[1] = 1e-4
    dev(phi)
    warm = dev(phi + e)
    dev.reset_modes()
    cold = dev(phi + e)
    assert abs(warm - cold) < 1e-9


@pytest.mark.parametrize("hurdle", [False, True])
@pytest.mark.parametrize("base", ["poisson", "negative_binomial"])
def test_zeta_derivatives_match_differences(hurdle, base):
    """(d/dzeta l, -d2/deta dzeta l, -d2/dzeta2 l) against central differences of the log-density."""
    rng = np.random.default_rng(3)
    n = 40
    y = np.where(rng.random(n) < 0.4, 0.0, rng.poisson(2.0, n)).astype(float)
    eta, zeta = rng.normal(0.5, 0.5, n), rng.normal(-0.3, 0.8, n)
    fam = zero_inflated(get_family(base), hurdle)
    if base != "poisson":
        fam = fam.at_dispersion(1.6)
    pw = np.full(n, 1.3)

    def ll(e, z):
        return fam.with_zeta(z).loglik_kernel(y, e, pw)

    h = 1e-5
    dz = (ll(eta, zeta + h) - ll(eta, zeta - h)) / (2 * h)
    dzz = (ll(eta, zeta + h) - 2 * ll(eta, zeta) + ll(eta, zeta - h)) / h**2
    dez = (ll(eta + h, zeta + h) - ll(eta + h, zeta - h) - ll(eta - h, zeta + h) + ll(eta - h, zeta - h)) / (4 * h * h)
    rz, c, b = fam.with_zeta(zeta).zeta_working(eta, y, pw)
    np.testing.assert_allclose(rz, dz, atol=1e-7)
    np.testing.assert_allclose(b, -dzz, atol=1e-4)
    np.testing.assert_allclose(c, -dez, atol=1e-4)
    assert np.abs(c).max() > 0.01 if not hurdle else np.all(c == 0)


# ------------------------------------------------------------------- simulation and errors
def test_simulated_zeros_match_the_model(fits):
    m = fits["zip"]
    n, nsim = len(ZRE), 400
    sims = m.simulate(nsim=nsim, seed=11, re="conditional")
    mu = m.predict(type="conditional")
    pi = m.predict(type="zero_prob")
    p0 = pi + (1 - pi) * np.exp(-mu)  # P(y = 0) at the conditional modes of both parts
    se = np.sqrt(np.sum(p0 * (1 - p0)) / nsim) / n
    assert np.mean(sims == 0) == pytest.approx(np.mean(p0), abs=4 * se)
    # new random effects in both parts: P(y = 0) = E[pi] + E[1 - pi] E[exp(-mu)] by quadrature
    x, w = hermegauss(60)
    w = w / np.sqrt(2 * np.pi)
    sc, sz = np.sqrt(m.varcorr().set_index("grp").vcov[["g", "zi:g"]].to_numpy())
    eta = m.predict(type="link", re="none")
    zeta = special.logit(m.predict(type="zero_prob", re="none"))
    epi = special.expit(zeta[:, None] + sz * x) @ w
    ef0 = np.exp(-np.exp(eta[:, None] + sc * x)) @ w
    q0 = epi + (1 - epi) * ef0
    sims = m.simulate(nsim=nsim, seed=12)
    # draws share each cluster's effects: an SE from the cluster means of the simulated zero rate
    per = pd.DataFrame(sims == 0).groupby(ZRE.g.to_numpy()).mean().mean(axis=0)
    assert np.mean(sims == 0) == pytest.approx(np.mean(q0), abs=4 * per.std() / np.sqrt(nsim))
    # the zero part's new effects are drawn: zero rates vary between clusters beyond the fixed part's
    assert per.std() > 0


def test_bad_inputs_name_the_culprit(fits):
    with pytest.raises(ModelError, match="zero part.*one grouping factor"):  # AGQ: one factor only
        glmm_nb.glmm("y ~ x + (1 | g)", ZREH, family="poisson", ziformula="~ x + (1 | h)", method="agq", nagq=3)
    with pytest.raises(FormulaError, match="nosuch"):
        glmm_nb.glmm("y ~ x + (1 | g)", ZRE, family="poisson", ziformula="~ x + (1 | nosuch)")
    with pytest.raises(FormulaError, match="offset"):
        glmm_nb.glmm("y ~ x + (1 | g)", ZRE, family="poisson", ziformula="~ x + offset(x) + (1 | g)")
    m = fits["zip"]
    with pytest.raises(ModelError, match="zero part"):
        m.predict(ZRE.iloc[:3], type="link", re="conditional", se_fit=True)


def test_a_zero_part_variance_at_zero_is_named():
    """Zero-part effects on a factor that carries no variation (alternate rows): singular, said."""
    d = ZRE.assign(k=np.tile(["a", "b"], len(ZRE) // 2))
    with pytest.warns(glmm_nb.SingularFitWarning, match=r"\(1 \| k\) in the zero part"):
        m = glmm_nb.glmm("y ~ x + (1 | g)", d, family="poisson", ziformula="~ x + (1 | k)")
    assert m.singular and m.varcorr().set_index("grp").loc["zi:k", "sdcor"] < 1e-4
    # the SD on its bound is no free parameter: the others keep their SEs, those of the model
    # without the term (to the optimizer's precision on a flat boundary)
    m0 = glmm_nb.glmm("y ~ x + (1 | g)", d, family="poisson", ziformula="~ x")
    assert m.loglik == pytest.approx(m0.loglik, abs=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(m.vcov)), np.sqrt(np.diag(m0.vcov)), rtol=1e-3)
    np.testing.assert_allclose(np.sqrt(np.diag(m.zi_vcov)), np.sqrt(np.diag(m0.zi_vcov)), rtol=1e-3)


def test_merged_term_and_schur_paths_agree(monkeypatch):
    """The same-factor case runs as one block-diagonal term; the general (Schur) path must give the
    same deviance, modes and conditional covariances."""
    import glmm_nb.likelihood.zire as zire

    req = make_request("y ~ x + (1 | g)", ZNB, family="negative_binomial", ziformula="~ x + (1 | g)")
    phi = np.array([0.47, 0.51, 0.38, 0.3, -1.7, 1.19, 1.74])
    merged = make_devfun(req)
    assert merged.merged
    a = merged.state(phi)
    monkeypatch.setattr(zire, "mergeable", lambda spec: False)
    schur = make_devfun(req)
    assert not schur.merged
    b = schur.state(phi)
    assert a.deviance == pytest.approx(b.deviance, abs=1e-9)
    np.testing.assert_allclose(a.u, b.u, atol=1e-9)
    np.testing.assert_allclose(a.u_zi, b.u_zi, atol=1e-9)
    for k in (0, 1):
        np.testing.assert_allclose(a.fac.inv_blocks_term(k), b.fac.inv_blocks_term(k), atol=1e-10)
