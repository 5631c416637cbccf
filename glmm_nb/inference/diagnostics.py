"""Simulation-based diagnostics in the manner of DHARMa (Hartig 2022), as tidy data.

Scaled residuals: for each observation, where the observed response falls in the distribution
of responses simulated from the fitted model (randomised for discrete responses, so they are
uniform on (0, 1) when the model is right). Tests: Kolmogorov-Smirnov uniformity; dispersion
(variance of observed vs simulated raw residuals, two-sided simulation p-value); zero-inflation
(observed vs simulated number of zeros) for count responses (Poisson, negative binomial; not
binomial successes out of trials, whose zeros the binomial already describes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..design import check_int, check_seed
from ..request import parameter_names
from .alternatives import family_alternatives
from .simulate import simulate

__all__ = ["Diagnostics", "diagnose"]


@dataclass(frozen=True, eq=False)
class Diagnostics:
    residuals: pd.Series
    tests: pd.DataFrame
    convergence: pd.DataFrame
    messages: tuple[str, ...]
    nsim: int
    alternatives: object = None  # :class:`glmm_nb.inference.alternatives.Alternatives` (counts, binomial trials)

    def __repr__(self) -> str:
        r = self.residuals.to_numpy()
        lines = [f"Simulated-residual diagnostics ({self.nsim} simulations, {len(r)} scaled residuals; "
                 f"quartiles {np.quantile(r, 0.25):.3f} / {np.quantile(r, 0.5):.3f} / {np.quantile(r, 0.75):.3f},"
                 " uniform: 0.25 / 0.5 / 0.75)",
                 self.tests.to_string(float_format=lambda v: f"{v:.4g}")]
        lines += [f"- {x}" for x in self.messages]
        if self.alternatives is not None:
            lines += ["Alternative families (refits):", self.alternatives.table[
                ["loglik", "npar", "aic", "delta_aic", "p_value"]].to_string(float_format=lambda v: f"{v:.4g}")]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        msgs = "".join(f"<li>{html.escape(x)}</li>" for x in self.messages)
        return (f"<div><p><b>Simulated-residual diagnostics</b> ({self.nsim} simulations, "
                f"{len(self.residuals)} scaled residuals)</p>"
                f"{self.tests.to_html(float_format=lambda v: f'{v:.4g}')}{f'<ul>{msgs}</ul>' if msgs else ''}</div>")


def _two_sided(sim_stats: np.ndarray, obs: float) -> float:
    lo = (np.sum(sim_stats <= obs) + 1) / (len(sim_stats) + 1)
    hi = (np.sum(sim_stats >= obs) + 1) / (len(sim_stats) + 1)
    return float(min(1.0, 2 * min(lo, hi)))


def overdispersion_advice(m, tests: pd.DataFrame, level: float = 0.05) -> tuple[str, ...]:
    """When the dispersion test flags overdispersion and the family has an overdispersed
    alternative (Poisson → NB2), refit with it and say what to do in one line."""
    alt = m.request.family.overdispersed_alternative
    row = tests.loc["dispersion"]
    if alt is None or not (row.p_value < level and row.statistic > 1):
        return ()
    import warnings

    from ..pipeline import refit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = refit(m, family=alt, start=None)
    except Exception as exc:  # the advice is optional; say why it is missing
        return (f"Overdispersion (ratio {row.statistic:.2f}, p = {row.p_value:.2g}); the {alt} refit failed: {exc}",)
    disp = ", ".join(f"{k} = {v:.3g}" for k, v in nb.dispersion.items())
    return (f"Overdispersion (variance ratio {row.statistic:.2f}, p = {row.p_value:.2g}): the {alt} refit has "
            f"AIC {nb.aic:.1f} against {m.aic:.1f} ({disp}); refit with family='{alt}'.",)


def zero_inflation_advice(m, tests: pd.DataFrame, level: float = 0.05) -> tuple[str, ...]:
    """When a count model without a zero part shows more zeros than it expects, refit with
    ``ziformula="~ 1"`` and say what to do in one line."""
    fam = m.request.family
    if "zero-inflation" not in tests.index or fam.has_zero_part or not fam.count_like:
        return ()
    row = tests.loc["zero-inflation"]
    if not (row.p_value < level and row.statistic > 1):
        return ()
    import warnings

    from ..pipeline import refit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zi = refit(m, ziformula="~ 1", start=None)
    except Exception as exc:
        return (f"Zero-inflation (ratio {row.statistic:.2f}, p = {row.p_value:.2g}); the zero-inflated refit failed: {exc}",)
    pi = float(1 / (1 + np.exp(-zi.zi_fixef.iloc[0])))
    return (f"Zero-inflation (observed/expected zeros {row.statistic:.2f}, p = {row.p_value:.2g}): a zero-inflated "
            f"refit (ziformula='~ 1') has AIC {zi.aic:.1f} against {m.aic:.1f} and a structural-zero probability of "
            f"{pi:.2f}; refit with ziformula= (or hurdle=True).",)


def diagnose(m, nsim: int = 250, seed: int | None = 1, alternatives: bool = True) -> Diagnostics:
    """Scaled residuals and their tests; for count and multi-trial binomial models also the
    refits under alternative families (:func:`glmm_nb.inference.alternatives.family_alternatives`,
    ``alternatives=False`` skips them), whose comparison — not the low-power residual tests —
    gives the family advice."""
    check_int(nsim, "nsim", minimum=1)
    rng = np.random.default_rng(check_seed(seed))
    sims = simulate(m, nsim=nsim, seed=rng.integers(2**32), re="new")
    spec = m.spec
    fam = m.fitted_family
    obs = fam.observed(spec.y, spec.weights)
    less = (sims < obs[:, None]).sum(axis=1)
    equal = (sims == obs[:, None]).sum(axis=1)
    u = rng.random(len(obs))
    resid = (less + u * (equal + 1)) / (nsim + 1)
    fitted = sims.mean(axis=1)
    ks = stats.kstest(resid, "uniform")
    rows = [("uniformity (KS)", ks.statistic, ks.pvalue, "scaled residuals ~ U(0,1)")]
    obs_var = np.var(obs - fitted)
    sim_var = np.var(sims - fitted[:, None], axis=0)
    rows.append(("dispersion", obs_var / sim_var.mean(), _two_sided(sim_var, obs_var),
                 "ratio > 1: overdispersion; < 1: underdispersion"))
    if fam.count_like:
        z_obs = float(np.sum(obs == 0))
        z_sim = np.sum(sims == 0, axis=0)
        rows.append(("zero-inflation", z_obs / max(z_sim.mean(), 1e-12), _two_sided(z_sim, z_obs),
                     "ratio > 1: more zeros than the model expects"))
    tests = pd.DataFrame(rows, columns=["test", "statistic", "p_value", "reading"]).set_index("test")
    alts = family_alternatives(m) if alternatives else None
    if alts is not None:  # the family advice comes from refitting; the tests above are evidence beside it
        messages = tuple(m.messages) + ((alts.advice,) if alts.advice else ())
    else:
        messages = tuple(m.messages) + overdispersion_advice(m, tests) + zero_inflation_advice(m, tests)
    opt = m.opt
    names = parameter_names(m.request)
    grad = opt.gradient if opt.gradient is not None else np.full(len(names), np.nan)
    conv = pd.DataFrame({"parameter": names, "estimate": opt.final[: len(names)], "gradient": grad[: len(names)]})
    conv.attrs["scaled_gradient"] = opt.scaled_gradient
    conv.attrs["hessian_eigenvalues"] = None if opt.hessian_eigenvalues is None else list(opt.hessian_eigenvalues)
    return Diagnostics(residuals=pd.Series(resid, index=spec.row_index, name="scaled_residual"),
                       tests=tests, convergence=conv, messages=messages, nsim=nsim, alternatives=alts)
