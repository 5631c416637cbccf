"""What the small-sample modules read from a fitted result, whether its family is a string (today)
or a family object (the refactor), and a per-result cache for derived matrices.

Results are immutable, so anything computed from one (Satterthwaite's Hessian, Kenward-Roger's
matrices) is cached weakly by the result's identity and dies with it.
"""

from __future__ import annotations

from ..families import get_family

__all__ = ["cache_get", "cache_put", "family_name", "family_of", "link_name", "link_of"]


def family_name(m) -> str:
    """The family's name (``"gaussian"``, ``"binomial"``, ...)."""
    fam = m.family
    return str(getattr(fam, "name", fam))


def link_name(m) -> str:
    """The link's name (``"identity"``, ``"logit"``, ``"log"``, ...)."""
    link = getattr(m.family, "link", None)
    if link is not None and hasattr(link, "name"):
        return str(link.name)
    return str(getattr(m.link, "name", m.link))


def family_of(m):
    """The family object (``link.inverse``, ``link.mu_eta``, ...)."""
    fam = m.family
    if hasattr(fam, "link") and hasattr(fam, "name"):
        return fam
    return get_family(family_name(m), link_name(m))


def link_of(m):
    """The fitted link object (``link``, ``inverse``, ``mu_eta``)."""
    return family_of(m).link


def cache_get(cache, m):
    """Cached value for the result ``m`` (a ``weakref.WeakKeyDictionary``), or None."""
    try:
        return cache.get(m)
    except TypeError:  # not weak-referenceable: no cache
        return None


def cache_put(cache, m, value) -> None:
    try:
        cache[m] = value
    except TypeError:
        pass
