"""Model images together with their derivatives ("tangents") with respect to the parameters.

With a PSF (and without ``legacy_pixel_integration`` or a convolution box), every
component's light canvas (see :mod:`galprof.render.scene`) is made of samples of its
profile at points fixed either on the pixel grid (the outer light and its anti-aliased
box) or relative to the component's centre (the fine grid and the exact core), combined
by linear operations: quadrature sums, the inverse-pixel filter, patch placement,
Lanczos spreading and the FFT convolution. The derivative of the canvas with respect to
a parameter is the same linear operations applied to the derivatives of the samples,
plus, for the centre, the derivatives of the two things that move with it: the
Lanczos weights of the fine grid and the window of the anti-aliased box.

For profiles that implement ``brightness_tangents`` (Sérsic, de Vaucouleurs,
exponential disk) the sample derivatives are analytic: d ln I / d rho^2 and d ln I / d
theta at fixed rho^2 from the profile, d rho^2 / d (x, y, q, PA) from the quadratic
form of the ellipse; the Lanczos weights and the window have analytic slopes
(:func:`galprof.render.psf.interpolation_matrix_with_slope`,
:func:`galprof.render.quadrature.smooth_window_slope`). The exact core cells (Green's
theorem on the enclosed light) move with the size, q and PA by a flux-conserving flow
of the light, so their derivatives are the flux of that flow through the cell edges
(:func:`galprof.render.quadrature.cell_integrals_transport_derivatives`: line integrals
of the brightness, no incomplete gamma function). The core's derivative with respect
to n comes from the incomplete gamma function's own series derivative and the
per-galaxy set-up's (b_n, I_0) in closed form, where the profile provides
``enclosed_fraction_tangents`` and ``setup_tangents`` (the Sérsic); otherwise these
small pieces are differentiated by central differences in float64 (relative error
~1e-9), all evaluations in one batch. No forward-mode autodiff is left on this path: in
torch 2.13 forward-mode add, mul and div run through Python reference implementations,
and the first forward-mode operation of a process imports torch._dynamo. Any other component (a point source, shape-modified or
edge-on profiles, profiles without ``brightness_tangents``) gets its canvas tangents
from forward mode (``torch.func.jvp`` vectorised over the tangents), component by
component.

Coordinates and units follow :mod:`galprof.conventions` (1-based pixels, PA in degrees
counter-clockwise from +y, sizes along the major axis in pixels).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import jvp, vmap

from ..conventions import elliptical_quadratic_form, elliptical_quadratic_form_slopes, evaluate_quadratic_form
from ..profiles.base import EllipticalProfile, safe_radius
from .canvas import (canvas_axes, canvas_margin, convolve_channels, deconvolve_pixel, fine_grid, grid_weights,
                     nearest_pixel, patch_half, patch_index)
from .config import RenderConfig
from .fusion import run_fused
from .psf import PreparedPSF
from .quadrature import (cell_integrals_exact, cell_integrals_exact_tangents, cell_integrals_transport_derivatives,
                         gauss_legendre_unit, smooth_window, smooth_window_slope, transport_parameters)
from .scene import Frame, RenderedParts, amplitude_scale, component_light, sky_image

_CENTRE = ("x", "y")
_GEOMETRY = ("pa", "q")


def _owner(cls, attribute: str):
    for klass in cls.__mro__:
        if attribute in klass.__dict__:
            return klass
    return None


def has_analytic_tangents(profile) -> bool:
    """Whether the canvas tangents of ``profile`` are analytic (see the module docstring).

    The profile must be a radial, unmodified elliptical profile whose
    ``brightness_tangents`` is defined on the same class as (or a subclass of) the
    definitions of its brightness and set-up, so that a subclass that changes the
    brightness without its tangents falls back to forward mode.
    """
    if not (isinstance(profile, type) and issubclass(profile, EllipticalProfile) and profile.kind == "elliptical"
            and profile.radial and not profile.shape_modified and profile.brightness_tangents is not None):
        return False
    owner = _owner(profile, "brightness_tangents")
    return all(issubclass(owner, _owner(profile, name) or EllipticalProfile)
               for name in ("surface_brightness", "surface_brightness_squared", "prepare", "setup",
                            "radius_squared", "brightness"))


def _hook(profile, name: str, depends: tuple[str, ...]):
    """The profile's optional analytic hook ``name`` (``setup_tangents``,
    ``enclosed_fraction_tangents``) if it is defined on the same class as (or a subclass
    of) the definitions of ``depends``, else None (central differences): a subclass
    that changes its set-up or enclosed light without the hook does not inherit a
    stale one."""
    if getattr(profile, name, None) is None:
        return None
    owner = _owner(profile, name)
    if all(issubclass(owner, _owner(profile, d) or EllipticalProfile) for d in depends):
        return getattr(profile, name)
    return None


class _Samples:
    """Evaluates a profile and its parameter derivatives at offsets from its centre.

    Per-galaxy quantities (the set-up ``derived``, its tangents, the quadratic form of
    the ellipse and its tangents) are (B, 1, 1) tensors: the offsets are (B, Ny, Nx)
    tensor grids ((B, 1, Nx) against (B, Ny, 1)), quadrature nodes included.
    """

    def __init__(self, profile, names, derived, d_derived, form, d_form):
        self.profile, self.names = profile, names
        self.derived, self.d_derived, self.form, self.d_form = derived, d_derived, form, d_form

    def __call__(self, dx: torch.Tensor, dy: torch.Tensor, centre: bool = True):
        """(value, [d value / d name for each name, or None where it is 0]) at offsets
        dx = x - x0, dy = y - y0 [pix]; ``centre`` False: the points move with the
        centre (no x, y derivative)."""
        rho2 = self.profile.radius_squared(dx, dy, self.derived)
        value, dlog_drho2, dlog = self.profile.brightness_tangents(rho2, self.derived, self.d_derived)
        slope = value * dlog_drho2  # d I / d rho^2
        a, c, h = self.form
        columns = []
        k = 0
        for name in self.names:
            if name in _CENTRE:
                if not centre:
                    columns.append(None)
                elif name == "x":  # d rho^2 / d x0 = -2 (A dx + H dy)
                    columns.append(-2.0 * slope * (a * dx + h * dy))
                else:
                    columns.append(-2.0 * slope * (c * dy + h * dx))
                continue
            column = None if dlog[k] is None else value * dlog[k]
            if self.d_form[k] is not None:
                drho2 = evaluate_quadratic_form(*self.d_form[k], dx, dy)
                column = slope * drho2 if column is None else column + slope * drho2
            columns.append(column)
            k += 1
        return value, columns


def _stack(value: torch.Tensor, columns, shape=None) -> torch.Tensor:
    """(B, 1 + K, ...): the value and its columns (zeros where None), broadcast to
    ``shape``, by default the broadcast of their shapes (numpy's shape arithmetic:
    torch.broadcast_shapes imports sympy on its first call). Given ``shape``, no
    host-side shape arithmetic runs, so that ``torch.compile`` fuses the caller."""
    if shape is None:
        shape = np.broadcast_shapes(value.shape, *[c.shape for c in columns if c is not None])
    parts = [value.expand(shape)] + [value.new_zeros(shape) if c is None else c.expand(shape) for c in columns]
    return torch.stack(parts, dim=1)


def _canvas_channels(profile, names, derived, d_derived, form, d_form, dx, dy) -> torch.Tensor:
    """(B, 1 + K, Ny, Nx): a component's light and its derivatives at pixel offsets dx
    (B, 1, Nx) and dy (B, Ny, 1) from its centre: one elementwise chain per pixel
    (:func:`galprof.render.fusion.run_fused` compiles it)."""
    value, columns = _Samples(profile, names, derived, d_derived, form, d_form)(dx, dy)
    return _stack(value, columns, (dx.shape[0], dy.shape[-2], dx.shape[-1]))


def _place_patches_(canvas: torch.Tensor, patch: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor,
                    accumulate: bool) -> torch.Tensor:
    """In place on a contiguous (B, K, H, W) channel stack: canvas[b, k, row0[b] + i,
    col0[b] + j] = (or +=) patch[b, k, i, j]; the stack is returned. The same placement
    as :func:`galprof.render.canvas.set_patches` / :func:`galprof.render.canvas.add_patches`
    on every channel (the analytic Jacobian needs no autograd, and the stacks are its own)."""
    bsz, k, height, width = canvas.shape
    index = patch_index(height, width, *patch.shape[-2:], row0, col0)[:, None, :].expand(-1, k, -1)
    flat = canvas.view(bsz, k, height * width)
    values = patch.reshape(bsz, k, -1)
    if accumulate:
        flat.scatter_add_(2, index, values)
    else:
        flat.scatter_(2, index, values)
    return canvas


def _gauss_cells(samples: _Samples, dx, dy, order: int, window=None, fused: bool = False) -> torch.Tensor:
    """(B, 1 + K, Ny, Nx): unit-pixel integrals of the profile and of its derivatives by
    Gauss-Legendre quadrature (as :func:`galprof.render.quadrature.cell_integrals_gauss`),
    optionally times 1 - window(r) with r the circular distance from the centre; with
    ``fused``, through :func:`galprof.render.fusion.run_fused`.

    ``dx`` (B, 1, Nx) and ``dy`` (B, Ny, 1) are the cells' centre offsets; the nodes
    stay a tensor grid of three dimensions, (B, 1, Nx * order) against (B, Ny * order,
    1), so that the per-galaxy (B, 1, 1) set-up broadcasts as it is."""
    nodes, weights = gauss_legendre_unit(order, dx.dtype, dx.device)
    arguments = (samples.profile, samples.names, samples.derived, samples.d_derived, samples.form, samples.d_form,
                 dx, dy, nodes, weights, window)
    return run_fused(_node_cells, *arguments) if fused else _node_cells(*arguments)


def _node_cells(profile, names, derived, d_derived, form, d_form, dx, dy, nodes, weights, window):
    """The quadrature of :func:`_gauss_cells` with the nodes and weights given (a pure
    tensor function: :func:`galprof.render.fusion.run_fused` compiles it)."""
    samples = _Samples(profile, names, derived, d_derived, form, d_form)
    order = nodes.shape[0]
    bsz, ny, nx = dy.shape[0], dy.shape[-2], dx.shape[-1]
    dxn = (dx.unsqueeze(-1) + nodes).reshape(dx.shape[0], 1, nx * order)
    dyn = (dy + nodes).reshape(bsz, ny * order, 1)
    value, columns = samples(dxn, dyn)
    if window is not None:
        inner, outer = window
        radius = safe_radius(dxn * dxn + dyn * dyn)
        win, dwin = smooth_window(radius, inner, outer), smooth_window_slope(radius, inner, outer)
        keep = 1.0 - win
        # d (1 - w(r)) / d x0 = w'(r) dx / r (the nodes move with the centre)
        for i, name in enumerate(samples.names):
            col = columns[i]
            if name in _CENTRE:
                offset = dxn if name == "x" else dyn
                extra = value * (dwin * offset / radius)
                columns[i] = extra if col is None else col * keep + extra
            elif col is not None:
                columns[i] = col * keep
        value = value * keep
    weight = weights[:, None, None] * weights  # (oy, 1, ox)
    stack = _stack(value, columns, (bsz, ny * order, nx * order))
    return (stack.reshape(bsz, stack.shape[1], ny, order, nx, order) * weight).sum((-3, -1))


_RELATIVE_STEP = 1e-5  # of max(|value|, 0.1): central differences in float64, error ~1e-10


def _central_differences(function, params, shape_names):
    """The derivatives of ``function(params)`` (a (B, ...) tensor or a dict of them) with
    respect to each of ``shape_names``, by central differences of evaluations in
    float64, all 2K of them in one batch; a list (per name) of tensors or dicts in the
    dtype of ``params``.

    Used for the small pieces (the profile's per-galaxy set-up, the exact core cells):
    they are smooth in the parameters, and forward-mode autodiff of them costs more
    than the whole batch of evaluations (in torch 2.13 forward-mode add, mul and div go
    through Python reference implementations, and the first such call in a process
    imports torch._dynamo)."""
    if not shape_names:
        return []
    dtype = params["x"].dtype
    bsz = params["x"].shape[0]
    p64 = {k: v.detach().to(torch.float64) for k, v in params.items()}
    steps = {n: _RELATIVE_STEP * p64[n].abs().clamp(min=0.1) for n in shape_names}
    rows = []
    for n in shape_names:
        for sign in (1.0, -1.0):
            rows.append({**p64, n: p64[n] + sign * steps[n]})
    out = function({k: torch.cat([r[k] for r in rows]) for k in p64})

    def slopes(t):
        t = t.reshape(2 * len(shape_names), bsz, *t.shape[1:])
        result = []
        for i, n in enumerate(shape_names):
            h = steps[n].reshape(bsz, *([1] * (t.dim() - 2)))
            result.append(((t[2 * i] - t[2 * i + 1]) / (2.0 * h)).to(dtype))
        return result

    if isinstance(out, dict):
        parts = {k: slopes(v) for k, v in out.items()}
        return [{k: v[i] for k, v in parts.items()} for i in range(len(shape_names))]
    return slopes(out)


def _derived_tangents(profile, params, shape_names):
    """The set-up ``derived`` ((B, 1, 1) tensors) and, per shape parameter, its derivative,
    and the same for the ellipse's quadratic form: in closed form where the profile has
    ``setup_tangents``, else by central differences in float64."""
    keys = ("_form_a", "_form_c", "_form_h")

    def form_of(derived):
        """(A, C, H) of the ellipse: the set-up's own (EllipticalProfile.setup) or formed."""
        if keys[0] in derived:
            return tuple(derived[k] for k in keys)
        return elliptical_quadratic_form(derived["pa"], derived["q"])

    def setup_of(p):
        derived = profile.setup({k: v[:, None, None] for k, v in p.items()})
        return {**derived, **dict(zip(keys, form_of(derived)))}

    # the set-up itself in the working dtype, exactly as the renderer computes it (the
    # canvas must equal a plain render's)
    derived = profile.setup({k: v[:, None, None] for k, v in params.items()})
    form = form_of(derived)
    setup_tangents = _hook(profile, "setup_tangents", ("prepare", "setup"))
    if setup_tangents is not None and shape_names:
        columns = setup_tangents(derived, shape_names)
        per_name = [{**d, **dict(zip(keys, elliptical_quadratic_form_slopes(derived["pa"], derived["q"], name)))}
                    for name, d in zip(shape_names, columns)]
    else:
        per_name = _central_differences(setup_of, params, shape_names)
    d_derived = [(n, {k: v for k, v in d.items() if k not in keys}) for n, d in zip(shape_names, per_name)]
    forms = [tuple(d[k] for k in keys) if n in _GEOMETRY else None for n, d in zip(shape_names, per_name)]
    return derived, d_derived, form, forms


def _analytic_light(profile, params, names, xs, ys, config: RenderConfig):
    """(B, 1 + K, Hc, Wc): the unit-flux light canvas of a component (exactly as
    :func:`galprof.render.scene.component_light` renders it) and its derivatives with
    respect to ``names``."""
    x0, y0 = params["x"], params["y"]
    bsz = x0.shape[0]
    shape_names = [n for n in names if n not in _CENTRE]
    derived, d_derived, form, d_form = _derived_tangents(profile, params, shape_names)
    samples = _Samples(profile, names, derived, d_derived, form, d_form)
    half = patch_half(config)
    cx = nearest_pixel(x0, xs, half)
    cy = nearest_pixel(y0, ys, half)
    gl_outer = max(config.outer_gl_order, profile.min_gl_order)

    # outer light: samples at pixel centres, anti-aliased in a box around the centre
    dx = xs[None, None, :] - x0[:, None, None]
    dy = ys[None, :, None] - y0[:, None, None]
    arguments = (profile, names, derived, d_derived, form, d_form, dx, dy)
    canvas = run_fused(_canvas_channels, *arguments) if config.fused else _canvas_channels(*arguments)
    half_box = config.outer_box // 2 + 2
    k = torch.arange(-half_box, half_box + 1, dtype=x0.dtype, device=x0.device)
    bdx = (cx - x0)[:, None, None] + k[None, None, :]
    bdy = (cy - y0)[:, None, None] + k[None, :, None]
    box = _gauss_cells(samples, bdx, bdy, gl_outer, fused=config.fused)
    inner = config.fine_box // 2 + 2
    cut = slice(half_box - inner, half_box + inner + 1)
    patch = _gauss_cells(samples, bdx[..., cut], bdy[:, cut], config.gl_order,
                         window=(config.window_inner, config.window_outer), fused=config.fused)
    start = torch.full_like(cx, half_box - inner).long()
    box = deconvolve_pixel(_place_patches_(box, patch, start, start, accumulate=False))[..., 2:-2, 2:-2]
    nb = box.shape[-1]
    canvas = _place_patches_(canvas, box.contiguous(), (cy - ys[0]).long() - nb // 2, (cx - xs[0]).long() - nb // 2,
                             accumulate=False)

    # inner light: the fine grid and the exact core, spread with centre-dependent weights
    levels, edges, core_centres = fine_grid(config, x0.dtype, x0.device)
    grids = []  # (offsets (N,), (B, 1 + Ks, N, N) light per node and its shape derivatives)
    for node_offsets, node_w in levels:
        value, columns = samples(node_offsets[None, None, :], node_offsets[None, :, None], centre=False)
        # the nodes move with the centre: only the shape parameters change their values
        grids.append((node_offsets, _stack(value, [c for n, c in zip(names, columns) if n not in _CENTRE]) * node_w))
    scale = 1.0 / config.fine_factor

    edges64 = edges.to(torch.float64)

    def core_of(p):
        rows = next(iter(p.values())).shape[0]
        d = profile.setup({kk: v[:, None, None] for kk, v in p.items()})
        return cell_integrals_exact(profile, d, edges64.expand(rows, 1, -1),
                                    edges64.view(1, -1, 1).expand(rows, -1, 1), config.edge_nodes, scale)

    # the core as the renderer computes it; its derivatives with respect to the size, q
    # and PA as the flux of a transport through the cell edges, the others (n) from the
    # profile's enclosed_fraction_tangents where it has them, else by central differences
    transported = transport_parameters(profile, shape_names)
    others = [n for n in shape_names if n not in transported]
    x_edges, y_edges = edges.expand(bsz, 1, -1), edges.view(1, -1, 1).expand(bsz, -1, 1)
    if (others and profile.radial and not profile.shape_modified
            and _hook(profile, "enclosed_fraction_tangents", ("enclosed_fraction", "prepare", "setup")) is not None):
        core, *d_list = cell_integrals_exact_tangents(profile, derived, [nd for nd in d_derived if nd[0] in others],
                                                      x_edges, y_edges, config.edge_nodes)
        d_others = dict(zip(others, d_list))
    else:
        core = cell_integrals_exact(profile, derived, x_edges, y_edges, config.edge_nodes, scale)
        d_others = dict(zip(others, _central_differences(core_of, params, others)))
    if transported:
        p64 = {kk: v.detach().to(torch.float64)[:, None, None] for kk, v in params.items()}
        size = next((p64[n] for n, kind in transported.items() if kind == "size"), None)
        # the set-up already computed, in float64 (not solved for again: b_n's root alone
        # is a long chain of small operations; the derivatives need no more than the
        # working precision of its values)
        derived64 = {kk: v.detach().to(torch.float64) for kk, v in derived.items()}
        by_transport = cell_integrals_transport_derivatives(
            profile, derived64, size, edges64.expand(bsz, 1, -1), edges64.view(1, -1, 1).expand(bsz, -1, 1),
            config.edge_nodes, transported)
        d_others.update({n: v.to(x0.dtype) for n, v in by_transport.items()})
    d_core = [d_others[n] for n in shape_names]
    grids.append((core_centres, torch.stack([core] + d_core, dim=1)))
    order = config.psf_interpolation_order
    n = 2 * half + 1
    fx, fy = (x0 - cx)[:, None], (y0 - cy)[:, None]
    parts = [None] * (1 + len(names))
    weights = grid_weights(fx, fy, [offsets for offsets, _ in grids], n, order, with_slope=True)
    for (offsets, light), (wx, wy, dwx, dwy) in zip(grids, weights):
        # every tensor grid of points, spread with centre-dependent weights
        wy_t, dwy_t = wy.transpose(1, 2), dwy.transpose(1, 2)
        value = light[:, 0]
        terms = [wy_t @ value @ wx]
        k = 0
        for name in names:
            if name == "x":
                terms.append(wy_t @ value @ dwx)
            elif name == "y":
                terms.append(dwy_t @ value @ wx)
            else:
                terms.append(wy_t @ light[:, 1 + k] @ wx)
                k += 1
        parts = [t if p is None else p + t for p, t in zip(parts, terms)]
    patch = torch.stack(parts, dim=1)
    return _place_patches_(canvas, patch, (cy - ys[0] - half).long(), (cx - xs[0] - half).long(), accumulate=True)


def _forward_mode_light(profile, params, names, xs, ys, config: RenderConfig):
    """(B, 1 + K, Hc, Wc) as :func:`_analytic_light`, by forward-mode autodiff of
    :func:`galprof.render.scene.component_light` (any component kind)."""
    if not names:
        return component_light(profile, params, xs, ys, config).unsqueeze(1)
    start = torch.stack([params[n] for n in names], 1)

    def light_of(values):
        p = dict(params)
        p.update({n: values[:, i] for i, n in enumerate(names)})
        return component_light(profile, p, xs, ys, config)

    eye = torch.eye(len(names), dtype=start.dtype, device=start.device)[:, None, :].expand(-1, start.shape[0], -1)
    light, tangents = vmap(lambda t: jvp(light_of, (start,), (t,)), out_dims=(None, 0))(eye)
    return torch.cat([light.unsqueeze(1), tangents.transpose(0, 1)], dim=1)


def component_light_and_tangents(profile, params, names, xs, ys, config: RenderConfig) -> torch.Tensor:
    """(B, 1 + K, Hc, Wc): a component's unit-amplitude light canvas (channel 0) and its
    derivatives with respect to its parameters ``names`` (channels 1..K), before the
    PSF convolution; analytic where :func:`has_analytic_tangents`, else forward mode."""
    if has_analytic_tangents(profile):
        return _analytic_light(profile, params, tuple(names), xs, ys, config)
    return _forward_mode_light(profile, params, tuple(names), xs, ys, config)


def supports_tangents(frame: Frame, psf: PreparedPSF | None, config: RenderConfig) -> bool:
    """Whether :func:`render_parts_with_tangents` applies: a PSF, no legacy pixel
    integration, and no convolution box smaller than the region."""
    if psf is None or config.legacy_pixel_integration:
        return False
    box = frame.convolution_box
    return box is None or (box[0] >= frame.width and box[1] >= frame.height)


def render_parts_with_tangents(components, names, frame: Frame, psf: PreparedPSF,
                               config: RenderConfig = RenderConfig()):
    """The model's parts (as :func:`galprof.render.scene.render_parts`) and the
    derivatives of its PSF-convolved unit-amplitude images.

    Args:
        components: sequence of (profile class, {name: (B,) tensor}) in user units.
        names: for each component, the parameter names to differentiate (none for sky
            components, whose images are linear in their parameters).
        frame, psf, config: as for :func:`galprof.render.render_model`; see
            :func:`supports_tangents`.

    Returns:
        (parts, tangents): ``parts`` a :class:`RenderedParts`; ``tangents`` a list with,
        per component, a list of K (B, H, W) tensors d(unit image)/d(name) over the frame
        [per unit of the parameter: pix, deg, ...] (views of the convolution's output,
        not contiguous), or None for sky components.
    """
    first = next(iter(components[0][1].values()))
    margin = canvas_margin(psf, config)
    xs, ys = canvas_axes(frame, margin, first, fft_friendly=True)
    canvases, fluxes, sky, counts = [], [], None, []
    for (profile, params), wanted in zip(components, names):
        if profile.kind == "sky":
            term = sky_image(profile, params, frame, first)
            sky = term if sky is None else sky + term
            counts.append(None)
            continue
        fluxes.append(amplitude_scale(profile, params, frame))
        canvases.append(component_light_and_tangents(profile, params, wanted, xs, ys, config))
        counts.append(len(wanted))
    bsz = first.shape[0]
    if not canvases:
        empty = first.new_zeros(bsz, 0, frame.height, frame.width)
        return RenderedParts(empty, first.new_zeros(bsz, 0), sky), [None] * len(components)
    window = (slice(margin, margin + frame.height), slice(margin, margin + frame.width))
    images = [c[:, window[0], window[1]] for c in convolve_channels(canvases, psf)]
    units, tangents, channel = [], [], 0
    for count in counts:
        if count is None:
            tangents.append(None)
            continue
        units.append(images[channel])
        tangents.append(images[channel + 1:channel + 1 + count])
        channel += 1 + count
    return RenderedParts(torch.stack(units, dim=1), torch.stack(fluxes, dim=1), sky), tangents
