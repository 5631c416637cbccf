"""The ``%%glmm`` cell text for a set of choices — shared by the magics' docs and the widget."""

from __future__ import annotations

from .families import get_family

__all__ = ["cell_text"]


def cell_text(name: str | None, data: str, formula: str, family: str, link: str | None, method: str,
              nagq: int, reml: bool | None = None, report: str | None = None, weights: str | None = None,
              ziformula: str | None = None, hurdle: bool = False, ordered: str | None = None) -> str:
    """The %%glmm cell equivalent to a set of choices (used by the model builder)."""
    import shlex

    parts = ["%%glmm"]
    if name:
        parts.append(name)
    parts += ["--data", data, "--family", family]
    if link:
        parts += ["--link", link]
    if method != "laplace":
        parts += ["--method", method, "--nagq", str(nagq)]
    if get_family(family).profiled_lmm and reml is False:
        parts.append("--ml")
    if weights:
        parts += ["--weights", shlex.quote(weights)]
    if ziformula:
        parts += ["--ziformula", shlex.quote(ziformula)]
    if hurdle:
        parts.append("--hurdle")
    if ordered:
        parts += ["--ordered", shlex.quote(ordered)]
    if report:
        parts += ["--report", report]
    return " ".join(parts) + "\n" + formula
