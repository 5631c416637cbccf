r"""Response families and link functions — families are objects the rest of the package asks.

A link maps the mean to the linear predictor, :math:`\eta = g(\mu)`; the fitting core needs
its inverse :math:`\mu(\eta)` and the first two derivatives :math:`\mu'(\eta)`,
:math:`\mu''(\eta)`. A family supplies the variance function :math:`V(\mu)`, its derivative,
and the log-density *with every normalising constant* (so that log-likelihoods are comparable
with lme4's ``logLik``), plus everything downstream code needs to know about the distribution:
how the response is read and checked, simulation, the randomized-quantile CDF for scaled
residuals, the distribution-specific variance for ICC/R², and words for reports.

With prior weights :math:`w` (binomial: number of trials) the per-observation pieces used by
PIRLS and by the analytic gradient are

* score :math:`r = w (y - \mu) \mu' / V`,
* Fisher weight :math:`W = w \mu'^2 / V` (lme4's IRLS weight, used in the Laplace log-determinant),
* observed weight :math:`W_{obs} = -\partial r/\partial\eta` (equal to ``W`` for canonical links),
* :math:`\partial W/\partial\eta`.

Adding a family is one subclass of :class:`Family` and one :func:`register_family` call; no
other module compares family names.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError, ModelError
from .kernel import Kernel, ResponseData
from .links import LINKS, Link

__all__ = ["Family"]


class Family:
    """A response distribution with a link. Subclasses set the class attributes and override
    the distribution's methods; :class:`Family` itself holds the generic GLM algebra.

    Class attributes
    ----------------
    name : str
        Registry name (``"binomial"``).
    links : tuple of str
        Allowed link names; the first is the default (canonical where there is one).
    canonical_link : str or None
        The canonical link (its Fisher and observed weights coincide).
    profiled_lmm : bool
        Fitted exactly as a linear mixed model with the residual SD profiled out (gaussian).
    reads_cbind : bool
        Accepts ``cbind(successes, failures)`` and two-level factor responses.
    discrete : bool
        Integer-valued response (scaled residuals are randomized).
    count_like : bool
        An unbounded count (Poisson, negative binomial): the zero-inflation test and the
        zero-inflated / hurdle variants apply (not to binomial successes out of trials).
    mean_word : str
        What the mean is called in reports ("probability", "rate", "mean").
    ordinal : bool
        A cumulative-link model of an ordered categorical response: the response is read as
        ordered categories (``spec.levels``), thresholds replace the intercept and are the
        extra parameters, predictions are category probabilities.
    """

    name = "family"
    n_dispersion = 0
    observed_laplace = False
    dispersion = None
    dispersion_name = ""
    dispersion_meaning = ""
    links: tuple[str, ...] = ()
    limit_family: type | None = None  # the family this one reduces to on its dispersion's boundary
    limit_text = ""  # which boundary, in words ("phi -> infinity"), for the LRT's wording
    overdispersed_alternative: str | None = None  # what to refit when residuals are overdispersed
    canonical_link: str | None = None
    profiled_lmm = False
    reads_cbind = False
    discrete = False
    count_like = False
    ordinal = False
    mean_word = "mean"

    def __init__(self, link: str | Link | None = None):
        if isinstance(link, Link):
            self.link = link
        else:
            name = link or self.links[0]
            if not isinstance(name, str) or name not in self.links:
                raise ModelError(
                    f"link {name!r} is not available for the {self.name} family; "
                    f"choose one of {', '.join(map(repr, self.links))}"
                )
            self.link = LINKS[name]()
        self.canonical = self.link.name == self.canonical_link

    # -- identity ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Family({self.name!r}, link={self.link.name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Family) and type(self) is type(other) and self.link.name == other.link.name

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link.name))

    @property
    def is_default_link(self) -> bool:
        return self.link.name == self.links[0]

    def at_dispersion(self, d: float) -> "Family":
        """The family at a dispersion value (families without one: itself)."""
        return self

    @property
    def dispersion_names(self) -> tuple[str, ...]:
        """Names of the family parameters estimated beside beta (``m.dispersion``'s index):
        the dispersion, then any shape parameter (t's df, Tweedie's power)."""
        return (self.dispersion_name,) if self.n_dispersion else ()

    @property
    def dispersion_meanings(self) -> tuple[str, ...]:
        """What each of :attr:`dispersion_names` means, in words."""
        return (self.dispersion_meaning,) if self.n_dispersion else ()

    # -- parameters beyond (theta, beta): a dispersion, a zero part ---------------------------
    def n_extra(self, spec) -> int:
        """How many parameters the family adds after beta for this design."""
        return 0

    def extra_names(self, spec) -> list[str]:
        return []

    def at_extra(self, x, spec) -> "Family":
        """The family at extra-parameter values ``x`` (optimizer scale)."""
        return self

    def extra_start(self, y, mu, pw, spec) -> np.ndarray:
        return np.zeros(0)

    has_zero_part = False
    has_disp_model = False  # a dispformula: the dispersion differs by row (see .dispmodel)

    def overdispersed_alternative_for(self, spec) -> str | None:
        """The family to suggest when this model's residuals are overdispersed, given its data
        (:attr:`overdispersed_alternative` unless the data rule it out)."""
        return self.overdispersed_alternative

    def nests(self, other: "Family") -> bool:
        """``other`` is this family at the boundary of its dispersion (Poisson inside NB)."""
        return (self.limit_family is not None and other.link.name == self.link.name
                and type(other) is self.limit_family)

    def dispersion_at_limit(self, psi: float) -> bool:
        """Whether the optimizer's dispersion parameter ``psi`` has run to the limit where this
        family is its ``limit_family`` (NB2 theta -> infinity, NB1 alpha -> 0): there the
        likelihood is flat in psi and psi is no free parameter of the fit."""
        return False

    def mean(self, mu):
        """E[y] given the count/mean part's mu (a zero part changes it)."""
        return mu

    @property
    def start_family(self) -> "Family":
        """The family whose GLM gives the fixed-effect start values (a zero-inflated family:
        its count part)."""
        return self

    def extra_pieces(self, eta, y, pw):  # pragma: no cover - families without extras
        """Per observation and extra parameter (shape ``eta.shape + (k,)``): d log-density,
        d score, d observed weight — what the Laplace gradient needs for the extras."""
        raise NotImplementedError

    # -- variance function and log-density ---------------------------------------------------
    def variance(self, mu):  # pragma: no cover - abstract
        raise NotImplementedError

    def dvariance(self, mu):  # pragma: no cover - abstract
        raise NotImplementedError

    def response_variance(self, mu, pw):
        """Var(y) of a row with prior weight ``pw`` (scale 1): V(mu)/pw — the Pearson
        residual's denominator. Families whose variance is not of that form override it."""
        return self.variance(mu) / np.asarray(pw, dtype=float)

    def loglik_obs(self, y, mu, pw):
        """Per-observation log-density with all constants (at dispersion 1)."""
        return self.loglik_const(y, pw) + self.loglik_kernel(y, self.link.link(mu), pw)

    def loglik_const(self, y, pw):  # pragma: no cover - abstract
        """The part of the log-density that does not depend on the mean (computed once)."""
        raise NotImplementedError

    def loglik_kernel(self, y, eta, pw):  # pragma: no cover - abstract
        """Log-density minus :meth:`loglik_const`, as a function of the linear predictor."""
        raise NotImplementedError

    def dev_resid(self, y, mu, pw):  # pragma: no cover - abstract
        """Squared deviance residuals (R's ``dev.resids``)."""
        raise NotImplementedError

    # -- pieces for PIRLS and the gradient -----------------------------------------------------
    def kernel(self, data: ResponseData) -> Kernel:
        """This family (at its dispersion) bound to one response: the log-likelihood and the
        working pieces as PIRLS evaluates them, with everything that does not depend on the
        linear predictor computed once (:mod:`.kernel`). The generic kernel calls
        :meth:`loglik_kernel`, :meth:`working` and :meth:`extra_pieces`."""
        return Kernel(self, data)

    def working(self, eta, y, pw):
        """Return ``mu, r, W, Wobs, dW`` (see the module docstring)."""
        link = self.link
        mu = link.inverse(eta)
        me = link.mu_eta(eta)
        v = self.variance(mu)
        g = me / v
        r = pw * (y - mu) * g
        W = pw * me * g
        me2 = link.mu_eta2(eta)
        if self.canonical:
            Wobs = W
        else:
            dg = (me2 * v - me * self.dvariance(mu) * me) / (v * v)
            Wobs = W - pw * (y - mu) * dg
        dW = pw * (2 * me * me2 * v - me * me * self.dvariance(mu) * me) / (v * v)
        return mu, r, W, Wobs, dW

    def start_mu(self, y, pw):  # pragma: no cover - abstract
        """Starting means as R's ``family$initialize``."""
        raise NotImplementedError

    # -- the response ---------------------------------------------------------------------------
    def check_response(self, y, trials, weights_given: bool, name: str) -> None:
        """Raise :class:`DataError` (or warn) when ``y`` is outside the family's support."""
        if not np.all(np.isfinite(y)):
            raise DataError(f"response '{name}' has infinite values")

    def observed(self, y, pw):
        """The response on the scale :meth:`simulate` draws (binomial: counts of successes)."""
        return np.asarray(y, dtype=float)

    def simulate(self, rng, mu, trials, scale: float, size: tuple) -> np.ndarray:  # pragma: no cover
        """Draw responses with mean ``mu`` (broadcast to ``size``)."""
        raise NotImplementedError

    def simulate_from_eta(self, rng, eta, trials, scale: float, size: tuple) -> np.ndarray:
        """Draw responses given the linear predictor (default: :meth:`simulate` at its mean)."""
        return self.simulate(rng, self.link.inverse(eta), trials, scale, size)

    def to_mean_scale(self, sims, trials):
        """Simulated responses (as :meth:`simulate` returns them) on the scale of ``spec.y``."""
        return sims

    # -- interpretation --------------------------------------------------------------------------
    def latent_variance(self, eta_mean: float, re_var: float, sigma: float) -> float:  # pragma: no cover
        """Distribution-specific variance on the latent (link) scale, for ICC and R²."""
        raise NotImplementedError

    @property
    def logistic(self) -> bool:
        """A Bernoulli/binomial (or cumulative) model with the logit link (latent logistic
        scale: the median odds ratio and Zeger's attenuation formula apply)."""
        return False

    @property
    def ratio_name(self) -> str | None:
        """What exp(coefficient) is ("odds ratio", "rate ratio") — None when not a ratio."""
        return {"logit": "odds ratio", "log": "rate ratio"}.get(self.link.name)

    @property
    def difference_word(self) -> str:
        """Name of the mean in effect contrasts ("risk", "rate", "mean")."""
        return {"probability": "risk"}.get(self.mean_word, self.mean_word)

    def statsmodels_family(self):  # pragma: no cover - abstract
        """The matching statsmodels GLM family (for GEE)."""
        raise NotImplementedError

    def _sm_link(self):
        import statsmodels.api as sm

        links = {"logit": sm.families.links.Logit, "probit": sm.families.links.Probit,
                 "cloglog": sm.families.links.CLogLog, "log": sm.families.links.Log,
                 "identity": sm.families.links.Identity, "inverse": sm.families.links.InversePower}
        if self.link.name not in links:
            raise ModelError(f"GEE has no {self.link.name} link")
        return links[self.link.name]()

