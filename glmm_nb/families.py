r"""Response families and link functions.

A link maps the mean to the linear predictor, :math:`\eta = g(\mu)`; the fitting core needs
its inverse :math:`\mu(\eta)` and the first two derivatives :math:`\mu'(\eta)`,
:math:`\mu''(\eta)`. A family supplies the variance function :math:`V(\mu)`, its derivative,
and the log-density *with every normalising constant* (so that log-likelihoods are comparable
with lme4's ``logLik``).

With prior weights :math:`w` (binomial: number of trials) the per-observation pieces used by
PIRLS and by the analytic gradient are

* score :math:`r = w (y - \mu) \mu' / V`,
* Fisher weight :math:`W = w \mu'^2 / V` (lme4's IRLS weight, used in the Laplace log-determinant),
* observed weight :math:`W_{obs} = -\partial r/\partial\eta` (equal to ``W`` for canonical links),
* :math:`\partial W/\partial\eta`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .errors import ModelError

__all__ = ["Link", "Family", "get_family", "LINKS", "FAMILIES"]

_EPS = np.finfo(float).eps
_ETA_MAX = 700.0


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
        return np.maximum(m * (1.0 - m), _EPS)

    def mu_eta2(self, eta):
        m = special.expit(eta)
        return m * (1.0 - m) * (1.0 - 2.0 * m)


class Probit(Link):
    name = "probit"

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        return np.clip(special.ndtr(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        return np.maximum(np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi), _EPS)

    def mu_eta2(self, eta):
        return -eta * np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi)


class Cloglog(Link):
    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-mu))

    def inverse(self, eta):
        eta = np.minimum(eta, 30.0)
        return np.clip(-np.expm1(-np.exp(eta)), _EPS, 1 - _EPS)

    def mu_eta(self, eta):
        eta = np.minimum(eta, 30.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)

    def mu_eta2(self, eta):
        eta = np.minimum(eta, 30.0)
        return np.exp(eta - np.exp(eta)) * (1.0 - np.exp(eta))


class Log(Link):
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        return np.maximum(np.exp(np.minimum(eta, _ETA_MAX)), _EPS)

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


LINKS = {c.name: c for c in (Logit, Probit, Cloglog, Log, Identity)}


@dataclass(frozen=True)
class Family:
    """A response distribution with a link.

    ``name`` is one of ``binomial``, ``poisson``, ``gaussian``.
    """

    name: str
    link: Link
    canonical: bool

    # -- variance function ------------------------------------------------------------------
    def variance(self, mu):
        if self.name == "binomial":
            return np.maximum(mu * (1.0 - mu), _EPS)
        if self.name == "poisson":
            return np.maximum(mu, _EPS)
        return np.ones_like(mu)

    def dvariance(self, mu):
        if self.name == "binomial":
            return 1.0 - 2.0 * mu
        if self.name == "poisson":
            return np.ones_like(mu)
        return np.zeros_like(mu)

    # -- likelihood -------------------------------------------------------------------------
    def loglik_obs(self, y, mu, pw):
        """Per-observation log-density with all constants (dispersion 1; not gaussian)."""
        if self.name == "binomial":
            mu = np.clip(mu, _EPS, 1 - _EPS)
            k = pw * y
            const = special.gammaln(pw + 1) - special.gammaln(k + 1) - special.gammaln(pw - k + 1)
            return const + special.xlogy(k, mu) + special.xlogy(pw - k, 1.0 - mu)
        if self.name == "poisson":
            return pw * (special.xlogy(y, mu) - mu - special.gammaln(y + 1))
        raise ModelError("the gaussian log-likelihood is computed by the LMM code")

    def loglik_const(self, y, pw):
        """The part of the log-density that does not depend on the mean (computed once)."""
        if self.name == "binomial":
            k = pw * y
            return special.gammaln(pw + 1) - special.gammaln(k + 1) - special.gammaln(pw - k + 1)
        if self.name == "poisson":
            return -pw * special.gammaln(y + 1)
        return np.zeros_like(y)

    def loglik_kernel(self, y, eta, pw):
        """Log-density minus :meth:`loglik_const`, as a function of the linear predictor."""
        if self.name == "binomial":
            if self.link.name == "logit":
                # softplus(eta) = max(eta, 0) + log1p(exp(-|eta|)), faster than logaddexp
                sp = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))
                return pw * (y * eta - sp)
            mu = self.link.inverse(eta)
            return special.xlogy(pw * y, mu) + special.xlogy(pw * (1 - y), 1.0 - mu)
        if self.name == "poisson":
            eta = np.minimum(eta, _ETA_MAX)
            return pw * (y * eta - np.exp(eta))
        raise ModelError("the gaussian log-likelihood is computed by the LMM code")

    def dev_resid(self, y, mu, pw):
        """Squared deviance residuals (lme4's ``dev.resids``)."""
        if self.name == "binomial":
            mu = np.clip(mu, _EPS, 1 - _EPS)
            return 2 * pw * (special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu)))
        if self.name == "poisson":
            return 2 * pw * (special.xlogy(y, y / mu) - (y - mu))
        return pw * (y - mu) ** 2

    # -- pieces for PIRLS and the gradient ------------------------------------------------------
    def working(self, eta, y, pw):
        """Return ``mu, r, W, Wobs, dW`` (see the module docstring)."""
        link = self.link
        if self.canonical and link.name == "logit":  # one expit instead of three
            mu = special.expit(eta)
            me = np.maximum(mu * (1.0 - mu), _EPS)
            W = pw * me
            return mu, pw * (y - mu), W, W, W * (1.0 - 2.0 * mu)
        if self.canonical and link.name == "log":
            mu = link.inverse(eta)
            W = pw * mu
            return mu, pw * (y - mu), W, W, W
        mu = link.inverse(eta)
        me = link.mu_eta(eta)
        v = self.variance(mu)
        g = me / v
        r = pw * (y - mu) * g
        W = pw * me * g
        if self.canonical:
            Wobs = W
        else:
            me2 = link.mu_eta2(eta)
            dg = (me2 * v - me * self.dvariance(mu) * me) / (v * v)
            Wobs = W - pw * (y - mu) * dg
        me2 = link.mu_eta2(eta)
        dW = pw * (2 * me * me2 * v - me * me * self.dvariance(mu) * me) / (v * v)
        return mu, r, W, Wobs, dW

    def start_mu(self, y, pw):
        """Starting means as R's ``family$initialize``."""
        if self.name == "binomial":
            return (pw * y + 0.5) / (pw + 1.0)
        if self.name == "poisson":
            return y + 0.1
        return y.astype(float)

    def __repr__(self) -> str:
        return f"Family({self.name!r}, link={self.link.name!r})"


_CANONICAL = {"binomial": "logit", "poisson": "log", "gaussian": "identity"}
_ALLOWED = {
    "binomial": ("logit", "probit", "cloglog"),
    "poisson": ("log",),
    "gaussian": ("identity",),
}
FAMILIES = tuple(_CANONICAL)


def get_family(family: str | Family = "binomial", link: str | None = None) -> Family:
    """Turn ``"binomial"`` (and an optional link name) into a :class:`Family`.

    Raises
    ------
    ModelError
        For an unknown family or a link the family does not support.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str) or family.lower() not in _CANONICAL:
        raise ModelError(
            f"unknown family {family!r}; choose one of {', '.join(map(repr, FAMILIES))}"
        )
    name = family.lower()
    link = link or _CANONICAL[name]
    if link not in _ALLOWED[name]:
        raise ModelError(
            f"link {link!r} is not available for the {name} family; "
            f"choose one of {', '.join(map(repr, _ALLOWED[name]))}"
        )
    return Family(name=name, link=LINKS[link](), canonical=(link == _CANONICAL[name]))
