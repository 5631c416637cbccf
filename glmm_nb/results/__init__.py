"""The frozen fit result and its tidy tables."""

from .result import GLMMResult

__all__ = ["GLMMResult"]
