"""The coordinate, angle, size and flux conventions of galprof, stated once.

galprof follows GALFIT everywhere a user can see a number:

* **Pixels** are 1-based: the centre of the first pixel of an image is (1, 1), and
  pixel (x, y) covers [x - 0.5, x + 0.5] x [y - 0.5, y + 0.5]. ``x`` runs along FITS
  NAXIS1 (the fast, column axis; numpy axis -1) and ``y`` along NAXIS2 (numpy axis -2).
  An array ``image[j, i]`` therefore holds the pixel centred at (x, y) = (i + 1, j + 1).
* **Position angle** (PA) is in degrees, measured from +y (up) towards -x (left):
  up = 0, left = 90, i.e. counter-clockwise from +y when x increases to the right.
  Reported PAs lie in (-90, 90].
* **Sizes** (R_e, R_s, FWHM) are along the major axis, in pixels.
* **Axis ratio** q = b/a, 0 < q <= 1 in anything reported.
* **Elliptical radius** of a point (x, y) about (x0, y0):
  u = -(x - x0) sin PA + (y - y0) cos PA   (along the major axis),
  v = -(x - x0) cos PA - (y - y0) sin PA   (along the minor axis),
  r = sqrt(u^2 + (v / q)^2).
* **Magnitudes**: mag = zeropoint - 2.5 log10(total flux / EXPTIME), with the flux the
  total model flux in image units (ADU) summed over the infinite plane, and EXPTIME
  from the image header (1 when absent).
* **Sky**: value at the centre of the fit region [ADU per pixel], with gradients
  dsky/dx and dsky/dy [ADU per pixel per pixel]; it is not convolved with the PSF.
* **PSF centre**: for an N x N PSF stamp the centre is the pixel with 0-based index
  N // 2 on each axis (1-based N // 2 + 1): the middle pixel when N is odd, and the
  pixel just above/right of the geometric middle when N is even (as GALFIT does).

Internally the renderer uses the same 1-based pixel coordinates; angles are converted
to radians only inside the geometry helpers below.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "flux_from_mag",
    "mag_from_flux",
    "elliptical_coordinates",
    "elliptical_radius_squared",
    "canonical_pa_deg",
]


def flux_from_mag(mag: torch.Tensor, zeropoint: float, exptime: float) -> torch.Tensor:
    """Total flux [ADU] of a component of magnitude ``mag``: EXPTIME * 10^(-0.4 (mag - zp))."""
    return exptime * torch.pow(10.0, -0.4 * (mag - zeropoint))


def mag_from_flux(flux, zeropoint: float, exptime: float):
    """Magnitude of a total flux [ADU]: zp - 2.5 log10(flux / EXPTIME). Works on numpy or torch."""
    if isinstance(flux, torch.Tensor):
        return zeropoint - 2.5 * torch.log10(flux / exptime)

    return zeropoint - 2.5 * np.log10(np.asarray(flux) / exptime)


def elliptical_coordinates(dx: torch.Tensor, dy: torch.Tensor, pa_deg: torch.Tensor, q: torch.Tensor):
    """Rotate pixel offsets into the frame of an ellipse and circularise it.

    Args:
        dx, dy: offsets x - x0, y - y0 [pixels].
        pa_deg: position angle [degrees, counter-clockwise from +y].
        q: axis ratio b/a.

    Returns:
        (u, w): u along the major axis, w = v / q along the (stretched) minor axis, so
        that the elliptical radius is sqrt(u^2 + w^2). Areas in (u, w) are 1/q times
        areas in (x, y).

    Shape:
        all inputs broadcast together; outputs have the broadcast shape.
    """
    pa = pa_deg * (math.pi / 180.0)
    s, c = torch.sin(pa), torch.cos(pa)
    u = -dx * s + dy * c
    v = -dx * c - dy * s
    return u, v / q


def elliptical_quadratic_form(pa_deg: torch.Tensor, q: torch.Tensor):
    """Coefficients (A, C, H) of the squared elliptical radius A dx^2 + C dy^2 + 2 H dx dy.

    Args:
        pa_deg: position angle [degrees, counter-clockwise from +y].
        q: axis ratio b/a.
    """
    pa = pa_deg * (math.pi / 180.0)
    s, c = torch.sin(pa), torch.cos(pa)
    inv_q2 = 1.0 / (q * q)
    return s * s + c * c * inv_q2, c * c + s * s * inv_q2, s * c * (inv_q2 - 1.0)


def elliptical_quadratic_form_slopes(pa_deg: torch.Tensor, q: torch.Tensor, name: str):
    """d(A, C, H) / d name of :func:`elliptical_quadratic_form` (A = s^2 + c^2 / q^2,
    C = c^2 + s^2 / q^2, H = s c (1 / q^2 - 1), s, c the sine and cosine of the PA), for
    ``name`` ``"pa"`` [per degree] or ``"q"``; zeros for any other name.

    Args:
        pa_deg: position angle [degrees, counter-clockwise from +y].
        q: axis ratio b/a (same shape as ``pa_deg`` or broadcastable).
        name: the parameter to differentiate by.

    Returns:
        (dA, dC, dH) in the broadcast shape of ``pa_deg`` and ``q``.
    """
    pa = pa_deg * (math.pi / 180.0)
    s, c = torch.sin(pa), torch.cos(pa)
    inv_q2 = 1.0 / (q * q)
    if name == "pa":
        k = math.pi / 180.0
        return (k * 2.0 * s * c * (1.0 - inv_q2), k * 2.0 * s * c * (inv_q2 - 1.0), k * (c * c - s * s) * (inv_q2 - 1.0))
    if name == "q":
        inv_q3 = inv_q2 / q
        return -2.0 * c * c * inv_q3, -2.0 * s * s * inv_q3, -2.0 * s * c * inv_q3
    zero = torch.zeros_like(pa)
    return zero, zero, zero


def elliptical_radius_squared(dx: torch.Tensor, dy: torch.Tensor, pa_deg: torch.Tensor, q: torch.Tensor):
    """Squared elliptical radius u^2 + w^2 of offsets (see :func:`elliptical_coordinates`).

    Written as the quadratic form A dx^2 + C dy^2 + 2 H dx dy with per-galaxy A, C, H
    (:func:`elliptical_quadratic_form`), so that when dx and dy lie on a tensor grid
    (shapes (B, 1, W) and (B, H, 1)) only three operations touch the full (B, H, W) grid.

    Args:
        dx, dy: offsets x - x0, y - y0 [pixels].
        pa_deg: position angle [degrees, counter-clockwise from +y].
        q: axis ratio b/a.
    """
    return evaluate_quadratic_form(*elliptical_quadratic_form(pa_deg, q), dx, dy)


def evaluate_quadratic_form(a, cc, h, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """A dx^2 + C dy^2 + 2 H dx dy for coefficients from :func:`elliptical_quadratic_form`
    (or their derivatives); offsets dx, dy [pix]."""
    return (a * dx * dx + cc * dy * dy) + (2.0 * h * dy) * dx


def canonical_pa_deg(pa_deg):
    """Reduce a position angle [deg] into (-90, 90] (an ellipse is symmetric under PA + 180)."""
    if isinstance(pa_deg, torch.Tensor):
        return 90.0 - torch.remainder(90.0 - pa_deg, 180.0)

    return 90.0 - np.remainder(90.0 - np.asarray(pa_deg, dtype=float), 180.0)
