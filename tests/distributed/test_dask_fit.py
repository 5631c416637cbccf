"""Dask fits equal the in-memory fits (issue 19): log-likelihood to 1e-8 relative, estimates to
1e-6, on a LocalCluster(processes=False); clusters are split across partitions (the rows are
shuffled first) unless a test says otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import glmm_nb  # noqa: E402
from glmm_nb.datasets import load  # noqa: E402
from glmm_nb.errors import DataError, ModelError  # noqa: E402


def shuffled(df: pd.DataFrame, npartitions: int = 3, seed: int = 1):
    """Rows in random order: every cluster spans several partitions."""
    return dd.from_pandas(df.sample(frac=1, random_state=seed), npartitions=npartitions)


# The in-memory LMM optimum is itself reproducible only to ~1e-6: its optimizer differentiates
# the profiled deviance numerically, so a change in the last bit of the deviance (the Dask sums
# match it to one ulp) moves the end point. Measured: refitting sleepstudy in memory with its
# rows permuted moves theta by up to 1.2e-6 and the SDs by up to 1.1e-6 relative. GLMMs (analytic
# gradients) agree to ~1e-12.
LMM_TOL = 5e-6


def assert_same_fit(m0, m1, est_tol=1e-6):
    """Log-likelihood to 1e-8 relative; estimates to ``est_tol`` (absolute, or relative for
    large ones)."""
    assert abs(m1.loglik - m0.loglik) <= 1e-8 * abs(m0.loglik)
    np.testing.assert_allclose(m1.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=est_tol, atol=est_tol)
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=0, atol=est_tol)
    np.testing.assert_allclose(m1.varcorr().sdcor.to_numpy(), m0.varcorr().sdcor.to_numpy(), rtol=est_tol,
                               atol=est_tol)
    np.testing.assert_allclose(m1.dispersion.to_numpy(), m0.dispersion.to_numpy(), rtol=est_tol)
    np.testing.assert_allclose(np.sqrt(np.diag(m1.vcov)), np.sqrt(np.diag(m0.vcov)), rtol=1e-5)
    assert m1.nobs == m0.nobs and m1.ngroups == m0.ngroups and m1.converged == m0.converged
    assert list(m1.fixef.index) == list(m0.fixef.index)
    for g, r0 in m0.ranef().items():
        r1 = m1.ranef()[g]
        assert list(r1.index) == list(r0.index) and list(r1.columns) == list(r0.columns)
        np.testing.assert_allclose(r1.to_numpy(), r0.to_numpy(), rtol=0, atol=10 * est_tol)


@pytest.fixture(scope="module")
def poisson_slope():
    rng = np.random.default_rng(19)
    J, n = 40, 12
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    b = rng.multivariate_normal([0, 0], [[0.3, 0.05], [0.05, 0.1]], size=J)
    t = rng.uniform(1, 3, size=J * n)
    eta = 0.5 + 0.3 * x + b[g, 0] + b[g, 1] * x + np.log(t)
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "t": t, "logt": np.log(t), "g": g.astype(str)})


def test_logistic_random_intercept_cbind_and_factor(client):
    cbpp = load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    m0 = glmm_nb.glmm(f, cbpp, family="binomial")
    m1 = glmm_nb.glmm(f, shuffled(cbpp), family="binomial")
    assert isinstance(m1, glmm_nb.api.DaskMixedModel)
    assert_same_fit(m0, m1)
    assert abs(m1.deviance - m0.deviance) < 1e-8 * m0.deviance  # lme4's conditional deviance, all rows
    assert "every row" in m1.messages[-1] and "shuffled" in m1.messages[-1]


def test_poisson_random_slope_with_offsets(client, poisson_slope):
    f = "y ~ x + offset(log(t)) + (1 + x | g)"
    m0 = glmm_nb.glmm(f, poisson_slope, family="poisson")
    m1 = glmm_nb.glmm(f, shuffled(poisson_slope, 4), family="poisson")
    assert_same_fit(m0, m1)
    # the same model with offset= a column name
    m2 = glmm_nb.glmm("y ~ x + (1 + x | g)", shuffled(poisson_slope, 2), family="poisson", offset="logt")
    assert_same_fit(m0, m2)


@pytest.fixture(scope="module")
def sleep_fits(client):
    """The in-memory and Dask REML fits of sleepstudy (the Dask one on a sample of 5 clusters)."""
    ss = load("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    m0 = glmm_nb.glmm(f, ss, family="gaussian")
    return m0, glmm_nb.glmm(f, shuffled(ss, 2), family="gaussian", control={"sample_clusters": 5})


def test_gaussian_reml_and_ml_refit(sleep_fits):
    m0, m1 = sleep_fits
    assert_same_fit(m0, m1, LMM_TOL)
    assert abs(m1.sigma - m0.sigma) < LMM_TOL * m0.sigma
    assert "z value" in m1.summary()  # Wald z tests: no small-sample df on Dask data
    ml0, ml1 = m0.refit(reml=False), m1.refit(reml=False)
    assert isinstance(ml1, glmm_nb.api.DaskMixedModel) and ml1.reml is False
    assert_same_fit(ml0, ml1, LMM_TOL)


@pytest.mark.parametrize("family", ["negative_binomial", "gamma", "beta"])
def test_dispersion_families(client, family):
    rng = np.random.default_rng(7)
    J, n = 40, 10
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    b = rng.normal(0, 0.5, J)[g]
    if family == "negative_binomial":
        mu = np.exp(1.0 + 0.4 * x + b)
        y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu))
    elif family == "gamma":
        y = rng.gamma(4.0, np.exp(0.5 + 0.3 * x + b) / 4.0)
    else:
        p = 1 / (1 + np.exp(-(0.2 * x + b)))
        y = np.clip(rng.beta(8 * p, 8 * (1 - p)), 1e-4, 1 - 1e-4)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    m0 = glmm_nb.glmm("y ~ x + (1 | g)", df, family=family)
    m1 = glmm_nb.glmm("y ~ x + (1 | g)", shuffled(df), family=family)
    assert_same_fit(m0, m1)
    assert m1.dispersion.index.tolist() == m0.dispersion.index.tolist()


def test_agq_scalar_and_factor_response(client):
    con = load("contraception")
    con["use_f"] = np.where(con["use"] == 1, "Y", "N")  # a two-level string response
    f = "use_f ~ age + urban + livch + (1 | district)"
    m0 = glmm_nb.glmm(f, con, family="binomial", method="agq", nagq=9)
    m1 = glmm_nb.glmm(f, shuffled(con, 4), family="binomial", method="agq", nagq=9)
    assert m1.nagq == 9 and "Quadrature" in m1.summary()
    assert_same_fit(m0, m1)


def test_agq_vector_random_effect(client, poisson_slope):
    f = "y ~ x + (1 + x | g)"
    m0 = glmm_nb.glmm(f, poisson_slope, family="poisson", method="agq", nagq=3)
    m1 = glmm_nb.glmm(f, shuffled(poisson_slope), family="poisson", method="agq", nagq=3)
    assert_same_fit(m0, m1)


def test_nested_terms(client):
    rng = np.random.default_rng(3)
    a = np.repeat(np.arange(12), 40)
    b = np.tile(np.repeat(np.arange(4), 10), 12)  # b's labels repeat across a: nested by (1 | a/b)
    x = rng.normal(size=a.size)
    eta = 0.5 + 0.4 * x + rng.normal(0, 0.7, 12)[a] + rng.normal(0, 0.5, 48)[a * 4 + b]
    df = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "a": a, "b": b})
    m0 = glmm_nb.glmm("y ~ x + (1 | a/b)", df, family="poisson")
    m1 = glmm_nb.glmm("y ~ x + (1 | a/b)", shuffled(df), family="poisson")
    assert [t.label for t in m1.spec.terms] == ["a:b", "a"] and not m1.singular
    assert_same_fit(m0, m1)


def test_crossed_terms_are_refused_by_name(client):
    ss = load("sleepstudy")
    ss["Day"] = ss["Days"].astype(str)
    with pytest.raises(ModelError, match=r"\(1 \| Subject\) \+ \(1 \| Day\) are crossed.*in memory"):
        glmm_nb.glmm("Reaction ~ 1 + (1 | Subject) + (1 | Day)", shuffled(ss), family="gaussian")
    with pytest.raises(DataError, match="weights= must name a column"):
        glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", shuffled(ss), family="gaussian", weights=np.ones(len(ss)))


def test_predict_ranef_and_sampled_record(client, poisson_slope):
    f = "y ~ x + offset(log(t)) + (1 + x | g)"
    m0 = glmm_nb.glmm(f, poisson_slope, family="poisson")
    ddf = shuffled(poisson_slope)
    m1 = glmm_nb.glmm(f, ddf, family="poisson", control={"sample_clusters": 8, "sample_seed": 5})
    assert_same_fit(m0, m1)  # estimates and ranef() use every row
    info = m1.extras["dask"]
    assert m1.spec.ngroups == {"g": 8} and m1.ngroups == {"g": 40} and m1.nobs == 480
    assert info.sample_clusters == 8 and m1.spec.nobs == 8 * 12
    assert "random sample of 8 of 40 clusters of 'g'" in m1.messages[-1]
    assert len(m1.fitted()) == 96  # the in-memory sample
    fit = m1.predict()  # a Dask Series aligned with the data fitted
    assert isinstance(fit, dd.Series)
    got = fit.compute().sort_index()
    np.testing.assert_allclose(got.to_numpy(), m0.predict(), rtol=1e-6)
    new = poisson_slope.iloc[::7].copy()
    new.loc[new.index[0], "g"] = "a new cluster"
    np.testing.assert_allclose(m1.predict(new), m0.predict(new), rtol=1e-6)
    for re in ("none", "marginal"):
        got = m1.predict(dd.from_pandas(new, npartitions=2), re=re, type="link").compute()
        np.testing.assert_allclose(got.to_numpy(), m0.predict(new, re=re, type="link"), rtol=1e-6)
    with pytest.raises(ModelError, match="Dask fit"):
        m1.confint(method="profile")
    assert m1.confint().shape[0] >= 2
    report = m1.report(diagnostics_nsim=20)  # its data sections on the sample, as it says
    assert "random sample of 8 of 40 clusters" in report.html


def test_whole_clusters_need_no_shuffle_and_constant_partition(client):
    ss = load("sleepstudy")
    subjects = ss["Subject"].cat.categories
    first = ss[ss.Subject == subjects[0]].copy()
    first["Reaction"] = 250.0  # constant within its partition: fine, the response varies overall
    rest = ss[ss.Subject != subjects[0]]
    m0 = glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", pd.concat([first, rest]), family="gaussian")
    ddf = dd.concat([dd.from_pandas(first, npartitions=1), dd.from_pandas(rest, npartitions=1)])
    m1 = glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", ddf, family="gaussian")
    assert not m1.extras["dask"].plan.shuffled
    assert_same_fit(m0, m1, LMM_TOL)
    bad = first.assign(Reaction=250.0)
    with pytest.raises(DataError, match="constant"):
        glmm_nb.glmm("Reaction ~ Days + (1 | Subject)", dd.from_pandas(bad, npartitions=1), family="gaussian")


def test_cluster_column_as_index(client, poisson_slope):
    f = "y ~ x + (1 | g)"
    m0 = glmm_nb.glmm(f, poisson_slope, family="poisson")
    ddf = dd.from_pandas(poisson_slope, npartitions=3).set_index("g")  # sorted by g: clusters whole
    m1 = glmm_nb.glmm(f, ddf, family="poisson")
    assert not m1.extras["dask"].plan.shuffled
    assert_same_fit(m0, m1)
    got = m1.predict().compute()
    np.testing.assert_allclose(np.sort(got.to_numpy()), np.sort(m0.predict()), rtol=1e-6)


def test_parquet_path(client, tmp_path):
    cbpp = load("cbpp")
    path = tmp_path / "cbpp.parquet"
    cbpp.to_parquet(path)
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    m0 = glmm_nb.glmm(f, cbpp, family="binomial")
    m1 = glmm_nb.glmm(f, str(path), family="binomial", engine="dask")
    assert_same_fit(m0, m1)


def test_partition_error_passes_through(client):
    cbpp = load("cbpp")
    bad = cbpp.assign(incidence=cbpp["incidence"].where(cbpp.index != 30, -1))
    with pytest.raises(DataError, match="negative counts"):
        glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", shuffled(bad), family="binomial")


def test_wald_intervals_equal_in_memory(client, sleep_fits, poisson_slope):
    """LMM: the in-memory Wald intervals (curvature of the exact deviance on the sdcor scale).
    GLMM: the delta method from the in-memory fit's full covariance — in memory, confint's
    central differences of PIRLS-based deviance values at h=1e-4 are noise-dominated for the
    correlation here (SE 0.068 there vs 0.183 from the analytic-gradient Hessian)."""
    from glmm_nb.distributed.intervals import sdcor_covariance_glmm

    m0, m1 = sleep_fits
    c0, c1 = m0.confint(method="wald"), m1.confint()
    # in memory an LMM's fixed-effect rows are Satterthwaite t intervals; Dask fits have Wald z
    c0.loc[m0.fixef.index] = m0.coef_table(ddf="asymptotic")[["conf_low", "conf_high"]].to_numpy()
    assert list(c1.index) == list(c0.index)
    np.testing.assert_allclose(c1.to_numpy(), c0.to_numpy(), rtol=2e-4)

    f = "y ~ x + offset(log(t)) + (1 + x | g)"
    m0 = glmm_nb.glmm(f, poisson_slope, family="poisson")
    m1 = glmm_nb.glmm(f, shuffled(poisson_slope), family="poisson", control={"sample_clusters": 5})
    V0 = sdcor_covariance_glmm(m0.spec, m0.theta, m0.extras["vcov_theta_beta"])
    np.testing.assert_allclose(m1.extras["dask"].sdcor_vcov, V0, rtol=1e-4, atol=1e-10)
    c1 = m1.confint(level=0.9)
    np.testing.assert_allclose(c1.loc[m0.fixef.index].to_numpy(),
                               m0.coef_table(0.9)[["conf_low", "conf_high"]].to_numpy(), rtol=1e-5)
    assert c1.loc["sd__(Intercept)|g", "conf_low"] > 0 and c1.loc["cor__(Intercept).x|g", "conf_high"] <= 1


def test_structured_terms_equal_in_memory(client):
    """ar1 Poisson (epil: 59 subjects x 4 visits) and cs binomial (simulated: 60 clusters x 4
    times, cbind): block-diagonal over the clusters of the grouping factor, so the Dask likelihood
    is the same sum over clusters; the shuffled Dask fit equals the in-memory one (log-likelihood
    1e-8 relative, estimates 1e-6), and the structure's parameters are the same."""
    from tests.conftest import FIXTURES

    epil = pd.read_csv(FIXTURES / "data" / "epil.csv")
    epil["periodf"] = "p" + epil["period"].astype(str)
    epil["subject"] = epil["subject"].astype(str)
    epil["trt"] = pd.Categorical(epil["trt"], categories=["placebo", "progabide"])
    f = "y ~ lbase * trt + lage + V4 + ar1(periodf + 0 | subject)"
    m0 = glmm_nb.glmm(f, epil, family="poisson")
    m1 = glmm_nb.glmm(f, shuffled(epil, 4), family="poisson", engine="dask")
    assert_same_fit(m0, m1)
    p0, p1 = m0.structure_parameters()["subject"], m1.structure_parameters()["subject"]
    assert p1["rho"] == pytest.approx(p0["rho"], abs=1e-6) and abs(p0["rho"]) > 0.3

    rng = np.random.default_rng(26)
    J, K = 60, 4
    S = 0.5 * (0.6 * np.ones((K, K)) + 0.4 * np.eye(K))
    b = rng.multivariate_normal(np.zeros(K), S, size=J)
    d = pd.DataFrame({"id": np.repeat([f"c{j:02d}" for j in range(J)], K), "timef": np.tile([f"t{k}" for k in range(K)], J)})
    d["x"] = rng.normal(size=len(d))
    eta = -0.2 + 0.5 * d["x"].to_numpy() + b[np.repeat(np.arange(J), K), np.tile(np.arange(K), J)]
    d["n"] = 8
    d["s"] = rng.binomial(8, 1 / (1 + np.exp(-eta)))
    d["f"] = d["n"] - d["s"]
    f = "cbind(s, f) ~ x + cs(timef + 0 | id)"
    m0 = glmm_nb.glmm(f, d, family="binomial")
    m1 = glmm_nb.glmm(f, shuffled(d, 3), family="binomial", engine="dask")
    assert_same_fit(m0, m1)
    assert m1.structure_parameters()["id"]["rho"] == pytest.approx(m0.structure_parameters()["id"]["rho"], abs=1e-6)


def test_single_level_field_is_refused_with_the_reason(client):
    """One spatial field over all rows (a single-level grouping factor) cannot be split by rows: one
    ModelError saying so and what to do."""
    rng = np.random.default_rng(3)
    d = pd.DataFrame({"sx": rng.uniform(0, 5, 40), "sy": rng.uniform(0, 5, 40), "x": rng.normal(size=40)})
    d["y"] = rng.poisson(2.0, size=40)
    d["grp"] = "all"
    with pytest.raises(ModelError, match=r"exp\(pos\(sx, sy\) \+ 0 \| grp\).*single level.*one dense field.*"
                                         r"does not split into sums over partitions of rows; fit in memory"):
        glmm_nb.glmm("y ~ x + exp(pos(sx, sy) + 0 | grp)", dd.from_pandas(d, npartitions=2), family="poisson",
                     engine="dask")
    d["sx"] = d["sx"].astype(str)
    d["grp"] = np.repeat(["a", "b"], 20)
    with pytest.raises(DataError, match=r"coordinate column 'sx' of the term exp\(pos\(sx, sy\) \+ 0 \| grp\) "
                                        r"must be numeric"):
        glmm_nb.glmm("y ~ x + exp(pos(sx, sy) + 0 | grp)", dd.from_pandas(d, npartitions=2), family="poisson",
                     engine="dask")


def _structure_parameters_equal(m0, m1, group, tol=1e-6):
    p0, p1 = m0.structure_parameters()[group], m1.structure_parameters()[group]
    assert list(p1) == list(p0)
    np.testing.assert_allclose([p1[k] for k in p0], [p0[k] for k in p0], rtol=tol, atol=tol)


def test_ou_over_many_subjects_equals_in_memory(client):
    """ou Poisson, 60 subjects at irregular times (17 distinct over all the data, which no
    partition holds alone): the plan's global positions give every partition the in-memory
    columns, so the shuffled Dask fit equals the in-memory one (log-likelihood 1e-8 relative,
    estimates, SEs, ranef 1e-6) and glmmTMB 1.1.5's log-likelihood (ou_pois.json, 1e-6); ranef
    columns and the fitted rows' predictions equal; a fitted subject at times the fit did not see
    is kriged as in memory (and as written out: c0' S^-1 b); re='marginal' there is refused as in
    memory."""
    import json

    from tests.conftest import FIXTURES

    S_DIR = FIXTURES / "structured"
    d = pd.read_csv(S_DIR / "ousim_pois.csv")
    ref = json.loads((S_DIR / "ou_pois.json").read_text())
    f = "y ~ x + ou(pos(t) + 0 | id)"
    ddf = shuffled(d, 12)  # ~5 subjects per partition after the shuffle by id
    assert sum(ddf.partitions[i]["t"].nunique().compute() < d["t"].nunique() for i in range(12)) >= 10
    m0 = glmm_nb.glmm(f, d, family="poisson")
    m1 = glmm_nb.glmm(f, ddf, family="poisson", engine="dask")
    assert_same_fit(m0, m1)
    np.testing.assert_allclose(np.sqrt(np.diag(m1.vcov)), np.sqrt(np.diag(m0.vcov)), rtol=1e-6)
    assert abs(m1.loglik - ref["loglik"]) <= 1e-6
    np.testing.assert_allclose(m1.fixef[list(ref["fixef"])], list(ref["fixef"].values()), atol=1e-4)
    _structure_parameters_equal(m0, m1, "id")
    assert m1.ranef()["id"].columns[0] == "pos(0)" and m1.ranef()["id"].shape == (60, 34)
    fitted = m1.predict(type="link").compute().sort_index()
    np.testing.assert_allclose(fitted.to_numpy(), m0.predict(type="link"), rtol=1e-9, atol=1e-9)

    sub = d["id"].iloc[0]
    new = pd.DataFrame({"id": [sub, sub, sub], "t": [0.25, 3.3, d["t"].iloc[0]], "x": [0.0, 0.5, 1.0]})
    want0 = m0.predict(new, type="link")
    np.testing.assert_allclose(m1.predict(new, type="link"), want0, rtol=1e-9)
    np.testing.assert_allclose(m1.predict(dd.from_pandas(new, npartitions=2), type="link").compute().to_numpy(),
                               want0, rtol=1e-9)
    S = m1.covariance_matrices()["id"]
    t_fit = np.array([float(c[4:-1]) for c in S.columns])
    rate = m1.structure_parameters()["id"]["rate"]
    b = m1.ranef(condvar=False)["id"].loc[sub].to_numpy()
    c0 = S.iloc[0, 0] * np.exp(-rate * np.abs(new["t"].to_numpy()[:, None] - t_fit[None, :]))
    want = m1.fixef["(Intercept)"] + m1.fixef["x"] * new["x"].to_numpy() + c0 @ np.linalg.solve(S.to_numpy(), b)
    np.testing.assert_allclose(m1.predict(new, type="link"), want, rtol=1e-8)
    with pytest.raises(DataError, match=r"position \(0.25\) of the term ou\(pos\(t\) \+ 0 \| id\) that the fit did "
                                        "not see"):
        m0.predict(new, re="marginal")
    with pytest.raises(DataError, match=r"position \(0.25\) of the term ou\(pos\(t\) \+ 0 \| id\) that the fit did "
                                        "not see"):
        m1.predict(new, re="marginal")


def _sites() -> pd.DataFrame:
    """40 sites, each observing 6 of 16 points of a 4 x 4 grid twice; an exponential field per site."""
    rng = np.random.default_rng(2604)
    grid = np.array([(a, b) for a in range(4) for b in range(4)], dtype=float) * 0.7
    C = 0.8**2 * np.exp(-np.sqrt(((grid[:, None] - grid[None]) ** 2).sum(-1)) / 1.2)
    rows = []
    for j in range(40):
        b = rng.multivariate_normal(np.zeros(len(grid)), C)
        rows += [(f"s{j:02d}", grid[p, 0], grid[p, 1], b[p]) for p in np.repeat(rng.choice(16, 6, replace=False), 2)]
    d = pd.DataFrame(rows, columns=["site", "sx", "sy", "b"])
    d["x"] = rng.normal(size=len(d))
    d["y"] = 1.0 + 0.5 * d["x"] + d["b"] + rng.normal(scale=0.5, size=len(d))
    return d


def test_gau_and_mat_equal_in_memory(client):
    """gau Poisson over the 60 subjects of ousim_pois and mat gaussian over the 40 sites: the
    shuffled Dask fits equal the in-memory ones, with the structures' parameters (range,
    smoothness)."""
    from tests.conftest import FIXTURES

    d = pd.read_csv(FIXTURES / "structured" / "ousim_pois.csv")
    f = "y ~ x + gau(pos(t) + 0 | id)"
    m0 = glmm_nb.glmm(f, d, family="poisson")
    m1 = glmm_nb.glmm(f, shuffled(d, 12), family="poisson", engine="dask")
    assert_same_fit(m0, m1)
    _structure_parameters_equal(m0, m1, "id")
    d = _sites()
    f = "y ~ x + mat(pos(sx, sy) + 0 | site)"
    m0 = glmm_nb.glmm(f, d, family="gaussian", reml=False)
    m1 = glmm_nb.glmm(f, shuffled(d, 4), family="gaussian", reml=False, engine="dask")
    assert_same_fit(m0, m1, est_tol=LMM_TOL)
    _structure_parameters_equal(m0, m1, "site", tol=LMM_TOL)
    assert set(m1.structure_parameters()["site"]) == {"sd", "range", "smoothness"}


def test_exp_field_per_site_equals_in_memory(client):
    """exp gaussian: 40 sites, each observing 6 of 16 points of a 2-D grid twice (the positions are
    sorted by (sx, sy) over all the data, as in memory); ML and REML Dask fits equal the in-memory
    ones (log-likelihood 1e-8 relative; estimates, SEs and the SD and range to the LMM tolerance),
    and so do ranef and the fitted rows' predictions."""
    d = _sites()
    f = "y ~ x + exp(pos(sx, sy) + 0 | site)"
    for reml in (False, True):
        m0 = glmm_nb.glmm(f, d, family="gaussian", reml=reml)
        m1 = glmm_nb.glmm(f, shuffled(d, 4), family="gaussian", reml=reml, engine="dask")
        assert_same_fit(m0, m1, est_tol=LMM_TOL)
        assert m1.sigma == pytest.approx(m0.sigma, rel=LMM_TOL)
        _structure_parameters_equal(m0, m1, "site", tol=LMM_TOL)
    assert list(m1.ranef()["site"].columns[:2]) == ["pos(0,0)", "pos(0,0.7)"]
    assert 0.4 < m1.structure_parameters()["site"]["range"] < 3
    fitted = m1.predict().compute().sort_index()
    np.testing.assert_allclose(fitted.to_numpy(), m0.predict(), rtol=0, atol=10 * LMM_TOL)
