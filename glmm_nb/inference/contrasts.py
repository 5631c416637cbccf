r"""Contrast weights among estimated marginal means and multiplicity adjustments (emmeans 1.8).

Weights (one row per contrast, one column per mean of a ``by`` group):

* ``pairwise``: :math:`e_i - e_j` for i < j ("A - B"); ``revpairwise``: :math:`e_i - e_j` for
  i > j ("B - A");
* ``trt.vs.ctrl``: :math:`e_i - e_{ref}` for every other level;
* ``eff``: :math:`e_i - \bar e` ("A effect");
* a dict ``{name: weights}``.

Adjusted p-values for m contrasts among k means, two-sided statistic t with df ν:

* ``tukey``: :math:`P(q_{k,\nu} > \sqrt2|t|)`, the studentized range (df rounded to 7
  significant digits as emmeans' ``zapsmall``);
* ``dunnettx``: emmeans' approximation :math:`1 - [w\,F_q(\sqrt2|t|; k', \nu) + (1 - w)\,
  F_{1,\nu}(t^2)^m]` with :math:`w = (m-1)/m`, :math:`k' = (1 + \sqrt{1 + 8m})/2`;
* ``sidak`` :math:`1 - (1-p)^m`, ``bonferroni`` :math:`\min(1, mp)`, ``holm`` (step-down),
  ``fdr`` / ``BH`` (Benjamini-Hochberg step-up), ``none``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ..errors import ModelError

__all__ = ["ADJUST_METHODS", "adjust_pvalues", "contrast_weights"]

ADJUST_METHODS = ("tukey", "dunnettx", "sidak", "bonferroni", "holm", "fdr", "bh", "none")


def contrast_weights(method, names: list[str], sep: str = " - ", ref: int = 0):
    """Weights, contrast names, emmeans' default adjustment and the family kind.

    Raises
    ------
    ModelError
        Unknown method, wrong number of custom weights, bad ``ref``.
    """
    k = len(names)
    eye = np.eye(k)
    if isinstance(method, dict):
        rows, cn = [], []
        for name, w in method.items():
            w = np.asarray(w, dtype=float).ravel()
            if w.size != k:
                raise ModelError(f"contrast '{name}' has {w.size} weights; the means are {k} ({', '.join(names)})")
            rows.append(w)
            cn.append(str(name))
        return np.array(rows).reshape(len(rows), k), cn, "none", "custom"
    if not isinstance(method, str):
        raise ModelError(f"method must be a name or a dict of weights, not {type(method).__name__}")
    key = method.lower()
    if key == "pairwise":
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        return (np.array([eye[i] - eye[j] for i, j in pairs]).reshape(len(pairs), k),
                [f"{names[i]}{sep}{names[j]}" for i, j in pairs], "tukey", "pairwise")
    if key == "revpairwise":
        pairs = [(i, j) for i in range(1, k) for j in range(i)]
        return (np.array([eye[i] - eye[j] for i, j in pairs]).reshape(len(pairs), k),
                [f"{names[i]}{sep}{names[j]}" for i, j in pairs], "tukey", "pairwise")
    if key in ("trt.vs.ctrl", "trt.vs.ctrl1", "trtvsctrl"):
        if not -k <= ref < k:
            raise ModelError(f"ref={ref} is not the position of one of the {k} means")
        ref = ref % k
        others = [i for i in range(k) if i != ref]
        return (np.array([eye[i] - eye[ref] for i in others]).reshape(len(others), k),
                [f"{names[i]}{sep}{names[ref]}" for i in others], "dunnettx", "trt.vs.ctrl")
    if key == "eff":
        return eye - 1.0 / k, [f"{n} effect" for n in names], "fdr", "eff"
    raise ModelError(f"method must be 'pairwise', 'revpairwise', 'trt.vs.ctrl', 'eff' or a dict of weights, "
                     f"not {method!r}")


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    fin = np.isfinite(x)
    if not fin.any():
        return x
    mx = np.max(np.abs(x[fin]))
    if mx == 0:
        return x
    d = max(0, digits - int(np.ceil(np.log10(mx))))
    out = x.copy()
    out[fin] = np.round(x[fin], d)
    return out


def _f1_sf(x2: np.ndarray, df: np.ndarray) -> np.ndarray:
    out = stats.chi2.sf(x2, 1)
    fin = np.isfinite(df)
    out[fin] = stats.f.sf(x2[fin], 1, df[fin])
    return out


def adjust_pvalues(p: np.ndarray, t: np.ndarray, df: np.ndarray, method: str, k: int) -> np.ndarray:
    """Adjusted p-values of one family of ``len(p)`` contrasts among ``k`` means."""
    p = np.asarray(p, dtype=float)
    m = p.size
    method = method.lower()
    if method not in ADJUST_METHODS:
        raise ModelError(f"adjust must be one of {', '.join(ADJUST_METHODS)}, not {method!r}")
    if m <= 1 or method == "none":
        return p.copy()
    at = np.abs(np.asarray(t, dtype=float))
    df = np.asarray(df, dtype=float)
    if method == "tukey":
        return stats.studentized_range.sf(np.sqrt(2) * at, k, _zapsmall(df))
    if method == "dunnettx":
        w = (m - 1) / m
        kk = (1 + np.sqrt(1 + 8 * m)) / 2
        tuk_sf = stats.studentized_range.sf(np.sqrt(2) * at, kk, df)
        sid_sf = -np.expm1(m * np.log1p(-_f1_sf(at**2, df)))  # 1 - F^m without cancellation
        return w * tuk_sf + (1 - w) * sid_sf
    if method == "sidak":
        return 1 - (1 - p) ** m
    if method == "bonferroni":
        return np.minimum(1.0, m * p)
    order = np.argsort(p, kind="stable")
    ps = p[order]
    if method == "holm":
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * ps))
    else:  # Benjamini-Hochberg
        adj = np.minimum(1.0, np.minimum.accumulate((m / np.arange(m, 0, -1) * ps[::-1]))[::-1])
    out = np.empty(m)
    out[order] = adj
    return out
