r"""Advice by refitting: the same model under the families an analyst would try next.

A simulated-residual dispersion test has little power against the overdispersion that a
negative binomial absorbs (grouseticks: p = 0.50 while the NB2 refit lowers the AIC by 196), so
the family advice is not gated on it. Instead the model is refitted with the alternatives the
data allow and the fits are compared by AIC, with likelihood-ratio tests where one model is
the other at the boundary of a parameter:

* counts (Poisson, NB2, NB1, with or without a zero part): Poisson, NB2, NB1, and the
  zero-inflated Poisson and NB2 with a constant zero probability (``ziformula="~ 1"``);
  Poisson ⊂ NB2, Poisson ⊂ NB1 (the dispersion at its Poisson limit), Poisson ⊂ ZIP, NB2 ⊂ ZINB2
  and ZIP ⊂ ZINB2 (the zero probability at 0, or the dispersion at its limit): one parameter
  on its boundary, so the p-value is the 50:50 chi-bar-square mixture (Self & Liang 1987);
* binomial responses with more than one trial: an observation-level random effect
  (``(1 | .obs)``, the usual logistic-normal overdispersion model) and the beta-binomial (as
  glmmTMB's), each the binomial at a boundary (variance 0, phi -> infinity: the same mixture);
* gaussian models with a factor in the fixed part: a dispersion model letting the residual SD
  differ by that factor (``dispformula="~ f"``, by ML, as the current model is refitted), an
  ordinary chi-square test on (levels - 1) df.

A model is recommended only when it wins: its AIC is the lowest and at least ``MIN_DELTA``
(2) below the current model's.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import GLMMError
from ..pipeline import refit

__all__ = ["Alternatives", "family_alternatives", "MIN_DELTA"]

MIN_DELTA = 2.0
MAX_LEVELS = 10
OBS = ".obs"
_COUNT = ("poisson", "negative_binomial", "nbinom1")
_LABEL = {("poisson", False): "Poisson", ("negative_binomial", False): "negative binomial (NB2)",
          ("nbinom1", False): "negative binomial (NB1)", ("poisson", True): "zero-inflated Poisson",
          ("negative_binomial", True): "zero-inflated NB2", ("nbinom1", True): "zero-inflated NB1"}
# (smaller, larger): the smaller is the larger at the boundary of one parameter
_NESTED = {("Poisson", "negative binomial (NB2)"), ("Poisson", "negative binomial (NB1)"),
           ("Poisson", "zero-inflated Poisson"), ("negative binomial (NB2)", "zero-inflated NB2"),
           ("negative binomial (NB1)", "zero-inflated NB1"), ("zero-inflated Poisson", "zero-inflated NB2"),
           ("zero-inflated Poisson", "zero-inflated NB1"), ("binomial", "binomial + observation-level RE")}


@dataclass(frozen=True)
class Alternatives:
    """The comparison table and the advice it supports."""

    table: pd.DataFrame  # model, family, call, loglik, npar, aic, delta_aic, chisq, df, p_value, test, current
    current: str
    best: str
    advice: str  # "" when the current model wins (or nothing could be compared)
    failed: tuple = ()  # (label, reason) of refits that failed

    def __repr__(self) -> str:
        return self.table.to_string(float_format=lambda v: f"{v:.4g}") + ("\n" + self.advice if self.advice else "")


def _count_label(m) -> str | None:
    fam = m.request.family
    base = fam.base if fam.has_zero_part else fam
    if base.name not in _COUNT or (fam.has_zero_part and fam.hurdle) or base.link.name != "log":
        return None
    if fam.has_zero_part and m.spec.zi_formula.replace(" ", "") not in ("~1",):
        return f"{_LABEL[(base.name, True)]} (zero part {m.spec.zi_formula})"
    return _LABEL[(base.name, fam.has_zero_part)]


def _binomial_trials(m) -> bool:
    fam = m.request.family
    return fam.name == "binomial" and bool(np.any(np.asarray(m.spec.weights) > 1)) and fam.reads_cbind


def _factors(m) -> list[str]:
    """Categorical variables of the fixed part with 2 to MAX_LEVELS levels (at most 3): the
    groupings whose residual spread a dispersion model may let differ."""
    from ..design import required_variables

    frame = m.spec.frame
    if frame is None or not m.spec.formula.fixed.strip():
        return []
    out = []
    for v in required_variables(m.spec.formula.fixed, "the fixed effects"):
        if v not in frame.columns or v == m.spec.response_name:
            continue
        col = frame[v]
        discrete = (isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col)
                    or pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col))
        if discrete and 2 <= col.nunique() <= MAX_LEVELS and re.fullmatch(r"\w+", v):
            out.append(v)
    return out[:3]


def _plan(m):
    """(current label, current fit, [(label, thunk, call)], {(smaller, larger): boundary count}) —
    None when no alternative applies. A boundary count of 0: an ordinary chi-square test."""
    fam = m.request.family
    current = _count_label(m)
    if current is not None:
        cands = []
        for (name, zi), label in _LABEL.items():
            if label == current or (zi and name == "nbinom1"):
                continue
            cands.append((label, lambda name=name, zi=zi: refit(m, family=name, ziformula="~ 1" if zi else None),
                          f"family={name!r}" + (", ziformula='~ 1'" if zi else "")))
        return current, m, cands, {pair: 1 for pair in _NESTED}, "Family"
    if _binomial_trials(m):
        data = m.spec.frame.copy()
        if OBS in data.columns:
            return None
        data[OBS] = np.arange(len(data)).astype(str)
        cands = [("binomial + observation-level RE", lambda: refit(m, formula=f"{m.formula} + (1 | `{OBS}`)", data=data),
                  f"formula + '(1 | {OBS})' with data['{OBS}'] = one level per row")]
        if fam.overdispersed_alternative_for(m.spec) == "betabinomial":
            cands.append(("beta-binomial", lambda: refit(m, family="betabinomial"), "family='betabinomial'"))
        nest = {("binomial", "binomial + observation-level RE"): 1, ("binomial", "beta-binomial"): 1}
        return "binomial", m, cands, nest, "Family"
    if fam.name == "gaussian" and not fam.has_disp_model and m.spec.frame is not None:
        factors = _factors(m)
        if not factors:
            return None
        current = "gaussian (ML)" if m.reml else "gaussian"
        base = refit(m, reml=False) if m.reml else m
        cands, nest = [], {}
        for v in factors:
            label = f"gaussian, residual SD by {v}"
            cands.append((label, lambda v=v: refit(m, dispformula=f"~ {v}", reml=False),
                          f"dispformula='~ {v}', reml=False"))
            nest[(current, label)] = 0
        return current, base, cands, nest, "Residual spread"
    return None


def family_alternatives(m) -> Alternatives | None:
    """Refit ``m`` under the alternatives (see the module docstring); None when the model is not
    a count, multi-trial binomial or gaussian model with a factor in its fixed part."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = _plan(m)
        if plan is None:
            return None
        current, cur_fit, cands, nest, topic = plan
        fits: dict[str, tuple] = {current: (cur_fit, _call(m) if topic == "Family" else "as fitted, by ML")}
        failed = []
        for label, thunk, call in cands:
            try:
                fits[label] = (thunk(), call)
            except GLMMError as exc:
                failed.append((label, str(exc).splitlines()[0]))
    rows = []
    for label, (f, call) in fits.items():
        ok = bool(np.isfinite(f.loglik)) and f.converged
        rows.append({"model": label, "call": call, "loglik": f.loglik, "npar": f.npar, "aic": f.aic,
                     "converged": ok, "current": label == current})
    tab = pd.DataFrame(rows).set_index("model")
    usable = tab[tab.converged | tab.current]
    best = usable.aic.idxmin()
    tab["delta_aic"] = tab.aic - usable.aic.min()
    tab["chisq"], tab["df"], tab["p_value"], tab["test"] = np.nan, np.nan, np.nan, ""
    for label in tab.index:
        if label == current:
            continue
        pair = (current, label) if (current, label) in nest else (label, current) if (label, current) in nest \
            else None
        if pair is None:
            tab.loc[label, "test"] = "not nested: compare by AIC"
            continue
        small, big = pair
        k = nest[pair]
        chisq = max(2 * (tab.loc[big, "loglik"] - tab.loc[small, "loglik"]), 0.0)
        df = int(tab.loc[big, "npar"] - tab.loc[small, "npar"])
        p = 0.5 * stats.chi2.sf(chisq, df) if k == 1 and df == 1 else stats.chi2.sf(chisq, df)
        tab.loc[label, ["chisq", "df", "p_value"]] = chisq, df, p
        tab.loc[label, "test"] = (f"LRT {small} vs {big}: one parameter on its boundary, p from the 50:50 "
                                  "chi-bar-square mixture" if k == 1 and df == 1 else
                                  f"LRT {small} vs {big}: chi-square on {df} df")
    tab = tab.sort_values("aic")
    advice = ""
    if best != current and tab.loc[current, "aic"] - tab.loc[best, "aic"] >= MIN_DELTA:
        d = tab.loc[current, "aic"] - tab.loc[best, "aic"]
        p = tab.loc[best, "p_value"]
        lrt = f"; likelihood-ratio test p = {p:.2g}" if np.isfinite(p) else ""
        close = [k for k in usable.index if k not in (best, current)
                 and usable.loc[k, "aic"] - usable.loc[best, "aic"] < MIN_DELTA]
        near = (f" ({' and '.join(close)} {'is' if len(close) == 1 else 'are'} within {MIN_DELTA:g} AIC of it: the "
                "data barely separate them)") if close else ""
        advice = (f"{topic}: the {best} refit fits better than the {current} model (AIC lower by {d:.1f}{lrt}): "
                  f"refit with {tab.loc[best, 'call']}{near}.")
    return Alternatives(tab, current, best, advice, tuple(failed))


def _call(m) -> str:
    fam = m.request.family
    base = fam.base if fam.has_zero_part else fam
    out = f"family={base.name!r}"
    if fam.has_zero_part:
        out += f", ziformula={m.spec.zi_formula!r}"
    return out
