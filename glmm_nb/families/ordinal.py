r"""The ordinal (cumulative-link) family, ``family="ordinal"`` (``ordinal::clm``'s convention).

For an ordered response with categories :math:`1, \dots, K` (coded 0..K−1 in ``spec.y``) and
linear predictor :math:`\eta = x'\beta + o + z'b` (no intercept: the thresholds take its place)

.. math:: P(Y \le k \mid \eta) = F(\alpha_k - \eta), \qquad \alpha_1 < \dots < \alpha_{K-1},

with :math:`F` the logistic (``link="logit"``), normal (``"probit"``) or Gumbel-minimum
(``"cloglog"``, :math:`F(x) = 1 - e^{-e^x}`) distribution function. A positive coefficient
shifts the response towards the higher categories. The thresholds are the family's extra
parameters, optimised as :math:`\tau = (\alpha_1, \log(\alpha_2 - \alpha_1), \dots)` so they
stay increasing; names and cell probabilities: :mod:`.cumulative`.

An ordinal model has no mean: where the generic code passes a mean ``mu`` (the conditional
deviance), this family receives the linear predictor, and :meth:`Ordinal.dev_resid` is
:math:`-2 w \log P(Y = y \mid \eta)` (the saturated model of ungrouped ordinal data has
likelihood 1). Predictions are category probabilities (:meth:`Ordinal.category_probs`).
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import DataError, ModelError
from .base import Family
from .cumulative import (
    category_probs,
    cell_terms,
    draw_categories,
    get_cumulative_link,
    start_thresholds,
    tau_from_thresholds,
    threshold_jacobian,
    thresholds_from_tau,
)

__all__ = ["Ordinal", "threshold_names"]


def threshold_names(levels) -> list[str]:
    """clm's threshold names from the category labels: ``"1|2", "2|3", ...``."""
    levels = [str(v) for v in levels]
    return [f"{a}|{b}" for a, b in zip(levels[:-1], levels[1:])]


class Ordinal(Family):
    """Cumulative-link model of an ordered categorical response (module docstring).

    ``alpha`` (the thresholds, increasing) is set by :meth:`at_extra` / :meth:`at_thresholds`;
    None before a fit.
    """

    name = "ordinal"
    links = ("logit", "probit", "cloglog")
    canonical_link = None
    ordinal = True
    discrete = True
    observed_laplace = True
    mean_word = "probability"

    def __init__(self, link=None, alpha=None):
        super().__init__(link)
        self.cumulative_link = get_cumulative_link(self.link.name)
        self.alpha = None if alpha is None else np.asarray(alpha, dtype=float)

    def __repr__(self) -> str:
        return f"Family('ordinal', link={self.link.name!r})"

    # -- the thresholds as extra parameters -----------------------------------------------------
    def n_extra(self, spec) -> int:
        return max(len(spec.levels) - 1, 0)

    def extra_names(self, spec) -> list[str]:
        """The optimizer's threshold parameters: the first threshold, then log increments."""
        names = threshold_names(spec.levels)
        return names[:1] + [f"log({b} - {a})" for a, b in zip(names[:-1], names[1:])]

    def at_extra(self, x, spec=None) -> "Ordinal":
        return self.at_thresholds(thresholds_from_tau(np.asarray(x, dtype=float)))

    def at_thresholds(self, alpha) -> "Ordinal":
        """A copy at the thresholds ``alpha`` (increasing)."""
        out = copy.copy(self)
        out.alpha = np.asarray(alpha, dtype=float)
        return out

    def extra_start(self, y, mu, pw, spec) -> np.ndarray:
        """τ of the thresholds fitted with β = 0 and no random effects (cumulative proportions)."""
        y = np.asarray(y).astype(np.int64)
        return tau_from_thresholds(start_thresholds(y, len(spec.levels), self.cumulative_link, pw))

    @staticmethod
    def tau(alpha) -> np.ndarray:
        """The optimizer's threshold parameters of increasing thresholds ``alpha``."""
        return tau_from_thresholds(alpha)

    @staticmethod
    def thresholds(tau) -> np.ndarray:
        return thresholds_from_tau(tau)

    @staticmethod
    def threshold_jacobian(tau) -> np.ndarray:
        """∂α/∂τ (K−1, K−1), for the delta method."""
        return threshold_jacobian(tau)

    def _alpha(self) -> np.ndarray:
        if self.alpha is None:
            raise DataError("the ordinal family needs its thresholds (a fitted model sets them)")
        return self.alpha

    # -- the distribution --------------------------------------------------------------------
    def cells(self, y, eta, pw=None, order: int = 0):
        """Log cell probabilities and their derivatives (:func:`.cumulative.cell_terms`)."""
        return cell_terms(self.cumulative_link, self._alpha(), np.asarray(y).astype(np.int64),
                          np.asarray(eta, dtype=float), pw, order)

    def category_probs(self, eta) -> np.ndarray:
        """P(Y = k | η): (n, K), one column per category."""
        return category_probs(eta, self._alpha(), self.cumulative_link)

    def loglik_const(self, y, pw):
        return np.zeros(np.shape(y))

    def loglik_kernel(self, y, eta, pw):
        y, eta = np.broadcast_arrays(np.asarray(y), np.asarray(eta, dtype=float))
        pw = np.broadcast_to(np.asarray(pw, dtype=float), eta.shape)
        return self.cells(y.ravel(), eta.ravel(), pw.ravel()).logp.reshape(eta.shape)

    def loglik_obs(self, y, mu, pw):
        """Log-probability of the observed categories; ``mu`` is the linear predictor."""
        return self.loglik_kernel(y, mu, pw)

    def dev_resid(self, y, mu, pw):
        """-2 w log P(Y = y | η) with ``mu`` the linear predictor (module docstring)."""
        return -2.0 * self.loglik_kernel(y, mu, pw)

    def working(self, eta, y, pw):
        """``eta, r, W, W, dW``: score, observed information and its η-derivative."""
        cl = self.cells(y, eta, pw, order=2)
        return np.asarray(eta, dtype=float), cl.r, cl.W, cl.W, cl.dW

    def variance(self, mu):
        raise ModelError("an ordinal model has no variance function; it predicts category probabilities "
                         "(predict(type='prob'))")

    def dvariance(self, mu):
        return self.variance(mu)

    def start_mu(self, y, pw):  # pragma: no cover - the ordinal starts come from extra_start
        raise ModelError("ordinal models start from their thresholds, not from a GLM")

    def check_response(self, y, trials, weights_given, name):
        super().check_response(y, trials, weights_given, name)

    def observed(self, y, pw):
        return np.asarray(y, dtype=float)

    def simulate_from_eta(self, rng, eta, trials, scale, size):
        """Category codes 0..K−1 (floats) drawn given the linear predictor."""
        return draw_categories(np.broadcast_to(eta, size), self._alpha(), self.cumulative_link, rng).astype(float)

    def simulate(self, rng, mu, trials, scale, size):
        raise ModelError("ordinal responses are simulated from the linear predictor (simulate_from_eta)")

    # -- interpretation --------------------------------------------------------------------
    def latent_variance(self, eta_mean, re_var, sigma):
        """Variance of the latent error: π²/3 (logit), 1 (probit), π²/6 (cloglog)."""
        return {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}[self.link.name]

    @property
    def logistic(self) -> bool:
        """Cumulative logit: the latent scale is logistic (MOR, Zeger's attenuation apply)."""
        return self.link.name == "logit"

    @property
    def ratio_name(self) -> str | None:
        return "cumulative odds ratio" if self.link.name == "logit" else None

    @property
    def difference_word(self) -> str:
        return "probability"

    def statsmodels_family(self):
        raise ModelError("GEE for an ordinal response is not available here; compare the population-averaged "
                         "coefficients of m.marginal_coefs() instead")
