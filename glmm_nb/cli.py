"""The ``glmm-nb`` command: ``glmm-nb demo`` and ``glmm-nb fit DATA.csv "FORMULA"``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _demo(args) -> int:
    from . import datasets
    from .api import glmm

    df = datasets.load("hospitals")
    m = glmm("recovered ~ treat + age + (1 | hospital)", df, family="binomial")
    print(m.summary())
    if not args.output:
        print("\n(give -o DIR to execute the quick-start notebook there and write its report)")
        return 0
    from .demo import run_demo

    nb_path, report = run_demo(args.output)
    print(f"\nexecuted notebook: {nb_path}\nreport: {report}")
    return 0


def _fit(args) -> int:
    import pandas as pd

    from .api import glmm
    from .errors import DataError

    path = Path(args.data)
    if not path.exists():
        raise DataError(f"no such data file: {path}")
    df = pd.read_csv(path)
    for col in args.factor or []:
        if col not in df.columns:
            raise DataError(f"--factor names the column '{col}', which is not in {path.name}")
        df[col] = pd.Categorical(df[col].astype(str))
    for spec in args.ordered or []:
        col, _, order = spec.partition("=")
        if col not in df.columns:
            raise DataError(f"--ordered names the column '{col}', which is not in {path.name}")
        df[col] = ordered_column(df[col], order, col)
    m = glmm(
        args.formula, df, family=args.family, link=args.link, method=args.method, nagq=args.nagq,
        reml=not args.ml,
    )
    print(m.summary())
    if args.output:
        path = m.report().save(args.output)
        print(f"report: {path}")
    return 0


def ordered_column(col, order: str, name: str):
    """A column as an ordered Categorical: categories in the order ``"a,b,c"``, or sorted
    (numerically when the values are numbers)."""
    import pandas as pd

    from .errors import DataError

    values = col.dropna()
    if order:
        levels = [v.strip() for v in order.split(",")]
        if pd.api.types.is_numeric_dtype(col):  # 1.0 in the file is "1" in the order
            text = col.map(lambda v: v if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
        else:
            text = col.astype(str).where(col.notna())
        unknown = sorted(set(text.dropna()) - set(levels))
        if unknown:
            raise DataError(f"--ordered {name}=...: the values {', '.join(unknown)} are not in the order given")
        return pd.Categorical(text, categories=levels, ordered=True)
    if pd.api.types.is_numeric_dtype(col):
        return pd.Categorical(col, categories=sorted(values.unique()), ordered=True)
    return pd.Categorical(col.astype(str).where(col.notna()), categories=sorted(values.astype(str).unique()),
                          ordered=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glmm-nb", description="GLMMs with lme4 formulas")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="fit the quick-start model; with -o DIR run the quick-start notebook there")
    d.add_argument("-o", "--output", help="folder for the executed notebook and its report")
    f = sub.add_parser("fit", help="fit a model to a CSV file")
    f.add_argument("data")
    f.add_argument("formula")
    f.add_argument("--family", default="binomial")
    f.add_argument("--link", default=None)
    f.add_argument("--method", default="laplace")
    f.add_argument("--nagq", type=int, default=1)
    f.add_argument("--ml", action="store_true", help="ML instead of REML for gaussian models")
    f.add_argument("--factor", action="append", help="treat a column as categorical")
    f.add_argument("--ordered", action="append", metavar="COL[=a,b,c]",
                   help="treat a column as ordered categories (the response of --family ordinal), in the order given "
                        "or sorted")
    f.add_argument("-o", "--output", help="write the HTML report to this file")
    args = parser.parse_args(argv)
    from .errors import GLMMError

    try:
        return _demo(args) if args.cmd == "demo" else _fit(args)
    except GLMMError as exc:
        print(f"glmm-nb: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
