"""Parameter layout: named parameters <-> batched tensors, fixed/free, and bound transforms.

All parameters of a model are held in one (B, P) tensor in user units; the optimiser
sees only the free ones, mapped to unbounded internal coordinates theta (B, F):

* ``free`` scale: theta = p (magnitudes, sky);
* ``angle``: theta = p [deg] (PA is periodic; it is reduced to (-90, 90] on output);
* ``linear`` with bounds (lo, hi): p = lo + (hi - lo) * sigmoid(theta);
* ``log`` with bounds (lo, hi): log p = log lo + (log hi - log lo) * sigmoid(theta).

The transforms are smooth, so gradients never die at a clipped edge.

Bounds and tie constants may differ between the galaxies of a batch (a relative range
around each galaxy's own start, a tie keeping each galaxy's own initial offset, per-galaxy
constraint numbers): they are then (B,) arrays instead of floats, and every transform
takes ``rows``, the galaxy (of the layout's batch) of each row it is given, so that
several starts of one galaxy, or a subset of the batch, use that galaxy's bounds. The
transforms stay elementwise over the batch (a gather of the per-galaxy numbers).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from ..conventions import canonical_pa_deg
from ..model import Model, ModelError
from ..profiles.base import EllipticalProfile

_SIZE_NAMES = ("r_e", "r_s", "fwhm")
#: largest change [mag] of a magnitude (total or surface brightness) in one LM step
MAGNITUDE_STEP_LIMIT = 2.0
#: largest change [pix] of a centre coordinate (x, y, or a coupled difference of them) in one LM step
POSITION_STEP_LIMIT = 2.0
#: largest change of ln(size) (R_e, R_s, FWHM, every ``is_size`` parameter) in one LM step: a factor 2
LOG_SIZE_STEP_LIMIT = math.log(2.0)
#: largest change of ln(q) in one LM step (a factor 1.4: 0.6 -> 0.43 or 0.84)
LOG_AXIS_RATIO_STEP_LIMIT = 0.35
#: largest change [deg] of a position angle in one LM step
PA_STEP_LIMIT = 30.0
#: largest change of ln(n) of a Sersic index in one LM step (a factor 1.5)
LOG_INDEX_STEP_LIMIT = math.log(1.5)
#: largest change of theta of any bounded coordinate in one LM step: the logistic moves
#: from the middle of its range to 98 % of it; a longer step lands where the transform
#: is flat (a narrow constraint range's coordinate once jumped from theta 2.9 to 35 in
#: one step and never came back)
BOUNDED_THETA_STEP_LIMIT = 4.0
# values on or beyond a bound enter theta this far inside it (as a fraction of the range):
# theta = +-logit(1 - INTERNAL_EDGE), where the model no longer changes with the value
INTERNAL_EDGE = 1e-9


PerGalaxy = float | np.ndarray
"""One number for the whole batch, or a read-only (B,) float64 array, one per galaxy."""


@dataclass(frozen=True, eq=False)
class ParameterEntry:
    """One parameter of the layout.

    ``role`` is ``free`` (an optimiser coordinate: the value itself), ``fixed``,
    ``tied`` (follows parameter ``ref``: ``p = p_ref + const`` for ``op`` "offset",
    ``p_ref * const`` for "ratio") or ``coupled`` (an optimiser coordinate d in
    [low, high]: ``p = p_ref + d`` for ``op`` "-", ``p_ref / d`` for "/").

    ``low``, ``high`` (in the parameter's unit, or of d for a coupled one) and ``const``
    are floats when one number serves the whole batch, else (B,) arrays (see
    :data:`PerGalaxy`).
    """

    component: int  # 0-based component index
    name: str
    scale: str
    low: PerGalaxy
    high: PerGalaxy
    free: bool
    role: str = "free"
    ref: int = -1
    op: str = ""
    const: PerGalaxy = 0.0
    from_constraint: bool = False  # bounds set by a constraint: a start outside is moved in


def _per_galaxy(value) -> PerGalaxy:
    """A float when ``value`` is one number or the same for every galaxy, else a
    read-only (B,) float64 array."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return float(arr)
    arr = arr.reshape(-1)
    if arr.size and np.all(arr == arr[0]):
        return float(arr[0])
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


def _at(value: PerGalaxy, b: int) -> float:
    """Galaxy b's number of a :data:`PerGalaxy` value."""
    return float(value) if np.ndim(value) == 0 else float(value[b])


def _first_bad(bad) -> int | None:
    """None when no element of ``bad`` holds; the first galaxy where it does (0 for a
    scalar)."""
    bad = np.asarray(bad)
    if not bad.any():
        return None
    return 0 if bad.ndim == 0 else int(np.flatnonzero(bad)[0])


def _log(value: PerGalaxy) -> PerGalaxy:
    """ln of a :data:`PerGalaxy` value (``math.log`` for a float, as a single galaxy's)."""
    return math.log(value) if np.ndim(value) == 0 else _per_galaxy(np.log(value))


def _initial(model: Model, component: int, name: str) -> PerGalaxy:
    """The initial value of a parameter: a float, or (B,) array (one per galaxy)."""
    return _per_galaxy(model.components[component].values[name])


def _tie_constant(model: Model, leader: ParameterEntry, follower: ParameterEntry, kind: str, what) -> PerGalaxy:
    """The constant of a tie (``kind`` "offset": follower - leader; "ratio": follower /
    leader) from each galaxy's initial values: a float when it is the same for the whole
    batch (to 1e-9 relative), else (B,) (galaxies keep their own offsets or ratios)."""
    lead = np.asarray(model.components[leader.component].values[leader.name], dtype=np.float64)
    follow = np.asarray(model.components[follower.component].values[follower.name], dtype=np.float64)
    lead, follow = np.broadcast_arrays(lead, follow)
    if kind == "ratio":
        b = _first_bad(lead == 0)
        if b is not None:
            where = f" (galaxy {b})" if lead.ndim else ""
            raise ModelError(f"{what(b if lead.ndim else None)}: the leading initial value is 0{where}, so ratios "
                             "are undefined")
        const = np.atleast_1d(follow / lead)
    else:
        const = np.atleast_1d(follow - lead)
    scale = max(1.0, float(np.abs(const).max()), float(np.abs(lead).max()))
    if np.ptp(const) <= 1e-9 * scale:
        return float(const[0])  # one constant for the batch, exactly as a single galaxy's
    return _per_galaxy(const)


class ParameterLayout:
    """The flat order of a model's parameters and how the optimiser's coordinates map to them.

    Args:
        model: the model description (its constraints included).
        position_bounds: ((x_lo, x_hi), (y_lo, y_hi)) default bounds of centres [pix,
            1-based], normally the fit region.

    The optimiser's coordinates are the free parameters and, for each coupled range
    (:class:`galprof.constraints.PairRange`), the bounded difference or ratio; tied
    parameters follow their leader (see :mod:`galprof.constraints`). Bounds and tie
    constants may be per galaxy (see the module docstring); :attr:`batch_size` is then
    the number of galaxies they are given for.
    """

    def __init__(self, model: Model, position_bounds: tuple[tuple[float, float], tuple[float, float]]):
        self.model = model
        entries = []
        for ci, comp in enumerate(model.components):
            for spec in comp.profile_class.parameters:
                bounds = comp.bounds.get(spec.name)
                if bounds is None:
                    if spec.name == "x":
                        bounds = position_bounds[0]
                    elif spec.name == "y":
                        bounds = position_bounds[1]
                    else:
                        bounds = spec.bounds
                scale = spec.scale
                if comp.bounds.get(spec.name) is not None and scale in ("free", "angle"):
                    scale = "linear"
                if bounds is None:
                    bounds = (-math.inf, math.inf)
                if scale == "log" and bounds[0] <= 0:
                    raise ModelError(f"component {ci + 1} ({comp.profile}): {spec.name} must have positive bounds")
                free = spec.name not in comp.fixed
                entries.append(ParameterEntry(ci, spec.name, scale, float(bounds[0]), float(bounds[1]), free,
                                              "free" if free else "fixed"))
        self.names = tuple((e.component, e.name) for e in entries)
        entries = self._apply_constraints(model, entries)
        self.entries = tuple(entries)
        self.free_index = tuple(i for i, e in enumerate(entries) if e.role in ("free", "coupled"))
        self._order = self._dependency_order()
        sizes = {np.size(v) for e in entries for v in (e.low, e.high, e.const) if np.ndim(v)}
        self.batch_size: int | None = sizes.pop() if sizes else None
        # per free coordinate: its bounds in the transform's space (ln for log-scaled ones)
        self._space = []
        for i in self.free_index:
            e = self.entries[i]
            if e.scale == "log":
                self._space.append((_log(e.low), _log(e.high)))
            else:
                self._space.append((e.low, e.high))
        self._tensors: dict = {}  # per-galaxy numbers as tensors, per (key, device, dtype)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tensors"] = {}
        return state

    # -- constraints --------------------------------------------------------------------
    def _apply_constraints(self, model: Model, entries: list[ParameterEntry]) -> list[ParameterEntry]:

        def narrow(i, low, high, what):
            e = entries[i]
            if e.role != "free":
                return
            new_low, new_high = np.maximum(e.low, low), np.minimum(e.high, high)
            b = _first_bad(~(new_low < new_high))
            if b is not None:
                if np.ndim(new_low) == 0:
                    raise ModelError(f"{what(None)}: leaves no room for {e.name} of component {e.component + 1} "
                                     f"(bounds [{e.low:g}, {e.high:g}])")
                raise ModelError(f"{what(b)}: leaves no room for {e.name} of component {e.component + 1} in galaxy "
                                 f"{b} (bounds [{_at(e.low, b):g}, {_at(e.high, b):g}])")
            scale = "linear" if e.scale in ("free", "angle") else e.scale
            entries[i] = replace(e, low=_per_galaxy(new_low), high=_per_galaxy(new_high), scale=scale,
                                 from_constraint=True)

        def positive(value, c, what, text):
            b = _first_bad(~(np.asarray(value) > 0))
            if b is not None:
                where = f" (galaxy {b})" if np.ndim(value) else ""
                raise ModelError(f"{what(b if np.ndim(value) else None)}: {text}, got {_at(value, b):g}{where}")

        for c in model.constraints:

            def what(b, c=c):
                """The constraint's text (galaxy b's numbers when they differ per galaxy)."""
                if b is not None and getattr(c, "batch_size", None) is not None:
                    return f"constraint '{c.describe(b)}' of galaxy {b}"
                return f"constraint '{c.describe()}'"

            if isinstance(c, Range):
                narrow(self.names.index((c.component - 1, c.name)), np.asarray(c.low), np.asarray(c.high), what)
            elif isinstance(c, RelativeRange):
                v0 = _initial(model, c.component - 1, c.name)
                narrow(self.names.index((c.component - 1, c.name)), v0 + np.asarray(c.below),
                       v0 + np.asarray(c.above), what)
            elif isinstance(c, FactorRange):
                v0 = _initial(model, c.component - 1, c.name)
                positive(v0, c, what, "needs a positive initial value")
                factor = np.asarray(c.factor)
                narrow(self.names.index((c.component - 1, c.name)), v0 / factor, v0 * factor, what)
            elif isinstance(c, Tie):
                members = [self.names.index((n - 1, name)) for n, name in zip(c.components, c.name)]
                free = [i for i in members if entries[i].role == "free"]
                if len(free) < 2:
                    continue
                leader = free[0]
                for i in free[1:]:
                    const = _tie_constant(model, entries[leader], entries[i], c.kind, what)
                    entries[i] = replace(entries[i], role="tied", free=False, ref=leader, op=c.kind, const=const)
            elif isinstance(c, PairRange):
                i = self.names.index((c.first - 1, c.name[0]))
                j = self.names.index((c.second - 1, c.name[1]))
                if entries[j].role == "free":
                    scale = "log" if c.op == "/" else "linear"
                    entries[j] = replace(entries[j], role="coupled", free=False, ref=i, op=c.op, scale=scale,
                                         low=_per_galaxy(c.low), high=_per_galaxy(c.high), from_constraint=True)
                elif entries[j].role == "fixed" and entries[i].role == "free":
                    v_second = _initial(model, c.second - 1, c.name[1])
                    low, high = np.asarray(c.low), np.asarray(c.high)
                    if c.op == "-":
                        narrow(i, v_second - high, v_second - low, what)
                    else:
                        positive(v_second, c, what, f"a ratio needs a positive value of the fixed component "
                                                    f"{c.second}")
                        narrow(i, v_second * low, v_second * high, what)
                elif entries[j].role in ("tied", "coupled"):
                    raise ModelError(f"{what(None)}: {c.name[1]} of component {c.second} is already set by another "
                                     "constraint; reorder the components or combine the constraints")
        return entries

    def _dependency_order(self) -> tuple[int, ...]:
        pending = [i for i, e in enumerate(self.entries) if e.role in ("tied", "coupled")]
        resolved = {i for i, e in enumerate(self.entries) if e.role in ("free", "fixed")}
        order = []
        while pending:
            ready = [i for i in pending if self.entries[i].ref in resolved]
            if not ready:
                e = self.entries[pending[0]]
                raise ModelError(f"constraints on {e.name} form a cycle (component {e.component + 1})")
            for i in ready:
                order.append(i)
                resolved.add(i)
                pending.remove(i)
        return tuple(order)

    # -- shapes and names ---------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return len(self.entries)

    @property
    def n_free(self) -> int:
        """Number of optimiser coordinates (free parameters plus coupled ranges)."""
        return len(self.free_index)

    @property
    def varying_index(self) -> tuple[int, ...]:
        """Parameters that change during a fit: free, tied and coupled ones."""
        return tuple(i for i, e in enumerate(self.entries) if e.role != "fixed")

    @property
    def constrained_index(self) -> tuple[int, ...]:
        """Parameters whose value follows from another one's (tied and coupled)."""
        return tuple(i for i, e in enumerate(self.entries) if e.role in ("tied", "coupled"))

    def index(self, component: int, name: str) -> int:
        return self.names.index((component, name))

    def initial_values(self, batch: int) -> np.ndarray:
        """(B, P) float64 array of initial values, scalars broadcast over the batch."""
        out = np.empty((batch, self.n_params))
        for i, e in enumerate(self.entries):
            value = np.asarray(self.model.components[e.component].values[e.name], dtype=np.float64)
            out[:, i] = np.broadcast_to(value, (batch,))
        return out

    # -- per-galaxy numbers ---------------------------------------------------------
    def _number(self, key, value: PerGalaxy, rows, like: torch.Tensor):
        """``value`` for the rows of ``like`` (b, ...): a float as it is, or a (b,) tensor
        of ``like``'s dtype and device holding galaxy ``rows[r]``'s number in row r
        (``rows`` None: row r is galaxy r). Cached per device and dtype: one gather per
        call, no host synchronisation."""
        if np.ndim(value) == 0:
            return value
        cache = (key, like.device, like.dtype)
        full = self._tensors.get(cache)
        if full is None:
            full = torch.tensor(np.array(value), dtype=like.dtype, device=like.device)
            self._tensors[cache] = full
        if rows is None:
            if like.shape[0] != full.shape[0]:
                raise ValueError(f"{like.shape[0]} rows for a layout with per-galaxy bounds of {full.shape[0]} "
                                 "galaxies: pass rows (the galaxy of each row)")
            return full
        return full[torch.as_tensor(rows, device=like.device)]

    def _space_bounds(self, k: int, rows, like: torch.Tensor):
        """(lo, hi) of free coordinate k in its transform's space (ln for log-scaled
        ones): floats, or (b,) tensors (see :meth:`_number`)."""
        lo, hi = self._space[k]
        return self._number(("lo", k), lo, rows, like), self._number(("hi", k), hi, rows, like)

    def coordinate_bounds(self, rows=None, n_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """((b, F), (b, F)) float64 lower and upper bounds of each optimiser coordinate in
        user units (of the difference or ratio for a coupled range), for the galaxies
        ``rows`` (b,) (an int array or tensor; None: galaxies 0..b-1 with b = ``n_rows``,
        or the layout's batch size)."""
        if rows is not None:
            rows = np.asarray(rows.cpu() if torch.is_tensor(rows) else rows, dtype=np.int64)
            n = rows.shape[0]
        else:
            n = n_rows if n_rows is not None else (self.batch_size or 1)
        low, high = np.empty((n, self.n_free)), np.empty((n, self.n_free))
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            for out, value in ((low, e.low), (high, e.high)):
                if np.ndim(value) == 0:
                    out[:, k] = value
                elif rows is not None:
                    out[:, k] = value[rows]
                elif len(value) == n:
                    out[:, k] = value
                else:
                    raise ValueError(f"{n} rows for a layout with per-galaxy bounds of {len(value)} galaxies")
        return low, high

    def check_inside_bounds(self, values: np.ndarray) -> None:
        """Error naming the parameter (and the galaxy) when an initial value lies outside its bounds.

        A start outside a range set by a constraint is not an error (GALFIT accepts it):
        the fit starts just inside the range, with a warning naming the parameter.
        """
        coords = self.free_coordinates(torch.as_tensor(values, dtype=torch.float64)).numpy()
        low, high = self.coordinate_bounds(n_rows=values.shape[0])
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            lo, hi = low[:, k], high[:, k]
            # values within rounding of a bound (a previous fit that ended on it) are on it
            slack = 1e-9 * np.maximum(1.0, np.maximum(np.where(np.isfinite(lo), np.abs(lo), 1.0),
                                                      np.where(np.isfinite(hi), np.abs(hi), 1.0)))
            bad = (coords[:, k] < lo - slack) | (coords[:, k] > hi + slack)
            if not bad.any():
                continue
            b = int(np.flatnonzero(bad)[0])
            comp = self.model.components[e.component]
            if e.role == "coupled":
                text = (f"components {self.entries[e.ref].component + 1} and {e.component + 1}: initial values "
                        f"give {self._pair_text(e)} = {coords[b, k]:g}")
            else:
                text = f"component {e.component + 1} ({comp.profile}): initial {e.name} = {values[b, i]:g}"
            text += f" (galaxy {b}; {int(bad.sum())} in all) lies outside [{lo[b]:g}, {hi[b]:g}]"
            if e.from_constraint:
                warnings.warn(f"{text}, the range of a constraint; starting inside it", stacklevel=3)
            else:
                raise ModelError(text)

    def move_inside_constraints(self, values: np.ndarray, margin: float = 0.05) -> np.ndarray:
        """Starting values with every constraint-set coordinate at least ``margin`` of its
        range (each galaxy's own) away from the range's ends (a start on or beyond a limit
        would sit where the bound transform is flat and could not move).

        Returns a copy of ``values`` (B, P); tied and coupled parameters are recomputed.
        """
        v = torch.as_tensor(values, dtype=torch.float64)
        coords = self.free_coordinates(v)
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            if not e.from_constraint:
                continue
            lo, hi = self._space_bounds(k, None, v)
            span = hi - lo
            if e.scale == "log":
                c = torch.log(coords[:, k].clamp(min=1e-300))
                coords[:, k] = torch.exp(torch.clamp(c, lo + margin * span, hi - margin * span))
            else:
                coords[:, k] = torch.clamp(coords[:, k], lo + margin * span, hi - margin * span)
        return self.from_free_coordinates(coords, v).numpy()

    def _pair_text(self, e: ParameterEntry) -> str:
        ref = self.entries[e.ref]
        first, second = f"{ref.name}({ref.component + 1})", f"{e.name}({e.component + 1})"
        return f"{second} - {first}" if e.op == "-" else f"{first} / {second}"

    # -- transforms -------------------------------------------------------------------
    # ``rows`` (b,): the galaxy (of the layout's batch) of each row; None: row r is
    # galaxy r. Only layouts with per-galaxy bounds or tie constants use it.
    def free_coordinates(self, values: torch.Tensor) -> torch.Tensor:
        """(B, P) user values -> (B, F) optimiser coordinates in user units (the free
        values, and p - p_ref or p_ref / p for coupled ranges)."""
        cols = []
        for i in self.free_index:
            e = self.entries[i]
            if e.role == "coupled":
                ref = values[:, e.ref]
                cols.append(values[:, i] - ref if e.op == "-" else ref / values[:, i])
            else:
                cols.append(values[:, i])
        return torch.stack(cols, dim=-1) if cols else values[:, :0]

    def from_free_coordinates(self, coords: torch.Tensor, fixed_values: torch.Tensor, rows=None) -> torch.Tensor:
        """(b, F) optimiser coordinates in user units and (b, P) values holding the fixed
        ones -> (b, P) user values (tied and coupled parameters resolved, each row with its
        galaxy's tie constants)."""
        cols = [fixed_values[:, i] for i in range(self.n_params)]
        coupled = {}
        for k, i in enumerate(self.free_index):
            if self.entries[i].role == "coupled":
                coupled[i] = coords[:, k]
            else:
                cols[i] = coords[:, k]
        for i in self._order:
            e = self.entries[i]
            ref = cols[e.ref]
            if e.role == "tied":
                const = self._number(("const", i), e.const, rows, ref)
                cols[i] = ref + const if e.op == "offset" else ref * const
            else:
                cols[i] = ref + coupled[i] if e.op == "-" else ref / coupled[i]
        return torch.stack(cols, dim=-1)

    def to_internal(self, values: torch.Tensor, rows=None) -> torch.Tensor:
        """(b, P) user values -> (b, F) unbounded theta (values are nudged inside bounds)."""
        coords = self.free_coordinates(values)
        cols = []
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            p = coords[:, k]
            if e.scale in ("free", "angle"):
                cols.append(p)
                continue
            lo, hi = self._space_bounds(k, rows, p)
            v = torch.log(p) if e.scale == "log" else p
            frac = ((v - lo) / (hi - lo)).clamp(INTERNAL_EDGE, 1 - INTERNAL_EDGE)
            cols.append(torch.logit(frac))
        return torch.stack(cols, dim=-1) if cols else values[:, :0]

    def to_user(self, theta: torch.Tensor, fixed_values: torch.Tensor, rows=None) -> torch.Tensor:
        """(b, F) theta and (b, P) values holding the fixed ones -> (b, P) user values."""
        coords = []
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            t = theta[:, k]
            if e.scale in ("free", "angle"):
                coords.append(t)
                continue
            lo, hi = self._space_bounds(k, rows, t)
            if e.scale == "log":
                coords.append(torch.exp(lo + (hi - lo) * torch.sigmoid(t)))
            else:
                coords.append(lo + (hi - lo) * torch.sigmoid(t))
        stacked = torch.stack(coords, dim=-1) if coords else theta
        return self.from_free_coordinates(stacked, fixed_values, rows)

    def coordinate_slopes(self, free: torch.Tensor, internal: bool, rows=None) -> torch.Tensor:
        """(b, F): d(coordinate in user units) / d(optimiser coordinate) of each free
        parameter: 1 for coordinates in user units, the slope of the bound transform for
        theta. Without tied or coupled parameters this is the diagonal of
        :meth:`value_jacobian` (which is then diagonal), computed without autodiff."""
        if not internal:
            return torch.ones_like(free)
        cols = []
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            t = free[:, k]
            if e.scale in ("free", "angle"):
                cols.append(torch.ones_like(t))
                continue
            lo, hi = self._space_bounds(k, rows, t)
            s = torch.sigmoid(t)
            ds = s * (1.0 - s)
            if e.scale == "log":
                cols.append(torch.exp(lo + (hi - lo) * s) * ((hi - lo) * ds))
            else:
                cols.append((hi - lo) * ds)
        return torch.stack(cols, dim=-1) if cols else free[:, :0]

    def log_slope(self, theta: torch.Tensor, rows=None) -> torch.Tensor:
        """(b,) log |d coordinates / d theta|: the log-determinant of the bound transforms
        (diagonal), summed over the coordinates, computed stably far out on the logistic
        (a flat prior in user units becomes this density in theta)."""
        total = theta.new_zeros(theta.shape[0])
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            if e.scale not in ("linear", "log"):
                continue
            t = theta[:, k]
            lo, hi = self._space_bounds(k, rows, t)
            span = hi - lo
            log_span = torch.log(span) if torch.is_tensor(span) else math.log(span)
            total = total + log_span + torch.nn.functional.logsigmoid(t) + torch.nn.functional.logsigmoid(-t)
            if e.scale == "log":
                total = total + (lo + span * torch.sigmoid(t))
        return total

    def value_jacobian(self, free: torch.Tensor, fixed_values: torch.Tensor, internal: bool,
                       rows=None) -> torch.Tensor:
        """(b, P, F): d(user values) / d(optimiser coordinates) at ``free`` (b, F), which are
        theta (``internal``) or the coordinates in user units.

        By one reverse-mode pass through V copies of the rows (V varying parameters): copy
        v seeds the gradient of parameter v, so one backward pass gives every row of the
        Jacobian. The transform is elementwise per row (cheap beside a render), so its
        cost grows with the number of parameters, not with its square as one pass per
        parameter did (2.5 s for 25 Sersic components, bench/RESULTS.md, issue 23).
        Reverse mode, unlike forward mode, may run in several threads at once (the CPU
        worker threads); and unlike ``is_grads_batched`` (or any tensor ``grad_outputs``)
        it does not import sympy on its first use (0.35 s, once per process)."""
        n_free = free.shape[1]
        if n_free == 0:
            return free.new_zeros(free.shape[0], self.n_params, 0)
        varying = list(self.varying_index)
        bsz = free.shape[0]
        out = free.new_zeros(bsz, self.n_params, n_free)
        if not varying:
            return out
        copies = len(varying)
        fixed_rep = fixed_values.repeat(copies, *([1] * (fixed_values.dim() - 1))) if fixed_values.dim() > 1 \
            else fixed_values
        if rows is None and self.batch_size is not None:  # row b is galaxy b
            rows = torch.arange(bsz, device=free.device)
        rows_rep = None if rows is None else torch.as_tensor(rows, device=free.device).repeat(copies)
        with torch.enable_grad():
            f = free.detach().repeat(copies, 1).requires_grad_(True)  # (V b, F), copy-major
            values = (self.to_user(f, fixed_rep, rows_rep) if internal
                      else self.from_free_coordinates(f, fixed_rep, rows_rep))
            if not values.requires_grad:
                return out
            seed = torch.zeros(copies, bsz, self.n_params, dtype=values.dtype, device=values.device)
            seed[torch.arange(copies), :, torch.as_tensor(varying)] = 1.0
            # the gradient of a scalar: torch checks explicit grad_outputs with symbolic
            # shapes, whose first use imports sympy
            grad = torch.autograd.grad((values * seed.reshape(copies * bsz, self.n_params)).sum(), f,
                                       allow_unused=True)[0]
        if grad is not None:
            out[:, varying, :] = grad.reshape(copies, bsz, n_free).permute(1, 0, 2)
        return out

    def step_limits(self) -> np.ndarray:
        """(F,) the largest change of each optimiser coordinate per LM step in its *natural*
        unit (inf: none): of ln p for a log-scaled coordinate, of p itself otherwise.

        The limits form a trust region scaled to the image: :data:`POSITION_STEP_LIMIT`
        [pix] for centres, :data:`LOG_SIZE_STEP_LIMIT` for sizes (a factor 2),
        :data:`LOG_AXIS_RATIO_STEP_LIMIT` for q, :data:`PA_STEP_LIMIT` [deg] for position
        angles, :data:`LOG_INDEX_STEP_LIMIT` for Sersic indices and
        :data:`MAGNITUDE_STEP_LIMIT` [mag] for magnitudes and surface brightnesses. From a
        far start, unlimited Gauss-Newton steps of a multi-component model otherwise
        swing a nearly round component's PA by thousands of degrees, stretch a disk to a
        needle or push it off the frame, and switch a component off (mag -> +hundreds),
        flat states that no later step leaves. :meth:`theta_step_limits` converts these
        to limits on theta at the current point."""
        limits = np.full(self.n_free, np.inf)
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            spec = self.model.components[e.component].profile_class.spec(e.name)
            if spec.unit.startswith("mag"):
                limits[k] = MAGNITUDE_STEP_LIMIT
            elif e.name in ("x", "y"):
                limits[k] = POSITION_STEP_LIMIT
            elif e.scale != "log":
                if e.name == "pa":
                    limits[k] = PA_STEP_LIMIT
            elif spec.is_size or e.name in _SIZE_NAMES:
                limits[k] = LOG_SIZE_STEP_LIMIT
            elif e.name == "q":
                limits[k] = LOG_AXIS_RATIO_STEP_LIMIT
            elif e.name == "n":
                limits[k] = LOG_INDEX_STEP_LIMIT
        return limits

    def theta_step_limits(self, theta: torch.Tensor, natural_limits: np.ndarray, rows=None) -> torch.Tensor:
        """(b, F) the limits (F,) of :meth:`step_limits` (natural units) as limits on theta
        (b, F) at the current point: natural limit / |d natural / d theta|, the slope of
        the bound transform (1 for unbounded coordinates; (ln hi - ln lo) s (1 - s) for
        log-scaled ones, (hi - lo) s (1 - s) for linear ones, s = sigmoid(theta), with the
        bounds of each row's galaxy ``rows``), and at most
        :data:`BOUNDED_THETA_STEP_LIMIT` for every bounded coordinate (near a bound,
        or across a range narrower than the natural limit, the first term grows without
        bound). Elementwise (no host synchronisation)."""
        if theta.shape[1] == 0:
            return theta.new_full(theta.shape, math.inf)
        cols = []
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            t = theta[:, k]
            limit = float(natural_limits[k])
            if e.scale in ("free", "angle"):
                cols.append(torch.full_like(t, limit))
                continue
            s = torch.sigmoid(t)
            lo, hi = self._space_bounds(k, rows, t)
            span = hi - lo
            slope = (span * s * (1.0 - s)).clamp(min=torch.finfo(theta.dtype).tiny)
            cols.append((limit / slope).clamp(max=BOUNDED_THETA_STEP_LIMIT))
        return torch.stack(cols, dim=-1)

    def at_internal_edge(self, theta: torch.Tensor) -> torch.Tensor:
        """(b, F) bool: theta where :meth:`to_internal` put a value on or beyond a bound
        (|theta| = logit(1 - INTERNAL_EDGE)): there the row no longer follows the value it
        was given, so its derivative with respect to that value is 0."""
        edge = math.log((1.0 - INTERNAL_EDGE) / INTERNAL_EDGE) * (1.0 - 1e-9)
        flags = torch.zeros_like(theta, dtype=torch.bool)
        for k, i in enumerate(self.free_index):
            if self.entries[i].scale in ("linear", "log"):
                flags[:, k] = theta[:, k].abs() >= edge
        return flags

    def at_bound(self, theta: torch.Tensor, threshold: float = 12.0) -> torch.Tensor:
        """(B, F) bool: the free parameter sits (numerically) on one of its bounds."""
        flags = torch.zeros_like(theta, dtype=torch.bool)
        for k, i in enumerate(self.free_index):
            if self.entries[i].scale in ("linear", "log"):
                flags[:, k] = theta[:, k].abs() > threshold
        return flags

    def components(self, values: torch.Tensor):
        """(B, P) user values -> [(profile class, {name: (B,) tensor}), ...] for the renderer."""
        out = []
        offset = 0
        for comp in self.model.components:
            profile = comp.profile_class
            names = profile.parameter_names()
            out.append((profile, {n: values[:, offset + j] for j, n in enumerate(names)}))
            offset += len(names)
        return out

    def canonical_slopes(self, values: np.ndarray, slopes: torch.Tensor) -> torch.Tensor:
        """(N, P, C) derivatives of the :meth:`canonicalise` d form of ``values`` (N, P, the
        values before it) from ``slopes`` (N, P, C), their derivatives with respect to any
        C coordinates: where an axis swap applies, size' = size q, per-length' = v / q and
        q' = 1 / q (chain rule); PA and phase shifts and sign flips of Fourier amplitudes
        leave the errors unchanged (a sign flip only negates the row)."""
        out = slopes.clone()
        for ci, comp in enumerate(self.model.components):
            profile = comp.profile_class
            if (not issubclass(profile, EllipticalProfile) or "q" not in profile.parameter_names()
                    or not getattr(profile, "axes_swappable", True)):
                continue
            iq = self.index(ci, "q")
            swap = values[:, iq] > 1.0
            if not swap.any():
                continue
            rows = torch.as_tensor(np.nonzero(swap)[0], device=slopes.device)
            q = torch.as_tensor(values[swap, iq], dtype=slopes.dtype, device=slopes.device)[:, None]
            slope_q = slopes[rows, iq]
            for spec in profile.parameters:
                j = self.index(ci, spec.name)
                v = torch.as_tensor(values[swap, j], dtype=slopes.dtype, device=slopes.device)[:, None]
                if spec.is_size or spec.name in _SIZE_NAMES:
                    out[rows, j] = slopes[rows, j] * q + v * slope_q
                elif spec.per_length:
                    out[rows, j] = slopes[rows, j] / q - v * slope_q / q**2
            out[rows, iq] = -slope_q / q**2
        return out

    def canonicalise(self, values: np.ndarray) -> np.ndarray:
        """Report form: q <= 1 (swapping axes: q -> 1/q, sizes -> size * q, PA + 90, Fourier
        phases + 90) and PA in (-90, 90]; Fourier amplitudes >= 0 with phases in
        (-180/m, 180/m] deg (the same shape).

        Only applied to components whose q bounds allow q > 1, and not to components with
        bending, coordinate rotation or truncation (``axes_swappable`` False), reported as fitted.
        """
        out = values.copy()
        for ci, comp in enumerate(self.model.components):
            profile = comp.profile_class
            if not issubclass(profile, EllipticalProfile) or "q" not in profile.parameter_names():
                if "pa" in profile.parameter_names():
                    ipa = self.index(ci, "pa")
                    out[:, ipa] = canonical_pa_deg(out[:, ipa])
                continue
            if not getattr(profile, "axes_swappable", True):
                continue  # bending, rotation, truncation: no axis swap or PA + 180 leaves them unchanged
            iq, ipa = self.index(ci, "q"), self.index(ci, "pa")
            swap = out[:, iq] > 1.0
            if swap.any():
                for spec in profile.parameters:
                    if spec.is_size or spec.name in _SIZE_NAMES:
                        j = self.index(ci, spec.name)
                        out[swap, j] = out[swap, j] * out[swap, iq]
                    elif spec.per_length:
                        j = self.index(ci, spec.name)
                        out[swap, j] = out[swap, j] / out[swap, iq]
                out[swap, ipa] = out[swap, ipa] + 90.0
                out[swap, iq] = 1.0 / out[swap, iq]
                for m in range(1, 11):  # Fourier angles are measured from the major axis
                    if (ci, f"f{m}_phase") in self.names:
                        out[swap, self.index(ci, f"f{m}_phase")] += 90.0
            out[:, ipa] = canonical_pa_deg(out[:, ipa])
            for m in range(1, 11):
                if (ci, f"f{m}_amp") in self.names:
                    ia, ip = self.index(ci, f"f{m}_amp"), self.index(ci, f"f{m}_phase")
                    negative = out[:, ia] < 0  # a cos(m(t + p)) = -a cos(m(t + p + 180/m))
                    out[negative, ia] = -out[negative, ia]
                    out[negative, ip] = out[negative, ip] + 180.0 / m
                    period = 360.0 / m
                    out[:, ip] = period / 2 - np.remainder(period / 2 - out[:, ip], period)
        return out
