r"""Predictions with delta-method standard errors and intervals.

``re="none"`` (random effects 0, a typical cluster): :math:`\hat\eta = x'\hat\beta + o`,
:math:`\mathrm{var}(\hat\eta) = x'Vx` with V the fixed-effect covariance (Kenward-Roger's
:math:`\Phi_A` when ``ddf="kenward-roger"``). The fixed-effect matrix is rebuilt from the fitted
formulaic spec alone, so ``newdata`` needs no grouping column.

``re="conditional"`` (the clusters' own random effects): the prediction error of
:math:`x'\hat\beta + \tilde z'\hat u` for :math:`x'\beta + \tilde z'u` (Henderson's mixed-model
equations; :math:`\tilde z = \Lambda'z`, :math:`M = I + \tilde Z'W\tilde Z`,
:math:`K = M^{-1}\tilde Z'WX`):

.. math::
   \mathrm{var} = (x - K'\tilde z)'\,V\,(x - K'\tilde z) + \sigma^2\,\tilde z'M^{-1}\tilde z,

with W the prior weights (LMM) or the PIRLS weights at the estimate (GLMM, :math:`\sigma = 1`).
Rows of levels not seen in the fit get :math:`\tilde z = 0` (the typical-cluster prediction).

On the response scale :math:`\mathrm{se}(\mu) = |d\mu/d\eta|\,\mathrm{se}(\eta)` and the interval
is the link-scale interval back-transformed. ``interval="prediction"`` (gaussian only) adds the
residual variance :math:`\sigma^2/w` of a new observation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from ..design import as_frame, check_choice, check_level, new_fixed_matrix, new_zero_matrix
from ..errors import ModelError
from ..likelihood import LaplaceDevfun, LmmDevfun
from .ddf import linear_inference, t_quantile
from .modelinfo import is_lmm, link_of

__all__ = ["fixed_design", "predict_interval", "zero_part_interval"]

CHUNK_ENTRIES = 4_000_000  # dense Q × rows block solved at once


def fixed_design(m, newdata: pd.DataFrame, offsets: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-effect matrix and formula offsets for ``newdata`` with the fit's encoding.

    Only the variables of the fixed part (and, with ``offsets``, of ``offset(...)`` terms) are
    needed; without ``offsets`` the returned offset is zero. See
    :func:`glmm_nb.design.new_fixed_matrix`.

    Raises
    ------
    DataError
        ``newdata`` is not a DataFrame or lacks a variable; a factor level unseen in the fit.
    """
    return new_fixed_matrix(m.spec, newdata, offsets=offsets)


def _conditional_parts(m, newdata):
    """(X, offset, Zt (n, s) values of Z~, global columns (n, s), kriging variance (n,)) for the
    rows (the kriging variance, relative to σ², of new positions of spatial terms; else 0)."""
    spec = m.spec
    theta = np.asarray(m.theta, dtype=float)
    Ts = [t.T(theta[sl]) for sl, t in zip(spec.theta_slices(), spec.terms)]
    offsets = np.cumsum([0] + [t.q * t.nlevels for t in spec.terms])
    if newdata is None:
        X, off = np.asarray(spec.X, dtype=float), np.asarray(spec.offset, dtype=float)
        codes = [np.asarray(t.codes) for t in spec.terms]
        zv = [np.asarray(t.Zvals, dtype=float) for t in spec.terms]
        kvar = np.zeros(len(X))
    else:
        d = spec.design_for(newdata, theta=theta)
        kvar = np.sum(d.krige_var, axis=0) if d.krige_var else np.zeros(len(d.X))
        X, off = np.asarray(d.X, dtype=float), np.asarray(d.offset, dtype=float)
        codes = [np.asarray(c) for c in d.codes]
        zv = [np.asarray(z, dtype=float) for z in d.Zvals]
    vals, cols = [], []
    for k, t in enumerate(spec.terms):
        known = codes[k] >= 0
        v = (zv[k] @ Ts[k]) * known[:, None]
        c = offsets[k] + np.where(known, codes[k], 0)[:, None] * t.q + np.arange(t.q)[None, :]
        vals.append(v)
        cols.append(c)
    return X, off, np.concatenate(vals, axis=1), np.concatenate(cols, axis=1), kvar


def _conditional_var(m, X, vals, cols) -> tuple[np.ndarray, np.ndarray]:
    r"""The pieces of the prediction-error variance of x'beta + z~'u for each row (see the module
    docstring): the rows :math:`x - K'\tilde z` that meet V, and :math:`\sigma^2\tilde z'M^{-1}\tilde z`."""
    spec = m.spec
    theta = np.asarray(m.theta, dtype=float)
    if is_lmm(m):
        dev = LmmDevfun(spec, reml=bool(m.reml))
        st = dev.state(theta)
        W, fvals, s2 = dev.w, st.vals, float(m.sigma) ** 2
    else:
        dev = LaplaceDevfun(spec, m.request.family)
        st = dev.state(np.asarray(m.opt.final, dtype=float))
        W, fvals, s2 = np.asarray(st.W, dtype=float), st.vals, 1.0
    rs = dev.rs
    fac = rs.factor(fvals, W)
    ZtWX = rs.tmult(fvals, W[:, None] * np.asarray(spec.X, dtype=float))  # (Q, p)
    n, Q = X.shape[0], rs.Q
    D, hs = np.empty_like(X, dtype=float), np.empty(n)
    step = max(1, CHUNK_ENTRIES // max(Q, 1))
    for a in range(0, n, step):  # blocks of rows, each solved at once
        b = min(n, a + step)
        Zt = np.zeros((Q, b - a))
        rows = np.repeat(np.arange(b - a)[:, None], cols.shape[1], axis=1)
        np.add.at(Zt, (cols[a:b].ravel(), rows.ravel()), vals[a:b].ravel())
        A = fac.solve(Zt)                                  # M^{-1} z~, (Q, rows)
        h = np.sum(Zt * A, axis=0)
        D[a:b] = X[a:b] - (ZtWX.T @ A).T                   # x - K'z~
        hs[a:b] = s2 * h
    return D, hs


def zero_part_interval(m, eta, D, re_part, Xz, type: str, q) -> pd.DataFrame:
    r"""Delta-method SEs and intervals of the mean with the zero part (``type="response"``) or of
    the zero part's probability (``"zero_prob"``) of a zero-inflated or hurdle fit.

    The mean :math:`h(\eta, \zeta, \psi)` (ZI :math:`(1-\pi)\mu`, hurdle
    :math:`(1-\pi)\mu/(1-f(0))`) is differentiated in η, ζ and the count part's log-dispersion ψ
    (central differences of the family's own mean); its variance is
    :math:`g'Vg + (\partial_\eta h)^2 r` with :math:`g = (\partial_\eta h\,d,\ \partial_\psi h,\
    \partial_\zeta h\,x_{zi})`, d the fixed-effect row (``x - K'z~`` for conditional predictions),
    V the joint covariance of (β, ψ, γ) and r the random-effect part of a conditional
    prediction. Intervals are taken on the log (response) or logit (zero_prob) scale and
    back-transformed.
    """
    fam = m.fitted_family
    spec = m.spec
    nth, p = len(m.theta), spec.p
    Vphi = m.extras.get("vcov_phi")
    k = p + len(m.dispersion) + len(m.zi_fixef)  # (beta, log dispersion, gamma); a dispersion model's delta
    # comes after gamma, and the zero-inflated mean (1 - pi) mu does not depend on it
    V = np.full((k, k), np.nan) if Vphi is None else np.asarray(Vphi, dtype=float)[nth:nth + k, nth:nth + k]
    zeta = Xz @ m.zi_fixef.to_numpy()
    psi = np.array([fam.from_dispersion(float(d)) for d in m.dispersion])
    nd = psi.size

    def h(e, z, ps=psi):
        f = fam.at_dispersion(fam.to_dispersion(float(ps[0]))) if nd else fam
        f = f.with_zeta(z)
        return f.pi if type == "zero_prob" else f.mean(f.link.inverse(e))

    def diff(fun, x):
        step = 1e-5 * (1.0 + np.abs(x))
        return (fun(x + step) - fun(x - step)) / (2 * step)

    fit = h(eta, zeta)
    d_eta = np.zeros_like(eta) if type == "zero_prob" else diff(lambda e: h(e, zeta), eta)
    d_zeta = diff(lambda z: h(eta, z), zeta)
    cols = [d_eta[:, None] * D]
    if nd:  # one count-part dispersion, shared by all rows
        step = 1e-5 * (1.0 + abs(psi[0]))
        cols.append(((h(eta, zeta, psi + step) - h(eta, zeta, psi - step)) / (2 * step))[:, None])
    cols.append(d_zeta[:, None] * Xz)
    G = np.concatenate(cols, axis=1)
    var = np.einsum("ia,ab,ib->i", G, V, G) + d_eta**2 * re_part
    se = np.sqrt(np.maximum(var, 0.0))
    if type == "zero_prob":  # logit scale: se(zeta) = se / (pi (1 - pi))
        s = se / np.maximum(fit * (1 - fit), 1e-300)
        lo, hi = special.expit(zeta - q * s), special.expit(zeta + q * s)
    else:  # log scale: se(log h) = se / h
        s = se / np.maximum(fit, 1e-300)
        lo, hi = fit * np.exp(-q * s), fit * np.exp(q * s)
    return pd.DataFrame({"fit": fit, "se_fit": se, "lower": lo, "upper": hi})


def predict_interval(m, newdata: pd.DataFrame | None = None, re: str = "none", type: str = "link",
                     interval: str = "confidence", level: float = 0.95, ddf: str | None = "asymptotic"
                     ) -> pd.DataFrame:
    """Predictions with delta-method standard errors and intervals.

    Parameters
    ----------
    m : GLMMResult
    newdata : pandas.DataFrame, optional
        Default: the fitted rows. With ``re="none"`` only the fixed part's variables are needed.
    re : {"none", "conditional"}
    type : {"link", "response"}
        Zero-inflated and hurdle models also ``"conditional"`` (the count part's mean) and
        ``"zero_prob"``; their ``"response"`` is the mean with the zero part, its SE from the
        joint covariance of both parts (:func:`zero_part_interval`).
    interval : {"confidence", "prediction", "none"}
        ``prediction`` (gaussian only) adds the residual variance of a new observation.
    level : float
    ddf : {"asymptotic", "satterthwaite", "kenward-roger"}
        Reference distribution of the interval (normal by default); small-sample df apply to
        ``re="none"`` of gaussian fits.

    Returns
    -------
    pandas.DataFrame
        ``fit se_fit lower upper`` (and ``df`` when small-sample df are used), indexed like
        ``newdata``.
    """
    if m.request.family.ordinal and (type != "link" or re != "none"):
        raise ModelError("an ordinal model has intervals for its linear predictor only (type='link', re='none'); "
                         "its category probabilities come from m.predict(type='prob')")
    check_choice(re, "re (with se_fit or interval)", ("none", "conditional"))
    zero = m.request.family.has_zero_part
    check_choice(type, "type", ("link", "response", "conditional", "zero_prob") if zero else ("link", "response"))
    check_choice(interval, "interval", ("confidence", "prediction", "none"))
    check_level(level)
    if m.spec.zi_terms and re != "none":
        raise ModelError(f"intervals with re='conditional' are not available with random effects in the zero part "
                         f"(ziformula {m.spec.zi_formula!r}); use re='none', or m.predict() for the conditional "
                         "predictions themselves")
    gaussian = is_lmm(m)
    if interval == "prediction" and not gaussian:
        raise ModelError("interval='prediction' is available for gaussian models only")
    beta = np.asarray(m.fixef, dtype=float)
    newdata = None if newdata is None else as_frame(newdata, "newdata")
    index = newdata.index if newdata is not None else m.spec.row_index
    use_df = ddf not in (None, "asymptotic")
    if use_df and re != "none":
        raise ModelError("small-sample df apply to re='none' predictions; use ddf='asymptotic'")
    if re == "none":
        if newdata is None:
            X, off = np.asarray(m.spec.X, dtype=float), np.asarray(m.spec.offset, dtype=float)
        else:
            X, off = fixed_design(m, newdata)
        _est, se, df = linear_inference(m, X, ddf if use_df else "asymptotic")
        eta = X @ beta + off
        var = se**2
        D, re_part = X, 0.0
    else:
        X, off, vals, cols, kvar = _conditional_parts(m, newdata)
        u_b = np.asarray(m.u, dtype=float)
        eta = X @ beta + off + np.einsum("is,is->i", vals, u_b[cols])
        D, re_part = _conditional_var(m, X, vals, cols)
        var = (np.einsum("ip,pq,iq->i", D, np.asarray(m.vcov, dtype=float), D) + re_part
               + kvar * (float(m.sigma) ** 2 if gaussian else 1.0))  # kriged positions' own variance
        df = np.full(len(eta), np.inf)
    if interval == "prediction":
        w = np.asarray(m.spec.weights, dtype=float) if newdata is None else np.ones(len(eta))
        var = var + float(m.sigma) ** 2 / w
    if zero and type in ("response", "zero_prob"):
        Xz = np.asarray(m.spec.zi_X, dtype=float) if newdata is None else new_zero_matrix(m.spec, newdata)
        out = zero_part_interval(m, eta, D, re_part, Xz, type, t_quantile(level, df))
        if interval == "none":
            out = out[["fit", "se_fit"]]
        return out.set_index(index)
    se = np.sqrt(np.maximum(var, 0.0))
    q = t_quantile(level, df)
    lo, hi = eta - q * se, eta + q * se
    out = {"fit": eta, "se_fit": se}
    if type in ("response", "conditional"):
        link = link_of(m)
        mu = link.inverse(eta)
        out = {"fit": mu, "se_fit": np.abs(link.mu_eta(eta)) * se}
        lo, hi = link.inverse(lo), link.inverse(hi)
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    if use_df:
        out["df"] = df
    if interval != "none":
        out["lower"], out["upper"] = lo, hi
    return pd.DataFrame(out, index=index)
