r"""Deviance functions of a cumulative-link (ordinal) mixed model: Laplace and AGQ.

Model: :math:`P(Y_i \le k \mid u) = F(\alpha_k - \eta_i)`, :math:`\eta = X\beta + o + \tilde Z u`,
:math:`\tilde Z = Z\Lambda(\theta)`, :math:`u \sim N(0, I)` (cell probabilities and their
derivatives: :mod:`glmm_nb.likelihood.ordinal_links`). ``X`` has no intercept column — the
thresholds replace it. The optimizer sees

.. math:: \phi = (\theta,\ \tau,\ \beta), \qquad
          \alpha = (\tau_1,\ \tau_1 + e^{\tau_2},\ \dots)

so the thresholds stay increasing.

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
Jacobian :math:`\partial\alpha/\partial\tau`. For θ the GLMM formula holds unchanged:
:math:`\sum_i z_{ia}[e_i u^*_{j(i)b} + 2W_iP_{ib} + r_i s_{j(i)b}]`.

AGQ (one grouping factor). As in :mod:`~glmm_nb.likelihood.agq`: nodes
:math:`u^*_j + L_j^{-T}z_k` at each cluster's mode, :math:`L_jL_j' = M_j`, a product
Gauss-Hermite rule, (n, nodes) linear predictors reduced per cluster by one sparse product.
Its gradient is exact and analytic for a scalar random effect (the placement-fixed part plus
the derivative through :math:`u^*_j` and :math:`L_j`, as in ``agq.py``, with the thresholds as
extra parameters); for vector random effects it is by central differences of the deviance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from ..design import ModelSpec
from ..errors import ModelError
from ..optimize import central_diff
from .agq import gh_rule
from .ordinal_links import (
    Cells,
    cell_terms,
    draw_categories,
    get_cumulative_link,
    threshold_jacobian,
    thresholds_from_tau,
)
from .reops import ReStructure

__all__ = ["OrdinalState", "OrdinalLaplaceDevfun", "OrdinalAgqDevfun"]


@dataclass
class OrdinalState:
    """Everything at the conditional modes for one φ."""

    theta: np.ndarray
    tau: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    vals: np.ndarray
    eta: np.ndarray
    cells: Cells
    fac: object
    loglik_cond: float  # log p(y | u*)
    deviance: float  # Laplace deviance (-2 log-likelihood)
    iterations: int
    converged: bool


class OrdinalLaplaceDevfun:
    """Laplace deviance of a cumulative-link mixed model, closing over the data.

    Parameters
    ----------
    spec : ModelSpec
        Random-effect terms, prior weights and offset (its ``X`` and ``y`` are not used).
    y : ndarray of int (n,)
        Category codes 0..K−1, every category observed.
    X : ndarray (n, p)
        Fixed-effect matrix without an intercept column.
    ncat : int
        K, the number of categories.
    link : {"logit", "probit", "cloglog"}

    Call with ``phi = concatenate([theta, tau, beta])``; :meth:`split` and :meth:`join` convert.
    The last conditional modes warm-start the next PIRLS run (a cache: the value does not
    depend on it).
    """

    def __init__(self, spec: ModelSpec, y: np.ndarray, X: np.ndarray, ncat: int, link="logit",
                 tol: float = 1e-12, maxit: int = 60):
        self.spec = spec
        self.link = get_cumulative_link(link)
        self.rs = ReStructure(spec)
        self.y = np.asarray(y, dtype=np.int64)
        self.X = np.asarray(X, dtype=float)
        if self.X.ndim != 2 or self.X.shape[0] != self.y.shape[0] or self.y.shape[0] != spec.nobs:
            raise ModelError("y and X must have one row per observation of the spec")
        self.ncat = int(ncat)
        if self.ncat < 3 or self.y.min() < 0 or self.y.max() >= self.ncat:
            raise ModelError(f"y must hold codes 0..{self.ncat - 1} of at least three categories")
        self.pw = np.asarray(spec.weights, dtype=float)
        self.off = np.asarray(spec.offset, dtype=float)
        self.ntheta = spec.ntheta
        self.nalpha = self.ncat - 1
        self.p = self.X.shape[1]
        self.has_up = self.y < self.nalpha
        self.has_lo = self.y > 0
        self.up_idx = self.y[self.has_up]
        self.lo_idx = self.y[self.has_lo] - 1
        self.tol, self.maxit = tol, maxit
        self._u = np.zeros(self.rs.Q)
        self.nevals = 0

    def warm_start(self, u: np.ndarray) -> None:
        """Start the next PIRLS run from the spherical modes ``u`` (a cache, not a parameter)."""
        self._u = np.asarray(u, dtype=float).copy()

    # ------------------------------------------------------------------------- params
    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        phi = np.asarray(phi, dtype=float)
        a, b = self.ntheta, self.ntheta + self.nalpha
        return phi[:a], phi[a:b], phi[b:]

    def join(self, theta, tau, beta) -> np.ndarray:
        return np.concatenate([np.asarray(theta, float), np.asarray(tau, float), np.asarray(beta, float)])

    def lower(self) -> np.ndarray:
        """Lower bounds of φ (θ's diagonal ≥ 0)."""
        return np.concatenate([self.spec.theta_lower(), np.full(self.nalpha + self.p, -np.inf)])

    def cells(self, alpha: np.ndarray, eta: np.ndarray, order: int = 0) -> Cells:
        return cell_terms(self.link, alpha, self.y, eta, self.pw, order)

    # --------------------------------------------------------------------------- PIRLS
    def pirls(self, theta, tau, beta, u0: np.ndarray | None = None, order: int = 2) -> OrdinalState:
        """Conditional modes by penalized IRLS; ``order=2`` adds the cell derivatives that the
        gradients need (``order=1``: value only)."""
        rs = self.rs
        alpha = thresholds_from_tau(tau)
        vals = rs.vals(theta)
        eta_f = self.X @ beta + self.off
        u = (self._u if u0 is None else u0).copy()
        if not np.all(np.isfinite(u)):
            u = np.zeros(rs.Q)
        eta = eta_f + rs.mult(vals, u)
        cl = self.cells(alpha, eta, 1)
        pdev = -2.0 * float(np.sum(cl.logp)) + u @ u
        if not np.isfinite(pdev):
            u = np.zeros(rs.Q)
            eta = eta_f.copy()
            cl = self.cells(alpha, eta, 1)
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
            step = 1.0
            while True:  # candidates get the score and weights at once: a full step is the rule
                u_new = u + step * delta
                eta_new = eta_f + rs.mult(vals, u_new)
                cl_new = self.cells(alpha, eta_new, 1)
                pdev_new = -2.0 * float(np.sum(cl_new.logp)) + u_new @ u_new
                if pdev_new <= pdev + 1e-12 * abs(pdev):
                    break
                step *= 0.5
                if step < 1e-10:
                    break
            if step < 1e-10:
                converged = dec < 1e-6
                break
            u, eta, pdev, cl = u_new, eta_new, pdev_new, cl_new
        if not converged:  # the factor must belong to the final u
            fac = rs.factor(vals, np.maximum(cl.W, 0.0))
        if order >= 2:
            cl = self.cells(alpha, eta, 2)
        ll = float(np.sum(cl.logp))
        dev = -2.0 * ll + float(u @ u) + fac.logdet
        self._u = u
        return OrdinalState(theta, tau, alpha, beta, u, vals, eta, cl, fac, ll, dev, it, converged)

    # ------------------------------------------------------------------------ deviance
    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        return self.pirls(*self.split(phi), order=1).deviance

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        self.nevals += 1
        st = self.pirls(*self.split(phi))
        return st.deviance, self.gradient(st)

    def _alpha_sum(self, up: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Σ over the rows touching each threshold: (K−1,) from per-row upper/lower pieces."""
        return (np.bincount(self.up_idx, weights=up[self.has_up], minlength=self.nalpha)
                + np.bincount(self.lo_idx, weights=lo[self.has_lo], minlength=self.nalpha))

    def gradient(self, st: OrdinalState) -> np.ndarray:
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
        g_alpha = self._alpha_sum(-2.0 * cl.l_up + h * cl.w_up + Zs * cl.r_up,
                                  -2.0 * cl.l_lo + h * cl.w_lo + Zs * cl.r_lo)
        g_tau = threshold_jacobian(st.tau).T @ g_alpha
        g_theta = np.empty(self.ntheta)
        for m, ent in enumerate(rs.entries):
            col = rs.cols[:, ent.slot_b]
            za = rs.Zv[ent.term][:, ent.a]
            g_theta[m] = float(np.sum(za * (e * st.u[col] + 2.0 * W * P[:, ent.slot_b] + cl.r * s[col])))
        return np.concatenate([g_theta, g_tau, g_beta])

    # ---------------------------------------------------------------------- simulation
    def simulate(self, phi: np.ndarray, nsim: int = 1, rng=None, u: np.ndarray | None = None) -> np.ndarray:
        """Category codes (nsim, n) drawn from the model at φ: new random effects u ~ N(0, I)
        per simulation, or the given spherical ``u`` (e.g. the conditional modes) for all."""
        rng = np.random.default_rng(rng)
        theta, tau, beta = self.split(phi)
        vals = self.rs.vals(theta)
        eta_f = self.X @ beta + self.off
        if u is not None:
            eta = np.broadcast_to(eta_f + self.rs.mult(vals, np.asarray(u, float)), (nsim, self.rs.n))
        else:
            U = rng.standard_normal((nsim, self.rs.Q))
            eta = np.stack([eta_f + self.rs.mult(vals, U[k]) for k in range(nsim)])
        return draw_categories(eta, thresholds_from_tau(tau), self.link, rng)


class OrdinalAgqDevfun:
    """AGQ deviance of a cumulative-link mixed model with one grouping factor (one term).

    Same constructor arguments as :class:`OrdinalLaplaceDevfun` plus ``nagq`` (nodes per
    random-effect dimension). With ``nagq=1`` the value equals the Laplace deviance.
    """

    def __init__(self, spec: ModelSpec, y, X, ncat: int, link="logit", nagq: int = 10):
        if not spec.single_factor:
            groups = ", ".join(dict.fromkeys(t.text for t in spec.terms))
            raise ModelError(
                f"method='agq' needs all random effects in one term on one grouping factor; "
                f"{groups} span several, so the integral does not factor by cluster. Use method='laplace'."
            )
        self.lap = OrdinalLaplaceDevfun(spec, y, X, ncat, link)
        lap = self.lap
        self.spec, self.link, self.nagq, self.rs = spec, lap.link, int(nagq), lap.rs
        self.X, self.y, self.pw = lap.X, lap.y, lap.pw
        self.ntheta, self.nalpha, self.p, self.ncat = lap.ntheta, lap.nalpha, lap.p, lap.ncat
        self.q = self.rs.q[0]
        self.nodes, self.logw = gh_rule(self.nagq, self.q)
        n, J = self.rs.n, self.rs.nlev[0]
        self.J = J
        self.codes = self.rs.codes0
        self.S = sp.csr_matrix((np.ones(n), (self.codes, np.arange(n))), shape=(J, n))
        self.half_z2 = 0.5 * np.sum(self.nodes**2, axis=1)
        self.nevals = 0

    def split(self, phi):
        return self.lap.split(phi)

    def join(self, theta, tau, beta):
        return self.lap.join(theta, tau, beta)

    def lower(self):
        return self.lap.lower()

    def pirls(self, theta, tau, beta):
        return self.lap.pirls(theta, tau, beta)

    def _evaluate(self, phi: np.ndarray, want_grad: bool):
        st = self.lap.pirls(*self.split(phi), order=2 if want_grad else 1)
        J, q = self.J, self.q
        u = st.u.reshape(J, q)
        L = st.fac.chol_blocks()  # (J, q, q), M_j = L_j L_j'
        Linv = 1.0 / L if q == 1 else np.linalg.inv(L)
        logdetL = np.sum(np.log(np.abs(np.einsum("jaa->ja", L))), axis=1)
        v = np.einsum("nab,nb->na", Linv[self.codes], st.vals)  # L_j^{-1} z~_i
        eta = st.eta[:, None] + v @ self.nodes.T  # (n, nodes)
        cl = cell_terms(self.link, st.alpha, self.y, eta, self.pw, 1 if want_grad else 0)
        ll = np.asarray(self.S @ cl.logp)  # (J, nodes)
        ujk = u[:, None, :] + np.einsum("jba,kb->jka", Linv, self.nodes)  # u* + L^{-T} z
        g = ll - 0.5 * np.sum(ujk**2, axis=2) + self.half_z2[None, :] + self.logw[None, :]
        lse = logsumexp(g, axis=1)
        dev = -2.0 * float(np.sum(lse - logdetL))
        if not want_grad:
            return dev, None
        pi = np.exp(g - lse[:, None])  # posterior node weights (J, nodes)
        return dev, self._gradient(st, cl, pi, ujk[:, :, 0], L[:, 0, 0])

    def _gradient(self, st: OrdinalState, cl: Cells, pi, ujk, Lj) -> np.ndarray:
        """Exact AGQ gradient for a scalar random effect (deviance scale).

        Placement fixed: Σ_k π_jk ∂ℓ_j(u_jk)/∂φ. Through the placement (u_jk = u*_j + z_k/L_j):
        dA/du*_j = Σ_k π_jk s_jk, dA/dL_j = −1/L_j − Σ_k π_jk s_jk z_k/L_j², s_jk the score of
        g_jk in u; du*_j/dφ from the mode equation m_j du*_j = Σ_i z~_i ∂r_i (+ θ terms) and
        dm_j/dφ = Σ_i z~_i² dW_i (+ 2 W_i z~_i Zv_i for θ), m_j = L_j².
        """
        S, codes, X, mode = self.S, self.codes, self.X, st.cells
        zt = st.vals[:, 0]
        Zv = self.rs.Zv[0][:, 0]
        u = st.u
        W = np.maximum(mode.W, 0.0)
        zk = self.nodes[:, 0]
        Pi = pi[codes]  # (n, nodes)
        R = np.sum(Pi * cl.r, axis=1)  # Σ_k π r_ik
        # placement-fixed part (loglik scale)
        fb = X.T @ R
        up_idx, lo_idx, has_up, has_lo = self.lap.up_idx, self.lap.lo_idx, self.lap.has_up, self.lap.has_lo
        # ∂ℓ/∂α at the nodes: upper A1 = f(a)/p, lower C1 = -f(c)/p, and A1 + C1 = -r
        fa = self.lap._alpha_sum(np.sum(Pi * cl.l_up, axis=1), np.sum(Pi * cl.l_lo, axis=1))
        ft = np.array([float(np.sum(Zv * np.sum(Pi * cl.r * ujk[codes], axis=1)))])
        # placement
        ps = pi * (np.asarray(S @ (cl.r * zt[:, None])) - ujk)
        dA_du = ps.sum(axis=1)
        dA_dm = (-1.0 / Lj - (ps * zk[None, :]).sum(axis=1) / Lj**2) / (2.0 * Lj)
        m = Lj**2
        # β
        du_db = -np.asarray(S @ ((W * zt)[:, None] * X)) / m[:, None]
        deta_db = X + zt[:, None] * du_db[codes]
        dm_db = np.asarray(S @ ((mode.dW * zt * zt)[:, None] * deta_db))
        gb = fb + dA_du @ du_db + dA_dm @ dm_db
        # α (dense (n, K-1) direct pieces: each row touches at most two thresholds)
        n, K1 = self.rs.n, self.nalpha
        Ra, Wa = np.zeros((n, K1)), np.zeros((n, K1))
        rows_up, rows_lo = np.nonzero(has_up)[0], np.nonzero(has_lo)[0]
        Ra[rows_up, up_idx] += mode.r_up[has_up]
        Ra[rows_lo, lo_idx] += mode.r_lo[has_lo]
        Wa[rows_up, up_idx] += mode.w_up[has_up]
        Wa[rows_lo, lo_idx] += mode.w_lo[has_lo]
        du_da = np.asarray(S @ (zt[:, None] * Ra)) / m[:, None]
        dm_da = np.asarray(S @ ((zt * zt)[:, None] * (Wa + (mode.dW * zt)[:, None] * du_da[codes])))
        ga = fa + dA_du @ du_da + dA_dm @ dm_da
        # θ
        vth = Zv * u[codes]
        du_dt = (S @ (Zv * mode.r) - S @ (W * zt * vth)) / m
        deta_dt = vth + zt * du_dt[codes]
        dm_dt = S @ (mode.dW * zt * zt * deta_dt + 2.0 * W * zt * Zv)
        gt = ft + np.array([dA_du @ du_dt + dA_dm @ dm_dt])
        g_tau = threshold_jacobian(st.tau).T @ ga
        return -2.0 * np.concatenate([gt, g_tau, gb])

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        return self._evaluate(np.asarray(phi, float), False)[0]

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """Deviance and its exact gradient: analytic (q = 1) or central differences (q > 1)."""
        phi = np.asarray(phi, float)
        if self.q == 1:
            self.nevals += 1
            return self._evaluate(phi, True)
        f = self(phi)
        return f, central_diff(self, phi, 1e-6 * np.maximum(1.0, np.abs(phi)))
