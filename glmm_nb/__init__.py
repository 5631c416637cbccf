"""glmm_nb: maximum-likelihood generalized linear mixed models for Jupyter.

>>> import glmm_nb
>>> m = glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                  glmm_nb.datasets.load("cbpp"), family="binomial")
"""

from . import datasets
from .api import MixedModel, glmm
from .design import ModelSpec
from .inference import anova
from .marginal import gee
from .papertable import table
from .pipeline import build_spec, fit, make_devfun, make_request, refit
from .progress import set_progress
from .request import FitRequest
from .errors import (
    ConvergenceWarning,
    DataError,
    DataWarning,
    FormulaError,
    GLMMError,
    ModelError,
    SingularFitWarning,
)
from .families import Family, Link, get_family, register_family, register_link
from .formula import parse_formula
from .results import GLMMResult

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "DataError",
    "DataWarning",
    "Family",
    "FitRequest",
    "Link",
    "MixedModel",
    "FormulaError",
    "GLMMError",
    "GLMMResult",
    "ModelBuilder",
    "ModelError",
    "ModelSpec",
    "SingularFitWarning",
    "anova",
    "build_spec",
    "datasets",
    "fit",
    "gee",
    "get_family",
    "glmm",
    "load_ipython_extension",
    "make_devfun",
    "make_request",
    "refit",
    "register_family",
    "register_link",
    "set_progress",
    "table",
    "parse_formula",
]


def load_ipython_extension(ipython):
    """``%load_ext glmm_nb``: register the ``%%glmm`` / ``%glmm`` magics."""
    from .magics import load_ipython_extension as _load

    _load(ipython)


def __getattr__(name):  # lazy: importing glmm_nb must not import ipywidgets
    if name == "ModelBuilder":
        from .widgets import ModelBuilder

        return ModelBuilder
    raise AttributeError(f"module 'glmm_nb' has no attribute {name!r}")
