r"""Ordinary GLM by iteratively reweighted least squares (fixed-effect start values), and the
moment start of the random-effect SDs from its working residuals.

IRLS solves each weighted least-squares step from the normal equations :math:`X'WX\beta = X'Wz`
(one pass over the rows; columns scaled to unit norm first) and stops, as R's ``glm.fit``, when
the deviance changes by less than ``tol`` relative. Where the scaled Gram matrix is too badly
conditioned for the normal equations (a condition number above 1e10) the step is a QR least
squares on the weighted rows, as before.

Moment start. With the GLM means :math:`\mu_i` (random effects ignored), working weights
:math:`w_i = p_i\,\mu'(\eta_i)^2 / V(\mu_i)` and working residuals
:math:`r_i = (y_i - \mu_i)/\mu'(\eta_i)`, a scalar term with values :math:`v_i` and levels
:math:`j` has the per-level estimates :math:`\hat b_j = \sum_j w v r / W_j`, :math:`W_j = \sum_j
w v^2`, with :math:`E \hat b_j^2 \approx \sigma^2 + \phi / W_j`; :math:`\phi` is the within-level
Pearson dispersion :math:`\sum_j \sum_{i \in j} w_i (r_i - v_i \hat b_j)^2 / (n - J)`. Hence
:math:`\hat\sigma^2 = \overline{\hat b_j^2} - \phi\,\overline{1/W_j}` (at least 0): an ANOVA
estimate on the working scale, the start of theta (= the SD for a GLMM).
"""

from __future__ import annotations

import numpy as np

from ..families import Family

__all__ = ["START_SETTLE", "glm_fit", "glm_irls", "moment_theta"]

_MAX_COND = 1e10


def _wls(X: np.ndarray, w: np.ndarray, z: np.ndarray, colscale: np.ndarray) -> np.ndarray:
    """argmin sum w (z - X b)^2 from the column-scaled normal equations (QR where ill-conditioned)."""
    Xw = X * w[:, None]
    G = (Xw.T @ X) / np.outer(colscale, colscale)
    rhs = (Xw.T @ z) / colscale
    try:
        if np.linalg.cond(G) < _MAX_COND:
            return np.linalg.solve(G, rhs) / colscale
    except np.linalg.LinAlgError:
        pass
    sw = np.sqrt(w)
    beta, *_ = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)
    return beta


SUBSAMPLE_ROWS = 200_000  # larger data: IRLS on a sample of SUBSAMPLE, then steps on all rows
SUBSAMPLE = 50_000
SAMPLE_MIN_NONZERO = 50  # every column needs this many nonzero rows in the sample
START_SETTLE = 0.05  # glm_fit's settle for a start of the mixed model (one pass over all rows, usually)
START_MAXIT = 15  # IRLS steps from the starting means before a start falls back to R's deviance rule
FULL_STEPS = 6  # steps on all rows from the sample's estimate before falling back to IRLS from scratch


def _irls(X, y, pw, off, family: Family, beta, maxit: int, tol: float, colscale, by_step: bool):
    """IRLS from ``beta`` (None: the family's starting means). ``by_step``: stop when a step
    moves the linear predictor by less than ``tol`` (root-mean-square scale of each column),
    with no deviance pass; else R's rule on the deviance."""
    link = family.link
    if beta is None:
        mu = family.start_mu(y, pw)
        eta = link.link(mu)
        beta = np.zeros(X.shape[1])
    else:
        eta = X @ beta + off
        mu = link.inverse(eta)
    rms = colscale / np.sqrt(max(len(y), 1))
    dev_old = np.inf
    converged = False
    for _ in range(maxit):
        me = link.mu_eta(eta)
        w = pw * me**2 / family.variance(mu)
        z = eta - off + (y - mu) / me
        beta_new = _wls(X, w, z, colscale)
        step = float(np.max(np.abs(beta_new - beta) * rms)) if by_step else 0.0
        beta = beta_new
        eta = X @ beta + off
        mu = link.inverse(eta)
        if by_step:
            if step < tol:
                converged = True
                break
            continue
        dev = float(np.sum(family.dev_resid(y, mu, pw)))
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            converged = True
            break
        dev_old = dev
    return beta, eta, mu, converged and bool(np.all(np.isfinite(beta)))


def glm_fit(X, y, pw, off, family: Family, maxit: int = 50, tol: float = 1e-8, start: bool = False):
    """IRLS for the GLM without random effects: ``(beta, eta, mu)`` at convergence.

    Up to ``SUBSAMPLE_ROWS`` rows: R's ``glm.fit`` rule (relative deviance change below
    ``tol``). Above: IRLS to that rule on a fixed random sample of ``SUBSAMPLE`` rows (its
    estimate is within a few 1/sqrt(SUBSAMPLE) standard errors of the full one), then IRLS steps
    on all rows until a step moves the linear predictor by less than 1e-4 (on each column's
    root-mean-square scale): typically two passes over the data instead of five, and no
    deviance pass. A column with fewer than 50 nonzero rows in the sample (a rare dummy), or
    steps that have not settled after six passes, send the fit to IRLS on all rows from the
    family's starting means.

    ``start=True``: a start for the mixed model's optimizer, which refines it. IRLS then stops by
    the step rule (1e-4), with no deviance pass (NB2's deviance costs two logarithms and two
    ``xlogy`` per row at every step), and on large data the steps on all rows stop below
    :data:`START_SETTLE` (one pass, usually: IRLS's next step is of the order of the square of
    one that small, Newton's for canonical links). Steps that have not settled after
    :data:`START_MAXIT` (separation: a coefficient running off) fall back to R's rule."""
    colscale = np.sqrt(np.einsum("ij,ij->j", X, X))
    colscale[colscale == 0] = 1.0
    n = len(y)
    beta = None
    if n > SUBSAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(0).choice(n, SUBSAMPLE, replace=False))
        Xs = X[idx]
        if np.all(np.count_nonzero(Xs, axis=0) >= SAMPLE_MIN_NONZERO):  # a rare dummy: all rows instead
            cs = np.sqrt(np.einsum("ij,ij->j", Xs, Xs))
            beta = _irls(Xs, y[idx], pw[idx], off[idx], family, None, maxit, 1e-4 if start else tol, cs,
                         by_step=start)[0]
            if not np.all(np.isfinite(beta)):
                beta = None
        if beta is not None:
            fit = _irls(X, y, pw, off, family, beta, FULL_STEPS, START_SETTLE if start else 1e-4, colscale,
                        by_step=True)
            if fit[3]:
                return fit[:3]
    if start:  # steps that do not settle in START_MAXIT (separation: a coefficient running off): R's rule
        fit = _irls(X, y, pw, off, family, None, min(maxit, START_MAXIT), 1e-4, colscale, by_step=True)
        if fit[3]:
            return fit[:3]
    # small data, a sample that cannot stand in for the rows, or steps that did not settle
    return _irls(X, y, pw, off, family, None, maxit, tol, colscale, by_step=False)[:3]


def glm_irls(X, y, pw, off, family: Family, maxit: int = 50, tol: float = 1e-8) -> np.ndarray:
    """Maximum-likelihood coefficients of the GLM without random effects (R's ``glm.fit`` rule:
    relative deviance change below ``tol``)."""
    return glm_fit(X, y, pw, off, family, maxit, tol)[0]


def moment_theta(terms, y, eta, mu, pw, family: Family) -> np.ndarray | None:
    """The moment estimate of each scalar term's SD from the GLM's working residuals at its
    linear predictor ``eta`` and means ``mu`` (module docstring); None when a term is not
    scalar and unstructured (its start stays lme4's)."""
    if not terms or any(t.q != 1 or t.ntheta != 1 or t.structured for t in terms):
        return None
    link = family.link
    me = link.mu_eta(eta)
    w = pw * me**2 / family.variance(mu)
    r = (y - mu) / me
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(r))):
        return None
    out = []
    wr = w * r
    wr2 = wr * r
    for t in terms:
        v = t.Zvals[:, 0]
        J = t.nlevels
        W = np.bincount(t.codes, weights=w * v * v, minlength=J)
        S = np.bincount(t.codes, weights=wr * v, minlength=J)
        R2 = np.bincount(t.codes, weights=wr2, minlength=J)
        ok = W > 0
        nok = int(ok.sum())
        if nok < 2 or y.size <= nok:
            return None
        b = S[ok] / W[ok]
        phi = max(float(np.sum(R2[ok] - S[ok] * b)), 0.0) / (y.size - nok)
        s2 = float(np.mean(b * b) - phi * np.mean(1.0 / W[ok]))
        out.append(np.sqrt(max(s2, 0.0)))
    return np.asarray(out)

