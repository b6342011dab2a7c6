"""imfit's broken-exponential relatives: ``DoubleBrokenExponential``,
``BrokenExponential2D`` and ``FlatBar``, in imfit's parameterisation (counts/pixel).

All build on the broken exponential of Erwin et al. (2008) (imfit ``BrokenExponential``,
:mod:`galprof.profiles.brokenexp`),

    B(r; h1, h2, r_b, alpha) = S exp(-r / h1) [1 + exp(alpha (r - r_b))]^k,
    k = (1/alpha)(1/h1 - 1/h2),  S = (1 + exp(-alpha r_b))^(-k)   (B(0) = 1),

evaluated in logs (softplus), so nothing overflows however sharp the break:

* ``doublebrokenexp`` (imfit ``DoubleBrokenExponential``: PA, ell, I_0, h1, h2, h3,
  r_break1, r_break2, alpha1, alpha2; one of imfit's extra functions): three exponential
  zones, I = I_0 S exp(-r/h1) [1 + e^(alpha1 (r - r_break1))]^k1 [1 + e^(alpha2 (r - r_break2))]^k2,
  k1 = (1/h1 - 1/h2)/alpha1, k2 = (1/h2 - 1/h3)/alpha2, S making I(0) = I_0; r the
  elliptical radius;
* ``brokenexp2d`` (imfit ``BrokenExponential2D``: PA, I_0, h1, h2, r_break, alpha, h_z): an
  edge-on broken exponential, I = I_0 B(|u|) exp(-|v| / h_z), u along and v perpendicular
  to the major axis (no line-of-sight integration: the radial profile is the image's);
* ``flatbar`` (imfit ``FlatBar``: PA, ell, deltaPA_max, I_0, h1, h2, r_break, alpha): the
  outer, vertically thin part of a bar seen near face-on (Erwin et al. 2021, App. A).
  I = I_0 B(r; h1, h2', r_b', alpha) with r the elliptical radius (q = 1 - ell), the break
  on the circle r_b' = r_b r / sqrt(u^2 + v^2) and the outer scale length varying with
  the angle dphi = |atan(v / u)| from the major axis on the sky:
  h2' = h2 + (h1 - h2) min(1, (dphi / deltaPA_max)^2) (h2 on the major axis, the inner
  h1, i.e. no break, beyond deltaPA_max from it).

Radii and scale lengths are in pixels, alpha [1/pix] (the break's width is ~1/alpha),
angles in degrees. The last two are not radial profiles (``radial = False``): the
renderer integrates them by Gauss-Legendre quadrature, 4 x 4 nodes per pixel at least.
``flatbar``'s axis ratio is ``q_bar``, reported as fitted (swapping the axes of a fit
with q > 1 would change deltaPA_max's meaning).
"""

from __future__ import annotations

import math

import torch

from ..conventions import elliptical_coordinates
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

_POSITIVE = (0.0, math.inf)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """ln(1 + e^x) without overflow."""
    return torch.logaddexp(x, torch.zeros_like(x))


def log_broken_exponential(r, inv_h1, inv_h2, r_break, alpha):
    """ln B(r) = -r/h1 + k [softplus(alpha (r - r_b)) - softplus(-alpha r_b)], k = (1/h1 - 1/h2)/alpha.

    All arguments broadcast together (r [pix] >= 0; inverse scale lengths [1/pix])."""
    k = (inv_h1 - inv_h2) / alpha
    return -r * inv_h1 + k * (_softplus(alpha * (r - r_break)) - _softplus(-alpha * r_break))


def _length(name: str, description: str, low: float = 0.02) -> ParameterSpec:
    return ParameterSpec(name, "pix", description, (low, 1e4), "log", imfit=name, domain=_POSITIVE, is_size=True)


def _sharpness(name: str) -> ParameterSpec:
    return ParameterSpec(name, "1/pix", "sharpness of the break (width ~ 1/alpha pixels)", (0.01, 100.0), "log",
                         imfit=name, domain=_POSITIVE, per_length=True)


I_0 = ParameterSpec("I_0", "ADU/pix", "central surface brightness", None, "free", imfit="I_0")
DB_H1 = _length("h1", "scale length inside r_break1, along the major axis")
DB_H2 = _length("h2", "scale length between r_break1 and r_break2")
DB_H3 = _length("h3", "scale length outside r_break2")
DB_R1 = _length("r_break1", "inner break radius along the major axis", 0.05)
DB_R2 = _length("r_break2", "outer break radius along the major axis", 0.05)
DB_A1 = _sharpness("alpha1")
DB_A2 = _sharpness("alpha2")
BE_H1 = _length("h1", "scale length inside the break")
BE_H2 = _length("h2", "scale length outside the break")
BE_R = _length("r_break", "break radius", 0.05)
BE_ALPHA = _sharpness("alpha")
BE_H_Z = ParameterSpec("h_z", "pix", "exponential scale height perpendicular to the major axis", (0.02, 1e4), "log",
                       imfit="h_z", domain=_POSITIVE)
FB_DPA = ParameterSpec("deltaPA_max", "deg", "angle from the major axis beyond which the bar has no break",
                       (0.1, 90.0), "linear", imfit="deltaPA_max", domain=_POSITIVE)
FB_Q = ParameterSpec("q_bar", "", "axis ratio b/a of the isophotes (imfit ell = 1 - q_bar), reported as fitted",
                     (0.02, 50.0), "log", imfit="ell", domain=_POSITIVE)


@register
class DoubleBrokenExponential(EllipticalProfile):
    name = "doublebrokenexp"
    description = "double-broken exponential, three zones (imfit DoubleBrokenExponential)"
    imfit_name = "DoubleBrokenExponential"
    galfit_name = None
    parameters = (POSITION_X, POSITION_Y, I_0, DB_H1, DB_H2, DB_H3, DB_R1, DB_R2, DB_A1, DB_A2, AXIS_RATIO,
                  POSITION_ANGLE)
    amplitude = "I_0"
    amplitude_kind = "intensity"
    total_per_amplitude = None

    @staticmethod
    def prepare(params):
        inv = [1.0 / params[k] for k in ("h1", "h2", "h3")]
        return {"inv_h1": inv[0], "inv_h2": inv[1], "inv_h3": inv[2], "r_b1": params["r_break1"],
                "r_b2": params["r_break2"], "alpha1": params["alpha1"], "alpha2": params["alpha2"]}

    @staticmethod
    def surface_brightness(rho, derived):
        d = derived
        first = log_broken_exponential(rho, d["inv_h1"], d["inv_h2"], d["r_b1"], d["alpha1"])
        k2 = (d["inv_h2"] - d["inv_h3"]) / d["alpha2"]
        second = k2 * (_softplus(d["alpha2"] * (rho - d["r_b2"])) - _softplus(-d["alpha2"] * d["r_b2"]))
        return torch.exp(first + second)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return cls.surface_brightness(safe_radius(rho_squared), derived)


class _DirectionalProfile(EllipticalProfile):
    radial = False
    galfit_name = None
    min_gl_order = 4

    @classmethod
    def setup(cls, params):
        derived = dict(cls.prepare(params))
        derived["pa"] = params["pa"]
        return derived


@register
class BrokenExponential2D(_DirectionalProfile):
    name = "brokenexp2d"
    description = "edge-on broken exponential with an exponential vertical profile (imfit BrokenExponential2D)"
    imfit_name = "BrokenExponential2D"
    parameters = (POSITION_X, POSITION_Y, I_0, BE_H1, BE_H2, BE_R, BE_ALPHA, BE_H_Z,
                  POSITION_ANGLE.relabel(galfit=None))
    amplitude = "I_0"
    amplitude_kind = "intensity"
    total_per_amplitude = None

    @staticmethod
    def prepare(params):
        return {"inv_h1": 1.0 / params["h1"], "inv_h2": 1.0 / params["h2"], "r_break": params["r_break"],
                "alpha": params["alpha"], "inv_h_z": 1.0 / params["h_z"]}

    @classmethod
    def brightness(cls, dx, dy, derived):
        d = derived
        u, v = elliptical_coordinates(dx, dy, d["pa"], torch.ones_like(d["pa"]))
        radial = log_broken_exponential(u.abs(), d["inv_h1"], d["inv_h2"], d["r_break"], d["alpha"])
        return torch.exp(radial - v.abs() * d["inv_h_z"])


@register
class FlatBar(_DirectionalProfile):
    name = "flatbar"
    description = "flat (broken-exponential) outer bar whose break fades away from the major axis (imfit FlatBar)"
    imfit_name = "FlatBar"
    imfit_order = ("PA", "ell", "deltaPA_max", "I_0", "h1", "h2", "r_break", "alpha")
    parameters = (POSITION_X, POSITION_Y, I_0, BE_H1, BE_H2, BE_R, BE_ALPHA, FB_DPA, FB_Q, POSITION_ANGLE)
    amplitude = "I_0"
    amplitude_kind = "intensity"
    total_per_amplitude = None

    @staticmethod
    def prepare(params):
        return {"inv_h1": 1.0 / params["h1"], "h1": params["h1"], "h2": params["h2"], "r_break": params["r_break"],
                "alpha": params["alpha"], "inv_q": 1.0 / params["q_bar"],
                "inv_dpa": 180.0 / (math.pi * params["deltaPA_max"])}

    @classmethod
    def brightness(cls, dx, dy, derived):
        d = derived
        u, v = elliptical_coordinates(dx, dy, d["pa"], torch.ones_like(d["pa"]))
        w = v * d["inv_q"]
        r = safe_radius(u * u + w * w)
        r_circ = safe_radius(u * u + v * v)
        # the angle from the major axis on the sky, in [0, pi/2]
        tiny = 1e-12 if u.dtype == torch.float64 else 1e-7
        dphi = torch.atan(v.abs() / u.abs().clamp(min=tiny))
        frac = (dphi * d["inv_dpa"]).clamp(max=1.0) ** 2
        h2 = d["h2"] + (d["h1"] - d["h2"]) * frac
        r_break = d["r_break"] * r / r_circ
        return torch.exp(log_broken_exponential(r, d["inv_h1"], 1.0 / h2, r_break, d["alpha"]))
