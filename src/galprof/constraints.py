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
:mod:`galprof.conventions`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Constraint", "FactorRange", "PairRange", "Range", "RelativeRange", "Tie"]


@dataclass(frozen=True)
class Range:
    """``low <= p <= high`` for parameter ``name`` of ``component`` (GALFIT ``3 n 0.7 to 5``)."""

    component: int
    name: str
    low: float
    high: float

    def describe(self) -> str:
        return f"{self.component} {self.name} {self.low:g} to {self.high:g}"


@dataclass(frozen=True)
class RelativeRange:
    """``p0 + below <= p <= p0 + above`` with p0 the initial value (GALFIT ``2 x -1 0.5``)."""

    component: int
    name: str
    below: float
    above: float

    def describe(self) -> str:
        return f"{self.component} {self.name} {self.below:g} {self.above:g}"


@dataclass(frozen=True)
class FactorRange:
    """``p0 / factor <= p <= p0 * factor`` with p0 the (positive) initial value and
    factor > 1 (GALFITM ``1 re factor 3``: R_e within a factor of 3 of its input value)."""

    component: int
    name: str
    factor: float

    def describe(self) -> str:
        return f"{self.component} {self.name} factor {self.factor:g}"


@dataclass(frozen=True)
class Tie:
    """Hard constraint: the members keep their initial ``offset`` (differences) or ``ratio``
    (GALFIT ``1_2_3 x offset``, ``2_3 re ratio``). The first free member leads."""

    components: tuple[int, ...]
    name: str | tuple[str, ...]  # one name, or one per component (R_e of one, R_s of another)
    kind: str  # "offset" or "ratio"

    def __post_init__(self):
        object.__setattr__(self, "components", tuple(self.components))
        object.__setattr__(self, "name", _names(self.name, len(self.components)))

    def describe(self) -> str:
        return f"{'_'.join(map(str, self.components))} {_show(self.name)} {self.kind}"


@dataclass(frozen=True)
class PairRange:
    """A range on two components' parameters (GALFIT ``3-7 mag -0.5 3``, ``3/5 re 1 3``).

    ``op`` "-": ``low <= p_second - p_first <= high``, the second relative to the first,
    as GALFIT's documentation explains its example (``3-7 mag -0.5 3``: component 7 is
    between 0.5 mag brighter and 3 mag fainter than component 3).
    ``op`` "/": ``low <= p_first / p_second <= high`` (``3/5 re 1 3``: R_e of component
    3 is between 1 and 3 times that of component 5).
    """

    first: int
    second: int
    name: str | tuple[str, str]  # one name, or (first's, second's)
    op: str  # "-" or "/"
    low: float
    high: float

    def __post_init__(self):
        object.__setattr__(self, "name", _names(self.name, 2))

    def describe(self) -> str:
        return f"{self.first}{self.op}{self.second} {_show(self.name)} {self.low:g} {self.high:g}"


def _names(name, count: int) -> tuple[str, ...]:
    names = (name,) * count if isinstance(name, str) else tuple(name)
    if len(names) != count:
        raise ValueError(f"{count} parameter names needed, got {names}")
    return names


def _show(names: tuple[str, ...]) -> str:
    return names[0] if len(set(names)) == 1 else "/".join(names)


Constraint = Range | RelativeRange | FactorRange | Tie | PairRange
