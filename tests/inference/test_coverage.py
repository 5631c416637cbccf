"""Coverage of 95 % Wald and profile intervals for a fixed effect, by simulation.

Design: logistic random intercept, 40 clusters of 10, sigma = 1, slope 0.5 on a
within-cluster covariate; NSIM data sets (seeded). With NSIM = 300 the Monte Carlo SE of a
95 % coverage is 1.26 %; the test accepts coverage within 3 SE of 0.95.
"""

import warnings

import numpy as np
import pandas as pd
from scipy import special

import glmm_nb
from glmm_nb.inference.profile import profile_confint

NSIM = 300


def test_wald_and_profile_coverage():
    rng = np.random.default_rng(2026)
    J, m, beta = 40, 10, 0.5
    hits_w = hits_p = 0
    for _ in range(NSIM):
        g = np.repeat(np.arange(J), m)
        x = rng.normal(size=J * m)
        eta = -0.2 + beta * x + rng.normal(size=J)[g]
        df = pd.DataFrame({"y": (rng.random(J * m) < special.expit(eta)).astype(int), "x": x, "g": g})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = glmm_nb.glmm("y ~ x + (1 | g)", df)
        w = fit.coef_table().loc["x"]
        hits_w += w.conf_low <= beta <= w.conf_high
        p = profile_confint(fit, parm=["x"]).loc["x"]
        hits_p += p.conf_low <= beta <= p.conf_high
    se = np.sqrt(0.95 * 0.05 / NSIM)
    cov_w, cov_p = hits_w / NSIM, hits_p / NSIM
    print(f"coverage over {NSIM} data sets: Wald {cov_w:.3f}, profile {cov_p:.3f} (MC SE {se:.3f})")
    assert abs(cov_w - 0.95) < 3 * se
    assert abs(cov_p - 0.95) < 3 * se
