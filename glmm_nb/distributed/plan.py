"""The plan of a Dask fit: what every partition needs to build its rows the same way.

One pass over the data (before any shuffle) collects, for the rows that survive the
missing-value rule:

* the levels of every variable the fixed part (or a random-effect term's left-hand side) reads
  as a factor, and of a two-level factor response — so that each partition's model matrix has
  the same columns in the same encoding as the in-memory fit (formulaic sorts the levels of a
  string column; a categorical keeps its categories);
* the distinct values of the partitioning factor in each partition — are the clusters already
  whole in their partitions (then no shuffle is needed), and how many are there;
* a random sample of ``k`` clusters: the ``k`` smallest hashes (seeded) of the cluster keys, a
  uniform sample without replacement.

The formulaic specs are then built once on a small frame that holds every level (a few real
rows, repeated with each level in turn), and travel to the partitions inside the
:class:`DaskPlan`. The partitioning factor is the grouping column every random-effect term
contains: ``(1 | g)``, ``(1 + x | g)``, ``(x || g)`` and ``(1 | g/h)`` (whose terms are ``g``
and ``g:h``) all keep whole clusters in one partition when the rows are split by ``g``; a zero
part's random-effect terms (``ziformula="~ x + (1 | g)"``) must contain it too. A zero part's and
a dispersion model's fixed parts get formulaic specs built the same way (:class:`PartPlan`).
Crossed factors — ``(1 | a) + (1 | b)`` — couple every partition with every other, so the
likelihood no longer splits into per-partition sums; they are refused with a message naming
the limitation. Structured terms whose covariance is block-diagonal over the levels of their
grouping factor (``diag cs ar1 toep``, and ``us``) split the same way: every partition builds the
term with the same structure over the plan's columns. Distance-based ones (``ou exp gau mat``,
left side ``pos(t) + 0`` or ``pos(x, y) + 0``) have one column per distinct position over all
the data (glmmTMB's ``numFactor`` levels are global), so the same pass also collects each
partition's distinct positions among its complete rows; their union, sorted as the in-memory
term sorts it (:func:`glmm_nb.design.positions.distinct_positions`), becomes the term's
:class:`~glmm_nb.design.positions.PositionSpec` in the plan, against which every partition
builds the term's indicator columns and distance matrix (its own rows only). The covariance is
block-diagonal over the grouping factor's levels, so with many groups the likelihood is the
same sum over clusters; the bound on the number of positions is checked here on the global
count, the memory bound by each partition on its own rows and groups. A single-level grouping
factor makes one dense field over all rows, which cannot be split by rows: refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..design import model_matrix, rename_intercept, used_variables
from ..design.covstruct import SPATIAL, make_structure
from ..design.matrices import required_variables
from ..design.positions import PositionSpec, check_positions, distinct_positions
from ..design.spec import disp_rhs, zi_parsed, zi_rhs
from ..errors import DataError, FormulaError, ModelError
from ..families import Family
from ..formula import ParsedFormula, parse_formula, position_columns

__all__ = ["DaskPlan", "DaskOptions", "PartPlan", "make_plan", "partition_key", "HEAD_ROWS"]

HEAD_ROWS = 500  # real rows taken to build the formulaic specs


@dataclass(frozen=True)
class DaskOptions:
    """Options of a Dask fit, read from ``control`` (they travel with the request).

    Attributes
    ----------
    sample_clusters : int
        Clusters in the in-memory sample that diagnostics, fitted values and the report use
        (all clusters when there are fewer).
    sample_seed : int
        Seed of the cluster sample.
    shuffle : {"auto", True}
        Shuffle by the cluster column only when clusters span partitions ("auto"), or always.
    npartitions : int or None
        Partitions after a shuffle (default: as many as the input).
    progress : bool
        Dask's progress bar for the build pass and a running count of deviance evaluations.
    poll : float
        Seconds between checks that the workers holding the partitions are alive.
    pause_timeout : float
        Seconds a worker holding partitions may stay paused (memory above Dask's pause
        threshold) before the fit stops with an error.
    """

    sample_clusters: int = 2000
    sample_seed: int = 20261125
    shuffle: Any = "auto"
    npartitions: int | None = None
    progress: bool = False
    poll: float = 1.0
    pause_timeout: float = 60.0

    @classmethod
    def from_control(cls, control: dict | None) -> "DaskOptions":
        c = dict(control or {})
        opts = cls(sample_clusters=int(c.get("sample_clusters", cls.sample_clusters)),
                   sample_seed=int(c.get("sample_seed", cls.sample_seed)),
                   shuffle=c.get("shuffle", "auto"), npartitions=c.get("npartitions"),
                   progress=bool(c.get("progress", False)), poll=float(c.get("poll", 1.0)),
                   pause_timeout=float(c.get("pause_timeout", 60.0)))
        if opts.sample_clusters < 2:
            raise ModelError(f"control['sample_clusters'] must be at least 2, not {opts.sample_clusters}")
        if opts.shuffle not in ("auto", True):
            raise ModelError(f"control['shuffle'] must be 'auto' or True, not {opts.shuffle!r}")
        return opts


@dataclass(frozen=True, eq=False)
class DaskPlan:
    """Everything a partition needs to build its arrays with the global encoding.

    Attributes
    ----------
    parsed : ParsedFormula
    family : Family
    key : str
        The partitioning column (contained in every random-effect term's grouping factor).
    variables : tuple of str
        The model frame's columns (as the in-memory ``ModelSpec.variables``).
    columns : tuple of str
        Columns read: the variables plus the ``weights=`` / ``offset=`` columns.
    fixed_spec, lhs_specs
        formulaic specs of the fixed part and of each parsed random term's left-hand side.
    x_all : tuple of str
        Fixed-effect columns before linearly dependent ones are dropped.
    categories : dict
        Column → levels for a factor response read with global levels.
    sample_keys : pandas.Index or None
        Cluster keys of the in-memory sample; None when the sample is every cluster.
    n_clusters : int
        Distinct values of ``key`` (rows with missing values excluded).
    shuffled : bool
        Whether the rows were shuffled by ``key``.
    """

    parsed: ParsedFormula
    family: Family
    key: str
    variables: tuple[str, ...]
    columns: tuple[str, ...]
    weights_column: str | None
    offset_column: str | None
    fixed_spec: Any
    lhs_specs: tuple
    x_all: tuple[str, ...]
    categories: dict = field(default_factory=dict)
    sample_keys: Any = None
    n_clusters: int = 0
    shuffled: bool = False
    sample_seed: int = 0
    npartitions_in: int = 0
    zi: Any = None  # the zero part (a :class:`PartPlan`), if any
    disp: Any = None  # the dispersion model (a :class:`PartPlan`), if any


@dataclass(frozen=True, eq=False)
class PartPlan:
    """A zero part (``ziformula``) or a dispersion model (``dispformula``): its formula as the
    in-memory spec records it, the formulaic spec of its fixed part, its columns before
    collinear ones are dropped, and (zero part) its random-effect terms' parsed form and specs."""

    formula: str
    fixed_spec: Any
    names: tuple[str, ...]
    parsed: Any = None  # ParsedFormula of the zero part's random-effect terms, or None
    lhs_specs: tuple = ()

    @property
    def random(self) -> tuple:
        return tuple(self.parsed.random) if self.parsed is not None else ()


def partition_key(parsed: ParsedFormula, extra_terms=()) -> str:
    """The grouping column every random-effect term (``extra_terms``: the zero part's too)
    contains, or a ModelError naming the crossed terms (the limitation of the Dask engine)."""
    common = None
    for rt in (*parsed.random, *extra_terms):
        common = set(rt.group_vars) if common is None else common & set(rt.group_vars)
    if not common:
        terms = " + ".join(dict.fromkeys(rt.text for rt in (*parsed.random, *extra_terms)))
        if extra_terms:
            terms += " (with the zero part's)"
        raise ModelError(
            f"the random-effect terms {terms} are crossed (no grouping column is common to all of them); "
            "a Dask fit needs every term nested in one grouping factor — e.g. (1 | school/class) — "
            "because the likelihood then splits into sums over whole clusters that live in one "
            "partition. Fit crossed models in memory (a pandas DataFrame)."
        )
    first = parsed.random[0].group_vars
    return next(v for v in first if v in common)


def _vector_column(arg, what: str, columns) -> str | None:
    if arg is None:
        return None
    if not isinstance(arg, str):
        raise DataError(f"with Dask data, {what}= must name a column of the data, not a {type(arg).__name__}")
    if arg not in columns:
        raise DataError(f"{what}= names the column '{arg}', which is not in the data")
    return arg


def _head(ddf, columns: list[str], subset: list[str]) -> pd.DataFrame:
    """Up to HEAD_ROWS complete rows from the first partitions that have any."""
    got = []
    n = 0
    for i in range(ddf.npartitions):
        part = ddf.partitions[i][columns].dropna(subset=subset).head(HEAD_ROWS, npartitions=1)
        if len(part):
            got.append(part)
            n += len(part)
        if n >= HEAD_ROWS:
            break
    if not got:
        raise DataError(f"no rows left after dropping those with a missing value in {', '.join(subset)}")
    return pd.concat(got).iloc[:HEAD_ROWS]


def _spec(expr: str, frame: pd.DataFrame, where: str):
    mm = model_matrix(expr, frame, where)
    spec = mm.model_spec
    if spec.transform_state:
        names = ", ".join(map(str, spec.transform_state))
        raise ModelError(
            f"{where} uses transforms that learn from the data ({names}); on Dask data they would "
            "learn from a sample only. Compute the column first (ddf.assign(...)) and use it."
        )
    return spec


def _factor_variables(spec, data_vars) -> set[str]:
    """Data columns that formulaic reads as factors (``f``, ``C(n)``, ``f:x``)."""
    cats = {name for name, (kind, _state) in spec.encoder_state.items()
            if str(getattr(kind, "value", kind)) == "categorical"}
    out = set()
    for f, vs in spec.factor_variables.items():
        if str(f) in cats:
            out |= {v for v in vs if v in data_vars}
    return out


def _partition_facts(part: pd.DataFrame, key: str, level_cols: list[str], subset: list[str],
                     spatial: dict | None = None) -> dict:
    """Distinct cluster keys and levels of ``level_cols`` among the complete rows; for each
    distance-based term of ``spatial`` (term → coordinate columns) its distinct positions, the
    distinct values of its grouping columns (when they are not the cluster key alone) and the rows."""
    part = part.dropna(subset=subset)
    out = {"keys": pd.unique(part[key].to_numpy()), "levels": {c: pd.unique(part[c].to_numpy()) for c in level_cols},
           "n": len(part), "positions": {}, "groups": {}}
    for rt, cols in (spatial or {}).items():
        out["positions"][rt] = distinct_positions(part[list(cols)].to_numpy(dtype=float))[0]
        if tuple(rt.group_vars) != (key,):
            out["groups"][rt] = part[list(rt.group_vars)].drop_duplicates()
    return out


def _spatial_terms(parsed: ParsedFormula) -> dict:
    """The distance-based terms (ou, exp, gau, mat) → their coordinate columns, checked as the
    in-memory design checks them (:func:`glmm_nb.design.random_terms`)."""
    out = {}
    for rt in parsed.random:
        coords = position_columns(rt.lhs, rt.text)
        if coords is not None and rt.structure not in SPATIAL:
            raise FormulaError(f"the term {rt.text}: pos() coordinates go with a distance-based structure, "
                               f"ou(), exp(), gau() or mat() — not {rt.structure}()")
        if rt.structure in SPATIAL:
            if coords is None:
                make_structure(rt.structure, 2, rt.text)  # the FormulaError naming pos()
            out[rt] = tuple(coords)
    return out


def _single_level(rt) -> None:
    raise ModelError(
        f"engine='dask' cannot fit {rt.text}: its grouping factor '{rt.group}' has a single level, so the "
        "term is one dense field over all rows, whose likelihood does not split into sums over partitions "
        "of rows; fit in memory (the default engine), or give the field a grouping factor with many "
        "independent groups (e.g. one per site) if the data have them")


def _global_positions(spatial: dict, facts, key: str, n_clusters: int) -> dict:
    """Each distance-based term's :class:`PositionSpec` over the distinct positions of all the
    complete rows (sorted as the in-memory term sorts them), after the single-level refusal and
    the in-memory bound on the number of positions (the memory bound is each partition's)."""
    out = {}
    n_rows = sum(f["n"] for f in facts)
    for rt, cols in spatial.items():
        if tuple(rt.group_vars) == (key,):
            n_groups = n_clusters
        else:
            n_groups = len(pd.concat([f["groups"][rt] for f in facts]).drop_duplicates())
        if n_groups < 2:
            _single_level(rt)
        coords = distinct_positions(np.concatenate([f["positions"][rt] for f in facts]))[0]
        check_positions(len(coords), n_groups, n_rows, f"the term {rt.text}", memory=False)
        out[rt] = PositionSpec(cols, coords)
    return out


def _sorted_levels(values) -> list:
    try:
        return sorted(set(values.tolist() if hasattr(values, "tolist") else values))
    except TypeError:  # mixed types: the order formulaic would use cannot be reproduced
        return sorted(set(values), key=str)


def _level_frame(head: pd.DataFrame, levels: dict[str, list]) -> pd.DataFrame:
    """The head rows, then for each factor column one row per global level."""
    frames = [head]
    for col, lv in levels.items():
        idx = np.arange(len(lv)) % len(head)
        f = head.iloc[idx].copy()
        f[col] = list(lv)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def make_plan(formula, ddf, family: Family, weights=None, offset=None, sample_clusters: int = 2000,
              sample_seed: int = 0, shuffle="auto", npartitions: int | None = None, ziformula: str | None = None,
              dispformula: str | None = None):
    """Plan a Dask fit; returns ``(plan, collection)`` — the collection holds the columns read,
    shuffled by the cluster column when clusters span partitions (or ``shuffle=True``).

    Raises
    ------
    FormulaError, DataError, ModelError
        Unknown columns; ``weights``/``offset`` not column names; crossed random effects;
        data-learning transforms; no complete rows; a distance-based term whose grouping factor
        has a single level, or more positions than the in-memory bound; non-numeric coordinates.
    """
    import dask

    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    zi = zi_rhs(ziformula) if ziformula is not None else None
    zi_p = zi_parsed(zi) if zi is not None and "|" in zi else None
    zi_fix = zi_p.fixed if zi_p is not None else zi
    zi_random = tuple(zi_p.random) if zi_p is not None else ()
    dz = disp_rhs(dispformula) if dispformula is not None else None
    zi_structured = [rt.text for rt in zi_random if rt.structure != "us"]
    if zi_structured:  # the zero part's partitions build unstructured terms: refuse rather than fit another model
        raise ModelError(f"engine='dask' does not fit structured covariance terms in the zero part yet "
                         f"({', '.join(zi_structured)}); fit in memory (the default engine)")
    spatial = _spatial_terms(parsed)
    for rt in spatial:
        if not rt.group_vars:
            _single_level(rt)
    if not parsed.random:
        raise FormulaError(
            f"the formula '{parsed.text}' has no random-effect term such as (1 | group); "
            "for a model without random effects use a GLM (e.g. statsmodels.formula.api.glm)"
        )
    meta = ddf._meta
    extra = tuple(required_variables(zi_fix, "the zero part")) if zi else ()
    for rt in zi_random:
        extra += tuple(required_variables(rt.lhs, "the zero part")) + tuple(rt.group_vars)
    extra += tuple(required_variables(dz, "the dispersion model")) if dz else ()
    used = used_variables(parsed, meta, extra=extra)
    w_col = _vector_column(weights, "weights", meta.columns)
    o_col = _vector_column(offset, "offset", meta.columns)
    key = partition_key(parsed, zi_random)
    variables = tuple(used)
    columns = list(dict.fromkeys([*variables, *(c for c in (w_col, o_col) if c)]))
    subset = columns
    head = _head(ddf, columns, subset)

    # which columns are read as factors: by dtype, and as formulaic reads the fixed part / lhs
    provisional = [_spec(parsed.fixed, head, f"the fixed part '{parsed.fixed}'")]
    provisional += [_spec(rt.lhs, head, f"the term {rt.text}") for rt in (*parsed.random, *zi_random)
                    if rt not in spatial]
    if zi is not None:
        provisional.append(_spec(zi_fix, head, f"the zero part '~ {zi}'"))
    if dz is not None:
        provisional.append(_spec(dz, head, f"the dispersion model '~ {dz}'"))
    factor_cols = set()
    for sp in provisional:
        data_vars = set(sp.variables_by_source.get("data", set()))
        factor_cols |= _factor_variables(sp, data_vars)
        factor_cols |= {v for v in data_vars if v in meta.columns and not (
            pd.api.types.is_numeric_dtype(meta[v]) or pd.api.types.is_bool_dtype(meta[v]))}
    resp = parsed.response.strip().strip("`") if parsed.cbind is None and parsed.response else None
    factor_resp = (resp is not None and resp in meta.columns and family.reads_cbind
                   and not (pd.api.types.is_numeric_dtype(meta[resp]) or pd.api.types.is_bool_dtype(meta[resp])))
    known = {c for c in factor_cols | ({resp} if factor_resp else set())
             if isinstance(meta[c].dtype, pd.CategoricalDtype) and ddf[c].cat.known}
    level_cols = sorted((factor_cols | ({resp} if factor_resp else set())) - known)

    base = ddf[columns]
    for rt, cols in spatial.items():
        for c in cols:  # as the in-memory term reads them (glmm_nb.design.positions)
            if not pd.api.types.is_numeric_dtype(meta[c]) or pd.api.types.is_bool_dtype(meta[c]):
                raise DataError(f"coordinate column '{c}' of the term {rt.text} must be numeric, not {meta[c].dtype}")
    facts = dask.compute(*[dask.delayed(_partition_facts)(p, key, level_cols, subset, spatial)
                           for p in base.to_delayed()])
    keys = [f["keys"] for f in facts]
    all_keys = pd.unique(np.concatenate(keys)) if keys else np.array([])
    n_clusters = len(all_keys)
    if n_clusters == 0:
        raise DataError(f"no rows left after dropping those with a missing value in {', '.join(subset)}")
    whole = sum(len(k) for k in keys) == n_clusters
    levels = {c: _sorted_levels(np.concatenate([f["levels"][c] for f in facts])) for c in level_cols}

    # every factor column read as a categorical with its global levels, here and in every partition
    # (Dask's string dtype would otherwise leave the encoding to each partition's own values)
    categories = {c: levels[c] for c in level_cols if c in factor_cols}
    spec_frame = _level_frame(head, categories)
    for c, lv in categories.items():
        spec_frame[c] = pd.Categorical(spec_frame[c].astype(object), categories=lv)
    fixed_spec = _spec(parsed.fixed, spec_frame, f"the fixed part '{parsed.fixed}'")
    x_all = rename_intercept(fixed_spec.column_names)
    positions = _global_positions(spatial, facts, key, n_clusters)
    lhs_specs = tuple(positions[rt] if rt in spatial else _spec(rt.lhs, spec_frame, f"the term {rt.text}")
                      for rt in parsed.random)
    zi_plan = disp_plan = None
    if zi is not None:
        zspec = _spec(zi_fix, spec_frame, f"the zero part '~ {zi}'")
        zi_plan = PartPlan(formula=f"~ {zi}", fixed_spec=zspec, names=tuple(rename_intercept(zspec.column_names)),
                           parsed=zi_p, lhs_specs=tuple(_spec(rt.lhs, spec_frame, f"the term {rt.text}")
                                                        for rt in zi_random))
    if dz is not None:
        dspec = _spec(dz, spec_frame, f"the dispersion model '~ {dz}'")
        disp_plan = PartPlan(formula=f"~ {dz}", fixed_spec=dspec, names=tuple(rename_intercept(dspec.column_names)))
    if factor_resp:
        categories[resp] = list(meta[resp].cat.categories) if resp in known else levels[resp]

    sample = None
    if n_clusters > sample_clusters:
        h = pd.util.hash_pandas_object(pd.Series(all_keys), index=False, hash_key=f"{sample_seed % 10**16:016d}")
        take = np.argsort(h.to_numpy(), kind="stable")[:sample_clusters]
        sample = pd.Index(all_keys[np.sort(take)])

    collection = base
    shuffled = bool(shuffle is True or not whole)
    if shuffled:
        collection = base.shuffle(on=key, npartitions=npartitions or base.npartitions)
    plan = DaskPlan(parsed=parsed, family=family, key=key, variables=variables, columns=tuple(columns),
                    weights_column=w_col, offset_column=o_col, fixed_spec=fixed_spec, lhs_specs=lhs_specs,
                    x_all=tuple(x_all), categories=categories, sample_keys=sample, n_clusters=n_clusters,
                    shuffled=shuffled, sample_seed=sample_seed, npartitions_in=base.npartitions, zi=zi_plan,
                    disp=disp_plan)
    return plan, collection
