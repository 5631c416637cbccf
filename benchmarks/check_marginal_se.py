"""Delta-method standard errors of the marginal (population-averaged) coefficients against a
parametric bootstrap, for a Poisson GLMM with a correlated random slope.

    python benchmarks/check_marginal_se.py --clusters 50 --slope-sd 0.5 --reps 1000 --seed 7

simulates ``y ~ treat + x + (1 + x | g)`` (8 rows per cluster), fits it, refits it to ``--reps``
responses simulated from the fit, and prints the delta-method SE of each marginal coefficient
beside the standard deviation of the refits' marginal coefficients. Not part of the test suite
(each run is minutes). Measured on 2026-12-07 (B = 1,000): 50 clusters, slope SD 0.5 — ratios
0.99 / 1.03 / 1.02 (intercept / treat / x); 30 clusters, slope SD 0.8 — 1.06 / 0.92 / 1.04, the
same small-sample spread as the conditional Wald SEs. The Monte-Carlo error of a bootstrap SD
is about 2.2 % at B = 1,000 (7 % at B = 200).
"""

import argparse
import warnings

import numpy as np
import pandas as pd

import glmm_nb
from glmm_nb.pipeline import refit


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--slope-sd", type=float, default=0.5)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(a.seed)
    G, n = a.clusters, 8
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    treat = rng.integers(0, 2, G * n)
    eta = 0.3 + 0.5 * treat + 0.4 * x + rng.normal(0, 0.7, G)[g] + rng.normal(0, a.slope_sd, G)[g] * x
    df = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "treat": treat, "x": x, "g": [f"g{i}" for i in g]})
    m = glmm_nb.glmm("y ~ treat + x + (1 + x | g)", df, family="poisson")
    mc = m.marginal_coefs()
    sims = m.simulate(nsim=a.reps, seed=a.seed + 1)
    est = np.array([refit(m, y=sims[:, k]).marginal_coefs().estimate.to_numpy() for k in range(a.reps)])
    sd = est.std(axis=0, ddof=1)
    print(pd.DataFrame({"delta_se": mc.std_error, "bootstrap_sd": sd, "ratio": mc.std_error / sd,
                        "mc_error_of_sd": sd / np.sqrt(2 * (a.reps - 1))}, index=mc.index).to_string())


if __name__ == "__main__":
    main()
