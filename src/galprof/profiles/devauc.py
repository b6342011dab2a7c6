"""de Vaucouleurs profile: a Sérsic profile with n fixed at 4, GALFIT component ``devauc``."""

from __future__ import annotations

import torch

from .base import AXIS_RATIO, MAGNITUDE, POSITION_ANGLE, POSITION_X, POSITION_Y, EllipticalProfile
from .registry import register
from .sersic import R_E, Sersic, sersic_derived


@register
class DeVaucouleurs(EllipticalProfile):
    name = "devauc"
    description = "de Vaucouleurs (Sérsic n = 4) profile"
    parameters = (POSITION_X, POSITION_Y, MAGNITUDE, R_E, AXIS_RATIO, POSITION_ANGLE)
    galfit_name = "devauc"
    galfit_comments = {key: text for key, text in Sersic.galfit_comments.items() if key != "5"}

    @staticmethod
    def prepare(params):
        n = torch.full_like(params["r_e"], 4.0)
        return sersic_derived(params["r_e"], n, params["q"])

    @classmethod
    def sersic_equivalent(cls, value):
        """(R_e, 4)."""
        r_e = value("r_e")
        return r_e, torch.full_like(r_e, 4.0)

    surface_brightness = Sersic.surface_brightness
    surface_brightness_squared = classmethod(Sersic.surface_brightness_squared.__func__)
    enclosed_fraction = classmethod(Sersic.enclosed_fraction.__func__)
    brightness_tangents = classmethod(Sersic.brightness_tangents.__func__)
