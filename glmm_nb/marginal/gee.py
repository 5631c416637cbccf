"""GEE beside the GLMM: population-averaged coefficients with robust (sandwich) SEs.

statsmodels' GEE does the estimation (a well-kept implementation); this module reads the
formula and data as ``glmm()`` does and returns a small result whose ``coef_table()`` has the
GLMMResult layout. Matches geepack 1.3.9 on the contraception data (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design import (as_frame, drop_collinear, grouping_codes, model_matrix, read_response, rename_intercept,
                      required_variables)
from ..errors import DataError, FormulaError, ModelError
from ..families import Family, get_family
from ..formula import parse_formula
from ..results import wald_table

__all__ = ["GEEResult", "gee", "gee_for"]

_CORSTR = ("exchangeable", "independence", "ar1")


@dataclass(frozen=True, eq=False)
class GEEResult:
    formula: str
    family: str
    link: str
    corstr: str
    cluster: str
    params: pd.Series
    vcov: pd.DataFrame
    working_correlation: float | None
    nobs: int
    nclusters: int
    n_dropped: int

    def coef_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Wald table with the robust (sandwich) standard errors."""
        return wald_table(self.params, np.sqrt(np.diag(self.vcov.to_numpy())), conf_level)


def gee(formula: str, data: pd.DataFrame, cluster: str, family: str | Family = "binomial", link: str | None = None,
        corstr: str = "exchangeable") -> GEEResult:
    """Fit a GEE with robust sandwich standard errors.

    Parameters
    ----------
    formula : str
        Fixed effects only (``y ~ x + z``); the clusters are named by ``cluster``.
    cluster : str
        The column whose levels are the clusters (rows in data order within a cluster give the
        time order for ``corstr="ar1"``).
    corstr : {"exchangeable", "independence", "ar1"}
    """
    import statsmodels.api as sm

    parsed = parse_formula(formula)
    if parsed.random:
        raise FormulaError(
            f"a GEE formula has no random-effect terms; drop {parsed.random[0].text} and name the "
            "cluster with cluster="
        )
    if corstr not in _CORSTR:
        raise ModelError(f"corstr must be one of {', '.join(map(repr, _CORSTR))}, not {corstr!r}")
    data = as_frame(data)
    if cluster not in data.columns:
        raise DataError(f"cluster= names the column '{cluster}', which is not in the data")
    fam = get_family(family, link)
    used = set(required_variables(parsed.fixed, "the fixed part")) | {cluster}
    for e in (parsed.cbind or (parsed.response,)):
        name = e.strip().strip("`")
        used |= {name} if name in data.columns else set(required_variables(f"0 + I({e})", "the response"))
    missing = sorted(v for v in used if v not in data.columns)
    if missing:
        raise FormulaError(f"unknown column '{missing[0]}' in the formula '{parsed.text}'")
    mask = ~data[sorted(used)].isna().any(axis=1).to_numpy()
    d = data.loc[mask]
    if d.empty:
        raise DataError("no rows left after dropping those with missing values")
    y, trials, name = read_response(parsed, d, fam)
    fam.check_response(y, trials, False, name)
    Xdf = model_matrix(parsed.fixed, d, "the fixed part")
    X, names, _ = drop_collinear(Xdf.to_numpy(float), rename_intercept(Xdf.columns))
    _levels, groups = grouping_codes(d, (cluster,))
    sm_family = fam.statsmodels_family()
    cov = {"exchangeable": sm.cov_struct.Exchangeable, "independence": sm.cov_struct.Independence,
           "ar1": lambda: sm.cov_struct.Autoregressive(grid=True)}[corstr]()
    kw = {}
    if np.any(trials != 1):  # binomial proportions: the trials weight each row
        kw["var_weights"] = trials
    if corstr == "ar1":
        time = d.groupby(groups).cumcount().to_numpy() if len(d) else None
        kw["time"] = time
    model = sm.GEE(y, X, groups=groups, family=sm_family, cov_struct=cov, **kw)
    res = model.fit()
    dep = getattr(model.cov_struct, "dep_params", None)
    dep = float(dep) if dep is not None and np.ndim(dep) == 0 else None
    return GEEResult(formula=parsed.text, family=fam.name, link=fam.link.name, corstr=corstr, cluster=cluster,
                     params=pd.Series(res.params, index=list(names), name="estimate"),
                     vcov=pd.DataFrame(res.cov_robust, index=list(names), columns=list(names)),
                     working_correlation=dep, nobs=len(d), nclusters=int(groups.max() + 1),
                     n_dropped=int((~mask).sum()))


def gee_for(m, value=None) -> GEEResult | None:
    """The GEE to set beside a fitted GLMM ``m`` — one convention for ``compare(gee=)`` and
    ``report(gee=)``: ``None`` (no GEE), a column name (an exchangeable GEE of the model's
    fixed part clustered by that column, on the rows the model used) or a :class:`GEEResult`
    from :func:`gee`."""
    if value is None or isinstance(value, GEEResult):
        return value
    if not isinstance(value, str):
        raise ModelError(f"gee must be a cluster column name or a glmm_nb.gee(...) result, not {type(value).__name__}")
    frame = m.spec.frame
    if frame is None or value not in frame.columns:
        used = ", ".join(map(repr, [] if frame is None else frame.columns))
        raise DataError(f"gee='{value}' names a column the model does not use (it uses {used}); cluster by one of "
                        "them or pass a fitted glmm_nb.gee(formula, data, cluster=...) result")
    f = m.spec.formula
    lhs = f"cbind({f.cbind[0]}, {f.cbind[1]})" if f.cbind else f.response
    return gee(f"{lhs} ~ {f.fixed}", frame, cluster=value, family=m.fitted_family)
