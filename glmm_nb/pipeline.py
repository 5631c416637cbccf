"""The fitting chain, one public function per step (lme4's modular ``glmer``):

:func:`build_spec` → :func:`make_request` → :func:`make_devfun` → :func:`start_values` →
:func:`minimize` → :func:`agq_stage` (AGQ only) → :func:`glmm_nb.results.build_result`.

:func:`fit` runs the chain for a :class:`~glmm_nb.request.FitRequest`; ``glmm()`` is
``fit(make_request(...))``, and :func:`refit` — a changed copy of a result's request through the
same chain — is the one way back in for the bootstrap, profiles, the within/between check and
``anova``.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import ExitStack

import numpy as np
import pandas as pd

from .design import ModelSpec, check_agq_size, check_options, model_spec
from .errors import ModelError
from .families import Family, GaussianML, get_family, with_dispersion_model, zero_inflated
from .likelihood import (AgqDevfun, LaplaceDevfun, LmmDevfun, OrdinalAgqDevfun, OrdinalLaplaceDevfun, ZiReAgqDevfun,
                         ZiReLaplaceDevfun, anova_theta_start, check_zi_agq, glm_fit, moment_theta)
from .likelihood.threads import fit_threads
from .optimize import OptSummary, minimize_devfun, restart_edge
from .progress import fit_progress
from .request import METHODS, FitRequest, fixed_indices
from .results import GLMMResult, build_result
from .timing import stopwatch

__all__ = [
    "MAX_NAGQ",
    "agq_stage",
    "build_spec",
    "check_method",
    "fit",
    "make_devfun",
    "make_request",
    "minimize",
    "parameter_bounds",
    "parameter_scale",
    "polish_agq",
    "refit",
    "start_values",
]

MAX_NAGQ = 50


def build_spec(formula, data: pd.DataFrame, family: str | Family = "binomial", weights=None, offset=None,
               link: str | None = None) -> ModelSpec:
    """Formula + data → :class:`~glmm_nb.design.ModelSpec` (the family decides how the
    response is read and checked); see :func:`glmm_nb.design.model_spec`."""
    return model_spec(formula, data, get_family(family, link), weights=weights, offset=offset)


def check_method(method, nagq, family: Family) -> tuple[str, int]:
    """Validate ``method`` and ``nagq`` for ``family``; return them normalised."""
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ModelError(f"unknown method {method!r}; choose 'laplace' or 'agq'")
    method = method.lower()
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise ModelError(f"nagq must be a positive integer, not {nagq!r}")
    nagq = int(nagq)
    if method == "laplace" and nagq != 1:
        raise ModelError(f"nagq={nagq} needs method='agq' (Laplace is nagq=1)")
    if family.profiled_lmm and method == "agq":
        raise ModelError(f"method='agq' is not for the {family.name} family: its mixed model is fitted exactly")
    if nagq > MAX_NAGQ:
        raise ModelError(f"nagq={nagq} is more than needed; use at most {MAX_NAGQ} nodes per dimension")
    return method, nagq


def zero_part_formula(ziformula, hurdle: bool = False):
    """``ziformula`` as the fit uses it: ``"~ 0"`` (or ``"~ -1"``) is no zero part, as glmmTMB
    reads it; a hurdle model needs one."""
    if not isinstance(ziformula, str):
        return ziformula
    rhs = ziformula.strip().lstrip("~").replace(" ", "")
    if rhs in ("0", "-1", "+0", "0-1", "1-1", "-1+0"):
        if hurdle is True:
            raise ModelError(f"hurdle=True needs a zero part; ziformula {ziformula!r} has none (write '~ 1')")
        return None
    return ziformula


def model_family(family, link=None, ziformula=None, hurdle: bool = False, dispformula=None) -> Family:
    """The family object of a request: a registered family, zero-inflated or hurdle when a
    ``ziformula`` is given, with a dispersion model when a ``dispformula`` is given."""
    fam = get_family(family, link)
    if fam.has_disp_model:  # a refit's family: the dispformula decides again
        fam = fam.base
    if isinstance(fam, GaussianML) and dispformula is None:
        fam = get_family("gaussian", link)
    if not isinstance(hurdle, bool):
        raise ModelError(f"hurdle must be True or False, not {hurdle!r}")
    if hurdle and ziformula is None:
        raise ModelError("hurdle=True needs ziformula= (the model for zero vs positive, e.g. '~ 1')")
    if dispformula is not None:
        if hurdle:  # its mean (1 - pi) mu / (1 - f(0)) depends on each row's dispersion: every prediction on
            # new data (predict, emmeans, effect curves) would need the dispersion model's rows there
            raise ModelError("dispformula= with a hurdle model is not available: its mean depends on each row's "
                             "dispersion; fit the zero-inflated model (hurdle=False) or one dispersion")
        fam = with_dispersion_model(fam)
    return zero_inflated(fam, hurdle) if ziformula is not None else fam


def make_request(formula, data: pd.DataFrame, family: str | Family = "binomial", link: str | None = None,
                 method: str = "laplace", nagq: int = 1, reml: bool = True, weights=None, offset=None,
                 control: dict | None = None, start=None, fixed: dict | None = None, ziformula: str | None = None,
                 hurdle: bool = False, dispformula: str | None = None) -> FitRequest:
    """Check the arguments, build the spec, and record everything as a :class:`FitRequest`."""
    ziformula = zero_part_formula(ziformula, hurdle)
    fam = model_family(family, link, ziformula, hurdle, dispformula)
    method, nagq = check_method(method, nagq, fam)
    reml, control, start, fixed = check_options(reml, control, start, fixed)
    check_disp_reml(fam, reml)
    spec = model_spec(formula, data, fam, weights=weights, offset=offset, ziformula=ziformula,
                      dispformula=dispformula)
    check_agq_size(nagq, spec, method)
    if spec.zi_terms and method == "agq":  # one grouping factor for both parts' effects, else refused
        check_zi_agq(spec, nagq)
    return FitRequest(spec=spec, family=fam, method=method, nagq=nagq, reml=reml, control=control, start=start,
                      fixed=fixed)


def check_disp_reml(fam: Family, reml: bool) -> None:
    """A gaussian model with a dispersion model is fitted by ML (as glmmTMB): say so, don't switch."""
    if fam.has_disp_model and fam.base.name == "gaussian" and reml:
        raise ModelError("a gaussian model with dispformula= is fitted by maximum likelihood (as glmmTMB): "
                         "pass reml=False")


def make_devfun(request: FitRequest, stage: str = "final"):
    """The deviance function of a request: ``f(theta)`` (profiled) for an LMM family,
    ``f(theta, beta[, extras])`` otherwise — Laplace, or AGQ for ``stage="final"`` of an AGQ
    request (ordinal families: the cumulative-link deviances, extras = the thresholds)."""
    if request.family.profiled_lmm:
        return LmmDevfun(request.spec, reml=bool(request.reml))
    fam = request.family
    if stage == "final" and request.uses_agq:
        cls = OrdinalAgqDevfun if fam.ordinal else ZiReAgqDevfun if request.spec.zi_terms else AgqDevfun
        dev = cls(request.spec, fam, request.nagq)
        inner = dev.lap  # PIRLS runs in the Laplace deviance the quadrature is placed by
    elif request.spec.zi_terms:  # random effects in the zero part: the joint Laplace over both parts
        dev = inner = ZiReLaplaceDevfun(request.spec, fam)
    else:
        dev = inner = (OrdinalLaplaceDevfun if fam.ordinal else LaplaceDevfun)(request.spec, fam)
    inner.maxit = int(request.control.get("pirls_maxit", inner.maxit))
    return dev


def start_values(request: FitRequest, devfun, glm=None, sample=None) -> np.ndarray:
    """The request's start, or: theta at lme4's start (LMM); GLM coefficients (ordinal: beta = 0
    and the thresholds of the cumulative proportions) with, where every term is a scalar one
    (``(1 | g)``, ``(0 + x | g)``, crossed or nested) and there is no zero part, each term's SD
    by moments of the GLM's working residuals (:func:`glmm_nb.likelihood.moment_theta`, kept
    within [0.1, 3]; no deviance evaluation), else the better of theta = 1 and 0.3 on the
    diagonal (lme4 starts at 1; many fitted SDs are near 0.3, where the start saves a third of
    the iterations).

    ``glm(family) -> beta`` computes the GLM coefficients elsewhere (the Dask fit's distributed
    IRLS) and ``sample`` is the in-memory deviance function whose rows give the moment starts of
    the extra parameters (default: ``devfun``'s own rows, by IRLS)."""
    spec = request.spec
    data = devfun if sample is None else sample
    fixed = fixed_indices(request)
    nx = request.family.n_extra(spec)
    if request.start is not None:
        start = np.asarray(request.start, dtype=float)
        n = spec.ntheta if devfun.profiled else spec.ntheta + spec.p + nx
        if start.size < n:
            raise ModelError(f"start has {start.size} values; the model has {n} parameters")
        start = start[:n].copy()
    elif devfun.profiled:  # random intercepts only: their ANOVA estimates (in memory), else lme4's start
        moments = anova_theta_start(spec, data.y, data.X, data.w) if isinstance(data, LmmDevfun) else None
        start = spec.theta_start() if moments is None else moments
    elif request.family.ordinal:
        beta0 = np.concatenate([np.zeros(spec.p), request.family.extra_start(data.y, None, data.pw, spec)])
        return _better_theta_start(spec, beta0, fixed, devfun)
    else:
        fam0 = request.family.start_family.at_dispersion(1.0)
        if glm is None:
            beta0, eta0, mu0 = glm_fit(data.X, data.y, data.pw, data.off, fam0, start=True)
        else:
            beta0 = np.asarray(glm(fam0))
            eta0 = data.X @ beta0 + data.off
            mu0 = fam0.link.inverse(eta0)
        if nx:  # moment estimates at the GLM means: log-dispersion, zero part
            beta0 = np.concatenate([beta0, request.family.extra_start(data.y, mu0, data.pw, spec)])
        theta0 = None
        if not spec.zi_terms and not request.family.has_zero_part:
            theta0 = moment_theta(data.spec.terms, data.y, eta0, mu0, data.pw, fam0)
        if theta0 is None or any(i < spec.ntheta for i in fixed):
            return _better_theta_start(spec, beta0, fixed, devfun)
        # three digits: a start needs no more, and the sums' last bits (row order: a Dask sample,
        # a permuted frame) then do not move the optimizer's path
        theta0 = np.array([float(f"{v:.3g}") for v in np.clip(theta0, THETA_START_MIN, THETA_START_MAX)])
        x0 = np.concatenate([theta0, beta0])
        for i, v in fixed.items():
            x0[i] = v
        return x0
    for i, v in fixed.items():
        start[i] = v
    return start


THETA_START_MIN, THETA_START_MAX = 0.1, 3.0  # a moment start near 0 or far out: off the bound, in reach


def _better_theta_start(spec, beta0: np.ndarray, fixed: dict, devfun) -> np.ndarray:
    """(theta, beta0) with theta at lme4's start or 0.3 times it, whichever has the lower deviance."""
    starts = [np.concatenate([spec.theta_start() * s, beta0]) for s in (1.0, 0.3)]
    for x in starts:
        for i, v in fixed.items():
            x[i] = v
    return min(starts, key=lambda x: devfun(x))


def parameter_bounds(request: FitRequest, profiled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds in the optimizer's order (fixed parameters pinned)."""
    spec = request.spec
    lower = spec.theta_lower()
    if not profiled:
        lower = np.concatenate([lower, np.full(spec.p + request.family.n_extra(spec), -np.inf)])
        if spec.zi_terms:  # the zero part's theta come last (ZeroInflated.n_extra)
            lower[lower.size - spec.zi_ntheta :] = np.concatenate([t.theta_lower() for t in spec.zi_terms])
    upper = np.full(lower.size, np.inf)
    for i, v in fixed_indices(request).items():
        lower[i] = upper[i] = v
    return lower, upper


def parameter_scale(request: FitRequest, devfun) -> np.ndarray | None:
    """Optimizer scaling: fixed-effect columns by their SD so all parameters are comparable."""
    if devfun.profiled:
        return None
    sd = np.asarray(request.spec.X).std(axis=0)
    return np.concatenate([np.ones(request.spec.ntheta), np.where(sd > 0, sd, 1.0),
                           np.ones(request.family.n_extra(request.spec))])


def minimize(request: FitRequest, devfun, start: np.ndarray, label: str = "L-BFGS-B") -> OptSummary:
    """Minimise ``devfun`` from ``start`` within the request's bounds (restarting inside when a
    variance stops on its bound while the deviance decreases inward: lme4's ``restart_edge``)."""
    lower, upper = parameter_bounds(request, devfun.profiled)
    maxiter = int(request.control.get("maxiter", 2000))
    if devfun.analytic_gradient or getattr(devfun, "gradient_by_differences", False):
        scale = parameter_scale(request, devfun)  # once: a pass over X

        def run(x0):
            return minimize_devfun(devfun.value_and_grad, x0, lower, scale=scale, maxiter=maxiter, label=label,
                                   upper=upper)
    else:
        def run(x0):
            return minimize_devfun(devfun, x0, lower, jac=False, maxiter=maxiter, label=label, upper=upper)
    return restart_edge(devfun, run, run(start), lower, upper)


def polish_agq(dev, opt: OptSummary, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, float, list[str]]:
    """Check the AGQ optimizer's end point with the exact gradient and, where the Newton step it
    implies is not negligible (few nodes, small clusters), take Newton steps with that gradient and
    the Hessian of the optimizer's gradient. Returns ``(x, deviance, messages)``."""
    x = opt.final.copy()
    fx = dev(x)
    messages = list(opt.messages)
    finite = np.isfinite(lower)
    pinned = lower == upper
    for it in range(8):
        g = dev.exact_gradient(x)
        free = ~(finite & (x - np.where(finite, lower, 0) < 1e-8) & (g > 0)) & ~pinned
        H = dev.hessian(opt.final)  # one Hessian: good enough to steer the polishing steps
        try:
            step = np.zeros_like(x)
            step[free] = np.linalg.solve(H[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            break
        if np.max(np.abs(step) / np.maximum(1.0, np.abs(x))) < 1e-7:
            break
        t = 1.0
        while t > 1e-4:
            xn = x - t * step
            xn = np.where(finite, np.maximum(xn, np.where(finite, lower, 0)), xn)
            fn = dev(xn)
            if fn < fx:
                x, fx = xn, fn
                break
            t *= 0.5
        else:
            break
        if it == 0:
            messages.append("polished with the exact AGQ gradient (Newton steps)")
    return x, fx, messages


def agq_stage(request: FitRequest, laplace_opt: OptSummary) -> tuple[AgqDevfun, OptSummary]:
    """Optimise the AGQ deviance starting from the Laplace optimum.

    L-BFGS-B runs on :meth:`AgqDevfun.value_and_grad` (exact for scalar random effects,
    placement-fixed for vector ones). Its end point is then checked with the exact gradient;
    where the Newton step that gradient implies is not negligible — few nodes, small clusters —
    Newton steps with that gradient and the Hessian of the optimizer's gradient polish it.
    """
    t0 = time.perf_counter()
    dev = make_devfun(request, "final")
    dev.reset_modes()
    opt = minimize(request.replace(start=laplace_opt.final), dev, laplace_opt.final, label="L-BFGS-B (AGQ)")
    lower, upper = parameter_bounds(request, False)
    x, fx, messages = polish_agq(dev, opt, lower, upper)
    opt = dataclasses.replace(opt, start=laplace_opt.final, final=x, objective=float(fx), messages=tuple(messages),
                              evaluations=opt.evaluations + laplace_opt.evaluations + dev.nevals,
                              time=time.perf_counter() - t0 + laplace_opt.time)
    return dev, opt


def fit(request: FitRequest, result_class: type = GLMMResult) -> GLMMResult:
    """Run the chain for ``request``: deviance function → starts → minimise → (AGQ) → result.

    A numerical failure the chain cannot step around (a factorization or an overflow at the
    start or at the estimate itself: data that do not identify the model) is a
    :class:`ModelError` saying so, never a numpy traceback.
    """
    # the core's dense algebra is on small blocks, where BLAS threads cost more than they give;
    # fit_threads records the caller's limits for the few large blocks (likelihood/threads.py)
    try:
        with stopwatch() as sw, ExitStack() as stack:
            with sw.stage("starts"):
                stack.enter_context(fit_threads())
                stack.enter_context(fit_progress(request.control.get("progress")))
                dev = make_devfun(request, "laplace")
                x0 = start_values(request, dev)
            with sw.stage("optimizer"):
                opt = minimize(request, dev, x0)
            if request.uses_agq:
                with sw.stage("agq"):
                    dev, opt = agq_stage(request, opt)
            return build_result(request, dev, opt, result_class)
    except (np.linalg.LinAlgError, ArithmeticError) as exc:
        spec = request.spec
        fam = request.family
        if not fam.profiled_lmm and fam.link.name in ("identity", "inverse", "sqrt", "inverse_squared"):
            raise ModelError(
                f"the fit failed numerically ({type(exc).__name__}: {exc}): with the {fam.link.name} link the "
                f"{fam.name} family's mean is not kept in its range, and the optimizer reached parameters that "
                f"give some rows an impossible mean (e.g. a negative one). Use the "
                f"{' or '.join(dict.fromkeys([repr(fam.links[0]), repr('log')]))} link, "
                "or a model whose linear predictor stays in range"
            ) from exc
        raise ModelError(
            f"the fit failed numerically ({type(exc).__name__}: {exc}); the {spec.nobs} observations do not "
            f"identify '{spec.formula.text}' with the {request.family.name} family — simplify the random effects "
            "or check the response"
        ) from exc


_SPEC_CHANGES = ("formula", "data", "weights", "offset")


def refit(m: GLMMResult, **changes) -> GLMMResult:
    """Fit ``m``'s model again with some things changed; the result has ``m``'s class.

    Parameters
    ----------
    **changes
        ``data``, ``formula``, ``weights``, ``offset`` (a new design, the model's family);
        ``y`` (a new response vector on the mean scale, same rows); ``family``/``link``;
        ``reml``, ``method``, ``nagq``, ``control``, ``start``, ``fixed`` (parameters held at
        given values, by name).
    """
    with stopwatch() as sw:
        with sw.stage("design"):
            new = _refit_request(m, changes)
        return fit(new, type(m))


def _refit_request(m: GLMMResult, changes: dict) -> FitRequest:
    req = m.request
    allowed = set(_SPEC_CHANGES) | {"y", "family", "link", "reml", "method", "nagq", "control", "start", "fixed",
                                    "ziformula", "hurdle", "dispformula"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ModelError(f"refit() cannot change {', '.join(map(repr, unknown))}; it takes {', '.join(sorted(allowed))}")
    fam = req.family
    zi_formula = zero_part_formula(changes.get("ziformula", req.spec.zi_formula),
                                   changes.get("hurdle", req.family.hurdle if req.family.has_zero_part else False))
    disp_formula = changes.get("dispformula", req.spec.disp_formula)
    if any(k in changes for k in ("family", "link", "ziformula", "hurdle", "dispformula")):
        base = fam.start_family  # the count part: a zero-inflated family keeps its zero part
        hurdle = changes.get("hurdle", fam.hurdle if fam.has_zero_part else False)
        fam = model_family(changes.get("family", base), changes.get("link"), zi_formula, hurdle, disp_formula)
    spec = req.spec
    if any(k in changes for k in _SPEC_CHANGES + ("ziformula", "dispformula")) or fam != req.family:
        formula = changes.get("formula", spec.formula)
        data = changes.get("data", spec.frame)
        weights = changes.get("weights", spec.meta.get("weights_column"))
        offset = changes.get("offset", spec.meta.get("offset_column"))
        if "data" not in changes:
            # the same rows: weights and offset given as vectors travel with them
            if weights is None and spec.meta.get("weights_vector") is not None:
                weights = spec.meta["weights_vector"]
            if offset is None and spec.meta.get("offset_vector") is not None:
                offset = spec.meta["offset_vector"]
        spec = model_spec(formula, data, fam, weights=weights, offset=offset, ziformula=zi_formula,
                          dispformula=disp_formula)
    if "y" in changes:
        y = np.asarray(changes["y"], dtype=float)
        if y.shape != np.asarray(spec.y).shape:
            raise ModelError(f"y has {y.size} values; the model has {spec.nobs} observations")
        y.setflags(write=False)
        spec = dataclasses.replace(spec, y=y)
    method, nagq = check_method(changes.get("method", req.method), changes.get("nagq", req.nagq), fam)
    check_agq_size(nagq, spec, method)
    reml, control, start, fixed = check_options(changes.get("reml", req.reml), changes.get("control", req.control),
                                                changes.get("start", req.start), changes.get("fixed", req.fixed))
    return FitRequest(spec=spec, family=fam, method=method, nagq=nagq, reml=reml, control=control, start=start,
                      fixed=fixed)
