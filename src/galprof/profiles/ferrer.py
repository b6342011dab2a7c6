"""Ferrer profile, GALFIT component ``ferrer`` (bars, lenses):

    I(r) = I_0 (1 - (r / r_out)^(2 - beta))^alpha  for r < r_out,  0 beyond,

with I_0 given as the central surface brightness mu_0 [mag/arcsec^2], r_out the outer
truncation radius along the major axis [pix], alpha the sharpness of the truncation and
beta the central slope. The profile is continuous at r_out (for alpha > 0).

Domains: r_out > 0, alpha > 0, beta < 2 (at beta = 2 the profile is a point).
Default bounds: alpha in (0.05, 10) (alpha -> 0 is a top hat; beyond 10 the profile is
close to exp(-alpha (r / r_out)^(2 - beta)) wherever it is bright, and r_out becomes
degenerate with alpha); beta in (-3, 1.9): below -3 the core is flat to
(r / r_out)^5 already (beta -> -inf is a top hat of radius r_out), and beyond 1.9 the
profile collapses into a central spike (I(r_out / 2) < 0.07^alpha I_0).

Light inside the ellipse of major-axis radius rho (per unit I_0), with k = 2 - beta:
2 pi q r_out^2 / k B(t; 2 / k, alpha + 1), t = min((rho / r_out)^k, 1), B(t; a, b) the
incomplete beta function; the total is 2 pi q r_out^2 / k B(2 / k, alpha + 1).

The incomplete beta integral is :func:`galprof.special.beta_integral`.
"""

from __future__ import annotations

import math

import torch

from ..special import beta_integral, log_beta
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

R_OUT = ParameterSpec("r_out", "pix", "outer truncation radius along the major axis (I = 0 beyond)",
                      (0.1, 1e4), "log", galfit="4", is_size=True)
FERRER_ALPHA = ParameterSpec("alpha", "", "outer truncation sharpness alpha (I ~ (1 - (r/r_out)^(2-beta))^alpha)",
                             (0.05, 10.0), "log", galfit="5", domain=(0.0, math.inf))
FERRER_BETA = ParameterSpec("beta", "", "central slope beta (exponent 2 - beta of r / r_out); beta < 2",
                            (-3.0, 1.9), "linear", galfit="6", domain=(-math.inf, 2.0))

_LN2 = math.log(2.0)


def tiny_for(dtype: torch.dtype) -> float:
    """The floor of squared radii (as :func:`galprof.profiles.base.safe_radius` uses)."""
    return 1e-24 if dtype == torch.float64 else 1e-14


def _ferrer_squared(rho_squared: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    tiny = tiny_for(rho_squared.dtype)
    # t = (r / r_out)^k = exp(k/2 log(rho^2 / r_out^2)); I = (1 - t)^alpha for t < 1
    log_t = d["half_k"] * (torch.log(rho_squared.clamp(min=tiny)) - d["log_r_out_sq"])
    t = torch.exp(log_t.clamp(max=0.0))
    room = 1e-15 if rho_squared.dtype == torch.float64 else 1e-7
    inside = torch.exp(d["alpha"] * torch.log1p(-t.clamp(max=1.0 - room)))
    return torch.where(log_t < 0.0, inside, torch.zeros_like(inside))


@register
class Ferrer(EllipticalProfile):
    name = "ferrer"
    # the truncation at r_out is a kink (alpha = 1) or an infinite slope (alpha < 1):
    # 4 x 4 nodes per pixel without a PSF bring alpha = 1 from 5.2e-3 to 1.2e-3 of the
    # peak (alpha = 0.5: 2.5e-2 -> 9e-3; alpha = 1.5: 1.4e-3 -> 2.7e-4)
    min_gl_order = 4
    description = "Ferrer bar/lens profile, central surface brightness, outer truncation radius and two slopes"
    parameters = (POSITION_X, POSITION_Y, SURFACE_BRIGHTNESS, R_OUT, FERRER_ALPHA, FERRER_BETA, AXIS_RATIO,
                  POSITION_ANGLE)
    amplitude = "mu_0"
    amplitude_kind = "surface_brightness"
    galfit_name = "ferrer"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "Central surface brightness  [mag/arcsec^2]",
        "4": "Outer truncation radius  [pix]",
        "5": "Alpha (outer truncation sharpness)",
        "6": "Beta (central slope)",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        r_out, alpha, beta = params["r_out"], params["alpha"], params["beta"]
        k = 2.0 - beta
        return {"r_out": r_out, "alpha": alpha, "k": k, "half_k": 0.5 * k,
                "log_r_out": torch.log(r_out), "log_r_out_sq": 2.0 * torch.log(r_out)}

    @staticmethod
    def surface_brightness(rho, derived):
        return _ferrer_squared(rho * rho, derived)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return _ferrer_squared(rho_squared, derived)

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        """2 pi q r_out^2 / k B(t; 2/k, alpha + 1), t = min((rho / r_out)^k, 1).

        Below t_s = (a + 1) / (a + b + 2) kept in [1/2, 0.9] (a = 2/k, b = alpha + 1) the
        incomplete beta integral is taken directly, above from its complement
        B(a, b) - B(1 - t; b, a)."""
        tiny = math.sqrt(tiny_for(rho.dtype))
        k, alpha = derived["k"], derived["alpha"]
        a, b = 2.0 / k, alpha + 1.0
        log_t = k * (torch.log(rho.clamp(min=tiny)) - derived["log_r_out"])
        # direct below the mean of the beta distribution, kept in [1/2, 0.9] (no
        # cancellation where the enclosed light is a small fraction of the total)
        log_switch = torch.log(((a + 1.0) / (a + b + 2.0)).clamp(min=0.5, max=0.9))
        direct = log_t <= log_switch
        # complement: 1 - t in [0, 1/2] (floored, so that t >= 1 gives ~0)
        one_minus_t = -torch.expm1(torch.maximum(log_t, log_switch).clamp(max=0.0))
        log_hi = torch.where(direct, torch.minimum(log_t, log_switch),
                             torch.log(one_minus_t.clamp(min=tiny_for(rho.dtype) ** 2)))
        value = beta_integral(torch.where(direct, a, b), torch.where(direct, b, a), log_hi)
        complete = torch.exp(log_beta(a, b))
        integral = torch.where(direct, value, complete - value)
        return 2.0 * math.pi * derived["q"] * derived["r_out"] ** 2 / k * integral

    @classmethod
    def total_per_amplitude(cls, derived):
        """Total light per unit I_0 (integral over the plane, factor q included):
        2 pi q r_out^2 / k B(2/k, alpha + 1), k = 2 - beta; finite for every beta < 2."""
        k = derived["k"]
        return 2.0 * math.pi * derived["q"] * derived["r_out"] ** 2 / k * torch.exp(
            log_beta(2.0 / k, derived["alpha"] + 1.0))
