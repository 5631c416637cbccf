r"""Covariance structures of a random-effect term — glmmTMB's ``us diag cs ar1 toep ou exp gau mat``.

A structure maps its parameters ``theta`` to the term's relative covariance factor ``T``
(q × q, lower triangular; the term's random effects have covariance :math:`\sigma^2 T T'`, σ = 1
outside the gaussian family), so everything built on :math:`\Lambda = \oplus_k I_{J_k}\otimes T_k`
(PIRLS, Laplace, AGQ, the profiled LMM, predictions) works unchanged. ``us`` is lme4's: theta
holds T's lower triangle. Every other structure is :math:`T = D\,L_R` with :math:`D` the diagonal
of standard deviations (relative to σ) and :math:`L_R = \mathrm{chol}(R)` the Cholesky factor of
a correlation matrix :math:`R(c)`; its theta is ``(sd…, c…)``:

======  ==========  ====================================================================
name    sd          correlation :math:`R_{ab}` (glmmTMB 1.1.5's parameter transforms)
======  ==========  ====================================================================
diag    q           :math:`\delta_{ab}`
cs      q           :math:`\rho`, :math:`\rho = \mathrm{logit}^{-1}(c)(1 + \alpha) - \alpha`, :math:`\alpha = 1/(q-1)`
ar1     1           :math:`\rho^{|a-b|}`, :math:`\rho = c/\sqrt{1 + c^2}`
toep    q           :math:`\rho_{|a-b|}` from the partial autocorrelations
                    :math:`\varphi_k = c_k/\sqrt{1 + c_k^2}` (Durbin–Levinson: always positive
                    definite; glmmTMB puts the transform on the lag correlations themselves —
                    the same model wherever its matrix is positive definite)
ou      1           :math:`\exp(-e^{c} d_{ab})` (d: distance of the term's time points)
exp     1           :math:`\exp(-d_{ab}/r)`, range :math:`r = e^{c}`
gau     1           :math:`\exp(-d_{ab}^2/r^2)`, :math:`r = e^{c}`
mat     1           Matérn :math:`\frac{2^{1-\kappa}}{\Gamma(\kappa)}(d/r)^\kappa K_\kappa(d/r)`,
                    :math:`r = e^{c_1}`, :math:`\kappa = e^{c_2}`
======  ==========  ====================================================================

SDs are bounded below by 0 (lme4's boundary for a zero variance); the ``c`` are unbounded.

Derivatives (the likelihood's analytic gradients are taken with respect to the entries of T and
chained here, :meth:`Structure.chain`): :math:`\partial T/\partial sd_a = e_a e_a' L_R` and
:math:`\partial T/\partial c_j = D\,L_R\,\Phi(L_R^{-1}\,\partial_j R\,L_R^{-T})`, :math:`\Phi`
taking the lower triangle with half the diagonal (the derivative of the Cholesky factor).
:math:`\partial_j R` is exact by the complex step (every correlation above is analytic in c),
except Matérn's smoothness (central differences: scipy's Bessel K takes no complex order).
"""

from __future__ import annotations

import numpy as np
from scipy import special
from scipy.linalg import solve_triangular

from ..errors import FormulaError

__all__ = ["STRUCTURES", "SPATIAL", "Structure", "make_structure", "tril_index", "pacf_for_lag"]

STRUCTURES = ("us", "diag", "cs", "ar1", "toep", "ou", "exp", "gau", "mat")
SPATIAL = ("ou", "exp", "gau", "mat")  # need pos() coordinates
_COMPLEX_STEP = 1e-30


def tril_index(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a q × q lower triangle in lme4's column-major order."""
    cols, rows = np.triu_indices(q)  # (row <= col) in row-major order = lower triangle by column
    return rows.astype(int), cols.astype(int)


def _pacf_to_acf(pacf: np.ndarray) -> np.ndarray:
    """Autocorrelations ρ_0..ρ_{q-1} from partial autocorrelations (Durbin–Levinson); complex-safe."""
    rho = [np.ones((), dtype=pacf.dtype)]
    prev: list = []
    for k, p in enumerate(pacf, start=1):
        new = [prev[j] - p * prev[k - 2 - j] for j in range(k - 1)] + [p]
        rho.append(sum(new[j] * rho[k - 1 - j] for j in range(k)))
        prev = new
    return np.array(rho)


def _acf_to_pacf(rho: np.ndarray, edge: float) -> np.ndarray:
    """Partial autocorrelations from ρ_1..ρ_{q-1} (Durbin–Levinson forward), each clipped to ±edge."""
    out, prev = [], np.zeros(0)
    full = np.r_[1.0, rho]
    for k in range(1, len(rho) + 1):
        num = full[k] - np.dot(prev, full[k - 1 : 0 : -1]) if k > 1 else full[1]
        den = 1.0 - np.dot(prev, full[1:k]) if k > 1 else 1.0
        p = float(np.clip(num / den, -edge, edge)) if den > 0 else float(np.sign(num) * edge)
        prev = np.r_[prev - p * prev[::-1], p]
        out.append(p)
    return np.array(out)


def pacf_for_lag(pacf_prev: np.ndarray, rho_k):
    r"""The k-th partial autocorrelation that gives the lag-k autocorrelation ``rho_k`` after the
    first k − 1 partial autocorrelations ``pacf_prev`` (complex-safe). Durbin–Levinson:
    :math:`\rho_k = \sum_{j<k} a_{k-1,j}\,\rho_{k-j} + \varphi_k v_{k-1}` with the AR(k − 1)
    coefficients :math:`a_{k-1,j}` and :math:`v_{k-1} = \prod_{j<k}(1 - \varphi_j^2) > 0`, so
    :math:`\varphi_k` is linear in :math:`\rho_k`; the Toeplitz matrix is positive definite iff
    every :math:`|\varphi_j| < 1`."""
    k = len(pacf_prev) + 1
    acf = _pacf_to_acf(np.asarray(pacf_prev))  # rho_0 .. rho_{k-1}
    a: list = []
    for i, p in enumerate(pacf_prev, start=1):
        a = [a[j] - p * a[i - 2 - j] for j in range(i - 1)] + [p]
    num = rho_k - sum(a[j] * acf[k - 1 - j] for j in range(k - 1))
    den = 1.0 - sum(a[j] * acf[j + 1] for j in range(k - 1))
    return num / den


def matern(d: np.ndarray, rng: float, kappa: float) -> np.ndarray:
    """Matérn correlation with range ``rng`` and smoothness ``kappa`` (TMB's ``matern``)."""
    x = np.asarray(d, dtype=float) / rng
    out = np.ones_like(x)
    pos = x > 0
    xp = x[pos]
    # on the log scale (K_kappa(x) = kve e^{-x}): the direct product is 0 * inf at a large smoothness
    # and a small x; where K_kappa still overflows, x << sqrt(kappa) and the series at 0 holds:
    # 1 - x^2 / (4 (kappa - 1)) + x^4 / (32 (kappa - 1)(kappa - 2)) (error O(x^6 / kappa^3))
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        log_c = ((1 - kappa) * np.log(2.0) - special.gammaln(kappa) + kappa * np.log(xp)
                 + np.log(special.kve(kappa, xp)) - xp)
        k = max(kappa, 2.5)
        series = 1 - xp**2 / (4 * (k - 1)) + xp**4 / (32 * (k - 1) * (k - 2))
        out[pos] = np.where(np.isfinite(log_c), np.exp(np.minimum(log_c, 0.0)),
                            np.where(log_c < 0, 0.0, np.clip(series, 0.0, 1.0)))
    return out


class Structure:
    """The theta → T map of one term (``q`` columns).

    Attributes
    ----------
    name : str
        One of :data:`STRUCTURES`.
    q : int
    coords : ndarray (q, dim) or None
        The positions of the columns (ou/exp/gau/mat).
    """

    def __init__(self, name: str, q: int, coords: np.ndarray | None = None):
        self.name, self.q = name, int(q)
        self.coords = None if coords is None else np.asarray(coords, dtype=float)
        if self.coords is not None:
            diff = self.coords[:, None, :] - self.coords[None, :, :]
            self.dist = np.sqrt(np.sum(diff**2, axis=2))
        else:
            lag = np.arange(q)
            self.dist = np.abs(lag[:, None] - lag[None, :]).astype(float)
        self.n_sd = {"us": 0, "ar1": 1, "ou": 1, "exp": 1, "gau": 1, "mat": 1}.get(name, q)
        self.n_c = {"us": 0, "diag": 0, "cs": 1, "ar1": 1, "toep": q - 1, "ou": 1, "exp": 1,
                    "gau": 1, "mat": 2}[name]
        self._cache: tuple | None = None

    # ------------------------------------------------------------------------ sizes, names
    @property
    def ntheta(self) -> int:
        return self.q * (self.q + 1) // 2 if self.name == "us" else self.n_sd + self.n_c

    @property
    def linear(self) -> bool:
        """True when theta are T's entries (``us``): the chain rule is the identity."""
        return self.name == "us"

    def lower(self) -> np.ndarray:
        if self.linear:
            r, c = tril_index(self.q)
            return np.where(r == c, 0.0, -np.inf)
        return np.r_[np.zeros(self.n_sd), np.full(self.n_c, -np.inf)]

    def start(self) -> np.ndarray:
        if self.linear:
            r, c = tril_index(self.q)
            return np.where(r == c, 1.0, 0.0)
        c0 = np.zeros(self.n_c)
        if self.name in SPATIAL:
            pos = self.dist[self.dist > 0]
            scale = float(np.median(pos)) if pos.size else 1.0
            c0[0] = -np.log(scale) if self.name == "ou" else np.log(scale)
        return np.r_[np.ones(self.n_sd), c0]

    def param_names(self, col_names) -> list[str]:
        """Names of the theta entries (without the term label)."""
        if self.linear:
            r, c = tril_index(self.q)
            return [col_names[a] if a == b else f"{col_names[a]}.{col_names[b]}" for a, b in zip(r, c)]
        sds = ["sd"] if self.n_sd == 1 else [f"sd.{c}" for c in col_names]
        cs = {"cs": ["rho"], "ar1": ["rho"], "toep": [f"pacf{k}" for k in range(1, self.q)],
              "ou": ["log_rate"], "exp": ["log_range"], "gau": ["log_range"],
              "mat": ["log_range", "log_smoothness"]}.get(self.name, [])
        return sds + [f"{self.name}.{c}" for c in cs]

    # ------------------------------------------------------------------------ the map
    def sd(self, theta: np.ndarray) -> np.ndarray:
        """Relative SDs of the q columns."""
        s = np.asarray(theta[: self.n_sd], dtype=float)
        return np.full(self.q, s[0]) if self.n_sd == 1 else s

    def corr(self, c: np.ndarray) -> np.ndarray:
        """The correlation matrix R(c) (complex-safe except Matérn)."""
        q, name = self.q, self.name
        if name == "diag":
            return np.eye(q)
        if name == "cs":
            a = 1.0 / (q - 1)
            rho = (1.0 + a) / (1.0 + np.exp(-c[0])) - a
            return rho * np.ones((q, q), dtype=np.result_type(c, float)) + (1.0 - rho) * np.eye(q)
        if name == "ar1":
            rho = c[0] / np.sqrt(1.0 + c[0] ** 2)
            return rho ** self.dist.astype(int)
        if name == "toep":
            acf = _pacf_to_acf(c / np.sqrt(1.0 + c**2))
            return acf[self.dist.astype(int)]
        if name == "ou":
            return np.exp(-np.exp(c[0]) * self.dist)
        if name == "exp":
            return np.exp(-self.dist / np.exp(c[0]))
        if name == "gau":
            return np.exp(-self.dist**2 / np.exp(2.0 * c[0]))
        if name == "mat":
            return matern(self.dist, float(np.exp(c[0].real)), float(np.exp(c[1].real)))
        raise ValueError(name)

    def correlation(self, theta: np.ndarray) -> np.ndarray:
        """The implied correlation matrix (``us``: from T)."""
        if self.linear:
            T = self.T(theta)
            S = T @ T.T
            d = np.sqrt(np.diag(S))
            with np.errstate(invalid="ignore", divide="ignore"):
                return S / np.outer(d, d)
        return self.corr(np.asarray(theta[self.n_sd :], dtype=float))

    def _factor(self, theta: np.ndarray):
        theta = np.asarray(theta, dtype=float)
        key = theta.tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        c = theta[self.n_sd :]
        L = np.linalg.cholesky(self.corr(c)) if self.name != "diag" else np.eye(self.q)
        out = (self.sd(theta)[:, None] * L, L, c)
        self._cache = (key, out)
        return out

    def T(self, theta: np.ndarray) -> np.ndarray:
        """The lower-triangular factor T (q × q)."""
        if self.linear:
            T = np.zeros((self.q, self.q))
            r, c = tril_index(self.q)
            T[r, c] = theta
            return T
        return self._factor(theta)[0]

    def dT(self, theta: np.ndarray) -> np.ndarray:
        """∂T/∂theta_j for every j, (ntheta, q, q) — not for ``us`` (identity chain)."""
        theta = np.asarray(theta, dtype=float)
        _T, L, c = self._factor(theta)
        q = self.q
        out = np.zeros((self.ntheta, q, q))
        if self.n_sd == 1:
            out[0] = L
        else:
            for a in range(q):
                out[a, a, :] = L[a, :]
        if not self.n_c:
            return out
        sd = self.sd(theta)
        for j in range(self.n_c):
            dR = self._dcorr(c, j)
            if not np.all(np.isfinite(dR)):  # e.g. Matern's Bessel function at an extreme smoothness or range
                raise FloatingPointError(f"the {self.name}() correlation's derivative is not finite at {c}")
            A = solve_triangular(L, dR, lower=True)
            X = solve_triangular(L, A.T, lower=True)  # L^-1 dR L^-T (symmetric)
            Phi = np.tril(X)
            Phi[np.diag_indices(q)] *= 0.5
            out[self.n_sd + j] = sd[:, None] * (L @ Phi)
        return out

    def _dcorr(self, c: np.ndarray, j: int) -> np.ndarray:
        if self.name == "mat":
            h = 1e-6 * max(1.0, abs(c[j]))
            e = np.zeros_like(c)
            e[j] = h
            return (self.corr(c + e) - self.corr(c - e)) / (2 * h)
        cc = c.astype(complex)
        cc[j] += 1j * _COMPLEX_STEP
        return np.imag(self.corr(cc)) / _COMPLEX_STEP

    def chain(self, theta: np.ndarray, G: np.ndarray) -> np.ndarray:
        """Gradient in theta from ``G`` (q × q), the gradient in T's entries (lower part used)."""
        if self.linear:
            r, c = tril_index(self.q)
            return G[r, c]
        return np.einsum("jab,ab->j", self.dT(theta), np.tril(G))

    def singular(self, theta: np.ndarray, tol: float = 1e-4) -> bool:
        """lme4's ``isSingular`` rule: a diagonal entry of T (``us``) or an SD below ``tol``."""
        theta = np.asarray(theta, dtype=float)
        if self.linear:
            r, c = tril_index(self.q)
            return bool(np.any(np.abs(theta[r == c]) < tol))
        return bool(np.any(np.abs(theta[: self.n_sd]) < tol))

    # ------------------------------------------------------------------------ reading
    def parameters(self, theta: np.ndarray, sigma: float = 1.0) -> dict[str, float]:
        """The structure's parameters on glmmTMB's reporting scale (absolute SDs)."""
        if self.linear:
            return {}
        theta = np.asarray(theta, dtype=float)
        c = theta[self.n_sd :]
        sd = self.sd(theta) * sigma
        out = {"sd": float(sd[0])} if self.n_sd == 1 else {f"sd{a + 1}": float(v) for a, v in enumerate(sd)}
        if self.name in ("cs", "ar1"):
            out["rho"] = float(self.corr(c)[1, 0])
        elif self.name == "toep":
            R = self.corr(c)
            out.update({f"rho{k}": float(R[k, 0]) for k in range(1, self.q)})
        elif self.name == "ou":
            out["rate"] = float(np.exp(c[0]))
            out["rho_unit"] = float(np.exp(-np.exp(c[0])))
        elif self.name in ("exp", "gau", "mat"):
            out["range"] = float(np.exp(c[0]))
            if self.name == "mat":
                out["smoothness"] = float(np.exp(c[1]))
        return out

    # ------------------------------------------------------------------------ natural scale
    def natural_keys(self) -> list[str]:
        """Names of the structure's correlation parameters on glmmTMB's reporting scale, the
        coordinates that intervals are given in (after the SDs): ``rho`` (cs, ar1), ``rho1…``
        (toep: lag correlations), ``rate`` (ou), ``range`` (exp, gau, mat), ``smoothness`` (mat)."""
        return {"cs": ["rho"], "ar1": ["rho"], "toep": [f"rho{k}" for k in range(1, self.q)], "ou": ["rate"],
                "exp": ["range"], "gau": ["range"], "mat": ["range", "smoothness"]}.get(self.name, [])

    def natural(self, theta: np.ndarray, sigma: float = 1.0, pacf: bool = False) -> np.ndarray:
        """``(SDs (absolute), natural_keys…)`` from theta — one-to-one, unlike :meth:`parameters`.
        ``pacf``: a Toeplitz term's partial autocorrelations instead of its lag correlations (a box,
        the coordinates a profile moves in; the first is ρ1 itself)."""
        theta = np.asarray(theta, dtype=float)
        c = theta[self.n_sd :]
        sd = np.asarray(theta[: self.n_sd], dtype=float) * sigma
        if self.name in ("cs", "ar1"):
            nat = [self.corr(c)[1, 0]]
        elif self.name == "toep":
            nat = list(c / np.sqrt(1.0 + c**2)) if pacf else list(self.corr(c)[1:, 0])
        else:
            nat = list(np.exp(c))
        return np.r_[sd, np.asarray(nat, dtype=float)]

    def from_natural(self, psi: np.ndarray, sigma: float = 1.0, pacf: bool = False) -> np.ndarray:
        """theta from :meth:`natural`'s vector. Correlations are kept strictly inside their range
        and rates/ranges above 1e-10; a Toeplitz vector that is not positive definite is mapped to
        the boundary (its offending partial autocorrelation clipped to ±(1 − 1e-10))."""
        psi = np.asarray(psi, dtype=float)
        sd, v = psi[: self.n_sd] / sigma, psi[self.n_sd :]
        edge = 1.0 - 1e-10
        if self.name == "ar1":
            r = np.clip(v, -edge, edge)
            c = r / np.sqrt(1.0 - r**2)
        elif self.name == "cs":
            a = 1.0 / (self.q - 1)
            p = np.clip((v + a) / (1.0 + a), 1e-12, 1.0 - 1e-12)
            c = np.log(p / (1.0 - p))
        elif self.name == "toep":
            c = np.clip(v, -edge, edge) if pacf else _acf_to_pacf(v, edge)
            c = c / np.sqrt(1.0 - c**2)
        else:
            c = np.log(np.maximum(v, 1e-10))
        return np.r_[sd, c]

    def natural_bounds(self) -> list[tuple[float | None, float | None]]:
        """Box bounds of :meth:`natural`'s coordinates (SDs ≥ 0)."""
        low = {"cs": -1.0 / max(self.q - 1, 1), "ar1": -1.0, "toep": -1.0}.get(self.name)
        nat = [(low, 1.0) if low is not None else (0.0, None)] * len(self.natural_keys())
        return [(0.0, None)] * self.n_sd + nat

    def correlation_at(self, theta: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The correlation at lags (ar1, cs, toep, diag: integers 0..q-1) or distances (ou, exp, gau,
        mat: any values ≥ 0); not for ``us``."""
        theta = np.asarray(theta, dtype=float)
        c, d = theta[self.n_sd :], np.asarray(d, dtype=float)
        if self.name in ("ar1", "cs", "toep", "diag"):
            first_row = self.corr(c)[:, 0] if self.name != "diag" else np.eye(self.q)[:, 0]
            return first_row[d.astype(int)]
        if self.name == "ou":
            return np.exp(-np.exp(c[0]) * d)
        if self.name == "exp":
            return np.exp(-d / np.exp(c[0]))
        if self.name == "gau":
            return np.exp(-(d**2) / np.exp(2.0 * c[0]))
        if self.name == "mat":
            return matern(d, float(np.exp(c[0])), float(np.exp(c[1])))
        raise ValueError("an unstructured term has no correlation function")

    def kriging(self, theta: np.ndarray, new_coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Kriging of the term at new positions (ou, exp, gau, mat).

        With :math:`r_0` the correlations of a new position with the fitted ones and R theirs,
        :math:`E[b(s_0) \mid b(S)] = w'b(S)` with :math:`w = R^{-1} r_0`, and
        :math:`\mathrm{Var}[b(s_0) \mid b(S)] = sd^2 (1 - r_0'R^{-1}r_0)` (relative to σ²). Returns
        ``(w (m, q), var (m,))``: a new position's row of Z is ``w``, so predictions use the
        conditional modes at the fitted positions.
        """
        theta = np.asarray(theta, dtype=float)
        new = np.asarray(new_coords, dtype=float)
        d0 = np.sqrt(np.sum((new[:, None, :] - self.coords[None, :, :]) ** 2, axis=2))  # (m, q)
        r0 = self.correlation_at(theta, d0)
        L = self._factor(theta)[1]
        A = solve_triangular(L, r0.T, lower=True)  # L^-1 r0
        w = solve_triangular(L.T, A, lower=False).T
        var = self.sd(theta)[0] ** 2 * np.maximum(1.0 - np.sum(A * A, axis=0), 0.0)
        return w, var

    def kriging_cov(self, theta: np.ndarray, new_coords: np.ndarray) -> np.ndarray:
        r"""Joint conditional covariance of the term at new positions given its effects at the fitted
        ones, :math:`sd^2 (R_{00} - R_{0S} R^{-1} R_{S0})` (relative to σ², (m, m)): with the kriging
        mean :meth:`kriging` it gives the exact joint draws of the process at the new positions."""
        theta = np.asarray(theta, dtype=float)
        new = np.asarray(new_coords, dtype=float)
        d0 = np.sqrt(np.sum((new[:, None, :] - self.coords[None, :, :]) ** 2, axis=2))
        d00 = np.sqrt(np.sum((new[:, None, :] - new[None, :, :]) ** 2, axis=2))
        A = solve_triangular(self._factor(theta)[1], self.correlation_at(theta, d0).T, lower=True)
        K = self.correlation_at(theta, d00) - A.T @ A
        return self.sd(theta)[0] ** 2 * (K + K.T) / 2

    def compact(self, theta: np.ndarray) -> str:
        """glmmTMB's compact correlation text: ``0.748 (ar1)``, ``2.48 (exp: range)``."""
        p = self.parameters(theta)
        if self.name in ("cs", "ar1"):
            return f"{p['rho']:.3f} ({self.name})"
        if self.name == "toep":
            return " ".join(f"{p[f'rho{k}']:.3f}" for k in range(1, self.q)) + " (toep)"
        if self.name == "ou":
            return f"{p['rho_unit']:.3f} (ou: correlation at unit distance)"
        if self.name in ("exp", "gau"):
            return f"{p['range']:.3g} ({self.name}: range)"
        if self.name == "mat":
            return f"{p['range']:.3g}, {p['smoothness']:.3g} (mat: range, smoothness)"
        return f"({self.name})" if self.name == "diag" else ""


def make_structure(name: str, q: int, text: str, coords: np.ndarray | None = None) -> Structure:
    """Check a term's structure against its columns and build it (``text``: the term, for messages)."""
    if name not in STRUCTURES:
        raise FormulaError(f"unknown covariance structure '{name}' in {text}; use one of {', '.join(STRUCTURES)}")
    if name in SPATIAL and coords is None:
        raise FormulaError(
            f"the {name}() term {text} needs coordinates: write its left side as pos(t) + 0 (or pos(x, y) + 0; "
            "numFactor(...) is read the same way)"
        )
    if name in ("cs", "ar1", "toep") and q < 2:
        raise FormulaError(f"the {name}() term {text} has a single column: a correlation structure needs at least two "
                           "(e.g. ar1(timef + 0 | id) with timef a factor of the times)")
    if name in SPATIAL and q < 2:
        raise FormulaError(f"the {name}() term {text} has a single distinct position: its correlation cannot be estimated")
    return Structure(name, q, coords)
