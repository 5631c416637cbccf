"""Build a :class:`GLMMResult` — the one place a result is assembled (lme4's ``mkMerMod``)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..design import ModelSpec
from ..errors import ConvergenceWarning, SingularFitWarning
from ..families import Family
from ..optimize import OptSummary, central_diff, fd_hessian, fd_hessian_fun, singular_terms
from .result import GLMMResult

__all__ = ["build_glmm_result", "build_lmm_result"]


def _cond_cov(spec: ModelSpec, fac, theta: np.ndarray, scale2: float) -> tuple:
    """Per term (J, q, q): conditional covariance of b = Lambda u (× sigma² for LMMs)."""
    from ..design.reterms import theta_to_T

    out = []
    for k, (t, sl) in enumerate(zip(spec.terms, spec.theta_slices())):
        T = theta_to_T(theta[sl], t.q)
        blocks = fac.inv_blocks() if hasattr(fac, "inv_blocks") else fac.inv_blocks_term(k)
        out.append(scale2 * np.einsum("ab,jbc,dc->jad", T, blocks, T))
    return tuple(out)


def _messages(spec, theta, converged, opt_msgs, scgrad, eig, tol=2e-3) -> tuple[list[str], bool, bool]:
    """Plain-language singular-fit and convergence messages (also raised as warnings).

    Convergence is judged as lme4 judges it: by the scaled gradient H^{-1} g at the optimum
    (free parameters only), not by the optimizer's stopping message, which can report a
    line-search stall at a point that is the optimum to working precision.
    """
    msgs = []
    sing = singular_terms(spec, theta)
    if sing:
        msgs.append(
            "Singular fit: the variance of " + ", ".join(sing) + " is estimated as zero (or its "
            "correlations as ±1). The data carry no evidence of variation there; consider "
            "simplifying the random-effect structure."
        )
        warnings.warn(msgs[-1], SingularFitWarning, stacklevel=4)
    ok = (scgrad < tol) if scgrad is not None else converged
    if not ok:
        why = "; ".join(opt_msgs)
        detail = f" (largest scaled gradient {scgrad:.2g})" if scgrad is not None else ""
        msgs.append(
            "Convergence check failed: the optimizer stopped at a point that may not be the "
            f"maximum{detail}. Optimizer said: {why}. Try rescaling covariates or a simpler model."
        )
        warnings.warn(msgs[-1], ConvergenceWarning, stacklevel=4)
    if eig is not None and eig.size and eig.min() <= 0 and not sing:
        msgs.append(
            "Hessian check failed: the log-likelihood surface is flat or curved the wrong way "
            "in some direction at the estimate, so some parameters are poorly identified; "
            "standard errors are conditional on the variance parameters."
        )
        warnings.warn(msgs[-1], ConvergenceWarning, stacklevel=4)
    return msgs, ok, bool(sing)


def _scaled_gradient(H: np.ndarray, g: np.ndarray, free: np.ndarray) -> tuple[float | None, np.ndarray | None]:
    Hf = H[np.ix_(free, free)]
    try:
        eig = np.linalg.eigvalsh(Hf)
        sg = float(np.max(np.abs(np.linalg.solve(Hf, g[free])))) if free.any() else 0.0
        return sg, eig
    except np.linalg.LinAlgError:
        return None, None


def build_glmm_result(
    spec: ModelSpec,
    family: Family,
    devfun,
    opt: OptSummary,
    method: str,
    nagq: int,
) -> GLMMResult:
    """Result of a Laplace or AGQ fit; ``devfun`` has ``value_and_grad`` or is value-only."""
    phi = opt.final
    ntheta = spec.ntheta
    theta, beta = phi[:ntheta], phi[ntheta:]
    lower = spec.theta_lower()
    at_bound = np.r_[np.isfinite(lower) & (np.abs(theta - np.where(np.isfinite(lower), lower, 0)) < 1e-6), np.zeros(len(beta), bool)]
    free = ~at_bound
    if hasattr(devfun, "value_and_grad"):
        grad = lambda x: devfun.value_and_grad(x)[1]  # noqa: E731
        if hasattr(devfun, "true_gradient"):  # AGQ: the exact gradient; Hessian cached by the fit
            g = devfun.true_gradient(phi)
            H = devfun.hessian(phi)
        else:
            g = grad(phi)
            H = fd_hessian(grad, phi, g)
    else:
        H = fd_hessian_fun(devfun, phi)
        g = np.zeros_like(phi)
    st = devfun.pirls(theta, beta)  # the state at the optimum (after the Hessian's probes)
    scgrad, eig = _scaled_gradient(H, g, free)
    vcov = None
    vcov_full = None  # covariance of (theta, beta), for delta-method and simulation SEs
    vcov_method = "hessian"
    if eig is not None and np.all(eig > 0):  # eig: Hessian over the free parameters
        V = 2.0 * np.linalg.inv(H[np.ix_(free, free)])
        vcov = V[-len(beta):, -len(beta):]
        if free.all():
            vcov_full = V
    if vcov is None:
        # conditional on theta: (X'WX - X'WZ~ M^-1 Z~'WX)^-1 (lme4's RX-based vcov)
        rs, X, W = devfun.rs, devfun.X, st.W
        ZtWX = rs.tmult(st.vals, W[:, None] * X)
        RX2 = X.T @ (W[:, None] * X) - ZtWX.T @ st.fac.solve(ZtWX)
        vcov = np.linalg.inv(RX2)
        vcov_method = "conditional"
    msgs, ok, sing = _messages(spec, theta, opt.converged, list(opt.messages), scgrad, eig)
    opt_full = OptSummary(**{**opt.__dict__, "gradient": g, "scaled_gradient": scgrad, "hessian_eigenvalues": eig})
    fam = devfun.family
    # lme4's deviance() of a glmer fit: the conditional deviance at the modes
    lme4_dev = float(np.sum(fam.dev_resid(devfun.y, st.mu, devfun.pw)))
    loglik = -opt.objective / 2 if method == "agq" and nagq > 1 else -st.deviance / 2
    return _assemble(spec, theta, beta, vcov, opt_full, st.u, st.fac, 1.0, msgs, ok, sing,
                     family=family.name, link=family.link.name, method=method, nagq=nagq, reml=None,
                     loglik=float(loglik), deviance=float(lme4_dev), vcov_method=vcov_method,
                     extras={"vcov_theta_beta": vcov_full})


def build_lmm_result(spec: ModelSpec, family: Family, devfun, opt: OptSummary) -> GLMMResult:
    theta = opt.final
    st = devfun.state(theta)
    lower = spec.theta_lower()
    free = ~(np.isfinite(lower) & (np.abs(theta) < 1e-6))
    H = fd_hessian_fun(devfun, theta) if theta.size else np.zeros((0, 0))
    g = np.zeros_like(theta)
    if theta.size:
        g = central_diff(devfun, theta, 1e-5 * np.maximum(np.abs(theta), 1e-1))
    scgrad, eig = _scaled_gradient(H, g, free)
    msgs, ok, sing = _messages(spec, theta, opt.converged, list(opt.messages), scgrad, eig)
    vcov = st.sigma**2 * np.linalg.inv(st.RX2)
    opt_full = OptSummary(**{**opt.__dict__, "gradient": g, "scaled_gradient": scgrad, "hessian_eigenvalues": eig})
    return _assemble(spec, theta, st.beta, vcov, opt_full, st.u, st.fac, st.sigma, msgs, ok, sing,
                     family="gaussian", link="identity", method="reml" if devfun.reml else "ml", nagq=1,
                     reml=devfun.reml, loglik=float(-st.deviance / 2), deviance=float(st.deviance),
                     vcov_method="conditional", extras={})


def _assemble(spec, theta, beta, vcov, opt, u, fac, sigma, msgs, ok, sing, **fields) -> GLMMResult:
    """The single constructor call of :class:`GLMMResult`."""
    names = list(spec.x_names)
    return GLMMResult(
        formula=spec.formula.text,
        spec=spec,
        theta=theta,
        fixef=pd.Series(beta, index=names, name="estimate"),
        vcov=pd.DataFrame(vcov, index=names, columns=names),
        sigma=float(sigma),
        nobs=spec.nobs,
        ngroups=spec.ngroups,
        n_dropped=spec.n_dropped,
        converged=ok,
        singular=sing,
        opt=opt,
        u=u,
        cond_cov=_cond_cov(spec, fac, theta, float(sigma) ** 2),
        messages=tuple(msgs),
        **fields,
    )
