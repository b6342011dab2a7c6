"""Nuker profile (Lauer et al. 1995), GALFIT component ``nuker``:

    I(r) = I_b 2^((beta - gamma)/alpha) (r/r_b)^(-gamma) [1 + (r/r_b)^alpha]^((gamma - beta)/alpha),

a double power law: inner slope gamma, outer slope beta, alpha the sharpness of the
transition at the break radius r_b (along the major axis, pix). The amplitude is the
surface brightness at the break, mu_b [mag/arcsec^2] (I(r_b) = I_b).

Domains: r_b > 0, alpha > 0, gamma < 2 (the light inside any radius is finite only
then; gamma > 0 is a central cusp, gamma < 0 a central hole); beta is any real (the
total light is finite only for beta > 2, see :meth:`Nuker.total_per_amplitude`).
Default bounds: alpha in (0.2, 20), beta in (0.2, 10), gamma in (-0.5, 1.9). gamma is
allowed slightly negative because nuker fits of galaxies with a central light deficit
(or dust) return gamma < 0; gamma stops at 1.9, where half of the light inside r_b lies
within ~1e-3 r_b (E ~ r^(2 - gamma)) and the cusp is resolved by no image. The renderer floors
the squared radius at 1e-24 (float64) / 1e-14 (float32), where I stays finite.

With p = (2 - gamma)/alpha, q' = (beta - 2)/alpha and T = u/(1 + u), u = (rho/r_b)^alpha,
the light inside the ellipse of major-axis radius rho (per unit I_b) is

    2 pi q r_b^2 2^((beta - gamma)/alpha) / alpha  B(T; p, q'),

B(T; p, q') = int_0^T t^(p-1) (1-t)^(q'-1) dt, evaluated by
:func:`galprof.special.beta_integral` directly for rho <= r_b (T <= 1/2) and as
B(1/2; p, q') + int_(1-T)^(1/2) t^(q'-1) (1-t)^(p-1) dt beyond (valid for any sign of
q', smooth through beta = 2).
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
from .ferrer import tiny_for
from .registry import register

MU_B = SURFACE_BRIGHTNESS.relabel(
    name="mu_b",
    description="surface brightness at the break radius: zp - 2.5 log10(I_b / (EXPTIME dx dy)), I_b [ADU/pix]")
R_B = ParameterSpec("r_b", "pix", "break radius along the major axis", (0.05, 1e4), "log", galfit="4", is_size=True)
NUKER_ALPHA = ParameterSpec("alpha", "", "sharpness of the transition between the inner and outer power laws",
                            (0.2, 20.0), "log", galfit="5", domain=(0.0, math.inf))
NUKER_BETA = ParameterSpec("beta", "", "outer power-law slope (I ~ r^-beta far out)", (0.2, 10.0), "linear",
                           galfit="6")
NUKER_GAMMA = ParameterSpec("gamma", "", "inner power-law slope (I ~ r^-gamma at the centre); gamma < 2",
                            (-0.5, 1.9), "linear", galfit="7", domain=(-math.inf, 2.0))

_LN2 = math.log(2.0)


def _nuker_squared(rho_squared: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    # log I = s log 2 - gamma x - s log(1 + e^(alpha x)), x = log(r / r_b), s = (beta - gamma)/alpha
    x = 0.5 * torch.log(rho_squared.clamp(min=tiny_for(rho_squared.dtype))) - d["log_r_b"]
    soft = torch.logaddexp(d["alpha"] * x, torch.zeros_like(x))
    return torch.exp(d["s"] * (_LN2 - soft) - d["gamma"] * x)


@register
class Nuker(EllipticalProfile):
    name = "nuker"
    description = "Nuker double power law, surface brightness at the break radius, break radius and three slopes"
    parameters = (POSITION_X, POSITION_Y, MU_B, R_B, NUKER_ALPHA, NUKER_BETA, NUKER_GAMMA, AXIS_RATIO,
                  POSITION_ANGLE)
    #: nuker_mag: the total light is finite only for beta > 2
    magnitude_variant_specs = {"beta": {"bounds": (2.05, 10.0), "domain": (2.0, math.inf)}}
    amplitude = "mu_b"
    amplitude_kind = "surface_brightness"
    galfit_name = "nuker"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "mu(Rb), surface brightness at the break radius  [mag/arcsec^2]",
        "4": "Rb (break radius)  [pix]",
        "5": "alpha (sharpness of the transition)",
        "6": "beta (outer power-law slope)",
        "7": "gamma (inner power-law slope)",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        r_b, alpha, beta, gamma = params["r_b"], params["alpha"], params["beta"], params["gamma"]
        p = (2.0 - gamma) / alpha
        q_ = (beta - 2.0) / alpha
        # B(1/2; p, q'): the light inside r_b (per 2 pi q r_b^2 2^s / alpha)
        half = beta_integral(p, q_, torch.full_like(p, -_LN2))
        return {"r_b": r_b, "log_r_b": torch.log(r_b), "alpha": alpha, "gamma": gamma, "s": (beta - gamma) / alpha,
                "p": p, "q_": q_, "inside_break": half}

    @staticmethod
    def surface_brightness(rho, derived):
        return _nuker_squared(rho * rho, derived)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return _nuker_squared(rho_squared, derived)

    @classmethod
    def _scale(cls, derived):
        """2 pi q r_b^2 2^s / alpha."""
        return 2.0 * math.pi * derived["q"] * derived["r_b"] ** 2 * torch.exp(derived["s"] * _LN2) / derived["alpha"]

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        """Light inside major-axis radius rho per unit I_b (see the module docstring)."""
        p, q_ = derived["p"], derived["q_"]
        xi = derived["alpha"] * (torch.log(rho.clamp(min=math.sqrt(tiny_for(rho.dtype)))) - derived["log_r_b"])
        inner = xi <= 0.0
        # rho <= r_b: int_0^T t^(p-1) (1-t)^(q'-1) dt, log T = log sigmoid(xi)
        # rho > r_b:  B(1/2) + int_(1-T)^(1/2) t^(q'-1) (1-t)^(p-1) dt, log(1 - T) = log sigmoid(-xi)
        log_hi = torch.where(inner, torch.nn.functional.logsigmoid(xi.clamp(max=0.0)), torch.full_like(xi, -_LN2))
        log_lo = torch.nn.functional.logsigmoid(-xi.clamp(min=0.0))
        value = beta_integral(torch.where(inner, p, q_), torch.where(inner, q_, p), log_hi, log_lo, ~inner)
        value = value + torch.where(inner, torch.zeros_like(value), derived["inside_break"])
        return cls._scale(derived) * value

    @classmethod
    def total_per_amplitude(cls, derived):
        """Total light per unit I_b (integral over the plane, factor q included):
        2 pi q r_b^2 2^s / alpha B((2 - gamma)/alpha, (beta - 2)/alpha), s = (beta - gamma)/alpha.

        Finite only for beta > 2 (and gamma < 2); +inf is returned where beta <= 2 (with
        zero, not NaN, gradients there)."""
        p, q_ = derived["p"], derived["q_"]
        finite = q_ > 0.0
        q_safe = torch.where(finite, q_, torch.ones_like(q_))
        value = cls._scale(derived) * torch.exp(log_beta(p, q_safe))
        return torch.where(finite, value, torch.full_like(value, math.inf))
