r"""AGQ deviance of a cumulative-link (ordinal) mixed model with one grouping factor.

As in :mod:`~glmm_nb.likelihood.agq`: nodes :math:`u^*_j + L_j^{-T}z_k` at each cluster's mode
(:math:`L_jL_j' = M_j`, both from the PIRLS run of :class:`~.ordinal.OrdinalLaplaceDevfun`), a
product Gauss-Hermite rule, (n, nodes) linear predictors reduced per cluster by one sparse
product. With one node the value is the Laplace deviance. φ = (θ, β, τ) as for Laplace.

Gradient. Exact and analytic for a scalar random effect: the part with the node placement held
fixed, :math:`\sum_k \pi_{jk}\,\partial\ell_j(u_{jk})/\partial\phi`, plus the derivative through
the placement (:math:`u_{jk} = u^*_j + z_k/L_j`): :math:`dA/du^*_j = \sum_k \pi_{jk}s_{jk}`,
:math:`dA/dL_j = -1/L_j - \sum_k \pi_{jk}s_{jk}z_k/L_j^2` (:math:`s_{jk}` the score of the node's
integrand in u), :math:`du^*_j/d\phi` from the mode equation
:math:`m_j\,du^*_j = \sum_i \tilde z_i\,\partial r_i` (+ θ terms) and
:math:`dm_j/d\phi = \sum_i \tilde z_i^2\,dW_i` (+ :math:`2W_i\tilde z_i Z_i` for θ),
:math:`m_j = L_j^2`, with the thresholds as extra parameters. For vector random effects the
gradient is by central differences of the deviance, and the Hessian by second differences.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from ..design import ModelSpec
from ..errors import ModelError
from ..families import Family
from ..families.cumulative import Cells, cell_terms, threshold_jacobian
from ..numdiff import central_diff, fd_hessian, fd_hessian_fun
from .agq import gh_rule
from .ordinal import OrdinalLaplaceDevfun, OrdinalState

__all__ = ["OrdinalAgqDevfun"]


class OrdinalAgqDevfun:
    """AGQ deviance of a cumulative-link mixed model with one grouping factor (one term).

    Implements :class:`~.contracts.DevianceFunction`; ``nagq`` nodes per random-effect
    dimension (with ``nagq=1`` the value equals the Laplace deviance).
    """

    analytic_gradient = True
    profiled = False

    def __init__(self, spec: ModelSpec, family: Family, nagq: int = 10):
        if not spec.single_factor:
            groups = ", ".join(dict.fromkeys(t.text for t in spec.terms))
            raise ModelError(
                f"method='agq' needs all random effects in one term on one grouping factor; "
                f"{groups} span several, so the integral does not factor by cluster. Use method='laplace'."
            )
        self.lap = OrdinalLaplaceDevfun(spec, family)
        lap = self.lap
        self.spec, self.family, self.link, self.nagq, self.rs = spec, family, lap.link, int(nagq), lap.rs
        self.X, self.y, self.yi, self.pw, self.off = lap.X, lap.y, lap.yi, lap.pw, lap.off
        self.ntheta, self.nalpha, self.p, self.ncat, self.nx = lap.ntheta, lap.nalpha, lap.p, lap.ncat, lap.nx
        self.q = self.rs.q[0]
        self.nodes, self.logw = gh_rule(self.nagq, self.q)
        n, J = self.rs.n, self.rs.nlev[0]
        self.J = J
        self.codes = self.rs.codes0
        self.S = sp.csr_matrix((np.ones(n), (self.codes, np.arange(n))), shape=(J, n))
        self.half_z2 = 0.5 * np.sum(self.nodes**2, axis=1)
        self.nevals = 0
        self._hess = None

    def split(self, phi):
        return self.lap.split(phi)

    def split_all(self, phi):
        return self.lap.split_all(phi)

    def join(self, theta, beta, tau):
        return self.lap.join(theta, beta, tau)

    def lower(self):
        return self.lap.lower()

    def state(self, phi) -> OrdinalState:
        """The PIRLS state at ``phi`` (the node placement)."""
        return self.lap.state(phi)

    def family_at(self, phi):
        return self.lap.family_at(phi)

    def reset_modes(self) -> None:
        self.lap.reset_modes()

    def warm_start(self, u) -> None:
        self.lap.warm_start(u)

    def _evaluate(self, phi: np.ndarray, want_grad: bool):
        theta, beta, tau, _ = self.split_all(phi)
        st = self.lap.pirls(theta, beta, tau, order=2 if want_grad else 1)
        J, q = self.J, self.q
        u = st.u.reshape(J, q)
        L = st.fac.chol_blocks()  # (J, q, q), M_j = L_j L_j'
        Linv = 1.0 / L if q == 1 else np.linalg.inv(L)
        logdetL = np.sum(np.log(np.abs(np.einsum("jaa->ja", L))), axis=1)
        v = np.einsum("nab,nb->na", Linv[self.codes], st.vals)  # L_j^{-1} z~_i
        eta = st.eta[:, None] + v @ self.nodes.T  # (n, nodes)
        cl = cell_terms(self.link, st.alpha, self.yi, eta, self.pw, 1 if want_grad else 0)
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
        """Exact AGQ gradient for a scalar random effect (deviance scale; module docstring)."""
        S, codes, X, mode = self.S, self.codes, self.X, st.cells
        lap = self.lap
        zt = st.vals[:, 0]
        Zv = self.rs.Zv[0][:, 0]
        u = st.u
        W = np.maximum(mode.W, 0.0)
        zk = self.nodes[:, 0]
        Pi = pi[codes]  # (n, nodes)
        R = np.sum(Pi * cl.r, axis=1)  # Σ_k π r_ik
        # placement-fixed part (loglik scale)
        fb = X.T @ R
        fa = lap.alpha_sum(np.sum(Pi * cl.l_up, axis=1), np.sum(Pi * cl.l_lo, axis=1))
        ft = np.array([float(np.sum(Zv * np.sum(Pi * cl.r * ujk[codes], axis=1)))])
        # through the placement
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
        rows_up, rows_lo = np.nonzero(lap.has_up)[0], np.nonzero(lap.has_lo)[0]
        Ra[rows_up, lap.up_idx] += mode.r_up[lap.has_up]
        Ra[rows_lo, lap.lo_idx] += mode.r_lo[lap.has_lo]
        Wa[rows_up, lap.up_idx] += mode.w_up[lap.has_up]
        Wa[rows_lo, lap.lo_idx] += mode.w_lo[lap.has_lo]
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
        return -2.0 * np.concatenate([gt, gb, g_tau])

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        try:
            return self._evaluate(np.asarray(phi, float), False)[0]
        except np.linalg.LinAlgError:
            return np.inf

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """Deviance and its exact gradient: analytic (q = 1) or central differences (q > 1)."""
        phi = np.asarray(phi, float)
        if self.q == 1:
            self.nevals += 1
            try:
                return self._evaluate(phi, True)
            except np.linalg.LinAlgError:
                return np.inf, np.zeros(phi.size)
        f = self(phi)
        return f, central_diff(self, phi, 1e-6 * np.maximum(1.0, np.abs(phi)))

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray:
        return self.value_and_grad(phi)[1]

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        """Forward differences of the analytic gradient (q = 1) or second differences of the
        deviance (q > 1, whose gradient is itself a difference); cached per φ."""
        phi = np.asarray(phi, float)
        if self._hess is None or not np.array_equal(self._hess[0], phi):
            if self.q == 1:
                grad = lambda z: self.value_and_grad(z)[1]  # noqa: E731
                H = fd_hessian(grad, phi, grad(phi))
            else:
                H = fd_hessian_fun(self, phi)
            self._hess = (phi.copy(), H)
        return self._hess[1]
