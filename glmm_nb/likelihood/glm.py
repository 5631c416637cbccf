"""Ordinary GLM by iteratively reweighted least squares: fixed-effect start values."""

from __future__ import annotations

import numpy as np

from ..families import Family

__all__ = ["glm_irls"]


def glm_irls(X, y, pw, off, family: Family, maxit: int = 50, tol: float = 1e-10) -> np.ndarray:
    """Maximum-likelihood coefficients of the GLM without random effects."""
    link = family.link
    mu = family.start_mu(y, pw)
    eta = link.link(mu)
    beta = np.zeros(X.shape[1])
    dev_old = np.inf
    for _ in range(maxit):
        me = link.mu_eta(eta)
        w = pw * me**2 / family.variance(mu)
        z = eta - off + (y - mu) / me
        sw = np.sqrt(w)
        beta_new, *_ = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)
        eta = X @ beta_new + off
        mu = link.inverse(eta)
        dev = float(np.sum(family.dev_resid(y, mu, pw)))
        beta = beta_new
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    return beta
