"""imfit's modified King profiles ``ModifiedKing`` and ``ModifiedKing2`` (Elson 1999;
Peng et al. 2010), in imfit's parameterisation:

    I(r) = I_0 [1 - 1/(1 + (r_t/r_c)^2)^(1/alpha)]^(-alpha)
               [1/(1 + (r/r_c)^2)^(1/alpha) - 1/(1 + (r_t/r_c)^2)^(1/alpha)]^alpha   (r < r_t),

and 0 beyond r_t, so that I(0) = I_0 [ADU/pix]; r the elliptical radius along the major
axis [pix], r_c the core and r_t the tidal (truncation) radius [pix], alpha = 2 the
classical King (1962) profile. ``ModifiedKing`` (PA, ell, I_0, r_c, r_t, alpha) takes r_t;
``ModifiedKing2`` (PA, ell, I_0, r_c, c, alpha) the concentration c = r_t / r_c instead.

Not GALFIT's ``king`` (:mod:`galprof.profiles.king`), whose outer exponent is 2 for every
alpha: the two agree only at alpha = 2 (then I_0 = 10^(-0.4 (mu_0 - zp)) dx dy EXPTIME).

Numerics: with A(r) = (1 + (r/r_c)^2)^(-1/alpha), L = log1p((r/r_c)^2), A - A_t =
A_t expm1((L_t - L) / alpha) (no cancellation near r_t), and the power is taken in logs
(zero beyond r_t, gradients finite). There is no closed form for the light inside a
radius for general alpha: the renderer's central cells integrate it numerically
(:func:`galprof.profiles.base.numerical_enclosed`), and there is no ``_mag`` variant.
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
)
from .registry import register

_POSITIVE = (0.0, math.inf)

MK_I_0 = ParameterSpec("I_0", "ADU/pix", "central surface brightness", None, "free", imfit="I_0")
MK_R_C = ParameterSpec("r_c", "pix", "core radius along the major axis", (0.05, 1e4), "log", imfit="r_c",
                       domain=_POSITIVE, is_size=True)
MK_R_T = ParameterSpec("r_t", "pix", "tidal (truncation) radius along the major axis (I = 0 beyond)",
                       (0.1, 1e5), "log", imfit="r_t", domain=_POSITIVE, is_size=True)
MK_C = ParameterSpec("c", "", "concentration r_t / r_c", (1.01, 1e4), "log", imfit="c", domain=_POSITIVE)
MK_ALPHA = ParameterSpec("alpha", "", "power-law index alpha (2: classical King)", (0.1, 10.0), "log",
                         imfit="alpha", domain=_POSITIVE)


def modified_king_derived(r_c: torch.Tensor, r_t: torch.Tensor, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-galaxy constants of the modified King profile."""
    inv_alpha = 1.0 / alpha
    log_z_t = torch.log1p((r_t / r_c) ** 2)
    a_t = torch.exp(-inv_alpha * log_z_t)
    return {"r_c_sq": r_c * r_c, "inv_alpha": inv_alpha, "alpha": alpha, "log_z_t": log_z_t, "a_t": a_t,
            "log_one_minus_a_t": torch.log(-torch.expm1(-inv_alpha * log_z_t))}


def modified_king_squared(rho_squared: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    """I / I_0 at squared elliptical radius ``rho_squared`` [pix^2]."""
    log_z = torch.log1p(rho_squared / d["r_c_sq"])
    excess = d["a_t"] * torch.expm1(((d["log_z_t"] - log_z) * d["inv_alpha"]).clamp(min=0.0))
    tiny = 1e-300 if rho_squared.dtype == torch.float64 else 1e-37
    inside = excess > 0
    value = torch.exp(d["alpha"] * (torch.log(excess.clamp(min=tiny)) - d["log_one_minus_a_t"]))
    return torch.where(inside, value, torch.zeros_like(value))


class _ModifiedKingBase(EllipticalProfile):
    amplitude = "I_0"
    amplitude_kind = "intensity"
    galfit_name = None
    # the truncation at r_t is a kink (alpha = 1) or sharper: more nodes per pixel
    min_gl_order = 4
    total_per_amplitude = None

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return modified_king_squared(rho_squared, derived)

    @staticmethod
    def surface_brightness(rho, derived):
        return modified_king_squared(rho * rho, derived)


@register
class ModifiedKing(_ModifiedKingBase):
    name = "modifiedking"
    description = "imfit ModifiedKing: central intensity, core and tidal radii, alpha"
    imfit_name = "ModifiedKing"
    parameters = (POSITION_X, POSITION_Y, MK_I_0, MK_R_C, MK_R_T, MK_ALPHA, AXIS_RATIO, POSITION_ANGLE)

    @staticmethod
    def prepare(params):
        return modified_king_derived(params["r_c"], params["r_t"], params["alpha"])


@register
class ModifiedKing2(_ModifiedKingBase):
    name = "modifiedking2"
    description = "imfit ModifiedKing2: central intensity, core radius, concentration r_t / r_c, alpha"
    imfit_name = "ModifiedKing2"
    parameters = (POSITION_X, POSITION_Y, MK_I_0, MK_R_C, MK_C, MK_ALPHA, AXIS_RATIO, POSITION_ANGLE)

    @staticmethod
    def prepare(params):
        return modified_king_derived(params["r_c"], params["c"] * params["r_c"], params["alpha"])
