"""lme4 formula syntax: random-effect bars in front of formulaic's fixed-effect grammar."""

from .parser import ParsedFormula, RandomTerm, parse_formula

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula"]
