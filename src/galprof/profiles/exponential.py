"""Exponential disk: I(r) = I_0 exp(-r / R_s), GALFIT component ``expdisk``.

R_s is the scale length along the major axis [pix] (R_e = 1.678 R_s).
"""

from __future__ import annotations

import math

import torch

from .base import AXIS_RATIO, MAGNITUDE, POSITION_ANGLE, POSITION_X, POSITION_Y, EllipticalProfile, ParameterSpec
from .registry import register

R_S = ParameterSpec("r_s", "pix", "exponential scale length along the major axis", (0.02, 1e4), "log", galfit="4", is_size=True)


@register
class ExponentialDisk(EllipticalProfile):
    name = "expdisk"
    description = "exponential disk, total magnitude and scale length"
    parameters = (POSITION_X, POSITION_Y, MAGNITUDE, R_S, AXIS_RATIO, POSITION_ANGLE)
    galfit_name = "expdisk"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "Integrated magnitude",
        "4": "R_s (disk scale length)  [pix]",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        r_s = params["r_s"]
        return {"r_s": r_s, "log_i0": -torch.log(2.0 * math.pi * params["q"] * r_s**2)}

    @staticmethod
    def surface_brightness(rho, derived):
        return torch.exp(derived["log_i0"] - rho / derived["r_s"])

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        x = rho / derived["r_s"]
        return 1.0 - (1.0 + x) * torch.exp(-x)
