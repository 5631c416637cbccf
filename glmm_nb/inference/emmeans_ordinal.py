r"""Estimated marginal means of an ordinal (cumulative-link) mixed model, in emmeans' modes.

With thresholds :math:`\alpha_1 < \dots < \alpha_{K-1}`, a reference-grid row x (random effects
0, as emmeans on ``clmm``) and :math:`\eta = x'\beta + o`, each grid row gives (``ordinal::clm``'s
parameterization :math:`P(Y \le k) = F(\alpha_k - \eta)`):

* ``latent`` (emmeans' default): :math:`\eta - \bar\alpha`, the linear predictor on the latent
  scale, centred at the mean threshold;
* ``linear.predictor``: :math:`\alpha_k - \eta` for every cut k (the grid gains a factor
  ``cut`` with levels ``1|2``, ``2|3`` …);
* ``cum.prob``: :math:`F(\alpha_k - \eta)` for every cut;
* ``prob``: :math:`P(Y = k) = F(\alpha_k - \eta) - F(\alpha_{k-1} - \eta)` for every category
  (the grid gains a factor named after the response, with the categories as levels);
* ``mean.class``: :math:`\sum_k k\,P(Y = k) = K - \sum_{j<K} F(\alpha_j - \eta)`.

An EMM averages these values over the grid rows that share its levels (the average of the
probabilities, not the probability at the average, as emmeans). Standard errors by the delta
method on the joint covariance of :math:`(\beta, \alpha)`, mapped from the optimizer's
threshold parameters by their Jacobian.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelError

__all__ = ["ORDINAL_MODES", "ordinal_mode", "ordinal_joint_vcov", "ordinal_grid_values"]

ORDINAL_MODES = ("latent", "linear.predictor", "cum.prob", "prob", "mean.class")
_NAMES = {"latent": "emmean", "linear.predictor": "emmean", "cum.prob": "cumprob", "prob": "prob",
          "mean.class": "mean_class"}


def ordinal_mode(type: str) -> str:
    """The emmeans mode asked for by ``type`` (``"link"``, the default, is emmeans' ``latent``)."""
    if type == "link":
        return "latent"
    if type not in ORDINAL_MODES:
        raise ModelError(f"an ordinal model's EMMs come in emmeans' modes: type must be one of "
                         f"{', '.join(map(repr, ORDINAL_MODES))} (or 'link' = 'latent'), not {type!r}; "
                         "type='prob' gives the probability of each category")
    return type


def ordinal_joint_vcov(m) -> np.ndarray:
    """Covariance of (beta, alpha) from the optimizer's covariance of (theta, beta, tau)."""
    p, k = len(m.fixef), len(m.thresholds)
    V = m.extras.get("vcov_phi")
    if V is None:
        return np.full((p + k, p + k), np.nan)
    nt = len(m.theta)
    V = np.asarray(V, dtype=float)[nt : nt + p + k, nt : nt + p + k]
    tau = np.asarray(m.opt.final, dtype=float)[nt + p : nt + p + k]
    J = np.eye(p + k)
    J[p:, p:] = m.request.family.threshold_jacobian(tau)
    return J @ V @ J.T


def ordinal_grid_values(m, grid: pd.DataFrame, X: np.ndarray, offset: float, mode: str):
    """The mode's value and its gradient in (beta, alpha) for every row of the reference grid.

    Returns ``(grid, values, G, extra, name)``: the grid (crossed with ``cut`` or the
    response's categories when the mode has one), values (n,), G (n, p + K − 1), the name of
    the added factor (or None) and the estimate's column name.
    """
    F = m.fitted_family.cumulative_link
    alpha = m.thresholds.to_numpy()
    k1, p = alpha.size, X.shape[1]
    eta = X @ m.fixef.to_numpy() + offset
    n = len(eta)
    if mode == "latent":
        G = np.c_[X, np.full((n, k1), -1.0 / k1)]
        return grid, eta - alpha.mean(), G, None, _NAMES[mode]
    lp = alpha[None, :] - eta[:, None]                        # (n, K-1)
    E = np.eye(k1)
    # d lp_ik / d(beta, alpha) = (-x_i, e_k): (n, K-1, p + K-1)
    dlp = np.concatenate([np.broadcast_to(-X[:, None, :], (n, k1, p)),
                          np.broadcast_to(E[None, :, :], (n, k1, k1))], axis=2)
    if mode == "mean.class":
        cdf = F.cdf(lp)
        dens = F.pdf(lp, cdf)
        return grid, (k1 + 1) - cdf.sum(axis=1), -np.einsum("nk,nkc->nc", dens, dlp), None, _NAMES[mode]
    if mode == "linear.predictor":
        vals, grads, extra, labels = lp, dlp, "cut", list(m.thresholds.index)
    elif mode == "cum.prob":
        cdf = F.cdf(lp)
        vals, grads, extra, labels = cdf, F.pdf(lp, cdf)[:, :, None] * dlp, "cut", list(m.thresholds.index)
    else:  # prob: differences of the cumulative probabilities, padded with F = 0 and F = 1
        cdf = F.cdf(lp)
        dc = F.pdf(lp, cdf)[:, :, None] * dlp
        zeros = np.zeros((n, 1))
        cum = np.c_[zeros, cdf, zeros + 1.0]
        dcum = np.concatenate([np.zeros((n, 1, p + k1)), dc, np.zeros((n, 1, p + k1))], axis=1)
        vals, grads = np.diff(cum, axis=1), np.diff(dcum, axis=1)
        extra, labels = m.spec.response_name, list(m.levels)
    if extra in grid.columns:
        raise ModelError(f"the reference grid already has a variable '{extra}'; rename it to use mode {mode!r}")
    ncat = len(labels)
    big = grid.loc[np.tile(np.arange(n), ncat)].reset_index(drop=True)  # the added factor varies slowest
    big[extra] = pd.Categorical(np.repeat(labels, n), categories=labels)
    return (big, vals.T.reshape(-1), grads.transpose(1, 0, 2).reshape(n * ncat, p + k1), extra,
            _NAMES[mode])
