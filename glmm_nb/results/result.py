"""The frozen :class:`GLMMResult` and every table derived from it.

One display path: ``coef_table``/``varcorr`` feed ``summary()`` and ``_repr_html_`` alike.
Column names follow broom.mixed (``term estimate std_error statistic p_value conf_low
conf_high``); ``varcorr()`` has lme4's ``as.data.frame(VarCorr(m))`` layout.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..design import ModelSpec
from ..design.reterms import theta_to_T
from ..optimize import OptSummary

__all__ = ["GLMMResult"]


@dataclass(frozen=True, eq=False)
class GLMMResult:
    """A fitted (generalized) linear mixed model. Built once by ``results.build``; never mutated.

    Attributes
    ----------
    formula, family, link, method : str
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
        Residual SD (gaussian) or 1.
    nobs, ngroups, n_dropped
    converged, singular : bool
    opt : OptSummary
    messages : tuple of str
        Convergence and singular-fit explanations in plain words.
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
    messages: tuple[str, ...] = ()
    vcov_method: str = "hessian"
    extras: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ sizes and criteria
    @property
    def npar(self) -> int:
        return len(self.fixef) + len(self.theta) + (1 if self.family == "gaussian" else 0)

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
    def coef_table(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Wald table indexed by term: estimate, std_error, statistic, p_value, conf_low/high."""
        if not 0 < conf_level < 1:
            from ..errors import ModelError

            raise ModelError(f"conf_level must lie between 0 and 1, not {conf_level}")
        est = self.fixef
        se = pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=est.index)
        z = est / se
        p = 2 * stats.norm.sf(np.abs(z))
        q = stats.norm.ppf(0.5 + conf_level / 2)
        out = pd.DataFrame(
            {
                "estimate": est,
                "std_error": se,
                "statistic": z,
                "p_value": p,
                "conf_low": est - q * se,
                "conf_high": est + q * se,
            }
        )
        out.index.name = "term"
        return out

    def tidy(self, conf_int: bool = False, conf_level: float = 0.95) -> pd.DataFrame:
        """One table in broom.mixed's ``tidy()`` layout: ``effect group term estimate
        std_error statistic p_value`` (+ ``conf_low conf_high``, Wald, with ``conf_int``).

        Fixed effects have ``effect="fixed"``; variance parameters ``effect="ran_pars"`` with
        terms ``sd__(Intercept)``, ``cor__(Intercept).x`` and, for gaussian models, group
        ``Residual`` / term ``sd__Observation`` (broom.mixed's names).
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
        ran = pd.DataFrame(rows, columns=["effect", "group", "term", "estimate"])
        out = pd.concat([fixed, ran], ignore_index=True)
        cols = ["effect", "group", "term", "estimate", "std_error", "statistic", "p_value"]
        if conf_int:
            cols += ["conf_low", "conf_high"]
        return out[cols]

    # ----------------------------------------------------------------------- random effects
    def covariance_matrices(self) -> dict[str, pd.DataFrame]:
        """Covariance matrix of each term's random effects, keyed by term label."""
        out = {}
        for t, sl in zip(self.spec.terms, self.spec.theta_slices()):
            T = theta_to_T(self.theta[sl], t.q)
            S = self.sigma**2 * T @ T.T
            out[t.label] = pd.DataFrame(S, index=list(t.col_names), columns=list(t.col_names))
        return out

    def varcorr(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor."""
        rows = []
        for t in self.spec.terms:
            S = self.covariance_matrices()[t.label].to_numpy()
            sd = np.sqrt(np.diag(S))
            for a in range(t.q):
                rows.append((t.label, t.col_names[a], None, S[a, a], sd[a]))
            for a in range(t.q):
                for b in range(a + 1, t.q):
                    cor = S[a, b] / (sd[a] * sd[b]) if sd[a] > 0 and sd[b] > 0 else np.nan
                    rows.append((t.label, t.col_names[a], t.col_names[b], S[a, b], cor))
        if self.family == "gaussian":
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])

    def mode_blocks(self) -> list[np.ndarray]:
        """Conditional modes b = T u per term, each (levels, q) (LMM u is on the data scale)."""
        out, start = [], 0
        for t, sl in zip(self.spec.terms, self.spec.theta_slices()):
            u = self.u[start : start + t.nlevels * t.q].reshape(t.nlevels, t.q)
            start += t.nlevels * t.q
            out.append(u @ theta_to_T(self.theta[sl], t.q).T)
        return out

    def ranef(self, condvar: bool = True) -> dict[str, pd.DataFrame]:
        """Conditional modes per level, keyed by grouping factor.

        With ``condvar`` each column ``c`` gets a partner ``condsd_c``: the conditional SD.
        Terms on the same factor (``(x || g)``) are side by side in one frame.
        """
        out: dict[str, pd.DataFrame] = {}
        for k, (t, b) in enumerate(zip(self.spec.terms, self.mode_blocks())):
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=list(t.col_names))
            if condvar:
                sd = np.sqrt(np.maximum(np.einsum("jaa->ja", self.cond_cov[k]), 0.0))
                for a, name in enumerate(t.col_names):
                    df[f"condsd_{name}"] = sd[:, a]
            if t.group in out:
                out[t.group] = out[t.group].join(df, rsuffix=f"_{t.label}")
            else:
                out[t.group] = df
        return out

    # ------------------------------------------------------------- inference (read-only)
    def confint(self, method: str = "profile", level: float = 0.95, **kw) -> pd.DataFrame:
        """Intervals (``wald``, ``profile`` or ``bootstrap``); see :func:`glmm_nb.inference.confint`."""
        from ..inference import confint

        return confint(self, method=method, level=level, **kw)

    def bootstrap(self, nsim: int = 200, seed=None, n_jobs: int = 1, progress: bool = True):
        """Parametric bootstrap; see :func:`glmm_nb.inference.bootstrap`."""
        from ..inference import bootstrap

        return bootstrap(self, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)

    def predict(self, newdata=None, type: str = "response", re: str = "conditional") -> np.ndarray:
        """Predictions; ``re`` in {"conditional", "none", "marginal"}."""
        from ..inference import predict

        return predict(self, newdata=newdata, type=type, re=re)

    def simulate(self, nsim: int = 1, seed=None, newdata=None, re: str = "new") -> np.ndarray:
        """Simulated responses (n, nsim); ``re`` in {"new", "conditional"}."""
        from ..inference import simulate

        return simulate(self, nsim=nsim, seed=seed, newdata=newdata, re=re)

    def icc(self) -> float:
        """Latent-scale (adjusted) intraclass correlation."""
        from ..inference import icc

        return icc(self)

    def r2(self) -> dict:
        """Nakagawa marginal and conditional R²."""
        from ..inference import r2

        return r2(self)

    def mor(self) -> pd.Series:
        """Median odds ratio per random-intercept term (logistic models)."""
        from ..inference import mor

        return mor(self)

    def diagnose(self, nsim: int = 250, seed: int | None = 1):
        """DHARMa-style simulated residuals, their tests and convergence details."""
        from ..inference import diagnose

        return diagnose(self, nsim=nsim, seed=seed)

    # ------------------------------------------------------------ conditional vs marginal
    def marginal_coefs(self, method: str = "delta", level: float = 0.95, **kw) -> pd.DataFrame:
        """Population-averaged coefficients; see :func:`glmm_nb.marginal.marginal_coefs`."""
        from ..marginal import marginal_coefs

        return marginal_coefs(self, method=method, level=level, **kw)

    def marginal_effects(self, var: str, delta: float = 1.0, level: float = 0.95, **kw) -> pd.DataFrame:
        """Average marginal effects of ``var`` three ways; see :mod:`glmm_nb.marginal.effects`."""
        from ..marginal import average_marginal_effects

        return average_marginal_effects(self, var, delta=delta, level=level, **kw)

    def compare(self, gee=None) -> pd.DataFrame:
        """Conditional, marginal, GEE and attenuation side by side."""
        from ..marginal import comparison_table

        return comparison_table(self, gee)

    def causal_checks(self, cluster: str | None = None):
        """Within/between decomposition, variance shares and flags."""
        from ..marginal import causal_checks

        return causal_checks(self, cluster=cluster)

    def report(self, template_dir=None, marginal: str | None = None, gee_cluster: str | None = None,
               diagnostics_nsim: int = 250, svg_fallback: bool = True):
        """A self-contained HTML :class:`~glmm_nb.report.Report` (``.save(path)``)."""
        from ..report import make_report

        return make_report(self, template_dir=template_dir, marginal=marginal, gee_cluster=gee_cluster,
                           diagnostics_nsim=diagnostics_nsim, svg_fallback=svg_fallback)

    # --------------------------------------------------------------------------- display
    @property
    def title(self) -> str:
        if self.family == "gaussian":
            return "Linear mixed model fit by " + ("REML" if self.reml else "maximum likelihood")
        approx = (
            "Laplace Approximation"
            if self.method == "laplace" or self.nagq == 1
            else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {self.nagq}"
        )
        return f"Generalized linear mixed model fit by maximum likelihood ({approx})"

    def summary(self) -> str:
        """Text summary in the spirit of lme4's ``summary()``."""
        lines = [self.title]
        if self.family != "gaussian":
            lines.append(f" Family: {self.family}  ( {self.link} )")
        lines.append(f"Formula: {self.formula}")
        if self.n_dropped:
            lines.append(f"  ({self.n_dropped} rows with missing values dropped)")
        lines.append("")
        if self.family == "gaussian" and self.reml:
            lines.append(f"REML criterion at convergence: {-2 * self.loglik:.1f}")
        else:
            crit = pd.DataFrame(
                [[self.aic, self.bic, self.loglik, self.deviance, self.df_resid]],
                columns=["AIC", "BIC", "logLik", "deviance", "df.resid"],
            )
            lines.append(crit.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        lines.append("")
        lines.append("Random effects:")
        vc = self.varcorr()
        rows = []
        for t in self.spec.terms:
            sub = vc[(vc.grp == t.label) & vc.var2.isna()]
            cors = vc[(vc.grp == t.label) & vc.var2.notna()]
            for i, (_, r) in enumerate(sub.iterrows()):
                corr = ""
                if i > 0:
                    cs = cors[cors.var2 == r.var1].sdcor.tolist()
                    corr = " ".join(f"{c:5.2f}" for c in cs)
                rows.append([t.label if i == 0 else "", r.var1, f"{r.vcov:.4g}", f"{r.sdcor:.4g}", corr])
        if self.family == "gaussian":
            rows.append(["Residual", "", f"{self.sigma**2:.4g}", f"{self.sigma:.4g}", ""])
        tab = pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])
        if (tab["Corr"] == "").all():
            tab = tab.drop(columns="Corr")
        lines.append(tab.to_string(index=False))
        groups = ", ".join(f"{g}, {n}" for g, n in self.ngroups.items())
        lines.append(f"Number of obs: {self.nobs}, groups:  {groups}")
        lines.append("")
        lines.append("Fixed effects:")
        ct = self.coef_table()
        stat = "t value" if self.family == "gaussian" else "z value"
        show = pd.DataFrame(
            {
                "Estimate": ct.estimate.map(lambda v: f"{v:.5g}"),
                "Std. Error": ct.std_error.map(lambda v: f"{v:.5g}"),
                stat: ct.statistic.map(lambda v: f"{v:.3f}"),
                "Pr(>|z|)": ct.p_value.map(lambda v: f"{v:.3g}" if v >= 2e-16 else "<2e-16"),
            }
        )
        show.index.name = None
        lines.append(show.to_string())
        if self.family == "gaussian":
            lines.append("(p-values: Wald z, normal approximation)")
        for m in self.messages:
            lines.append("")
            lines.append(m)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        ct = self.coef_table().round(4)
        vc = self.varcorr().round(4)
        msgs = "".join(f"<p><b>Note:</b> {html.escape(m)}</p>" for m in self.messages)
        return (
            f"<div><p><b>{html.escape(self.title)}</b><br>Formula: "
            f"<code>{html.escape(self.formula)}</code><br>"
            f"family {html.escape(self.family)} ({html.escape(self.link)}), "
            f"nobs {self.nobs}, logLik {self.loglik:.3f}, AIC {self.aic:.2f}</p>"
            f"<p>Random effects</p>{vc.to_html(index=False, na_rep='')}"
            f"<p>Fixed effects</p>{ct.to_html()}{msgs}</div>"
        )
