"""Broken exponential disk (Erwin et al. 2008), imfit function ``BrokenExponential``.

    I(r) = S I_0 exp(-r / h1) [1 + exp(alpha (r - r_break))]^((1/alpha)(1/h1 - 1/h2)),
    S    = (1 + exp(-alpha r_break))^(-(1/alpha)(1/h1 - 1/h2)),

an exponential of scale length h1 inside the break radius r_break and h2 outside it,
joined smoothly over a width ~1/alpha [pix] (alpha [1/pix] > 0: the larger, the sharper
the break). S makes I(0) = I_0 [ADU/pix]. Radii are elliptical, along the major axis
[pix].

Numerics: ln(I / I_0) = -r / h1 + k [softplus(alpha (r - r_break)) - softplus(-alpha r_break)]
with k = (1/alpha)(1/h1 - 1/h2) and softplus(x) = ln(1 + e^x) written as logaddexp, so
it never overflows, however sharp the break or large the radius.

Default bounds: h1, h2 in (0.02, 1e4), r_break in (0.05, 1e4) [pix]; alpha in
(0.01, 100) [1/pix]. alpha is an inverse length: galprof's report form (q <= 1, which
scales the ``is_size`` parameters by q when a fit swapped the axes) does not rescale it.
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

BE_I_0 = ParameterSpec("I_0", "ADU/pix", "central surface brightness", None, "free", imfit="I_0")
BE_H1 = ParameterSpec("h1", "pix", "exponential scale length inside the break, along the major axis",
                      (0.02, 1e4), "log", imfit="h1", domain=(0.0, math.inf), is_size=True)
BE_H2 = ParameterSpec("h2", "pix", "exponential scale length outside the break, along the major axis",
                      (0.02, 1e4), "log", imfit="h2", domain=(0.0, math.inf), is_size=True)
BE_R_BREAK = ParameterSpec("r_break", "pix", "break radius along the major axis", (0.05, 1e4), "log",
                           imfit="r_break", domain=(0.0, math.inf), is_size=True)
BE_ALPHA = ParameterSpec("alpha", "1/pix", "sharpness of the break (width ~ 1/alpha pixels)", (0.01, 100.0), "log",
                         imfit="alpha", domain=(0.0, math.inf), per_length=True)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """ln(1 + e^x) without overflow (exact for every x; forward- and reverse-mode safe)."""
    return torch.logaddexp(x, torch.zeros_like(x))


@register
class BrokenExponential(EllipticalProfile):
    name = "brokenexp"
    description = "broken exponential (imfit BrokenExponential): scale lengths h1, h2 around r_break; central intensity"
    imfit_name = "BrokenExponential"
    galfit_name = None
    parameters = (POSITION_X, POSITION_Y, BE_I_0, BE_H1, BE_H2, BE_R_BREAK, BE_ALPHA, AXIS_RATIO, POSITION_ANGLE)
    amplitude = "I_0"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        h1, h2, alpha, r_break = params["h1"], params["h2"], params["alpha"], params["r_break"]
        inv_h1 = 1.0 / h1
        k = (inv_h1 - 1.0 / h2) / alpha
        return {
            "inv_h1": inv_h1,
            "k": k,
            "alpha": alpha,
            "alpha_r_break": alpha * r_break,
            # ln S = -k softplus(-alpha r_break)
            "log_s": -k * _softplus(-alpha * r_break),
        }

    @staticmethod
    def surface_brightness(rho, derived):
        log_i = (derived["log_s"] - rho * derived["inv_h1"]
                 + derived["k"] * _softplus(derived["alpha"] * rho - derived["alpha_r_break"]))
        return torch.exp(log_i)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return cls.surface_brightness(safe_radius(rho_squared), derived)

    #: no closed form for the total light, so no ``brokenexp_mag``
    total_per_amplitude = None
