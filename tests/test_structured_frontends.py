"""Structured covariance terms (issue 26) in the paper table and the front ends (CLI, %%glmm).

The paper table gives a structured term one compact block of its parameters instead of a row per
column (161 rows for ou_pois before); its numbers are checked against the implied covariance
matrix (an SD is √Σ_aa, a correlation Σ_ab/(SD_a SD_b), ou's correlation at distance one
exp(−rate)), which the structured tests check against glmmTMB 1.1.5. The front ends fit the
wave-3 AR(1) case (ar1_gauss, gaussian ML) and must reach glmmTMB's log-likelihood.
"""

import json

import numpy as np
import pandas as pd
import pytest

import glmm_nb
from glmm_nb.cli import main
from tests.conftest import FIXTURES
from tests.test_structured import load

S = FIXTURES / "structured"
AR1 = json.loads((S / "ar1_gauss.json").read_text())


@pytest.fixture(scope="module")
def two():
    out = []
    for cid in ("ou_pois", "epil_cs_pois"):
        case, d = load(cid)
        out.append(glmm_nb.glmm(case["formula"], d, family="poisson"))
    return out


def test_paper_table_gives_structured_terms_a_compact_block(two, tmp_path):
    ou, cs = two
    t = glmm_nb.table([ou, cs], labels=["OU", "CS"])
    fr = t.to_frame()
    re_rows = list(t.sections[t.sections == "Random effects"].index)
    ou_term, cs_term = "ou(pos(t) + 0 | id)", "cs(periodf + 0 | subject)"
    assert re_rows == [f"SD ({ou_term})", f"rate ({ou_term})", f"rho at distance 1 ({ou_term})"] + [
        f"SD periodf[p{k}] ({cs_term})" for k in range(1, 5)] + [f"rho ({cs_term})"]
    assert len(fr) < 30  # not a row per position (61 positions)
    S_ou = ou.covariance_matrices()["id"].to_numpy()
    S_cs = cs.covariance_matrices()["subject"].to_numpy()
    sd_cs = np.sqrt(np.diag(S_cs))
    rate = ou.structure_parameters()["id"]["rate"]
    cols = [f"{c:.2f}" for c in ou.covariance_matrices()["id"].columns.map(lambda s: float(s[s.index("(") + 1:-1]))]
    i, j = 0, cols.index(f"{float(cols[0]) + 1:.2f}")  # two positions at distance one
    want = {f"SD ({ou_term})": (np.sqrt(S_ou[0, 0]), "OU"), f"rate ({ou_term})": (rate, "OU"),
            f"rho at distance 1 ({ou_term})": (S_ou[i, j] / S_ou[0, 0], "OU"),
            f"rho ({cs_term})": (S_cs[0, 1] / (sd_cs[0] * sd_cs[1]), "CS"),
            f"SD periodf[p4] ({cs_term})": (sd_cs[3], "CS")}
    for row, (v, col) in want.items():
        assert float(fr.loc[row, col]) == pytest.approx(v, abs=6e-4), row  # shown to 3 decimals
    assert np.exp(-rate) == pytest.approx(S_ou[i, j] / S_ou[0, 0], rel=1e-10)
    assert fr.loc[f"SD ({ou_term})", "CS"] == "" and fr.loc[f"rho ({cs_term})", "OU"] == ""
    html, md, tex = t.to_html(), t.to_markdown(), t.to_latex()
    assert "rate (ou(pos(t) + 0 | id))" in html and "periodf[p1]" not in html.split("Random effects")[1].split("SD periodf")[0]
    assert r"rate (ou(pos(t) + 0 \| id))" in md and md.count("\n|") == len(fr) + 2 + len(set(t.sections)) - 1
    assert r"rho (cs(periodf + 0 \textbar{} subject))" in tex
    docx = pytest.importorskip("docx")
    doc = docx.Document(str(t.to_docx(tmp_path / "s.docx")))
    cells = [c.text for row in doc.tables[0].rows for c in row.cells]
    assert f"rho at distance 1 ({ou_term})" in cells and f"{float(fr.loc[f'rho ({cs_term})', 'CS']):.3f}" in cells


def test_cli_fits_a_structured_formula(capsys):
    data = str(S / "ar1sim.csv")
    rc = main(["fit", data, "y ~ x + ar1(timef + 0 | id)", "--factor", "timef", "--ml", "--family", "gaussian"])
    out = capsys.readouterr().out
    assert rc == 0
    ll = float(out.split("logLik")[1].split("\n")[1].split()[2])
    assert ll == pytest.approx(AR1["loglik"], abs=0.05)  # printed to one decimal
    rho = glmm_nb.glmm("y ~ x + ar1(timef + 0 | id)", _ar1_data(), family="gaussian",
                       reml=False).structure_parameters()["id"]["rho"]
    assert f"{rho:.3f} (ar1)" in out
    rc = main(["fit", data, "y ~ x + ar1(time + 0 | id)", "--ml", "--family", "gaussian"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("glmm-nb: ") and "ar1(time + 0 | id)" in err and len(err.strip().splitlines()) == 1


def _ar1_data():
    d = pd.read_csv(S / "ar1sim.csv")
    d["timef"] = pd.Categorical(d["timef"])
    return d


def test_cell_magic_fits_a_structured_formula(capsys):
    pytest.importorskip("IPython")
    from IPython.testing import globalipapp

    ip = globalipapp.start_ipython() or globalipapp.get_ipython()  # one shell per process (tests/magics too)
    ip.run_line_magic("load_ext", "glmm_nb")
    ip.user_ns["d_ar1"] = _ar1_data()
    ip.run_cell("%%glmm m_ar1 --data d_ar1 --family gaussian --ml\ny ~ x + ar1(timef + 0 | id)\n")
    m = ip.user_ns["m_ar1"]
    assert m.loglik == pytest.approx(AR1["loglik"], abs=1e-6)
    assert f"{m.structure_parameters()['id']['rho']:.3f} (ar1)" in capsys.readouterr().out


def test_model_builder_fits_a_structured_formula():
    pytest.importorskip("ipywidgets")
    b = glmm_nb.ModelBuilder(_ar1_data(), formula="y ~ x + ar1(timef + 0 | id)", family="gaussian", name="ar")
    assert "fitted as written" in b.formula_note.value  # no controls for a structure: said, not dropped
    b.reml.value = False
    m = b.fit()
    assert m.loglik == pytest.approx(AR1["loglik"], abs=1e-6) and "converged" in b.status.value
    rho = m.structure_parameters()["id"]["rho"]
    assert f"{rho:.3f} (ar1)" in b.output.value
    fr = b.table().to_frame()
    assert float(fr.loc["rho (ar1(timef + 0 | id))"].iloc[0]) == pytest.approx(rho, abs=6e-4)
    assert not any(i.startswith("SD (timef[") for i in fr.index)
