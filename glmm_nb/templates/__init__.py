"""Jinja2 report templates (package data): ``report/base.html.j2`` and one partial per section."""
