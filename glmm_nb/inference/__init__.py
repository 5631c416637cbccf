"""After the fit: intervals, bootstrap, LR tests, prediction, simulation, variance
decomposition, diagnostics, small-sample df, type III tests, estimated marginal means, and the
ordinal model's category probabilities and proportional-odds check.
Everything reads only the frozen result."""

from .anova import anova
from .bootstrap import BootstrapResult, bootstrap
from .confint import confint
from .ddf import contrast_test, ddf_table, linear_inference, resolve_ddf
from .diagnostics import Diagnostics, diagnose
from .emmeans import EMMResult, emmeans, reference_grid
from .kenward_roger import vcov_kr
from .ordinal import category_probabilities, nominal_test, predict_ordinal
from .prediction import predict_interval
from .simulate import predict, simulate
from .type3 import anova_type3, type3_contrasts
from .variance import icc, mor, r2, variance_components

__all__ = ["BootstrapResult", "Diagnostics", "EMMResult", "anova", "anova_type3", "bootstrap", "category_probabilities",
           "confint", "nominal_test", "predict_ordinal",
           "contrast_test", "ddf_table", "diagnose", "emmeans", "icc", "linear_inference", "mor", "predict",
           "predict_interval", "r2", "reference_grid", "resolve_ddf", "simulate", "type3_contrasts",
           "variance_components", "vcov_kr"]
