"""Exponential disk: I(r) = I_0 exp(-r / R_s), GALFIT component ``expdisk``.

R_s is the scale length along the major axis [pix] (R_e = 1.678 R_s).
"""

from __future__ import annotations

import math

import torch

from ..special import sersic_b
from .base import (AXIS_RATIO, MAGNITUDE, POSITION_ANGLE, POSITION_X, POSITION_Y, EllipticalProfile, ParameterSpec,
                   safe_radius)
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
    def sersic_equivalent(cls, value):
        """A Sérsic of n = 1 with R_e = b_1 R_s (1.678 R_s)."""
        n = torch.ones_like(value("r_s"))
        return value("r_s") * sersic_b(n), n

    @classmethod
    def brightness_tangents(cls, rho_squared, derived, tangents):
        """ln I = log_i0 - rho / R_s: d ln I / d rho^2 = -1 / (2 rho R_s), and at fixed
        rho d ln I = d log_i0 + rho d R_s / R_s^2 (q moves only log_i0, PA nothing)."""
        rho = safe_radius(rho_squared)
        r_s = derived["r_s"]
        value = torch.exp(derived["log_i0"] - rho / r_s)
        dlog_drho2 = -0.5 / (rho * r_s)
        out = []
        for name, d in tangents:
            if name == "pa":
                out.append(None)
            elif name == "q":
                out.append(d["log_i0"])
            else:
                out.append(d["log_i0"] + rho * (d["r_s"] / (r_s * r_s)))
        return value, dlog_drho2, out

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        x = rho / derived["r_s"]
        return 1.0 - (1.0 + x) * torch.exp(-x)
