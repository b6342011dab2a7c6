"""Point source: the PSF scaled to a total magnitude and shifted to (x, y); GALFIT ``psf``.

Needs a PSF image; it is placed by interpolating the PSF to the sub-pixel position.
"""

from __future__ import annotations

from .base import MAGNITUDE, POSITION_X, POSITION_Y, Profile
from .registry import register


@register
class PointSource(Profile):
    name = "psf"
    kind = "point"
    description = "point source (scaled PSF)"
    parameters = (POSITION_X, POSITION_Y, MAGNITUDE)
    galfit_name = "psf"
    galfit_comments = {"1": "Position x, y  [pixel, 1-based]", "3": "Integrated magnitude"}

    @classmethod
    def sersic_equivalent(cls, value):
        """None: all the light at the centre."""
        return None
