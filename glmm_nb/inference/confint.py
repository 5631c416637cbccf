"""``confint``: Wald, profile-likelihood or parametric-bootstrap intervals in one table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelError
from .params import sdcor_names

__all__ = ["confint"]


def confint(m, method: str = "profile", level: float = 0.95, nsim: int = 500, seed=None,
            n_jobs: int = 1) -> pd.DataFrame:
    """Intervals for the random-effect SDs/correlations (``sd__…``, ``cor__…``, ``sigma``) and
    the fixed effects, indexed by term with columns ``conf_low conf_high``.

    ``wald`` gives NaN for the random-effect parameters (as lme4: a symmetric interval on the
    SD scale is a poor guide); use ``profile`` or ``bootstrap`` for those.
    """
    if not 0 < level < 1:
        raise ModelError(f"level must lie between 0 and 1, not {level}")
    if method == "wald":
        ct = m.coef_table(conf_level=level)[["conf_low", "conf_high"]]
        re = pd.DataFrame(np.nan, index=sdcor_names(m.spec, m.family == "gaussian"), columns=["conf_low", "conf_high"])
        out = pd.concat([re, ct])
    elif method == "profile":
        from .profile import profile_confint

        out = profile_confint(m, level=level)
    elif method == "bootstrap":
        from .bootstrap import bootstrap

        out = bootstrap(m, nsim=nsim, seed=seed, n_jobs=n_jobs).confint(level)
        re_names = sdcor_names(m.spec, m.family == "gaussian")
        out = out.loc[re_names + list(m.fixef.index)]
    else:
        raise ModelError(f"method must be 'wald', 'profile' or 'bootstrap', not {method!r}")
    out.index.name = "term"
    return out


