"""Random-effect terms from the parsed bars: Z blocks, grouping codes, lme4's term order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula import ParsedFormula, position_columns
from .covstruct import make_structure
from .grouping import grouping
from .matrices import check_finite, model_matrix, rename_intercept
from .positions import position_spec
from .reterms import ReTerm

__all__ = ["random_terms", "frozen"]


def frozen(a: np.ndarray) -> np.ndarray:
    """A contiguous read-only copy-or-view of ``a``."""
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def random_terms(parsed: ParsedFormula, d: pd.DataFrame) -> tuple[ReTerm, ...]:
    """One :class:`ReTerm` per bar (per column for ``||``), in lme4's order, labelled."""
    raw_terms: list[ReTerm] = []
    for rt in parsed.random:
        grp = grouping(d, rt.group_vars)
        levels, codes = grp.levels, grp.codes
        coords = position_columns(rt.lhs, rt.text)
        if coords is not None:
            if rt.structure not in ("ou", "exp", "gau", "mat"):
                raise FormulaError(f"the term {rt.text}: pos() coordinates go with a distance-based structure, "
                                   f"ou(), exp(), gau() or mat() — not {rt.structure}()")
            lhs_spec, Z = position_spec(d, coords, f"the term {rt.text}", len(levels))
            names = lhs_spec.col_names
            structure = make_structure(rt.structure, len(names), rt.text, lhs_spec.coords)
        else:
            mm = model_matrix(rt.lhs, d, f"the term {rt.text}")
            lhs_spec = mm.model_spec
            names = rename_intercept(mm.columns)
            if len(names) == 0:
                raise FormulaError(f"the term {rt.text} has no random-effect column")
            Z = mm.to_numpy(dtype=float)
            check_finite(Z, names, f"column of the term {rt.text}:")
            structure = make_structure(rt.structure, len(names), rt.text)
        if len(levels) < 2 and rt.structure not in ("ou", "exp", "gau", "mat"):
            raise DataError(
                f"grouping factor '{rt.group}' has a single level ({levels[0]}); a random effect needs "
                "at least two groups"
            )
        chunks = [(None, names, Z)] if rt.correlated else [
            ((j,), (names[j],), Z[:, [j]]) for j in range(len(names))
        ]
        for cols_kept, cn, zv in chunks:
            raw_terms.append(
                ReTerm(group=rt.group, label=rt.group, group_vars=rt.group_vars, levels=levels,
                       codes=frozen(codes), col_names=cn, Zvals=frozen(zv), lhs_spec=lhs_spec,
                       columns=cols_kept, text=rt.text, var_levels=grp.var_levels,
                       level_codes=frozen(grp.level_codes), structure=structure if cols_kept is None else None)
            )
    nl = np.array([t.nlevels for t in raw_terms])
    if np.any(np.diff(nl) > 0):  # lme4's mkReTrms: rev(order(nl))
        order = np.argsort(nl, kind="stable")[::-1]
        raw_terms = [raw_terms[i] for i in order]
    seen: dict[str, int] = {}
    terms = []
    for t in raw_terms:
        k = seen.get(t.group, 0)
        seen[t.group] = k + 1
        label = t.group if k == 0 else f"{t.group}.{k}"
        terms.append(ReTerm(**{**t.__dict__, "label": label}))
    for t in terms:
        if t.nlevels >= len(d) and t.q > 1 and not t.structured:
            raise DataError(
                f"the term {t.text} has {t.nlevels} levels for {len(d)} observations: "
                "its random effects are not identifiable"
            )
    return tuple(terms)
