"""One display path: the tables a fitted model shows and how their numbers are written.

``summary()`` (text), ``_repr_html_`` (notebooks), the HTML report, the ``%%glmm`` magics and
the ``glmm-nb`` command all read :func:`fixed_effects_display`, :func:`random_effects_display`
and :func:`format_number` from here, so a number is formatted the same way everywhere.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .tables import ZI_PREFIX

__all__ = ["format_number", "format_p", "column_decimals", "format_column", "coefficient_html", "title",
           "fixed_effects_display", "random_effects_display", "dispersion_lines", "criteria_display", "summary_text",
           "summary_html", "threshold_display", "ordinal_summary_text"]


def format_number(x, digits: int = 4) -> str:
    """``digits`` significant digits; an em dash for a missing value; text passes through."""
    if x is None:
        return "—"
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool):
        if not np.isfinite(x):
            return "—" if np.isnan(x) else ("∞" if x > 0 else "-∞")
        return f"{x:.{digits}g}"
    return str(x)


def format_p(p: float) -> str:
    """A p-value as papers write it: ``< 0.001`` below that, three decimals otherwise."""
    if p is None or not np.isfinite(p):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def column_decimals(values, sig: int = 3, most: int = 10) -> int:
    """Decimals for a column so that its smallest non-zero magnitude keeps ``sig`` significant
    digits (``-0.0046`` with SE ``0.00071`` stays readable) — one count for the whole column,
    so decimal points line up."""
    v = np.abs(np.asarray([x for x in values if x is not None], dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return 0
    return int(np.clip(sig - 1 - np.floor(np.log10(v.min())), 0, most))


def format_column(values, sig: int = 3, decimals: int | None = None) -> list[str]:
    """A column of numbers with common decimals (empty string for a missing value)."""
    d = column_decimals(values, sig) if decimals is None else decimals
    out = []
    for x in values:
        if x is None or (isinstance(x, float) and np.isnan(x)):
            out.append("")
        elif not np.isfinite(x):
            out.append("∞" if x > 0 else "-∞")
        else:
            out.append(f"{x:.{d}f}")
    return out


def title(m) -> str:
    """The first line of a summary: what was fitted and how."""
    if m.request.family.profiled_lmm:
        return "Linear mixed model fit by " + ("REML" if m.reml else "maximum likelihood")
    if m.request.family.ordinal:  # clmm's first line
        how = ("the Laplace approximation" if m.method == "laplace" or m.nagq == 1
               else f"adaptive Gauss-Hermite quadrature (nAGQ = {m.nagq})")
        return f"Cumulative Link Mixed Model fitted with {how}"
    approx = (
        "Laplace Approximation"
        if m.method == "laplace" or m.nagq == 1
        else f"Adaptive Gauss-Hermite Quadrature, nAGQ = {m.nagq}"
    )
    return f"Generalized linear mixed model fit by maximum likelihood ({approx})"


def statistic_label(m, table: pd.DataFrame | None = None) -> str:
    """``t value`` when the table carries finite df (small-sample t tests), ``z value`` otherwise."""
    ct = m.coef_table() if table is None else table
    return "t value" if "df" in ct.columns and np.isfinite(ct["df"]).any() else "z value"


def fixed_effects_display(m, part: str = "cond") -> pd.DataFrame:
    """The fixed-effect block as text: Estimate and Std. Error with common decimals per column
    (3 significant digits for the smallest), df, the statistic to 2 decimals, p as ``< 0.001``."""
    ct = m.coef_table() if part == "cond" else m.coef_table(part=part)
    t = statistic_label(m, ct) == "t value"
    est, se = ct.estimate.to_numpy(), ct.std_error.to_numpy()
    d = max(column_decimals(est), column_decimals(se))
    cols = {"Estimate": format_column(est, decimals=d), "Std. Error": format_column(se, decimals=d)}
    if t:
        cols["df"] = format_column(ct["df"].to_numpy(), decimals=1)
    cols["t value" if t else "z value"] = format_column(ct.statistic.to_numpy(), decimals=2)
    cols["Pr(>|t|)" if t else "Pr(>|z|)"] = [format_p(p) for p in ct.p_value]
    show = pd.DataFrame(cols, index=ct.index)
    show.index.name = None
    return show


def random_effects_display(m) -> pd.DataFrame:
    """lme4's ``VarCorr`` print: Groups, Name, Variance, Std.Dev. (and Corr when any)."""
    vc = m.varcorr()
    rows = []
    compact = m.structure_text()
    keyed = [(t.label, t) for t in m.spec.terms] + [(ZI_PREFIX + t.label, t) for t in m.spec.zi_terms]
    for key, t in keyed:  # the zero part's terms as "zi:g"
        sub = vc[(vc.grp == key) & vc.var2.isna()]
        cors = vc[(vc.grp == key) & vc.var2.notna()]
        if key in compact:  # glmmTMB's compact line for a structured term: "0.748 (ar1)"
            for i, (_, r) in enumerate(sub.iloc[: 3 if t.q > 8 else t.q].iterrows()):
                rows.append([t.label if i == 0 else "", r.var1, r.vcov, r.sdcor, compact[t.label] if i == 0 else ""])
            if t.q > 8:
                rows.append(["", f"… ({t.q} columns)", np.nan, np.nan, ""])
            continue
        for i, (_, r) in enumerate(sub.iterrows()):
            corr = ""
            if i > 0:
                cs = cors[cors.var2 == r.var1].sdcor.tolist()
                corr = " ".join(f"{c:5.2f}" for c in cs)
            rows.append([key if i == 0 else "", r.var1, r.vcov, r.sdcor, corr])
    for name, value in m.residual_scale().items():
        rows.append([name, "", value**2, value, ""])
    tab = pd.DataFrame(rows, columns=["Groups", "Name", "Variance", "Std.Dev.", "Corr"])
    for c in ("Variance", "Std.Dev."):
        tab[c] = format_column(tab[c].to_numpy(dtype=float), sig=4)
    if (tab["Corr"] == "").all():
        tab = tab.drop(columns="Corr")
    return tab


def dispersion_lines(m) -> list[str]:
    """The dispersion parameter with its meaning in words (glmmTMB's line), or nothing."""
    out = []
    meanings = m.dispersion.attrs.get("meanings", [m.dispersion.attrs.get("meaning", "")] * len(m.dispersion))
    for (name, value), meaning in zip(m.dispersion.items(), meanings):
        kind = "Dispersion parameter" if name == m.request.family.dispersion_name else "Family parameter"
        out.append(f"{kind} for {m.family} family ({name}): {value:.4g}   [{meaning}]")
    return out


def criteria_display(m) -> str:
    """REML criterion, or the AIC/BIC/logLik/deviance/df.resid line."""
    if m.request.family.profiled_lmm and m.reml:
        return f"REML criterion at convergence: {-2 * m.loglik:.1f}"
    # lme4's summary prints -2 logLik under "deviance" (llikAIC), not deviance(m) of a glmer fit
    crit = pd.DataFrame(
        [[m.aic, m.bic, m.loglik, -2 * m.loglik, m.df_resid]],
        columns=["AIC", "BIC", "logLik", "deviance", "df.resid"],
    )
    return crit.to_string(index=False, float_format=lambda v: f"{v:.1f}")


def threshold_display(m) -> pd.DataFrame:
    """clmm's threshold block: Estimate, Std. Error, z value as strings."""
    ct = m.coef_table(part="thresholds")
    show = pd.DataFrame({"Estimate": ct.estimate.map(lambda v: f"{v:.5g}"),
                         "Std. Error": ct.std_error.map(lambda v: format_number(v, 5)),
                         "z value": ct.statistic.map(lambda v: format_number(v, 4))})
    show.index.name = None
    return show


def ordinal_summary_text(m) -> str:
    """``clmm``'s summary layout: header line, random effects, coefficients, thresholds."""
    eig = m.opt.hessian_eigenvalues
    cond = float(eig.max() / eig.min()) if eig is not None and eig.size and eig.min() > 0 else np.nan
    grad = m.opt.gradient
    head = pd.DataFrame([[m.link, "flexible", m.nobs, f"{m.loglik:.2f}", f"{m.aic:.2f}",
                          f"{m.opt.iterations}({m.opt.evaluations})",
                          format_number(float(np.max(np.abs(grad))) if grad is not None and grad.size else np.nan, 3),
                          format_number(cond, 2)]],
                        columns=["link", "threshold", "nobs", "logLik", "AIC", "niter", "max.grad", "cond.H"])
    lines = [title(m), "", f"formula: {m.formula}"]
    if m.n_dropped:
        lines.append(f"  ({m.n_dropped} rows with missing values dropped)")
    lines += ["", head.to_string(index=False), "", "Random effects:", random_effects_display(m).to_string(index=False)]
    lines.append("Number of groups:  " + ", ".join(f"{g} {n}" for g, n in m.ngroups.items()))
    lines += ["", "Coefficients:", fixed_effects_display(m).to_string() if len(m.fixef) else "(none)"]
    lines += ["", "Threshold coefficients:", threshold_display(m).to_string()]
    for msg in m.messages:
        lines += ["", msg]
    return "\n".join(lines)


def summary_text(m) -> str:
    """Text summary in the spirit of lme4's ``summary()`` (``clmm``'s for ordinal models)."""
    fam = m.request.family
    if fam.ordinal:
        return ordinal_summary_text(m)
    lines = [title(m)]
    if not fam.profiled_lmm:
        lines.append(f" Family: {m.family}  ( {m.link} )")
    lines.append(f"Formula: {m.formula}")
    if m.n_dropped:
        lines.append(f"  ({m.n_dropped} rows with missing values dropped)")
    lines += ["", criteria_display(m), "", "Random effects:", random_effects_display(m).to_string(index=False)]
    groups = ", ".join(f"{g}, {n}" for g, n in m.ngroups.items())
    lines.append(f"Number of obs: {m.nobs}, groups:  {groups}")
    lines += dispersion_lines(m)
    fe = fixed_effects_display(m)
    lines += ["", "Fixed effects:", fe.to_string()]
    ddf = m.coef_table().attrs.get("ddf")
    if "df" in fe.columns and ddf:
        lines.append(f"(t tests with {ddf} degrees of freedom)")
    elif fam.profiled_lmm:
        lines.append("(p-values: Wald z, normal approximation)")
    if len(m.zi_fixef):
        what = "Zero part (hurdle: log-odds of a zero)" if fam.hurdle else "Zero-inflation model (log-odds of a structural zero)"
        lines += ["", f"{what}: {m.spec.zi_formula}", fixed_effects_display(m, "zi").to_string()]
    if len(m.disp_fixef):
        lines += ["", f"Dispersion model ({fam.disp_scale_text}): {m.spec.disp_formula}",
                  fixed_effects_display(m, "disp").to_string()]
    for msg in m.messages:
        lines += ["", msg]
    return "\n".join(lines)


def _html_table(frame: pd.DataFrame, titles: pd.DataFrame | None = None, index: bool = True) -> str:
    """A small HTML table of already formatted strings; ``titles`` (same shape) become
    ``title`` attributes (the exact value behind a rounded one)."""
    head = ("<th></th>" if index else "") + "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, (name, row) in enumerate(frame.iterrows()):
        cells = []
        for j, v in enumerate(row):
            t = "" if titles is None else str(titles.iat[i, j])
            attr = f' title="{html.escape(t)}"' if t else ""
            cells.append(f"<td{attr}>{html.escape(str(v))}</td>")
        lead = f"<th>{html.escape(str(name))}</th>" if index else ""
        rows.append(f"<tr>{lead}{''.join(cells)}</tr>")
    return f'<table class="glmm"><tr>{head}</tr>{"".join(rows)}</table>'


def coefficient_html(m, part: str = "cond") -> str:
    """The coefficient table for notebooks: formatted like the text summary, the exact
    p-value in each p cell's title."""
    ct = m.coef_table() if part == "cond" else m.coef_table(part=part)
    show = fixed_effects_display(m, part)
    titles = pd.DataFrame("", index=show.index, columns=show.columns)
    titles[show.columns[-1]] = [f"p = {p:.3g}" for p in ct.p_value]
    return _html_table(show, titles)


def summary_html(m) -> str:
    """The notebook view: the header, the variance components and the coefficient table."""
    msgs = "".join(f"<p><b>Note:</b> {html.escape(x)}</p>" for x in m.messages)
    zi = (f"<p>Zero part {html.escape(str(m.spec.zi_formula))}</p>{coefficient_html(m, 'zi')}"
          if len(m.zi_fixef) else "")
    if len(m.disp_fixef):
        zi += f"<p>Dispersion model {html.escape(str(m.spec.disp_formula))}</p>{coefficient_html(m, 'disp')}"
    return (
        f"<div><p><b>{html.escape(title(m))}</b><br>Formula: "
        f"<code>{html.escape(m.formula)}</code><br>"
        f"family {html.escape(m.family)} ({html.escape(m.link)}), "
        f"nobs {m.nobs}, logLik {m.loglik:.3f}, AIC {m.aic:.2f}"
        + "".join(f"<br>{html.escape(x)}" for x in dispersion_lines(m)) + "</p>"
        f"<p>Random effects</p>{_html_table(random_effects_display(m), index=False)}"
        f"<p>Fixed effects</p>{coefficient_html(m)}{zi}"
        + (f"<p>Threshold coefficients</p>{coefficient_html(m, 'thresholds')}" if len(m.thresholds) else "")
        + f"{msgs}</div>"
    )
