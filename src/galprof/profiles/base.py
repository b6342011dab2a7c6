"""Declarations shared by every light profile: parameter specifications and the profile interface.

A profile is a stateless class: its parameters are declared once, with units, default
bounds and the transform the optimiser uses, and its kernels are static functions of
tensors. Nothing is ever stored on a profile; fitted values live in result objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np
import torch

from ..conventions import elliptical_quadratic_form, elliptical_radius_squared, evaluate_quadratic_form

Scale = Literal["linear", "log", "angle", "free"]


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter of a profile.

    Attributes:
        name: internal name (``x``, ``y``, ``mag``, ``r_e``, ``n``, ``q``, ``pa``, ...).
        unit: unit as shown to users.
        description: one line, with the convention it follows.
        bounds: default (low, high) kept by the optimiser's smooth transform; ``None``
            means the bound comes from context (positions: the fit region).
        scale: ``linear`` (bounded by a scaled logistic), ``log`` (logistic in log space,
            for positive quantities), ``angle`` (unbounded, reported modulo 180 deg), ``free`` (unbounded, identity).
        galfit: the GALFIT feedme line that holds it (``"1"`` for x and y, ``"3"``,
            ``"4"``, ..., ``"C0"``, ``"F1"``), or None when GALFIT has no such parameter.
        imfit: its label in an imfit configuration (``r_e``, ``I_0``, ...), or None.
        domain: (low, high), the open interval outside which the profile is undefined
            (alpha > 0: (0, inf)); values and user bounds reaching outside it are an
            error. None: no restriction beyond ``bounds`` (a log-scaled parameter is
            positive).
        is_size: a length along the major axis [pix] (scaled by q when a fit that
            swapped the axes is reported with q <= 1).
        per_length: an inverse length along the major axis [1/pix] (divided by q then).
    """

    def relabel(self, **changes) -> "ParameterSpec":
        """A copy with some fields changed (e.g. another GALFIT line or bounds)."""
        return replace(self, **changes)

    name: str
    unit: str
    description: str
    bounds: tuple[float, float] | None
    scale: Scale = "linear"
    galfit: str | None = None
    imfit: str | None = None
    domain: tuple[float, float] | None = None
    is_size: bool = False
    per_length: bool = False


POSITION_X = ParameterSpec("x", "pix", "centre x, 1-based pixel coordinate (pixel centres at integers)", None,
                           galfit="1", imfit="X0")
POSITION_Y = ParameterSpec("y", "pix", "centre y, 1-based pixel coordinate (pixel centres at integers)", None,
                           galfit="1", imfit="Y0")
MAGNITUDE = ParameterSpec("mag", "mag", "total magnitude: zp - 2.5 log10(flux / EXPTIME)", None, "free", galfit="3")
AXIS_RATIO = ParameterSpec(
    "q", "", "axis ratio b/a; internally (0.02, 50) so the major axis can swap, reported in (0.02, 1]",
    (0.02, 50.0), "log", galfit="9", imfit="ell",
)
POSITION_ANGLE = ParameterSpec("pa", "deg", "position angle of the major axis, CCW from +y (up=0, left=90)", None,
                               "angle", galfit="10", imfit="PA")
SURFACE_BRIGHTNESS = ParameterSpec(
    "mu_0", "mag/arcsec^2", "central surface brightness: zp - 2.5 log10(I_0 / (EXPTIME dx dy)), I_0 [ADU/pix]",
    None, "free", galfit="3")

#: How a profile's amplitude parameter sets its brightness (see :func:`amplitude_scale`).
AMPLITUDE_KINDS = ("total_magnitude", "surface_brightness", "intensity")


class Profile:
    """Base class of all profiles. Subclasses set the class attributes and static kernels."""

    name: ClassVar[str]
    parameters: ClassVar[tuple[ParameterSpec, ...]]
    #: ``elliptical`` (PSF-convolved, rendered by cell integration), ``point`` (a scaled,
    #: shifted PSF) or ``sky`` (added after convolution).
    kind: ClassVar[str]
    description: ClassVar[str] = ""
    #: the parameter the image is linear in (None for the sky), and how it scales it:
    #: ``total_magnitude`` (the profile's brightness is per unit total flux),
    #: ``surface_brightness`` (mag/arcsec^2 at the profile's reference point; the
    #: brightness is 1 there) or ``intensity`` (ADU/pix at the reference point).
    amplitude: ClassVar[str | None] = "mag"
    amplitude_kind: ClassVar[str] = "total_magnitude"
    #: GALFIT component name (None: GALFIT has none) and imfit function name.
    galfit_name: ClassVar[str | None] = None
    imfit_name: ClassVar[str | None] = None
    #: imfit's parameter labels in imfit's order, where that is not PA, ell and then the
    #: others in the order of ``parameters``; it may name the shape modifier ``c0`` (of
    #: :mod:`.modifiers`) that the imfit function carries (``Sersic_GenEllipse``)
    imfit_order: ClassVar[tuple[str, ...] | None] = None
    #: comment written after each GALFIT line of this profile by the feedme writer
    galfit_comments: ClassVar[dict[str, str]] = {}
    #: parameters a staged LM fit holds fixed at first and multi-starts vary (a Sérsic
    #: index "n"); see :func:`galprof.fit`
    staged: ClassVar[tuple[str, ...]] = ()
    #: Gauss-Legendre nodes per axis per pixel at least (without a PSF), for profiles
    #: with sub-pixel structure away from the centre (a thin edge-on disk)
    min_gl_order: ClassVar[int] = 1

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        return tuple(p.name for p in cls.parameters)

    @classmethod
    def spec(cls, name: str) -> ParameterSpec:
        """The specification of parameter ``name``."""
        for p in cls.parameters:
            if p.name == name:
                return p
        raise KeyError(f"profile {cls.name!r} has no parameter {name!r}")

    @classmethod
    def sersic_equivalent(cls, value) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The Sérsic profile whose light inside every ellipse is this profile's, for
        derived quantities such as the half-light radius of a sum of components
        (:func:`galprof.uncertainty.effective_radius`).

        Args:
            value: ``value(name)`` returns the (B,) tensor of parameter ``name`` in user
                units.

        Returns:
            (R_e, n): the half-light radius along the major axis [pix] and the Sérsic
            index, (B,) tensors; None for a point source (all its light at the centre).

        Raises:
            NotImplementedError: the profile's light is not that of a Sérsic profile.
        """
        raise NotImplementedError(f"profile {cls.name!r} has no Sérsic equivalent")

    @classmethod
    def galfit_lines(cls) -> dict[str, tuple[str, ...]]:
        """GALFIT line -> parameter names on it, in line order (line 1 holds x and y)."""
        lines: dict[str, tuple[str, ...]] = {}
        for p in cls.parameters:
            if p.galfit is not None:
                lines[p.galfit] = lines.get(p.galfit, ()) + (p.name,)
        return lines


class EllipticalProfile(Profile):
    """A PSF-convolved profile with a centre, an axis ratio and a position angle.

    The default geometry is *radial*: the brightness is a function of the elliptical
    radius (see :mod:`galprof.conventions`), possibly generalised by the shape modifiers
    of :mod:`galprof.profiles.modifiers`. A radial subclass implements pure functions of
    tensors: :meth:`prepare` and :meth:`surface_brightness` (and, for speed,
    :meth:`surface_brightness_squared`), optionally :meth:`enclosed_fraction` (a
    numerical default is provided). A non-radial profile (an edge-on disk) sets
    ``radial = False`` and overrides :meth:`brightness`.

    ``params`` maps parameter names to tensors of shape (B, 1, 1) (broadcastable against
    the coordinate tensors, batch first); ``derived`` is what :meth:`setup` returns.
    """

    kind = "elliptical"
    radial: ClassVar[bool] = True
    #: optional analytic derivatives for the Jacobian (:mod:`galprof.render.tangents`):
    #: a classmethod ``brightness_tangents(rho_squared, derived, tangents)`` returning
    #: the brightness exactly as :meth:`surface_brightness_squared` computes it, d ln I /
    #: d rho^2, and for each ``(name, d derived / d name)`` of ``tangents`` d ln I / d
    #: name at fixed rho^2 (a tensor broadcastable against rho^2, or None where it is 0).
    #: None: the Jacobian of the profile comes from forward-mode autodiff.
    brightness_tangents: ClassVar = None
    #: optional, for the exact core's tangents: a classmethod
    #: ``enclosed_fraction_tangents(rho, derived, tangents)`` returning
    #: :meth:`enclosed_fraction` (float64) and, per ``(name, d derived / d name)``, its
    #: derivative at fixed rho. None: those tangents come from central differences.
    enclosed_fraction_tangents: ClassVar = None
    #: optional, for the analytic Jacobian: a classmethod ``setup_tangents(derived,
    #: names)`` returning, per name, {key: d derived[key] / d name} for every key of
    #: ``derived`` = :meth:`setup`'s output ((B, 1, 1) tensors). None: central
    #: differences of :meth:`setup`.
    setup_tangents: ClassVar = None
    #: the radius is generalised by shape modifiers (set by :mod:`.modifiers`)
    shape_modified: ClassVar[bool] = False
    #: the (generalised) radius is homogeneous of degree one in the offsets (rho = |(u, w)|
    #: h(direction)), so that the renderer integrates the cells around a cuspy centre
    #: exactly from :meth:`enclosed_fraction` and :meth:`radius_scale`. False (bending,
    #: coordinate rotation, truncation): those integrals are exact for
    #: :meth:`brightness_reference` (the profile linearised at its centre, homogeneous),
    #: and the remainder (brightness - reference, continuous at the centre) is added by
    #: Gauss-Legendre quadrature; away from the centre the light is anti-aliased everywhere.
    homogeneous_radius: ClassVar[bool] = True
    #: a fit's q > 1 may be reported as q < 1 with PA + 90 (sizes scaled by q) and the PA
    #: modulo 180 deg; False where the shape is not symmetric under these (bending modes,
    #: coordinate rotation, truncation): such a component is reported as fitted.
    axes_swappable: ClassVar[bool] = True

    @staticmethod
    def prepare(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-galaxy scalars computed once per evaluation (imfit's Setup phase)."""
        raise NotImplementedError

    @classmethod
    def setup(cls, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`prepare` plus the geometry the renderer needs: ``pa``, ``q`` and the
        coefficients ``_form_a``, ``_form_c``, ``_form_h`` of the squared elliptical
        radius (:func:`galprof.conventions.elliptical_quadratic_form`), formed once per
        evaluation instead of at every set of sample points."""
        derived = dict(cls.prepare(params))
        derived["pa"] = params["pa"]
        derived["q"] = params["q"]
        derived["_form_a"], derived["_form_c"], derived["_form_h"] = elliptical_quadratic_form(params["pa"],
                                                                                           params["q"])
        return derived

    @staticmethod
    def surface_brightness(rho: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """Surface brightness at elliptical radius ``rho`` [pix] for a unit amplitude.

        With a ``total_magnitude`` amplitude: fraction of the total flux per square
        pixel (the integral over the plane, including the factor q of the ellipse's
        area, is 1); otherwise relative to the reference brightness (1 there).
        """
        raise NotImplementedError

    @classmethod
    def enclosed_fraction(cls, rho: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """Light inside the ellipse of major-axis radius ``rho`` [pix], per unit amplitude
        (for a total-magnitude profile: the fraction of the total flux).

        This default integrates 2 pi q int_0^rho I(s) s ds numerically (Gauss-Legendre
        on geometric panels, the first with s = rho_0 t^2 so an integrable cusp
        r^-gamma, gamma < 2, is smooth); profiles override it with closed forms."""
        return numerical_enclosed(cls, rho, derived)

    @classmethod
    def radius_squared(cls, dx: torch.Tensor, dy: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """Squared (generalised) elliptical radius of offsets dx, dy [pix] from the centre
        (with the quadratic form of :meth:`setup` where ``derived`` holds it)."""
        if "_form_a" in derived:
            return evaluate_quadratic_form(derived["_form_a"], derived["_form_c"], derived["_form_h"], dx, dy)
        return elliptical_radius_squared(dx, dy, derived["pa"], derived["q"])

    @classmethod
    def brightness(cls, dx: torch.Tensor, dy: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """Surface brightness per unit amplitude at offsets dx = x - x0, dy = y - y0 [pix]."""
        return cls.surface_brightness_squared(cls.radius_squared(dx, dy, derived), derived)

    @classmethod
    def brightness_reference(cls, dx: torch.Tensor, dy: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """For a profile whose radius is not homogeneous (``homogeneous_radius`` False): the
        brightness [per unit amplitude] at offsets dx, dy [pix] of its linearisation at the
        centre, whose cell integrals :meth:`enclosed_fraction` and :meth:`radius_scale`
        give exactly; the homogeneous default is the brightness itself."""
        return cls.brightness(dx, dy, derived)

    @classmethod
    def radius_scale(cls, u: torch.Tensor, w: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """For shape-modified radii: h with rho = sqrt(u^2 + w^2) h, for the circularised
        coordinates (u, w) of :func:`galprof.conventions.elliptical_coordinates`; None
        for a plain ellipse (h = 1)."""
        return None

    @classmethod
    def surface_brightness_squared(cls, rho_squared: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`surface_brightness` as a function of the squared elliptical radius [pix^2].

        The renderer's hot loops call this; profiles override it when they can skip the
        square root (fewer operations on the full image, and under forward-mode autodiff).
        """
        return cls.surface_brightness(safe_radius(rho_squared), derived)


_PANELS = 12  # geometric panels [rho 2^-k-1, rho 2^-k] of the numerical enclosed light
_PANEL_NODES = 6


def numerical_enclosed(profile, rho: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
    """2 pi q int_0^rho I(s) s ds of a radial profile by Gauss-Legendre quadrature.

    ``rho`` (..., N) and ``derived`` broadcastable against it. Panels [rho/2^(k+1),
    rho/2^k] for k < 12, and [0, rho/2^12] with s = rho/2^12 t^2; 6 nodes each. Relative
    accuracy ~1e-7 for smooth profiles and ~1e-5 at a kink (a truncation radius), but
    ~1e-3 just beyond a break sharper than 0.2 px, and worse at radii of thousands of
    scale lengths (the last panel is too coarse): meant for the renderer's central
    cells, not for total fluxes at huge radii.
    """
    nodes, weights = np.polynomial.legendre.leggauss(_PANEL_NODES)
    t = torch.as_tensor((nodes + 1.0) / 2.0, dtype=rho.dtype, device=rho.device)
    w = torch.as_tensor(weights / 2.0, dtype=rho.dtype, device=rho.device)
    lows = torch.as_tensor([2.0 ** -(k + 1) for k in range(_PANELS)], dtype=rho.dtype, device=rho.device)
    # panel k: s = rho * (low_k + t (2 low_k - low_k)), ds = rho low_k dt
    frac = (lows[:, None] * (1.0 + t[None, :])).reshape(-1)  # (panels * nodes,)
    jac = (lows[:, None] * w[None, :]).reshape(-1)
    # first panel [0, rho 2^-12] with s = rho 2^-12 t^2, ds = rho 2^-12 2 t dt
    first = 2.0 ** -_PANELS
    frac = torch.cat([first * t * t, frac])
    jac = torch.cat([first * 2.0 * t * w, jac])
    s = rho.unsqueeze(-1) * frac
    d = {k: v.unsqueeze(-1) for k, v in derived.items()}
    value = profile.surface_brightness_squared(s * s, d)
    total = (value * s * jac).sum(-1) * rho
    return 2.0 * math.pi * derived["q"] * total


def safe_radius(rho_squared: torch.Tensor) -> torch.Tensor:
    """sqrt with a floor, so that gradients stay finite at r = 0 (no NaN reaches backward)."""
    tiny = 1e-24 if rho_squared.dtype == torch.float64 else 1e-14
    return torch.sqrt(rho_squared.clamp(min=tiny))
