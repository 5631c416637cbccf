"""The Wald table — the one builder of ``estimate std_error statistic p_value conf_low conf_high``.

Used by the GLMM coefficient table, the GEE result, marginal coefficients and the report, so
every Wald table in the package has the same columns, the same normal (or t) quantiles and the
same checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from ..errors import ModelError

__all__ = ["wald_table", "check_level", "ZI_PREFIX"]

ZI_PREFIX = "zi:"  # keys of the zero part's random-effect terms (covariance_matrices, varcorr, ranef)


def check_level(level: float, name: str = "conf_level") -> float:
    """Raise :class:`ModelError` unless ``0 < level < 1``."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise ModelError(f"{name} must lie between 0 and 1, not {level!r}")
    return float(level)


def wald_table(estimate: pd.Series, std_error, conf_level: float = 0.95, df=None) -> pd.DataFrame:
    """Wald z (``df=None``) or t (``df`` per row) tests and intervals, indexed by ``term``.

    With ``df`` given the table gains a ``df`` column after ``std_error``.
    """
    conf_level = check_level(conf_level)
    est = pd.Series(estimate, dtype=float)
    se = pd.Series(np.asarray(std_error, dtype=float), index=est.index)
    stat = est / se
    if df is None:  # the normal tail as scipy.stats.norm computes it, without loading scipy.stats
        p = 2 * special.ndtr(-np.abs(stat))
        q = special.ndtri(0.5 + conf_level / 2)
    else:
        from scipy import stats

        dfv = np.broadcast_to(np.asarray(df, dtype=float), est.shape)
        p = 2 * stats.t.sf(np.abs(stat), dfv)
        q = stats.t.ppf(0.5 + conf_level / 2, dfv)
    cols = {"estimate": est, "std_error": se}
    if df is not None:
        cols["df"] = pd.Series(dfv, index=est.index)
    cols.update({"statistic": stat, "p_value": pd.Series(p, index=est.index),
                 "conf_low": est - q * se, "conf_high": est + q * se})
    out = pd.DataFrame(cols)
    out.index.name = "term"
    return out
