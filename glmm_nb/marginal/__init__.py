"""Conditional vs marginal effects, GEE beside the GLMM, and the causal-caveat checks."""

from .causal import CausalChecks, causal_checks
from .claims import EffectClaim, attenuation_note, effect_claim
from .coefs import closed_form_attenuation, marginal_coefs
from .effects import average_marginal_effects, comparison_table
from .gee import GEEResult, gee, gee_for
from .ordinal import ordinal_marginal_coefs

__all__ = ["CausalChecks", "EffectClaim", "attenuation_note", "effect_claim", "GEEResult", "average_marginal_effects", "causal_checks", "closed_form_attenuation",
           "comparison_table", "gee", "gee_for", "marginal_coefs", "ordinal_marginal_coefs"]
