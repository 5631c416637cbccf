"""Build a :class:`GLMMResult` — the one place a result is assembled (lme4's ``mkMerMod``).

Convergence is judged as lme4 judges it: by the scaled gradient :math:`H^{-1}g` at the optimum
(free parameters only), not by the optimizer's stopping message, which can report a
line-search stall at a point that is the optimum to working precision. A PIRLS inner loop that
did not converge at the optimum is reported too.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from ..design import ModelSpec, separation_message
from ..errors import ConvergenceWarning, ModelError, SingularFitWarning, warn
from ..families import threshold_names
from ..optimize import OptSummary
from ..request import FitRequest, fixed_indices
from ..timing import stopwatch
from .result import GLMMResult

__all__ = ["build_result", "check_optimum", "singular_terms", "conditional_covariance"]


def singular_terms(spec: ModelSpec, theta: np.ndarray, tol: float = 1e-4) -> list[str]:
    """Terms with a theta diagonal entry below ``tol`` (lme4's ``isSingular``; a structured term:
    an SD below ``tol``)."""
    out = []
    for t, sl in zip(spec.terms, spec.theta_slices()):
        if t.structure.singular(theta[sl], tol):
            out.append(t.text if t.label == t.group else f"{t.text} ({t.label})")
    return out


def conditional_covariance(spec: ModelSpec, fac, theta: np.ndarray, scale2: float) -> tuple:
    """Per term (J, q, q): conditional covariance of b = Lambda u (× sigma² for LMMs)."""
    out = []
    for k, (t, sl) in enumerate(zip(spec.terms, spec.theta_slices())):
        T = t.T(theta[sl])
        out.append(scale2 * np.matmul(np.matmul(T, fac.inv_blocks_term(k)), T.T))  # T M⁻¹ T' per level
    return tuple(out)


def fit_messages(spec, theta, converged, opt_msgs, scgrad, eig, pirls_ok: bool = True,
                 tol: float = 2e-3, zi_theta=None) -> tuple[list[str], bool, bool]:
    """Plain-language singular-fit and convergence messages (also raised as warnings);
    ``zi_theta``: the zero part's random-effect terms' theta (their singular terms named too)."""
    msgs = []
    if spec.meta.get("separated"):  # warned when the design was built; said again in the summary
        text = separation_message(spec.meta["separated"])
        msgs.append(text[0].upper() + text[1:])
    sing = singular_terms(spec, theta)
    if zi_theta is not None:
        sing += [f"{t.text} in the zero part" for t, sl in zip(spec.zi_terms, spec.zi_theta_slices())
                 if t.structure.singular(zi_theta[sl], 1e-4)]
    if sing:
        msgs.append(
            "Singular fit: the variance of " + ", ".join(sing) + " is estimated as zero (or its "
            "correlations as ±1). The data carry no evidence of variation there; consider "
            "simplifying the random-effect structure."
        )
        warn(msgs[-1], SingularFitWarning)
    ok = (scgrad < tol) if scgrad is not None else converged
    if not ok:
        why = "; ".join(opt_msgs)
        detail = f" (largest scaled gradient {scgrad:.2g})" if scgrad is not None else ""
        msgs.append(
            "Convergence check failed: the optimizer stopped at a point that may not be the "
            f"maximum{detail}. Optimizer said: {why}. Try rescaling covariates or a simpler model."
        )
        warn(msgs[-1], ConvergenceWarning)
    if not pirls_ok:
        ok = False
        msgs.append(
            "PIRLS did not converge at the estimate: the conditional modes of the random effects "
            "were not found to working precision, so the Laplace log-likelihood there is "
            "approximate. Check for extreme fitted values (separation) or simplify the model."
        )
        warn(msgs[-1], ConvergenceWarning)
    if eig is not None and eig.size and eig.min() <= 0 and not sing:
        msgs.append(
            "Hessian check failed: the log-likelihood surface is flat or curved the wrong way "
            "in some direction at the estimate, so some parameters are poorly identified; "
            "standard errors are conditional on the variance parameters."
        )
        warn(msgs[-1], ConvergenceWarning)
    return msgs, ok, bool(sing)


def check_optimum(request: FitRequest, loglik: float, phi: np.ndarray, tol: float = 1.0) -> None:
    """No result from a non-finite optimum, or from one a discrete response cannot have: each
    row's log-probability is at most 0, so a log-likelihood above 0 (beyond ``tol``, room for
    the Laplace approximation's error) means the optimizer ran into a numerically degenerate
    region, not to a maximum."""
    fam = request.family
    where = ", ".join(f"{v:.4g}" for v in np.asarray(phi)[:8]) + (" …" if np.size(phi) > 8 else "")
    if not np.isfinite(loglik):
        raise ModelError(
            f"the fit ended at a non-finite log-likelihood ({loglik}) at the parameters ({where}); this is no "
            "estimate. Some part of the model has no finite maximum there: look for separation, a constant or "
            "nearly constant response within a part of the model, or a link that leaves its range (e.g. an "
            "identity link giving negative means)"
        )
    if fam.discrete and loglik > tol:
        raise ModelError(
            f"the fit ended at a log-likelihood of {loglik:+.6g}, impossible for a {fam.name} response (each "
            f"row's log-probability is at most 0) at the parameters ({where}): the optimizer ran into a "
            "numerically degenerate region, not to a maximum, so no estimate, logLik or AIC is reported. Look for "
            "a part of the model that the data cannot identify (e.g. a count part whose positive counts are all "
            "equal, separation in the zero part)"
        )


def _scaled_gradient(H: np.ndarray, g: np.ndarray, free: np.ndarray) -> tuple[float | None, np.ndarray | None]:
    Hf = H[np.ix_(free, free)]
    try:
        eig = np.linalg.eigvalsh(Hf)
        sg = float(np.max(np.abs(np.linalg.solve(Hf, g[free])))) if free.any() else 0.0
        return sg, eig
    except np.linalg.LinAlgError:
        return None, None


def _free(request: FitRequest, phi: np.ndarray, ntheta: int) -> np.ndarray:
    """Parameters not on a theta bound and not held fixed by the request."""
    lower = request.spec.theta_lower()
    theta = phi[:ntheta]
    at_bound = np.isfinite(lower) & (np.abs(theta - np.where(np.isfinite(lower), lower, 0)) < 1e-6)
    free = np.r_[~at_bound, np.ones(phi.size - ntheta, bool)]
    spec = request.spec
    if spec.zi_terms:  # the zero part's theta, last: on its bound too
        zl = np.concatenate([t.theta_lower() for t in spec.zi_terms])
        zt = phi[phi.size - zl.size :]
        free[phi.size - zl.size :] = ~(np.isfinite(zl) & (np.abs(zt - np.where(np.isfinite(zl), zl, 0)) < 1e-6))
    for i in fixed_indices(request):
        free[i] = False
    return free


def build_result(request: FitRequest, devfun, opt: OptSummary, result_class: type = GLMMResult) -> GLMMResult:
    """The result of a fit: ``devfun`` is the deviance function the optimum ``opt`` refers to
    (a :class:`~glmm_nb.likelihood.DevianceFunction`); ``result_class`` a subclass of
    :class:`GLMMResult` to build (refits keep the class of the model they came from). Its
    ``timings`` are those of the active stopwatch (:mod:`glmm_nb.timing`), else of this step."""
    with stopwatch() as sw, sw.stage("result"):
        return _build(request, devfun, opt, result_class, sw)


def _build(request: FitRequest, devfun, opt: OptSummary, result_class: type, sw) -> GLMMResult:
    spec = request.spec
    phi = opt.final
    ntheta = spec.ntheta
    with sw.stage("hessian"):
        g = devfun.exact_gradient(phi)
        H = devfun.hessian(phi)
    free = _free(request, phi, ntheta)
    fam0 = request.family
    nd0 = fam0.n_dispersion if not devfun.profiled else 0
    at_limit = bool(nd0) and fam0.dispersion_at_limit(float(phi[ntheta + spec.p]))
    if at_limit:  # the likelihood is flat there: not a free parameter (as a variance at 0)
        free[ntheta + spec.p] = False
    st = devfun.state(phi)  # the state at the optimum (after the Hessian's probes)
    scgrad, eig = _scaled_gradient(H, g, free)
    opt_full = OptSummary(**{**opt.__dict__, "gradient": g, "scaled_gradient": scgrad, "hessian_eigenvalues": eig})
    theta = phi[:ntheta]
    if devfun.profiled:
        msgs, ok, sing = fit_messages(spec, theta, opt.converged, list(opt.messages), scgrad, eig)
        check_optimum(request, -st.deviance / 2, phi)
        vcov = st.sigma**2 * np.linalg.inv(st.RX2)
        return _assemble(request, result_class, theta, st.beta, vcov, opt_full, st.u, st.fac, st.sigma, msgs, ok,
                         sing, method="reml" if devfun.reml else "ml", nagq=1, reml=devfun.reml,
                         loglik=float(-st.deviance / 2), deviance=float(st.deviance),
                         vcov_method="conditional", extras={}, timings=sw.snapshot(opt.evaluations))
    p = spec.p
    beta, psi = phi[ntheta : ntheta + p], phi[ntheta + p :]
    kz = 0 if spec.zi_X is None else spec.zi_X.shape[1]  # after the dispersion(s): gamma, then delta
    fam = st.family  # at the fitted extra parameters
    nd = request.family.n_dispersion
    vcov = vcov_full = None  # vcov_full: covariance of (theta, beta[, log dispersion])
    vcov_phi = None  # covariance of all optimizer parameters, zero where on a bound or held fixed
    vcov_method = "hessian"
    disp_se = np.full(nd, np.nan)
    nzt = spec.zi_ntheta  # the zero part's theta, last (ZeroInflated.n_extra)
    zi_vcov = np.full((psi.size - nd - nzt,) * 2, np.nan)
    if eig is not None and np.all(eig > 0):  # eig: Hessian over the free parameters
        V = 2.0 * np.linalg.inv(H[np.ix_(free, free)])
        pos = np.cumsum(free) - 1  # position of each free parameter in V
        bidx = pos[ntheta : ntheta + p]
        if free[ntheta : ntheta + p].all():
            vcov = V[np.ix_(bidx, bidx)]
        for k in range(nd):
            if free[ntheta + p + k]:
                disp_se[k] = np.sqrt(V[pos[ntheta + p + k], pos[ntheta + p + k]])
        if free[ntheta + p + nd : phi.size - nzt].all():
            zidx = pos[ntheta + p + nd : phi.size - nzt]
            zi_vcov = V[np.ix_(zidx, zidx)]
        if free.all():
            vcov_full = V
        vcov_phi = np.zeros((phi.size, phi.size))
        vcov_phi[np.ix_(free, free)] = V
    if vcov is None and nzt:  # no conditional-on-theta version for the joint Laplace: say nothing
        vcov = np.full((p, p), np.nan)
        vcov_method = "none"
    if vcov is None:
        # conditional on theta: (X'WX - X'WZ~ M^-1 Z~'WX)^-1 (lme4's RX-based vcov)
        rs, X, W = devfun.rs, devfun.X, st.W
        ZtWX = rs.tmult(st.vals, W[:, None] * X)
        vcov = np.linalg.inv(X.T @ (W[:, None] * X) - ZtWX.T @ st.fac.solve(ZtWX))
        vcov_method = "conditional"
    msgs, ok, sing = fit_messages(spec, theta, opt.converged, list(opt.messages), scgrad, eig,
                                  pirls_ok=bool(st.converged), zi_theta=psi[psi.size - nzt :] if nzt else None)
    if at_limit:
        base = getattr(fam0, "base", fam0)
        d = base.to_dispersion(float(phi[ntheta + spec.p]))
        msgs.append(f"The {base.name} dispersion ran to its Poisson limit ({base.dispersion_name} = {d:.3g}): the data "
                    f"show no overdispersion beyond the Poisson's, and this fit is the {base.limit_family.name} fit "
                    "(its standard error is not defined).")
    # lme4's deviance() of a glmer fit: the conditional deviance at the modes
    lme4_dev = float(np.sum(fam.dev_resid(devfun.y, st.mu, devfun.pw)))
    loglik = -opt.objective / 2 if request.uses_agq else -st.deviance / 2
    check_optimum(request, loglik, phi)
    return _assemble(request, result_class, theta, beta, vcov, opt_full, st.u, st.fac, 1.0, msgs, ok, sing,
                     method=request.method, nagq=request.nagq, reml=None, loglik=float(loglik),
                     deviance=lme4_dev, vcov_method=vcov_method,
                     extras={"vcov_theta_beta": vcov_full, "vcov_phi": vcov_phi}, timings=sw.snapshot(opt.evaluations),
                     dispersion=_dispersion(request.family, psi[:nd], disp_se),
                     **_zero_part(spec, psi[nd:nd + kz], zi_vcov[:kz, :kz]),
                     **_zero_re(spec, st, psi[psi.size - nzt:]),
                     **_disp_part(spec, psi[nd + kz:psi.size - nzt], zi_vcov[kz:, kz:]),
                     **_thresholds(request.family, spec, psi, vcov_phi, ntheta + p))


def _thresholds(fam, spec, tau, vcov_phi, start: int) -> dict:
    """Ordinal families: the thresholds α (named as clm names them) and their covariance, mapped
    from the optimizer's τ by the delta method (exact at the optimum for this reparameterisation)."""
    if not fam.ordinal:
        return {}
    names = list(threshold_names(spec.levels))
    k = len(names)
    V = np.full((k, k), np.nan)
    if vcov_phi is not None:
        Vt = vcov_phi[start : start + k, start : start + k]
        if np.all(np.diag(Vt) > 0):
            J = fam.threshold_jacobian(tau)
            V = J @ Vt @ J.T
    return {"thresholds": pd.Series(fam.thresholds(tau), index=names, name="estimate"),
            "thresholds_vcov": pd.DataFrame(V, index=names, columns=names)}


def _zero_part(spec, gamma, V) -> dict:
    """The zero part's coefficients and covariance, named by its design's columns."""
    if spec.zi_X is None:
        return {}
    names = list(spec.zi_names)
    return {"zi_fixef": pd.Series(gamma, index=names, name="estimate"),
            "zi_vcov": pd.DataFrame(V, index=names, columns=names)}


def _zero_re(spec, st, theta_zi) -> dict:
    """The zero part's random effects: theta, conditional modes u and, per term, the conditional
    covariance of b from the joint factorization (the zero part's terms follow the count part's)."""
    if not spec.zi_terms:
        return {}
    nc = len(spec.terms)
    cov = []
    for k, (t, sl) in enumerate(zip(spec.zi_terms, spec.zi_theta_slices())):
        T = t.T(theta_zi[sl])
        cov.append(np.matmul(np.matmul(T, st.fac.inv_blocks_term(nc + k)), T.T))
    return {"zi_theta": np.asarray(theta_zi, dtype=float), "zi_u": np.asarray(st.u_zi, dtype=float),
            "zi_cond_cov": tuple(cov)}


def _disp_part(spec, delta, V) -> dict:
    """The dispersion model's coefficients (log scale) and covariance, named by its columns."""
    if spec.disp_X is None:
        return {}
    names = list(spec.disp_names)
    return {"disp_fixef": pd.Series(delta, index=names, name="estimate"),
            "disp_vcov": pd.DataFrame(V, index=names, columns=names)}


def _dispersion(fam, psi, se_log) -> pd.Series:
    """The dispersion parameter(s) by name on the natural scale (``attrs``: SE of the log)."""
    if not fam.n_dispersion:
        return pd.Series(dtype=float, name="dispersion")
    out = pd.Series([fam.to_dispersion(v, k) for k, v in enumerate(psi)], index=list(fam.dispersion_names),
                    name="dispersion")
    out.attrs["std_error_log"] = list(se_log)  # SEs on the optimizer's scale (fam.from_dispersion)
    out.attrs["meaning"] = fam.dispersion_meaning
    out.attrs["meanings"] = list(fam.dispersion_meanings)
    return out


def _assemble(request, result_class, theta, beta, vcov, opt, u, fac, sigma, msgs, ok, sing, **fields) -> GLMMResult:
    """The single constructor call of :class:`GLMMResult`."""
    spec = request.spec
    names = list(spec.x_names)
    return result_class(
        formula=spec.formula.text,
        family=request.family.name,
        link=request.family.link.name,
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
        cond_cov=conditional_covariance(spec, fac, theta, float(sigma) ** 2),
        request=request,
        messages=tuple(msgs),
        **fields,
    )
