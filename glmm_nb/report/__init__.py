"""Self-contained HTML reports (the only place, with magics and widgets, that imports jinja2/altair)."""

from .render import Report, make_report

__all__ = ["Report", "make_report"]
