r"""A family bound to one response at one dispersion: what a PIRLS run evaluates again and again.

A Laplace deviance evaluation runs PIRLS at fixed (theta, beta, dispersion): several
log-likelihoods :math:`\ell(y \mid \eta)` (the warm starts, each step-halving trial) and the
working pieces ``mu, r, W, Wobs, dW`` at every accepted step, then the extra parameters'
per-observation pieces for the gradient. Much of that does not depend on :math:`\eta`: the
normalising constants of the log-density, and for families with a dispersion the terms in the
dispersion and the response only (NB2's :math:`\log\Gamma(y + \theta) - \log\Gamma(\theta)`, the
gamma's :math:`\log\Gamma(\nu)` and :math:`\nu \log y`). A :class:`Kernel` holds them, computed
once per dispersion value (over the distinct values of the response where they are functions
of y), and serves

``kernel.loglik(eta)``
    :math:`\log p(y \mid \eta)`, all constants kept (a float);
``kernel.working(eta)``
    ``mu, r, W, Wobs`` of :meth:`~glmm_nb.families.Family.working`, reusing the inverse link
    of a ``loglik`` call at the same ``eta`` array (the step just accepted);
``kernel.dW(eta)``
    :math:`\partial W/\partial\eta` at the ``eta`` of the last ``working`` call (only the
    gradient needs it: once per evaluation, not per PIRLS step);
``kernel.extra_pieces(eta)``
    the sum over observations of d log-density / d extra parameter, and the per-observation
    derivatives of the score and the observed weight (:meth:`Family.extra_pieces`).
``kernel.cluster_form(eta_f, clusters)`` (some kernels)
    for a lone random intercept, the log-likelihood as a function of the clusters' shifts
    :math:`a_j` of the linear predictor, :math:`\eta_i = \eta_{f,i} + a_{j(i)}`, in closed form from
    sums per cluster (:class:`ExpLinearClusters`), or None where the family has none.

:class:`Kernel` is the generic one, made of the family's own methods; a family with a faster
closed form returns its own subclass from :meth:`Family.kernel` (tested against this one).
:class:`ResponseData` holds the response, the prior weights and summaries of them that the
kernels share across dispersion values (the distinct values of y, weighted sums).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ResponseData", "Kernel", "MemoKernel", "Clusters", "ExpLinearClusters"]


class ResponseData:
    """The response ``y``, the prior weights ``pw`` and ``const`` (the sum of the family's
    :meth:`~Family.loglik_const`), with memoised summaries for the kernels."""

    def __init__(self, y, pw, const: float):
        self.y = np.asarray(y, dtype=float)
        self.pw = np.asarray(pw, dtype=float)
        self.const = float(const)
        self.unit_weights = bool(np.all(self.pw == 1.0))
        self._memo: dict = {}

    def memo(self, key, make):
        """``make()`` the first time ``key`` is asked for, the kept value afterwards."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def weighted(self, a: np.ndarray) -> np.ndarray:
        """``pw * a`` (``a`` itself under unit weights)."""
        return a if self.unit_weights else self.pw * a

    def wsum(self, a: np.ndarray) -> float:
        """:math:`\\sum_i w_i a_i`."""
        return float(np.sum(a)) if self.unit_weights else float(self.pw @ a)

    @property
    def levels(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct values of y, the sum of the prior weights at each): a sum over rows of a
        function of y alone is ``weights @ f(values)``."""
        def make():
            values, inverse = np.unique(self.y, return_inverse=True)
            return values, np.bincount(inverse.ravel(), weights=self.pw, minlength=values.size)
        return self.memo("levels", make)

    def level_sum(self, f) -> float:
        """:math:`\\sum_i w_i f(y_i)` for ``f`` elementwise, evaluated at the distinct values."""
        values, weights = self.levels
        return float(weights @ f(values))


class Kernel:
    """The generic kernel: ``family``'s own ``loglik_kernel``, ``working`` and ``extra_pieces``
    on ``data``'s response (see the module docstring).

    ``concave``: every row's log-density is concave in eta (so it lies below its tangent, which
    lets PIRLS rule out a start without evaluating it); unknown, so False, for the generic kernel.
    """

    concave = False
    # the log-density as computed is concave only where eta lies in [ETA_LOW, ETA_HIGH]: outside,
    # the mean is clipped (links.EPS, links.ETA_MAX) and the log-density is flat in eta, a
    # convex kink after which the tangent is no bound
    ETA_LOW, ETA_HIGH = -np.inf, np.inf

    def __init__(self, family, data: ResponseData):
        self.family = family
        self.data = data
        self._dW = None  # (eta, dW/deta) of the last working()

    def concave_on(self, *etas: np.ndarray) -> bool:
        """Whether every row's log-density is concave on the segments between the linear
        predictors ``etas`` (``concave``, and each ``eta`` within the unclipped range)."""
        if not self.concave:
            return False
        if self.ETA_LOW == -np.inf and self.ETA_HIGH == np.inf:
            return True
        return all(float(np.min(e)) >= self.ETA_LOW and float(np.max(e)) <= self.ETA_HIGH for e in etas)

    def loglik(self, eta: np.ndarray) -> float:
        d = self.data
        return float(np.sum(self.family.loglik_kernel(d.y, eta, d.pw))) + d.const

    def working(self, eta: np.ndarray):
        d = self.data
        mu, r, W, Wobs, dW = self.family.working(eta, d.y, d.pw)
        self._dW = (eta, dW)
        return mu, r, W, Wobs

    def dW(self, eta: np.ndarray) -> np.ndarray:
        d = self.data
        last = self._dW
        return last[1] if last is not None and last[0] is eta else self.family.working(eta, d.y, d.pw)[4]

    def extra_pieces(self, eta: np.ndarray):
        """(sum over rows of dl/dx (k,), dr/dx (n, k), dW_obs/dx (n, k)) for the k extras."""
        d = self.data
        lp, rp, Wp = self.family.extra_pieces(eta, d.y, d.pw)
        return lp.sum(axis=0), rp, Wp

    def cluster_form(self, eta_f: np.ndarray, clusters: Clusters) -> ExpLinearClusters | None:
        """The log-likelihood in the clusters' shifts of the linear predictor from sums per
        cluster (:class:`ExpLinearClusters`); None: the generic kernel has no such form."""
        return None

    def cluster_extra_pieces(self, form: ExpLinearClusters, a: np.ndarray):
        """:meth:`extra_pieces` at the shifts ``a`` of this kernel's ``form``, the per-row pieces
        summed per cluster: (dl/dx (k,), (J, k), (J, k)); only kernels with a cluster form and
        extra parameters define it."""
        raise NotImplementedError(f"{type(self).__name__} has no extra pieces per cluster")


class MemoKernel(Kernel):
    """A kernel that keeps the inverse link (or what ``working`` needs from it) of its last few
    ``loglik`` calls, keyed by the identity of the ``eta`` array (kept alive with it)."""

    SLOTS = 3

    def __init__(self, family, data: ResponseData):
        super().__init__(family, data)
        self._memo: list = []
        self.last_working = None  # (eta, what dW_from needs) of the last working()

    def remember(self, eta: np.ndarray, value) -> None:
        self._memo.append((eta, value))
        if len(self._memo) > self.SLOTS:
            del self._memo[0]

    def recall(self, eta: np.ndarray):
        for e, value in self._memo:
            if e is eta:
                return value
        return None

    def dW(self, eta: np.ndarray) -> np.ndarray:
        """dW/deta from what ``working(eta)`` kept (``last_working``), or afresh."""
        last = self.last_working
        if last is None or last[0] is not eta:
            self.working(eta)
            last = self.last_working
        return self.dW_from(*last[1:])


class Clusters:
    r"""The clusters of a lone random intercept: row i is in cluster ``codes[i]`` of ``J``;
    ``weights`` holds the sum of the prior weights :math:`n_j = \sum_{i \in j} w_i` per cluster."""

    def __init__(self, codes: np.ndarray, J: int, pw: np.ndarray):
        self.codes = np.asarray(codes)
        self.J = int(J)
        pw = np.asarray(pw, dtype=float)
        self.unit_weights = bool(np.all(pw == 1.0))
        self.weights = np.bincount(self.codes, weights=None if self.unit_weights else pw,
                                   minlength=self.J).astype(float)
        self._memo: dict = {}

    def memo(self, key, make):
        """``make()`` the first time ``key`` is asked for (a sum per cluster of the response, fixed
        over a fit), the kept value afterwards."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def sum(self, v: np.ndarray) -> np.ndarray:
        r""":math:`\sum_{i \in j} v_i` per cluster: (J,) for v of shape (n,), (J, k) for (n, k)."""
        if v.ndim == 2:
            return np.stack([np.bincount(self.codes, weights=v[:, k], minlength=self.J) for k in range(v.shape[1])],
                            axis=1)
        return np.bincount(self.codes, weights=v, minlength=self.J)


class ExpLinearClusters:
    r"""A log-likelihood that is linear plus one exponential in each cluster's shift :math:`a_j`
    of the linear predictor, :math:`\eta_i = \eta_{f,i} + a_{j(i)}`:

    .. math:: \ell(a) = c + \sum_j \big[b_j a_j - A_j e^{k a_j}\big], \qquad k = \pm 1,

    from row pieces :math:`\ell_i(\eta_i) = \beta_i\eta_i - \alpha_i e^{k\eta_i}` (+ constants)
    summed per cluster: :math:`b_j = \sum_{i\in j}\beta_i`,
    :math:`A_j = \sum_{i\in j}\alpha_ie^{k\eta_{f,i}}`. Each row's score is
    :math:`r_i = \beta_i - kW_i` with weight :math:`W_i = \alpha_ie^{k\eta_i}` (observed and
    Fisher alike) and :math:`\partial W_i/\partial\eta_i = kW_i`; per cluster the score is
    :math:`b_j - kA_je^{ka_j}` and the information :math:`A_je^{ka_j}` (the sum of the rows'
    W), positive: each cluster's log-likelihood is concave in its shift. The log-link Poisson
    (:math:`\beta = wy`, :math:`\alpha = w`, k = 1) and Gamma (:math:`\beta = -\nu w`,
    :math:`\alpha = \nu wy`, k = -1) are of this form.

    Exact while every row's linear predictor stays in [``eta_low``, ``eta_high``] (where the
    family clips no mean). The rows are held as ``A_rows`` (:math:`\alpha_ie^{k\eta_{f,i}}` up
    to the factor ``A_scale``) and ``b_rows`` (:math:`\beta_i` up to ``b_scale``; an array fixed
    over a fit, so that sums of it can be kept); ``b`` and ``const`` are given by the kernel,
    and ``w_eta_f`` (:math:`\sum_i w_i\eta_{f,i}`) where its extra parameters' pieces need it.
    """

    def __init__(self, clusters: Clusters, eta_f: np.ndarray, const: float, k: float, b: np.ndarray,
                 A_rows: np.ndarray, A_scale: float, b_rows: np.ndarray, b_scale: float,
                 eta_f_range: tuple[float, float], eta_low: float, eta_high: float,
                 w_eta_f: float | None = None):
        self.clusters, self.eta_f = clusters, eta_f
        self.w_eta_f = w_eta_f
        self.const, self.k, self.b = float(const), float(k), b
        self.A_rows, self.A_scale = A_rows, float(A_scale)
        self.b_rows, self.b_scale = b_rows, float(b_scale)
        self.A = self.A_scale * clusters.sum(A_rows)
        self.eta_f_range = eta_f_range
        self.eta_low, self.eta_high = float(eta_low), float(eta_high)

    def terms(self, a: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Each cluster's :math:`b_j a_j - A_j e^{k a_j}`, (J,) (the log-likelihood less c);
        with ``idx``, of the clusters ``idx`` at their shifts ``a``."""
        b, A = (self.b, self.A) if idx is None else (self.b[idx], self.A[idx])
        with np.errstate(over="ignore", invalid="ignore"):
            return b * a - A * np.exp(self.k * a)

    def loglik(self, a: np.ndarray) -> float:
        r""":math:`\ell(a)`, every constant kept."""
        return float(np.sum(self.terms(a))) + self.const

    def score_information(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""(:math:`\partial\ell/\partial a_j`, :math:`-\partial^2\ell/\partial a_j^2`), each (J,)."""
        with np.errstate(over="ignore", invalid="ignore"):
            info = self.A * np.exp(self.k * a)
        return self.b - self.k * info, info

    def exact(self, a: np.ndarray) -> bool:
        r"""Whether every row's linear predictor lies in [eta_low, eta_high] at shifts ``a``
        (conservatively: the extremes of :math:`\eta_f` plus those of a)."""
        lo, hi = self.eta_f_range
        return bool(lo + float(np.min(a)) >= self.eta_low and hi + float(np.max(a)) <= self.eta_high)

    def rows_times(self, v: np.ndarray) -> np.ndarray:
        r""":math:`\alpha_ie^{k\eta_{f,i}} v_{j(i)}` per row: the weights W at shifts a for
        :math:`v = e^{ka}`; (n,)."""
        out = (v * self.A_scale if self.A_scale != 1.0 else v)[self.clusters.codes]
        out *= self.A_rows
        return out

    def working(self, a: np.ndarray):
        """``eta, mu, r, W`` per row at shifts ``a`` (the log link: mu = exp(eta))."""
        eta = a[self.clusters.codes]
        eta += self.eta_f
        W = self.rows_times(np.exp(self.k * a))
        r = self.b_rows * self.b_scale
        if self.k > 0:  # r = beta - kW, k = +-1
            r -= W
        else:
            r += W
        return eta, np.exp(eta), r, W
