"""Altair charts for the report, built from pre-aggregated section data (no row-limit issues).

Every chart is returned as a Vega-Lite spec (dict) and, for the static fallback, an SVG
rendered by vl-convert. Field names are fixed; user-supplied text only ever appears as data
values.
"""

from __future__ import annotations

import base64

import altair as alt
import pandas as pd

__all__ = ["pairs_chart", "forest", "caterpillar", "curves", "category_probabilities", "residual_hist", "residual_qq",
           "to_svg_data_uri"]

WIDTH = 560


def forest(rows: list[dict], exp_name: str | None) -> dict:
    df = pd.DataFrame(rows)[["term", "estimate", "conf_low", "conf_high"]]
    df = df[df.term != "(Intercept)"] if len(df) > 1 else df
    title = "Fixed effects with 95 % CI (log scale of the " + exp_name + ")" if exp_name else "Fixed effects with 95 % CI"
    base = alt.Chart(df).encode(y=alt.Y("term:N", sort=None, title=None))
    rule = base.mark_rule().encode(x=alt.X("conf_low:Q", title="estimate"), x2="conf_high:Q")
    point = base.mark_point(filled=True, size=60).encode(x="estimate:Q", tooltip=["term", "estimate", "conf_low", "conf_high"])
    zero = alt.Chart(pd.DataFrame({"z": [0.0]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="z:Q")
    return (zero + rule + point).properties(width=WIDTH, title=title).to_dict()


def pairs_chart(rows: list[dict], estimate: str) -> dict:
    """Pairwise contrasts with their intervals (no multiplicity adjustment of the bars)."""
    df = pd.DataFrame(rows)[["contrast", estimate, "conf_low", "conf_high"]].rename(columns={estimate: "estimate"})
    ref = 1.0 if estimate in ("odds_ratio", "ratio") else 0.0
    base = alt.Chart(df).encode(y=alt.Y("contrast:N", sort=None, title=None))
    rule = base.mark_rule().encode(x=alt.X("conf_low:Q", title=estimate.replace("_", " ")), x2="conf_high:Q")
    point = base.mark_point(filled=True, size=60).encode(x="estimate:Q", tooltip=["contrast", "estimate"])
    zero = alt.Chart(pd.DataFrame({"z": [ref]})).mark_rule(strokeDash=[4, 4], color="gray").encode(x="z:Q")
    return (zero + rule + point).properties(width=WIDTH, title="Pairwise comparisons with 95 % CI").to_dict()


def caterpillar(data: pd.DataFrame, group: str, term: str) -> dict:
    d = data.copy()
    d["low"] = d["mode"] - 1.96 * d["sd"]
    d["high"] = d["mode"] + 1.96 * d["sd"]
    d = d.sort_values("mode")
    d["rank"] = range(len(d))
    base = alt.Chart(d).encode(x=alt.X("rank:O", axis=None, title=f"levels of {group}, ordered"))
    rule = base.mark_rule(opacity=0.6).encode(y=alt.Y("low:Q", title=f"conditional mode: {term}"), y2="high:Q")
    pts = base.mark_circle().encode(
        y="mode:Q", size=alt.Size("n:Q", title="cluster size"),
        color=alt.Color("n:Q", title="cluster size", scale=alt.Scale(scheme="viridis")),
        tooltip=["level", "mode", "sd", "n"],
    )
    return (rule + pts).properties(width=WIDTH, height=220, title=f"{group}: {term} (±1.96 conditional SD; small clusters shrink more)").to_dict()


def curves(data: pd.DataFrame, var: str, response: str) -> dict:
    dash = alt.condition(alt.FieldOneOfPredicate(field="curve", oneOf=["typical cluster (random effects 0)", "population-averaged"]),
                         alt.value(3), alt.value(1))
    return (
        alt.Chart(data)
        .mark_line()
        .encode(x=alt.X("x:Q", title=var), y=alt.Y("value:Q", title=response), color=alt.Color("curve:N", title=None),
                strokeWidth=dash, tooltip=["curve", "x", "value"])
        .properties(width=WIDTH, height=260, title=f"Predicted {response} against {var}")
        .to_dict()
    )


def category_probabilities(data: pd.DataFrame, var: str, numeric: bool) -> dict:
    """Ordinal models: P(Y = k) against ``var``, one colour per category, solid for a typical
    cluster and dashed population-averaged (columns ``x category probability curve``)."""
    x = alt.X("x:Q" if numeric else "x:N", title=var, sort=None)
    dash = alt.StrokeDash("curve:N", title=None, sort=None)
    cats = list(dict.fromkeys(data["category"]))
    color = alt.Color("category:O", title="category", sort=cats, scale=alt.Scale(scheme="viridis"))
    base = alt.Chart(data).encode(x=x, y=alt.Y("probability:Q", title="probability", scale=alt.Scale(domain=[0, 1])),
                                  color=color, tooltip=["curve", "category", "x", "probability"])
    marks = base.mark_line(point=not numeric).encode(strokeDash=dash, detail="curve:N")
    return marks.properties(width=WIDTH, height=280, title=f"Category probabilities against {var}: "
                            "typical cluster (solid) and population-averaged (dashed)").to_dict()


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
