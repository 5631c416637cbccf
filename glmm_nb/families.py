r"""Response families and link functions — families are objects the rest of the package asks.

A link maps the mean to the linear predictor, :math:`\eta = g(\mu)`; the fitting core needs
its inverse :math:`\mu(\eta)` and the first two derivatives :math:`\mu'(\eta)`,
:math:`\mu''(\eta)`. A family supplies the variance function :math:`V(\mu)`, its derivative,
and the log-density *with every normalising constant* (so that log-likelihoods are comparable
with lme4's ``logLik``), plus everything downstream code needs to know about the distribution:
how the response is read and checked, simulation, the randomized-quantile CDF for scaled
residuals, the distribution-specific variance for ICC/R², and words for reports.

With prior weights :math:`w` (binomial: number of trials) the per-observation pieces used by
PIRLS and by the analytic gradient are

* score :math:`r = w (y - \mu) \mu' / V`,
* Fisher weight :math:`W = w \mu'^2 / V` (lme4's IRLS weight, used in the Laplace log-determinant),
* observed weight :math:`W_{obs} = -\partial r/\partial\eta` (equal to ``W`` for canonical links),
* :math:`\partial W/\partial\eta`.

Adding a family is one subclass of :class:`Family` and one :func:`register_family` call; no
other module compares family names.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import special, stats

from .errors import DataError, DataWarning, ModelError

__all__ = ["Link", "Family", "Binomial", "Poisson", "Gaussian", "get_family", "register_family", "register_link", "family_names",
           "LINKS", "FAMILIES"]

EPS = np.finfo(float).eps
ETA_MAX = 700.0


class Link:
    """Base class: ``link``, ``inverse``, ``mu_eta`` (dmu/deta) and ``mu_eta2`` (d2mu/deta2)."""

    name = "link"

    def link(self, mu):  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, eta):  # pragma: no cover - abstract
        raise NotImplementedError

    def mu_eta(self, eta):  # pragma: no cover - abstract
        raise NotImplementedError

    def mu_eta2(self, eta):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Logit(Link):
    name = "logit"

    def link(self, mu):
        return special.logit(mu)

    def inverse(self, eta):
        return special.expit(eta)

    def mu_eta(self, eta):
        m = special.expit(eta)
        return np.maximum(m * (1.0 - m), EPS)

    def mu_eta2(self, eta):
        m = special.expit(eta)
        return m * (1.0 - m) * (1.0 - 2.0 * m)


class Probit(Link):
    name = "probit"

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        return np.clip(special.ndtr(eta), EPS, 1 - EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi), EPS)

    def mu_eta2(self, eta):
        return -eta * np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi)


class Cloglog(Link):
    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        eta = np.minimum(eta, 30.0)
        return np.clip(-np.expm1(-np.exp(eta)), EPS, 1 - EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 30.0)
        return np.maximum(np.exp(eta - np.exp(eta)), EPS)

    def mu_eta2(self, eta):
        eta = np.minimum(eta, 30.0)
        return np.exp(eta - np.exp(eta)) * (1.0 - np.exp(eta))


class Log(Link):
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        return np.maximum(np.exp(np.minimum(eta, ETA_MAX)), EPS)

    def mu_eta(self, eta):
        return self.inverse(eta)

    def mu_eta2(self, eta):
        return self.inverse(eta)


class Identity(Link):
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return np.ones_like(eta, dtype=float)

    def mu_eta2(self, eta):
        return np.zeros_like(eta, dtype=float)


class Inverse(Link):
    name = "inverse"

    def link(self, mu):
        return 1.0 / np.asarray(mu, dtype=float)

    def inverse(self, eta):
        return 1.0 / np.asarray(eta, dtype=float)

    def mu_eta(self, eta):
        return -1.0 / np.asarray(eta, dtype=float) ** 2

    def mu_eta2(self, eta):
        return 2.0 / np.asarray(eta, dtype=float) ** 3


LINKS: dict[str, type[Link]] = {c.name: c for c in (Logit, Probit, Cloglog, Log, Identity, Inverse)}


def register_link(cls: type[Link]) -> type[Link]:
    """Make a link class available by its ``name`` to families that list it."""
    LINKS[cls.name] = cls
    return cls


class Family:
    """A response distribution with a link. Subclasses set the class attributes and override
    the distribution's methods; :class:`Family` itself holds the generic GLM algebra.

    Class attributes
    ----------------
    name : str
        Registry name (``"binomial"``).
    links : tuple of str
        Allowed link names; the first is the default (canonical where there is one).
    canonical_link : str or None
        The canonical link (its Fisher and observed weights coincide).
    profiled_lmm : bool
        Fitted exactly as a linear mixed model with the residual SD profiled out (gaussian).
    reads_cbind : bool
        Accepts ``cbind(successes, failures)`` and two-level factor responses.
    discrete : bool
        Integer-valued response (scaled residuals are randomized).
    count_like : bool
        Zeros are meaningful (the zero-inflation check applies).
    mean_word : str
        What the mean is called in reports ("probability", "rate", "mean").
    """

    name = "family"
    links: tuple[str, ...] = ()
    canonical_link: str | None = None
    profiled_lmm = False
    reads_cbind = False
    discrete = False
    count_like = False
    mean_word = "mean"

    def __init__(self, link: str | Link | None = None):
        if isinstance(link, Link):
            self.link = link
        else:
            name = link or self.links[0]
            if not isinstance(name, str) or name not in self.links:
                raise ModelError(
                    f"link {name!r} is not available for the {self.name} family; "
                    f"choose one of {', '.join(map(repr, self.links))}"
                )
            self.link = LINKS[name]()
        self.canonical = self.link.name == self.canonical_link

    # -- identity ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Family({self.name!r}, link={self.link.name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and type(self) is type(other) and self.link.name == other.link.name

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link.name))

    @property
    def is_default_link(self) -> bool:
        return self.link.name == self.links[0]

    # -- variance function and log-density ---------------------------------------------------
    def variance(self, mu):  # pragma: no cover - abstract
        raise NotImplementedError

    def dvariance(self, mu):  # pragma: no cover - abstract
        raise NotImplementedError

    def loglik_obs(self, y, mu, pw):
        """Per-observation log-density with all constants (at dispersion 1)."""
        return self.loglik_const(y, pw) + self.loglik_kernel(y, self.link.link(mu), pw)

    def loglik_const(self, y, pw):  # pragma: no cover - abstract
        """The part of the log-density that does not depend on the mean (computed once)."""
        raise NotImplementedError

    def loglik_kernel(self, y, eta, pw):  # pragma: no cover - abstract
        """Log-density minus :meth:`loglik_const`, as a function of the linear predictor."""
        raise NotImplementedError

    def dev_resid(self, y, mu, pw):  # pragma: no cover - abstract
        """Squared deviance residuals (R's ``dev.resids``)."""
        raise NotImplementedError

    # -- pieces for PIRLS and the gradient -----------------------------------------------------
    def working(self, eta, y, pw):
        """Return ``mu, r, W, Wobs, dW`` (see the module docstring)."""
        link = self.link
        mu = link.inverse(eta)
        me = link.mu_eta(eta)
        v = self.variance(mu)
        g = me / v
        r = pw * (y - mu) * g
        W = pw * me * g
        me2 = link.mu_eta2(eta)
        if self.canonical:
            Wobs = W
        else:
            dg = (me2 * v - me * self.dvariance(mu) * me) / (v * v)
            Wobs = W - pw * (y - mu) * dg
        dW = pw * (2 * me * me2 * v - me * me * self.dvariance(mu) * me) / (v * v)
        return mu, r, W, Wobs, dW

    def start_mu(self, y, pw):  # pragma: no cover - abstract
        """Starting means as R's ``family$initialize``."""
        raise NotImplementedError

    # -- the response ---------------------------------------------------------------------------
    def check_response(self, y, trials, weights_given: bool, name: str) -> None:
        """Raise :class:`DataError` (or warn) when ``y`` is outside the family's support."""
        if not np.all(np.isfinite(y)):
            raise DataError(f"response '{name}' has infinite values")

    def observed(self, y, pw):
        """The response on the scale :meth:`simulate` draws (binomial: counts of successes)."""
        return np.asarray(y, dtype=float)

    def simulate(self, rng, mu, trials, scale: float, size: tuple) -> np.ndarray:  # pragma: no cover
        """Draw responses with mean ``mu`` (broadcast to ``size``)."""
        raise NotImplementedError

    def to_mean_scale(self, sims, trials):
        """Simulated responses (as :meth:`simulate` returns them) on the scale of ``spec.y``."""
        return sims

    # -- interpretation --------------------------------------------------------------------------
    def latent_variance(self, eta_mean: float, re_var: float, sigma: float) -> float:  # pragma: no cover
        """Distribution-specific variance on the latent (link) scale, for ICC and R²."""
        raise NotImplementedError

    @property
    def logistic(self) -> bool:
        """A Bernoulli/binomial model with the logit link (latent logistic scale: the median
        odds ratio and Zeger's attenuation formula apply)."""
        return False

    @property
    def ratio_name(self) -> str | None:
        """What exp(coefficient) is ("odds ratio", "rate ratio") — None when not a ratio."""
        return {"logit": "odds ratio", "log": "rate ratio"}.get(self.link.name)

    @property
    def difference_word(self) -> str:
        """Name of the mean in effect contrasts ("risk", "rate", "mean")."""
        return {"probability": "risk"}.get(self.mean_word, self.mean_word)

    def statsmodels_family(self):  # pragma: no cover - abstract
        """The matching statsmodels GLM family (for GEE)."""
        raise NotImplementedError

    def _sm_link(self):
        import statsmodels.api as sm

        links = {"logit": sm.families.links.Logit, "probit": sm.families.links.Probit,
                 "cloglog": sm.families.links.CLogLog, "log": sm.families.links.Log,
                 "identity": sm.families.links.Identity, "inverse": sm.families.links.InversePower}
        if self.link.name not in links:
            raise ModelError(f"GEE has no {self.link.name} link")
        return links[self.link.name]()


class Binomial(Family):
    name = "binomial"
    links = ("logit", "probit", "cloglog")
    canonical_link = "logit"
    reads_cbind = True
    discrete = True
    count_like = True
    mean_word = "probability"

    @property
    def logistic(self) -> bool:
        return self.link.name == "logit"

    def variance(self, mu):
        return np.maximum(mu * (1.0 - mu), EPS)

    def dvariance(self, mu):
        return 1.0 - 2.0 * mu

    def loglik_obs(self, y, mu, pw):
        mu = np.clip(mu, EPS, 1 - EPS)
        k = pw * y
        return self.loglik_const(y, pw) + special.xlogy(k, mu) + special.xlogy(pw - k, 1.0 - mu)

    def loglik_const(self, y, pw):
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
        mu = np.clip(mu, EPS, 1 - EPS)
        return 2 * pw * (special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu)))

    def working(self, eta, y, pw):
        if self.canonical:  # one expit instead of three
            mu = special.expit(eta)
            W = pw * np.maximum(mu * (1.0 - mu), EPS)
            return mu, pw * (y - mu), W, W, W * (1.0 - 2.0 * mu)
        return super().working(eta, y, pw)

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

    def start_mu(self, y, pw):
        return y + 0.1

    def check_response(self, y, trials, weights_given, name):
        super().check_response(y, trials, weights_given, name)
        if np.any(y < 0):
            raise DataError(f"response '{name}' has negative counts (e.g. {y[y < 0][0]:g})")
        if np.any(y != np.round(y)):
            warnings.warn(
                f"response '{name}' has non-integer counts (e.g. {y[y != np.round(y)][0]:g}) "
                f"for the {self.name} family",
                DataWarning,
                stacklevel=5,
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


_REGISTRY: dict[str, type[Family]] = {}


def register_family(cls: type[Family], *aliases: str) -> type[Family]:
    """Make ``family="name"`` (and each alias) find ``cls``."""
    for key in (cls.name, *aliases):
        _REGISTRY[key.lower()] = cls
    return cls


register_family(Binomial)
register_family(Poisson)
register_family(Gaussian)


def family_names() -> tuple[str, ...]:
    """Registered family names (aliases excluded), in registration order."""
    return tuple(dict.fromkeys(c.name for c in _REGISTRY.values()))


FAMILIES = family_names()


def get_family(family: str | Family = "binomial", link: str | None = None) -> Family:
    """Turn ``"binomial"`` (and an optional link name) into a :class:`Family` object.

    A :class:`Family` instance passes through (with another ``link`` it is rebuilt).

    Raises
    ------
    ModelError
        For an unknown family or a link the family does not support.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        return type(family)(link)
    if isinstance(family, type) and issubclass(family, Family):
        return family(link)
    if not isinstance(family, str) or family.lower() not in _REGISTRY:
        raise ModelError(
            f"unknown family {family!r}; choose one of {', '.join(map(repr, family_names()))}"
        )
    return _REGISTRY[family.lower()](link)
