"""Design stage: formula + data frame → frozen :class:`ModelSpec` (X, Z blocks, theta map)."""

from .reterms import ReTerm, theta_to_T
from .spec import ModelSpec, NewDesign, build_spec

__all__ = ["ModelSpec", "NewDesign", "ReTerm", "build_spec", "theta_to_T"]
