"""The ipywidgets model builder — the only module of glmm_nb that imports ipywidgets.

``ModelBuilder(df)`` lets an analyst pick the response, fixed effects, grouping factors and
per-factor random slopes (correlated or not), family/link, method and nagq; it shows the lme4
formula live and the equivalent ``%%glmm`` cell, fits on "Fit" (with a progress indicator),
shows the summary, the report on "Show report" and saves the report on "Export". The fitted
result is always available as ``.result``: the widgets never hold the only copy. The report (about
1 MB with its inlined chart library) enters the widget's state only when shown, so a notebook
saved with widget state stays small.
"""

from __future__ import annotations

import html
import keyword
import time

import pandas as pd

from ..design import to_pandas
from ..errors import GLMMError
from ..api import glmm, with_data_source
from ..cells import cell_text
from ..families import family_names, get_family

__all__ = ["ModelBuilder"]


def _q(name: str) -> str:
    """Quote a column name for a formula when it is not a plain identifier (names holding a
    backtick are never offered: they cannot be quoted)."""
    if "`" in name:
        raise GLMMError(f"the column name {name!r} holds a backtick and cannot be written in a formula")
    return name if name.isidentifier() and not keyword.iskeyword(name) else f"`{name}`"


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


class ModelBuilder:
    """Build, fit and export a GLMM from a DataFrame with widgets.

    Parameters
    ----------
    data : pandas.DataFrame
    name : str
        The variable name of ``data`` in the notebook (for the %%glmm cell text).
    """

    def __init__(self, data: pd.DataFrame, name: str = "df"):
        import ipywidgets as w

        data = to_pandas(data, what="ModelBuilder's data")  # polars / Arrow tables too, converted once
        self.data = data
        self.name = name
        self.result = None
        self.report = None
        # a name with a backtick cannot be quoted in a formula: offering it would let a column
        # name (data) become formula code
        cols = [str(c) for c in data.columns if "`" not in str(c)]
        guess_col, guess_family = guess_response(data, cols)
        self.response = w.Dropdown(options=cols, value=guess_col, description="Response")
        self.fixed = w.SelectMultiple(options=cols, description="Fixed", rows=min(8, len(cols)))
        self.groups = w.SelectMultiple(options=cols, description="Groups", rows=min(6, len(cols)))
        self.slopes_box = w.VBox()
        self._slopes: dict[str, tuple] = {}
        self.family = w.Dropdown(options=list(family_names()), value=guess_family, description="Family")
        self.link = w.Dropdown(options=list(get_family(guess_family).links), value=get_family(guess_family).links[0],
                               description="Link")
        self.method = w.Dropdown(options=["laplace", "agq"], value="laplace", description="Method")
        self.nagq = w.IntSlider(value=10, min=2, max=30, description="nAGQ", disabled=True)
        self.formula_label = w.HTML()
        self.cell_area = w.Textarea(layout=w.Layout(width="100%", height="60px"), disabled=True)
        self.fit_button = w.Button(description="Fit", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=3, description="")
        self.status = w.HTML()
        self.output = w.HTML()
        self.report_frame = w.HTML()
        self.show_report = w.ToggleButton(value=False, description="Show report", disabled=True)
        self.export_path = w.Text(value="glmm_report.html", description="Save as")
        self.export_button = w.Button(description="Export report", disabled=True)
        for wid in (self.response, self.fixed, self.family, self.link, self.method, self.nagq):
            wid.observe(self._changed, names="value")
        self.groups.observe(self._groups_changed, names="value")
        self.family.observe(self._family_changed, names="value")
        self.method.observe(self._method_changed, names="value")
        self.fit_button.on_click(self.fit)
        self.export_button.on_click(self.export)
        self.show_report.observe(self._show_report_changed, names="value")
        self.widget = w.VBox([
            w.HBox([w.VBox([self.response, self.fixed, self.groups]), w.VBox([self.family, self.link, self.method, self.nagq])]),
            self.slopes_box, self.formula_label, self.cell_area,
            w.HBox([self.fit_button, self.progress, self.status]),
            self.output, w.HBox([self.show_report, self.export_path, self.export_button]), self.report_frame,
        ])
        self._changed()

    # ------------------------------------------------------------------ formula and cell
    @property
    def formula(self) -> str:
        fixed = [_q(c) for c in self.fixed.value if c != self.response.value]
        rhs = " + ".join(fixed) if fixed else "1"
        for g in self.groups.value:
            slopes, correlated = self._slopes.get(g, (None, None))
            sl = [_q(s) for s in (slopes.value if slopes is not None else ())]
            lhs = "1" + "".join(f" + {s}" for s in sl)
            bar = "|" if (correlated is None or correlated.value or not sl) else "||"
            rhs += f" + ({lhs} {bar} {_q(g)})"
        return f"{_q(self.response.value)} ~ {rhs}"

    @property
    def cell(self) -> str:
        return cell_text("result", self.name, self.formula, self.family.value,
                         None if self.link.value == get_family(self.family.value).links[0] else self.link.value,
                         self.method.value, self.nagq.value)

    def _changed(self, *_):
        self.formula_label.value = f"<b>Formula:</b> <code>{html.escape(self.formula)}</code>"
        self.cell_area.value = self.cell

    def _groups_changed(self, change):
        import ipywidgets as w

        cols = [str(c) for c in self.data.columns if "`" not in str(c)]
        rows = []
        for g in change["new"]:
            if g not in self._slopes:
                s = w.SelectMultiple(options=[c for c in cols if c != g], description=f"slopes | {g}", rows=3)
                c = w.Checkbox(value=True, description="correlated")
                s.observe(self._changed, names="value")
                c.observe(self._changed, names="value")
                self._slopes[g] = (s, c)
            rows.append(w.HBox(list(self._slopes[g])))
        self.slopes_box.children = rows
        self._changed()

    def _family_changed(self, change):
        fam = get_family(change["new"])
        self.link.options = list(fam.links)
        self.link.value = fam.links[0]
        if fam.profiled_lmm:
            self.method.value = "laplace"
        self._changed()

    def _method_changed(self, change):
        self.nagq.disabled = change["new"] != "agq"
        self._changed()

    # ------------------------------------------------------------------------ actions
    def fit(self, *_):
        """Fit the model shown; progress and errors appear in the widget."""
        self.progress.value = 1
        self.status.value = "fitting…"
        t0 = time.perf_counter()
        try:
            m = glmm(self.formula, self.data, family=self.family.value, link=self.link.value,
                     method=self.method.value, nagq=self.nagq.value if self.method.value == "agq" else 1)
        except GLMMError as exc:
            self.progress.value = 0
            self.status.value = f"<span style='color:#a94442'>{html.escape(str(exc))}</span>"
            return None
        m = with_data_source(m, self.name)  # the report's Reproduce code: data = <the builder's name>
        self.result = m
        self.progress.value = 2
        self.status.value = "building the report…"
        self.report = m.report()
        self.progress.value = 3
        self.status.value = f"done in {time.perf_counter() - t0:.1f} s"
        self.output.value = m._repr_html_()  # the formatted tables, as in a notebook cell
        self.show_report.disabled = False
        self._show_report_changed()
        self.export_button.disabled = False
        return m

    def _show_report_changed(self, *_):
        """The report in its iframe while "Show report" is down (else nothing)."""
        shown = self.show_report.value and self.report is not None
        self.report_frame.value = self.report.embed()._repr_html_() if shown else ""

    def export(self, *_):
        """Save the report to the path in the 'Save as' box."""
        if self.report is None:
            self.status.value = "fit a model first"
            return None
        try:
            path = self.report.save(self.export_path.value)
        except GLMMError as exc:
            self.status.value = f"<span style='color:#a94442'>{html.escape(str(exc))}</span>"
            return None
        self.status.value = f"report saved to {html.escape(str(path))}"
        return path

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
