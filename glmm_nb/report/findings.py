"""Key findings: the box at the top of the report.

It states the fixed effects in natural units (odds / rate ratios with their 95 % intervals,
or estimates per unit for an identity link), the focal covariate first with its
population-averaged counterpart, and lists every flag a later section raises — non-convergence,
a singular fit, separation and other fit messages, the causal checks that apply (few clusters,
cluster-level treatment, within ≠ between confounding …), diagnostics that fail (overdispersion,
zero-inflation, non-uniform residuals), dropped rows — each with the section that explains it.
An effect whose within- and between-cluster estimates differ carries that caveat on its own
line, so no number at the top is stated without the warning that qualifies it.

Built only from the other sections' data (:mod:`.sections`), so it repeats nothing it computes.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["key_findings", "ratio_quantity", "term_label", "MAX_EFFECTS"]

MAX_EFFECTS = 8
LEVEL = 0.05
_QUANTITY = {"odds ratio": "odds", "rate ratio": "rate", "ratio of means": "mean",
             "cumulative odds ratio": "odds of a higher category"}


def ratio_quantity(ratio_name: str) -> str:
    """What a ratio multiplies: "odds", "rate", "mean", "odds of a higher category"."""
    return _QUANTITY.get(ratio_name, ratio_name.split()[0])


def _effect_line(r: dict, exp_name: str | None) -> str:
    f = r["fmt"]
    if exp_name:
        return f"{exp_name} {f['exp'].strip()} (95 % CI {f['exp_low'].strip()} to {f['exp_high'].strip()}), p {_p(f['p'])}"
    return (f"{f['estimate'].strip()} per unit (95 % CI {f['conf_low'].strip()} to {f['conf_high'].strip()}), "
            f"p {_p(f['p'])}")


def term_label(m, term: str) -> str:
    """``temp[T.warm]`` → ``temp warm (vs cold)``: a factor's coefficient against its reference."""
    hit = re.fullmatch(r"(.+)\[T\.(.+)\]", term)
    frame = m.spec.frame
    if hit is None or frame is None or hit.group(1) not in frame.columns:
        return term
    var, level = hit.groups()
    col = frame[var]
    if isinstance(col.dtype, pd.CategoricalDtype) and len(col.cat.categories):
        return f"{var} {level} (vs {col.cat.categories[0]})"
    return f"{var} {level}"


def _p(text: str) -> str:
    text = text.strip()
    return text if text.startswith(("<", ">")) else f"= {text}"


def _effects(m, ctx: dict) -> tuple[list[dict], int]:
    fixed, marginal, caveats = ctx["fixed"], ctx["marginal"], ctx["caveats"]
    exp_name = fixed["exp_name"]
    rows = [r for r in fixed["rows"] if r["term"] != "(Intercept)"]
    focus = marginal.get("focus")
    if focus is not None:
        rows.sort(key=lambda r: 0 if r["term"] == focus.var or r["term"].startswith(focus.var + "[") else 1)
    wb = {}
    checks = caveats.get("checks")
    if checks:
        wb = {r["covariate"]: r for r in checks["within_between"]}
    marg = {r["term"]: r for r in (marginal.get("table") or [])}
    out = []
    for r in rows[:MAX_EFFECTS]:
        item = {"term": term_label(m, r["term"]), "text": _effect_line(r, exp_name), "notes": []}
        if focus is not None and r["term"] == focus.var and r["term"] in marg and exp_name:
            pa = marg[r["term"]].get("marginal")
            if pa is not None and np.isfinite(pa):
                item["notes"].append(f"conditional on the cluster; averaged over the population of clusters the "
                                     f"{exp_name} is {np.exp(pa):.3g} (section 4)")
        w = wb.get(r["term"])
        if w is not None and w.get("p_value") is not None and w["p_value"] < LEVEL:
            within = np.exp(w["within"]) if exp_name else w["within"]
            between = np.exp(w["between"]) if exp_name else w["between"]
            what = exp_name or "estimate"
            item["notes"].append(f"caution: within-cluster and between-cluster effects differ (p = {w['p_value']:.2g}; "
                                 f"within {what} {within:.3g}, between {between:.3g}): the estimate mixes in "
                                 "cluster-level confounding (section 6)")
        out.append(item)
    return out, max(0, len(rows) - MAX_EFFECTS)


def _flags(m, ctx: dict) -> list[dict]:
    flags: list[dict] = []

    def add(text: str, section: str, anchor: str) -> None:
        if not any(f["text"] == text for f in flags):
            flags.append({"text": text, "section": section, "anchor": anchor})

    if not m.converged:
        add(ctx["model"]["convergence"], "1. Model", "model")
    if m.singular:
        add(ctx["model"]["singular"], "3. Random effects", "random")
    for msg in m.messages:
        if msg.startswith("Singular") and m.singular:
            continue
        add(msg, "1. Model", "model")
    checks = ctx["caveats"].get("checks")
    if checks:
        for f in checks["flags"]:
            if f["applies"] and f["flag"] != "singular fit":
                add(f"{f['flag'][0].upper()}{f['flag'][1:]}: {f['detail']}.", "6. Causal caveats", "caveats")
    diag = ctx["diagnostics"]
    for a in diag.get("advice", []):
        add(a, "5. Diagnostics", "diagnostics")
    for t in diag.get("tests") or []:
        if t["p_value"] is not None and t["p_value"] < LEVEL and not any(
                a.lower().startswith(t["test"].split()[0].lower()) for a in diag.get("advice", [])):
            add(f"Diagnostics: the {t['test']} test fails (statistic {t['statistic']:.3g}, p = {t['p_value']:.2g}; "
                f"{t['reading']}).", "5. Diagnostics", "diagnostics")
    if m.n_dropped:
        add(f"{m.n_dropped:,} rows with missing values were dropped before the fit.", "1. Model", "model")
    return flags


def key_findings(m, ctx: dict) -> dict:
    """The key-findings box from the report's section data (``ctx``, as built by make_report)."""
    effects, more = _effects(m, ctx)
    exp_name = ctx["fixed"]["exp_name"]
    if exp_name:
        scale = (f"Effects as {exp_name}s per unit of each covariate, or against a factor's reference level "
                 f"(above 1: higher {ratio_quantity(exp_name)}, below 1: lower), conditional on the cluster: two "
                 "members of the same cluster that differ only in that covariate.")
    else:
        scale = ("Effects on the response scale per unit of each covariate, or against a factor's reference "
                 "level.")
    return {"effects": effects, "more": more, "flags": _flags(m, ctx), "scale": scale}
