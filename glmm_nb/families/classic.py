"""The families of lme4's ``glmer``/``lmer``: binomial, Poisson and gaussian."""

from __future__ import annotations


import numpy as np
from scipy import special

from ..errors import DataError, ModelError
from .base import Family
from .kernel import Clusters, ExpLinearClusters, MemoKernel, ResponseData
from .links import EPS, ETA_MAX, LOG_EPS, Log, Logit

__all__ = ["Binomial", "Poisson", "Gaussian"]



class Binomial(Family):
    name = "binomial"
    links = ("logit", "probit", "cloglog")
    canonical_link = "logit"
    reads_cbind = True
    discrete = True
    mean_word = "probability"

    @property
    def logistic(self) -> bool:
        return self.link.name == "logit"

    def overdispersed_alternative_for(self, spec) -> str | None:
        """Beta-binomial for successes out of several trials; nothing for 0/1 responses (one
        trial: no overdispersion to model, and the beta-binomial's phi is not identified)."""
        several = np.any(np.asarray(spec.weights) > 1)
        readable = not (spec.user_weights and spec.formula.cbind)  # betabinomial: no weights on cbind trials
        return "betabinomial" if several and readable else None

    def variance(self, mu):
        return np.maximum(mu * (1.0 - mu), EPS)

    def dvariance(self, mu):
        return 1.0 - 2.0 * mu

    def loglik_obs(self, y, mu, pw):
        mu = np.clip(mu, EPS, 1 - EPS)
        k = pw * y
        return self.loglik_const(y, pw) + special.xlogy(k, mu) + special.xlogy(pw - k, 1.0 - mu)

    def loglik_const(self, y, pw):
        """log C(n, k) per row (n the trials, k = n y); 0 for a 0/1 response at one trial, where
        it is found without the three log-gamma passes."""
        y, pw = np.asarray(y, dtype=float), np.asarray(pw, dtype=float)
        if y.ndim == 1 and np.all(pw == 1.0) and np.all((y == 0.0) | (y == 1.0)):
            return np.zeros(y.shape)
        k = pw * y
        return special.gammaln(pw + 1) - special.gammaln(k + 1) - special.gammaln(pw - k + 1)

    def loglik_kernel(self, y, eta, pw):
        if self.link.name == "logit":
            # softplus(eta) = max(eta, 0) + log1p(exp(-|eta|)), faster than logaddexp
            sp = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))
            return pw * (y * eta - sp)
        mu = self.link.inverse(eta)
        return special.xlogy(pw * y, mu) + special.xlogy(pw * (1 - y), 1.0 - mu)

    def dev_resid(self, y, mu, pw):
        """2 w [y log(y/mu) + (1 - y) log((1 - y)/(1 - mu))]; the saturated part y log y +
        (1 - y) log(1 - y) is 0 for 0/1 responses and computed only for proportions."""
        mu = np.clip(mu, EPS, 1 - EPS)
        y = np.asarray(y, dtype=float)
        t = y * np.log(mu)
        t += (1 - y) * np.log1p(-mu)
        if not np.all((y == 0) | (y == 1)):
            t -= special.xlogy(y, y) + special.xlogy(1 - y, 1 - y)
        return -2 * pw * t

    def working(self, eta, y, pw):
        if self.canonical:  # one expit instead of three
            mu = special.expit(eta)
            W = pw * np.maximum(mu * (1.0 - mu), EPS)
            return mu, pw * (y - mu), W, W, W * (1.0 - 2.0 * mu)
        return super().working(eta, y, pw)

    def kernel(self, data: ResponseData):
        if type(self) is Binomial and isinstance(self.link, Logit):
            return LogitKernel(self, data)
        return super().kernel(data)

    def start_mu(self, y, pw):
        return (pw * y + 0.5) / (pw + 1.0)

    def check_response(self, y, trials, weights_given, name):
        super().check_response(y, trials, weights_given, name)
        bad = (y < 0) | (y > 1)
        if np.any(bad):
            raise DataError(
                f"response '{name}' must lie in [0, 1] for the binomial family "
                f"(0/1, or a proportion with weights=trials); found {y[bad][0]:g}"
            )
        frac = (y > 0) & (y < 1) & (trials == 1)
        if np.any(frac) and not weights_given:
            raise DataError(
                f"response '{name}' holds proportions (e.g. {y[frac][0]:g}); give the number "
                "of trials with weights= or write cbind(successes, failures)"
            )

    def observed(self, y, pw):
        return np.round(np.asarray(y, dtype=float) * np.asarray(pw, dtype=float))

    def simulate(self, rng, mu, trials, scale, size):
        n = np.broadcast_to(np.round(np.asarray(trials)).astype(np.int64)[:, None], size)
        return rng.binomial(n, np.clip(np.broadcast_to(mu, size), 0, 1)).astype(float)

    def to_mean_scale(self, sims, trials):
        t = np.asarray(trials, dtype=float)[:, None]
        return np.where(t > 0, sims / np.where(t > 0, t, 1), 0.0)

    def latent_variance(self, eta_mean, re_var, sigma):
        return {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}[self.link.name]

    def statsmodels_family(self):
        import statsmodels.api as sm

        return sm.families.Binomial(link=self._sm_link())


class Poisson(Family):
    name = "poisson"
    links = ("log",)
    overdispersed_alternative = "negative_binomial"
    canonical_link = "log"
    discrete = True
    count_like = True
    mean_word = "rate"

    def variance(self, mu):
        return np.maximum(mu, EPS)

    def dvariance(self, mu):
        return np.ones_like(mu)

    def loglik_obs(self, y, mu, pw):
        return pw * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))

    def loglik_const(self, y, pw):
        return -pw * special.gammaln(y + 1)

    def loglik_kernel(self, y, eta, pw):
        if self.link.name == "log":
            eta = np.minimum(eta, ETA_MAX)
            return pw * (y * eta - np.exp(eta))
        mu = self.link.inverse(eta)
        return pw * (special.xlogy(y, mu) - mu)

    def dev_resid(self, y, mu, pw):
        return 2 * pw * (special.xlogy(y, y / mu) - (y - mu))

    def working(self, eta, y, pw):
        if self.canonical:
            mu = self.link.inverse(eta)
            W = pw * mu
            return mu, pw * (y - mu), W, W, W
        return super().working(eta, y, pw)

    def kernel(self, data: ResponseData):
        if type(self) is Poisson and isinstance(self.link, Log):
            return PoissonLogKernel(self, data)
        return super().kernel(data)

    def start_mu(self, y, pw):
        return y + 0.1

    def check_response(self, y, trials, weights_given, name):
        super().check_response(y, trials, weights_given, name)
        bad = (y < 0) | (y != np.round(y))
        if np.any(bad):
            kind = "negative counts" if np.any(y < 0) else "non-integer counts"
            raise DataError(
                f"response '{name}' has {kind}: the {self.name} family needs non-negative whole counts; "
                f"{int(bad.sum())} row(s) do not (e.g. {y[bad][0]:g})"
            )

    def simulate(self, rng, mu, trials, scale, size):
        return rng.poisson(np.broadcast_to(mu, size)).astype(float)

    def latent_variance(self, eta_mean, re_var, sigma):
        # lognormal approximation (Nakagawa, Johnson & Schielzeth 2017): ln(1 + 1/lambda)
        lam = np.exp(eta_mean + re_var / 2)
        return float(np.log1p(1 / lam))

    def statsmodels_family(self):
        import statsmodels.api as sm

        return sm.families.Poisson(link=self._sm_link())


class LogitKernel(MemoKernel):
    r"""Binomial with the logit link: :math:`\ell = \sum_i w_i[y_i\eta_i - \log(1 + e^{\eta_i})]`
    (+ constants) from one exponential per row, which the working pieces reuse:
    :math:`\mu = e^\eta/(1 + e^\eta)`, :math:`\mu(1 - \mu) = \mu/(1 + e^\eta)`. Where some
    :math:`\eta \ge` ``ETA_MAX`` (:math:`e^\eta` near overflow) the family's own stable forms."""

    concave = True  # d2l/deta2 = -w mu (1 - mu) <= 0

    def __init__(self, family: "Binomial", data: ResponseData):
        super().__init__(family, data)
        self.py = data.memo("pw*y", lambda: data.weighted(data.y))

    def _exp(self, eta):
        ex = self.recall(eta)
        if ex is None and np.max(eta) < ETA_MAX:
            ex = np.exp(eta)
        return ex

    def loglik(self, eta: np.ndarray) -> float:
        ex = self._exp(eta)
        if ex is None:
            return super().loglik(eta)
        self.remember(eta, ex)
        return float(self.py @ eta) - self.data.wsum(np.log1p(ex)) + self.data.const

    def working(self, eta: np.ndarray):
        ex = self._exp(eta)
        if ex is None:  # the family's own forms
            mu, r, W, Wobs, dW = self.family.working(eta, self.data.y, self.data.pw)
        else:
            opx = 1.0 + ex
            mu = ex / opx
            W = self.data.weighted(np.maximum(mu / opx, EPS))
            r = self.data.weighted(self.data.y - mu)
        self.last_working = (eta, mu, W)
        return mu, r, W, W

    def dW_from(self, mu, W):
        return W * (1.0 - 2.0 * mu)


class PoissonLogKernel(MemoKernel):
    r"""Poisson with the log link: :math:`\ell = \sum_i w_i(y_i\eta_i - e^{\eta_i})` (+ constants),
    one exponential per row shared with the working pieces :math:`W = w\mu`, :math:`r = w(y - \mu)`."""

    concave = True  # d2l/deta2 = -w mu <= 0
    ETA_HIGH = ETA_MAX  # above, loglik's eta is clipped (flat)

    def __init__(self, family: "Poisson", data: ResponseData):
        super().__init__(family, data)
        self.py = data.memo("pw*y", lambda: data.weighted(data.y))

    def _exp(self, eta):
        hit = self.recall(eta)
        if hit is not None:
            return hit
        e = np.minimum(eta, ETA_MAX)
        return e, np.exp(e)

    def loglik(self, eta: np.ndarray) -> float:
        e, ex = self._exp(eta)
        self.remember(eta, (e, ex))
        return float(self.py @ e) - self.data.wsum(ex) + self.data.const

    def working(self, eta: np.ndarray):
        _e, ex = self._exp(eta)
        mu = np.maximum(ex, EPS)
        W = self.data.weighted(mu)
        self.last_working = (eta, W)
        return mu, self.py - W, W, W

    def dW_from(self, W):
        return W

    def cluster_form(self, eta_f: np.ndarray, clusters: Clusters) -> ExpLinearClusters | None:
        r"""With :math:`\eta_i = \eta_{f,i} + a_j` the log-likelihood is
        :math:`c + \sum_i w_iy_i\eta_{f,i} + \sum_j(a_j\sum_{i\in j} w_iy_i - e^{a_j}\sum_{i\in j}
        w_ie^{\eta_{f,i}})`: linear plus one exponential in each :math:`a_j` (k = 1), exact while
        no row's mean is clipped (:data:`~.links.EPS` below, :data:`~.links.ETA_MAX` above); None
        where :math:`\eta_f` is already outside that range."""
        lo, hi = float(np.min(eta_f)), float(np.max(eta_f))
        if not (lo >= LOG_EPS and hi <= ETA_MAX):
            return None
        data = self.data
        ex = np.exp(eta_f)
        if not data.unit_weights:
            ex *= data.pw  # w e^{eta_f}
        b = clusters.memo("poisson: sum of w y", lambda: clusters.sum(self.py))
        return ExpLinearClusters(clusters, eta_f, data.const + float(self.py @ eta_f), 1.0, b,
                                 ex, 1.0, self.py, 1.0, (lo, hi), LOG_EPS, ETA_MAX)


class Gaussian(Family):
    name = "gaussian"
    links = ("identity",)
    canonical_link = "identity"
    profiled_lmm = True

    def variance(self, mu):
        return np.ones_like(mu)

    def dvariance(self, mu):
        return np.zeros_like(mu)

    def loglik_const(self, y, pw):
        raise ModelError("the gaussian log-likelihood is computed by the LMM code")

    def loglik_kernel(self, y, eta, pw):
        raise ModelError("the gaussian log-likelihood is computed by the LMM code")

    def dev_resid(self, y, mu, pw):
        return pw * (y - mu) ** 2

    def start_mu(self, y, pw):
        return np.asarray(y, dtype=float)

    def check_response(self, y, trials, weights_given, name):
        super().check_response(y, trials, weights_given, name)
        if len(y) and np.ptp(y) == 0:
            raise DataError(f"response '{name}' is constant ({y[0]:g}); there is nothing to model")

    def simulate(self, rng, mu, trials, scale, size):
        w = np.asarray(trials, dtype=float)[:, None]
        return np.broadcast_to(mu, size) + scale / np.sqrt(w) * rng.standard_normal(size)

    def latent_variance(self, eta_mean, re_var, sigma):
        return float(sigma) ** 2

    def statsmodels_family(self):
        import statsmodels.api as sm

        return sm.families.Gaussian(link=self._sm_link())
