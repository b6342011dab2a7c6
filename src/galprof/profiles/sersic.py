"""Sérsic profile: I(r) = I_0 exp(-b_n (r / R_e)^(1/n)), GALFIT component ``sersic``.

b_n is the exact root of P(2n, b_n) = 1/2 (see :func:`galprof.special.sersic_b`), so R_e
(along the major axis, pixels) encloses half of the total flux.
"""

from __future__ import annotations

import math

import torch

from ..special import gammainc_lower_regularized, gammainc_lower_with_partials, sersic_b
from .base import AXIS_RATIO, MAGNITUDE, POSITION_ANGLE, POSITION_X, POSITION_Y, EllipticalProfile, ParameterSpec
from .registry import register

R_E = ParameterSpec("r_e", "pix", "effective (half-light) radius along the major axis", (0.05, 1e4), "log", galfit="4", is_size=True)
SERSIC_N = ParameterSpec("n", "", "Sérsic index", (0.2, 10.0), "log", galfit="5")


def sersic_derived(r_e: torch.Tensor, n: torch.Tensor, q: torch.Tensor) -> dict[str, torch.Tensor]:
    """b_n and log I_0 for unit total flux: I_0 = b^(2n) / (2 pi q R_e^2 n Gamma(2n))."""
    b = sersic_b(n)
    log_i0 = 2.0 * n * torch.log(b) - torch.log(2.0 * math.pi * q * r_e**2 * n) - torch.lgamma(2.0 * n)
    return {"b": b, "log_i0": log_i0, "r_e": r_e, "n": n, "half_inv_n": 0.5 / n, "log_r_e_over_n": torch.log(r_e) / n}


def sersic_scaled_radius(rho: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    """b (rho / R_e)^(1/n), computed as exp(log(.)/n) with rho floored away from 0."""
    return d["b"] * torch.exp(torch.log(rho / d["r_e"]) / d["n"])


@register
class Sersic(EllipticalProfile):
    name = "sersic"
    description = "Sérsic profile, total magnitude and half-light radius"
    parameters = (POSITION_X, POSITION_Y, MAGNITUDE, R_E, SERSIC_N, AXIS_RATIO, POSITION_ANGLE)
    galfit_name = "sersic"
    staged = ("n",)
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "Integrated magnitude",
        "4": "R_e (effective radius)  [pix]",
        "5": "Sersic index n (de Vaucouleurs n=4)",
        "9": "Axis ratio (b/a)",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        return sersic_derived(params["r_e"], params["n"], params["q"])

    @staticmethod
    def surface_brightness(rho, derived):
        return torch.exp(derived["log_i0"] - sersic_scaled_radius(rho, derived))

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        tiny = 1e-24 if rho_squared.dtype == torch.float64 else 1e-14
        log_rho2 = torch.log(rho_squared.clamp(min=tiny))
        scaled = derived["b"] * torch.exp(log_rho2 * derived["half_inv_n"] - derived["log_r_e_over_n"])
        return torch.exp(derived["log_i0"] - scaled)

    @classmethod
    def brightness_tangents(cls, rho_squared, derived, tangents):
        """ln I = log_i0 - s with s = b exp(half_inv_n ln rho^2 - log_r_e_over_n), so at
        fixed rho^2: d ln I = d log_i0 - s (d b / b - d log_r_e_over_n) - s ln rho^2 d half_inv_n;
        d ln I / d rho^2 = -s half_inv_n / rho^2. A tangent of q moves only log_i0 (the
        geometry is the renderer's), one of PA nothing, one of R_e not half_inv_n."""
        tiny = 1e-24 if rho_squared.dtype == torch.float64 else 1e-14
        rho2 = rho_squared.clamp(min=tiny)
        log_rho2 = torch.log(rho2)
        s = derived["b"] * torch.exp(log_rho2 * derived["half_inv_n"] - derived["log_r_e_over_n"])
        value = torch.exp(derived["log_i0"] - s)
        dlog_drho2 = -(s * derived["half_inv_n"]) / rho2
        s_log_rho2 = None
        out = []
        for name, d in tangents:
            if name == "pa":
                out.append(None)
                continue
            if name == "q":
                out.append(d["log_i0"])
                continue
            term = d["log_i0"] + s * (d["log_r_e_over_n"] - d["b"] / derived["b"])
            if name != "r_e":
                if s_log_rho2 is None:
                    s_log_rho2 = s * log_rho2
                term = term - s_log_rho2 * d["half_inv_n"]
            out.append(term)
        return value, dlog_drho2, out

    @classmethod
    def sersic_equivalent(cls, value):
        """Itself: (R_e, n)."""
        return value("r_e"), value("n")

    @classmethod
    def enclosed_fraction(cls, rho, derived):
        return gammainc_lower_regularized(2.0 * derived["n"], sersic_scaled_radius(rho, derived)).to(rho.dtype)

    @classmethod
    def setup_tangents(cls, derived, names):
        """For the analytic Jacobian: per name of ``names`` (r_e, n, q, pa), the derivative
        of every entry of the set-up ``derived`` ((B, 1, 1) tensors from :meth:`setup`), in
        closed form: b_n(n) through the implicit function P(2n, b) = 1/2, db/dn = -2
        (dP/da) / (dP/dx); log I_0 = 2n log b - log(2 pi q R_e^2 n) - lgamma(2n). Float64
        inside, returned in the dtype of ``derived``."""
        n, r_e, q, b = (derived[k].detach().to(torch.float64) for k in ("n", "r_e", "q", "b"))
        _, dp_da, dp_dx = gammainc_lower_with_partials(2.0 * n, b)
        db_dn = -2.0 * dp_da / dp_dx
        zero = torch.zeros_like(n)
        one = torch.ones_like(n)
        keys = ("b", "log_i0", "r_e", "n", "half_inv_n", "log_r_e_over_n", "pa", "q")
        slopes = {
            "r_e": dict(log_i0=-2.0 / r_e, r_e=one, log_r_e_over_n=1.0 / (r_e * n)),
            "n": dict(b=db_dn, log_i0=2.0 * torch.log(b) + 2.0 * n * db_dn / b - 1.0 / n
                      - 2.0 * torch.digamma(2.0 * n), n=one, half_inv_n=-0.5 / (n * n),
                      log_r_e_over_n=-torch.log(r_e) / (n * n)),
            "q": dict(log_i0=-1.0 / q, q=one),
            "pa": dict(pa=one),
        }
        dtype = derived["n"].dtype
        return [{k: slopes[name].get(k, zero).to(dtype) for k in keys} for name in names]

    @classmethod
    def enclosed_fraction_tangents(cls, rho, derived, tangents):
        """E = P(2n, x) with x = b (rho / R_e)^(1/n), and for each ``(name, d derived /
        d name)`` of ``tangents`` dE/d name at fixed rho: 2 dn dP/da + x dP/dx d ln x,
        d ln x = db / b - dR_e / (n R_e) - ln(rho / R_e) dn / n^2. Float64, one series."""
        n, r_e, b = derived["n"], derived["r_e"], derived["b"]
        log_ratio = torch.log(rho / r_e)
        x = b * torch.exp(log_ratio / n)
        value, dp_da, dp_dx = gammainc_lower_with_partials(2.0 * n, x)
        x_dp_dx = x * dp_dx
        out = []
        for _, d in tangents:
            dlog_x = d["b"] / b - d["r_e"] / (n * r_e) - log_ratio * d["n"] / (n * n)
            out.append(2.0 * d["n"] * dp_da + x_dp_dx * dlog_x)
        return value, out
