"""The ``glmm-nb`` command: ``glmm-nb demo`` and ``glmm-nb fit DATA.csv "FORMULA"``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _demo(args) -> int:
    import glmm_nb

    df = glmm_nb.datasets.load("cbpp")
    m = glmm_nb.glmm(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial"
    )
    text = m.summary()
    print(text)
    print(f"\nfitted in {m.opt.time:.3f} s ({m.opt.evaluations} deviance evaluations)")
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "cbpp_summary.txt").write_text(text + "\n")
        print(f"wrote {out / 'cbpp_summary.txt'}")
    return 0


def _fit(args) -> int:
    import pandas as pd

    import glmm_nb

    path = Path(args.data)
    if not path.exists():
        raise glmm_nb.DataError(f"no such data file: {path}")
    df = pd.read_csv(path)
    for col in args.factor or []:
        if col not in df.columns:
            raise glmm_nb.DataError(f"--factor names the column '{col}', which is not in {path.name}")
        df[col] = pd.Categorical(df[col].astype(str))
    m = glmm_nb.glmm(
        args.formula, df, family=args.family, link=args.link, method=args.method, nagq=args.nagq,
        reml=not args.ml,
    )
    print(m.summary())
    if args.output:
        Path(args.output).write_text(m.summary() + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="glmm-nb", description="GLMMs with lme4 formulas")
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="fit the cbpp example and print its summary")
    d.add_argument("-o", "--output", help="folder to write the summary into")
    f = sub.add_parser("fit", help="fit a model to a CSV file")
    f.add_argument("data")
    f.add_argument("formula")
    f.add_argument("--family", default="binomial")
    f.add_argument("--link", default=None)
    f.add_argument("--method", default="laplace")
    f.add_argument("--nagq", type=int, default=1)
    f.add_argument("--ml", action="store_true", help="ML instead of REML for gaussian models")
    f.add_argument("--factor", action="append", help="treat a column as categorical")
    f.add_argument("-o", "--output", help="file to write the summary to")
    args = parser.parse_args(argv)
    from .errors import GLMMError

    try:
        return _demo(args) if args.cmd == "demo" else _fit(args)
    except GLMMError as exc:
        print(f"glmm-nb: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
