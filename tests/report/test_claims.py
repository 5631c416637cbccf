"""Every sentence true: the effect claims of the report, compare() and the key findings against
brute-force computations written here (closed forms, Gauss-Hermite with another rule and node
count, a least-squares projection written here), for families x links x {random intercept, random slope} x {no zero
part, zero-inflated, hurdle}; and the texts that used to be fixed prose."""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.polynomial.hermite import hermgauss
from scipy import special, stats

import glmm_nb
from glmm_nb.errors import ModelError
from glmm_nb.marginal import effect_claim
from glmm_nb.optimize import optimizer_message
from tests.conftest import FIXTURES

GH_X, GH_W = hermgauss(120)  # physicists' rule: E f(s Z) = sum w f(sqrt(2) s x) / sqrt(pi)


def _fit(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmm_nb.glmm(formula, df, **kw)


def _text(html):
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _sim(kind, seed=1, G=50, n=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(G), n)
    treat = rng.integers(0, 2, G * n)
    x = rng.normal(size=G * n)
    b0 = rng.normal(0, 0.7, G)[g]
    b1 = rng.normal(0, 0.5, G)[g]
    eta = 0.3 + 0.5 * treat + 0.4 * x + b0 + (b1 * x if "slope" in kind else 0)
    if kind.startswith("binomial"):
        y = rng.binomial(1, special.expit(eta))
    elif kind == "beta":
        mu = special.expit(eta - 0.3)
        y = rng.beta(mu * 12, (1 - mu) * 12)
    elif kind.startswith("gamma"):
        y = rng.gamma(4.0, np.exp(eta) / 4.0)
    else:
        y = rng.poisson(np.exp(eta))
        if "zi" in kind or "hurdle" in kind:
            pi = special.expit(-1.0 + 0.9 * treat)
            y = np.where(rng.random(G * n) < pi, 0, y)
    return pd.DataFrame({"y": y, "treat": treat, "x": x, "g": [f"g{i}" for i in g]})


# (label, formula, glmm kwargs, simulation kind)
CASES = [
    ("binomial logit, intercept", "y ~ treat + x + (1 | g)", {"family": "binomial"}, "binomial"),
    ("binomial probit, intercept", "y ~ treat + x + (1 | g)", {"family": "binomial", "link": "probit"}, "binomial"),
    ("binomial logit, slope", "y ~ treat + x + (1 + x | g)", {"family": "binomial"}, "binomial slope"),
    ("poisson log, intercept", "y ~ treat + x + (1 | g)", {"family": "poisson"}, "poisson"),
    ("poisson log, slope", "y ~ treat + x + (1 + x | g)", {"family": "poisson"}, "poisson slope"),
    ("nbinom2 log, intercept", "y ~ treat + x + (1 | g)", {"family": "negative_binomial"}, "poisson"),
    ("gamma log, intercept", "y ~ treat + x + (1 | g)", {"family": "gamma", "link": "log"}, "gamma"),
    ("zip, treat in the zero part", "y ~ treat + x + (1 | g)", {"family": "poisson", "ziformula": "~ treat"}, "zi"),
    ("hurdle poisson", "y ~ treat + x + (1 | g)", {"family": "poisson", "ziformula": "~ treat", "hurdle": True},
     "hurdle"),
    ("binomial cloglog, intercept", "y ~ treat + x + (1 | g)", {"family": "binomial", "link": "cloglog"}, "binomial"),
    ("nbinom1 log, slope", "y ~ treat + x + (1 + x | g)", {"family": "nbinom1"}, "poisson slope"),
    ("zinb2, treat in the zero part", "y ~ treat + x + (1 | g)", {"family": "negative_binomial", "ziformula": "~ treat"},
     "zi"),
    ("beta logit, intercept", "y ~ treat + x + (1 | g)", {"family": "beta"}, "beta"),
]


def _brute_means(m, df, var, shift):
    """Typical-cluster and population-averaged means under the two scenarios, from the fitted
    parameters alone: eta = X beta by hand, var(z'b) from the covariance matrix, the zero part
    by hand, the expectation over b by a 120-node physicists' Gauss-Hermite rule."""
    beta = m.fixef
    S = m.covariance_matrices()["g"].to_numpy()
    link = m.link
    zero = m.zi_fixef

    def scen(d):
        eta = beta["(Intercept)"] + beta["treat"] * d.treat.to_numpy() + beta["x"] * d.x.to_numpy()
        z = np.column_stack([np.ones(len(d)), d.x.to_numpy()])[:, :S.shape[0]]
        v = np.einsum("na,ab,nb->n", z, S, z)
        nodes = eta[:, None] + np.sqrt(2 * v)[:, None] * GH_X[None, :]
        inv = {"logit": special.expit, "probit": stats.norm.cdf, "log": np.exp, "cloglog": _cloglog_inv}[link]
        mu_nodes, mu0 = inv(nodes), inv(eta)
        if len(zero):
            pi = special.expit(zero["(Intercept)"] + zero.get("treat", 0.0) * d.treat.to_numpy())
            if m.request.family.hurdle:
                f = lambda mu, p: (1 - p) * mu / (1 - np.exp(-mu))  # noqa: E731 (zero-truncated Poisson)
            else:
                f = lambda mu, p: (1 - p) * mu  # noqa: E731
            mu_nodes, mu0 = f(mu_nodes, pi[:, None]), f(mu0, pi)
        pop = (mu_nodes @ GH_W) / np.sqrt(np.pi)
        return float(mu0.mean()), float(pop.mean())

    d0, d1 = df.copy(), df.copy()
    if var == "treat":
        d0["treat"], d1["treat"] = 0, 1
    else:
        d1[var] = d1[var] + shift
    return scen(d0), scen(d1)


def _cloglog_inv(eta):
    return -np.expm1(-np.exp(eta))


def _cloglog(p):
    return np.log(-np.log1p(-p))


def _effect(link, a, b):
    if link == "logit":
        return (b / (1 - b)) / (a / (1 - a))
    if link == "log":
        return b / a
    g = {"probit": stats.norm.ppf, "cloglog": _cloglog}[link]
    return g(b) - g(a)


@pytest.fixture(scope="module")
def fitted():
    return {label: (_fit(f, _sim(kind), **kw), _sim(kind)) for label, f, kw, kind in CASES}


@pytest.mark.parametrize("label", [c[0] for c in CASES])
@pytest.mark.parametrize("var", ["treat", "x"])
def test_claim_numbers_and_direction_words(fitted, label, var):
    m, df = fitted[label]
    c = effect_claim(m, var)
    (t0, p0), (t1, p1) = _brute_means(m, df, var, 1.0)
    pa = _effect(m.link, p0, p1)
    assert c.population == pytest.approx(pa, rel=1e-7, abs=1e-9)
    # the conditional number: the coefficient's own effect, or the typical cluster's contrast
    if c.conditional_from == "coefficient":
        b = m.fixef[var]
        assert c.conditional == pytest.approx(np.exp(b) if m.link in ("log", "logit") else b, rel=1e-12)
        assert not len(m.zi_fixef) or var not in m.zi_fixef.index
    else:
        assert c.conditional == pytest.approx(_effect(m.link, t0, t1), rel=1e-7)
    # the direction word from the two printed numbers, recomputed here
    ratio = m.link in ("log", "logit")
    lc = np.log(c.conditional) if ratio else c.conditional
    lp = np.log(pa) if ratio else pa
    r = lp / lc
    expected = "opposite" if r < 0 else "same" if abs(r - 1) < 5e-4 else "closer" if r < 1 else "farther"
    sentence = c.population_sentence()
    assert f"{c.population:.4g}" in sentence
    word = {"closer": "closer to no effect", "farther": "farther from no effect", "same": "the same as",
            "opposite": "opposite direction"}[expected]
    assert word in sentence, (label, var, r, sentence)
    if expected in ("closer", "farther"):
        assert f"{abs(1 - r) * 100:.1f} %" in sentence
    if len(m.zi_fixef):
        assert "zero part included" in sentence


def test_log_link_random_slope_is_farther_not_closer(fitted):
    """Issue 23 item 3: with a random slope on x under a log link the population-averaged rate
    ratio is farther from 1 than exp(beta): closed form E exp(eta + z'b) = exp(eta + z'Sz/2)."""
    m, df = fitted["poisson log, slope"]
    S = m.covariance_matrices()["g"].to_numpy()
    b = m.fixef
    x, t = df.x.to_numpy(), df.treat.to_numpy()

    def pop(xx):
        v = S[0, 0] + 2 * S[0, 1] * xx + S[1, 1] * xx**2
        return np.mean(np.exp(b["(Intercept)"] + b["treat"] * t + b["x"] * xx + v / 2))

    closed = pop(x + 1) / pop(x)
    c = effect_claim(m, "x")
    assert c.population == pytest.approx(closed, rel=1e-8)
    assert closed > np.exp(b["x"]) > 1
    assert c.direction[0] == "farther"
    me = m.marginal_effects("x", nsim=20)
    assert me.loc["marginal", "ratio"] == pytest.approx(closed, rel=1e-8)  # the same computation


def test_zero_inflated_population_effect_includes_zero_part(fitted):
    """Issue 23 item 1: (1 - pi1)/(1 - pi0) e^beta for a ZIP random intercept, in compare() too."""
    m, df = fitted["zip, treat in the zero part"]
    pi0, pi1 = special.expit(m.zi_fixef["(Intercept)"]), special.expit(m.zi_fixef.sum())
    closed = (1 - pi1) / (1 - pi0) * np.exp(m.fixef["treat"])
    c = effect_claim(m, "treat")
    assert c.population == pytest.approx(closed, rel=1e-8)
    assert c.count_part == pytest.approx(np.exp(m.fixef["treat"]), rel=1e-12)
    assert abs(c.population - c.count_part) > 0.05  # the zero part matters here
    cmp = m.compare()
    # log of the population-averaged mean is exactly linear in treat and x's shift does not touch pi:
    # the marginal coefficient of treat is the log of the mean ratio averaged over x
    assert np.exp(cmp.loc["treat", "marginal"]) == pytest.approx(closed, rel=2e-3)
    assert np.exp(cmp.loc["treat", "marginal"]) != pytest.approx(np.exp(m.fixef["treat"]), rel=1e-2)


def test_zero_part_is_in_the_percentile_curves(fitted):
    """Issue 23 item 2: a cluster at the 75th percentile, ZIP: (1 - pi) exp(eta + z_.75 sigma)."""
    from glmm_nb.report.sections import marginal_section

    m, df = fitted["zip, treat in the zero part"]
    out = marginal_section(m, "treat")
    cur = out["curves"]
    row = cur[(cur.curve == "cluster at 75th percentile") & (cur.x == 0)].iloc[0]
    sigma = np.sqrt(m.covariance_matrices()["g"].iloc[0, 0])
    x_held = out["focus"].held["x"][0]
    eta = m.fixef["(Intercept)"] + m.fixef["x"] * x_held + stats.norm.ppf(0.75) * sigma
    assert row.value == pytest.approx((1 - special.expit(m.zi_fixef["(Intercept)"])) * np.exp(eta), rel=1e-10)


def test_section4_note_is_generated(fitted):
    """Issue 23 item 4: log link + random intercept: slopes unchanged, the intercept grows by sigma^2/2."""
    from glmm_nb.report.sections import marginal_section

    m, _ = fitted["poisson log, intercept"]
    cmp = m.compare()
    s2 = m.covariance_matrices()["g"].iloc[0, 0]
    assert cmp.loc["(Intercept)", "marginal"] - cmp.loc["(Intercept)", "conditional"] == pytest.approx(s2 / 2, rel=1e-6)
    assert cmp.loc["x", "attenuation"] == pytest.approx(1.0, abs=1e-8)
    out = marginal_section(m, "treat")
    assert "slopes are unchanged" in out["note"] and "shrink" not in out["note"]
    assert "unchanged: treat, x" in out["attenuation"]
    m2, _ = fitted["poisson log, slope"]
    out2 = marginal_section(m2, "x")
    att = m2.compare().loc["x", "attenuation"]  # with a random slope it depends on the slope's correlation
    assert abs(att - 1) > 1e-3
    word = "away from zero" if att > 1 else "towards zero"
    assert re.search(rf"{word}: [^;.]*\bx\b", out2["attenuation"]), out2["attenuation"]
    assert "random slopes" in out2["note"] and "towards or away" in out2["note"]
    m3, _ = fitted["binomial logit, intercept"]
    out3 = marginal_section(m3, "treat")
    assert "towards zero: treat, x" in out3["attenuation"]


def test_gamma_inverse_population_mean_is_refused():
    """Issue 23 item 9: E_b[1/(eta + b)] does not exist: predict, compare and the report say so."""
    df = _sim("gamma", seed=4)
    m = _fit("y ~ treat + x + (1 | g)", df, family="gamma", link="inverse")
    with pytest.raises(ModelError, match="does not exist for the inverse link"):
        m.predict(re="marginal")
    with pytest.raises(ModelError, match="inverse link"):
        m.compare()
    c = effect_claim(m, "treat")
    assert c.population is None and "not defined" in c.population_sentence()
    page = _text(m.report(diagnostics_nsim=20).html)
    assert "does not exist for the inverse link" in page
    assert "population-averaged" not in re.sub(r"Not computed:.*", "", page.split("4. Conditional vs marginal")[1]
                                               .split("5. Diagnostics")[0]).split("Population-averaged: not defined")[0] \
        or "Population-averaged: not defined" in page


def test_summary_prints_minus_two_loglik_as_lme4():
    """Issue 23 item 10: lme4's summary of cbpp prints deviance 184.1 (-2 logLik)."""
    cbpp = glmm_nb.datasets.load("cbpp")
    m = _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    line = m.summary().split("df.resid")[1].splitlines()[1].split()
    assert line[:4] == ["194.1", "204.2", "-92.0", "184.1"]
    assert m.deviance == pytest.approx(73.4743, abs=5e-3)  # deviance(m), the conditional deviance, unchanged


def test_optimizer_message_never_cut_off():
    assert "line search" in optimizer_message("ABNORMAL: ")
    assert "line search" in optimizer_message(b"ABNORMAL_TERMINATION_IN_LNSRCH")
    assert optimizer_message("CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL").startswith("CONVERGENCE")


# ------------------------------------------------------------------ key findings, flags, held values
def _salamanders():
    sal = pd.read_csv(FIXTURES / "data" / "salamanders.csv")
    sal["spp"] = pd.Categorical(sal.spp, categories=["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
    sal["mined"] = pd.Categorical(sal.mined, categories=["yes", "no"])
    return sal


def test_interactions_in_key_findings_and_ties_not_called_most_common():
    """Issue 23 items 6 and 8 (Salamanders, spp * mined: every species has 92 rows)."""
    from glmm_nb.report.focal import choose_focus

    sal = _salamanders()
    m = _fit("count ~ spp * mined + (1 | site)", sal, family="poisson")
    f = choose_focus(m, "mined")
    assert f.panel_var == "spp" and list(f.panel_values) == ["GP", "DM", "EC-L", "DF"]  # 4 of 7, first to last
    assert "4 of its 7 values" in f.held_text and "most common" not in f.held_text
    m2 = _fit("count ~ spp + mined + cover + (1 | site)", sal, family="poisson")
    f2 = choose_focus(m2, "cover")
    assert f2.held["spp"] == ("GP", "reference level; all 7 levels equally common")
    page = m.report(diagnostics_nsim=20, focus="spp")
    ctx_text = _text(page.findings_html)
    assert "spp PR (vs GP) also enters spp PR × mined no (interaction)" in ctx_text
    assert "spp DF × mined no (interaction)" in ctx_text
    assert "spp[T." not in ctx_text
    assert "Effect curves of spp, with mined = yes, no (each of its values; spp interacts with it: one panel each)" \
        in _text(page.html)


def test_treatment_by_time_curves_are_panelled():
    rng = np.random.default_rng(3)
    P, V = 60, 6
    pid = np.repeat(np.arange(P), V)
    visit = np.tile(np.arange(V), P)
    treat = pid % 2
    eta = -0.3 + 0.6 * treat - 0.1 * visit - 0.35 * treat * visit + rng.normal(0, 0.7, P)[pid]
    df = pd.DataFrame({"y": rng.binomial(1, special.expit(eta)), "treat": treat, "visit": visit,
                       "pid": pid.astype(str)})
    m = _fit("y ~ treat * visit + (1 | pid)", df, family="binomial")
    from glmm_nb.report.sections import marginal_section

    out = marginal_section(m, None)
    assert out["focus"].var == "treat" and out["focus"].panel_var == "visit"
    cur = out["curves"]
    assert sorted(cur["at"].unique()) == [f"visit = {v}" for v in range(6)]
    typ = cur[cur.curve == "typical cluster (random effects 0)"].set_index(["at", "x"]).value
    b = m.fixef
    for v in (0, 5):
        conditional = (b["treat"] + b["treat:visit"] * v)
        lo, hi = typ[(f"visit = {v}", 0)], typ[(f"visit = {v}", 1)]
        assert np.log(hi / (1 - hi)) - np.log(lo / (1 - lo)) == pytest.approx(conditional, rel=1e-9)
    # one flag for one fact; randomized= turns it into a note
    c = m.causal_checks()
    on = c.flags[c.flags.applies]
    assert list(on.index) == ["cluster-level covariate"] and "treat" in on.loc["cluster-level covariate", "detail"]
    c2 = m.causal_checks(randomized=["treat"])
    assert not c2.flags.applies.any() and "randomized (as stated)" in c2.notes[0]
    with pytest.raises(ModelError, match="randomized="):
        m.causal_checks(randomized=["nope"])


def test_mundlak_flag_is_calibrated_on_unconfounded_data():
    """40 unconfounded data sets (x varies within and between clusters, the random intercept is
    independent of it): the within != between flag fires at most at about the nominal 5 %."""
    fired = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        J, n = 30, 6
        g = np.repeat(np.arange(J), n)
        x = rng.normal(size=J)[g] + rng.normal(size=J * n)
        y = 1 + 0.5 * x + rng.normal(0, 0.8, J)[g] + rng.normal(size=J * n)
        m = _fit("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)}), family="gaussian")
        fired += bool(m.causal_checks().flags.loc["within ≠ between", "applies"])
    assert fired <= 4  # binomial(40, 0.05): P(X > 4) = 0.05


# ------------------------------------------------------------------ advice by refitting
@pytest.mark.parametrize("data", ["grouseticks", "salamanders"])
def test_family_advice_from_refits(data):
    """Issue 23 item 5: grouseticks (dispersion test p = 0.5, NB2 wins by 196 AIC) and Salamanders
    (the old advice was ZIP; NB1 wins): log-likelihoods of every refit against glmmTMB 1.1.5."""
    ref = json.loads((FIXTURES / "advice" / "family_alternatives.json").read_text())[data]
    if data == "grouseticks":
        df = pd.read_csv(FIXTURES / "data" / "grouseticks.csv")
        for c in ("YEAR", "BROOD", "LOCATION"):
            df[c] = df[c].astype(str).astype("category")
    else:
        df = _salamanders()
    m = _fit(ref["formula"], df, family="poisson")
    d = m.diagnose(nsim=50)
    tab = d.alternatives.table
    for label, ll in ref["loglik"].items():
        if tab.loc[label, "converged"]:
            assert tab.loc[label, "loglik"] == pytest.approx(ll, abs=2e-3), label
        assert tab.loc[label, "aic"] >= ref["aic"][label] - 2e-3  # never below the reference optimum
    best = min(ref["aic"], key=ref["aic"].get)
    assert d.alternatives.best == best
    gap = ref["aic"]["Poisson"] - ref["aic"][best]
    assert f"AIC lower by {gap:.1f}" in d.alternatives.advice
    assert any(x.startswith("Family: the " + best) for x in d.messages)
    assert not any("ziformula" in x for x in d.messages)
    lrt = tab.loc[best]
    assert lrt.chisq == pytest.approx(2 * (ref["loglik"][best] - ref["loglik"]["Poisson"]), abs=5e-3)
    assert lrt.p_value == pytest.approx(0.5 * stats.chi2.sf(lrt.chisq, 1), rel=1e-9)
    page = _text(m.report(diagnostics_nsim=20).findings_html)
    assert f"Family: the {best} refit fits better than the Poisson model (AIC lower by {gap:.1f}" in page


def test_anova_across_families_that_nest():
    """Poisson ⊂ ZIP (zero probability on its boundary), NB2 ⊂ ZINB2 with a zero part with covariates."""
    ref = json.loads((FIXTURES / "advice" / "family_alternatives.json").read_text())["salamanders"]
    sal = _salamanders()
    p = _fit(ref["formula"], sal, family="poisson")
    z = _fit(ref["formula"], sal, family="poisson", ziformula="~ 1")
    a = glmm_nb.anova(p, z)
    chisq = 2 * (ref["loglik"]["zero-inflated Poisson"] - ref["loglik"]["Poisson"])
    assert a.chisq.iloc[1] == pytest.approx(chisq, abs=5e-3)
    assert a.p_value_boundary.iloc[1] == pytest.approx(0.5 * stats.chi2.sf(a.chisq.iloc[1], 1), rel=1e-9)
    assert "structural-zero probability at 0" in a.test.iloc[1]
    nb = _fit(ref["formula"], sal, family="negative_binomial")
    zinb = _fit(ref["formula"], sal, family="negative_binomial", ziformula="~ mined")
    b = glmm_nb.anova(nb, zinb)
    ref2 = ref["anova_nb2_zinb_mined"]
    assert zinb.converged and zinb.loglik == pytest.approx(ref2["loglik_zinb"], abs=2e-3)  # was 0.047 short
    assert b.chisq.iloc[1] == pytest.approx(ref2["chisq"], abs=5e-3)
    assert b.df.iloc[1] == 2 and "irregular" in b.test.iloc[1]
    with pytest.raises(ModelError, match="neither is the other at a boundary"):
        glmm_nb.anova(_fit(ref["formula"], sal, family="nbinom1"), zinb)


def _brute_marginal_coefs(m, df):
    """beta_M = (X'X)^-1 X' g(mu_M), mu_M by the 120-node rule (zero part included), X by hand."""
    beta, S, zero = m.fixef, m.covariance_matrices()["g"].to_numpy(), m.zi_fixef
    X = np.column_stack([np.ones(len(df)), df.treat.to_numpy(), df.x.to_numpy()])
    eta = X @ beta[["(Intercept)", "treat", "x"]].to_numpy()
    z = X[:, [0, 2]][:, :S.shape[0]]
    v = np.einsum("na,ab,nb->n", z, S, z)
    inv, link = {"logit": (special.expit, special.logit), "probit": (stats.norm.cdf, stats.norm.ppf),
                 "log": (np.exp, np.log), "cloglog": (_cloglog_inv, _cloglog)}[m.link]
    mu = inv(eta[:, None] + np.sqrt(2 * v)[:, None] * GH_X[None, :])
    if len(zero):
        pi = special.expit(zero["(Intercept)"] + zero["treat"] * df.treat.to_numpy())[:, None]
        mu = (1 - pi) * mu / (1 - np.exp(-mu)) if m.request.family.hurdle else (1 - pi) * mu
    mu_m = (mu @ GH_W) / np.sqrt(np.pi)
    return pd.Series(np.linalg.lstsq(X, link(mu_m), rcond=None)[0], index=["(Intercept)", "treat", "x"])


@pytest.mark.parametrize("label", [c[0] for c in CASES])
def test_report_text_matches_brute_force(fitted, label):
    """The property test of the report: every number of the key findings' focal line and of
    section 4 recomputed by brute force, every direction word checked against it."""
    m, df = fitted[label]
    raw = " ".join(m.report(diagnostics_nsim=10, focus="treat", svg_fallback=False).html.split())
    box = _text(raw[raw.index('id="findings"'):raw.index('id="model"')])
    html = _text(raw)
    start = html.index("4. Conditional vs marginal", html.index("3. Random-effect structure"))
    sec4 = html[start:html.index("5. Diagnostics", start)]
    # section 4's table: marginal coefficients (zero part included) against the brute force
    bm = _brute_marginal_coefs(m, df)
    cmp = m.compare()
    for term in bm.index:
        assert cmp.loc[term, "marginal"] == pytest.approx(bm[term], rel=1e-6, abs=1e-8), term
    # the note's direction words, per term, from the brute-force attenuation
    for term in ("treat", "x"):
        a = bm[term] / m.fixef[term]
        word = "unchanged" if abs(a - 1) < 5e-4 else "towards zero" if 0 < a < 1 else "away from zero" \
            if a > 1 else "reversed in sign"
        assert re.search(rf"{word}: [^;.]*\b{term}\b", sec4), (label, term, a)
    if not (m.link in ("logit", "probit") and len(m.spec.terms[0].col_names) == 1):
        assert "shrink" not in sec4 and "flattens" not in sec4
    # the focal claim: the population-averaged number in the box and in section 4, with its direction
    (t0, p0), (t1, p1) = _brute_means(m, df, "treat", 1.0)
    pa = _effect(m.link, p0, p1)
    shown = f"{pa:.4g}"
    assert f"by {shown}" in box and f"by {shown}" in sec4
    cond = np.exp(m.fixef["treat"]) if m.link in ("log", "logit") else m.fixef["treat"]
    if len(m.zi_fixef):
        cond = _effect(m.link, t0, t1)  # treat is in the zero part: the typical cluster's mean ratio
        assert "zero part included" in box and "zero part included" in sec4
    ratio = m.link in ("log", "logit")
    r = (np.log(pa) / np.log(cond)) if ratio else pa / cond
    expected = "the same as" if abs(r - 1) < 5e-4 else "closer to no effect" if 0 < r < 1 \
        else "farther from no effect" if r > 1 else "opposite direction"
    assert expected in box and expected in sec4, (label, r)


def test_ordinal_sentences_name_the_factor_step_and_compute_the_direction():
    """Issue 23 item 11: a factor's cumulative odds ratio is for its level against the reference,
    not "for one unit more"; the direction word comes from the two numbers (probit too)."""
    from glmm_nb.report.ordinal import ordinal_section

    wine = glmm_nb.datasets.load("wine")
    for link in ("logit", "probit"):
        o = _fit("rating ~ temp + contact + (1 | judge)", wine, family="ordinal", link=link)
        sec = ordinal_section(o, None)
        text = " ".join(sec["meaning"] + sec["marginal_sentences"])
        assert "one unit more" not in text and "shrink" not in text
        tab = o.compare()
        r = tab.loc["temp[T.warm]"]
        a = r.marginal / r.conditional
        assert 0 < a < 1  # a random intercept flattens a cumulative logit/probit model
        assert f"{(1 - a) * 100:.1f} % closer to no effect" in text
        if link == "logit":
            assert f"{np.exp(o.fixef['temp[T.warm]']):.3g} times as high (cumulative odds ratio) for temp = warm " \
                   "rather than cold, within a cluster" in text


def test_binomial_trials_advice_offers_olre_and_beta_binomial():
    """cbpp: the observation-level random effect and the beta-binomial refits against glmmTMB 1.1.5."""
    ref = json.loads((FIXTURES / "advice" / "family_alternatives.json").read_text())["cbpp"]
    m = _fit(ref["formula"], glmm_nb.datasets.load("cbpp"), family="binomial")
    a = m.diagnose(nsim=20).alternatives
    for label, ll in ref["loglik"].items():
        assert a.table.loc[label, "loglik"] == pytest.approx(ll, abs=2e-3), label
    assert a.best == "binomial + observation-level RE"
    bb = a.table.loc["beta-binomial"]
    assert bb.p_value == pytest.approx(0.5 * stats.chi2.sf(2 * (ref["loglik"]["beta-binomial"] - ref["loglik"]["binomial"]),
                                                           1), rel=2e-3)
    gap = 2 * (ref["loglik"]["binomial + observation-level RE"] - ref["loglik"]["beta-binomial"])  # same npar
    assert 0 < gap < 2 and "(beta-binomial is within 2 AIC of it: the data barely separate them)" in a.advice


def test_gaussian_advice_offers_a_dispersion_model():
    """A residual SD of 0.5 in one group and 1.5 in the other: the dispersion model wins by 186.5 AIC."""
    ref = json.loads((FIXTURES / "advice" / "family_alternatives.json").read_text())["dispsim"]
    df = pd.read_csv(FIXTURES / "data" / "dispsim.csv")
    df["h"] = pd.Categorical(df["h"], categories=["hi", "lo"])
    m = _fit(ref["formula"], df, family="gaussian")  # REML: compared after an ML refit
    a = m.diagnose(nsim=20).alternatives
    for label, ll in ref["loglik"].items():
        assert a.table.loc[label, "loglik"] == pytest.approx(ll, abs=2e-3), label
    gap = ref["aic"]["gaussian (ML)"] - ref["aic"]["gaussian, residual SD by h"]
    assert a.advice.startswith("Residual spread: the gaussian, residual SD by h refit fits better than the gaussian (ML) "
                               f"model (AIC lower by {gap:.1f}")
    assert "dispformula='~ h', reml=False" in a.advice
    chisq = 2 * (ref["loglik"]["gaussian, residual SD by h"] - ref["loglik"]["gaussian (ML)"])
    assert a.table.loc["gaussian, residual SD by h", "p_value"] == pytest.approx(stats.chi2.sf(chisq, 1), rel=1e-2)


def test_anova_binomial_in_beta_binomial_states_the_boundary():
    ref = json.loads((FIXTURES / "advice" / "family_alternatives.json").read_text())["cbpp"]
    cb = glmm_nb.datasets.load("cbpp")
    b = _fit(ref["formula"], cb, family="binomial")
    bb = _fit(ref["formula"], cb, family="betabinomial")
    a = glmm_nb.anova(b, bb)
    chisq = 2 * (ref["loglik"]["beta-binomial"] - ref["loglik"]["binomial"])
    assert a.chisq.iloc[1] == pytest.approx(chisq, abs=5e-3)
    assert a.p_value_boundary.iloc[1] == pytest.approx(0.5 * stats.chi2.sf(a.chisq.iloc[1], 1), rel=1e-9)
    assert "at its binomial limit (phi -> infinity)" in a.test.iloc[1]


def test_report_states_the_dispersion_model_as_factors_of_its_parameter():
    """dispsim: residual SD 1.5 in hi, 0.5 in lo. The report's factor for h[T.lo] is the ratio of the
    fitted residual SDs of the two groups (predict(type='dispersion'), checked against glmmTMB
    elsewhere) and exp(coefficient / 2) on glmmTMB's log sigma^2 scale."""
    from glmm_nb.report.sections import disp_part_section

    df = pd.read_csv(FIXTURES / "data" / "dispsim.csv")
    df["h"] = pd.Categorical(df["h"], categories=["hi", "lo"])
    m = _fit("y ~ x + (1 | g)", df, family="gaussian", dispformula="~ h", reml=False)
    sec = disp_part_section(m)
    row = next(r for r in sec["rows"] if r["term"] == "h[T.lo]")
    sd = pd.Series(m.predict(type="dispersion"), index=df.index)
    ratio = sd[df.h == "lo"].iloc[0] / sd[df.h == "hi"].iloc[0]
    assert row["exp"] == pytest.approx(ratio, rel=1e-10)
    assert row["exp"] == pytest.approx(np.exp(m.disp_fixef["h[T.lo]"] / 2), rel=1e-12)
    assert 0.25 < row["exp"] < 0.45  # the truth is 1/3
    assert f"h[T.lo]: sigma is {row['exp']:.3g} times as large" in " ".join(sec["sentences"])
    assert "— smaller." in " ".join(sec["sentences"])
    page = _text(m.report(diagnostics_nsim=10, svg_fallback=False).html)
    assert "Dispersion model ~ h: log sigma^2" in page


@pytest.mark.parametrize("cid", ["epil_ar1_pois", "exp_pois"])
def test_report_section3_draws_and_states_the_structure(cid):
    """An AR(1) model over epil's visits and a spatial Poisson field: section 3's sentences are read
    off the fitted structure (rho^k at lag k; the distance where exp(-d / range) = 0.5 is
    range * log 2), and its chart draws the correlation against lag or distance."""
    from tests.test_structured import load

    case, d = load(cid)
    m = _fit(case["formula"], d, family=case["family"])
    raw = m.report(diagnostics_nsim=10, svg_fallback=False).html
    page = _text(raw)
    sec3 = page[page.index("3. Random-effect structure", page.index("2. Fixed effects")):page.index("4. Conditional")]
    (term, p), = m.structure_parameters().items()
    if cid == "epil_ar1_pois":
        rho = p["rho"]
        assert f"correlation {rho:.3g} at lag 1, {rho ** 2:.3g} at lag 2, {rho ** 3:.3g} at lag 3" in sec3
        assert "an AR(1) covariance" in sec3 and f"SD {p['sd']:.3g}" in sec3
        assert "against lag (levels apart)" in raw
    else:
        half = p["range"] * np.log(2)
        assert f"the correlation falls to 0.5 at distance {half:.3g}" in sec3
        assert "an exponential spatial covariance" in sec3 and "against distance" in raw
    assert len(re.findall(r"pos\(-?\d", sec3)) <= 1  # one SD row of the table, not a row per position
