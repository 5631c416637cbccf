"""The report's pieces for an ordinal (cumulative-link) model, as plain data.

* the thresholds table and what the coefficients mean (cumulative odds ratios for the logit link);
* category probabilities against the focal covariate for a typical cluster (random effects 0)
  and population-averaged (integrated over the random effects), for the chart;
* the conditional vs population-averaged coefficients in words;
* the proportional-odds assumption as a caveat, checked term by term by the nominal-effects
  likelihood-ratio test (:func:`glmm_nb.inference.nominal_test`).

A piece that cannot be computed is ``None`` with a reason in ``missing``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..inference import nominal_test, predict_ordinal
from ..inference.ordinal import nominal_terms
from ..marginal import comparison_table
from ..marginal.claims import direction
from .focal import Focus, choose_focus, focus_frame

__all__ = ["ordinal_section", "MAX_PO_TERMS"]

MAX_PO_TERMS = 6  # nominal-effects refits in a report (one fit each)
CURVES = ("typical cluster (random effects 0)", "population-averaged")


def _records(df: pd.DataFrame, index_name: str) -> list[dict]:
    out = df.reset_index().rename(columns={"index": index_name})
    return out.replace({np.nan: None}).to_dict(orient="records")


def category_curves(m, f: Focus) -> pd.DataFrame:
    """Category probabilities along the focal covariate ``f`` (the others held as ``f.held``
    states): columns ``x category probability curve``."""
    base = focus_frame(m, f)
    rows = []
    for curve, re in zip(CURVES, ("none", "marginal")):
        P = predict_ordinal(m, base, type="prob", re=re)
        for x, (_i, probs) in zip(f.grid, P.iterrows()):
            for cat, v in probs.items():
                rows.append({"x": str(x) if f.discrete else float(x), "category": str(cat), "probability": float(v),
                             "curve": curve})
    return pd.DataFrame(rows)


def _meaning(m) -> list[str]:
    fam = m.request.family
    resp = m.spec.response_name
    levels = m.levels
    out = [f"The model describes P({resp} ≤ k) for each category k through {len(levels) - 1} thresholds "
           f"(the 'k|k+1' rows): {fam.link.name}(P({resp} ≤ k)) = threshold_k − (the fixed effects) − "
           "(the random effects). A positive coefficient shifts the ratings towards the higher categories."]
    if fam.ratio_name:
        for term, b in m.fixef.items():
            out.append(f"{term}: the odds of a {resp} above any given category are {np.exp(b):.3g} times as high "
                       f"(cumulative odds ratio) {_step(m, term)}, within a cluster.")
    return out


def _step(m, term: str) -> str:
    """"for temp = warm rather than cold" for a factor's coefficient, "per unit of x" otherwise."""
    import re

    hit = re.fullmatch(r"(.+)\[T\.(.+)\]", term)
    frame = m.spec.frame
    if hit is not None and frame is not None and hit.group(1) in frame.columns:
        col = frame[hit.group(1)]
        levels = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else \
            sorted(col.dropna().unique().tolist(), key=str)
        return f"for {hit.group(1)} = {hit.group(2)} rather than {levels[0]}"
    if ":" in term:
        return "for this interaction (a ratio of cumulative odds ratios)"
    return f"per unit of {term}"


def _marginal_sentences(m, tab: pd.DataFrame, var: str | None) -> list[str]:
    ratio = bool(m.request.family.ratio_name)
    out = []
    for term in m.fixef.index:
        r = tab.loc[term]
        if var is not None and var not in term and len(out) >= 1:
            continue
        word, pct = direction(np.exp(r.conditional) if ratio else r.conditional,
                              np.exp(r.marginal) if ratio else r.marginal, ratio)
        rel = {"same": "the same as within a cluster", "opposite": "in the opposite direction",
               "closer": f"{pct:.1f} % closer to no effect", "farther": f"{pct:.1f} % farther from no effect",
               "undefined": "not comparable"}[word]
        if ratio:
            out.append(f"{term}: within one cluster the cumulative odds ratio is {np.exp(r.conditional):.3g}; across "
                       f"the population of clusters it is {np.exp(r.marginal):.3g} — {rel} on the log scale.")
        else:
            out.append(f"{term}: on the {m.link} scale the coefficient is {r.conditional:.3g} within one cluster and "
                       f"{r.marginal:.3g} across the population of clusters — {rel}.")
    return out


def _po_check(m) -> tuple[list[dict] | None, list[str], list[str]]:
    """The nominal-effects LRT table, its sentences, and what was not computed."""
    missing: list[str] = []
    sentences = ["Proportional odds: the model gives each covariate one coefficient for every split "
                 f"({m.spec.response_name} ≤ k vs > k). Checked term by term: a refit in which the term has its "
                 "own effect per threshold (nominal effects, as ordinal::nominal_test) is compared by a "
                 "likelihood-ratio test (Laplace fits)."]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            terms = [t for t, _cols, _ok in nominal_terms(m)]
            if len(terms) > MAX_PO_TERMS:
                missing.append(f"proportional-odds check of {', '.join(terms[MAX_PO_TERMS:])}: only the first "
                               f"{MAX_PO_TERMS} terms are checked in a report (m.nominal_test() checks all)")
            tab = nominal_test(m, terms=terms[:MAX_PO_TERMS])
    except Exception as exc:  # the check is optional; say why it is missing
        missing.append(f"proportional-odds check: {exc}")
        return None, sentences, missing
    tested = tab.drop(index="<none>")
    for term, r in tested.iterrows():
        if not np.isfinite(r.p_value):
            sentences.append(f"{term}: not tested on its own (it is part of an interaction).")
            continue
        if not r.converged:
            sentences.append(f"{term}: the nominal-effects refit did not converge (a threshold runs off to a "
                             "boundary, e.g. a category never seen at some values of the term); read its test "
                             "with caution.")
        if r.p_value < 0.05:
            sentences.append(f"{term}: its effect differs between the thresholds (LR {r.lrt:.2f} on {int(r.df)} df, "
                             f"p = {r.p_value:.3g}); the single coefficient averages effects that are not equal — "
                             "report the category probabilities, or model the term with nominal effects.")
        else:
            sentences.append(f"{term}: no evidence against proportional odds (LR {r.lrt:.2f} on {int(r.df)} df, "
                             f"p = {r.p_value:.3g}); this does not prove the assumption, it only fails to reject it.")
    return _records(tab, "term"), sentences, missing


def ordinal_section(m, var: str | None = None) -> dict:
    """Everything the report shows for an ordinal model (module docstring)."""
    out = {"thresholds": _records(m.coef_table(part="thresholds"), "term"), "meaning": _meaning(m),
           "curves": None, "var": None, "numeric": True, "marginal_sentences": [], "po_table": None,
           "po_sentences": [], "missing": [], "focus": None}
    f = choose_focus(m, var)
    var = None if f is None else f.var
    if f is None:
        out["missing"].append("category-probability curves: the model has no covariate to vary")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out["curves"] = category_curves(m, f)
                out["var"], out["numeric"], out["focus"] = f.var, not f.discrete, f
            except Exception as exc:
                out["missing"].append(f"category-probability curves: {exc}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out["marginal_sentences"] = _marginal_sentences(m, comparison_table(m), var)
        except Exception as exc:
            out["missing"].append(f"conditional vs population-averaged coefficients: {exc}")
    out["po_table"], out["po_sentences"], miss = _po_check(m)
    out["missing"] += miss
    return out
