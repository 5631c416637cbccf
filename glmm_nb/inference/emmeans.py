r"""Estimated marginal means (emmeans 1.8's reference-grid rules) and contrasts among them.

The reference grid crosses every variable of the fixed part: each factor at all of its levels
(in the fit's order), each numeric covariate at its mean over the fitted rows (or at the values
given in ``at``) — except covariates with at most two distinct values, which are kept at both
values like a factor (emmeans' ``cov.keep = "2"``); an offset is held at the mean of the fitted
offset (emmeans averages the offset column). With :math:`X_g` the
fixed-effect rows of the grid, an EMM is the equally weighted average over the grid rows that
share its levels of ``specs`` (and ``by``):

.. math::
   \hat m = \bar x'\hat\beta + \bar o,\qquad \mathrm{se}(\hat m) = \sqrt{\bar x'V\bar x},

with V the fixed-effect covariance (Kenward-Roger's :math:`\Phi_A` for ``ddf="kenward-roger"``)
and df from :mod:`glmm_nb.inference.ddf` (∞ for non-gaussian fits). On the response scale the
mean is :math:`g^{-1}(\hat m)`, its SE :math:`|d\mu/d\eta|\,\mathrm{se}` and its interval the
link-scale interval back-transformed.

A contrast :math:`c'\hat m` within a ``by`` group has :math:`L = c'\bar X`; its t (or z) test
is on the link scale. For log and logit links on the response scale it is reported as a ratio
:math:`\exp(c'\hat m)` with SE :math:`\exp(c'\hat m)\,\mathrm{se}` (rate / odds ratios).
Multiplicity adjustments (per ``by`` group, as emmeans): Tukey
:math:`P(q_{k,\nu} > \sqrt2|t|)` from the studentized range for pairwise comparisons of k means;
``dunnettx`` (emmeans' approximation to Dunnett) for treatment-vs-control; Šidák
:math:`1-(1-p)^m`; Bonferroni; Holm; Benjamini-Hochberg (``fdr``).
"""

from __future__ import annotations

import html
import itertools
import re as _re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError
from .contrasts import adjust_pvalues, contrast_weights
from .ddf import linear_inference, resolve_ddf, t_quantile, two_sided_p
from .emmeans_ordinal import ordinal_grid_values, ordinal_joint_vcov, ordinal_mode
from .modelinfo import link_of
from ..design.newdata import categorical_variables
from .prediction import fixed_design

__all__ = ["EMMResult", "emmeans", "reference_grid"]


# ------------------------------------------------------------------------ reference grid
def _is_factor(col: pd.Series) -> bool:
    return (isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col)
            or not pd.api.types.is_numeric_dtype(col))


def _levels(col: pd.Series) -> list:
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.dropna().unique())
        return [c for c in col.cat.categories if c in present]
    if pd.api.types.is_bool_dtype(col):
        return [False, True]
    return sorted(col.dropna().unique(), key=lambda v: (str(type(v)), v))


def _grid_variables(m) -> list[str]:
    fs = m.spec.fixed_spec
    used = fs.variables_by_source.get("data", set())
    frame = m.spec.frame
    return [c for c in frame.columns if c in used]


def reference_grid(m, at: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """emmeans' reference grid of a fit: one row per combination of factor levels and covariate
    values (first variable varying fastest, as emmeans).

    Returns
    -------
    grid : pandas.DataFrame
    kinds : dict
        ``variable -> "factor" | "covariate"``.
    """
    frame = m.spec.frame
    if frame is None:
        raise ModelError("this fit does not keep its data frame; the reference grid needs it")
    at = dict(at or {})
    variables = _grid_variables(m)
    unknown = [v for v in at if v not in variables]
    if unknown:
        raise DataError(f"at= names {', '.join(map(repr, unknown))}, not a variable of the fixed part "
                        f"({', '.join(variables) or 'none'})")
    values, kinds = {}, {}
    coded = categorical_variables(m.spec.fixed_spec, frame)  # C(h) of a numeric h is a factor, as in R
    for v in variables:
        col = frame[v]
        if _is_factor(col) or v in coded:
            kinds[v] = "factor"
            lv = _levels(col)
            if v in at:
                want = list(np.atleast_1d(at[v]))
                bad = [x for x in want if x not in lv and str(x) not in map(str, lv)]
                if bad:
                    raise DataError(f"at['{v}'] has level(s) {bad} not in the fit ({', '.join(map(str, lv))})")
                lv = [next(x for x in lv if x == w or str(x) == str(w)) for w in want]
            values[v] = lv
        elif v in at:
            kinds[v] = "covariate"
            values[v] = [float(x) for x in np.atleast_1d(at[v])]
        elif col.nunique() <= 2:  # emmeans' cov.keep = "2": two-valued covariates act as factors
            kinds[v] = "factor"
            values[v] = sorted(float(x) for x in col.dropna().unique())
        else:
            kinds[v] = "covariate"
            values[v] = [float(col.mean())]
    combos = list(itertools.product(*[values[v] for v in reversed(variables)]))
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=variables)
    for v in variables:
        col = frame[v]
        if isinstance(col.dtype, pd.CategoricalDtype):
            grid[v] = pd.Categorical(grid[v], categories=col.cat.categories)
        elif pd.api.types.is_bool_dtype(col):
            grid[v] = grid[v].astype(bool)
    return grid, kinds


def _parse_specs(specs, by) -> tuple[list[str], list[str]]:
    if isinstance(specs, str):
        s = specs.strip()
        if s.startswith("~"):
            s = s[1:].strip()
        if "|" in s:
            s, b = s.split("|", 1)
            by = [x.strip() for x in b.split("+") if x.strip()] + ([by] if isinstance(by, str) else list(by or []))
        spec = [x.strip() for x in s.replace("*", "+").replace(":", "+").split("+") if x.strip()]
    else:
        spec = [str(x) for x in specs]
    spec = [x for x in spec if x != "1"]
    by = [by] if isinstance(by, str) else list(by or [])
    return spec, by


def _label(var: str, value, kinds) -> str:
    s = str(value)
    if kinds.get(var) == "factor" and _re.match(r"^[-+]?[0-9.]", s):
        return f"{var}{s}"  # emmeans pastes the name before numeric-looking levels
    return s


# ----------------------------------------------------------------------------- the result
@dataclass(frozen=True, eq=False)
class EMMResult:
    """Estimated marginal means, or contrasts among them, with their inference.

    ``to_frame()`` gives the tidy table; ``pairs()`` / ``contrast()`` give contrasts (of the
    same class); the object prints itself as text and as HTML in notebooks.
    """

    labels: pd.DataFrame        # one row per estimate: spec (or "contrast") and by columns
    L: np.ndarray               # (k, p) linear functions of beta
    offset: np.ndarray          # (k,) constant part on the link scale
    estimate: np.ndarray        # link scale
    std_error: np.ndarray
    df: np.ndarray
    by: tuple
    specs: tuple
    type: str
    level: float
    ddf: str
    link: str
    response_name: str
    kind: str = "emmeans"       # or "contrasts"
    p_value: np.ndarray | None = None
    adjust: str = "none"
    notes: tuple = ()
    model: object = field(default=None, repr=False)
    kinds: dict = field(default_factory=dict, repr=False)
    vcov: np.ndarray | None = field(default=None, repr=False)  # ordinal: covariance of (beta, alpha)
    estimate_name: str = "emmean"  # ordinal modes: emmean, cumprob, prob, mean_class

    # -------------------------------------------------------------------------- tables
    def _scale(self) -> str:
        if self.vcov is not None:  # ordinal modes: estimates on their own scale
            return "link"
        if self.type == "response" and self.link in ("log", "logit"):
            return "ratio"
        if self.type == "response" and self.link != "identity":
            return "response"
        return "link"

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: EMMs (``emmean`` or ``prob``/``rate``/``response``, ``std_error df
        conf_low conf_high``) or contrasts (``contrast estimate std_error df statistic
        p_value``; ``odds_ratio``/``ratio`` on the response scale of logit/log models)."""
        out = self.labels.reset_index(drop=True).copy()
        est, se = self.estimate, self.std_error
        if self.kind == "emmeans":
            q = t_quantile(self.level, self.df)
            lo, hi = est - q * se, est + q * se
            name = self.estimate_name
            if self._scale() != "link":
                inv = link_of(self.model)
                name = self.response_name
                mu = inv.inverse(est)
                se = np.abs(inv.mu_eta(est)) * se
                lo, hi = inv.inverse(lo), inv.inverse(hi)
                lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
                est = mu
            out[name] = est
            out["std_error"] = se
            out["df"] = self.df
            out["conf_low"], out["conf_high"] = lo, hi
            return out
        stat = self.estimate / self.std_error
        name = "estimate"
        if self._scale() == "ratio":
            name = "odds_ratio" if self.model.request.family.ratio_name == "odds ratio" else "ratio"
            est = np.exp(est)
            se = est * se
        out[name] = est
        out["std_error"] = se
        out["df"] = self.df
        out["statistic"] = stat
        out["p_value"] = self.p_value
        return out

    def confint(self, level: float | None = None) -> pd.DataFrame:
        """:meth:`to_frame` with unadjusted intervals ``conf_low conf_high`` (contrasts too)."""
        lev = self.level if level is None else level
        out = self.to_frame()
        if self.kind == "emmeans" and level is None:
            return out
        q = t_quantile(lev, self.df)
        lo, hi = self.estimate - q * self.std_error, self.estimate + q * self.std_error
        if self.kind == "emmeans" and self._scale() != "link":
            inv = link_of(self.model)
            lo, hi = np.sort(np.c_[inv.inverse(lo), inv.inverse(hi)], axis=1).T
        elif self.kind == "contrasts" and self._scale() == "ratio":
            lo, hi = np.exp(lo), np.exp(hi)
        out["conf_low"], out["conf_high"] = lo, hi
        return out

    # ---------------------------------------------------------------------- contrasts
    def _groups(self) -> list[np.ndarray]:
        if not self.by:
            return [np.arange(len(self.labels))]
        keys = self.labels[list(self.by)].astype(str).agg("\x1f".join, axis=1).to_numpy()
        _u, first = np.unique(keys, return_index=True)
        return [np.nonzero(keys == keys[i])[0] for i in sorted(first)]

    def _level_names(self, rows: np.ndarray) -> list[str]:
        lab = self.labels.iloc[rows]
        return [" ".join(_label(v, r[v], self.kinds) for v in self.specs) or "overall"
                for _, r in lab.iterrows()]

    def contrast(self, method="pairwise", adjust: str | None = None, ref: int = 0) -> "EMMResult":
        """Contrasts among the EMMs within each ``by`` group.

        Parameters
        ----------
        method : str or dict
            ``"pairwise"``, ``"revpairwise"``, ``"trt.vs.ctrl"`` (each level against level
            ``ref``), ``"eff"`` (each level against the average), or a dict
            ``{name: weights}`` with one weight per EMM of a group.
        adjust : str, optional
            ``tukey`` (pairwise only), ``dunnettx``, ``sidak``, ``bonferroni``, ``holm``,
            ``fdr``, ``none``. Defaults as emmeans: tukey for pairwise, dunnettx for
            trt.vs.ctrl, fdr for eff, none for custom weights.
        """
        if self.kind != "emmeans":
            raise ModelError("contrasts are taken of estimated marginal means, not of contrasts")
        sep = " / " if self._scale() == "ratio" else " - "
        rows_L, rows_off, rows_lab, group_sizes, rows_C = [], [], [], [], []
        default_adj, family = None, None
        for g in self._groups():
            names = self._level_names(g)
            C, cnames, default_adj, family = contrast_weights(method, names, sep, ref)
            rows_L.append(C @ self.L[g])
            rows_C.append(C)
            rows_off.append(C @ self.offset[g])
            lab = pd.DataFrame({"contrast": cnames})
            for b in self.by:
                lab[b] = self.labels.iloc[g[0]][b]
            rows_lab.append(lab)
            group_sizes.append((len(cnames), len(g)))
        adjust = (adjust or default_adj).lower()
        notes = []
        if adjust == "tukey" and family != "pairwise":
            adjust = "sidak"
            notes.append("Note: adjust = 'tukey' was changed to 'sidak' because 'tukey' is only "
                         "appropriate for one set of pairwise comparisons")
        L = np.concatenate(rows_L)
        off = np.concatenate(rows_off)
        if self.vcov is not None:  # ordinal modes: differences of the EMMs, delta-method SEs
            est = np.concatenate([C @ self.estimate[g] for C, g in zip(rows_C, self._groups())])
            se = np.sqrt(np.einsum("ip,pq,iq->i", L, self.vcov, L))
            df = np.full(len(est), np.inf)
        else:
            est, se, df = linear_inference(self.model, L, self.ddf)
            est = est + off
        stat = est / se
        p_raw = two_sided_p(stat, df)
        p = np.empty_like(p_raw)
        start = 0
        for (nc, k) in group_sizes:
            sl = slice(start, start + nc)
            p[sl] = adjust_pvalues(p_raw[sl], stat[sl], df[sl], adjust, k)
            start += nc
        if adjust != "none" and group_sizes and group_sizes[0][0] > 1:
            what = (f"for comparing a family of {group_sizes[0][1]} estimates" if adjust == "tukey"
                    else f"for {group_sizes[0][0]} tests")
            notes.append(f"P value adjustment: {adjust} method {what}")
        if self._scale() == "ratio":
            notes.append(f"Tests are performed on the {self.link} scale")
        elif self.type == "response" and self.link != "identity" and self.vcov is None:
            notes.append(f"Note: contrasts are still on the {self.link} scale")
        labels = pd.concat(rows_lab, ignore_index=True)
        return replace(self, labels=labels, L=L, offset=off, estimate=est, std_error=se, df=df,
                       kind="contrasts", p_value=p,
                       adjust=adjust if any(nc > 1 for nc, _k in group_sizes) else "none",
                       notes=tuple(n for n in self.notes if n.startswith(("Degrees", "Results are averaged")))
                       + tuple(notes))

    def pairs(self, adjust: str = "tukey", reverse: bool = False) -> "EMMResult":
        """All pairwise differences (ratios on the response scale of log/logit models)."""
        return self.contrast("revpairwise" if reverse else "pairwise", adjust=adjust)

    # ------------------------------------------------------------------------ display
    def __repr__(self) -> str:
        df = self.to_frame()
        body = df.to_string(index=False, float_format=lambda v: f"{v:.5g}")
        return "\n".join([body, ""] + list(self.notes))

    def _repr_html_(self) -> str:
        df = self.to_frame()
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        return f"<div>{df.to_html(index=False, float_format=lambda v: f'{v:.5g}', na_rep='')}{notes}</div>"


def _response_name(m) -> str:
    """emmeans' column name on the response scale: ``prob``, ``rate`` or ``response``."""
    fam = m.request.family
    if fam.link.name == "identity":
        return "emmean"
    return {"probability": "prob", "rate": "rate"}.get(fam.mean_word, "response")


def emmeans(m, specs, by=None, at: dict | None = None, type: str = "link", ddf: str | None = None,
            level: float = 0.95) -> EMMResult:
    """Estimated marginal means of a fitted model.

    Parameters
    ----------
    m : GLMMResult
    specs : str or list of str
        The factor(s) (or covariates) to estimate means for: ``"Machine"``, ``["A", "B"]``,
        ``"~ nitro | Variety"``; ``"1"`` / ``"~ 1"`` for the grand mean.
    by : str or list of str, optional
        Grouping variables: means (and their contrasts) are given within each level.
    at : dict, optional
        Values for covariates (``{"x": [0, 1]}``) or a subset of a factor's levels.
    type : {"link", "response"}
        Response-scale means are back-transformed (``prob`` for binomial, ``rate`` for
        poisson/log, ``response`` otherwise); SEs by the delta method. Ordinal models take
        emmeans' modes instead: ``"latent"`` (the default; ``"link"`` means the same),
        ``"linear.predictor"``, ``"cum.prob"``, ``"prob"`` and ``"mean.class"`` — see
        :mod:`glmm_nb.inference.emmeans_ordinal` (a ``cut`` factor, or one named after the
        response, joins the grid where the mode has one value per cut or category).
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}, optional
        Default as :func:`glmm_nb.inference.ddf.resolve_ddf`. Note that emmeans' own default
        for lmer fits is Kenward-Roger.
    level : float

    Returns
    -------
    EMMResult
    """
    ordinal = bool(m.request.family.ordinal)
    if ordinal:
        mode = ordinal_mode(type)
    elif type not in ("link", "response"):
        raise ModelError(f"type must be 'link' or 'response', not {type!r}")
    if not 0 < level < 1:
        raise ModelError(f"level must lie between 0 and 1, not {level}")
    method = "asymptotic" if ordinal else resolve_ddf(m, ddf)
    spec_vars, by_vars = _parse_specs(specs, by)
    grid, kinds = reference_grid(m, at)
    X, _off = fixed_design(m, grid, offsets=False)
    off_mean = float(np.mean(np.asarray(m.spec.offset, dtype=float)))
    name = "emmean"
    if ordinal:
        grid, values, G, extra, name = ordinal_grid_values(m, grid, X, off_mean, mode)
        if extra is not None:
            kinds[extra] = "factor"
    for v in spec_vars + by_vars:
        if v not in kinds:
            raise DataError(f"'{v}' is not a variable of the fixed part ({', '.join(kinds) or 'none'})")
    keys = spec_vars + by_vars
    if keys:
        # group rows by (by, spec) with the first spec variable fastest, as emmeans orders them
        codes = np.zeros(len(grid), dtype=np.int64)
        for v in list(reversed(by_vars)) + list(reversed(spec_vars)):
            vals = list(dict.fromkeys(grid[v].tolist()))
            codes = codes * len(vals) + grid[v].map({x: i for i, x in enumerate(vals)}).to_numpy(dtype=np.int64)
        _u, first, inv = np.unique(codes, return_index=True, return_inverse=True)
        labels = grid.iloc[first][keys].reset_index(drop=True)
    else:
        first, inv = np.zeros(1, dtype=np.int64), np.zeros(len(grid), dtype=np.int64)
        labels = pd.DataFrame({"1": ["overall"]})
    counts = np.bincount(inv)[:, None]

    def average(A):
        out = np.zeros((len(first),) + A.shape[1:])
        np.add.at(out, inv, A)
        return out / counts.reshape((-1,) + (1,) * (A.ndim - 1))

    vcov = None
    if ordinal:
        L, est = average(G), average(values)
        vcov = ordinal_joint_vcov(m)
        se = np.sqrt(np.einsum("ip,pq,iq->i", L, vcov, L))
        df = np.full(len(est), np.inf)
        offset = np.zeros(len(est))
    else:
        L = average(X)
        offset = np.full(L.shape[0], off_mean)
        est, se, df = linear_inference(m, L, method)
        est = est + offset
    others = [v for v in kinds if v not in keys and kinds[v] == "factor"]
    notes = []
    if others:
        notes.append("Results are averaged over the levels of: " + ", ".join(others))
    notes.append(f"Degrees-of-freedom method: {method}")
    notes.append(f"Confidence level used: {level}")
    link = m.request.family.link.name
    if ordinal:
        type = mode
        notes.append(f"Ordinal mode {mode!r} (emmeans' modes for clm/clmm); random effects at 0")
    elif type == "response" and link != "identity":
        notes.append(f"Intervals are back-transformed from the {link} scale")
    elif link != "identity":
        notes.append(f"Results are given on the {link} (not the response) scale.")
    return EMMResult(labels=labels, L=L, offset=offset, estimate=est, std_error=se, df=df,
                     by=tuple(by_vars), specs=tuple(spec_vars), type=type, level=level, ddf=method,
                     link=link, response_name=_response_name(m), notes=tuple(notes), model=m, kinds=kinds,
                     vcov=vcov, estimate_name=name)
