r"""Laplace deviance of a cumulative-link (ordinal) mixed model, with its analytic gradient.

Model: :math:`P(Y_i \le k \mid u) = F(\alpha_k - \eta_i)`, :math:`\eta = X\beta + o + \tilde Z u`,
:math:`\tilde Z = Z\Lambda(\theta)`, :math:`u \sim N(0, I)` (cell probabilities and their
derivatives: :mod:`glmm_nb.families.cumulative`). ``X`` has no intercept column — the
thresholds replace it. The optimizer sees the package's order

.. math:: \phi = (\theta,\ \beta,\ \tau), \qquad
          \alpha = (\tau_1,\ \tau_1 + e^{\tau_2},\ \dots)

so the thresholds stay increasing (they are the family's extra parameters). For the
proportional-odds check a *nominal* design :math:`X_n` (n × r) can be given: the thresholds of
row i become :math:`\alpha_k + x_{n,i}'\gamma_k` (``ordinal::clm``'s nominal effects) and
:math:`\Gamma = (\gamma_1, \dots, \gamma_{K-1})` (r × (K−1), row-major) follows τ in φ.
Parameters at which two thresholds of a row's own category cross give an infinite deviance.

Laplace (as ``ordinal::clmm``). PIRLS finds the mode :math:`u^*` of
:math:`\ell(y \mid u) - \tfrac12\|u\|^2` by Newton steps with the observed information
:math:`W` (non-negative: the links are log-concave), halving steps until the penalized deviance
decreases; then

.. math:: D(\phi) = -2\ell(y \mid u^*) + \|u^*\|^2 + \log|M|, \qquad M = I + \tilde Z' W \tilde Z,

clmm's ``-2 logLik`` (its ``hess.u`` builds M from the same observed W). :math:`M` is factored
by :class:`~glmm_nb.likelihood.reops.ReStructure` (batched per-cluster Cholesky for one grouping
factor, Schur elimination for several).

Gradient (total derivative, :math:`u^*` moving with φ). For any parameter ψ whose direct
per-row effects are :math:`(\partial\ell_i, \partial r_i, \partial W_i)`, the mode equation
:math:`\tilde Z'r = u` gives :math:`M\,du^* = \tilde Z'\partial r` (+ the θ terms), and
:math:`d\log|M| = \sum_i h_i\,dW_i`, :math:`h_i = \tilde z_i'M^{-1}\tilde z_i`. With
:math:`c = h \circ \partial W/\partial\eta` and :math:`s = M^{-1}\tilde Z'c`:

.. math:: \partial D/\partial\psi = \sum_i \left[-2\,\partial\ell_i + h_i\,\partial W_i
          + (\tilde Z s)_i\,\partial r_i\right].

For β: :math:`(\partial\ell, \partial r, \partial W) = (r, -W, \partial_\eta W)\,x_i`, giving
:math:`X'e`, :math:`e = -2r + c - W \circ \tilde Z s` (the GLMM formula of
:mod:`~glmm_nb.likelihood.laplace` with M = H). For a threshold: the upper/lower pieces of
``cell_terms``, summed by ``bincount`` over the rows that touch it, then mapped to τ by the
Jacobian :math:`\partial\alpha/\partial\tau`; a nominal coefficient :math:`\gamma_{jk}` is the
same sum weighted by :math:`x_{n,ij}`. For θ the GLMM formula holds unchanged:
:math:`\sum_i z_{ia}[e_i u^*_{j(i)b} + 2W_iP_{ib} + r_i s_{j(i)b}]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..design import ModelSpec
from ..errors import ModelError
from ..families import Family
from ..families.cumulative import Cells, cell_terms, row_thresholds, threshold_jacobian, thresholds_from_tau
from .contracts import default_hessian
from .pirls import halving_step
from .reops import ReStructure

__all__ = ["OrdinalState", "OrdinalLaplaceDevfun"]


@dataclass
class OrdinalState:
    """Everything at the conditional modes for one φ.

    ``mu`` is the linear predictor (an ordinal model has no mean; the family's ``dev_resid``
    reads η), ``W`` the observed information per row, ``family`` the family at the thresholds.
    """

    theta: np.ndarray
    beta: np.ndarray
    tau: np.ndarray
    alpha: np.ndarray  # (K-1,), or (n, K-1) with nominal effects
    u: np.ndarray
    vals: np.ndarray
    eta: np.ndarray
    cells: Cells
    fac: object
    loglik_cond: float  # log p(y | u*)
    deviance: float  # Laplace deviance (-2 log-likelihood)
    iterations: int
    converged: bool
    family: Family

    @property
    def mu(self) -> np.ndarray:
        return self.eta

    @property
    def W(self) -> np.ndarray:
        return np.maximum(self.cells.W, 0.0)


class OrdinalLaplaceDevfun:
    """Laplace deviance of a cumulative-link mixed model, closing over the data.

    Parameters
    ----------
    spec : ModelSpec
        Built for an ordinal family: ``y`` holds the codes 0..K−1, ``levels`` the K labels,
        ``X`` no intercept column.
    family : Ordinal
        Its ``cumulative_link`` is the F of the model.
    nominal : ndarray (n, r), optional
        Nominal-effects design (thresholds varying with these columns; module docstring).

    Call with ``phi = (theta, beta, tau[, Gamma])``. The last conditional modes warm-start the
    next PIRLS run (a cache: the value does not depend on it). Implements
    :class:`~.contracts.DevianceFunction`.
    """

    analytic_gradient = True
    profiled = False

    def __init__(self, spec: ModelSpec, family: Family, tol: float = 1e-12, maxit: int = 60,
                 nominal: np.ndarray | None = None):
        if not family.ordinal:
            raise ModelError(f"the ordinal deviance needs an ordinal family, not {family.name}")
        self.spec = spec
        self.family = family
        self.link = family.cumulative_link
        self.rs = ReStructure(spec)
        self.y = np.asarray(spec.y, dtype=float)
        self.yi = self.y.astype(np.int64)
        self.X = np.asarray(spec.X, dtype=float)
        self.ncat = len(spec.levels)
        if self.ncat < 3 or self.yi.min() < 0 or self.yi.max() >= self.ncat:
            raise ModelError(f"y must hold codes 0..{self.ncat - 1} of at least three categories")
        self.pw = np.asarray(spec.weights, dtype=float)
        self.off = np.asarray(spec.offset, dtype=float)
        self.ntheta = spec.ntheta
        self.nalpha = self.ncat - 1
        self.p = self.X.shape[1]
        self.Xn = None if nominal is None else np.asarray(nominal, dtype=float).reshape(self.rs.n, -1)
        self.r = 0 if self.Xn is None else self.Xn.shape[1]
        self.nx = self.nalpha + self.r * self.nalpha  # parameters after beta
        self.has_up = self.yi < self.nalpha
        self.has_lo = self.yi > 0
        self.mid = self.has_up & self.has_lo
        self.up_idx = self.yi[self.has_up]
        self.lo_idx = self.yi[self.has_lo] - 1
        self.tol, self.maxit = tol, maxit
        self._u = np.zeros(self.rs.Q)
        self.nevals = 0

    def warm_start(self, u: np.ndarray) -> None:
        """Start the next PIRLS run from the spherical modes ``u`` (a cache, not a parameter)."""
        self._u = np.asarray(u, dtype=float).copy()

    def reset_modes(self) -> None:
        """Start the next PIRLS run from u = 0."""
        self._u = np.zeros(self.rs.Q)

    # ------------------------------------------------------------------------- params
    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(theta, beta) of φ."""
        phi = np.asarray(phi, dtype=float)
        return phi[: self.ntheta], phi[self.ntheta : self.ntheta + self.p]

    def split_all(self, phi: np.ndarray):
        """(theta, beta, tau, Gamma or None) of φ."""
        phi = np.asarray(phi, dtype=float)
        a = self.ntheta + self.p
        b = a + self.nalpha
        gamma = None if self.Xn is None else phi[b:].reshape(self.r, self.nalpha)
        return phi[: self.ntheta], phi[self.ntheta : a], phi[a:b], gamma

    def join(self, theta, beta, tau, gamma=None) -> np.ndarray:
        parts = [np.asarray(theta, float), np.asarray(beta, float), np.asarray(tau, float)]
        if gamma is not None:
            parts.append(np.asarray(gamma, float).ravel())
        return np.concatenate(parts)

    def lower(self) -> np.ndarray:
        """Lower bounds of φ (θ's diagonal ≥ 0)."""
        return np.concatenate([self.spec.theta_lower(), np.full(self.p + self.nx, -np.inf)])

    def family_at(self, phi: np.ndarray) -> Family:
        return self.family.at_extra(self.split_all(phi)[2], self.spec)

    def row_alpha(self, tau: np.ndarray, gamma) -> np.ndarray:
        """The thresholds: (K−1,), or per row (n, K−1) with nominal effects."""
        alpha = thresholds_from_tau(tau)
        return alpha if gamma is None else alpha[None, :] + self.Xn @ gamma

    def crossing(self, alpha: np.ndarray) -> bool:
        """True when a row's own two thresholds cross (nominal effects only)."""
        if alpha.ndim == 1:
            return False
        aup, alo = row_thresholds(alpha, self.yi)
        return bool(np.any(aup[self.mid] <= alo[self.mid]))

    # --------------------------------------------------------------------------- PIRLS
    def pirls(self, theta, beta, tau, gamma=None, u0: np.ndarray | None = None, order: int = 2) -> OrdinalState:
        """Conditional modes by penalized IRLS; ``order=2`` adds the cell derivatives that the
        gradients need (``order=1``: value only)."""
        rs = self.rs
        alpha = self.row_alpha(tau, gamma)
        vals = rs.vals(theta)
        eta_f = self.X @ beta + self.off
        u = (self._u if u0 is None else u0).copy()
        if not np.all(np.isfinite(u)):
            u = np.zeros(rs.Q)
        eta = eta_f + rs.mult(vals, u)
        cl = cell_terms(self.link, alpha, self.yi, eta, self.pw, 1)
        pdev = -2.0 * float(np.sum(cl.logp)) + u @ u
        if not np.isfinite(pdev):
            u = np.zeros(rs.Q)
            eta = eta_f.copy()
            cl = cell_terms(self.link, alpha, self.yi, eta, self.pw, 1)
            pdev = -2.0 * float(np.sum(cl.logp))
        converged = False
        it = 0
        fac = None
        for it in range(1, self.maxit + 1):
            fac = rs.factor(vals, np.maximum(cl.W, 0.0))
            grad = rs.tmult(vals, cl.r) - u
            delta = fac.solve(grad)
            dec = float(grad @ delta)
            if dec < self.tol and (it > 1 or dec < 1e-20):
                converged = True
                break
            def penalized(u_new):  # candidates get the score and weights at once: a full step is the rule
                eta_new = eta_f + rs.mult(vals, u_new)
                cl_new = cell_terms(self.link, alpha, self.yi, eta_new, self.pw, 1)
                return -2.0 * float(np.sum(cl_new.logp)) + u_new @ u_new, (eta_new, cl_new)

            accepted = halving_step(u, delta, pdev, penalized)
            if accepted is None:
                converged = dec < 1e-6
                break
            u, pdev, (eta, cl) = accepted
        if not converged:  # the factor must belong to the final u
            fac = rs.factor(vals, np.maximum(cl.W, 0.0))
        if order >= 2:
            cl = cell_terms(self.link, alpha, self.yi, eta, self.pw, 2)
        ll = float(np.sum(cl.logp))
        dev = -2.0 * ll + float(u @ u) + fac.logdet
        self._u = u
        fam = self.family.at_thresholds(thresholds_from_tau(tau))
        return OrdinalState(theta, beta, tau, alpha, u, vals, eta, cl, fac, ll, dev, it, converged, fam)

    # ------------------------------------------------------------------------ deviance
    def state(self, phi: np.ndarray) -> OrdinalState:
        """The PIRLS state (conditional modes, factorization) at ``phi``."""
        return self.pirls(*self.split_all(phi))

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        theta, beta, tau, gamma = self.split_all(phi)
        if gamma is not None and self.crossing(self.row_alpha(tau, gamma)):
            return np.inf
        try:
            return self.pirls(theta, beta, tau, gamma, order=1).deviance
        except np.linalg.LinAlgError:
            return np.inf

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        self.nevals += 1
        theta, beta, tau, gamma = self.split_all(phi)
        if gamma is not None and self.crossing(self.row_alpha(tau, gamma)):
            return np.inf, np.zeros(np.asarray(phi).size)
        try:
            st = self.pirls(theta, beta, tau, gamma)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(np.asarray(phi).size)
        return st.deviance, self.gradient(st, gamma)

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray:
        return self.value_and_grad(phi)[1]

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        return default_hessian(self, phi)

    def alpha_sum(self, up: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Σ over the rows touching each threshold: (K−1,) from per-row upper/lower pieces."""
        return (np.bincount(self.up_idx, weights=up[self.has_up], minlength=self.nalpha)
                + np.bincount(self.lo_idx, weights=lo[self.has_lo], minlength=self.nalpha))

    def gradient(self, st: OrdinalState, gamma=None) -> np.ndarray:
        """Analytic gradient of the Laplace deviance at the state's φ (module docstring)."""
        rs, cl, vals = self.rs, st.cells, st.vals
        W = np.maximum(cl.W, 0.0)
        P = st.fac.P(vals)
        h = np.einsum("ns,ns->n", P, vals) if rs.s > 1 else P[:, 0] * vals[:, 0]
        c = cl.dW * h
        s = st.fac.solve(rs.tmult(vals, c))
        Zs = rs.mult(vals, s)
        e = -2.0 * cl.r + c - W * Zs
        g_beta = self.X.T @ e
        up = -2.0 * cl.l_up + h * cl.w_up + Zs * cl.r_up
        lo = -2.0 * cl.l_lo + h * cl.w_lo + Zs * cl.r_lo
        g_alpha = self.alpha_sum(up, lo)
        g_tau = threshold_jacobian(st.tau).T @ g_alpha
        H = e[:, None] * st.u[rs.cols] + 2.0 * W[:, None] * P + cl.r[:, None] * s[rs.cols]
        g_theta = rs.theta_grad(st.theta, rs.row_grad(H))  # T's entries, chained to theta
        parts = [g_theta, g_beta, g_tau]
        if gamma is not None:
            g_gamma = np.stack([self.alpha_sum(up * self.Xn[:, j], lo * self.Xn[:, j]) for j in range(self.r)])
            parts.append(g_gamma.ravel())
        return np.concatenate(parts)

    # ---------------------------------------------------------------------- simulation
    def simulate(self, phi: np.ndarray, nsim: int = 1, rng=None, u: np.ndarray | None = None) -> np.ndarray:
        """Category codes (nsim, n) drawn from the model at φ: new random effects u ~ N(0, I)
        per simulation, or the given spherical ``u`` (e.g. the conditional modes) for all."""
        rng = np.random.default_rng(rng)
        theta, beta, tau, _gamma = self.split_all(phi)
        vals = self.rs.vals(theta)
        eta_f = self.X @ beta + self.off
        if u is not None:
            eta = np.broadcast_to(eta_f + self.rs.mult(vals, np.asarray(u, float)), (nsim, self.rs.n))
        else:
            U = rng.standard_normal((nsim, self.rs.Q))
            eta = np.stack([eta_f + self.rs.mult(vals, U[k]) for k in range(nsim)])
        fam = self.family.at_thresholds(thresholds_from_tau(tau))
        return fam.simulate_from_eta(rng, eta, None, 1.0, eta.shape).astype(np.int64)
