"""The ``glmm-nb`` command: ``glmm-nb demo`` and ``glmm-nb fit DATA.csv "FORMULA"``.

Every analyst mistake ends in one line ``glmm-nb: …`` on stderr and exit status 2: a missing,
empty, binary or wrongly-encoded data file, a folder given as data, an output path in a missing
or unwritable folder (checked before the fit), and every glmm_nb error. Column names and values
from the CSV are data, never evaluated as code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main", "read_data", "exact_json"]


def sniff_separator(head: bytes, encoding: str) -> str:
    """The CSV delimiter of a file's first lines: comma, semicolon, tab or pipe (csv.Sniffer)."""
    import csv

    try:
        text = head.decode(encoding, errors="ignore")
    except LookupError:  # an unknown encoding: read_csv says so in one line
        return ","
    try:
        return csv.Sniffer().sniff(text[: text.rfind("\n") + 1] or text, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def read_data(path: str, encoding: str = "utf-8", sep: str | None = None):
    """A CSV file as a DataFrame (delimiter ``sep`` or sniffed); unreadable input is a
    DataError in one line."""
    import pandas as pd

    from .errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"no such data file: {p}")
    if p.is_dir():
        raise DataError(f"{p} is a folder, not a CSV file")
    try:
        head = p.open("rb").read(8192)
    except OSError as exc:
        raise DataError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not head.strip():
        raise DataError(f"{p} is empty")
    if b"\x00" in head:
        raise DataError(f"{p} is not a text (CSV) file")
    sep = sniff_separator(head, encoding) if sep is None else sep
    try:
        df = pd.read_csv(p, encoding=encoding, sep=sep)
        df.attrs["sep"] = sep
        return df
    except UnicodeDecodeError as exc:
        raw = p.read_bytes()
        try:
            raw.decode(encoding)
            where, byte = "", exc.object[exc.start]
        except UnicodeDecodeError as full:
            line = raw.count(b"\n", 0, full.start) + 1
            where, byte = f" on line {line}", raw[full.start]
        raise DataError(
            f"{p} is not {exc.encoding} text (byte 0x{byte:02x}{where}); give its encoding, e.g. --encoding latin-1"
        ) from None
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {p} as CSV: {first}") from None


def _demo(args) -> int:
    from . import datasets
    from .api import glmm
    from .design import check_output_path

    df = datasets.load("hospitals")
    m = glmm("recovered ~ treat + age + (1 | hospital)", df, family="binomial")
    print(m.summary())
    if not args.output:
        print("\n(give -o DIR to execute the quick-start notebook there and write its report)")
        return 0
    check_output_path(args.output, kind="folder", what="-o")
    from .demo import run_demo

    nb_path, report = run_demo(args.output)
    print(f"\nexecuted notebook: {nb_path}\nreport: {report}")
    return 0


def _fit(args) -> int:
    import pandas as pd

    from .api import glmm, with_data_source
    from .cells import check_disp_options
    from .design import check_output_path
    from .design.levels import ordered_column
    from .errors import DataError

    path = Path(args.data)
    if args.output:
        check_output_path(args.output, what="-o")
    df = read_data(args.data, args.encoding, args.sep)
    for col in args.factor or []:
        if col not in df.columns:
            raise DataError(f"--factor names the column '{col}', which is not in {path.name}")
        df[col] = pd.Categorical(df[col].astype(str))
    for spec in args.ordered or []:
        col, _, order = spec.partition("=")
        if col not in df.columns:
            raise DataError(f"--ordered names the column '{col}', which is not in {path.name}")
        df[col] = ordered_column(df[col], order, col, what=f"--ordered {spec}")
    for opt, col in (("--weights", args.weights), ("--offset", args.offset)):
        if col is not None and col not in df.columns:
            raise DataError(f"{opt} names the column '{col}', which is not in {path.name}")
    if args.hurdle and args.ziformula is None:
        raise DataError("--hurdle needs --ziformula (the model of zero vs positive, e.g. --ziformula '~ 1')")
    check_disp_options(args.family, args.dispformula, not args.ml)
    m = glmm(
        args.formula, df, family=args.family, link=args.link, method=args.method, nagq=args.nagq,
        reml=not args.ml, weights=args.weights, offset=args.offset, ziformula=args.ziformula, hurdle=args.hurdle,
        dispformula=args.dispformula,
    )
    m = with_data_source(m, str(path), df.attrs.get("sep"))  # the report's Reproduce section reads this CSV
    if args.format == "text":
        print(m.summary())
    elif args.format == "csv":
        print(m.tidy(conf_int=True).to_csv(index=False), end="")
    else:
        print(exact_json(m.tidy(conf_int=True)))
    if args.output:
        path = m.report().save(args.output)
        print(f"report: {path}", file=sys.stderr if args.format != "text" else sys.stdout)
    return 0


def exact_json(frame) -> str:
    """A table as JSON records with every number exact (shortest round-trip repr, as Python's
    float repr: no rounding to 10 decimals) and NaN / missing as null."""
    import json
    import math

    import pandas as pd

    def clean(v):
        if v is None or v is pd.NA or v is pd.NaT:
            return None
        if hasattr(v, "item"):  # numpy scalars
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    records = [{str(k): clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return json.dumps(records, indent=1, allow_nan=False, ensure_ascii=False)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("glmm_nb")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if list(argv) == ["--version"]:  # answered before the numeric stack loads
        print(f"glmm-nb {_version()}")
        return 0
    from .families import family_names

    __version__ = _version()

    parser = argparse.ArgumentParser(
        prog="glmm-nb", description="Maximum-likelihood mixed models with lme4 formulas.",
        epilog='example: glmm-nb fit cbpp.csv "cbind(incidence, size - incidence) ~ period + (1 | herd)" '
               "--factor period -o report.html")
    parser.add_argument("--version", action="version", version=f"glmm-nb {__version__}")
    sub = parser.add_subparsers(dest="cmd", metavar="{demo,fit}")
    d = sub.add_parser("demo", help="fit the quick-start model; with -o DIR run the quick-start notebook there")
    d.add_argument("-o", "--output", help="folder for the executed notebook and its report")
    f = sub.add_parser("fit", help="fit a model to a CSV file")
    f.add_argument("data", help="the CSV file (delimiter sniffed; see --sep)")
    f.add_argument("formula", help='lme4 formula in quotes, e.g. "y ~ x + (1 | g)"')
    f.add_argument("--family", default="binomial", help=f"one of {', '.join(family_names())} (default binomial)")
    f.add_argument("--link", default=None, help="link function (default: the family's canonical one)")
    f.add_argument("--method", default="laplace", choices=("laplace", "agq"),
                   help="Laplace approximation or adaptive Gauss-Hermite quadrature")
    f.add_argument("--nagq", type=int, default=1, help="quadrature nodes per dimension with --method agq")
    f.add_argument("--ml", action="store_true", help="ML instead of REML for gaussian models")
    f.add_argument("--factor", action="append", help="treat a column as categorical")
    f.add_argument("--ordered", action="append", metavar="COL[=a,b,c]",
                   help="treat a column as ordered categories (the response of --family ordinal), low to high in the "
                        "order given; without an order only for numbers (labels must be given their order)")
    f.add_argument("--weights", default=None, metavar="COL", help="column of prior weights")
    f.add_argument("--offset", default=None, metavar="COL", help="column holding an offset (or write offset(log(t)) "
                   "in the formula)")
    f.add_argument("--ziformula", default=None, metavar="FORMULA",
                   help="zero part of a count model, e.g. '~ 1' (zero-inflation; with --hurdle: a hurdle model)")
    f.add_argument("--hurdle", action="store_true", help="with --ziformula: a hurdle model (zero vs positive)")
    f.add_argument("--dispformula", default=None, metavar="FORMULA",
                   help="log-linear model of the dispersion, e.g. '~ h' (gaussian sigma with --ml, NB theta, "
                        "Gamma/beta/beta-binomial/Tweedie phi, t sigma)")
    f.add_argument("-o", "--output", help="write the HTML report to this file")
    f.add_argument("--encoding", default="utf-8", help="text encoding of the CSV file (default utf-8)")
    f.add_argument("--sep", default=None, help="field delimiter of the CSV file (default: sniffed from the file)")
    f.add_argument("--format", default="text", choices=("text", "json", "csv"),
                   help="output: the text summary, or the tidy coefficient table as JSON or CSV")
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help()
        return 0
    from .errors import GLMMError

    try:
        return _demo(args) if args.cmd == "demo" else _fit(args)
    except BrokenPipeError:  # piped into head: end quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except GLMMError as exc:
        print(f"glmm-nb: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # writing the report or the notebook failed after all
        print(f"glmm-nb: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
