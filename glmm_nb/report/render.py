"""Render a fitted model into one self-contained HTML file (Jinja2 + Altair/Vega).

All CSS and JavaScript are inline; Vega/Vega-Lite/vega-embed are inlined once per page from
the vendored bundle (see :mod:`glmm_nb.report.vendor`); a Content-Security-Policy forbids
every network request. Templates autoescape; chart specs travel as ``tojson`` inside
``<script type="application/json">``; static SVG fallbacks are ``<img>`` data URIs.
"""

from __future__ import annotations

import base64
import gzip
import html
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2


from ..design import check_bool, check_int, check_output_path, close_names
from ..errors import DataError, GLMMError, ModelError
from ..marginal import gee_for
from ..results.display import format_number
from . import charts as ch
from . import ordinal as ordsec
from . import sections as sec
from .findings import key_findings
from .focal import check_focus

__all__ = ["Report", "Embedded", "make_report", "check_report_args"]


@lru_cache(maxsize=1)
def _bundle() -> str:
    return (Path(__file__).parent / "static" / "vega-bundle.min.js").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def packed_bundle() -> str:
    """The Vega bundle gzip-compressed and base64-encoded (0.9 MB of JavaScript → 0.4 MB of
    text): the page inflates it with the browser's ``DecompressionStream`` and runs it; where
    that API is missing the static SVG renderings stay in place."""
    raw = _bundle().encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")


def _environment(template_dir: str | Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        path = Path(template_dir)
        if not path.is_dir():
            raise GLMMError(f"template_dir '{path}' is not a folder")
        loaders.append(jinja2.FileSystemLoader(str(path)))
    loaders.append(jinja2.PackageLoader("glmm_nb", "templates"))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["format_number"] = format_number  # the one number formatter (results.display)
    return env


@dataclass(frozen=True)
class Embedded:
    """The whole report in an isolated iframe (``Report.embed()``)."""

    html: str = field(repr=False)

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 900px; border: 1px solid #ddd;" '
            'sandbox="allow-scripts"></iframe>'
        )


@dataclass
class Report:
    """A rendered report: ``save(path)`` writes it. In a notebook it shows its key findings and a
    link to the saved file (a report is ~0.7 MB: shown whole in every run it would bloat the
    notebook); ``embed()`` shows the whole report in an isolated iframe. Not frozen: it
    remembers where it was saved (``saved``)."""

    html: str = field(repr=False)
    seconds: float
    findings_html: str = field(default="", repr=False)
    saved: list = field(default_factory=list, repr=False, compare=False)  # paths written by save()

    def save(self, path: str | Path) -> Path:
        path = check_output_path(path, what="save()")
        path.write_text(self.html, encoding="utf-8")
        self.saved.append(path)
        return path

    def embed(self) -> Embedded:
        """The whole report, for display in a notebook (an iframe; its scripts cannot reach the page)."""
        return Embedded(self.html)

    def _repr_html_(self) -> str:
        if self.saved:
            where = ", ".join(f'<a href="{html.escape(str(p))}" target="_blank">{html.escape(str(p))}</a>'
                              for p in self.saved)
            tail = f"<p>Full report: {where} (open it in the browser; <code>.embed()</code> shows it here).</p>"
        else:
            tail = ("<p>Not saved yet: <code>.save('report.html')</code> writes the full report; "
                    "<code>.embed()</code> shows it here.</p>")
        return f'<div class="glmm-nb-report">{self.findings_html}{tail}</div>'

    def __repr__(self) -> str:
        where = f", saved to {', '.join(map(str, self.saved))}" if self.saved else ", not saved"
        return f"<glmm_nb Report: {len(self) / 1e6:.2f} MB, built in {self.seconds:.1f} s{where}>"

    def __len__(self) -> int:
        return len(self.html.encode("utf-8"))


def check_report_args(m, focus, emmeans, diagnostics_nsim, svg_fallback=True, focus_name="focus") -> None:
    """Type- and name-check the report's arguments (an unknown column is an error, not ignored)."""
    frame = m.spec.frame
    cols = [] if frame is None else list(frame.columns)
    for name, value in ((focus_name, focus), ("emmeans", emmeans)):
        if value is None:
            continue
        if not isinstance(value, str):
            raise ModelError(f"{name} must be a column name, not {value!r}")
        if value not in cols:
            raise DataError(f"{name}='{value}' is not a variable of the model (it uses {', '.join(map(repr, cols))})"
                            f"{close_names(value, cols)}")
    check_focus(m, focus, focus_name)
    check_int(diagnostics_nsim, "diagnostics_nsim", minimum=1)
    check_bool(svg_fallback, "svg_fallback")


def make_report(m, template_dir=None, marginal: str | None = None, gee=None, diagnostics_nsim: int = 250,
                svg_fallback: bool = True, emmeans: str | None = None, gee_cluster: str | None = None,
                focus: str | None = None, data_source: str | None = None, randomized=()) -> Report:
    """Build the report of a fitted model.

    Parameters
    ----------
    focus : str, optional
        The covariate of the effect curves and the first line of the key findings (default:
        the treatment or exposure when its name says so, else the first continuous covariate;
        see :mod:`glmm_nb.report.focal`). ``marginal`` is its older name.
    data_source : str, optional
        How the Reproduce section defines ``data``: a CSV path, or the name of the variable
        holding the data frame (default: the name recorded when the model was fitted, if any).
    gee : str or GEEResult, optional
        A cluster column (an exchangeable GEE of the model's fixed part clustered by it) or a
        :func:`glmm_nb.gee` result, added to the comparison — as ``compare(gee=)``.
        ``gee_cluster`` is the older name of the column form.
    diagnostics_nsim : int
        Simulations for the scaled residuals.
    svg_fallback : bool
        Embed static SVG renderings shown before (or without) JavaScript.
    emmeans : str, optional
        A factor whose estimated marginal means and Tukey pairwise comparisons are added.
    """
    t0 = time.perf_counter()
    if gee_cluster is not None:
        if gee is not None:
            raise ModelError("give gee= or its older name gee_cluster=, not both")
        gee = gee_cluster
    if marginal is not None:
        if focus is not None:
            raise ModelError("give focus= or its older name marginal=, not both")
        focus, focus_name = marginal, "marginal"
    else:
        focus_name = "focus"
    gee = gee_for(m, gee)
    check_report_args(m, focus, emmeans, diagnostics_nsim, svg_fallback, focus_name)
    ctx = {
        "model": sec.model_section(m),
        "fixed": sec.fixed_section(m, emmeans),
        "random": sec.random_section(m),
        "marginal": sec.marginal_section(m, focus, gee),
        "diagnostics": sec.diagnostics_section(m, diagnostics_nsim),
        "caveats": sec.caveats_section(m, randomized),
        "reproduce": sec.reproduce_section(m, data_source),
        "diagnostics_nsim": diagnostics_nsim,
        "ordinal": ordsec.ordinal_section(m, focus) if m.request.family.ordinal else None,
    }
    ctx["findings"] = key_findings(m, ctx)
    forest_rows = ctx["fixed"]["rows"] or (ctx["ordinal"] or {}).get("thresholds", [])  # ordinal without covariates
    specs: list[tuple[str, dict, str]] = [("forest", ch.forest(forest_rows, ctx["fixed"]["exp_name"], effects=bool(ctx["fixed"]["rows"])),
                                                   "forest plot of the fixed effects")]
    emm = ctx["fixed"]["emmeans"]
    if emm is not None and emm["pairs"]:
        est = next(c for c in emm["pair_columns"] if c in ("estimate", "odds_ratio", "ratio"))
        specs.append(("pairs", ch.pairs_chart(emm["pairs"], est), "pairwise comparisons of the marginal means"))
    structs = []
    for c in ctx["random"]["structures"]:
        name = f"struct{len(structs)}"
        structs.append(name)
        specs.append((name, ch.structure_curve(c["data"], c["lags"], c["term"]),
                      f"correlation against {'lag' if c['lags'] else 'distance'}: {c['term']}"))
    cats = []
    for c in ctx["random"]["caterpillars"]:
        name = f"cat{len(cats)}"
        cats.append(name)
        specs.append((name, ch.caterpillar(c["data"], c["group"], c["term"]), f"caterpillar plot: {c['group']} {c['term']}"))
    if ctx["marginal"]["curves"] is not None:
        resp = m.request.family.mean_word
        f = ctx["marginal"]["focus"]
        specs.append(("curves", ch.curves(ctx["marginal"]["curves"], f.var, resp, f.discrete, f.held_text),
                      "predicted response curves"))
    if ctx["ordinal"] is not None and ctx["ordinal"]["curves"] is not None:
        o = ctx["ordinal"]
        specs.append(("categories", ch.category_probabilities(o["curves"], o["var"], o["numeric"], o["focus"].held_text),
                      "category probabilities against the focal covariate"))
    if ctx["diagnostics"]["hist"] is not None:
        specs.append(("hist", ch.residual_hist(ctx["diagnostics"]["hist"]), "histogram of scaled residuals"))
        specs.append(("qq", ch.residual_qq(ctx["diagnostics"]["qq"]), "QQ plot of scaled residuals"))
    charts = []
    for i, (name, spec, alt_text) in enumerate(specs):
        charts.append({"id": i, "name": name, "spec": spec, "alt": alt_text,
                       "svg": ch.to_svg_data_uri(spec) if svg_fallback else None})
    by_name = {c["name"]: c for c in charts}
    by_name.setdefault("curves", None)
    by_name.setdefault("categories", None)
    by_name.setdefault("pairs", None)
    by_name.setdefault("hist", None)
    by_name.setdefault("qq", None)
    env = _environment(template_dir)
    page = env.get_template("report/base.html.j2").render(
        **ctx, charts=charts, charts_by_name=by_name, caterpillar_charts=[by_name[n] for n in cats],
        structure_charts=[by_name[n] for n in structs],
        vega_bundle=packed_bundle(),
    )
    box = env.get_template("report/_findings.html.j2").render(findings=ctx["findings"], linked=False)
    return Report(html=page, seconds=time.perf_counter() - t0, findings_html=box)
