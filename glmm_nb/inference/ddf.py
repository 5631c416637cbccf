r"""Small-sample inference for the fixed effects of a linear mixed model.

Three ways to refer a Wald statistic for a linear function :math:`L\beta` to a distribution:

``satterthwaite`` (lmerTest 3.1's method; the default for gaussian fits)
    The variance parameters are :math:`\varphi = (\theta, \sigma)` (lme4's relative covariance
    factor and the residual SD). With :math:`D(\varphi)` the REML (or ML) deviance at an
    explicit :math:`\sigma`, beta profiled out,

    .. math::
       D(\theta, \sigma) = a(\theta) + n' \log(2\pi\sigma^2) + r^2(\theta)/\sigma^2,\qquad
       a = \log|M| \;[+\log|R_X'R_X|],\quad n' = n\;[-p],

    its Hessian :math:`H` gives :math:`A = \mathrm{cov}(\hat\varphi) = 2H^{+}` (the
    Moore-Penrose inverse over eigenvalues above 1e-8, as lmerTest). The dependence on
    :math:`\sigma` is analytic (:math:`\partial^2 D/\partial\sigma^2 = -2n'/\sigma^2 +
    6r^2/\sigma^4`, :math:`\partial^2 D/\partial\theta\partial\sigma = -2\nabla r^2/\sigma^3`);
    the dependence on :math:`\theta` is by central differences of :math:`a` and :math:`r^2`,
    one profiled-deviance evaluation per stencil point (vectorized over clusters inside).
    :math:`V(\varphi) = \sigma^2 (R_X'R_X)^{-1}(\theta)` has Jacobian :math:`J_j =
    \partial V/\partial\varphi_j` (central differences in theta, :math:`2V/\sigma` in sigma).
    For one contrast :math:`l`: :math:`v = l'Vl`, :math:`g_j = l'J_jl`,
    :math:`\nu = 2v^2/(g'Ag)`. For a q-row :math:`L` (Fai & Cornelius 1996): with
    :math:`LVL' = PDP'`, the rows of :math:`P'L` give :math:`\nu_m = 2d_m^2/(g_m'Ag_m)`,
    :math:`F = \sum_m (P'L\beta)_m^2/d_m / q` and :math:`E = \sum_m \nu_m/(\nu_m - 2)`,
    denominator df :math:`2E/(E - q)` (2 if any :math:`\nu_m \le 2`; the common value if all
    are equal).

``kenward-roger`` (pbkrtest 0.5's method; REML fits only)
    The adjusted covariance :math:`\Phi_A` of :mod:`glmm_nb.inference.kenward_roger` gives the
    standard errors; df and the F scaling follow Kenward & Roger (1997).

``asymptotic``
    Wald z (chi-square for several rows): df = ∞. The only choice for non-gaussian families.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from ..errors import ModelError
from ..likelihood import LmmDevfun
from ..results import wald_table
from .kenward_roger import kenward_roger_info
from .modelinfo import cache_get, cache_put, is_lmm

__all__ = [
    "DDF_METHODS",
    "SatterthwaiteInfo",
    "contrast_test",
    "ddf_table",
    "linear_inference",
    "resolve_ddf",
    "satterthwaite_info",
]

DDF_METHODS = ("satterthwaite", "kenward-roger", "asymptotic")
_ALIASES = {
    "satterthwaite": "satterthwaite", "satt": "satterthwaite",
    "kenward-roger": "kenward-roger", "kenward_roger": "kenward-roger", "kenwardroger": "kenward-roger",
    "kr": "kenward-roger",
    "asymptotic": "asymptotic", "z": "asymptotic", "wald": "asymptotic", "normal": "asymptotic",
}
EIG_TOL = 1e-8  # lmerTest's tolerance for the Hessian's eigenvalues
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def resolve_ddf(m, ddf: str | None) -> str:
    """Normalise ``ddf``: None → Satterthwaite for gaussian fits, asymptotic otherwise.

    Raises
    ------
    ModelError
        Unknown name, or a small-sample method asked of a non-gaussian fit, or Kenward-Roger
        of an ML fit.
    """
    gaussian = is_lmm(m)
    if ddf is None:
        return "satterthwaite" if gaussian else "asymptotic"
    key = _ALIASES.get(str(ddf).strip().lower().replace(" ", ""))
    if key is None:
        raise ModelError(f"ddf must be one of {', '.join(map(repr, DDF_METHODS))}, not {ddf!r}")
    if key != "asymptotic" and not gaussian:
        raise ModelError(
            f"ddf={ddf!r} applies to linear mixed models (family 'gaussian'); this model's family is "
            f"'{m.family}': use ddf='asymptotic' (Wald z)"
        )
    if key == "kenward-roger" and not m.reml:
        raise ModelError("Kenward-Roger's method is only available for REML fits; refit with reml=True")
    return key


# ------------------------------------------------------------------------------ Satterthwaite
@dataclass(frozen=True, eq=False)
class SatterthwaiteInfo:
    """What Satterthwaite's df need, computed once per model.

    Attributes
    ----------
    varpar : ndarray (k,)
        ``(theta, sigma)`` at the estimate.
    vcov_beta : ndarray (p, p)
        :math:`\\sigma^2 (R_X'R_X)^{-1}`.
    jacobian : ndarray (k, p, p)
        :math:`\\partial\\,\\mathrm{vcov}(\\beta)/\\partial\\varphi_j`.
    hessian : ndarray (k, k)
        Hessian of the deviance in ``varpar``.
    vcov_varpar : ndarray (k, k)
        :math:`2H^{+}`.
    """

    varpar: np.ndarray
    vcov_beta: np.ndarray
    jacobian: np.ndarray
    hessian: np.ndarray
    vcov_varpar: np.ndarray

    def df(self, L: np.ndarray) -> np.ndarray:
        """Satterthwaite df of each row of ``L`` (m, p) → (m,)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        var = np.einsum("ip,pq,iq->i", L, self.vcov_beta, L)
        g = np.einsum("ip,kpq,iq->ik", L, self.jacobian, L)
        den = np.einsum("ik,kl,il->i", g, self.vcov_varpar, g)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(den > 0, 2.0 * var**2 / np.where(den > 0, den, 1.0), np.inf)
        return out


def _require_lmm(m, what: str) -> None:
    if not is_lmm(m):
        raise ModelError(f"{what} applies to linear mixed models (family 'gaussian'), not '{m.family}'")


def satterthwaite_info(m) -> SatterthwaiteInfo:
    """Hessian of the deviance in ``(theta, sigma)`` and Jacobian of ``vcov(beta)`` (cached).

    Raises
    ------
    ModelError
        For a non-gaussian fit.
    """
    _require_lmm(m, "Satterthwaite's method")
    hit = cache_get(_CACHE, m)
    if hit is not None:
        return hit
    with threadpool_limits(limits=1, user_api="blas"):  # as the fit: small dense blocks
        info = _satterthwaite(m)
    cache_put(_CACHE, m, info)
    return info


def _satterthwaite(m) -> SatterthwaiteInfo:
    dev = LmmDevfun(m.spec, reml=bool(m.reml))
    theta = np.asarray(m.theta, dtype=float)
    k, sigma = theta.size, float(m.sigma)
    n_res = dev.n_eff - (dev.p if m.reml else 0)

    def parts(th):
        st = dev.state(th)
        a = st.fac.logdet + (np.linalg.slogdet(st.RX2)[1] if m.reml else 0.0)
        return a + st.pwrss / sigma**2, st.pwrss, st.RX2

    h = 1e-4 * np.maximum(np.abs(theta), 0.1)
    f0, r2_0, RX2_0 = parts(theta)
    Vinv0 = np.linalg.inv(RX2_0)
    fp, fm, grad_r2 = np.empty(k), np.empty(k), np.empty(k)
    jac = np.empty((k + 1, RX2_0.shape[0], RX2_0.shape[0]))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h[j]
        fp[j], rp, Rp = parts(theta + e)
        fm[j], rm, Rm = parts(theta - e)
        grad_r2[j] = (rp - rm) / (2 * h[j])
        jac[j] = sigma**2 * (np.linalg.inv(Rp) - np.linalg.inv(Rm)) / (2 * h[j])
    jac[k] = 2.0 * sigma * Vinv0
    H = np.empty((k + 1, k + 1))
    for i in range(k):
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
        for j in range(i):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = h[i], h[j]
            fpp = parts(theta + ei + ej)[0]
            fpm = parts(theta + ei - ej)[0]
            fmp = parts(theta - ei + ej)[0]
            fmm = parts(theta - ei - ej)[0]
            H[i, j] = H[j, i] = (fpp - fpm - fmp + fmm) / (4 * h[i] * h[j])
    H[:k, k] = H[k, :k] = -2.0 * grad_r2 / sigma**3
    H[k, k] = -2.0 * n_res / sigma**2 + 6.0 * r2_0 / sigma**4
    evals, evecs = np.linalg.eigh(H)
    pos = evals > EIG_TOL
    A = 2.0 * (evecs[:, pos] / evals[pos]) @ evecs[:, pos].T
    return SatterthwaiteInfo(np.r_[theta, sigma], sigma**2 * Vinv0, jac, H, A)


# --------------------------------------------------------------------------- public tables
def linear_inference(m, L, ddf: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate, standard error and df of each row of ``L`` (m, p) applied to the fixed effects.

    Kenward-Roger uses the adjusted covariance :math:`\\Phi_A` for the SE (pbkrtest, lmerTest);
    Satterthwaite and asymptotic use ``m.vcov``; asymptotic df are ``inf``.
    """
    method = resolve_ddf(m, ddf)
    L = _as_L(m, L)
    beta = np.asarray(m.fixef, dtype=float)
    est = L @ beta
    if method == "kenward-roger":
        kr = kenward_roger_info(m)
        se = np.sqrt(np.einsum("ip,pq,iq->i", L, kr.vcov_adj, L))
        return est, se, kr.df_rows(L)
    V = np.asarray(m.vcov, dtype=float)
    se = np.sqrt(np.einsum("ip,pq,iq->i", L, V, L))
    if method == "asymptotic":
        return est, se, np.full(len(est), np.inf)
    return est, se, satterthwaite_info(m).df(L)


def _as_L(m, L) -> np.ndarray:
    p = len(m.fixef)
    if isinstance(L, pd.DataFrame):
        L = L.reindex(columns=list(m.fixef.index), fill_value=0.0).to_numpy(dtype=float)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != p:
        raise ModelError(f"a contrast needs {p} columns (one per fixed effect), not {L.shape[1]}")
    if not np.all(np.isfinite(L)):
        raise ModelError("the contrast matrix has non-finite entries")
    return L


def t_quantile(level: float, df: np.ndarray) -> np.ndarray:
    """Two-sided critical value: Student t with ``df`` (normal where df is infinite)."""
    df = np.asarray(df, dtype=float)
    q = np.full(df.shape, stats.norm.ppf(0.5 + level / 2))
    fin = np.isfinite(df)
    q[fin] = stats.t.ppf(0.5 + level / 2, df[fin])
    return q


def two_sided_p(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    stat, df = np.asarray(stat, dtype=float), np.asarray(df, dtype=float)
    p = 2 * stats.norm.sf(np.abs(stat))
    fin = np.isfinite(df)
    p[fin] = 2 * stats.t.sf(np.abs(stat[fin]), df[fin])
    return p


def ddf_table(m, ddf: str | None = None, conf_level: float = 0.95) -> pd.DataFrame:
    """Coefficient table with small-sample df, indexed by term.

    Parameters
    ----------
    m : GLMMResult
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}, optional
        Default Satterthwaite for gaussian fits (as lmerTest), asymptotic otherwise.
    conf_level : float

    Returns
    -------
    pandas.DataFrame
        Columns ``estimate std_error df statistic p_value conf_low conf_high``; ``df`` is
        ``inf`` for asymptotic (z) rows. Kenward-Roger's SEs come from the adjusted covariance.
    """
    p = len(m.fixef)
    est, se, df = linear_inference(m, np.eye(p), ddf)
    out = wald_table(pd.Series(est, index=list(m.fixef.index)), se, conf_level, df=df)
    out.attrs["ddf"] = resolve_ddf(m, ddf)
    return out


def satterthwaite_fdf(info: SatterthwaiteInfo, L: np.ndarray, beta: np.ndarray, rhs, eps=np.sqrt(np.finfo(float).eps)):
    """lmerTest's ``contestMD``: F statistic, numerator and denominator df for ``L beta = rhs``."""
    L = np.atleast_2d(L)
    b = beta - (np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else 0.0)
    VL = L @ info.vcov_beta @ L.T
    d, P = np.linalg.eigh(VL)
    order = np.argsort(d)[::-1]
    d, P = d[order], P[:, order]
    pos = d > max(eps * d[0], 0.0)
    q = int(pos.sum())
    if q == 0:
        return np.nan, 0, np.nan
    PtL = (P.T @ L)[:q]
    d = d[:q]
    nu = info.df(PtL)
    F = float(np.sum((PtL @ b) ** 2 / d) / q)
    if q == 1:
        return F, 1, float(nu[0])
    if np.all(np.abs(np.diff(nu)) < 1e-8):
        return F, q, float(np.mean(nu))
    if np.any(nu <= 2):
        return F, q, 2.0
    E = float(np.sum(nu / (nu - 2)))
    return F, q, 2 * E / (E - q)


def contrast_test(m, L, ddf: str | None = None, rhs=0.0) -> dict:
    """Joint test of ``L beta = rhs`` (lmerTest's ``contestMD``; pbkrtest's ``KRmodcomp``).

    Returns
    -------
    dict
        ``F``, ``num_df``, ``den_df``, ``p_value`` (and ``chisq`` = q·F for the asymptotic
        test, whose ``den_df`` is ``inf``). Kenward-Roger's F is the scaled statistic
        computed with the adjusted covariance; ``F_scaling`` is reported alongside.
    """
    method = resolve_ddf(m, ddf)
    L = _as_L(m, L)
    beta = np.asarray(m.fixef, dtype=float)
    rhs = np.broadcast_to(np.asarray(rhs, dtype=float), (L.shape[0],)).copy()
    if method == "kenward-roger":
        return kenward_roger_info(m).ftest(L, beta, rhs)
    if method == "satterthwaite":
        F, q, den = satterthwaite_fdf(satterthwaite_info(m), L, beta, rhs)
        p = stats.f.sf(F, q, den) if q > 0 else np.nan
        return {"F": F, "num_df": q, "den_df": den, "p_value": float(p)}
    V = np.asarray(m.vcov, dtype=float)
    diff = L @ beta - rhs
    VL = L @ V @ L.T
    d, P = np.linalg.eigh(VL)
    pos = d > max(np.sqrt(np.finfo(float).eps) * d.max(), 0.0)
    q = int(pos.sum())
    z = P[:, pos].T @ diff
    chisq = float(np.sum(z**2 / d[pos]))
    return {"F": chisq / q if q else np.nan, "num_df": q, "den_df": np.inf, "chisq": chisq,
            "p_value": float(stats.chi2.sf(chisq, q)) if q else np.nan}
