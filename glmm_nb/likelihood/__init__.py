"""Deviance functions: PIRLS + Laplace, adaptive Gauss-Hermite quadrature, profiled LMM."""

from .agq import AgqDevfun, gh_rule
from .contracts import DevianceFunction, Factorization
from .glm import glm_irls
from .laplace import LaplaceDevfun, PirlsState
from .lmm import LmmDevfun, LmmState
from .reops import ReStructure

__all__ = ["AgqDevfun", "DevianceFunction", "Factorization", "LaplaceDevfun", "LmmDevfun", "LmmState",
           "PirlsState", "ReStructure", "gh_rule", "glm_irls"]
