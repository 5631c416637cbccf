"""The frozen :class:`FitRequest`: everything that decides a fit, recorded on every result.

``glmm()`` builds one, :func:`glmm_nb.pipeline.fit` runs it, and ``m.refit(**changes)`` is a
copy of ``m.request`` with some fields changed, run through the same chain.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FitRequest", "METHODS", "parameter_names", "fixed_indices"]

METHODS = ("laplace", "agq")


@dataclass(frozen=True, eq=False)
class FitRequest:
    """What to fit and how.

    Attributes
    ----------
    spec : ModelSpec
        The frozen design (response, X, random-effect terms).
    family : glmm_nb.families.Family
    method : {"laplace", "agq"}
    nagq : int
        Quadrature nodes per random-effect dimension (1 = Laplace).
    reml : bool
        REML or ML, for families fitted as a profiled LMM (ignored otherwise).
    control : dict
        ``maxiter`` (optimizer iterations), ``pirls_maxit`` (PIRLS iterations per evaluation).
    start : ndarray or None
        Starting parameters in the optimizer's order (``theta`` for a profiled LMM,
        ``(theta, beta)`` otherwise); None for the default starts.
    fixed : dict
        Parameters held at given values during the fit, keyed by their names
        (:func:`glmm_nb.pipeline.parameter_names`).
    """

    spec: Any
    family: Any
    method: str = "laplace"
    nagq: int = 1
    reml: bool = True
    control: dict = field(default_factory=dict)
    start: np.ndarray | None = None
    fixed: dict = field(default_factory=dict)

    @property
    def uses_agq(self) -> bool:
        return self.method == "agq" and self.nagq > 1

    def replace(self, **changes) -> "FitRequest":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def parameter_names(request: FitRequest) -> list[str]:
    """Names of the optimizer's parameters: theta (``term.column``), then the fixed effects
    (not for a profiled LMM, where they are profiled out), then ``log(<dispersion>)``."""
    spec = request.spec
    names = list(spec.theta_names())
    if not request.family.profiled_lmm:
        names += list(spec.x_names)
        names += request.family.extra_names(spec)
    return names


def fixed_indices(request: FitRequest) -> dict[int, float]:
    """``request.fixed`` as optimizer positions → values (unknown names raise ModelError)."""
    from .errors import ModelError

    names = parameter_names(request)
    out = {}
    for k, v in request.fixed.items():
        if k not in names:
            raise ModelError(f"cannot hold {k!r} fixed: the parameters are {', '.join(names)}")
        out[names.index(k)] = float(v)
    return out
