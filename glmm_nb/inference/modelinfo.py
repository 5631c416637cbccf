"""What the small-sample modules read from a fitted result, and a per-result cache.

Results are immutable, so anything computed from one (Satterthwaite's Hessian, Kenward-Roger's
matrices) is cached weakly by the result's identity and dies with it.
"""

from __future__ import annotations

__all__ = ["cache_get", "cache_put", "is_lmm", "family_of", "link_of"]


def is_lmm(m) -> bool:
    """A linear mixed model (residual scale estimated, beta profiled): small-sample df apply."""
    return bool(m.request.family.profiled_lmm)


def family_of(m):
    """The family object at the fitted dispersion."""
    return m.fitted_family


def link_of(m):
    """The fitted link object (``link``, ``inverse``, ``mu_eta``)."""
    return m.request.family.link


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
