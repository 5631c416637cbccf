"""Parametric bootstrap: simulate from the fit, refit, collect (lme4's ``bootMer``).

Refits start at the original estimates, run in worker processes when ``n_jobs > 1``
(concurrent.futures), and show a progress bar (``tqdm.auto``: a text bar in a terminal, a
widget in a notebook). Results are reproducible for a given ``seed`` whatever ``n_jobs``.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..pipeline import refit
from ..progress import progress_enabled, quiet
from .params import sdcor_names, theta_to_sdcor, zi_sdcor_names, zi_theta_to_sdcor
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

    def summary_frame(self) -> pd.DataFrame:
        """Per parameter: mean, SD and the 95 % percentile interval of the draws."""
        ci = self.confint()
        return pd.DataFrame({"mean": self.draws.mean(), "sd": self.draws.std(ddof=1),
                             "conf_low": ci.conf_low, "conf_high": ci.conf_high})

    def __repr__(self) -> str:
        head = (f"Parametric bootstrap: {len(self.draws)} of {self.nsim} refits succeeded"
                f"{f' ({self.n_failed} failed)' if self.n_failed else ''}, seed {self.seed}")
        return head + "\n" + self.summary_frame().to_string(float_format=lambda v: f"{v:.4g}")

    def _repr_html_(self) -> str:
        import html

        head = html.escape(repr(self).splitlines()[0])
        return f"<div><p><b>{head}</b></p>{self.summary_frame().to_html(float_format=lambda v: f'{v:.4g}')}</div>"


def refit_chunk(m, start, ys):
    """Refit ``m`` to each response in ``ys`` (same rows) from ``start``: (draw, converged)."""
    gaussian = m.request.family.profiled_lmm
    out = []
    for y in ys:
        try:
            with warnings.catch_warnings(), quiet():  # the bootstrap's bar, not one per refit
                warnings.simplefilter("ignore")
                r = refit(m, y=y, start=start)
            row = np.concatenate([r.fixef.to_numpy(), theta_to_sdcor(m.spec, r.theta, r.sigma, gaussian),
                                  r.dispersion.to_numpy(dtype=float), r.zi_fixef.to_numpy(), r.disp_fixef.to_numpy(),
                                  r.thresholds.to_numpy(), zi_theta_to_sdcor(m.spec, r.zi_theta)])
            out.append((row, bool(r.converged)))
        except Exception:  # a refit that breaks counts as failed, as in bootMer
            out.append((None, False))
    return out


def bootstrap(m, nsim: int = 200, seed: int | None = None, n_jobs: int = 1,
              progress: bool | None = None) -> BootstrapResult:
    """Parametric bootstrap of the fixed effects and random-effect SDs/correlations (the zero
    part's, ``zi~sd__…``, last).

    ``progress``: a bar over the refits; None follows the fit's ``control["progress"]``, then
    the session setting (:func:`glmm_nb.set_progress`), else on in notebooks and terminals."""
    if not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ModelError(f"nsim must be a positive integer, not {nsim!r}")
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    sims = simulate(m, nsim=nsim, seed=seed, re="new")
    spec = m.spec
    ys_all = m.request.family.to_mean_scale(sims, np.asarray(spec.weights))
    ys = [ys_all[:, i] for i in range(nsim)]
    start = np.asarray(m.opt.final)
    args = (m, start)
    chunks = [list(range(i, min(i + 4, nsim))) for i in range(0, nsim, 4)]
    results: dict[int, tuple] = {}
    bar = None
    if progress_enabled(progress if progress is not None else m.request.control.get("progress")):
        from tqdm.auto import tqdm

        bar = tqdm(total=nsim, desc="bootstrap refits")
    if n_jobs > 1:
        with ProcessPoolExecutor(max_workers=n_jobs) as ex:
            futs = {ex.submit(refit_chunk, *args, [ys[i] for i in ch]): ch for ch in chunks}
            for fut in as_completed(futs):
                for i, r in zip(futs[fut], fut.result()):
                    results[i] = r
                if bar is not None:
                    bar.update(len(futs[fut]))
    else:
        for ch in chunks:
            for i, r in zip(ch, refit_chunk(*args, [ys[i] for i in ch])):
                results[i] = r
            if bar is not None:
                bar.update(len(ch))
    if bar is not None:
        bar.close()
    names = (list(m.fixef.index) + sdcor_names(spec, m.request.family.profiled_lmm) + list(m.dispersion.index)
             + [f"zi~{c}" for c in m.zi_fixef.index] + [f"disp~{c}" for c in m.disp_fixef.index]
             + list(m.thresholds.index) + zi_sdcor_names(spec))
    rows = [results[i][0] for i in range(nsim) if results[i][0] is not None and results[i][1]]
    failed = nsim - len(rows)
    draws = pd.DataFrame(rows, columns=names)
    return BootstrapResult(draws=draws, n_failed=failed, nsim=nsim, seed=seed)
