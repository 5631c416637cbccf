r"""PIRLS for a lone random intercept from sums per cluster: no pass over the rows per Newton step.

With one term ``(1 | g)`` the linear predictor is :math:`\eta_i = \eta_{f,i} + a_{j(i)}`,
:math:`\eta_f = X\beta + o`, :math:`a_j = \theta u_j`, and the penalized deviance
:math:`-2\ell(y \mid u) + \|u\|^2` splits into one term per cluster. For a family whose
log-density is linear plus one exponential in :math:`\eta` (the log-link Poisson and Gamma), each
cluster's log-likelihood is, from two sums per cluster taken once per (beta, dispersion)
(:class:`~glmm_nb.families.kernel.ExpLinearClusters`),

.. math:: \ell_j(a) = b_j a - A_j e^{k a} \quad(+\text{ a constant}),

so the modes solve J independent one-dimensional problems

.. math:: \min_{u_j}\; f_j(u_j) = -2\ell_j(\theta u_j) + u_j^2,

by Newton steps :math:`\delta_j = g_j/H_j`, :math:`g_j = \theta\ell_j'(a_j) - u_j`,
:math:`H_j = 1 + \theta^2 I_j(a_j)` (:math:`I_j = A_je^{ka_j}`, the sum of the rows' weights W in
the cluster: these are the blocks of :math:`M = I + \tilde Z'W\tilde Z`, so the steps are the row
PIRLS's), each halved until its own :math:`f_j` does not rise, all clusters at once (vectorized
over clusters). The iteration stops where the Newton decrement :math:`\sum_j g_j\delta_j` falls
below the row PIRLS's tolerance, so the modes are those of :meth:`LaplaceDevfun.pirls
<glmm_nb.likelihood.laplace.LaplaceDevfun.pirls>` to its convergence. It does not take the last
(free) Newton step: the log-determinant is not stationary in u, so stopping short moves the
deviance by up to ~1e-7 (gamma_100k), and with the deviance that much more precise L-BFGS-B's
relative-reduction stop (ftol 1e-14) was reached less often than its line search failing at the
rounding floor — 3 of 36 simulated fits took 42-49 evaluations instead of ~20. A run costs one product
:math:`X\beta`, one exponential over the rows and a sum per cluster; the row-level state at the
mode (working residuals and weights, the factor of M, the log-likelihood with every constant) is
then formed once by the caller as the row path does.

Exact only where the family clips no mean: :meth:`ClusterPirls.modes` returns None (the caller
runs the row path) where a row's linear predictor may leave the unclipped range (checked
conservatively from the extremes of :math:`\eta_f` and of :math:`a`), for kernels without a
cluster form, and where the Newton iteration fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..families.kernel import Clusters, ExpLinearClusters, Kernel
from .pirls import MIN_STEP

__all__ = ["ClusterModes", "ClusterPirls"]


@dataclass
class ClusterModes:
    """The conditional modes of a lone random intercept found from sums per cluster."""

    u: np.ndarray  # spherical modes (J,)
    a: np.ndarray  # the clusters' shifts theta u of the linear predictor
    form: ExpLinearClusters  # the log-likelihood in the shifts
    loglik: float  # log p(y | u*), every constant kept
    iterations: int  # Newton steps taken (+ 1, as the row path counts its factorizations)
    converged: bool


class ClusterPirls:
    """Conditional modes of ``(1 | g)`` (one term, the random intercept alone) from sums per
    cluster (module docstring)."""

    def __init__(self, codes: np.ndarray, J: int, pw: np.ndarray, X: np.ndarray):
        self.clusters = Clusters(codes, J, pw)
        self.X = X
        self._xb = []  # (b_rows, X'b_rows): the forms' fixed row arrays and their products with X

    def modes(self, K: Kernel, theta: float, eta_f: np.ndarray, u0: np.ndarray,
              tol: float, maxit: int) -> ClusterModes | None:
        """The modes at intercept scale ``theta`` (the one entry of T) and fixed part ``eta_f``,
        from the start ``u0``; None where the family's kernel has no cluster form or the form
        is not exact here (the caller runs the row path)."""
        form = K.cluster_form(eta_f, self.clusters)
        if form is None:
            return None
        th = float(theta)
        u = np.array(u0, dtype=float, copy=True)
        if u.shape != (self.clusters.J,) or not np.all(np.isfinite(u)):
            u = np.zeros(self.clusters.J)
        f = _penalized(form, th, u)
        f0 = _penalized(form, th, np.zeros_like(u))
        worse = ~(f <= f0)  # clusters whose warm start is worse than u_j = 0 start from 0
        if np.any(worse):
            u[worse] = 0.0
            f[worse] = f0[worse]
        converged = False
        it = 0
        for it in range(1, maxit + 1):
            score, info = form.score_information(th * u)
            g = th * score - u
            delta = g / (1.0 + th * th * info)
            dec = float(g @ delta)
            if not np.isfinite(dec):
                return None
            if dec < tol and (it > 1 or dec < 1e-20):
                converged = True  # stopping where the row path does (see the module docstring)
                break
            u, f, ok = _halving(form, th, u, f, delta)
            if not ok:  # a cluster's step failed: as the row path, converged if nearly there
                converged = dec < 1e-6
                break
        a = th * u
        if not form.exact(a):
            return None
        return ClusterModes(u, a, form, form.loglik(a), it, converged)


    def gradient(self, red: ClusterModes, theta: float, m: np.ndarray, K: Kernel | None, nx: int):
        r"""The Laplace deviance's gradient in (the one T entry, beta[, extras]) at modes from
        sums per cluster, ``m`` the blocks of M at the mode: the formulas of
        :meth:`LaplaceDevfun.gradient <glmm_nb.likelihood.laplace.LaplaceDevfun.gradient>` with
        every row quantity of a cluster a multiple of :math:`W_i` or :math:`\beta_i`
        (:class:`~glmm_nb.families.kernel.ExpLinearClusters`). With :math:`I_j`, :math:`R_j`
        the cluster's information and score, :math:`h_j = \theta^2/m_j`,
        :math:`c_i = kW_ih_j` (:math:`\partial W/\partial\eta = kW`),
        :math:`s_j = \theta kh_jI_j/m_j` and
        :math:`e_i = W_i(kh_j - \theta s_j) - 2r_i = W_i(kh_j - \theta s_j + 2k) - 2\beta_i`:

        .. math::
           \partial D/\partial\beta = X'e, \qquad
           \partial D/\partial\tau = \sum_j u_j[I_j(kh_j - \theta s_j) - 2R_j]
           + 2\theta\sum_j I_j/m_j + \sum_j s_jR_j,

        one pass over the rows (:math:`X'e`, with :math:`X'\beta` kept per fit up to its
        factor); the extra parameters' :math:`-2\dot\ell + h'\dot W + \theta s'\dot r` from
        the kernel's pieces summed per cluster. Returns the gradient in the T entry (the
        caller chains it to theta), beta and the extras.
        """
        form, a, u, th = red.form, red.a, red.u, float(theta)
        k = form.k
        score, info = form.score_information(a)
        h = th * th / m
        s = th * k * h * info / m
        t = k * h - th * s  # the factor of W_i in c_i - W_i Zs_i
        g_tau = float(u @ (info * t - 2.0 * score)) + 2.0 * th * float(info @ (1.0 / m)) + float(s @ score)
        v = np.exp(k * a)
        v *= t + 2.0 * k
        g_beta = self.X.T @ form.rows_times(v) - 2.0 * form.b_scale * self._xt(form.b_rows)
        out = [np.array([g_tau]), g_beta]
        if nx:
            lp, rp, Wp = K.cluster_extra_pieces(form, a)
            out.append(-2.0 * lp + h @ Wp + th * (s @ rp))
        return np.concatenate(out)

    def _xt(self, b_rows: np.ndarray) -> np.ndarray:
        r""":math:`X'\beta` for a form's fixed row array (kept by its identity)."""
        for arr, val in self._xb:
            if arr is b_rows:
                return val
        val = self.X.T @ b_rows
        self._xb = [*self._xb[-3:], (b_rows, val)]
        return val


def _penalized(form: ExpLinearClusters, th: float, u: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Each cluster's penalized deviance :math:`-2\\ell_j(\\theta u_j) + u_j^2` (less constants);
    with ``idx``, of the clusters ``idx`` at their modes ``u``."""
    out = form.terms(th * u, idx)
    out *= -2.0
    out += u * u
    return out


def _halving(form: ExpLinearClusters, th: float, u: np.ndarray, f: np.ndarray, delta: np.ndarray):
    """Each cluster's step 1, 1/2, 1/4, ... until its penalized deviance does not rise (the
    slack of :func:`~.pirls.halving_step`); ``(u, f, ok)`` with ok False where a step fell below
    ``MIN_STEP`` (that cluster stays where it was)."""
    step = 1.0
    u_new = u + delta
    f_new = _penalized(form, th, u_new)
    bad = ~(f_new <= f + 1e-12 * np.abs(f))
    while np.any(bad):
        step *= 0.5
        idx = np.flatnonzero(bad)
        if step < MIN_STEP:
            u_new[idx] = u[idx]
            f_new[idx] = f[idx]
            return u_new, f_new, False
        u_new[idx] = u[idx] + step * delta[idx]
        f_new[idx] = _penalized(form, th, u_new[idx], idx)
        bad = np.zeros_like(bad)
        bad[idx] = ~(f_new[idx] <= f[idx] + 1e-12 * np.abs(f[idx]))
    return u_new, f_new, True

