"""Empirical (modified) King profile, GALFIT component ``king`` (globular clusters):

    I(r) = I_0 [1 - 1/(1 + (r_t/r_c)^2)^(1/alpha)]^(-2)
               [1/(1 + (r/r_c)^2)^(1/alpha) - 1/(1 + (r_t/r_c)^2)^(1/alpha)]^2   for r < r_t,

and 0 beyond, so that I(0) = I_0 (given as the central surface brightness mu_0
[mag/arcsec^2]). r_c is the core radius, r_t the truncation (tidal) radius, both along
the major axis [pix]; alpha = 2 is the classical King (1962) profile. The profile and
its slope vanish at r_t.

Domains: r_c, r_t, alpha > 0 (r_t < r_c is allowed). Default bounds: alpha in (0.1, 10).

With A(r) = (1 + (r/r_c)^2)^(-1/alpha), A_t = A(r_t), z = 1 + (r/r_c)^2 and
L = log z, the light inside the ellipse of major-axis radius rho (per unit I_0) is in
closed form

    2 pi q (r_c^2 / 2) [L E((1 - 2/alpha) L) - 2 A_t L E((1 - 1/alpha) L) + A_t^2 (z - 1)] / (1 - A_t)^2

at rho' = min(rho, r_t), where E(x) = expm1(x) / x, so int_1^z z'^(-m) dz' = L E((1 - m) L)
is smooth through m = 1 (alpha = 1 and alpha = 2, where the power becomes a logarithm).
"""

from __future__ import annotations

import math

import torch

from ..special import expm1_ratio
from .base import (
    AXIS_RATIO,
    POSITION_ANGLE,
    POSITION_X,
    POSITION_Y,
    SURFACE_BRIGHTNESS,
    EllipticalProfile,
    ParameterSpec,
)
from .registry import register

R_C = ParameterSpec("r_c", "pix", "core radius along the major axis", (0.05, 1e4), "log", galfit="4", is_size=True)
R_T = ParameterSpec("r_t", "pix", "truncation (tidal) radius along the major axis (I = 0 beyond)",
                    (0.1, 1e5), "log", galfit="5", is_size=True)
KING_ALPHA = ParameterSpec("alpha", "", "power-law index alpha (2: classical King)", (0.1, 10.0), "log",
                           galfit="6", domain=(0.0, math.inf))


def _king_squared(rho_squared: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    # A - A_t = A_t expm1((L_t - L) / alpha) with L = log1p(rho^2 / r_c^2): no cancellation
    log_z = torch.log1p(rho_squared / d["r_c_sq"])
    excess = d["a_t"] * torch.expm1(((d["log_z_t"] - log_z) * d["inv_alpha"]).clamp(min=0.0))
    return (excess / d["one_minus_a_t"]) ** 2


def _king_enclosed(z_minus_1, d):
    """2 pi q int_0^rho I(s) s ds for (rho / r_c)^2 = z - 1 (rho <= r_t)."""
    log_z = torch.log1p(z_minus_1)
    inv_alpha, a_t = d["inv_alpha"], d["a_t"]
    square = log_z * expm1_ratio((1.0 - 2.0 * inv_alpha) * log_z)  # int_1^z z'^(-2/alpha) dz'
    single = log_z * expm1_ratio((1.0 - inv_alpha) * log_z)  # int_1^z z'^(-1/alpha) dz'
    integral = square - 2.0 * a_t * single + a_t * a_t * z_minus_1
    return math.pi * d["q"] * d["r_c_sq"] * integral / d["one_minus_a_t"] ** 2


@register
class King(EllipticalProfile):
    name = "king"
    description = "empirical (modified) King profile, central surface brightness, core and truncation radii, alpha"
    parameters = (POSITION_X, POSITION_Y, SURFACE_BRIGHTNESS, R_C, R_T, KING_ALPHA, AXIS_RATIO, POSITION_ANGLE)
    amplitude = "mu_0"
    amplitude_kind = "surface_brightness"
    galfit_name = "king"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "mu(0), central surface brightness  [mag/arcsec^2]",
        "4": "R_c (core radius)  [pix]",
        "5": "R_t (truncation radius)  [pix]",
        "6": "alpha (power-law index; 2 = classical King)",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        r_c, r_t, alpha = params["r_c"], params["r_t"], params["alpha"]
        inv_alpha = 1.0 / alpha
        log_z_t = torch.log1p((r_t / r_c) ** 2)
        return {"r_c_sq": r_c * r_c, "r_t": r_t, "inv_alpha": inv_alpha, "log_z_t": log_z_t,
                "a_t": torch.exp(-inv_alpha * log_z_t), "one_minus_a_t": -torch.expm1(-inv_alpha * log_z_t)}

    @staticmethod
    def surface_brightness(rho, derived):
        return _king_squared(rho * rho, derived)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return _king_squared(rho_squared, derived)

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        """Closed form (see the module docstring), constant beyond r_t."""
        inside = torch.minimum(rho, derived["r_t"])
        return _king_enclosed(inside * inside / derived["r_c_sq"], derived)

    @classmethod
    def total_per_amplitude(cls, derived):
        """Total light per unit I_0 (integral over the plane, factor q included): the
        enclosed light at r_t; finite for every parameter value."""
        return _king_enclosed(torch.expm1(derived["log_z_t"]), derived)
