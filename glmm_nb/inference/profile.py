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
    box; the first is ρ1): only its SDs and ρ1 are profiled (:func:`_toep_higher_lag`)."""

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
        self.d_hat = self.objective(self.x_hat)
        self.structured = any(t.structured for t in m.spec.terms)
        self.nugget_lost: set[str] = set()  # limits not given: sigma -> 0 on the profile

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
                                    bounds=self.bounds, options={"ftol": 1e-13, "gtol": 1e-9})
            return float(res.fun), res.x
        if not self.gaussian and name in self.thresholds:
            return self._restricted_threshold(self.thresholds.index(name), v, warm)
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
                                options={"ftol": 1e-13, "gtol": 1e-9})
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
        return sdcor_bounds(self.spec, self.gaussian)[self.re_names.index(name)]


FLAT = 1e-6  # deviance change between two widening steps below which a profile has levelled off


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
        if prob.gaussian and prob.structured and x[-1] < 1e-3 * prob.x_hat[-1]:
            # the residual SD runs to 0 (a vanishing nugget): theta = SD/sigma cannot follow it
            prob.nugget_lost.add(name)
            raise _NoLimit
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
    return float("nan")


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
    skipped = [n for n in names if _toep_higher_lag(n)]
    with bar:
        for name in names:
            if name in skipped:
                rows.append((name, np.nan, np.nan))
                bar.update(2, name)
                continue
            rows.append(_profile_limits(m, prob, name, z, se, th_se, bar))
    out = pd.DataFrame(rows, columns=["term", "conf_low", "conf_high"]).set_index("term")
    notes = []
    if prob.nugget_lost:
        notes.append(f"no profile limit on one side for {', '.join(sorted(prob.nugget_lost))}: along it the residual SD "
                     "runs to 0 (the structured term takes over the residual variance), where the SD/sigma "
                     "parameterization cannot follow; see the Wald interval")
    if skipped:
        notes.append(f"no profile limits for {', '.join(skipped)}: a Toeplitz lag correlation beyond lag one "
                     "is bounded by the others (positive definiteness), which a box-constrained profile "
                     "cannot hold; use method='wald' or 'bootstrap' for these")
    out.attrs["note"] = "; ".join(notes)
    out.attrs["unbounded"] = _unbounded_note(m, out)
    return out


def _toep_higher_lag(name: str) -> bool:
    """``rho2__toep|g``, ``rho3__toep|g``, …"""
    head = name.split("__", 1)[0]
    return "__toep|" in name and head.startswith("rho") and head[3:].isdigit() and int(head[3:]) >= 2


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
    if name in m.dispersion.index:  # profiled on the optimizer's scale; intervals are invariant
        k = list(m.dispersion.index).index(name)
        lo, hi = m.request.family.to_dispersion(lo, k), m.request.family.to_dispersion(hi, k)
    return name, lo, hi
