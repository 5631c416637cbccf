r"""Families with a dispersion and a shape parameter, both estimated (glmmTMB's ``sigma`` and
``psi``): Student t (σ, degrees of freedom) and Tweedie (φ, power).

The optimizer's extra parameters are :math:`x_1 = \log d` (the dispersion) and
:math:`x_2 = s(\kappa)`, the shape :math:`\kappa` on an unbounded scale chosen by the subclass
(t: :math:`\log\nu`; Tweedie: :math:`\mathrm{logit}(p - 1)`, glmmTMB's). A subclass gives the
log-density, its first three μ-derivatives (:meth:`dmu`) and, for each extra parameter, the
derivatives of :math:`\ell, \ell_\mu, \ell_{\mu\mu}` in it (:meth:`dextra`, each with a trailing
axis of 2); the chain rule to the linear predictor is :class:`~.dispersion.DispersionFamily`'s.
A shape held at a known value is ``fixed={"log(df)": np.log(4)}`` (any extra parameter's name).
"""

from __future__ import annotations

import copy

import numpy as np

from .dispersion import DispersionFamily

__all__ = ["ShapeFamily"]


class ShapeFamily(DispersionFamily):
    """A :class:`DispersionFamily` with a second, shape parameter ``self.shape``."""

    n_dispersion = 2
    shape_name = "shape"
    shape_meaning = ""
    shape_param = "shape"  # the optimizer-scale name (``extra_names``)
    default_shape = 1.0

    def __init__(self, link=None, dispersion: float | None = None, shape: float | None = None):
        super().__init__(link, dispersion)
        self.shape = self.default_shape if shape is None else float(shape)

    def __repr__(self) -> str:
        d = "" if self.dispersion is None else f", {self.dispersion_name}={self.dispersion:.4g}"
        return f"Family({self.name!r}, link={self.link.name!r}{d}, {self.shape_name}={self.shape:.4g})"

    @property
    def dispersion_names(self) -> tuple[str, ...]:
        return (self.dispersion_name, self.shape_name)

    @property
    def dispersion_meanings(self) -> tuple[str, ...]:
        return (self.dispersion_meaning, self.shape_meaning)

    # -- the shape's scale (subclasses) ---------------------------------------------------------
    def shape_from_x(self, x: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def shape_to_x(self, s: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def dextra(self, y, mu, d, s):  # pragma: no cover - abstract
        """(l_x, l_mu_x, l_mumu_x), each (..., 2): derivatives in (log d, x_shape)."""
        raise NotImplementedError

    def start_shape(self, y, mu, pw) -> float:
        return self.default_shape

    # -- the extra parameters -------------------------------------------------------------------
    def at_shape(self, s: float) -> "ShapeFamily":
        out = copy.copy(self)
        out.shape = float(s)
        return out

    def to_dispersion(self, psi: float, k: int = 0) -> float:
        return float(np.exp(psi)) if k == 0 else self.shape_from_x(float(psi))

    def from_dispersion(self, d: float, k: int = 0) -> float:
        return float(np.log(d)) if k == 0 else self.shape_to_x(float(d))

    def extra_names(self, spec) -> list[str]:
        return [f"log({self.dispersion_name})", self.shape_param]

    def n_extra(self, spec) -> int:
        return 2

    def at_extra(self, x, spec) -> "ShapeFamily":
        x = np.asarray(x, dtype=float)
        out = self.at_dispersion(float(np.exp(x[0])))
        out.shape = self.shape_from_x(float(x[1]))
        return out

    def extra_start(self, y, mu, pw, spec) -> np.ndarray:
        return np.array([np.log(self.start_dispersion(y, mu, pw)), self.shape_to_x(self.start_shape(y, mu, pw))])

    def extra_pieces(self, eta, y, pw):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            _mu, m1, m2, _m3 = self._link_derivs(eta)
            lx, l1x, l2x = self.dextra(y, _mu, self._d(), self.shape)
        w = np.asarray(pw, dtype=float)[..., None]
        m1, m2 = m1[..., None], m2[..., None]
        return w * lx, w * l1x * m1, -w * (l2x * m1 * m1 + l1x * m2)

    def dpsi(self, y, mu, d):
        lx, l1x, l2x = self.dextra(y, mu, d, self.shape)
        return lx[..., 0], l1x[..., 0], l2x[..., 0]
