"""Sky: a tilted plane, sky + dsdx (x - x_c) + dsdy (y - y_c); GALFIT ``sky``.

(x_c, y_c) is the centre of the fit region (1-based pixels); values in ADU per pixel.
Not convolved with the PSF.
"""

from __future__ import annotations

from .base import ParameterSpec, Profile
from .registry import register

SKY = ParameterSpec("sky", "ADU", "background at the centre of the fit region", None, "free")
DSDX = ParameterSpec("dsdx", "ADU/pix", "sky gradient along x", None, "free")
DSDY = ParameterSpec("dsdy", "ADU/pix", "sky gradient along y", None, "free")


@register
class Sky(Profile):
    name = "sky"
    kind = "sky"
    description = "tilted-plane sky background"
    parameters = (SKY, DSDX, DSDY)
