"""``confint``: Wald, profile-likelihood or parametric-bootstrap intervals in one table.

Profile intervals of a REML fit are computed as lme4 computes them: on the ML deviance (the
model refitted with ``reml=False``; lme4 issues #325, #838), with a warning and
``attrs["note"]`` saying so. A binomial fit with separation has no finite profile limits for
the separated coefficients; it is refused at once, naming them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design import check_choice, check_int, check_level
from ..errors import ModelError
from .params import clip_sdcor_limits, sdcor_names, zi_sdcor_names

__all__ = ["confint"]


def confint(m, method: str = "profile", level: float = 0.95, nsim: int = 500, seed=None,
            n_jobs: int = 1) -> pd.DataFrame:
    """Intervals for the random-effect SDs/correlations (``sd__…``, ``cor__…``, ``sigma``) and
    the fixed effects (ordinal models: and the thresholds ``1|2`` …), indexed by term with
    columns ``conf_low conf_high``.

    ``wald`` intervals for the random-effect parameters come from the curvature of the
    deviance on the SD/correlation scale (clipped to [0, ∞) and [-1, 1]); they are NaN for a
    parameter on its boundary. A structured term's parameters (``sd__ar1|g``, ``rho__ar1|g``,
    ``range__exp|g`` …, :func:`~glmm_nb.inference.params.sdcor_names`) take theirs from
    :meth:`~glmm_nb.results.GLMMResult.structure_table` (log scale for SDs, rates and ranges,
    Fisher's z for correlations, mapped back). The unstructured ones are symmetric and can be poor
    for small SDs — lme4 does not give them at all; prefer ``profile`` or ``bootstrap`` for variance
    parameters. A Toeplitz term's ``rho1__toep|g``, ``rho2__toep|g`` … are profiled as the lag
    correlations themselves (glmmTMB's parameters), the others re-optimized subject to positive
    definiteness. A gaussian profile along which the residual SD runs to 0 continues with it at its
    floor (standing for 0). A limit the profile does not reach is the parameter's bound when the
    profile stays below the cut-off as far as the bound (an SD or sigma at 0, a correlation at ±1)
    and ±inf when it levels off (an ou rate or a spatial range whose likelihood flattens out); both
    are said in ``attrs["note"]``.

    Random effects in the zero part: their SDs/correlations are rows ``zi~sd__(Intercept)|g``
    (…), last, by all three methods (glmmTMB's Wald interval of an SD is on the log scale,
    exp(log SD ∓ z se); ours is symmetric on the SD scale with the same se(SD) = SD se(log SD)).
    """
    check_level(level)
    check_choice(method, "method", ("wald", "profile", "bootstrap"))
    note = ""
    if method == "wald":
        ct = m.coef_table(conf_level=level)[["conf_low", "conf_high"]]
        re = _wald_re(m, level)
        zi_re = zi_sdcor_names(m.spec)
        out = pd.concat([re.drop(index=zi_re), ct, _wald_dispersion(m, level), _wald_zero_part(m, level),
                         _wald_zero_part(m, level, "disp"), _wald_thresholds(m, level), re.loc[zi_re]])
    elif method == "profile":
        from .profile import profile_confint

        out = profile_confint(m, level=level)
        note = out.attrs.get("note", "")
    elif method == "bootstrap":
        from .bootstrap import bootstrap

        check_int(nsim, "nsim", minimum=1)
        out = bootstrap(m, nsim=nsim, seed=seed, n_jobs=n_jobs).confint(level)
        re_names = sdcor_names(m.spec, m.request.family.profiled_lmm)
        out = out.loc[re_names + list(m.fixef.index) + list(m.dispersion.index) + [f"zi~{c}" for c in m.zi_fixef.index]
                      + [f"disp~{c}" for c in m.disp_fixef.index] + list(m.thresholds.index)
                      + zi_sdcor_names(m.spec)]
    else:
        raise ModelError(f"method must be 'wald', 'profile' or 'bootstrap', not {method!r}")
    out.index.name = "term"
    out.attrs["note"] = note
    return out


def _wald_dispersion(m, level: float) -> pd.DataFrame:
    """Wald intervals of the family parameters on the optimizer's scale, back-transformed."""
    from scipy import stats

    if not len(m.dispersion):
        return pd.DataFrame(columns=["conf_low", "conf_high"], dtype=float)
    z = stats.norm.ppf(0.5 + level / 2)
    se = np.asarray(m.dispersion.attrs.get("std_error_log", [np.nan] * len(m.dispersion)), dtype=float)
    fam = m.request.family  # each parameter on the optimizer's scale (log; Tweedie power: logit(p - 1))
    x = np.array([fam.from_dispersion(float(d), k) for k, d in enumerate(m.dispersion)])
    ends = [[fam.to_dispersion(v, k) for k, v in enumerate(x + sgn * z * se)] for sgn in (-1, 1)]
    return pd.DataFrame({"conf_low": ends[0], "conf_high": ends[1]}, index=m.dispersion.index)


def _wald_zero_part(m, level: float, part: str = "zi") -> pd.DataFrame:
    """Wald intervals of the zero part's (or the dispersion model's) coefficients, named
    ``zi~term`` (``disp~term``)."""
    if not len(m.zi_fixef if part == "zi" else m.disp_fixef):
        return pd.DataFrame(columns=["conf_low", "conf_high"], dtype=float)
    zt = m.coef_table(conf_level=level, part=part)[["conf_low", "conf_high"]]
    zt.index = [f"{part}~{c}" for c in zt.index]
    return zt


def _wald_thresholds(m, level: float) -> pd.DataFrame:
    """Wald intervals of an ordinal model's thresholds (on their own scale, as clm's confint)."""
    if not len(m.thresholds):
        return pd.DataFrame(columns=["conf_low", "conf_high"], dtype=float)
    return m.coef_table(conf_level=level, part="thresholds")[["conf_low", "conf_high"]]


def _wald_re(m, level: float) -> pd.DataFrame:
    """Wald rows of the random-effect parameters (the zero part's last): structured terms' from
    structure_table(), the rest from the deviance's curvature on the SD/correlation scale."""
    names = sdcor_names(m.spec, m.request.family.profiled_lmm) + zi_sdcor_names(m.spec)
    out = pd.DataFrame(np.nan, index=names, columns=["conf_low", "conf_high"])
    if any(t.structured for t in m.spec.terms):
        st = _wald_structured(m, level)
        out.loc[st.index] = st.to_numpy()
        plain = [n for n in names if n not in st.index]
        if not plain:
            return out
        rest = _wald_re_curvature(m, level, names)
        out.loc[plain] = rest.loc[plain].to_numpy()
        return out
    return _wald_re_curvature(m, level, names)


def _wald_re_curvature(m, level: float, names: list[str]) -> pd.DataFrame:
    from scipy import stats

    from ..numdiff import fd_hessian, fd_hessian_fun
    from .profile import ProfileProblem

    out = pd.DataFrame(np.nan, index=names, columns=["conf_low", "conf_high"])
    prob = ProfileProblem(m)
    k, kz = len(prob.psi_hat), len(prob.zi_names)
    x = prob.x_hat
    psi = np.concatenate([prob.psi_hat, prob.zi_psi_hat])
    pos = np.r_[np.arange(k), np.arange(x.size - kz, x.size)]  # the SDs/correlations' places in x
    plain = [n[3:] if n in prob.zi_names else n for n in names]
    interior = np.array([not (n.startswith("sd__") and v < 1e-6) and not (n.startswith("cor__") and abs(v) > 1 - 1e-6)
                         for n, v in zip(plain, psi)])
    if not interior.all():
        return out
    if prob.gaussian or not prob.dev.analytic_gradient:
        H = fd_hessian_fun(prob.objective, x, h=1e-4)
    else:  # differences of the analytic gradient: differences of PIRLS deviances are noisy
        grad = lambda z: prob.objective_grad(z)[1]  # noqa: E731
        H = fd_hessian(grad, x, grad(x))
    try:
        V = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return out
    dv = np.diag(V)[pos]
    se = np.sqrt(np.where(dv > 0, dv, np.nan))
    z = stats.norm.ppf(0.5 + level / 2)
    out["conf_low"], out["conf_high"] = clip_sdcor_limits(plain, psi - z * se, psi + z * se)
    return out


def _wald_structured(m, level: float) -> pd.DataFrame:
    """The structured terms' rows of :meth:`structure_table`, under their :func:`sdcor_names`."""
    tab = m.structure_table(conf_level=level)
    rows = {}
    for t in m.spec.terms:
        if not t.structured:
            continue
        st = t.structure
        for (label, par), r in tab.loc[[t.label]].iterrows():
            if par == "rho_unit":  # a function of the rate (ou), not a coordinate of its own
                continue
            if par.startswith("sd") and par != "sd":
                key = f"sd__{t.col_names[int(par[2:]) - 1]}|{label}"
            else:
                key = f"{par}__{st.name}|{label}"
            rows[key] = (r["conf_low"], r["conf_high"])
    return pd.DataFrame.from_dict(rows, orient="index", columns=["conf_low", "conf_high"])


