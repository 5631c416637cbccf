"""Several fitted models side by side, as a table for a paper (R's modelsummary / tab_model).

``glmm_nb.table([m1, m2], labels=["A", "B"])`` lines up the fixed effects (estimate with its
95 % CI or SE beneath), the variance components (SDs), dispersion and zero parts, then the
number of observations and groups, AIC, BIC and the log-likelihood. Numbers are written by the
package's one formatter (:func:`glmm_nb.results.display.format_number`); the table renders as
HTML (notebooks), LaTeX (booktabs), Markdown and Word (``to_docx``, with python-docx).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import GLMMError, ModelError
from .results import GLMMResult
from .results.display import format_number, format_p

__all__ = ["ModelTable", "table"]


def _cell(est, lo, hi, se, p, show: str, digits: int, stars: bool) -> str:
    s = format_number(est, digits)
    if stars and p is not None and np.isfinite(p):
        s += "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
    if show == "ci":
        return f"{s} [{format_number(lo, digits)}, {format_number(hi, digits)}]"
    if show == "se":
        return f"{s} ({format_number(se, digits)})"
    return f"{s} (p {format_p(p)})"


@dataclass(frozen=True)
class ModelTable:
    """The side-by-side table: ``frame`` holds the cells as text (empty where a model lacks a
    row); ``sections`` maps each row to its block (fixed, random, ...)."""

    frame: pd.DataFrame
    sections: pd.Series
    notes: tuple[str, ...]

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def to_html(self) -> str:
        cols = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.frame.columns)
        rows, prev = [], None
        for (name, row), sec in zip(self.frame.iterrows(), self.sections):
            if sec != prev:
                rows.append(f'<tr><th colspan="{len(self.frame.columns) + 1}" style="text-align:left">'
                            f"{html.escape(sec)}</th></tr>")
                prev = sec
            cells = "".join(f"<td>{html.escape(v)}</td>" for v in row)
            rows.append(f'<tr><td style="text-align:left">{html.escape(str(name))}</td>{cells}</tr>')
        notes = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in self.notes)
        return f"<table><tr><th></th>{cols}</tr>{''.join(rows)}</table>{notes}"

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return self.frame.to_string() + "".join(f"\n{n}" for n in self.notes)

    def to_markdown(self) -> str:
        head = "| | " + " | ".join(map(str, self.frame.columns)) + " |"
        sep = "|---|" + "---|" * len(self.frame.columns)
        body = ["| " + " | ".join([str(name), *row]) + " |" for name, row in self.frame.iterrows()]
        return "\n".join([head, sep, *body, *("", *self.notes)] if self.notes else [head, sep, *body])

    def to_latex(self) -> str:
        def esc(s: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                         ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
                s = s.replace(a, b)
            return s

        ncol = len(self.frame.columns)
        lines = [r"\begin{tabular}{l" + "r" * ncol + "}", r"\toprule",
                 " & " + " & ".join(esc(str(c)) for c in self.frame.columns) + r" \\", r"\midrule"]
        prev = None
        for (name, row), sec in zip(self.frame.iterrows(), self.sections):
            if sec != prev and prev is not None:
                lines.append(r"\midrule")
            prev = sec
            lines.append(esc(str(name)) + " & " + " & ".join(esc(v) for v in row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
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
        doc = docx.Document()
        t = doc.add_table(rows=len(self.frame) + 1, cols=len(self.frame.columns) + 1)
        for j, c in enumerate(self.frame.columns):
            t.cell(0, j + 1).text = str(c)
        for i, (name, row) in enumerate(self.frame.iterrows()):
            t.cell(i + 1, 0).text = str(name)
            for j, v in enumerate(row):
                t.cell(i + 1, j + 1).text = v
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
        Significant digits.
    stars : bool
        Add ``*``/``**``/``***`` at p < 0.05 / 0.01 / 0.001.
    """
    if isinstance(models, GLMMResult):
        models = [models]
    models = list(models)
    if not models or not all(isinstance(m, GLMMResult) for m in models):
        raise ModelError("table() takes fitted models (the results of glmm_nb.glmm)")
    if show not in ("ci", "se", "p"):
        raise ModelError(f"show must be 'ci', 'se' or 'p', not {show!r}")
    labels = list(labels) if labels is not None else [f"({k + 1})" for k in range(len(models))]
    if len(labels) != len(models):
        raise ModelError(f"{len(labels)} labels for {len(models)} models")
    if len(set(labels)) != len(labels):
        raise ModelError("labels must be distinct")
    cells: dict[tuple[str, str], dict[str, str]] = {}

    def put(section, row, label, value):
        cells.setdefault((section, row), {})[label] = value

    for m, lab in zip(models, labels):
        ct = m.coef_table(conf_level=conf_level)
        for term, r in ct.iterrows():
            put("Fixed effects", term, lab, _cell(r.estimate, r.conf_low, r.conf_high, r.std_error, r.p_value, show,
                                                  digits, stars))
        for part in (["zi"] if len(m.zi_fixef) else []):
            zt = m.coef_table(conf_level=conf_level, part="zi")
            for term, r in zt.iterrows():
                put("Zero part (log-odds)", term, lab, _cell(r.estimate, r.conf_low, r.conf_high, r.std_error,
                                                             r.p_value, show, digits, stars))
        if len(m.disp_fixef):
            for term, r in m.coef_table(conf_level=conf_level, part="disp").iterrows():
                put("Dispersion model", term, lab, _cell(r.estimate, r.conf_low, r.conf_high, r.std_error,
                                                         r.p_value, show, digits, stars))
        for r in m.varcorr().itertuples():
            if r.var2 is None or r.var2 != r.var2:
                name = "SD (residual)" if r.grp == "Residual" else f"SD ({r.var1} | {r.grp})"
            else:
                name = f"Cor ({r.var1}, {r.var2} | {r.grp})"
            put("Random effects", name, lab, format_number(r.sdcor, digits))
        for name, value in m.dispersion.items():
            put("Random effects", f"Dispersion ({name})", lab, format_number(value, digits))
        put("Model", "N", lab, str(m.nobs))
        for g, n in m.ngroups.items():
            put("Model", f"Groups ({g})", lab, str(n))
        put("Model", "Family", lab, f"{m.family} ({m.link})")
        put("Model", "AIC", lab, format_number(m.aic, 6))
        put("Model", "BIC", lab, format_number(m.bic, 6))
        put("Model", "Log-likelihood", lab, format_number(m.loglik, 6))
    order = ["Fixed effects", "Zero part (log-odds)", "Dispersion model", "Random effects", "Model"]
    keys = sorted(cells, key=lambda k: order.index(k[0]))  # stable: first appearance within a block
    frame = pd.DataFrame([[cells[k].get(lab, "") for lab in labels] for k in keys],
                         index=[k[1] for k in keys], columns=labels)
    sections = pd.Series([k[0] for k in keys], index=frame.index)
    what = {"ci": f"estimate [{int(conf_level * 100)} % CI]", "se": "estimate (standard error)", "p": "estimate (p)"}[show]
    notes = [f"Cells: {what}."]
    if stars:
        notes.append("* p < 0.05, ** p < 0.01, *** p < 0.001.")
    return ModelTable(frame, sections, tuple(notes))
