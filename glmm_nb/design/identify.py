"""Checks that the data can identify the model — lme4's ``checkResponse`` / ``check.nlev`` rules.

* A constant response (all zeros, all ones, one value) leaves nothing to model: lme4 stops with
  "Response is constant", and so do we (the binomial/Poisson estimates would run to infinity).
* Binomial counts must be whole numbers: R warns "non-integer counts in a binomial glm!" for
  ``cbind(2.5, 1.5)`` and "non-integer #successes" for proportions whose weights do not give
  whole successes; so do we (the likelihood is then not a binomial one).
* A linear mixed model needs fewer groups than observations in every grouping factor (else
  the group variance and the residual variance are the same thing: one observation per group)
  and more observations than random effects in every term (``check.nlev.gtr.1``,
  ``check.nobs.vs.nlev``, ``check.nobs.vs.nRE``, all "stop" in lme4's ``lmerControl``), and
  at least one residual degree of freedom.
"""

from __future__ import annotations


import numpy as np

from ..errors import DataError, DataWarning, warn

__all__ = ["check_counts", "check_identifiable"]

_INT_TOL = 1e-3  # R's binomial()$initialize tolerance


def check_counts(parsed, y: np.ndarray, trials: np.ndarray, pw: np.ndarray, family, name: str) -> None:
    """Refuse a constant response; warn (as R) about non-integer binomial counts."""
    y = np.asarray(y, dtype=float)
    if y.size and np.ptp(y) == 0 and (parsed.cbind is None or np.ptp(trials) == 0 or y[0] in (0.0, 1.0)):
        raise DataError(
            f"response '{name}' is constant ({y[0]:g} in all {y.size} rows): there is nothing to model "
            "(lme4: 'Response is constant')"
        )
    if not family.reads_cbind:
        return
    if parsed.cbind is not None:
        k, f = y * trials, (1 - y) * trials
        bad = (np.abs(k - np.round(k)) > _INT_TOL) | (np.abs(f - np.round(f)) > _INT_TOL)
        if np.any(bad):
            i = int(np.argmax(bad))
            warn(
                f"non-integer counts in a binomial model: {name} has ({k[i]:g}, {f[i]:g}) in a row; the "
                "binomial likelihood is for whole numbers of successes and failures (R: 'non-integer "
                "counts in a binomial glm!')",
                DataWarning
            )
        return
    k = y * pw
    bad = np.abs(k - np.round(k)) > _INT_TOL
    if np.any(bad):
        i = int(np.argmax(bad))
        warn(
            f"non-integer number of successes in a binomial model: {name} × weights gives {k[i]:g} in a row; "
            "give weights= the numbers of trials (R: 'non-integer #successes in a binomial glm!')",
            DataWarning
        )


def check_identifiable(terms, nobs: int, p: int, family) -> None:
    """lme4's identifiability rules for linear mixed models (``family.profiled_lmm``)."""
    if not family.profiled_lmm:
        return
    too_many = [t for t in terms if t.nlevels >= nobs]
    if too_many:
        names = ", ".join(dict.fromkeys(t.group for t in too_many))
        raise DataError(
            f"the number of levels of each grouping factor must be less than the number of observations; "
            f"{names} has {too_many[0].nlevels} levels for {nobs} observations: with (at most) one "
            "observation per group the group variance and the residual variance cannot be told apart "
            "(lme4 refuses this too)"
        )
    for t in terms:
        nre = t.nlevels * t.q
        # a structure with one SD for all its columns (ar1, ou, exp, gau, mat) is told apart from the
        # residual by its correlations, as in glmmTMB; per-column SDs (us, diag, cs, toep) are not
        if nobs <= nre and t.structure.n_sd != 1:
            raise DataError(
                f"the number of observations ({nobs}) is not larger than the number of random effects "
                f"({nre}) of the term {t.text}: its variance parameters and the residual variance are "
                "not identifiable (lme4 refuses this too)"
            )
    if p >= nobs:
        raise DataError(
            f"the fixed part has {p} columns for {nobs} observations: no residual degrees of freedom are "
            "left to estimate the residual variance"
        )
