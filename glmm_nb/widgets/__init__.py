"""The model workbench — the only package of glmm_nb that imports ipywidgets.

``ModelBuilder(df)`` (or ``ModelBuilder(df, formula=..., family=..., ziformula=..., dispformula=..., weights=...)``)
shows every option of :func:`glmm_nb.glmm` as controls: the response (one column,
``cbind(successes, failures)`` or successes of trials), fixed effects, grouping factors with
per-factor random slopes (correlated or not), an offset, prior weights, family and link, a zero
part (zero-inflation or hurdle), a dispersion model ("dispersion ~"), the level order of an ordinal response, REML/ML, Laplace or
AGQ with nAGQ. A formula box follows the controls and fills them back when the formula can be
shown as controls; the equivalent ``%%glmm`` cell is shown beside it.

"Fit" runs ``glmm()`` only and keeps the model under its name in ``.results``; the status
says whether it converged (or is singular). Tabs show the selected model's summary, every
model side by side (``.compare()``: AIC, BIC, logLik, df and the LR test of
:func:`glmm_nb.anova` where one model nests the one before it; ``.table()``: the paper table),
its plots (``m.plot.*``) and its report, built only when shown or exported (about 1 MB, so it
enters the widget's state only then). The widget computes nothing itself: it mirrors
model objects and calls the functions code calls. :mod:`.workbench` holds the widget-free part.
"""

from .builder import ModelBuilder
from .workbench import Choices, choices_of, compare, formula_of, guess_response

__all__ = ["ModelBuilder", "Choices", "choices_of", "compare", "formula_of", "guess_response"]
