"""Parameter constraints between and on components (GALFIT's constraint file, line G).

Constraints are part of a model description (:class:`galprof.model.Model`) and are
enforced exactly by the parameterisation the optimiser works in
(:class:`galprof.fitting.layout.ParameterLayout`), never by clipping after a step:

* :class:`Range`, :class:`RelativeRange` and :class:`FactorRange` become the
  parameter's bounds, kept by the smooth bound transform;
* :class:`Tie` removes all but one member of a group from the fit: the others follow it
  with their initial offset (``p_k = p_ref + (p_k0 - p_ref0)``) or ratio
  (``p_k = p_ref * p_k0 / p_ref0``);
* :class:`PairRange` replaces the second component's parameter by the bounded
  difference ``d = p_second - p_first`` (or ratio ``r = p_first / p_second``), so that
  ``p_second = p_first + d`` (or ``p_first / r``) always satisfies the range.

Components are numbered from 1 (as in a feedme file); parameters use galprof's names
(``x, y, mag, r_e, r_s, fwhm, n, beta, q, pa, sky, dsdx, dsdy``), in the units of
:mod:`galprof.conventions` (positions in 1-based pixels of the full image, PA in
degrees counter-clockwise from +y, sizes along the major axis in pixels, q = b/a).

**Batches.** Every number of a constraint (``low``, ``high``, ``below``, ``above``,
``factor``) is either one number for every galaxy of a batch or one per galaxy (a
sequence of length B, stored as a tuple of floats), so that galaxies whose constraint
files have the same structure (:func:`constraint_structure`) but different numbers are
fitted in one batch (:func:`stack_constraints`). A relative range, a factor range and a
tie are always taken relative to each galaxy's *own* initial value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np

__all__ = ["Constraint", "FactorRange", "PairRange", "Range", "RelativeRange", "Tie", "constraint_structure",
           "shift_constraints", "shifts_with_origin", "stack_constraints"]

Number = float | tuple[float, ...]
"""One number for the whole batch, or one per galaxy (a tuple of length B)."""

#: the numeric fields of each constraint class (those that may be per galaxy)
_NUMBERS = {"Range": ("low", "high"), "RelativeRange": ("below", "above"), "FactorRange": ("factor",),
            "Tie": (), "PairRange": ("low", "high")}


class _PerGalaxy:
    """Shared behaviour of constraints whose numbers may be per galaxy."""

    def __post_init__(self):
        sizes = set()
        for name in _NUMBERS[type(self).__name__]:
            value = _number(getattr(self, name), name)
            object.__setattr__(self, name, value)
            if isinstance(value, tuple):
                sizes.add(len(value))
        if len(sizes) > 1:
            raise ValueError(f"{type(self).__name__}: per-galaxy numbers of different lengths {sorted(sizes)}")

    @property
    def batch_size(self) -> int | None:
        """B when some number is given per galaxy, else None (one for every galaxy)."""
        for name in _NUMBERS[type(self).__name__]:
            value = getattr(self, name)
            if isinstance(value, tuple):
                return len(value)
        return None

    def select(self, index):
        """The constraint for galaxy ``index`` (an int: one number each) or for the rows
        ``index`` (a sequence of galaxy indices: per-row numbers). One number for every
        galaxy stays one number."""
        changes = {}
        for name in _NUMBERS[type(self).__name__]:
            value = getattr(self, name)
            if isinstance(value, tuple):
                picked = np.asarray(value)[index]
                changes[name] = float(picked) if np.ndim(picked) == 0 else tuple(float(v) for v in picked)
        return replace(self, **changes) if changes else self

    def _text(self, galaxy: int | None) -> tuple[dict, str]:
        """The numbers of ``galaxy`` (the first when None) formatted with ``:g``, and a
        note naming the galaxy shown when the numbers differ per galaxy and none was asked."""
        size = self.batch_size
        shown = {}
        for name in _NUMBERS[type(self).__name__]:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = value[0 if galaxy is None else galaxy]
            shown[name] = f"{value:g}"
        note = f" (galaxy 0 of {size})" if size is not None and galaxy is None else ""
        return shown, note


def _number(value, name: str) -> Number:
    """A float, or a tuple of floats for a 1-D sequence (one number per galaxy)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: a number or one number per galaxy (1-D), got shape {arr.shape}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class Range(_PerGalaxy):
    """``low <= p <= high`` for parameter ``name`` of ``component`` (GALFIT ``3 n 0.7 to 5``).

    ``low`` and ``high`` are in the parameter's unit (positions: 1-based pixels of the
    full image), one number each or one per galaxy."""

    component: int
    name: str
    low: Number
    high: Number

    def describe(self, galaxy: int | None = None) -> str:
        """The constraint file's line (galaxy ``galaxy``'s numbers; the first galaxy's,
        with a note, when they differ per galaxy and ``galaxy`` is None)."""
        n, note = self._text(galaxy)
        return f"{self.component} {self.name} {n['low']} to {n['high']}{note}"


@dataclass(frozen=True)
class RelativeRange(_PerGalaxy):
    """``p0 + below <= p <= p0 + above`` with p0 each galaxy's own initial value (GALFIT
    ``2 x -1 0.5``); ``below``, ``above`` in the parameter's unit, one or one per galaxy."""

    component: int
    name: str
    below: Number
    above: Number

    def describe(self, galaxy: int | None = None) -> str:
        """As :meth:`Range.describe`."""
        n, note = self._text(galaxy)
        return f"{self.component} {self.name} {n['below']} {n['above']}{note}"


@dataclass(frozen=True)
class FactorRange(_PerGalaxy):
    """``p0 / factor <= p <= p0 * factor`` with p0 each galaxy's own (positive) initial
    value and factor > 1 (GALFITM ``1 re factor 3``: R_e within a factor of 3 of its input
    value); one factor or one per galaxy."""

    component: int
    name: str
    factor: Number

    def describe(self, galaxy: int | None = None) -> str:
        """As :meth:`Range.describe`."""
        n, note = self._text(galaxy)
        return f"{self.component} {self.name} factor {n['factor']}{note}"


@dataclass(frozen=True)
class Tie:
    """Hard constraint: the members keep their initial ``offset`` (differences) or ``ratio``
    (GALFIT ``1_2_3 x offset``, ``2_3 re ratio``). The first free member leads. The
    offset or ratio is each galaxy's own, from its initial values."""

    components: tuple[int, ...]
    name: str | tuple[str, ...]  # one name, or one per component (R_e of one, R_s of another)
    kind: str  # "offset" or "ratio"

    def __post_init__(self):
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "name", _names(self.name, len(self.components)))

    @property
    def batch_size(self) -> None:
        """None: a tie has no numbers of its own."""
        return None

    def select(self, index) -> Tie:
        """The tie itself (it has no numbers of its own)."""
        return self

    def describe(self, galaxy: int | None = None) -> str:
        """The constraint file's line."""
        return f"{'_'.join(map(str, self.components))} {_show(self.name)} {self.kind}"


@dataclass(frozen=True)
class PairRange(_PerGalaxy):
    """A range on two components' parameters (GALFIT ``3-7 mag -0.5 3``, ``3/5 re 1 3``).

    ``op`` "-": ``low <= p_second - p_first <= high``, the second relative to the first,
    as GALFIT's documentation explains its example (``3-7 mag -0.5 3``: component 7 is
    between 0.5 mag brighter and 3 mag fainter than component 3).
    ``op`` "/": ``low <= p_first / p_second <= high`` (``3/5 re 1 3``: R_e of component
    3 is between 1 and 3 times that of component 5).
    ``low`` and ``high``: one number each or one per galaxy.
    """

    first: int
    second: int
    name: str | tuple[str, str]  # one name, or (first's, second's)
    op: str  # "-" or "/"
    low: Number
    high: Number

    def __post_init__(self):
        object.__setattr__(self, "name", _names(self.name, 2))
        super().__post_init__()

    def describe(self, galaxy: int | None = None) -> str:
        """As :meth:`Range.describe`."""
        n, note = self._text(galaxy)
        return f"{self.first}{self.op}{self.second} {_show(self.name)} {n['low']} {n['high']}{note}"


def _names(name, count: int) -> tuple[str, ...]:
    names = (name,) * count if isinstance(name, str) else tuple(name)
    if len(names) != count:
        raise ValueError(f"{count} parameter names needed, got {names}")
    return names


def _show(names: tuple[str, ...]) -> str:
    return names[0] if len(set(names)) == 1 else "/".join(names)


Constraint = Range | RelativeRange | FactorRange | Tie | PairRange


def constraint_structure(constraints: Sequence[Constraint]) -> tuple:
    """A hashable key of what ``constraints`` constrain, without their numbers: the
    types, components, parameter names and kinds/operations, in order. Constraint lists
    with equal keys can be stacked into one batch (:func:`stack_constraints`)."""
    key = []
    for c in constraints:
        numbers = set(_NUMBERS[type(c).__name__])
        key.append((type(c).__name__,) + tuple((f.name, getattr(c, f.name)) for f in fields(c)
                                                if f.name not in numbers))
    return tuple(key)


def stack_constraints(per_galaxy: Sequence[Sequence[Constraint]]) -> tuple:
    """One batch's constraints from each galaxy's own (B lists of equal
    :func:`constraint_structure`): every number becomes one per galaxy (a tuple of
    length B), or stays one number where all galaxies agree.

    Raises:
        ValueError: the lists differ in structure, or a list holds per-galaxy numbers already.
    """
    per_galaxy = [tuple(cs) for cs in per_galaxy]
    if not per_galaxy:
        return ()
    structure = constraint_structure(per_galaxy[0])
    for b, cs in enumerate(per_galaxy):
        if constraint_structure(cs) != structure:
            raise ValueError(f"the constraints of galaxy {b} differ in structure from those of galaxy 0")
    out = []
    for j, first in enumerate(per_galaxy[0]):
        changes = {}
        for name in _NUMBERS[type(first).__name__]:
            values = [getattr(cs[j], name) for cs in per_galaxy]
            if any(isinstance(v, tuple) for v in values):
                raise ValueError(f"constraint '{first.describe()}': already per galaxy; stack one galaxy's each")
            changes[name] = values[0] if all(v == values[0] for v in values) else tuple(values)
        out.append(replace(first, **changes) if changes else first)
    return tuple(out)


_POSITIONS = ("x", "y")


def shifts_with_origin(c: Constraint) -> bool:
    """True when moving a galaxy's pixel origin keeps ``c`` meaningful, with at most its
    numbers shifted (:func:`shift_constraints`): always, except for constraints whose
    scale-type relation involves a position (a factor range on ``x`` or ``y``, a ratio
    tie or ratio range of positions): ``x / x0`` changes with the origin."""
    if isinstance(c, FactorRange):
        return c.name not in _POSITIONS
    if isinstance(c, Tie):
        return c.kind != "ratio" or not set(c.name) & set(_POSITIONS)
    if isinstance(c, PairRange):
        return c.op != "/" or not set(c.name) & set(_POSITIONS)
    return True


def shift_constraints(constraints: Sequence[Constraint], dx: float, dy: float) -> tuple:
    """``constraints`` in a pixel frame whose coordinates are the old ones minus (dx, dy)
    [pix] (``x_new = x_old - dx``): absolute ranges on ``x`` / ``y`` move with the
    positions; a difference range of an ``x`` and a ``y`` moves by the difference of the
    shifts; relative ranges, ties and other differences are unchanged (they refer to the
    initial values, which move too).

    Raises:
        ValueError: a constraint that does not shift (:func:`shifts_with_origin`).
    """
    delta = {"x": float(dx), "y": float(dy)}
    out = []
    for c in constraints:
        if not shifts_with_origin(c):
            raise ValueError(f"constraint '{c.describe()}' changes meaning when the pixel origin moves")
        if isinstance(c, Range) and c.name in delta:
            d = delta[c.name]
            c = replace(c, low=_plus(c.low, -d), high=_plus(c.high, -d))
        elif isinstance(c, PairRange) and c.op == "-":
            d = delta.get(c.name[1], 0.0) - delta.get(c.name[0], 0.0)
            if d:
                c = replace(c, low=_plus(c.low, -d), high=_plus(c.high, -d))
        out.append(c)
    return tuple(out)


def _plus(value: Number, d: float) -> Number:
    return value + d if isinstance(value, float) else tuple(v + d for v in value)
