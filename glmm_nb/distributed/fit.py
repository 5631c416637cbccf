"""``fit_dask``: the fitting chain of :mod:`glmm_nb.pipeline` with every data pass distributed.

plan (levels, clusters, sample; :mod:`.plan`) → build the partitions once, shuffled so each
cluster is whole (:mod:`.engine`) → the global layout (term order, collinear columns, checks)
→ starts (distributed IRLS) → :func:`glmm_nb.optimize.minimize_devfun` on the map-reduce
deviance (:mod:`.devfun`) → AGQ stage → :func:`glmm_nb.results.build_result` (the same
scaled-gradient and Hessian checks; the Hessian from the summed gradient) → the record,
whose in-memory spec is a random sample of clusters (:class:`DaskFit` says so, and holds what
the whole data gave: sizes, the random effects of every cluster).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..design import as_frame, drop_collinear, grouping_codes
from ..errors import DataError, DataWarning, ModelError
from ..likelihood import LmmDevfun
from ..optimize import minimize_devfun
from ..pipeline import (check_disp_reml, check_method, model_family, parameter_bounds, polish_agq, start_values,
                        zero_part_formula)
from ..request import FitRequest
from ..results import GLMMResult, build_result
from ..results.tables import ZI_PREFIX
from ..timing import stopwatch
from .devfun import DaskGlmmDevfun, DaskLmmDevfun, EvalProgress, glm_start
from .engine import current_client, make_engine
from .intervals import sdcor_covariance_glmm, sdcor_covariance_lmm
from .partition import Layout, build_partition, combine_r
from .plan import DaskOptions, make_plan

__all__ = ["DaskFit", "ReTable", "fit_dask", "refit_dask", "as_dask", "is_dask_data"]


def is_dask_data(obj) -> bool:
    """True for a Dask DataFrame (checked without importing dask)."""
    return type(obj).__module__.split(".")[0] == "dask" and hasattr(obj, "npartitions")


def as_dask(data, engine: str | None):
    """A Dask DataFrame from ``data``: one already, a parquet path (``engine="dask"``), or a
    pandas frame split in partitions (``engine="dask"``)."""
    if engine not in (None, "dask"):
        raise ModelError(f"engine must be 'dask' (or None for pandas data), not {engine!r}")
    if is_dask_data(data):
        if not hasattr(data, "columns"):
            raise DataError("data must be a Dask DataFrame, not a Dask Series or array")
        return data
    try:
        import dask.dataframe as dd
    except ImportError:
        raise ModelError("engine='dask' needs Dask: pip install 'glmm_nb[dask]'") from None
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__dataframe__"):  # polars, pyarrow: converted once
        data = as_frame(data)
    if isinstance(data, pd.DataFrame):
        return dd.from_pandas(data, npartitions=max(1, min(8, len(data) // 2000 or 1)))
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        return dd.read_parquet(str(data))
    raise DataError(f"engine='dask' needs a Dask DataFrame, a pandas/polars DataFrame, a pyarrow Table or a parquet "
                    f"path, not {type(data).__name__}")


def _index_as_column(ddf):
    """A named index (often the cluster column after ``set_index``) as an ordinary column."""
    name = ddf.index.name
    return ddf.reset_index() if name is not None and name not in ddf.columns else ddf


@dataclass(frozen=True, eq=False)
class ReTable:
    """The conditional modes of one random-effect term for every cluster."""

    label: str
    group: str
    group_vars: tuple[str, ...]
    col_names: tuple[str, ...]
    levels: pd.Index
    b: np.ndarray  # (J, q)
    sd: np.ndarray  # (J, q) conditional SDs
    lhs_spec: Any
    columns: tuple[int, ...] | None
    zero_part: bool = False  # a term of the zero part (keyed "zi:<group>" by ranef())
    text: str = ""  # the term as written, for messages
    structure: Any = None  # a distance-based term's Structure and theta block: predictions krig new positions
    theta: np.ndarray | None = None

    @property
    def key(self) -> str:
        return ZI_PREFIX + self.group if self.zero_part else self.group


@dataclass(frozen=True, eq=False)
class DaskFit:
    """What a Dask fit knows beyond the in-memory record (``m.extras["dask"]``).

    ``nobs``/``ngroups`` are the whole data's; the result's ``spec`` holds ``sample_clusters``
    of ``n_clusters`` clusters (``sample_rows`` rows).
    """

    data: Any
    plan: Any
    arguments: dict
    terms: tuple[ReTable, ...]
    nobs: int
    n_clusters: int
    npartitions: int
    sample_clusters: int
    sample_rows: int
    where: str
    timings: dict = field(default_factory=dict)
    sdcor_vcov: np.ndarray | None = None  # covariance of the sdcor parameters (Wald intervals)

    def ranef(self, condvar: bool = True) -> dict[str, pd.DataFrame]:
        """Conditional modes of every cluster, keyed by grouping factor (as ``GLMMResult.ranef``)."""
        out: dict[str, pd.DataFrame] = {}
        for t in self.terms:
            df = pd.DataFrame(t.b, index=t.levels.copy(), columns=list(t.col_names))
            if condvar:
                for a, name in enumerate(t.col_names):
                    df[f"condsd_{name}"] = t.sd[:, a]
            out[t.key] = out[t.key].join(df, rsuffix=f"_{t.label}") if t.key in out else df
        return out


# ------------------------------------------------------------------------------- layout
def _check_deferred(stats, fam) -> None:
    """Re-run the response check for partitions whose response was constant (see
    :func:`.partition.build_partition`) against a row that passed elsewhere."""
    deferred = [s["deferred"] for s in stats if s["deferred"] is not None]
    if not deferred:
        return
    s0 = stats[0]
    valid = next((s["valid"] for s in stats if s["valid"] is not None), None)
    for c, trials in deferred:
        ys = np.full(len(trials), c)
        if valid is not None:
            ys, trials = np.r_[ys, valid[0]], np.r_[trials, valid[1]]
        else:
            ys = np.r_[ys, [d[0] for d in deferred]]
            trials = np.r_[trials, [d[1][0] for d in deferred]]
        fam.check_response(ys, trials, s0["weights_given"], s0["response_name"])


def _moments(stats) -> tuple[int, np.ndarray]:
    """Total rows and the columns' population SDs (Chan's pairwise combination)."""
    n, mean, m2 = 0, None, None
    for s in stats:
        if mean is None:
            n, mean, m2 = s["n"], s["mean"].copy(), s["m2"].copy()
            continue
        nb = s["n"]
        delta = s["mean"] - mean
        tot = n + nb
        mean = mean + delta * nb / tot
        m2 = m2 + s["m2"] + delta**2 * n * nb / tot
        n = tot
    return n, np.sqrt(m2 / n)


def _collinear(R: np.ndarray, n: int, names: tuple[str, ...]):
    """Columns to keep, as ``glmm_nb.design.drop_collinear`` decides on X (pivoted QR of R)."""
    from scipy.linalg import qr

    p = R.shape[1]
    if p == 0:
        return None, ()
    _q, r, piv = qr(R, pivoting=True)
    d = np.abs(np.diag(r))
    tol = d.max() * max(n, p) * np.finfo(float).eps * 1e3 if d.size else 0
    rank = int(np.sum(d > tol))
    if rank == p:
        return None, ()
    keep = tuple(int(i) for i in np.sort(piv[:rank]))
    dropped = tuple(names[i] for i in sorted(piv[rank:]))
    warnings.warn(f"fixed-effect model matrix is rank deficient; dropping {len(dropped)} column(s): "
                  f"{', '.join(dropped)}", DataWarning, stacklevel=4)
    return keep, dropped


def _term_order(raw, nl) -> tuple[list[int], list[str]]:
    """lme4's term order (decreasing number of levels, stable) and labels (``g``, ``g.1`` …)."""
    order = list(range(len(raw)))
    if np.any(np.diff(nl) > 0):  # lme4's mkReTrms: rev(order(nl))
        order = [int(i) for i in np.argsort(nl, kind="stable")[::-1]]
    seen: dict[str, int] = {}
    labels = []
    for i in order:
        g = raw[i][0]
        k = seen.get(g, 0)
        seen[g] = k + 1
        labels.append(g if k == 0 else f"{g}.{k}")
    return order, labels


def _raw(random, lhs_specs) -> list[tuple]:
    """(group, q, text, structured) per raw term in parse order, as the partitions built them."""
    raw = []
    for rt, lspec in zip(random, lhs_specs):
        q = len(lspec.column_names)
        st = rt.structure != "us"
        raw += [(rt.group, q, rt.text, st)] if rt.correlated else [(rt.group, 1, rt.text, st)] * q
    return raw


def _part_columns(stats, key: str, names: tuple[str, ...]):
    """A zero part's or dispersion model's kept columns, as :func:`glmm_nb.design.drop_collinear`
    decides on its matrix (applied to the TSQR factor R: R'R = X'X, so the same decisions and
    the same warning)."""
    R = combine_r([s[key] for s in stats])
    _R, kept, _dropped = drop_collinear(R, tuple(names))
    keep = None if len(kept) == len(names) else tuple(names.index(c) for c in kept)
    return keep, tuple(kept)


def make_layout(stats, plan, method: str, nagq: int, control: dict):
    """Term order (lme4's, from the global level counts), labels, kept columns and checks."""
    parsed = plan.parsed
    raw = _raw(parsed.random, plan.lhs_specs)
    nl = np.sum([s["nlevels"] for s in stats], axis=0).astype(int)
    n_total = int(sum(s["n"] for s in stats))
    zi_raw = _raw(plan.zi.random, plan.zi.lhs_specs) if plan.zi is not None else []
    zi_nl = np.sum([s["zi_nlevels"] for s in stats], axis=0).astype(int) if zi_raw else np.zeros(0, int)
    for (group, q, text, _st), k in zip(raw + zi_raw, np.r_[nl, zi_nl]):
        if k < 2:
            raise DataError(f"grouping factor '{group}' has a single level; a random effect needs at least two groups")
    order, labels = _term_order(raw, nl)
    zi_order, zi_labels = _term_order(zi_raw, zi_nl) if zi_raw else ([], [])
    for i in order:
        group, q, text, structured = raw[i]
        if nl[i] >= n_total and q > 1 and not structured:  # as random_terms: a structure identifies them
            raise DataError(f"the term {text} has {nl[i]} levels for {n_total} observations: "
                            "its random effects are not identifiable")
    if method == "agq" and nagq > 1 and len(order) > 1:
        groups = ", ".join(dict.fromkeys(rt.text for rt in parsed.random))
        raise ModelError(f"method='agq' needs all random effects in one term on one grouping factor; {groups} span "
                         "several, so the integral does not factor by cluster. Use method='laplace'.")
    keep, dropped = _collinear(combine_r([s["R"] for s in stats]), n_total, plan.x_all)
    x_names = plan.x_all if keep is None else tuple(plan.x_all[i] for i in keep)
    parts = {}
    if plan.zi is not None:
        zi_keep, zi_names = _part_columns(stats, "Rz", plan.zi.names)
        parts.update(zi_order=tuple(zi_order), zi_labels=tuple(zi_labels), zi_keep=zi_keep, zi_names=zi_names)
    if plan.disp is not None:
        disp_keep, disp_names = _part_columns(stats, "Rd", plan.disp.names)
        parts.update(disp_keep=disp_keep, disp_names=disp_names)
    layout = Layout(order=tuple(order), labels=tuple(labels), keep=keep, x_names=x_names, dropped_x=dropped,
                    agq_nodes=nagq if method == "agq" else 1, pirls_maxit=int(control.get("pirls_maxit", 60)),
                    **parts)
    ngroups: dict[str, int] = {}
    for i in order:
        ngroups.setdefault(raw[i][0], int(nl[i]))
    return layout, ngroups, n_total


# --------------------------------------------------------------------------- the stages
def agq_stage(request, dev, laplace_opt, scale):
    """:func:`glmm_nb.pipeline.agq_stage` on the distributed AGQ deviance: L-BFGS-B from the
    Laplace optimum, then Newton polishing with the exact gradient where needed."""
    t0 = time.perf_counter()
    dev.reset_modes()
    lower, upper = parameter_bounds(request, False)
    opt = minimize_devfun(dev.value_and_grad, laplace_opt.final, lower, scale=scale,
                          maxiter=int(request.control.get("maxiter", 2000)), label="L-BFGS-B (AGQ)", upper=upper)
    x, fx, messages = polish_agq(dev, opt, lower, upper)
    return dataclasses.replace(opt, start=laplace_opt.final, final=x, objective=float(fx), messages=tuple(messages),
                               evaluations=opt.evaluations + laplace_opt.evaluations + dev.nevals,
                               time=time.perf_counter() - t0 + laplace_opt.time)


def _re_tables(finals: list[list[dict]], spec, theta) -> tuple[ReTable, ...]:
    """Gather the partitions' random effects per term, in lme4's level order (``theta``: the
    count part's, whose blocks a distance-based term keeps for kriging)."""
    out = []
    blocks = [np.asarray(theta, dtype=float)[sl] for sl in spec.theta_slices()]
    for k, t in enumerate((*spec.terms, *spec.zi_terms)):
        spatial = k < len(spec.terms) and t.structure.coords is not None
        parts = [f[k] for f in finals]
        keys = pd.concat([p["keys"] for p in parts], ignore_index=True)
        b = np.concatenate([p["b"] for p in parts])
        sd = np.concatenate([p["sd"] for p in parts])
        levels, codes = grouping_codes(keys, t.group_vars)
        order = np.argsort(codes, kind="stable")
        out.append(ReTable(label=t.label, group=t.group, group_vars=t.group_vars, col_names=t.col_names,
                           levels=pd.Index(levels, name=t.group), b=b[order], sd=sd[order], lhs_spec=t.lhs_spec,
                           columns=t.columns, zero_part=parts[0].get("zero_part", False), text=t.text,
                           structure=t.structure if spatial else None, theta=blocks[k] if spatial else None))
    return tuple(out)


# -------------------------------------------------------------------------------- fit
def fit_dask(formula, data, family="binomial", link=None, method="laplace", nagq=1, reml=True, weights=None,
             offset=None, control=None, start=None, fixed=None, engine=None, result_class: type = GLMMResult,
             ziformula=None, hurdle=False, dispformula=None):
    """Fit a GLMM to Dask data with the same estimates as the in-memory fit.

    Parameters are those of :func:`glmm_nb.glmm`; ``data`` is a Dask DataFrame (or, with
    ``engine="dask"``, a parquet path or a pandas frame). ``control`` also takes the Dask
    options of :class:`~.plan.DaskOptions` (``sample_clusters``, ``sample_seed``, ``shuffle``,
    ``npartitions``, ``progress``, ``poll``). Runs on the active ``distributed.Client``, or on
    Dask's local scheduler without one.

    A zero part (``ziformula``, ``hurdle``; with random-effect terms too) and a dispersion
    model (``dispformula``) are fitted as in memory: their likelihood is a sum over clusters
    when every random-effect term of both parts is nested in the partitioning factor.

    Raises
    ------
    ModelError
        Crossed random effects (the zero part's included); options the Dask engine does not support.
    DaskFitError
        A worker died (or a partition's task failed); ``err.start`` resumes the fit.
    """
    with stopwatch() as sw, ExitStack() as stack, sw.stage("design"):  # the stages of the fit nest in it
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        return _fit_dask(formula, data, (family, link, ziformula, hurdle, dispformula), method, nagq, reml, weights,
                         offset, control, start, fixed, engine, result_class, sw)


def _fit_dask(formula, data, fam_args, method, nagq, reml, weights, offset, control, start, fixed, engine,
              result_class, sw):
    t_start = time.perf_counter()
    family, link, ziformula, hurdle, dispformula = fam_args
    ddf = as_dask(data, engine)
    frame = _index_as_column(ddf)
    ziformula = zero_part_formula(ziformula, hurdle)
    fam = model_family(family, link, ziformula, hurdle, dispformula)
    if fam.ordinal:
        raise ModelError("ordinal (cumulative-link) models are not available on Dask data yet; fit them in memory "
                         "(ddf.compute(), or a sample of whole clusters)")
    method, nagq = check_method(method, nagq, fam)
    check_disp_reml(fam, bool(reml))
    if ziformula is not None and "|" in ziformula and method == "agq":
        raise ModelError(f"method='agq' is not available with random effects in the zero part (ziformula "
                         f"{ziformula!r}) on Dask data; fit by Laplace (as glmmTMB), or by AGQ in memory")
    control = dict(control or {})
    opts = DaskOptions.from_control(control)
    arguments = {"formula": formula, "family": fam, "method": method, "nagq": nagq, "reml": bool(reml),
                 "weights": weights, "offset": offset, "control": control, "start": start, "fixed": fixed,
                 "ziformula": ziformula, "hurdle": bool(hurdle), "dispformula": dispformula}
    client = current_client()
    plan, collection = make_plan(formula, frame, fam, weights=weights, offset=offset,
                                 sample_clusters=opts.sample_clusters, sample_seed=opts.sample_seed,
                                 shuffle=opts.shuffle, npartitions=opts.npartitions, ziformula=ziformula,
                                 dispformula=dispformula)
    t_plan = time.perf_counter() - t_start
    eng = make_engine(collection, plan, client, progress=opts.progress, poll=opts.poll,
                      pause_timeout=opts.pause_timeout)
    try:
        return _fit(eng, plan, ddf, arguments, opts, result_class, {"plan": t_plan, "build": eng.build_time},
                    t_start, sw)
    finally:
        eng.close()


def _fit(eng, plan, ddf, arguments, opts, result_class, timings, t_start, sw):
    with sw.stage("design"):  # the data passes that give the layout and the in-memory sample
        request, sm, stats, n_dropped, ngroups, nobs, sd, layout = _layout_and_sample(eng, plan, arguments)
        spec, fam, control = request.spec, request.family, request.control
        progress = EvalProgress(opts.progress)
        maxiter = int(control.get("maxiter", 2000))
    t0 = time.perf_counter()
    try:
        if fam.profiled_lmm:
            with sw.stage("starts"):
                dev = DaskLmmDevfun(eng, spec, request.reml, LmmDevfun(spec, reml=request.reml), progress)
                lower, upper = parameter_bounds(request, True)
                x0 = start_values(request, dev)
            with sw.stage("optimizer"):
                opt = minimize_devfun(dev, x0, lower, jac=False, maxiter=maxiter, label="L-BFGS-B", upper=upper)
        else:
            with sw.stage("starts"):
                dev = DaskGlmmDevfun(eng, "laplace", spec, fam, sm.lap, progress)
                sdk = sd if layout.keep is None else sd[list(layout.keep)]
                scale = np.concatenate([np.ones(spec.ntheta), np.where(sdk > 0, sdk, 1.0), np.ones(fam.n_extra(spec))])
                lower, upper = parameter_bounds(request, False)
                x0 = start_values(request, dev, glm=lambda fam0: glm_start(eng, fam0), sample=sm.lap)
            with sw.stage("optimizer"):
                opt = minimize_devfun(dev.value_and_grad, x0, lower, scale=scale, maxiter=maxiter, label="L-BFGS-B",
                                      upper=upper)
            if request.uses_agq:
                with sw.stage("agq"):
                    dev = DaskGlmmDevfun(eng, "agq", spec, fam, sm.lap, progress)
                    opt = agq_stage(request, dev, opt, scale)
        timings["optimize"] = time.perf_counter() - t0
        with sw.stage("result"):
            return _finish(eng, plan, ddf, arguments, request, dev, opt, result_class, timings, t_start, sw, progress,
                           (stats, n_dropped, ngroups, nobs))
    finally:
        progress.close()


def _layout_and_sample(eng, plan, arguments):
    """The partitions' statistics, the layout, and the in-memory sample's request."""
    fam, method, nagq, control = arguments["family"], arguments["method"], arguments["nagq"], arguments["control"]
    stats = eng.map("stats")
    n_dropped = int(sum(s["n_dropped"] for s in stats))
    keep = [s["n"] > 0 for s in stats]
    stats = [s for s in stats if s["n"]]
    if not stats:
        raise DataError(f"no rows left after dropping the {n_dropped} with a missing value in "
                        f"{', '.join(plan.columns)}")
    eng.keep(keep)
    _check_deferred(stats, fam)
    layout, ngroups, nobs = make_layout(stats, plan, method, nagq, control)
    _n, sd = _moments(stats)
    eng.map("finalize", layout)

    rows = [r for r in eng.map("sample_rows") if r is not None]
    frame = pd.concat(rows)
    if frame.index.is_unique:
        frame = frame.sort_index()
    sm = build_partition(frame, plan, keep_frame=True)
    sm.finalize(dataclasses.replace(layout, agq_nodes=1), compact=False)
    spec = sm.spec
    start = arguments["start"]
    request = FitRequest(spec=spec, family=fam, method=method, nagq=nagq, reml=arguments["reml"], control=control,
                         start=None if start is None else np.asarray(start, dtype=float),
                         fixed=dict(arguments["fixed"] or {}))
    return request, sm, stats, n_dropped, ngroups, nobs, sd, layout


def _finish(eng, plan, ddf, arguments, request, dev, opt, result_class, timings, t_start, sw, progress, counts):
    """The partitions' final pass, the result record and the Dask record beside it."""
    _stats, n_dropped, ngroups, nobs = counts
    spec, fam = request.spec, request.family
    t1 = time.perf_counter()
    if fam.profiled_lmm:
        beta, _rx, _pw, sigma, _dev, _ld = dev.profile_at(opt.final)
        finals = eng.map("final_lmm", opt.final, beta, sigma)
    else:
        finals = eng.map("final_glmm", opt.final)
        dev.final = {"deviance": float(sum(f["deviance"] for f in finals)),
                     "converged": all(f["converged"] for f in finals)}
    result = build_result(request, dev, opt, result_class)
    if fam.profiled_lmm:
        sdcor_vcov = sdcor_covariance_lmm(dev, spec, result.theta, result.sigma)
    else:
        sdcor_vcov = sdcor_covariance_glmm(spec, result.theta, result.extras.get("vcov_theta_beta"))
    timings["final"] = time.perf_counter() - t1
    terms = _re_tables([f["ranef"] for f in finals], spec, result.theta)
    timings["total"] = time.perf_counter() - t_start
    info = DaskFit(data=ddf, plan=plan, arguments=arguments, terms=terms, nobs=nobs, n_clusters=plan.n_clusters,
                   npartitions=eng.npartitions, sample_clusters=int(_sample_clusters(spec, plan)),
                   sample_rows=spec.nobs, where=eng.where, timings=dict(timings, steps=eng.steps),
                   sdcor_vcov=sdcor_vcov)
    changes = {"nobs": nobs, "ngroups": ngroups, "n_dropped": n_dropped,
               "messages": tuple(result.messages) + (_note(info, plan),),
               "extras": {**result.extras, "dask": info}}
    if not fam.profiled_lmm:
        changes["deviance"] = float(sum(f["lme4_deviance"] for f in finals))
        if result.vcov_method == "conditional" and finals[0]["info"] is not None:
            info_mat = sum(f["info"] for f in finals)
            names = list(spec.x_names)
            changes["vcov"] = pd.DataFrame(np.linalg.inv(info_mat), index=names, columns=names)
    changes["timings"] = sw.snapshot(opt.evaluations)
    return dataclasses.replace(result, **changes)


def _sample_clusters(spec, plan) -> int:
    """Clusters (levels of the partitioning column) in the in-memory sample."""
    return len(grouping_codes(spec.frame, (plan.key,))[0])


def _note(info: DaskFit, plan) -> str:
    head = (f"Fitted on Dask data: {info.nobs:,} rows in {info.npartitions} partitions on {info.where}"
            f"{' (shuffled by ' + repr(plan.key) + ')' if plan.shuffled else ''}; estimates, standard errors, "
            "log-likelihood and ranef() use every row.")
    if info.sample_clusters >= info.n_clusters:
        return head + " The in-memory record holds all rows."
    return (head + f" fitted(), residuals(), simulate(), diagnostics, marginal effects and the report's data sections "
            f"use a random sample of {info.sample_clusters:,} of {info.n_clusters:,} clusters of {plan.key!r} "
            f"({info.sample_rows:,} rows; seed {plan.sample_seed}).")


_REFIT = ("formula", "data", "weights", "offset", "family", "link", "reml", "method", "nagq", "control", "start",
          "fixed", "ziformula", "hurdle", "dispformula")


def refit_dask(m, **changes):
    """Fit a Dask model again with some things changed (as :func:`glmm_nb.pipeline.refit`; a
    new response vector ``y`` needs the data in memory)."""
    unknown = sorted(set(changes) - set(_REFIT))
    if unknown:
        raise ModelError(f"refit() of a Dask fit cannot change {', '.join(map(repr, unknown))}; it takes "
                         f"{', '.join(_REFIT)}")
    info = m.extras["dask"]
    args = dict(info.arguments)
    data = changes.pop("data", info.data)
    if getattr(args["family"], "has_zero_part", False):  # the count family: the zero part is ziformula's
        args["family"] = args["family"].base
    if "link" in changes and "family" not in changes:
        changes["family"] = args["family"].name
    args.update(changes)
    return fit_dask(data=data, result_class=type(m), **args)
