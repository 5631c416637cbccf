r"""Adaptive Gauss-Hermite quadrature (AGQ) on the PIRLS state of the Laplace fit.

For one grouping factor the marginal likelihood factors over clusters j:

.. math:: L_j = \int p(y_j \mid u)\,\phi_q(u)\,du
   = |L_j|^{-1} \int \frac{p(y_j \mid u(z))\,\phi_q(u(z))}{\phi_q(z)}\,\phi_q(z)\,dz,
   \qquad u(z) = u^*_j + L_j^{-T} z,

with :math:`u^*_j` the conditional mode and :math:`L_jL_j' = M_j` the Cholesky factor of the
conditional precision — both from the same PIRLS run as the Laplace deviance. The inner
expectation uses the k-point Gauss-Hermite rule for N(0, 1), as a product rule of :math:`k^q`
nodes; with ``k = 1`` (node 0, weight 1) this is exactly the Laplace approximation. The
normalising constants of the log-density are kept, so Laplace, AGQ with any k and an exact
integral are on one log-likelihood scale (unlike lme4's nAGQ > 1 ``logLik``, lme4 issue 161).

For q ≥ 3 the product rule is pruned: nodes whose product weight is below ``prune`` times the
largest are dropped (Jäckel 2005). Those nodes sit in the far corners of the cube, where the
integrand, centred and scaled at the mode, is small. The trade-off, measured on the N(0, I_3)
moments at k = 7: ``prune=1e-8`` (default) keeps 335 of 343 nodes and misses 1.3e-9 of the
probability mass; ``1e-6`` keeps 287 (mass error 2e-6, fourth-moment error 3e-4); ``1e-4``
keeps 179 (mass error 4e-4). The mass error enters every cluster's log-likelihood, so the
default stays conservative.

Evaluation is vectorized over clusters and nodes: an (n, K) array of linear predictors,
summed into (J, K) per-cluster log-likelihoods by one sparse product.

Gradient. For a scalar random effect the gradient is exact and analytic: the derivative with
the node placement (:math:`u^*_j`, :math:`L_j`) held fixed, plus the derivative through the
placement (the mode equation gives :math:`du^*/d\phi`, the Fisher weights' derivative gives
:math:`dL_j/d\phi`). For vector random effects the optimizer uses the placement-fixed part
only; its error is of the order of the quadrature error — small for k ≥ 7 on clusters of
moderate size, not for k = 3 on clusters of four binary observations — so the AGQ stage of
the fit (:func:`glmm_nb.pipeline.agq_stage`) checks the end point with the exact gradient (central differences of the deviance) and
polishes with Newton steps where needed. Deviance values are exact AGQ throughout.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from ..design import ModelSpec
from ..errors import ModelError
from ..families import Family
from ..numdiff import central_diff, fd_hessian
from .laplace import LaplaceDevfun

__all__ = ["AgqDevfun", "gh_rule"]


def gh_rule(k: int, q: int, prune: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Product Gauss-Hermite rule for N(0, I_q): nodes (K, q) and log-weights (K,)."""
    x, w = hermegauss(k)
    w = w / np.sqrt(2 * np.pi)
    nodes = np.array(list(itertools.product(x, repeat=q)))
    logw = np.array([np.sum(np.log(c)) for c in itertools.product(w, repeat=q)])
    if q >= 3 and k > 1:
        keep = logw >= logw.max() + np.log(prune)
        nodes, logw = nodes[keep], logw[keep]
    return nodes, logw


class AgqDevfun:
    """AGQ deviance of a GLMM with all random effects on one grouping factor.

    Implements :class:`~.contracts.DevianceFunction`; ``value_and_grad`` is exact for a scalar
    random effect and placement-fixed for vector ones (``exact_gradient`` is always exact).
    """

    analytic_gradient = True
    profiled = False

    def __init__(self, spec: ModelSpec, family: Family, nagq: int):
        if not spec.single_factor:
            groups = ", ".join(dict.fromkeys(t.text for t in spec.terms))
            raise ModelError(
                f"method='agq' needs all random effects in one term on one grouping factor; "
                f"{groups} span several, so the integral does not factor by cluster. "
                "Use method='laplace'."
            )
        self.lap = LaplaceDevfun(spec, family)
        self.spec, self.family, self.nagq = spec, family, nagq
        self.rs = self.lap.rs
        self.X, self.y, self.pw = self.lap.X, self.lap.y, self.lap.pw
        self.ntheta, self.p = self.lap.ntheta, self.lap.p
        q = self.rs.q[0]
        self.q = q
        self.nodes, self.logw = gh_rule(nagq, q)
        n, J = self.rs.n, self.rs.nlev[0]
        codes = self.rs.codes0
        self.codes = codes
        self.S = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(J, n))
        self.half_z2 = 0.5 * np.sum(self.nodes**2, axis=1)
        self.nevals = 0
        # analytic and exact: scalar random effect, no dispersion parameter
        self.exact_analytic = q == 1 and not self.lap.nx
        self._true = None  # (phi, exact gradient) cache
        self._hess = None  # (phi, Hessian) cache

    def state(self, phi):
        """The PIRLS state at ``phi`` (the node placement)."""
        return self.lap.state(phi)

    def reset_modes(self) -> None:
        self.lap.reset_modes()

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray:
        return self.true_gradient(phi)

    def split(self, phi):
        return self.lap.split(phi)

    def _evaluate(self, phi: np.ndarray, want_grad: bool):
        st = self.lap.state(phi)
        fam, y, pw = st.family, self.y[:, None], self.pw[:, None]
        J, q = self.rs.nlev[0], self.q
        u = st.u.reshape(J, q)
        L = st.fac.chol_blocks()  # (J, q, q)
        if q == 1:
            Linv = 1.0 / L
        else:
            Linv = np.linalg.inv(L)
        logdetL = np.sum(np.log(np.abs(np.einsum("jaa->ja", L))), axis=1)
        v = np.einsum("nab,nb->na", Linv[self.codes], st.vals)  # L^{-1} z~_i
        eta = st.eta[:, None] + v @ self.nodes.T  # (n, K)
        kern = fam.loglik_kernel(y, eta, pw)
        ll = np.asarray(self.S @ kern)  # (J, K)
        ujk = u[:, None, :] + np.einsum("jba,kb->jka", Linv, self.nodes)  # u* + L^{-T} z
        g = ll - 0.5 * np.sum(ujk**2, axis=2) + self.half_z2[None, :] + self.logw[None, :]
        lse = logsumexp(g, axis=1)
        loglik = float(np.sum(lse - logdetL)) + self.lap.const
        dev = -2.0 * loglik
        if not want_grad:
            return dev, None
        pi = np.exp(g - lse[:, None])  # (J, K) posterior node weights
        _mu, r, *_ = fam.working(eta, y, pw)
        R = pi[self.codes] * r  # (n, K)
        g_beta = -2.0 * (self.X.T @ R.sum(axis=1))
        g_theta = np.empty(self.rs.ntau)
        U = ujk[self.codes]  # (n, K, q)
        for m, ent in enumerate(self.rs.entries):
            za = self.rs.Zv[0][:, ent.a]
            g_theta[m] = -2.0 * float(np.sum(za * np.einsum("nk,nk->n", R, U[:, :, ent.b])))
        if self.exact_analytic:  # add the derivative through the node placement (u*_j, L_j)
            cb, ct = self._placement_terms(st, u[:, 0], L[:, 0, 0], ujk[:, :, 0], pi, r)
            g_beta = g_beta + cb
            g_theta = g_theta + ct
        g_theta = self.rs.theta_grad(st.theta, g_theta)  # T's entries, chained to theta
        if not self.lap.nx:
            return dev, np.concatenate([g_theta, g_beta])
        lp = fam.extra_pieces(eta, y, pw)[0]  # (n, K, k): placement-fixed part for the extras
        g_x = -2.0 * np.einsum("nk,nkj->j", pi[self.codes], lp)
        return dev, np.concatenate([g_theta, g_beta, g_x])

    def _placement_terms(self, st, u, Lj, ujk, pi, r):
        """d(AGQ deviance)/d(phi) through u*_j and L_j = sqrt(m_j), scalar random effect.

        With s_jk = l'_j(u_jk) - u_jk and u_jk = u*_j + z_k / L_j:
        dA/du*_j = -2 sum_k pi_jk s_jk, dA/dL_j = 2/L_j + 2 sum_k pi_jk s_jk z_k / L_j^2;
        du*/dphi from the mode equation (as in the Laplace gradient) and
        dm_j/dphi = sum_i [dW_i z~_i^2 deta_i/dphi] (+ 2 W_i z~_i dz~_i/dtheta).
        """
        S, codes, X = self.S, self.codes, self.X
        zt = st.vals[:, 0]
        zk = self.nodes[:, 0]
        ps = pi * (np.asarray(S @ (r * zt[:, None])) - ujk)
        dA_du = -2.0 * ps.sum(axis=1)
        dA_dm = (2.0 / Lj + 2.0 * (ps * zk[None, :]).sum(axis=1) / Lj**2) / (2.0 * Lj)
        h = 1.0 + S @ (st.Wobs * zt * zt)  # H_j = I + Z~'W_obs Z~ (scalar blocks)
        du_db = -np.asarray(S @ ((st.Wobs * zt)[:, None] * X)) / h[:, None]
        deta_db = X + zt[:, None] * du_db[codes]
        dm_db = np.asarray(S @ ((st.dW * zt * zt)[:, None] * deta_db))
        Zv = self.rs.Zv[0][:, 0]
        v = Zv * u[codes]
        du_dt = (S @ (Zv * st.r) - S @ (st.Wobs * zt * v)) / h
        deta_dt = v + zt * du_dt[codes]
        dm_dt = S @ (st.dW * zt * zt * deta_dt + 2.0 * st.W * zt * Zv)
        return dA_du @ du_db + dA_dm @ dm_db, np.array([dA_du @ du_dt + dA_dm @ dm_dt])

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        return self._evaluate(np.asarray(phi, float), False)[0]

    def true_gradient(self, phi: np.ndarray) -> np.ndarray:
        """The exact AGQ gradient (nodes moving with phi): analytic for a scalar random effect,
        central finite differences of the deviance otherwise."""
        phi = np.asarray(phi, float)
        if self.exact_analytic:
            return self.value_and_grad(phi)[1]
        if self._true is not None and np.array_equal(self._true[0], phi):
            return self._true[1]
        g = central_diff(self, phi, 1e-6 * np.maximum(1.0, np.abs(phi)))
        self._true = (phi.copy(), g)
        return g

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        """Hessian of the deviance from differences of the placement-fixed gradient (cached)."""
        phi = np.asarray(phi, float)
        # reuse across polishing steps of relative size < 1e-4: the SEs it feeds barely move
        if self._hess is None or not np.allclose(self._hess[0], phi, rtol=1e-4, atol=1e-6):
            grad = lambda z: self.value_and_grad(z)[1]  # noqa: E731
            self._hess = (phi.copy(), fd_hessian(grad, phi, grad(phi)))
        return self._hess[1]

    def value_and_grad(self, phi: np.ndarray):
        self.nevals += 1
        return self._evaluate(np.asarray(phi, float), True)
