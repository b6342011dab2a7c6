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

GALFIT's other hidden shape lines (bending modes B, coordinate rotation R, truncation T;
Peng et al. 2010) deform the coordinates (or multiply the brightness) in ways that are not
homogeneous in the offsets; their formulas and conventions are those of
:mod:`galprof.profiles.deformations`, and :func:`with_modifiers` builds their variants too
(``hidden``, a :class:`HiddenShape`). Their parameters:

* bending ``b<m>`` [pix], m = 1..10 (line ``B<m>)``);
* rotation ``rot_r_in``, ``rot_r_out`` [pix] (R1, R2), ``rot_theta_out`` [deg] (R3),
  ``rot_alpha`` (R4 of ``R0) power``) or ``rot_r_ws`` [pix] (R4 of ``R0) log``; neither:
  the pure hyperbolic tangent), ``rot_incl`` [deg] (R9), ``rot_sky_pa`` [deg] (R10);
* truncation ``trunc_<in|out>[_length|_height]_<what>``: ``break`` [pix] (T4), ``soft``
  [pix] (T5, softening length) or ``soft_at`` [pix] (T5 of the type-2 truncations: the
  radius of the 1 % point), optionally ``q`` (T9), ``pa`` [deg] (T10), ``x``, ``y``
  [pix] (T1); without them the truncation shares the component's.

Normalisation: bending and rotation move light without changing its total, and the
inclination of a rotated component projects it by cos i, so a total magnitude stays the
component's total magnitude (divided by A / pi and by cos i). A *truncated* component
whose profile has a total magnitude reads that amplitude, as GALFIT writes truncated
components, as the surface brightness [mag/arcsec^2] of the untruncated profile at the
break radius (rho = r_break; of the outer truncation where there is one): its brightness
is I(rho) / I(r_break) times the tapers. Profiles whose amplitude is already a surface
brightness or an intensity keep its meaning.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import torch

from ..conventions import elliptical_coordinates
from . import deformations
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


MAX_BENDING_MODE = 10
#: the rotation functions of GALFIT's R0) line galprof has (GALFIT's ``powerlaw`` is ``power``)
ROTATION_KINDS = ("power", "log", "tanh")
_BENDING_NAME = re.compile(r"^b([1-9]|10)$")
_TRUNCATION_NAME = re.compile(r"^trunc_(in|out)(?:_(length|height))?_(break|soft_at|soft|q|pa|x|y)$")
_ROTATION_LINES = {"rot_r_in": "R1", "rot_r_out": "R2", "rot_theta_out": "R3", "rot_alpha": "R4", "rot_r_ws": "R4",
                   "rot_incl": "R9", "rot_sky_pa": "R10"}
_SIDE = {"in": "inner", "out": "outer"}
#: GALFIT's lines of a truncation block: T1 centre, T4 break radius, T5 softening, T9 q, T10 PA
TRUNCATION_LINES = {"x": "1", "y": "1", "break": "4", "soft": "5", "soft_at": "5", "q": "9", "pa": "10"}


@dataclass(frozen=True)
class Truncation:
    """One hyperbolic-tangent truncation of a component (GALFIT's ``Ti)``/``To)`` and its
    ``T0)`` block; see :mod:`galprof.profiles.deformations`).

    Attributes:
        side: ``"in"`` (inner: the light inside the break is removed) or ``"out"``.
        geometry: ``"radial"`` (the truncation's elliptical radius), ``"length"`` (offset
            along its major axis) or ``"height"`` (along its minor axis).
        softening: ``"length"`` (T5 is the softening length) or ``"radius"`` (GALFIT's
            type 2: T5 is the radius of the 1 % point).
        own_centre, own_q, own_pa: whether it has its own centre (T1), axis ratio (T9),
            PA (T10); otherwise it shares the component's.
    """

    side: str
    geometry: str = "radial"
    softening: str = "length"
    own_centre: bool = False
    own_q: bool = False
    own_pa: bool = False

    @property
    def prefix(self) -> str:
        """``trunc_out``, ``trunc_in_length``, ...: the start of its parameter names."""
        return f"trunc_{self.side}" + ("" if self.geometry == "radial" else f"_{self.geometry}")

    def name(self, what: str) -> str:
        """The parameter name of ``what`` (``break``, ``soft``, ``soft_at``, ``q``, ``pa``, ``x``, ``y``)."""
        return f"{self.prefix}_{what}"

    @property
    def galfit_type(self) -> str:
        """GALFIT's ``T0)`` type: ``radial``, ``radial2`` (type 2), ``length``, ``height``, ..."""
        return self.geometry + ("2" if self.softening == "radius" else "")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        whats = ["x", "y"] if self.own_centre else []
        whats += ["break", "soft_at" if self.softening == "radius" else "soft"]
        whats += (["q"] if self.own_q else []) + (["pa"] if self.own_pa else [])
        return tuple(self.name(w) for w in whats)


@dataclass(frozen=True)
class HiddenShape:
    """GALFIT's bending, rotation and truncation of one component: bending modes (sorted
    ints), the rotation function (``power``, ``log``, ``tanh`` or None) and truncations."""

    bending: tuple[int, ...] = ()
    rotation: str | None = None
    truncations: tuple[Truncation, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.bending or self.rotation or self.truncations)

    @property
    def rotation_names(self) -> tuple[str, ...]:
        if self.rotation is None:
            return ()
        shape = {"power": ("rot_alpha",), "log": ("rot_r_ws",), "tanh": ()}[self.rotation]
        return ("rot_r_in", "rot_r_out", "rot_theta_out") + shape + ("rot_incl", "rot_sky_pa")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        names = tuple(f"b{m}" for m in self.bending) + self.rotation_names
        for t in self.truncations:
            names += t.parameter_names
        return names


def hidden_shape(names) -> HiddenShape:
    """The :class:`HiddenShape` named among parameter ``names`` (``b<m>``, ``rot_*``,
    ``trunc_*``); other names are ignored.

    Raises:
        ValueError: an incomplete or contradictory set (a rotation without R1..R3, R9,
            R10; both ``rot_alpha`` and ``rot_r_ws``; a truncation without its break or
            softening, with both ``soft`` and ``soft_at``, with one of x, y only, or with
            an axis ratio for a length/height truncation).
    """
    names = set(names)
    bending = tuple(sorted(int(m.group(1)) for m in map(_BENDING_NAME.match, names) if m))
    rotation = None
    rot = {n for n in names if n.startswith("rot_")}
    if rot:
        unknown = sorted(rot - set(_ROTATION_LINES))
        if unknown:
            raise ValueError(f"unknown rotation parameter(s) {unknown} (expected {sorted(_ROTATION_LINES)})")
        if {"rot_alpha", "rot_r_ws"} <= rot:
            raise ValueError("a rotation is a power law (rot_alpha) or logarithmic (rot_r_ws), not both")
        rotation = "power" if "rot_alpha" in rot else "log" if "rot_r_ws" in rot else "tanh"
        missing = [n for n in HiddenShape(rotation=rotation).rotation_names if n not in rot]
        if missing:
            raise ValueError(f"a coordinate rotation needs {missing} (GALFIT lines R1-R4, R9, R10)")
    groups: dict[tuple[str, str], set[str]] = {}
    for name in names:
        match = _TRUNCATION_NAME.match(name)
        if match:
            groups.setdefault((match.group(1), match.group(2) or "radial"), set()).add(match.group(3))
        elif name.startswith("trunc_"):
            raise ValueError(f"unknown truncation parameter {name!r} (trunc_<in|out>[_length|_height]_<break|soft|"
                             "soft_at|q|pa|x|y>)")
    truncations = []
    for (side, geometry), whats in sorted(groups.items()):
        if len([g for s, g in groups if s == side]) > 1:
            raise ValueError(f"one {_SIDE[side]} truncation per component, got several geometries")
        label = f"the {_SIDE[side]} {geometry} truncation"
        if "break" not in whats or not whats & {"soft", "soft_at"}:
            raise ValueError(f"{label} needs a break radius and a softening (trunc_{side}_break, _soft or _soft_at)")
        if {"soft", "soft_at"} <= whats:
            raise ValueError(f"{label} has a softening length (soft) or radius (soft_at), not both")
        if len(whats & {"x", "y"}) == 1:
            raise ValueError(f"{label} needs both x and y of its centre, or neither")
        if geometry != "radial" and "q" in whats:
            raise ValueError(f"{label} has no axis ratio")
        truncations.append(Truncation(side, geometry, "radius" if "soft_at" in whats else "length",
                                      "x" in whats, "q" in whats, "pa" in whats))
    return HiddenShape(bending, rotation, tuple(truncations))


def _size_name(base) -> str:
    """The profile's first size parameter (its GALFIT line 4): bending's r_scale."""
    for spec in base.parameters:
        if spec.is_size:
            return spec.name
    raise ValueError(f"profile {base.name!r} has no size parameter to scale bending modes by")


def hidden_specs(base, hidden: HiddenShape) -> tuple[ParameterSpec, ...]:
    """The parameter specifications of ``hidden``'s parameters (GALFIT lines ``B<m>``,
    ``R<k>``; a truncation's lines are ``TI<k>`` / ``TO<k>``: line ``T<k>`` of the block
    that ``Ti)`` / ``To)`` name)."""
    specs = []
    if hidden.bending:
        size = _size_name(base)
        for m in hidden.bending:
            specs.append(ParameterSpec(f"b{m}", "pix", f"bending mode {m}: minor-axis shift b{m} (u / {size})^{m}",
                                       None, "free", galfit=f"B{m}"))
    rot = {
        "rot_r_in": ParameterSpec("rot_r_in", "pix", "rotation: inner (bar) radius, where theta ~ 0.23 rad", None,
                                  "free", galfit="R1"),
        "rot_r_out": ParameterSpec("rot_r_out", "pix", "rotation: outer radius, tanh ramp at 96 %", (0.1, 1e5), "log",
                                   galfit="R2"),
        "rot_theta_out": ParameterSpec("rot_theta_out", "deg", "rotation: cumulative rotation out to rot_r_out "
                                       "(counter-clockwise > 0)", None, "free", galfit="R3"),
        "rot_alpha": ParameterSpec("rot_alpha", "", "rotation: asymptotic power-law index alpha", None, "free",
                                   galfit="R4"),
        "rot_r_ws": ParameterSpec("rot_r_ws", "pix", "rotation: logarithmic winding scale radius", (0.01, 1e5), "log",
                                  galfit="R4"),
        "rot_incl": ParameterSpec("rot_incl", "deg", "rotation: disk inclination to the line of sight (0 face-on)",
                                  (-89.0, 89.0), "linear", galfit="R9", domain=(-90.0, 90.0)),
        "rot_sky_pa": ParameterSpec("rot_sky_pa", "deg", "rotation: sky PA of the disk's line of nodes, CCW from +y",
                                    None, "free", galfit="R10"),
    }
    specs += [rot[n] for n in hidden.rotation_names]
    for t in hidden.truncations:
        where = f"{_SIDE[t.side]} {t.geometry} truncation"
        line = f"T{t.side[0].upper()}"
        described = {
            "x": ("pix", f"{where}: centre x (T1)", None, "free"),
            "y": ("pix", f"{where}: centre y (T1)", None, "free"),
            "break": ("pix", f"{where}: break radius, 99 % of the untruncated profile", (0.05, 1e5), "log"),
            "soft": ("pix", f"{where}: softening length, 1 % at break +- soft", (0.01, 1e5), "log"),
            "soft_at": ("pix", f"{where}: softening radius, where the profile is at 1 %", (0.01, 1e5), "log"),
            "q": ("", f"{where}: axis ratio", (0.02, 50.0), "log"),
            "pa": ("deg", f"{where}: position angle, CCW from +y", None, "free"),
        }
        for name in t.parameter_names:
            what = name[len(t.prefix) + 1:]
            unit, text, bounds, scale = described[what]
            specs.append(ParameterSpec(name, unit, text, bounds, scale, galfit=line + TRUNCATION_LINES[what]))
    return tuple(specs)


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
def with_modifiers(base: type[EllipticalProfile], c0: bool, modes: tuple[int, ...],
                   hidden: HiddenShape = HiddenShape()) -> type[EllipticalProfile]:
    """The variant of a radial profile class with a generalised ellipse and/or Fourier modes,
    and GALFIT's bending, rotation and truncation (``hidden``).

    Its name is the base profile's (GALFIT writes the modifiers as extra lines of the
    same component); its parameters are the base's followed by ``c0`` and, per mode m,
    ``f<m>_amp`` and ``f<m>_phase``, then those of ``hidden`` (:func:`hidden_specs`).
    """
    if not issubclass(base, EllipticalProfile) or not base.radial:
        raise TypeError(f"profile {base.name!r} is not a radial elliptical profile: it takes no shape modifiers")
    if base.shape_modified:
        raise TypeError(f"profile {base.name!r} is already shape-modified")
    if not c0 and not modes and not hidden:
        return base
    bad = [m for m in modes if not 1 <= m <= MAX_FOURIER_MODE]
    if bad:
        raise ValueError(f"Fourier modes run from 1 to {MAX_FOURIER_MODE}, got {bad}")
    if hidden:
        return _deformed_variant(base, c0, tuple(modes), hidden)
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


def _deformed_variant(base, c0: bool, modes: tuple[int, ...], hidden: HiddenShape):
    """:func:`with_modifiers`' variant with bending, rotation and/or truncation.

    Coordinates: sky offsets -> (rotation) deprojected by R9, R10 and rotated by
    -theta(r) -> the component's (u, v) -> (bending) v + sum B_m (u / r_scale)^m -> w = v / q
    -> rho = |(u, w)| h (C0, Fourier) -> brightness I(rho) times the truncation tapers.
    The linearisation at the centre (rotation by theta(0), bending mode 1 only, the
    tapers' values at the centre) is homogeneous: :meth:`radius_scale` and
    :meth:`enclosed_fraction` describe it, for the renderer's exact core.
    """
    if getattr(base.radius_squared, "__func__", None) is not EllipticalProfile.radius_squared.__func__:
        raise TypeError(f"profile {base.name!r} defines its own radius: it takes no bending, rotation or truncation")
    extra = (C0,) if c0 else ()
    for m in sorted(modes):
        extra = extra + fourier_specs(m)
    extra = extra + hidden_specs(base, hidden)
    names = tuple(p.name for p in extra)
    size = _size_name(base) if hidden.bending else None
    total_magnitude = base.amplitude_kind == "total_magnitude"
    truncations = hidden.truncations
    at_break = total_magnitude and bool(truncations)
    reference = next((t for t in truncations if t.side == "out"), truncations[0] if truncations else None)
    parameters = base.parameters
    if at_break:
        parameters = tuple(
            p.relabel(unit="mag/arcsec^2", description=f"surface brightness at the {_SIDE[reference.side]} "
                      "truncation's break radius (untruncated profile)")
            if p.name == base.amplitude else p for p in parameters)
    degree = math.pi / 180.0

    def rotation_of(r, derived):
        shape = derived.get("rot_alpha", derived.get("rot_r_ws"))
        return deformations.rotation_angle(r, hidden.rotation, derived["rot_theta_rad"], derived["rot_ramp"],
                                           derived["rot_r_out"], shape)

    def offsets(dx, dy, derived, linear):
        """(u, w): the deformed circularised coordinates of sky offsets dx, dy [pix]."""
        px, py = dx, dy
        if hidden.rotation:
            px, py, r = deformations.deproject(px, py, derived["rot_incl"], derived["rot_sky_pa"])
            theta = derived["rot_theta0"] if linear else rotation_of(r, derived)
            px, py = deformations.rotate(px, py, -theta)
        u, v = deformations.frame_offsets(px, py, derived["pa"])
        if hidden.bending:
            amplitudes = {m: derived[f"b{m}"] for m in hidden.bending}
            v = deformations.bend(u, v, amplitudes, derived["bend_scale"], linear)
        return u, v / derived["q"]

    def rho_of(u, w, derived):
        cos1, sin1, r = _unit_angles(u, w)
        return r * _scale(c0, modes, cos1, sin1, derived)

    def taper_of(dx, dy, derived):
        out = None
        for t in truncations:
            tx, ty = dx, dy
            if t.own_centre:
                tx, ty = dx - derived[t.prefix + "_dx"], dy - derived[t.prefix + "_dy"]
            u, v = deformations.frame_offsets(tx, ty, derived[t.name("pa")] if t.own_pa else derived["pa"])
            if t.geometry == "radial":
                v = v / (derived[t.name("q")] if t.own_q else derived["q"])
                s = safe_radius(u * u + v * v)
            else:
                s = (u if t.geometry == "length" else v).abs()
            f = deformations.taper(s, derived[t.name("break")], derived[t.prefix + "_dr"], t.side == "in")
            out = f if out is None else out * f
        return out

    def setup(cls, params):
        derived = base.setup(params)
        for name in names:
            derived[name] = params[name]
        q = params["q"]
        if not c0:
            derived["c0"] = torch.zeros_like(q)
        if size is not None:
            derived["bend_scale"] = params[size]
        cos_i = torch.ones_like(q)
        if hidden.rotation:
            theta = params["rot_theta_out"] * degree
            derived["rot_theta_rad"] = theta
            derived["rot_ramp"] = deformations.rotation_ramp_slope(params["rot_r_in"], params["rot_r_out"], theta)
            derived["rot_theta0"] = rotation_of(torch.zeros_like(q), derived)
            cos_i = torch.cos(params["rot_incl"] * degree)
        for t in truncations:
            if t.softening == "radius":
                derived[t.prefix + "_dr"] = (params[t.name("soft_at")] - params[t.name("break")]).abs()
            else:
                derived[t.prefix + "_dr"] = params[t.name("soft")]
            if t.own_centre:
                derived[t.prefix + "_dx"] = params[t.name("x")] - params["x"]
                derived[t.prefix + "_dy"] = params[t.name("y")] - params["y"]
        if at_break:
            r_break = params[reference.name("break")]
            norm = 1.0 / base.surface_brightness_squared(r_break * r_break, derived)
        elif total_magnitude:
            area = isophote_area_over_pi(c0, modes, derived, q) if (c0 or modes) else torch.ones_like(q)
            norm = 1.0 / (area * cos_i)
        else:
            norm = torch.ones_like(q)
        derived["flux_norm"] = norm
        zero = torch.zeros_like(q)
        derived["core_norm"] = norm * taper_of(zero, zero, derived) if truncations else norm
        return derived

    def radius_squared(cls, dx, dy, derived):
        return rho_of(*offsets(dx, dy, derived, False), derived) ** 2

    def brightness(cls, dx, dy, derived):
        rho = rho_of(*offsets(dx, dy, derived, False), derived)
        value = base.surface_brightness_squared(rho * rho, derived) * derived["flux_norm"]
        return value * taper_of(dx, dy, derived) if truncations else value

    def brightness_reference(cls, dx, dy, derived):
        rho = rho_of(*offsets(dx, dy, derived, True), derived)
        return base.surface_brightness_squared(rho * rho, derived) * derived["core_norm"]

    def radius_scale(cls, u, w, derived):
        dx, dy = deformations.sky_offsets(u, w * derived["q"], derived["pa"])
        return rho_of(*offsets(dx, dy, derived, True), derived) / safe_radius(u * u + w * w)

    def enclosed_fraction(cls, rho, derived):
        return base.enclosed_fraction(rho, derived) * derived["core_norm"]

    def surface_brightness_squared(cls, rho_squared, derived):
        return base.surface_brightness_squared(rho_squared, derived) * derived["flux_norm"]

    def surface_brightness(rho, derived):
        return base.surface_brightness(rho, derived) * derived["flux_norm"]

    def sersic_equivalent(cls, value):
        if truncations:
            raise NotImplementedError(f"a truncated {base.name} component has no Sérsic equivalent")
        return base.sersic_equivalent(value)

    parts = ([f"bending {','.join(map(str, hidden.bending))}"] if hidden.bending else []) + \
        ([f"{hidden.rotation} rotation"] if hidden.rotation else []) + \
        [f"{_SIDE[t.side]} {t.galfit_type} truncation" for t in truncations]
    namespace = {
        "name": base.name,
        "description": base.description + " with shape modifiers",
        "parameters": parameters + extra,
        "shape_modified": True,
        "homogeneous_radius": False,
        "axes_swappable": False,
        "amplitude_kind": "surface_brightness" if at_break else base.amplitude_kind,
        "total_per_amplitude": None,
        "base_profile": base,
        "modifiers": (c0, tuple(sorted(modes))),
        "hidden_shape": hidden,
        "setup": classmethod(setup),
        "radius_squared": classmethod(radius_squared),
        "brightness": classmethod(brightness),
        "brightness_reference": classmethod(brightness_reference),
        "radius_scale": classmethod(radius_scale),
        "enclosed_fraction": classmethod(enclosed_fraction),
        "surface_brightness_squared": classmethod(surface_brightness_squared),
        "surface_brightness": staticmethod(surface_brightness),
        "sersic_equivalent": classmethod(sersic_equivalent),
        "__module__": __name__,
        "__doc__": f"{base.__name__} with {', '.join(parts)} (see galprof.profiles.deformations).",
    }
    return type(f"{base.__name__}Deformed", (base,), namespace)


def profile_for_values(base, names):
    """The profile class a component with parameter ``names`` needs: ``base`` itself, or
    its shape-modified variant when the names include ``c0`` / ``f<m>_amp``, ``f<m>_phase``
    or GALFIT's bending ``b<m>``, rotation ``rot_*`` and truncation ``trunc_*`` parameters."""
    names = tuple(names)
    has_c0, modes = modifier_names(names)
    hidden = hidden_shape(names)
    if not has_c0 and not modes and not hidden:
        return base
    return with_modifiers(base, has_c0, modes, hidden)
