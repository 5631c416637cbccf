r"""Likelihood-ratio tests of nested models (lme4's ``anova(m0, m1)``).

When the larger model adds variances, their null value 0 sits on the boundary of the parameter
space and the LR statistic is not chi-square(df). Only a new *variance* is on the boundary: an
added correlation (``(x || g)`` → ``(x | g)``) or covariance is interior, and adding only those
is an ordinary chi-square(df) test — as is a nested covariance structure on the same columns
(ar1 ⊂ toep ⊂ us, cs ⊂ us, diag ⊂ us), whose null is interior. With k new variances and df parameters added in all, the
null distribution is the chi-bar-square mixture

.. math:: \sum_{j=0}^{k} \binom{k}{j} 2^{-k}\, \chi^2_{df-k+j}

(:math:`\chi^2_0` the point mass at 0): for k = 1 the 50:50 mixture of chi-square(df-1) and
chi-square(df) (Self & Liang 1987, case 5; Stram & Lee 1994 for a new random effect with its
covariances); for k = 2 the 1/4 : 1/2 : 1/4 mixture (Self & Liang case 6), exact when the new
variances belong to separate terms (their information is then asymptotically orthogonal) and
approximate for two new variances of one correlated term. Both p-values are shown; ``test``
says which applies. The zero part's random-effect terms (``ziformula="~ x + (1 | g)"``) count as
terms of their own (a new zero-part variance is on its boundary too), and a model with a zero
part is labelled with it (``y ~ x + (1 | g), zi ~ x``).
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelError, warn
from ..pipeline import refit
from ..results import GLMMResult
from .type3 import anova_type3

__all__ = ["anova"]


def _same_data(a, b) -> bool:
    sa, sb = a.spec, b.spec
    return (
        sa.nobs == sb.nobs
        and np.array_equal(np.asarray(sa.y), np.asarray(sb.y))
        and np.array_equal(np.asarray(sa.weights), np.asarray(sb.weights))
        and sa.row_index.equals(sb.row_index)
    )


ZI = "zi:"  # the zero part's grouping factors, as varcorr() names them


def _keyed_terms(m) -> list:
    """(key, term) for the count part's terms (key: the grouping factor) and the zero part's
    (key ``zi:`` + the grouping factor)."""
    return [(t.group, t) for t in m.spec.terms] + [(ZI + t.group, t) for t in m.spec.zi_terms]


def _re_map(m) -> dict:
    out: dict = {}
    for key, t in _keyed_terms(m):
        out.setdefault(key, set()).update(t.col_names)
    return out


def model_label(m) -> str:
    """The model's formula, with its zero part's when it has one."""
    return m.formula if not m.spec.zi_formula else f"{m.formula}, zi {m.spec.zi_formula}"


def _nested(small, big) -> str | None:
    """None if ``small`` is nested in ``big``; else the reason."""
    fs, fb = set(small.fixef.index), set(big.fixef.index)
    if not fs <= fb:
        return f"fixed effect(s) {', '.join(sorted(fs - fb))} of '{small.formula}' are not in '{big.formula}'"
    zs, zb = set(small.zi_fixef.index), set(big.zi_fixef.index)
    if zs and not zs <= zb:
        return (f"the zero part's coefficient(s) {', '.join(sorted(zs - zb))} of '{model_label(small)}' are not in "
                f"'{model_label(big)}'")
    rs, rb = _re_map(small), _re_map(big)
    for g, cols in rs.items():
        if g not in rb or not cols <= rb[g]:
            return f"the random effects on '{g}' of '{model_label(small)}' are not contained in '{model_label(big)}'"
    return None


def new_variances(small, big) -> tuple[int, bool]:
    """(number of variances ``big`` adds to ``small``, whether they sit in separate terms — the
    case where the binomial chi-bar-square weights are exact); the zero part's terms included."""
    rs = _re_map(small)
    k, separate = 0, True
    for key, t in _keyed_terms(big):
        new = [c for c in t.col_names if c not in rs.get(key, set())]
        k += len(new)
        if len(new) > 1 and t.q > 1:
            separate = False
    return k, separate


def mixture_sf(chisq: float, df: int, k: int) -> float:
    """P(LR > chisq) under the chi-bar-square mixture of k new variances among df parameters."""
    from math import comb

    p = 0.0
    for j in range(k + 1):
        d = df - k + j
        sf = stats.chi2.sf(chisq, d) if d > 0 else float(chisq <= 0)
        p += comb(k, j) * 0.5**k * sf
    return float(p)


def family_boundary(small, big) -> tuple[bool, int, str]:
    """Whether ``small``'s family is ``big``'s with parameters at their boundary, how many, and
    which: the NB dispersion at its Poisson limit; a zero part whose structural-zero probability
    is 0 (zero-inflated ⊃ its count family, when the zero part is a constant — with covariates
    in the zero part the null is irregular and the chi-square p-value only conservative)."""
    fs, fb = small.request.family, big.request.family
    if fs == fb:
        return True, 0, ""
    if fb.nests(fs):
        return True, 1, f"{big.family} at its {small.family} limit ({fb.limit_text or 'a boundary'})"
    zs, zb = fs.has_zero_part, fb.has_zero_part
    if zb and not zs and not fb.hurdle:
        base = fb.base
        if base == fs or base.nests(fs):
            k = 1 + (base != fs)
            what = "the zero part's structural-zero probability at 0" + (
                "" if base == fs else f" and {base.name} at its {fs.name} limit ({base.limit_text})")
            irregular = big.spec.zi_formula.replace(" ", "") != "~1"
            return True, (0 if irregular else k), what + (
                " (a zero part with covariates: its null is irregular, p_value is conservative)" if irregular else "")
    if zb and zs and not fb.hurdle and not fs.hurdle and fb.base.nests(fs.base) \
            and (small.spec.zi_formula or "").replace(" ", "") == (big.spec.zi_formula or "").replace(" ", ""):
        return True, 1, f"{fb.base.name} at its {fs.base.name} limit ({fb.base.limit_text})"
    return False, 0, ""


def anova(*models, ddf: str | None = None) -> pd.DataFrame:
    """LR tests of nested models fitted to the same data; one row per model, by size.

    With one model: type III tests of its fixed-effect terms (F tests with ``ddf`` —
    Satterthwaite by default — for an LMM, Wald chi-square otherwise); see
    :func:`glmm_nb.inference.anova_type3`.

    REML fits whose fixed effects differ are refitted by ML first (as lme4 does), with a
    warning and ``attrs["note"]`` saying so.
    """
    if len(models) == 1 and isinstance(models[0], GLMMResult):
        return anova_type3(models[0], ddf=ddf)
    if len(models) < 2:
        raise ModelError("anova needs a fitted model (type III tests) or several nested ones (LR tests)")
    for k, m in enumerate(models):
        if not isinstance(m, GLMMResult):
            raise ModelError(f"argument {k + 1} is a {type(m).__name__}, not a fitted glmm")
    ms = sorted(models, key=lambda m: m.npar)
    for a, b in zip(ms, ms[1:]):
        if not _same_data(a, b):
            raise ModelError(
                f"'{a.formula}' and '{b.formula}' were fitted to different data "
                f"({a.nobs} vs {b.nobs} observations, or different responses)"
            )
        if not family_boundary(a, b)[0]:
            raise ModelError(f"the models differ in family/link ({a.family}/{a.link} vs {b.family}/{b.link}) and "
                             "neither is the other at a boundary (Poisson ⊂ NB, a count family ⊂ its zero-inflated "
                             "version): compare them by AIC")
        why = _nested(a, b)
        if why:
            raise ModelError(f"the models are not nested: {why}")
    note = ""
    if any(m.reml for m in ms) and len({frozenset(m.fixef.index) for m in ms}) > 1:
        # REML likelihoods of different fixed effects are not comparable: lme4 refits by ML
        ms = [refit(m, reml=False) if m.reml else m for m in ms]
        note = "refitted the REML model(s) by maximum likelihood (reml=False) to compare fixed effects"
        warn(note, UserWarning)
    rows = []
    prev = None
    for m in ms:
        row = {"model": model_label(m), "npar": m.npar, "aic": m.aic, "bic": m.bic, "loglik": m.loglik,
               "deviance": -2 * m.loglik, "chisq": np.nan, "df": np.nan, "p_value": np.nan,
               "p_value_boundary": np.nan, "test": ""}
        if prev is not None:
            chisq = max(2 * (m.loglik - prev.loglik), 0.0)
            df = m.npar - prev.npar
            row.update(chisq=chisq, df=df, p_value=stats.chi2.sf(chisq, df) if df > 0 else np.nan)
            added = len(m.theta) - len(prev.theta)
            nested, kb, what = family_boundary(prev, m)
            if what:
                # a family parameter on its boundary (NB dispersion at the Poisson limit, zero probability 0)
                if kb and df >= kb:
                    row["p_value_boundary"] = mixture_sf(chisq, df, kb)
                    row["test"] = (f"chi-bar-square ({what} — {kb} parameter(s) on the boundary; Self & Liang "
                                   "1987): use p_value_boundary")
                else:
                    row["test"] = f"chi-square ({what}): use p_value"
                rows.append(row)
                prev = m
                continue
            k, separate = new_variances(prev, m)
            if k > 0 and df >= k:
                row["p_value_boundary"] = mixture_sf(chisq, df, k)
                if k == 1:
                    row["test"] = ("chi-bar-square 50:50 of chi-square(df-1) and chi-square(df) (one new variance on "
                                   "its boundary; Self & Liang 1987, Stram & Lee 1994): use p_value_boundary")
                else:
                    row["test"] = (f"chi-bar-square with weights C({k},j)/2^{k} ({k} new variances on their boundary; "
                                   "Self & Liang 1987): use p_value_boundary"
                                   + ("" if separate else " — approximate: the new variances share a correlated "
                                      "term; p_value is conservative"))
            elif added > 0 and any(t.structured for t in (*prev.spec.terms, *m.spec.terms)):
                row["test"] = ("chi-square: the smaller covariance structure is interior to the larger (ar1 ⊂ toep "
                               "⊂ us, cs ⊂ us, diag ⊂ us: equalities among SDs and correlations, none on a "
                               "boundary): use p_value")
            elif added > 0:
                row["test"] = ("chi-square: only correlations/covariances are added, which are not on a boundary: "
                               "use p_value")
            else:
                row["test"] = "chi-square (no variance parameter on its boundary): use p_value"
        rows.append(row)
        prev = m
    out = pd.DataFrame(rows).set_index("model")
    out.attrs["note"] = note
    return out
