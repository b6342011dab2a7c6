"""Declarations shared by every light profile: parameter specifications and the profile interface.

A profile is a stateless class: its parameters are declared once, with units, default
bounds and the transform the optimiser uses, and its kernels are static functions of
tensors. Nothing is ever stored on a profile; fitted values live in result objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

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
    """

    name: str
    unit: str
    description: str
    bounds: tuple[float, float] | None
    scale: Scale = "linear"


POSITION_X = ParameterSpec("x", "pix", "centre x, 1-based pixel coordinate (pixel centres at integers)", None)
POSITION_Y = ParameterSpec("y", "pix", "centre y, 1-based pixel coordinate (pixel centres at integers)", None)
MAGNITUDE = ParameterSpec("mag", "mag", "total magnitude: zp - 2.5 log10(flux / EXPTIME)", None, "free")
AXIS_RATIO = ParameterSpec(
    "q", "", "axis ratio b/a; internally (0.02, 50) so the major axis can swap, reported in (0.02, 1]",
    (0.02, 50.0), "log",
)
POSITION_ANGLE = ParameterSpec("pa", "deg", "position angle of the major axis, CCW from +y (up=0, left=90)", None, "angle")


class Profile:
    """Base class of all profiles. Subclasses set the class attributes and static kernels."""

    name: ClassVar[str]
    parameters: ClassVar[tuple[ParameterSpec, ...]]
    #: ``elliptical`` (PSF-convolved, rendered by cell integration), ``point`` (a scaled,
    #: shifted PSF) or ``sky`` (added after convolution).
    kind: ClassVar[str]
    description: ClassVar[str] = ""

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        return tuple(p.name for p in cls.parameters)


class EllipticalProfile(Profile):
    """A profile whose surface brightness depends only on the elliptical radius.

    Subclasses implement three pure functions of tensors. ``params`` maps parameter names
    to tensors of shape (B, 1) (or anything broadcastable against the radius tensor with
    the batch first); ``derived`` is what :meth:`prepare` returns from them.
    """

    kind = "elliptical"

    @staticmethod
    def prepare(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-galaxy scalars computed once per evaluation (imfit's Setup phase)."""
        raise NotImplementedError

    @staticmethod
    def surface_brightness(rho: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """Surface brightness at elliptical radius ``rho`` [pix], for unit total flux.

        Units: fraction of the total flux per square pixel, so that the integral over the
        plane (including the factor q of the ellipse's area) is 1.
        """
        raise NotImplementedError

    @staticmethod
    def enclosed_fraction(rho: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fraction of the total flux inside the ellipse of major-axis radius ``rho`` [pix]."""
        raise NotImplementedError

    @classmethod
    def surface_brightness_squared(cls, rho_squared: torch.Tensor, derived: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`surface_brightness` as a function of the squared elliptical radius [pix^2].

        The renderer's hot loops call this; profiles override it when they can skip the
        square root (fewer operations on the full image, and under forward-mode autodiff).
        """
        return cls.surface_brightness(safe_radius(rho_squared), derived)


def safe_radius(rho_squared: torch.Tensor) -> torch.Tensor:
    """sqrt with a floor, so that gradients stay finite at r = 0 (no NaN reaches backward)."""
    tiny = 1e-24 if rho_squared.dtype == torch.float64 else 1e-14
    return torch.sqrt(rho_squared.clamp(min=tiny))
