r"""Linear mixed models: the profiled (RE)ML deviance as a function of theta alone.

For fixed theta the penalized least-squares problem in (u, beta) is solved exactly through the
Schur complement of :math:`M = I + \tilde Z' W \tilde Z`:

.. math::
   R_X'R_X = X'WX - X'W\tilde Z M^{-1} \tilde Z'WX, \quad
   \hat\beta = (R_X'R_X)^{-1}(X'Wy - X'W\tilde Z M^{-1}\tilde Z'Wy), \quad
   \hat u = M^{-1}\tilde Z'W(y - X\hat\beta),

with :math:`r^2 = \sum_i w_i (y_i - x_i'\hat\beta - \tilde z_i'\hat u)^2 + \|\hat u\|^2`. Then
(Bates et al. 2015, lme4's ``lmer`` deviance; ``w`` prior weights)

.. math::
   -2\ell_{ML} = \log|M| + n\,[1 + \log(2\pi r^2 / n)] - \sum\log w_i, \qquad
   -2\ell_{REML} = \log|M| + \log|R_X'R_X| + (n-p)[1 + \log(2\pi r^2/(n-p))] - \sum\log w_i.

Analytic gradient. Write :math:`\nu = n` (ML) or :math:`n - p` (REML), and let
:math:`\theta_m` be the (a, b) entry of term k's T, so that
:math:`\partial\tilde Z/\partial\theta_m = \dot Z_m` has, in row i, the value :math:`z_{ia}` in
the column :math:`c_b(i)` of column b of the row's level of term k. The penalized residual sum
of squares is a minimum over (u, β), so only its explicit dependence counts (envelope
theorem): :math:`\partial r^2/\partial\theta_m = -2\sum_i w_i e_i z_{ia} \hat u_{c_b(i)}` with
:math:`e = y - X\hat\beta - \tilde Z\hat u`. With :math:`C = [\tilde Z, X]` and
:math:`A = C'WC + \mathrm{diag}(I_Q, 0)` (so :math:`|A| = |M|\,|R_X'R_X|`),
:math:`\partial \log|A| = 2\,\mathrm{tr}(A^{-1}C'W\dot C)` is one pass over the rows:

.. math::
   \frac{\partial \log|A|}{\partial\theta_m} = 2\sum_i w_i z_{ia}
   \big[P_{i,b} - F_{c_b(i)}(R_X'R_X)^{-1}(x_i - F'\tilde z_i)\big], \qquad
   F = M^{-1}\tilde Z'WX,

where :math:`P = \tilde Z M^{-1}` at each row's own columns (the factorization's ``P``); for
ML the bracket is :math:`P_{i,b}` alone (:math:`\log|M|`). Hence

.. math:: \frac{\partial(-2\ell)}{\partial\theta_m} = \frac{\partial\log|A|}{\partial\theta_m}
   + \frac{\nu}{r^2}\,\frac{\partial r^2}{\partial\theta_m}.

No division by theta: the formula holds on the boundary (a zero variance) as well.

Where every T is invertible the same derivative needs only sums of diagonal blocks: since
:math:`\dot Z_m = \tilde Z\Lambda^{-1}\partial\Lambda/\partial\theta_m` and
:math:`A^{-1}C'W\tilde Z = [I; 0] - A^{-1}_{:,Q}`,

.. math:: \frac{\partial \log|A|}{\partial\theta_m}
   = 2\Big[\big(J_k I - \textstyle\sum_j (A^{-1})_{jj}\big)\,T_k^{-1}\Big]_{ba},
   \qquad (A^{-1})_{QQ} = M^{-1} + F (R_X'R_X)^{-1} F',

with the sum over the levels j of term k (:math:`M^{-1}` alone for ML). For several terms
this avoids :math:`M^{-1}` at every row's columns (``inv_blocks_sum`` of the factorization);
the row formula above is used where some diagonal entry of T is below ``TRACE_MIN_DIAG``,
except for a scalar term at exactly 0: its columns of :math:`\tilde Z` vanish, so ``A`` does
not couple its effects to the rest, :math:`A^{-1}` has a zero block where :math:`\partial A`
does not, and its derivative of :math:`\log|A|` is exactly 0 (a line search projected onto the
bound lands there; the row formula cost InstEval's fit 0.3 s for two such points).

One grouping factor (one term, or several terms of the same factor such as ``(1 + x || g)``):
the deviance and this gradient are sums over clusters, evaluated from per-cluster
cross-products formed once (:mod:`.lmm_stats`): no pass over the rows per evaluation.
Measured (200,000 rows, 4,000 clusters, ``(1 + x | g)``, ML; a loaded 2-core machine, the
same run): 1 ms per evaluation against 17 ms from the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.linalg import block_diag

from ..design import ModelSpec
from .contracts import default_gradient, default_hessian
from .lmm_stats import ClusterStats
from .reops import ReStructure, keeps_states

__all__ = ["LmmDevfun", "LmmState", "anova_theta_start"]


@dataclass
class LmmState:
    """Everything at one theta: the profiled estimates, the factorization and the deviance."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    vals: np.ndarray
    fac: object
    RX2: np.ndarray
    pwrss: float
    sigma: float
    deviance: float
    MiX: np.ndarray | None = None  # M^{-1} Z~'WX (Q × p)
    resid: np.ndarray | None = None  # y - X beta - Z~ u


def anova_theta_start(spec: ModelSpec, y: np.ndarray, X: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    r"""Start values of theta for an LMM whose random effects are all scalar intercepts: each
    term's one-way ANOVA (method of moments) estimate of its variance, relative to the residual
    variance; None for any other structure (lme4's start is used there).

    With residuals :math:`r` of the (weighted) least-squares fit of the fixed part, for a term
    with levels :math:`j` of sizes :math:`n_j` and means :math:`\bar r_j`:
    :math:`\hat\tau^2 = (MSB - MSW) / n_0`, :math:`n_0 = (n - \sum n_j^2 / n) / (J - 1)`, and
    :math:`\theta = \hat\tau / \hat\sigma` with :math:`\hat\sigma^2 = \mathrm{var}(r) - \sum
    \hat\tau^2` (at least 5 % of var(r)); each theta at least 0.1. For a balanced one-way design
    this is the REML estimate itself (when positive). Measured: InstEval 25 → 13 evaluations,
    a MovieLens-1M-shaped crossed design 13 → 10, the same optimum.
    """
    if not all(t.q == 1 and tuple(t.col_names) == ("(Intercept)",) for t in spec.terms):
        return None
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
    r = y - X @ beta
    n = r.size
    tau2 = []
    for t in spec.terms:
        codes = np.asarray(t.codes)
        J = t.nlevels
        cnt = np.bincount(codes, minlength=J).astype(float)
        means = np.bincount(codes, weights=r, minlength=J) / np.maximum(cnt, 1.0)
        msw = float(np.sum((r - means[codes]) ** 2)) / max(n - J, 1)
        msb = float(np.sum(cnt * (means - r.mean()) ** 2)) / max(J - 1, 1)
        n0 = (n - float(np.sum(cnt**2)) / n) / max(J - 1, 1)
        tau2.append(max((msb - msw) / n0, 0.0) if n0 > 0 else 0.0)
    s2 = max(float(r.var()) - sum(tau2), 0.05 * float(r.var()))
    if not s2 > 0:
        return None
    return np.sqrt(np.maximum(np.asarray(tau2) / s2, 0.01))


class LmmDevfun:
    """Profiled deviance of a linear mixed model (``reml=True`` for REML).

    Implements :class:`~.contracts.DevianceFunction` with ``phi = theta`` (``profiled``) and an
    analytic gradient. ``grad_method``: ``"auto"`` (one grouping factor: per-cluster sums,
    :mod:`.lmm_stats`; several: traces where every T is invertible, rows otherwise), ``"stats"``,
    ``"trace"`` or ``"rows"`` — the gradient formulas of the module docstring and of
    :mod:`.lmm_stats` (``"trace"``/``"rows"`` evaluate the deviance from the rows too).
    :meth:`state` (the result builder's, inference's) always works from the rows.
    """

    analytic_gradient = True
    profiled = True
    family = None
    grad_method = "auto"
    TRACE_MIN_DIAG = 1e-4
    # per-cluster sums while y'Wy (less the least-squares fit) / r^2 stays below this: the
    # rounding of r^2 is then below n * 1e-16 * this of the deviance (2e-6 for a million rows)
    STATS_MAX_CANCEL = 1e4
    STATS_MAX_Q = 16  # per-cluster sums for small blocks; a spatial field's one large block: the rows

    def __init__(self, spec: ModelSpec, reml: bool = True, X=None, y_adjust=None, rs=None):
        """``X`` replaces the fixed-effect matrix and ``y_adjust`` is subtracted from the
        response (profiling a fixed effect at a given value); ``rs`` reuses a structure."""
        self.spec = spec
        self.rs = rs if rs is not None else ReStructure(spec)
        self.reml = reml
        self.w = np.asarray(spec.weights, dtype=float)
        self.X = np.asarray(spec.X if X is None else X, dtype=float)
        self.y = np.asarray(spec.y, dtype=float) - np.asarray(spec.offset, dtype=float)
        if y_adjust is not None:
            self.y = self.y - y_adjust
        self.n, self.p = self.X.shape
        self.ntheta = spec.ntheta
        self.XtWX = self.X.T @ (self.w[:, None] * self.X)
        self.XtWy = self.X.T @ (self.w * self.y)
        pos = self.w > 0
        self.sum_log_w = float(np.sum(np.log(self.w[pos])))
        self.n_eff = int(pos.sum())
        self.nevals = 0
        # (key, deviance, gradient, state or None) of the last and of the lowest evaluation
        self._last = self._best = None

    def state(self, theta: np.ndarray, gram: bool = False) -> LmmState:
        """Everything at theta; ``gram`` prepares the factorization for the trace gradient.
        A state kept by :meth:`value_and_grad` at this theta is returned as it is. One term:
        beta, u and R_X'R_X come from the per-cluster sums (:mod:`.lmm_stats`), the
        factorization, residuals and r^2 from the rows."""
        rs, w = self.rs, self.w
        theta = np.asarray(theta, dtype=float)
        if not gram and (hit := self._cached_state(theta)) is not None:
            return hit
        vals = rs.vals(theta)
        fac = rs.factor(vals, w, gram=gram, theta=theta)
        ev = self._stats_eval(theta) if rs.single and self._uses_stats() else None
        if ev is not None:  # beta, u and R_X'R_X from the per-cluster sums; the rest from the rows
            J, q = ev.u.shape
            MiX = ev.F.transpose(2, 0, 1).reshape(J * q, self.p)
            RX2, beta, u = ev.RX2, ev.beta, ev.u.ravel()
        else:
            ZtWX = rs.tmult(vals, w[:, None] * self.X)
            ZtWy = rs.tmult(vals, w * self.y)
            MiX = fac.solve(ZtWX)
            Miy = fac.solve(ZtWy)
            RX2 = self.XtWX - ZtWX.T @ MiX
            beta = np.linalg.solve(RX2, self.XtWy - ZtWX.T @ Miy)
            u = Miy - MiX @ beta
        resid = self.y - self.X @ beta - rs.mult(vals, u)
        pwrss = float(np.sum(w * resid**2) + u @ u)
        n, p = self.n_eff, self.p
        if self.reml:
            _sgn, ld_rx = np.linalg.slogdet(RX2)
            dev = fac.logdet + ld_rx + (n - p) * (1 + np.log(2 * np.pi * pwrss / (n - p)))
            sigma = np.sqrt(pwrss / (n - p))
        else:
            dev = fac.logdet + n * (1 + np.log(2 * np.pi * pwrss / n))
            sigma = np.sqrt(pwrss / n)
        dev -= self.sum_log_w
        return LmmState(theta, beta, u, vals, fac, RX2, pwrss, float(sigma), float(dev), MiX, resid)

    def deviance_sigma(self, theta: np.ndarray, sigma: float) -> float:
        """-2 log-likelihood (or REML criterion) at an explicit residual SD, beta profiled."""
        st = self.state(theta)
        n = self.n_eff - (self.p if self.reml else 0)
        dev = st.fac.logdet + n * np.log(2 * np.pi * sigma**2) + st.pwrss / sigma**2
        if self.reml:
            dev += np.linalg.slogdet(st.RX2)[1]
        return float(dev - self.sum_log_w)

    def __call__(self, theta: np.ndarray) -> float:
        self.nevals += 1
        if self._uses_stats() and (ev := self._stats_eval(np.asarray(theta, dtype=float))) is not None:
            return ev.deviance
        return self.state(theta).deviance

    def _uses_stats(self) -> bool:
        return self.grad_method in ("auto", "stats") and self._one_factor

    @cached_property
    def _one_factor(self) -> bool:
        """One grouping factor (a single term, or terms of the same factor: ``(1 + x || g)``) with at
        most ``STATS_MAX_Q`` columns per level."""
        t0 = self.rs.terms[0]
        if sum(t.q for t in self.rs.terms) > self.STATS_MAX_Q:  # the sums' products loop over q^2 block entries
            return False
        return all(t.nlevels == t0.nlevels and np.array_equal(t.codes, t0.codes) for t in self.rs.terms[1:])

    @cached_property
    def cluster_stats(self) -> ClusterStats:
        """The per-cluster cross-products of the one grouping factor (formed on first use); the
        terms of one factor side by side, their T's a block diagonal."""
        t = self.rs.terms[0]
        Z = self.rs.Zv[0] if self.rs.single else np.column_stack(self.rs.Zv)
        return ClusterStats(np.asarray(t.codes), Z, self.X, self.y, self.w, t.nlevels)

    def _stats_eval(self, theta: np.ndarray):
        """The evaluation from per-cluster sums, or None where its r^2 cancels more than
        ``STATS_MAX_CANCEL`` against y'Wy (a residual variance near zero: the rows then)."""
        Ts = self.rs.Ts(theta)
        T = Ts[0] if len(Ts) == 1 else block_diag(*Ts)
        cs = self.cluster_stats
        ev = cs.evaluate(T, self.reml, self.n_eff, self.sum_log_w)
        return ev if ev.pwrss * self.STATS_MAX_CANCEL > cs.yWy else None

    def exact_gradient(self, theta: np.ndarray) -> np.ndarray:
        return default_gradient(self, theta)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        return default_hessian(self, theta)

    def value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The profiled deviance and its analytic gradient in theta.

        The last result and the one with the lowest deviance are kept (a cache only: values do
        not depend on it): the optimizer's restart from its end point, the exact gradient and
        the Hessian's base point at the optimum ask for the same theta again, and the result
        builder asks for the state there after the Hessian's probes.
        """
        self.nevals += 1
        theta = np.asarray(theta, dtype=float)
        if self._uses_stats() and (hit := self._stats_value_and_grad(theta)) is not None:
            return hit
        method = self._grad_method(self.rs.Ts(theta))
        key = (theta.tobytes(), method)
        for hit in (self._last, self._best):
            if hit is not None and hit[0] == key:
                return hit[1], hit[2].copy()
        st = self.state(theta, gram=method == "trace")
        g = self.gradient(st, method)
        self._last = entry = (key, st.deviance, g.copy(), st if self._keep_state(st) else None)
        if self._best is None or st.deviance <= self._best[1]:
            self._best = entry
        return st.deviance, g

    def _stats_value_and_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray] | None:
        key = (theta.tobytes(), "stats")
        for hit in (self._last, self._best):
            if hit is not None and hit[0] == key:
                return hit[1], hit[2].copy()
        ev = self._stats_eval(theta)
        if ev is None:
            return None
        rs = self.rs
        G = ev.grad_T()
        g = rs.theta_grad(theta, np.array([G[rs.slot0[e.term] + e.a, e.slot_b] for e in rs.entries]))
        self._last = entry = (key, ev.deviance, g.copy(), None)
        if self._best is None or ev.deviance <= self._best[1]:
            self._best = entry
        return ev.deviance, g

    def _keep_state(self, st: LmmState) -> bool:
        return keeps_states(st.fac)

    def _cached_state(self, theta: np.ndarray) -> LmmState | None:
        key = theta.tobytes()
        for hit in (self._last, self._best):
            if hit is not None and hit[3] is not None and hit[0][0] == key:
                return hit[3]
        return None

    def _grad_method(self, Ts: list) -> str:
        if self.grad_method != "auto":
            return self.grad_method
        ok = all(np.min(np.abs(np.diag(T))) >= self.TRACE_MIN_DIAG or (T.shape == (1, 1) and T[0, 0] == 0.0)
                 for T in Ts)
        return "trace" if ok else "rows"

    def gradient(self, st: LmmState, method: str | None = None) -> np.ndarray:
        """Analytic gradient of the profiled deviance at a state (module docstring)."""
        rs, w = self.rs, self.w
        nu = self.n_eff - (self.p if self.reml else 0)
        we = w * st.resid * (nu / st.pwrss)
        g = rs.row_grad(-2.0 * we[:, None] * st.u[rs.cols])  # the residual sum of squares' part
        Ts = rs.Ts(st.theta)
        method = method or self._grad_method(Ts)
        g = g + (self._logdet_grad_trace(st, Ts) if method == "trace" else self._logdet_grad_rows(st))
        return rs.theta_grad(st.theta, g)  # from T's entries to the terms' parameters

    def _logdet_grad_trace(self, st: LmmState, Ts: list) -> np.ndarray:
        rs = self.rs
        out = np.empty(rs.ntau)
        Rinv = np.linalg.inv(st.RX2) if self.reml else None
        K = []
        for k, T in enumerate(Ts):
            q, J = rs.q[k], rs.nlev[k]
            if q == 1 and T[0, 0] == 0.0:  # a scalar term at zero: decoupled, derivative 0
                K.append(np.zeros((1, 1)))
                continue
            Sk = st.fac.inv_blocks_sum(k)
            if self.reml:
                Fk = st.MiX[rs.offsets[k] : rs.offsets[k + 1]].reshape(J, q, self.p)
                Sk = Sk + np.einsum("jap,pr,jbr->ab", Fk, Rinv, Fk)
            K.append(np.linalg.solve(T.T, (J * np.eye(q) - Sk).T).T)  # (J I - S_k) T^{-1}
        for m, ent in enumerate(rs.entries):
            out[m] = 2.0 * K[ent.term][ent.b, ent.a]
        return out

    def _logdet_grad_rows(self, st: LmmState) -> np.ndarray:
        rs, w = self.rs, self.w
        vals = st.vals
        Pt = st.fac.P(vals)  # (n, s)
        if self.reml:
            F = st.MiX  # (Q, p)
            Fz = np.zeros((self.n, self.p))
            for t in range(rs.s):
                Fz += vals[:, t : t + 1] * F[rs.cols[:, t]]
            Y = np.linalg.solve(st.RX2, (self.X - Fz).T).T  # (n, p)
            for t in range(rs.s):
                Pt[:, t] -= np.einsum("np,np->n", F[rs.cols[:, t]], Y)
        return rs.row_grad(2.0 * w[:, None] * Pt)
