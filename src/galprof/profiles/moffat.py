"""Moffat: I(r) = I_0 (1 + (r / alpha)^2)^(-beta), FWHM = 2 alpha sqrt(2^(1/beta) - 1); GALFIT ``moffat``.

``beta`` is GALFIT's "powerlaw" (line 5); the total flux is finite for beta > 1.
"""

from __future__ import annotations

import math

import torch

from .base import AXIS_RATIO, MAGNITUDE, POSITION_ANGLE, POSITION_X, POSITION_Y, EllipticalProfile, ParameterSpec
from .gaussian import FWHM
from .registry import register

BETA = ParameterSpec("beta", "", "power-law index (GALFIT 'powerlaw')", (1.01, 100.0), "log", galfit="5")


@register
class Moffat(EllipticalProfile):
    name = "moffat"
    description = "elliptical Moffat, total magnitude, FWHM and power-law index"
    parameters = (POSITION_X, POSITION_Y, MAGNITUDE, FWHM, BETA, AXIS_RATIO, POSITION_ANGLE)
    galfit_name = "moffat"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "Integrated magnitude",
        "4": "FWHM  [pix]",
        "5": "Moffat power-law index",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        beta = params["beta"]
        alpha = params["fwhm"] / (2.0 * torch.sqrt(torch.pow(2.0, 1.0 / beta) - 1.0))
        log_i0 = torch.log((beta - 1.0) / (math.pi * params["q"] * alpha**2))
        return {"alpha": alpha, "beta": beta, "log_i0": log_i0}

    @staticmethod
    def surface_brightness(rho, derived):
        return torch.exp(derived["log_i0"] - derived["beta"] * torch.log1p((rho / derived["alpha"]) ** 2))

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return torch.exp(derived["log_i0"] - derived["beta"] * torch.log1p(rho_squared / derived["alpha"] ** 2))

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        return -torch.expm1((1.0 - derived["beta"]) * torch.log1p((rho / derived["alpha"]) ** 2))
