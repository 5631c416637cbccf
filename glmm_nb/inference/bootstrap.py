"""Parametric bootstrap: simulate from the fit, refit, collect (lme4's ``bootMer``).

Refits start at the original estimates, run in worker processes when ``n_jobs > 1``
(concurrent.futures), and show a progress bar (``tqdm.auto``: a text bar in a terminal, a
widget in a notebook). Results are reproducible for a given ``seed`` whatever ``n_jobs``.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ModelError
from .params import sdcor_names, theta_to_sdcor
from .simulate import simulate

__all__ = ["BootstrapResult", "bootstrap"]


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """``draws``: one row per successful refit, columns fixed effects then sdcor names."""

    draws: pd.DataFrame
    n_failed: int
    nsim: int
    seed: int | None

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        a = (1 - level) / 2
        out = pd.DataFrame({"conf_low": self.draws.quantile(a), "conf_high": self.draws.quantile(1 - a)})
        out.index.name = "term"
        return out


def _refit_chunk(spec, family, link, method, nagq, reml, start, ys):
    from ..api import _fit
    from ..families import get_family

    fam = get_family(family, link)
    gaussian = family == "gaussian"
    out = []
    for y in ys:
        s2 = dataclasses.replace(spec, y=y)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = _fit(s2, fam, method, nagq, reml, start=start)
            row = np.concatenate([r.fixef.to_numpy(), theta_to_sdcor(spec, r.theta, r.sigma, gaussian)])
            out.append((row, bool(r.converged)))
        except Exception:  # a refit that breaks counts as failed, as in bootMer
            out.append((None, False))
    return out


def bootstrap(m, nsim: int = 200, seed: int | None = None, n_jobs: int = 1, progress: bool = True) -> BootstrapResult:
    """Parametric bootstrap of the fixed effects and random-effect SDs/correlations."""
    if not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ModelError(f"nsim must be a positive integer, not {nsim!r}")
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    sims = simulate(m, nsim=nsim, seed=seed, re="new")
    spec = m.spec
    if m.family == "binomial":
        trials = np.asarray(spec.weights)
        ys = [np.where(trials > 0, sims[:, i] / np.where(trials > 0, trials, 1), 0.0) for i in range(nsim)]
    else:
        ys = [sims[:, i] for i in range(nsim)]
    method = m.method if m.method in ("laplace", "agq") else "laplace"
    start = np.concatenate([m.theta, m.fixef.to_numpy()])
    args = (spec, m.family, m.link, method, m.nagq, bool(m.reml), start)
    chunks = [list(range(i, min(i + 4, nsim))) for i in range(0, nsim, 4)]
    results: dict[int, tuple] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=nsim, desc="bootstrap refits")
    if n_jobs > 1:
        with ProcessPoolExecutor(max_workers=n_jobs) as ex:
            futs = {ex.submit(_refit_chunk, *args, [ys[i] for i in ch]): ch for ch in chunks}
            for fut in as_completed(futs):
                for i, r in zip(futs[fut], fut.result()):
                    results[i] = r
                if bar is not None:
                    bar.update(len(futs[fut]))
    else:
        for ch in chunks:
            for i, r in zip(ch, _refit_chunk(*args, [ys[i] for i in ch])):
                results[i] = r
            if bar is not None:
                bar.update(len(ch))
    if bar is not None:
        bar.close()
    names = list(m.fixef.index) + sdcor_names(spec, m.family == "gaussian")
    rows = [results[i][0] for i in range(nsim) if results[i][0] is not None and results[i][1]]
    failed = nsim - len(rows)
    draws = pd.DataFrame(rows, columns=names)
    return BootstrapResult(draws=draws, n_failed=failed, nsim=nsim, seed=seed)
