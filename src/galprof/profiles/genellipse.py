"""imfit's generalised-ellipse functions: ``Sersic_GenEllipse``, ``Exponential_GenEllipse``
and ``FerrersBar2D``, in imfit's parameterisation (intensities in counts/pixel).

Each is a radial profile of the (generalised) elliptical radius m:

* ``sersic_genellipse`` (imfit ``Sersic_GenEllipse``: PA, ell, c0, n, I_e, r_e):
  I(m) = I_e exp(-b_n [(m / r_e)^(1/n) - 1]), I_e [ADU/pix] the brightness at m = r_e;
* ``exponential_genellipse`` (imfit ``Exponential_GenEllipse``: PA, ell, c0, I_0, h):
  I(m) = I_0 exp(-m / h);
* ``ferrersbar2d`` (imfit ``FerrersBar2D``: PA, ell, c0, n, I_0, a_bar):
  I(m) = I_0 (1 - (m / a_bar)^2)^n for m < a_bar, 0 beyond (GALFIT's ``ferrer`` with
  beta = 0 and alpha = n; galprof's :class:`~galprof.profiles.ferrer.Ferrer` kernels).
  imfit's manual lists I_0 before n; imfit's code (and its configurations in the wild)
  take n before I_0, as here.

The generalised ellipse (Athanassoula et al. 1990) is imfit's and GALFIT's:
m = (|u|^(c0 + 2) + |w|^(c0 + 2))^(1 / (c0 + 2)), u the offset along the major axis and
w = v / q the offset along the minor axis divided by q = 1 - ell; c0 = 0 is the
ellipse, c0 > 0 boxy, c0 < 0 disky. That is exactly GALFIT's C0, so these profiles are
plain radial profiles and ``c0`` is galprof's C0 shape modifier
(:mod:`galprof.profiles.modifiers`): a component whose values include ``c0`` is rendered
through it. ``imfit_order`` lists imfit's parameter order, c0 included.

b_n is the exact root of P(2n, b_n) = 1/2 (:func:`galprof.special.sersic_b`); imfit uses
the Ciotti & Bertin (1999) expansion for n > 0.36 and MacArthur et al. (2003) below,
which differ from the root by < 1e-4 relative for n >= 0.5.

Light inside the ellipse of major-axis radius rho per unit amplitude (c0 = 0; the
modifier rescales it): Sérsic 2 pi q n r_e^2 e^b Gamma(2n) b^(-2n) P(2n, b (rho/r_e)^(1/n));
exponential 2 pi q h^2 [1 - (1 + x) e^(-x)], x = rho / h; Ferrers as GALFIT's ferrer.
A generalised ellipse of unit radius has area 4 q Gamma(1 + 1/c)^2 / Gamma(1 + 2/c),
c = c0 + 2, instead of pi q, which multiplies each total.
"""

from __future__ import annotations

import math

import torch

from ..special import gammainc_lower_regularized, sersic_b
from .base import (
    AXIS_RATIO,
    POSITION_ANGLE,
    POSITION_X,
    POSITION_Y,
    EllipticalProfile,
    ParameterSpec,
    safe_radius,
)
from .ferrer import Ferrer
from .registry import register

_POSITIVE = (0.0, math.inf)

GE_I_E = ParameterSpec("I_e", "ADU/pix", "surface brightness at the effective radius r_e", None, "free", imfit="I_e")
GE_R_E = ParameterSpec("r_e", "pix", "effective (half-light) radius along the major axis (of the ellipse, c0 = 0)",
                       (0.05, 1e4), "log", imfit="r_e", domain=_POSITIVE, is_size=True)
GE_N = ParameterSpec("n", "", "Sérsic index", (0.2, 10.0), "log", imfit="n", domain=_POSITIVE)
GE_I_0 = ParameterSpec("I_0", "ADU/pix", "central surface brightness", None, "free", imfit="I_0")
GE_H = ParameterSpec("h", "pix", "exponential scale length along the major axis", (0.05, 1e4), "log", imfit="h",
                     domain=_POSITIVE, is_size=True)
FB_N = ParameterSpec("n", "", "Ferrers exponent n of (1 - (m / a_bar)^2)^n", (0.05, 10.0), "log", imfit="n",
                     domain=_POSITIVE)
FB_A_BAR = ParameterSpec("a_bar", "pix", "semi-major axis of the bar (I = 0 beyond)", (0.1, 1e4), "log",
                         imfit="a_bar", domain=_POSITIVE, is_size=True)


@register
class SersicGenEllipse(EllipticalProfile):
    """imfit ``Sersic_GenEllipse`` (without ``c0``: imfit's ``Sersic`` in I_e form)."""

    name = "sersic_genellipse"
    description = "Sérsic profile on generalised ellipses (imfit Sersic_GenEllipse): I_e, r_e, n, c0"
    imfit_name = "Sersic_GenEllipse"
    imfit_order = ("PA", "ell", "c0", "n", "I_e", "r_e")
    parameters = (POSITION_X, POSITION_Y, GE_I_E, GE_R_E, GE_N, AXIS_RATIO, POSITION_ANGLE)
    amplitude = "I_e"
    amplitude_kind = "intensity"
    staged = ("n",)

    @staticmethod
    def prepare(params):
        n, r_e, q = params["n"], params["r_e"], params["q"]
        b = sersic_b(n)
        # light per unit I_e: 2 pi q n r_e^2 e^b Gamma(2n) / b^(2n)
        log_total = (math.log(2.0 * math.pi) + torch.log(q * n) + 2.0 * torch.log(r_e) + b + torch.lgamma(2.0 * n)
                     - 2.0 * n * torch.log(b))
        return {"b": b, "n": n, "r_e": r_e, "half_inv_n": 0.5 / n, "log_r_e_over_n": torch.log(r_e) / n,
                "log_total": log_total}

    @staticmethod
    def surface_brightness(rho, derived):
        scaled = derived["b"] * torch.exp(torch.log(safe_radius(rho * rho) / derived["r_e"]) / derived["n"])
        return torch.exp(derived["b"] - scaled)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        tiny = 1e-24 if rho_squared.dtype == torch.float64 else 1e-14
        log_rho2 = torch.log(rho_squared.clamp(min=tiny))
        scaled = derived["b"] * torch.exp(log_rho2 * derived["half_inv_n"] - derived["log_r_e_over_n"])
        return torch.exp(derived["b"] - scaled)

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        x = derived["b"] * torch.exp(torch.log(safe_radius(rho * rho) / derived["r_e"]) / derived["n"])
        return (gammainc_lower_regularized(2.0 * derived["n"], x).to(rho.dtype)) * torch.exp(derived["log_total"])

    @classmethod
    def total_per_amplitude(cls, derived):
        """2 pi q n r_e^2 e^b Gamma(2n) b^(-2n) [pix^2] (the plain ellipse, c0 = 0)."""
        return torch.exp(derived["log_total"])

    @classmethod
    def sersic_equivalent(cls, value):
        """Itself: (r_e, n) (for c0 = 0)."""
        return value("r_e"), value("n")


@register
class ExponentialGenEllipse(EllipticalProfile):
    """imfit ``Exponential_GenEllipse`` (without ``c0``: imfit's ``Exponential``)."""

    name = "exponential_genellipse"
    description = "exponential on generalised ellipses (imfit Exponential_GenEllipse): I_0, h, c0"
    imfit_name = "Exponential_GenEllipse"
    imfit_order = ("PA", "ell", "c0", "I_0", "h")
    parameters = (POSITION_X, POSITION_Y, GE_I_0, GE_H, AXIS_RATIO, POSITION_ANGLE)
    amplitude = "I_0"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        return {"inv_h": 1.0 / params["h"], "h": params["h"]}

    @staticmethod
    def surface_brightness(rho, derived):
        return torch.exp(-rho * derived["inv_h"])

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return torch.exp(-safe_radius(rho_squared) * derived["inv_h"])

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        """2 pi q h^2 [1 - (1 + x) e^(-x)], x = rho / h (written -expm1(-x) - x e^(-x))."""
        x = rho * derived["inv_h"]
        return 2.0 * math.pi * derived["q"] * derived["h"] ** 2 * (-torch.expm1(-x) - x * torch.exp(-x))

    @classmethod
    def total_per_amplitude(cls, derived):
        """2 pi q h^2 [pix^2] (the plain ellipse, c0 = 0)."""
        return 2.0 * math.pi * derived["q"] * derived["h"] ** 2

    @classmethod
    def sersic_equivalent(cls, value):
        """The Sérsic n = 1 with R_e = 1.678347 h."""
        h = value("h")
        return 1.6783469900166608 * h, torch.ones_like(h)


@register
class FerrersBar2D(Ferrer):
    """imfit ``FerrersBar2D``: galprof's Ferrer with beta = 0, alpha = n and an intensity."""

    name = "ferrersbar2d"
    description = "2-D Ferrers bar on generalised ellipses (imfit FerrersBar2D): I_0, n, a_bar, c0"
    imfit_name = "FerrersBar2D"
    galfit_name = None
    imfit_order = ("PA", "ell", "c0", "n", "I_0", "a_bar")
    parameters = (POSITION_X, POSITION_Y, GE_I_0, FB_N, FB_A_BAR, AXIS_RATIO, POSITION_ANGLE)
    amplitude = "I_0"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        n = params["n"]
        return Ferrer.prepare({"r_out": params["a_bar"], "alpha": n, "beta": torch.zeros_like(n)})
