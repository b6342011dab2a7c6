"""GALFIT 3's coordinate deformations of a radial profile: bending modes (lines ``B1)``..),
coordinate rotation (``R0)``..``R10)``) and hyperbolic-tangent truncation (``T0)``..``T10)``).

Pure functions of tensors (batch first, per-galaxy values broadcasting against the
offsets); :mod:`galprof.profiles.modifiers` builds the profile variants that use them.
Sources: Peng, Ho, Impey & Rix 2010, AJ 139, 2097 (GALFIT 3), and GALFIT's feedme
syntax (its user manual and example feedmes). Where they leave a choice open the choice
is stated here and in ``docs/method.md``.

Conventions (pixels, PA in degrees counter-clockwise from +y as everywhere in galprof):

* **Coordinate rotation** (spiral structure). A sky offset ``(dx, dy)`` is first
  deprojected from a disk inclined by ``i`` (R9, 0 = face-on) whose line of nodes lies at
  sky position angle ``phi`` (R10): the offset across the line of nodes is divided by
  cos i, the one along it is kept, and the result is kept in sky orientation. Its length
  r is the radius in the disk plane. The coordinates are then rotated by -theta(r), so
  that the component (its ellipse, C0 and Fourier modes, bending) appears rotated by
  +theta(r), i.e. its position angle at radius r is PA + theta(r) (counter-clockwise for
  theta > 0, galprof's choice of sign). Peng et al. (2010, eq. 8-10):

      theta(r) = theta_out * ramp(r) * g(r)
      ramp(r)  = (tanh(B (r / r_out - 1) + 2) + 1) / 2,
      B        = (2 - atanh(A)) r_out / (r_out - r_in),
      A        = 2 CDEF / (|theta_out| + CDEF) - 1.00001,  CDEF = 0.23 [rad],

  so that tanh reaches tanh(2) = 96 % at r_out ("96 % asymptotic radius", R2) and the
  rotation at r_in (R1, "bar radius") is about CDEF radians (13 deg) whatever theta_out
  (R3 [deg], theta_out converted to radians); g(r) = (r / r_out / 2 + 1 / 2)^alpha for
  the power law (R4 = alpha), g(r) = (log(r / r_ws + 1) / log(r_out / r_ws + 1) + 1) / 2
  for the logarithmic spiral (R4 = r_ws, the winding scale radius), and g = 1 for the
  pure hyperbolic tangent. g(r_out) = 1 in all three.
* **Bending modes** (Peng et al. 2010, section 4.3): in the frame of the component's
  ellipse (u along the major axis, v along the minor axis, both in pixels, (u, v)
  right-handed), v' = v + sum_m B_m (u / r_scale)^m; B_m [pix] is the displacement of
  the minor-axis coordinate at u = r_scale, with r_scale the profile's first size
  parameter (its GALFIT line 4: R_e, R_s, FWHM, ...; galprof's reading of "r_scale").
  Mode 1 is a shear, 2 a banana, 3 an S shape. The map (u, v) -> (u, v') has unit
  Jacobian: bending moves light without changing the total.
* **Truncation** (GALFIT manual, section on truncation): the brightness is multiplied by
  P(s) = (1 + tanh(z)) / 2 with z = c (1 - 2 (s - r_break) / dr) for an outer and
  z = c (1 - 2 (r_break - s) / dr) for an inner truncation, c = atanh(0.98): P = 99 %
  of the untruncated profile at the break radius (T4) and 1 % at r_break +- dr, dr the
  softening length (T5; type 2: T5 is the radius of the 1 % point and dr =
  |T5 - r_break|). s is the truncation's own elliptical radius (``radial``:
  sqrt(u_t^2 + (v_t / q_t)^2) about its centre (T1) with its axis ratio (T9) and PA
  (T10), each the parent's when not given), or the offset along its major (``length``:
  |u_t|) or minor axis (``height``: |v_t|).
"""

from __future__ import annotations

import math

import torch

from ..conventions import elliptical_coordinates
from .base import safe_radius

#: Peng et al. (2010)'s constant of the rotation ramp: the rotation reached at r_in [rad]
CDEF = 0.23
#: atanh(0.98): the truncation taper is 99 % at the break radius and 1 % a softening length away
TAPER_CONSTANT = math.atanh(0.98)
_DEG = math.pi / 180.0


def frame_offsets(dx: torch.Tensor, dy: torch.Tensor, pa_deg: torch.Tensor):
    """(u, v): offsets [pix] along the major axis and the minor axis of an ellipse of
    position angle ``pa_deg`` [deg, CCW from +y]; (u, v) is right-handed and v is *not*
    divided by q (see :func:`galprof.conventions.elliptical_coordinates`)."""
    return elliptical_coordinates(dx, dy, pa_deg, torch.ones_like(pa_deg))


def sky_offsets(u: torch.Tensor, v: torch.Tensor, pa_deg: torch.Tensor):
    """The inverse of :func:`frame_offsets`: (dx, dy) [pix] of the offsets (u, v) along
    the major and minor axes of an ellipse of position angle ``pa_deg`` [deg]."""
    pa = pa_deg * _DEG
    s, c = torch.sin(pa), torch.cos(pa)
    return -u * s - v * c, u * c - v * s


def deproject(dx: torch.Tensor, dy: torch.Tensor, incl_deg: torch.Tensor, sky_pa_deg: torch.Tensor):
    """Sky offsets -> disk-plane offsets of a disk of inclination ``incl_deg`` (0: face-on)
    whose line of nodes lies at position angle ``sky_pa_deg`` [deg, CCW from +y].

    Returns (X, Y, r): the disk-plane offset in sky orientation [pix] (the component
    along the line of nodes kept, the one across it divided by cos i) and its length r.
    """
    n, m = frame_offsets(dx, dy, sky_pa_deg)
    m = m / torch.cos(incl_deg * _DEG)
    x, y = sky_offsets(n, m, sky_pa_deg)
    return x, y, safe_radius(n * n + m * m)


def rotate(x: torch.Tensor, y: torch.Tensor, angle: torch.Tensor):
    """(x, y) rotated counter-clockwise by ``angle`` [rad]."""
    c, s = torch.cos(angle), torch.sin(angle)
    return x * c - y * s, x * s + y * c


def rotation_ramp_slope(r_in: torch.Tensor, r_out: torch.Tensor, theta_out_rad: torch.Tensor) -> torch.Tensor:
    """B of Peng et al. (2010)'s hyperbolic-tangent ramp: (2 - atanh(A)) r_out / (r_out - r_in),
    A = 2 CDEF / (|theta_out| + CDEF) - 1.00001 (r_in, r_out [pix], theta_out [rad])."""
    a = 2.0 * CDEF / (theta_out_rad.abs() + CDEF) - 1.00001
    return (2.0 - torch.atanh(a)) * r_out / (r_out - r_in)


def rotation_angle(r: torch.Tensor, kind: str, theta_out_rad: torch.Tensor, ramp_slope: torch.Tensor,
                   r_out: torch.Tensor, shape: torch.Tensor | None = None) -> torch.Tensor:
    """theta(r) [rad] of the coordinate rotation at disk-plane radius ``r`` [pix].

    Args:
        kind: ``"power"`` (``shape`` = alpha), ``"log"`` (``shape`` = r_ws [pix]) or
            ``"tanh"`` (no asymptotic factor, ``shape`` unused).
        theta_out_rad: theta_out [rad]; ramp_slope: :func:`rotation_ramp_slope`.
    """
    ramp = 0.5 * (torch.tanh(ramp_slope * (r / r_out - 1.0) + 2.0) + 1.0)
    if kind == "power":
        factor = torch.exp(shape * torch.log(0.5 * (r / r_out + 1.0)))
    elif kind == "log":
        factor = 0.5 * (torch.log1p(r / shape) / torch.log1p(r_out / shape) + 1.0)
    elif kind == "tanh":
        factor = 1.0
    else:
        raise ValueError(f"unknown rotation function {kind!r} (power, log, tanh)")
    return theta_out_rad * ramp * factor


def bend(u: torch.Tensor, v: torch.Tensor, amplitudes: dict[int, torch.Tensor], r_scale: torch.Tensor,
         linear: bool = False) -> torch.Tensor:
    """v + sum_m B_m (u / r_scale)^m [pix] for the bending amplitudes ``{m: B_m}`` [pix];
    ``linear``: the terms of first order in the offsets only (mode 1, a shear)."""
    t = u / r_scale
    out = v
    power = None
    for m in range(1, max(amplitudes, default=0) + 1):
        power = t if power is None else power * t
        if m in amplitudes and (m == 1 or not linear):
            out = out + amplitudes[m] * power
    return out


def taper(s: torch.Tensor, r_break: torch.Tensor, softening: torch.Tensor, inner: bool) -> torch.Tensor:
    """The truncation factor (1 + tanh(z)) / 2 at radius (or length) ``s`` [pix]: 0.99 at
    ``r_break`` and 0.01 a softening length ``softening`` beyond it (outer) or inside it
    (``inner``)."""
    distance = (r_break - s) if inner else (s - r_break)
    return 0.5 * (1.0 + torch.tanh(TAPER_CONSTANT * (1.0 - 2.0 * distance / softening)))


__all__ = ["CDEF", "TAPER_CONSTANT", "bend", "deproject", "frame_offsets", "rotate", "rotation_angle",
           "rotation_ramp_slope", "sky_offsets", "taper"]
