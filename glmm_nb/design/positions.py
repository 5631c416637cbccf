"""Coordinates of a spatial or continuous-time term: ``pos(x, y) + 0`` (glmmTMB's ``numFactor``).

As in glmmTMB, each distinct position is one column of the term (an indicator), and the term's
covariance between two columns is a function of the distance between their positions
(:mod:`.covstruct`). The term is dense in its positions: ``J`` groups × ``q`` positions hold
``J q²`` covariance entries, so :data:`MAX_POSITIONS` and :data:`MAX_BYTES` bound it (an
approximate large-``q`` path, e.g. a nearest-neighbour or SPDE field, is future work).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError

__all__ = ["PositionSpec", "position_spec", "check_positions", "distinct_positions", "MAX_POSITIONS", "MAX_BYTES"]

MAX_POSITIONS = 3000  # measured: one field of 300 positions fits in ~2 s, 1,000 in ~35 s (time ∝ n³)
MAX_BYTES = 2.0e9


def _label(row) -> str:
    return "(" + ",".join(f"{v:.10g}" for v in row) + ")"


class PositionSpec:
    """Rebuilds a position term's indicator columns for new data (the fitted positions only).

    Attributes
    ----------
    columns : tuple of str
        The coordinate columns.
    coords : ndarray (q, dim)
        The distinct positions of the fit, sorted.
    """

    def __init__(self, columns: tuple[str, ...], coords: np.ndarray):
        self.columns = tuple(columns)
        self.coords = coords
        self.variables_by_source = {"data": set(columns)}
        self.col_names = tuple("pos" + _label(r) for r in coords)  # as glmmTMB names those of a numFactor "pos"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The term's column names (as a formulaic spec's ``column_names``)."""
        return self.col_names

    def lookup(self, xy: np.ndarray) -> np.ndarray:
        """Each row's column among the fitted positions, -2 for a position the fit did not see
        (rows of ``xy`` finite; vectorized: one sort of the fitted and the given positions)."""
        q = len(self.coords)
        if not len(xy):
            return np.zeros(0, dtype=np.int64)
        _u, inv = np.unique(np.concatenate([self.coords, xy]), axis=0, return_inverse=True)
        inv = inv.ravel()
        col = np.full(int(inv.max()) + 1, -2, dtype=np.int64)
        col[inv[:q]] = np.arange(q)
        return col[inv[q:]]

    def indicators(self, data: pd.DataFrame, where: str) -> np.ndarray:
        """The (n, q) indicator matrix of rows whose positions are all among the fitted ones
        (a partition of a Dask fit against the plan's global positions)."""
        xy = _coordinates(data, self.columns, where)
        idx = self.lookup(xy)
        if np.any(idx < 0):
            bad = xy[np.nonzero(idx < 0)[0][0]]
            raise DataError(f"a row's position {_label(bad)} of {where} is not among the planned positions")
        Z = np.zeros((len(data), len(self.coords)))
        Z[np.arange(len(data)), idx] = 1.0
        return Z

    def matrix(self, data: pd.DataFrame, where: str, kriging=None) -> tuple[pd.DataFrame, np.ndarray]:
        """Indicator columns of the fitted positions, and the conditional variance each row adds.

        A position the fit did not see gets the kriging weights ``w`` (its row of Z, so that its
        effect is predicted as ``w'b`` from the fitted positions' effects) and the kriging variance,
        from ``kriging(coords) -> (w, var)``; without ``kriging`` (simulation of new effects) it is
        refused.
        """
        xy = _coordinates(data, self.columns, where)
        idx = np.full(len(data), -1, dtype=np.int64)
        ok = np.all(np.isfinite(xy), axis=1)
        idx[ok] = self.lookup(xy[ok])
        Z = np.zeros((len(data), len(self.coords)))
        var = np.zeros(len(data))
        new = np.nonzero(idx == -2)[0]
        if new.size:
            if kriging is None:
                raise DataError(
                    f"newdata has a position {_label(xy[new[0]])} of {where} that the fit did not see, and "
                    "no kriging was asked for (predict() and simulate() krig new positions)"
                )
            Z[new], var[new] = kriging(xy[new])
        rows = np.nonzero(idx >= 0)[0]
        Z[rows, idx[rows]] = 1.0
        Z[~ok] = np.nan
        return pd.DataFrame(Z, columns=list(self.col_names), index=data.index), var

    def unseen(self, data: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray]:
        """The distinct positions of ``data`` that the fit did not see, (m, dim), and each row's
        index among them (-1 for a fitted position or a missing coordinate)."""
        xy = _coordinates(data, self.columns, where)
        ok = np.all(np.isfinite(xy), axis=1)
        fresh = ok.copy()
        fresh[ok] = self.lookup(xy[ok]) == -2
        idx = np.full(len(data), -1, dtype=np.int64)
        if not fresh.any():
            return np.zeros((0, xy.shape[1])), idx
        uniq, inv = np.unique(xy[fresh], axis=0, return_inverse=True)
        idx[fresh] = inv.ravel()
        return uniq, idx


def _coordinates(data: pd.DataFrame, columns, where: str) -> np.ndarray:
    for c in columns:
        col = data[c]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise DataError(f"coordinate column '{c}' of {where} must be numeric, not {col.dtype}")
    xy = data[list(columns)].to_numpy(dtype=float)
    if np.any(np.isinf(xy)):
        raise DataError(f"a coordinate column of {where} has infinite values")
    return xy


def position_spec(data: pd.DataFrame, columns: tuple[str, ...], where: str, ngroups: int) -> tuple[PositionSpec, np.ndarray]:
    """The spec and the (n, q) indicator matrix of a position term fitted on ``data``.

    Raises :class:`ModelError` naming the number of positions and the memory when the dense
    term would not fit (``ngroups`` × q² covariance entries, several copies).
    """
    xy = _coordinates(data, columns, where)
    coords, inv = distinct_positions(xy)
    check_positions(len(coords), ngroups, len(data), where)
    spec = PositionSpec(columns, coords)
    Z = np.zeros((len(data), len(coords)))
    Z[np.arange(len(data)), inv] = 1.0
    return spec, Z


def distinct_positions(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``xy`` (n, dim) in the order of the term's columns — sorted by the
    first coordinate, then the second … (``numpy.unique(axis=0)``) — and each row's index among
    them. A Dask plan applies it to the partitions' own distinct positions stacked, which gives
    the same columns as the whole data."""
    coords, inv = np.unique(np.asarray(xy, dtype=float), axis=0, return_inverse=True)
    return coords, inv.ravel()


def check_positions(q: int, ngroups: int, nrows: int, where: str, memory: bool = True) -> None:
    """Refuse a dense term of ``q`` positions over ``ngroups`` groups and ``nrows`` rows that
    would not fit: more than :data:`MAX_POSITIONS` positions, or (``memory``) more than
    :data:`MAX_BYTES` for its covariance blocks and indicator columns."""
    need = 8.0 * (4.0 * ngroups * q * q + 3.0 * nrows * q)
    if q > MAX_POSITIONS or (memory and need > MAX_BYTES):
        raise ModelError(
            f"{where} has n = {q} distinct positions in {ngroups} group(s): the exact (dense) covariance needs "
            f"about {need / 1e9:.1f} GB and {q}³ operations per evaluation; the exact path takes up to "
            f"{MAX_POSITIONS} positions within {MAX_BYTES / 1e9:.0f} GB (1,000 positions fit in about half a minute, "
            "time grows with n³; round or aggregate the coordinates — an approximate large-n spatial path is not "
            "implemented)"
        )
