"""The optimizer at the edges (issue 16): a variance that L-BFGS-B leaves on its bound while the
deviance decreases inside is found (lme4's restart_edge), and a factorization failing at an
extreme trial point of the line search is a large deviance, not a traceback."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

import glmm_nb
from glmm_nb.optimize import minimize_devfun, restart_edge
from glmm_nb.pipeline import make_devfun


@pytest.fixture(scope="module")
def crossed():
    rng = np.random.default_rng(3)
    n, J = 200, 40
    d = pd.DataFrame({"g": np.arange(n) % J, "h": rng.integers(0, J, n), "k": rng.integers(0, J, n)})
    for _ in range(4):
        y = rng.normal(size=J)[d.g.to_numpy()] * 0.7 + rng.normal(size=n)
    d["y"] = y
    return d


def test_a_variance_is_not_left_on_its_bound(crossed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = glmm_nb.glmm("y ~ 1 + (1 | g) + (1 | h)", crossed, family="gaussian", reml=False)
        m2 = glmm_nb.glmm("y ~ 1 + (1 | g) + (1 | h) + (1 | k)", crossed, family="gaussian", reml=False)
    assert m2.loglik >= m1.loglik - 1e-6  # m2 contains m1 (k's variance 0)
    # the optimum against Nelder-Mead from several starts on the same deviance
    dev = make_devfun(m2.request)
    best = min((optimize.minimize(lambda t: dev(np.abs(t)), x0, method="Nelder-Mead",
                                  options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000}).fun
                for x0 in ([1, 1, 1], [0.8, 0.2, 0.2], [0.5, 0.5, 0.01])))
    assert -2 * m2.loglik == pytest.approx(best, abs=1e-6)
    assert m2.theta[2] > 0.05  # the variance the first run left at 0


def test_restart_edge_probes_inside_a_flat_bound():
    # f depends on x[1] only through x[1]**2 near 0 (like theta): zero derivative on the bound
    def f(x):
        return (x[0] - 1) ** 2 + (x[1] ** 2 - 0.25) ** 2

    runs = []

    def run(x0):
        runs.append(np.array(x0))
        return minimize_devfun(f, x0, np.array([-np.inf, 0.0]), jac=False)

    opt = run(np.array([0.0, 0.0]))
    assert opt.final[1] == pytest.approx(0.0, abs=1e-8)  # stuck on the bound
    fixed = restart_edge(f, run, opt, np.array([-np.inf, 0.0]))
    assert fixed.final[1] == pytest.approx(0.5, abs=1e-5) and fixed.objective < opt.objective
    assert any("restart_edge" in msg for msg in fixed.messages)


def test_failed_factorization_is_a_large_deviance():
    def f(x):
        if abs(x[0]) > 5:
            raise np.linalg.LinAlgError("not positive definite")
        return (x[0] - 2) ** 2 + 1

    opt = minimize_devfun(f, np.array([40.0 - 36]), np.array([-np.inf]), jac=False)
    assert opt.final[0] == pytest.approx(2.0, abs=1e-5)

    def fg(x):
        if abs(x[0]) > 5:
            raise np.linalg.LinAlgError("not positive definite")
        return (x[0] - 2) ** 2 + 1, np.array([2 * (x[0] - 2)])

    opt = minimize_devfun(fg, np.array([4.5]), np.array([-np.inf]), scale=np.array([0.01]))
    assert opt.final[0] == pytest.approx(2.0, abs=1e-5)


def test_refit_with_every_parameter_held_is_an_evaluation():
    """refit(fixed=) of every optimizer parameter at the estimates returns the same fit, without
    calling the optimizer (scipy's L-BFGS-B has no free variable to move)."""
    import warnings

    import glmm_nb
    from glmm_nb.request import parameter_names

    cbpp = glmm_nb.datasets.load("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = glmm_nb.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
        held = dict(zip(parameter_names(m.request), list(m.theta) + list(m.fixef)))
        r = m.refit(fixed=held)
        off = m.refit(fixed={**held, "period[T.2]": held["period[T.2]"] + 0.5})
    assert r.loglik == pytest.approx(m.loglik, abs=1e-9) and r.opt.iterations == 0 and r.converged
    assert "held fixed" in r.opt.messages[0]
    assert off.loglik < m.loglik - 0.01  # a different point: a lower log-likelihood, as evaluated
    assert off.fixef["period[T.2]"] == held["period[T.2]"] + 0.5
