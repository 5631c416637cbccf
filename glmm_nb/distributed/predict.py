r"""Predictions of a Dask fit, partition by partition.

:math:`\eta = X\hat\beta + o + \sum_k z_k'\hat b_{k,j(i)}` with the fit's encoding (the plan's
formulaic specs) and the conditional modes of *every* cluster (``re="conditional"``; a level
not seen in the fit gets :math:`b = 0`, the typical cluster), :math:`\eta = X\hat\beta + o`
(``re="none"``), or the population average :math:`E_b[g^{-1}(\eta + z'b)]` by 40-point
Gauss-Hermite quadrature over :math:`z'b \sim N(0, \sum_k z_k'S_kz_k)` (``re="marginal"``).
On a Dask frame the result is a Dask Series aligned with its rows; on a pandas frame an array.

Zero-inflated and hurdle models: the zero part's :math:`\zeta = X_{zi}\hat\gamma` (+ its own
random effects' modes for ``re="conditional"``) gives ``type="zero_prob"``
(:math:`\pi = \mathrm{expit}\,\zeta`), ``"conditional"`` (the count part's mean) and
``"response"`` (the mean with the zero part), as :func:`glmm_nb.inference.predict` in memory.
``type="dispersion"``: each row's dispersion on glmmTMB's sigma scale (a dispersion model's
:math:`\exp(X_d\hat\delta)`), as :func:`glmm_nb.api.predict_dispersion`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from scipy import special

from ..design import as_frame, grouping_codes, model_matrix, numpy_dtypes, rename_intercept
from ..design.matrices import eval_numeric
from ..design.newdata import check_new_levels
from ..design.positions import PositionSpec
from ..errors import DataError, ModelError

__all__ = ["Predictor", "ZeroPart", "DispPart", "predict_dask"]


@dataclass(frozen=True, eq=False)
class Predictor:
    """Everything a partition needs to predict (small: coefficients, modes, specs)."""

    fixed_spec: Any
    x_names: tuple[str, ...]
    fixef: np.ndarray
    offsets: tuple[str, ...]
    offset_column: str | None
    terms: tuple  # ReTable per term
    covs: tuple  # (q, q) covariance of b per term
    link: Any
    type: str = "response"
    re: str = "conditional"
    with_offset_column: bool = False
    zero: Any = None  # a :class:`ZeroPart` for zero-inflated and hurdle models
    disp: Any = None  # a :class:`DispPart` for type="dispersion"
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __dask_tokenize__(self):
        return self.token

    def _z(self, df: pd.DataFrame, t) -> np.ndarray:
        if isinstance(t.lhs_spec, PositionSpec):  # a distance-based term: its fitted positions' indicators
            # a position the fit did not see: its kriging weights for the conditional modes (as in
            # memory), refused for re="marginal" (the in-memory predict() refuses it too)
            krig = None if self.re != "conditional" else (lambda xy: t.structure.kriging(t.theta, xy))
            return t.lhs_spec.matrix(df, f"the term {t.text}", kriging=krig)[0].to_numpy(dtype=float)
        Z = model_matrix("", df, f"the term for {t.group}", spec=t.lhs_spec).to_numpy(dtype=float)
        return Z[:, list(t.columns)] if t.columns is not None else Z

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        if df.index.name is not None and df.index.name not in df.columns:
            df = df.reset_index()  # a named index (the cluster column after set_index) as a column
        df = numpy_dtypes(df)  # Dask's string dtype as object, which the fitted encoding reads as a factor
        if self.type == "dispersion":
            return self.disp(df)
        eta = _part_design(df, self.fixed_spec, self.x_names, "the fixed part", "the fixed-effect") @ self.fixef
        for o in self.offsets:
            eta = eta + eval_numeric(o, df, "offset")
        if self.with_offset_column and self.offset_column is not None:
            eta = eta + df[self.offset_column].to_numpy(dtype=float)
        if self.re == "conditional":
            eta = eta + _modes_part(df, self.terms, self._z)
        zeta = None if self.zero is None else self.zero.zeta(df, self.re, self._z)
        if self.type == "zero_prob":
            return special.expit(zeta)
        if self.type == "link" and self.re != "marginal":
            return eta
        fam = self.zero.family.with_zeta(zeta) if self.zero is not None else None
        if self.re == "marginal" and (self.link.name != "identity" or fam is not None):
            v = np.zeros(len(df))
            for t, S in zip(self.terms, self.covs):
                Z = self._z(df, t)
                v = v + np.einsum("na,ab,nb->n", Z, S, Z)
            x, w = hermegauss(40)
            mu = self.link.inverse(eta[:, None] + np.sqrt(v)[:, None] * x[None, :])
            if fam is not None and self.type == "response":
                mu = fam.mean(mu)
            mu = mu @ (w / np.sqrt(2 * np.pi))
            return self.link.link(mu) if self.type == "link" else mu
        if self.type == "link":
            return eta
        mu = self.link.inverse(eta)
        return fam.mean(mu) if fam is not None and self.type == "response" else mu


def _modes_part(df: pd.DataFrame, terms, zfun) -> np.ndarray:
    """sum_k z_k'b_k at the conditional modes of the rows' clusters (0 for a level the fit did not see)."""
    out = np.zeros(len(df))
    for t in terms:
        ok = df[list(t.group_vars)].notna().all(axis=1).to_numpy()
        row = np.full(len(df), -1)
        if ok.any():
            labels, codes = grouping_codes(df[ok], t.group_vars)
            row[ok] = t.levels.get_indexer(pd.Index(labels))[codes]
        known = row >= 0
        Z = zfun(df, t)
        out = out + np.where(known, np.einsum("nq,nq->n", Z, t.b[np.where(known, row, 0)]), 0.0)
    return out


def _part_design(df: pd.DataFrame, spec, names: tuple[str, ...], part: str, whose: str) -> np.ndarray:
    """The new rows' matrix of one linear predictor (the fixed part, the zero part or the
    dispersion model) in the fitted encoding and column order; unseen levels and missing columns
    are a DataError naming them."""
    check_new_levels(spec, df, part)
    mm = model_matrix("", df, part, spec=spec)
    mm.columns = rename_intercept(mm.columns)
    missing = [c for c in names if c not in mm.columns]
    if missing:
        raise DataError(f"newdata does not give {whose} column(s) {', '.join(missing)}")
    return mm[list(names)].to_numpy(dtype=float)


@dataclass(frozen=True, eq=False)
class DispPart:
    """The dispersion per row on glmmTMB's sigma scale (as :func:`glmm_nb.api.predict_dispersion`):
    the dispersion model's exp(X_d delta) through the fitted family, else the one value."""

    value: float | None = None
    fixed_spec: Any = None
    names: tuple[str, ...] = ()
    family: Any = None

    def __call__(self, df: pd.DataFrame) -> np.ndarray:
        if self.fixed_spec is None:
            return np.full(len(df), self.value)
        X = _part_design(df, self.fixed_spec, self.names, "the dispersion model", "the dispersion model's")
        return self.family.dispersion_at(X)


@dataclass(frozen=True, eq=False)
class ZeroPart:
    """The zero part of a zero-inflated or hurdle fit: its encoding, coefficients, random
    effects' modes (ReTables) and the fitted family (the count part at its dispersion)."""

    fixed_spec: Any
    names: tuple[str, ...]
    gamma: np.ndarray
    terms: tuple
    family: Any

    def zeta(self, df: pd.DataFrame, re: str, zfun) -> np.ndarray:
        zeta = _part_design(df, self.fixed_spec, self.names, "the zero part", "the zero part's") @ self.gamma
        if self.terms and re == "conditional":
            zeta = zeta + _modes_part(df, self.terms, zfun)
        return zeta


def _series(df: pd.DataFrame, predictor: Predictor, name: str) -> pd.Series:
    return pd.Series(predictor(df) if len(df) else np.zeros(0), index=df.index, name=name)


def predict_dask(m, newdata=None, type: str = "response", re: str = "conditional"):
    """Predictions of a Dask fit ``m`` for ``newdata`` (default: the data fitted).

    Returns a Dask Series for Dask data (compute it, or write it with ``to_parquet``), an
    ndarray for a pandas frame.
    """
    zero_model = m.request.family.has_zero_part
    types = (("link", "response", "conditional", "zero_prob") if zero_model else ("link", "response")) + ("dispersion",)
    if type not in types:
        extra = "" if zero_model else " ('conditional' and 'zero_prob' are for zero-inflated and hurdle models)"
        raise ModelError(f"type must be {', '.join(map(repr, types))}, not {type!r}{extra}")
    if re not in ("conditional", "none", "marginal"):
        raise ModelError(f"re must be 'conditional', 'none' or 'marginal', not {re!r}")
    if re == "marginal" and m.spec.zi_terms:
        raise ModelError(f"re='marginal' is not available with random effects in the zero part (ziformula "
                         f"{m.spec.zi_formula!r}): use re='conditional' or re='none'")
    info = m.extras["dask"]
    disp = None
    if type == "dispersion":
        fam = m.fitted_family
        if fam.has_disp_model:
            disp = DispPart(fixed_spec=info.plan.disp.fixed_spec, names=tuple(m.spec.disp_names), family=fam)
        elif fam.profiled_lmm:
            disp = DispPart(value=float(m.sigma))
        elif fam.n_dispersion:
            disp = DispPart(value=float(m.dispersion.iloc[0]))
        else:
            raise ModelError(f"the {m.family} family has no dispersion parameter")
    covs = tuple(m.covariance_matrices()[t.label].to_numpy() for t in m.spec.terms)
    zero = None
    if zero_model:
        zero = ZeroPart(fixed_spec=info.plan.zi.fixed_spec, names=tuple(m.spec.zi_names), gamma=m.zi_fixef.to_numpy(),
                        terms=tuple(t for t in info.terms if t.zero_part), family=m.fitted_family)
    pred = Predictor(fixed_spec=info.plan.fixed_spec, x_names=tuple(m.spec.x_names), fixef=m.fixef.to_numpy(),
                     offsets=tuple(m.spec.formula.offsets), offset_column=info.plan.offset_column,
                     terms=tuple(t for t in info.terms if not t.zero_part), covs=covs, link=m.fitted_family.link,
                     type=type, re=re, with_offset_column=newdata is None, zero=zero, disp=disp)
    data = info.data if newdata is None else newdata
    if not hasattr(data, "map_partitions"):  # a polars/Arrow table: converted once
        data = as_frame(data, "newdata")
    if isinstance(data, pd.DataFrame):
        return pred(data)
    if not hasattr(data, "map_partitions"):
        raise DataError(f"newdata must be a Dask or pandas DataFrame, not {data.__class__.__name__}")
    name = "fitted" if newdata is None and re == "conditional" and type != "dispersion" else "predicted"
    return data.map_partitions(_series, pred, name, meta=pd.Series(dtype=float, name=name))
