r"""The beta-binomial family (glmmTMB's ``betabinomial``): overdispersed successes out of trials.

With :math:`n` trials, :math:`k` successes, mean proportion :math:`\mu = g^{-1}(\eta)` and
precision :math:`\phi` (:math:`a = \mu\phi`, :math:`b = (1-\mu)\phi`):

.. math::
   \log f(k) = \log\binom{n}{k} + \log\Gamma(k + a) + \log\Gamma(n - k + b) - \log\Gamma(n + \phi)
   - \log\Gamma(a) - \log\Gamma(b) + \log\Gamma(\phi),

:math:`E[k] = n\mu`, :math:`\mathrm{Var}[k] = n\mu(1-\mu)\,(1 + (n-1)/(\phi+1))` (glmmTMB's φ,
``sigma()``). As :math:`\phi\to\infty` it is the binomial (:attr:`limit_family`). Derivatives
(:math:`D_m(x) = \psi^{(m)}(k + a) - \psi^{(m)}(a)`, :math:`E_m = \psi^{(m)}(n-k+b) - \psi^{(m)}(b)`):
:math:`\ell_\mu = \phi(D_0 - E_0)`, :math:`\ell_{\mu\mu} = \phi^2(D_1 + E_1)`,
:math:`\ell_{\mu\mu\mu} = \phi^3(D_2 - E_2)`, and in :math:`\log\phi`:
:math:`\ell_{\log\phi} = \phi[\mu D_0 + (1-\mu)E_0 - \psi(n+\phi) + \psi(\phi)]`,
:math:`\partial\ell_\mu/\partial\log\phi = \ell_\mu + \phi^2(\mu D_1 - (1-\mu)E_1)`,
:math:`\partial\ell_{\mu\mu}/\partial\log\phi = 2\ell_{\mu\mu} + \phi^3(\mu D_2 + (1-\mu)E_2)`.

The response is read as binomial responses are (``cbind(successes, failures)``, or a
proportion with ``weights=`` the trials), so the prior weight of a row *is* its number of
trials; prior weights on top of ``cbind`` trials are refused (they would change the model).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse, special

from ..errors import DataError, ModelError
from .base import Family
from .classic import Binomial
from .dispersion import DispersionFamily, _tri_tetra
from .links import EPS

__all__ = ["BetaBinomial"]

_psi0 = special.digamma


_SMALL = 40  # counts up to this are summed term by term; larger ones use the polygamma functions


class _SumPlan:
    """Differences of log-gamma and polygamma functions at an integer step, for many rows:

    log Γ(x + c) - log Γ(x) = Σ_{i<c} log(x + i),   ψ(x + c) - ψ(x) = Σ 1/(x + i),
    ψ'(x + c) - ψ'(x) = -Σ 1/(x + i)²,   ψ''(x + c) - ψ''(x) = 2 Σ 1/(x + i)³.

    Rows with c ≤ ``_SMALL`` are summed term by term through one sparse (rows × terms) sum
    matrix built once per data set (the terms of all rows side by side: no loop over rows);
    the others use scipy's digamma/log-gamma and the trigamma/tetragamma series. Exact to
    rounding either way; x may have a trailing axis (AGQ nodes).
    """

    def __init__(self, c):
        c = np.asarray(c, dtype=float)
        flat = c.reshape(c.shape[0], -1)[:, 0] if c.ndim > 1 else c
        self.small = flat <= _SMALL
        rows = np.flatnonzero(self.small)
        cnt = flat[rows].astype(np.int64)
        self.rows = np.repeat(rows, cnt)
        self.offs = (np.arange(self.rows.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)).astype(float)
        self.S = sparse.csr_matrix((np.ones(self.rows.size), (self.rows, np.arange(self.rows.size))),
                                   shape=(flat.size, self.rows.size))
        self.big = np.flatnonzero(~self.small)

    def diffs(self, c, x, order: int):
        """(log-gamma difference or None, and the polygamma differences up to ``order`` - 1)."""
        x = np.asarray(x, dtype=float)
        v = x[self.rows] + (self.offs if x.ndim == 1 else self.offs[:, None])
        out = []
        if order == 0:
            out.append(self.S @ np.log(v))
        else:
            out.append(None)
            inv = 1.0 / v
            out.append(self.S @ inv)
            if order > 1:
                inv2 = inv * inv
                out.append(-(self.S @ inv2))
            if order > 2:
                out.append(2.0 * (self.S @ (inv2 * inv)))
        if self.big.size:
            xb = x[self.big]
            cb = np.broadcast_to(np.asarray(c, dtype=float), x.shape)[self.big]
            if order == 0:
                out[0][self.big] = special.gammaln(cb + xb) - special.gammaln(xb)
            else:
                out[1][self.big] = _psi0(cb + xb) - _psi0(xb)
                if order > 1:
                    (t1c, t2c), (t1x, t2x) = _tri_tetra(cb + xb), _tri_tetra(xb)
                    out[2][self.big] = t1c - t1x
                    if order > 2:
                        out[3][self.big] = t2c - t2x
        return out


class BetaBinomial(DispersionFamily):
    name = "betabinomial"
    links = ("logit", "probit", "cloglog")
    canonical_link = None
    reads_cbind = True
    discrete = True
    mean_word = "probability"
    dispersion_name = "phi"
    dispersion_meaning = "precision: Var = n mu (1 - mu) (1 + (n - 1)/(phi + 1)) (larger phi, closer to binomial)"
    limit_family = Binomial  # phi -> infinity
    limit_text = "phi -> infinity"

    def __init__(self, link=None, dispersion: float | None = None):
        super().__init__(link, dispersion)
        self._memo = {}  # counts and finite-sum plans of the last data (shared by at_dispersion copies)

    def __getstate__(self):  # a cache only: not shipped to Dask workers or pickled with a model
        return {**self.__dict__, "_memo": {}}

    @property
    def logistic(self) -> bool:
        return self.link.name == "logit"

    # -- counts from (y, pw): y is the proportion, pw the trials ------------------------------
    def _nk(self, y, pw):
        """Trials n and successes k of the rows (kept for the last (y, pw): PIRLS asks often)."""
        y, pw = np.asarray(y, dtype=float), np.asarray(pw, dtype=float)
        key = (y.__array_interface__["data"][0], y.shape, y.strides, pw.__array_interface__["data"][0], pw.shape)
        memo = self._memo
        if memo.get("nk_key") != key:
            n = np.broadcast_to(pw, np.broadcast_shapes(y.shape, pw.shape))
            k = y * n
            off = np.abs(k - np.round(k)) > 1e-8 * np.maximum(n, 1)
            if np.any(off):  # weights= that are not the trials of the proportions
                raise DataError(f"the betabinomial family needs whole numbers of successes; the response × "
                                f"weights gives {k[off].ravel()[0]:g} in {int(off.sum())} row(s)")
            memo.update(nk_key=key, nk_held=(y, pw), nk=(np.ascontiguousarray(n), np.round(k)))
        return memo["nk"]

    def loglik_const(self, y, pw):
        n, k = self._nk(y, pw)
        return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)

    def _plans(self, k, n):
        """The finite-sum plans of the successes and the failures (cached per data arrays)."""
        key = (k.__array_interface__["data"][0], k.shape, n.__array_interface__["data"][0])
        memo = self._memo
        if memo.get("key") != key:
            memo.update(key=key, held=(k, n), plans=(_SumPlan(k), _SumPlan(n - k)))
        return memo["plans"]

    def _kernel(self, k, n, mu, d):
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        pk, pm = self._plans(k, n)
        return (pk.diffs(k, mu * d, 0)[0] + pm.diffs(n - k, (1 - mu) * d, 0)[0]
                - special.gammaln(n + d) + special.gammaln(d))

    def loglik_kernel(self, y, eta, pw):
        n, k = self._nk(y, pw)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._kernel(k, n, self.link.inverse(eta), self._d())

    def loglik_obs(self, y, mu, pw):
        n, k = self._nk(y, pw)
        return self.loglik_const(y, pw) + self._kernel(k, n, mu, self._d())

    def _polys(self, k, n, mu, d):
        """psi^(m)(k + a) - psi^(m)(a) and psi^(m)(n - k + b) - psi^(m)(b), m = 0, 1, 2."""
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        pk, pm = self._plans(k, n)
        D = pk.diffs(k, mu * d, 3)[1:]
        E = pm.diffs(n - k, (1 - mu) * d, 3)[1:]
        return mu, D, E

    def working(self, eta, y, pw):
        """``mu, r, W, Wobs, dW`` (W = W_obs: the observed information, as glmmTMB)."""
        n, k = self._nk(y, pw)
        d = self._d()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mu, m1, m2, m3 = self._link_derivs(eta)
            _, D, E = self._polys(k, n, mu, d)
        l1, l2, l3 = d * (D[0] - E[0]), d * d * (D[1] + E[1]), d**3 * (D[2] - E[2])
        r = l1 * m1
        Wobs = -(l2 * m1 * m1 + l1 * m2)
        dW = -(l3 * m1**3 + 3 * l2 * m1 * m2 + l1 * m3)
        return mu, r, Wobs, Wobs, dW

    def dispersion_pieces(self, eta, y, pw):
        """(dl/dlog phi, dr/dlog phi, dW_obs/dlog phi) per observation."""
        n, k = self._nk(y, pw)
        d = self._d()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            mu0, m1, m2, _m3 = self._link_derivs(eta)
            mu, D, E = self._polys(k, n, mu0, d)
        lp = d * (mu * D[0] + (1 - mu) * E[0] - _psi0(n + d) + _psi0(d))
        l1 = d * (D[0] - E[0])
        l2 = d * d * (D[1] + E[1])
        l1p = l1 + d * d * (mu * D[1] - (1 - mu) * E[1])
        l2p = 2 * l2 + d**3 * (mu * D[2] + (1 - mu) * E[2])
        return lp, l1p * m1, -(l2p * m1 * m1 + l1p * m2)

    def variance_at(self, mu, d):
        """The variance function of the proportion for one trial, mu(1 - mu) (the GLM start's
        IRLS weight); the response's variance with n trials is :meth:`response_variance`."""
        return mu * (1 - mu)

    def response_variance(self, mu, pw):
        """Var(k/n) = mu (1 - mu) (1 + (n - 1)/(phi + 1)) / n with n = ``pw`` trials."""
        n = np.asarray(pw, dtype=float)
        return mu * (1 - mu) * (1 + (n - 1) / (self._d() + 1)) / np.maximum(n, 1.0)

    def dev_resid(self, y, mu, pw):
        """2 (l(k; mu = y) - l(k; mu)) at the fitted phi."""
        n, k = self._nk(y, pw)
        d = self._d()
        sat = np.clip(np.asarray(y, dtype=float), 1e-10, 1 - 1e-10)
        return 2 * (self._kernel(k, n, sat, d) - self._kernel(k, n, mu, d))

    def start_mu(self, y, pw):
        return (pw * np.asarray(y, dtype=float) + 0.5) / (pw + 1.0)

    def start_dispersion(self, y, mu, pw):
        """Moment estimate: the mean ratio of the squared residual to the binomial variance is
        1 + (n - 1)/(phi + 1)."""
        n = np.asarray(pw, dtype=float)
        ok = n > 1
        if not ok.any():
            return 10.0
        ratio = n[ok] * (y[ok] - mu[ok]) ** 2 / np.maximum(mu[ok] * (1 - mu[ok]), EPS)
        rho = (np.mean(ratio) - 1) / max(np.mean(n[ok] - 1), 1e-8)  # intra-class correlation 1/(phi+1)
        return float(np.clip(1 / max(rho, 1e-3) - 1, 0.5, 1e3))

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        bad = (y < 0) | (y > 1)
        if np.any(bad):
            raise DataError(f"response '{name}' must lie in [0, 1] for the betabinomial family "
                            f"(a proportion with weights=trials, or cbind(successes, failures)); found {y[bad][0]:g}")
        n = np.asarray(trials, dtype=float)
        k = np.asarray(y, dtype=float) * n
        bad = (np.abs(n - np.round(n)) > 1e-8) | (np.abs(k - np.round(k)) > 1e-8 * np.maximum(n, 1))
        if np.any(bad) and not weights_given:
            raise DataError(f"response '{name}' has {int(bad.sum())} row(s) with non-integer successes or trials "
                            f"(e.g. {k[bad][0]:g} of {n[bad][0]:g}); the beta-binomial needs whole counts")
        if weights_given and np.any(np.asarray(trials) != 1):
            raise DataError(
                f"the betabinomial family reads the trials from '{name}'; prior weights on top of them "
                "are not supported (drop weights=, or give a proportion with weights= the trials)"
            )
        if len(trials) and np.all(np.asarray(trials) <= 1) and not weights_given:
            raise DataError(
                f"response '{name}' has one trial per row: a beta-binomial with one trial is a Bernoulli "
                "and its phi is not identified; use family='binomial', or give cbind(successes, failures)"
            )

    def observed(self, y, pw):
        return Binomial.observed(self, y, pw)

    def draw(self, rng, mu, d, size, trials):
        mu = np.clip(np.broadcast_to(mu, size), 1e-12, 1 - 1e-12)
        n = np.broadcast_to(np.round(np.asarray(trials)).astype(np.int64)[:, None], size)
        return rng.binomial(n, rng.beta(mu * d, (1 - mu) * d)).astype(float)

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size, trials)

    def to_mean_scale(self, sims, trials):
        return Binomial.to_mean_scale(self, sims, trials)

    def latent_variance(self, eta_mean, re_var, sigma):
        """The binomial's link-scale variance (pi^2/3 for logit) plus the beta part's by the delta
        method, 1/(mu(1 - mu)(1 + phi)) — the observation-level variance of the latent scale."""
        base = {"logit": np.pi**2 / 3, "probit": 1.0, "cloglog": np.pi**2 / 6}[self.link.name]
        mu = float(self.link.inverse(np.asarray(eta_mean)))
        me = float(self.link.mu_eta(np.asarray(eta_mean)))
        return float(base + mu * (1 - mu) / ((1 + self._d()) * me * me))

    def statsmodels_family(self):
        raise ModelError("GEE has no beta-binomial family; use family='binomial' for the GEE")
