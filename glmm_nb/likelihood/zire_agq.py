r"""Adaptive Gauss-Hermite quadrature for zero-inflated and hurdle models with random effects in
the zero part, where all random effects of both parts are on one grouping factor.

The model of :mod:`.zire` (glmmTMB's): :math:`\eta = X\beta + o + \tilde Z_c u_c`,
:math:`\zeta = X_{zi}\gamma + \tilde Z_z u_z`, :math:`u = (u_c, u_z) \sim N(0, I)`. When every
random-effect term of both parts is on one grouping factor — one count term and one zero-part
term on the same factor (the joint Laplace's merged term), or random effects in the zero part
only — the marginal likelihood factors over the clusters j, each an integral over the joint
vector :math:`u_j` of :math:`q = q_c + q_z` effects:

.. math:: L_j = \int p(y_j \mid u)\,\phi_q(u)\,du
   = |L_j|^{-1} \int \frac{p(y_j \mid u(z))\,\phi_q(u(z))}{\phi_q(z)}\,\phi_q(z)\,dz,
   \qquad u(z) = u^*_j + L_j^{-T} z,

with :math:`u^*_j` the joint conditional modes and :math:`L_jL_j' = M_j` the Cholesky factor of
the joint observed information — both from the joint Laplace's PIRLS
(:class:`~.zire.ZiReLaplaceDevfun`) — and the product Gauss-Hermite rule of
:func:`~.agq.gh_rule` (:math:`k^q` nodes). With ``k = 1`` this is the joint Laplace deviance
exactly. Every constant of the log-density is kept: one log-likelihood scale for Laplace, AGQ and
an exact integral.

With two grouping factors (count and zero part on different factors, or several terms) the
integral does not factor by cluster and AGQ is refused (:func:`zi_agq_refusal`).

Evaluation is vectorized over clusters and nodes: (n, K) arrays of both linear predictors,
summed into (J, K) per-cluster log-likelihoods by one sparse product. The gradient is central
differences of the deviance (the node placement moves with the parameters; PIRLS converges
to about 1e-12, far below the differences' step squared), as the joint Laplace's.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from ..design import ModelSpec, check_agq_size
from ..errors import ModelError
from ..families import Family
from ..numdiff import central_diff
from .agq import gh_rule
from .contracts import default_hessian
from .zire import ZiReLaplaceDevfun, mergeable

__all__ = ["ZiReAgqDevfun", "zi_agq_refusal", "check_zi_agq"]


def zi_agq_refusal(spec: ModelSpec) -> str | None:
    """Why AGQ does not apply to a model with zero-part random effects (None when it does): it
    needs the random effects of both parts in one term per part on one grouping factor (the
    count part always has random effects: a model without them is no GLMM)."""
    if not spec.zi_terms:
        return None
    if mergeable(spec):
        return None
    count = ", ".join(t.text for t in spec.terms) or "none"
    zero = ", ".join(t.text for t in spec.zi_terms)
    return (f"method='agq' with random effects in the zero part needs them and the count part's on one grouping "
            f"factor, one term each (count part: {count}; zero part: {zero}), so that the integral factors by "
            "cluster; fit by Laplace (method='laplace'), as glmmTMB")


def check_zi_agq(spec: ModelSpec, nagq: int) -> None:
    """Refuse AGQ where it does not apply (:func:`zi_agq_refusal`) or where its rule is too large
    (``nagq`` to the power of the joint number of random effects per cluster)."""
    why = zi_agq_refusal(spec)
    if why:
        raise ModelError(why)
    q = sum(t.q for t in spec.terms) + sum(t.q for t in spec.zi_terms)
    check_agq_size(nagq, SimpleNamespace(terms=[SimpleNamespace(q=q)], nobs=spec.nobs))


class ZiReAgqDevfun:
    """AGQ deviance of a zero-inflated/hurdle GLMM with zero-part random effects on the count
    part's grouping factor, at ``phi = (theta, beta, [log dispersion], gamma, theta_zi)``.

    Implements :class:`~.contracts.DevianceFunction` (gradient by central differences); ``lap``
    is the joint Laplace deviance whose PIRLS places the nodes.
    """

    analytic_gradient = False
    gradient_by_differences = True
    profiled = False

    def __init__(self, spec: ModelSpec, family: Family, nagq: int):
        check_zi_agq(spec, nagq)
        self.lap = ZiReLaplaceDevfun(spec, family)
        self.spec, self.family, self.nagq = spec, family, nagq
        self.rs = self.lap.rs
        self.X, self.y, self.pw = self.lap.X, self.lap.y, self.lap.pw
        self.ntheta, self.p = self.lap.ntheta, self.lap.p
        js = self.lap.joint
        self.q = js.q[0]
        self.J = js.nlev[0]
        self.n = spec.nobs
        self.codes = np.asarray(js.codes0[: self.n])
        self.nodes, self.logw = gh_rule(nagq, self.q)
        self.half_z2 = 0.5 * np.sum(self.nodes**2, axis=1)
        self.S = sp.csr_matrix((np.ones(self.n), (self.codes, np.arange(self.n))), shape=(self.J, self.n))
        self.nevals = 0

    @property
    def maxit(self) -> int:
        return self.lap.maxit

    @maxit.setter
    def maxit(self, v: int) -> None:
        self.lap.maxit = v

    def state(self, phi):
        """The joint Laplace's PIRLS state at ``phi`` (the node placement)."""
        return self.lap.state(phi)

    def reset_modes(self) -> None:
        self.lap.reset_modes()

    def split(self, phi):
        return self.lap.split(phi)

    def joint_modes(self, st) -> np.ndarray:
        """The joint modes per cluster, (J, q): the count part's columns, then the zero part's."""
        return np.concatenate([np.asarray(st.u, dtype=float).reshape(self.J, -1),
                               np.asarray(st.u_zi, dtype=float).reshape(self.J, -1)], axis=1)

    def cluster_loglik(self, phi: np.ndarray) -> np.ndarray:
        """Each cluster's AGQ log-likelihood (without the data's constants), (J,)."""
        phi = np.asarray(phi, dtype=float)
        st = self.lap.state(phi)
        js = self.lap.joint
        vals = js.vals(self.lap.joint_theta(phi))  # (3n, q): (z~_c, 0), (0, z~_z), (z~_c, z~_z)
        f = st.family  # at the modes' zeta
        y, pw, n = self.y, self.pw, self.n
        _mu, _r, _W, Wobs, _dW = f.working(st.eta, y, pw)
        _rz, c, b = f.zeta_working(st.eta, y, pw)
        L = js.factor(vals, np.concatenate([Wobs - c, b - c, c])).chol_blocks()  # the joint M_j = L_j L_j'
        Linv = 1.0 / L if self.q == 1 else np.linalg.inv(L)
        logdetL = np.sum(np.log(np.abs(np.einsum("jaa->ja", L))), axis=1)
        Lc = Linv[self.codes]
        va = np.einsum("nab,nb->na", Lc, vals[:n])  # L^{-1} (z~_c, 0): eta's displacement per node
        vb = np.einsum("nab,nb->na", Lc, vals[n : 2 * n])  # L^{-1} (0, z~_z): zeta's
        eta = st.eta[:, None] + va @ self.nodes.T  # (n, K)
        zeta = np.asarray(st.zeta, dtype=float)[:, None] + vb @ self.nodes.T
        kern = f.with_zeta(zeta).loglik_kernel(y[:, None], eta, pw[:, None])
        ll = np.asarray(self.S @ kern)  # (J, K)
        ujk = self.joint_modes(st)[:, None, :] + np.einsum("jba,kb->jka", Linv, self.nodes)  # u* + L^{-T} z
        g = ll - 0.5 * np.sum(ujk**2, axis=2) + self.half_z2[None, :] + self.logw[None, :]
        return logsumexp(g, axis=1) - logdetL

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        try:
            return -2.0 * (float(np.sum(self.cluster_loglik(phi))) + self.lap.const)
        except np.linalg.LinAlgError:  # the observed information is not positive definite at the mode
            return np.inf

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray:
        phi = np.asarray(phi, dtype=float)
        return central_diff(self, phi, 1e-5 * np.maximum(np.abs(phi), 1e-1))

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """D and its central-difference gradient (what the optimizer is given)."""
        phi = np.asarray(phi, dtype=float)
        d = self(phi)
        if not np.isfinite(d):
            return np.inf, np.zeros(phi.size)
        return d, self.exact_gradient(phi)

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        return default_hessian(self, phi)
