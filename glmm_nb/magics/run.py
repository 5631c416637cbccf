"""Execute a parsed ``%%glmm`` request against a namespace (no IPython here)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from ..api import glmm, with_data_source
from ..cells import check_disp_options
from ..design import check_output_path, to_pandas
from ..design.levels import ordered_column
from ..errors import DataError, ModelError
from .args import MagicArgs

__all__ = ["MagicOutput", "run_magic"]


@dataclass(frozen=True)
class MagicOutput:
    """What a %%glmm cell displays: the summary, and the report (link + embedded)."""

    result: object
    report_path: Path | None
    report: object | None
    embed: bool = False

    def __repr__(self) -> str:
        txt = self.result.summary()
        if self.report_path is not None:
            txt += f"\n\nReport written to {self.report_path}"
        return txt

    def _repr_html_(self) -> str:
        """The summary and a link to the saved report; the report inline only with --embed
        (a report is ~1 MB: embedded in every run it would bloat the notebook)."""
        out = self.result._repr_html_()
        if self.report_path is not None:
            out += (f'<p>Report: <a href="{html.escape(str(self.report_path))}" target="_blank">'
                    f"{html.escape(str(self.report_path))}</a> (open it in the browser; --embed shows it here)</p>")
            if self.embed:
                out += self.report.embed()._repr_html_()
        return out


def run_magic(args: MagicArgs, formula: str, namespace: dict, defaults: dict) -> MagicOutput:
    """Fit, store under ``args.name``, write the report; raise GLMMError for analyst mistakes."""
    if not formula:
        raise ModelError("no formula: write it in the cell body (%%glmm) or after the options (%glmm)")
    data_name = args.data or defaults.get("data")
    if not data_name:
        raise DataError("no data: give --data NAME (a pandas DataFrame in the notebook)")
    if data_name not in namespace:
        raise DataError(f"unknown data frame '{data_name}': no such variable in the notebook")
    data = to_pandas(namespace[data_name], what=f"--data {data_name}")  # polars / Arrow tables too
    if args.ordered:
        data = data.copy()  # the notebook's frame is not changed
        for spec in args.ordered:
            col, _, order = spec.partition("=")
            if col not in data.columns:
                raise DataError(f"--ordered names the column '{col}', which is not in {data_name}")
            data[col] = ordered_column(data[col], order, col, what=f"--ordered {spec}")
    if args.hurdle and args.ziformula is None:
        raise ModelError("--hurdle needs --ziformula (the model of zero vs positive, e.g. --ziformula '~ 1')")
    if args.report:
        check_output_path(args.report, what="--report")  # before the fit, not after it
    reml = defaults.get("reml", True) if args.reml is None else args.reml
    family = args.family or defaults.get("family", "binomial")
    check_disp_options(family, args.dispformula, reml)
    method = args.method or defaults.get("method", "laplace")
    nagq = args.nagq if args.nagq is not None else defaults.get("nagq", 1)
    if method == "agq" and nagq == 1 and args.nagq is None:
        nagq = 10
    m = glmm(formula, data, family=family, link=args.link or defaults.get("link") or None, method=method, nagq=nagq,
             reml=reml, weights=args.weights, offset=args.offset, ziformula=args.ziformula, hurdle=args.hurdle,
             dispformula=args.dispformula)
    m = with_data_source(m, data_name)  # the report's Reproduce section: data = <this variable>
    if args.name:
        namespace[args.name] = m
    report = path = None
    if args.report:
        report = m.report(focus=args.marginal)
        path = report.save(args.report)
    return MagicOutput(m, path, report, embed=args.embed)
