r"""Laplace deviance of zero-inflated and hurdle models with random effects in the zero part.

glmmTMB's model: two linear predictors with independent random effects,

.. math:: \eta = X\beta + o + \tilde Z_c u_c, \qquad \zeta = X_{zi}\gamma + \tilde Z_z u_z,

:math:`\pi = \mathrm{expit}(\zeta)` the structural-zero (hurdle: zero) probability and
:math:`u = (u_c, u_z) \sim N(0, I)` spherical (:math:`\tilde Z = Z\Lambda(\theta)` per part).
The per-row log-density :math:`\ell_i(\eta_i, \zeta_i)` has the negative Hessian

.. math:: W_i = \begin{pmatrix} a_i & c_i \\ c_i & b_i \end{pmatrix}

(:meth:`~glmm_nb.families.zeroinfl.ZeroInflated.working` gives :math:`a`,
:meth:`~glmm_nb.families.zeroinfl.ZeroInflated.zeta_working` gives :math:`b, c` and the
:math:`\zeta`-score). The joint matrix :math:`M = I + \sum_i \check z_i W_i \check z_i'`
(:math:`\check z_i = (\tilde z_{c,i}, \tilde z_{z,i})`) is factored by the count part's own
machinery (:class:`~.reops.ReStructure`) unchanged, by writing

.. math:: W_i = (a_i - c_i)\,e_1e_1' + (b_i - c_i)\,e_2e_2' + c_i\,(e_1+e_2)(e_1+e_2)',

three pseudo-rows per observation with diagonal weights: :math:`(\tilde z_c, 0)` weighted
:math:`a-c`, :math:`(0, \tilde z_z)` weighted :math:`b-c`, :math:`(\tilde z_c, \tilde z_z)`
weighted :math:`c`. The count terms come first, then the zero part's terms, so the blocks of
:math:`M^{-1}` of term ``k`` are the joint conditional covariances. One count term and one
zero-part term on the same grouping factor (the common case) become one term of
:math:`q_c + q_z` columns with a block-diagonal T, so M is block diagonal by cluster and factored
as a batch of small Cholesky factors (the Schur path would factor a dense block of the zero
part's columns). PIRLS takes Newton steps in
u (observed information; where M is not positive definite, a step with the cross weights
dropped and negative weights clipped, still a descent direction); the deviance, as glmmTMB's
Laplace approximation with every constant, is

.. math:: D = -2\sum_i \ell_i(\eta_i^*, \zeta_i^*) + \|u^*\|^2 + \log|M|.

Gradient (total derivative, the modes moving with the parameters). The first two terms of D are
stationary in u at the modes (envelope theorem); :math:`\log|M|` moves with the parameters
directly and through :math:`u^*` (:math:`du^*/d\phi = M^{-1}\partial_\phi F` for the mode
equation :math:`F = \check Z'(\ell_\eta, \ell_\zeta) - u = 0`, M being its negative Jacobian
with the observed information). With the leverages of the three pseudo-rows
:math:`h_1 = \tilde z_c'M^{-1}\tilde z_c`, :math:`h_2 = \tilde z_z'M^{-1}\tilde z_z`,
:math:`h_\times = 2\tilde z_c'M^{-1}\tilde z_z`, the weights' derivatives
:math:`a_\eta` (:meth:`working`'s ``dW``) and :math:`a_\zeta = c_\eta`, :math:`b_\eta = c_\zeta`,
:math:`b_\zeta` (:meth:`~glmm_nb.families.zeroinfl.ZeroInflated.zeta_third`: third derivatives
of the row log-density),

.. math::
   g_\eta = h_1 a_\eta + h_2 b_\eta + h_\times a_\zeta, \quad
   g_\zeta = h_1 a_\zeta + h_2 b_\zeta + h_\times b_\eta, \quad
   s = M^{-1}\check Z'(g_\eta, g_\zeta), \quad (t_c, t_z)_i = \check z_i's,

   e_\eta = -2\ell_\eta + g_\eta - (a t_c + c t_z), \qquad
   e_\zeta = -2\ell_\zeta + g_\zeta - (c t_c + b t_z),

give :math:`\partial D/\partial\beta = X'e_\eta`, :math:`\partial D/\partial\gamma =
X_{zi}'e_\zeta`; for an entry (a, b) of a term's T (either part), on the pseudo-rows k with
:math:`E = (e_\eta, e_\zeta, 0)`, :math:`R = (\ell_\eta, \ell_\zeta, 0)` and the weights
:math:`w = (a-c, b-c, c)`, :math:`\sum_k z_{ka}[E_k u^*_{j(k)b} + 2w_k P_{kb} + R_k s_{j(k)b}]`
(:math:`P = \check Z M^{-1}` at each pseudo-row's columns: the count part's formula of
:mod:`.laplace` on the pseudo-rows); for the count part's dispersion and a dispersion model's
:math:`\delta` (per-row derivatives :math:`\dot\ell, \dot\ell_\eta, \dot a` from
:meth:`extra_pieces`, :math:`\dot\ell_\zeta, \dot c, \dot b` from
:meth:`~glmm_nb.families.zeroinfl.ZeroInflated.zeta_extra_pieces`)
:math:`-2\sum\dot\ell + h_1'\dot a + h_2'\dot b + h_\times'\dot c + t_c'\dot\ell_\eta +
t_z'\dot\ell_\zeta`. Every piece is one pass over the rows; the Hessian is forward differences
of this gradient. The gradient needs the modes to far below the differences' steps: PIRLS stops
at a Newton decrement below 1e-12 (modes within about 1e-6) and then takes the Newton step it
has already solved (modes within about 1e-12), so D agrees between warm and cold starts to about
1e-10.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np

from ..design import ModelSpec, term_slices
from ..design.reterms import tril_index
from ..errors import ModelError
from ..families import Family
from .contracts import default_gradient, default_hessian
from .laplace import PirlsState
from .pirls import halving_step
from .reops import ReStructure

__all__ = ["ZiReLaplaceDevfun", "ZiPirlsState"]


@dataclass
class ZiPirlsState(PirlsState):
    """A :class:`~.laplace.PirlsState` whose ``u`` is the count part's modes; the zero part's
    modes and linear predictor beside them. ``fac`` is the joint factorization."""

    u_zi: np.ndarray | None = None
    zeta: np.ndarray | None = None
    joint_theta: np.ndarray | None = None  # (count part's theta, zero part's theta)
    joint_u: np.ndarray | None = None  # (u_c, u_z) in the joint structure's layout
    joint_vals: np.ndarray | None = None  # the joint structure's non-zeros (3n, s)
    joint_fac: object = None  # the joint factorization itself (``fac`` may be a per-term view)
    zeta_pieces: tuple | None = None  # (dl/dzeta, c, b) at the modes


@dataclass(frozen=True)
class _Stacked:
    """The three pseudo-rows per observation as a spec :class:`ReStructure` reads."""

    terms: tuple
    nobs: int

    def theta_slices(self) -> list[slice]:
        return term_slices(self.terms)


@dataclass(frozen=True, eq=False)
class _MergedTerm:
    """A count term and a zero-part term on the same grouping factor as one term (T block
    diagonal): what :class:`ReStructure` reads of a term."""

    count: object
    zero: object
    codes: np.ndarray
    Zvals: np.ndarray
    structure = SimpleNamespace(coords=None)
    structured = False

    @property
    def q(self) -> int:
        return self.count.q + self.zero.q

    @property
    def nlevels(self) -> int:
        return self.count.nlevels

    @property
    def ntheta(self) -> int:
        return self.count.ntheta + self.zero.ntheta

    def T(self, theta: np.ndarray) -> np.ndarray:
        qc, nc = self.count.q, self.count.ntheta
        out = np.zeros((self.q, self.q))
        out[:qc, :qc] = self.count.T(theta[:nc])
        out[qc:, qc:] = self.zero.T(theta[nc:])
        return out


def mergeable(spec: ModelSpec) -> bool:
    """One count term and one zero-part term on the same grouping factor (no positions)."""
    if len(spec.terms) != 1 or len(spec.zi_terms) != 1:
        return False
    c, z = spec.terms[0], spec.zi_terms[0]
    return (c.group_vars == z.group_vars and c.levels == z.levels and np.array_equal(c.codes, z.codes)
            and c.structure.coords is None and z.structure.coords is None)


def stacked_terms(spec: ModelSpec) -> _Stacked:
    """Count terms on pseudo-rows 1 and 3, zero-part terms on pseudo-rows 2 and 3 (zeros
    elsewhere); one merged term where :func:`mergeable`."""
    n = spec.nobs

    def rows(t, on):
        Z = np.asarray(t.Zvals, dtype=float)
        return np.concatenate([Z if k in on else np.zeros_like(Z) for k in range(3)])

    if mergeable(spec):
        c, z = spec.terms[0], spec.zi_terms[0]
        Zs = np.concatenate([rows(c, (0, 2)), rows(z, (1, 2))], axis=1)
        return _Stacked((_MergedTerm(c, z, np.tile(np.asarray(c.codes), 3), Zs),), 3 * n)
    terms = (tuple(replace(t, codes=np.tile(np.asarray(t.codes), 3), Zvals=rows(t, (0, 2))) for t in spec.terms)
             + tuple(replace(t, codes=np.tile(np.asarray(t.codes), 3), Zvals=rows(t, (1, 2))) for t in spec.zi_terms))
    return _Stacked(terms, 3 * n)


class _TermBlocks:
    """The merged term's factorization seen term by term (count term 0, zero-part term 1)."""

    def __init__(self, fac, qc: int):
        self.fac, self.qc = fac, qc
        self.logdet = fac.logdet
        self.dense_block = fac.dense_block

    def solve(self, rhs):
        return self.fac.solve(rhs)

    def inv_blocks_term(self, k: int) -> np.ndarray:
        B = self.fac.inv_blocks_term(0)
        return B[:, : self.qc, : self.qc] if k == 0 else B[:, self.qc :, self.qc :]


class ZiReLaplaceDevfun:
    """Deviance of a zero-inflated/hurdle GLMM with zero-part random effects, at
    ``phi = (theta, beta, [log dispersion], gamma, theta_zi)``. Implements
    :class:`~.contracts.DevianceFunction` (analytic gradient: module docstring)."""

    analytic_gradient = True
    profiled = False

    def __init__(self, spec: ModelSpec, family: Family, tol: float = 1e-12, maxit: int = 60):
        if not getattr(family, "has_zero_part", False) or not spec.zi_terms:
            raise ModelError("ZiReLaplaceDevfun is for zero parts with random-effect terms")
        self.spec = spec
        self.family = family
        self.rs = ReStructure(spec)  # the count part's terms alone (the result's conditional modes)
        self.joint = ReStructure(stacked_terms(spec))
        self.merged = mergeable(spec)
        self.n = spec.nobs
        self.y = np.asarray(spec.y, dtype=float)
        self.pw = np.asarray(spec.weights, dtype=float)
        self.X = np.asarray(spec.X, dtype=float)
        self.Xz = np.asarray(spec.zi_X, dtype=float)
        self.off = np.asarray(spec.offset, dtype=float)
        self.ntheta = spec.ntheta
        self.p = spec.p
        self.nx = family.n_extra(spec)
        self.nzt = spec.zi_ntheta
        self.Qc = self.rs.Q
        self.const = float(np.sum(family.loglik_const(self.y, self.pw)))
        self.tol = tol
        self.maxit = maxit
        self._u = np.zeros(self.joint.Q)
        self._last = None
        self.nevals = 0

    # ------------------------------------------------------------------------- pieces
    def split(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phi = np.asarray(phi, dtype=float)
        return phi[: self.ntheta], phi[self.ntheta : self.ntheta + self.p]

    def family_at(self, phi: np.ndarray) -> Family:
        """The family at the extra parameters (``zeta`` without the zero part's random effects)."""
        return self.family.at_extra(np.asarray(phi, dtype=float)[self.ntheta + self.p :], self.spec)

    def joint_theta(self, phi: np.ndarray) -> np.ndarray:
        phi = np.asarray(phi, dtype=float)
        return np.concatenate([phi[: self.ntheta], phi[phi.size - self.nzt :]])

    def reset_modes(self) -> None:
        self._u = np.zeros(self.joint.Q)
        self._last = None

    # -------------------------------------------------------------------------- PIRLS
    def _predictors(self, vals, u, eta_f, zeta_f):
        lin = self.joint.mult(vals, u)
        return eta_f + lin[: self.n], zeta_f + lin[self.n : 2 * self.n]

    def _pdev(self, fam, eta, zeta, u) -> float:
        ll = float(np.sum(fam.with_zeta(zeta).loglik_kernel(self.y, eta, self.pw))) + self.const
        return -2.0 * ll + float(u @ u)

    def _weights(self, fam, eta, zeta):
        f = fam.with_zeta(zeta)
        return (f, *f.joint_working(eta, self.y, self.pw))

    def pirls(self, phi: np.ndarray) -> ZiPirlsState:
        """Joint conditional modes of (u_c, u_z) at ``phi``."""
        phi = np.asarray(phi, dtype=float)
        theta, beta = self.split(phi)
        fam = self.family_at(phi)
        js = self.joint
        vals = js.vals(self.joint_theta(phi))
        eta_f = self.X @ beta + self.off
        zeta_f = np.asarray(fam.zeta, dtype=float)
        u = self._u.copy() if np.all(np.isfinite(self._u)) else np.zeros(js.Q)
        eta, zeta = self._predictors(vals, u, eta_f, zeta_f)
        pdev = self._pdev(fam, eta, zeta, u)
        pdev0 = self._pdev(fam, eta_f, zeta_f, np.zeros(js.Q))
        if not np.isfinite(pdev) or pdev0 < pdev:
            u, eta, zeta, pdev = np.zeros(js.Q), eta_f.copy(), zeta_f.copy(), pdev0
        zeros = np.zeros(self.n)
        converged, it = False, 0
        for it in range(1, self.maxit + 1):
            f, mu, r, Wobs, dW, rz, c, b = self._weights(fam, eta, zeta)
            grad = js.tmult(vals, np.concatenate([r, rz, zeros])) - u
            try:
                fac = js.factor(vals, np.concatenate([Wobs - c, b - c, c]))
            except np.linalg.LinAlgError:  # not positive definite here: a descent step all the same
                fac = js.factor(vals, np.concatenate([np.maximum(Wobs, 0.0), np.maximum(b, 0.0), zeros]))
            delta = fac.solve(grad)
            dec = float(grad @ delta)
            if dec < self.tol and (it > 1 or dec < 1e-20):
                # the Newton step already solved, taken: the modes' error goes from sqrt(dec) to
                # about dec (log|M| moves to first order with the modes, and D's differences need it)
                u = u + delta
                eta, zeta = self._predictors(vals, u, eta_f, zeta_f)
                pdev = self._pdev(fam, eta, zeta, u)
                converged = True
                break

            def penalized(u_new):
                e, z = self._predictors(vals, u_new, eta_f, zeta_f)
                return self._pdev(fam, e, z, u_new), (e, z)

            accepted = halving_step(u, delta, pdev, penalized)
            if accepted is None:
                converged = dec < 1e-6
                break
            u, pdev, (eta, zeta) = accepted
        f, mu, r, Wobs, dW, rz, c, b = self._weights(fam, eta, zeta)
        joint_fac = fac = js.factor(vals, np.concatenate([Wobs - c, b - c, c]))  # observed information (as TMB)
        ll = -0.5 * (pdev - float(u @ u))
        dev = -2.0 * ll + float(u @ u) + fac.logdet
        self._u = u
        u_c, u_z = self.split_modes(u)
        if self.merged:
            fac = _TermBlocks(fac, self.spec.terms[0].q)
        return ZiPirlsState(theta, beta, u_c, self.rs.vals(theta), eta, mu, r, Wobs, Wobs, dW, fac, ll,
                            dev, it, converged, f, u_zi=u_z, zeta=zeta, joint_theta=self.joint_theta(phi),
                            joint_u=u, joint_vals=vals, joint_fac=joint_fac, zeta_pieces=(rz, c, b))

    def split_modes(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The joint modes as (count part's, zero part's), each in its own terms' layout."""
        if not self.merged:
            return u[: self.Qc], u[self.Qc :]
        qc = self.spec.terms[0].q
        U = u.reshape(self.spec.terms[0].nlevels, -1)
        return U[:, :qc].ravel(), U[:, qc:].ravel()

    # ------------------------------------------------------------------------ deviance
    def state(self, phi: np.ndarray) -> ZiPirlsState:
        phi = np.asarray(phi, dtype=float)
        key = phi.tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        st = self.pirls(phi)
        self._last = (key, st)
        return st

    def __call__(self, phi: np.ndarray) -> float:
        self.nevals += 1
        try:
            return self.state(phi).deviance
        except np.linalg.LinAlgError:  # the observed information is not positive definite at the mode
            return np.inf

    def exact_gradient(self, phi: np.ndarray) -> np.ndarray:
        return default_gradient(self, phi)

    def value_and_grad(self, phi: np.ndarray) -> tuple[float, np.ndarray]:
        """D and its analytic gradient (see the module docstring)."""
        phi = np.asarray(phi, dtype=float)
        self.nevals += 1
        try:
            st = self.state(phi)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros(phi.size)
        if not np.isfinite(st.deviance):
            return np.inf, np.zeros(phi.size)
        return st.deviance, self.gradient(st)

    def gradient(self, st: ZiPirlsState) -> np.ndarray:
        """The total derivative of D in ``phi`` at the state's modes (module docstring)."""
        js, n, y, pw = self.joint, self.n, self.y, self.pw
        vals, u, fac, f, eta = st.joint_vals, st.joint_u, st.joint_fac, st.family, st.eta
        r, a, a_e = st.r, st.Wobs, st.dW  # the weights PIRLS ended with, at the modes
        rz, c, b = st.zeta_pieces
        a_z, b_e, b_z = f.zeta_third(eta, y, pw)  # c_eta = a_z, c_zeta = b_e
        P = fac.P(vals)
        h = np.einsum("ns,ns->n", P, vals)
        h1, h2 = h[:n], h[n : 2 * n]
        hx = 2.0 * np.einsum("ns,ns->n", P[:n], vals[n : 2 * n])  # 2 z_c' M^-1 z_z
        g_e = h1 * a_e + h2 * b_e + hx * a_z  # d log|M| / d eta_i at fixed modes
        g_z = h1 * a_z + h2 * b_z + hx * b_e
        zeros = np.zeros(n)
        s = fac.solve(js.tmult(vals, np.concatenate([g_e, g_z, zeros])))
        t = js.mult(vals, s)
        tc, tz = t[:n], t[n : 2 * n]
        e_e = -2.0 * r + g_e - (a * tc + c * tz)
        e_z = -2.0 * rz + g_z - (c * tc + b * tz)
        E = np.concatenate([e_e, e_z, zeros])
        R = np.concatenate([r, rz, zeros])
        w = np.concatenate([a - c, b - c, c])
        H = E[:, None] * u[js.cols] + 2.0 * w[:, None] * P + R[:, None] * s[js.cols]
        g_theta = self._theta_grad(st.joint_theta, js.row_grad(H))
        g_c, g_zt = g_theta[: self.ntheta], g_theta[self.ntheta :]
        g_beta = self.X.T @ e_e
        g_gamma = self.Xz.T @ e_z
        nd, kz = self.family.base.n_dispersion, self.Xz.shape[1]
        g_psi = np.zeros(self.nx - kz - self.nzt)
        if g_psi.size:  # the count part's extra parameters: dispersion(s), a dispersion model's delta
            lp, rp, ap = f.extra_pieces(eta, y, pw)
            keep = np.r_[0:nd, nd + kz : lp.shape[-1]]
            lp, rp, ap = lp[:, keep], rp[:, keep], ap[:, keep]
            rzp, cp, bp = f.zeta_extra_pieces(eta, y, pw)
            g_psi = -2.0 * lp.sum(axis=0) + h1 @ ap + h2 @ bp + hx @ cp + tc @ rp + tz @ rzp
        return np.concatenate([g_c, g_beta, g_psi[:nd], g_gamma, g_psi[nd:], g_zt])

    def _theta_grad(self, theta_joint: np.ndarray, g_tau: np.ndarray) -> np.ndarray:
        """The gradient in the joint theta (count part's, then the zero part's) from the one in
        the entries of the joint terms' T (a merged term: its two diagonal blocks)."""
        js = self.joint
        if not self.merged:
            return js.theta_grad(theta_joint, g_tau)
        c, z = self.spec.terms[0], self.spec.zi_terms[0]
        q = c.q + z.q
        r_, c_ = tril_index(q)
        G = np.zeros((q, q))
        G[r_, c_] = g_tau
        out = []
        for part, block, th in ((c, G[: c.q, : c.q], theta_joint[: c.ntheta]),
                                (z, G[c.q :, c.q :], theta_joint[c.ntheta :])):
            out.append(part.structure.chain(th, block) if part.structured else block[tril_index(part.q)])
        return np.concatenate(out)

    def hessian(self, phi: np.ndarray) -> np.ndarray:
        return default_hessian(self, phi)
