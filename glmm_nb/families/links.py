"""Link functions: the inverse link and its first three derivatives (dmu/deta …)."""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["Link", "Logit", "Probit", "Cloglog", "Log", "Identity", "Inverse", "LINKS", "register_link", "EPS",
           "ETA_MAX", "LOG_EPS"]

EPS = np.finfo(float).eps
ETA_MAX = 700.0
LOG_EPS = float(np.log(EPS))  # log of the smallest mean the log link returns


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

    def mu_eta3(self, eta):  # pragma: no cover - abstract
        """Third derivative d3mu/deta3 (families whose Laplace step uses observed information)."""
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

    def mu_eta3(self, eta):
        m = special.expit(eta)
        d = m * (1.0 - m)
        return d * ((1.0 - 2.0 * m) ** 2 - 2.0 * d)


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

    def mu_eta3(self, eta):
        return (eta * eta - 1.0) * np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi)


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

    def mu_eta3(self, eta):
        eta = np.minimum(eta, 30.0)
        e = np.exp(eta)
        return np.exp(eta - e) * (1.0 - 3.0 * e + e * e)


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

    def mu_eta3(self, eta):
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

    def mu_eta3(self, eta):
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

    def mu_eta3(self, eta):
        return -6.0 / np.asarray(eta, dtype=float) ** 4


LINKS: dict[str, type[Link]] = {c.name: c for c in (Logit, Probit, Cloglog, Log, Identity, Inverse)}


def register_link(cls: type[Link]) -> type[Link]:
    """Make a link class available by its ``name`` to families that list it."""
    LINKS[cls.name] = cls
    return cls


