"""Issue 27 on Dask: zero-inflated and hurdle models (with random effects in the zero part too),
dispersion formulas and the families of the third wave give the in-memory fit of the same data —
log-likelihood to 1e-8 relative, estimates and standard errors to 1e-6 — with every cluster's
rows spread over several partitions before the engine shuffles them (tests/distributed's
pattern), on a LocalCluster(processes=False)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import glmm_nb  # noqa: E402
from glmm_nb.distributed.intervals import sdcor_covariance_glmm  # noqa: E402
from glmm_nb.errors import ModelError  # noqa: E402
from tests.conftest import FIXTURES, load_case  # noqa: E402

ZRE = pd.read_csv(FIXTURES / "data" / "zresim.csv")
ZNB = pd.read_csv(FIXTURES / "data" / "zinbre.csv")


def shuffled(df: pd.DataFrame, npartitions: int = 3, seed: int = 1):
    """Rows in random order, kept in that order (``sort=False``): every cluster spans several
    partitions, so the engine must shuffle them into whole clusters."""
    ddf = dd.from_pandas(df.sample(frac=1, random_state=seed), npartitions=npartitions, sort=False)
    per_part = [p.compute().g.nunique() for p in ddf.partitions]
    assert sum(per_part) > df.g.nunique()  # clusters spread over partitions
    return ddf


def _se(V) -> np.ndarray:
    return np.sqrt(np.diag(np.asarray(V, dtype=float)))


def assert_same(m0, m1, tol=1e-6):
    """Every part of the model: log-likelihood (1e-8 relative), count, zero and dispersion parts'
    estimates and SEs, theta of both parts, dispersion, random effects of both parts."""
    assert isinstance(m1, glmm_nb.api.DaskMixedModel)
    assert abs(m1.loglik - m0.loglik) <= 1e-8 * abs(m0.loglik), (m1.loglik, m0.loglik)
    assert abs(m1.deviance - m0.deviance) <= 1e-8 * abs(m0.deviance)  # lme4's conditional deviance, all rows
    assert m1.npar == m0.npar and m1.nobs == m0.nobs and m1.ngroups == m0.ngroups and m1.converged == m0.converged
    np.testing.assert_allclose(m1.fixef.to_numpy(), m0.fixef.to_numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(_se(m1.vcov), _se(m0.vcov), rtol=tol)
    np.testing.assert_allclose(m1.theta, m0.theta, rtol=0, atol=tol)
    np.testing.assert_allclose(m1.dispersion.to_numpy(), m0.dispersion.to_numpy(), rtol=tol)
    assert list(m1.dispersion.index) == list(m0.dispersion.index)
    for est, cov in (("zi_fixef", "zi_vcov"), ("disp_fixef", "disp_vcov")):
        a, b = getattr(m0, est), getattr(m1, est)
        assert (a is None) == (b is None)
        if a is not None:
            assert list(b.index) == list(a.index)
            np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=tol, atol=tol)
            np.testing.assert_allclose(_se(getattr(m1, cov)), _se(getattr(m0, cov)), rtol=tol)
    if m0.spec.zi_terms:
        np.testing.assert_allclose(m1.zi_theta, m0.zi_theta, rtol=0, atol=tol)
    r0, r1 = m0.ranef(), m1.ranef()
    assert sorted(r1) == sorted(r0)
    for g in r0:
        assert list(r1[g].index) == list(r0[g].index) and list(r1[g].columns) == list(r0[g].columns)
        np.testing.assert_allclose(r1[g].to_numpy(), r0[g].to_numpy(), rtol=0, atol=10 * tol)


def _with_subgroups(d: pd.DataFrame) -> pd.DataFrame:
    """k: two halves of each cluster, so (1 | g:k) is nested in g (the zero part's own factor)."""
    return d.assign(k=np.arange(len(d)) % 2)


ZERO_CASES = {  # name: (data, formula, keyword arguments)
    "zip_fixed_zero_part": (ZRE, "y ~ x + (1 | g)", dict(family="poisson", ziformula="~ x")),
    "hurdle_poisson": (ZRE, "y ~ x + (1 | g)", dict(family="poisson", ziformula="~ x", hurdle=True)),
    "zinb2_zero_re_same_factor": (ZNB, "y ~ x + (1 | g)", dict(family="negative_binomial",
                                                               ziformula="~ x + (1 | g)")),
    "hurdle_zero_re_nested_factor": (_with_subgroups(ZRE), "y ~ x + (1 | g)",
                                     dict(family="poisson", ziformula="~ x + (1 | g:k)", hurdle=True)),
    "nb2_dispformula": (ZNB, "y ~ x + (1 | g)", dict(family="negative_binomial", dispformula="~ x")),
    "zinb2_dispformula": (ZNB, "y ~ x + (1 | g)", dict(family="negative_binomial", ziformula="~ x",
                                                        dispformula="~ x")),
    "zinb2_dispformula_agq": (ZNB, "y ~ x + (1 | g)", dict(family="negative_binomial", ziformula="~ x",
                                                            dispformula="~ x", method="agq", nagq=7)),
    "gaussian_dispformula": (ZRE.assign(y=np.log1p(ZRE.y)), "y ~ x + (1 | g)",
                             dict(family="gaussian", dispformula="~ x", reml=False)),
}


@pytest.mark.parametrize("case", list(ZERO_CASES))
def test_zero_parts_and_dispersion_models_equal_in_memory(client, case):
    d, f, kw = ZERO_CASES[case]
    m0 = glmm_nb.glmm(f, d, **kw)
    m1 = glmm_nb.glmm(f, shuffled(d, 3), **kw)
    assert m1.extras["dask"].npartitions == 3 and "shuffled" in m1.messages[-1]
    assert_same(m0, m1)
    for part in ("zi", "disp"):  # the summary's tables of the other parts
        if getattr(m0, f"{part}_fixef") is not None and len(getattr(m0, f"{part}_fixef")):
            t0, t1 = m0.coef_table(part=part), m1.coef_table(part=part)
            np.testing.assert_allclose(t1.to_numpy(dtype=float), t0.to_numpy(dtype=float), rtol=1e-6, atol=1e-9)
    if not m0.spec.zi_terms:  # Wald intervals, every part, named as in memory
        c0, c1 = m0.confint(method="wald"), m1.confint(method="wald")
        assert list(c1.index) == list(c0.index)
        rest = [i for i in c0.index if not i.startswith("sd__")]  # in memory: another difference scheme
        np.testing.assert_allclose(c1.loc[rest].to_numpy(dtype=float), c0.loc[rest].to_numpy(dtype=float), rtol=1e-6)
        V0 = sdcor_covariance_glmm(m0.spec, m0.theta, m0.extras["vcov_theta_beta"])  # the same delta method
        np.testing.assert_allclose(m1.extras["dask"].sdcor_vcov, V0, rtol=1e-6)
    if kw.get("ziformula") and not kw.get("hurdle"):
        assert "Zero-inflation model" in m1.summary()
    if m0.fitted_family.n_dispersion or m0.fitted_family.has_disp_model or m0.request.family.profiled_lmm:
        got = m1.predict(type="dispersion").compute().sort_index().to_numpy()
        np.testing.assert_allclose(got, m0.predict(type="dispersion"), rtol=1e-6)
        new = d.iloc[::5]
        np.testing.assert_allclose(m1.predict(new, type="dispersion"), m0.predict(new, type="dispersion"), rtol=1e-6)
    if kw.get("ziformula"):
        types = ("response", "conditional", "zero_prob", "link")
        for type in types:  # the data fitted: a Dask Series in the rows' order once sorted
            got = m1.predict(type=type).compute().sort_index().to_numpy()
            np.testing.assert_allclose(got, m0.predict(type=type), rtol=1e-6, atol=1e-8, err_msg=type)
        new = d.iloc[::9].copy()
        new.loc[new.index[0], "g"] = "a new cluster"  # b = 0 in both parts, as in memory
        for type in types:
            np.testing.assert_allclose(m1.predict(new, type=type), m0.predict(new, type=type), rtol=1e-6, atol=1e-8)
        if not m0.spec.zi_terms:  # the population average with the zero part's mean inside the integral
            np.testing.assert_allclose(m1.predict(new, re="marginal"), m0.predict(new, re="marginal"), rtol=1e-6)


def test_refit_changes_the_zero_part_on_dask(client):
    d = ZNB
    m1 = glmm_nb.glmm("y ~ x + (1 | g)", shuffled(d), family="negative_binomial", ziformula="~ x + (1 | g)")
    r1 = m1.refit(ziformula="~ x")
    r0 = glmm_nb.glmm("y ~ x + (1 | g)", d, family="negative_binomial", ziformula="~ x")
    assert_same(r0, r1)
    h1 = m1.refit(ziformula="~ 1", hurdle=True, dispformula=None)
    h0 = glmm_nb.glmm("y ~ x + (1 | g)", d, family="negative_binomial", ziformula="~ 1", hurdle=True)
    assert_same(h0, h1)


def _truncated_counts() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    J, n = 40, 10
    g = np.repeat(np.arange(J), n)
    x = rng.normal(size=J * n)
    mu = np.exp(0.8 + 0.3 * x + rng.normal(0, 0.5, J)[g])
    y = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
    while (y == 0).any():  # zero-truncated draws
        z = y == 0
        y[z] = rng.negative_binomial(3.0, 3.0 / (3.0 + mu[z]))
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.mark.parametrize("family", ["betabinomial", "t", "tweedie", "truncated_poisson", "truncated_nbinom1",
                                    "truncated_nbinom2"])
def test_third_wave_families_equal_in_memory(client, family):
    cid = {"betabinomial": "betabinom_sim", "t": "t_sim", "tweedie": "tweedie_sim"}.get(family)
    if cid is not None:
        case, d = load_case(cid)
        f = case["formula"]
    else:
        d, f = _truncated_counts(), "y ~ x + (1 | g)"
    m0 = glmm_nb.glmm(f, d, family=family)
    m1 = glmm_nb.glmm(f, shuffled(d, 4), family=family)
    assert_same(m0, m1)
    assert len(m1.dispersion) == len(m0.dispersion) >= (0 if family == "truncated_poisson" else 1)


def test_a_zero_part_crossed_with_the_clusters_is_refused_by_name(client):
    d = ZRE.assign(h=np.arange(len(ZRE)) % 7)  # h crosses g: the likelihood does not split by cluster
    with pytest.raises(ModelError, match=r"\(1 \| g\) \+ \(1 \| h\) \(with the zero part's\) are crossed"):
        glmm_nb.glmm("y ~ x + (1 | g)", shuffled(d), family="poisson", ziformula="~ x + (1 | h)")
    with pytest.raises(ModelError, match="method='agq' is not available with random effects in the zero part"):
        glmm_nb.glmm("y ~ x + (1 | g)", shuffled(d), family="poisson", ziformula="~ x + (1 | g)", method="agq",
                     nagq=5)
    with pytest.raises(ModelError, match="pass reml=False"):
        glmm_nb.glmm("y ~ x + (1 | g)", shuffled(d), family="gaussian", dispformula="~ x")
    with pytest.raises(ModelError, match="type must be 'link', 'response'"):
        glmm_nb.glmm("y ~ x + (1 | g)", shuffled(d), family="poisson").predict(type="zero_prob")
