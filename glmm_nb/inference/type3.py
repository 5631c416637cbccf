r"""Type III tests of the fixed-effect terms of one model (lmerTest's ``anova(m, type = 3)``).

The hypotheses are lmerTest 3.1's, built from the treatment-coded model matrix X (formulaic's
default coding):

1. the rank-deficient "complete" design :math:`X_c` has an intercept and, for every term, all
   cells of its factors (``~ 0 + A:B``: every level of every factor, times its numeric
   variables);
2. :math:`L = (X^+ X_c)'` expresses every complete-design column through the coefficients
   (one row per column of :math:`X_c`, one column per coefficient);
3. from the highest-order terms down, the columns of L belonging to a term are replaced by their
   residuals after regression on the columns of the terms that contain it (F1 is contained in
   F2 when F2 has all of F1's variables and more, and the same numeric variables);
4. the rows of L that are columns of X are kept; the hypothesis matrix of a term is the
   transpose of its columns, zero rows dropped.

With one term (or one coefficient) lmerTest uses the type I (sequential) contrasts instead:
the rows of the unit upper-triangular Doolittle factor of X'X for that term's columns.
For full-factorial designs with every cell filled these are the hypotheses of equal unweighted
marginal means (SAS type III); a factor in an interaction with a covariate is tested at the
covariate's value 0, as in lmerTest.

Each term is tested with :func:`glmm_nb.inference.ddf.contrast_test`: an F test with
Satterthwaite or Kenward-Roger denominator df for gaussian fits, a Wald chi-square test for
other families.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import formulaic

from ..errors import ModelError
from .ddf import contrast_test, resolve_ddf

__all__ = ["anova_type3", "type3_contrasts"]

ZAP = 1e-7


def _zap(A: np.ndarray) -> np.ndarray:
    mx = np.max(np.abs(A)) if A.size else 0.0
    A = A.copy()
    A[np.abs(A) < ZAP * max(mx, 1.0)] = 0.0
    return A


def _formulaic_name(name: str) -> str:
    return "Intercept" if name == "(Intercept)" else name


def _terms(m):
    """(label, formulaic term, X column indices, factor expressions, numeric expressions)."""
    fs = m.spec.fixed_spec
    fcols = list(fs.column_names)
    pos = {c: j for j, c in enumerate(fcols)}
    xcol = {pos[_formulaic_name(n)]: j for j, n in enumerate(m.spec.x_names) if _formulaic_name(n) in pos}
    out = []
    for term in fs.terms:
        sl = fs.term_slices[term]
        cols = [xcol[c] for c in range(sl.start, sl.stop) if c in xcol]
        factors = [str(f) for f in term.factors if str(f) != "1"]
        numeric = {f for f in factors if str(fs.encoder_state.get(f, ("numerical",))[0]).lower().endswith("numerical")}
        out.append((str(term), term, cols, set(factors), numeric))
    return out


def _doolittle_rows(X: np.ndarray) -> np.ndarray:
    """t(L) of lmerTest's Doolittle decomposition X'X = L D L': the unit upper triangular factor."""
    R = np.linalg.cholesky(X.T @ X).T
    U = R / np.diag(R)[:, None]
    U[np.abs(U) < 1e-6] = 0.0
    return U


def type3_contrasts(m) -> dict[str, np.ndarray]:
    """Hypothesis matrix (rows × coefficients) of the type III test of each fixed-effect term.

    Raises
    ------
    ModelError
        If a coefficient is not a treatment-coded (dummy × numeric) column, which the
        construction needs (e.g. sum contrasts requested with ``C(x, Sum)``).
    """
    X = np.asarray(m.spec.X, dtype=float)
    p = X.shape[1]
    terms = _terms(m)
    has_icpt = any(not t[3] for t in terms)
    model_terms = [t for t in terms if t[3]]
    if not model_terms:
        return {}
    if p <= 1 or len(model_terms) <= 1:
        U = _doolittle_rows(X)
        return {lab: U[cols] for lab, _t, cols, _f, _n in model_terms if cols}
    frame = m.spec.frame
    if frame is None:
        raise ModelError("this fit does not keep its data frame; type III contrasts need it")
    blocks, owner = [], []
    if has_icpt:
        blocks.append(np.ones((X.shape[0], 1)))
        owner.append(-1)
    for k, (lab, _term, _cols, _f, _n) in enumerate(model_terms):
        try:
            mm = formulaic.model_matrix(f"0 + {lab}", frame, ensure_full_rank=False, na_action="ignore")
        except Exception as exc:  # formulaic's own errors vary by version
            raise ModelError(
                f"cannot build the complete design of the term '{lab}' for type III tests: {exc}"
            ) from None
        blocks.append(mm.to_numpy(dtype=float))
        owner += [k] * mm.shape[1]
    Xc = np.concatenate(blocks, axis=1)
    owner = np.array(owner)
    L = _zap(np.linalg.lstsq(X, Xc, rcond=None)[0].T)  # (complete columns) × p
    # the complete-design column that each coefficient is
    row_of = np.empty(p, dtype=int)
    scale = np.maximum(np.max(np.abs(Xc), axis=0), 1.0)
    for j in range(p):
        cand = np.nonzero(np.max(np.abs(Xc - X[:, [j]]), axis=0) <= 1e-9 * scale)[0]
        if cand.size == 0:
            raise ModelError(
                f"type III tests need treatment (dummy) coding; the coefficient '{m.spec.x_names[j]}' is "
                "not a dummy or numeric column of its term"
            )
        row_of[j] = cand[0]
    # orthogonalise contained terms, highest order first (stable, like R's order())
    contains = {}
    for k, (_l, _t, _c, fk, nk) in enumerate(model_terms):
        contains[k] = [i for i, (_l2, _t2, _c2, fi, ni) in enumerate(model_terms)
                       if fk <= fi and fi - fk and nk == ni]
    order = sorted(range(len(model_terms)), key=lambda k: -len(model_terms[k][3]))
    for k in order:
        if contains[k]:
            cols_k = model_terms[k][2]
            cols_c = [c for i in contains[k] for c in model_terms[i][2]]
            if cols_k and cols_c:
                B = L[:, cols_c]
                coef = np.linalg.lstsq(B, L[:, cols_k], rcond=None)[0]
                L[:, cols_k] = _zap(L[:, cols_k] - B @ coef)
    Lx = L[row_of]  # p × p: rows are the coefficients' complete columns
    out = {}
    for lab, _t, cols, _f, _n in model_terms:
        if not cols:
            continue
        Lt = Lx[:, cols].T
        Lt = Lt[np.sum(np.abs(Lt), axis=1) > 1e-8]
        out[lab] = Lt
    return out


def anova_type3(m, ddf: str | None = None) -> pd.DataFrame:
    """Type III tests of each fixed-effect term, indexed by term.

    Parameters
    ----------
    m : GLMMResult
    ddf : {"satterthwaite", "kenward-roger", "asymptotic"}, optional
        Default Satterthwaite for gaussian fits, asymptotic otherwise.

    Returns
    -------
    pandas.DataFrame
        Gaussian fits with small-sample df: columns ``F num_df den_df p_value``
        (Kenward-Roger's F is scaled, as pbkrtest's). Asymptotic tests (every non-gaussian
        fit): Wald chi-square, columns ``chisq df p_value``.
    """
    method = resolve_ddf(m, ddf)
    rows = []
    for lab, L in type3_contrasts(m).items():
        r = contrast_test(m, L, method)
        rows.append((lab, r))
    idx = pd.Index([lab for lab, _ in rows], name="term")
    if method == "asymptotic":
        out = pd.DataFrame({"chisq": [r["chisq"] for _, r in rows], "df": [r["num_df"] for _, r in rows],
                            "p_value": [r["p_value"] for _, r in rows]}, index=idx)
    else:
        out = pd.DataFrame({"F": [r["F"] for _, r in rows], "num_df": [r["num_df"] for _, r in rows],
                            "den_df": [r["den_df"] for _, r in rows], "p_value": [r["p_value"] for _, r in rows]},
                           index=idx)
    out.attrs["ddf"] = method
    out.attrs["family"] = m.family
    return out
