r"""PIRLS and the Laplace deviance with its analytic gradient.

For fixed :math:`(\theta, \beta)` the conditional mode :math:`u^*` of the spherical random
effects maximises :math:`\ell(y \mid \eta) - \tfrac12 \|u\|^2` with
:math:`\eta = X\beta + o + \tilde Z u`. PIRLS takes Newton steps
:math:`\delta = H^{-1}(\tilde Z' r - u)`, :math:`H = I + \tilde Z' W_{obs} \tilde Z` (Fisher
weights where the observed ones are not positive), halving a step
until the penalized deviance decreases. The Laplace deviance (lme4's, with every constant of
the log-density kept) is

.. math:: D(\theta, \beta) = -2\ell(y \mid \eta^*) + \|u^*\|^2 + \log|M|.

Gradient (total derivative, :math:`u^*` moving with the parameters). With
:math:`h_i = \tilde z_i' M^{-1} \tilde z_i`, :math:`c = \partial W/\partial\eta \circ h`,
:math:`H = I + \tilde Z' W_{obs} \tilde Z` (= M for canonical links),
:math:`s = H^{-1}\tilde Z' c` and :math:`e = -2r + c - W_{obs} \circ \tilde Z s`:

.. math::
   \partial D/\partial\beta = X'e, \qquad
   \partial D/\partial\theta_m = \sum_i z_{ia}\,[\,e_i u^*_{j(i)b} + 2W_i P_{ib}
   + r_i s_{j(i)b}\,]

for :math:`\theta_m` the (a, b) entry of a term's T, where :math:`P = \tilde Z M^{-1}` at each
row's own columns. Both are single passes over the rows — no loop over clusters.

Each PIRLS run binds the family at its dispersion to the response once
(:mod:`glmm_nb.families.kernel`): the terms of the log-density free of :math:`\eta` are summed
once per evaluation, and the working pieces reuse the inverse link of the accepted step's
log-likelihood.

Warm starts. Each PIRLS run needs one factorization of M per Newton step plus one at the mode
(its log-determinant), and for large crossed designs a factorization is most of the cost
(forming and factoring the dense Schur complement, :mod:`glmm_nb.likelihood.schur`). A run
starts from the last modes :math:`u_0` moved to first order, with the last factor
:math:`H_0` and the working residuals :math:`r_0` and weights :math:`W_0` at :math:`u_0`:

.. math:: u = u_0 + H_0^{-1}\big[(\tilde Z - \tilde Z_0)' r_0 - \tilde Z_0' W_0\,
   (\eta(u_0) - \eta_0(u_0))\big],

one Newton step for the new (theta, beta) taken with the old factor (:math:`\tilde Z` is linear
in theta, so the change of the linear predictor at :math:`u_0` is exact); it is used where its
penalized deviance is lower than the last modes'. On a MovieLens-1M-shaped logistic fit this cut
the PIRLS factorizations from 64 to 53 (most runs now take the minimum of two). The last and the
lowest PIRLS states and gradients are kept (a cache only), so the chosen start, the exact
gradient, the Hessian's base point and the result's state at the optimum are not recomputed.

A random intercept alone with a family whose log-density is linear plus one exponential in eta
(the log-link Poisson and Gamma) finds its modes, deviance and gradient from sums per cluster
instead (:mod:`.cluster_sums`, :class:`ClusterPirlsState`), where no mean can be clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..design import ModelSpec
from ..errors import ModelError
from ..families import Family
from ..families.kernel import Kernel, ResponseData
from ..numdiff import fd_hessian
from .cluster_sums import ClusterModes, ClusterPirls
from .contracts import default_gradient, default_hessian
from .pirls import halving_step
from .reops import BlockFactor, ReStructure, keeps_states, row_constant

__all__ = ["PirlsState", "ClusterPirlsState", "LaplaceDevfun"]


@dataclass
class PirlsState:
    """Everything at the conditional modes for one (theta, beta)."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    vals: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    r: np.ndarray
    W: np.ndarray
    Wobs: np.ndarray
    dW: np.ndarray
    fac: object
    loglik_cond: float  # log p(y | u*)
    deviance: float  # Laplace deviance (-2 log-likelihood)
    iterations: int
    converged: bool
    family: Family  # at the dispersion of this evaluation
    kernel: Kernel | None = None  # the family bound to the response at this dispersion
    cluster_modes: ClusterModes | None = None  # modes found from sums per cluster (cluster_sums)


def _lazy_row(name: str) -> property:
    key = "_" + name

    def get(self):
        if self.__dict__.get(key) is None:
            self.form_rows()
        return self.__dict__[key]

    def put(self, value):
        self.__dict__[key] = value

    return property(get, put, doc=f"``{name}`` per row (formed on first use where None was given)")


class ClusterPirlsState(PirlsState):
    """A :class:`PirlsState` at modes found from sums per cluster (``cluster_modes``): its row
    arrays ``eta, mu, r, W, Wobs, dW`` (given as None) are formed from the cluster form on first
    use — the deviance and its gradient (:meth:`ClusterPirls.gradient
    <glmm_nb.likelihood.cluster_sums.ClusterPirls.gradient>`) need none of them, the result
    built at the optimum and the row formulas do."""

    eta, mu, r, W, Wobs, dW = (_lazy_row(n) for n in ("eta", "mu", "r", "W", "Wobs", "dW"))

    def form_rows(self) -> None:
        """Form the row arrays not given (W = W_obs, dW/deta = kW: :class:`ExpLinearClusters`)."""
        red = self.cluster_modes
        eta, mu, r, W = red.form.working(red.a)
        for name, value in zip(("eta", "mu", "r", "W", "Wobs", "dW"), (eta, mu, r, W, W, W * red.form.k)):
            if self.__dict__.get("_" + name) is None:
                self.__dict__["_" + name] = value


class LaplaceDevfun:
    """Deviance function of a GLMM, closing over the data (lme4's ``devFunOnly``).

    Call with ``phi = concatenate([theta, beta])``. The last conditional modes are kept to
    warm-start the next PIRLS run (a cache only: the value does not depend on it;
    :meth:`reset_modes` clears it). Implements :class:`~.contracts.DevianceFunction`.
    """

    analytic_gradient = True
    profiled = False

    def __init__(self, spec: ModelSpec, family: Family, tol: float = 1e-12, maxit: int = 60):
        if family.profiled_lmm:
            raise ModelError(f"use the LMM deviance for the {family.name} family")
        self.spec = spec
        self.family = family
        self.rs = ReStructure(spec)
        self.y = np.asarray(spec.y, dtype=float)
        self.pw = np.asarray(spec.weights, dtype=float)
        self.X = np.asarray(spec.X, dtype=float)
        self.off = np.asarray(spec.offset, dtype=float)
        self._has_off = bool(np.any(self.off != 0.0))
        self.ntheta = spec.ntheta
        self.p = spec.p
        self.nx = family.n_extra(spec)  # parameters after beta: a dispersion, a zero part
        self.const = float(np.sum(family.loglik_const(self.y, self.pw)))
        self.data = ResponseData(self.y, self.pw, self.const)  # what the families' kernels read
        self.tol = tol
        self.maxit = maxit
        self._u = np.zeros(self.rs.Q)
        self.nevals = 0
        # (phi key, deviance, state) and (phi key, deviance, gradient): the last and the lowest
        self._states = self._grads = (None, None)
        self._prev = None  # (vals, eta, u, W, r, factor, phi) of the last PIRLS run: its modes' move
        # a random intercept alone: modes from sums per cluster where the family's kernel has a
        # cluster form (:mod:`.cluster_sums`); None runs the row path always
        self.cluster_pirls = (ClusterPirls(self.rs.codes0, self.rs.nlev[0], self.pw, self.X)
                              if self.rs.intercept_only else None)

    # ------------------------------------------------------------------------------ PIRLS
    def pirls(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray | None = None,
              family: Family | None = None) -> PirlsState:
        """Conditional modes at (theta, beta); ``family`` at its dispersion (default: the
        devfun's family, which must then need none)."""
        rs = self.rs
        fam = self.family if family is None else family
        K = fam.kernel(self.data)  # what does not depend on eta, once per dispersion
        vals = rs.vals(theta)
        eta_f = self.X @ beta
        if self._has_off:
            eta_f += self.off
        if self.cluster_pirls is not None and row_constant(vals) is not None:  # (1 | g) alone
            red = self.cluster_pirls.modes(K, row_constant(vals), eta_f, self._u if u0 is None else u0,
                                           self.tol, self.maxit)
            if red is not None:
                return self._cluster_state(theta, beta, vals, fam, K, red)
        u = (self._u if u0 is None else u0).copy()
        if not np.all(np.isfinite(u)):
            u = np.zeros(rs.Q)
        eta = eta_f + rs.mult(vals, u)
        pdev = None  # the last modes' penalized deviance, evaluated where it decides something
        pieces = None  # (mu, r, W, Wobs) at the start
        if u0 is None and self._prev is not None and self._moved(theta, beta):  # last modes moved
            u_p = self._predict(vals, eta)
            if u_p is not None:
                eta_p = eta_f + rs.mult(vals, u_p)
                pdev_p = -2.0 * K.loglik(eta_p) + u_p @ u_p
                if np.isfinite(pdev_p) and K.concave:
                    pieces = K.working(eta_p)
                    if K.concave_on(eta_p, eta) and self._beats(K, pdev_p, u_p, eta_p, pieces[1], u, eta):
                        u, eta, pdev = u_p, eta_p, pdev_p
                    else:
                        pdev = -2.0 * K.loglik(eta) + u @ u
                        if pdev_p < pdev:
                            u, eta, pdev = u_p, eta_p, pdev_p
                        else:
                            pieces = None
                else:
                    pdev = -2.0 * K.loglik(eta) + u @ u
                    if pdev_p < pdev:
                        u, eta, pdev = u_p, eta_p, pdev_p
        if pdev is None:
            pdev = -2.0 * K.loglik(eta) + u @ u
        zr = None  # Z~'r at the start (the first Newton step's)
        if np.isfinite(pdev) and K.concave:  # the tangent bound needs the start's score
            pieces = pieces if pieces is not None else K.working(eta)
            zr = rs.tmult(vals, pieces[1])
        if not (np.isfinite(pdev) and self._beats_zero(K, u, zr, pdev, eta, eta_f)):
            pdev0 = -2.0 * K.loglik(eta_f)
            if not np.isfinite(pdev) or pdev0 < pdev:  # the warm start is worse than u = 0
                u = np.zeros(rs.Q)
                eta = eta_f
                pdev = pdev0
                pieces = zr = None
        mu, r, W, Wobs = pieces if pieces is not None else K.working(eta)
        if zr is None:
            zr = rs.tmult(vals, r)
        converged = False
        it = 0
        for it in range(1, self.maxit + 1):
            # Newton steps (observed information) where it is positive; Fisher scoring otherwise
            Wf = W
            if fam.canonical:
                fac = rs.factor(vals, W)
            elif fam.observed_laplace:  # W is W_obs here: a full Newton step where M is positive
                try:                    # definite, a step with the negative weights clipped elsewhere
                    Wf = Wobs
                    fac = rs.factor(vals, Wobs)
                except np.linalg.LinAlgError:
                    Wf = None
                    fac = rs.factor(vals, np.maximum(Wobs, 0.0))
            else:
                Wf = None
                fac = rs.factor(vals, np.where(Wobs > 0, Wobs, W))
            grad = (zr if it == 1 else rs.tmult(vals, r)) - u
            delta = fac.solve(grad)
            dec = float(grad @ delta)
            if dec < self.tol and (it > 1 or dec < 1e-20):
                converged = True
                break
            def penalized(u_new):
                eta_new = eta_f + rs.mult(vals, u_new)
                return -2.0 * K.loglik(eta_new) + u_new @ u_new, eta_new

            accepted = halving_step(u, delta, pdev, penalized)
            if accepted is None:
                converged = dec < 1e-6
                break
            u, pdev, eta = accepted
            mu, r, W, Wobs = K.working(eta)
        if not fam.canonical and Wf is not W:
            # the Laplace log-determinant: Fisher weights (lme4's families) or the observed
            # information (families with observed_laplace, as TMB/glmmTMB), which W holds then;
            # the loop's last factor where it was of these very weights
            fac = rs.factor(vals, W)
        dW = K.dW(eta)
        ll = -0.5 * (pdev - float(u @ u))
        dev = -2.0 * ll + float(u @ u) + fac.logdet
        self._u = u
        keep = keeps_states(fac) and np.isfinite(dev)
        self._prev = (vals, eta, u, W, r, fac, np.concatenate([theta, beta])) if keep else None
        return PirlsState(theta, beta, u, vals, eta, mu, r, W, Wobs, dW, fac, ll, dev, it, converged, fam, K)

    def _cluster_state(self, theta, beta, vals, fam: Family, K: Kernel, red: ClusterModes) -> PirlsState:
        """The state at modes found from sums per cluster (:mod:`.cluster_sums`): the factor of M
        from the clusters' information (the kernels with a cluster form have W = W_obs, the
        Laplace weights), the row arrays on first use (:class:`ClusterPirlsState`)."""
        u = red.u
        fac = BlockFactor(self.rs, vals, None, sums=red.form.score_information(red.a)[1])  # sums of W per cluster
        dev = -2.0 * red.loglik + float(u @ u) + fac.logdet
        self._u = u
        self._prev = None  # the row path's predicted start would need the row arrays: it starts from u
        return ClusterPirlsState(theta, beta, u, vals, None, None, None, None, None, None, fac, red.loglik, dev,
                                 red.iterations, red.converged, fam, K, red)

    @staticmethod
    def _beats_zero(K: Kernel, u: np.ndarray, zr: np.ndarray, pdev: float, eta=None, eta_f=None) -> bool:
        r"""Whether the start u (penalized deviance ``pdev``, :math:`\tilde Z'r` = ``zr`` there)
        is known to beat u = 0 without evaluating u = 0: trivially where u = 0, and where the
        log-density is concave in eta (``K.concave``) by the tangent bound
        :math:`\ell(\eta_f) \le \ell(\eta) - r'\tilde Z u`, i.e.
        :math:`D_p(0) \ge D_p(u) - u'u + 2u'\tilde Z'r`, where that exceeds :math:`D_p(u)`
        (by more than rounding). The choice of start is then the one evaluating u = 0 makes."""
        uu = float(u @ u)
        if uu == 0.0:
            return True
        if not (K.concave and zr is not None and 2.0 * float(zr @ u) - uu > 1e-8 * (abs(pdev) + uu)):
            return False
        # the tangent bounds only where the log-density is concave between the start and u = 0
        return eta is None or K.concave_on(eta, eta_f)

    @staticmethod
    def _beats(K: Kernel, pdev_a: float, u_a, eta_a, r_a, u_b, eta_b) -> bool:
        r"""Whether start a (penalized deviance ``pdev_a``, score ``r_a``) is known to beat start b
        without evaluating b: for a log-density concave in eta, by the tangent at a,
        :math:`D_p(b) \ge D_p(a) - u_a'u_a + u_b'u_b - 2r_a'(\eta_b - \eta_a)`; where that
        exceeds :math:`D_p(a)` by more than rounding, a is the lower."""
        ua, ub = float(u_a @ u_a), float(u_b @ u_b)
        lower = pdev_a - ua + ub - 2.0 * float(r_a @ (eta_b - eta_a))
        return bool(lower - pdev_a > 1e-8 * (abs(pdev_a) + ua + ub))

    PREDICT_MIN_STEP = 1e-4

    def _moved(self, theta: np.ndarray, beta: np.ndarray) -> bool:
        """Whether (theta, beta) moved more than ``PREDICT_MIN_STEP`` (relative) from the last
        PIRLS run: closer (the Hessian's probes), the last modes are already within Newton's
        quadratic range and a predicted start only changes where PIRLS stops."""
        phi0 = self._prev[6]
        phi = np.concatenate([theta, beta])
        return bool(np.any(np.abs(phi - phi0) > self.PREDICT_MIN_STEP * np.maximum(1.0, np.abs(phi0))))

    def _predict(self, vals: np.ndarray, eta_new: np.ndarray) -> np.ndarray | None:
        """The last modes moved to (theta, beta) to first order (module docstring), or None.

        ``eta_new`` is the new linear predictor at the last modes.
        """
        rs = self.rs
        vals0, eta0, u0, W0, r0, fac0, _phi0 = self._prev
        deta = eta_new - eta0
        rhs = rs.tmult(rs.vals_change(vals, vals0), r0) - rs.tmult(vals0, W0 * deta)
        try:
            u = u0 + fac0.solve(rhs)
        except (np.linalg.LinAlgError, ValueError):  # pragma: no cover - a factor that solved before
            return None
        return u if np.all(np.isfinite(u)) else None

    def reset_modes(self) -> None:
        """Start the next PIRLS run from u = 0 (and forget the kept evaluations)."""
        self._u = np.zeros(self.rs.Q)
        self._states = self._grads = (None, None)
        self._prev = None  # (vals, eta, u, W, r, factor, phi) of the last PIRLS run: its modes' move

    # --------------------------------------------------------------------------- deviance
    def state(self, phi: np.ndarray) -> PirlsState:
        """The PIRLS state (conditional modes, factorization) at ``phi``."""
        phi = np.asarray(phi, dtype=float)
        key = phi.tobytes()
        for hit in self._states:
            if hit is not None and hit[0] == key:
                return hit[2]
        theta, beta = self.split(phi)
        st = self.pirls(theta, beta, family=self.family_at(phi))
        if keeps_states(st.fac):
            last, best = self._states
            entry = (key, st.deviance, st)
            if best is None or (np.isfinite(st.deviance) and st.deviance <= best[1]):
                best = entry
            self._states = (entry, best)
        return st


    def family_at(self, phi: np.ndarray) -> Family:
        """The family at the extra parameters in ``phi`` (after theta and beta)."""
        if not self.nx:
            return self.family
        return self.family.at_extra(np.asarray(phi, dtype=float)[self.ntheta + self.p :], self.spec)

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray:
        return default_gradient(self, phi)

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        """Forward differences of the analytic gradient (:func:`~.contracts.default_hessian`);
        for a random intercept alone, each probe's gradient from sums per cluster
        (:meth:`_intercept_probes`) instead of a PIRLS run. Where PIRLS runs from sums per cluster
        (log-link Poisson and gamma), the base point and every probe run it to
        ``HESSIAN_TOL`` instead: modes stopped at the optimizer's tolerance move the probes'
        gradients by O(h^2) and the standard errors by up to 3e-4; these runs cost a Newton step
        over the clusters more."""
        phi = np.asarray(phi, dtype=float)
        probes = self._intercept_probes(phi) if phi.size else None
        if probes is not None:  # the base point by the same formulas (its modes as exact as the probes')
            return fd_hessian(probes[0], phi, probes[1])
        if phi.size and self.cluster_pirls is not None and self.state(phi).cluster_modes is not None:
            tol, self.tol = self.tol, self.HESSIAN_TOL
            self._grads = self._states = (None, None)  # the base point's PIRLS again, at that tolerance
            try:
                return default_hessian(self, phi)
            finally:
                self.tol = tol
                self._grads = self._states = (None, None)
        return default_hessian(self, phi)

    HESSIAN_TOL = 1e-20  # PIRLS from sums per cluster in the Hessian's probes: to the rounding floor

    def _intercept_probes(self, phi0: np.ndarray):
        r"""``(probe, base)``: ``probe(phi) -> gradient`` near the optimum ``phi0`` and the gradient
        ``base`` at ``phi0`` by the same formulas, for a model whose random effects
        are one random intercept (:math:`\tilde z_i = \theta`, cluster j(i)) and whose family has
        equal working and observed weights; None for any other model. Extra parameters (a
        dispersion, a dispersion model's coefficients) move the scores by their
        :math:`\partial r/\partial x` (summed per cluster at the optimum) and enter the gradient
        by :meth:`gradient`'s terms.

        A probe moves one parameter by h. PIRLS would take two Newton steps there, each with a
        log-likelihood, the working pieces and a factorization over the rows. Here the modes are
        moved to first order in h by sums per cluster kept from the optimum
        (:math:`\sum_j W_0 x`, :math:`\sum_j W_0`, :math:`\sum_j r_0`):

        .. math:: u_p = u_0 + \big[\Delta\theta\, R_0 + \theta\,\Delta R\big]/m_0,\qquad
           \Delta R_j = -\textstyle\sum_j W_0 x'\Delta\beta - \Delta\theta\, u_{0j} \sum_j W_0,

        (:math:`R_0 = \sum_j r_0`, :math:`m_0 = 1 + \theta_0^2\sum_j W_0`), the working pieces are formed once at
        :math:`u_p`, and one chord step :math:`\delta = (\theta R - u_p)/m_0` more leaves the
        modes :math:`O(h^3)` from the probe's; the gradient (:meth:`gradient`'s formulas for a
        random intercept) is then taken at :math:`u_1 = u_p + \delta` with r, W moved to first
        order in :math:`\delta` through per-cluster factors, so that one pass forms
        :math:`e_i = \partial W_i/\partial\eta\,A_j + W_i B_j - 2r_i` and one product
        :math:`X'e`. Four passes over the rows and three sums per cluster per probe, against
        about twenty-five for a PIRLS run and the gradient; equal to them to the order of the
        forward difference's own error (tested). The base point's gradient comes from the same
        formulas at the optimum's own state, its chord step taking up what PIRLS left
        (:math:`\theta_0 R_0 - u_0`, up to ~1e-6): the pieces the formulas do not move over a
        step (:math:`\partial W/\partial\eta`, :math:`W_x`) are then off alike at the base and the
        probes, where the base's exact gradient against the probes' moved modes made the Hessian
        up to 5e-3 off (a state reached from far)."""
        rs = self.rs
        if not (self.family.canonical or self.family.observed_laplace):
            return None
        try:
            st = self.state(phi0)
        except np.linalg.LinAlgError:
            return None
        if st.cluster_modes is not None:  # PIRLS from sums per cluster: cheaper still than these probes
            return None
        th0 = row_constant(st.vals)
        if (th0 is None or self.cluster_pirls is None or st.Wobs is not st.W
                or not (st.converged and np.isfinite(st.deviance))):
            return None
        cl, X = rs.codes0, self.X
        csum = self.cluster_pirls.clusters.sum  # sums per cluster, of a row vector or of each column
        SW0 = csum(st.W)
        R0 = csum(st.r)
        SWX0 = csum(st.W[:, None] * X)
        m0, u0 = st.fac.m, st.u
        nt, nb = self.ntheta, self.ntheta + self.p
        extras0 = None
        if self.nx:  # the extras' (dispersion's) move of the scores: sum_j dr/dx per cluster
            K0 = st.kernel if st.kernel is not None else st.family.kernel(self.data)
            extras0 = K0.extra_pieces(st.eta)
            rp0 = extras0[1]
            SRP0 = csum(rp0)

        def at_modes(phi, th, up, r, W, dW, SR, SW, SD, extras):
            """The gradient at the modes ``up`` moved by one chord step, from the row pieces
            (r, W, dW) and their sums per cluster at ``up``."""
            step = (th * SR - up) / m0  # the chord step, with the optimum's factor
            u1 = up + step
            SW1 = SW + th * step * SD  # sums at u1, to first order in the step
            SR1 = SR - th * step * SW
            m1 = 1.0 + th * th * SW1
            if not np.all(m1 > 0):
                return self.value_and_grad(phi)[1]
            h = th * th / m1
            sv = th * h * SD / m1  # s = M^-1 Z~'(dW h)
            A = h - th * th * step * sv  # e_i = dW_i A_j + W_i B_j - 2 r_i at u1
            B = th * (2.0 * step - sv)
            e = dW * A[cl]
            e += W * B[cl]
            e -= 2.0 * r
            g_beta = X.T @ e
            Se = SD * A + SW * B - 2.0 * SR
            g_tau = np.array([float(u1 @ Se) + 2.0 * th * float(np.sum(SW1 / m1)) + float(sv @ SR1)])
            if not self.nx:
                return np.concatenate([rs.theta_grad(phi[:nt], g_tau), g_beta])
            # the extras: gradient()'s -2 l_x + h'W_x + (Z~s)'r_x, l_x moved to u1 through
            # d l_x/d eta = r_x, the per-row pieces r_x and W_x at u_p (their move over the step
            # only changes M's terms, at second order)
            lp, rp, Wp = extras
            SRP, SWP = csum(rp), csum(Wp)
            g_x = -2.0 * (lp + (th * step) @ SRP) + h @ SWP + (th * sv) @ SRP
            return np.concatenate([rs.theta_grad(phi[:nt], g_tau), g_beta, g_x])

        def probe(phi: np.ndarray) -> np.ndarray:
            theta, beta = self.split(phi)
            th = float(rs.vals(theta)[0, 0])
            dth = th - th0
            dR = -(SWX0 @ (beta - st.beta)) - dth * u0 * SW0
            if self.nx:
                dR += SRP0 @ (phi[nb:] - phi0[nb:])
            # (the optimum's own PIRLS residual th0 R0 - u0 is left to the chord step, as at the base
            # point: the pieces not moved over that step, dW and W_x, are then off alike in both)
            up = u0 + (dth * R0 + th * dR) / m0
            eta = X @ beta
            if self._has_off:
                eta += self.off
            eta += (th * up)[cl]
            K = self.family_at(phi).kernel(self.data)
            _mu, r, W, Wobs = K.working(eta)
            if Wobs is not W:
                return self.value_and_grad(phi)[1]
            dW = K.dW(eta)
            return at_modes(phi, th, up, r, W, dW, csum(r), csum(W), csum(dW), K.extra_pieces(eta) if self.nx else None)

        # the base point: the optimum's own state, its modes moved by the chord step that takes up
        # what PIRLS left (th0 R0 - u0), as the probes' are (their difference is then free of it)
        base = at_modes(phi0, th0, u0, st.r, st.W, st.dW, R0, SW0, csum(st.dW), extras0)
        return probe, base

    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(theta, beta) of ``phi = (theta, beta[, log dispersion])``."""
        phi = np.asarray(phi, dtype=float)
        return phi[: self.ntheta], phi[self.ntheta : self.ntheta + self.p]

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        try:
            return self.state(phi).deviance
        except np.linalg.LinAlgError:  # the observed information is not positive definite here
            return np.inf

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """The Laplace deviance and its gradient. The last and the lowest gradients and PIRLS
        states are kept (a cache only; states while their dense block is small): the chosen
        start, the exact gradient, the Hessian's base point and the result builder's state at
        the optimum are not recomputed."""
        self.nevals += 1
        phi = np.asarray(phi, dtype=float)
        key = phi.tobytes()
        for hit in self._grads:
            if hit is not None and hit[0] == key:
                return hit[1], hit[2].copy()
        try:
            st = self.state(phi)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(phi.size)
        g = self.gradient(st)
        last, best = self._grads
        entry = (key, st.deviance, g.copy())
        if best is None or (np.isfinite(st.deviance) and st.deviance <= best[1]):
            best = entry
        self._grads = (entry, best)
        return st.deviance, g

    def gradient(self, st: PirlsState) -> np.ndarray:
        rs = self.rs
        vals = st.vals
        th = row_constant(vals)  # a random intercept alone: P_i = theta/m_j, sums per cluster below
        if st.cluster_modes is not None and self.cluster_pirls is not None and th is not None:
            g = self.cluster_pirls.gradient(st.cluster_modes, th, st.fac.m, st.kernel, self.nx)  # no row sums
            return np.concatenate([rs.theta_grad(st.theta, g[:1]), g[1:]])
        if th is not None:
            h = (th * th / st.fac.m)[rs.codes0]
        else:
            P = st.fac.P(vals)
            h = np.einsum("ns,ns->n", P, vals) if rs.s > 1 else P[:, 0] * vals[:, 0]
        c = st.dW * h
        Hfac = st.fac
        if not (self.family.canonical or self.family.observed_laplace):
            try:  # H = I + Z~'W_obs Z~ is the Hessian at the mode: positive definite there
                Hfac = rs.factor(vals, st.Wobs)
            except np.linalg.LinAlgError:  # PIRLS stopped short of the mode: Fisher approximation
                Hfac = st.fac
        s = Hfac.solve(rs.tmult(vals, c))
        Zs = rs.mult(vals, s)
        e = c - 2.0 * st.r
        e -= st.Wobs * Zs
        g_beta = self.X.T @ e
        if th is not None:  # sum_i [e_i u_j + 2 W_i theta/m_j + r_i s_j] by three sums per cluster
            cl, Q = rs.codes0, rs.Q
            g_tau = np.array([float(st.u @ np.bincount(cl, weights=e, minlength=Q))
                              + 2.0 * th * float(np.bincount(cl, weights=st.W, minlength=Q) @ (1.0 / st.fac.m))
                              + float(s @ np.bincount(cl, weights=st.r, minlength=Q))])
        else:
            H = 2.0 * st.W[:, None] * P
            H += e[:, None] * st.u[rs.cols]
            H += st.r[:, None] * s[rs.cols]
            g_tau = rs.row_grad(H)
        g_theta = rs.theta_grad(st.theta, g_tau)  # T's entries, chained to theta
        if not self.nx:
            return np.concatenate([g_theta, g_beta])
        # extra parameters (a log-dispersion, zero-part coefficients) act per observation:
        # direct terms, the log-determinant through W_obs, and the modes' move
        # du*/dx = H^-1 Z~' dr/dx acting on the log-determinant (c)
        K = st.kernel if st.kernel is not None else st.family.kernel(self.data)
        lp, rp, Wp = K.extra_pieces(st.eta)
        g_x = -2.0 * lp + h @ Wp + Zs @ rp
        return np.concatenate([g_theta, g_beta, g_x])
