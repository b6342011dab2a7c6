"""imfit's rings beyond ``GaussianRing``: ``GaussianRing2Side``, ``GaussianRingAz``,
``EdgeOnRing`` and ``EdgeOnRing2Side``, in imfit's parameterisation (counts/pixel).

With u, v the offsets along and perpendicular to the major axis (PA counter-clockwise
from +y, as for every imfit function), q = 1 - ell and r = sqrt(u^2 + (v/q)^2):

* ``gaussianring2side`` (PA, ell, A, R_ring, sigma_r_in, sigma_r_out):
  I = A exp(-(r - R_ring)^2 / (2 sigma^2)), sigma = sigma_r_in for r < R_ring and
  sigma_r_out beyond; a radial profile;
* ``gaussianringaz`` (PA, ell, A_maj, A_min_rel, R_ring, sigma_r):
  I = A(theta) exp(-(r - R_ring)^2 / (2 sigma_r^2)), A(theta) = A_mid + dA cos(2 theta),
  A_mid = A_maj (1 + A_min_rel) / 2, dA = A_maj (1 - A_min_rel) / 2, theta the angle on
  the sky between the pixel's direction from the centre and the major axis
  (cos 2 theta = (u^2 - v^2) / (u^2 + v^2)): A_maj on the major axis, A_maj A_min_rel on
  the minor axis; A_min_rel = 1 is ``GaussianRing``;
* ``edgeonring`` (PA, I_0, r, sigma_r, sigma_z): two Gaussian blobs at u = +-r,
  I = I_0 [exp(-(u - r)^2 / (2 sigma_r^2)) + exp(-(u + r)^2 / (2 sigma_r^2))] exp(-v^2 / (2 sigma_z^2));
* ``edgeonring2side`` (PA, I_0, r, sigma_r_in, sigma_r_out, sigma_z): as ``edgeonring``
  with each blob's radial width sigma_r_in on its side towards the centre (|u| < r,
  between the blobs) and sigma_r_out outside.

The last three depend on direction, not on an elliptical radius: the renderer integrates
them over pixels by Gauss-Legendre quadrature (``radial = False``). ``gaussianringaz``'s
axis ratio is ``q_ring``, not ``q``: swapping the axes of a q > 1 fit would also swap
A_maj and the minor-axis amplitude, so it is reported as fitted (ell = 1 - q_ring).
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


def _length(name: str, description: str, low: float = 0.05) -> ParameterSpec:
    return ParameterSpec(name, "pix", description, (low, 1e4), "log", imfit=name, domain=_POSITIVE, is_size=True)


R2_A = ParameterSpec("A", "ADU/pix", "surface brightness on the ring's ridge (r = R_ring)", None, "free", imfit="A")
R2_R_RING = _length("R_ring", "radius of the ring along the major axis")
R2_SIGMA_IN = _length("sigma_r_in", "Gaussian radial width inside the ring (r < R_ring), along the major axis")
R2_SIGMA_OUT = _length("sigma_r_out", "Gaussian radial width outside the ring (r > R_ring), along the major axis")
AZ_A_MAJ = ParameterSpec("A_maj", "ADU/pix", "ridge brightness on the major axis", None, "free", imfit="A_maj")
AZ_A_MIN_REL = ParameterSpec("A_min_rel", "", "ridge brightness on the minor axis relative to A_maj", (0.0, 10.0),
                             "linear", imfit="A_min_rel")
AZ_SIGMA = _length("sigma_r", "Gaussian radial width of the ring, along the major axis")
AZ_Q = ParameterSpec("q_ring", "", "axis ratio b/a of the ring (imfit ell = 1 - q_ring), reported as fitted",
                     (0.02, 50.0), "log", imfit="ell", domain=_POSITIVE)
EO_I_0 = ParameterSpec("I_0", "ADU/pix", "peak brightness of each of the two blobs", None, "free", imfit="I_0")
EO_R = _length("r", "distance of each blob from the centre, along the major axis")
EO_SIGMA_R = _length("sigma_r", "Gaussian width of the blobs along the major axis")
EO_SIGMA_IN = _length("sigma_r_in", "Gaussian width of the blobs along the major axis, on their inner side")
EO_SIGMA_OUT = _length("sigma_r_out", "Gaussian width of the blobs along the major axis, on their outer side")
EO_SIGMA_Z = ParameterSpec("sigma_z", "pix", "Gaussian width of the blobs perpendicular to the major axis",
                           (0.05, 1e4), "log", imfit="sigma_z", domain=_POSITIVE)
EDGE_PA = POSITION_ANGLE.relabel(galfit=None)


def _sky_frame(dx: torch.Tensor, dy: torch.Tensor, derived: dict[str, torch.Tensor]):
    """(u, v): offsets along and perpendicular to the major axis [pix] (q = 1)."""
    return elliptical_coordinates(dx, dy, derived["pa"], torch.ones_like(derived["pa"]))


@register
class GaussianRing2Side(EllipticalProfile):
    name = "gaussianring2side"
    description = "elliptical ring with an asymmetric Gaussian radial profile (imfit GaussianRing2Side)"
    imfit_name = "GaussianRing2Side"
    galfit_name = None
    parameters = (POSITION_X, POSITION_Y, R2_A, R2_R_RING, R2_SIGMA_IN, R2_SIGMA_OUT, AXIS_RATIO, POSITION_ANGLE)
    min_gl_order = 4  # a narrow side (sigma_r_out ~ 1 px at small q) needs more than 2 x 2 nodes per pixel
    amplitude = "A"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        return {"r_ring": params["R_ring"], "half_inv_var_in": 0.5 / params["sigma_r_in"] ** 2,
                "half_inv_var_out": 0.5 / params["sigma_r_out"] ** 2}

    @staticmethod
    def surface_brightness(rho, derived):
        d = rho - derived["r_ring"]
        scale = torch.where(d < 0, derived["half_inv_var_in"], derived["half_inv_var_out"])
        return torch.exp(-(d * d) * scale)

    @classmethod
    def surface_brightness_squared(cls, rho_squared, derived):
        return cls.surface_brightness(safe_radius(rho_squared), derived)


class _DirectionalProfile(EllipticalProfile):
    """A profile of the offsets (u, v) themselves: centre and PA, no radial kernels."""

    radial = False
    galfit_name = None

    @classmethod
    def setup(cls, params):
        derived = dict(cls.prepare(params))
        derived["pa"] = params["pa"]
        return derived


@register
class GaussianRingAz(_DirectionalProfile):
    name = "gaussianringaz"
    description = "elliptical Gaussian ring whose ridge brightness varies with azimuth (imfit GaussianRingAz)"
    imfit_name = "GaussianRingAz"
    parameters = (POSITION_X, POSITION_Y, AZ_A_MAJ, AZ_A_MIN_REL, R2_R_RING, AZ_SIGMA, AZ_Q, POSITION_ANGLE)
    amplitude = "A_maj"
    amplitude_kind = "intensity"

    @staticmethod
    def prepare(params):
        rel = params["A_min_rel"]
        return {"mid": 0.5 * (1.0 + rel), "half_diff": 0.5 * (1.0 - rel), "r_ring": params["R_ring"],
                "half_inv_var": 0.5 / params["sigma_r"] ** 2, "inv_q": 1.0 / params["q_ring"]}

    @classmethod
    def brightness(cls, dx, dy, derived):
        """A(theta) / A_maj exp(-(r - R_ring)^2 / (2 sigma_r^2)): 1 on the major axis's ridge."""
        u, v = _sky_frame(dx, dy, derived)
        u2, v2 = u * u, v * v
        w = v * derived["inv_q"]
        r = safe_radius(u2 + w * w)
        # cos 2 theta = (u^2 - v^2) / (u^2 + v^2); 1 at the centre, where the profile is ~0 for R_ring >> sigma_r
        cos2 = (u2 - v2) / safe_radius(u2 + v2) ** 2
        d = r - derived["r_ring"]
        return (derived["mid"] + derived["half_diff"] * cos2) * torch.exp(-(d * d) * derived["half_inv_var"])


@register
class EdgeOnRing(_DirectionalProfile):
    name = "edgeonring"
    description = "edge-on ring as two Gaussian blobs at +-r along the major axis (imfit EdgeOnRing)"
    imfit_name = "EdgeOnRing"
    parameters = (POSITION_X, POSITION_Y, EO_I_0, EO_R, EO_SIGMA_R, EO_SIGMA_Z, EDGE_PA)
    amplitude = "I_0"
    amplitude_kind = "intensity"
    min_gl_order = 4  # thin rings keep sub-pixel structure away from the centre

    @staticmethod
    def prepare(params):
        return {"r": params["r"], "half_inv_var_r": 0.5 / params["sigma_r"] ** 2,
                "half_inv_var_z": 0.5 / params["sigma_z"] ** 2}

    @classmethod
    def brightness(cls, dx, dy, derived):
        u, v = _sky_frame(dx, dy, derived)
        r, k = derived["r"], derived["half_inv_var_r"]
        blobs = torch.exp(-((u - r) ** 2) * k) + torch.exp(-((u + r) ** 2) * k)
        return blobs * torch.exp(-(v * v) * derived["half_inv_var_z"])

    @classmethod
    def total_per_amplitude(cls, derived):
        """Two Gaussians: 2 (2 pi sigma_r sigma_z) [pix^2]."""
        return 4.0 * math.pi / (2.0 * torch.sqrt(derived["half_inv_var_r"] * derived["half_inv_var_z"]))


@register
class EdgeOnRing2Side(_DirectionalProfile):
    name = "edgeonring2side"
    description = "edge-on ring as two asymmetric Gaussian blobs at +-r along the major axis (imfit EdgeOnRing2Side)"
    imfit_name = "EdgeOnRing2Side"
    parameters = (POSITION_X, POSITION_Y, EO_I_0, EO_R, EO_SIGMA_IN, EO_SIGMA_OUT, EO_SIGMA_Z, EDGE_PA)
    amplitude = "I_0"
    amplitude_kind = "intensity"
    min_gl_order = 4

    @staticmethod
    def prepare(params):
        return {"r": params["r"], "k_in": 0.5 / params["sigma_r_in"] ** 2, "k_out": 0.5 / params["sigma_r_out"] ** 2,
                "half_inv_var_z": 0.5 / params["sigma_z"] ** 2}

    @classmethod
    def brightness(cls, dx, dy, derived):
        u, v = _sky_frame(dx, dy, derived)
        r = derived["r"]
        # the blob at +r has its inner side at u < r, the blob at -r at u > -r
        right = u - r
        left = u + r
        k_right = torch.where(right < 0, derived["k_in"], derived["k_out"])
        k_left = torch.where(left > 0, derived["k_in"], derived["k_out"])
        blobs = torch.exp(-(right * right) * k_right) + torch.exp(-(left * left) * k_left)
        return blobs * torch.exp(-(v * v) * derived["half_inv_var_z"])

    @classmethod
    def total_per_amplitude(cls, derived):
        """Two half-Gaussians each side: 2 sqrt(2 pi) (sigma_in + sigma_out) / 2 sqrt(2 pi) sigma_z [pix^2]."""
        s_in, s_out = torch.sqrt(0.5 / derived["k_in"]), torch.sqrt(0.5 / derived["k_out"])
        s_z = torch.sqrt(0.5 / derived["half_inv_var_z"])
        return 2.0 * math.pi * (s_in + s_out) * s_z
