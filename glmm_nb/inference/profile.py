r"""Likelihood-ratio profile confidence intervals (lme4's ``confint(method = "profile")``).

For a parameter :math:`\psi_j` (a fixed effect, a random-effect SD or correlation, or the
residual SD) the profile deviance is :math:`D_j(v) = \min_{\psi: \psi_j = v} D(\psi)`, and
the interval is where the signed root :math:`\zeta(v) = \mathrm{sign}(v - \hat\psi_j)
\sqrt{D_j(v) - D(\hat\psi)}` lies within :math:`\pm z_{(1+\text{level})/2}`. Random-effect
parameters are profiled on the SD/correlation scale; an SD whose profile never reaches the
cut-off towards zero gets the lower limit 0.

GLMMs: D over (SDs/correlations, beta) with the Laplace or AGQ deviance. LMMs: D over
(SDs/correlations, sigma) with beta profiled out exactly; a fixed effect is profiled by
moving it into the offset. A REML fit is profiled as lme4 profiles it: on the ML deviance of
the model refitted with ``reml=False`` (said in a warning and ``attrs["note"]``). A binomial
fit with separation is refused at once (its separated coefficients have no finite limits).

Gaussian models where the residual SD runs to 0 along a profile (a structured term taking over
the residual variance): :math:`\sigma = 0` is a boundary of the model (:math:`V = Z\Sigma Z' +
\sigma^2 I` stays positive definite when :math:`Z\Sigma Z'` is), but :math:`\theta = SD/\sigma`
cannot reach it. The profile holds :math:`\sigma \ge` :data:`SIGMA_FLOOR` × the largest SD (or σ) at
the fit: the deviance there is that of σ = 0 up to :math:`O(\text{floor}^2)` (measured against a
dense computation at σ = 0: 1e-4 on exp_spatial_gauss along its SD profile, less on ar1_gauss) while
θ ≤ ~1e3 keeps the deviance accurate to 1e-11 — at a floor of 1e-4 its rounding (1e-6) made the
optimizer's finite-difference gradients noise and the exp_spatial_gauss profile stopped on false
limits. A limit the profile does not reach is the bound (SDs and σ: 0, correlations: ±1) when
the profile stays below the cut-off as far as it, and ±inf when it levels off; notes say which.

Toeplitz terms: the profile moves in a term's partial autocorrelations :math:`\varphi_k` (a box:
every :math:`|\varphi_k| < 1` is a positive-definite matrix), but the parameters it reports are
glmmTMB's: the SDs and the lag correlations :math:`\rho_k` themselves. :math:`\rho_1 = \varphi_1`;
for :math:`k \ge 2`, :math:`\rho_k = v` is held by eliminating :math:`\varphi_k`, which is linear in
:math:`\rho_k` given :math:`\varphi_1 .. \varphi_{k-1}` (:func:`~glmm_nb.design.covstruct.pacf_for_lag`),
and the deviance is minimised over everything else — the other lag correlations included — subject
to positive definiteness (:math:`|\varphi_k| < 1`, held by a quadratic penalty beyond
:math:`1 - 10^{-8}`). That is the profile of the lag-k correlation glmmTMB 1.1.5 parametrizes
(:math:`\rho_k = c_k/\sqrt{1 + c_k^2}`); its own ``confint(method = "profile")`` stops there on the
NaN deviance of non-positive-definite points.

Ordinal models: the thresholds are profiled on their own scale. The optimizer holds them as
:math:`\tau = (\alpha_1, \log(\alpha_2 - \alpha_1), \dots)`, where :math:`\alpha_k` is not one
coordinate; with :math:`\alpha_k = v` held, :math:`\tau_1 = v - \sum_{j=2}^{k} e^{\tau_j}` is
eliminated and the deviance minimised over everything else (the chain rule carries the
analytic gradient through the elimination).

Random effects in the zero part: their SDs/correlations (``zi~sd__(Intercept)|g``) are profiled
like the count part's, on the SD/correlation scale; they sit last in the vector, where the
optimizer keeps the zero part's theta.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats
from threadpoolctl import threadpool_limits

from ..design import separation_message
from ..design.covstruct import pacf_for_lag
from ..errors import ModelError, warn
from ..likelihood import LmmDevfun
from ..pipeline import make_devfun, refit
from ..progress import Progress, progress_enabled
from .params import (sdcor_bounds, sdcor_names, sdcor_to_theta, theta_to_sdcor, zi_sdcor_bounds, zi_sdcor_names,
                     zi_sdcor_to_theta, zi_theta_to_sdcor)

__all__ = ["profile_confint", "ProfileProblem"]


class ProfileProblem:
    """The deviance on the (sdcor, beta) scale for one fitted model (its request's deviance
    function, from the public chain). A Toeplitz term moves in its partial autocorrelations (a
    box; the first is ρ1); its lag correlations ρ2, ρ3 … are profiled by eliminating their partial
    autocorrelation (module docstring)."""

    def __init__(self, m):
        self.m = m
        self.spec = m.spec
        self.gaussian = m.request.family.profiled_lmm
        self.dev = make_devfun(m.request)
        self.psi_hat = theta_to_sdcor(m.spec, m.theta, m.sigma, self.gaussian, pacf=True)
        self.re_names = sdcor_names(m.spec, self.gaussian)
        self.zi_names = zi_sdcor_names(m.spec)
        self.zi_psi_hat = zi_theta_to_sdcor(m.spec, m.zi_theta, pacf=True)
        self.beta_hat = m.fixef.to_numpy()
        if self.gaussian:
            self.names = list(m.fixef.index) + self.re_names
            self.x_hat = self.psi_hat
            self.bounds = sdcor_bounds(m.spec, True)
        else:
            self.names = list(m.fixef.index) + self.re_names
            # the dispersion (if any) is profiled on the log scale, the optimizer's
            # extras after beta, on the optimizer's scale: log-dispersion, zero-part coefficients
            self.extra_names = (list(m.dispersion.index) + [f"zi~{c}" for c in m.zi_fixef.index]
                                + [f"disp~{c}" for c in m.disp_fixef.index])
            fam = m.request.family
            disp_x = [fam.from_dispersion(float(d), k) for k, d in enumerate(m.dispersion)]
            self.extra_hat = np.concatenate([np.asarray(disp_x, dtype=float), m.zi_fixef.to_numpy(),
                                             m.disp_fixef.to_numpy()])
            # ordinal: the thresholds by name, held as tau (the optimizer's scale)
            self.thresholds = list(m.thresholds.index)
            if self.thresholds:
                self.extra_names += self.thresholds
                self.extra_hat = np.concatenate([self.extra_hat, m.request.family.tau(m.thresholds.to_numpy())])
            # the zero part's random-effect SDs/correlations, last (the optimizer's zero-part theta)
            self.extra_names += self.zi_names
            self.extra_hat = np.concatenate([self.extra_hat, self.zi_psi_hat])
            self.x_hat = np.concatenate([self.psi_hat, self.beta_hat, self.extra_hat])
            self.bounds = (sdcor_bounds(m.spec, False)
                           + [(None, None)] * (len(self.beta_hat) + len(self.extra_hat) - len(self.zi_names))
                           + zi_sdcor_bounds(m.spec))
        self.structured = any(t.structured for t in m.spec.terms)
        self.toep_lags = _toep_lags(self.re_names)  # name -> (position, lag) for lags >= 2
        self.sigma_floor = 0.0
        if self.gaussian:
            # sigma -> 0 is a boundary of the model (V = Z Sigma Z' + sigma^2 I stays positive definite
            # when Z Sigma Z' is), but theta = SD/sigma cannot follow it: the profile holds sigma at
            # SIGMA_FLOOR times the largest SD or sigma at the fit, where the deviance is that of
            # sigma = 0 up to O(floor^2) and theta's Cholesky factor is still accurate (module docstring)
            sds = [v for n, v in zip(self.re_names, self.psi_hat) if n.startswith("sd__")]
            self.sigma_floor = SIGMA_FLOOR * max([m.sigma] + sds)
            self.bounds = self.bounds[:-1] + [(self.sigma_floor, None)]
            self.x_hat = self.x_hat.copy()
            self.x_hat[-1] = max(self.x_hat[-1], self.sigma_floor)
        self.lbfgs_options = {"ftol": 1e-13, "gtol": 1e-9}
        if self.gaussian and self.structured:
            # theta = SD/sigma up to ~1e4 near sigma's floor: the deviance carries rounding of ~1e-9,
            # which L-BFGS-B's default forward-difference step (1e-8) turns into gradient noise
            self.lbfgs_options["eps"] = 1e-6
        self.d_hat = self.objective(self.x_hat)
        self.d_fit = self.d_hat
        if self.gaussian and self.x_hat[-1] <= 10 * self.sigma_floor:
            self._polish()

    def _polish(self) -> None:
        """A fit whose residual SD ran to its boundary stops short of the supremum (theta = SD/sigma
        grows without bound): the profile's minimum is found again with sigma allowed down to its
        floor, and limits are measured from it (``d_fit - d_hat`` is said in the note)."""
        res = optimize.minimize(self.objective, self.x_hat, method="L-BFGS-B", bounds=self.bounds,
                                options={"ftol": 1e-14, "gtol": 1e-10})
        if res.fun < self.d_hat:
            self.x_hat, self.d_hat = res.x, float(res.fun)
            self.psi_hat = res.x

    def objective(self, x: np.ndarray, dev=None) -> float:
        if self.gaussian:
            theta, sigma = sdcor_to_theta(self.spec, x, True, pacf=True)
            return (dev or self.dev).deviance_sigma(theta, sigma)
        return self.dev(self.phi(x))

    def phi(self, x: np.ndarray) -> np.ndarray:
        """The optimizer's parameters at ``x``: theta from the SDs/correlations (first, and the
        zero part's last), the rest as they are."""
        k, kz = len(self.psi_hat), len(self.zi_names)
        theta, _ = sdcor_to_theta(self.spec, x[:k], False, pacf=True)
        zi = zi_sdcor_to_theta(self.spec, x[x.size - kz:], pacf=True)
        return np.concatenate([theta, x[k:x.size - kz], zi])

    def objective_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """GLMM deviance and its gradient on the (sdcor, beta) scale: the analytic gradient in
        theta (both parts') times the Jacobian of the (cheap) sdcor → theta map, by finite
        differences."""
        k, kz = len(self.psi_hat), len(self.zi_names)
        phi = self.phi(x)
        val, g = self.dev.value_and_grad(phi)
        out = np.array(g, dtype=float)
        for lo, n, to_theta in ((0, k, lambda p: sdcor_to_theta(self.spec, p, False, pacf=True)[0]),
                                (x.size - kz, kz, lambda p: zi_sdcor_to_theta(self.spec, p, pacf=True))):
            if not n:
                continue
            psi = x[lo:lo + n]
            theta = to_theta(psi)
            Jac = np.empty((theta.size, n))
            for i in range(n):
                h = 1e-7 * max(1.0, abs(psi[i]))
                e = np.zeros(n)
                e[i] = h
                Jac[:, i] = (to_theta(psi + e) - theta) / h
            tlo = 0 if lo == 0 else phi.size - theta.size
            gt = g[tlo:tlo + theta.size]
            if lo == 0:
                out = np.concatenate([Jac.T @ gt, out[theta.size:]])
            else:
                out = np.concatenate([out[: out.size - theta.size], Jac.T @ gt])
        return val, out

    def restricted(self, name: str, v: float, warm: np.ndarray | None):
        """min D with parameter ``name`` fixed at ``v``: (deviance, argmin of the rest)."""
        if self.gaussian and name in self.m.fixef.index:
            if self.m.reml:
                raise ModelError(
                    "profiling a fixed effect of a REML fit is not defined; refit with reml=False"
                )
            k = list(self.m.fixef.index).index(name)
            X = np.asarray(self.spec.X)
            dev = LmmDevfun(self.spec, reml=False, X=np.delete(X, k, axis=1), y_adjust=X[:, k] * v, rs=self.dev.rs)
            x0 = self.x_hat if warm is None else warm
            res = optimize.minimize(lambda x: self.objective(x, dev), x0, method="L-BFGS-B",
                                    bounds=self.bounds, options=self.lbfgs_options)
            return float(res.fun), res.x
        if not self.gaussian and name in self.thresholds:
            return self._restricted_threshold(self.thresholds.index(name), v, warm)
        if name in self.toep_lags:
            return self._restricted_toep_lag(*self.toep_lags[name], v, warm)
        j = self._index(name)
        free = np.arange(len(self.x_hat)) != j
        x = (self.x_hat if warm is None else warm).copy()

        def f(z):
            x[free] = z
            x[j] = v
            if self.gaussian or not self.dev.analytic_gradient:
                return self.objective(x)
            val, g = self.objective_grad(x)
            return val, g[free]

        jac = not self.gaussian and self.dev.analytic_gradient
        res = optimize.minimize(f, x[free], jac=jac, method="L-BFGS-B",
                                bounds=[b for b, keep in zip(self.bounds, free) if keep],
                                options=self.lbfgs_options)
        x[free] = res.x
        x[j] = v
        return float(res.fun), x.copy()

    def _restricted_threshold(self, k: int, v: float, warm: np.ndarray | None):
        """min D with threshold k (0-based) at ``v``: tau_1 eliminated (module docstring)."""
        j0 = len(self.x_hat) - len(self.thresholds)  # position of tau_1
        inc = np.arange(j0 + 1, j0 + k + 1)  # the log increments up to threshold k
        free = np.arange(len(self.x_hat)) != j0
        x = (self.x_hat if warm is None else warm).copy()
        analytic = self.dev.analytic_gradient

        def fill(z):
            x[free] = z
            x[j0] = v - np.sum(np.exp(x[inc]))
            return x

        def f(z):
            fill(z)
            if not analytic:
                return self.objective(x)
            val, g = self.objective_grad(x)
            g = g.copy()
            g[inc] -= g[j0] * np.exp(x[inc])
            return val, g[free]

        res = optimize.minimize(f, x[free], jac=analytic, method="L-BFGS-B",
                                bounds=[b for b, keep in zip(self.bounds, free) if keep],
                                options={"ftol": 1e-13, "gtol": 1e-9})
        fill(res.x)
        return float(res.fun), x.copy()

    def _restricted_toep_lag(self, j: int, k: int, v: float, warm: np.ndarray | None):
        """min D with a Toeplitz term's lag-k correlation at ``v`` (k ≥ 2; ``j``: the position of
        its k-th partial autocorrelation φ_k in x, φ_1 .. φ_{k-1} just before it): φ_k is
        eliminated, φ_k = pacf_for_lag(φ_1..φ_{k-1}, v); beyond |φ_k| = 1 − 1e-8 (not positive
        definite) φ_k is held at the edge and the excess penalized quadratically."""
        prev = np.arange(j - k + 1, j)
        free = np.arange(len(self.x_hat)) != j
        x = (self.x_hat if warm is None else warm).copy()
        analytic = not self.gaussian and self.dev.analytic_gradient
        edge, weight = 1.0 - 1e-8, 1e8

        def fill(z):
            x[free] = z
            raw = pacf_for_lag(x[prev], v)
            x[j] = np.clip(raw, -edge, edge)
            return raw

        def f(z):
            raw = fill(z)
            excess = abs(raw) - edge
            pen = weight * excess**2 if excess > 0 else 0.0
            if not analytic:
                return self.objective(x) + pen
            val, g = self.objective_grad(x)
            g = g.copy()
            # dφ_k/dφ_i by the complex step (pacf_for_lag is analytic in φ_1..φ_{k-1})
            dphi = np.empty(prev.size)
            for i in range(prev.size):
                e = x[prev].astype(complex)
                e[i] += 1e-30j
                dphi[i] = np.imag(pacf_for_lag(e, v)) / 1e-30
            slope = g[j] if excess <= 0 else 2.0 * weight * excess * np.sign(raw)
            g[prev] += slope * dphi
            return val + pen, g[free]

        bounds = [(-edge, edge) if i in prev else b for i, b in enumerate(self.bounds)]  # v_{k-1} > 0
        res = optimize.minimize(f, np.clip(x[free], [b[0] if b[0] is not None else -np.inf for b, k in zip(bounds, free) if k],
                                           [b[1] if b[1] is not None else np.inf for b, k in zip(bounds, free) if k]),
                                jac=analytic, method="L-BFGS-B", bounds=[b for b, keep in zip(bounds, free) if keep],
                                options=self.lbfgs_options)
        raw = fill(res.x)
        excess = abs(raw) - edge
        return float(res.fun) - (weight * excess**2 if excess > 0 else 0.0), x.copy()

    def _index(self, name: str) -> int:
        if self.gaussian:
            return self.re_names.index(name)
        k = len(self.psi_hat)
        if name in self.re_names:
            return self.re_names.index(name)
        if not self.gaussian and name in self.extra_names:
            return len(self.x_hat) - len(self.extra_names) + self.extra_names.index(name)
        return k + list(self.m.fixef.index).index(name)

    def estimate(self, name: str) -> float:
        if name in self.toep_lags:  # the lag correlation, not the partial autocorrelation held in x
            return float(self.m.structure_parameters()[name.rsplit("|", 1)[1]][name.split("__", 1)[0]])
        if name in self.m.fixef.index:
            return float(self.m.fixef[name])
        if not self.gaussian and name in self.thresholds:
            return float(self.m.thresholds[name])
        if not self.gaussian and name in self.extra_names:
            return float(self.extra_hat[self.extra_names.index(name)])
        return float(self.psi_hat[self.re_names.index(name)])

    def bound(self, name: str) -> tuple[float | None, float | None]:
        if name in self.zi_names:
            return zi_sdcor_bounds(self.spec)[self.zi_names.index(name)]
        if name in self.m.fixef.index or (not self.gaussian and name in self.extra_names):
            return (None, None)
        return self.bounds[self.re_names.index(name)]  # sigma: its floor (__init__)


FLAT = 1e-6  # deviance change between two widening steps below which a profile has levelled off
SIGMA_FLOOR = 1e-3  # a gaussian profile's residual SD >= this times the largest SD (or sigma) at the fit


def _limit(prob: ProfileProblem, name: str, side: int, z: float, scale: float, log_scale: bool = False) -> float:
    """The limit on one side: steps widening by 1.6 until the signed root passes ``side * z``,
    then Brent's root between the last two points. A family parameter on the log scale
    (``log_scale``: log(df), log(theta) …) whose profile levels off below the cut-off (the
    deviance changes by less than :data:`FLAT` over a widening step, as t's log(df) approaching
    the gaussian limit) has no limit on that side: ``side * inf`` — not a crossing found later
    in the numerical noise of an extreme value (df ~ 1e13). On the natural scale of an SD or a
    coefficient a slow rise is not a limit, so there the search goes on."""
    est = prob.estimate(name)
    lo, hi = prob.bound(name)
    edge = lo if side < 0 else hi
    warm = [None]

    def deviance(v):
        try:
            d, x = prob.restricted(name, v, warm[0])
        except np.linalg.LinAlgError:  # a correlation matrix singular to working precision
            raise _NoLimit from None
        warm[0] = x
        return d

    def zeta(v, d=None):
        d = deviance(v) if d is None else d
        return np.sign(v - est) * np.sqrt(max(d - prob.d_hat, 0.0))

    try:
        return _search(zeta, deviance, prob.d_hat, est, edge, side * z, side, scale, log_scale)
    except _NoLimit:
        return float("nan")


class _NoLimit(Exception):
    """The profile met a numerically singular covariance before the cut-off: no limit."""


def _search(zeta, deviance, d_hat: float, est: float, edge, target: float, side: int, scale: float,
            log_scale: bool) -> float:
    step = scale
    prev, d_prev = est, d_hat
    for _ in range(40):
        v = est + side * step
        if edge is not None and (v - edge) * side >= 0:
            v = edge
        d_v = deviance(v)
        if (zeta(v, d_v) - target) * side >= 0:
            return optimize.brentq(lambda t: zeta(t) - target, min(prev, v), max(prev, v), xtol=1e-7, rtol=1e-9)
        if edge is not None and v == edge:
            return float(edge)
        if log_scale and prev != est and abs(d_v - d_prev) < FLAT:
            return side * float("inf")
        prev, d_prev = v, d_v
        step *= 1.6
    # 40 widening steps (1.6^40 ~ 1e8 times the first) without reaching the cut-off: the profile
    # has levelled off below it (a rate or range whose likelihood flattens out): no limit
    return side * float("inf")


def profile_confint(m, level: float = 0.95, parm: list[str] | None = None) -> pd.DataFrame:
    """Profile-likelihood intervals, indexed by term, columns ``conf_low conf_high``."""
    separated = m.spec.meta.get("separated") or ()
    if separated:
        raise ModelError(f"profile intervals are not available: {separation_message(separated)}")
    note = ""
    if m.request.family.profiled_lmm and m.reml:
        note = ("profile intervals are computed on the ML deviance, as lme4's confint does: the REML fit was "
                "refitted with reml=False")
        warn(note, UserWarning)
        m = refit(m, reml=False)
    # many small optimizations on small dense blocks: BLAS threads cost more than they give
    with threadpool_limits(limits=1, user_api="blas"):
        out = _profile_confint(m, level, parm)
    unbounded = out.attrs.pop("unbounded", "")
    out.attrs["note"] = "; ".join(n for n in (note, out.attrs.get("note", ""), unbounded) if n)
    return out


def _profile_confint(m, level: float, parm: list[str] | None) -> pd.DataFrame:
    prob = ProfileProblem(m)
    z = stats.norm.ppf(0.5 + level / 2)
    names = prob.re_names + list(m.fixef.index) + (prob.extra_names if not prob.gaussian else [])
    if parm is not None:
        unknown = [p for p in parm if p not in names]
        if unknown:
            raise ModelError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; choose from {', '.join(names)}")
        names = [n for n in names if n in parm]
    se = np.sqrt(np.diag(m.vcov.to_numpy()))
    th_se = np.sqrt(np.diag(m.thresholds_vcov.to_numpy())) if len(m.thresholds) else np.zeros(0)
    rows = []
    bar = Progress("profile intervals", total=2 * len(names), unit="limit",
                   enabled=progress_enabled(m.request.control.get("progress")))
    with bar:
        for name in names:
            rows.append(_profile_limits(m, prob, name, z, se, th_se, bar))
    out = pd.DataFrame(rows, columns=["term", "conf_low", "conf_high"]).set_index("term")
    notes = []
    if prob.d_fit - prob.d_hat > 1e-6:
        notes.append(f"the profiles start from a deviance {prob.d_fit - prob.d_hat:.2g} below the fit's: with the residual "
                     f"SD at its boundary ({prob.sigma_floor:.2g}, standing for 0) the fit's SD/sigma parameterization "
                     "stopped short of the supremum")
    toep = [n for n in names if "__toep|" in n and n.startswith("rho")]
    if toep:
        notes.append(f"{', '.join(toep)}: the profile of the lag correlation itself, with the other lag correlations "
                     "re-optimized subject to positive definiteness")
    out.attrs["note"] = "; ".join(notes)
    out.attrs["unbounded"] = "; ".join(n for n in (_unbounded_note(m, out), _bound_note(prob, out)) if n)
    return out


def _bound_note(prob: ProfileProblem, out: pd.DataFrame) -> str:
    """A sentence for each random-effect limit at the parameter's bound (an SD or the residual SD at
    0, a correlation at ±1 or at cs's −1/(q−1), a rate or range at 0): the profile stays below the
    cut-off all the way there, so the bound is the limit."""
    notes = []
    for term, row in out.iterrows():
        if term not in prob.re_names:
            continue
        lo_b, hi_b = prob.bound(term)
        if term == "sigma":
            lo_b = 0.0
        for col, word, b in (("conf_low", "lower", lo_b), ("conf_high", "upper", hi_b)):
            if b is not None and row[col] == b:
                notes.append(f"the profile of {term} stays below the cut-off as far as its bound {b:g}: "
                             f"the {word} limit is the bound")
    return "; ".join(notes)


def _toep_lags(re_names: list[str]) -> dict[str, tuple[int, int]]:
    """``rho2__toep|g``, ``rho3__toep|g``, … → (position among the random-effect parameters, lag)."""
    out = {}
    for i, name in enumerate(re_names):
        head = name.split("__", 1)[0]
        if "__toep|" in name and head.startswith("rho") and head[3:].isdigit() and int(head[3:]) >= 2:
            out[name] = (i, int(head[3:]))
    return out


def _unbounded_note(m, out: pd.DataFrame) -> str:
    """A sentence for each limit that is infinite because the profile levelled off."""
    fam = m.request.family
    notes = []
    for term, row in out.iterrows():
        for col, word in (("conf_low", "lower"), ("conf_high", "upper")):
            if not np.isinf(row[col]):
                continue
            toward = "infinity" if row[col] > 0 else "-infinity"
            limit = ""
            if term == getattr(fam, "shape_name", None) and fam.limit_family is not None:
                limit = f" (the {fam.limit_family.name} limit)"
            notes.append(f"the profile of {term} levels off below the cut-off as {term} -> {toward}{limit}: "
                         f"the data set no {word} limit, reported as {row[col]:g}")
    return "; ".join(notes)


def _profile_limits(m, prob: ProfileProblem, name: str, z: float, se, th_se, bar: Progress) -> tuple:
    """(name, lower, upper) of one parameter, each limit a step of the progress bar."""
    if name in m.fixef.index:
        scale = float(se[list(m.fixef.index).index(name)])
    elif name in m.thresholds.index:
        scale = float(th_se[list(m.thresholds.index).index(name)])
    else:
        scale = 0.25 * max(abs(prob.estimate(name)), 0.05)
        if name.startswith(("cor__", "rho")):
            scale = 0.1
    log_scale = name in m.dispersion.index
    lo = _limit(prob, name, -1, z, scale, log_scale)
    bar.update(1, name)
    hi = _limit(prob, name, +1, z, scale, log_scale)
    bar.update(1, name)
    if name == "sigma" and lo <= prob.sigma_floor * (1 + 1e-9):  # the floor stands for sigma = 0
        lo = 0.0
    if name in m.dispersion.index:  # profiled on the optimizer's scale; intervals are invariant
        k = list(m.dispersion.index).index(name)
        lo, hi = m.request.family.to_dispersion(lo, k), m.request.family.to_dispersion(hi, k)
    return name, lo, hi
