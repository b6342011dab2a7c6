"""Model images and their Jacobians for the optimisers, as functions of the free parameters.

The optimisers see a batch of galaxies through two functions of the free parameters
(either the unbounded internal ``theta`` or the free user values; see
:mod:`galprof.fitting.layout`):

* ``render(free, index) -> (b, H, W)``: the model images of galaxies ``index``;
* ``jacobian(free, index) -> (model (b, H, W), J (b, H, W, F))``.

The Jacobian is exact. It is first formed with respect to every parameter that varies
(free, tied or coupled by a constraint). Columns of the parameters the model is linear
in are analytic: a magnitude's (or a surface brightness's) column is -0.4 ln(10) times
its component's image, a linear intensity's its unit-amplitude image, the sky's are 1,
x - x_c and y - y_c. All other columns (centres, sizes, shapes) are, with a PSF, the
PSF-convolved derivatives of each component's light canvas from
:func:`galprof.render.tangents.render_parts_with_tangents` (analytic for the Sérsic
family and the exponential disk, with the per-galaxy set-up and the exact core cells
by float64 central differences, ~1e-9 relative; forward mode for other components), all
convolved in one batched FFT. Without a PSF, with legacy pixel integration or a convolution box,
they come from one forward-mode autodiff pass (``torch.func.jvp``) through the whole
render, vectorised over the tangents with ``torch.func.vmap``. The chain rule
through the bound transforms and the constraints (d values / d coordinates, a small
(b, P, F) Jacobian) then gives the columns of the optimiser's coordinates.
"""

from __future__ import annotations

import torch
from torch.func import jvp, vmap

from ..render.canvas import canvas_margin
from ..render.config import RenderConfig
from ..render.scene import Frame, amplitude_log_slope, render_parts
from ..render.tangents import (
    has_analytic_tangents,
    render_parts_with_tangents,
    supports_tangents,
)
from .layout import ParameterLayout


class ModelFunctions:
    """``render`` and ``jacobian`` closures over a layout, the fixed values and the frame.

    Args:
        layout: the parameter layout of the model (constraints included).
        fixed_values: (B, P) user values; the fixed parameters are taken from here.
        frame, psf, config: as for :func:`galprof.render.render_model`.
        internal: the optimiser's coordinates are the unbounded ``theta`` (True) or the
            coordinates in user units (see :meth:`ParameterLayout.free_coordinates`).
        galaxies: (B,) the galaxy (in ``frame`` and ``psf``, when they hold per-galaxy
            zeropoints, regions or ePSFs, and in ``layout``, when its bounds or tie
            constants differ per galaxy) of each row of ``fixed_values``; default the
            identity. Several starts of one galaxy share its row there.
    """

    def __init__(self, layout: ParameterLayout, fixed_values: torch.Tensor, frame: Frame, psf,
                 config: RenderConfig, internal: bool, galaxies: torch.Tensor | None = None):
        self.layout = layout
        self.galaxies = galaxies
        self.fixed_values = fixed_values
        self.frame, self.psf, self.config = frame, psf, config
        self.internal = internal
        device = fixed_values.device
        # parameters that vary (free, tied, coupled): those the model is linear in, and the rest
        convolved = {}  # component index -> position among the non-sky components
        for ci, comp in enumerate(layout.model.components):
            if comp.profile_class.kind != "sky":
                convolved[ci] = len(convolved)
        self._varying = layout.varying_index
        # without ties or constraints the varying parameters are the free ones, in order,
        # and each optimiser coordinate maps to its own parameter
        self._one_to_one = not layout.constrained_index and tuple(self._varying) == tuple(layout.free_index)
        self._magnitudes, self._sky_terms, nonlinear = [], [], []
        for j, i in enumerate(self._varying):
            entry = layout.entries[i]
            profile = layout.model.components[entry.component].profile_class
            if profile.kind == "sky":
                self._sky_terms.append((j, entry.component, entry.name))
            elif entry.name == profile.amplitude:
                self._magnitudes.append((j, convolved[entry.component], amplitude_log_slope(profile)))
            else:
                nonlinear.append(j)
        self._nonlinear = nonlinear
        # per component, the nonlinear parameters whose canvas tangents are rendered, and
        # for each nonlinear column j: (component, position among those, convolved index)
        tangent_names: list[list[str]] = [[] for _ in layout.model.components]
        self._tangent_slots = []
        for j in nonlinear:
            entry = layout.entries[self._varying[j]]
            self._tangent_slots.append((j, entry.component, len(tangent_names[entry.component]),
                                        convolved[entry.component]))
            tangent_names[entry.component].append(entry.name)
        self._tangent_names = [tuple(n) for n in tangent_names]
        self._nonlinear_cols = torch.tensor([self._varying[j] for j in nonlinear], dtype=torch.long, device=device)
        self._varying_cols = torch.tensor(self._varying, dtype=torch.long, device=device)

    @property
    def forward_mode_free(self) -> bool:
        """True when :meth:`jacobian` runs no forward-mode autodiff: every nonlinear
        parameter's tangents are analytic (see :mod:`galprof.render.tangents`).
        ``torch.func.jvp`` keeps process-wide state, so only such Jacobians may be
        computed in several threads at once."""
        if not self._nonlinear:
            return True
        if not supports_tangents(self.frame, self.psf, self.config):
            return False
        return all(has_analytic_tangents(comp.profile_class)
                   for comp, names in zip(self.layout.model.components, self._tangent_names) if names)

    def _rows(self, index: torch.Tensor) -> torch.Tensor | None:
        """The galaxy (of the layout's and the frame's batch) of rows ``index``, whose
        bounds and tie constants apply when they differ per galaxy (None when they do not)."""
        if self.layout.batch_size is None:
            return None
        return self.galaxies[index] if self.galaxies is not None else index

    def _user_values(self, free: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        base = self.fixed_values[index].to(free.dtype)
        if self.internal:
            return self.layout.to_user(free, base, self._rows(index))
        return self.layout.from_free_coordinates(free, base, self._rows(index))

    def _context(self, index: torch.Tensor):
        """Frame and PSF of galaxies ``index`` (per-galaxy zeropoints, regions, ePSFs)."""
        if self.galaxies is not None:
            index = self.galaxies[index]
        psf = self.psf.select(index) if self.psf is not None else None
        return self.frame.select(index), psf

    def _parts(self, values: torch.Tensor, index: torch.Tensor):
        frame, psf = self._context(index)
        return render_parts(self.layout.components(values), frame, psf, self.config)

    def render(self, free: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """(b, H, W) model images of galaxies ``index`` at optimiser coordinates ``free`` (b, F)."""
        return self._parts(self._user_values(free, index), index).total()

    def render_parts(self, free: torch.Tensor, index: torch.Tensor):
        """The :class:`galprof.render.scene.RenderedParts` of galaxies ``index`` at optimiser
        coordinates ``free`` (b, F): each non-sky component's unit-amplitude image
        (b, C, H, W), its amplitude (b, C) and the sky; ``.total()`` is :meth:`render`."""
        return self._parts(self._user_values(free, index), index)

    def _sky_column(self, component: int, name: str, like: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        frame, _ = self._context(index)
        bsz = like.shape[0]
        basis = self.layout.model.components[component].profile_class.sky_basis[name]
        if basis == "1":
            return like.new_ones(bsz, frame.height, frame.width)
        dx, dy = frame.sky_offsets(like)
        if basis == "x":
            return dx.expand(bsz, frame.height, -1)
        return dy.expand(bsz, -1, frame.width)

    def _chunk_size(self, device) -> int:
        """Galaxies per Jacobian pass, from a budget of tangent-canvas elements per pass:
        ~7M on the CPU for forward mode through the whole render, where large
        temporaries thrash the caches and the allocator; ~5M for the canvas tangents of
        :mod:`galprof.render.tangents` (larger passes' canvas stacks outgrow the cache,
        smaller ones pay each pass's fixed cost more often); ~500M on a GPU."""
        margin = canvas_margin(self.psf, self.config)
        canvas = (self.frame.height + 2 * margin) * (self.frame.width + 2 * margin)
        if torch.device(device).type != "cpu":
            budget = 500_000_000
        elif supports_tangents(self.frame, self.psf, self.config):
            budget = 5_000_000
        else:
            budget = 7_000_000
        return max(1, budget // (max(1, len(self._nonlinear)) * canvas))

    def jacobian(self, free: torch.Tensor, index: torch.Tensor):
        """Model images (b, H, W) and the Jacobian d model / d free, (b, H, W, F).

        Computed in chunks of galaxies (see :meth:`_chunk_size`); the result does not
        depend on the chunking."""
        chunk = self._chunk_size(free.device)
        if free.shape[0] <= chunk:
            return self._jacobian(free, index)
        if self._one_to_one and self._varying:
            # the chunks fill one (B, F, H, W) stack: no concatenation of the Jacobians
            height, width = self.frame.height, self.frame.width
            stack = free.new_empty(free.shape[0], len(self._varying), height, width)
            models = [self._jacobian(free[i:i + chunk], index[i:i + chunk], out=stack[i:i + chunk])[0]
                      for i in range(0, free.shape[0], chunk)]
            return torch.cat(models), stack.permute(0, 2, 3, 1)
        parts = [self._jacobian(free[i:i + chunk], index[i:i + chunk]) for i in range(0, free.shape[0], chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _jacobian(self, free: torch.Tensor, index: torch.Tensor, out: torch.Tensor | None = None):
        """As :meth:`jacobian` for one chunk; ``out``: an optional (b, F, H, W) tensor that
        the columns are written into (without constraints only)."""
        free = free.detach()
        values = self._user_values(free, index)
        frame, psf = self._context(index)
        # per varying parameter: (image, factor): its column is image * factor[:, None, None]
        # (factor None for 1), filled straight into the Jacobian below
        columns: list[tuple[torch.Tensor, torch.Tensor | None] | None] = [None] * len(self._varying)
        if supports_tangents(frame, psf, self.config):
            parts, tangents = render_parts_with_tangents(self.layout.components(values), self._tangent_names,
                                                         frame, psf, self.config)
            model, unit_images, fluxes = parts.total(), parts.unit_images, parts.amplitudes
            for j, component, position, c in self._tangent_slots:
                columns[j] = (tangents[component][position], fluxes[:, c])
        elif self._nonlinear:
            cols = self._nonlinear_cols

            def model_of(v):
                parts = self._parts(values.index_copy(1, cols, v), index)
                return parts.total(), (parts.unit_images, parts.amplitudes)

            start = values[:, cols]
            tangents = torch.eye(len(self._nonlinear), dtype=free.dtype, device=free.device)
            tangents = tangents[:, None, :].expand(-1, free.shape[0], -1)

            def directional(tangent):
                return jvp(model_of, (start,), (tangent,), has_aux=True)

            model, derivative, (unit_images, fluxes) = vmap(directional, out_dims=(None, 0, None))(tangents)
            for n, j in enumerate(self._nonlinear):
                columns[j] = (derivative[n], None)
        else:
            parts = self._parts(values, index)
            model, unit_images, fluxes = parts.total(), parts.unit_images, parts.amplitudes
        for j, c, slope in self._magnitudes:
            # a linear intensity, or a magnitude: d flux / d mag = slope * flux
            columns[j] = (unit_images[:, c], None if slope is None else slope * fluxes[:, c])
        for j, component, name in self._sky_terms:
            columns[j] = (self._sky_column(component, name, model, index), None)
        bsz, height, width = model.shape
        if not columns:
            return model, model.new_zeros(bsz, height, width, 0)
        if self._one_to_one:  # each coordinate moves its own parameter only: a diagonal scaling
            scale = self.layout.coordinate_slopes(free, self.internal, self._rows(index)).to(model.dtype)
        else:
            scale = None
        # columns filled one by one into a (b, V, H, W) stack (each write contiguous)
        stack = model.new_empty(bsz, len(columns), height, width) if out is None or scale is None else out
        for j, (image, factor) in enumerate(columns):
            if scale is not None:
                factor = scale[:, j] if factor is None else factor * scale[:, j]
            if factor is None:
                stack[:, j] = image
            else:
                torch.mul(image, factor[:, None, None], out=stack[:, j])
        if scale is not None:
            # (b, H, W, F) as a view: the pixels of a column stay contiguous in memory
            return model, stack.permute(0, 2, 3, 1)
        # chain rule through the transforms and constraints
        base = self.fixed_values[index].to(free.dtype)
        slope = self.layout.value_jacobian(free, base, self.internal, self._rows(index))
        slope = slope[:, self._varying_cols, :]  # (b, V, F)
        jac = torch.bmm(stack.flatten(2).transpose(1, 2), slope)
        return model, jac.reshape(bsz, height, width, slope.shape[-1])
