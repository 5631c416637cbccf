"""``glmm()``: formula → design → deviance function → optimizer → :class:`GLMMResult`.

Each step is a public function and can be called on its own (lme4's modular chain):
:func:`glmm_nb.design.build_spec`, :func:`make_devfun`, :func:`glmm_nb.optimize.minimize_devfun`,
and the builders in :mod:`glmm_nb.results.build`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .design import ModelSpec, build_spec
from .errors import ModelError
from .families import Family, get_family
from .likelihood import LaplaceDevfun, LmmDevfun
from .likelihood.glm import glm_irls
from .optimize import minimize_devfun
from .results import GLMMResult
from .results.build import build_glmm_result, build_lmm_result

__all__ = ["glmm", "make_devfun"]

METHODS = ("laplace", "agq")


def make_devfun(spec: ModelSpec, family: Family, method: str = "laplace", nagq: int = 1, reml: bool = True):
    """The deviance function of a model: ``f(phi)`` with ``phi = (theta, beta)`` for GLMMs,
    ``f(theta)`` (profiled) for gaussian LMMs."""
    if family.name == "gaussian":
        return LmmDevfun(spec, reml=reml)
    if method == "agq" and nagq > 1:
        from .likelihood.agq import AgqDevfun

        return AgqDevfun(spec, family, nagq)
    return LaplaceDevfun(spec, family)


def _check_method(method: str, nagq, family: Family, spec: ModelSpec | None = None) -> tuple[str, int]:
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ModelError(f"unknown method {method!r}; choose 'laplace' or 'agq'")
    method = method.lower()
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or nagq < 1:
        raise ModelError(f"nagq must be a positive integer, not {nagq!r}")
    nagq = int(nagq)
    if method == "laplace" and nagq != 1:
        raise ModelError(f"nagq={nagq} needs method='agq' (Laplace is nagq=1)")
    if family.name == "gaussian" and method == "agq":
        raise ModelError("method='agq' is for binomial and poisson models; a gaussian LMM is fitted exactly")
    if nagq > 50:
        raise ModelError(f"nagq={nagq} is more than needed; use at most 50 nodes per dimension")
    return method, nagq


def glmm(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    link: str | None = None,
    method: str = "laplace",
    nagq: int = 1,
    reml: bool = True,
    weights=None,
    offset=None,
) -> GLMMResult:
    """Fit a generalized linear mixed model by maximum likelihood.

    Parameters
    ----------
    formula : str
        lme4 syntax: ``"y ~ x + (1 + x | g)"``, ``cbind(s, f) ~ ...``, ``(1 | a/b)``,
        ``(x || g)``, ``offset(log(t))``.
    data : pandas.DataFrame
    family : {"binomial", "poisson", "gaussian"}
    link : str, optional
        binomial: "logit" (default), "probit", "cloglog"; poisson: "log"; gaussian: "identity".
    method : {"laplace", "agq"}
        Laplace approximation or adaptive Gauss-Hermite quadrature.
    nagq : int
        Quadrature nodes per random-effect dimension (``method="agq"``).
    reml : bool
        REML (default, as ``lmer``) or ML for gaussian models; ignored otherwise.
    weights, offset : str or array-like, optional
        Prior weights (binomial: trials for proportions) and a known offset.

    Returns
    -------
    GLMMResult
    """
    fam = get_family(family, link)
    method, nagq = _check_method(method, nagq, fam)
    spec = build_spec(formula, data, fam.name, weights=weights, offset=offset)
    # the core's dense algebra is on small blocks, where BLAS threads cost more than they give
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(spec, fam, method, nagq, reml)


def _fit(spec: ModelSpec, fam: Family, method: str, nagq: int, reml: bool, start=None) -> GLMMResult:
    """Fit a built spec; ``start`` (theta for LMMs, theta+beta otherwise) warm-starts refits."""
    if fam.name == "gaussian":
        dev = LmmDevfun(spec, reml=bool(reml))
        theta0 = spec.theta_start() if start is None else np.asarray(start)[: spec.ntheta]
        opt = minimize_devfun(dev.value_and_grad, theta0, spec.theta_lower())
        return build_lmm_result(spec, fam, dev, opt)

    lap = LaplaceDevfun(spec, fam)
    if start is None:
        # GLM coefficients, and the better of two scales for theta's diagonal (lme4 starts at
        # 1; many fitted SDs are near 0.3, where the start saves a third of the iterations)
        beta0 = glm_irls(lap.X, lap.y, lap.pw, lap.off, fam)
        starts = [np.concatenate([spec.theta_start() * s, beta0]) for s in (1.0, 0.3)]
        start = min(starts, key=lambda x: lap(x))
    lower = np.concatenate([spec.theta_lower(), np.full(spec.p, -np.inf)])
    sd = lap.X.std(axis=0)
    scale = np.concatenate([np.ones(spec.ntheta), np.where(sd > 0, sd, 1.0)])
    opt = minimize_devfun(lap.value_and_grad, start, lower, scale=scale)
    if method == "agq" and nagq > 1:
        from .likelihood.agq import fit_agq

        dev, opt = fit_agq(spec, fam, nagq, opt, lower, scale)
        return build_glmm_result(spec, fam, dev, opt, method, nagq)
    return build_glmm_result(spec, fam, lap, opt, method, nagq)
