"""After the fit: intervals, bootstrap, LR tests, prediction, simulation, variance
decomposition and diagnostics. Everything reads only the frozen result."""

from .anova import anova
from .bootstrap import BootstrapResult, bootstrap
from .confint import confint
from .diagnostics import Diagnostics, diagnose
from .simulate import predict, simulate
from .variance import icc, mor, r2, variance_components

__all__ = ["BootstrapResult", "Diagnostics", "anova", "bootstrap", "confint", "diagnose", "icc", "mor",
           "predict", "r2", "simulate", "variance_components"]
