r"""Wald intervals of a Dask fit, from the whole data's curvature (no refits).

Fixed effects, the zero part's and the dispersion model's coefficients and the dispersion: the
coefficient tables and the dispersion's log-scale SE of the result. Random-effect SDs and
correlations (and sigma) on lme4's "sdcor" scale
(:mod:`glmm_nb.inference.params`), as :func:`glmm_nb.inference.confint` computes them in
memory:

* GLMMs: the delta method from the covariance of :math:`\phi = (\theta, \beta, \log d)`,
  :math:`2H^{-1}` with H the summed finite-difference Hessian of the fit:
  :math:`V_\psi = J V_\theta J'`, :math:`J = \partial\psi/\partial\theta` (at the optimum the
  gradient vanishes, so this is the inverse Hessian on the sdcor scale);
* LMMs: the central-difference Hessian of the deviance over (sdcor, sigma) with beta profiled,
  computed at the end of the fit while the partitions are still on the workers.

An SD on zero or a correlation on ±1 gets no interval (NaN), as in memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..inference.params import clip_sdcor_limits, sdcor_names, sdcor_to_theta, theta_to_sdcor
from ..numdiff import fd_hessian_fun

__all__ = ["sdcor_covariance_glmm", "sdcor_covariance_lmm", "wald_confint"]


def _interior(names, psi) -> bool:
    return all(not (n.startswith("sd__") and v < 1e-6) and not (n.startswith("cor__") and abs(v) > 1 - 1e-6)
               for n, v in zip(names, psi))


def sdcor_covariance_glmm(spec, theta: np.ndarray, vcov_full) -> np.ndarray | None:
    """Covariance of the sdcor parameters by the delta method (None without a full covariance)."""
    if vcov_full is None:
        return None
    k = theta.size
    psi0 = theta_to_sdcor(spec, theta, 1.0, False)
    J = np.empty((psi0.size, k))
    for i in range(k):
        h = 1e-7 * max(1.0, abs(theta[i]))
        e = np.zeros(k)
        e[i] = h
        J[:, i] = (theta_to_sdcor(spec, theta + e, 1.0, False) - theta_to_sdcor(spec, theta - e, 1.0, False)) / (2 * h)
    return J @ np.asarray(vcov_full)[:k, :k] @ J.T


def sdcor_covariance_lmm(dev, spec, theta: np.ndarray, sigma: float) -> np.ndarray | None:
    """Covariance of (sdcor, sigma) from the Hessian of ``dev.deviance_sigma``."""
    names = sdcor_names(spec, True)
    x = theta_to_sdcor(spec, theta, sigma, True)
    if not _interior(names, x):
        return None

    def objective(z):
        th, s = sdcor_to_theta(spec, z, True)
        return dev.deviance_sigma(th, s)

    try:
        return 2.0 * np.linalg.inv(fd_hessian_fun(objective, x, h=1e-4))
    except np.linalg.LinAlgError:
        return None


def wald_confint(m, level: float = 0.95) -> pd.DataFrame:
    """Wald intervals of a Dask fit ``m``, indexed by term, columns ``conf_low conf_high``."""
    gaussian = m.request.family.profiled_lmm
    names = sdcor_names(m.spec, gaussian)
    psi = theta_to_sdcor(m.spec, np.asarray(m.theta, dtype=float), m.sigma, gaussian)
    z = stats.norm.ppf(0.5 + level / 2)
    re = pd.DataFrame(np.nan, index=names, columns=["conf_low", "conf_high"])
    V = m.extras["dask"].sdcor_vcov
    if V is not None and _interior(names, psi):
        d = np.diag(V)
        se = np.sqrt(np.where(d > 0, d, np.nan))
        re["conf_low"], re["conf_high"] = clip_sdcor_limits(names, psi - z * se, psi + z * se)
    fixed = m.coef_table(conf_level=level)[["conf_low", "conf_high"]]
    disp = pd.DataFrame(columns=["conf_low", "conf_high"], dtype=float)
    if len(m.dispersion):
        se = np.asarray(m.dispersion.attrs.get("std_error_log", [np.nan] * len(m.dispersion)), dtype=float)
        fam = m.request.family  # each parameter on the optimizer's scale (log; Tweedie power: logit(p - 1))
        x = np.array([fam.from_dispersion(float(v), k) for k, v in enumerate(m.dispersion)])
        ends = [[fam.to_dispersion(v, k) for k, v in enumerate(x + sgn * z * se)] for sgn in (-1, 1)]
        disp = pd.DataFrame({"conf_low": ends[0], "conf_high": ends[1]}, index=m.dispersion.index)
    parts = []
    for part, est in (("zi", m.zi_fixef), ("disp", m.disp_fixef)):  # named as in memory: zi~term, disp~term
        if est is not None and len(est):
            t = m.coef_table(conf_level=level, part=part)[["conf_low", "conf_high"]]
            t.index = [f"{part}~{c}" for c in t.index]
            parts.append(t)
    out = pd.concat([re, fixed, disp, *parts])
    out.index.name = "term"
    return out
