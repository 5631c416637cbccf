"""Everything a report shows, as plain data read from the frozen result.

Each ``*_section`` returns a dict for its template partial; a piece that cannot be computed
for this model is ``None`` with a reason in ``missing`` so the template prints a clear
"not computed" line instead of failing.
"""

from __future__ import annotations

import platform
import warnings
from importlib import metadata

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, ModelError
from ..inference import diagnose, emmeans, icc, mor, r2
from ..inference.simulate import design_of, mean_at, predict_design, re_row_variance
from ..marginal import attenuation_note, causal_checks, comparison_table, effect_claim
from ..results.display import column_decimals, dispersion_lines, format_column, format_p, statistic_label, title
from .focal import choose_focus, fixed_variables, focus_frame, other_terms


__all__ = ["model_section", "fixed_section", "random_section", "marginal_section", "diagnostics_section",
           "caveats_section", "reproduce_section"]


def _records(df: pd.DataFrame, index_name: str = "term") -> list[dict]:
    out = df.reset_index().rename(columns={"index": index_name})
    return out.replace({np.nan: None}).to_dict(orient="records")


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


def model_section(m) -> dict:
    groups = []
    for t in m.spec.terms:
        sizes = np.bincount(np.asarray(t.codes), minlength=t.nlevels)
        groups.append({"term": t.text, "label": t.label, "levels": t.nlevels, "min": int(sizes.min()),
                       "median": float(np.median(sizes)), "max": int(sizes.max())})
    if m.request.family.profiled_lmm:
        method = "REML" if m.reml else "maximum likelihood"
    elif m.nagq > 1:
        method = f"Adaptive Gauss-Hermite quadrature, nAGQ = {m.nagq}"
    else:
        method = "Laplace approximation"
    conv = "The optimizer converged (largest scaled gradient {:.1e}).".format(m.opt.scaled_gradient or 0.0) if m.converged \
        else "The convergence check failed: treat the estimates with caution."
    sing = "The fit is singular: a variance is estimated as zero or a correlation as ±1." if m.singular \
        else "No variance component is on its boundary."
    return {"title": title(m), "formula": m.formula, "family": m.family, "link": m.link, "method": method,
            "nobs": m.nobs, "groups": groups, "n_dropped": m.n_dropped, "loglik": m.loglik, "aic": m.aic,
            "bic": m.bic, "dispersion": dispersion_lines(m), "convergence": conv, "singular": sing, "messages": list(m.messages),
            "versions": {"glmm_nb": _version("glmm_nb"), "python": platform.python_version(),
                         "numpy": np.__version__, "scipy": _version("scipy"), "pandas": pd.__version__}}


def fixed_section(m, emmeans_spec=None) -> dict:
    ct = m.coef_table()
    exp_name = m.request.family.ratio_name
    rows = _records(ct)
    if exp_name:
        for r in rows:
            r["exp"] = float(np.exp(r["estimate"]))
            r["exp_low"] = float(np.exp(r["conf_low"]))
            r["exp_high"] = float(np.exp(r["conf_high"]))
    _formatted(rows, exp_name is not None)
    has_df = "df" in ct.columns and bool(np.isfinite(ct["df"]).any())
    note = f"t tests with {ct.attrs['ddf']} degrees of freedom." if has_df and ct.attrs.get("ddf") else ""
    return {"rows": rows, "exp_name": exp_name, "statistic": statistic_label(m, ct).split()[0], "has_df": has_df,
            "ddf_note": note, "emmeans": emmeans_section(m, emmeans_spec) if emmeans_spec else None,
            "zero_part": zero_part_section(m), "disp_part": disp_part_section(m)}


def _formatted(rows: list[dict], with_exp: bool) -> None:
    """Add ``fmt``: the row's numbers as text, common decimals per column group (estimate, SE
    and CI share one count; the ratio and its CI another), p as ``< 0.001``."""
    if not rows:
        return
    d = max(column_decimals([r[k] for r in rows]) for k in ("estimate", "std_error"))
    cols = {k: format_column([r[k] for r in rows], decimals=d) for k in ("estimate", "std_error", "conf_low", "conf_high")}
    cols["statistic"] = format_column([r["statistic"] for r in rows], decimals=2)
    if "df" in rows[0]:
        cols["df"] = format_column([r["df"] for r in rows], decimals=1)
    if with_exp:
        e = column_decimals([r["exp"] for r in rows])
        for k in ("exp", "exp_low", "exp_high"):
            cols[k] = format_column([r[k] for r in rows], decimals=e)
    for i, r in enumerate(rows):
        r["fmt"] = {k: v[i] for k, v in cols.items()}
        r["fmt"]["p"] = format_p(r["p_value"])
        r["fmt"]["p_exact"] = f"{r['p_value']:.3g}"


def zero_part_section(m) -> dict | None:
    """The zero part of a zero-inflated or hurdle model: its table (odds ratios) and sentences."""
    if not len(m.zi_fixef):
        return None
    hurdle = m.request.family.hurdle
    what = "a zero" if hurdle else "a structural zero"
    zt = m.coef_table(part="zi")
    rows = _records(zt)
    sentences = []
    for r in rows:
        r["exp"], r["exp_low"], r["exp_high"] = (float(np.exp(r[k])) for k in ("estimate", "conf_low", "conf_high"))
    _formatted(rows, True)
    for r in rows:
        if r["term"] == "(Intercept)":
            p = 1 / (1 + np.exp(-r["estimate"]))
            sentences.append(f"At the reference values of the zero part's covariates the probability of {what} is "
                             f"{p:.2f}.")
        else:
            direction = "higher" if r["estimate"] > 0 else "lower"
            sentences.append(f"The odds of {what} are {r['exp']:.3g} times ({r['exp_low']:.3g} to {r['exp_high']:.3g}) "
                             f"— {direction} — per unit of {r['term']}.")
    count = "the count part's zero-truncated counts" if hurdle else "the counts that are not structural zeros"
    sentences.append(f"The fixed effects above describe {count}; predict(type='response') combines both parts.")
    return {"rows": rows, "what": what, "kind": "hurdle" if hurdle else "zero-inflation", "sentences": sentences}


def disp_part_section(m) -> dict | None:
    """The dispersion model (``dispformula``): its table on glmmTMB's scale and, per coefficient,
    the factor by which it multiplies the dispersion parameter (exp(coefficient / k) for a
    linear predictor k log(parameter)), each computed from the row it states."""
    fam = m.request.family
    if not getattr(fam, "has_disp_model", False) or not len(getattr(m, "disp_fixef", ())):
        return None
    base = fam.base
    k, name = float(base.disp_power), base.dispersion_name
    rows = _records(m.coef_table(part="disp"))
    for r in rows:
        lo, hi = sorted((np.exp(r["conf_low"] / k), np.exp(r["conf_high"] / k)))
        r["exp"], r["exp_low"], r["exp_high"] = float(np.exp(r["estimate"] / k)), float(lo), float(hi)
    _formatted(rows, True)
    sentences = []
    for r in rows:
        if r["term"] == "(Intercept)":
            sentences.append(f"At the reference values of the dispersion model's covariates {name} = {r['exp']:.4g}.")
            continue
        word = "larger" if r["exp"] > 1 else "smaller"
        sentences.append(f"{r['term']}: {name} is {r['exp']:.3g} times as large ({r['exp_low']:.3g} to "
                         f"{r['exp_high']:.3g}) — {word}.")
    return {"rows": rows, "scale": fam.disp_scale_text, "name": name, "formula": m.spec.disp_formula,
            "meaning": base.dispersion_meaning, "sentences": sentences}


def emmeans_section(m, spec, adjust: str = "tukey") -> dict:
    """Estimated marginal means of ``spec`` (response scale) and their pairwise contrasts."""
    fam = m.request.family  # ordinal: emmeans' default latent mode (pairs are log cumulative odds ratios)
    emm = emmeans(m, spec, type="latent" if fam.ordinal else "response" if fam.link.name != "identity" else "link")
    tab = emm.to_frame()
    pairs = emm.pairs(adjust=adjust).confint()
    n_labels = len(emm.labels.columns)
    return {"spec": spec, "columns": list(tab.columns), "n_labels": n_labels,
            "rows": tab.replace({np.nan: None}).to_dict(orient="records"), "adjust": adjust,
            "pair_columns": list(pairs.columns), "pairs": pairs.replace({np.nan: None}).to_dict(orient="records")}


def _structure_text(m) -> list[str]:
    spec = m.spec
    out = []
    groups = list(dict.fromkeys(t.group for t in spec.terms))
    for t in spec.terms:
        if _structured(t):
            name = _STRUCTURE_NAMES.get(t.structure.name, t.structure.name)
            out.append(f"'{t.group}' ({spec.ngroups[t.group]} levels): {getattr(t, 'text', t.label)}, "
                       f"{_article(name)} {name} covariance over its {t.q} columns.")
    for g in groups:
        if all(_structured(t) for t in spec.terms if t.group == g):
            continue
        cols = [c for t in spec.terms if t.group == g and not _structured(t) for c in t.col_names]
        slopes = [c for c in cols if c != "(Intercept)"]
        kinds = "an intercept" if "(Intercept)" in cols else "no intercept"
        txt = f"'{g}' ({spec.ngroups[g]} levels): {kinds}"
        if slopes:
            txt += " and slope(s) for " + ", ".join(slopes) + " that vary by " + g
        corr = [t for t in spec.terms if t.group == g and t.q > 1 and not _structured(t)]
        if slopes:
            txt += ", correlated" if corr else ", uncorrelated"
        out.append(txt + ".")
    if len(groups) > 1:
        nested = []
        for a in groups:
            for b in groups:
                if a != b and b.startswith(a + ":"):
                    nested.append(f"'{b}' is nested in '{a}'")
        out.append("Grouping factors: " + ("; ".join(nested) if nested else "crossed (each level of one meets several of the other)") + ".")
    return out


_STRUCTURE_NAMES = {"ar1": "AR(1)", "cs": "compound-symmetry", "toep": "Toeplitz", "diag": "diagonal (uncorrelated)",
                    "ou": "Ornstein-Uhlenbeck (continuous-time)", "exp": "exponential spatial",
                    "gau": "Gaussian spatial", "mat": "Matérn spatial"}


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOUaeiou" else "a"


def _structured(t) -> bool:
    return bool(getattr(t, "structured", False))


def structure_sentences(m, term, params: dict, curve: pd.DataFrame) -> list[str]:
    """What a structured term's estimates say, each number read off the fitted correlation
    curve (:meth:`covariance_structure`) or the structure's parameters."""
    st = term.structure
    sds = [v for k, v in params.items() if k.startswith("sd")]
    sd = f"SD {sds[0]:.3g}" if len(sds) == 1 else f"SDs {min(sds):.3g} to {max(sds):.3g}"
    name = _STRUCTURE_NAMES.get(st.name, st.name)
    head = f"{getattr(term, 'text', term.label)}: {_article(name)} {name} covariance; {sd}"
    rho = dict(zip(curve["distance"], curve["correlation"]))
    if st.name == "ar1":
        q = term.q
        lags = [k for k in (1, 2, q - 1) if 0 < k < q]
        return [head + "; correlation " + ", ".join(f"{rho[float(k)]:.3g} at lag {k}" for k in dict.fromkeys(lags))
                + " (neighbouring levels correlate most; the correlation decays geometrically with the lag)."]
    if st.name == "cs":
        return [head + f"; every pair of levels correlates {params['rho']:.3g}, whatever their distance."]
    if st.name == "toep":
        return [head + "; correlation by lag: " + ", ".join(f"{rho[float(k)]:.3g} at lag {k}" for k in range(1, term.q))
                + "."]
    if st.name == "diag":
        return [head + "; its columns are uncorrelated (only their SDs are estimated)."]
    d, r = curve["distance"].to_numpy(float), curve["correlation"].to_numpy(float)
    far = f"{r[-1]:.2g} at the largest distance between the positions ({d[-1]:.3g})"
    if r[-1] < 0.5 < r[0]:
        half = float(np.interp(0.5, r[::-1], d[::-1]))  # r decreases with d
        return [head + f"; the correlation falls to 0.5 at distance {half:.3g} and to {far}."]
    return [head + f"; the correlation stays above 0.5 out to {far}."]


def random_section(m) -> dict:
    vc = m.varcorr()
    out = {"varcorr": vc.replace({np.nan: None}).to_dict(orient="records"), "structure": _structure_text(m),
           "icc": None, "r2": None, "mor": None, "missing": [], "structures": []}
    if any(_structured(t) for t in m.spec.terms):
        curves = m.covariance_structure(points=401)
        params = m.structure_parameters()
        for t in m.spec.terms:
            if _structured(t) and t.label in params:
                c = curves[curves.term == t.label]
                shown = c if c["lag"].notna().all() else c.iloc[::10]
                vc_rows = out["varcorr"]
                cols = set(t.col_names)
                first = t.col_names[0]
                out["varcorr"] = [r for r in vc_rows if not (r["grp"] == t.group and r["var1"] in cols
                                                             and (r["var2"] is not None or r["var1"] != first))]
                out["structures"].append({"term": getattr(t, "text", t.label), "structure": t.structure.name,
                                          "sentences": structure_sentences(m, t, params[t.label], c),
                                          "data": shown[["distance", "correlation"]],
                                          "lags": bool(c["lag"].notna().all())})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["icc"] = icc(m)
        out["r2"] = r2(m)
        try:
            out["mor"] = mor(m).to_dict()
        except Exception as exc:  # MOR is for logistic random intercepts only
            out["missing"].append(f"median odds ratio: {exc}")
    cats = []
    re = m.ranef()
    for t in m.spec.terms:
        if t.label != t.group or _structured(t):
            continue
        frame = re[t.group]
        sizes = np.bincount(np.asarray(t.codes), minlength=t.nlevels)
        for col in t.col_names:
            d = pd.DataFrame({"level": frame.index.astype(str), "mode": frame[col].to_numpy(),
                              "sd": frame[f"condsd_{col}"].to_numpy(), "n": sizes})
            cats.append({"group": t.group, "term": col, "data": d})
    out["caterpillars"] = cats
    return out


def marginal_section(m, focus: str | None = None, gee=None) -> dict:
    out = {"table": None, "missing": [], "curves": None, "var": None, "sentences": [], "ame": None,
           "gee": gee is not None, "focus": None, "note": _marginal_note(m), "claim": None, "attenuation": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tab = comparison_table(m, gee)
            out["table"] = _records(tab)
            out["attenuation"] = attenuation_note(m, tab)
        except Exception as exc:
            out["missing"].append(f"conditional vs marginal table: {exc}")
            tab = None
    if gee is None and not m.request.family.ordinal:
        out["missing"].append("GEE: not asked for (report(gee=...) adds it)")
    if m.request.family.ordinal:  # category-probability curves and sentences: report/ordinal.py
        return out
    f = choose_focus(m, focus)
    if f is None:
        out["missing"].append("prediction curves: the model has no covariate to vary")
        return out
    out["var"], out["focus"] = f.var, f
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = design_of(m, focus_frame(m, f))
        typical = predict_design(m, d, re="none")
        try:
            marg = predict_design(m, d, re="marginal")
        except ModelError as exc:
            marg = None
            out["missing"].append(f"population-averaged curve: {exc}")
        eta = predict_design(m, d, re="none", type="link")
    # a spread of clusters: random intercept at quantiles of its fitted distribution (slopes at 0),
    # zero part included through the same mean function as the other curves
    s_int = 0.0
    for t in m.spec.terms:
        if "(Intercept)" in t.col_names:
            s_int += float(m.covariance_matrices()[t.label].loc["(Intercept)", "(Intercept)"])
    rows = []
    xs = [x if f.discrete else float(x) for x in f.grid] * len(f.panel_labels)
    at = [lab for lab in f.panel_labels for _ in f.grid]
    for q in (0.1, 0.25, 0.75, 0.9):
        b = stats.norm.ppf(q) * np.sqrt(s_int)
        for x, a, v in zip(xs, at, mean_at(m, d, eta + b)):
            rows.append({"x": x, "at": a, "value": float(v), "curve": f"cluster at {int(q * 100)}th percentile"})
    for x, a, v in zip(xs, at, typical):
        rows.append({"x": x, "at": a, "value": float(v), "curve": "typical cluster (random effects 0)"})
    for x, a, v in zip(xs, at, marg if marg is not None else []):
        rows.append({"x": x, "at": a, "value": float(v), "curve": "population-averaged"})
    out["curves"] = pd.DataFrame(rows)
    out["claim"] = _focus_claim(m, f)
    out["sentences"] = _effect_sentences(m, tab, f, out["claim"])
    return out


def _marginal_note(m) -> str:
    """What the marginal coefficients are and what averaging does for this family, link and design."""
    fam = m.request.family
    link = fam.link.name
    v = re_row_variance(design_of(m, None).Zvals, [m.covariance_matrices()[t.label].to_numpy() for t in m.spec.terms])
    slopes = bool(np.ptp(v) > 1e-10 * max(float(np.max(v)), 1e-300))  # the random-effect variance varies by row
    text = ("A GLMM's coefficients are conditional on the cluster (subject-specific). The marginal "
            "(population-averaged) coefficients below describe the mean averaged over the fitted random-effect "
            "distribution — what a GEE estimates.")
    if fam.has_zero_part:
        text += (" They describe the overall mean, zero part included; the conditional coefficients are the count "
                 "part's, so their ratio mixes the zero part's effect with the averaging over clusters.")
    elif link == "identity":
        text += " With the identity link averaging changes nothing: marginal and conditional coefficients are equal."
    elif link == "log" and not slopes:
        text += (" With a log link and the same random-effect variance σ² on every row (random intercepts; here "
                 f"σ² = {float(v[0]):.4g}), averaging multiplies every mean by the same factor exp(σ²/2): the slopes "
                 "are unchanged and only the intercept grows, by σ²/2.")
    elif link == "inverse":
        text += (" With the inverse link the population-averaged mean does not exist (the pole of 1/η lies inside "
                 "the normal random effect's range).")
    elif link in ("logit", "probit") and not slopes:
        text += (f" With a {link} link and the same random-effect variance on every row (random intercepts), "
                 "averaging flattens the curve: the coefficients move towards zero.")
    else:
        text += (" With random slopes the variance of the random effects changes with the covariates, so averaging "
                 "can move a coefficient towards or away from zero (the sentence after the table says which).")
    return text


def _focus_claim(m, f):
    """The focal covariate's claim (conditional and population-averaged effect), or None when its
    contrast is not defined (a factor of more than two levels: the first level against the reference)."""
    col = m.spec.frame[f.var]
    level = None
    if f.discrete and len(f.grid) > 2 and not pd.api.types.is_numeric_dtype(col):
        level = f.grid[1]
    try:
        return effect_claim(m, f.var, level=level)
    except (DataError, ModelError):
        return None


def _effect_sentences(m, tab, f, claim) -> list[str]:
    """The focal covariate's conditional and population-averaged effect in words, each number
    from :func:`glmm_nb.marginal.effect_claim` (see its definitions)."""
    var = f.var
    shared = other_terms(m, var)
    out = []
    if shared:
        out.append(f"The effect of {var} runs through {len(shared) + 1} coefficients ({var}, {', '.join(shared)}): "
                   "no single coefficient is its effect; the curves below show it, and the effects below average "
                   "over the observed values of what it interacts with.")
    if tab is not None and var in tab.index and not (np.isfinite(tab.loc[var].conditional)):
        return [f"The effect of {var} is not estimable (section 1)."]
    if claim is None:
        return out
    cluster = ", ".join(m.spec.ngroups)
    out.append(claim.conditional_sentence(cluster))
    out.append(claim.population_sentence())
    if m.request.family.link.name == "log" and claim.kind == "ratio" and var in (tab.index if tab is not None else []):
        r = tab.loc[var]
        if (claim.population is not None and np.isfinite(r.marginal)
                and abs(np.exp(r.marginal) - claim.population) > 5e-4 * claim.population):
            out.append(f"The marginal coefficient of {var} in the table (exp = {np.exp(r.marginal):.4g}) is the slope of "
                       "a log-linear curve fitted to the population-averaged means; the population-averaged mean is "
                       "not log-linear here, so the policy effect above, not the exponentiated coefficient, is what "
                       "moving everyone does.")
    return out


def diagnostics_section(m, nsim: int = 250) -> dict:
    out = {"tests": None, "hist": None, "qq": None, "convergence": None, "missing": [], "advice": [],
           "alternatives": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            d = diagnose(m, nsim=nsim)
        except Exception as exc:
            out["missing"].append(f"simulated residuals: {exc}")
            return out
    out["tests"] = _records(d.tests, "test")
    out["advice"] = [x for x in d.messages if x.startswith(("Overdispersion", "Zero-inflation", "Family:",
                                                            "Residual spread:"))]
    alts = d.alternatives
    if alts is not None:
        tab = alts.table.reset_index()
        out["alternatives"] = {"rows": tab.replace({np.nan: None}).to_dict(orient="records"),
                               "failed": [f"{a}: {b}" for a, b in alts.failed],
                               "verdict": alts.advice or f"The current {alts.current} model has the lowest AIC "
                               "(or none is lower by 2 or more): no change of family is indicated."}
    r = np.sort(d.residuals.to_numpy())
    counts, edges = np.histogram(r, bins=20, range=(0, 1))
    out["hist"] = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts})
    k = min(120, len(r))
    idx = np.linspace(0, len(r) - 1, k).astype(int)
    out["qq"] = pd.DataFrame({"expected": (idx + 0.5) / len(r), "observed": r[idx]})
    conv = d.convergence.copy()
    out["convergence"] = conv.replace({np.nan: None}).to_dict(orient="records")
    out["scaled_gradient"] = m.opt.scaled_gradient
    eig = m.opt.hessian_eigenvalues
    out["hessian"] = None if eig is None else [float(e) for e in eig]
    return out


def caveats_section(m, randomized=()) -> dict:
    out = {"checks": None, "missing": [], "sentences": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            c = causal_checks(m, randomized=randomized)
        except ModelError as exc:
            if "randomized=" in str(exc):
                raise
            out["missing"].append(f"within/between checks: {exc}")
            return out
        except Exception as exc:
            out["missing"].append(f"within/between checks: {exc}")
            return out
    out["checks"] = {"cluster": c.cluster, "shares": _records(c.shares, "covariate"),
                     "within_between": _records(c.within_between, "covariate"), "joint": c.joint_test,
                     "flags": _records(c.flags, "flag")}
    s = out["sentences"]
    j = c.joint_test
    if j["df"]:
        if j["p_value"] < 0.05:
            s.append(f"Within-cluster and between-cluster effects differ (chi-square {j['chisq']:.2f} on {j['df']} df, "
                     f"p = {j['p_value']:.3g}): the random effect of '{c.cluster}' is correlated with the covariates, "
                     "so the standard GLMM coefficients mix in cluster-level confounding. Prefer the within-cluster "
                     "estimates below.")
        else:
            s.append(f"No evidence that within- and between-cluster effects differ (chi-square {j['chisq']:.2f} on "
                     f"{j['df']} df, p = {j['p_value']:.3g}); this does not prove the assumption, it only fails to reject it.")
    for row in out["checks"]["flags"]:
        if row["applies"] and row["flag"] != "within ≠ between":
            s.append(f"Flag — {row['flag']}: {row['detail']}.")
    s.extend(c.notes)
    return out


def _data_lines(m, source: str | None) -> list[str]:
    """Code that defines ``data``: read the CSV (with the model's categorical columns restored as
    they were fitted) or take the notebook variable."""
    if source is None:
        cols = ", ".join(map(repr, list(m.spec.frame.columns)[:8])) if m.spec.frame is not None else ""
        return ["# data: the data frame the model was fitted to"
                + (f" (columns {cols}, ...)" if cols else "")
                + "; report(data_source='file.csv' or 'name') writes this line",
                "data = pd.read_csv('data.csv')"]
    if not source.lower().endswith((".csv", ".tsv", ".txt", ".csv.gz")):
        return [f"data = {source}  # the data frame the model was fitted to"]
    sep = m.extras.get("data_sep")
    lines = [f"data = pd.read_csv({source!r}" + (f", sep={sep!r}" if sep not in (None, ",") else "") + ")"]
    frame = m.spec.frame
    used = set(fixed_variables(m)) | {m.spec.response_name}
    for c in frame.columns:
        col = frame[c]
        if c in used and isinstance(col.dtype, pd.CategoricalDtype):
            cats = [str(x) for x in col.cat.categories]
            ordered = ", ordered=True" if col.cat.ordered else ""
            lines.append(f"data[{c!r}] = pd.Categorical(data[{c!r}].astype(str), categories={cats!r}{ordered})")
    return lines


def reproduce_section(m, source: str | None = None) -> dict:
    """Code that refits the model: ``data`` from the CSV path or variable name the model was fitted
    from (``source``, else ``m.extras["data_source"]``), then the same call."""
    source = source if source is not None else m.extras.get("data_source")
    req = m.request
    fam = req.family
    family = fam.base.name if fam.has_zero_part else fam.name
    args = [repr(m.formula), "data", f"family={family!r}"]
    if not fam.is_default_link:
        args.append(f"link={m.link!r}")
    if m.nagq > 1:
        args += ["method='agq'", f"nagq={m.nagq}"]
    if fam.profiled_lmm and not m.reml:
        args.append("reml=False")
    meta = m.spec.meta
    vectors = []
    for name in ("weights", "offset"):
        col = meta.get(f"{name}_column")
        if col is not None:
            args.append(f"{name}={col!r}")
        elif meta.get(f"{name}_vector") is not None:
            args.append(f"{name}={name}")
            vectors.append(f"{name} = ...  # the {name}= vector given to glmm() (one value per row of data)")
    if m.spec.zi_formula:
        args.append(f"ziformula={m.spec.zi_formula!r}")
    if fam.has_zero_part and fam.hurdle:
        args.append("hurdle=True")
    lines = ["import pandas as pd", "import glmm_nb", "", *_data_lines(m, source), *vectors, "",
             "m = glmm_nb.glmm(" + ", ".join(args) + ")", "print(m.summary())",
             "# m.report().save('report.html')"]
    return {"code": "\n".join(lines), "runnable": source is not None and not vectors}
