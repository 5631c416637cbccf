"""Data frames of other libraries as pandas: the one conversion every entry point uses.

A model is fitted from a pandas DataFrame. Other tables are converted once, where they enter
(``glmm()``, ``gee()``, ``refit(data=...)``, ``predict(newdata=...)``, ``simulate(newdata=...)``):

* a pandas DataFrame passes through untouched (no copy);
* anything with the Arrow PyCapsule stream interface (``__arrow_c_stream__``: polars, pyarrow
  ``Table``/``RecordBatch``, DuckDB relations, …) is read through pyarrow when pyarrow is
  installed (``pip install 'glmm_nb[dask]'`` brings it);
* else a frame with the dataframe interchange protocol (``__dataframe__``) is read with
  ``pandas.api.interchange.from_dataframe``;
* else a polars DataFrame is read column by column (no pyarrow needed).

Categorical columns stay categorical: an Arrow dictionary column (polars ``Enum``, a pandas
Categorical written to Arrow) keeps its categories in their declared order; a polars
``Categorical`` (whose dictionary is in order of first appearance, not a declared order) gets
its levels sorted, as pandas' ``astype("category")`` and formulaic's text columns do, so the
reference level does not depend on the row order. Nulls become missing values (NaN/None), so
the rows holding them are dropped and counted (``n_dropped``) as for pandas.

Anything else — a dict of columns, a list of rows, a numpy array (structured or not) — is
refused with one :class:`~glmm_nb.errors.DataError` naming its type and what is accepted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["to_pandas", "ACCEPTED_FRAMES", "type_name"]

ACCEPTED_FRAMES = ("a pandas DataFrame, a polars DataFrame, a pyarrow Table, or another table with the Arrow "
                   "PyCapsule or dataframe interchange protocol")

_POLARS_CATEGORICAL = b"_PL_CATEGORICAL"  # field metadata of a polars Categorical (not Enum) column


def type_name(obj) -> str:
    """``module.Class`` of ``obj`` (``Class`` for builtins), as shown in messages."""
    kind = type(obj)
    module = kind.__module__.split(".")[0]
    return f"{module}.{kind.__name__}" if module not in ("builtins", "__main__") else kind.__name__


def to_pandas(data, what: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame (see the module docstring for what is accepted).

    Parameters
    ----------
    data : pandas.DataFrame, polars.DataFrame, pyarrow.Table or an Arrow/interchange table
    what : str
        The argument's name, for the message.

    Returns
    -------
    pandas.DataFrame
        ``data`` itself when it is one.

    Raises
    ------
    DataError
        For any other type, naming it and what is accepted.
    """
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (dict, list, tuple, np.ndarray, pd.Series, str, bytes)) or data is None:
        _refuse(data, what)
    try:
        if hasattr(data, "__arrow_c_stream__") and _has_pyarrow():
            return _from_arrow(data)
        if hasattr(data, "__dataframe__"):
            return pd.api.interchange.from_dataframe(data, allow_copy=True)
        if type(data).__module__.split(".")[0] == "polars" and hasattr(data, "get_columns"):
            return _from_polars(data)
    except DataError:
        raise
    except Exception as exc:  # a conversion the other library refuses: one message, not its traceback
        raise DataError(f"{what} (a {type_name(data)}) could not be converted to a pandas DataFrame: "
                        f"{type(exc).__name__}: {exc}") from None
    _refuse(data, what)


def _refuse(data, what: str):
    shown = type_name(data)
    hint = ""
    if isinstance(data, (dict, list, np.ndarray)):
        hint = f"; wrap it with pd.DataFrame({what})"
    elif hasattr(data, "to_pandas"):
        hint = f"; convert it with {what}.to_pandas()"
    elif hasattr(data, "__arrow_c_stream__"):
        hint = "; reading an Arrow table needs pyarrow (pip install pyarrow)"
    raise DataError(f"{what} must be a data frame — {ACCEPTED_FRAMES} — not a {shown}{hint}")


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _from_arrow(data) -> pd.DataFrame:
    """Through pyarrow: ``pa.table`` reads any Arrow PyCapsule stream (a Table as it is)."""
    import pyarrow as pa

    table = data if isinstance(data, pa.Table) else pa.table(data)
    # Arrow's string views and large strings become plain strings for pandas' numpy dtypes
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_dictionary(t) and _wide_string(pa, t.value_type):
            t = pa.dictionary(t.index_type, pa.string(), t.ordered)
        elif _wide_string(pa, t):
            t = pa.string()
        fields.append(f.with_type(t))
    schema = pa.schema(fields, metadata=table.schema.metadata)
    if schema != table.schema:
        table = table.cast(schema)
    out = table.to_pandas()
    for f in table.schema:  # a polars Categorical: levels sorted (its dictionary is in order of appearance)
        if f.metadata and any(k.startswith(_POLARS_CATEGORICAL) for k in f.metadata):
            col = out[f.name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                present = col.cat.remove_unused_categories()
                out[f.name] = present.cat.reorder_categories(sorted(present.cat.categories))
    return out


def _wide_string(pa, t) -> bool:
    """Arrow's string view and large string types (polars writes string views)."""
    return pa.types.is_string_view(t) or pa.types.is_large_string(t)


def _from_polars(data) -> pd.DataFrame:
    """A polars DataFrame without pyarrow: column by column through numpy."""
    import polars as pl

    cols = {}
    for s in data.get_columns():
        if isinstance(s.dtype, pl.Enum):
            cols[s.name] = pd.Categorical(s.cast(pl.String).to_list(), categories=list(s.dtype.categories))
        elif isinstance(s.dtype, pl.Categorical):
            values = s.cast(pl.String).to_list()
            cols[s.name] = pd.Categorical(values, categories=sorted({v for v in values if v is not None}))
        elif s.dtype == pl.String:
            cols[s.name] = np.array(s.to_list(), dtype=object)
        else:
            cols[s.name] = s.to_numpy()
    return pd.DataFrame(cols)
