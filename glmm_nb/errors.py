"""One exception hierarchy for everything an analyst can get wrong.

Every message names the culprit (term, column or value) in one line.
"""

from __future__ import annotations


class GLMMError(Exception):
    """Base class of every error glmm_nb raises on purpose."""


class FormulaError(GLMMError, ValueError):
    """The model formula cannot be parsed or refers to something that does not exist."""


class DataError(GLMMError, ValueError):
    """The data do not fit the model: missing columns, bad response values, no rows."""


class ModelError(GLMMError, ValueError):
    """An option or combination of options the fitting core does not support."""


class GLMMWarning(UserWarning):
    """Base class of glmm_nb's warnings."""


class ConvergenceWarning(GLMMWarning):
    """The optimizer stopped at a point that fails a convergence check."""


class SingularFitWarning(GLMMWarning):
    """A variance component is estimated on its boundary (zero variance or |correlation| = 1)."""


class DataWarning(GLMMWarning):
    """Something in the data is legal but probably a mistake."""


class SeparationWarning(DataWarning):
    """The binary outcome is perfectly predicted along some fixed-effect direction (complete or
    quasi-complete separation): those estimates are infinite."""


def warn(message: str, category: type[Warning] = GLMMWarning) -> None:
    """Warn, pointing at the first frame outside the glmm_nb package — the analyst's own line
    (a notebook cell, a script), never the package's source."""
    import os
    import sys
    import warnings

    pkg = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level, frame = 2, sys._getframe(1)  # stacklevel 2 is the caller of warn()
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(pkg):
        level += 1
        frame = frame.f_back
    warnings.warn(message, category, stacklevel=level)
