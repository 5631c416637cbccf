"""Response families and link functions — families are objects the rest of the package asks.

:mod:`.links` (links), :mod:`.base` (the :class:`Family` interface and its generic GLM algebra),
:mod:`.classic` (binomial, Poisson, gaussian), :mod:`.dispersion` (negative binomial NB2/NB1,
Gamma and beta, whose dispersion parameter is estimated with the other parameters),
:mod:`.betabinomial` (overdispersed successes out of trials), :mod:`.shape` (a dispersion and a
shape estimated: :mod:`.student` t, :mod:`.tweedie`), :mod:`.truncated` (zero-truncated counts), :mod:`.dispmodel` (a dispformula),
:mod:`.ordinal` (cumulative-link models of ordered categories; cell probabilities in
:mod:`.cumulative`); :mod:`.kernel` binds a family at one dispersion to one response for PIRLS. Adding a
family is one subclass and one :func:`register_family` line.
"""

from __future__ import annotations

from ..errors import ModelError
from .base import Family
from .betabinomial import BetaBinomial
from .classic import Binomial, Gaussian, Poisson
from .dispmodel import DispersionModel, GaussianML, with_dispersion_model
from .dispersion import BetaFamily, DispersionFamily, GammaFamily, NegativeBinomial1, NegativeBinomial2
from .links import LINKS, Link, register_link
from .ordinal import Ordinal, threshold_names
from .shape import ShapeFamily
from .student import StudentT
from .truncated import Truncated, TruncatedNB1, TruncatedNB2, TruncatedPoisson
from .tweedie import Tweedie
from .zeroinfl import ZeroInflated, zero_inflated

__all__ = ["Link", "Family", "Binomial", "Poisson", "Gaussian", "DispersionFamily", "NegativeBinomial2",
           "NegativeBinomial1", "GammaFamily", "BetaFamily", "BetaBinomial", "ShapeFamily", "StudentT", "Tweedie", "Truncated", "TruncatedPoisson", "TruncatedNB2", "TruncatedNB1", "DispersionModel", "GaussianML", "with_dispersion_model", "Ordinal", "threshold_names", "ZeroInflated", "zero_inflated", "get_family", "register_family", "register_link",
           "family_names", "LINKS", "FAMILIES"]


_REGISTRY: dict[str, type[Family]] = {}


def register_family(cls: type[Family], *aliases: str) -> type[Family]:
    """Make ``family="name"`` (and each alias) find ``cls``."""
    for key in (cls.name, *aliases):
        _REGISTRY[key.lower()] = cls
    return cls


register_family(Binomial)
register_family(Poisson)
register_family(Gaussian)
register_family(NegativeBinomial2, "nbinom2", "negbin", "nb2")
register_family(NegativeBinomial1, "nb1")
register_family(GammaFamily)
register_family(BetaFamily)
register_family(BetaBinomial, "beta_binomial")
register_family(StudentT, "student_t", "t_family")
register_family(Tweedie)
register_family(TruncatedPoisson)
register_family(TruncatedNB2, "truncated_negative_binomial")
register_family(TruncatedNB1)
register_family(Ordinal, "clmm", "cumulative")


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
