"""Several fitted models side by side, as a table for a paper (R's modelsummary / tab_model).

``glmm_nb.table([m1, m2], labels=["A", "B"])`` lines up, block by block, the fixed effects
(estimate with its Wald CI, SE or p beside it), an ordinal model's thresholds, the zero part of
zero-inflated and hurdle models (separate blocks: they are different parameters), the variance
components (SDs and correlations; a structured term's parameters as one compact block, as
``m.structure_parameters()``: ``SD (ar1(timef + 0 | id))``, ``rho (ar1(...))``), dispersion parameters, then the number of observations and
groups, family, AIC, BIC and the log-likelihood. Every block has its heading in every format
(HTML, LaTeX booktabs, Markdown with ``|`` escaped, Word via python-docx) and ``to_frame()``
has a unique index (``"zi: (Intercept)"``, ``"threshold: 1|2"``). Numbers of one model's block
share their decimals, chosen so that the smallest keeps ``digits`` significant digits
(θ = 1.0026 is "1.00", not "1"; 1.4 beside 1.31 is "1.40").
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import GLMMError, ModelError
from .results import GLMMResult
from .results.display import column_decimals, format_number, format_p

__all__ = ["ModelTable", "table"]


_ZI = "Zero-inflation (log-odds of a structural zero)"
_HURDLE = "Hurdle zero part (log-odds of a zero)"
_DISP = "Dispersion model (log scale)"
ORDER = ["Fixed effects", "Thresholds", _ZI, _HURDLE, _DISP, "Random effects", "Dispersion", "Model"]
_KEY_PREFIX = {"Thresholds": "threshold: ", _ZI: "zi: ", _HURDLE: "hurdle: ", _DISP: "disp: "}


def block_decimals(values, digits: int) -> int | None:
    """Common decimals for one model's numbers in one block so that the smallest non-zero
    magnitude keeps ``digits`` significant digits (θ = 1.0026 is "1.00", never "1"; 1.4 beside
    1.31 is "1.40"); None when that needs more than 6 decimals (the block is then written in
    scientific notation, which keeps the digits)."""
    d = column_decimals(values, digits, most=99)
    return d if d <= 6 else None


def _fmt(x, d: int | None, digits: int) -> str:
    if x is None or not np.isfinite(x):
        return format_number(x, digits)
    return f"{x:.{d}f}" if d is not None else f"{x:.{digits - 1}e}"


def _estimate_cell(r, show: str, d, digits: int, stars: bool) -> str:
    s = _fmt(r.estimate, d, digits)
    if stars and np.isfinite(r.p_value):
        s += "***" if r.p_value < 0.001 else "**" if r.p_value < 0.01 else "*" if r.p_value < 0.05 else ""
    if show == "ci":
        return f"{s} [{_fmt(r.conf_low, d, digits)}, {_fmt(r.conf_high, d, digits)}]"
    if show == "se":
        return f"{s} ({_fmt(r.std_error, d, digits)})"
    return f"{s} (p {format_p(r.p_value)})"


def _coef_rows(ct: pd.DataFrame, show: str, digits: int, stars: bool) -> dict[str, str]:
    shown = {"ci": ["estimate", "conf_low", "conf_high"], "se": ["estimate", "std_error"], "p": ["estimate"]}[show]
    d = block_decimals(ct[shown].to_numpy().ravel(), digits)
    return {str(term): _estimate_cell(r, show, d, digits, stars) for term, r in ct.iterrows()}


def _model_blocks(m, show: str, digits: int, stars: bool, conf_level: float) -> dict[str, dict[str, str]]:
    """Section → {row label → cell} for one model."""
    out: dict[str, dict[str, str]] = {"Fixed effects": _coef_rows(m.coef_table(conf_level=conf_level), show, digits,
                                                                  stars)}
    if len(m.thresholds):
        out["Thresholds"] = _coef_rows(m.coef_table(conf_level=conf_level, part="thresholds"), show, digits, stars)
    if len(m.zi_fixef):
        zero = _HURDLE if getattr(m.request.family, "hurdle", False) else _ZI
        out[zero] = _coef_rows(m.coef_table(conf_level=conf_level, part="zi"), show, digits, stars)
    if len(getattr(m, "disp_fixef", ())):
        out[_DISP] = _coef_rows(m.coef_table(conf_level=conf_level, part="disp"), show, digits, stars)
    vc = m.varcorr()
    structured = {t.label: t for t in m.spec.terms if t.structured}
    params = m.structure_parameters()
    names, values = [], []
    for r in vc.itertuples():
        if r.grp in structured:  # one compact block per structured term, at its first row
            if r.grp in params:
                for n, v in _structure_rows(structured[r.grp], params.pop(r.grp)):
                    names.append(n)
                    values.append(v)
            continue
        if r.var2 is None or r.var2 != r.var2:
            names.append("SD (residual)" if r.grp == "Residual" else f"SD ({r.var1} | {r.grp})")
        else:
            names.append(f"Cor ({r.var1}, {r.var2} | {r.grp})")
        values.append(float(r.sdcor))
    d = block_decimals(np.asarray(values, dtype=float), digits)
    out["Random effects"] = {n: _fmt(v, d, digits) for n, v in zip(names, values)}
    if len(m.dispersion):
        d = block_decimals(m.dispersion.to_numpy(dtype=float), digits)
        out["Dispersion"] = {str(name): _fmt(float(v), d, digits) for name, v in m.dispersion.items()}
    model = {"N": str(m.nobs), **{f"Groups ({g})": str(n) for g, n in m.ngroups.items()},
             "Family": f"{m.family} ({m.link})"}
    for k, v in (("AIC", m.aic), ("BIC", m.bic), ("Log-likelihood", m.loglik)):
        model[k] = _fmt(v, 2, digits)
    out["Model"] = model
    return out


def _structure_rows(t, params: dict[str, float]) -> list[tuple[str, float]]:
    """A structured term's parameters (:meth:`structure_parameters`) as labelled rows:
    ``SD (ar1(timef + 0 | id))``, ``rho (ar1(...))``, ``range (exp(...))`` — not a row per column."""
    label = {"sd": "SD", "rho": "rho", "rate": "rate", "rho_unit": "rho at distance 1", "range": "range",
             "smoothness": "smoothness"}
    rows = []
    for k, v in params.items():
        if k in label:
            name = label[k]
        elif k.startswith("sd"):
            name = f"SD {t.col_names[int(k[2:]) - 1]}"
        else:  # toep: rho1, rho2, … by lag
            name = f"rho (lag {k[3:]})"
        rows.append((f"{name} ({t.text})", float(v)))
    return rows


def _ci_label(conf_level: float) -> str:
    return f"{100 * conf_level:.10g} % CI"


@dataclass(frozen=True)
class ModelTable:
    """The side-by-side table: ``frame`` holds the cells as text (empty where a model lacks a
    row) under a unique index (fixed effects by term; ``"threshold: 1|2"``, ``"zi: x"``,
    ``"hurdle: x"`` for the other coefficient blocks); ``sections`` maps each row to its block
    (fixed effects, thresholds, zero part, random effects, dispersion, model) and
    ``row_labels`` to the label shown under the block's heading in every format."""

    frame: pd.DataFrame
    sections: pd.Series
    notes: tuple[str, ...]
    row_labels: pd.Series | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def _rows(self):
        """(section heading or None, label, cells) in order; a heading opens each block."""
        labels = self.row_labels if self.row_labels is not None else pd.Series(self.frame.index, self.frame.index)
        prev = None
        for (key, row), sec, lab in zip(self.frame.iterrows(), self.sections, labels):
            yield (sec if sec != prev else None), str(lab), list(row)
            prev = sec

    def to_html(self) -> str:
        cols = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.frame.columns)
        rows = []
        for sec, lab, cells in self._rows():
            if sec is not None:
                rows.append(f'<tr><th colspan="{len(self.frame.columns) + 1}" style="text-align:left">'
                            f"{html.escape(sec)}</th></tr>")
            tds = "".join(f"<td>{html.escape(v)}</td>" for v in cells)
            rows.append(f'<tr><td style="text-align:left">{html.escape(lab)}</td>{tds}</tr>')
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.notes)
        return f"<table><tr><th></th>{cols}</tr>{''.join(rows)}</table>{notes}"

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.frame.to_string() + "".join(f"\n{n}" for n in self.notes)

    def to_markdown(self) -> str:
        """A pipe table: ``|`` in a label or cell is escaped, each block opens with its heading."""
        def esc(v) -> str:
            return str(v).replace("\\", "\\\\").replace("|", "\\|")

        n = len(self.frame.columns)
        lines = ["| | " + " | ".join(esc(c) for c in self.frame.columns) + " |", "|---|" + "---|" * n]
        for sec, lab, cells in self._rows():
            if sec is not None:
                lines.append(f"| **{esc(sec)}** |" + " |" * n)
            lines.append("| " + " | ".join([esc(lab), *(esc(v) for v in cells)]) + " |")
        return "\n".join([*lines, "", *self.notes] if self.notes else lines)

    def to_latex(self) -> str:
        def esc(s: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                         ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}"),
                         ("|", r"\textbar{}"), ("<", r"\textless{}"), (">", r"\textgreater{}")):
                s = s.replace(a, b)
            return s.replace(r"\textbackslash\{\}", r"\textbackslash{}")

        ncol = len(self.frame.columns)
        lines = [r"\begin{tabular}{l" + "r" * ncol + "}", r"\toprule",
                 " & " + " & ".join(esc(str(c)) for c in self.frame.columns) + r" \\", r"\midrule"]
        first = True
        for sec, lab, cells in self._rows():
            if sec is not None:
                if not first:
                    lines.append(r"\midrule")
                lines.append(r"\multicolumn{" + str(ncol + 1) + r"}{l}{\textit{" + esc(sec) + r"}} \\")
                first = False
            lines.append(esc(lab) + " & " + " & ".join(esc(v) for v in cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [r"\par\footnotesize " + esc(n) for n in self.notes]
        return "\n".join(lines)

    def to_docx(self, path: str | Path) -> Path:
        """Write a Word document with the table (needs python-docx: ``pip install glmm_nb[docx]``)."""
        try:
            import docx
        except ImportError:
            raise GLMMError("to_docx needs python-docx: pip install 'glmm_nb[docx]'") from None
        path = Path(path)
        if not path.parent.is_dir():
            raise GLMMError(f"cannot write {path}: the folder {path.parent} does not exist")
        rows = list(self._rows())
        n_rows = 1 + len(rows) + sum(sec is not None for sec, _, _ in rows)
        doc = docx.Document()
        t = doc.add_table(rows=n_rows, cols=len(self.frame.columns) + 1)
        for j, c in enumerate(self.frame.columns):
            t.cell(0, j + 1).text = str(c)
        i = 1
        for sec, lab, cells in rows:
            if sec is not None:
                head = t.cell(i, 0).merge(t.cell(i, len(self.frame.columns)))
                head.text = sec
                head.paragraphs[0].runs[0].italic = True
                i += 1
            t.cell(i, 0).text = lab
            for j, v in enumerate(cells):
                t.cell(i, j + 1).text = v
            i += 1
        for n in self.notes:
            doc.add_paragraph(n)
        doc.save(str(path))
        return path


def table(models, labels=None, show: str = "ci", digits: int = 3, stars: bool = False,
          conf_level: float = 0.95) -> ModelTable:
    """Fitted models side by side (see the module docstring).

    Parameters
    ----------
    models : list of fitted models (or one)
    labels : list of str, optional
        Column headers (default "(1)", "(2)", …).
    show : {"ci", "se", "p"}
        What goes beside each estimate.
    digits : int
        Significant digits of the smallest number of each model's block; the other numbers of
        the block get as many decimals, so that no number loses significant digits and the
        decimals of a block line up.
    stars : bool
        Add ``*``/``**``/``***`` at p < 0.05 / 0.01 / 0.001.
    conf_level : float
        Level of the Wald intervals (``show="ci"``), in (0, 1).
    """
    if isinstance(models, GLMMResult):
        models = [models]
    models = list(models)
    if not models or not all(isinstance(m, GLMMResult) for m in models):
        raise ModelError("table() takes fitted models (the results of glmm_nb.glmm)")
    if show not in ("ci", "se", "p"):
        raise ModelError(f"show must be 'ci', 'se' or 'p', not {show!r}")
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or not 1 <= digits <= 15:
        raise ModelError(f"digits must be a whole number from 1 to 15, not {digits!r}")
    if isinstance(conf_level, bool) or not isinstance(conf_level, (int, float)) or not 0 < conf_level < 1:
        raise ModelError(f"conf_level must be a number between 0 and 1, not {conf_level!r}")
    labels = list(labels) if labels is not None else [f"({k + 1})" for k in range(len(models))]
    if len(labels) != len(models):
        raise ModelError(f"{len(labels)} labels for {len(models)} models")
    if len(set(labels)) != len(labels):
        raise ModelError("labels must be distinct")
    cells: dict[tuple[str, str], dict[str, str]] = {}
    notes_disp: dict[str, str] = {}
    for m, lab in zip(models, labels):
        for section, rows in _model_blocks(m, show, digits, stars, conf_level).items():
            for row, value in rows.items():
                cells.setdefault((section, row), {})[lab] = value
        fam = m.request.family
        if len(m.dispersion) and getattr(fam, "dispersion_meaning", ""):
            for name in m.dispersion.index:
                notes_disp.setdefault(f"{name}: {fam.dispersion_meaning}", "")
    keys = sorted(cells, key=lambda k: ORDER.index(k[0]))  # stable: first appearance within a block
    index = [_KEY_PREFIX.get(sec, "") + row for sec, row in keys]
    frame = pd.DataFrame([[cells[k].get(lab, "") for lab in labels] for k in keys], index=index, columns=labels)
    sections = pd.Series([k[0] for k in keys], index=frame.index)
    row_labels = pd.Series([k[1] for k in keys], index=frame.index)
    what = {"ci": f"estimate [{_ci_label(conf_level)}]", "se": "estimate (standard error)",
            "p": "estimate (p)"}[show]
    notes = [f"Cells: {what}."]
    if stars:
        notes.append("* p < 0.05, ** p < 0.01, *** p < 0.001.")
    notes += [f"Dispersion {k}." for k in notes_disp]
    if any(len(m.thresholds) for m in models):
        notes.append("Thresholds: logit P(Y <= k) = threshold_k - eta (ordinal::clmm's parametrisation); the "
                     "fixed effects have no intercept.")
    return ModelTable(frame, sections, tuple(notes), row_labels)
