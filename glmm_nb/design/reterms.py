r"""Random-effect terms and lme4's relative covariance factor.

A term ``(lhs | g)`` with ``q`` model-matrix columns and ``J`` levels of ``g`` contributes the
block ``Z_k`` (n × Jq) whose row ``i`` holds the ``q`` values ``z_i`` in the columns of level
``g_i``. We never form that block densely: a term stores ``codes`` (n,) and ``Zvals`` (n, q).

The covariance of the term's random effects is :math:`\sigma^2 T T'` with ``T`` lower
triangular (q × q). ``theta`` holds ``T``'s lower triangle column by column (lme4's order:
``T11, T21, ..., Tq1, T22, ...``), diagonal entries bounded below by 0. For the whole model
:math:`\Lambda = \mathrm{blockdiag}_k(I_{J_k} \otimes T_k)` and :math:`b = \Lambda u`,
:math:`u \sim N(0, \sigma^2 I)` (σ = 1 outside the gaussian family). A structured term
(``ar1(...)``, ``cs(...)``, …) has its own theta → T map (:mod:`.covstruct`); :meth:`ReTerm.T`
is the one way from a term's theta block to its T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .covstruct import Structure, tril_index

__all__ = ["ReTerm", "term_slices", "theta_to_T", "tril_index"]


def theta_to_T(theta_block: np.ndarray, q: int) -> np.ndarray:
    """The lower-triangular factor ``T`` of an unstructured term from its ``theta`` block."""
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
    structure : Structure
        The covariance structure (:mod:`.covstruct`; ``us`` unless the term was written
        ``diag(...)``, ``ar1(...)``, …).
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
    structure: Structure | None = None

    def __post_init__(self):
        if self.structure is None:
            object.__setattr__(self, "structure", Structure("us", len(self.col_names)))

    @property
    def q(self) -> int:
        return len(self.col_names)

    @property
    def structured(self) -> bool:
        """True for a term with a covariance structure other than lme4's unstructured one."""
        return not self.structure.linear

    def T(self, theta_block: np.ndarray) -> np.ndarray:
        """The term's lower-triangular relative covariance factor at its theta block."""
        return self.structure.T(theta_block)

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def ntheta(self) -> int:
        return self.structure.ntheta

    def theta_lower(self) -> np.ndarray:
        return self.structure.lower()

    def theta_start(self) -> np.ndarray:
        return self.structure.start()

    def theta_names(self) -> list[str]:
        return [f"{self.label}.{n}" for n in self.structure.param_names(self.col_names)]


def term_slices(terms) -> list[slice]:
    """Each term's slice of the theta vector the terms share, in order."""
    out, start = [], 0
    for t in terms:
        out.append(slice(start, start + t.ntheta))
        start += t.ntheta
    return out
