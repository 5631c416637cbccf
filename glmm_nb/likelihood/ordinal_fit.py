"""Fit a cumulative-link mixed model: formula → :class:`OrdinalSpec` → deviance → L-BFGS-B → record.

A low-level chain, the ordinal counterpart of ``glmm()`` (and of :func:`~.agq.fit_agq`, whose
layer it shares: it uses only the design stage, the ordinal deviance functions and the
optimizer driver, so the results layer can import it without a cycle). It returns a small
frozen :class:`OrdinalFit`; turning that into the package's result object is the results
layer's job.

Steps: :func:`glmm_nb.design.ordinal.build_ordinal_spec` → start values (thresholds from the
cumulative marginal proportions, β = 0, θ at the better of lme4's start and 0.3 times it) →
L-BFGS-B on the Laplace deviance with its analytic gradient → for ``method="agq"`` L-BFGS-B on
the AGQ deviance from the Laplace optimum → the Hessian of the deviance (forward differences of
the analytic gradient; second differences of the deviance for AGQ with vector random effects)
→ the covariance of (α, β, θ), the thresholds mapped from τ to α by the
Jacobian ∂α/∂τ (the delta method; exact for a linear reparameterisation of the Hessian at the
optimum, so the SEs equal those from a Hessian on the α scale, as clmm reports them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..design.ordinal import OrdinalSpec, build_ordinal_spec
from ..design.reterms import theta_to_T
from ..errors import ModelError
from ..optimize import OptSummary, fd_hessian, fd_hessian_fun, minimize_devfun
from .ordinal import OrdinalAgqDevfun, OrdinalLaplaceDevfun
from .ordinal_links import (
    get_cumulative_link,
    start_thresholds,
    tau_from_thresholds,
    threshold_jacobian,
    thresholds_from_tau,
)

__all__ = ["OrdinalFit", "fit_ordinal", "ordinal_start"]


@dataclass(frozen=True, eq=False)
class OrdinalFit:
    """The estimates of a cumulative-link mixed model (clmm's parameterisation).

    Attributes
    ----------
    thresholds : pandas.Series
        α, indexed ``"1|2", "2|3", ...`` from the category labels.
    beta : pandas.Series
        Coefficients (no intercept); positive = towards higher categories.
    theta : pandas.Series
        Relative covariance factors (lme4's θ, named as ``ModelSpec.theta_names()``); for a
        random intercept θ is its SD.
    vcov : pandas.DataFrame
        Covariance of (thresholds, beta, theta) from the inverse Hessian of the deviance; rows of
        θ entries on their bound (0) are NaN, and the rest is conditional on them.
    loglik : float
        Laplace or AGQ log-likelihood (clmm's ``logLik``).
    ranef : dict of str → pandas.DataFrame
        Conditional modes b = Λu per term label, rows = levels, columns = the term's columns.
    u : ndarray
        Spherical conditional modes (all terms).
    nobs, converged, link, method, nagq
    levels : tuple of str
        Category labels in scale order.
    phi : ndarray
        Optimizer vector (θ, τ, β) at the optimum.
    opt : OptSummary
    ospec : OrdinalSpec
    messages : tuple of str
        Convergence notes in plain words (empty when all is well).
    """

    thresholds: pd.Series
    beta: pd.Series
    theta: pd.Series
    vcov: pd.DataFrame
    loglik: float
    ranef: dict
    u: np.ndarray
    nobs: int
    converged: bool
    link: str
    method: str
    nagq: int
    levels: tuple
    phi: np.ndarray
    opt: OptSummary
    ospec: OrdinalSpec
    messages: tuple = ()

    @property
    def se(self) -> pd.Series:
        """Standard errors of (thresholds, beta, theta)."""
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.vcov.index)

    @property
    def sd(self) -> pd.Series:
        """Random-effect standard deviations, indexed ``"<term label>.<column>"``."""
        out = {}
        spec = self.ospec.spec
        for t, sl in zip(spec.terms, spec.theta_slices()):
            T = theta_to_T(self.theta.to_numpy()[sl], t.q)
            for name, s in zip(t.col_names, np.sqrt(np.sum(T**2, axis=1))):
                out[f"{t.label}.{name}"] = float(s)
        return pd.Series(out)

    @property
    def aic(self) -> float:
        return -2.0 * self.loglik + 2.0 * self.phi.size


def _check_method(method, nagq) -> tuple[str, int]:
    if not isinstance(method, str) or method.lower() not in ("laplace", "agq"):
        raise ModelError(f"unknown method {method!r}; choose 'laplace' or 'agq'")
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise ModelError(f"nagq must be a positive integer, not {nagq!r}")
    method, nagq = method.lower(), int(nagq)
    if method == "laplace" and nagq != 1:
        raise ModelError(f"nagq={nagq} needs method='agq' (Laplace is nagq=1)")
    if nagq > 50:
        raise ModelError(f"nagq={nagq} is more than needed; use at most 50 nodes per dimension")
    return method, nagq


def ordinal_start(lap: OrdinalLaplaceDevfun) -> np.ndarray:
    """Start φ: thresholds from the cumulative marginal proportions, β = 0, and θ at the better
    (lower Laplace deviance) of lme4's start (identity factors) and 0.3 times it."""
    alpha0 = start_thresholds(lap.y, lap.ncat, lap.link, lap.pw)
    tau0 = tau_from_thresholds(alpha0)
    beta0 = np.zeros(lap.p)
    starts = [lap.join(lap.spec.theta_start() * s, tau0, beta0) for s in (1.0, 0.3)]
    return min(starts, key=lambda x: lap(x))


def fit_ordinal(formula: str, data: pd.DataFrame, link: str = "logit", method: str = "laplace",
                nagq: int = 1, weights=None, offset=None) -> OrdinalFit:
    """Fit a cumulative-link mixed model by maximum likelihood (Laplace or AGQ).

    Parameters
    ----------
    formula : str
        lme4 syntax, the response an ordered Categorical or integer column:
        ``"rating ~ temp + contact + (1 | judge)"``.
    data : pandas.DataFrame
    link : {"logit", "probit", "cloglog"}
    method : {"laplace", "agq"}
    nagq : int
        Quadrature nodes per random-effect dimension (``method="agq"``; one grouping factor).
    weights, offset : str or array-like, optional

    Returns
    -------
    OrdinalFit

    Raises
    ------
    FormulaError, DataError, ModelError
    """
    link_obj = get_cumulative_link(link)
    method, nagq = _check_method(method, nagq)
    ospec = build_ordinal_spec(formula, data, weights=weights, offset=offset)
    if method == "agq" and nagq > 1 and not ospec.spec.single_factor:
        groups = ", ".join(dict.fromkeys(t.text for t in ospec.spec.terms))
        raise ModelError(f"method='agq' needs one random-effect term on one grouping factor, not {groups}; "
                         "use method='laplace'")
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(ospec, link_obj, method, nagq)


def _fit(ospec: OrdinalSpec, link, method: str, nagq: int) -> OrdinalFit:
    spec = ospec.spec
    lap = OrdinalLaplaceDevfun(spec, ospec.y, ospec.X, ospec.ncat, link)
    start = ordinal_start(lap)
    lower = lap.lower()
    sd = lap.X.std(axis=0) if lap.p else np.zeros(0)
    scale = np.concatenate([np.ones(lap.ntheta + lap.nalpha), np.where(sd > 0, sd, 1.0)])
    opt = minimize_devfun(lap.value_and_grad, start, lower, scale=scale)
    dev = lap
    if method == "agq" and nagq > 1:
        dev = OrdinalAgqDevfun(spec, ospec.y, ospec.X, ospec.ncat, link, nagq)
        dev.lap.warm_start(lap.pirls(*lap.split(opt.final), order=1).u)
        agq = minimize_devfun(dev.value_and_grad, opt.final, lower, scale=scale, label="L-BFGS-B (AGQ)")
        opt = OptSummary(**{**agq.__dict__, "start": start, "iterations": opt.iterations + agq.iterations,
                            "evaluations": opt.evaluations + agq.evaluations, "time": opt.time + agq.time})
    phi = opt.final
    theta, tau, beta = lap.split(phi)
    # Hessian of the deviance: forward differences of the analytic gradient, or (AGQ with vector
    # random effects, whose gradient is itself a central difference) second differences of values
    fval, g = dev.value_and_grad(phi)
    if isinstance(dev, OrdinalAgqDevfun) and dev.q > 1:
        H = fd_hessian_fun(dev, phi)
    else:
        H = fd_hessian(lambda x: dev.value_and_grad(x)[1], phi, g)
    at_bound = np.isfinite(lower) & (phi - np.where(np.isfinite(lower), lower, 0.0) < 1e-6)
    free = ~at_bound
    msgs = []
    Vphi = np.full((phi.size, phi.size), np.nan)
    eig = np.linalg.eigvalsh(H[np.ix_(free, free)])
    pos_def, far = bool(np.all(eig > 0)), False
    if pos_def:
        Vphi[np.ix_(free, free)] = 2.0 * np.linalg.inv(H[np.ix_(free, free)])
        step = np.linalg.solve(H[np.ix_(free, free)], g[free])  # the Newton step left to take
        far = bool(np.max(np.abs(step)) > 1e-3)
        if far:
            msgs.append(f"the optimizer stopped {np.max(np.abs(step)):.2g} (in parameter units) from the "
                        "optimum the gradient and Hessian point to")
    else:
        msgs.append("the Hessian of the deviance is not positive definite at the estimates: "
                    "standard errors are not available")
    if at_bound.any():
        msgs.append("a random-effect variance is estimated as zero (singular fit)")
    # (θ, τ, β) → reported (α, β, θ)
    nt, na, p = lap.ntheta, lap.nalpha, lap.p
    G = np.zeros((phi.size, phi.size))
    G[:na, nt:nt + na] = threshold_jacobian(tau)
    G[na:na + p, nt + na:] = np.eye(p)
    G[na + p:, :nt] = np.eye(nt)
    V = G @ np.where(np.isnan(Vphi), 0.0, Vphi) @ G.T
    unknown = ~free if pos_def else np.ones(phi.size, bool)  # no variance for these
    bad = np.abs(G) @ unknown.astype(float) > 0
    V[bad, :] = np.nan
    V[:, bad] = np.nan
    names = list(ospec.threshold_names) + list(ospec.x_names) + spec.theta_names()
    st = lap.pirls(theta, tau, beta)
    ranef = {}
    for k, (t, T) in enumerate(zip(spec.terms, lap.rs.Ts(theta))):
        uk = st.u[lap.rs.offsets[k]:lap.rs.offsets[k + 1]].reshape(t.nlevels, t.q)
        ranef[t.label] = pd.DataFrame(uk @ T.T, index=list(t.levels), columns=list(t.col_names))
    if not opt.converged:
        msgs.insert(0, "the optimizer did not report convergence: " + "; ".join(opt.messages))
    converged = bool(opt.converged and pos_def and st.converged and not far)
    return OrdinalFit(
        thresholds=pd.Series(thresholds_from_tau(tau), index=list(ospec.threshold_names)),
        beta=pd.Series(beta, index=list(ospec.x_names), dtype=float),
        theta=pd.Series(theta, index=spec.theta_names()),
        vcov=pd.DataFrame(V, index=names, columns=names),
        loglik=float(-fval / 2.0),
        ranef=ranef,
        u=st.u,
        nobs=ospec.nobs,
        converged=converged,
        link=link.name,
        method=method,
        nagq=nagq,
        levels=ospec.levels,
        phi=phi.copy(),
        opt=opt,
        ospec=ospec,
        messages=tuple(msgs),
    )
