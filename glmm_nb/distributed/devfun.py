"""Deviance functions whose every evaluation is one map-reduce over the partitions.

They implement :class:`glmm_nb.likelihood.DevianceFunction`, so the optimizer
(:func:`glmm_nb.optimize.minimize_devfun`) and the result builder
(:func:`glmm_nb.results.build_result`: scaled-gradient and Hessian checks, standard errors)
run on them unchanged. Only parameter-sized vectors travel: ``phi`` out, a deviance and a
gradient (or a Hessian, or the LMM's p × p pieces) back.

``state(phi)`` — what the result builder reads at the estimate besides numbers — is the
in-memory state of the *sample* of clusters (conditional modes and their factorization, for the
sampled spec the result record holds), with the global deviance and PIRLS convergence put in.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..likelihood import LmmState
from ..likelihood.contracts import default_gradient, default_hessian
from .partition import combine_r

__all__ = ["DaskGlmmDevfun", "DaskLmmDevfun", "EvalProgress", "glm_start"]


class EvalProgress:
    """A running count of deviance evaluations with the current value (tqdm; a widget in
    notebooks), or nothing."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc="glmm_nb deviance evaluations", unit="eval")

    def update(self, label: str, value: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{label} {value:.6f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class DaskGlmmDevfun:
    """Laplace (``stage="laplace"``) or AGQ (``stage="agq"``) deviance of ``phi = (theta, beta
    [, log dispersion])`` summed over the partitions."""

    analytic_gradient = True
    profiled = False

    def __init__(self, engine, stage: str, spec, family, sample_dev, progress: EvalProgress | None = None):
        self.engine, self.stage = engine, stage
        self.spec, self.family = spec, family
        self.ntheta, self.p = spec.ntheta, spec.p
        self.sample_dev = sample_dev
        # what the result builder reads from an in-memory devfun: the sample's arrays
        self.y, self.pw, self.X, self.rs = sample_dev.y, sample_dev.pw, sample_dev.X, sample_dev.rs
        self.progress = progress or EvalProgress(False)
        self.nevals = 0
        self.final: dict | None = None

    def _record(self, phi, v: float) -> None:
        self.engine.tracker.record(phi, v)
        self.progress.update(self.stage, v)

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        v = float(self.engine.map_sum("value", np.asarray(phi, dtype=float), self.stage))
        self._record(phi, v)
        return v

    def value_and_grad(self, phi: np.ndarray):
        self.nevals += 1
        v, g = self.engine.map_sum("value_and_grad", np.asarray(phi, dtype=float), self.stage)
        v = float(v)
        self._record(phi, v)
        return v, np.asarray(g, dtype=float)

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray:
        return np.asarray(self.engine.map_sum("exact_gradient", np.asarray(phi, dtype=float), self.stage))

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        """Sum of the partitions' finite-difference Hessians = the finite-difference Hessian of
        the summed gradient (same steps), in one pass."""
        H = np.asarray(self.engine.map_sum("hessian", np.asarray(phi, dtype=float), self.stage))
        return 0.5 * (H + H.T)

    def reset_modes(self) -> None:
        self.engine.map("reset_modes")

    def split(self, phi):
        phi = np.asarray(phi, dtype=float)
        return phi[: self.ntheta], phi[self.ntheta : self.ntheta + self.p]

    def state(self, phi: np.ndarray):
        """The sample's PIRLS state at ``phi`` with the global deviance and convergence."""
        st = self.sample_dev.state(phi)
        if self.final is None:
            return st
        return dataclasses.replace(st, deviance=self.final["deviance"], converged=self.final["converged"])


class DaskLmmDevfun:
    """Profiled (RE)ML deviance of theta from the partitions' Schur pieces (see
    :mod:`.partition`); beta, sigma and the criterion are formed on the driver."""

    analytic_gradient = False
    profiled = True
    family = None

    def __init__(self, engine, spec, reml: bool, sample_dev, progress: EvalProgress | None = None):
        self.engine, self.spec, self.reml = engine, spec, bool(reml)
        self.ntheta, self.p = spec.ntheta, spec.p
        self.sample_dev = sample_dev  # an in-memory LmmDevfun on the sample (for its modes)
        self.rs = sample_dev.rs
        self.progress = progress or EvalProgress(False)
        self.nevals = 0
        p = self.p
        XtWX, XtWy, _yy, _n, _slw = engine.map_sum("lmm_totals", np.zeros(p))
        beta0 = np.linalg.lstsq(XtWX, XtWy, rcond=None)[0]
        self.XtWX, self.XtWyc, self.ycWyc, self.n_eff, self.sum_log_w = engine.map_sum("lmm_totals", beta0)
        self.beta0 = beta0

    def profile_at(self, theta):
        """(beta, R_X'R_X, pwrss, sigma, deviance, log|M|) at theta."""
        a, b, c, logdet = self.engine.map_sum("lmm_pieces", np.asarray(theta, dtype=float), self.beta0)
        RX2 = self.XtWX - a
        delta = np.linalg.solve(RX2, self.XtWyc - b)
        pwrss = float(self.ycWyc - delta @ self.XtWyc - (c - delta @ b))
        n, p = self.n_eff, self.p
        if self.reml:
            ld_rx = np.linalg.slogdet(RX2)[1]
            dev = logdet + ld_rx + (n - p) * (1 + np.log(2 * np.pi * pwrss / (n - p)))
            sigma = np.sqrt(pwrss / (n - p))
        else:
            dev = logdet + n * (1 + np.log(2 * np.pi * pwrss / n))
            sigma = np.sqrt(pwrss / n)
        return self.beta0 + delta, RX2, pwrss, float(sigma), float(dev - self.sum_log_w), float(logdet)

    def deviance_sigma(self, theta: np.ndarray, sigma: float) -> float:
        """-2 log-likelihood (or REML criterion) at an explicit residual SD, beta profiled
        (as :meth:`glmm_nb.likelihood.LmmDevfun.deviance_sigma`)."""
        _beta, RX2, pwrss, _s, _d, logdet = self.profile_at(theta)
        n = self.n_eff - (self.p if self.reml else 0)
        dev = logdet + n * np.log(2 * np.pi * sigma**2) + pwrss / sigma**2
        if self.reml:
            dev += np.linalg.slogdet(RX2)[1]
        return float(dev - self.sum_log_w)

    def __call__(self, theta: np.ndarray) -> float:
        self.nevals += 1
        dev = self.profile_at(theta)[4]
        self.engine.tracker.record(theta, dev)
        self.progress.update("REML" if self.reml else "ML", dev)
        return dev

    def state(self, theta: np.ndarray) -> LmmState:
        """Global beta, R_X, sigma and criterion; the sample's modes at that beta."""
        theta = np.asarray(theta, dtype=float)
        beta, RX2, pwrss, sigma, dev, _ld = self.profile_at(theta)
        sd = self.sample_dev
        vals = sd.rs.vals(theta)
        fac = sd.rs.factor(vals, sd.w)
        u = fac.solve(sd.rs.tmult(vals, sd.w * (sd.y - sd.X @ beta)))
        return LmmState(theta, beta, u, vals, fac, RX2, pwrss, sigma, dev)

    def exact_gradient(self, theta: np.ndarray) -> np.ndarray:
        return default_gradient(self, theta)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        return default_hessian(self, theta)


def glm_start(engine, family, maxit: int = 50, tol: float = 1e-8) -> np.ndarray:
    """The GLM fit without random effects by distributed IRLS — the same iterations and stopping
    rule as :func:`glmm_nb.likelihood.glm_irls`, each weighted least-squares step solved from
    the partitions' R factors (TSQR)."""

    def step(beta):
        res = engine.map("glm_step", beta, family)
        return sum(r[0] for r in res), combine_r([r[1] for r in res])

    def solve(R):
        p = R.shape[0] - 1
        return np.linalg.lstsq(R[:p, :p], R[:p, p], rcond=None)[0]

    _dev, R = step(None)
    dev_old = np.inf
    beta = None
    for _ in range(maxit):
        beta = solve(R)
        dev, R = step(beta)
        if abs(dev - dev_old) < tol * (abs(dev) + 0.1):
            break
        dev_old = dev
    return beta
