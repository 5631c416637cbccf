"""Beta-binomial, Student t and Tweedie mixed models against glmmTMB 1.1.5, scipy's densities,
an independent compound Poisson-gamma sum, finite differences and numerical integrals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import glmm_nb
from glmm_nb import DataError
from glmm_nb.families import get_family
from glmm_nb.families.tweedie import tweedie_series
from glmm_nb.pipeline import make_devfun, make_request
from tests.conftest import FIXTURES, load_case

CASES = {"betabinom_sim": "betabinomial", "t_sim": "t", "tweedie_sim": "tweedie"}
PARAMS = {"betabinomial": {"phi": "sigma"}, "t": {"sigma": "sigma", "df": "Student-t df"},
          "tweedie": {"phi": "sigma", "power": "Tweedie power"}}


@pytest.fixture(scope="module")
def fits():
    out = {}
    for cid, fam in CASES.items():
        case, df = load_case(cid)
        out[cid] = (case, df, glmm_nb.glmm(case["formula"], df, family=fam))
    return out


@pytest.mark.parametrize("case_id", list(CASES))
def test_matches_glmmtmb(case_id, fits):
    case, df, m = fits[case_id]
    assert m.converged
    # measured: log-likelihoods within 2e-8, estimates within 1e-5 relative, SEs within 2e-5
    assert abs(m.loglik - case["loglik"]) < 1e-6, (m.loglik, case["loglik"])
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    for i, (k, v) in enumerate(case["fixef"].items()):
        assert abs(m.fixef[k] - v) <= 2e-4 * abs(v), (k, m.fixef[k], v)
        assert abs(se[i] - case["se"][k]) <= 1e-3 * case["se"][k], (k, se[i], case["se"][k])
    var = float(m.varcorr().vcov.iloc[0])
    assert abs(var - case["cov"][0]["matrix"][0][0]) <= 5e-4 * case["cov"][0]["matrix"][0][0]
    for ours, theirs in PARAMS[m.family].items():
        assert abs(m.dispersion[ours] - case["params"][theirs]) <= 5e-5 * case["params"][theirs], ours
    assert m.npar == case["df"]
    assert list(m.dispersion.index) == list(PARAMS[m.family])
    for name in PARAMS[m.family]:
        assert f"({name}): " in m.summary()
    tid = m.tidy()
    np.testing.assert_allclose(tid.query("effect == 'dispersion'").estimate, m.dispersion.to_numpy())


# ------------------------------------------------------------------------------------ densities
def test_betabinomial_density_is_scipys():
    f = get_family("betabinomial").at_dispersion(4.2)
    n = np.array([1.0, 5, 12, 20, 7, 0, 200, 150])  # counts above 40 take the polygamma path
    k = np.array([1.0, 0, 7, 20, 3, 0, 57, 130])
    mu = np.array([0.3, 0.1, 0.55, 0.9, 0.4, 0.5, 0.2, 0.7])
    y = np.where(n > 0, k / np.maximum(n, 1), 0.0)
    ref = stats.betabinom.logpmf(k, n, mu * 4.2, (1 - mu) * 4.2)
    np.testing.assert_allclose(f.loglik_obs(y, mu, n), ref, rtol=1e-12, atol=1e-12)
    # glmmTMB's variance: n mu (1 - mu) (1 + (n - 1)/(phi + 1)), here for y = k/n
    v = stats.betabinom.var(n[:5], mu[:5] * 4.2, (1 - mu[:5]) * 4.2) / n[:5] ** 2
    np.testing.assert_allclose(f.response_variance(mu[:5], n[:5]), v, rtol=1e-12)
    # the same rows at the AGQ nodes' shape (rows, nodes)
    mu2 = np.stack([mu, mu[::-1]], axis=1)
    got = f.loglik_const(y[:, None], n[:, None]) + f.loglik_kernel(y[:, None], f.link.link(mu2), n[:, None])
    np.testing.assert_allclose(got[:, 1], stats.betabinom.logpmf(k, n, mu[::-1] * 4.2, (1 - mu[::-1]) * 4.2),
                               rtol=1e-12, atol=1e-12)


def test_t_density_is_scipys():
    f = get_family("t").at_dispersion(0.7).at_shape(3.3)
    y = np.array([-4.0, 0.2, 1.0, 9.0])
    mu = np.array([0.5, 0.0, 1.3, 2.0])
    np.testing.assert_allclose(f.loglik_obs(y, mu, np.ones(4)), stats.t.logpdf(y, 3.3, mu, 0.7), rtol=1e-12)
    np.testing.assert_allclose(f.response_variance(mu, np.ones(4)), 0.49 * 3.3 / 1.3, rtol=1e-12)


def _compound_poisson_gamma(y, mu, phi, p, nmax=400):
    """Tweedie density as its definition: a Poisson number of gamma summands (independent of the
    Dunn-Smyth series)."""
    lam = mu ** (2 - p) / (phi * (2 - p))
    shape, scale = (2 - p) / (p - 1), phi * (p - 1) * mu ** (p - 1)
    n = np.arange(1, nmax)
    terms = stats.poisson.logpmf(n[:, None], lam) + stats.gamma.logpdf(y[None, :], n[:, None] * shape, scale=scale)
    return special.logsumexp(terms, axis=0)


@pytest.mark.parametrize("mu, phi, p", [(2.5, 1.3, 1.35), (0.4, 0.6, 1.8), (30.0, 2.0, 1.05), (1.0, 0.05, 1.5)])
def test_tweedie_series_is_the_compound_poisson_gamma_density(mu, phi, p):
    f = get_family("tweedie").at_dispersion(phi).at_shape(p)
    y = np.array([1e-3, 0.05, 0.5, 1.0, 3.0, 10.0, 40.0, 200.0]) * mu
    got = f.loglik_obs(y, np.full(y.size, mu), np.ones(y.size))
    np.testing.assert_allclose(got, _compound_poisson_gamma(y, mu, phi, p, nmax=3000), rtol=1e-10, atol=1e-10)
    p0 = np.exp(f.loglik_obs(np.zeros(1), np.full(1, mu), np.ones(1)))[0]
    assert p0 == pytest.approx(np.exp(-mu ** (2 - p) / (phi * (2 - p))), rel=1e-13)
    # total probability 1, mean mu, variance phi mu^p (numerical integrals of the series)
    dens = lambda t, k: t**k * np.exp(f.loglik_obs(np.array([t]), np.array([mu]), np.ones(1)))[0]  # noqa: E731
    hi = mu + 60 * np.sqrt(phi * mu**p)
    mom = [integrate.quad(dens, 0, hi, args=(k,), limit=400, epsabs=1e-13, epsrel=1e-11)[0] for k in (0, 1, 2)]
    assert p0 + mom[0] == pytest.approx(1.0, abs=1e-8)
    assert mom[1] == pytest.approx(mu, rel=1e-7)
    assert mom[2] - mu**2 == pytest.approx(phi * mu**p, rel=1e-6)


def test_tweedie_series_derivatives_by_finite_differences():
    y = np.array([0.01, 0.7, 2.0, 15.0, 120.0])
    h = 1e-6
    lw, dphi, dp = tweedie_series(y, 1.4, 1.6, want_grad=True)
    fd_phi = (tweedie_series(y, 1.4 * np.exp(h), 1.6)[0] - tweedie_series(y, 1.4 * np.exp(-h), 1.6)[0]) / (2 * h)
    fd_p = (tweedie_series(y, 1.4, 1.6 + h)[0] - tweedie_series(y, 1.4, 1.6 - h)[0]) / (2 * h)
    np.testing.assert_allclose(dphi, fd_phi, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dp, fd_p, rtol=1e-6, atol=1e-7)


CHECK = {
    "betabinomial": (np.array([0.2, 0.0, 0.75, 1.0]), np.array([0.3, 0.6, 0.7, 0.2]), np.array([5.0, 3, 80, 2]),
                     (3.5,)),
    "t": (np.array([-2.0, 0.3, 1.7, 6.0]), np.array([0.5, 0.2, 1.0, 1.5]), np.ones(4), (0.8, 4.5)),
    "tweedie": (np.array([0.0, 0.4, 2.0, 7.0]), np.array([0.5, 1.2, 3.0, 2.0]), np.array([1.0, 2.0, 1.0, 0.5]),
                (1.3, 1.45)),
}


def _at(fam, x):
    out = fam.at_dispersion(np.exp(x[0]))
    return out.at_shape(fam.shape_from_x(x[1])) if len(x) > 1 else out


@pytest.mark.parametrize("name", list(CHECK))
def test_working_and_extra_pieces_by_finite_differences(name):
    y, mu, pw, pars = CHECK[name]
    for link in get_family(name).links:
        base = get_family(name, link)
        x = np.array([np.log(pars[0])] + ([base.shape_to_x(pars[1])] if len(pars) > 1 else []))
        f = _at(base, x)
        eta, h = f.link.link(mu), 1e-5
        ll = lambda e, g=f: g.loglik_obs(y, g.link.inverse(e), pw)  # noqa: E731
        _mu, r, _W, Wobs, dW = f.working(eta, y, pw)
        np.testing.assert_allclose(r, (ll(eta + h) - ll(eta - h)) / (2 * h), rtol=1e-6, atol=1e-7)
        wp, wm = f.working(eta + h, y, pw), f.working(eta - h, y, pw)
        np.testing.assert_allclose(Wobs, -(wp[1] - wm[1]) / (2 * h), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(dW, (wp[3] - wm[3]) / (2 * h), rtol=1e-5, atol=1e-6)
        lp, rp, Wp = f.extra_pieces(eta, y, pw)
        for k in range(x.size):
            e = np.eye(x.size)[k] * h
            fp, fm = _at(base, x + e), _at(base, x - e)
            np.testing.assert_allclose(lp[:, k], (ll(eta, fp) - ll(eta, fm)) / (2 * h), rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(rp[:, k], (fp.working(eta, y, pw)[1] - fm.working(eta, y, pw)[1]) / (2 * h),
                                       rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(Wp[:, k], (fp.working(eta, y, pw)[3] - fm.working(eta, y, pw)[3]) / (2 * h),
                                       rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case_id", list(CASES))
def test_laplace_gradient_with_family_parameters(case_id):
    case, df = load_case(case_id)
    form = case["formula"].replace("(1 | g)", "(1 + x | g)")
    dev = make_devfun(make_request(form, df, family=CASES[case_id]))
    phi = np.array([0.6, 0.1, 0.25, -0.4, 0.4, np.log(2.5)] + ([0.3] if CASES[case_id] != "betabinomial" else []))
    _val, g = dev.value_and_grad(phi)
    fd = np.array([(dev(phi + e) - dev(phi - e)) / 2e-6 for e in np.eye(phi.size) * 1e-6])
    np.testing.assert_allclose(g, fd, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("case_id", ["betabinom_sim", "tweedie_sim"])
def test_agq_loglik_is_the_integral(case_id):
    case, df = load_case(case_id)
    df = df[df.g.isin(df.g.cat.categories[:12])].assign(g=lambda d: d.g.cat.remove_unused_categories())
    m = glmm_nb.glmm(case["formula"], df, family=CASES[case_id], method="agq", nagq=20)
    fam, sd, beta = m.fitted_family, float(m.varcorr().sdcor.iloc[0]), m.fixef.to_numpy()
    y, pw = np.asarray(m.spec.y), np.asarray(m.spec.weights)
    eta0 = np.asarray(m.spec.X) @ beta
    codes = np.asarray(df.g.cat.codes)
    total = 0.0
    for j in range(12):
        s = codes == j

        def f(b):
            mu = fam.link.inverse(eta0[s] + b)
            return np.exp(np.sum(fam.loglik_obs(y[s], mu, pw[s]))) * stats.norm.pdf(b, 0, sd)

        total += np.log(integrate.quad(f, -8 * sd, 8 * sd, epsabs=0, epsrel=1e-11, limit=200)[0])
    assert abs(m.loglik - total) < 1e-5, (m.loglik, total)


# ---------------------------------------------------------------------------- downstream
def test_intervals_of_the_shape_parameters(fits):
    case, df, m = fits["tweedie_sim"]
    w = m.confint("wald")
    p = m.dispersion["power"]
    assert 1 < w.loc["power", "conf_low"] < p < w.loc["power", "conf_high"] < 2
    prof = glmm_nb.inference.profile.profile_confint(m, parm=["power", "phi"])
    for name, par in (("power", "logit(power-1)"), ("phi", "log(phi)")):
        lo, hi = prof.loc[name]
        assert lo < m.dispersion[name] < hi
        fam = m.request.family
        k = list(m.dispersion.index).index(name)
        for v in (lo, hi):  # the LR statistic at each limit is the chi-square cut-off
            held = m.refit(fixed={par: fam.from_dispersion(v, k)})
            assert 2 * (m.loglik - held.loglik) == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-3)


OWN = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_wave3_own.json").read_text())


def _own_data(key):
    d = pd.read_csv(FIXTURES / "data" / {"cbpp_betabinomial": "cbpp.csv", "sleepstudy_t": "sleepstudy.csv",
                                         "tsim_t_df4": "tsim.csv", "owls_tweedie": "owls.csv"}[key])
    if key == "cbpp_betabinomial":
        d["herd"] = d.herd.astype(str)
        d["period"] = pd.Categorical(d.period.astype(str), categories=["1", "2", "3", "4"])
    if key == "sleepstudy_t":
        d["Subject"] = d.Subject.astype(str)
    if key == "owls_tweedie":
        d["Nest"] = pd.Categorical(d.Nest, categories=OWN[key]["nest_levels"])
        d["FoodTreatment"] = pd.Categorical(d.FoodTreatment, categories=OWN[key]["food_levels"])
    return d


OWN_FITS = {"cbpp_betabinomial": ("betabinomial", {}), "sleepstudy_t": ("t", {}),
            "tsim_t_df4": ("t", {"fixed": {"log(df)": np.log(4.0)}}), "owls_tweedie": ("tweedie", {})}


@pytest.mark.filterwarnings("ignore::glmm_nb.SingularFitWarning")  # cbpp: herd variance 0, as glmmTMB's 2e-8
@pytest.mark.parametrize("key", list(OWN_FITS))
def test_matches_own_glmmtmb_fits(key):
    """Real data (cbpp, sleepstudy with a random slope, Owls) and a t model with df held at 4."""
    ref, (fam, kw) = OWN[key], OWN_FITS[key]
    d = _own_data(key)
    m = glmm_nb.glmm(ref["formula"], d, family=fam, **kw)
    # measured: log-likelihoods within 4e-8; estimates within 3e-4 of an SE; SEs within 6e-5 relative
    assert abs(m.loglik - ref["loglik"]) < 1e-6, (m.loglik, ref["loglik"])
    assert m.npar == ref["df"]  # a held parameter is not counted, as glmmTMB's map=
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    ref_se = np.array(list(ref["se"].values()))
    assert np.all(np.abs(m.fixef.to_numpy() - list(ref["fixef"].values())) < 2e-3 * ref_se), key
    np.testing.assert_allclose(se, ref_se, rtol=5e-4)
    np.testing.assert_allclose(m.dispersion.iloc[0], ref["sigma"], rtol=2e-5)
    for k, v in (ref["family_params"] or {}).items():
        name = {"Student-t df": "df", "Tweedie power": "power"}[k]
        np.testing.assert_allclose(m.dispersion[name], v, rtol=2e-5)
    for cov, (label, ours) in zip(ref["cov"], m.covariance_matrices().items()):
        np.testing.assert_allclose(ours.to_numpy(), cov["matrix"], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(m.fitted().to_numpy()[:6], ref["response_head"], rtol=1e-5)
    r = m.residuals("pearson").to_numpy()[:6]
    resp = (m.spec.y[:6] - m.fitted().to_numpy()[:6])
    fam_hat = m.fitted_family
    if fam == "tweedie":
        np.testing.assert_allclose(r, ref["pearson_head"], rtol=1e-6)
    elif fam == "betabinomial":
        # glmmTMB 1.1.5 divides by the binomial variance (no overdispersion factor); ours by the
        # beta-binomial one, so they differ by exactly sqrt(1 + (n - 1)/(phi + 1))
        n = d["size"].to_numpy()[:6]
        np.testing.assert_allclose(r * np.sqrt(1 + (n - 1) / (fam_hat.dispersion + 1)), ref["pearson_head"],
                                   rtol=1e-6)
        lo, hi = np.log(ref["confint_wald_sigma"])  # glmmTMB's Wald interval of phi (stored as exp)
        np.testing.assert_allclose(m.confint("wald").loc["phi"].to_numpy(), [lo, hi], rtol=2e-5)
    else:
        # glmmTMB 1.1.5 divides a t residual by sqrt(sigma); ours by the t's SD sigma sqrt(df/(df - 2))
        nu = fam_hat.shape
        np.testing.assert_allclose(r, resp / (fam_hat.dispersion * np.sqrt(nu / (nu - 2))), rtol=1e-12)
        np.testing.assert_allclose(resp / np.sqrt(fam_hat.dispersion), ref["pearson_head"], rtol=1e-4)


def test_paper_table_has_the_dispersion_model_and_family_parameters():
    case, df = load_case("disp_gauss")
    m = glmm_nb.glmm(case["formula"], df, family="gaussian", dispformula="~ h", reml=False)
    tcase, tdf = load_case("t_sim")
    t = glmm_nb.glmm(tcase["formula"], tdf, family="t")
    tab = glmm_nb.table([m, t], labels=["heteroscedastic", "t"], show="se")
    disp = tab.sections == "Dispersion model (log scale)"
    assert list(tab.frame.index[disp]) == ["disp: (Intercept)", "disp: h[T.lo]"]
    est, se = tab.frame.loc["disp: h[T.lo]", "heteroscedastic"].replace("(", "").replace(")", "").split()
    ct = m.coef_table(part="disp").loc["h[T.lo]"]
    assert abs(float(est) - ct.estimate) <= 5e-5 and abs(float(se) - ct.std_error) <= 5e-5
    assert tab.frame.loc["df", "t"] != "" and tab.frame.loc["df", "heteroscedastic"] == ""


def test_t_with_the_degrees_of_freedom_held():
    case, df = load_case("t_sim")
    m = glmm_nb.glmm(case["formula"], df, family="t", fixed={"log(df)": np.log(4.0)})
    assert m.dispersion["df"] == pytest.approx(4.0, rel=1e-12)
    assert np.isnan(m.dispersion.attrs["std_error_log"][1])
    full = glmm_nb.glmm(case["formula"], df, family="t")
    assert full.loglik > m.loglik
    assert m.npar == full.npar - 1
    # with df held enormous the t model is the gaussian: the ML LMM's optimum (an exact profiled fit)
    big = glmm_nb.glmm(case["formula"], df, family="t", fixed={"log(df)": np.log(1e8)})
    ml = glmm_nb.glmm(case["formula"], df, family="gaussian", reml=False)
    assert big.loglik == pytest.approx(ml.loglik, abs=1e-5)
    assert big.dispersion["sigma"] == pytest.approx(ml.sigma, rel=1e-5)
    row = glmm_nb.anova(full, m).iloc[1]
    assert row.df == 1 and row.chisq == pytest.approx(2 * (full.loglik - m.loglik))


def test_binomial_is_betabinomial_on_its_boundary(fits):
    case, df, bb = fits["betabinom_sim"]
    b = bb.refit(family="binomial")
    # what the overdispersion advice may offer: beta-binomial for trials, nothing for 0/1 data
    assert b.request.family.overdispersed_alternative_for(b.spec) == "betabinomial"
    b01 = glmm_nb.glmm("y ~ x + (1 | g)", df.assign(y=(df.k > df.n / 2).astype(float)), family="binomial")
    assert b01.request.family.overdispersed_alternative_for(b01.spec) is None
    assert bb.request.family.nests(b.request.family)
    row = glmm_nb.anova(bb, b).iloc[1]
    assert row.chisq == pytest.approx(2 * (bb.loglik - b.loglik))
    assert "boundary" in row.test


def test_pearson_residuals_and_simulation_use_the_family_variance(fits):
    case, df, m = fits["betabinom_sim"]
    fam, mu = m.fitted_family, m.fitted().to_numpy()
    n = df.n.to_numpy(dtype=float)
    phi = m.dispersion["phi"]
    v = mu * (1 - mu) * (1 + (n - 1) / (phi + 1)) / n
    np.testing.assert_allclose(m.residuals("pearson"), (df.k / n - mu) / np.sqrt(v), rtol=1e-10)
    sims = m.simulate(4000, seed=1)  # proportions k/n drawn at the conditional modes' means? no: new effects
    assert sims.shape == (len(df), 4000)
    d = fam.draw(np.random.default_rng(2), mu[:3, None], phi, (3, 200_000), n[:3])
    np.testing.assert_allclose(d.var(axis=1) / n[:3] ** 2, v[:3], rtol=0.02)
    case, df, t = fits["tweedie_sim"]
    tf, tmu = t.fitted_family, t.fitted().to_numpy()
    np.testing.assert_allclose(t.residuals("pearson"), (df.y - tmu) / np.sqrt(tf.dispersion * tmu**tf.shape),
                               rtol=1e-10)
    draws = tf.draw(np.random.default_rng(3), tmu[:2, None], tf.dispersion, (2, 200_000))
    np.testing.assert_allclose(draws.mean(axis=1), tmu[:2], rtol=0.01)
    np.testing.assert_allclose(draws.var(axis=1), tf.dispersion * tmu[:2] ** tf.shape, rtol=0.03)
    np.testing.assert_allclose((draws == 0).mean(axis=1),
                               np.exp(-tmu[:2] ** (2 - tf.shape) / (tf.dispersion * (2 - tf.shape))), atol=0.004)


@pytest.mark.filterwarnings("ignore::glmm_nb.DataWarning")  # the binomial-count warning before the error
def test_bad_inputs_name_the_culprit():
    df = pd.DataFrame({"k": [1.0, 2, 0, 3], "n": [4.0, 4, 4, 5], "y01": [0.0, 1, 1, 0], "g": list("aabb")})
    with pytest.raises(DataError, match="one trial per row.*family='binomial'"):
        glmm_nb.glmm("y01 ~ (1 | g)", df, family="betabinomial")
    with pytest.raises(DataError, match="prior weights"):
        glmm_nb.glmm("cbind(k, n - k) ~ (1 | g)", df, family="betabinomial", weights=np.ones(4))
    with pytest.raises(DataError, match=r"non-integer.*1.5 of 4"):
        glmm_nb.glmm("cbind(k, n - k) ~ (1 | g)", df.assign(k=[1.0, 1.5, 0, 3]), family="betabinomial")
    with pytest.raises(DataError, match=r"whole numbers of successes.*1.2"):
        glmm_nb.glmm("p ~ (1 | g)", df.assign(p=[0.3, 0.5, 0.25, 0.6]), family="betabinomial", weights="n")
    with pytest.raises(DataError, match=r"non-negative.*1 row\(s\)"):
        glmm_nb.glmm("y ~ (1 | g)", df.assign(y=[0.0, 1.2, -0.5, 3]), family="tweedie")
    with pytest.raises(DataError, match="constant"):
        glmm_nb.glmm("y ~ (1 | g)", df.assign(y=2.0), family="t")
    with pytest.raises(glmm_nb.ModelError, match="link 'logit'.*tweedie"):
        glmm_nb.glmm("y ~ (1 | g)", df.assign(y=[0.0, 1.2, 0.5, 3]), family="tweedie", link="logit")


# ------------------------------------------------------------------------ zero-truncated counts
TRUNC = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_truncated.json").read_text())


@pytest.mark.parametrize("fam", ["truncated_poisson", "truncated_nbinom2", "truncated_nbinom1"])
def test_truncated_counts_match_glmmtmb(fam):
    d = pd.read_csv(FIXTURES / "data" / "truncsim.csv")
    ref = TRUNC[fam]
    m = glmm_nb.glmm("y ~ x + (1 | g)", d, family=fam)
    # measured: log-likelihoods within 1e-9, estimates within 2e-6, SEs within 7e-6 relative
    assert abs(m.loglik - ref["loglik"]) < 1e-6 and m.npar == ref["df"]
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    np.testing.assert_allclose(m.fixef.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(se, list(ref["se"].values()), rtol=5e-4)
    np.testing.assert_allclose(m.varcorr().vcov.iloc[0], ref["var"], rtol=1e-4)
    if len(m.dispersion):
        np.testing.assert_allclose(m.dispersion.iloc[0], ref["sigma"], rtol=2e-5)
    # the mean of the truncated count (glmmTMB 1.1.5's "response" and "conditional" alike):
    # mu / (1 - f(0)) with mu = exp(link), f(0) from scipy
    np.testing.assert_allclose(m.predict()[:6], ref["response_head"], rtol=2e-5)
    mu = np.exp(m.predict(type="link")[:6])
    th = m.dispersion.iloc[0] if len(m.dispersion) else None
    f0 = {"truncated_poisson": lambda: np.exp(-mu), "truncated_nbinom2": lambda: (th / (th + mu)) ** th,
          "truncated_nbinom1": lambda: (1 + th) ** (-mu / th)}[fam]()
    np.testing.assert_allclose(mu / (1 - f0), ref["response_head"], rtol=2e-5)


def test_truncated_density_gradient_and_pieces():
    from scipy import stats as st

    y = np.array([1.0, 2, 5, 11])
    mu = np.array([0.4, 1.5, 3.0, 9.0])
    f = get_family("truncated_nbinom2").at_dispersion(1.7)
    ref = st.nbinom.logpmf(y, 1.7, 1.7 / (1.7 + mu)) - np.log1p(-st.nbinom.pmf(0, 1.7, 1.7 / (1.7 + mu)))
    np.testing.assert_allclose(f.loglik_obs(y, mu, np.ones(4)), ref, rtol=1e-12)
    tp = get_family("truncated_poisson")
    np.testing.assert_allclose(tp.mean(mu), mu / (1 - np.exp(-mu)), rtol=1e-12)
    # the truncated Poisson's variance: mu (1 + mu) / q - (mu / q)^2, q = 1 - exp(-mu)
    q = 1 - np.exp(-mu)
    np.testing.assert_allclose(tp.response_variance(mu, np.ones(4)), mu * (1 + mu) / q - (mu / q) ** 2, rtol=1e-12)
    d = pd.read_csv(FIXTURES / "data" / "truncsim.csv")
    for fam in ("truncated_poisson", "truncated_nbinom1"):
        dev = make_devfun(make_request("y ~ x + (1 + x | g)", d, family=fam))
        phi = np.array([0.5, 0.1, 0.2, 0.5, 0.3] + ([0.4] if fam != "truncated_poisson" else []))
        _v, g = dev.value_and_grad(phi)
        fd = np.array([(dev(phi + e) - dev(phi - e)) / 2e-6 for e in np.eye(phi.size) * 1e-6])
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=2e-4)
    with pytest.raises(DataError, match="2 zero.*hurdle"):
        glmm_nb.glmm("y ~ x + (1 | g)", d.assign(y=np.r_[0, 0, d.y[2:]]), family="truncated_poisson")
    nb = glmm_nb.glmm("y ~ x + (1 | g)", d, family="truncated_nbinom2")
    assert nb.request.family.nests(nb.refit(family="truncated_poisson").request.family)
    # Pearson residuals of the truncated count: (y - E[y]) / sqrt(Var[y]), both of the truncated NB2
    th, mu = nb.dispersion["theta"], np.exp(nb.predict(type="link"))
    q = 1 - (th / (th + mu)) ** th
    ey, ey2 = mu / q, (mu + mu**2 / th + mu**2) / q
    np.testing.assert_allclose(nb.residuals("pearson"), (d.y - ey) / np.sqrt(ey2 - ey**2), rtol=1e-10)


@pytest.mark.parametrize("case_id", ["betabinom_sim", "tweedie_sim"])
def test_dask_fit_equals_in_memory(case_id, fits):
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    case, df, m0 = fits[case_id]
    with dask.config.set(scheduler="synchronous"):
        m = glmm_nb.glmm(case["formula"], dd.from_pandas(df, npartitions=3), family=CASES[case_id],
                         control={"progress": False})
    assert abs(m.loglik - m0.loglik) < 1e-8
    np.testing.assert_allclose(m.dispersion.to_numpy(), m0.dispersion.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(m.confint("wald").loc[list(m.dispersion.index)].to_numpy(),
                               m0.confint("wald").loc[list(m0.dispersion.index)].to_numpy(), rtol=1e-5)
