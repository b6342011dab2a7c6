"""Elliptical Gaussian ring, imfit function ``GaussianRing``.

    I(r) = A exp(-(r - R_ring)^2 / (2 sigma_r^2)),

r the elliptical radius (along the major axis) [pix], A [ADU/pix] the brightness on the
ring's ridge r = R_ring, sigma_r [pix] its radial width. The light inside radius rho
(per unit A) has a closed form: with a = (rho - R) / (sqrt(2) sigma), b0 = R / (sqrt(2) sigma),

    E(rho) = 2 pi q { sigma^2 [exp(-b0^2) - exp(-a^2)]
                      + R sigma sqrt(pi/2) [erf(a) + erf(b0)] },

and E(inf) = 2 pi q { sigma^2 exp(-b0^2) + R sigma sqrt(pi/2) [1 + erf(b0)] }. For a < 0,
erf(a) + erf(b0) is evaluated as erfc(-a) - erfc(b0), which does not cancel.

Default bounds: R_ring in (0.05, 1e4), sigma_r in (0.05, 1e4) [pix] (domain: both > 0;
R_ring -> 0 is a plain Gaussian). Rendering a ring much narrower than a pixel
(sigma_r < ~0.7 px) is limited by the renderer's quadrature away from the centre.
"""

from __future__ import annotations

import math

import torch

from .base import (
    AXIS_RATIO,
    POSITION_ANGLE,
    POSITION_X,
    POSITION_Y,
    EllipticalProfile,
    ParameterSpec,
    safe_radius,
)
from .registry import register

GR_A = ParameterSpec("A", "ADU/pix", "surface brightness on the ring's ridge (r = R_ring)", None, "free", imfit="A")
GR_R_RING = ParameterSpec("R_ring", "pix", "radius of the ring along the major axis", (0.05, 1e4), "log",
                          imfit="R_ring", domain=(0.0, math.inf), is_size=True)
GR_SIGMA_R = ParameterSpec("sigma_r", "pix", "Gaussian radial width (sigma) of the ring, along the major axis",
                           (0.05, 1e4), "log", imfit="sigma_r", domain=(0.0, math.inf), is_size=True)

_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@register
class GaussianRing(EllipticalProfile):
    name = "gaussianring"
    description = "elliptical Gaussian ring (imfit GaussianRing): ridge intensity, ring radius and width"
    imfit_name = "GaussianRing"
    galfit_name = None
    parameters = (POSITION_X, POSITION_Y, GR_A, GR_R_RING, GR_SIGMA_R, AXIS_RATIO, POSITION_ANGLE)
    amplitude = "A"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        sigma = params["sigma_r"]
        return {"r_ring": params["R_ring"], "sigma": sigma, "half_inv_var": 0.5 / (sigma * sigma)}

    @staticmethod
    def surface_brightness(rho, derived):
        d = rho - derived["r_ring"]
        return torch.exp(-(d * d) * derived["half_inv_var"])

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return cls.surface_brightness(safe_radius(rho_squared), derived)

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        r_ring, sigma = derived["r_ring"], derived["sigma"]
        a = (rho - r_ring) * (_INV_SQRT2 / sigma)
        b0 = r_ring * (_INV_SQRT2 / sigma)
        erf_sum = torch.where(a < 0, torch.erfc(-a) - torch.erfc(b0), torch.erf(a) + torch.erf(b0))
        value = sigma * sigma * (torch.exp(-b0 * b0) - torch.exp(-a * a)) + r_ring * sigma * _SQRT_HALF_PI * erf_sum
        return 2.0 * math.pi * derived["q"] * value

    @classmethod
    def total_per_amplitude(cls, derived):
        """2 pi q [sigma^2 exp(-R^2 / 2 sigma^2) + R sigma sqrt(pi/2) (1 + erf(R / (sqrt 2 sigma)))]."""
        r_ring, sigma = derived["r_ring"], derived["sigma"]
        b0 = r_ring * (_INV_SQRT2 / sigma)
        value = sigma * sigma * torch.exp(-b0 * b0) + r_ring * sigma * _SQRT_HALF_PI * (2.0 - torch.erfc(b0))
        return 2.0 * math.pi * derived["q"] * value
