"""The analytic gradient of the joint zero-part Laplace deviance (likelihood/zire.py) against
central differences of the deviance itself, and each third derivative of the row log-density it
uses (families/zeroinfl.py: ``zeta_third``, ``zeta_extra_pieces``) against differences of the
second derivatives it differentiates."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from glmm_nb.families import get_family, zero_inflated
from glmm_nb.numdiff import central_diff
from glmm_nb.pipeline import make_devfun, make_request
from tests.conftest import FIXTURES

ZRE = pd.read_csv(FIXTURES / "data" / "zresim.csv")
ZNB = pd.read_csv(FIXTURES / "data" / "zinbre.csv")


def _pairs(d: pd.DataFrame) -> pd.DataFrame:
    """A zero-part grouping factor that differs from the count part's: pairs of clusters."""
    codes = pd.factorize(d.g, sort=True)[0]
    return d.assign(h=[f"p{c // 2:02d}" for c in codes])


F = "y ~ x + (1 | g)"
CASES = {  # name: (data, formula, family, hurdle, ziformula, dispformula, one merged term?)
    "zip_same": (ZRE, F, "poisson", False, "~ x + (1 | g)", None, True),
    "zip_other": (_pairs(ZRE), F, "poisson", False, "~ x + (1 | h)", None, False),
    "zinb2_same": (ZNB, F, "negative_binomial", False, "~ x + (1 | g)", None, True),
    "zinb2_other": (_pairs(ZNB), F, "negative_binomial", False, "~ x + (1 | h)", None, False),
    "hurdle_pois_same": (ZRE, F, "poisson", True, "~ x + (1 | g)", None, True),
    "hurdle_pois_other": (_pairs(ZRE), F, "poisson", True, "~ x + (1 | h)", None, False),
    "hurdle_nb2_other": (_pairs(ZNB), F, "negative_binomial", True, "~ x + (1 | h)", None, False),
    "zinb1_same": (ZNB, F, "nbinom1", False, "~ x + (1 | g)", None, True),
    "zinb2_dispformula": (ZNB, F, "negative_binomial", False, "~ x + (1 | g)", "~ x", True),
    "zip_vector_zero_term": (ZRE, F, "poisson", False, "~ x + (1 + x | g)", None, True),
    # structured count term (theta chained through cs()'s SDs and rho), merged and not
    "zip_cs_count_same": (ZRE, "y ~ x + cs(1 + x | g)", "poisson", False, "~ x + (1 | g)", None, True),
    "zip_diag_count_other": (_pairs(ZRE), "y ~ x + diag(1 + x | g)", "poisson", False, "~ x + (1 | h)", None, False),
    "zip_two_zero_terms": (_pairs(ZRE), F, "poisson", False, "~ x + (1 | g) + (1 | h)", None, False),
}


def _points(req, rng, k: int = 3):
    """Parameter points: SDs 0.3-1.1, a correlation-sized off-diagonal, coefficients ~ N(0, 0.4)."""
    spec, fam = req.spec, req.family
    n = spec.ntheta + spec.p + fam.n_extra(spec)
    lower = np.r_[spec.theta_lower(), np.full(spec.p + fam.n_extra(spec) - spec.zi_ntheta, -np.inf),
                  np.concatenate([t.theta_lower() for t in spec.zi_terms])]
    for _ in range(k):
        phi = rng.normal(0.0, 0.4, n)
        on_bound = np.isfinite(lower)
        phi[on_bound] = rng.uniform(0.3, 1.1, on_bound.sum())  # theta diagonals
        yield phi


@pytest.mark.parametrize("case", list(CASES))
def test_gradient_equals_differences_of_the_deviance(case):
    d, f, fam, hurdle, zf, df, merged = CASES[case]
    req = make_request(f, d, family=fam, ziformula=zf, hurdle=hurdle, dispformula=df)
    dev = make_devfun(req)
    assert dev.analytic_gradient
    assert dev.merged == merged
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    for phi in _points(req, rng):
        v, g = dev.value_and_grad(phi)
        fd = central_diff(dev, phi, 1e-5 * np.maximum(np.abs(phi), 1e-1))
        assert v == pytest.approx(dev(phi), abs=1e-9)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8 * np.max(np.abs(fd)))
        assert np.min(np.abs(fd)) > 1e-3  # every component is exercised (none is trivially zero)


def _row_data(base: str, hurdle: bool, disp: float | None = None):
    rng = np.random.default_rng(11)
    n = 60
    y = np.where(rng.random(n) < 0.45, 0.0, rng.poisson(2.0, n)).astype(float)
    if hurdle:
        y[y == 1] = 2.0  # keep some variety in the positives
    eta, zeta = rng.normal(0.4, 0.6, n), rng.normal(-0.2, 0.9, n)
    fam = zero_inflated(get_family(base), hurdle)
    if disp is not None:
        fam = fam.at_dispersion(disp)
    return fam, y, eta, zeta, np.full(n, 1.3)


@pytest.mark.parametrize("base,hurdle", [("poisson", False), ("negative_binomial", False), ("nbinom1", False),
                                         ("poisson", True), ("negative_binomial", True)])
def test_third_derivatives_match_differences(hurdle, base):
    """zeta_third: d a/d zeta (= d c/d eta), d b/d eta (= d c/d zeta), d b/d zeta, each against a
    central difference of the weights it differentiates."""
    fam, y, eta, zeta, pw = _row_data(base, hurdle, None if base == "poisson" else 1.6)

    def weights(e, z):
        f = fam.with_zeta(z)
        a = f.working(e, y, pw)[3]
        _rz, c, b = f.zeta_working(e, y, pw)
        return a, b, c

    h = 1e-6
    a_zp, b_zp, c_zp = weights(eta, zeta + h)
    a_zm, b_zm, c_zm = weights(eta, zeta - h)
    _a, b_ep, c_ep = weights(eta + h, zeta)
    _a, b_em, c_em = weights(eta - h, zeta)
    a_z, b_e, b_z = fam.with_zeta(zeta).zeta_third(eta, y, pw)
    np.testing.assert_allclose(a_z, (a_zp - a_zm) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a_z, (c_ep - c_em) / (2 * h), rtol=1e-6, atol=1e-8)  # symmetry
    np.testing.assert_allclose(b_e, (b_ep - b_em) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b_e, (c_zp - c_zm) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b_z, (b_zp - b_zm) / (2 * h), rtol=1e-6, atol=1e-8)
    if hurdle:
        assert np.all(a_z == 0) and np.all(b_e == 0)
    else:
        assert np.abs(a_z).max() > 0.01 and np.abs(b_e).max() > 0.01


@pytest.mark.parametrize("base,hurdle", [("negative_binomial", False), ("nbinom1", False), ("negative_binomial", True)])
def test_zero_part_pieces_move_with_the_dispersion_as_differences_say(hurdle, base):
    """zeta_extra_pieces: d(dl/dzeta, c, b)/d log(dispersion) against central differences."""
    fam, y, eta, zeta, pw = _row_data(base, hurdle)
    psi, h = np.log(1.6), 1e-6

    def pieces(p):
        return fam.at_dispersion(np.exp(p)).with_zeta(zeta).zeta_working(eta, y, pw)

    plus, minus = pieces(psi + h), pieces(psi - h)
    got = fam.at_dispersion(1.6).with_zeta(zeta).zeta_extra_pieces(eta, y, pw)
    for g, p, m in zip(got, plus, minus):
        assert g.shape == (y.size, 1)
        np.testing.assert_allclose(g[:, 0], (p - m) / (2 * h), rtol=1e-6, atol=1e-8)
    assert (np.abs(got[1]).max() > 1e-3) != hurdle


def test_fits_reach_glmmtmbs_optimum_with_the_analytic_gradient():
    """The fits of tests/test_zero_part_re.py, now driven by the analytic gradient, reach glmmTMB's
    log-likelihood (tests/fixtures/cases_tmb/glmmtmb_zi_re.json) to 1e-10 relative."""
    import json

    import glmm_nb

    ref = json.loads((FIXTURES / "cases_tmb" / "glmmtmb_zi_re.json").read_text())
    zreh = ZRE.assign(h=[f"p{(int(g[1:]) + 1) // 2:02d}" for g in ZRE.g])  # as the R script pairs them
    cases = {"zip": (ZRE, "poisson", False, "g"), "hurdle_pois": (ZRE, "poisson", True, "g"),
             "zinb": (ZNB, "negative_binomial", False, "g"), "zip_crossed": (zreh, "poisson", False, "h")}
    for key, (d, fam, hurdle, zg) in cases.items():
        m = glmm_nb.glmm("y ~ x + (1 | g)", d, family=fam, ziformula=f"~ x + (1 | {zg})", hurdle=hurdle)
        assert m.converged, m.messages
        assert m.loglik == pytest.approx(ref[key]["loglik"], rel=1e-10, abs=0), key


def test_wald_interval_of_the_count_sd_uses_the_whole_parameter_vector():
    """m.confint() of a model with zero-part random effects: the count part's SD interval from the
    curvature of D in all parameters, the zero part's theta included (the profile problem's vector
    used to drop it, evaluating D at a shifted vector), against central differences of D's values."""
    from scipy import stats

    import glmm_nb
    from glmm_nb.numdiff import fd_hessian_fun

    m = glmm_nb.glmm("y ~ x + (1 | g)", ZNB, family="negative_binomial", ziformula="~ x + (1 | g)")
    ci = m.confint(method="wald")
    dev = make_devfun(m.request)
    phi = np.concatenate([m.theta, m.fixef.to_numpy(), [np.log(float(m.dispersion.iloc[0]))],
                          m.zi_fixef.to_numpy(), m.zi_theta])
    assert dev(phi) == pytest.approx(-2 * m.loglik, abs=1e-7)
    H = fd_hessian_fun(dev, phi, h=1e-4)  # every parameter free, the zero part's theta too
    se = np.sqrt(2.0 * np.linalg.inv(H)[0, 0])  # theta = the SD for a scalar intercept term
    z = stats.norm.ppf(0.975)
    lo, hi = ci.loc["sd__(Intercept)|g"]
    assert (hi - lo) / (2 * z) == pytest.approx(se, rel=1e-3)
    assert (lo + hi) / 2 == pytest.approx(m.theta[0], rel=1e-9)


@pytest.mark.parametrize("base,hurdle", [("poisson", False), ("negative_binomial", False), ("nbinom1", False),
                                         ("poisson", True), ("negative_binomial", True)])
def test_joint_working_is_working_and_zeta_working(hurdle, base):
    """The fused pass PIRLS takes gives working()'s and zeta_working()'s pieces exactly."""
    fam, y, eta, zeta, pw = _row_data(base, hurdle, None if base == "poisson" else 1.6)
    f = fam.with_zeta(zeta)
    mu, r, _W, Wo, dW = f.working(eta, y, pw)
    got = f.joint_working(eta, y, pw)
    for g, w in zip(got, (mu, r, Wo, dW, *f.zeta_working(eta, y, pw))):
        np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15)
