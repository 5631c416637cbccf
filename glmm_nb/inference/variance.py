r"""Variance decomposition: latent-scale ICC, Nakagawa R², median odds ratio.

With :math:`\sigma^2_{RE} = \frac1n\sum_i\sum_k z_{ik}' \Sigma_k z_{ik}` (the random-effect
variance at the observed covariates; :math:`\sum_k \sigma_k^2` for random intercepts; Johnson
2014), :math:`\sigma^2_f = \mathrm{var}(X\hat\beta)` and the distribution-specific variance
:math:`\sigma^2_d` — logit :math:`\pi^2/3`, probit 1, cloglog :math:`\pi^2/6`, Poisson-log
:math:`\ln(1 + 1/\lambda)` with :math:`\lambda = \exp(\bar\eta + \sigma^2_{RE}/2)`
(:math:`\bar\eta` the mean fixed-effect linear predictor; Nakagawa, Johnson & Schielzeth 2017),
gaussian :math:`\sigma^2`, and for the families with a dispersion parameter the lognormal
approximations of Nakagawa et al. (2017, Table 2) as the R package performance uses them:
NB2 :math:`\ln(1 + 1/\lambda + 1/\theta)`, NB1 :math:`\ln(1 + (1+\alpha)/\lambda)`, Gamma (log)
:math:`\ln(1 + \sigma^2)` (= ln(1 + 1/shape)), beta (logit) the observation-level variance on
the logit scale by the delta method, :math:`1/(\mu(1-\mu)(1+\phi))` at the mean. Each family
object computes its own (``latent_variance``); a zero-inflated model uses its count part's:

* ICC :math:`= \sigma^2_{RE} / (\sigma^2_{RE} + \sigma^2_d)` (adjusted ICC);
* marginal :math:`R^2 = \sigma^2_f / (\sigma^2_f + \sigma^2_{RE} + \sigma^2_d)`, conditional
  :math:`R^2 = (\sigma^2_f + \sigma^2_{RE}) / (\sigma^2_f + \sigma^2_{RE} + \sigma^2_d)`;
* MOR :math:`= \exp(\sqrt{2\sigma^2}\,\Phi^{-1}(0.75))` for a logistic random intercept
  (Larsen & Merlo 2005).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelError
from .simulate import re_row_variance

__all__ = ["variance_components", "icc", "r2", "mor"]


def variance_components(m) -> dict[str, float]:
    spec = m.spec
    S = m.covariance_matrices()
    re = float(np.mean(re_row_variance([t.Zvals for t in spec.terms], [S[t.label].to_numpy() for t in spec.terms])))
    eta_f = np.asarray(spec.X) @ m.fixef.to_numpy()
    fixed = float(np.var(eta_f))
    dist = m.fitted_family.latent_variance(float(np.mean(eta_f)), re, m.sigma)
    return {"fixed": fixed, "random": re, "distribution": dist}


def icc(m) -> float:
    v = variance_components(m)
    return v["random"] / (v["random"] + v["distribution"])


def r2(m) -> dict[str, float]:
    v = variance_components(m)
    tot = v["fixed"] + v["random"] + v["distribution"]
    return {"marginal": v["fixed"] / tot, "conditional": (v["fixed"] + v["random"]) / tot}


def mor(m) -> pd.Series:
    """Median odds ratio per random-intercept term of a logistic model."""
    if not m.request.family.logistic:
        raise ModelError("the median odds ratio is defined for logistic (binomial, logit) models")
    out = {}
    for t in m.spec.terms:
        if t.col_names == ("(Intercept)",):
            s2 = m.covariance_matrices()[t.label].iloc[0, 0]
            out[t.label] = float(np.exp(np.sqrt(2 * s2) * stats.norm.ppf(0.75)))
    if not out:
        raise ModelError("the model has no random-intercept-only term; the MOR needs one")
    return pd.Series(out, name="mor")
