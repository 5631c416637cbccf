"""Deviance functions: PIRLS + Laplace, adaptive Gauss-Hermite quadrature, profiled LMM, and the
ordinal (cumulative-link) Laplace and AGQ deviances."""

from .agq import AgqDevfun, gh_rule
from .contracts import DevianceFunction, Factorization
from .glm import glm_fit, glm_irls, moment_theta
from .laplace import LaplaceDevfun, PirlsState
from .lmm import LmmDevfun, LmmState, anova_theta_start
from .ordinal import OrdinalLaplaceDevfun, OrdinalState
from .ordinal_agq import OrdinalAgqDevfun
from .reops import ReStructure
from .zire import ZiPirlsState, ZiReLaplaceDevfun
from .zire_agq import ZiReAgqDevfun, check_zi_agq, zi_agq_refusal

__all__ = ["anova_theta_start", "AgqDevfun", "DevianceFunction", "Factorization", "LaplaceDevfun", "LmmDevfun", "LmmState", "OrdinalAgqDevfun", "OrdinalLaplaceDevfun", "OrdinalState",
           "PirlsState", "ReStructure", "ZiPirlsState", "ZiReAgqDevfun", "ZiReLaplaceDevfun", "check_zi_agq", "gh_rule",
           "glm_fit", "glm_irls", "moment_theta", "zi_agq_refusal"]
