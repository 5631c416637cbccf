"""Average marginal effects on the response scale, three ways, and the comparison table.

For a covariate (a two-level factor/bool/0-1 column compared level 1 vs level 0, or a numeric
column moved by ``delta``) the mean predicted response under the two scenarios is computed

* ``typical``: random effects 0 — a typical cluster;
* ``conditional``: each observed cluster with its own conditional modes;
* ``marginal``: averaged over the fitted random-effect distribution (population-averaged);

and reported as a difference (risk/rate difference) and a ratio (risk/rate ratio).
Intervals by simulation from the normal approximation to the estimates' sampling
distribution (seeded): theta and beta, and for zero-inflated and hurdle models the zero part's
coefficients and random-effect theta, drawn jointly; the conditional way holds the spherical
conditional modes u fixed, so its interval does not reflect uncertainty in the modes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..design import as_frame, new_zero_matrix, numpy_dtypes
from ..errors import DataError, ModelError
from ..inference.simulate import design_of, predict_design
from .coefs import parameter_draws_all

__all__ = ["average_marginal_effects", "comparison_table"]

WAYS = ("typical", "conditional", "marginal")
_RE = {"typical": "none", "conditional": "conditional", "marginal": "marginal"}


def _scenarios(frame: pd.DataFrame, var: str, delta: float):
    if var not in frame.columns:
        raise DataError(f"'{var}' is not a variable of the model (variables: {', '.join(frame.columns)})")
    col = frame[var]
    d0, d1 = frame.copy(), frame.copy()
    if not isinstance(col.dtype, pd.CategoricalDtype) and not pd.api.types.is_numeric_dtype(col) \
            and not pd.api.types.is_bool_dtype(col):  # text (pandas 3's str): a factor, levels sorted as formulaic
        col = pd.Series(pd.Categorical(col.astype(object), categories=sorted(pd.unique(col.dropna()))), index=col.index)
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        if len(cats) != 2:
            raise DataError(f"'{var}' has {len(cats)} levels; the effect needs a two-level factor or a number")
        d0[var] = pd.Categorical([cats[0]] * len(col), categories=cats)
        d1[var] = pd.Categorical([cats[1]] * len(col), categories=cats)
        return d0, d1, f"{var}: {cats[1]} vs {cats[0]}"
    vals = pd.unique(col.dropna())
    if pd.api.types.is_bool_dtype(col) or set(np.asarray(vals, float)) <= {0.0, 1.0}:
        d0[var] = col.dtype.type(0) if not pd.api.types.is_bool_dtype(col) else False
        d1[var] = col.dtype.type(1) if not pd.api.types.is_bool_dtype(col) else True
        return d0, d1, f"{var}: 1 vs 0"
    if not pd.api.types.is_numeric_dtype(col):
        raise DataError(f"'{var}' must be numeric, boolean or a two-level factor")
    d1[var] = col + delta
    return d0, d1, f"{var}: +{delta:g}"


def average_marginal_effects(m, var: str, delta: float = 1.0, level: float = 0.95, nsim: int = 500,
                             seed: int | None = 1) -> pd.DataFrame:
    """Mean responses, differences and ratios for ``var`` three ways, with intervals."""
    if m.request.family.ordinal:
        raise ModelError("average marginal effects on a mean are not defined for an ordinal response; compare "
                         "category probabilities with m.predict(newdata, type='prob', re='marginal') instead")
    frame = m.spec.frame
    if frame is None:
        raise ModelError("this result carries no model frame")
    d0, d1, contrast = _scenarios(frame, var, delta)
    x0, x1 = design_of(m, d0), design_of(m, d1)
    # the zero part's design under each scenario: its linear predictor at each draw of gamma
    Zs = [new_zero_matrix(m.spec, numpy_dtypes(as_frame(d, "newdata"))) for d in (d0, d1)] \
        if m.spec.zi_X is not None else None

    def summarise(res, designs=(x0, x1)):
        out = {}
        for way in WAYS:
            p0, p1 = (float(np.mean(predict_design(res, x, re=_RE[way]))) for x in designs)
            out[way] = (p0, p1)
        return out

    def draw(th, b, g, zt):
        res = dataclasses.replace(m, theta=th, fixef=pd.Series(b, index=m.fixef.index))
        if Zs is None:
            return summarise(res)
        res = dataclasses.replace(res, zi_fixef=pd.Series(g, index=m.zi_fixef.index, name=m.zi_fixef.name),
                                  zi_theta=zt)
        return summarise(res, tuple(dataclasses.replace(x, zeta=Z @ g) for x, Z in zip((x0, x1), Zs)))

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = summarise(m)
        sims = [draw(*d) for d in parameter_draws_all(m, nsim, seed)]
    a = (1 - level) / 2
    rows = []
    for way in WAYS:
        p0, p1 = point[way]
        diff = np.array([s[way][1] - s[way][0] for s in sims])
        ratio = np.array([s[way][1] / s[way][0] for s in sims])
        rows.append({"way": way, "p0": p0, "p1": p1, "difference": p1 - p0,
                     "difference_low": np.quantile(diff, a), "difference_high": np.quantile(diff, 1 - a),
                     "ratio": p1 / p0, "ratio_low": np.quantile(ratio, a), "ratio_high": np.quantile(ratio, 1 - a)})
    out = pd.DataFrame(rows).set_index("way")
    kind = m.request.family.difference_word
    out.attrs.update(contrast=contrast, difference=f"{kind} difference", ratio=f"{kind} ratio")
    return out


def comparison_table(m, gee=None) -> pd.DataFrame:
    """term, conditional, marginal, gee, attenuation (marginal / conditional) and, for a logistic
    random intercept, the closed-form approximation (ordinal models: thresholds too). ``gee``: a
    cluster column name or a :func:`glmm_nb.gee` result (see :func:`glmm_nb.marginal.gee.gee_for`)."""
    from .coefs import closed_form_attenuation, marginal_coefs
    from .gee import gee_for

    gee_result = gee_for(m, gee)

    mc = marginal_coefs(m)
    cond = pd.concat([m.fixef, m.thresholds]) if len(m.thresholds) else m.fixef
    out = pd.DataFrame({"conditional": cond, "marginal": mc.estimate.reindex(cond.index)})
    out["gee"] = gee_result.params.reindex(out.index) if gee_result is not None else np.nan
    out["attenuation"] = out.marginal / out.conditional
    cf = closed_form_attenuation(m)
    out["closed_form"] = cf if cf is not None else np.nan
    out.index.name = "term"
    from .claims import attenuation_note

    zero = (" The marginal coefficients describe the overall mean, zero part included; the conditional ones the "
            "count part.") if m.request.family.has_zero_part else ""
    out.attrs["note"] = ("marginal: coefficients of a link-scale curve fitted to the population-averaged means; "
                         "attenuation = marginal / conditional." + zero + " " + attenuation_note(m, out)).strip()
    return out
