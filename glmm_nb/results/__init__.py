"""The frozen result record, its one builder, the Wald table and the display path."""

from .build import build_result
from .result import GLMMResult
from .tables import wald_table

__all__ = ["GLMMResult", "build_result", "wald_table"]
