r"""Random-effect parameters on lme4's "sdcor" scale and back to theta.

Per term (lme4's ``as.data.frame(VarCorr)`` order): the SDs of its columns, then the
correlations of the column pairs (1,2), (1,3), (2,3), …; for gaussian models the residual SD
``sigma`` last. With D = diag(SDs) and C the correlation matrix, :math:`T = D\,\mathrm{chol}(C)/
\sigma` — well defined when an SD is zero, which ``chol(D C D)`` is not.

A structured term (``ar1(...)``, ``exp(...)``, …; :mod:`glmm_nb.design.covstruct`) is given on
glmmTMB's reporting scale instead, one coordinate per parameter: its SDs (``sd__ar1|g`` when the
structure has one SD for all columns, else ``sd__col|g``), then ``rho__ar1|g`` / ``rho__cs|g``,
``rho1__toep|g`` … (lag correlations), ``rate__ou|g``, ``range__exp|g`` (and gau, mat),
``smoothness__mat|g``.

The zero part's random-effect terms (``ziformula="~ x + (1 | g)"``) have their own vector, named
``zi~sd__(Intercept)|g``, ``zi~cor__…``, from the zero part's theta (:class:`ZeroPartTerms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..design import ModelSpec
from ..design.reterms import tril_index

__all__ = ["sdcor_names", "theta_to_sdcor", "sdcor_to_theta", "sdcor_bounds", "clip_sdcor_limits", "ZeroPartTerms",
           "zi_sdcor_names", "zi_theta_to_sdcor", "zi_sdcor_to_theta", "zi_sdcor_bounds"]

ZI = "zi~"  # the zero part's rows (as its coefficients', zi~(Intercept))


@dataclass(frozen=True, eq=False)
class ZeroPartTerms:
    """The zero part's random-effect terms seen as a spec's terms (what the functions here read)."""

    spec: ModelSpec

    @property
    def terms(self):
        return self.spec.zi_terms

    def theta_slices(self):
        return self.spec.zi_theta_slices()


def zi_sdcor_names(spec: ModelSpec) -> list[str]:
    """``zi~sd__(Intercept)|g``, … for the zero part's terms (empty without them)."""
    return [ZI + n for n in sdcor_names(ZeroPartTerms(spec), False)] if spec.zi_terms else []


def zi_theta_to_sdcor(spec: ModelSpec, zi_theta: np.ndarray, pacf: bool = False) -> np.ndarray:
    """The zero part's theta on the SD/correlation scale (no residual scale)."""
    if not spec.zi_terms:
        return np.zeros(0)
    return theta_to_sdcor(ZeroPartTerms(spec), np.asarray(zi_theta, dtype=float), 1.0, False, pacf)


def zi_sdcor_to_theta(spec: ModelSpec, psi: np.ndarray, pacf: bool = False) -> np.ndarray:
    """The zero part's theta from its SD/correlation vector."""
    if not spec.zi_terms:
        return np.zeros(0)
    return sdcor_to_theta(ZeroPartTerms(spec), psi, False, pacf)[0]


def zi_sdcor_bounds(spec: ModelSpec) -> list[tuple[float | None, float | None]]:
    return sdcor_bounds(ZeroPartTerms(spec), False) if spec.zi_terms else []


def _pairs(q: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(q) for b in range(a + 1, q)]


def _structured_names(t) -> list[str]:
    st = t.structure
    sds = [f"sd__{st.name}|{t.label}"] if st.n_sd == 1 else [f"sd__{c}|{t.label}" for c in t.col_names]
    return sds + [f"{k}__{st.name}|{t.label}" for k in st.natural_keys()]


def sdcor_names(spec: ModelSpec, gaussian: bool) -> list[str]:
    """``sd__(Intercept)|herd``, ``cor__(Intercept).x|g``, …, ``sigma``."""
    out = []
    for t in spec.terms:
        if t.structured:
            out += _structured_names(t)
            continue
        out += [f"sd__{c}|{t.label}" for c in t.col_names]
        out += [f"cor__{t.col_names[a]}.{t.col_names[b]}|{t.label}" for a, b in _pairs(t.q)]
    if gaussian:
        out.append("sigma")
    return out


def theta_to_sdcor(spec: ModelSpec, theta: np.ndarray, sigma: float, gaussian: bool, pacf: bool = False) -> np.ndarray:
    """The vector in :func:`sdcor_names` order (``pacf``: a Toeplitz term's partial
    autocorrelations in place of its lag correlations — the box a profile moves in)."""
    out = []
    for t, sl in zip(spec.terms, spec.theta_slices()):
        if t.structured:
            out += list(t.structure.natural(theta[sl], sigma, pacf))
            continue
        T = t.T(theta[sl]) * sigma
        S = T @ T.T
        sd = np.sqrt(np.diag(S))
        out += list(sd)
        for a, b in _pairs(t.q):
            out.append(S[a, b] / (sd[a] * sd[b]) if sd[a] > 0 and sd[b] > 0 else 0.0)
    if gaussian:
        out.append(sigma)
    return np.array(out, dtype=float)


def sdcor_to_theta(spec: ModelSpec, psi: np.ndarray, gaussian: bool, pacf: bool = False) -> tuple[np.ndarray, float]:
    """theta (and sigma) from a vector in :func:`sdcor_names` order (``pacf``: as :func:`theta_to_sdcor`)."""
    sigma = float(psi[-1]) if gaussian else 1.0
    theta, i = [], 0
    for t in spec.terms:
        if t.structured:
            k = t.ntheta
            theta += list(t.structure.from_natural(psi[i : i + k], sigma, pacf))
            i += k
            continue
        q = t.q
        sd = np.asarray(psi[i : i + q], dtype=float)
        i += q
        C = np.eye(q)
        for a, b in _pairs(q):
            C[a, b] = C[b, a] = np.clip(psi[i], -1 + 1e-10, 1 - 1e-10)
            i += 1
        try:
            L = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:  # not positive definite: nearest by eigenvalue clipping
            w, V = np.linalg.eigh(C)
            C = (V * np.maximum(w, 1e-10)) @ V.T
            d = np.sqrt(np.diag(C))
            L = np.linalg.cholesky(C / np.outer(d, d))
        T = (sd[:, None] * L) / sigma
        r, c = tril_index(q)
        theta += list(T[r, c])
    return np.array(theta), sigma


def sdcor_bounds(spec: ModelSpec, gaussian: bool) -> list[tuple[float | None, float | None]]:
    out: list[tuple[float | None, float | None]] = []
    for t in spec.terms:
        if t.structured:
            out += t.structure.natural_bounds()
            continue
        out += [(0.0, None)] * t.q + [(-1.0, 1.0)] * len(_pairs(t.q))
    if gaussian:
        out.append((1e-8, None))
    return out


def clip_sdcor_limits(names: list[str], lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wald limits of SDs and correlations kept in their ranges: SDs (rates, ranges) ≥ 0,
    correlations in [-1, 1]."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    cor = np.array([n.startswith(("cor__", "rho")) for n in names], dtype=bool)
    lo = np.where(cor, np.maximum(lo, -1.0), np.maximum(lo, 0.0))
    hi = np.where(cor, np.minimum(hi, 1.0), hi)
    return lo, hi
