"""The focal covariate of the report's effect curves and the values the others are held at.

The focal covariate is the one the user names (``report(focus="x")``, ``m.plot.effects("x")``);
otherwise the treatment or exposure when its name says so (``treat``, ``treatment``, ``trt``,
``exposure``, ``arm``, ``intervention``, ``dose`` …), otherwise the first continuous covariate,
otherwise the first fixed-effect variable of any kind. A focal covariate with at most
``DISCRETE_MAX`` distinct values (a 0/1 treatment, a factor) is drawn at its values, a
continuous one along a grid from its 2nd to its 98th percentile. Every other fixed-effect
variable is held at its mean (continuous) or its most common value (0/1, factors), the
variables of ``offset(...)`` terms at their means and an ``offset=`` vector at 0 (per unit of
exposure), and the chart and the text say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design import required_variables
from ..marginal.claims import interacting_terms
from ..errors import DataError

__all__ = ["Focus", "check_focus", "fixed_variables", "offset_variables", "other_terms", "choose_focus", "focus_frame",
           "TREATMENT_NAMES"]

TREATMENT_NAMES = ("treat", "treatment", "treated", "trt", "tx", "exposure", "exposed", "expo", "arm",
                   "intervention", "drug", "dose", "therapy", "program", "programme", "policy")
DISCRETE_MAX = 10
GRID = 40


@dataclass(frozen=True)
class Focus:
    """The focal covariate, how it was chosen, its grid and the held-at values of the others."""

    var: str
    why: str  # "named", "treatment", "continuous", "first"
    discrete: bool
    grid: list
    held: dict  # other fixed-effect variable -> (value, "mean" | "most common" | "mean, in the offset" | ...)
    offset_vector: bool = False  # an offset= vector: the curves are at offset 0 (per unit of exposure)
    panel_var: str | None = None  # a covariate the focal one interacts with: curves drawn at several values
    panel_values: tuple = ()
    panel_how: str = ""

    @property
    def panel_labels(self) -> list[str]:
        """One label per panel ("visit = 2"), or [""] when the curves are drawn once."""
        if self.panel_var is None:
            return [""]
        return [f"{self.panel_var} = {_shown(v)}" for v in self.panel_values]

    @property
    def held_text(self) -> str:
        """``age = 59.8 (mean), sex = F (most common)``, or "" when there is nothing to hold."""
        parts = []
        if self.panel_var is not None:
            parts.append(f"{self.panel_var} = {', '.join(_shown(v) for v in self.panel_values)} ({self.panel_how}; "
                         f"{self.var} interacts with it: one panel each)")
        for v, (value, how) in self.held.items():
            parts.append(f"{v} = {_shown(value)} ({how})")
        if self.offset_vector:
            parts.append("the offset= vector at 0 (per unit of exposure)")
        return ", ".join(parts)


def _shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)


def held_level(col: pd.Series) -> tuple:
    """(value, how) for a discrete covariate: its most common value when one is, else — a tie —
    the reference (first) level, saying so."""
    counts = col.value_counts(sort=False)
    if isinstance(col.dtype, pd.CategoricalDtype):
        counts = counts.reindex(col.cat.categories).fillna(0)
    else:
        counts = counts.sort_index()
    top = counts[counts == counts.max()]
    if len(top) == 1:
        return top.index[0], "most common"
    first = top.index[0]
    return first, (f"first of {len(top)} equally common levels" if len(top) < len(counts)
                   else f"reference level; all {len(counts)} levels equally common")


def _panel(m, var: str):
    """The first covariate ``var`` interacts with, and the values to draw the curves at."""
    frame = m.spec.frame
    inter = other_terms(m, var)
    for w in fixed_variables(m):
        if w == var or not any(re.search(rf"(?<![\w.]){re.escape(w)}(?![\w])", t) for t in inter):
            continue
        col = frame[w]
        if _continuous(col):
            vals = tuple(float(v) for v in np.quantile(col.astype(float), [0.1, 0.5, 0.9]))
            return w, vals, "its 10th, 50th and 90th percentiles"
        levels = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) \
            else sorted(col.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        levels = [lv for lv in levels if (col == lv).any()]
        if len(levels) <= 6:
            return w, tuple(levels), "each of its values"
        pick = sorted(set(np.linspace(0, len(levels) - 1, 4).round().astype(int)))
        return w, tuple(levels[i] for i in pick), f"{len(pick)} of its {len(levels)} values, first to last"
    return None, (), ""


def fixed_variables(m) -> list[str]:
    """Columns of the data the fixed-effect part uses, in formula order."""
    frame = m.spec.frame
    if frame is None or not m.spec.formula.fixed.strip():
        return []
    found = required_variables(m.spec.formula.fixed, "the fixed effects")
    response = {m.spec.response_name, *(m.spec.formula.cbind or ())}
    return [v for v in found if v in frame.columns and v not in response]


def check_focus(m, focus: str | None, name: str = "focus") -> list[str]:
    """The fixed-effect variables (:func:`fixed_variables`); a DataError naming ``name`` when
    ``focus`` is given and is not one of them."""
    candidates = fixed_variables(m)
    if focus is not None and focus not in candidates:
        raise DataError(f"{name}='{focus}' is not a fixed-effect variable: the effect curves vary a covariate of "
                        f"the fixed part ({', '.join(map(repr, candidates)) or 'none'})")
    return candidates


def offset_variables(m) -> list[str]:
    """Columns the formula's ``offset(...)`` terms use."""
    frame = m.spec.frame
    out: list[str] = []
    for o in m.spec.formula.offsets:
        out += [v for v in required_variables(f"0 + I({o})", f"offset({o})") if v in frame.columns and v not in out]
    return out


def other_terms(m, var: str) -> list[str]:
    """Fixed-effect coefficients other than ``var``'s own that involve it (interactions,
    ``I(var ** 2)``, ``log(var)``): when there are any, no single coefficient is var's effect
    (:func:`glmm_nb.marginal.claims.interacting_terms`)."""
    return interacting_terms(m, var)


def _is_treatment(name: str) -> bool:
    words = [w for w in re.split(r"[^0-9a-z]+", name.lower()) if w]
    return any(w in TREATMENT_NAMES for w in words) or name.lower().startswith(("treat", "expos"))


def _continuous(col: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
            and col.nunique() > DISCRETE_MAX)


def choose_focus(m, focus: str | None = None) -> Focus | None:
    """The focal covariate (see the module docstring); None when the model has no covariate.

    Raises
    ------
    DataError
        ``focus`` is not a fixed-effect variable of the model.
    """
    frame = m.spec.frame
    candidates = check_focus(m, focus)
    if focus is not None:
        var, why = focus, "named"
    elif not candidates:
        return None
    else:
        treat = [v for v in candidates if _is_treatment(v)]
        cont = [v for v in candidates if _continuous(frame[v])]
        var, why = (treat[0], "treatment") if treat else (cont[0], "continuous") if cont else (candidates[0], "first")
    col = frame[var]
    discrete = not _continuous(col)
    if discrete:
        if isinstance(col.dtype, pd.CategoricalDtype):
            grid = [c for c in col.cat.categories if (col == c).any()]
        else:
            grid = sorted(col.dropna().unique().tolist())
    else:
        grid = np.linspace(*np.quantile(col.astype(float), [0.02, 0.98]), GRID).tolist()
    panel_var, panel_values, panel_how = _panel(m, var)
    held = {}
    for v in candidates:
        if v == var or v == panel_var:
            continue
        c = frame[v]
        held[v] = (float(c.mean()), "mean") if _continuous(c) else held_level(c)
    for v in offset_variables(m):
        if v != var and v not in held and v != panel_var:
            held[v] = (float(frame[v].mean()), "mean, in the offset")
    return Focus(var, why, discrete, grid, held, offset_vector=m.spec.meta.get("offset_vector") is not None,
                 panel_var=panel_var, panel_values=panel_values, panel_how=panel_how)


def _set(base: pd.DataFrame, frame: pd.DataFrame, var: str, values) -> None:
    col = frame[var]
    if isinstance(col.dtype, pd.CategoricalDtype):
        base[var] = pd.Categorical(values, categories=col.cat.categories, ordered=col.cat.ordered)
    elif _continuous(col):
        base[var] = np.asarray(values, dtype=float)
    else:
        base[var] = pd.array(values, dtype=col.dtype)


def focus_frame(m, f: Focus) -> pd.DataFrame:
    """Rows of the model frame with the focal covariate on its grid and the rest held; with a
    panel covariate, the grid once per panel value (panel by panel, in ``f.panel_labels`` order)."""
    frame = m.spec.frame
    k = len(f.panel_values) if f.panel_var is not None else 1
    base = frame.iloc[[0] * (len(f.grid) * k)].copy()
    for v, (value, _how) in f.held.items():
        base[v] = value
    _set(base, frame, f.var, list(f.grid) * k)
    if f.panel_var is not None:
        _set(base, frame, f.panel_var, [v for v in f.panel_values for _ in f.grid])
    return base.reset_index(drop=True)
