"""Small bundled data sets.

* ``cbpp``: contagious bovine pleuropneumonia, Lesnoff et al. (2004), via R's lme4 package.
* ``sleepstudy``: reaction times under sleep deprivation, Belenky et al. (2003), via lme4.
* ``contraception``: 1988 Bangladesh Fertility Survey, Huq & Cleland (1990), via R's mlmRev.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load", "available"]

_CATEGORICAL = {
    "cbpp": {"herd": [str(i) for i in range(1, 16)], "period": ["1", "2", "3", "4"]},
    "sleepstudy": {},
    "contraception": {"livch": ["0", "1", "2", "3+"], "urban": ["N", "Y"]},
}


def available() -> list[str]:
    return sorted(_CATEGORICAL)


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a DataFrame, factors as ordered-level categoricals."""
    if name not in _CATEGORICAL:
        from ..errors import DataError

        raise DataError(f"no bundled data set {name!r}; available: {', '.join(available())}")
    with resources.files(__name__).joinpath(f"{name}.csv").open("r") as fh:
        df = pd.read_csv(fh)
    for col, levels in _CATEGORICAL[name].items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    if name == "sleepstudy":
        df["Subject"] = pd.Categorical(df["Subject"].astype(str))
    if name == "contraception":
        df["district"] = pd.Categorical(
            df["district"].astype(str), categories=sorted(df["district"].astype(str).unique(), key=int)
        )
    return df
