r"""Random-effect terms and lme4's relative covariance factor.

A term ``(lhs | g)`` with ``q`` model-matrix columns and ``J`` levels of ``g`` contributes the
block ``Z_k`` (n × Jq) whose row ``i`` holds the ``q`` values ``z_i`` in the columns of level
``g_i``. We never form that block densely: a term stores ``codes`` (n,) and ``Zvals`` (n, q).

The covariance of the term's random effects is :math:`\sigma^2 T T'` with ``T`` lower
triangular (q × q). ``theta`` holds ``T``'s lower triangle column by column (lme4's order:
``T11, T21, ..., Tq1, T22, ...``), diagonal entries bounded below by 0. For the whole model
:math:`\Lambda = \mathrm{blockdiag}_k(I_{J_k} \otimes T_k)` and :math:`b = \Lambda u`,
:math:`u \sim N(0, \sigma^2 I)` (σ = 1 outside the gaussian family).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ReTerm", "theta_to_T", "tril_index"]


def tril_index(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a q × q lower triangle in lme4's column-major order."""
    rows, cols = [], []
    for c in range(q):
        for r in range(c, q):
            rows.append(r)
            cols.append(c)
    return np.array(rows, dtype=int), np.array(cols, dtype=int)


def theta_to_T(theta_block: np.ndarray, q: int) -> np.ndarray:
    """The lower-triangular factor ``T`` from one term's ``theta`` block."""
    T = np.zeros((q, q))
    r, c = tril_index(q)
    T[r, c] = theta_block
    return T


@dataclass(frozen=True, eq=False)
class ReTerm:
    """One random-effect term after expansion of ``/`` and ``||``.

    Attributes
    ----------
    group : str
        Grouping-factor label (``"herd"``, ``"a:b"``).
    label : str
        Unique label for tables (``"g"``, then ``"g.1"`` for a second term on ``g``, as lme4).
    group_vars : tuple of str
        The grouping columns.
    levels : tuple of str
        Levels in lme4's order.
    codes : ndarray of int, shape (n,)
        Level index of each row.
    col_names : tuple of str
        The term's columns (``"(Intercept)"``, ``"x"``, ``"urban[T.Y]"``).
    Zvals : ndarray, shape (n, q)
        The term's model-matrix rows.
    lhs_spec : formulaic ModelSpec
        Rebuilds ``Zvals`` for new data with the same encoding.
    columns : tuple of int or None
        For a ``||`` term, which columns of ``lhs_spec``'s matrix this term keeps.
    text : str
        The term as written, for messages.
    var_levels : tuple of tuple of str
        Per grouping column, its levels in the fit (maps new data by codes).
    level_codes : ndarray of int, shape (J, len(group_vars))
        Per group, the codes of its columns' levels.
    """

    group: str
    label: str
    group_vars: tuple[str, ...]
    levels: tuple[str, ...]
    codes: np.ndarray
    col_names: tuple[str, ...]
    Zvals: np.ndarray
    lhs_spec: Any
    columns: tuple[int, ...] | None
    text: str
    var_levels: tuple[tuple[str, ...], ...] = ()
    level_codes: np.ndarray | None = None

    @property
    def q(self) -> int:
        return len(self.col_names)

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def ntheta(self) -> int:
        return self.q * (self.q + 1) // 2

    def theta_lower(self) -> np.ndarray:
        r, c = tril_index(self.q)
        return np.where(r == c, 0.0, -np.inf)

    def theta_start(self) -> np.ndarray:
        r, c = tril_index(self.q)
        return np.where(r == c, 1.0, 0.0)

    def theta_names(self) -> list[str]:
        r, c = tril_index(self.q)
        names = []
        for a, b in zip(r, c):
            if a == b:
                names.append(f"{self.label}.{self.col_names[a]}")
            else:
                names.append(f"{self.label}.{self.col_names[a]}.{self.col_names[b]}")
        return names
