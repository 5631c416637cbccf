"""Structured random-effect covariances (issue 26), downstream of the fit: profile, Wald and
bootstrap intervals of the structure's parameters against glmmTMB 1.1.5
(fixtures/structured/profile_refs.json, made by make_profile_refs.R there) and against the
chi-square cut-off, and simulation at positions the fit did not see, by moments.
"""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmm_nb
from tests.test_structured import S, _coords, load

_CACHE: dict = {}


class _Fits:
    """The cases these tests use, each fitted once (ML, as glmmTMB) on first use."""

    def __getitem__(self, cid):
        if cid not in _CACHE:
            case, d = load(cid)
            _CACHE[cid] = (case, glmm_nb.glmm(case["formula"], d, family=case["family"], reml=False))
        return _CACHE[cid]


@pytest.fixture(scope="module")
def fits():
    return _Fits()


PROFILE = json.loads((S / "profile_refs.json").read_text())


@pytest.mark.parametrize("cid", ["epil_ar1_pois", "epil_cs_pois", "exp_pois"])
def test_profile_intervals_against_glmmtmb(fits, cid):
    """glmmTMB's confint(method = "profile", parm = "theta_") limits (its scale: log SD, and c with
    rho = c/sqrt(1+c^2) for ar1, rho = (1+a) plogis(c) - a for cs, range = exp(c) for exp) mapped to
    SDs, rho and the range: 3e-4 relative (reached 2e-4: glmmTMB interpolates its profile by a
    spline); the Wald limits differ from them by 0.3 % to 4 % (exp: by a factor of 4 in the range)."""
    case, m = fits[cid]
    ref = PROFILE[cid]
    lo, hi = np.array(ref["lower"]), np.array(ref["upper"])
    if cid == "epil_ar1_pois":
        f = lambda c: c / np.sqrt(1 + c * c)  # noqa: E731
        names = ["sd__ar1|subject", "rho__ar1|subject"]
    elif cid == "epil_cs_pois":
        f = lambda c: (1 + 1 / 3) / (1 + np.exp(-c)) - 1 / 3  # noqa: E731
        names = [f"sd__periodf[p{k}]|subject" for k in range(1, 5)] + ["rho__cs|subject"]
    else:
        f = np.exp
        names = ["sd__exp|grp", "range__exp|grp"]
    ci = m.confint(method="profile")
    assert list(ci.index[: len(names)]) == names
    np.testing.assert_allclose(ci.loc[names, "conf_low"], np.r_[np.exp(lo[:-1]), f(lo[-1])], rtol=3e-4)
    np.testing.assert_allclose(ci.loc[names, "conf_high"], np.r_[np.exp(hi[:-1]), f(hi[-1])], rtol=3e-4)
    wald = m.confint(method="wald").loc[names]
    assert np.all(np.abs(wald["conf_low"].to_numpy() / ci.loc[names, "conf_low"].to_numpy() - 1) > 2e-3)


def _ar1_dense_deviance(m):
    """ar1_gauss's ML deviance from the marginal covariance V = Z Sigma Z' + sigma^2 I written out
    (a 6 x 6 block per subject: V is block diagonal, the subjects independent), beta by GLS:
    defined at sigma = 0 itself, which the SD/sigma parameterization is not."""
    X, y = np.asarray(m.spec.X), np.asarray(m.spec.y, dtype=float)
    t = m.spec.terms[0]
    order = np.argsort(t.codes, kind="stable")
    J = t.nlevels
    idx = order.reshape(J, -1)  # every subject has the same number of rows (asserted by the reshape)
    assert np.all(t.codes[idx] == t.codes[idx][:, :1])
    col = np.argmax(t.Zvals, axis=1)[idx]
    lag = np.abs(col[:, :, None] - col[:, None, :])
    Xb, yb = X[idx], y[idx][..., None]
    eye = np.eye(idx.shape[1])

    def dev(sd, rho, sig):
        V = sd**2 * rho**lag + sig**2 * eye
        L = np.linalg.cholesky(V)
        Xt = np.linalg.solve(L, Xb).reshape(-1, X.shape[1])
        yt = np.linalg.solve(L, yb).ravel()
        r = yt - Xt @ np.linalg.lstsq(Xt, yt, rcond=None)[0]
        return 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum() + r @ r + len(y) * np.log(2 * np.pi)

    return dev


def test_profile_of_a_gaussian_ar1_through_its_vanishing_nugget(fits):
    """ar1_gauss (ML): along the SD's upper and rho's lower side the residual SD runs to 0 (the ar1
    term takes over the residual variance); the profile continues with sigma at its floor (1e-3 of
    the largest SD, standing for 0). Against a dense brute force (_ar1_dense_deviance, sigma >= 0 with
    0 itself allowed, Nelder-Mead from several starts): every limit is at the minimum + 3.8415 (1e-3),
    and sigma's profile stays below the cut-off down to sigma = 0 (0.42 there), so its lower limit is
    the bound 0, said in the note. glmmTMB 1.1.5: the SD's limits and rho's upper one agree (3e-4;
    its SD upper limit 1.031342 is 0.0088 above the cut-off by the dense profile, its spline's
    error); its lower limit for rho, c = -79 (rho = -1), is not the profile's: the dense profile
    deviance is 60 above the minimum at rho = 0 already."""
    from scipy import optimize

    case, m = fits["ar1_gauss"]
    ref = PROFILE["ar1_gauss"]
    ci = m.confint(method="profile")
    assert not ci.isna().any().any()
    assert ci.loc["sd__ar1|id", "conf_low"] == pytest.approx(np.exp(ref["lower"][0]), rel=3e-4)
    assert ci.loc["sd__ar1|id", "conf_high"] == pytest.approx(np.exp(ref["upper"][0]), rel=3e-4)
    c = ref["upper"][1]
    assert ci.loc["rho__ar1|id", "conf_high"] == pytest.approx(c / np.sqrt(1 + c * c), rel=3e-4)
    assert ci.loc["sigma", "conf_low"] == 0.0
    assert "sigma stays below the cut-off as far as its bound 0" in ci.attrs["note"]
    dev = _ar1_dense_deviance(m)
    nm = {"xatol": 1e-9, "fatol": 1e-11}
    d_min = optimize.minimize(lambda p: dev(np.exp(p[0]), np.tanh(p[1]), abs(p[2])), [-0.1, 0.6, 0.4],
                              method="Nelder-Mead", options=nm | {"maxfev": 5000}).fun
    assert -d_min / 2 == pytest.approx(case["loglik"], abs=1e-6)

    def prof(fun, starts):
        return min(optimize.minimize(fun, s0, method="Nelder-Mead", options=nm).fun for s0 in starts) - d_min

    cut = stats.chi2.ppf(0.95, 1)
    for v in ci.loc["sd__ar1|id"]:
        assert prof(lambda p, v=v: dev(v, np.tanh(p[0]), abs(p[1])), ([0.6, 0.3], [2.0, 0.01])) == pytest.approx(cut, abs=1e-3)
    for v in ci.loc["rho__ar1|id"]:
        assert prof(lambda p, v=v: dev(np.exp(p[0]), v, abs(p[1])), ([-0.15, 0.3], [0.0, 0.01])) == pytest.approx(cut, abs=1e-3)
    v = ci.loc["sigma", "conf_high"]
    assert prof(lambda p: dev(np.exp(p[0]), np.tanh(p[1]), v), ([-0.15, 0.6], [-1.0, 1.0])) == pytest.approx(cut, abs=1e-3)
    assert 0.3 < prof(lambda p: dev(np.exp(p[0]), np.tanh(p[1]), 0.0), ([-0.15, 0.6], [0.0, 1.0])) < 0.5
    assert prof(lambda p: dev(np.exp(p[0]), 0.0, abs(p[1])), ([-0.15, 0.3], [0.0, 0.01])) > 50


def test_profile_limits_sit_on_the_cutoff(fits):
    """ou_pois (glmmTMB 1.1.5's own profile stops on a singular spline fit there): at each limit of
    the SD and the rate, the deviance minimised over everything else — here by a plain bounded
    optimizer on the Laplace deviance and its gradient in theta (log rate) — is the ML deviance + 3.8415 (to 2e-3).
    The rate's profile never reaches the cut-off upwards (rate → ∞ is independent effects, an
    observation-level intercept, within 3.84 of the optimum): its upper limit is +inf, and the note
    says the profile levels off."""
    from scipy import optimize

    from glmm_nb.pipeline import make_devfun

    case, m = fits["ou_pois"]
    ci = m.confint(method="profile")
    f = make_devfun(m.request)
    x_hat = np.asarray(m.opt.final)
    d_hat = f(x_hat)
    bounds = [(0.0, None)] + [(None, None)] * (x_hat.size - 1)

    def prof(j, fixed):
        free = np.arange(x_hat.size) != j

        def g(z):
            x = np.empty(x_hat.size)
            x[free], x[j] = z, fixed
            val, grad = f.value_and_grad(x)
            return val, grad[free]

        res = optimize.minimize(g, x_hat[free], jac=True, method="L-BFGS-B", bounds=[b for b, k in zip(bounds, free) if k],
                                options={"ftol": 1e-14, "gtol": 1e-9})
        return res.fun - d_hat

    cut = stats.chi2.ppf(0.95, 1)
    for j, name, v in ((0, "sd__ou|id", ci.loc["sd__ou|id", "conf_low"]), (0, "sd__ou|id", ci.loc["sd__ou|id", "conf_high"]),
                       (1, "rate__ou|id", ci.loc["rate__ou|id", "conf_low"])):
        assert prof(j, v if j == 0 else np.log(v)) == pytest.approx(cut, abs=2e-3), (name, v)
    assert ci.loc["rate__ou|id", "conf_high"] == np.inf
    assert "the profile of rate__ou|id levels off below the cut-off as rate__ou|id -> infinity" in ci.attrs["note"]
    assert 0 < prof(1, np.log(1e3)) < cut
    est = m.structure_parameters()["id"]
    assert ci.loc["sd__ou|id", "conf_low"] < est["sd"] < ci.loc["sd__ou|id", "conf_high"]
    assert ci.loc["rate__ou|id", "conf_low"] < est["rate"]


def test_wald_intervals_of_structure_parameters(fits):
    """confint(method='wald') carries structure_table()'s rows under the sdcor names; for epil ar1
    glmmTMB 1.1.5's confint(m, method = "wald", parm = "theta_") gives the SD 0.4820404 to
    0.6784099 (log scale, mapped back): 2e-5."""
    m = fits["epil_ar1_pois"][1]
    ci = m.confint(method="wald")
    assert list(ci.index) == ["sd__ar1|subject", "rho__ar1|subject"] + list(m.fixef.index)
    np.testing.assert_allclose(ci.loc["sd__ar1|subject"], [0.4820404, 0.6784099], rtol=2e-5)
    tab = m.structure_table().loc["subject"]
    np.testing.assert_allclose(ci.loc["rho__ar1|subject"], tab.loc["rho", ["conf_low", "conf_high"]], rtol=1e-12)
    np.testing.assert_allclose(ci.loc[m.fixef.index, "conf_low"], m.fixef - 1.959964 * m.coef_table()["std_error"],
                               rtol=1e-6)
    ct = fits["toep_pois"][1].confint(method="wald")
    assert [n for n in ct.index if "toep" in n] == ["rho1__toep|id", "rho2__toep|id", "rho3__toep|id"]
    assert ct.loc["sd__timef[t1]|id", "conf_low"] == pytest.approx(
        fits["toep_pois"][1].structure_table().loc[("id", "sd1"), "conf_low"], rel=1e-12)


@pytest.mark.parametrize("re_", ["conditional", "new"])
def test_simulate_at_new_positions_by_moments(fits, re_):
    """ou_gauss: rows of a fitted subject (conditional) or of a new one (new) at times the fit did
    not see (11, 12, 12 again, -1) and at a fitted time. The process, written out from the implied
    covariance S over the 277 fitted times (sd² = S_11, rate from S_12): C(t, t') = sd² exp(-rate |t - t'|).
    conditional: mean x'β + C_0S S⁻¹ b̂, covariance C_00 - C_0S S⁻¹ C_S0 + σ² I (rows at one time share
    their draw); new: mean x'β, covariance C_00 + σ² I. 100,000 draws: means to 0.012, covariances
    to 0.01 (5 standard errors); dropping the kriging variance, or drawing each new time on its own,
    is off by 0.1 or more."""
    case, m = fits["ou_gauss"]
    _, d = load("ou_gauss")
    S = m.covariance_matrices()["id"]
    t_fit = np.array([_coords(c)[0] for c in S.columns])
    Sv = S.to_numpy()
    sd2 = Sv[0, 0]
    rate = -np.log(Sv[0, 1] / sd2) / abs(t_fit[1] - t_fit[0])
    sub = d["id"].iloc[0] if re_ == "conditional" else "new-subject"
    t_new = np.array([11.0, 12.0, 12.0, -1.0, d["t"].iloc[0]])
    new = pd.DataFrame({"id": sub, "t": t_new, "x": [0.0, 0.5, 0.5, -1.0, 1.0]})
    C = lambda a, b: sd2 * np.exp(-rate * np.abs(a[:, None] - b[None, :]))  # noqa: E731
    mu = m.fixef["(Intercept)"] + m.fixef["x"] * new["x"].to_numpy()
    cov = C(t_new, t_new)
    if re_ == "conditional":
        b = m.ranef(condvar=False)["id"].loc[sub].to_numpy()
        A = np.linalg.solve(Sv, C(t_fit, t_new))
        mu = mu + A.T @ b
        cov = cov - C(t_new, t_fit) @ A
    cov = cov + m.sigma**2 * np.eye(len(t_new))
    if re_ == "new":
        with pytest.warns(Warning, match="not seen in the fit"):
            sims = np.asarray(m.simulate(newdata=new, nsim=100_000, seed=7, re=re_))
    else:
        sims = np.asarray(m.simulate(newdata=new, nsim=100_000, seed=7, re=re_))
    np.testing.assert_allclose(sims.mean(axis=1), mu, atol=0.012)
    np.testing.assert_allclose(np.cov(sims), cov, atol=0.01)
    assert cov[0, 1] > 0.1 and cov[0, 0] - m.sigma**2 > 0.1  # large enough for the checks above to fail


def test_bootstrap_draws_are_the_refits_structure_parameters(fits):
    """Each bootstrap draw of sd__ar1|subject and rho__ar1|subject is the SD and lag-one
    correlation (structure_parameters) of the model refitted to that draw's simulated response."""
    from glmm_nb.inference.bootstrap import bootstrap
    from glmm_nb.pipeline import refit

    m = fits["epil_ar1_pois"][1]
    b = bootstrap(m, nsim=2, seed=11, progress=False)
    assert b.n_failed == 0
    ys = np.asarray(m.simulate(nsim=2, seed=11, re="new"))
    for i in range(2):
        r = refit(m, y=ys[:, i], start=np.asarray(m.opt.final)).structure_parameters()["subject"]
        assert b.draws.loc[i, "sd__ar1|subject"] == pytest.approx(r["sd"], rel=1e-8)
        assert b.draws.loc[i, "rho__ar1|subject"] == pytest.approx(r["rho"], rel=1e-8)
    assert b.draws.loc[0, "rho__ar1|subject"] != pytest.approx(b.draws.loc[1, "rho__ar1|subject"], rel=1e-3)


def test_toeplitz_profile_lag_one_on_the_cutoff(fits):
    """toep_pois: ρ1 is the first partial autocorrelation (glmm_nb's c1 = ρ1/√(1−ρ1²)), so its
    profile is checked in theta by a plain optimizer: each limit at the ML deviance + 3.8415 (2e-3)."""
    from scipy import optimize

    from glmm_nb.inference.profile import profile_confint
    from glmm_nb.pipeline import make_devfun

    m = fits["toep_pois"][1]
    ci = profile_confint(m, parm=["rho1__toep|id"])
    f = make_devfun(m.request)
    x_hat = np.asarray(m.opt.final)
    d_hat = f(x_hat)
    j = 4  # theta: 4 SDs, then c1, c2, c3; then beta
    bounds = [(0.0, None)] * 4 + [(None, None)] * (x_hat.size - 4)
    free = np.arange(x_hat.size) != j
    for v in ci.loc["rho1__toep|id"]:
        def g(z, c=v / np.sqrt(1 - v * v)):
            x = np.empty(x_hat.size)
            x[free], x[j] = z, c
            val, grad = f.value_and_grad(x)
            return val, grad[free]

        res = optimize.minimize(g, x_hat[free], jac=True, method="L-BFGS-B",
                                bounds=[b for b, k in zip(bounds, free) if k], options={"ftol": 1e-14, "gtol": 1e-9})
        assert res.fun - d_hat == pytest.approx(stats.chi2.ppf(0.95, 1), abs=2e-3), v


TOEP = json.loads((S / "profile_refs_toep_gauss.json").read_text())


def _pacf_yule_walker(rho):
    """Partial autocorrelations from lag correlations rho_1..rho_{q-1}: the last coefficient of the
    order-k Yule-Walker solution (a dense solve, not Durbin-Levinson)."""
    full = np.r_[1.0, rho]
    out = []
    for k in range(1, len(rho) + 1):
        R = full[np.abs(np.subtract.outer(np.arange(k), np.arange(k)))]
        out.append(np.linalg.solve(R, full[1 : k + 1])[-1])
    return np.array(out)


@pytest.mark.parametrize("cid", ["toep_pois", "epil_toep_pois"])
def test_toeplitz_lag_correlation_profiles_against_glmmtmb(fits, cid):
    """Every lag correlation of a toep term gets a profile interval: the profile of rho_k itself, the
    other lag correlations re-optimized subject to positive definiteness — the quantity glmmTMB 1.1.5
    profiles (its theta is c_k with rho_k = c_k/sqrt(1+c_k^2) on the lag correlations). glmmTMB's own
    confint(method = "profile") stops on these ("missing values in object": its profile meets NaN
    deviances at non-positive-definite points), so the reference is its profile(m) points
    (make_profile_refs_toep_gauss.R): at each of them (half the deviance rise `value`, up to 3.5) our
    profile deviance rise is 2 * value to 2e-3, and each of our limits lies between glmmTMB's two points
    that straddle the cut-off (when its points reach it). glmmTMB's spline rule on those points, also
    stored, is not used: it lands outside that bracket (toep_pois rho1 lower: 0.2163, while its points
    cross between 0.2432 and 0.3443)."""
    from glmm_nb.inference.profile import ProfileProblem, profile_confint

    m = fits[cid][1]
    ref = TOEP[cid]
    label = "id" if cid == "toep_pois" else "subject"
    names = [f"rho{k}__toep|{label}" for k in (1, 2, 3)]
    ci = profile_confint(m, parm=names)
    assert not ci.isna().any().any()
    assert all(n in ci.attrs["note"] for n in names) and "lag correlation itself" in ci.attrs["note"]
    prob = ProfileProblem(m)
    cut = stats.chi2.ppf(0.95, 1)
    for name, pname in zip(names, ref["profile_names"][4:]):
        pts = sorted((c / np.sqrt(1 + c * c), v) for c, v in zip(ref["profile"][pname]["focal"], ref["profile"][pname]["value"])
                     if v is not None)
        checked = 0
        for rho, val in pts:
            if 0.1 < val < 3.5:
                d, _ = prob.restricted(name, rho, None)
                assert d - prob.d_hat == pytest.approx(2 * val, abs=2e-3), (name, rho)
                checked += 1
        assert checked >= 4
        lo, hi = ci.loc[name, "conf_low"], ci.loc[name, "conf_high"]
        for side, lim in ((-1, lo), (1, hi)):
            half = [(r, 2 * v) for r, v in pts if (r - prob.estimate(name)) * side > 0]
            half.sort(key=lambda t: side * t[0])
            cross = [(a, b) for a, b in zip(half, half[1:]) if a[1] < cut <= b[1]]
            if cross:
                (r0, _), (r1, _) = cross[0]
                assert min(r0, r1) < lim < max(r0, r1), (name, side, lim, r0, r1)


def test_toeplitz_limits_sit_on_the_cutoff(fits):
    """toep_pois: at each limit of rho2 and rho3 the deviance minimised over everything else is the ML
    deviance + 3.8415 (1e-3), checked independently of the profile's own coordinates: the argmin is
    read back as SDs and lag correlations (from T T'), the deviance is evaluated from glmmTMB's
    coordinates (log SDs, c of the other lag correlations, beta; partial autocorrelations by dense
    Yule-Walker solves, a non-positive-definite point refused), and Nelder-Mead started there finds
    nothing lower by more than 1e-4."""
    from scipy import optimize

    from glmm_nb.inference.params import sdcor_to_theta
    from glmm_nb.inference.profile import ProfileProblem, profile_confint
    from glmm_nb.pipeline import make_devfun

    m = fits["toep_pois"][1]
    f = make_devfun(m.request)
    d_hat = f(np.asarray(m.opt.final))
    prob = ProfileProblem(m)
    assert prob.d_hat == pytest.approx(d_hat, abs=1e-8)
    cut = stats.chi2.ppf(0.95, 1)
    ci = profile_confint(m, parm=["rho2__toep|id", "rho3__toep|id"])
    for k in (2, 3):
        name = f"rho{k}__toep|id"
        for lim in ci.loc[name]:
            _, x = prob.restricted(name, lim, None)
            theta, _ = sdcor_to_theta(m.spec, x[:7], False, pacf=True)
            T = m.spec.terms[0].T(theta)
            S_ = T @ T.T
            sd = np.sqrt(np.diag(S_))
            R = S_ / np.outer(sd, sd)
            rho = np.array([R[j, 0] for j in (1, 2, 3)])
            assert rho[k - 1] == pytest.approx(lim, abs=1e-9)
            others = [j for j in range(3) if j != k - 1]

            def dev(p, lim=lim, others=others, k=k):
                r = np.empty(3)
                r[k - 1] = lim
                r[others] = p[4:6] / np.sqrt(1 + p[4:6] ** 2)
                Rm = np.r_[1.0, r][np.abs(np.subtract.outer(np.arange(4), np.arange(4)))]
                if np.linalg.eigvalsh(Rm)[0] <= 1e-10:
                    return 1e10
                phi = _pacf_yule_walker(r)
                return f(np.r_[np.exp(p[:4]), phi / np.sqrt(1 - phi**2), p[6:]])

            p0 = np.r_[np.log(sd), rho[others] / np.sqrt(1 - rho[others] ** 2), x[7:]]
            assert dev(p0) - d_hat == pytest.approx(cut, abs=1e-3), (name, lim)
            res = optimize.minimize(dev, p0, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxfev": 4000})
            assert res.fun >= dev(p0) - 1e-4, (name, lim, res.fun - dev(p0))


def test_profile_of_a_spatial_gaussian_field_without_nugget():
    """exp_spatial_gauss (ML; glmmTMB puts sigma at 2e-5, a boundary): the SD and range profiles run
    with sigma at its floor. Against a dense brute force (V = sd^2 exp(-D/range) + s^2 I over the 120
    locations, s >= 0 with 0 allowed, Nelder-Mead): each limit is at the minimum + 3.8415 (1e-3).
    glmmTMB 1.1.5's upper limits agree (3e-4); its lower ones do not lie on the cut-off (the dense
    profile is 0.14 and 0.28 above it there: its spline), which the test shows."""
    from scipy import optimize

    case, d = load("exp_spatial_gauss")
    with pytest.warns(Warning):
        m = glmm_nb.glmm(case["formula"], d, family="gaussian", reml=False)
    from glmm_nb.inference.profile import profile_confint

    ci = profile_confint(m, parm=["sd__exp|grp", "range__exp|grp"])
    X, y = np.asarray(m.spec.X), d["y"].to_numpy()
    xy = d[["sx", "sy"]].to_numpy()
    D = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))

    def dev(sd, rng, sig):
        L = np.linalg.cholesky(sd**2 * np.exp(-D / rng) + sig**2 * np.eye(len(y)))
        Xt, yt = np.linalg.solve(L, X), np.linalg.solve(L, y)
        r = yt - Xt @ np.linalg.lstsq(Xt, yt, rcond=None)[0]
        return 2 * np.log(np.diag(L)).sum() + r @ r + len(y) * np.log(2 * np.pi)

    nm = {"xatol": 1e-10, "fatol": 1e-12}
    d_min = optimize.minimize(lambda p: dev(np.exp(p[0]), np.exp(p[1]), abs(p[2])), [0.29, 1.03, 0.01],
                              method="Nelder-Mead", options=nm | {"maxfev": 20000}).fun
    assert -d_min / 2 == pytest.approx(case["loglik"], abs=1e-6)
    cut = stats.chi2.ppf(0.95, 1)

    def prof_sd(v):
        return optimize.minimize(lambda p: dev(v, np.exp(p[0]), abs(p[1])), [1.03, 0.01], method="Nelder-Mead", options=nm).fun - d_min

    def prof_range(v):
        return optimize.minimize(lambda p: dev(np.exp(p[0]), v, abs(p[1])), [0.29, 0.01], method="Nelder-Mead", options=nm).fun - d_min

    for v in ci.loc["sd__exp|grp"]:
        assert prof_sd(v) == pytest.approx(cut, abs=1e-3), v
    for v in ci.loc["range__exp|grp"]:
        assert prof_range(v) == pytest.approx(cut, abs=1e-3), v
    ref = TOEP["exp_spatial_gauss"]  # glmmTMB's theta_: log SD, log range
    assert ci.loc["sd__exp|grp", "conf_high"] == pytest.approx(np.exp(ref["upper"][0]), rel=3e-4)
    assert ci.loc["range__exp|grp", "conf_high"] == pytest.approx(np.exp(ref["upper"][1]), rel=3e-4)
    assert prof_sd(np.exp(ref["lower"][0])) - cut > 0.1 and prof_range(np.exp(ref["lower"][1])) - cut > 0.2


def test_profile_of_a_gaussian_ou_against_glmmtmb(fits):
    """ou_gauss (ML): the SD's and the rate's profile limits match glmmTMB 1.1.5's
    confint(method = "profile") (its log SD and log rate, mapped back; 3e-4)."""
    from glmm_nb.inference.profile import profile_confint

    m = fits["ou_gauss"][1]
    ref = TOEP["ou_gauss"]
    ci = profile_confint(m, parm=["sd__ou|id", "rate__ou|id"])
    np.testing.assert_allclose(ci["conf_low"], np.exp(ref["lower"]), rtol=3e-4)
    np.testing.assert_allclose(ci["conf_high"], np.exp(ref["upper"]), rtol=3e-4)
