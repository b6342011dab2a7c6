"""GALFITM's ``corser`` component: the core-Sérsic profile of :mod:`.coresersic` with
GALFITM's feedme lines and a surface-brightness amplitude.

GALFITM (MegaMorph) writes it as

    0) corser
    1) x y      position [pix, 1-based]
    3) mu(R_b)  surface brightness at the break radius [mag/arcsec^2]
    4) R_b      break radius [pix, major axis]
    5) alpha    sharpness of the transition
    6) gamma    inner power-law slope
    7) R_e      effective radius of the outer Sérsic profile [pix, major axis]
    8) n        Sérsic index
    9) q, 10) PA, C0) ...  as for every radial component

The functional form is Graham et al. (2003) / Trujillo et al. (2004), normalised so that
the brightness at r = R_b is the amplitude (see :class:`galprof.profiles.coresersic.CoreSersic`,
whose b is the exact Sérsic b(n)); mu(R_b) = zp - 2.5 log10(I_b / (EXPTIME dx dy)).
GALFITM's sources were not available to check its normalisation beyond its line comments.
"""

from __future__ import annotations

from .base import AXIS_RATIO, POSITION_ANGLE, POSITION_X, POSITION_Y, SURFACE_BRIGHTNESS
from .coresersic import CS_ALPHA, CS_GAMMA, CS_N, CS_R_B, CS_R_E, CoreSersic
from .registry import register

MU_R_B = SURFACE_BRIGHTNESS.relabel(
    name="mu_b", galfit="3",
    description="surface brightness at the break radius: zp - 2.5 log10(I_b / (EXPTIME dx dy)), I_b [ADU/pix]")


@register
class GalfitmCoreSersic(CoreSersic):
    name = "corser"
    description = "core-Sérsic (GALFITM corser): power-law core inside r_b, Sérsic outside; mu at r_b"
    imfit_name = None
    galfit_name = "corser"
    parameters = (POSITION_X, POSITION_Y, MU_R_B, CS_R_B.relabel(galfit="4"), CS_ALPHA.relabel(galfit="5"),
                  CS_GAMMA.relabel(galfit="6"), CS_R_E.relabel(galfit="7"), CS_N.relabel(galfit="8"), AXIS_RATIO,
                  POSITION_ANGLE)
    amplitude = "mu_b"
    amplitude_kind = "surface_brightness"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "mu(Rb), surface brightness at the break radius  [mag/arcsec^2]",
        "4": "Rb (break radius)  [pix]",
        "5": "alpha (sharpness of the transition)",
        "6": "gamma (inner power-law slope)",
        "7": "R_e (effective radius of the outer Sersic profile)  [pix]",
        "8": "Sersic index n",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }
