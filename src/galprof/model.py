"""Model descriptions: a model is a sum of components, each a registered profile.

These objects only *describe* a model (profile names, initial values, which parameters
are free, bounds). They are immutable and never receive fitted values: fits return a
:class:`galprof.fitting.result.FitResult`.

Units and conventions are those of :mod:`galprof.conventions`: 1-based pixel centres,
PA in degrees counter-clockwise from +y, sizes along the major axis in pixels, q = b/a,
magnitudes with the frame's zeropoint and EXPTIME.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from .errors import ModelError
from .profiles import get_profile
from .profiles.modifiers import profile_for_values


@dataclass(frozen=True)
class Component:
    """One component of a model.

    Attributes:
        profile: registered profile name (GALFIT's component name: ``sersic``, ``devauc``,
            ``expdisk``, ``gaussian``, ``moffat``, ``psf``, ``sky``).
        values: initial value of every parameter, a number or an array of shape (B,)
            (one per galaxy in a batch). Units as in :mod:`galprof.conventions`.
            Radial profiles also take GALFIT's shape modifiers: ``c0`` (boxy > 0,
            disky < 0) and Fourier modes ``f<m>_amp``, ``f<m>_phase`` [deg], m = 1..10
            (see :mod:`galprof.profiles.modifiers`), bending modes ``b<m>`` [pix],
            coordinate rotation ``rot_*`` and truncation ``trunc_*`` (see
            :mod:`galprof.profiles.deformations`).
        fixed: names of parameters held fixed (all others are free).
        bounds: optional {name: (low, high)} replacing the default bounds.
        skip_in_residual: GALFIT's ``Z) 1``: fitted, but left in the residual image.
    """

    profile: str
    values: Mapping[str, object]
    fixed: frozenset = field(default_factory=frozenset)
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    skip_in_residual: bool = False

    def __post_init__(self):
        try:
            profile = profile_for_values(get_profile(self.profile), self.values.keys())
        except KeyError as err:
            raise ModelError(str(err.args[0])) from None
        except (TypeError, ValueError) as err:
            raise ModelError(f"component {self.profile!r}: {err}") from None
        names = profile.parameter_names()
        missing = [n for n in names if n not in self.values]
        unknown = [n for n in self.values if n not in names]
        if missing or unknown:
            raise ModelError(
                f"component {self.profile!r}: missing parameters {missing}, unknown parameters {unknown}; "
                f"expected {list(names)}"
            )
        for name in list(self.fixed) + list(self.bounds):
            if name not in names:
                raise ModelError(f"component {self.profile!r} has no parameter {name!r}")
        for name, (low, high) in self.bounds.items():
            if not low < high:
                raise ModelError(f"component {self.profile!r}: bounds of {name!r} need low < high, got {(low, high)}")
        self._check_domains(profile)
        object.__setattr__(self, "fixed", frozenset(self.fixed))

    def _check_domains(self, profile) -> None:
        """Values and bounds must keep every parameter inside its profile's domain."""
        for spec in profile.parameters:
            domain = spec.domain if spec.domain is not None else ((0.0, math.inf) if spec.scale == "log" else None)
            if domain is None:
                continue
            low, high = domain
            where = f"component {self.profile!r}: {spec.name}"
            if spec.name in self.bounds:
                b_low, b_high = self.bounds[spec.name]
                if b_low < low or b_high > high:
                    raise ModelError(f"{where}: bounds ({b_low:g}, {b_high:g}) reach outside ({low:g}, {high:g}), "
                                     f"where the profile is undefined")
            value = np.asarray(self.values[spec.name], dtype=float)
            bad = ~((value > low) & (value < high))
            if np.any(bad):
                first = np.ravel(value)[np.argmax(np.ravel(bad))]
                raise ModelError(f"{where} = {first:g} lies outside ({low:g}, {high:g}), where the profile is undefined")

    @property
    def profile_class(self):
        """The profile class, with shape modifiers when the values name them (``c0``,
        ``f<m>_amp``/``f<m>_phase``; see :mod:`galprof.profiles.modifiers`)."""
        return profile_for_values(get_profile(self.profile), self.values.keys())

    def batch_size(self) -> int | None:
        sizes = {np.shape(v)[0] for v in self.values.values() if np.ndim(v) == 1}
        if len(sizes) > 1:
            raise ModelError(f"component {self.profile!r}: parameter arrays have different lengths {sorted(sizes)}")
        return sizes.pop() if sizes else None


@dataclass(frozen=True)
class Model:
    """A sum of components, rendered together and convolved with one PSF.

    Attributes:
        components: the components, numbered from 1 in messages and constraints.
        constraints: :mod:`galprof.constraints` objects (ranges, ties, coupled ranges)
            between and on the components' parameters; their numbers may be one per
            galaxy (sequences of length B, as the components' values).
    """

    components: tuple[Component, ...]
    constraints: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if not self.components:
            raise ModelError("a model needs at least one component")
        for constraint in self.constraints:
            self._check_constraint(constraint)
        if any(getattr(c, "batch_size", None) is not None for c in self.constraints):
            self.batch_size()  # per-galaxy constraint numbers: one per galaxy of the components

    def _check_constraint(self, c) -> None:

        what = f"constraint '{c.describe()}'" if hasattr(c, "describe") else f"constraint {c!r}"
        if isinstance(c, Tie):
            numbers, names = c.components, c.name
            if c.kind not in ("offset", "ratio"):
                raise ModelError(f"{what}: a tie is 'offset' or 'ratio', not {c.kind!r}")
            if len(set(numbers)) < 2:
                raise ModelError(f"{what}: a tie needs at least two different components")
        elif isinstance(c, PairRange):
            numbers, names = (c.first, c.second), c.name
            if c.op not in ("-", "/"):
                raise ModelError(f"{what}: the operation is '-' or '/', not {c.op!r}")
            if c.first == c.second:
                raise ModelError(f"{what}: needs two different components")
            if c.op == "/":
                _check_numbers(c, ~(np.asarray(c.low) > 0), "a ratio range needs positive limits")
        elif isinstance(c, (Range, RelativeRange, FactorRange)):
            numbers, names = (c.component,), (c.name,)
        else:
            raise ModelError(f"unknown constraint {c!r}")
        if isinstance(c, (Range, PairRange)):
            _check_numbers(c, ~(np.asarray(c.low) < np.asarray(c.high)), "needs low < high")
        if isinstance(c, RelativeRange):
            _check_numbers(c, ~(np.asarray(c.below) < np.asarray(c.above)),
                           "needs the lower offset below the upper one")
        if isinstance(c, FactorRange):
            _check_numbers(c, ~(np.asarray(c.factor) > 1), "the factor must be above 1")
        for number, name in zip(numbers, names):
            if not 1 <= number <= len(self.components):
                raise ModelError(f"{what}: there is no component {number} (the model has {len(self.components)})")
            comp = self.components[number - 1]
            if name not in comp.profile_class.parameter_names():
                raise ModelError(f"{what}: component {number} ({comp.profile}) has no parameter {name!r}")

    def batch_size(self) -> int | None:
        """B when some initial value or constraint number is given per galaxy, else None."""
        sizes = {c.batch_size() for c in self.components} - {None}
        if len(sizes) > 1:
            raise ModelError(f"components disagree on the batch size: {sorted(sizes)}")
        for c in self.constraints:
            size = getattr(c, "batch_size", None)
            if size is not None and sizes and size not in sizes:
                raise ModelError(f"constraint '{c.describe()}' has numbers for {size} galaxies, the components "
                                 f"for {sizes.pop()}")
            if size is not None:
                sizes = {size}
        return sizes.pop() if sizes else None


def _check_numbers(c, bad, reason: str) -> None:
    """A ModelError naming the constraint (and the first galaxy, when its numbers are per
    galaxy) where ``bad`` (a bool, or (B,) bools) holds."""
    bad = np.asarray(bad)
    if not bad.any():
        return
    if bad.ndim == 0:
        raise ModelError(f"constraint '{c.describe()}': {reason}")
    b = int(np.flatnonzero(bad)[0])
    raise ModelError(f"constraint '{c.describe(b)}' of galaxy {b}: {reason}")


def shift_positions(model: Model, values: list[dict], dx: float, dy: float) -> list[dict]:
    """A copy of ``values`` (one {name: value} per component of ``model``) with the
    position (``x``, ``y`` [pix]) of every non-sky component moved by (dx, dy): from one
    pixel frame to another (e.g. a fit region's to its image's, GALFIT's 1-based pixels)."""
    out = []
    for comp, v in zip(model.components, values):
        v = dict(v)
        if comp.profile_class.kind != "sky":
            for name, d in (("x", dx), ("y", dy)):
                if name in v:
                    v[name] = v[name] + d
        out.append(v)
    return out
