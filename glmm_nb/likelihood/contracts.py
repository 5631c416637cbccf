"""The interfaces the likelihood layer promises to the optimizer and the result builder.

Deviance functions (Laplace, AGQ, profiled LMM) and factorizations of
:math:`M = I + \\tilde Z' W \\tilde Z` declare what they offer here instead of being probed
with ``hasattr``:

* :class:`Factorization` — ``logdet``, ``solve(rhs)``, ``P(vals)`` (rows of
  :math:`\\tilde Z M^{-1}` at each row's own columns) and ``inv_blocks_term(k)`` (the diagonal
  blocks of :math:`M^{-1}` belonging to term ``k``, (J_k, q_k, q_k)).
* :class:`DevianceFunction` — ``f(phi)``; ``value_and_grad(phi)`` where ``analytic_gradient``
  is true; ``exact_gradient(phi)`` and ``hessian(phi)`` at an optimum (the defaults: the
  analytic gradient and forward differences of it, or central differences of the values);
  ``state(phi)`` the inner state (conditional modes, factorization) at ``phi``.
  ``profiled`` is true when ``phi`` is theta alone (the LMM: beta and sigma profiled out).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..numdiff import central_diff, fd_hessian, fd_hessian_fun

__all__ = ["Factorization", "DevianceFunction", "default_gradient", "default_hessian"]


@runtime_checkable
class Factorization(Protocol):
    logdet: float
    dense_block: int  # columns of its dense (Schur) block, 0 when it has none

    def solve(self, rhs: np.ndarray) -> np.ndarray: ...

    def P(self, vals: np.ndarray) -> np.ndarray: ...

    def inv_blocks_term(self, k: int) -> np.ndarray: ...


@runtime_checkable
class DevianceFunction(Protocol):
    spec: Any
    family: Any
    ntheta: int
    p: int
    analytic_gradient: bool
    profiled: bool

    def __call__(self, phi: np.ndarray) -> float: ...

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]: ...

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray: ...

    def hessian(self, phi: np.ndarray) -> np.ndarray: ...

    def state(self, phi: np.ndarray) -> Any: ...


def default_gradient(dev, phi: np.ndarray) -> np.ndarray:
    """The analytic gradient where the function has one, else central differences."""
    phi = np.asarray(phi, dtype=float)
    if not phi.size:
        return np.zeros(0)
    if dev.analytic_gradient:
        return dev.value_and_grad(phi)[1]
    return central_diff(dev, phi, 1e-5 * np.maximum(np.abs(phi), 1e-1))


def default_hessian(dev, phi: np.ndarray) -> np.ndarray:
    """Forward differences of the analytic gradient, or central differences of the values."""
    phi = np.asarray(phi, dtype=float)
    if not phi.size:
        return np.zeros((0, 0))
    if dev.analytic_gradient:
        grad = lambda z: dev.value_and_grad(z)[1]  # noqa: E731
        return fd_hessian(grad, phi, grad(phi))
    return fd_hessian_fun(dev, phi)
