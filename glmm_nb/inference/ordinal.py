r"""Predictions and the proportional-odds check of an ordinal (cumulative-link) mixed model.

Category probabilities :math:`P(Y = k) = F(\alpha_k - \eta) - F(\alpha_{k-1} - \eta)`, with

* ``re="conditional"``: :math:`\eta` at the clusters' conditional modes (levels not seen in the
  fit: random effects 0, flagged);
* ``re="none"``: random effects 0 — a *typical* cluster (new data need only the fixed part's
  columns);
* ``re="marginal"``: population-averaged, :math:`E_b[P(Y = k \mid \eta + z'b)]` with
  :math:`z'b \sim N(0, v_i)`, :math:`v_i = \sum_k z_{ik}'\Sigma_k z_{ik}` (40-point
  Gauss-Hermite). Averaging flattens the probabilities: a typical cluster is not the average
  cluster.

Proportional odds. The model assumes one coefficient per covariate for every split
:math:`Y \le k` vs :math:`Y > k`. :func:`nominal_test` checks it as ``ordinal::nominal_test``
does: each term of the fixed part in turn is given *nominal* effects — its own coefficient per
threshold, the thresholds becoming :math:`\alpha_k + x'\gamma_k` — and the two fits (random
effects included, Laplace) are compared by a likelihood-ratio test on :math:`r(K-2)` degrees
of freedom (r the term's columns). The nominal fit starts at the proportional-odds optimum
(:math:`\gamma_k = -\beta` for every k reproduces it exactly).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from ..design import as_frame
from ..errors import ModelError
from ..families.cumulative import marginal_category_probs
from ..likelihood import OrdinalLaplaceDevfun
from ..optimize import minimize_devfun
from .simulate import design_of, fill_groups, fixed_part, linear_predictor, re_row_variance

__all__ = ["ORDINAL_TYPES", "predict_ordinal", "category_probabilities", "nominal_terms", "nominal_test"]

ORDINAL_TYPES = ("prob", "cum_prob", "class", "link")


def category_probabilities(m, newdata: pd.DataFrame | None = None, re: str = "conditional") -> tuple[np.ndarray, pd.Index]:
    """(n, K) category probabilities and the row index (module docstring for ``re``)."""
    if re not in ("conditional", "none", "marginal"):
        raise ModelError(f"re must be 'conditional', 'none' or 'marginal', not {re!r}")
    newdata = None if newdata is None else as_frame(newdata, "newdata")
    fam = m.fitted_family
    beta = m.fixef.to_numpy()
    index = m.spec.row_index if newdata is None else newdata.index
    if re == "none" and newdata is not None:
        X, off = fixed_part(m, newdata)
        return fam.category_probs(X @ beta + off), index
    d = design_of(m, fill_groups(m, newdata) if re == "marginal" else newdata)
    eta = linear_predictor(m, d, "conditional" if re == "conditional" else "none")
    if re != "marginal":
        return fam.category_probs(eta), index
    covs = [m.covariance_matrices()[t.label].to_numpy() for t in m.spec.terms]
    v = re_row_variance(d.Zvals, covs)
    return marginal_category_probs(eta, m.thresholds.to_numpy(), fam.cumulative_link, v), index


def predict_ordinal(m, newdata: pd.DataFrame | None = None, type: str = "prob", re: str = "conditional"):
    """Predictions of an ordinal model.

    Parameters
    ----------
    type : {"prob", "cum_prob", "class", "link"}
        ``prob``: a DataFrame with one column per category (rows sum to 1); ``cum_prob``:
        P(Y ≤ k), one column per threshold (``"<=1"``, …); ``class``: the most probable
        category (an ordered Categorical Series); ``link``: the linear predictor x'β (+ z'b)
        (thresholds excluded; not for ``re="marginal"``).
    re : {"conditional", "none", "marginal"}
        See the module docstring.
    """
    if type not in ORDINAL_TYPES:
        raise ModelError(f"type={type!r} is not for an ordinal model, which predicts category probabilities: use "
                         "type='prob' (one column per category), 'cum_prob', 'class' or 'link'")
    newdata = None if newdata is None else as_frame(newdata, "newdata")
    levels = list(m.levels)
    if type == "link":
        if re == "marginal":
            raise ModelError("an ordinal model has no population-averaged linear predictor; use type='prob'")
        if re == "none" and newdata is not None:
            X, off = fixed_part(m, newdata)
            return X @ m.fixef.to_numpy() + off
        return linear_predictor(m, design_of(m, newdata), re)
    P, index = category_probabilities(m, newdata, re)
    if type == "prob":
        out = pd.DataFrame(P, index=index, columns=levels)
    elif type == "cum_prob":
        out = pd.DataFrame(np.cumsum(P, axis=1)[:, :-1], index=index, columns=[f"<={lv}" for lv in levels[:-1]])
    else:
        cat = pd.Categorical.from_codes(np.argmax(P, axis=1), categories=levels, ordered=True)
        return pd.Series(cat, index=index, name="class")
    out.columns.name = "category"
    return out


# ------------------------------------------------------------------------ proportional odds
def nominal_terms(m) -> list[tuple[str, list[str], bool]]:
    """(term, its X columns, testable) per term of the fixed part; a term inside an
    interaction is not testable on its own (as in ``ordinal::nominal_test``)."""
    fs = m.spec.fixed_spec
    names = list(m.spec.x_names)
    out = []
    terms = [t for t in fs.term_slices if [str(f) for f in t.factors] != ["1"]]
    factor_sets = {t: {str(f) for f in t.factors} for t in terms}
    for t in terms:
        cols = ["(Intercept)" if c == "Intercept" else str(c) for c in fs.column_names[fs.term_slices[t]]]
        cols = [c for c in cols if c in names]
        inside = any(factor_sets[t] < factor_sets[o] for o in terms if o is not t)
        out.append((str(t), cols, bool(cols) and len(factor_sets[t]) == 1 and not inside))
    return out


def _nominal_fit(m, cols: list[str]) -> tuple[float, int, bool]:
    """Max Laplace log-likelihood with ``cols`` moved from the location to nominal effects."""
    spec, fam = m.spec, m.request.family
    names = list(spec.x_names)
    idx = [names.index(c) for c in cols]
    keep = [j for j in range(len(names)) if j not in idx]
    X = np.asarray(spec.X, dtype=float)
    spec2 = dataclasses.replace(spec, X=np.ascontiguousarray(X[:, keep]), x_names=tuple(names[j] for j in keep))
    dev = OrdinalLaplaceDevfun(spec2, fam, nominal=X[:, idx])
    K1 = len(m.thresholds)
    beta = m.fixef.to_numpy()
    gamma0 = np.repeat(-beta[idx][:, None], K1, axis=1)  # reproduces the proportional-odds fit
    start = dev.join(m.theta, beta[keep], fam.tau(m.thresholds.to_numpy()), gamma0)
    sd = np.r_[X[:, keep].std(axis=0), np.repeat(X[:, idx].std(axis=0), K1)]
    scale = np.concatenate([np.ones(spec.ntheta), np.where(sd[: len(keep)] > 0, sd[: len(keep)], 1.0),
                            np.ones(K1), np.where(sd[len(keep):] > 0, sd[len(keep):], 1.0)])
    # Thresholds that cross on some row make the deviance infinite, and a line search that meets
    # an infinite value stalls. L-BFGS-B's first step has unit length on the optimizer's scale:
    # shrink it (a larger scale), and restart with smaller first steps until the gradient is flat.
    x, conv = start, False
    with threadpool_limits(limits=1, user_api="blas"):  # small dense blocks, as in the fit
        for damp in (10.0, 100.0, 1000.0):
            opt = minimize_devfun(dev.value_and_grad, x, dev.lower(), scale=damp * scale, label="L-BFGS-B (nominal)")
            x = opt.final
            g = dev.value_and_grad(x)[1]
            free = ~((dev.lower() > -np.inf) & (x - np.where(np.isfinite(dev.lower()), dev.lower(), 0) < 1e-8) & (g > 0))
            conv = bool(np.max(np.abs(g[free]), initial=0.0) < 1e-3)
            if conv:
                break
    return -opt.objective / 2.0, len(idx) * (K1 - 1), conv


def nominal_test(m, terms: list[str] | None = None) -> pd.DataFrame:
    """Likelihood-ratio tests of the proportional-odds assumption, one fixed-part term at a time.

    Returns a table indexed by term (first row ``<none>``: the fitted model) with ``npar``
    (parameters), ``loglik``, ``aic``, ``lrt`` (2 × the log-likelihood gain of the nominal fit),
    ``df``, ``p_value`` (χ²) and ``converged`` (the nominal fit's gradient is flat; a nominal fit
    that runs to a boundary — a category empty at some covariate values — may not be). A small p-value says the term's effect differs between the
    cumulative splits (the proportional-odds assumption fails for it). Laplace fits throughout
    (an AGQ model is compared through its Laplace refit). Terms inside an interaction are not
    tested (NaN), as in ``ordinal::nominal_test``.
    """
    if not m.request.family.ordinal:
        raise ModelError("the proportional-odds check is for ordinal models (family='ordinal')")
    base = m
    if m.request.uses_agq:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = m.refit(method="laplace", nagq=1)
    rows = [("<none>", base.npar, base.loglik, base.aic, np.nan, np.nan, np.nan, bool(base.converged))]
    available = nominal_terms(base)
    if terms is not None:
        known = [t for t, _c, _ok in available]
        unknown = [t for t in terms if t not in known]
        if unknown:
            raise ModelError(f"unknown term(s) {', '.join(map(repr, unknown))}; the fixed part has {', '.join(known)}")
        available = [a for a in available if a[0] in terms]
    for term, cols, ok in available:
        if not ok:
            rows.append((term, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, False))
            continue
        ll, extra, conv = _nominal_fit(base, cols)
        lrt = max(2.0 * (ll - base.loglik), 0.0)
        npar = base.npar + extra
        rows.append((term, npar, ll, -2 * ll + 2 * npar, lrt, extra, float(stats.chi2.sf(lrt, extra)), conv))
    out = pd.DataFrame(rows, columns=["term", "npar", "loglik", "aic", "lrt", "df", "p_value", "converged"])
    out = out.set_index("term")
    out.attrs["method"] = "Laplace"
    return out
