"""Build the frozen model specification from a parsed formula and a data frame.

Steps (each a function below): find the variables the model uses → drop rows with a missing
value in any of them (counted) → response and prior weights → fixed-effect matrix X with
formulaic → random-effect terms (levels, codes, compact Z blocks) ordered as lme4 orders them.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import formulaic
from formulaic.errors import FormulaicError

from ..errors import DataError, DataWarning, FormulaError
from ..formula import ParsedFormula, parse_formula
from .reterms import ReTerm

__all__ = ["ModelSpec", "NewDesign", "build_spec"]

INTERCEPT = "(Intercept)"


def _freeze(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


# ----------------------------------------------------------------------------- formulaic glue
def _formulaic_error(exc: Exception, where: str) -> FormulaError:
    msg = str(exc)
    m = re.search(r"`([^`]+)` is not present in the dataset", msg)
    if m:
        return FormulaError(f"unknown column '{m.group(1)}' in {where}")
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    first = re.sub(r"\x1b\[[0-9;]*m|[⧛⧚]", "", first)
    return FormulaError(f"cannot read {where}: {first}")


def _required(expr: str, where: str) -> list[str]:
    """Variables an expression uses, in order of first appearance (deterministic)."""
    try:
        found = set(formulaic.Formula(expr).required_variables)
    except FormulaicError as exc:
        raise _formulaic_error(exc, where) from None

    def first(v: str) -> tuple[int, str]:
        pos = expr.find(v)
        return (pos if pos >= 0 else len(expr), v)

    return sorted(found, key=first)


def _model_matrix(expr: str, data: pd.DataFrame, where: str, spec=None) -> pd.DataFrame:
    try:
        if spec is not None:
            mm = spec.get_model_matrix(data, na_action="ignore")
        else:
            mm = formulaic.model_matrix(expr, data, na_action="ignore")
    except FormulaicError as exc:
        raise _formulaic_error(exc, where) from None
    except (TypeError, ValueError, KeyError) as exc:
        raise FormulaError(f"cannot evaluate {where}: {exc}") from None
    return mm


def _rename(cols) -> tuple[str, ...]:
    return tuple(INTERCEPT if c == "Intercept" else str(c) for c in cols)


def _eval_numeric(expr: str, data: pd.DataFrame, where: str) -> np.ndarray:
    """A numeric vector from a column name or an expression such as ``size - incidence``."""
    name = expr.strip().strip("`")
    if name in data.columns:
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise DataError(f"{where} '{name}' must be numeric, not {col.dtype}")
        return col.to_numpy(dtype=float)
    mm = _model_matrix(f"0 + I({expr})", data, f"{where} '{expr}'")
    return mm.to_numpy(dtype=float)[:, 0]


# ------------------------------------------------------------------------------- grouping
def _factor(col: pd.Series, name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Levels (lme4 order, unused dropped) and integer codes of one grouping column."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.remove_unused_categories()
        return tuple(str(c) for c in cats.cat.categories), cats.cat.codes.to_numpy().astype(np.int64)
    values = col.to_numpy()
    if pd.api.types.is_float_dtype(col):
        if np.any(values != np.round(values)):
            bad = values[values != np.round(values)][0]
            warnings.warn(
                f"grouping column '{name}' holds non-integer numbers (e.g. {bad}); "
                "each distinct value is treated as its own group — is that intended?",
                DataWarning,
                stacklevel=4,
            )
    uniq, codes = np.unique(values, return_inverse=True)
    if pd.api.types.is_float_dtype(col) and np.all(uniq == np.round(uniq)):
        labels = tuple(str(int(u)) for u in uniq)
    else:
        labels = tuple(str(u) for u in uniq)
    return labels, codes.astype(np.int64)


def _grouping(data: pd.DataFrame, vars_: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    parts = [_factor(data[v], v) for v in vars_]
    if len(parts) == 1:
        return parts[0]
    # interaction a:b with lme4/R level order: the first factor varies slowest
    sizes = [len(lv) for lv, _ in parts]
    combined = np.zeros(len(data), dtype=np.int64)
    for (_lv, codes), size in zip(parts, sizes):
        combined = combined * size + codes
    uniq, codes = np.unique(combined, return_inverse=True)
    labels = []
    for u in uniq:
        idx = []
        for size in reversed(sizes):
            idx.append(u % size)
            u //= size
        idx.reverse()
        labels.append(":".join(parts[k][0][i] for k, i in enumerate(idx)))
    return tuple(labels), codes.astype(np.int64)


# ------------------------------------------------------------------------------- response
def _response(parsed: ParsedFormula, data: pd.DataFrame, family: str):
    """Return ``(y, trials, name)``: y on the mean scale, trials the binomial sizes (or 1)."""
    n = len(data)
    ones = np.ones(n)
    if parsed.cbind is not None:
        if family != "binomial":
            raise DataError(f"cbind(successes, failures) needs family='binomial', not '{family}'")
        s = _eval_numeric(parsed.cbind[0], data, "successes")
        f = _eval_numeric(parsed.cbind[1], data, "failures")
        for vec, expr in ((s, parsed.cbind[0]), (f, parsed.cbind[1])):
            if np.any(vec < 0):
                raise DataError(f"cbind: '{expr}' has negative counts (e.g. {vec[vec < 0][0]:g})")
        trials = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, s / np.where(trials > 0, trials, 1), 0.0)
        return y, trials, f"cbind({parsed.cbind[0]}, {parsed.cbind[1]})"

    expr = parsed.response
    name = expr.strip().strip("`")
    if name in data.columns:
        col = data[name]
        if pd.api.types.is_bool_dtype(col):
            return col.to_numpy(dtype=float), ones, name
        if family == "binomial" and not pd.api.types.is_numeric_dtype(col):
            levels, codes = _factor(col, name)
            if isinstance(col.dtype, pd.CategoricalDtype):
                levels = tuple(str(c) for c in col.cat.categories)
                codes = col.cat.codes.to_numpy()
            if len(levels) != 2:
                raise DataError(
                    f"response '{name}' must have two levels for the binomial family; "
                    f"it has {len(levels)}: {', '.join(levels[:5])}"
                )
            return (codes == 1).astype(float), ones, name
        if not pd.api.types.is_numeric_dtype(col):
            raise DataError(f"response '{name}' must be numeric for the {family} family")
        y = col.to_numpy(dtype=float)
    else:
        y = _eval_numeric(expr, data, "response")
    return y, ones, expr


def _check_support(y, trials, weights_given: bool, family: str, name: str) -> None:
    if not np.all(np.isfinite(y)):
        raise DataError(f"response '{name}' has infinite values")
    if family == "binomial":
        bad = (y < 0) | (y > 1)
        if np.any(bad):
            raise DataError(
                f"response '{name}' must lie in [0, 1] for the binomial family "
                f"(0/1, or a proportion with weights=trials); found {y[bad][0]:g}"
            )
        frac = (y > 0) & (y < 1) & (trials == 1)
        if np.any(frac) and not weights_given:
            raise DataError(
                f"response '{name}' holds proportions (e.g. {y[frac][0]:g}); give the number "
                "of trials with weights= or write cbind(successes, failures)"
            )
    elif family == "poisson":
        if np.any(y < 0):
            raise DataError(f"response '{name}' has negative counts (e.g. {y[y < 0][0]:g})")
        if np.any(y != np.round(y)):
            warnings.warn(
                f"response '{name}' has non-integer counts (e.g. {y[y != np.round(y)][0]:g}) "
                "for the poisson family",
                DataWarning,
                stacklevel=4,
            )


def _vector_arg(arg, data: pd.DataFrame, what: str) -> tuple[np.ndarray | None, str | None]:
    """weights= / offset= as a column name or an array of the data's length."""
    if arg is None:
        return None, None
    if isinstance(arg, str):
        if arg not in data.columns:
            raise DataError(f"{what}= names the column '{arg}', which is not in the data")
        return data[arg].to_numpy(dtype=float), arg
    vec = np.asarray(arg, dtype=float).ravel()
    if vec.shape[0] != len(data):
        raise DataError(f"{what}= has {vec.shape[0]} values but the data have {len(data)} rows")
    return vec, None


# ------------------------------------------------------------------------------ the spec
@dataclass(frozen=True, eq=False)
class NewDesign:
    """X and Z blocks rebuilt for new data with the fitted model's encoding.

    ``codes[k]`` is -1 where a row's level of term ``k`` was not seen in the fit;
    ``new_levels[k]`` lists those levels.
    """

    X: np.ndarray
    offset: np.ndarray
    codes: tuple[np.ndarray, ...]
    Zvals: tuple[np.ndarray, ...]
    new_levels: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """Everything the likelihood needs, fixed once built.

    Attributes
    ----------
    formula : ParsedFormula
    family : str
    response_name : str
    y : ndarray (n,)
        Response on the mean scale (binomial: proportion of successes).
    weights : ndarray (n,)
        Prior weights (binomial: trials × user weights).
    offset : ndarray (n,)
    X : ndarray (n, p)
    x_names : tuple of str
    terms : tuple of ReTerm
        In lme4's order (decreasing number of levels when the formula order is not).
    n_dropped : int
        Rows removed for missing values.
    row_index : pandas Index
        Labels of the rows used.
    """

    formula: ParsedFormula
    family: str
    response_name: str
    y: np.ndarray
    weights: np.ndarray
    offset: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    fixed_spec: Any
    terms: tuple[ReTerm, ...]
    n_dropped: int
    row_index: pd.Index
    variables: tuple[str, ...]
    user_weights: bool = False
    dropped_x: tuple[str, ...] = ()
    frame: pd.DataFrame | None = None  # the used columns of the rows used (for counterfactuals)
    meta: dict = field(default_factory=dict)

    @property
    def nobs(self) -> int:
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])

    @property
    def ntheta(self) -> int:
        return int(sum(t.ntheta for t in self.terms))

    @property
    def ngroups(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.terms:
            out.setdefault(t.group, t.nlevels)
        return out

    def theta_slices(self) -> list[slice]:
        out, start = [], 0
        for t in self.terms:
            out.append(slice(start, start + t.ntheta))
            start += t.ntheta
        return out

    def theta_lower(self) -> np.ndarray:
        return np.concatenate([t.theta_lower() for t in self.terms])

    def theta_start(self) -> np.ndarray:
        return np.concatenate([t.theta_start() for t in self.terms])

    def theta_names(self) -> list[str]:
        return [n for t in self.terms for n in t.theta_names()]

    @property
    def single_factor(self) -> bool:
        """True when all random effects hang on one grouping factor in one term."""
        return len(self.terms) == 1

    def design_for(self, newdata: pd.DataFrame, offset=None) -> NewDesign:
        """Rebuild X and the Z blocks for ``newdata`` with this model's encoding."""
        if not isinstance(newdata, pd.DataFrame):
            raise DataError("newdata must be a pandas DataFrame")
        needed = set(_required(self.formula.fixed, "the fixed part"))
        for t in self.terms:
            needed |= set(t.group_vars)
            needed |= set(_required(t.lhs_spec.formula.__str__(), t.text))
        for o in self.formula.offsets:
            needed |= set(_required(f"0 + I({o})", f"offset({o})"))
        missing = sorted(v for v in needed if v not in newdata.columns)
        if missing:
            raise DataError(f"newdata lacks the column(s) {', '.join(map(repr, missing))}")
        Xdf = _model_matrix("", newdata, "the fixed part", spec=self.fixed_spec)
        Xdf.columns = _rename(Xdf.columns)
        X = Xdf[list(self.x_names)].to_numpy(dtype=float)
        off = np.zeros(len(newdata))
        for o in self.formula.offsets:
            off = off + _eval_numeric(o, newdata, "offset")
        if offset is not None:
            off = off + np.asarray(offset, dtype=float)
        codes, zvals, new = [], [], []
        for t in self.terms:
            labels, c = _grouping(newdata, t.group_vars)
            lookup = {lv: i for i, lv in enumerate(t.levels)}
            mapped = np.array([lookup.get(labels[k], -1) for k in range(len(labels))])
            codes.append(mapped[c] if len(c) else c)
            new.append(tuple(lv for lv in labels if lv not in lookup))
            zm = _model_matrix("", newdata, t.text, spec=t.lhs_spec).to_numpy(dtype=float)
            if t.columns is not None:
                zm = zm[:, list(t.columns)]
            zvals.append(zm)
        return NewDesign(X, off, tuple(codes), tuple(zvals), tuple(new))


def _check_finite(M: np.ndarray, names, what: str) -> None:
    bad = ~np.isfinite(M)
    if bad.any():
        j = int(np.nonzero(bad.any(axis=0))[0][0])
        v = M[bad[:, j], j][0]
        raise DataError(f"{what} '{names[j]}' has non-finite values (e.g. {v:g}); remove or recode them")


def _drop_collinear(X: np.ndarray, names: tuple[str, ...]):
    from scipy.linalg import qr

    if X.shape[1] == 0:
        return X, names, ()
    _q, r, piv = qr(X, mode="economic", pivoting=True)
    d = np.abs(np.diag(r))
    tol = d.max() * max(X.shape) * np.finfo(float).eps * 1e3 if d.size else 0
    rank = int(np.sum(d > tol))
    if rank == X.shape[1]:
        return X, names, ()
    keep = np.sort(piv[:rank])
    dropped = tuple(names[i] for i in sorted(piv[rank:]))
    warnings.warn(
        f"fixed-effect model matrix is rank deficient; dropping {len(dropped)} column(s): "
        f"{', '.join(dropped)}",
        DataWarning,
        stacklevel=4,
    )
    return X[:, keep], tuple(names[i] for i in keep), dropped


def build_spec(
    formula: str | ParsedFormula,
    data: pd.DataFrame,
    family: str = "binomial",
    weights=None,
    offset=None,
) -> ModelSpec:
    """Formula + data → :class:`ModelSpec`.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"y ~ x + (1 + x | g)"``.
    data : pandas.DataFrame
    family : str
        ``"binomial"``, ``"poisson"`` or ``"gaussian"`` (decides how the response is read).
    weights, offset : str or array-like, optional
        A column name or a vector of the data's length.

    Raises
    ------
    FormulaError, DataError
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if not parsed.random:
        raise FormulaError(
            f"the formula '{parsed.text}' has no random-effect term such as (1 | group); "
            "for a model without random effects use a GLM (e.g. statsmodels.formula.api.glm)"
        )

    # 1. the variables the model uses
    used: dict[str, str] = {}
    resp_exprs = list(parsed.cbind) if parsed.cbind else [parsed.response]
    for e in resp_exprs:
        name = e.strip().strip("`")
        if name in data.columns:
            used.setdefault(name, "the response")
        else:
            for v in _required(f"0 + I({e})", f"the response '{e}'"):
                used.setdefault(v, f"the response '{e}'")
    for v in _required(parsed.fixed, "the fixed part"):
        used.setdefault(v, f"the fixed part '{parsed.fixed}'")
    for o in parsed.offsets:
        for v in _required(f"0 + I({o})", f"offset({o})"):
            used.setdefault(v, f"offset({o})")
    for t in parsed.random:
        for v in _required(t.lhs, t.text):
            used.setdefault(v, f"the term {t.text}")
        for v in t.group_vars:
            used.setdefault(v, f"the term {t.text}")
    for v, where in used.items():
        if v not in data.columns:
            called = re.search(rf"(?<![\w.`]){re.escape(v)}\s*\(", parsed.text)
            kind = "function" if called else "column"
            raise FormulaError(f"unknown {kind} '{v}' in {where}")

    w_user, w_col = _vector_arg(weights, data, "weights")
    off_user, off_col = _vector_arg(offset, data, "offset")

    # 2. drop incomplete rows (lme4's na.omit), counted
    cols = list(used)
    mask = ~data[cols].isna().any(axis=1).to_numpy()
    if w_user is not None:
        mask &= ~np.isnan(w_user)
    if off_user is not None:
        mask &= ~np.isnan(off_user)
    n_dropped = int((~mask).sum())
    if len(data) == 0:
        raise DataError("the data frame has no rows")
    if not mask.any():
        raise DataError(
            f"no rows left after dropping the {n_dropped} with a missing value in "
            f"{', '.join(cols)}"
        )
    d = data.loc[mask] if n_dropped else data
    if w_user is not None:
        w_user = w_user[mask]
        if np.any(w_user < 0):
            raise DataError(f"weights must be non-negative; found {w_user[w_user < 0][0]:g}")
    if off_user is not None:
        off_user = off_user[mask]

    # 3. response
    y, trials, resp_name = _response(parsed, d, family)
    _check_support(y, trials, w_user is not None, family, resp_name)
    pw = trials * (w_user if w_user is not None else 1.0)

    off = np.zeros(len(d)) if off_user is None else off_user.copy()
    for o in parsed.offsets:
        off = off + _eval_numeric(o, d, "offset")

    # 4. fixed effects
    Xdf = _model_matrix(parsed.fixed, d, f"the fixed part '{parsed.fixed}'")
    fixed_spec = Xdf.model_spec
    x_names = _rename(Xdf.columns)
    X = Xdf.to_numpy(dtype=float)
    _check_finite(X, x_names, "fixed-effect column")
    if not np.all(np.isfinite(off)):
        raise DataError(f"the offset has non-finite values (e.g. {off[~np.isfinite(off)][0]:g})")
    if not np.all(np.isfinite(pw)):
        raise DataError("weights= has infinite values")
    if family == "gaussian" and np.ptp(y) == 0:
        raise DataError(f"response '{resp_name}' is constant ({y[0]:g}); there is nothing to model")
    X, x_names, dropped_x = _drop_collinear(X, x_names)

    # 5. random-effect terms
    raw_terms: list[ReTerm] = []
    for rt in parsed.random:
        mm = _model_matrix(rt.lhs, d, f"the term {rt.text}")
        names = _rename(mm.columns)
        if len(names) == 0:
            raise FormulaError(f"the term {rt.text} has no random-effect column")
        Z = mm.to_numpy(dtype=float)
        _check_finite(Z, names, f"column of the term {rt.text}:")
        levels, codes = _grouping(d, rt.group_vars)
        if len(levels) < 2:
            raise DataError(
                f"grouping factor '{rt.group}' has a single level ({levels[0]}); a random effect needs "
                "at least two groups"
            )
        chunks = [(None, names, Z)] if rt.correlated else [
            ((j,), (names[j],), Z[:, [j]]) for j in range(len(names))
        ]
        for cols_kept, cn, zv in chunks:
            raw_terms.append(
                ReTerm(
                    group=rt.group,
                    label=rt.group,
                    group_vars=rt.group_vars,
                    levels=levels,
                    codes=_freeze(codes),
                    col_names=cn,
                    Zvals=_freeze(zv),
                    lhs_spec=mm.model_spec,
                    columns=cols_kept,
                    text=rt.text,
                )
            )
    nl = np.array([t.nlevels for t in raw_terms])
    if np.any(np.diff(nl) > 0):  # lme4's mkReTrms: rev(order(nl))
        order = np.argsort(nl, kind="stable")[::-1]
        raw_terms = [raw_terms[i] for i in order]
    seen: dict[str, int] = {}
    terms = []
    for t in raw_terms:
        k = seen.get(t.group, 0)
        seen[t.group] = k + 1
        label = t.group if k == 0 else f"{t.group}.{k}"
        terms.append(ReTerm(**{**t.__dict__, "label": label}))
    for t in terms:
        if t.nlevels >= len(d) and t.q > 1:
            raise DataError(
                f"the term {t.text} has {t.nlevels} levels for {len(d)} observations: "
                "its random effects are not identifiable"
            )

    return ModelSpec(
        formula=parsed,
        family=family,
        response_name=resp_name,
        y=_freeze(y),
        weights=_freeze(pw),
        offset=_freeze(off),
        X=_freeze(X),
        x_names=x_names,
        fixed_spec=fixed_spec,
        terms=tuple(terms),
        n_dropped=n_dropped,
        row_index=d.index,
        variables=tuple(cols),
        user_weights=w_user is not None,
        dropped_x=dropped_x,
        frame=d[cols].copy(),
        meta={"weights_column": w_col, "offset_column": off_col},
    )
