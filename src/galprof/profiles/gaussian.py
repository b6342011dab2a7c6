"""Gaussian: I(r) = I_0 exp(-r^2 / (2 sigma^2)), FWHM = 2 sqrt(2 ln 2) sigma; GALFIT ``gaussian``."""

from __future__ import annotations

import math

import torch

from .base import AXIS_RATIO, MAGNITUDE, POSITION_ANGLE, POSITION_X, POSITION_Y, EllipticalProfile, ParameterSpec
from .registry import register

FWHM = ParameterSpec("fwhm", "pix", "full width at half maximum along the major axis", (0.02, 1e4), "log", galfit="4", is_size=True)
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@register
class Gaussian(EllipticalProfile):
    name = "gaussian"
    description = "elliptical Gaussian, total magnitude and FWHM"
    parameters = (POSITION_X, POSITION_Y, MAGNITUDE, FWHM, AXIS_RATIO, POSITION_ANGLE)
    galfit_name = "gaussian"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "Integrated magnitude",
        "4": "FWHM  [pix]",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        sigma = params["fwhm"] / FWHM_PER_SIGMA
        return {"sigma": sigma, "log_i0": -torch.log(2.0 * math.pi * params["q"] * sigma**2)}

    @staticmethod
    def surface_brightness(rho, derived):
        return torch.exp(derived["log_i0"] - 0.5 * (rho / derived["sigma"]) ** 2)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return torch.exp(derived["log_i0"] - rho_squared * (0.5 / derived["sigma"] ** 2))

    @classmethod
    def sersic_equivalent(cls, value):
        """A Sérsic of n = 1/2 with R_e = FWHM / 2 (the half-light radius of a Gaussian)."""
        return value("fwhm") / 2.0, torch.full_like(value("fwhm"), 0.5)

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        return -torch.expm1(-0.5 * (rho / derived["sigma"]) ** 2)
