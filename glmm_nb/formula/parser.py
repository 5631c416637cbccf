"""Parse lme4 model formulas.

formulaic has no ``(x | g)`` syntax, so this module splits a formula such as::

    cbind(incidence, size - incidence) ~ period + offset(log(t)) + (1 + x | herd) + (1 | a/b)

into its response, fixed part (left to formulaic), offsets and random-effect terms.

Grammar handled here (lme4's, see ``lme4::findbars`` / ``expandDoubleVerts``):

* ``(lhs | g)``: correlated random effects for the columns of ``lhs`` by levels of ``g``;
* ``(lhs || g)``: uncorrelated, expanded later to one term per model-matrix column;
* ``g`` may be ``a:b`` (interaction of grouping columns) or ``a/b`` (nesting), which expands to
  ``(lhs | a) + (lhs | a:b)``;
* ``diag(lhs | g)``, ``cs(...)``, ``ar1(...)``, ``toep(...)``, ``ou(...)``, ``exp(...)``,
  ``gau(...)``, ``mat(...)``: glmmTMB's covariance structures (``us(...)`` is the plain bar);
  the spatial ones take coordinates ``pos(x, y) + 0`` (glmmTMB's ``numFactor(x, y)`` reads the
  same) on the left of the bar;
* ``offset(expr)`` summands are taken out of the fixed part;
* the response may be ``cbind(successes, failures)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

__all__ = ["ParsedFormula", "RandomTerm", "STRUCTURE_NAMES", "parse_formula", "position_columns", "split_top_level"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect bar term after ``/`` expansion.

    Attributes
    ----------
    lhs : str
        The formula of the random-effect model matrix (``"1 + x"``, ``"0 + x"``).
    group : str
        The grouping expression as written (``"herd"``, ``"a:b"``).
    group_vars : tuple of str
        The grouping columns whose interaction defines the levels.
    correlated : bool
        False for ``||`` terms.
    structure : str
        The covariance structure: ``"us"`` (unstructured, lme4's) or one of glmmTMB's
        ``diag cs ar1 toep ou exp gau mat``.
    text : str
        The term as lme4 would print it, for messages.
    """

    lhs: str
    group: str
    group_vars: tuple[str, ...]
    correlated: bool = True
    structure: str = "us"

    @property
    def text(self) -> str:
        bar = "|" if self.correlated else "||"
        inner = f"{self.lhs} {bar} {self.group}"
        return f"{self.structure}({inner})" if self.structure != "us" else f"({inner})"


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into its pieces; every piece is a string formulaic can read."""

    text: str
    response: str | None
    cbind: tuple[str, str] | None
    fixed: str
    offsets: tuple[str, ...]
    random: tuple[RandomTerm, ...]


_OPEN = "([{"
_CLOSE = ")]}"


def _check_balance(text: str) -> None:
    stack: list[tuple[str, int]] = []
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
        elif ch in _OPEN:
            stack.append((ch, i))
        elif ch in _CLOSE:
            if not stack or _OPEN.index(stack[-1][0]) != _CLOSE.index(ch):
                raise FormulaError(
                    f"unbalanced parentheses: unexpected '{ch}' at position {i + 1} in "
                    f"'{text}'"
                )
            stack.pop()
    if quote:
        raise FormulaError(f"unterminated quote {quote} in '{text}'")
    if stack:
        ch, i = stack[-1]
        raise FormulaError(
            f"unbalanced parentheses: '{ch}' at position {i + 1} is never closed in '{text}'"
        )


def _depth_scan(text: str):
    """Yield (index, char, depth) for characters outside quotes."""
    depth = 0
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"`":
            quote = ch
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        yield i, ch, depth


def split_top_level(text: str, seps: str) -> list[tuple[str, str]]:
    """Split ``text`` at depth-0 occurrences of any character in ``seps``.

    Returns ``[(sep_before, piece), ...]``; the first piece has ``sep_before == ""``.
    """
    out: list[tuple[str, str]] = []
    start, sep = 0, ""
    for i, ch, depth in _depth_scan(text):
        if depth == 0 and ch in seps:
            out.append((sep, text[start:i]))
            start, sep = i + 1, ch
    out.append((sep, text[start:]))
    return out


def _strip_outer_parens(s: str) -> str | None:
    """Return the inside of ``s`` if the whole of ``s`` is one parenthesised group."""
    s = s.strip()
    if not (s.startswith("(") and s.endswith(")")):
        return None
    for i, _ch, depth in _depth_scan(s):
        if depth == 0 and i < len(s) - 1:
            return None
    return s[1:-1]


def _find_bar(inner: str) -> tuple[int, int] | None:
    """Position and width of the depth-0 ``|`` or ``||`` in a group's interior."""
    for i, ch, depth in _depth_scan(inner):
        if depth == 0 and ch == "|":
            width = 2 if inner[i + 1 : i + 2] == "|" else 1
            return i, width
    return None


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\((.*)\)\s*$", re.S)


def _call_args(s: str, name: str) -> list[str] | None:
    m = _CALL.match(s)
    if not m or m.group(1) != name:
        return None
    inner = m.group(2)
    # the regex is greedy; make sure the closing paren closes the call
    if _strip_outer_parens("(" + inner + ")") is None:
        return None
    return [piece.strip() for _, piece in split_top_level(inner, ",")]


STRUCTURE_NAMES = ("us", "diag", "cs", "ar1", "toep", "ou", "exp", "gau", "mat")


def _structured_bar(p: str) -> tuple[str, str] | None:
    """``(structure, inside)`` when ``p`` is a call such as ``ar1(timef + 0 | id)`` whose
    argument holds a bar; None otherwise (``exp(x)`` in the fixed part stays a function)."""
    m = _CALL.match(p)
    if not m or _strip_outer_parens("(" + m.group(2) + ")") is None or _find_bar(m.group(2)) is None:
        return None
    name = m.group(1)
    if name not in STRUCTURE_NAMES:
        raise FormulaError(
            f"unknown covariance structure '{name}' in '{p}'; write one of {', '.join(STRUCTURE_NAMES)} "
            "(glmmTMB's names), or (lhs | g) for an unstructured term"
        )
    return name, m.group(2)


def position_columns(lhs: str, text: str) -> tuple[str, ...] | None:
    """The coordinate columns of a left side ``pos(x, y) + 0`` (or ``numFactor(x, y) + 0``,
    ``0 + pos(t)``); None when the left side has no ``pos``/``numFactor`` call.

    Raises
    ------
    FormulaError
        When ``pos()`` is combined with other columns or an intercept.
    """
    parts = [p.strip() for _, p in split_top_level(lhs, "+")]
    calls = [p for p in parts if re.match(r"^\s*(pos|numFactor)\s*\(", p)]
    if not calls:
        return None
    rest = [p for p in parts if p not in calls]
    if len(calls) != 1 or rest != ["0"]:
        raise FormulaError(
            f"the term {text}: write its coordinates alone and without an intercept, as "
            "pos(x) + 0 or pos(x, y) + 0 (glmmTMB's numFactor(x, y) + 0)"
        )
    name = "pos" if _call_args(calls[0], "pos") is not None else "numFactor"
    args = _call_args(calls[0], name)
    if args is None or not all(args):
        raise FormulaError(f"the term {text}: {calls[0]} needs one or more numeric coordinate columns")
    out = []
    for a in args:
        if not (_is_name(a) or _is_quoted(a)):
            raise FormulaError(f"the term {text}: coordinate '{a}' must be a column name")
        out.append(a[1:-1] if _is_quoted(a) else a)
    return tuple(out)


_NAME = re.compile(r"^(?:[^\W\d]|\.)[\w.]*$")  # Unicode letters too (größe, école, 群), as Python names


def _is_name(v: str) -> bool:
    return bool(_NAME.match(v))


def _is_quoted(v: str) -> bool:
    return len(v) > 2 and v[0] == v[-1] == "`" and "`" not in v[1:-1]


_R_IDIOMS = (
    (re.compile(r"(?<![\w.])(as\.)?factor\s*\("), "R's factor(z) is C(z) here: write C(z) for a categorical variable"),
    (re.compile(r"(?<![\w.])as\.numeric\s*\("), "R's as.numeric() is not needed: write the column itself"),
)


def _check_idioms(text: str) -> None:
    """R idioms that would fail (or, for ``^`` in a call, silently mean XOR) in Python."""
    for pattern, hint in _R_IDIOMS:
        m = pattern.search(text)
        if m:
            raise FormulaError(f"'{m.group(0).rstrip('( ')}(...)' in '{text}': {hint}")
    depth_calls: list[bool] = []
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(":
            before = text[:i].rstrip()
            depth_calls.append(bool(before) and (before[-1].isalnum() or before[-1] in "_."))
        elif ch == "{":  # formulaic's {python expression}
            depth_calls.append(True)
        elif ch in ")}" and depth_calls:
            depth_calls.pop()
        elif ch == "^" and any(depth_calls):
            raise FormulaError(
                f"'^' inside a function call in '{text}' is Python's bitwise XOR, not a power: "
                "write I(x**2) (or poly(x, 2))"
            )


def _grouping(term_text: str, group: str) -> list[tuple[str, tuple[str, ...]]]:
    """Expand a grouping expression into [(group_name, group_vars), ...]."""
    group = group.strip()
    inner = _strip_outer_parens(group)
    if inner is not None:
        group = inner.strip()
    if not group:
        raise FormulaError(f"random-effect term {term_text} has nothing right of the bar")
    nested = [p.strip() for _, p in split_top_level(group, "/")]
    if any(not p for p in nested):
        raise FormulaError(f"random-effect term {term_text}: empty side of '/' in '{group}'")
    out = []
    path: list[str] = []
    for part in nested:
        vars_ = [v.strip() for _, v in split_top_level(part, ":")]
        if any(not v for v in vars_):
            raise FormulaError(f"random-effect term {term_text}: empty side of ':' in '{part}'")
        for v in vars_:
            if split_top_level(v, "+*-") != [("", v)] or (not _is_name(v) and not _is_quoted(v)):
                raise FormulaError(
                    f"random-effect term {term_text}: grouping factor '{v}' must be a column "
                    "name or an interaction a:b (write a name with spaces or operators in backticks, "
                    f"e.g. `{v.strip('`')}`)"
                )
        vars_ = [v[1:-1] if _is_quoted(v) else v for v in vars_]
        path.extend(vars_)
        out.append((":".join(path), tuple(path)))
    return out


def parse_formula(text: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part, offsets and random terms.

    Parameters
    ----------
    text : str
        For example ``"y ~ x + (1 + x | g)"``.

    Raises
    ------
    FormulaError
        With a message naming the offending piece.
    """
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("the formula is empty; write it as 'y ~ x + (1 | g)'")
    text = " ".join(text.split())
    _check_balance(text)
    _check_idioms(text)
    sides = split_top_level(text, "~")
    if len(sides) != 2:
        raise FormulaError(
            f"the formula '{text}' needs exactly one '~' between response and predictors"
        )
    lhs, rhs = sides[0][1].strip(), sides[1][1].strip()
    if not lhs:
        raise FormulaError(f"the formula '{text}' has no response left of '~'")
    if not rhs:
        raise FormulaError(f"the formula '{text}' has nothing right of '~'")

    cbind = None
    response: str | None = lhs
    args = _call_args(lhs, "cbind")
    if args is not None:
        if len(args) != 2 or not all(args):
            raise FormulaError(
                f"'{lhs}' must have exactly two arguments: cbind(successes, failures)"
            )
        cbind = (args[0], args[1])
        response = None

    fixed_parts: list[str] = []
    offsets: list[str] = []
    random: list[RandomTerm] = []
    for sign, piece in split_top_level(rhs, "+-"):
        p = piece.strip()
        if not p:
            if sign == "-" or (sign == "" and rhs.lstrip().startswith("-")):
                continue  # leading '-' as in '- 1' handled with the next piece
            if sign:
                raise FormulaError(f"the formula '{text}' has an empty term next to '{sign}'")
            continue
        inner = _strip_outer_parens(p)
        structure = "us"
        if inner is None and (sb := _structured_bar(p)) is not None:
            structure, inner = sb
        bar = _find_bar(inner) if inner is not None else None
        if bar is not None:
            if sign == "-":
                raise FormulaError(f"a random-effect term cannot be subtracted: '-{p}'")
            pos, width = bar
            re_lhs, re_grp = inner[:pos].strip(), inner[pos + width :].strip()
            if not re_lhs:
                raise FormulaError(f"random-effect term {p} has nothing left of the bar")
            if structure != "us" and width == 2:
                raise FormulaError(f"'{p}': a covariance structure takes a single bar '|' ('||' is lme4's "
                                   "uncorrelated shorthand; write diag(...) for independent effects)")
            for name, vars_ in _grouping(p, re_grp):
                random.append(RandomTerm(re_lhs, name, vars_, correlated=(width == 1), structure=structure))
            continue
        if "|" in p and inner is None:
            raise FormulaError(
                f"the random-effect term '{p}' must be in parentheses, e.g. '(1 | g)'"
            )
        off = _call_args(p, "offset")
        if off is not None:
            if len(off) != 1 or not off[0]:
                raise FormulaError(f"'{p}' must have exactly one argument")
            if sign == "-":
                raise FormulaError(f"an offset cannot be subtracted: '-{p}'")
            offsets.append(off[0])
            continue
        fixed_parts.append(f"{sign} {p}" if sign else p)

    seen: dict[tuple, str] = {}
    for t in random:  # a repeated term is the same variance twice: a ridge, not a model
        key = (" ".join(t.lhs.split()), t.group_vars, t.correlated, t.structure)
        if key in seen:
            raise FormulaError(
                f"the random-effect term {t.text} appears twice in '{text}' (after expanding '/'); "
                "its two variances could not be told apart — write it once"
            )
        seen[key] = t.text
    fixed = " ".join(fixed_parts).strip()
    if fixed.startswith("+"):
        fixed = fixed[1:].strip()
    if not fixed:
        fixed = "1"
    elif fixed.startswith("-"):
        fixed = "1 " + fixed
    return ParsedFormula(
        text=text,
        response=response,
        cbind=cbind,
        fixed=fixed,
        offsets=tuple(offsets),
        random=tuple(random),
    )
