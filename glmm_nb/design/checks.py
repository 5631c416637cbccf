"""Argument and input checks — the one place that validates what a user hands in.

Every check raises a glmm_nb error (:class:`~glmm_nb.errors.DataError` for data,
:class:`~glmm_nb.errors.ModelError` for options, :class:`~glmm_nb.errors.FormulaError` for
names) that names the argument or the column and says what was expected. Functions here are
used by the design stage, the pipeline, inference, marginal effects and reports alike.

Data frames: pandas DataFrames are fitted; polars frames, pyarrow tables and other Arrow /
interchange-protocol tables are converted once (:mod:`glmm_nb.design.convert`). pandas'
nullable and string dtypes (``df.convert_dtypes()``) become the numpy dtypes formulaic reads
(:func:`numpy_dtypes`); the caller's frame is never modified.
"""

from __future__ import annotations

import difflib
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError
from .convert import to_pandas

__all__ = ["as_frame", "numpy_dtypes", "check_names", "close_names", "check_bool", "check_int", "check_choice",
           "check_level", "check_seed", "check_column", "check_numeric_column", "RESERVED_NAMES",
           "check_agq_size", "check_options", "check_output_path", "CONTROL_KEYS", "MAX_AGQ_NODES", "MAX_AGQ_CELLS"]

RESERVED_NAMES = ("Intercept", "(Intercept)")
MAX_AGQ_NODES = 10_000  # nagq**q product-rule nodes per cluster
MAX_AGQ_CELLS = 50_000_000  # observations × nodes in one (n, K) array (400 MB of doubles)
CONTROL_KEYS = ("maxiter", "pirls_maxit", "progress")


def as_frame(data, what: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame: a pandas frame as it is, a polars/pyarrow/Arrow table
    converted once (:func:`glmm_nb.design.convert.to_pandas`); else a :class:`DataError`
    naming its type and what is accepted."""
    return to_pandas(data, what)


def numpy_dtypes(data: pd.DataFrame) -> pd.DataFrame:
    """A copy-on-need of ``data`` with pandas' nullable/extension dtypes turned into numpy's:
    ``Int64``/``Float64`` → float64 (NaN for ``<NA>``; int64 without missing values),
    ``boolean`` → bool (object with NaN when missing), ``string`` → object (NaN for ``<NA>``),
    pyarrow-backed numbers and text likewise. Categoricals and numpy columns are unchanged."""
    changed = {}
    for i, (name, col) in enumerate(data.items()):
        dt = col.dtype
        if isinstance(dt, pd.CategoricalDtype) or isinstance(dt, np.dtype):
            continue
        has_na = bool(col.isna().any())
        if pd.api.types.is_bool_dtype(dt):
            changed[i] = col.astype(object).where(~col.isna(), np.nan) if has_na else col.astype(bool)
        elif pd.api.types.is_integer_dtype(dt) and not has_na:
            changed[i] = col.astype(np.int64)
        elif pd.api.types.is_numeric_dtype(dt):
            changed[i] = col.astype("float64") if not has_na else col.to_numpy(dtype=float, na_value=np.nan)
        elif pd.api.types.is_string_dtype(dt):
            # pandas 3's default ``str`` and ``string[pyarrow]``: an object Series (an ndarray
            # would be inferred back to ``str`` on insertion)
            changed[i] = pd.Series(col.to_numpy(dtype=object, na_value=np.nan), index=col.index, dtype=object)
    if not changed:
        return data
    out = data.copy(deep=False)
    for i, values in changed.items():
        if isinstance(values, pd.Series) and values.dtype == object:
            out.isetitem(i, values)
        else:
            out.isetitem(i, np.asarray(values) if not isinstance(values, pd.Series) else values.to_numpy())
    return out


def close_names(name: str, names) -> str:
    """" (did you mean 'age'?)" when ``names`` holds something close to ``name``."""
    names = [str(n) for n in names]
    hits = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
    if not hits:
        lower = {n.lower(): n for n in names}
        hits = [lower[name.lower()]] if name.lower() in lower else []
    return f" (did you mean {' or '.join(map(repr, hits))}?)" if hits else ""


def check_names(data: pd.DataFrame, used) -> None:
    """Refuse ambiguous column names among the variables a model uses: duplicated names (the
    frame has two columns of that name) and ``Intercept`` (the name of the intercept)."""
    cols = pd.Index(data.columns)
    dup = cols[cols.duplicated()]
    for v in used:
        if v in dup:
            raise DataError(f"the data have {int((cols == v).sum())} columns named '{v}'; rename them so each "
                            "variable has its own name")
        if v in RESERVED_NAMES:
            raise FormulaError(f"a column named '{v}' clashes with the intercept's name '(Intercept)'; rename the "
                               "column (the intercept is included by default, '0 +' removes it)")


def check_bool(value, name: str) -> bool:
    """``value`` as a bool; True/False (numpy's too) only."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ModelError(f"{name} must be True or False, not {value!r}")


def check_int(value, name: str, minimum: int | None = None) -> int:
    """``value`` as an int (no bools, no floats), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ModelError(f"{name} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise ModelError(f"{name} must be at least {minimum}, not {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    """``value`` if it is one of the strings ``choices``."""
    if isinstance(value, str) and value in choices:
        return value
    raise ModelError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


def check_level(level, name: str = "level") -> float:
    """A confidence level strictly between 0 and 1."""
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, numbers.Real) or not 0 < float(level) < 1:
        raise ModelError(f"{name} must be a number between 0 and 1 (e.g. 0.95), not {level!r}")
    return float(level)


def check_seed(seed, name: str = "seed"):
    """A seed numpy accepts: None, a non-negative integer, a sequence of them, a SeedSequence
    or a Generator."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator)):
        return seed
    if isinstance(seed, (numbers.Integral, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ModelError(f"{name} must be a non-negative integer, not {seed!r}")
        return int(seed)
    if isinstance(seed, (list, tuple)) and seed and all(
            isinstance(s, (numbers.Integral, np.integer)) and not isinstance(s, bool) and s >= 0 for s in seed):
        return seed
    raise ModelError(f"{name} must be None, a non-negative integer or a numpy Generator, not {seed!r}")


def check_column(data: pd.DataFrame, column, name: str) -> str:
    """``column`` if it names a column of ``data`` (else a close-name suggestion)."""
    if not isinstance(column, str):
        raise ModelError(f"{name} must be a column name (a string), not {column!r}")
    if column not in data.columns:
        raise DataError(f"{name} names the column '{column}', which is not in the data"
                        f"{close_names(column, data.columns)}")
    return column


def check_numeric_column(col: pd.Series, name: str, what: str) -> np.ndarray:
    """A numeric (or boolean) column as floats; text columns are refused, naming ``what``."""
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=float, na_value=np.nan)
    raise DataError(f"{what} column '{name}' must be numeric, not {col.dtype} (e.g. {col.dropna().iloc[0]!r})"
                    if col.notna().any() else f"{what} column '{name}' must be numeric, not {col.dtype}")


def check_agq_size(nagq: int, spec, method: str = "agq") -> None:
    """Refuse an AGQ rule too large to evaluate: ``nagq**q`` nodes per cluster (q random
    effects per group) above :data:`MAX_AGQ_NODES`, or an (observations × nodes) array above
    :data:`MAX_AGQ_CELLS`; the message gives the count and the largest ``nagq`` that fits."""
    if method != "agq" or nagq <= 1 or not spec.terms:
        return
    q = max(t.q for t in spec.terms)
    nodes = nagq**q
    cells = nodes * spec.nobs
    if nodes <= MAX_AGQ_NODES and cells <= MAX_AGQ_CELLS:
        return
    fit_k = 1
    while (fit_k + 1) ** q <= MAX_AGQ_NODES and (fit_k + 1) ** q * spec.nobs <= MAX_AGQ_CELLS:
        fit_k += 1
    what = (f"{nodes:,} quadrature nodes per cluster (at most {MAX_AGQ_NODES:,})" if nodes > MAX_AGQ_NODES else
            f"{nodes:,} nodes for each of {spec.nobs:,} observations ({cells:,} values per evaluation; at most "
            f"{MAX_AGQ_CELLS:,})")
    hint = f"use nagq={fit_k} or fewer" if fit_k > 1 else "no AGQ rule fits"
    raise ModelError(
        f"method='agq' with nagq={nagq} and {q} random effect(s) per group needs nagq**{q} = {what}; "
        f"{hint}, or method='laplace'"
    )


def check_options(reml, control, start, fixed) -> tuple[bool, dict, np.ndarray | None, dict]:
    """Type-check ``reml``, ``control``, ``start`` and ``fixed``, naming the argument."""
    reml = check_bool(reml, "reml")
    if control is None:
        control = {}
    if not isinstance(control, dict):
        raise ModelError(f"control must be a dict such as {{'maxiter': 5000}}, not {type(control).__name__}")
    unknown = [k for k in control if k not in CONTROL_KEYS]
    if unknown:
        raise ModelError(f"unknown control setting(s) {', '.join(map(repr, unknown))}; "
                         f"the settings are {', '.join(CONTROL_KEYS)}")
    for k, v in control.items():
        if k == "progress":  # a progress bar for a long fit: True/False, None = auto (glmm_nb.progress)
            if v is not None:
                check_bool(v, "control['progress']")
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ModelError(f"control['{k}'] must be a positive integer, not {v!r}")
    if start is not None:
        try:
            start = np.asarray(start, dtype=float).ravel()
        except (TypeError, ValueError):
            raise ModelError(f"start must be a vector of numbers, not {start!r}") from None
        if not np.all(np.isfinite(start)):
            raise ModelError("start has missing or infinite values")
    if fixed is None:
        fixed = {}
    if not isinstance(fixed, dict):
        raise ModelError(f"fixed must be a dict of parameter name → value, not {type(fixed).__name__}")
    return reml, dict(control), start, dict(fixed)


def check_output_path(path, kind: str = "file", what: str = "the output path") -> Path:
    """Refuse an output path whose folder is missing or not writable (checked before any work).

    ``kind="file"``: its folder must exist; ``kind="folder"``: created with its parents, so the
    nearest existing ancestor must be writable. ``what`` names the argument in the message.
    """
    import os
    import tempfile

    if not isinstance(path, (str, os.PathLike)):
        raise ModelError(f"{what} must be a file path, not {path!r}")
    out = Path(path)
    if kind == "file" and out.is_dir():
        raise DataError(f"{what} {path}: is a folder; give a file name such as {out / 'report.html'}")
    folder = out.parent
    if kind == "folder":  # created with its parents: the nearest existing one must be writable
        folder = out.absolute()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.exists():
        raise DataError(f"{what} {path}: the folder '{folder}' does not exist")
    if not folder.is_dir():
        raise DataError(f"{what} {path}: '{folder}' is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise DataError(f"{what} {path}: cannot write into '{folder}' ({exc.strerror or exc})") from None
    return out
