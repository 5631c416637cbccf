"""The frozen :class:`GLMMResult` record and the tables derived from it.

The record holds what the fit produced and the :class:`~glmm_nb.request.FitRequest` that
produced it (``m.request``); it knows nothing of inference, marginal effects or reports, which
sit above it in the import graph (the user-facing :class:`glmm_nb.api.MixedModel` adds them).
One display path: ``coef_table``/``varcorr`` feed :mod:`.display`, which writes
``summary()``, ``_repr_html_`` and what the report and CLI show.
Column names follow broom.mixed (``term estimate std_error statistic p_value conf_low
conf_high``); ``varcorr()`` has lme4's ``as.data.frame(VarCorr(m))`` layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..design import ModelSpec
from ..errors import ModelError
from ..optimize import OptSummary
from ..request import FitRequest
from ..timing import FitTimings
from . import display
from .tables import ZI_PREFIX, check_level, wald_table

__all__ = ["GLMMResult"]


@dataclass(frozen=True, eq=False)
class GLMMResult:
    """A fitted (generalized) linear mixed model. Built once by ``results.build``; never mutated.

    Attributes
    ----------
    request : FitRequest
        What was fitted and how (spec, family object, method, nagq, reml, control, start).
    formula, family, link, method : str
        ``family`` is the family's name; ``request.family`` is the family object.
    nagq : int
    reml : bool or None
        REML (True) or ML (False) for gaussian fits; None otherwise.
    theta : ndarray
        lme4's relative covariance factor parameters.
    fixef : pandas.Series
    vcov : pandas.DataFrame
    loglik : float
        Full log-likelihood (all normalising constants; Laplace/AGQ approximation for GLMMs,
        REML criterion for REML fits, as lme4).
    deviance : float
        lme4's ``deviance()``: for GLMMs the sum of squared deviance residuals at the
        conditional modes; -2 log-likelihood (or the REML criterion) for LMMs.
    sigma : float
        Residual SD (profiled LMM) or 1.
    nobs, ngroups, n_dropped
    converged, singular : bool
    opt : OptSummary
    messages : tuple of str
        Convergence and singular-fit explanations in plain words.
    thresholds : pandas.Series
        Ordinal families: the K − 1 thresholds α ("1|2", "2|3", … as ``ordinal::clm`` names
        them; logit P(Y ≤ k) = α_k − η); empty otherwise. ``fixef`` holds the coefficients only.
    thresholds_vcov : pandas.DataFrame
        Their covariance (delta method from the optimizer's scale).
    disp_fixef, disp_vcov : pandas.Series, pandas.DataFrame
        A ``dispformula``'s coefficients on glmmTMB's scale (``fixef(m)$disp``) and their
        covariance; empty otherwise.
    timings : glmm_nb.timing.FitTimings
        Where the fit's time went, a read-only mapping of seconds: ``design`` (formula, model
        frame, X, Z), ``checks`` (response, rank, identifiability, separation), ``starts``
        (deviance function set-up, GLM and theta starts), ``optimizer``, ``agq`` (AGQ stage,
        0 for Laplace), ``hessian`` (at the optimum), ``result`` (everything after) and
        ``total``; ``m.timings.evaluations`` counts the deviance evaluations. The stages add
        up to ``total``. A refit times its own design; ``fit(request)`` starts at the request.
    """

    formula: str
    family: str
    link: str
    method: str
    nagq: int
    reml: bool | None
    spec: ModelSpec
    theta: np.ndarray
    fixef: pd.Series
    vcov: pd.DataFrame
    loglik: float
    deviance: float
    sigma: float
    nobs: int
    ngroups: dict
    n_dropped: int
    converged: bool
    singular: bool
    opt: OptSummary
    u: np.ndarray
    cond_cov: tuple  # per term: (J, q, q) conditional covariance of b
    request: FitRequest
    messages: tuple[str, ...] = ()
    vcov_method: str = "hessian"
    extras: dict = field(default_factory=dict)
    dispersion: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="dispersion"))
    zi_fixef: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="estimate"))
    zi_vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    thresholds: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="estimate"))
    thresholds_vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    disp_fixef: pd.Series = field(default_factory=lambda: pd.Series(dtype=float, name="estimate"))
    disp_vcov: pd.DataFrame = field(default_factory=pd.DataFrame)
    zi_theta: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the zero part's random-effect terms
    zi_u: np.ndarray = field(default_factory=lambda: np.zeros(0))
    zi_cond_cov: tuple = ()
    timings: FitTimings = field(default_factory=lambda: FitTimings({}))

    # ------------------------------------------------------------------ sizes and criteria
    @property
    def npar(self) -> int:
        return (len(self.fixef) + len(self.theta) + len(self.residual_scale()) + len(self.dispersion)
                + len(self.zi_fixef) + len(self.zi_theta) + len(self.thresholds) + len(self.disp_fixef)
                - len(self.request.fixed))  # held parameters are not estimated

    @property
    def df_resid(self) -> int:
        return self.nobs - self.npar

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.npar

    @property
    def bic(self) -> float:
        return -2 * self.loglik + np.log(self.nobs) * self.npar

    # ------------------------------------------------------------------------ fixed effects
    def coef_table(self, conf_level: float = 0.95, part: str = "cond") -> pd.DataFrame:
        """Wald table indexed by term: estimate, std_error, statistic, p_value, conf_low/high.

        ``part="zi"``: the zero part of a zero-inflated or hurdle model (log-odds of a
        structural zero, or of a zero). ``part="thresholds"``: the thresholds of an ordinal model.
        ``part="disp"``: the dispersion model's coefficients (``dispformula=``).
        """
        if part == "zi":
            if not len(self.zi_fixef):
                raise ModelError("the model has no zero part (fit with ziformula=)")
            return wald_table(self.zi_fixef, np.sqrt(np.diag(self.zi_vcov.to_numpy())), conf_level)
        if part == "disp":
            if not len(self.disp_fixef):
                raise ModelError("the model has no dispersion model (fit with dispformula=)")
            return wald_table(self.disp_fixef, np.sqrt(np.diag(self.disp_vcov.to_numpy())), conf_level)
        if part == "thresholds":
            if not len(self.thresholds):
                raise ModelError("the model has no thresholds (fit with family='ordinal')")
            return wald_table(self.thresholds, np.sqrt(np.diag(self.thresholds_vcov.to_numpy())), conf_level)
        if part != "cond":
            raise ModelError(f"part must be 'cond', 'zi', 'disp' or 'thresholds', not {part!r}")
        return wald_table(self.fixef, np.sqrt(np.diag(self.vcov.to_numpy())), conf_level)

    def tidy(self, conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
        """One table in broom.mixed's ``tidy()`` layout: ``effect group term estimate
        std_error statistic p_value`` (+ ``conf_low conf_high``, Wald, with ``conf_int``).

        Fixed effects have ``effect="fixed"``; variance parameters ``effect="ran_pars"`` with
        terms ``sd__(Intercept)``, ``cor__(Intercept).x`` and, for gaussian models, group
        ``Residual`` / term ``sd__Observation`` (broom.mixed's names). Models with a zero part
        or thresholds gain a ``component`` column: ``cond`` for the conditional model, ``zi``
        for the zero part, ``thresholds`` for the thresholds of an ordinal model (their
        statistic tests α_k = 0, as ``clmm``'s summary prints it).
        """
        ct = self.coef_table(conf_level=conf_level).reset_index()
        fixed = ct.assign(effect="fixed", group=None)
        rows = []
        for r in self.varcorr().itertuples():
            if r.grp == "Residual":
                rows.append(("ran_pars", "Residual", "sd__Observation", r.sdcor))
            elif r.var2 is None or r.var2 != r.var2:
                rows.append(("ran_pars", r.grp, f"sd__{r.var1}", r.sdcor))
            else:
                rows.append(("ran_pars", r.grp, f"cor__{r.var1}.{r.var2}", r.sdcor))
        for name, value in self.dispersion.items():  # broom.mixed's glmmTMB dispersion row
            rows.append(("dispersion", None, name, value))
        ran = pd.DataFrame(rows, columns=["effect", "group", "term", "estimate"])
        parts = [fixed, ran]
        cols = ["effect", "group", "term", "estimate", "std_error", "statistic", "p_value"]
        if len(self.zi_fixef):  # broom.mixed's glmmTMB layout: a component column
            parts[0] = fixed.assign(component="cond")
            zgrp = ran.group.fillna("").str.startswith(ZI_PREFIX)  # the zero part's variance components
            parts[1] = ran.assign(component=np.where(zgrp, "zi", "cond"),
                                  group=ran.group.where(~zgrp, ran.group.str.slice(len(ZI_PREFIX))))
            zi = self.coef_table(conf_level=conf_level, part="zi").reset_index()
            parts.append(zi.assign(effect="fixed", group=None, component="zi"))
            cols = ["effect", "component"] + cols[1:]
        if len(self.disp_fixef):  # broom.mixed's glmmTMB layout: the dispersion model's component
            if "component" not in cols:
                parts = [p.assign(component="cond") for p in parts]
                cols = ["effect", "component"] + cols[1:]
            dp = self.coef_table(conf_level=conf_level, part="disp").reset_index()
            parts.append(dp.assign(effect="fixed", group=None, component="disp"))
        if len(self.thresholds):  # the thresholds first, as clm's coefficient vector
            th = self.coef_table(conf_level=conf_level, part="thresholds").reset_index()
            parts = [th.assign(effect="fixed", group=None, component="thresholds"),
                     parts[0].assign(component="cond"), parts[1].assign(component="cond")]
            cols = ["effect", "component"] + cols[1:]
        out = pd.concat(parts, ignore_index=True)
        if conf_int:
            cols += ["conf_low", "conf_high"]
        return out[cols]

    # ----------------------------------------------------------------------- random effects
    def covariance_matrices(self) -> dict[str, pd.DataFrame]:
        """Covariance matrix of each term's random effects, keyed by term label."""
        out = {}
        for t, sl in zip(self.spec.terms, self.spec.theta_slices()):
            T = t.T(self.theta[sl])
            S = self.sigma**2 * T @ T.T
            out[t.label] = pd.DataFrame(S, index=list(t.col_names), columns=list(t.col_names))
        for t, sl in zip(self.spec.zi_terms, self.spec.zi_theta_slices()):  # the zero part's: "zi:" + label
            T = t.T(self.zi_theta[sl])
            out[ZI_PREFIX + t.label] = pd.DataFrame(T @ T.T, index=list(t.col_names), columns=list(t.col_names))
        return out

    def structure_parameters(self) -> dict[str, dict[str, float]]:
        """Per structured term (``ar1(...)``, ``exp(...)``, …): its parameters on glmmTMB's scale —
        SDs (absolute), ``rho`` (cs, ar1; lag-one correlation), ``rho1…`` (toep), ``rate`` and
        ``rho_unit`` (ou: correlation at unit distance), ``range`` (exp, gau, mat), ``smoothness``
        (mat). Unstructured terms are not listed (see :meth:`varcorr`)."""
        return {t.label: t.structure.parameters(self.theta[sl], self.sigma)
                for t, sl in zip(self.spec.terms, self.spec.theta_slices()) if t.structured}

    def structure_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Wald table of the structured terms' parameters (:meth:`structure_parameters`), indexed
        by ``term`` and ``parameter``: ``estimate std_error conf_low conf_high``.

        Standard errors by the delta method from the inverse Hessian of the deviance: for GLMMs
        the Laplace deviance in the optimizer's parameters; for LMMs the (RE)ML deviance in theta
        and σ with β profiled out (central differences of values). NaN where a parameter is on a
        bound. Intervals are Wald
        intervals on the log scale for SDs, rates, ranges and smoothness, and on Fisher's z
        (atanh) scale for correlations, mapped back — so they stay in range.
        """
        from scipy import stats

        z = stats.norm.ppf(0.5 + check_level(conf_level) / 2)
        V = self.extras.get("vcov_phi")
        lmm = self.request.family.profiled_lmm
        if lmm:  # covariance of (theta, sigma): the deviance at explicit sigma, beta profiled out
            from ..likelihood import LmmDevfun
            from ..numdiff import fd_hessian_fun

            dev = LmmDevfun(self.spec, reml=bool(self.reml))
            x0 = np.r_[np.asarray(self.theta, dtype=float), self.sigma]
            H = fd_hessian_fun(lambda x: dev.deviance_sigma(x[:-1], x[-1]), x0)
            try:
                V = 2.0 * np.linalg.inv(H)
            except np.linalg.LinAlgError:
                V = None
        rows = []
        for t, sl in zip(self.spec.terms, self.spec.theta_slices()):
            if not t.structured:
                continue
            th = np.asarray(self.theta[sl], dtype=float)
            names = list(t.structure.parameters(th, self.sigma))
            est = np.array([t.structure.parameters(th, self.sigma)[k] for k in names])
            x0 = np.r_[th, self.sigma] if lmm else th  # an LMM's absolute SDs depend on sigma too
            J = np.empty((len(names), x0.size))
            for j in range(x0.size):  # central differences of a smooth map
                h = 1e-6 * max(1.0, abs(x0[j]))
                e = np.zeros_like(x0)
                e[j] = h
                hi = t.structure.parameters((x0 + e)[: th.size], (x0 + e)[-1] if lmm else self.sigma)
                lo = t.structure.parameters((x0 - e)[: th.size], (x0 - e)[-1] if lmm else self.sigma)
                J[:, j] = [(hi[k] - lo[k]) / (2 * h) for k in names]
            idx = np.r_[np.arange(sl.start, sl.stop), len(self.theta)] if lmm else np.arange(sl.start, sl.stop)
            Vt = V[np.ix_(idx, idx)] if V is not None else np.full((x0.size, x0.size), np.nan)
            if V is not None and np.any(np.diag(Vt) <= 0):
                Vt = np.full_like(Vt, np.nan)
            se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, Vt, J), 0.0))
            for k, e_, s_ in zip(names, est, se):
                if k.startswith("rho"):
                    c = np.arctanh(np.clip(e_, -1 + 1e-12, 1 - 1e-12))
                    w = z * s_ / (1 - e_**2)
                    lo_, hi_ = np.tanh(c - w), np.tanh(c + w)
                else:
                    w = z * s_ / e_ if e_ > 0 else np.nan
                    lo_, hi_ = e_ * np.exp(-w), e_ * np.exp(w)
                rows.append((t.label, k, e_, s_, lo_, hi_))
        out = pd.DataFrame(rows, columns=["term", "parameter", "estimate", "std_error", "conf_low", "conf_high"])
        return out.set_index(["term", "parameter"])

    def structure_text(self) -> dict[str, str]:
        """glmmTMB's compact text of each structured term's correlation (``0.748 (ar1)``)."""
        return {t.label: t.structure.compact(self.theta[sl])
                for t, sl in zip(self.spec.terms, self.spec.theta_slices()) if t.structured}

    def covariance_structure(self, points: int = 41) -> pd.DataFrame:
        """The estimated correlation against lag or distance, per structured term — what a plot of
        the structure draws.

        Columns ``term structure lag distance correlation``: for ar1, cs, toep and diag one row
        per lag 0..q−1 (``distance`` = lag); for ou, exp, gau and mat ``points`` distances from 0
        to the largest distance between the term's positions (``lag`` missing).
        """
        rows = []
        for t, sl in zip(self.spec.terms, self.spec.theta_slices()):
            if not t.structured:
                continue
            st = t.structure
            if st.coords is None:
                lag = np.arange(t.q)
                d, lagcol = lag.astype(float), lag.astype(float)
            else:
                d = np.linspace(0.0, float(st.dist.max()), points)
                lagcol = np.full(points, np.nan)
            rho = st.correlation_at(self.theta[sl], d)
            rows.append(pd.DataFrame({"term": t.label, "structure": st.name, "lag": lagcol, "distance": d,
                                      "correlation": rho}))
        cols = ["term", "structure", "lag", "distance", "correlation"]
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor."""
        rows = []
        cm = self.covariance_matrices()
        for key, t in [(t.label, t) for t in self.spec.terms] + [(ZI_PREFIX + t.label, t) for t in self.spec.zi_terms]:
            S = cm[key].to_numpy()
            sd = np.sqrt(np.diag(S))
            for a in range(t.q):
                rows.append((key, t.col_names[a], None, S[a, a], sd[a]))
            for a in range(t.q):
                for b in range(a + 1, t.q):
                    cor = S[a, b] / (sd[a] * sd[b]) if sd[a] > 0 and sd[b] > 0 else np.nan
                    rows.append((key, t.col_names[a], t.col_names[b], S[a, b], cor))
        for name, value in self.residual_scale().items():
            rows.append((name, None, None, value**2, value))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    @property
    def levels(self) -> tuple[str, ...]:
        """Ordinal models: the response categories in scale order (codes 0..K−1); else empty."""
        return tuple(self.spec.levels)

    @property
    def fitted_family(self):
        """The family at the fitted dispersion, zero part or thresholds (for simulation, ICC,
        residuals)."""
        fam = self.request.family
        if len(self.thresholds):
            return fam.at_thresholds(self.thresholds.to_numpy())
        x = ([fam.from_dispersion(float(d), k) for k, d in enumerate(self.dispersion)] + list(self.zi_fixef.to_numpy())
             + list(self.disp_fixef.to_numpy()))
        fam = fam.at_extra(np.asarray(x, dtype=float), self.spec) if x else fam
        if self.spec.zi_terms:  # the fitted rows' zero part at its conditional modes (as glmmTMB's residuals)
            zeta = np.array(fam.zeta, dtype=float)
            for t, b in zip(self.spec.zi_terms, self.zi_mode_blocks()):
                zeta += np.einsum("nq,nq->n", np.asarray(t.Zvals), b[np.asarray(t.codes)])
            fam = fam.with_zeta(zeta)
        return fam

    def residual_scale(self) -> dict[str, float]:
        """``{"Residual": sigma}`` for a profiled LMM, empty otherwise."""
        return {"Residual": self.sigma} if self.request.family.profiled_lmm else {}

    def mode_blocks(self) -> list[np.ndarray]:
        """Conditional modes b = T u per term, each (levels, q) (LMM u is on the data scale)."""
        return _mode_blocks(self.spec.terms, self.spec.theta_slices(), self.u, self.theta)

    def zi_mode_blocks(self) -> list[np.ndarray]:
        """The zero part's conditional modes b = T u per term, each (levels, q)."""
        return _mode_blocks(self.spec.zi_terms, self.spec.zi_theta_slices(), self.zi_u, self.zi_theta)

    def ranef(self, condvar: bool = True) -> dict[str, pd.DataFrame]:
        """Conditional modes per level, keyed by grouping factor (the zero part's: ``"zi:g"``).

        With ``condvar`` each column ``c`` gets a partner ``condsd_c``: the conditional SD.
        Terms on the same factor (``(x || g)``) are side by side in one frame.
        """
        out: dict[str, pd.DataFrame] = {}
        parts = [(t, b, cc, t.group) for t, b, cc in zip(self.spec.terms, self.mode_blocks(), self.cond_cov)]
        parts += [(t, b, cc, ZI_PREFIX + t.group)
                  for t, b, cc in zip(self.spec.zi_terms, self.zi_mode_blocks(), self.zi_cond_cov)]
        for t, b, cc, key in parts:
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=list(t.col_names))
            if condvar:
                sd = np.sqrt(np.maximum(np.einsum("jaa->ja", cc), 0.0))
                for a, name in enumerate(t.col_names):
                    df[f"condsd_{name}"] = sd[:, a]
            if key in out:
                out[key] = out[key].join(df, rsuffix=f"_{t.label}")
            else:
                out[key] = df
        return out

    # --------------------------------------------------------------------------- display
    @property
    def title(self) -> str:
        return display.title(self)

    def summary(self) -> str:
        """Text summary in the spirit of lme4's ``summary()``."""
        return display.summary_text(self)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return display.summary_html(self)


def _mode_blocks(terms, slices, u: np.ndarray, theta: np.ndarray) -> list[np.ndarray]:
    """b = T u per term, each (levels, q), from the stacked spherical modes ``u``."""
    out, start = [], 0
    for t, sl in zip(terms, slices):
        block = u[start : start + t.nlevels * t.q].reshape(t.nlevels, t.q)
        start += t.nlevels * t.q
        out.append(block @ t.T(theta[sl]).T)
    return out
