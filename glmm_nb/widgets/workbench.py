"""The model builder's state without widgets: choices ↔ formula, and the comparison of models.

A :class:`Choices` record is what the builder's controls show; :func:`formula_of` writes the
lme4 formula for it and :func:`choices_of` reads a formula back into choices when the formula
can be shown as controls (plain columns, ``cbind`` of two columns or of ``s, n - s``, one
``offset(x)`` or ``offset(log(x))``, random intercepts and slopes of plain columns by one
grouping column) — ``None`` otherwise, and the formula text is then fitted as written.
:func:`compare` puts fitted models side by side with the same numbers as
:func:`glmm_nb.anova`; nothing here fits or computes a statistic of its own.
"""

from __future__ import annotations

import keyword
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import FormulaError, GLMMError, ModelError
from ..formula import parse_formula
from ..inference import anova

__all__ = ["Choices", "formula_of", "choices_of", "compare", "guess_response", "quote_name"]


def quote_name(name: str) -> str:
    """A column name as a formula writes it: backquoted unless a plain identifier."""
    if "`" in name:
        raise FormulaError(f"the column name {name!r} holds a backtick and cannot be written in a formula")
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"`{name}`"


def _unquote(text: str, columns) -> str | None:
    """The column a formula token names, or None when the token is not a plain column."""
    t = text.strip()
    if len(t) > 2 and t[0] == t[-1] == "`" and "`" not in t[1:-1]:
        t = t[1:-1]
    elif not (t.isidentifier() and not keyword.iskeyword(t)):
        return None
    return t if t in columns else None


@dataclass(frozen=True)
class Choices:
    """What the controls show. ``response_form``: ``"column"``, ``"failures"``
    (``cbind(response, response2)``) or ``"trials"`` (``cbind(response, response2 - response)``);
    ``groups`` maps each grouping column to ``(slopes, correlated)``."""

    response: str | None = None
    response_form: str = "column"
    response2: str | None = None
    fixed: tuple[str, ...] = ()
    groups: dict = field(default_factory=dict)
    offset: str | None = None
    offset_log: bool = False


def formula_of(c: Choices) -> str:
    """The lme4 formula of a set of choices."""
    if c.response is None:
        raise ModelError("choose a response")
    y = quote_name(c.response)
    if c.response_form != "column":
        if c.response2 is None:
            raise ModelError(f"choose the {'failures' if c.response_form == 'failures' else 'trials'} column")
        other = quote_name(c.response2)
        y = f"cbind({y}, {other})" if c.response_form == "failures" else f"cbind({y}, {other} - {y})"
    used = {c.response, c.response2} if c.response_form != "column" else {c.response}
    terms = [quote_name(v) for v in c.fixed if v not in used]
    if c.offset:
        inner = quote_name(c.offset)
        terms.append(f"offset(log({inner}))" if c.offset_log else f"offset({inner})")
    rhs = " + ".join(terms) if terms else "1"
    for g, (slopes, correlated) in c.groups.items():
        lhs = "1" + "".join(f" + {quote_name(s)}" for s in slopes)
        bar = "|" if (correlated or not slopes) else "||"
        rhs += f" + ({lhs} {bar} {quote_name(g)})"
    return f"{y} ~ {rhs}"


def choices_of(text: str, columns) -> Choices | None:
    """Choices that write ``text`` (up to spacing), or None when controls cannot show it.

    Raises FormulaError for a formula that does not parse."""
    columns = set(columns)
    p = parse_formula(text)
    form, y2 = "column", None
    if p.cbind is not None:
        a, b = p.cbind
        y = _unquote(a, columns)
        y2 = _unquote(b, columns)
        form = "failures"
        if y2 is None and "-" in b:
            n, _, s = b.rpartition("-")
            if _unquote(s, columns) == y:
                y2, form = _unquote(n, columns), "trials"
        if y is None or y2 is None:
            return None
    else:
        y = _unquote(p.response or "", columns)
        if y is None:
            return None
    fixed = []
    if p.fixed.strip() not in ("", "1"):
        for piece in p.fixed.split("+"):
            if piece.strip() == "1":
                continue
            col = _unquote(piece, columns)
            if col is None:
                return None
            fixed.append(col)
    offset, offset_log = None, False
    if len(p.offsets) > 1:
        return None
    if p.offsets:
        o = p.offsets[0].strip()
        if o.startswith("log(") and o.endswith(")"):
            o, offset_log = o[4:-1], True
        offset = _unquote(o, columns)
        if offset is None:
            return None
    groups: dict = {}
    for t in p.random:
        g = _unquote(t.group, columns)
        pieces = [s.strip() for s in t.lhs.split("+")]
        if g is None or g in groups or pieces[0] != "1":
            return None
        slopes = tuple(_unquote(s, columns) for s in pieces[1:])
        if any(s is None for s in slopes):
            return None
        groups[g] = (slopes, t.correlated or not slopes)
    return Choices(y, form, y2, tuple(fixed), groups, offset, offset_log)


_RESPONSE_NAMES = ("y", "outcome", "response", "target", "score", "count", "rating", "use")


def guess_response(data: pd.DataFrame, cols: list[str]) -> tuple[str | None, str]:
    """A sensible starting response and family: a column with an outcome-like name, else the
    first two-valued column (binomial), else the first other usable column (whole non-negative
    numbers: poisson; other numbers: gaussian; an ordered categorical: ordinal); never an
    id-like column (one level per row, or named like an id)."""
    def id_like(c: str) -> bool:
        col = data[c]
        low = c.lower()
        distinct = col.nunique() == len(col) and len(col) > 2 and not pd.api.types.is_float_dtype(col)
        return low in ("id", "index") or low.endswith("_id") or distinct

    def family_of(c: str) -> str | None:
        col = data[c].dropna()
        if col.nunique() == 2:
            return "binomial"
        if isinstance(col.dtype, pd.CategoricalDtype) and col.cat.ordered:
            return "ordinal"
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            whole = bool((col >= 0).all() and (col == col.round()).all())
            return "poisson" if whole and col.nunique() > 2 else "gaussian"
        return None

    usable = [c for c in cols if not id_like(c) and family_of(c) is not None]
    for c in usable:
        if c.lower() in _RESPONSE_NAMES:
            return c, family_of(c)
    for c in usable:
        if family_of(c) == "binomial":
            return c, "binomial"
    if usable:
        return usable[0], family_of(usable[0])
    return (cols[0] if cols else None), "binomial"


def describe(m) -> str:
    """One line naming a fitted model's family, link, zero part and dispersion model."""
    zero = m.request.family
    part = ""
    if len(m.zi_fixef):
        part = " + hurdle" if getattr(zero, "hurdle", False) else " + zero-inflation"
    if len(m.disp_fixef):
        part += f" + dispersion {m.spec.disp_formula}"
    return f"{m.family} ({m.link}){part}"


def compare(results: dict) -> pd.DataFrame:
    """Fitted models side by side, smallest first: family, nobs, df (parameters), AIC, BIC,
    logLik, converged; and, for each model that nests the one before it (same data), the LR
    test of :func:`glmm_nb.anova` against it (``vs``, ``chisq``, ``chi_df``, ``p_value`` and
    ``p_value_boundary`` where a parameter of the smaller model sits on its boundary)."""
    if not results:
        raise ModelError("no models fitted yet")
    names = sorted(results, key=lambda k: results[k].npar)
    rows = []
    for i, name in enumerate(names):
        m = results[name]
        row = {"model": name, "formula": m.formula, "family": describe(m), "nobs": m.nobs, "df": m.npar,
               "AIC": m.aic, "BIC": m.bic, "logLik": m.loglik, "converged": bool(m.converged), "vs": "",
               "chisq": np.nan, "chi_df": np.nan, "p_value": np.nan, "p_value_boundary": np.nan, "test": ""}
        for prev in reversed(names[:i]):  # the largest earlier model this one nests
            small = results[prev]
            if small.npar == m.npar:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a REML refit is stated in "test"
                    a = anova(small, m)
            except GLMMError:
                continue
            last = a.iloc[-1]
            note = a.attrs.get("note", "")
            row.update(vs=prev, chisq=last["chisq"], chi_df=last["df"], p_value=last["p_value"],
                       p_value_boundary=last["p_value_boundary"],
                       test=last["test"] + (f" ({note})" if note else ""))
            break
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
