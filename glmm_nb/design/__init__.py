"""Design stage: formula + data frame → frozen :class:`ModelSpec` (X, Z blocks, theta map).

One module per step: :mod:`.checks` (argument and input checks), :mod:`.frame` (used
columns, missing rows), :mod:`.response`, :mod:`.grouping` (groups, for the fit and new data),
:mod:`.matrices` (formulaic glue, fixed-effect matrix helpers), :mod:`.random` (random-effect
terms), :mod:`.identify` (constant responses, lme4's identifiability rules),
:mod:`.separation` (binomial separation), :mod:`.spec` (the frozen spec) and :mod:`.newdata`
(new data through the fitted encoding).
"""

from .checks import (as_frame, check_agq_size, check_bool, check_choice, check_column, check_int, check_level,
                     check_options, check_output_path, check_seed, close_names, numpy_dtypes)
from .convert import to_pandas
from .frame import ModelFrame, model_frame, used_variables, vector_argument
from .grouping import Grouping, MappedGroups, factor_codes, grouping, grouping_codes, map_groups
from .matrices import drop_collinear, model_matrix, rename_intercept, required_variables
from .random import random_terms
from .response import read_response
from .reterms import ReTerm, term_slices, theta_to_T, tril_index
from .newdata import NewDesign, new_design, new_fixed_matrix, new_zero_matrix, new_zero_re
from .separation import ordinal_separated_columns, separated_columns, separation_message
from .spec import ModelSpec, fixed_matrix, model_spec, new_disp_matrix

__all__ = [
    "to_pandas","ModelSpec", "NewDesign", "ReTerm", "term_slices", "ModelFrame", "model_spec", "model_frame", "used_variables",
           "vector_argument", "factor_codes", "grouping_codes", "drop_collinear", "model_matrix",
           "rename_intercept", "required_variables", "random_terms", "read_response", "fixed_matrix",
           "theta_to_T", "tril_index", "as_frame", "check_agq_size", "check_options", "check_output_path", "check_bool", "check_choice", "check_column", "check_int",
           "check_level", "check_seed", "close_names", "numpy_dtypes", "Grouping", "MappedGroups", "grouping",
           "map_groups", "new_design", "new_fixed_matrix", "new_zero_matrix", "new_zero_re", "new_disp_matrix",
           "ordinal_separated_columns", "separated_columns", "separation_message"]
