"""Degenerate fits say what happened instead of reporting an impossible optimum; the NB2
density keeps its precision where the dispersion is huge or the mean tiny."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmm_nb
from glmm_nb import DataError, ModelError
from glmm_nb.families import get_family
from glmm_nb.results.build import check_optimum


def _binary_counts(seed=1, n=300):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": (rng.random(n) < 0.4).astype(float), "x": rng.normal(size=n),
                         "g": rng.integers(0, 20, n)})


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_hurdle_with_only_ones_is_refused(family):
    """Before: NB hurdle logLik +82,691 (+97,840.8 in the audit) with an AIC; Poisson non-converged."""
    with pytest.raises(DataError, match="every positive count of 'y' is 1.*family='binomial'"):
        glmm_nb.glmm("y ~ x + (1 | g)", _binary_counts(), family=family, ziformula="~ 1", hurdle=True)


def test_nb2_density_is_precise_near_poisson_and_at_tiny_means():
    """The cancellation that let the optimizer find logLik > 0: d log d - (y + d) log(mu + d)."""
    y = np.array([0.0, 1.0, 3.0, 0.0, 1.0])
    mu = np.array([1e-3, 1e-3, 2.0, 1e-12, 5.0])
    for d in (1e15, 1e12):  # the NB2 pmf is the Poisson pmf to within mu^2/d
        fam = get_family("negative_binomial").at_dispersion(d)
        np.testing.assert_allclose(fam.loglik_obs(y, mu, np.ones(5)), stats.poisson.logpmf(y, mu), rtol=1e-9,
                                   atol=1e-12)
    fam = get_family("negative_binomial").at_dispersion(0.7)  # and the ordinary range is unchanged
    ref = stats.nbinom.logpmf(y, 0.7, 0.7 / (0.7 + mu))
    np.testing.assert_allclose(fam.loglik_obs(y, mu, np.ones(5)), ref, rtol=1e-12, atol=1e-15)
    # a hurdle NB2 positive count of 1 has log-probability below 0 as the mean shrinks
    hnb = glmm_nb.families.zero_inflated(get_family("negative_binomial"), hurdle=True)
    class Spec:
        zi_X = np.ones((3, 1))
        zi_names = ("(Intercept)",)
        zi_terms = ()  # no random effects in the zero part
        zi_ntheta = 0
    fam = hnb.at_extra(np.array([np.log(1.7e17), 0.0]), Spec)
    ll = fam.loglik_kernel(np.ones(3), np.array([-30.0, -170.0, -600.0]), np.ones(3))
    assert np.all(ll < 0) and np.all(ll > np.log(0.5) - 1e-9), ll  # log(1 - pi) + log(f(1)/(1 - f(0))) -> log 0.5


def test_an_impossible_or_non_finite_optimum_is_no_result():
    req = SimpleNamespace(family=get_family("poisson"))
    check_optimum(req, -0.5, np.zeros(3))  # fine
    with pytest.raises(ModelError, match=r"log-likelihood of \+82691.2, impossible for a poisson response"):
        check_optimum(req, 82691.16, np.array([1.0, -171.56, 21.5]))
    with pytest.raises(ModelError, match="non-finite log-likelihood"):
        check_optimum(req, np.nan, np.zeros(3))
    check_optimum(SimpleNamespace(family=get_family("gaussian")), 350.0, np.zeros(2))  # densities may exceed 1
    assert special.expit(0) == 0.5


def _ordinal(seed=5, n=400, J=30):
    rng = np.random.default_rng(seed)
    g, x = rng.integers(0, J, n), rng.normal(size=n)
    eta = 0.7 * x + 0.8 * rng.normal(size=J)[g]
    u = rng.random(n)
    y = np.sum((eta + np.log(u / (1 - u)))[:, None] > np.array([-1.0, 0.0, 1.0])[None, :], axis=1)
    return pd.DataFrame({"y": y, "x": x, "g": g, "z": rng.integers(0, 2, n).astype(float)})


def test_ordinal_separation_names_the_covariate():
    """Before: top = 28.7 (SE 1e5; 6203, SE 6.2e6 in the audit) and only advice to rescale."""
    d = _ordinal()
    d["top"] = (d.x > 1.3).astype(float)
    d.loc[d.top == 1, "y"] = 3  # every row with top = 1 in the highest category: quasi-complete
    with pytest.warns(glmm_nb.errors.SeparationWarning, match="fixed effect\\(s\\) 'top'"):
        m = glmm_nb.glmm("y ~ x + top + (1 | g)", d, family="ordinal")
    assert any(s.startswith("Separation") and "'top'" in s and "'x'" not in s for s in m.messages)
    # complete separation by a continuous covariate: y is the bin of x
    d2 = d.assign(y=np.digitize(d.x, [-0.5, 0.2, 0.9]))
    from glmm_nb.design import ordinal_separated_columns

    X = d2[["x", "z"]].to_numpy()
    assert ordinal_separated_columns(X, d2.y.to_numpy(), np.ones(len(d2)), ["x", "z"], 4) == ("x",)
    # the reverse orientation and the lowest category: a dummy whose rows are all in category 0
    d3 = d.assign(low=(d.x < -1.3).astype(float))
    d3.loc[d3.low == 1, "y"] = 0
    X3 = d3[["x", "low"]].to_numpy()
    assert ordinal_separated_columns(X3, d3.y.to_numpy(), np.ones(len(d3)), ["x", "low"], 4) == ("low",)
    # no separation: no warning, and one row in the other categories is enough to end it
    ok = _ordinal()
    assert ordinal_separated_columns(ok[["x", "z"]].to_numpy(), ok.y.to_numpy(), np.ones(len(ok)), ["x", "z"], 4) == ()
    d4 = d.copy()
    d4.loc[d4.index[d4.top == 1][0], "y"] = 0
    assert ordinal_separated_columns(d4[["x", "top"]].to_numpy(), d4.y.to_numpy(), np.ones(len(d4)),
                                     ["x", "top"], 4) == ()
