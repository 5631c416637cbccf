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

from .focal import other_terms

__all__ = ["key_findings", "ratio_quantity", "ratio_plural", "term_label", "MAX_EFFECTS"]

MAX_EFFECTS = 8
INFORMATIONAL = ("Fitted on Dask data",)  # messages that describe the fit and flag nothing
LEVEL = 0.05
_PLURAL = {"ratio of means": "ratios of means"}
_QUANTITY = {"odds ratio": "odds", "rate ratio": "rate", "ratio of means": "mean",
             "cumulative odds ratio": "odds of a higher category"}


def ratio_quantity(ratio_name: str) -> str:
    """What a ratio multiplies: "odds", "rate", "mean", "odds of a higher category"."""
    return _QUANTITY.get(ratio_name, ratio_name.split()[0])


def _effect_line(r: dict, exp_name: str | None, link: str, factor: bool) -> str:
    f = r["fmt"]
    if exp_name:
        return f"{exp_name} {f['exp'].strip()} (95 % CI {f['exp_low'].strip()} to {f['exp_high'].strip()}), p {_p(f['p'])}"
    ci = f"(95 % CI {f['conf_low'].strip()} to {f['conf_high'].strip()}), p {_p(f['p'])}"
    est = f['estimate'].strip()
    if link == "identity":
        return f"difference {est} {ci}" if factor else f"{est} per unit {ci}"
    return f"{link}-scale coefficient {est} {ci}"


def ratio_plural(ratio_name: str) -> str:
    """"odds ratio" → "odds ratios", "ratio of means" → "ratios of means"."""
    return _PLURAL.get(ratio_name, ratio_name + "s")


def term_label(m, term: str) -> str:
    """``temp[T.warm]`` → ``temp warm (vs cold)``: a factor's coefficient against its reference;
    an interaction ``a[T.x]:b`` → ``a x × b (interaction)``."""
    if ":" in term and not term.startswith(("I(", "C(")):
        parts = [_part_label(m, p) for p in term.split(":")]
        return " × ".join(parts) + " (interaction)"
    return _single_label(m, term)


def _part_label(m, term: str) -> str:
    hit = re.fullmatch(r"(.+)\[T\.(.+)\]", term)
    return f"{hit.group(1)} {hit.group(2)}" if hit else term


def _single_label(m, term: str) -> str:
    hit = re.fullmatch(r"(.+)\[T\.(.+)\]", term)
    frame = m.spec.frame
    if hit is None or frame is None or hit.group(1) not in frame.columns:
        return term
    var, level = hit.groups()
    col = frame[var]
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = list(col.cat.categories)
    else:  # strings and booleans: formulaic's reference is the first sorted value
        levels = sorted(col.dropna().unique().tolist(), key=str)
    return f"{var} {level} (vs {levels[0]})" if levels and str(levels[0]) != level else f"{var} {level}"


def _p(text: str) -> str:
    text = text.strip()
    return text if text.startswith(("<", ">")) else f"= {text}"


def _effects(m, ctx: dict) -> tuple[list[dict], int]:
    fixed, marginal, caveats = ctx["fixed"], ctx["marginal"], ctx["caveats"]
    exp_name = fixed["exp_name"]
    rows = [r for r in fixed["rows"] if r["term"] != "(Intercept)"]
    focus = marginal.get("focus") or (ctx.get("ordinal") or {}).get("focus")
    if focus is not None:
        rows.sort(key=lambda r: 0 if r["term"] == focus.var or r["term"].startswith(focus.var + "[") else 1)
    wb = {}
    checks = caveats.get("checks")
    if checks:
        wb = {r["covariate"]: r for r in checks["within_between"]}
    claim = marginal.get("claim")
    separated = set(m.spec.meta.get("separated") or ())
    link = m.request.family.link.name
    out = []
    for r in rows[:MAX_EFFECTS]:
        label = term_label(m, r["term"])
        finite = all(r[k] is not None and np.isfinite(r[k]) for k in ("estimate", "conf_low", "conf_high"))
        if r["term"] in separated or not finite or (exp_name and not np.isfinite(r.get("exp_high", np.inf))):
            why = ("the data separate the outcome on this term" if r["term"] in separated
                   else "its interval is infinite (the fit is separated or did not converge)")
            out.append({"term": label, "text": f"not estimable: {why} (section 1)", "notes": []})
            continue
        item = {"term": label, "text": _effect_line(r, exp_name, link, label != r["term"]), "notes": []}
        var = r["term"].split("[")[0]
        interaction = ":" in r["term"] and label != r["term"]
        shared = []
        if var in m.spec.frame.columns and not interaction:
            shared = [c for c in other_terms(m, var) if r["term"] == var or r["term"] in c.split(":")]
        if interaction:
            item["notes"].append("an interaction: how much the effect of one variable changes with the other"
                                 + (" (a ratio of ratios)" if exp_name else ""))
        if shared:
            inter = all(":" in c for c in shared)
            item["notes"].append(
                f"{label} also enters {', '.join(term_label(m, c) for c in shared)}: " +
                ("this coefficient is its effect only where the variables it interacts with are at their reference "
                 "level or zero (the effect curves show the rest)" if inter else
                 "this coefficient alone is not its effect (the effect curves show it)"))
        if focus is not None and var == focus.var and claim is not None and r["term"] == claim.term:
            item["notes"].append(_policy_note(claim))
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


def _policy_note(claim) -> str:
    """The focal effect for the whole population, from the same computation as section 4."""
    if claim.population is None:
        return "population-averaged effect: not defined for this model (section 4)"
    word, pct = claim.direction
    what = {"same": "the same as the conditional effect", "opposite": "in the opposite direction",
            "closer": f"{pct:.1f} % closer to no effect", "farther": f"{pct:.1f} % farther from no effect"}[word]
    scope = "" if claim.conditional_from == "coefficient" else " (a typical cluster, averaged over the data)"
    zero = ", zero part included" if claim.zero_part else ""
    verb = {"ratio": "multiplies the population-averaged " + claim.quantity + " by",
            "difference": "changes the population-averaged " + claim.quantity + " by"}.get(
        claim.kind, f"changes the population-averaged {claim.quantity} on the {claim.link} scale by")
    return (f"conditional on the cluster{scope}: {claim.conditional:.4g}; applied to everyone ({claim.step}{zero}) it "
            f"{verb} {claim.population:.4g} — {what} (section 4)")


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
        if (msg.startswith("Singular") and m.singular) or msg.startswith(INFORMATIONAL):
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
    family_advice = any(a.startswith("Family:") for a in diag.get("advice", []))
    for t in diag.get("tests") or []:
        covered = any(t["test"].split()[0].lower() in a.lower() for a in diag.get("advice", [])) or (
            family_advice and t["test"] in ("dispersion", "zero-inflation"))  # the refit advice answers them
        if t["p_value"] is not None and t["p_value"] < LEVEL and not covered:  # said once
            add(f"Diagnostics: the {t['test']} test fails (statistic {t['statistic']:.3g}, p = {t['p_value']:.2g}; "
                f"{t['reading']}).", "5. Diagnostics", "diagnostics")
    if m.n_dropped:
        add(f"{m.n_dropped:,} rows with missing values were dropped before the fit.", "1. Model", "model")
    return flags


def _checked(ctx: dict) -> list[str]:
    """The checks whose silence "no flags" reports."""
    out = ["convergence", "variance components on their boundary"]
    tests = ctx["diagnostics"].get("tests")
    if tests:
        out.append("simulated-residual tests (" + ", ".join(t["test"] for t in tests) + ")")
    checks = ctx["caveats"].get("checks")
    if checks:
        out.append("few clusters")
        wb = [r["covariate"] for r in checks["within_between"]]
        if wb:
            out.append("within vs between cluster effects of " + ", ".join(wb))
    return out


def _scale(m, exp_name: str | None) -> str:
    fam = m.request.family
    link = fam.link.name
    if exp_name:
        text = (f"Effects as {ratio_plural(exp_name)} per unit of each covariate, or against a factor's reference "
                f"level (above 1: higher {ratio_quantity(exp_name)}, below 1: lower), conditional on the cluster: "
                "two members of the same cluster that differ only in that covariate.")
    elif link == "identity":
        text = ("Effects on the response scale: per unit of each covariate, or the difference from a factor's "
                "reference level.")
    else:
        text = (f"Coefficients on the {link} link scale, per unit of each covariate or against a factor's "
                f"reference level — not differences in the {fam.mean_word}"
                + (" (inverse link: a positive coefficient means a lower mean)." if link == "inverse" else "."))
    if fam.has_zero_part:
        text += " These are the count part's; the zero part's odds ratios are in section 2."
    return text


def key_findings(m, ctx: dict) -> dict:
    """The key-findings box from the report's section data (``ctx``, as built by make_report)."""
    effects, more = _effects(m, ctx)
    exp_name = ctx["fixed"]["exp_name"]
    return {"effects": effects, "more": more, "flags": _flags(m, ctx), "scale": _scale(m, exp_name),
            "checked": _checked(ctx)}
