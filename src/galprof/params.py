"""Parameter layout: named parameters <-> batched tensors, fixed/free, and bound transforms.

All parameters of a model are held in one (B, P) tensor in user units; the optimiser
sees only the free ones, mapped to unbounded internal coordinates theta (B, F):

* ``free`` scale: theta = p (magnitudes, sky);
* ``angle``: theta = p [deg] (PA is periodic; it is reduced to (-90, 90] on output);
* ``linear`` with bounds (lo, hi): p = lo + (hi - lo) * sigmoid(theta);
* ``log`` with bounds (lo, hi): log p = log lo + (log hi - log lo) * sigmoid(theta).

The transforms are smooth, so gradients never die at a clipped edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .conventions import canonical_pa_deg
from .model import Model, ModelError
from .profiles.base import EllipticalProfile

_SIZE_NAMES = ("r_e", "r_s", "fwhm")


@dataclass(frozen=True)
class ParameterEntry:
    component: int  # 0-based component index
    name: str
    scale: str
    low: float
    high: float
    free: bool


class ParameterLayout:
    """The flat order of a model's parameters and how free ones map to theta.

    Args:
        model: the model description.
        position_bounds: ((x_lo, x_hi), (y_lo, y_hi)) default bounds of centres [pix,
            1-based], normally the fit region.
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
                entries.append(ParameterEntry(ci, spec.name, scale, float(bounds[0]), float(bounds[1]),
                                              spec.name not in comp.fixed))
        self.entries = tuple(entries)
        self.free_index = tuple(i for i, e in enumerate(entries) if e.free)
        self.names = tuple((e.component, e.name) for e in entries)

    @property
    def n_params(self) -> int:
        return len(self.entries)

    @property
    def n_free(self) -> int:
        return len(self.free_index)

    def index(self, component: int, name: str) -> int:
        return self.names.index((component, name))

    def initial_values(self, batch: int) -> np.ndarray:
        """(B, P) float64 array of initial values, scalars broadcast over the batch."""
        out = np.empty((batch, self.n_params))
        for i, e in enumerate(self.entries):
            value = np.asarray(self.model.components[e.component].values[e.name], dtype=np.float64)
            out[:, i] = np.broadcast_to(value, (batch,))
        return out

    def check_inside_bounds(self, values: np.ndarray) -> None:
        """Error naming the parameter when an initial value lies outside its bounds."""
        for i, e in enumerate(self.entries):
            if not e.free:
                continue
            bad = (values[:, i] < e.low) | (values[:, i] > e.high)
            if bad.any():
                b = int(np.flatnonzero(bad)[0])
                comp = self.model.components[e.component]
                raise ModelError(
                    f"component {e.component + 1} ({comp.profile}): initial {e.name} = {values[b, i]:g} "
                    f"(galaxy {b}) lies outside its bounds [{e.low:g}, {e.high:g}]"
                )

    # -- transforms -------------------------------------------------------------------
    def _bounds_tensors(self, like: torch.Tensor):
        free = [self.entries[i] for i in self.free_index]
        low = torch.tensor([e.low for e in free], dtype=like.dtype, device=like.device)
        high = torch.tensor([e.high for e in free], dtype=like.dtype, device=like.device)
        kind = [e.scale for e in free]
        return free, low, high, kind

    def to_internal(self, values: torch.Tensor) -> torch.Tensor:
        """(B, P) user values -> (B, F) unbounded theta (values are nudged inside bounds)."""
        free, low, high, kind = self._bounds_tensors(values)
        cols = []
        for k, i in enumerate(self.free_index):
            p = values[:, i]
            if kind[k] in ("free", "angle"):
                cols.append(p)
                continue
            if kind[k] == "log":
                lo, hi, v = math.log(free[k].low), math.log(free[k].high), torch.log(p)
            else:
                lo, hi, v = free[k].low, free[k].high, p
            frac = ((v - lo) / (hi - lo)).clamp(1e-9, 1 - 1e-9)
            cols.append(torch.logit(frac))
        return torch.stack(cols, dim=-1) if cols else values[:, :0]

    def to_user(self, theta: torch.Tensor, fixed_values: torch.Tensor) -> torch.Tensor:
        """(B, F) theta and (B, P) values holding the fixed ones -> (B, P) user values."""
        cols = [fixed_values[:, i] for i in range(self.n_params)]
        for k, i in enumerate(self.free_index):
            e = self.entries[i]
            t = theta[:, k]
            if e.scale in ("free", "angle"):
                cols[i] = t
            elif e.scale == "log":
                lo, hi = math.log(e.low), math.log(e.high)
                cols[i] = torch.exp(lo + (hi - lo) * torch.sigmoid(t))
            else:
                cols[i] = e.low + (e.high - e.low) * torch.sigmoid(t)
        return torch.stack(cols, dim=-1)

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

    def canonicalise(self, values: np.ndarray) -> np.ndarray:
        """Report form: q <= 1 (swapping axes: q -> 1/q, sizes -> size * q, PA + 90) and PA in (-90, 90].

        Only applied to components whose q bounds allow q > 1.
        """
        out = values.copy()
        for ci, comp in enumerate(self.model.components):
            if not issubclass(comp.profile_class, EllipticalProfile):
                continue
            iq, ipa = self.index(ci, "q"), self.index(ci, "pa")
            swap = out[:, iq] > 1.0
            if swap.any():
                for name in _SIZE_NAMES:
                    if (ci, name) in self.names:
                        j = self.index(ci, name)
                        out[swap, j] = out[swap, j] * out[swap, iq]
                out[swap, ipa] = out[swap, ipa] + 90.0
                out[swap, iq] = 1.0 / out[swap, iq]
            out[:, ipa] = canonical_pa_deg(out[:, ipa])
        return out
