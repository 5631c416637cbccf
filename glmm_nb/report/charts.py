"""Altair charts for the report, built from pre-aggregated section data (no row-limit issues).

Every chart is returned as a Vega-Lite spec (dict) and, for the static fallback, an SVG
rendered by vl-convert. Field names are fixed; user-supplied text only ever appears as data
values.
"""

from __future__ import annotations

import base64

import altair as alt
import numpy as np
import pandas as pd

__all__ = ["pairs_chart", "forest", "caterpillar", "caterpillar_sample", "curves", "structure_curve", "category_probabilities", "residual_hist", "residual_qq",
           "to_svg_data_uri"]

WIDTH = 560
CATERPILLAR_MAX = 150  # levels drawn in a caterpillar plot; more are sampled (rule stated)
CATERPILLAR_ENDS = 25  # ... always keeping this many lowest and highest


def forest(rows: list[dict], exp_name: str | None, effects: bool = True) -> dict:
    """Fixed effects with 95 % intervals: ratios on a log axis (1 = no effect) for log and logit
    links, estimates (0 = no effect) otherwise; an intercept (or an ordinal model's thresholds)
    alone on the link scale. Terms that are not estimable (infinite) are left out and named in
    the subtitle; 26 px per term."""
    df = pd.DataFrame(rows)[["term", "estimate", "conf_low", "conf_high"]]
    slopes = df[df.term != "(Intercept)"] if effects else df.iloc[:0]  # effects=False: thresholds
    if len(slopes):
        df = slopes
    else:
        exp_name = None  # an intercept or thresholds are not ratios
    if exp_name:
        df = df.assign(**{c: np.exp(df[c].astype(float)) for c in ("estimate", "conf_low", "conf_high")})
    vals = df[["estimate", "conf_low", "conf_high"]].astype(float).to_numpy()
    ok = np.isfinite(vals).all(axis=1) & ((vals > 0).all(axis=1) if exp_name else True)
    dropped = list(df.term[~ok])
    df = df[ok]
    if exp_name:
        lo = float(min(df["conf_low"].min(), 1.0)) / 1.15 if len(df) else 0.5
        hi = float(max(df["conf_high"].max(), 1.0)) * 1.15 if len(df) else 2.0
        axis = alt.X("conf_low:Q", title=f"{exp_name} (log scale; 1 = no effect)",
                     scale=alt.Scale(type="log", domain=[lo, hi], nice=False))
        ref, title = 1.0, f"Fixed effects: {exp_name}s with 95 % CI"
    elif len(slopes):
        axis = alt.X("conf_low:Q", title="estimate (0 = no effect)")
        ref, title = 0.0, "Fixed effects with 95 % CI"
    else:
        axis = alt.X("conf_low:Q", title="estimate (link scale)")
        ref, title = None, "Intercept / thresholds with 95 % CI (link scale)"
    if dropped:
        title = {"text": title, "subtitle": "not shown (not estimable): " + ", ".join(dropped)}
    base = alt.Chart(df).encode(y=alt.Y("term:N", sort=None, title=None, axis=alt.Axis(labelLimit=0)))
    rule = base.mark_rule().encode(x=axis, x2="conf_high:Q")
    point = base.mark_point(filled=True, size=60).encode(x="estimate:Q", tooltip=["term", "estimate", "conf_low", "conf_high"])
    layers = [rule, point]
    if ref is not None:
        layers.insert(0, alt.Chart(pd.DataFrame({"z": [ref]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="z:Q"))
    height = max(40, 26 * len(df))
    return alt.layer(*layers).properties(width=WIDTH, height=height, title=title).to_dict()


def pairs_chart(rows: list[dict], estimate: str) -> dict:
    """Pairwise contrasts with their intervals (no multiplicity adjustment of the bars)."""
    df = pd.DataFrame(rows)[["contrast", estimate, "conf_low", "conf_high"]].rename(columns={estimate: "estimate"})
    ref = 1.0 if estimate in ("odds_ratio", "ratio") else 0.0
    base = alt.Chart(df).encode(y=alt.Y("contrast:N", sort=None, title=None))
    rule = base.mark_rule().encode(x=alt.X("conf_low:Q", title=estimate.replace("_", " ")), x2="conf_high:Q")
    point = base.mark_point(filled=True, size=60).encode(x="estimate:Q", tooltip=["contrast", "estimate"])
    zero = alt.Chart(pd.DataFrame({"z": [ref]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="z:Q")
    return (zero + rule + point).properties(width=WIDTH, title="Pairwise comparisons with 95 % CI").to_dict()


def caterpillar_sample(d: pd.DataFrame, limit: int = CATERPILLAR_MAX, ends: int = CATERPILLAR_ENDS) -> tuple[pd.DataFrame, str]:
    """Levels sorted by their mode; above ``limit`` levels the ``ends`` lowest and highest and
    evenly spaced ranks in between (the rule is returned as text)."""
    d = d.sort_values("mode", kind="stable").reset_index(drop=True)
    d["rank"] = np.arange(1, len(d) + 1)
    n = len(d)
    if n <= limit:
        return d, f"all {n:,} levels, sorted"
    middle = np.unique(np.linspace(ends, n - ends - 1, limit - 2 * ends).round().astype(int))
    keep = np.unique(np.concatenate([np.arange(ends), middle, np.arange(n - ends, n)]))
    return d.iloc[keep].reset_index(drop=True), (f"{keep.size} of {n:,} levels: the {ends} lowest, the {ends} highest "
                                                 "and evenly spaced ranks in between")


def caterpillar(data: pd.DataFrame, group: str, term: str) -> dict:
    """Conditional modes ±1.96 conditional SD by rank; hundreds of levels are sampled (rule in
    the subtitle) and the three lowest and highest levels are labelled."""
    d, rule_text = caterpillar_sample(data)
    d["low"] = d["mode"] - 1.96 * d["sd"]
    d["high"] = d["mode"] + 1.96 * d["sd"]
    d = d[["level", "mode", "sd", "n", "low", "high", "rank"]]
    many = len(d) > 60
    base = alt.Chart(d).encode(x=alt.X("rank:Q", title=f"rank of the level of {group} (1 = lowest)",
                                       scale=alt.Scale(domain=[0, int(d["rank"].max()) + 1], nice=False)))
    rule = base.mark_rule(opacity=0.4 if many else 0.6).encode(y=alt.Y("low:Q", title=f"conditional mode: {term}"), y2="high:Q")
    pts = base.mark_circle(opacity=0.85).encode(
        y="mode:Q", size=alt.Size("n:Q", title="cluster size", scale=alt.Scale(range=[6, 60] if many else [10, 200])),
        color=alt.Color("n:Q", title="cluster size", scale=alt.Scale(scheme="viridis")),
        tooltip=["level", "mode", "sd", "n"],
    )
    layers = [rule, pts]
    if len(d) > 12:  # the extreme levels named: three at each end, or one when the ranks are crowded
        k = 1 if many else 3
        low, high = d.iloc[:k], d.iloc[len(d) - k:]
        if many:  # horizontal, pointing inwards from the lowest and the highest mode
            layers.append(alt.Chart(low).mark_text(align="left", dx=8, fontSize=10)
                          .encode(x="rank:Q", y="mode:Q", text="level:N"))
            layers.append(alt.Chart(high).mark_text(align="right", dx=-8, fontSize=10)
                          .encode(x="rank:Q", y="mode:Q", text="level:N"))
        else:  # vertical, beyond the whiskers
            layers.append(alt.Chart(low).mark_text(angle=270, align="left", dx=3, fontSize=9)
                          .encode(x="rank:Q", y="high:Q", text="level:N"))
            layers.append(alt.Chart(high).mark_text(angle=270, align="right", dx=-3, fontSize=9)
                          .encode(x="rank:Q", y="low:Q", text="level:N"))
    title = {"text": f"{group}: {term} (±1.96 conditional SD; small clusters shrink more)", "subtitle": rule_text}
    return alt.layer(*layers).properties(width=WIDTH, height=240, title=title).to_dict()


def curves(data: pd.DataFrame, var: str, response: str, discrete: bool = False, held: str = "") -> dict:
    """Predicted response against the focal covariate (its values when ``discrete``), the other
    covariates held at the values ``held`` states."""
    dash = alt.condition(alt.FieldOneOfPredicate(field="curve", oneOf=["typical cluster (random effects 0)", "population-averaged"]),
                         alt.value(3), alt.value(1))
    x = alt.X("x:N" if discrete else "x:Q", title=var, sort=None, axis=alt.Axis(labelAngle=0) if discrete else alt.Axis())
    title = {"text": f"Predicted {response} against {var}",
             "subtitle": f"other covariates at {held}" if held else "no other covariates"}
    panels = [a for a in dict.fromkeys(data["at"])] if "at" in data.columns else [""]
    chart = (
        alt.Chart(data)
        .mark_line(point=discrete)
        .encode(x=x, y=alt.Y("value:Q", title=response),
                color=alt.Color("curve:N", title=None, legend=alt.Legend(labelLimit=0, orient="bottom", columns=2)),
                strokeWidth=dash, tooltip=["curve", "x", "value"] + (["at"] if panels != [""] else []))
    )
    if panels == [""]:
        return chart.properties(width=WIDTH, height=260, title=title).to_dict()
    cols = min(3, len(panels))
    return (chart.properties(width=WIDTH // cols - 20, height=200)
            .facet(facet=alt.Facet("at:N", title=None, sort=panels), columns=cols)
            .properties(title=title).to_dict())


def structure_curve(data: pd.DataFrame, lags: bool, term: str) -> dict:
    """A structured random-effect term's estimated correlation against the lag between its
    levels (ar1, cs, toep, diag: points) or the distance between positions (ou, exp, gau, mat)."""
    what = "lag (levels apart)" if lags else "distance"
    lo = float(min(0.0, data["correlation"].min()))
    base = alt.Chart(data).encode(x=alt.X("distance:Q", title=what, axis=alt.Axis(tickMinStep=1) if lags else alt.Axis()),
                                  y=alt.Y("correlation:Q", title="correlation", scale=alt.Scale(domain=[lo, 1])),
                                  tooltip=["distance", "correlation"])
    marks = base.mark_line(point=lags)
    title = {"text": f"{term}: estimated correlation against {what}",
             "subtitle": "between the random effects of two levels of one group" if lags
             else "between the random effects at two positions"}
    return marks.properties(width=WIDTH, height=200, title=title).to_dict()


def category_probabilities(data: pd.DataFrame, var: str, numeric: bool, held: str = "") -> dict:
    """Ordinal models: P(Y = k) against ``var``, one colour per category, solid for a typical
    cluster and dashed population-averaged (columns ``x category probability curve``)."""
    x = alt.X("x:Q" if numeric else "x:N", title=var, sort=None)
    dash = alt.StrokeDash("curve:N", title=None, sort=None)
    cats = list(dict.fromkeys(data["category"]))
    color = alt.Color("category:O", title="category", sort=cats, scale=alt.Scale(scheme="viridis"))
    base = alt.Chart(data).encode(x=x, y=alt.Y("probability:Q", title="probability", scale=alt.Scale(domain=[0, 1])),
                                  color=color, tooltip=["curve", "category", "x", "probability"])
    marks = base.mark_line(point=not numeric).encode(strokeDash=dash, detail="curve:N")
    title = {"text": f"Category probabilities against {var}: typical cluster (solid) and population-averaged (dashed)",
             "subtitle": f"other covariates at {held}" if held else "no other covariates"}
    return marks.properties(width=WIDTH, height=280, title=title).to_dict()


def residual_hist(data: pd.DataFrame) -> dict:
    return (
        alt.Chart(data).mark_bar()
        .encode(x=alt.X("bin_start:Q", bin="binned", title="scaled residual"), x2="bin_end:Q", y=alt.Y("count:Q"))
        .properties(width=260, height=200, title="Scaled residuals (flat if the model fits)")
        .to_dict()
    )


def residual_qq(data: pd.DataFrame) -> dict:
    line = alt.Chart(pd.DataFrame({"a": [0.0, 1.0]})).mark_line(color="gray").encode(x="a:Q", y="a:Q")
    pts = alt.Chart(data).mark_point(size=12).encode(x=alt.X("expected:Q", title="uniform quantile"), y=alt.Y("observed:Q", title="scaled residual"))
    return (line + pts).properties(width=260, height=200, title="QQ plot against U(0, 1)").to_dict()


def to_svg_data_uri(spec: dict) -> str | None:
    """Static fallback as an <img> data URI (an SVG in an <img> can never run script)."""
    try:
        import vl_convert as vlc

        svg = vlc.vegalite_to_svg(spec)
    except Exception:  # the interactive chart still renders; the fallback is optional
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
