"""The ipywidgets view of the model workbench (see :mod:`glmm_nb.widgets`).

The controls mirror a :class:`~.workbench.Choices` record and the options of
:func:`glmm_nb.glmm`; the formula box and the controls follow each other both ways where the
formula can be shown as controls. "Fit" calls ``glmm()`` and nothing else (the report is built
on demand); every fitted model is kept in ``.results`` and compared with
:func:`.workbench.compare` and :func:`glmm_nb.table`.
"""

from __future__ import annotations

import html
import time
import warnings

import pandas as pd

from ..api import glmm, with_data_source
from ..cells import cell_text, check_disp_options, takes_dispformula
from ..design import to_pandas
from ..design.levels import ordered_column
from ..errors import DataError, FormulaError, GLMMError
from ..families import family_names, get_family
from ..papertable import table
from ..report.charts import to_svg_data_uri
from .workbench import Choices, choices_of, compare, formula_of, guess_response, quote_name

__all__ = ["ModelBuilder"]

_NONE = "(none)"
_FORMS = (("one column", "column"), ("successes + failures", "failures"), ("successes of trials", "trials"))
_ZERO = (("none", "none"), ("zero-inflated", "zi"), ("hurdle", "hurdle"))
_PLOTS = ("coefficients", "caterpillar", "effects", "diagnostics")


def _red(text: str) -> str:
    return f"<span style='color:#a94442'>{html.escape(text)}</span>"


class ModelBuilder:
    """Build, fit, compare and export GLMMs from a DataFrame with widgets.

    Parameters
    ----------
    data : pandas.DataFrame (or a polars / Arrow table)
    formula, family, link, ziformula, hurdle, dispformula, weights, offset, reml, method, nagq
        A model to start from, as for :func:`glmm_nb.glmm` (``weights`` and ``offset`` as
        column names; the offset enters the formula as ``offset(col)``). Without ``formula``
        a response and family are guessed. A gaussian model with a ``dispformula`` is fitted
        by ML: the "REML" box is then cleared and locked, in sight.
    levels : list of str, optional
        The order (low to high) of an ordinal response given as labels.
    name : str
        The variable name of ``data`` in the notebook (for the %%glmm cell text and the
        report's Reproduce code).

    Attributes
    ----------
    result : the selected (by default the last fitted) model, or None
    results : dict
        Name → every model fitted in the builder.
    """

    def __init__(self, data, formula: str | None = None, family: str | None = None, link: str | None = None,
                 ziformula: str | None = None, hurdle: bool = False, dispformula: str | None = None,
                 weights: str | None = None,
                 offset: str | None = None, reml: bool = True, method: str = "laplace", nagq: int = 10,
                 levels=None, name: str = "df"):
        import ipywidgets as w

        data = to_pandas(data, what="ModelBuilder's data")  # polars / Arrow tables too, converted once
        self.data, self.name = data, name
        self.result, self.report, self.results, self.reports = None, None, {}, {}
        # a name with a backtick cannot be quoted in a formula: offering it would let data become code
        self.columns = [str(c) for c in data.columns if "`" not in str(c)]
        numeric = [c for c in self.columns if pd.api.types.is_numeric_dtype(data[c])
                   and not pd.api.types.is_bool_dtype(data[c])]
        for opt, col in (("weights", weights), ("offset", offset)):
            if col is not None and (not isinstance(col, str) or col not in numeric):
                raise DataError(f"{opt}= must name a numeric column of the data for the builder, not {col!r}")
        guess_col, guess_family = guess_response(data, self.columns)
        fam = get_family(family or guess_family)
        if link is not None and link not in fam.links:
            raise DataError(f"link {link!r} is not one of the {fam.name} links ({', '.join(fam.links)})")
        if hurdle and not ziformula:
            raise DataError("hurdle=True needs ziformula= (the model of zero vs positive, e.g. '~ 1')")
        check_disp_options(fam, dispformula, False, flag="dispformula=")
        self._syncing = False
        cols = self.columns
        self.response_form = w.Dropdown(options=_FORMS, value="column", description="Response is")
        self.response = w.Dropdown(options=cols, value=guess_col, description="Response")
        self.response2 = w.Dropdown(options=cols, value=None, description="failures", disabled=True)
        self.fixed = w.SelectMultiple(options=cols, description="Fixed", rows=min(8, len(cols)))
        self.groups = w.SelectMultiple(options=cols, description="Groups", rows=min(6, len(cols)))
        self.slopes_box = w.VBox()
        self.slopes: dict[str, tuple] = {}
        self.family = w.Dropdown(options=list(family_names()), value=fam.name, description="Family")
        self.link = w.Dropdown(options=list(fam.links), value=link or fam.links[0], description="Link")
        self.method = w.Dropdown(options=["laplace", "agq"], value=method, description="Method")
        self.nagq = w.IntSlider(value=nagq, min=2, max=30, description="nAGQ")
        self.reml = w.Checkbox(value=reml, description="REML (gaussian)")
        self.weights = w.Dropdown(options=[_NONE, *numeric], value=weights or _NONE, description="Weights")
        self.offset = w.Dropdown(options=[_NONE, *numeric], value=_NONE, description="Offset")
        self.offset_log = w.Checkbox(value=False, description="log(offset)")
        self.zero = w.Dropdown(options=_ZERO, value="hurdle" if hurdle else ("zi" if ziformula else "none"),
                               description="Zero part")
        self.ziformula = w.Text(value=ziformula or "~ 1", description="zero ~")
        self.dispformula = w.Text(value=dispformula or "", description="dispersion ~",
                                  placeholder="~ h (empty: one dispersion)")
        self.levels = w.Text(value=",".join(map(str, levels)) if levels else "", description="Levels",
                             placeholder="low,…,high (ordinal labels)")
        self.formula_text = w.Text(description="Formula", layout=w.Layout(width="100%"))
        self.formula_note = w.HTML()
        self.cell_area = w.Textarea(layout=w.Layout(width="100%", height="60px"), disabled=True)
        self.model_name = w.Text(value="m1", description="Name")
        self.fit_button = w.Button(description="Fit", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=2, description="")
        self.status = w.HTML()
        self.selected = w.Dropdown(options=[], description="Model")
        self.output = w.HTML()
        self.compare_html = w.HTML()
        self.plot_kind = w.Dropdown(options=_PLOTS, value="coefficients", description="Plot")
        self.plot_button = w.Button(description="Draw")
        self.plot_html = w.HTML()
        self.show_report = w.ToggleButton(value=False, description="Show report", disabled=True)
        self.export_path = w.Text(value="glmm_report.html", description="Save as")
        self.export_button = w.Button(description="Export report", disabled=True)
        self.report_frame = w.HTML()
        plots = w.VBox([w.HBox([self.plot_kind, self.plot_button]), self.plot_html])
        report = w.VBox([w.HBox([self.show_report, self.export_path, self.export_button]), self.report_frame])
        self.tabs = w.Tab(children=[self.output, self.compare_html, plots, report])
        for i, title in enumerate(("Summary", "Compare", "Plots", "Report")):
            self.tabs.set_title(i, title)

        for wid in (self.response_form, self.response, self.response2, self.fixed, self.offset, self.offset_log):
            wid.observe(self._changed, names="value")  # they write the formula
        for wid in (self.link, self.method, self.nagq, self.reml, self.weights, self.zero, self.ziformula,
                    self.dispformula, self.levels):
            wid.observe(self._options_changed, names="value")  # they are options of glmm()
        self.groups.observe(self._groups_changed, names="value")
        self.family.observe(self._family_changed, names="value")
        self.formula_text.observe(self._formula_typed, names="value")
        self.selected.observe(self._select, names="value")
        self.fit_button.on_click(self.fit)
        self.plot_button.on_click(self.draw)
        self.export_button.on_click(self.export)
        self.show_report.observe(self._show_report_changed, names="value")
        self.widget = w.VBox([
            w.HBox([w.VBox([self.response_form, self.response, self.response2, self.fixed, self.groups]),
                    w.VBox([self.family, self.link, self.method, self.nagq, self.reml, self.levels]),
                    w.VBox([self.weights, self.offset, self.offset_log, self.zero, self.ziformula,
                            self.dispformula])]),
            self.slopes_box, self.formula_text, self.formula_note, self.cell_area,
            w.HBox([self.model_name, self.fit_button, self.progress, self.status]),
            self.selected, self.tabs,
        ])
        if formula is not None:
            if offset is not None:
                formula = f"{formula} + offset({quote_name(offset)})"
            self.formula_text.value = formula  # fills the controls where they can show it
        else:
            if offset is not None:
                self._set(self.offset, offset)
            self._changed()
        self._options_changed()

    # ------------------------------------------------------------------ formula and cell
    @property
    def choices(self) -> Choices:
        """What the formula controls show."""
        groups = {}
        for g in self.groups.value:
            slopes, correlated = self.slopes.get(g, (None, None))
            groups[g] = (tuple(slopes.value) if slopes is not None else (),
                         correlated is None or correlated.value)
        form = self.response_form.value
        return Choices(self.response.value, form, self.response2.value if form != "column" else None,
                       tuple(self.fixed.value), groups, None if self.offset.value == _NONE else self.offset.value,
                       self.offset_log.value)

    @property
    def formula(self) -> str:
        """The formula that "Fit" fits (the formula box)."""
        return self.formula_text.value

    @property
    def options(self) -> dict:
        """The keyword arguments of :func:`glmm_nb.glmm` besides formula and data."""
        fam = get_family(self.family.value)
        zero = self.zero.value if fam.count_like else "none"
        return {"family": self.family.value, "link": self.link.value, "method": self.method.value,
                "nagq": self.nagq.value if self.method.value == "agq" else 1,
                "reml": self.reml.value, "weights": None if self.weights.value == _NONE else self.weights.value,
                "ziformula": self.ziformula.value if zero != "none" else None, "hurdle": zero == "hurdle",
                "dispformula": self._dispformula()}

    def _dispformula(self) -> str | None:
        """The "dispersion ~" box's formula where the family has a dispersion to model, else None."""
        text = self.dispformula.value.strip()
        return text if text and takes_dispformula(self.family.value) else None

    @property
    def cell(self) -> str:
        """The %%glmm cell that fits the same model."""
        o = self.options
        fam = get_family(o["family"])
        levels = self.levels.value.strip() if fam.ordinal else ""
        return cell_text("result", self.name, self.formula, o["family"],
                         None if o["link"] == fam.links[0] else o["link"], o["method"], self.nagq.value,
                         reml=o["reml"], weights=o["weights"], ziformula=o["ziformula"], hurdle=o["hurdle"],
                         ordered=f"{self.response.value}={levels}" if levels else None, dispformula=o["dispformula"])

    def _set(self, widget, value):
        """Set a control without treating it as the analyst's edit."""
        self._syncing = True
        try:
            widget.value = value
        finally:
            self._syncing = False

    def _changed(self, *_):
        """A formula control changed: rewrite the formula box and the cell."""
        if self._syncing:
            return
        form = self.response_form.value
        self.response2.disabled = form == "column"
        self.response2.description = "trials" if form == "trials" else "failures"
        try:
            text = formula_of(self.choices)
        except GLMMError as exc:
            self.formula_note.value = _red(str(exc))
            return
        self._set(self.formula_text, text)
        self.formula_note.value = ""
        self.cell_area.value = self.cell

    def _options_changed(self, *_):
        """An option of glmm() changed: enable what applies, rewrite the cell."""
        if self._syncing:
            return
        fam = get_family(self.family.value)
        self.nagq.disabled = self.method.value != "agq"
        self.dispformula.disabled = not takes_dispformula(fam)
        ml_only = fam.profiled_lmm and self._dispformula() is not None  # glmmTMB's heteroscedastic LMM: ML
        if ml_only and self.reml.value:
            self._set(self.reml, False)
        self.reml.disabled = not fam.profiled_lmm or ml_only
        self.zero.disabled = not fam.count_like
        self.ziformula.disabled = self.zero.disabled or self.zero.value == "none"
        self.levels.disabled = not fam.ordinal
        self.cell_area.value = self.cell

    def _formula_typed(self, change):
        """The formula box was edited: show it as controls where it can be shown."""
        if self._syncing:
            return
        self.cell_area.value = self.cell
        try:
            c = choices_of(change["new"], self.columns)
        except FormulaError as exc:
            self.formula_note.value = _red(str(exc))
            return
        if c is None:
            self.formula_note.value = ("<i>this formula cannot be shown as controls: it is fitted as written "
                                       "(the controls keep their last state)</i>")
            return
        self._syncing = True
        try:
            self.response_form.value = c.response_form
            self.response.value = c.response
            self.response2.value = c.response2
            self.response2.disabled = c.response_form == "column"
            self.response2.description = "trials" if c.response_form == "trials" else "failures"
            self.fixed.value = c.fixed
            self.offset.value = c.offset if c.offset in self.offset.options else _NONE
            self.offset_log.value = c.offset_log
            self.groups.value = tuple(c.groups)
            self._make_slopes(tuple(c.groups))
            for g, (slopes, correlated) in c.groups.items():
                self.slopes[g][0].value = slopes
                self.slopes[g][1].value = correlated
        finally:
            self._syncing = False
        self.formula_note.value = ""

    def _make_slopes(self, groups):
        import ipywidgets as w

        rows = []
        for g in groups:
            if g not in self.slopes:
                s = w.SelectMultiple(options=[c for c in self.columns if c != g], description=f"slopes | {g}", rows=3)
                c = w.Checkbox(value=True, description="correlated")
                s.observe(self._changed, names="value")
                c.observe(self._changed, names="value")
                self.slopes[g] = (s, c)
            rows.append(w.HBox(list(self.slopes[g])))
        self.slopes_box.children = rows

    def _groups_changed(self, change):
        if self._syncing:
            return
        self._make_slopes(change["new"])
        self._changed()

    def _family_changed(self, change):
        fam = get_family(change["new"])
        self._syncing = True
        try:
            self.link.options = list(fam.links)
            self.link.value = fam.links[0]
            if fam.profiled_lmm:
                self.method.value = "laplace"
        finally:
            self._syncing = False
        self._options_changed()

    # ------------------------------------------------------------------------ actions
    def _fit_data(self) -> pd.DataFrame:
        """The data as fitted: an ordinal response given as labels gets the order in "Levels"."""
        fam = get_family(self.family.value)
        y = self.response.value
        if not fam.ordinal or not self.levels.value.strip() or y not in self.data.columns:
            return self.data
        data = self.data.copy()
        data[y] = ordered_column(data[y], self.levels.value, y, what=f"Levels of '{y}'")
        return data

    def fit(self, *_):
        """Fit the model shown (``glmm()`` only; the report is built on demand), keep it under
        the name in "Name", and say in the status whether it converged."""
        self.progress.value = 1
        self.status.value = "fitting…"
        name = self.model_name.value.strip() or self._next_name()
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the same messages are in m.messages, shown below
                m = glmm(self.formula, self._fit_data(), control={"progress": False}, **self.options)
        except GLMMError as exc:
            self.progress.value = 0
            self.status.value = _red(str(exc))
            return None
        elapsed = time.perf_counter() - t0
        m = with_data_source(m, self.name)  # the report's Reproduce code: data = <the builder's name>
        self.results[name] = m
        self.reports.pop(name, None)
        self.progress.value = 2
        if not m.converged:
            self.status.value = _red(f"{name}: fitted in {elapsed:.2f} s but did NOT converge — "
                                     + " ".join(m.messages))
        elif m.singular:
            self.status.value = ("<span style='color:#8a6d3b'>" + html.escape(
                f"{name}: converged in {elapsed:.2f} s; singular fit — " + " ".join(m.messages)) + "</span>")
        else:
            self.status.value = html.escape(f"{name}: converged in {elapsed:.2f} s")
        self._set(self.selected, None)
        self.selected.options = list(self.results)
        self.selected.value = name  # shows it
        self.model_name.value = self._next_name()
        return m

    def _next_name(self) -> str:
        k = len(self.results) + 1
        while f"m{k}" in self.results:
            k += 1
        return f"m{k}"

    def _select(self, change):
        if self._syncing or change["new"] is None:
            return
        self.result = self.results[change["new"]]
        self.output.value = self.result._repr_html_()  # the formatted tables, as in a notebook cell
        self.report = self.reports.get(change["new"])
        self.show_report.disabled = self.export_button.disabled = False
        self.plot_html.value = ""
        self._show_report_changed()
        self.compare_html.value = self._compare_html()

    def compare(self) -> pd.DataFrame:
        """Every model fitted here, side by side (see :func:`.workbench.compare`)."""
        return compare(self.results)

    def table(self, **kw):
        """The fitted models as a paper table (:func:`glmm_nb.table`), labelled by name."""
        return table(list(self.results.values()), labels=list(self.results), **kw)

    def _compare_html(self) -> str:
        frame = self.compare()
        fmt = {**{c: "{:.2f}".format for c in ("AIC", "BIC")}, **{c: "{:.4f}".format for c in ("logLik", "chisq")},
               **{c: "{:.3g}".format for c in ("p_value", "p_value_boundary")}, "chi_df": "{:.0f}".format}
        shown = frame.drop(columns=["test"]).to_html(formatters=fmt, na_rep="", escape=True)
        tests = "".join(f"<li>{html.escape(k)} vs {html.escape(r.vs)}: {html.escape(r.test)}</li>"
                        for k, r in frame.iterrows() if r.vs)
        return shown + (f"<ul>{tests}</ul>" if tests else "") + self.table()._repr_html_()

    def draw(self, *_):
        """The selected model's plot (``m.plot.<kind>()``) as a static SVG."""
        if self.result is None:
            self.status.value = "fit a model first"
            return None
        kind = self.plot_kind.value
        try:
            chart = getattr(self.result.plot, "coefs" if kind == "coefficients" else kind)()
        except GLMMError as exc:
            self.plot_html.value = _red(str(exc))
            return None
        uri = to_svg_data_uri(chart.to_dict())
        self.plot_html.value = (f'<img alt="{kind}" src="{uri}">' if uri else
                                _red("the chart could not be drawn (vl-convert missing)"))
        return chart

    def _report(self):
        """The selected model's report, built once on demand."""
        name = self.selected.value
        if name not in self.reports:
            self.status.value = "building the report…"
            self.reports[name] = self.result.report()
            self.status.value = f"report of {html.escape(name)} ready"
        self.report = self.reports[name]
        return self.report

    def _show_report_changed(self, *_):
        """The report in its iframe while "Show report" is down (else nothing)."""
        shown = self.show_report.value and self.result is not None
        self.report_frame.value = self._report().embed()._repr_html_() if shown else ""

    def export(self, *_):
        """Save the selected model's report to the path in the 'Save as' box."""
        if self.result is None:
            self.status.value = "fit a model first"
            return None
        try:
            path = self._report().save(self.export_path.value)
        except GLMMError as exc:
            self.status.value = _red(str(exc))
            return None
        self.status.value = f"report saved to {html.escape(str(path))}"
        return path

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
