"""GEE beside the GLMM: population-averaged coefficients with robust (sandwich) SEs.

statsmodels' GEE does the estimation (a well-kept implementation); this module reads the
formula and data as ``glmm()`` does and returns a small result whose ``coef_table()`` has the
GLMMResult layout. Matches geepack 1.3.9 on the contraception data (tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..design.spec import _check_support, _drop_collinear, _grouping, _model_matrix, _rename, _required, _response
from ..errors import DataError, FormulaError, ModelError
from ..families import get_family
from ..formula import parse_formula

__all__ = ["GEEResult", "gee"]

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
        se = pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.params.index)
        z = self.params / se
        q = stats.norm.ppf(0.5 + conf_level / 2)
        out = pd.DataFrame({"estimate": self.params, "std_error": se, "statistic": z,
                            "p_value": 2 * stats.norm.sf(np.abs(z)),
                            "conf_low": self.params - q * se, "conf_high": self.params + q * se})
        out.index.name = "term"
        return out


def gee(formula: str, data: pd.DataFrame, cluster: str, family: str = "binomial", link: str | None = None,
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
    if not isinstance(data, pd.DataFrame):
        raise DataError("data must be a pandas DataFrame")
    if cluster not in data.columns:
        raise DataError(f"cluster= names the column '{cluster}', which is not in the data")
    fam = get_family(family, link)
    used = set(_required(parsed.fixed, "the fixed part")) | {cluster}
    for e in (parsed.cbind or (parsed.response,)):
        name = e.strip().strip("`")
        used |= {name} if name in data.columns else set(_required(f"0 + I({e})", "the response"))
    missing = sorted(v for v in used if v not in data.columns)
    if missing:
        raise FormulaError(f"unknown column '{missing[0]}' in the formula '{parsed.text}'")
    mask = ~data[sorted(used)].isna().any(axis=1).to_numpy()
    d = data.loc[mask]
    if d.empty:
        raise DataError("no rows left after dropping those with missing values")
    y, trials, name = _response(parsed, d, fam.name)
    _check_support(y, trials, False, fam.name, name)
    Xdf = _model_matrix(parsed.fixed, d, "the fixed part")
    X, names, _ = _drop_collinear(Xdf.to_numpy(float), _rename(Xdf.columns))
    _levels, groups = _grouping(d, (cluster,))
    sm_link = {"logit": sm.families.links.Logit(), "probit": sm.families.links.Probit(),
               "cloglog": sm.families.links.CLogLog(), "log": sm.families.links.Log(),
               "identity": sm.families.links.Identity()}[fam.link.name]
    sm_family = {"binomial": sm.families.Binomial, "poisson": sm.families.Poisson,
                 "gaussian": sm.families.Gaussian}[fam.name](link=sm_link)
    cov = {"exchangeable": sm.cov_struct.Exchangeable, "independence": sm.cov_struct.Independence,
           "ar1": lambda: sm.cov_struct.Autoregressive(grid=True)}[corstr]()
    kw = {}
    if fam.name == "binomial" and np.any(trials != 1):
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
