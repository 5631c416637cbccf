"""The frozen model specification: formula + data → :class:`ModelSpec` (lme4's ``lFormula``).

Steps, each a public function in its own module: the model frame and missing rows
(:mod:`.frame`), the response (:mod:`.response`), grouping factors (:mod:`.grouping`), the
fixed-effect matrix (:mod:`.matrices`, formulaic) and the random-effect terms (:mod:`.random`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula import ParsedFormula, parse_formula
from ..timing import stage
from .checks import as_frame
from .frame import model_frame, used_variables
from .identify import check_counts, check_identifiable
from .matrices import check_finite, drop_collinear, eval_numeric, model_matrix, rename_intercept, required_variables
from .newdata import NewDesign, new_design
from .ordinal import drop_intercept, read_ordinal_response
from .random import frozen, random_terms
from .response import read_response
from .reterms import ReTerm, term_slices
from .separation import ordinal_separated_columns, separated_columns, warn_separation

__all__ = ["ModelSpec", "NewDesign", "model_spec", "fixed_matrix"]


# ------------------------------------------------------------------------------ the spec
@dataclass(frozen=True, eq=False)
class ModelSpec:
    """Everything the likelihood needs, fixed once built.

    Attributes
    ----------
    formula : ParsedFormula
    family : str
        The family's name (the family object itself travels in the fit request).
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
    levels : tuple of str
        Ordinal families: the response categories in scale order (``y`` holds their codes
        0..K−1 and ``X`` has no intercept column); empty otherwise.
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
    zi_formula: str | None = None  # the zero part's right-hand side ("~ x"), if any
    zi_X: np.ndarray | None = None
    zi_names: tuple[str, ...] = ()
    zi_fixed_spec: Any = None
    zi_terms: tuple[ReTerm, ...] = ()  # the zero part's random-effect terms (``ziformula="~ x + (1 | g)"``)
    levels: tuple[str, ...] = ()
    disp_formula: str | None = None  # the dispersion model's right-hand side ("~ h"), if any
    disp_X: np.ndarray | None = None
    disp_names: tuple[str, ...] = ()
    disp_fixed_spec: Any = None

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
        return term_slices(self.terms)

    @property
    def zi_ntheta(self) -> int:
        return int(sum(t.ntheta for t in self.zi_terms))

    def zi_theta_slices(self) -> list[slice]:
        """Each zero-part term's slice of the zero part's theta."""
        return term_slices(self.zi_terms)

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

    def design_for(self, newdata: pd.DataFrame, offset=None, theta=None) -> NewDesign:
        """Rebuild X and the Z blocks for ``newdata`` with this model's encoding (``theta``: krig
        new positions); see :func:`glmm_nb.design.newdata.new_design`."""
        return new_design(self, newdata, offset=offset, theta=theta)


def fixed_matrix(parsed: ParsedFormula, d: pd.DataFrame):
    """The fixed-effect matrix: ``(X, names, formulaic spec, dropped collinear names)``."""
    Xdf = model_matrix(parsed.fixed, d, f"the fixed part '{parsed.fixed}'")
    names = rename_intercept(Xdf.columns)
    X = Xdf.to_numpy(dtype=float)
    with stage("checks"):
        check_finite(X, names, "fixed-effect column")
        if X.shape[1] > X.shape[0]:
            raise DataError(
                f"the fixed part '{parsed.fixed}' has {X.shape[1]} columns but there are only {X.shape[0]} "
                "observations; simplify the fixed part or collect more data"
            )
        X, names, dropped = drop_collinear(X, names)
    return X, names, Xdf.model_spec, dropped


def disp_rhs(dispformula: str) -> str:
    """The right-hand side of a ``dispformula`` (``"~ h"``): fixed effects only."""
    if not isinstance(dispformula, str) or not dispformula.strip():
        raise FormulaError(f"dispformula must be a formula such as '~ h', not {dispformula!r}")
    rhs = dispformula.strip()
    if not rhs.startswith("~"):
        raise FormulaError(f"dispformula '{dispformula}' must be a right-hand side such as '~ h'")
    rhs = rhs[1:].strip()
    if "|" in rhs or "~" in rhs:
        raise FormulaError(f"dispformula '{dispformula}' takes fixed effects only (no response, no random-effect term)")
    return rhs or "1"


def new_disp_matrix(spec: "ModelSpec", newdata: pd.DataFrame) -> np.ndarray:
    """The dispersion model's design for new data, through the fitted encoding."""
    Ddf = model_matrix("", as_frame(newdata, "newdata"), "the dispersion model", spec=spec.disp_fixed_spec)
    Ddf.columns = rename_intercept(Ddf.columns)
    Xd = Ddf[list(spec.disp_names)].to_numpy(dtype=float)
    if not np.all(np.isfinite(Xd)):
        raise DataError("newdata has missing values in the dispersion model's columns")
    return Xd


def zi_rhs(ziformula: str) -> str:
    """The right-hand side of a zero-part formula (``"~ x"`` or ``"x"``), checked."""
    if not isinstance(ziformula, str) or not ziformula.strip():
        raise FormulaError(f"ziformula must be a formula such as '~ 1' or '~ x', not {ziformula!r}")
    rhs = ziformula.strip()
    if rhs.startswith("~"):
        rhs = rhs[1:].strip()
    elif "~" in rhs:
        raise FormulaError(f"ziformula '{ziformula}' has a response; write only the right-hand side ('~ x')")
    return rhs or "1"


def zi_parsed(zi: str) -> ParsedFormula:
    """A zero-part right-hand side with random-effect terms (``x + (1 | g)``), split as a formula."""
    parsed = parse_formula(f"zero_part__ ~ {zi}")
    if parsed.offsets:
        raise FormulaError(f"ziformula '~ {zi}' has an offset; the zero part takes none")
    return parsed


def model_spec(formula: str | ParsedFormula, data: pd.DataFrame, family, weights=None, offset=None,
               ziformula: str | None = None, dispformula: str | None = None) -> ModelSpec:
    """Formula + data → :class:`ModelSpec`.

    Parameters
    ----------
    formula : str
        lme4 syntax, e.g. ``"y ~ x + (1 + x | g)"``.
    data : pandas.DataFrame
    family : glmm_nb.families.Family
        Decides how the response is read and checked.
    weights, offset : str or array-like, optional
        A column name or a vector of the data's length.

    Raises
    ------
    FormulaError, DataError
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    data = as_frame(data)
    if not parsed.random:
        raise FormulaError(
            f"the formula '{parsed.text}' has no random-effect term such as (1 | group); "
            "for a model without random effects use a GLM (e.g. statsmodels.formula.api.glm)"
        )
    zi = zi_rhs(ziformula) if ziformula is not None else None
    zi_p = zi_parsed(zi) if zi is not None and "|" in zi else None
    zi_fix = zi_p.fixed if zi_p is not None else zi
    extra = tuple(required_variables(zi_fix, "the zero part")) if zi else ()
    if zi_p is not None:  # the zero part's random-effect terms: their columns and grouping factors
        for rt in zi_p.random:
            extra += tuple(required_variables(rt.lhs, "the zero part")) + tuple(rt.group_vars)
    dz = disp_rhs(dispformula) if dispformula is not None else None
    extra += tuple(required_variables(dz, "the dispersion model")) if dz else ()
    used = used_variables(parsed, data, extra=extra)
    mf = model_frame(data, used, weights=weights, offset=offset)
    d = mf.data

    levels: tuple[str, ...] = ()
    if family.ordinal:  # ordered categories: codes 0..K-1, the labels kept
        y, levels, resp_name = read_ordinal_response(parsed, d)
        trials = np.ones(len(d))
    else:
        y, trials, resp_name = read_response(parsed, d, family)
    pw = trials * (mf.weights if mf.weights is not None else 1.0)
    with stage("checks"):
        family.check_response(y, trials, mf.weights is not None, resp_name)
        check_counts(parsed, y, trials, pw, family, resp_name)
    off = np.zeros(len(d)) if mf.offset is None else mf.offset.copy()
    for o in parsed.offsets:
        off = off + eval_numeric(o, d, "offset")

    X, x_names, fixed_spec, dropped_x = fixed_matrix(parsed, d)
    if family.ordinal:  # the thresholds take the intercept's place
        X, x_names = drop_intercept(X, x_names)
    if not np.all(np.isfinite(off)):
        raise DataError(f"the offset has non-finite values (e.g. {off[~np.isfinite(off)][0]:g})")
    if not np.all(np.isfinite(pw)):
        raise DataError("weights= has infinite values")
    terms = random_terms(parsed, d)
    with stage("checks"):
        check_identifiable(terms, len(d), X.shape[1], family)
        separated = separated_columns(X, y, pw, x_names) if family.reads_cbind else ()
        if family.ordinal:
            separated = ordinal_separated_columns(X, y, pw, x_names, len(levels))
    if separated:
        warn_separation(separated)
    zi_parts = {}
    if zi is not None:
        Zdf = model_matrix(zi_fix, d, f"the zero part '~ {zi}'")
        zn = rename_intercept(Zdf.columns)
        Zx = Zdf.to_numpy(dtype=float)
        check_finite(Zx, zn, "zero-part column")
        Zx, zn, _dropped = drop_collinear(Zx, zn)
        zi_parts = {"zi_formula": f"~ {zi}", "zi_X": frozen(Zx), "zi_names": zn, "zi_fixed_spec": Zdf.model_spec,
                    "zi_terms": random_terms(zi_p, d) if zi_p is not None else ()}
    if dz is not None:
        Ddf = model_matrix(dz, d, f"the dispersion model '~ {dz}'")
        dn = rename_intercept(Ddf.columns)
        Dx = Ddf.to_numpy(dtype=float)
        check_finite(Dx, dn, "dispersion-model column")
        Dx, dn, _dropped = drop_collinear(Dx, dn)
        zi_parts.update(disp_formula=f"~ {dz}", disp_X=frozen(Dx), disp_names=dn, disp_fixed_spec=Ddf.model_spec)
    return ModelSpec(
        formula=parsed,
        family=family.name,
        response_name=resp_name,
        y=frozen(y),
        weights=frozen(pw),
        offset=frozen(off),
        X=frozen(X),
        x_names=x_names,
        fixed_spec=fixed_spec,
        terms=terms,
        n_dropped=mf.n_dropped,
        row_index=d.index,
        variables=mf.columns,
        user_weights=mf.weights is not None,
        dropped_x=dropped_x,
        frame=d[list(mf.columns)].copy(),
        meta={"weights_column": mf.weights_column, "offset_column": mf.offset_column,
              "weights_vector": mf.weights, "offset_vector": mf.offset, "separated": separated},
        levels=levels,
        **zi_parts,
    )
