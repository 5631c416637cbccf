r"""Student t responses (glmmTMB's ``t_family``): a gaussian model robust to outliers.

:math:`y = \mu + \sigma\varepsilon`, :math:`\varepsilon \sim t_\nu`; with :math:`z = y - \mu`
and :math:`s = \nu\sigma^2 + z^2`,

.. math::
   \ell = \log\Gamma(\tfrac{\nu+1}{2}) - \log\Gamma(\tfrac{\nu}{2}) - \tfrac12\log\pi
   + \tfrac{\nu}{2}\log\nu + \nu\log\sigma - \tfrac{\nu+1}{2}\log s,

:math:`\ell_\mu = (\nu+1)z/s`, :math:`\ell_{\mu\mu} = (\nu+1)(z^2 - \nu\sigma^2)/s^2`,
:math:`\ell_{\mu\mu\mu} = 2(\nu+1)z(z^2 - 3\nu\sigma^2)/s^3`; in :math:`\log\sigma`:
:math:`\nu - (\nu+1)\nu\sigma^2/s`, :math:`-2(\nu+1)\nu\sigma^2 z/s^2`,
:math:`-2(\nu+1)\nu\sigma^2(3z^2 - \nu\sigma^2)/s^3`; in :math:`\log\nu` (ν times the
ν-derivatives): :math:`\ell_\nu = \tfrac12[\psi(\tfrac{\nu+1}{2}) - \psi(\tfrac{\nu}{2}) + \log\nu
+ 1] + \log\sigma - \tfrac12\log s - \tfrac{\nu+1}{2}\sigma^2/s`,
:math:`\partial_\nu\ell_\mu = z(s - (\nu+1)\sigma^2)/s^2`,
:math:`\partial_\nu\ell_{\mu\mu} = (z^2 - \nu\sigma^2 - (\nu+1)\sigma^2)/s^2 - 2(\nu+1)(z^2-\nu\sigma^2)\sigma^2/s^3`.

σ is glmmTMB's ``sigma()`` (the scale, not the SD: Var(y) = σ²ν/(ν − 2) for ν > 2); the
degrees of freedom are estimated on the log scale (``log(df)``; glmmTMB's ``psi``), or held
with ``fixed={"log(df)": np.log(4)}``. As ν → ∞ it is the gaussian (:attr:`limit_family`).
The observed information can be negative for outlying rows (the log-density is not concave in
μ); the Laplace Hessian at the modes is the exact one, as glmmTMB's.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..errors import DataError, ModelError
from .base import Family
from .classic import Gaussian
from .shape import ShapeFamily

__all__ = ["StudentT"]

_psi0 = special.digamma


class StudentT(ShapeFamily):
    name = "t"
    links = ("identity", "log")
    canonical_link = None
    mean_word = "mean"
    dispersion_name = "sigma"
    dispersion_meaning = "scale: y = mu + sigma * t_df (SD = sigma sqrt(df/(df - 2)) for df > 2)"
    shape_name = "df"
    shape_meaning = "degrees of freedom of the t errors (large df: gaussian)"
    shape_param = "log(df)"
    default_shape = 5.0
    limit_family = Gaussian  # df -> infinity
    limit_text = "df -> infinity"

    def shape_from_x(self, x):
        return float(np.exp(x))

    def shape_to_x(self, s):
        return float(np.log(s))

    def loglik_const(self, y, pw):
        return np.zeros_like(np.asarray(y, dtype=float))

    def logpdf_kernel(self, y, mu, d):
        """log Γ((ν+1)/2) - log Γ(ν/2) = ½ log π - B(ν/2, ½) in log-beta form, and log1p: no
        cancellation of large terms when ν is large (the gaussian limit)."""
        nu = self.shape
        r2 = ((y - mu) / d) ** 2
        return -special.betaln(nu / 2, 0.5) - 0.5 * np.log(nu) - np.log(d) - 0.5 * (nu + 1) * np.log1p(r2 / nu)

    def dmu(self, y, mu, d):
        nu = self.shape
        z = y - mu
        s = nu * d * d + z * z
        return ((nu + 1) * z / s, (nu + 1) * (z * z - nu * d * d) / s**2,
                2 * (nu + 1) * z * (z * z - 3 * nu * d * d) / s**3)

    def dextra(self, y, mu, d, nu):
        z = y - mu
        z2 = z * z
        sig2 = d * d
        s = nu * sig2 + z2
        k = (nu + 1) * nu * sig2
        l_sig = nu - k / s
        l1_sig = -2 * k * z / s**2
        l2_sig = -2 * k * (3 * z2 - nu * sig2) / s**3
        l_nu = (0.5 * (_psi0((nu + 1) / 2) - _psi0(nu / 2) + np.log(nu) + 1) + np.log(d) - 0.5 * np.log(s)
                - 0.5 * (nu + 1) * sig2 / s)
        l1_nu = z * (s - (nu + 1) * sig2) / s**2
        l2_nu = (z2 - nu * sig2 - (nu + 1) * sig2) / s**2 - 2 * (nu + 1) * (z2 - nu * sig2) * sig2 / s**3
        return (np.stack(np.broadcast_arrays(l_sig, nu * l_nu), axis=-1),
                np.stack(np.broadcast_arrays(l1_sig, nu * l1_nu), axis=-1),
                np.stack(np.broadcast_arrays(l2_sig, nu * l2_nu), axis=-1))

    def variance_at(self, mu, d):
        """Var(y) = sigma^2 df/(df - 2); infinite for df <= 2 (Pearson residuals are then 0)."""
        nu = self.shape
        v = d * d * nu / (nu - 2) if nu > 2 else np.inf
        return np.full(np.shape(mu), v)

    def dvariance(self, mu):
        return np.zeros_like(np.asarray(mu, dtype=float))

    def saturated_mean(self, y):
        return np.asarray(y, dtype=float)

    def start_mu(self, y, pw):
        return np.asarray(y, dtype=float)

    def start_dispersion(self, y, mu, pw):
        # a robust scale of the GLM residuals: MAD / 0.6745 (outliers are why t is chosen)
        r = np.asarray(y - mu, dtype=float)
        mad = float(np.median(np.abs(r - np.median(r)))) / 0.6745
        return max(mad, 1e-3 * max(float(np.std(r)), 1e-8))

    def check_response(self, y, trials, weights_given, name):
        Family.check_response(self, y, trials, weights_given, name)
        if len(y) and np.ptp(y) == 0:
            raise DataError(f"response '{name}' is constant ({y[0]:g}); there is nothing to model")

    def draw(self, rng, mu, d, size):
        return np.broadcast_to(mu, size) + d * rng.standard_t(self.shape, size=size)

    def simulate(self, rng, mu, trials, scale, size):
        return self.draw(rng, mu, self._d(), size)

    def latent_variance(self, eta_mean, re_var, sigma):
        v = float(self.variance_at(np.zeros(1), self._d())[0])
        if not np.isfinite(v):
            raise ModelError(f"the t errors have df = {self.shape:.3g} <= 2: their variance is infinite, "
                             "so no variance-based ICC or R2 exists")
        return v

    def statsmodels_family(self):
        raise ModelError("GEE has no t family; use family='gaussian' for the GEE")
