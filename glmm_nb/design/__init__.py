"""Design stage: formula + data frame → frozen :class:`ModelSpec` (X, Z blocks, theta map).

One module per step: :mod:`.frame` (used columns, missing rows), :mod:`.response`,
:mod:`.grouping`, :mod:`.matrices` (formulaic glue, fixed-effect matrix helpers),
:mod:`.random` (random-effect terms) and :mod:`.spec` (the frozen spec).
"""

from .frame import ModelFrame, model_frame, used_variables, vector_argument
from .grouping import factor_codes, grouping_codes
from .matrices import drop_collinear, model_matrix, rename_intercept, required_variables
from .random import random_terms
from .response import read_response
from .reterms import ReTerm, theta_to_T, tril_index
from .spec import ModelSpec, NewDesign, fixed_matrix, model_spec

__all__ = ["ModelSpec", "NewDesign", "ReTerm", "ModelFrame", "model_spec", "model_frame", "used_variables",
           "vector_argument", "factor_codes", "grouping_codes", "drop_collinear", "model_matrix",
           "rename_intercept", "required_variables", "random_terms", "read_response", "fixed_matrix",
           "theta_to_T", "tril_index"]
