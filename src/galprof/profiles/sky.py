"""Sky: a tilted plane, sky + dsdx (x - x_c) + dsdy (y - y_c); GALFIT ``sky``.

(x_c, y_c) is the centre of the fit region (1-based pixels); values in ADU per pixel.
Not convolved with the PSF.
"""

from __future__ import annotations

from .base import ParameterSpec, Profile
from .registry import register

SKY = ParameterSpec("sky", "ADU", "background at the centre of the fit region", None, "free", galfit="1")
DSDX = ParameterSpec("dsdx", "ADU/pix", "sky gradient along x", None, "free", galfit="2")
DSDY = ParameterSpec("dsdy", "ADU/pix", "sky gradient along y", None, "free", galfit="3")


@register
class Sky(Profile):
    name = "sky"
    kind = "sky"
    description = "tilted-plane sky background"
    parameters = (SKY, DSDX, DSDY)
    amplitude = None
    galfit_name = "sky"
    #: each parameter multiplies a basis image: 1, x - x_c or y - y_c
    sky_basis = {"sky": "1", "dsdx": "x", "dsdy": "y"}
    galfit_comments = {
        "1": "Sky background at the centre of the fit region  [ADU]",
        "2": "dsky/dx (sky gradient in x)  [ADU/pix]",
        "3": "dsky/dy (sky gradient in y)  [ADU/pix]",
    }


@register
class FlatSky(Profile):
    """A constant pedestal [ADU/pix] over the whole frame (imfit's FlatSky; imfit
    configurations map FlatSky to ``sky`` with fixed zero gradients)."""

    name = "flatsky"
    kind = "sky"
    description = "constant sky pedestal"
    parameters = (ParameterSpec("sky", "ADU", "constant background level", None, "free"),)
    amplitude = None
    sky_basis = {"sky": "1"}
