"""Regenerate the vendored Vega / Vega-Lite / vega-embed bundle (package data).

Why vendored: reports must open offline as one file, so the libraries are inlined once per
page. vl-convert-python builds a single dependency-free bundle of exactly the Vega-Lite
version Altair emits; building it takes about 3 s, too slow to do per report, so the bundle
is generated once with this module and shipped in ``glmm_nb/report/static``::

    python -m glmm_nb.report.vendor

Vega, Vega-Lite and vega-embed are BSD-3-Clause licensed (see ``static/NOTICE``).
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
BUNDLE = STATIC / "vega-bundle.min.js"
VL_VERSION = "6.4"


def build() -> Path:
    import vl_convert as vlc

    js = vlc.javascript_bundle(vl_version=VL_VERSION)
    if "</script" in js.lower() or "<!--" in js:
        raise RuntimeError("the bundle cannot be inlined in a <script> element as is")
    BUNDLE.write_text(js, encoding="utf-8")
    return BUNDLE


if __name__ == "__main__":  # pragma: no cover
    print(build())
