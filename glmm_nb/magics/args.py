"""Argument parsing for ``%%glmm`` / ``%glmm``, kept apart from execution and from IPython.

Line grammar: options first (``--data df --family binomial --nagq 10 --reml``), then for the
cell magic an optional variable name, for the line magic the formula (everything from the
first word that is not an option). Quoted option values use shell quoting.

Cell body: ``#`` starts a comment outside backticks and quotes (``(1 | `site #`)`` is a
name); ``{name}`` — a plain name in braces — is replaced by the notebook variable of that
name when it holds a string or a number; any other braces (``{x + 1}``, formulaic's Python
expressions) are left to formulaic, never evaluated against the notebook.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass

from ..families import family_names

__all__ = ["MagicArgs", "ArgError", "parse_line", "clean_body", "expand_names", "help_text", "parser"]


class ArgError(Exception):
    """A malformed magic line (reported in one line)."""


@dataclass(frozen=True)
class MagicArgs:
    name: str | None
    formula: str | None
    data: str | None
    family: str | None
    link: str | None
    method: str | None
    nagq: int | None
    reml: bool | None
    weights: str | None
    offset: str | None
    report: str | None
    quiet: bool
    marginal: str | None
    embed: bool = False
    ziformula: str | None = None
    hurdle: bool = False
    ordered: tuple[str, ...] = ()
    dispformula: str | None = None


_VALUED = {"--data", "--family", "--link", "--method", "--nagq", "--weights", "--offset", "--report", "--marginal",
           "--focus", "--ziformula", "--ordered", "--dispformula"}
_FLAGS = {"--reml", "--ml", "--quiet", "--embed", "--hurdle"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # no SystemExit, no usage dump
        raise ArgError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%glmm", add_help=False, description=(
        "Fit a GLMM with lme4 syntax. Cell magic: '%%glmm [NAME] [options]' with the formula in the body "
        "(blank lines and # comments allowed; {var} expands from the namespace). Line magic: "
        "'%glmm [options] FORMULA' returns the result. Defaults come from %config GlmmMagic.*"))
    p.add_argument("name", nargs="?", help="variable to store the result in (cell magic)")
    p.add_argument("--data", help="name of the pandas DataFrame in the namespace")
    p.add_argument("--family", help=", ".join(family_names()))
    p.add_argument("--link", help="logit, probit, cloglog (binomial, ordinal), log or identity")
    p.add_argument("--method", help="laplace or agq")
    p.add_argument("--nagq", type=int, help="quadrature nodes per random-effect dimension")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--reml", dest="reml", action="store_const", const=True, help="REML (gaussian; default)")
    g.add_argument("--ml", dest="reml", action="store_const", const=False, help="maximum likelihood (gaussian)")
    p.add_argument("--weights", help="column of prior weights")
    p.add_argument("--offset", help="column holding an offset")
    p.add_argument("--ziformula", metavar="FORMULA",
                   help="zero part of a count model, quoted when it holds spaces: --ziformula '~ x'")
    p.add_argument("--hurdle", action="store_true", help="with --ziformula: a hurdle model (zero vs positive)")
    p.add_argument("--dispformula", metavar="FORMULA",
                   help="log-linear model of the dispersion (gaussian sigma with --ml, NB theta, phi, t sigma …), "
                        "quoted when it holds spaces: --dispformula '~ h'")
    p.add_argument("--ordered", action="append", default=[], metavar="COL=a,b,c",
                   help="make a column ordered categories, low to high as given (labels need the order; numbers "
                        "may omit it)")
    p.add_argument("--report", metavar="PATH", help="write the HTML report to PATH and show it")
    p.add_argument("--quiet", action="store_true", help="store the result, display nothing")
    p.add_argument("--embed", action="store_true", help="show the whole --report inline (default: a link to it)")
    p.add_argument("--focus", "--marginal", dest="marginal", metavar="VAR",
                   help="covariate of the report's effect curves (default: the treatment, else the first continuous one)")
    return p


def help_text() -> str:
    return parser().format_help()


def _tokens(line: str) -> list[tuple[str, int]]:
    """Whitespace-separated words of ``line`` with their start, a quoted stretch ('~ x') kept
    inside its word."""
    out, start, quote = [], None, None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch.isspace():
            if start is not None:
                out.append((line[start:i], start))
                start = None
            continue
        elif ch in "'\"`":
            quote = ch
        if start is None:
            start = i
    if start is not None:  # an unterminated quote: the formula parser names it
        out.append((line[start:], start))
    return out


def parse_line(line: str, cell: bool) -> MagicArgs:
    """Split the magic line into options and (line magic) the formula."""
    words = _tokens(line)
    tokens = [t for t, _ in words]
    i = 0
    opts: list[str] = []
    lead_name = None
    # a leading variable name: always for the cell magic; for the line magic when options follow
    # it (``%glmm m2 --data df y ~ x + (1 | g)``) — one grammar for both
    leads = tokens and not tokens[0].startswith("--") and (cell or (len(tokens) > 1 and tokens[1].startswith("--")))
    if leads:
        lead_name = tokens[0]
        if not lead_name.isidentifier():
            raise ArgError(f"'{lead_name}' is not a valid variable name for the result")
        i = 1
    while i < len(tokens):
        tok = tokens[i]
        key = tok.split("=", 1)[0]
        if key in _VALUED:
            opts.append(tok)
            if "=" not in tok:
                if i + 1 >= len(tokens):
                    raise ArgError(f"option {tok} needs a value")
                opts.append(tokens[i + 1])
                i += 1
            i += 1
        elif tok in _FLAGS:
            opts.append(tok)
            i += 1
        elif tok.startswith("--"):
            raise ArgError(f"unknown option {tok}; see %%glmm?")
        else:
            break
    rest = line[words[i][1]:].strip() if i < len(words) else ""
    name = formula = None
    if cell:
        if rest and lead_name:
            raise ArgError(f"'{rest}': the cell magic takes one variable name; put the formula in the cell body")
        if rest:
            parts = rest.split()
            if len(parts) > 1 or not parts[0].isidentifier():
                raise ArgError(f"'{rest}': the cell magic takes one variable name before or after the options; "
                               "put the formula in the cell body")
            name = parts[0]
    else:
        formula = rest or None
    try:
        ns = parser().parse_args(shlex.split(" ".join(opts)))
    except ValueError as exc:
        raise ArgError(str(exc)) from None
    if ns.ziformula is not None and ns.ziformula.strip() == "~":
        raise ArgError("--ziformula '~': quote a zero-part formula that holds spaces, e.g. --ziformula '~ x'")
    if ns.dispformula is not None and ns.dispformula.strip() == "~":
        raise ArgError("--dispformula '~': quote a dispersion formula that holds spaces, e.g. --dispformula '~ h'")
    return MagicArgs(name=lead_name or name or ns.name, formula=formula, data=ns.data, family=ns.family, link=ns.link,
                     method=ns.method, nagq=ns.nagq, reml=ns.reml, weights=ns.weights, offset=ns.offset,
                     report=ns.report, quiet=ns.quiet, marginal=ns.marginal, embed=ns.embed,
                     ziformula=ns.ziformula, hurdle=ns.hurdle, ordered=tuple(ns.ordered), dispformula=ns.dispformula)


def _strip_comment(line: str) -> str:
    """``line`` up to a ``#`` that is outside backticks and quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "`'\"":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def clean_body(body: str) -> str:
    """The formula of a cell body: '#' comments and blank lines removed, lines joined."""
    lines = []
    for raw in body.splitlines():
        line = _strip_comment(raw).strip()
        if line:
            lines.append(line)
    text = " ".join(lines)
    if text.count("~") > 1:
        raise ArgError("the cell holds more than one formula; one %%glmm cell fits one model")
    return text


_BRACED_NAME = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def expand_names(text: str, namespace: dict) -> str:
    """Replace ``{name}`` by the notebook variable ``name`` when it is a string or a number;
    leave every other pair of braces (formulaic's ``{python expression}``) as written."""
    def sub(m):
        value = namespace.get(m.group(1), None)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        return m.group(0)

    return _BRACED_NAME.sub(sub, text)
