"""Edge-on disks: GALFIT's ``edgedisk`` and imfit's ``EdgeOnDisk``.

Both are exponential disks seen exactly edge-on. Along the major axis the line-of-sight
integral of an exponential disk exp(-R / h) is 2 |u| K1(|u| / h) (K1: the modified
Bessel function of the second kind); perpendicular to it the vertical profile is a
sech^2 (GALFIT) or imfit's generalised sech^(2/n). In the frame of the disk,

    u = -(x - x0) sin PA + (y - y0) cos PA   (along the major axis, PA from +y towards -x),
    v = -(x - x0) cos PA - (y - y0) sin PA   (perpendicular to it),

* ``edgedisk``:   I(u, v) = I_0 (|u| / r_s) K1(|u| / r_s) sech^2(v / h_s), with I_0 set
  by the central surface brightness mu_0 [mag/arcsec^2] (GALFIT lines 3, 4, 5);
* ``edgeondisk``: rho(R, z) = L_0 exp(-R / h) sech^(2/n)(n |z| / (2 z_0)) integrated
  along the line of sight, I(u, v) = 2 h L_0 (|u| / h) K1(|u| / h) sech^(2/n)(n |v| / (2 z_0));
  n = 1 is sech^2(|z| / (2 z_0)), n -> inf the exponential exp(-|z| / z_0).

Neither depends on an elliptical radius (no axis ratio q): they set ``radial = False``
and the renderer integrates them over pixels by Gauss-Legendre quadrature. x K1(x) is
:func:`galprof.bessel.x_k1`, differentiable in forward and reverse mode; it is 1 at the
centre, with a derivative -x K0(x) that vanishes there, so gradients stay finite on the
minor axis. sech^p is evaluated in logs so that it never overflows.
"""

from __future__ import annotations

import math

import torch

from ..bessel import x_k1
from .base import POSITION_ANGLE, POSITION_X, POSITION_Y, SURFACE_BRIGHTNESS, EllipticalProfile, ParameterSpec
from .registry import register

_POSITIVE = (0.0, math.inf)
_LOG2 = math.log(2.0)

H_S = ParameterSpec("h_s", "pix", "disk scale height perpendicular to the major axis: sech^2(v / h_s)",
                    (0.05, 1e4), "log", galfit="4", domain=_POSITIVE)
R_S = ParameterSpec("r_s", "pix", "disk scale length along the major axis: (|u|/r_s) K1(|u|/r_s)",
                    (0.05, 1e4), "log", galfit="5", domain=_POSITIVE, is_size=True)

L_0 = ParameterSpec("L_0", "ADU/pix^3", "central luminosity density: I(0, 0) = 2 h L_0 [ADU/pix]",
                    None, "free", imfit="L_0")
H_RADIAL = ParameterSpec("h", "pix", "radial scale length of the exponential disk exp(-R / h)",
                         (0.05, 1e4), "log", imfit="h", domain=_POSITIVE, is_size=True)
N_VERTICAL = ParameterSpec("n", "", "vertical shape: sech^(2/n)(n |z| / (2 z_0)); 1: sech^2, inf: exponential",
                           (0.1, 200.0), "log", imfit="n", domain=_POSITIVE)
Z_0 = ParameterSpec("z_0", "pix", "vertical scale height (perpendicular to the major axis)",
                    (0.05, 1e4), "log", imfit="z_0", domain=_POSITIVE)


def log_sech(t: torch.Tensor) -> torch.Tensor:
    """log sech(t) = -|t| - log(1 + exp(-2|t|)) + log 2, without overflow for any t.

    Smooth at t = 0 (the derivative, -tanh t, is 0 there also through |t|'s subgradient).
    """
    a = t.abs()
    return _LOG2 - a - torch.log1p(torch.exp(-2.0 * a))


def _disk_frame(dx: torch.Tensor, dy: torch.Tensor, derived: dict[str, torch.Tensor]):
    """(u, v): offsets along and perpendicular to the major axis [pix]."""
    s, c = derived["sin_pa"], derived["cos_pa"]
    return -dx * s + dy * c, -dx * c - dy * s


def _geometry(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    pa = params["pa"]
    rad = pa * (math.pi / 180.0)
    return {"pa": pa, "sin_pa": torch.sin(rad), "cos_pa": torch.cos(rad)}


class _EdgeOn(EllipticalProfile):
    """Shared geometry of the edge-on disks: a centre and a PA, no axis ratio."""

    radial = False
    min_gl_order = 4  # thin disks keep sub-pixel structure along their whole length

    @classmethod
    def setup(cls, params):
        derived = dict(cls.prepare(params))
        derived.update(_geometry(params))
        return derived


@register
class EdgeDisk(_EdgeOn):
    name = "edgedisk"
    description = "edge-on exponential disk with a sech^2 vertical profile, central surface brightness (GALFIT)"
    parameters = (POSITION_X, POSITION_Y, SURFACE_BRIGHTNESS, H_S, R_S, POSITION_ANGLE)
    galfit_name = "edgedisk"
    amplitude = "mu_0"
    amplitude_kind = "surface_brightness"
    galfit_comments = {
        "1": "Position x, y  [pixel, 1-based]",
        "3": "Central surface brightness mu(0)  [mag/arcsec^2]",
        "4": "h_s (disk scale height)  [pix]",
        "5": "R_s (disk scale length)  [pix]",
        "10": "Position angle (PA)  [deg: Up=0, Left=90]",
    }

    @staticmethod
    def prepare(params):
        return {"r_s": params["r_s"], "h_s": params["h_s"]}

    @classmethod
    def brightness(cls, dx, dy, derived):
        """(|u|/r_s) K1(|u|/r_s) sech^2(v / h_s): 1 at the centre."""
        u, v = _disk_frame(dx, dy, derived)
        return x_k1(u / derived["r_s"]) * torch.exp(2.0 * log_sech(v / derived["h_s"]))

    @classmethod
    def total_per_amplitude(cls, derived):
        """Integral of the unit brightness over the plane: (pi r_s) (2 h_s) = 2 pi r_s h_s [pix^2]."""
        return 2.0 * math.pi * derived["r_s"] * derived["h_s"]


@register
class EdgeOnDisk(_EdgeOn):
    name = "edgeondisk"
    description = "imfit EdgeOnDisk: exponential disk with a sech^(2/n) vertical profile seen edge-on"
    parameters = (POSITION_X, POSITION_Y, L_0, H_RADIAL, N_VERTICAL, Z_0, POSITION_ANGLE.relabel(galfit=None))
    imfit_name = "EdgeOnDisk"
    amplitude = "L_0"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        n = params["n"]
        return {"h": params["h"], "n": n, "z_0": params["z_0"], "two_over_n": 2.0 / n,
                "n_over_2z0": n / (2.0 * params["z_0"])}

    @classmethod
    def brightness(cls, dx, dy, derived):
        """2 h (|u|/h) K1(|u|/h) sech^(2/n)(n |v| / (2 z_0)): 2 h at the centre."""
        u, v = _disk_frame(dx, dy, derived)
        h = derived["h"]
        vertical = torch.exp(derived["two_over_n"] * log_sech(v * derived["n_over_2z0"]))
        return 2.0 * h * x_k1(u / h) * vertical

    @classmethod
    def total_per_amplitude(cls, derived):
        """2 pi h^2 (the exponential disk's face) times the vertical integral
        int sech^(2/n)(n |z| / (2 z_0)) dz = (2 sqrt(pi) z_0 / n) Gamma(1/n) / Gamma(1/n + 1/2)."""
        h, n, z_0 = derived["h"], derived["n"], derived["z_0"]
        inv_n = 1.0 / n
        vertical = (2.0 * math.sqrt(math.pi) * z_0 / n) * torch.exp(torch.lgamma(inv_n) - torch.lgamma(inv_n + 0.5))
        return 2.0 * math.pi * h * h * vertical
