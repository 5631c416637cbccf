r"""Causal caveats, computed: is the random effect independent of the covariates?

The standard GLMM assumes each cluster's random effect is independent of the covariates. With
cluster-level confounding (e.g. hospital quality drives both treatment and outcome) the
GLMM coefficient mixes the within-cluster effect with a biased between-cluster contrast.

* Variance shares: for each numeric covariate (two-level factors as 0/1), the share of its variance that lies between
  clusters, :math:`\mathrm{var}(\bar x_{j(i)}) / \mathrm{var}(x_i)`. A share near 1 means the
  coefficient is identified almost only by between-cluster contrasts.
* Within/between (Mundlak 1978): refit with the cluster means :math:`\bar x_j` of the
  covariates that vary within clusters added as fixed effects, with the same fitting core. The
  coefficient of x is then the within-cluster effect; x + x̄ gives the between effect; a Wald
  test of the x̄ coefficients (jointly, and one by one) is the test that within = between —
  a deviation is the signature of cluster-level confounding.
* Flags, one per fact: few clusters (< 30); covariates constant within clusters (compared only
  between clusters, so open to cluster-level confounding unless stated as randomized, which
  turns the flag into a note); within ≠ between (the Mundlak test); a singular fit.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, ModelError, warn
from ..pipeline import refit

__all__ = ["CausalChecks", "causal_checks"]

FEW_CLUSTERS = 30


@dataclass(frozen=True, eq=False)
class CausalChecks:
    """Everything the report's caveats section renders (all data, no HTML)."""

    cluster: str
    shares: pd.DataFrame  # covariate, between_share, within_sd, varies_within
    within_between: pd.DataFrame  # covariate, glmm, within, between, difference, se, z, p_value
    joint_test: dict  # chisq, df, p_value
    flags: pd.DataFrame  # flag, applies, detail
    mundlak_fit: object | None
    notes: tuple = ()  # plain statements (covariates stated as randomized)

    def __repr__(self) -> str:
        on = self.flags[self.flags.applies]
        lines = [f"Within/between checks for '{self.cluster}': "
                 + (f"{len(on)} flag(s) raised" if len(on) else "no flag raised")]
        lines += [f"- {name}: {r.detail}" for name, r in on.iterrows()]
        if len(self.within_between):
            lines.append(self.within_between[["glmm", "within", "between", "p_value"]]
                         .to_string(float_format=lambda v: f"{v:.4g}"))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        on = self.flags[self.flags.applies]
        items = "".join(f"<li><b>{html.escape(str(n))}</b>: {html.escape(str(r.detail))}</li>" for n, r in on.iterrows())
        wb = (self.within_between[["glmm", "within", "between", "p_value"]].to_html(float_format=lambda v: f"{v:.4g}")
              if len(self.within_between) else "")
        return (f"<div><p><b>Within/between checks for '{html.escape(self.cluster)}'</b>: "
                f"{len(on) or 'no'} flag(s)</p>{f'<ul>{items}</ul>' if items else ''}{wb}</div>")


def _numeric_covariates(m) -> list[str]:
    frame = m.spec.frame
    import formulaic

    fixed_vars = set(formulaic.Formula(m.spec.formula.fixed).required_variables)
    out = []
    for v in frame.columns:
        if v not in fixed_vars:
            continue
        col = frame[v]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            out.append(v)
        elif isinstance(col.dtype, pd.CategoricalDtype) and len(col.cat.categories) == 2:
            out.append(v)  # a two-level factor, as 0/1 (second level = 1)
    return out


def _as_number(col: pd.Series) -> np.ndarray:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return (col.cat.codes == 1).to_numpy(float)
    return col.to_numpy(float)


def variance_shares(frame: pd.DataFrame, codes: np.ndarray, covs: list[str]) -> tuple[pd.DataFrame, dict]:
    """Between-cluster share and within-cluster SD of each covariate, and the cluster means of
    those that can enter a Mundlak refit."""
    rows, means = [], {}
    for v in covs:
        x = _as_number(frame[v])
        cm = np.bincount(codes, weights=x) / np.bincount(codes)
        xbar = cm[codes]
        tot = np.var(x)
        within_sd = float(np.sqrt(np.mean((x - xbar) ** 2)))
        share = float(np.var(xbar) / tot) if tot > 0 else np.nan
        varies = within_sd > 1e-8 * max(1.0, np.abs(x).max())
        rows.append((v, share, within_sd, varies))
        # a cluster mean that is the same everywhere (balanced designs) carries no between
        # information and would be collinear with the intercept
        numeric = not isinstance(frame[v].dtype, pd.CategoricalDtype)  # Mundlak terms: numeric columns
        if numeric and varies and np.std(cm) > 1e-8 * max(1.0, np.abs(x).max()):
            means[v] = xbar
    shares = pd.DataFrame(rows, columns=["covariate", "between_share", "within_sd", "varies_within"]).set_index("covariate")

    return shares, means


def mundlak_test(m, means: dict) -> tuple[pd.DataFrame, dict, object, str]:
    """Refit with the cluster means added (through ``refit``): within and between effects,
    their joint test, the refit, and a note when the refit did not converge."""
    spec = m.spec
    frame = spec.frame
    wb_rows, joint, fit = [], {"chisq": np.nan, "df": 0, "p_value": np.nan}, None
    refit_note = ""
    if means:
        data = frame.copy()
        names = {}
        for v, xbar in means.items():
            nm = f"{re.sub(r'[^0-9A-Za-z_]', '_', v)}__cluster_mean"
            data[nm] = xbar
            names[v] = nm
        f = spec.formula
        lhs = f"cbind({f.cbind[0]}, {f.cbind[1]})" if f.cbind else f.response
        # offsets (formula and argument alike) travel as the fitted offset vector
        parts = [f.fixed] + list(names.values()) + [t.text for t in f.random]
        formula = f"{lhs} ~ " + " + ".join(parts)
        weights = None
        if spec.user_weights:
            if f.cbind:
                raise ModelError("the within/between refit cannot separate weights= from cbind() trials; "
                                 "fold the weights into the counts")
            weights = np.asarray(spec.weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = refit(m, formula=formula, data=data, weights=weights, offset=np.asarray(spec.offset), reml=False,
                        start=None)
        if not fit.converged:
            refit_note = ("the within/between refit did not converge (" + "; ".join(fit.messages)
                          + "): treat the Mundlak test with caution")
            warn(refit_note, ConvergenceWarning)
        b, V = fit.fixef, fit.vcov
        means = {v: xb for v, xb in means.items() if names[v] in b.index}  # collinear means were dropped
        idx = [names[v] for v in means]
        bm = b[idx].to_numpy()
        Vm = V.loc[idx, idx].to_numpy()
        if idx:
            chisq = float(bm @ np.linalg.solve(Vm, bm))
            joint = {"chisq": chisq, "df": len(idx), "p_value": float(stats.chi2.sf(chisq, len(idx)))}
        for v in means:
            nm = names[v]
            if v not in b.index:
                continue
            within = float(b[v])
            diff = float(b[nm])
            se = float(np.sqrt(V.loc[nm, nm]))
            between = within + diff
            z = diff / se
            wb_rows.append((v, float(m.fixef.get(v, np.nan)), within, between, diff, se, z, float(2 * stats.norm.sf(abs(z)))))
    within_between = pd.DataFrame(
        wb_rows, columns=["covariate", "glmm", "within", "between", "difference", "std_error", "statistic", "p_value"]
    ).set_index("covariate")

    return within_between, joint, fit, refit_note


def causal_checks(m, cluster: str | None = None, level: float = 0.05, randomized=()) -> CausalChecks:
    """Variance shares, the Mundlak within/between refit and its test, and plain flags.

    ``randomized``: covariates whose values were assigned at random (a trial's arm). A covariate
    constant within clusters is compared only between clusters; that comparison is flagged as
    open to cluster-level confounding unless the covariate is named here, in which case it is
    stated as a note (randomization makes the between-cluster comparison unconfounded)."""
    spec = m.spec
    term = spec.terms[0] if cluster is None else next((t for t in spec.terms if t.group == cluster), None)
    if term is None:
        raise ModelError(f"'{cluster}' is not a grouping factor of the model ({', '.join(spec.ngroups)})")
    randomized = _check_randomized(m, randomized)
    codes = np.asarray(term.codes)
    frame = spec.frame
    shares, means = variance_shares(frame, codes, _numeric_covariates(m))
    within_between, joint, fit, refit_note = mundlak_test(m, means)
    J = term.nlevels
    constant = [v for v, r in shares.iterrows() if not r.varies_within]
    flagged = [v for v in constant if v not in randomized]
    stated = [v for v in constant if v in randomized]
    g = term.group
    flags = pd.DataFrame(
        [
            ("few clusters", J < FEW_CLUSTERS, f"{J} levels of '{g}'; variance estimates and "
             f"cluster-level contrasts are imprecise below about {FEW_CLUSTERS}"),
            ("cluster-level covariate", bool(flagged),
             (", ".join(flagged) + f" {'is' if len(flagged) == 1 else 'are'} constant within each level of '{g}', so "
              f"{'its' if len(flagged) == 1 else 'their'} effect is estimated only by comparing clusters and anything "
              "else that differs between those clusters can bias it — unless it was randomized "
              f"(report(randomized=[{', '.join(map(repr, flagged))}]) states that)")
             if flagged else "every covariate varies within clusters, or was stated as randomized"),
            ("singular fit", bool(m.singular), "; ".join(x for x in m.messages if x.startswith("Singular")) or "no"),
            ("within ≠ between", bool(joint["p_value"] < level) if joint["df"] else False,
             f"Mundlak test chi-square {joint['chisq']:.2f} on {joint['df']} df, p = {joint['p_value']:.3g}"
             if joint["df"] else "no covariate varies both within and between clusters; the test is not possible"),
            ("within/between refit not converged", bool(refit_note), refit_note or "no"),
        ],
        columns=["flag", "applies", "detail"],
    ).set_index("flag")
    notes = tuple(f"{v} is constant within each level of '{g}' and was randomized (as stated): its effect is a "
                  "comparison between clusters that randomization protects from cluster-level confounding."
                  for v in stated)
    return CausalChecks(g, shares, within_between, joint, flags, fit, notes)


def _check_randomized(m, randomized) -> tuple:
    if isinstance(randomized, str):
        randomized = (randomized,)
    randomized = tuple(randomized or ())
    cols = [] if m.spec.frame is None else list(m.spec.frame.columns)
    for v in randomized:
        if not isinstance(v, str) or v not in cols:
            raise ModelError(f"randomized= names covariates of the model; {v!r} is not one "
                             f"(it uses {', '.join(map(repr, cols))})")
    return randomized
