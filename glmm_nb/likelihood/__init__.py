"""Deviance functions: PIRLS + Laplace, adaptive Gauss-Hermite quadrature, profiled LMM."""

from .laplace import LaplaceDevfun, PirlsState
from .lmm import LmmDevfun, LmmState
from .reops import ReStructure

__all__ = ["LaplaceDevfun", "LmmDevfun", "LmmState", "PirlsState", "ReStructure"]
