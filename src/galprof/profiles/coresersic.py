"""Core-Sérsic profile (Graham et al. 2003; Trujillo et al. 2004), imfit function ``Core-Sersic``.

    I(r) = I' [1 + (r_b / r)^alpha]^(gamma / alpha)
              exp(-b [(r^alpha + r_b^alpha) / r_e^alpha]^(1 / (alpha n))),
    I'   = I_b 2^(-gamma / alpha) exp(b 2^(1 / (alpha n)) (r_b / r_e)^(1 / n)),

so that I(r_b) = I_b [ADU/pix]: an inner power law I ~ r^-gamma inside the break radius
r_b, a Sérsic profile of index n and effective radius r_e outside it, and a transition
whose sharpness grows with alpha. Radii are elliptical, along the major axis [pix].

**b differs from imfit's.** galprof takes b = :func:`galprof.special.sersic_b` (n), the
exact root of P(2n, b) = 1/2 (r_e would be the half-light radius of the outer Sérsic
profile alone); imfit approximates b (Ciotti & Bertin 1999's asymptotic series for
n > 0.36, MacArthur et al. 2003's polynomial below). Taking the series to order n^-4,
the relative difference is ~2e-5 at n = 1, ~1e-6 at n = 2, a few 1e-4 for
0.3 < n < 0.7 and ~1e-2 at n = 0.2, so an image made with the same parameter values
differs slightly from imfit's (most at small n and large r).

Numerics: with t = alpha ln(r / r_b) the log-brightness relative to I_b is

    ln(I / I_b) = (gamma / alpha) [softplus(-t) - ln 2]
                  - b c expm1((softplus(t) - ln 2) / (alpha n)),
    c = 2^(1 / (alpha n)) (r_b / r_e)^(1 / n),

which is exactly 0 at r = r_b, never overflows at small r (the cusp is -gamma ln r) and
only needs ln(r^2), so the squared-radius kernel takes no square root.

Default bounds: n in (0.2, 10) (where :func:`sersic_b` is accurate); r_e in (0.05, 1e4),
r_b in (0.01, 1e4) [pix]; alpha in (0.1, 100); gamma in (-1, 1.5). The domain of gamma
is (-inf, 2): the light inside r is finite only for gamma < 2. The default upper bound
1.5 keeps the numerical enclosed light (the base class's quadrature, used for the exact
pixel integrals at the centre) accurate: for gamma -> 2 almost all of the light sits
in an unresolvable spike at the centre.
"""

from __future__ import annotations

import math

import torch

from ..special import sersic_b
from .base import (
    AXIS_RATIO,
    POSITION_ANGLE,
    POSITION_X,
    POSITION_Y,
    EllipticalProfile,
    ParameterSpec,
)
from .registry import register

_LN2 = math.log(2.0)

CS_N = ParameterSpec("n", "", "Sérsic index of the outer profile", (0.2, 10.0), "log", imfit="n",
                     domain=(0.0, math.inf))
CS_I_B = ParameterSpec("I_b", "ADU/pix", "surface brightness at the break radius r_b", None, "free", imfit="I_b")
CS_R_E = ParameterSpec("r_e", "pix", "effective radius of the outer Sérsic profile, along the major axis",
                       (0.05, 1e4), "log", imfit="r_e", domain=(0.0, math.inf), is_size=True)
CS_R_B = ParameterSpec("r_b", "pix", "break radius between the inner power law and the Sérsic profile",
                       (0.01, 1e4), "log", imfit="r_b", domain=(0.0, math.inf), is_size=True)
CS_ALPHA = ParameterSpec("alpha", "", "sharpness of the transition at r_b (larger: sharper)", (0.1, 100.0), "log",
                         imfit="alpha", domain=(0.0, math.inf))
CS_GAMMA = ParameterSpec("gamma", "", "slope of the inner power law I ~ r^-gamma (finite light: gamma < 2)",
                         (-1.0, 1.5), "linear", imfit="gamma", domain=(-math.inf, 2.0))


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """ln(1 + e^x) without overflow (exact for every x; forward- and reverse-mode safe)."""
    return torch.logaddexp(x, torch.zeros_like(x))


def _expm1_limit(dtype: torch.dtype) -> float:
    """Largest argument of expm1 kept: e^limit times b c (< ~1e3) stays finite, and the
    brightness exp(-b c e^limit) is 0 long before it is reached."""
    return 690.0 if dtype == torch.float64 else 80.0


@register
class CoreSersic(EllipticalProfile):
    name = "coresersic"
    description = "Core-Sérsic (imfit Core-Sersic): power-law core inside r_b, Sérsic outside; intensity at r_b"
    imfit_name = "Core-Sersic"
    galfit_name = None
    parameters = (POSITION_X, POSITION_Y, CS_N, CS_I_B, CS_R_E, CS_R_B, CS_ALPHA, CS_GAMMA, AXIS_RATIO, POSITION_ANGLE)
    amplitude = "I_b"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        n, alpha = params["n"], params["alpha"]
        r_b, r_e = params["r_b"], params["r_e"]
        inv_alpha_n = 1.0 / (alpha * n)
        b = sersic_b(n)
        # b c = b 2^(1/(alpha n)) (r_b / r_e)^(1/n), in logs
        bc = b * torch.exp(_LN2 * inv_alpha_n + (torch.log(r_b) - torch.log(r_e)) / n)
        return {
            "b": b,
            "bc": bc,
            "alpha": alpha,
            "gamma_over_alpha": params["gamma"] / alpha,
            "inv_alpha_n": inv_alpha_n,
            "log_r_b": torch.log(r_b),
            # alpha ln r = (alpha / 2) ln r^2
            "half_alpha": 0.5 * alpha,
        }

    @staticmethod
    def _log_brightness(t: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """ln(I / I_b) as a function of t = alpha ln(r / r_b)."""
        inner = derived["gamma_over_alpha"] * (_softplus(-t) - _LN2)
        arg = ((_softplus(t) - _LN2) * derived["inv_alpha_n"]).clamp(max=_expm1_limit(t.dtype))
        return inner - derived["bc"] * torch.expm1(arg)

    @staticmethod
    def surface_brightness(rho, derived):
        tiny = 1e-12 if rho.dtype == torch.float64 else 1e-7
        t = derived["alpha"] * (torch.log(rho.clamp(min=tiny)) - derived["log_r_b"])
        return torch.exp(CoreSersic._log_brightness(t, derived))

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        tiny = 1e-24 if rho_squared.dtype == torch.float64 else 1e-14
        t = derived["half_alpha"] * torch.log(rho_squared.clamp(min=tiny)) - derived["alpha"] * derived["log_r_b"]
        return torch.exp(cls._log_brightness(t, derived))

    #: no closed form for the total light (integrate :meth:`enclosed_fraction` to a
    #: large radius instead), so no ``coresersic_mag``
    total_per_amplitude = None
    staged = ("n",)
