"""GALFIT's shape modifiers of radial profiles: the generalised ellipse (C0) and
azimuthal Fourier modes (F1..F10).

Any radial elliptical profile takes them: a component whose values include ``c0`` or
``f<m>_amp`` and ``f<m>_phase`` is rendered by a variant of its profile class (made by
:func:`with_modifiers`, cached) whose radius is generalised. In the circularised frame
of the ellipse, (u, w) = (major-axis offset, minor-axis offset / q) (see
:func:`galprof.conventions.elliptical_coordinates`):

* generalised ellipse: rho_0 = (|u|^(C0 + 2) + |w|^(C0 + 2))^(1 / (C0 + 2)); C0 = 0 is
  the ellipse, C0 > 0 boxy, C0 < 0 disky (C0 > -2);
* Fourier modes: rho = rho_0 (1 + sum_m a_m cos(m (theta + phi_m))), with
  theta = atan2(w, u) measured in the circularised frame from the major axis towards
  the +w side (counter-clockwise on the sky, like the PA) and phi_m [deg] the phase of
  mode m relative to the major axis.

Both keep rho homogeneous of degree one in the offsets, rho = |(u, w)| h(theta), which
is what lets the renderer integrate cuspy centres exactly (the light of a sector is
E(R h) / h^2). For a profile parameterised by its total magnitude the brightness is
divided by the changed area of the unit isophote, A / pi with
A = 1/2 int_0^2pi h(theta)^-2 dtheta (closed form 4 Gamma(1 + 1/c)^2 / Gamma(1 + 2/c) for
C0 alone; 720-node trapezoid rule with Fourier modes), so that the magnitude stays
the component's total magnitude. Surface-brightness and intensity amplitudes are
local and need no correction.
"""

from __future__ import annotations

import functools
import math

import torch

from ..conventions import elliptical_coordinates
from .base import EllipticalProfile, ParameterSpec, safe_radius

MAX_FOURIER_MODE = 10
_AREA_NODES = 720

C0 = ParameterSpec("c0", "", "generalised-ellipse shape: boxy > 0, disky < 0 (radius exponent C0 + 2)",
                   (-1.0, 3.0), "linear", galfit="C0", domain=(-2.0, math.inf))


def fourier_specs(mode: int) -> tuple[ParameterSpec, ParameterSpec]:
    """The amplitude and phase parameters of Fourier mode ``mode`` (GALFIT line F<mode>)."""
    amp = ParameterSpec(f"f{mode}_amp", "", f"amplitude a_{mode} of Fourier mode {mode} (radius factor 1 + a cos)",
                        (-0.9, 0.9), "linear", galfit=f"F{mode}", domain=(-1.0, 1.0))
    phase = ParameterSpec(f"f{mode}_phase", "deg", f"phase phi_{mode} of Fourier mode {mode}, from the major axis",
                          None, "free", galfit=f"F{mode}")
    return amp, phase


def modifier_names(names) -> tuple[bool, tuple[int, ...]]:
    """(has C0, Fourier modes) named among parameter ``names``; unknown ones are ignored."""
    names = set(names)
    modes = tuple(m for m in range(1, MAX_FOURIER_MODE + 1) if f"f{m}_amp" in names or f"f{m}_phase" in names)
    return "c0" in names, modes


def _unit_angles(u: torch.Tensor, w: torch.Tensor):
    r = safe_radius(u * u + w * w)
    return u / r, w / r, r


def _fourier_factor(cos1, sin1, derived, modes) -> torch.Tensor:
    """1 + sum_m a_m cos(m (theta + phi_m)), from cos(theta), sin(theta) by recurrence."""
    factor = torch.ones_like(cos1)
    cm, sm = cos1, sin1
    for m in range(1, max(modes) + 1):
        if m > 1:
            cm, sm = cm * cos1 - sm * sin1, sm * cos1 + cm * sin1
        if m in modes:
            phase = derived[f"f{m}_phase"] * (m * math.pi / 180.0)
            factor = factor + derived[f"f{m}_amp"] * (cm * torch.cos(phase) - sm * torch.sin(phase))
    return factor


def _c0_factor(cos1, sin1, derived) -> torch.Tensor:
    """h of the generalised ellipse: (|cos|^c + |sin|^c)^(1/c), c = C0 + 2."""
    c = derived["c0"] + 2.0
    tiny = 1e-30 if cos1.dtype == torch.float64 else 1e-18
    a = torch.exp(c * torch.log(cos1.abs().clamp(min=tiny)))
    b = torch.exp(c * torch.log(sin1.abs().clamp(min=tiny)))
    return torch.exp(torch.log(a + b) / c)


def _scale(base_has_c0: bool, modes, cos1, sin1, derived) -> torch.Tensor:
    h = _c0_factor(cos1, sin1, derived) if base_has_c0 else torch.ones_like(cos1)
    if modes:
        h = h * _fourier_factor(cos1, sin1, derived, modes)
    return h


def isophote_area_over_pi(has_c0: bool, modes, derived, like: torch.Tensor) -> torch.Tensor:
    """Area of the unit isophote rho <= 1 in the circularised frame, over pi (1 for an
    ellipse without modifiers): the factor by which the shape modifiers change a
    profile's total light, so that a total-magnitude profile keeps its flux.

    Args:
        has_c0: whether the generalised-ellipse exponent ``derived["c0"]`` applies.
        modes: the Fourier modes m (a tuple of ints; empty: C0 alone, in closed form
            4 Gamma(1 + 1/c)^2 / Gamma(1 + 2/c) / pi with c = c0 + 2).
        derived: the per-galaxy set-up with ``c0`` and each mode's ``f<m>_amp``,
            ``f<m>_phase`` (tensors that broadcast together).
        like: a tensor giving the dtype and device of the angular quadrature nodes.

    Returns:
        The area over pi, in the broadcast shape of ``derived``'s values.
    """
    if not modes:
        c = derived["c0"] + 2.0
        return 4.0 * torch.exp(2.0 * torch.lgamma(1.0 + 1.0 / c) - torch.lgamma(1.0 + 2.0 / c)) / math.pi
    theta = torch.arange(_AREA_NODES, dtype=like.dtype, device=like.device) * (2.0 * math.pi / _AREA_NODES)
    d = {k: v.unsqueeze(-1) for k, v in derived.items()}
    h = _scale(has_c0, modes, torch.cos(theta), torch.sin(theta), d)
    return (h.pow(-2.0)).mean(-1)


@functools.lru_cache(maxsize=None)
def with_modifiers(base: type[EllipticalProfile], c0: bool, modes: tuple[int, ...]) -> type[EllipticalProfile]:
    """The variant of a radial profile class with a generalised ellipse and/or Fourier modes.

    Its name is the base profile's (GALFIT writes the modifiers as extra lines of the
    same component); its parameters are the base's followed by ``c0`` and, per mode m,
    ``f<m>_amp`` and ``f<m>_phase``.
    """
    if not issubclass(base, EllipticalProfile) or not base.radial:
        raise TypeError(f"profile {base.name!r} is not a radial elliptical profile: it takes no shape modifiers")
    if base.shape_modified:
        raise TypeError(f"profile {base.name!r} is already shape-modified")
    if not c0 and not modes:
        return base
    bad = [m for m in modes if not 1 <= m <= MAX_FOURIER_MODE]
    if bad:
        raise ValueError(f"Fourier modes run from 1 to {MAX_FOURIER_MODE}, got {bad}")
    extra = (C0,) if c0 else ()
    for m in sorted(modes):
        extra = extra + fourier_specs(m)
    names = tuple(p.name for p in extra)
    total_magnitude = base.amplitude_kind == "total_magnitude"

    def setup(cls, params):
        derived = base.setup(params)
        for name in names:
            derived[name] = params[name]
        if not c0:
            derived["c0"] = torch.zeros_like(params["q"])
        if total_magnitude:
            derived["flux_norm"] = 1.0 / isophote_area_over_pi(c0, modes, derived, params["q"])
        return derived

    def surface_brightness_squared(cls, rho_squared, derived):
        value = base.surface_brightness_squared(rho_squared, derived)
        return value * derived["flux_norm"] if total_magnitude else value

    def surface_brightness(rho, derived):
        value = base.surface_brightness(rho, derived)
        return value * derived["flux_norm"] if total_magnitude else value

    def enclosed_fraction(cls, rho, derived):
        value = base.enclosed_fraction(rho, derived)
        return value * derived["flux_norm"] if total_magnitude else value

    def radius_scale(cls, u, w, derived):
        cos1, sin1, _ = _unit_angles(u, w)
        return _scale(c0, modes, cos1, sin1, derived)

    def radius_squared(cls, dx, dy, derived):

        u, w = elliptical_coordinates(dx, dy, derived["pa"], derived["q"])
        cos1, sin1, r = _unit_angles(u, w)
        h = _scale(c0, modes, cos1, sin1, derived)
        return (r * h) ** 2

    namespace = {
        "name": base.name,
        "description": base.description + " with shape modifiers",
        "parameters": base.parameters + extra,
        "shape_modified": True,
        "total_per_amplitude": None,  # the closed forms assume the plain ellipse
        "base_profile": base,
        "modifiers": (c0, tuple(sorted(modes))),
        "setup": classmethod(setup),
        "surface_brightness_squared": classmethod(surface_brightness_squared),
        "surface_brightness": staticmethod(surface_brightness),
        "enclosed_fraction": classmethod(enclosed_fraction),
        "radius_scale": classmethod(radius_scale),
        "radius_squared": classmethod(radius_squared),
        "__module__": __name__,
        "__doc__": f"{base.__name__} with {'C0' if c0 else ''}{' and ' if c0 and modes else ''}"
                   f"{'Fourier modes ' + ','.join(map(str, sorted(modes))) if modes else ''} (see galprof.profiles.modifiers).",
    }
    return type(f"{base.__name__}Modified", (base,), namespace)


def profile_for_values(base, names):
    """The profile class a component with parameter ``names`` needs: ``base`` itself, or
    its shape-modified variant when the names include ``c0`` / ``f<m>_amp``, ``f<m>_phase``."""
    has_c0, modes = modifier_names(names)
    if not has_c0 and not modes:
        return base
    return with_modifiers(base, has_c0, modes)
