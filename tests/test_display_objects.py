"""Warnings point at the analyst's line; result objects print short summaries, not dumps."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import glmm_nb
from glmm_nb import SingularFitWarning
from tests.conftest import load_case


def test_warning_points_at_the_callers_line():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"y": rng.integers(0, 2, 200), "x": rng.normal(size=200), "g": np.repeat(np.arange(20), 10)})
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        glmm_nb.glmm("y ~ x + (1 | g)", df)  # a singular fit: no variation between these groups
    sing = [x for x in w if issubclass(x.category, SingularFitWarning)]
    assert len(sing) == 1 and sing[0].filename == __file__


def test_result_objects_print_short_summaries():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case, df = load_case("cbpp_laplace")
        m = glmm_nb.glmm(case["formula"], df)
        d = m.diagnose(nsim=40)
        b = m.bootstrap(nsim=3, seed=2, progress=False)
        c2, d2 = load_case("contraception_slope")
        c = glmm_nb.glmm(c2["formula"], d2).causal_checks()
    for obj, first in ((d, "Simulated-residual diagnostics"), (b, "Parametric bootstrap: 3 of 3"),
                       (c, "Within/between checks for 'district'")):
        text = repr(obj)
        assert text.startswith(first) and len(text.splitlines()) < 15
        assert "<table" in obj._repr_html_() or "<ul>" in obj._repr_html_() or "<p>" in obj._repr_html_()
    assert "uniformity (KS)" in repr(d) and "scaled_residual" not in repr(d)
    np.testing.assert_allclose(b.summary_frame()["mean"], b.draws.mean())


def test_one_number_formatter_everywhere():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case, df = load_case("contraception_slope")
        m = glmm_nb.glmm(case["formula"], df)
    ct = m.coef_table()
    text = m.summary()
    block = text.split("Fixed effects:\n")[1].splitlines()[1:8]
    # small estimates keep three significant digits; all decimal points line up
    row = next(r for r in block if r.startswith("age2"))
    assert f"{ct.loc['age2', 'estimate']:.6f}" in row and f"{ct.loc['age2', 'std_error']:.6f}" in row
    dots = {r.index(".", r.index(" ", 12)) for r in block}
    assert len(dots) == 1
    assert "< 0.001" in text and "e-" not in text.split("Fixed effects:")[1]
    html = m._repr_html_()
    assert "None" not in html and "nan" not in html.lower()
    assert f'title="p = {ct.loc["age2", "p_value"]:.3g}"' in html and ">&lt; 0.001<" in html
    rep = m.report(diagnostics_nsim=20).html
    assert f'title="p = {ct.loc["age2", "p_value"]:.3g}">&lt; 0.001<' in rep
    assert f"{ct.loc['age2', 'estimate']:.6f}" in rep
