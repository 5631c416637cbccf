"""Start-up cost (issue 24): ``import glmm_nb`` and ``glmm-nb --version`` load no numeric or
display stack; a fit loads no display stack, statsmodels, numba, nbclient or ipykernel; every
public name still resolves (lazily)."""

import subprocess
import sys

HEAVY = ("numpy", "pandas", "scipy", "formulaic", "statsmodels", "altair", "numba", "nbclient", "ipykernel",
         "IPython", "ipywidgets", "jinja2", "tqdm")


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint('LOADED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("LOADED:"), out.stdout
    return [m for m in line[len("LOADED:"):].split(",") if m]


def test_import_and_version_load_nothing_heavy():
    assert _loaded("import glmm_nb") == []
    assert _loaded("from glmm_nb.cli import main\nassert main(['--version']) == 0") == []


def test_a_fit_loads_only_the_numeric_stack():
    loaded = _loaded("import glmm_nb\nm = glmm_nb.glmm('use ~ age + (1 | district)', "
                     "glmm_nb.datasets.load('contraception'))\nm.summary()")
    assert set(loaded) <= {"numpy", "pandas", "scipy", "formulaic"}, loaded


def test_a_fit_defers_what_only_later_methods_use():
    """scipy.stats, inference, marginal effects and the Dask engine load when a method needs them
    (measured: ~0.4 s of the first ``glmm_nb.glmm``), not for a fit and its summary."""
    code = ("import glmm_nb, sys\nm = glmm_nb.glmm('use ~ age + (1 | district)', glmm_nb.datasets.load('contraception'))"
            "\nm.summary()\nlater = ('scipy.stats', 'glmm_nb.inference', 'glmm_nb.marginal', 'glmm_nb.distributed')"
            "\nprint('LOADED:' + ','.join(k for k in later if k in sys.modules))"
            "\nm.confint(method='wald')\nprint('AFTER:' + str('glmm_nb.inference' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED:\n" in out and "AFTER:True" in out, out


def test_every_public_name_resolves():
    import pytest

    import glmm_nb

    for name in glmm_nb.__all__:
        assert getattr(glmm_nb, name) is not None, name
    assert glmm_nb.glmm is glmm_nb.api.glmm and glmm_nb.DataError is glmm_nb.errors.DataError
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        glmm_nb.nope
