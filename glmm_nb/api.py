"""``glmm()`` and the user-facing :class:`MixedModel`.

``glmm()`` is exactly the public chain of :mod:`glmm_nb.pipeline`: build the spec and the
:class:`~glmm_nb.request.FitRequest` → make the deviance function → choose starts → minimise →
(AGQ stage) → build the result. :class:`MixedModel` is the frozen
:class:`~glmm_nb.results.GLMMResult` record plus the methods that reach up into inference,
marginal effects and reports — they live here, at the top of the import graph, so that the
lower layers never import back.
"""

from __future__ import annotations

import dataclasses
import sys

import pandas as pd

from .families import Family
from .errors import ModelError
from .pipeline import fit, make_devfun, make_request, refit
from .results import GLMMResult
from .timing import stopwatch

__all__ = ["glmm", "make_devfun", "refit", "with_data_source", "MixedModel", "DaskMixedModel"]

# Inference, marginal effects and the Dask engine load when a method needs them (their scipy.stats
# and the rest cost ~0.4 s that a fit does not need): each method imports what it calls.


def _is_dask_data(obj) -> bool:
    """True for a Dask DataFrame (as :func:`glmm_nb.distributed.is_dask_data`), without loading
    the Dask engine's modules for in-memory data: a Dask frame exists only once dask has loaded."""
    if "dask" not in sys.modules:
        return False
    from .distributed import is_dask_data

    return is_dask_data(obj)


class MixedModel(GLMMResult):
    """A fitted (generalized) linear mixed model — what :func:`glmm` returns.

    All attributes and tables of :class:`~glmm_nb.results.GLMMResult` (``fixef``, ``vcov``,
    ``coef_table()``, ``varcorr()``, ``ranef()``, ``summary()``, ``request`` …), and:
    """

    def refit(self, **changes) -> "MixedModel":
        """Fit again with changes (new ``data``, ``reml=False``, ``start``, ``fixed`` …); see
        :func:`glmm_nb.pipeline.refit`."""
        return refit(self, **changes)

    @property
    def plot(self):
        """The report's charts as Altair objects: ``m.plot.coefs()``, ``.caterpillar()``,
        ``.effects("x")``, ``.diagnostics()``, ``.marginal()``."""
        from .report.plots import ModelPlots  # altair loads only when a chart is asked for

        return ModelPlots(self)

    # ------------------------------------------------------------------------- inference
    def coef_table(self, conf_level: float = 0.95, ddf: str | None = None, part: str = "cond") -> pd.DataFrame:
        """Fixed-effect tests and intervals, indexed by term.

        ``ddf``: ``"satterthwaite"`` (default for linear mixed models, as lmerTest),
        ``"kenward-roger"`` (its adjusted covariance gives the SEs, as pbkrtest) or
        ``"asymptotic"`` (Wald z; the default for other families). Columns ``estimate
        std_error df statistic p_value conf_low conf_high`` (``df`` only with t tests).
        ``part="zi"``: the zero part of a zero-inflated or hurdle model.
        """
        if part != "cond" or (ddf is None and not self.request.family.profiled_lmm):
            return super().coef_table(conf_level, part=part)
        from .inference import ddf_table

        return ddf_table(self, ddf=ddf, conf_level=conf_level)

    def emmeans(self, specs, by=None, at: dict | None = None, type: str = "link", ddf: str | None = None,
                level: float = 0.95):
        """Estimated marginal means with emmeans' reference-grid rules; ``.pairs()``,
        ``.contrast(...)``, ``.to_frame()``; see :func:`glmm_nb.inference.emmeans`."""
        from .inference import emmeans

        return emmeans(self, specs, by=by, at=at, type=type, ddf=ddf, level=level)

    def fitted(self) -> pd.Series:
        """Fitted means at the conditional modes, indexed like the rows used (ordinal models:
        the fitted probability of each row's observed category, as ``clmm``'s ``fitted()``)."""
        from .inference import predict, predict_ordinal

        if self.request.family.ordinal:
            import numpy as np

            probs = predict_ordinal(self, type="prob").to_numpy()
            codes = np.asarray(self.spec.y, dtype=int)
            return pd.Series(probs[np.arange(len(codes)), codes], index=self.spec.row_index, name="fitted")
        return pd.Series(predict(self), index=self.spec.row_index, name="fitted")

    def residuals(self, type: str = "response") -> pd.Series:
        """Residuals at the conditional modes: ``response`` (y − mu), ``pearson``
        ((y − mu)/sqrt(Var)) or ``deviance`` (signed square roots of the unit deviances).

        Zero-inflated and hurdle models: mu is the mean with the zero part and Var the mixture's
        variance (as glmmTMB); they have no deviance residuals (no saturated model; glmmTMB
        refuses them too)."""
        from .inference import predict
        import numpy as np

        fam = self.fitted_family
        if type not in ("response", "pearson", "deviance"):
            raise ModelError(f"type must be 'response', 'pearson' or 'deviance', not {type!r}")
        if fam.ordinal:
            raise ModelError("an ordinal model has no residuals of a numeric response; use m.predict(type='prob') "
                             "for the category probabilities or m.diagnose() for simulated residuals")
        y, w = np.asarray(self.spec.y), np.asarray(self.spec.weights)
        mu = predict(self)  # E[y] (a zero part or a truncation included; ordinal models: an error)
        mu_link = fam.link.inverse(predict(self, type="link"))  # g^-1(eta): the family's mean parameter
        if type == "response":
            r = y - mu
        elif type == "pearson":
            scale = self.sigma**2 if fam.profiled_lmm else 1.0
            r = (y - mu) / np.sqrt(scale * fam.response_variance(mu_link, w))
        elif fam.has_zero_part:
            raise ModelError("deviance residuals are not defined for zero-inflated and hurdle models (the mixture has "
                             "no saturated model); use type='pearson' or 'response', or m.diagnose()")
        else:
            r = np.sign(y - mu) * np.sqrt(np.maximum(fam.dev_resid(y, mu_link, w), 0.0))
        return pd.Series(r, index=self.spec.row_index, name=f"{type}_residual")

    def confint(self, method: str = "profile", level: float = 0.95, **kw) -> pd.DataFrame:
        """Intervals (``wald``, ``profile`` or ``bootstrap``); see :func:`glmm_nb.inference.confint`."""
        from .inference import confint

        return confint(self, method=method, level=level, **kw)

    def bootstrap(self, nsim: int = 200, seed=None, n_jobs: int = 1, progress: bool | None = None):
        """Parametric bootstrap; see :func:`glmm_nb.inference.bootstrap`."""
        from .inference import bootstrap

        return bootstrap(self, nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)

    def predict(self, newdata=None, type: str | None = None, re: str = "conditional", se_fit: bool = False,
                interval: str | None = None, level: float = 0.95, ddf: str | None = "asymptotic"):
        """Predictions; ``re`` in {"conditional", "none", "marginal"}; ``type`` "response"
        (default) or "link" (zero-inflated models also "conditional", "zero_prob"); "dispersion"
        the dispersion per row on glmmTMB's sigma scale (a dispformula's exp(X_d delta)).

        With ``se_fit=True`` or ``interval="confidence"`` (``"prediction"`` for LMMs) a frame
        ``fit se_fit lower upper`` by the delta method (``re`` "none" or "conditional"); see
        :func:`glmm_nb.inference.predict_interval`. ``re="none"`` needs no grouping columns.

        Ordinal models: ``type="prob"`` (default) gives a DataFrame with one column per
        category, ``"cum_prob"`` P(Y ≤ k), ``"class"`` the most probable category, ``"link"``
        the linear predictor; ``re="marginal"`` averages the probabilities over the random
        effects (population-averaged); see :func:`glmm_nb.inference.predict_ordinal`.
        """
        from .inference import predict, predict_interval, predict_ordinal

        if type == "dispersion":
            return predict_dispersion(self, newdata)
        if self.request.family.ordinal and not (se_fit or interval is not None):
            return predict_ordinal(self, newdata=newdata, type=type or "prob", re=re)
        type = type or "response"
        if se_fit or interval is not None:
            return predict_interval(self, newdata, re=re, type=type, interval=interval or "none", level=level,
                                    ddf=ddf)
        return predict(self, newdata=newdata, type=type, re=re)

    def simulate(self, nsim: int = 1, seed=None, newdata=None, re: str = "new"):
        """Simulated responses (n, nsim); ``re`` in {"new", "conditional"}. Ordinal models: the
        category codes 0..K−1 (``m.levels[k]`` is the label of code k)."""
        from .inference import simulate

        return simulate(self, nsim=nsim, seed=seed, newdata=newdata, re=re)

    def icc(self) -> float:
        """Latent-scale (adjusted) intraclass correlation."""
        from .inference import icc

        return icc(self)

    def r2(self) -> dict:
        """Nakagawa marginal and conditional R²."""
        from .inference import r2

        return r2(self)

    def mor(self) -> pd.Series:
        """Median odds ratio per random-intercept term (logistic models)."""
        from .inference import mor

        return mor(self)

    def nominal_test(self, terms: list[str] | None = None) -> pd.DataFrame:
        """Ordinal models: likelihood-ratio checks of the proportional-odds assumption, one
        term at a time (``ordinal::nominal_test``); see :func:`glmm_nb.inference.nominal_test`."""
        from .inference import nominal_test

        return nominal_test(self, terms=terms)

    def diagnose(self, nsim: int = 250, seed: int | None = 1, alternatives: bool = True):
        """DHARMa-style simulated residuals, their tests and convergence details; for count and
        multi-trial binomial models the refits under alternative families and the advice they
        support (``alternatives=False`` skips the refits)."""
        from .inference import diagnose

        return diagnose(self, nsim=nsim, seed=seed, alternatives=alternatives)

    # ------------------------------------------------------------ conditional vs marginal
    def marginal_coefs(self, method: str = "delta", level: float = 0.95, **kw) -> pd.DataFrame:
        """Population-averaged coefficients; see :func:`glmm_nb.marginal.marginal_coefs`."""
        from .marginal import marginal_coefs

        return marginal_coefs(self, method=method, level=level, **kw)

    def marginal_effects(self, var: str, delta: float = 1.0, level: float = 0.95, **kw) -> pd.DataFrame:
        """Average marginal effects of ``var`` three ways; see :mod:`glmm_nb.marginal.effects`."""
        from .marginal import average_marginal_effects

        return average_marginal_effects(self, var, delta=delta, level=level, **kw)

    def compare(self, gee=None) -> pd.DataFrame:
        """Conditional, marginal, GEE and attenuation side by side; ``gee`` is a cluster column
        name or a :func:`glmm_nb.gee` result (as in :meth:`report`)."""
        from .marginal import comparison_table

        return comparison_table(self, gee)

    def causal_checks(self, cluster: str | None = None, randomized=()):
        """Within/between decomposition, variance shares and flags (``randomized``: covariates
        assigned at random, whose cluster-level comparison is then a note, not a flag)."""
        from .marginal import causal_checks

        return causal_checks(self, cluster=cluster, randomized=randomized)

    def report(self, template_dir=None, marginal: str | None = None, gee=None, diagnostics_nsim: int = 250,
               svg_fallback: bool = True, emmeans: str | None = None, gee_cluster: str | None = None,
               focus: str | None = None, data_source: str | None = None, randomized=()):
        """A self-contained HTML :class:`~glmm_nb.report.Report` (``.save(path)``).

        ``focus="x"`` picks the covariate of the effect curves and the first key finding
        (default: the treatment when its name says so, else the first continuous covariate;
        ``marginal`` is its older name); ``emmeans="A"`` adds the estimated marginal means of
        factor A and their pairwise comparisons; ``gee`` a cluster column name or a
        :func:`glmm_nb.gee` result (as in :meth:`compare`; ``gee_cluster`` is its older name);
        ``data_source`` a CSV path or variable name for the Reproduce section (default: the
        variable ``glmm()`` was given, when it had a name); ``randomized=["treat"]`` states that
        those covariates were assigned at random (a covariate constant within clusters is then
        described, not flagged, in the causal caveats)."""
        from .report import make_report  # jinja2/altair load only when a report is asked for

        return make_report(self, template_dir=template_dir, marginal=marginal, gee=gee,
                           diagnostics_nsim=diagnostics_nsim, svg_fallback=svg_fallback, emmeans=emmeans,
                           gee_cluster=gee_cluster, focus=focus, data_source=data_source, randomized=randomized)


class DaskMixedModel(MixedModel):
    """A :class:`MixedModel` fitted on Dask data (``m.extras["dask"]``, a
    :class:`~glmm_nb.distributed.DaskFit`). Estimates, standard errors, the log-likelihood,
    ``ranef()`` and ``predict()`` use every row; ``spec`` holds a random sample of clusters
    (all when there are few), which ``fitted()``, ``residuals()``, ``simulate()``,
    ``diagnose()``, marginal effects and the report use — ``m.messages`` says how large.
    """

    def _dask(self):
        return self.extras.get("dask")  # None for an in-memory refit of the sample, or the sample view

    def sample_view(self) -> "DaskMixedModel":
        """This record with ``ranef()``, ``predict()`` and everything else on the in-memory sample
        of clusters (estimates and tables unchanged) — what the report is built from."""
        extras = {k: v for k, v in self.extras.items() if k != "dask"}
        return dataclasses.replace(self, extras={**extras, "dask_sample": True})

    def refit(self, **changes) -> "MixedModel":
        """Fit again on the Dask data with changes; see :func:`glmm_nb.distributed.refit_dask`."""
        from .distributed import refit_dask

        return refit_dask(self, **changes) if self._dask() else super().refit(**changes)

    def ranef(self, condvar: bool = True) -> dict:
        """Conditional modes of every cluster (pandas frames keyed by grouping factor)."""
        return self._dask().ranef(condvar) if self._dask() else super().ranef(condvar)

    def predict(self, newdata=None, type: str = "response", re: str = "conditional", se_fit: bool = False,
                interval: str | None = None, level: float = 0.95, ddf: str | None = "asymptotic"):
        """Predictions for Dask (a Dask Series) or pandas (an array) data; default: the data fitted."""
        from .distributed import predict_dask

        if not self._dask():
            return super().predict(newdata, type, re, se_fit, interval, level, ddf)
        if se_fit or interval is not None:
            raise ModelError("se_fit and interval need the design in memory; a Dask fit predicts values only")
        return predict_dask(self, newdata, type=type, re=re)

    def coef_table(self, conf_level: float = 0.95, ddf: str | None = None, part: str = "cond") -> pd.DataFrame:
        """Wald z tests (``ddf="asymptotic"``): small-sample degrees of freedom need the whole
        design in memory, and with data this large they are the normal's. ``part``: as
        :meth:`MixedModel.coef_table` (``"zi"``, ``"disp"``)."""
        if not (self._dask() or self.extras.get("dask_sample")):
            return super().coef_table(conf_level, ddf, part=part)
        if ddf not in (None, "asymptotic"):
            raise ModelError(f"ddf={ddf!r} needs the whole design in memory; a Dask fit has Wald z tests")
        return GLMMResult.coef_table(self, conf_level, part=part)

    def confint(self, method: str = "wald", level: float = 0.95, **kw) -> pd.DataFrame:
        """Wald intervals from the whole data's curvature; see :func:`glmm_nb.distributed.wald_confint`
        (profile and bootstrap intervals refit many times in memory)."""
        from .distributed import wald_confint

        if not self._dask():
            return super().confint(method=method, level=level, **kw)
        if method != "wald":
            raise ModelError(f"method={method!r} intervals refit the model many times in memory; a Dask fit has "
                             "method='wald'")
        return wald_confint(self, level)

    def report(self, *args, **kw):
        """The HTML report, its data sections (caterpillars, diagnostics, marginal effects) on the
        in-memory sample of clusters, as ``m.messages`` states."""
        return MixedModel.report(self.sample_view() if self._dask() else self, *args, **kw)

    def bootstrap(self, nsim: int = 200, seed=None, n_jobs: int = 1, progress: bool | None = None):
        if self._dask():
            raise ModelError("the parametric bootstrap refits in memory; it is not available for a Dask fit")
        return super().bootstrap(nsim=nsim, seed=seed, n_jobs=n_jobs, progress=progress)


def glmm(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    link: str | None = None,
    method: str = "laplace",
    nagq: int = 1,
    reml: bool = True,
    weights=None,
    offset=None,
    control: dict | None = None,
    start=None,
    ziformula: str | None = None,
    hurdle: bool = False,
    engine: str | None = None,
    fixed: dict | None = None,
    dispformula: str | None = None,
) -> MixedModel:
    """Fit a generalized linear mixed model by maximum likelihood.

    Parameters
    ----------
    formula : str
        lme4 syntax: ``"y ~ x + (1 + x | g)"``, ``cbind(s, f) ~ ...``, ``(1 | a/b)``,
        ``(x || g)``, ``offset(log(t))``.
    data : pandas.DataFrame
        (or a polars DataFrame, a pyarrow Table, anything with the Arrow PyCapsule or dataframe
        interchange protocol: converted once to pandas; a Dask DataFrame: see ``engine``)
    family : str or Family
        ``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"ordinal"`` … (see
        :func:`glmm_nb.families.family_names`), or a :class:`~glmm_nb.families.Family` object.
        ``"ordinal"``: a cumulative-link model (``ordinal::clmm``) of an ordered Categorical or
        integer response, logit P(Y ≤ k) = α_k − x'β − z'b; the thresholds are ``m.thresholds``.
    link : str, optional
        binomial and ordinal: "logit" (default), "probit", "cloglog"; poisson: "log"; gaussian:
        "identity".
    method : {"laplace", "agq"}
        Laplace approximation or adaptive Gauss-Hermite quadrature.
    nagq : int
        Quadrature nodes per random-effect dimension (``method="agq"``).
    reml : bool
        REML (default, as ``lmer``) or ML for gaussian models; ignored otherwise.
    weights, offset : str or array-like, optional
        Prior weights (binomial: trials for proportions) and a known offset.
    control : dict, optional
        ``maxiter`` (optimizer iterations, default 2000), ``pirls_maxit`` (inner PIRLS
        iterations, default 60), ``progress`` (True / False: a progress bar for a fit still
        running after 2 s; default: :func:`glmm_nb.set_progress`, else on in notebooks and
        terminals).
    start : array-like, optional
        Starting parameters: theta (gaussian) or theta then beta.
    ziformula : str, optional
        A zero part for count families (``"~ 1"``, ``"~ x"``, ``"~ x + (1 | g)"``): the
        probability of a structural zero (zero-inflation) or, with ``hurdle=True``, of a zero
        (a logistic zero-vs-positive model with a zero-truncated count part).
    hurdle : bool
    dispformula : str, optional
        A log-linear model of the dispersion (glmmTMB's ``dispformula``; fixed effects only):
        ``"~ h"`` lets gaussian σ (a heteroscedastic LMM, fitted by ML: ``reml=False``), NB θ,
        Gamma/beta/beta-binomial/Tweedie φ or t σ differ with ``h``. Coefficients in
        ``m.coef_table(part="disp")`` (log scale), ``m.predict(type="dispersion")`` on glmmTMB's
        sigma scale.
    fixed : dict, optional
        Parameters held at given values, by name (:func:`glmm_nb.pipeline.parameter_names`), as
        glmmTMB's ``map=``: ``{"log(df)": np.log(4)}`` fits a t model with 4 degrees of freedom.
        Held parameters are not counted in ``m.npar`` (AIC), as glmmTMB's.
    engine : {None, "dask"}
        A Dask DataFrame as ``data`` is fitted on the active Dask cluster (or Dask's local
        scheduler) with the in-memory estimates; ``engine="dask"`` also takes a parquet path.
        Zero parts (with their own random effects too), hurdle models and dispersion formulas
        fit there as in memory; crossed random effects (the zero part's included) are not
        supported there. ``control`` takes the Dask options
        (``progress``, ``sample_clusters`` …; see :func:`glmm_nb.distributed.fit_dask`).

    Returns
    -------
    MixedModel
        (a :class:`DaskMixedModel` for Dask data)
    """
    if engine is not None or _is_dask_data(data):
        from .distributed import fit_dask

        return fit_dask(formula, data, family=family, link=link, method=method, nagq=nagq, reml=reml,
                        weights=weights, offset=offset, control=control, start=start, engine=engine,
                        fixed=fixed, result_class=DaskMixedModel, ziformula=ziformula, hurdle=hurdle,
                        dispformula=dispformula)
    with stopwatch() as sw:
        with sw.stage("design"):
            request = make_request(formula, data, family=family, link=link, method=method, nagq=nagq, reml=reml,
                                   weights=weights, offset=offset, control=control, start=start,
                                   ziformula=ziformula, hurdle=hurdle, fixed=fixed, dispformula=dispformula)
        m = fit(request, MixedModel)
    name = caller_name(data, sys._getframe(1))
    return m if name is None else with_data_source(m, name)


def predict_dispersion(m: GLMMResult, newdata=None):
    """The dispersion of each row on glmmTMB's ``sigma()`` scale (``predict(type = "disp")``):
    exp(X_d delta) with a dispersion model, else the model's one dispersion (gaussian: sigma)."""
    import numpy as np

    from .design import new_disp_matrix

    fam = m.fitted_family
    n = m.nobs if newdata is None else len(newdata)
    if not fam.has_disp_model:
        if fam.profiled_lmm:
            return np.full(n, m.sigma)
        if not fam.n_dispersion:
            raise ModelError(f"the {m.family} family has no dispersion parameter")
        return np.full(n, float(m.dispersion.iloc[0]))
    if newdata is None:
        return fam.dispersion_at(m.spec.disp_X)
    return fam.dispersion_at(new_disp_matrix(m.spec, newdata))


def with_data_source(m: MixedModel, source: str, sep: str | None = None) -> MixedModel:
    """A copy of ``m`` that records where its data came from (a variable name or a CSV path and
    its separator), for the report's Reproduce section (``m.extras["data_source"]``)."""
    extras = {**m.extras, "data_source": source}
    if sep is not None:
        extras["data_sep"] = sep
    return dataclasses.replace(m, extras=extras)


def caller_name(obj, frame) -> str | None:
    """The name the caller's frame binds to ``obj`` (locals first, then globals; names starting
    with an underscore, IPython's output history, are skipped), or None."""
    for scope in (frame.f_locals, frame.f_globals):
        for k, v in list(scope.items()):
            if v is obj and not k.startswith("_"):
                return k
    return None
