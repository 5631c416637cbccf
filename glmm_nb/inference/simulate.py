r"""Linear predictors, predictions and simulated responses from a fitted model.

``re="conditional"`` uses the estimated random effects (conditional modes), zero for levels
not seen in the fit (flagged); ``re="none"`` sets every random effect to zero (a "typical
cluster"); ``re="marginal"`` integrates the inverse link over the fitted random-effect
distribution by Gauss-Hermite quadrature (population-averaged); ``re="new"`` (simulation only)
draws fresh random effects for every level.

Population-averaged means with random effects in the zero part. The count part's and the zero
part's random effects are independent (glmmTMB's model, :mod:`glmm_nb.likelihood.zire`: T is
block diagonal, u ~ N(0, I)), so with :math:`s_i = z_{zi,i}'b_{zi} \sim N(0, v^{zi}_i)` and
:math:`t_i = z_i'b \sim N(0, v_i)` independent, the mean :math:`(1 - \pi)\,h(\mu)` (zero-inflated
:math:`h(\mu) = \mu`, hurdle :math:`h(\mu) = \mu/(1 - f(0;\mu))`) integrates to

.. math:: E[(1 - \pi(\zeta_i + s_i))\,h(\mu(\eta_i + t_i))]
   = (1 - \bar\pi_i)\,E_t[h(\mu(\eta_i + t_i))], \qquad \bar\pi_i = E_s[\mathrm{expit}(\zeta_i + s_i)],

a product of two one-dimensional Gauss-Hermite integrals per row (40 nodes each). The
population-averaged structural-zero (hurdle: zero) probability is :math:`\bar\pi_i` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit, logit

from ..design import (as_frame, check_choice, check_int, check_seed, grouping_codes, new_disp_matrix, new_fixed_matrix,
                      new_zero_matrix, new_zero_re, numpy_dtypes)
from ..design.newdata import design_variables
from ..errors import DataError, ModelError

__all__ = ["Design", "design_of", "mean_at", "predict", "predict_design", "simulate", "marginal_zero_prob",
           "expit_normal_mean"]


@dataclass(frozen=True, eq=False)
class Design:
    X: np.ndarray
    offset: np.ndarray
    codes: tuple  # per term; -1 = level unseen in the fit
    Zvals: tuple
    own_codes: tuple  # per term: codes among the levels of this data (for new draws)
    own_nlev: tuple
    trials: np.ndarray
    zeta: np.ndarray | None = None  # the zero part's fixed linear predictor (zero-inflated/hurdle)
    zi_codes: tuple = ()  # per zero-part random-effect term: fitted level (-1 unseen), its columns,
    zi_Zvals: tuple = ()  # and the level among this data's own (new draws)
    zi_own: tuple = ()


def design_of(m, newdata: pd.DataFrame | None, krige: bool = False) -> Design:
    """The design of the fitted rows or of ``newdata`` (``krige``: new positions of a spatial term
    get their kriging weights — for predictions at the conditional modes, not for new draws)."""
    spec = m.spec
    if newdata is None:
        codes = tuple(np.asarray(t.codes) for t in spec.terms)
        trials = np.asarray(spec.weights)
        zc = tuple(np.asarray(t.codes) for t in spec.zi_terms)
        return Design(np.asarray(spec.X), np.asarray(spec.offset), codes,
                      tuple(np.asarray(t.Zvals) for t in spec.terms), codes,
                      tuple(t.nlevels for t in spec.terms), trials, zero_part(m, None),
                      zc, tuple(np.asarray(t.Zvals) for t in spec.zi_terms),
                      tuple((c, t.nlevels) for c, t in zip(zc, spec.zi_terms)))
    newdata = numpy_dtypes(as_frame(newdata, "newdata"))
    d = spec.design_for(newdata, theta=m.theta if krige else None)
    own, nlev = [], []
    for t in spec.terms:
        labels, c = grouping_codes(newdata, t.group_vars)
        own.append(c)
        nlev.append(len(labels))
    zc, zv = new_zero_re(spec, newdata) if spec.zi_terms else ((), ())
    zown = []
    for t in spec.zi_terms:
        labels, c = grouping_codes(newdata, t.group_vars)
        zown.append((c, len(labels)))
    return Design(d.X, d.offset, d.codes, d.Zvals, tuple(own), tuple(nlev), np.ones(len(newdata)),
                  zero_part(m, newdata), zc, zv, tuple(zown))


def fill_groups(m, newdata: pd.DataFrame | None) -> pd.DataFrame | None:
    """``newdata`` with each absent grouping column set to a fitted level, for population-averaged
    (``re="marginal"``) predictions, which integrate z'b out and read only Z: the group's value
    never matters there. A column that a fixed, slope or zero-part term also reads is left
    absent (and reported missing as before)."""
    if newdata is None:
        return None
    spec = m.spec
    read = set(spec.fixed_spec.variables_by_source.get("data", set()))
    if getattr(spec, "zi_fixed_spec", None) is not None:
        read |= set(spec.zi_fixed_spec.variables_by_source.get("data", set()))
    terms = tuple(spec.terms) + tuple(spec.zi_terms)
    for t in terms:
        read |= set(t.lhs_spec.variables_by_source.get("data", set()))
    fill = {g: spec.frame[g].iloc[0] for t in terms for g in t.group_vars
            if g not in newdata.columns and g not in read and g in spec.frame.columns}
    if not fill:
        return newdata
    return newdata.assign(**{g: pd.Series([v] * len(newdata), index=newdata.index, dtype=spec.frame[g].dtype)
                             for g, v in fill.items()})


def zero_part(m, newdata: pd.DataFrame | None) -> np.ndarray | None:
    """The zero part's linear predictor (logit of pi) for the fitted rows or new data (new data
    through :func:`glmm_nb.design.new_zero_matrix`: an unseen level is an error)."""
    spec = m.spec
    if spec.zi_X is None:
        return None
    Z = np.asarray(spec.zi_X) if newdata is None else new_zero_matrix(spec, newdata)
    return Z @ m.zi_fixef.to_numpy()


def zeta_at(m, d: Design, re: str) -> np.ndarray | None:
    """The zero part's linear predictor for ``re``: with random effects in the zero part, its
    conditional modes added for ``re="conditional"`` (0 for a level not seen in the fit); for
    ``re="marginal"`` the fixed part, which :func:`predict_design` integrates over
    (:func:`marginal_zero_prob`)."""
    if d.zeta is None or not m.spec.zi_terms or re in ("none", "marginal"):
        return d.zeta
    if re != "conditional":
        raise ModelError(f"re must be 'conditional', 'none' or 'marginal', not {re!r}")
    zeta = np.array(d.zeta, dtype=float)
    for b, codes, zv in zip(m.zi_mode_blocks(), d.zi_codes, d.zi_Zvals):
        known = codes >= 0
        zeta[known] += np.einsum("nq,nq->n", zv[known], b[codes[known]])
    return zeta


def _family_for(m, zeta):
    fam = m.fitted_family
    return fam.with_zeta(zeta) if fam.has_zero_part else fam


def _check_type(m, type: str) -> None:
    if m.request.family.ordinal and type != "link":
        raise ModelError(f"type={type!r} is not for an ordinal model, which predicts category probabilities: use "
                         "m.predict(type='prob') (one column per category), 'cum_prob', 'class' or 'link'")
    if type in ("conditional", "zero_prob") and not m.request.family.has_zero_part:
        raise ModelError(f"type={type!r} is for zero-inflated and hurdle models (fit with ziformula=)")
    check_choice(type, "type", ("link", "response", "conditional", "zero_prob") if m.request.family.has_zero_part
                 else ("link", "response"))


def _re_cov(m) -> list[np.ndarray]:
    return [m.covariance_matrices()[t.label].to_numpy() for t in m.spec.terms]


def _zi_re_cov(m) -> list[np.ndarray]:
    """The zero part's random-effect covariances T T' (its theta; no residual scale)."""
    Ts = [t.T(np.asarray(m.zi_theta)[sl]) for t, sl in zip(m.spec.zi_terms, m.spec.zi_theta_slices())]
    return [T @ T.T for T in Ts]


def expit_normal_mean(zeta: np.ndarray, v: np.ndarray) -> np.ndarray:
    """E[expit(zeta + s)], s ~ N(0, v), per row (40-point Gauss-Hermite; exact at v = 0)."""
    zeta = np.asarray(zeta, dtype=float)
    x, w = hermegauss(40)
    w = w / np.sqrt(2 * np.pi)
    return expit(zeta[..., None] + np.sqrt(np.asarray(v, dtype=float))[..., None] * x) @ w


def marginal_zero_prob(m, d: Design, zeta: np.ndarray | None = None, zi_covs=None) -> np.ndarray:
    """The population-averaged structural-zero (hurdle: zero) probability of the rows of ``d``:
    E over the zero part's random effects of expit(zeta + z_zi'b_zi) (``zeta``: the fixed part,
    default ``d.zeta``; ``zi_covs``: the zero part's covariances, default the fit's)."""
    zeta = d.zeta if zeta is None else zeta
    covs = _zi_re_cov(m) if zi_covs is None else zi_covs
    return expit_normal_mean(zeta, re_row_variance(d.zi_Zvals, covs) if covs else np.zeros(np.shape(zeta)))


def re_row_variance(zvals, covs) -> np.ndarray:
    """var(z_i'b) = sum_k z_ik' S_k z_ik for each row: the random-effect variance at the row's
    covariates (terms independent)."""
    v = 0.0
    for zv, S in zip(zvals, covs):
        v = v + np.einsum("na,ab,nb->n", np.asarray(zv), S, np.asarray(zv))
    return v


def linear_predictor(m, d: Design, re: str) -> np.ndarray:
    """x'beta + offset (+ z'b at the conditional modes for ``re="conditional"``; rows whose
    group is missing or new get b = 0 — :meth:`ModelSpec.design_for` warned about them)."""
    eta = d.X @ m.fixef.to_numpy() + d.offset
    if re in ("none", "marginal"):
        return eta
    if re != "conditional":
        raise ModelError(f"re must be 'conditional', 'none' or 'marginal', not {re!r}")
    for b, codes, zv in zip(m.mode_blocks(), d.codes, d.Zvals):
        known = codes >= 0
        contrib = np.zeros(len(codes))
        contrib[known] = np.einsum("nq,nq->n", zv[known], b[codes[known]])
        eta = eta + contrib
    return eta


def predict(m, newdata=None, type: str = "response", re: str = "conditional") -> np.ndarray:
    """Predictions (see the module docstring for ``re``).

    ``type``: ``"response"`` (the mean; for zero-inflated and hurdle models including the zero
    part), ``"link"``, ``"conditional"`` (the count part's mean) or ``"zero_prob"`` (the zero
    part's probability: of a structural zero, or of a zero for hurdle models). With
    ``re="none"`` new data need only the fixed parts' columns (no grouping columns).
    """
    _check_type(m, type)
    check_choice(re, "re", ("conditional", "none", "marginal"))
    if newdata is not None:
        newdata = as_frame(newdata, "newdata")
    if re == "none" and newdata is not None:
        X, off = fixed_part(m, newdata)
        return _respond(_family_for(m, zero_part(m, newdata)), X @ m.fixef.to_numpy() + off, type)
    if re == "marginal":
        newdata = fill_groups(m, newdata)
    return predict_design(m, design_of(m, newdata, krige=re == "conditional"), type=type, re=re)


def mean_at(m, d: Design, eta: np.ndarray) -> np.ndarray:
    """The response-scale mean at linear predictors ``eta`` for the rows of ``d`` (zero part
    included for zero-inflated and hurdle models)."""
    return _respond(_family_for(m, d.zeta), eta, "response")


def _respond(fam, eta, type: str):
    """The linear predictor on the scale asked for."""
    if type == "link":
        return eta
    if type == "zero_prob":
        return np.broadcast_to(fam.pi, np.shape(eta)).copy()
    mu = fam.link.inverse(eta)
    return mu if type == "conditional" else fam.mean(mu)


def fixed_part(m, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """X and the formula's offsets for new data, from the fixed part's columns only."""
    return new_fixed_matrix(m.spec, newdata)


def predict_design(m, d: Design, type: str = "response", re: str = "conditional") -> np.ndarray:
    """:func:`predict` on a design already built (reused across parameter draws)."""
    fam = _family_for(m, zeta_at(m, d, re))
    eta = linear_predictor(m, d, re)
    if fam.ordinal:
        _check_type(m, type)
    if fam.ordinal and re == "marginal":
        raise ModelError("an ordinal model has no population-averaged linear predictor; "
                         "use m.predict(type='prob', re='marginal')")
    if re == "marginal" and fam.has_zero_part and m.spec.zi_terms and type != "conditional":
        # (1 - pi) enters the mean linearly and independently of the count part's effects:
        # E_s[pi] in place of pi (module docstring)
        pbar = marginal_zero_prob(m, d)
        if type == "zero_prob":
            return pbar
        fam = fam.with_zeta(logit(pbar))
    if re != "marginal" or type == "zero_prob" or (fam.link.name == "identity" and not fam.has_zero_part):
        return _respond(fam, eta, type)
    # population-averaged: E_b[h(eta + z'b)], z'b ~ N(0, v_i) with v_i = sum_k z_ik' S_k z_ik and
    # h the mean function (with the zero part for "response")
    v = re_row_variance(d.Zvals, _re_cov(m))
    if fam.link.name == "inverse" and np.any(v > 0):
        raise ModelError(
            "the population-averaged mean does not exist for the inverse link: E_b[1/(eta + z'b)] has no finite "
            "value because the normal random effect puts probability on both sides of the pole at eta + z'b = 0 "
            "(quadrature would return a number that changes with the number of nodes); use re='none' (a typical "
            "cluster) or refit with link='log'")
    x, w = hermegauss(40)
    w = w / np.sqrt(2 * np.pi)
    nodes = eta[:, None] + np.sqrt(v)[:, None] * x[None, :]
    mu = fam.link.inverse(nodes)
    if type == "response":
        mu = fam.mean(mu)
    mu = mu @ w
    return fam.link.link(mu) if type == "link" else mu


def simulate(m, nsim: int = 1, seed=None, newdata=None, re: str = "new") -> np.ndarray:
    """Simulated responses, (n, nsim), on the family's count scale (binomial: successes).

    ``newdata`` must be complete (no missing value in a variable of the model); binomial
    simulation needs whole numbers of trials (the fit's weights), it never rounds them. At
    positions that an ou/exp/gau/mat term did not see, the random effect is drawn from the
    process given the fitted positions (:func:`kriging_draws`).
    """
    check_choice(re, "re", ("new", "conditional"))
    check_int(nsim, "nsim", minimum=1)
    seed = check_seed(seed)
    if newdata is not None:
        newdata = as_frame(newdata, "newdata")
        used = [v for v in design_variables(m.spec) if v in newdata.columns]
        na = newdata[used].isna().any(axis=0) if used else pd.Series(dtype=bool)
        if na.any():
            cols = [c for c in used if na[c]]
            raise DataError(
                f"newdata has missing values in {', '.join(map(repr, cols))} "
                f"({int(newdata[cols].isna().any(axis=1).sum())} row(s)); simulation needs complete rows — drop or "
                "fill them"
            )
    rng = np.random.default_rng(seed)
    d = design_of(m, newdata, krige=True)  # a new position's row of Z: its kriging weights
    zeta = zeta_at(m, d, "conditional" if re == "conditional" else "none")
    if m.spec.zi_terms and re == "new":  # fresh zero-part effects too, one draw per simulation
        zeta = np.repeat(zeta[:, None], nsim, axis=1)
        for t, sl, (codes, J), zv in zip(m.spec.zi_terms, m.spec.zi_theta_slices(), d.zi_own, d.zi_Zvals):
            T = t.T(m.zi_theta[sl])
            b = np.einsum("ab,jsb->jsa", T, rng.standard_normal((J, nsim, t.q)))
            zeta += np.einsum("nq,nsq->ns", zv, b[codes])
    fam = _family_for(m, zeta)
    if fam.has_disp_model and newdata is not None:  # each new row's own dispersion
        fam = fam.with_disp_design(new_disp_matrix(m.spec, newdata))
    n = d.X.shape[0]
    if fam.reads_cbind:
        t = np.asarray(d.trials, dtype=float)
        frac = np.abs(t - np.round(t)) > 1e-8
        if np.any(frac):
            raise ModelError(
                f"cannot simulate binomial responses with non-integer numbers of trials (e.g. {t[frac][0]:g}): "
                "the fit's weights are not trial counts; refit with whole-number weights"
            )
    if re == "conditional":
        eta = np.repeat(linear_predictor(m, d, "conditional")[:, None], nsim, axis=1)
    else:
        eta = np.repeat((d.X @ m.fixef.to_numpy() + d.offset)[:, None], nsim, axis=1)
        for S, codes, J, zv in zip(_re_cov(m), d.own_codes, d.own_nlev, d.Zvals):
            q = S.shape[0]
            L = np.linalg.cholesky(S + 1e-14 * np.eye(q)) if np.any(S) else np.zeros((q, q))
            b = np.einsum("ab,jsb->jsa", L, rng.standard_normal((J, nsim, q)))  # (J, nsim, q)
            eta += np.einsum("nq,nsq->ns", zv, b[codes])
    if newdata is not None:
        eta += kriging_draws(m, newdata, d, re, rng, nsim)
    return fam.simulate_from_eta(rng, eta, d.trials, m.sigma, (n, nsim))


def kriging_draws(m, newdata: pd.DataFrame, d: Design, re: str, rng, nsim: int) -> np.ndarray:
    r"""What a position term adds at positions the fit did not see, beyond its kriging mean
    :math:`w'b(S)` (already in the rows of Z): draws of :math:`e \sim N(0, K)` with K the joint
    conditional covariance of the new positions given the fitted ones
    (:meth:`~glmm_nb.design.covstruct.Structure.kriging_cov`), one vector per group and draw, so
    that :math:`w'b(S) + e` is exactly the process at the new positions. ``re="new"``: b(S) is a
    fresh draw, so the sum is a fresh draw of the whole process; ``re="conditional"``: b(S) is the
    conditional mode, for the groups of the fit (others keep b = 0, as their fitted positions)."""
    out = np.zeros((len(newdata), nsim))
    for k, (t, sl) in enumerate(zip(m.spec.terms, m.spec.theta_slices())):
        if not hasattr(t.lhs_spec, "unseen"):
            continue
        new, idx = t.lhs_spec.unseen(newdata, f"the term {t.text}")
        if not len(new):
            continue
        K = t.structure.kriging_cov(np.asarray(m.theta)[sl], new) * m.sigma**2
        w, V = np.linalg.eigh(K)
        F = V * np.sqrt(np.maximum(w, 0.0))
        codes, J = (d.own_codes[k], d.own_nlev[k]) if re == "new" else (d.codes[k], t.nlevels)
        e = np.einsum("ab,jsb->jsa", F, rng.standard_normal((J, nsim, len(new))))  # (J, nsim, m)
        rows = np.nonzero((idx >= 0) & (codes >= 0))[0]
        out[rows] = e[codes[rows], :, idx[rows]]
    return out
