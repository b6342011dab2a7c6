"""Model images and their Jacobians for the optimisers, as functions of the free parameters.

The optimisers see a batch of galaxies through two functions of the free parameters
(either the unbounded internal ``theta`` or the free user values; see
:mod:`galprof.params`):

* ``render(free, index) -> (b, H, W)``: the model images of galaxies ``index``;
* ``jacobian(free, index) -> (model (b, H, W), J (b, H, W, F))``.

The Jacobian is exact. Columns of the parameters the model is linear in are analytic:
a magnitude's column is -0.4 ln(10) times its component's image, the sky's are 1,
x - x_c and y - y_c. All other columns (centres, sizes, shapes) come from one
forward-mode autodiff pass (``torch.func.jvp``) vectorised over the tangents with
``torch.func.vmap``, which also yields the per-component images. Internal coordinates
multiply each column by d(user value)/d(theta) (the transforms act on each parameter
alone).
"""

from __future__ import annotations

import math

import torch
from torch.func import jvp, vmap

from .params import ParameterLayout
from .render.config import RenderConfig
from .render.scene import Frame, render_parts

_DMAG = -0.4 * math.log(10.0)  # d ln(flux) / d mag


class ModelFunctions:
    """``render`` and ``jacobian`` closures over a layout, the fixed values and the frame.

    Args:
        layout: the parameter layout of the model.
        fixed_values: (B, P) user values; the fixed parameters are taken from here.
        frame, psf, config: as for :func:`galprof.render.render_model`.
        internal: the free parameters are internal ``theta`` (True) or user values.
    """

    def __init__(self, layout: ParameterLayout, fixed_values: torch.Tensor, frame: Frame, psf,
                 config: RenderConfig, internal: bool):
        self.layout = layout
        self.fixed_values = fixed_values
        self.frame, self.psf, self.config = frame, psf, config
        self.internal = internal
        device = fixed_values.device
        self._free_cols = torch.tensor(layout.free_index, dtype=torch.long, device=device)
        # free parameters the model is linear in, and the rest
        convolved = {}  # component index -> position among the non-sky components
        for ci, comp in enumerate(layout.model.components):
            if comp.profile_class.kind != "sky":
                convolved[ci] = len(convolved)
        self._magnitudes, self._sky_terms, nonlinear = [], [], []
        for k, i in enumerate(layout.free_index):
            entry = layout.entries[i]
            kind = layout.model.components[entry.component].profile_class.kind
            if kind == "sky":
                self._sky_terms.append((k, entry.name))
            elif entry.name == "mag":
                self._magnitudes.append((k, convolved[entry.component]))
            else:
                nonlinear.append(k)
        self._nonlinear = nonlinear
        self._nonlinear_cols = torch.tensor([layout.free_index[k] for k in nonlinear], dtype=torch.long,
                                            device=device)

    def _user_values(self, free: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        base = self.fixed_values[index].to(free.dtype)
        if self.internal:
            return self.layout.to_user(free, base)
        return base.index_copy(1, self._free_cols, free) if self.layout.n_free else base

    def _parts(self, values: torch.Tensor):
        return render_parts(self.layout.components(values), self.frame, self.psf, self.config)

    def render(self, free: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """(b, H, W) model images of galaxies ``index`` at free parameters ``free`` (b, F)."""
        return self._parts(self._user_values(free, index)).total()

    def _sky_column(self, name: str, like: torch.Tensor) -> torch.Tensor:
        frame = self.frame
        xc, yc = frame.centre
        if name == "sky":
            return like.new_ones(frame.height, frame.width)
        if name == "dsdx":
            xs = frame.x_min + torch.arange(frame.width, dtype=like.dtype, device=like.device) - xc
            return xs[None, :].expand(frame.height, -1)
        ys = frame.y_min + torch.arange(frame.height, dtype=like.dtype, device=like.device) - yc
        return ys[:, None].expand(-1, frame.width)

    def jacobian(self, free: torch.Tensor, index: torch.Tensor):
        """Model images (b, H, W) and the Jacobian d model / d free, (b, H, W, F)."""
        free = free.detach()
        values = self._user_values(free, index)
        n_free = free.shape[1]
        bsz = free.shape[0]
        columns: list[torch.Tensor | None] = [None] * n_free
        if self._nonlinear:
            cols = self._nonlinear_cols

            def model_of(v):
                parts = self._parts(values.index_copy(1, cols, v))
                return parts.total(), (parts.unit_images, parts.fluxes)

            start = values[:, cols]
            tangents = torch.eye(len(self._nonlinear), dtype=free.dtype, device=free.device)
            tangents = tangents[:, None, :].expand(-1, bsz, -1)

            def directional(tangent):
                return jvp(model_of, (start,), (tangent,), has_aux=True)

            model, derivative, (unit_images, fluxes) = vmap(directional, out_dims=(None, 0, None))(tangents)
            for j, k in enumerate(self._nonlinear):
                columns[k] = derivative[j]
        else:
            parts = self._parts(values)
            model, unit_images, fluxes = parts.total(), parts.unit_images, parts.fluxes
        for k, c in self._magnitudes:
            columns[k] = _DMAG * fluxes[:, c, None, None] * unit_images[:, c]
        for k, name in self._sky_terms:
            columns[k] = self._sky_column(name, model).expand(bsz, -1, -1)
        jac = torch.stack(columns, dim=-1)
        if self.internal and n_free:
            base = self.fixed_values[index].to(free.dtype)
            _, slope = jvp(lambda t: self.layout.to_user(t, base), (free,), (torch.ones_like(free),))
            jac = jac * slope[:, self._free_cols][:, None, None, :]
        return model, jac
