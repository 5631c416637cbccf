"""lme4 formula syntax: random-effect bars in front of formulaic's fixed-effect grammar."""

from .parser import STRUCTURE_NAMES, ParsedFormula, RandomTerm, parse_formula, position_columns

__all__ = ["ParsedFormula", "RandomTerm", "STRUCTURE_NAMES", "parse_formula", "position_columns"]
