"""New data through a fitted design — the one path predictions and simulations use.

The fixed-effect matrix is rebuilt with the fitted formulaic spec (same encoding). Rules, as
lme4's ``predict(newdata = )``:

* a factor level the fit did not see is an error naming the column and the level (formulaic
  would quietly code it as the reference level);
* a row with a missing value in a fixed-part variable gets a missing (NaN) linear predictor
  (R's ``na.pass``; formulaic would quietly code a missing factor value as the reference);
* a row whose grouping value is missing is predicted at the population level (random effects
  0), and one warning counts those rows; a row of a group not seen in the fit likewise, with its
  own warning (:func:`glmm_nb.design.grouping.map_groups` maps the groups by codes).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic.errors import DataMismatchWarning

from ..errors import DataError, DataWarning, warn
from .checks import as_frame, numpy_dtypes
from .grouping import map_groups, value_label
from .positions import PositionSpec
from .matrices import eval_numeric, model_matrix, rename_intercept, required_variables

__all__ = ["NewDesign", "categorical_variables", "new_fixed_matrix", "new_zero_matrix", "new_zero_re", "new_design", "check_new_levels", "design_variables"]


@dataclass(frozen=True, eq=False)
class NewDesign:
    """X and Z blocks rebuilt for new data with the fitted model's encoding.

    ``codes[k]`` is -1 where a row's group of term ``k`` is missing or was not seen in the
    fit; ``missing[k]`` marks the first, ``new_levels[k]`` lists the labels of the second.
    """

    X: np.ndarray
    offset: np.ndarray
    codes: tuple[np.ndarray, ...]
    Zvals: tuple[np.ndarray, ...]
    new_levels: tuple[tuple[str, ...], ...]
    missing: tuple[np.ndarray, ...] = ()
    krige_var: tuple[np.ndarray, ...] = ()  # per term: kriging variance (relative) of new positions


_CALL_ARG = re.compile(r"^\s*C\(\s*`?([^,`]+?)`?\s*(,.*)?\)\s*$")


def _factor_column(factor: str, data: pd.DataFrame) -> str | None:
    """The data column behind a categorical factor ``z`` / ``C(z, ...)`` (None if not plain)."""
    name = factor.strip().strip("`")
    if name in data.columns:
        return name
    m = _CALL_ARG.match(factor)
    if m and m.group(1).strip() in data.columns:
        return m.group(1).strip()
    return None


def categorical_variables(mspec, data: pd.DataFrame) -> set[str]:
    """The data columns that the formulaic spec ``mspec`` encodes as categorical (``z`` of a
    string column, or ``C(z)`` of a numeric one)."""
    out = set()
    for factor, (kind, _state) in getattr(mspec, "encoder_state", {}).items():
        if getattr(kind, "value", kind) == "categorical":
            col = _factor_column(str(factor), data)
            if col is not None:
                out.add(col)
    return out


def check_new_levels(mspec, data: pd.DataFrame, where: str) -> None:
    """Raise :class:`DataError` naming the column and the level when ``data`` holds a level of
    a categorical factor of the formulaic spec ``mspec`` that the fit did not see."""
    for factor, (kind, state) in getattr(mspec, "encoder_state", {}).items():
        if getattr(kind, "value", kind) != "categorical" or "categories" not in state:
            continue
        col = _factor_column(str(factor), data)
        if col is None:
            continue
        values = data[col]
        values = values[~values.isna()]
        if values.empty:
            continue
        seen = {value_label(c) for c in state["categories"]}
        labels = pd.unique(np.asarray([value_label(v) for v in pd.unique(values)], dtype=object))
        unseen = [lv for lv in labels if lv not in seen]
        if unseen:
            shown = ", ".join(map(repr, unseen[:5]))
            raise DataError(
                f"factor '{col}' has new level(s) {shown} in newdata, not seen in the fit "
                f"(levels: {', '.join(map(str, state['categories'][:10]))}); predictions for a level "
                f"without an estimate are not defined ({where})"
            )


def _matrix(mspec, data: pd.DataFrame, where: str) -> pd.DataFrame:
    """formulaic's matrix for new data, with unseen levels refused (formulaic only warns)."""
    check_new_levels(mspec, data, where)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataMismatchWarning)
        mm = model_matrix("", data, where, spec=mspec)
    for w in caught:
        if issubclass(w.category, DataMismatchWarning):
            msg = str(w.message)
            if re.search(r"\{(?!nan\})", msg):  # something other than a missing value
                raise DataError(f"newdata has a factor level not seen in the fit ({where}): "
                                f"{msg.split(':', 1)[-1].split('.')[0].strip()}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return mm


def _variables(spec, offsets: bool) -> list[str]:
    fs = spec.fixed_spec
    needed = set(fs.variables_by_source.get("data", set()))
    if offsets:
        for o in spec.formula.offsets:
            needed |= set(required_variables(f"0 + I({o})", f"offset({o})"))
    return sorted(needed)


def new_fixed_matrix(spec, newdata, offsets: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-effect matrix and formula offsets for ``newdata`` with the fit's encoding.

    Only the variables of the fixed part (and, with ``offsets``, of ``offset(...)`` terms)
    are needed. Rows with a missing value in one of them get NaN.
    """
    newdata = numpy_dtypes(as_frame(newdata, "newdata"))
    needed = _variables(spec, offsets)
    lacking = [v for v in needed if v not in newdata.columns]
    if lacking:
        raise DataError(f"newdata lacks the column(s) {', '.join(map(repr, lacking))}")
    Xdf = _matrix(spec.fixed_spec, newdata, "the fixed part")
    Xdf.columns = rename_intercept(Xdf.columns)
    absent = [c for c in spec.x_names if c not in Xdf.columns]
    if absent:
        raise DataError(f"newdata does not give the fixed-effect column(s) {', '.join(absent)}")
    X = Xdf[list(spec.x_names)].to_numpy(dtype=float)
    off = np.zeros(len(newdata))
    for o in spec.formula.offsets if offsets else ():
        off = off + eval_numeric(o, newdata, "offset")
    if needed:
        na = newdata[needed].isna().any(axis=1).to_numpy()
        if na.any():
            X = X.copy()
            X[na] = np.nan
    return X, off


def zero_variables(spec) -> list[str]:
    """The columns of the zero part's formula (empty without a zero part)."""
    if spec.zi_fixed_spec is None:
        return []
    return sorted(spec.zi_fixed_spec.variables_by_source.get("data", set()))


def new_zero_matrix(spec, newdata) -> np.ndarray:
    """The zero part's design for ``newdata`` with the fit's encoding, by the rules of the
    fixed part (:func:`new_fixed_matrix`): an unseen level is a :class:`DataError`, a row with
    a missing value gets NaN."""
    newdata = numpy_dtypes(as_frame(newdata, "newdata"))
    needed = zero_variables(spec)
    lacking = [v for v in needed if v not in newdata.columns]
    if lacking:
        raise DataError(f"newdata lacks the zero part's column(s) {', '.join(map(repr, lacking))} "
                        f"(ziformula {spec.zi_formula})")
    Zdf = _matrix(spec.zi_fixed_spec, newdata, f"the zero part {spec.zi_formula}")
    Zdf.columns = rename_intercept(Zdf.columns)
    Z = Zdf[list(spec.zi_names)].to_numpy(dtype=float)
    if needed:
        na = newdata[needed].isna().any(axis=1).to_numpy()
        if na.any():
            Z = Z.copy()
            Z[na] = np.nan
    return Z


def new_zero_re(spec, newdata) -> tuple[tuple, tuple]:
    """Per zero-part random-effect term of ``spec``: the fitted level of each row of ``newdata``
    (−1: unseen or missing, its effect 0) and the term's columns, (codes, Zvals)."""
    codes, zvals = [], []
    for t in spec.zi_terms:
        codes.append(map_groups(newdata, t.group_vars, t.var_levels, t.level_codes).codes)
        zm = _matrix(t.lhs_spec, newdata, t.text).to_numpy(dtype=float)
        zvals.append(zm[:, list(t.columns)] if t.columns is not None else zm)
    return tuple(codes), tuple(zvals)


def design_variables(spec) -> list[str]:
    """The columns new data need for conditional predictions: the fixed part's, the offsets',
    the zero part's and every random-effect term's (its columns and grouping columns)."""
    needed = set(_variables(spec, True)) | set(zero_variables(spec))
    for t in tuple(spec.terms) + tuple(getattr(spec, "zi_terms", ())):
        needed |= set(t.group_vars)
        needed |= set(t.lhs_spec.variables_by_source.get("data", set()))
    return sorted(needed)


def new_design(spec, newdata, offset=None, theta=None) -> NewDesign:
    """Rebuild X and the Z blocks for ``newdata`` with ``spec``'s encoding (see module doc).

    With ``theta`` (a fit's), rows at positions a spatial/continuous-time term did not see are
    kriged (:meth:`glmm_nb.design.covstruct.Structure.kriging`); without it they are refused.
    """
    newdata = numpy_dtypes(as_frame(newdata, "newdata"))
    needed = design_variables(spec)
    lacking = sorted(v for v in needed if v not in newdata.columns)
    if lacking:
        raise DataError(f"newdata lacks the column(s) {', '.join(map(repr, lacking))}")
    X, off = new_fixed_matrix(spec, newdata)
    if offset is not None:
        off = off + np.asarray(offset, dtype=float)
    codes, zvals, new, missing, kvar = [], [], [], [], []
    for t, sl in zip(spec.terms, spec.theta_slices()):
        mg = map_groups(newdata, t.group_vars, t.var_levels, t.level_codes)
        codes.append(mg.codes)
        missing.append(mg.missing)
        new.append(mg.new_levels)
        kv = np.zeros(len(newdata))
        if isinstance(t.lhs_spec, PositionSpec):
            krig = None if theta is None else (lambda xy, t=t, sl=sl: t.structure.kriging(np.asarray(theta)[sl], xy))
            zf, kv = t.lhs_spec.matrix(newdata, f"the term {t.text}", kriging=krig)
            zm = zf.to_numpy(dtype=float)
        else:
            zm = _matrix(t.lhs_spec, newdata, t.text).to_numpy(dtype=float)
        kvar.append(np.where(mg.codes >= 0, kv, 0.0))
        if t.columns is not None:
            zm = zm[:, list(t.columns)]
        zvals.append(zm)
    _warn_groups(spec, missing, codes)
    return NewDesign(X, off, tuple(codes), tuple(zvals), tuple(new), tuple(missing), tuple(kvar))


def _warn_groups(spec, missing, codes) -> None:
    """One warning counting rows with a missing grouping value, one counting unseen groups."""
    miss = np.zeros(len(codes[0]) if codes else 0, dtype=bool)
    unseen = miss.copy()
    cols = []
    for t, m, c in zip(spec.terms, missing, codes):
        miss |= m
        unseen |= (c < 0) & ~m
        if m.any():
            cols.extend(v for v in t.group_vars if v not in cols)
    if miss.any():
        warn(
            f"{int(miss.sum())} row(s) of newdata have a missing value in the grouping column(s) "
            f"{', '.join(map(repr, cols))}; their random effects are set to zero (population-level "
            "prediction for those rows)",
            DataWarning
        )
    if unseen.any():
        warn(
            f"{int(unseen.sum())} row(s) belong to grouping levels not seen in the fit; their random "
            "effects are set to zero (a typical cluster)",
            DataWarning
        )
