"""glmm_nb: maximum-likelihood generalized linear mixed models for Jupyter.

>>> import glmm_nb
>>> m = glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)",
...                  glmm_nb.datasets.load("cbpp"), family="binomial")
"""

import importlib

# name -> the module that defines it; loaded on first use (PEP 562), so ``import glmm_nb`` and
# ``glmm-nb --version`` load no numeric stack (numpy, pandas, scipy, formulaic, …) until a name
# is used, and the display stack (IPython, ipywidgets, jinja2, altair) only where it is needed
_LAZY = {
    "datasets": None,
    "MixedModel": "api", "glmm": "api",
    "ModelSpec": "design",
    "anova": "inference",
    "gee": "marginal",
    "table": "papertable",
    "build_spec": "pipeline", "fit": "pipeline", "make_devfun": "pipeline", "make_request": "pipeline",
    "refit": "pipeline",
    "set_progress": "progress",
    "FitRequest": "request",
    "ConvergenceWarning": "errors", "DataError": "errors", "DataWarning": "errors", "FormulaError": "errors",
    "GLMMError": "errors", "ModelError": "errors", "SingularFitWarning": "errors",
    "Family": "families", "Link": "families", "get_family": "families", "register_family": "families",
    "register_link": "families",
    "parse_formula": "formula",
    "GLMMResult": "results",
    "ModelBuilder": "widgets",
}

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


def __getattr__(name):
    """The public names, imported on first use (``ModelBuilder`` imports ipywidgets only then)."""
    if name in _LAZY:
        where = _LAZY[name]
        if where is None:  # a subpackage
            value = importlib.import_module(f"{__name__}.{name}")
        else:
            value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:  # a submodule not imported yet (glmm_nb.api, glmm_nb.report, …)
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'glmm_nb' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
