r"""One partition's rows as arrays, and the deviance pieces over its clusters (runs on a worker).

A :class:`PartitionModel` is built once from a pandas partition that holds whole clusters
(:func:`build_partition`): the response, weights and offset, the fixed-effect matrix from the
plan's formulaic spec (the same columns in every partition), and the random-effect terms with
the partition's own levels. :meth:`PartitionModel.finalize` then puts the terms in the global
order (lme4's: decreasing number of levels over all the data), drops the globally collinear
columns and builds the in-memory deviance objects of :mod:`glmm_nb.likelihood` on those rows.

Because every cluster lies in one partition, :math:`M = I + \tilde Z'W\tilde Z` is block
diagonal across partitions, so for GLMMs the Laplace and AGQ deviances, their gradients and
finite-difference Hessians are sums of the partitions' own (each partition's PIRLS finds its
clusters' modes at the common :math:`(\theta, \beta)`). For the profiled LMM the pieces of
the Schur complement are sums too: with :math:`y_c = y - o - X\beta_0` (centred at a global
least-squares fit, which keeps the sums below well conditioned),

.. math::
   a = \tilde Z'WX\,' M^{-1} \tilde Z'WX, \quad b = \tilde Z'WX\,' M^{-1}\tilde Z'Wy_c, \quad
   c = (M^{-1}\tilde Z'Wy_c)'\,\tilde Z'Wy_c, \quad \log|M|,

give :math:`R_X'R_X = X'WX - \sum a`, :math:`\delta = (R_X'R_X)^{-1}(X'Wy_c - \sum b)`,
:math:`\hat\beta = \beta_0 + \delta` and the penalized residual sum of squares
:math:`y_c'Wy_c - \delta'X'Wy_c - (\sum c - \delta'\sum b)` (the normal equations of the
penalized least-squares problem).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design import ModelSpec, ReTerm, grouping, model_frame, model_matrix, read_response, rename_intercept
from ..design.covstruct import make_structure
from ..design.matrices import check_finite, eval_numeric
from ..design.positions import PositionSpec, check_positions
from ..errors import DataError
from ..likelihood import AgqDevfun, LaplaceDevfun, ReStructure, ZiReLaplaceDevfun

__all__ = ["PartitionModel", "Layout", "build_partition", "call", "combine_r"]


def call(model, name: str, *args):
    """Run ``model.name(*args)`` (the task every map-reduce step submits)."""
    return getattr(model, name)(*args)


def _r_factor(A: np.ndarray) -> np.ndarray:
    """The k × k triangular factor of a tall matrix (zero rows added when it is short)."""
    k = A.shape[1]
    R = np.linalg.qr(A, mode="r")
    if R.shape[0] < k:
        R = np.vstack([R, np.zeros((k - R.shape[0], k))])
    return R


def combine_r(rs: list[np.ndarray]) -> np.ndarray:
    """Combine partitions' R factors into the R factor of the stacked matrix (TSQR)."""
    return _r_factor(np.vstack(rs))


def _columns(X: np.ndarray, keep) -> np.ndarray:
    return X if keep is None else _frozen(np.ascontiguousarray(X[:, list(keep)]))


def _frozen(a):
    a = np.asarray(a)
    a.setflags(write=False)
    return a


def _constant(a: np.ndarray, value: float, compact: bool):
    """A zero-memory broadcast of ``value`` where ``a`` is that constant (partitions only)."""
    if compact and a.size and np.all(a == value):
        return np.broadcast_to(np.float64(value), a.shape)
    return _frozen(np.ascontiguousarray(a, dtype=float))


@dataclass(frozen=True)
class Layout:
    """What the driver decides from all partitions: the term order and labels, the fixed
    effects kept, and the deviance objects to build."""

    order: tuple[int, ...]
    labels: tuple[str, ...]
    keep: tuple[int, ...] | None
    x_names: tuple[str, ...]
    dropped_x: tuple[str, ...]
    agq_nodes: int  # > 1: build the AGQ deviance too
    pirls_maxit: int
    zi_order: tuple[int, ...] = ()  # the zero part's terms, as order and labels above
    zi_labels: tuple[str, ...] = ()
    zi_keep: tuple[int, ...] | None = None  # the zero part's kept columns (None: all)
    zi_names: tuple[str, ...] = ()
    disp_keep: tuple[int, ...] | None = None  # the dispersion model's kept columns
    disp_names: tuple[str, ...] = ()


class PartitionModel:
    """The rows of one partition (whole clusters) and their deviance pieces."""

    def __init__(self, plan):
        self.plan = plan
        self.n = 0
        self.n_dropped = 0
        self.sample = None
        self.deferred = None  # (y value, distinct trials) of a locally constant response that failed the check
        self.valid = None  # (y, trials) of one row that passed the response check
        self.spec = self.lap = self.agq = self.lmm = None

    # ------------------------------------------------------------------------- summaries
    def stats(self) -> dict:
        """Small facts for the driver: sizes, level counts, X's R factor and moments."""
        if not self.n:
            return {"n": 0, "n_dropped": self.n_dropped}
        X = self.X
        mean = X.mean(axis=0)
        return {"n": self.n, "n_dropped": self.n_dropped, "nlevels": [t.nlevels for t in self.raw],
                "zi_nlevels": [t.nlevels for t in self.zi_raw],
                "Rz": None if self.Xz is None else _r_factor(self.Xz),
                "Rd": None if self.Xd is None else _r_factor(self.Xd),
                "R": _r_factor(X), "mean": mean, "m2": ((X - mean) ** 2).sum(axis=0),
                "deferred": self.deferred, "valid": self.valid, "response_name": self.response_name,
                "weights_given": self.weights_given}

    def sample_rows(self):
        """The rows of the sampled clusters (released here)."""
        out, self.sample = self.sample, None
        return out

    def __sizeof__(self) -> int:
        seen, total = set(), 0
        for a in self._arrays():
            if isinstance(a, np.ndarray) and id(a) not in seen and 0 not in a.strides:
                seen.add(id(a))
                total += a.nbytes
        return total + 1000

    def _arrays(self):
        if self.spec is not None:
            yield from (self.spec.y, self.spec.weights, self.spec.offset, self.spec.X)
            yield from (self.spec.zi_X, self.spec.disp_X)
            for t in (*self.spec.terms, *self.spec.zi_terms):
                yield from (t.codes, t.Zvals)
            rs = (self.lmm or self.lap).rs
            yield rs.cols
            if self.spec.zi_terms:
                yield from (self.lap.joint.cols, *self.lap.joint.Zv)
        elif self.n:
            yield from (self.y, self.pw, self.off, self.X, self.Xz, self.Xd)
            for t in (*self.raw, *self.zi_raw):
                yield from (t.codes, t.Zvals)

    # -------------------------------------------------------------------------- finalize
    def finalize(self, layout: Layout, compact: bool = True) -> None:
        """Global term order and labels, kept columns; build the deviance objects."""
        terms = tuple(dataclasses.replace(self.raw[i], label=lab) for i, lab in zip(layout.order, layout.labels))
        X = self.X if layout.keep is None else _frozen(np.ascontiguousarray(self.X[:, list(layout.keep)]))
        plan = self.plan
        parts = {}
        if plan.zi is not None:
            zi_terms = tuple(dataclasses.replace(self.zi_raw[i], label=lab)
                             for i, lab in zip(layout.zi_order, layout.zi_labels))
            parts.update(zi_formula=plan.zi.formula, zi_X=_columns(self.Xz, layout.zi_keep), zi_names=layout.zi_names,
                         zi_fixed_spec=plan.zi.fixed_spec, zi_terms=zi_terms)
            self.zi_level_values = [self.zi_level_values[i] for i in layout.zi_order]
        if plan.disp is not None:
            parts.update(disp_formula=plan.disp.formula, disp_X=_columns(self.Xd, layout.disp_keep),
                         disp_names=layout.disp_names, disp_fixed_spec=plan.disp.fixed_spec)
        self.spec = ModelSpec(
            formula=plan.parsed, family=plan.family.name, response_name=self.response_name, y=self.y,
            weights=self.pw, offset=self.off, X=X, x_names=layout.x_names, fixed_spec=plan.fixed_spec, terms=terms,
            n_dropped=self.n_dropped, row_index=self.index, variables=plan.variables,
            user_weights=self.weights_given, dropped_x=layout.dropped_x, frame=self.frame,
            meta={"weights_column": plan.weights_column, "offset_column": plan.offset_column,
                  "weights_vector": self.user_weights, "offset_vector": self.user_offset},
            **parts,
        )
        self.level_values = [self.level_values[i] for i in layout.order]
        self.raw = self.X = self.y = self.pw = self.off = self.Xz = self.Xd = self.zi_raw = None
        fam = plan.family
        if fam.profiled_lmm:
            self.lmm = LmmPiece(self.spec)
            return
        if self.spec.zi_terms:  # random effects in the zero part: the joint Laplace (no AGQ, as in memory)
            self.lap = ZiReLaplaceDevfun(self.spec, fam)
        elif layout.agq_nodes > 1:
            self.agq = AgqDevfun(self.spec, fam, layout.agq_nodes)
            self.lap = self.agq.lap
        else:
            self.lap = LaplaceDevfun(self.spec, fam)
        self.lap.maxit = layout.pirls_maxit

    # --------------------------------------------------------------------- GLMM deviance
    def _dev(self, stage: str):
        return self.agq if stage == "agq" else self.lap

    def value(self, phi, stage: str) -> float:
        return self._dev(stage)(phi)

    def value_and_grad(self, phi, stage: str):
        return self._dev(stage).value_and_grad(phi)

    def exact_gradient(self, phi, stage: str):
        return self._dev(stage).exact_gradient(phi)

    def hessian(self, phi, stage: str):
        """This partition's finite-difference Hessian (the steps depend on phi only, so the
        sum over partitions is the finite-difference Hessian of the summed gradient)."""
        return self._dev(stage).hessian(phi)

    def reset_modes(self) -> None:
        if self.lap is not None:
            self.lap.reset_modes()

    def glm_step(self, beta, family):
        """One IRLS step of the GLM without random effects (:func:`glmm_nb.likelihood.glm_irls`):
        the deviance at ``beta`` (None: the family's starting means) and the R factor of the
        weighted least-squares problem ``[sqrt(w) X | sqrt(w) z]``."""
        lap = self.lap
        y, pw, off, X = lap.y, lap.pw, lap.off, lap.X
        link = family.link
        if beta is None:
            mu = family.start_mu(y, pw)
            eta = link.link(mu)
            dev = np.nan
        else:
            eta = X @ beta + off
            mu = link.inverse(eta)
            dev = float(np.sum(family.dev_resid(y, mu, pw)))
        me = link.mu_eta(eta)
        w = pw * me**2 / family.variance(mu)
        z = eta - off + (y - mu) / me
        sw = np.sqrt(w)
        return dev, _r_factor(np.column_stack([X * sw[:, None], z * sw]))

    def dispersion_start_pieces(self, beta, family):
        """(y, mu, prior weights) at the GLM means — only for the in-memory sample."""
        lap = self.lap
        return lap.y, family.link.inverse(lap.X @ beta + lap.off), lap.pw

    def final_glmm(self, phi) -> dict:
        """At the estimate: PIRLS convergence, Laplace deviance, lme4's conditional deviance,
        the pieces of the theta-conditional fixed-effect information, and the random effects."""
        lap = self.lap
        st = lap.state(phi)
        X, W = lap.X, st.W
        info = None  # the joint Laplace of a zero part with random effects has no conditional version
        if not self.spec.zi_terms:
            ZtWX = lap.rs.tmult(st.vals, W[:, None] * X)
            info = X.T @ (W[:, None] * X) - ZtWX.T @ st.fac.solve(ZtWX)
        ranef = self._ranef(st.theta, st.u, st.fac, 1.0)
        if self.spec.zi_terms:
            theta_zi = np.asarray(phi, dtype=float)[len(phi) - self.spec.zi_ntheta :]
            ranef += self._ranef(theta_zi, st.u_zi, st.fac, 1.0, zero_part=True)
        return {"converged": bool(st.converged), "deviance": float(st.deviance),
                "lme4_deviance": float(np.sum(st.family.dev_resid(lap.y, st.mu, lap.pw))), "info": info,
                "ranef": ranef}

    # ----------------------------------------------------------------------- profiled LMM
    def lmm_totals(self, beta0):
        return self.lmm.totals(beta0)

    def lmm_pieces(self, theta, beta0):
        return self.lmm.pieces(theta, beta0)

    def final_lmm(self, theta, beta, sigma) -> dict:
        u, fac = self.lmm.modes(theta, beta)
        return {"ranef": self._ranef(np.asarray(theta, float), u, fac, float(sigma) ** 2)}

    # ---------------------------------------------------------------------- random effects
    def _ranef(self, theta, u, fac, scale2: float, zero_part: bool = False) -> list[dict]:
        """Per term: the level keys, b = T u (J, q) and the conditional SDs (J, q); ``zero_part``:
        the zero part's terms (their blocks of the joint factorization follow the count part's)."""
        out, start = [], 0
        spec = self.spec
        terms, slices = (spec.zi_terms, spec.zi_theta_slices()) if zero_part else (spec.terms, spec.theta_slices())
        k0 = len(spec.terms) if zero_part else 0
        keys = self.zi_level_values if zero_part else self.level_values
        for k, (t, sl) in enumerate(zip(terms, slices)):
            T = t.T(theta[sl])
            uk = u[start : start + t.nlevels * t.q].reshape(t.nlevels, t.q)
            start += t.nlevels * t.q
            cov = scale2 * np.einsum("ab,jbc,dc->jad", T, fac.inv_blocks_term(k0 + k), T)
            out.append({"label": t.label, "group": t.group, "group_vars": t.group_vars, "columns": t.col_names,
                        "zero_part": zero_part, "keys": keys[k], "b": uk @ T.T,
                        "sd": np.sqrt(np.maximum(np.einsum("jaa->ja", cov), 0.0))})
        return out


class LmmPiece:
    """A partition's share of the profiled LMM (see the module docstring)."""

    def __init__(self, spec: ModelSpec):
        self.rs = ReStructure(spec)
        self.w = np.asarray(spec.weights, dtype=float)
        self.X = np.asarray(spec.X, dtype=float)
        self.y = np.asarray(spec.y, dtype=float) - np.asarray(spec.offset, dtype=float)
        self.wX = self.X if 0 in self.w.strides and self.w.size and self.w[0] == 1.0 else self.w[:, None] * self.X

    def totals(self, beta0):
        """X'WX, X'Wy_c, y_c'Wy_c, the number of positive weights and the sum of their logs."""
        yc = self.y - self.X @ beta0
        pos = self.w > 0
        return (self.X.T @ self.wX, self.wX.T @ yc, float(np.sum(self.w * yc**2)), int(pos.sum()),
                float(np.sum(np.log(self.w[pos]))))

    def pieces(self, theta, beta0):
        """(a, b, c, log|M|) at theta."""
        rs, w = self.rs, self.w
        vals = rs.vals(np.asarray(theta, dtype=float))
        fac = rs.factor(vals, w)
        yc = self.y - self.X @ beta0
        ZtWX = rs.tmult(vals, self.wX)
        ZtWy = rs.tmult(vals, w * yc)
        MiX = fac.solve(ZtWX)
        Miy = fac.solve(ZtWy)
        return ZtWX.T @ MiX, ZtWX.T @ Miy, float(Miy @ ZtWy), float(fac.logdet)

    def modes(self, theta, beta):
        """The conditional modes u (and M's factor) at theta and the global beta."""
        rs, w = self.rs, self.w
        vals = rs.vals(np.asarray(theta, dtype=float))
        fac = rs.factor(vals, w)
        return fac.solve(rs.tmult(vals, w * (self.y - self.X @ beta))), fac


# ------------------------------------------------------------------------------- building
def _raw_terms(d: pd.DataFrame, random, lhs_specs, compact: bool):
    """The random-effect terms of ``random`` on these rows (parse order, the partition's own
    levels) and each term's level keys."""
    raw, level_values = [], []
    for rt, lspec in zip(random, lhs_specs):
        grp = grouping(d, rt.group_vars)
        labels, codes = grp.levels, grp.codes
        if isinstance(lspec, PositionSpec):  # ou/exp/gau/mat: indicators of the plan's global positions
            where = f"the term {rt.text}"
            check_positions(len(lspec.coords), len(labels), len(d), where)  # this partition's memory
            Z = lspec.indicators(d, where)
            cn_all = lspec.col_names
            structure = make_structure(rt.structure, len(cn_all), rt.text, lspec.coords)
        else:
            mm = model_matrix("", d, f"the term {rt.text}", spec=lspec)
            cn_all = rename_intercept(mm.columns)
            Z = mm.to_numpy(dtype=float)
            check_finite(Z, cn_all, f"column of the term {rt.text}:")
            # diag/cs/ar1/toep: the structure depends on the plan's columns only (the same in every partition)
            structure = make_structure(rt.structure, len(cn_all), rt.text) if rt.structure != "us" else None
        first = np.unique(codes, return_index=True)[1]
        keys = d[list(rt.group_vars)].iloc[first].reset_index(drop=True)
        chunks = [(None, cn_all, Z)] if rt.correlated else [((j,), (cn_all[j],), Z[:, [j]]) for j in range(len(cn_all))]
        for cols_kept, cn, zv in chunks:
            raw.append(ReTerm(group=rt.group, label=rt.group, group_vars=rt.group_vars, levels=labels,
                              codes=_frozen(codes), col_names=cn, Zvals=_constant(zv, 1.0, compact), lhs_spec=lspec,
                              columns=cols_kept, text=rt.text, var_levels=grp.var_levels,
                              level_codes=_frozen(grp.level_codes), structure=structure if cols_kept is None else None))
            level_values.append(keys)
    return raw, level_values


def _part_matrix(d: pd.DataFrame, part, where: str, what: str) -> np.ndarray:
    """The fixed-effect matrix of a zero part or a dispersion model with the plan's encoding."""
    mm = model_matrix("", d, where, spec=part.fixed_spec)
    names = rename_intercept(mm.columns)
    if tuple(names) != part.names:
        raise DataError(f"a partition's columns of {where} ({', '.join(names)}) differ from the plan's "
                        f"({', '.join(part.names)}); a factor has levels that were not seen when planning")
    X = mm.to_numpy(dtype=float)
    check_finite(X, names, what)
    return _frozen(np.ascontiguousarray(X))


def _check_response(model, fam, y, trials, weights_given, name) -> None:
    """The family's response check; a locally constant response that fails it is deferred to
    the driver (the gaussian family refuses a constant response — constant over all rows)."""
    try:
        fam.check_response(y, trials, weights_given, name)
    except DataError:
        if not (len(y) and np.ptp(y) == 0):
            raise
        model.deferred = (float(y[0]), np.unique(trials))
        return
    model.valid = (float(y[0]), float(trials[0]))


def build_partition(frame: pd.DataFrame, plan, keep_frame: bool = False) -> PartitionModel:
    """A partition's arrays with the plan's encoding (``keep_frame``: the in-memory sample —
    dense arrays and the model frame kept, as the in-memory ``ModelSpec`` has them)."""
    model = PartitionModel(plan)
    parsed, fam = plan.parsed, plan.family
    d = frame
    if plan.categories:
        d = d.copy()
        for col, levels in plan.categories.items():
            d[col] = pd.Categorical(d[col], categories=levels)
    mask = ~d[list(plan.columns)].isna().any(axis=1).to_numpy()
    model.n_dropped = int((~mask).sum())
    if not mask.any():
        return model
    if model.n_dropped:
        d = d[mask]
    mf = model_frame(d, plan.variables, weights=plan.weights_column, offset=plan.offset_column)
    full = d  # with the weights= / offset= columns, which the model frame leaves out
    d = mf.data
    n = len(d)
    model.n = n
    compact = not keep_frame
    y, trials, name = read_response(parsed, d, fam)
    _check_response(model, fam, y, trials, mf.weights is not None, name)
    model.response_name = name
    model.weights_given = mf.weights is not None
    model.user_weights = mf.weights if keep_frame else None
    model.user_offset = mf.offset if keep_frame else None
    pw = trials * (mf.weights if mf.weights is not None else 1.0)
    off = np.zeros(n) if mf.offset is None else mf.offset.copy()
    for o in parsed.offsets:
        off = off + eval_numeric(o, d, "offset")
    if not np.all(np.isfinite(off)):
        raise DataError(f"the offset has non-finite values (e.g. {off[~np.isfinite(off)][0]:g})")
    if not np.all(np.isfinite(pw)):
        raise DataError("weights= has infinite values")
    model.y = _frozen(np.ascontiguousarray(y, dtype=float))
    model.pw = _constant(pw, 1.0, compact)
    model.off = _constant(off, 0.0, compact)

    Xdf = model_matrix("", d, "the fixed part", spec=plan.fixed_spec)
    names = rename_intercept(Xdf.columns)
    if tuple(names) != plan.x_all:
        raise DataError(f"a partition's fixed-effect columns ({', '.join(names)}) differ from the plan's "
                        f"({', '.join(plan.x_all)}); a factor has levels that were not seen when planning")
    X = Xdf.to_numpy(dtype=float)
    del Xdf
    check_finite(X, names, "fixed-effect column")
    model.X = _frozen(np.ascontiguousarray(X))

    raw, level_values = _raw_terms(d, parsed.random, plan.lhs_specs, compact)
    model.Xz = model.Xd = None
    model.zi_raw, model.zi_level_values = [], []
    if plan.zi is not None:
        model.Xz = _part_matrix(d, plan.zi, "the zero part", "zero-part column")
        model.zi_raw, model.zi_level_values = _raw_terms(d, plan.zi.random, plan.zi.lhs_specs, compact)
    if plan.disp is not None:
        model.Xd = _part_matrix(d, plan.disp, "the dispersion model", "dispersion-model column")
    model.raw, model.level_values = raw, level_values
    model.index = d.index if keep_frame else pd.RangeIndex(n)
    model.frame = d[list(plan.variables)].copy() if keep_frame else None
    if not keep_frame:
        rows = full if plan.sample_keys is None else full[full[plan.key].isin(plan.sample_keys)]
        model.sample = rows[list(plan.columns)].copy() if len(rows) else None
    return model
