"""Batched rendering of a model (a sum of components) into images of shape (B, H, W).

Pixel values and coordinates follow :mod:`galprof.conventions` (1-based pixel centres).

**Without a PSF** a pixel holds the profile integrated over that pixel: Gauss-Legendre
quadrature (few nodes far from the centre, more in a patch around it) and exact
integrals (Green's theorem on the enclosed flux) in a small box of pixels around each
centre, where the profile may have a cusp.

**With a PSF** (an empirical PSF, pixel response included) the model is the galaxy
convolved with the ePSF and *sampled* at pixel centres; the galaxy is not integrated
over the pixel a second time. A smooth radial window centred on each component splits
its light into

* an outer part, sampled at the pixel centres so that it is convolved with the ePSF at
  integer offsets only, where the ePSF is known exactly. In a box of ``outer_box``
  pixels around the centre, where it can still be steep, the samples are anti-aliased:
  pixel integrals turned back into samples by a 5-tap inverse-pixel filter; and
* an inner part, represented by quadrature points on a fine grid centred on the
  component (``fine_factor`` cells per pixel in the central ``fine_inner_box`` pixels,
  ``coarse_factor`` beyond, Gauss-Legendre nodes in each, and exact cell integrals
  around the cusp), each point spread onto the pixel grid with Lanczos weights.
  Convolving that with the ePSF equals evaluating the Lanczos-interpolated ePSF at
  every point's sub-pixel offset.

Each component's inner light is one patch added to its canvas; the canvases of all
components are convolved together by one batched FFT (a true convolution, the kernel
centred at the PSF centre), on canvases that extend beyond the
fit region by at least the PSF half-size so that light from outside the frame is
scattered in and the circular wrap-around only reaches cropped margin pixels. The
window and the fine grid move with the centre, so the model is smooth in the centre
position; the centre enters the inner part only through the interpolation weights.

``legacy_pixel_integration`` reproduces GALFIT/imfit: pixel integrals, then a discrete
convolution with the ePSF (which widens the effective PSF by one pixel).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch

from ..conventions import flux_from_mag
from ..profiles.base import EllipticalProfile, Profile
from .config import RenderConfig
from .psf import PreparedPSF, interpolation_matrix, interpolation_matrix_with_slope
from .quadrature import cell_integrals_exact, cell_integrals_gauss, gauss_legendre_unit, smooth_window
from ..errors import RenderError


@dataclass(frozen=True)
class Frame:
    """Where the fit region lies in the image, in 1-based pixel coordinates.

    Attributes:
        x_min, y_min: coordinates of the first (lower-left) pixel centre of the region.
        width, height: size in pixels (NAXIS1, NAXIS2 of the cut-out).
        zeropoint: magnitude zeropoint (a float, or a (B,) tensor: one per galaxy).
        exptime: exposure time used in magnitudes (mag = zp - 2.5 log10(flux / EXPTIME));
            a float or a (B,) tensor.
        convolution_box: GALFIT's line I, (size x, size y) [pix]: the model is
            PSF-convolved only inside a box of this size centred on the centre of the
            region and left unconvolved outside it. None (default): everywhere. A box
            at least as large as the region changes nothing.
        region_sizes: optional (B, 2) tensor of (width, height) [pix]: galaxy b's own
            region is the first width x height pixels of the frame (images of different
            sizes padded to one frame); its sky is referred to that region's centre.
        pixel_scale: (dx, dy) [arcsec/pix], GALFIT's line K: surface brightnesses in
            mag/arcsec^2 are zp - 2.5 log10(I / (EXPTIME dx dy)), I in ADU/pix.
    """

    x_min: int
    y_min: int
    width: int
    height: int
    zeropoint: float | torch.Tensor = 0.0
    exptime: float | torch.Tensor = 1.0
    convolution_box: tuple[int, int] | None = None
    region_sizes: torch.Tensor | None = None
    pixel_scale: tuple[float, float] = (1.0, 1.0)

    def select(self, index: torch.Tensor) -> Frame:
        """The frame of galaxies ``index`` (per-galaxy fields indexed, the rest shared)."""
        def pick(v):
            return v[index] if isinstance(v, torch.Tensor) else v

        return replace(self, zeropoint=pick(self.zeropoint), exptime=pick(self.exptime),
                       region_sizes=pick(self.region_sizes))

    def sky_offsets(self, like: torch.Tensor):
        """(x - x_c, y - y_c) over the frame: (b or 1, 1, W) and (b or 1, H, 1) [pix].

        x_c, y_c is the centre of the region, or with ``region_sizes`` the centre of each
        galaxy's own region (its first ``width_b`` x ``height_b`` pixels).
        """
        xs = _axis(self.x_min, self.width, like)[None, None, :]
        ys = _axis(self.y_min, self.height, like)[None, :, None]
        if self.region_sizes is None:
            xc, yc = self.centre
            return xs - xc, ys - yc
        sizes = self.region_sizes.to(dtype=like.dtype, device=like.device)
        xc = self.x_min + (sizes[:, 0] - 1) / 2.0
        yc = self.y_min + (sizes[:, 1] - 1) / 2.0
        return xs - xc[:, None, None], ys - yc[:, None, None]

    def inside_convolution_box(self, like: torch.Tensor) -> torch.Tensor | None:
        """(H, W) bool: pixels inside the convolution box, or None when it covers the region."""
        if self.convolution_box is None:
            return None
        box_x, box_y = self.convolution_box
        if box_x >= self.width and box_y >= self.height:
            return None
        xc, yc = self.centre
        xs = _axis(self.x_min, self.width, like) - xc
        ys = _axis(self.y_min, self.height, like) - yc
        return (xs.abs()[None, :] <= box_x / 2.0) & (ys.abs()[:, None] <= box_y / 2.0)

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the region (x_c, y_c), where the sky value is defined."""
        return (self.x_min + (self.width - 1) / 2.0, self.y_min + (self.height - 1) / 2.0)


def _axis(start: float, size: int, like: torch.Tensor) -> torch.Tensor:
    return start + torch.arange(size, dtype=like.dtype, device=like.device)


def _fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast FFT lengths)."""
    best = n
    while True:
        m = best
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return best
        best += 1


def patch_index(height: int, width: int, h: int, w: int, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """(B, h * w) flat indices into (H, W) canvases of the h x w patches whose corner is at
    (row0[b], col0[b]) (clamped to the canvas)."""
    rows = (row0[:, None] + torch.arange(h, device=row0.device)).clamp(0, height - 1)
    cols = (col0[:, None] + torch.arange(w, device=row0.device)).clamp(0, width - 1)
    return (rows[:, :, None] * width + cols[:, None, :]).reshape(row0.shape[0], -1)


def _add_patches(canvas: torch.Tensor, patch: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """canvas[b, row0[b] + i, col0[b] + j] += patch[b, i, j]; out of place, differentiable.

    Shape: canvas (B, H, W); patch (B, h, w); row0, col0 (B,) integer tensors.
    """
    bsz, height, width = canvas.shape
    index = patch_index(height, width, *patch.shape[-2:], row0, col0)
    return canvas.reshape(bsz, -1).scatter_add(1, index, patch.reshape(bsz, -1)).reshape(bsz, height, width)


def _set_patches(canvas: torch.Tensor, patch: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """Like :func:`_add_patches` but replacing the values (indices must stay inside)."""
    bsz, height, width = canvas.shape
    index = patch_index(height, width, *patch.shape[-2:], row0, col0)
    return canvas.reshape(bsz, -1).scatter(1, index, patch.reshape(bsz, -1)).reshape(bsz, height, width)


# 5-tap separable filter whose response matches 1 / sinc(f) to fourth order in f: it turns
# pixel integrals into the samples of a function whose pixel integrals they are.
_PIXEL_DECONVOLUTION = (3.0 / 640.0, -29.0 / 480.0, 1.0 + 29.0 / 240.0 - 3.0 / 320.0, -29.0 / 480.0, 3.0 / 640.0)


def _deconvolve_pixel(image: torch.Tensor) -> torch.Tensor:
    """Apply the separable 5-tap inverse-pixel filter to (B, H, W) (zero padding at the edges)."""
    for dim in (-1, -2):
        pad = [0, 0, 0, 0]
        pad[0 if dim == -1 else 2] = 2
        pad[1 if dim == -1 else 3] = 2
        padded = torch.nn.functional.pad(image, pad)
        n = image.shape[dim]
        image = sum(c * padded.narrow(dim, k, n) for k, c in enumerate(_PIXEL_DECONVOLUTION))
    return image


def _canvas(frame: Frame, margin: int, like: torch.Tensor, fft_friendly: bool):
    """Pixel-centre coordinates (xs, ys) of the canvas: the frame plus ``margin`` pixels."""
    width, height = frame.width + 2 * margin, frame.height + 2 * margin
    if fft_friendly:
        width, height = _fft_size(width), _fft_size(height)
    return _axis(frame.x_min - margin, width, like), _axis(frame.y_min - margin, height, like)


def _nearest_pixel(x0: torch.Tensor, axis: torch.Tensor, inset: int = 0) -> torch.Tensor:
    """Integer pixel nearest to x0, kept ``inset`` pixels inside ``axis``; no gradient.

    Tensor bounds, so no host synchronisation on a GPU.
    """
    return torch.round(x0.detach()).clamp(axis[0] + inset, axis[-1] - inset)


def _pixel_integrals(profile, params, derived, xs, ys, config: RenderConfig):
    """Unit-flux profile integrated over the pixels at centres xs (W,), ys (H,) -> (B, H, W).

    Gauss-Legendre with ``outer_gl_order`` nodes everywhere, ``gl_order`` nodes in a
    patch around the centre, and exact integrals (Green's theorem on the enclosed flux)
    in a small box of pixels around the centre, where the profile may have a cusp.
    """
    x0, y0 = params["x"], params["y"]
    dx = xs[None, None, :] - x0[:, None, None]
    dy = ys[None, :, None] - y0[:, None, None]
    image = cell_integrals_gauss(profile, derived, dx, dy, 1.0, max(config.outer_gl_order, profile.min_gl_order))
    half = config.fine_box // 2 + 2
    cx = _nearest_pixel(x0, xs, half)
    cy = _nearest_pixel(y0, ys, half)
    k = torch.arange(-half, half + 1, dtype=x0.dtype, device=x0.device)
    pdx = (cx - x0)[:, None, None] + k[None, None, :]
    pdy = (cy - y0)[:, None, None] + k[None, :, None]
    patch = cell_integrals_gauss(profile, derived, pdx, pdy, 1.0, config.gl_order)
    e = config.exact_box // 2
    edges = torch.arange(-e, e + 2, dtype=x0.dtype, device=x0.device) - 0.5
    box = cell_integrals_exact(profile, derived, (cx - x0)[:, None, None] + edges[None, None, :],
                               (cy - y0)[:, None, None] + edges[None, :, None], config.edge_nodes, 1.0)
    patch = _set_patches(patch, box, torch.full_like(cx, half - e).long(), torch.full_like(cx, half - e).long())
    row0 = (cy - ys[0] - half).long()
    col0 = (cx - xs[0] - half).long()
    return _set_patches(image, patch, row0, col0)


def _patch_half(config: RenderConfig) -> int:
    """Half-size [pix] of the patch around each component that holds its inner light."""
    return max(config.outer_box // 2, config.psf_interpolation_order + config.fine_box // 2 + 1)


def _spread(u: torch.Tensor, v: torch.Tensor, weights: torch.Tensor, order: int, half: int) -> torch.Tensor:
    """Points spread over a (B, 2 half + 1, 2 half + 1) patch of pixels with Lanczos weights.

    The points lie on a tensor grid: x offsets ``u`` (B, Nu) and y offsets ``v`` (B, Nv)
    from the patch's central pixel, carrying ``weights`` (B, Nv, Nu) of flux. Spreading
    with the (flux-normalised) interpolation weights and convolving with the ePSF on the
    pixel grid equals evaluating the Lanczos-interpolated ePSF at each point's offset.
    ``half`` must be at least ``order`` plus the largest |u|, |v| (a static bound, so
    that the patch size needs no host synchronisation).
    """
    n = 2 * half + 1
    wx = interpolation_matrix(u, n, order)  # (B, Nu, n)
    wy = interpolation_matrix(v, n, order)  # (B, Nv, n)
    return wy.transpose(1, 2) @ weights @ wx  # (B, n, n)


def grid_weights(fx: torch.Tensor, fy: torch.Tensor, offsets: list[torch.Tensor], n: int, order: int,
                 with_slope: bool = False):
    """The Lanczos weights of several tensor grids of points at once: for each (N_g,)
    node offsets of ``offsets``, the points' x offsets ``fx + offsets`` and y offsets
    ``fy + offsets`` (fx, fy: (B, 1) [pix] from the patch's central pixel); a list with,
    per grid, (wx, wy) (B, N_g, n) interpolation matrices (see
    :func:`galprof.render.psf.interpolation_matrix`) or, ``with_slope``, (wx, wy, dwx,
    dwy) with their derivatives with respect to the offsets. One evaluation for every
    row (each row is independent), then split: the same values as one call per grid
    and axis, in a sixth of the operations."""
    targets = torch.cat([fx + o for o in offsets] + [fy + o for o in offsets], dim=1)
    sizes = [int(o.shape[0]) for o in offsets] * 2
    k = len(offsets)
    if with_slope:
        weights, slopes = interpolation_matrix_with_slope(targets, n, order)
        w, d = weights.split(sizes, dim=1), slopes.split(sizes, dim=1)
        return [(w[g], w[k + g], d[g], d[k + g]) for g in range(k)]
    w = interpolation_matrix(targets, n, order).split(sizes, dim=1)
    return [(w[g], w[k + g]) for g in range(k)]


def _outer_light(profile, params, derived, xs, ys, cx, cy, half, config: RenderConfig):
    """The light the fine grid does not take (unit-flux profile times 1 - window).

    Returns the canvas of samples at the pixel centres xs (W,), ys (H,), (B, H, W), and
    a (B, 2 half + 1, 2 half + 1) correction patch centred on the pixel (cx, cy).

    Far from the centre a radial profile is smooth on the pixel scale and is sampled at
    the pixel centres (a non-radial one is anti-aliased everywhere, see below). In a box of ``outer_box`` pixels around the centre, where it may still
    be steep, the samples are anti-aliased: pixel integrals (``gl_order`` nodes in the
    windowed patch, ``outer_gl_order`` elsewhere) turned into samples by the 5-tap
    inverse-pixel filter; the patch holds their difference from the plain samples. The
    two agree to fourth order in the pixel scale at the box's edge, so moving the box
    with the centre's nearest pixel leaves no visible seam.
    """
    x0, y0 = params["x"], params["y"]
    dx = xs[None, None, :] - x0[:, None, None]
    dy = ys[None, :, None] - y0[:, None, None]
    if profile.radial:
        canvas = profile.brightness(dx, dy, derived)
    else:
        # a non-radial profile (a thin edge-on disk) keeps sub-pixel structure along its
        # whole length: anti-aliased samples over the whole canvas
        order = max(config.outer_gl_order, profile.min_gl_order)
        canvas = _deconvolve_pixel(cell_integrals_gauss(profile, derived, dx, dy, 1.0, order))
    half_box = config.outer_box // 2 + 2  # two more pixels for the filter's reach
    k = torch.arange(-half_box, half_box + 1, dtype=x0.dtype, device=x0.device)
    bdx = (cx - x0)[:, None, None] + k[None, None, :]
    bdy = (cy - y0)[:, None, None] + k[None, :, None]
    box = cell_integrals_gauss(profile, derived, bdx, bdy, 1.0, max(config.outer_gl_order, profile.min_gl_order))
    inner = config.fine_box // 2 + 2
    pdx = (cx - x0)[:, None, None] + k[None, None, half_box - inner:half_box + inner + 1]
    pdy = (cy - y0)[:, None, None] + k[None, half_box - inner:half_box + inner + 1, None]
    window = (config.window_inner, config.window_outer, True)
    patch = cell_integrals_gauss(profile, derived, pdx, pdy, 1.0, config.gl_order, window=window)
    start = torch.full_like(cx, half_box - inner).long()
    box = _deconvolve_pixel(_set_patches(box, patch, start, start))[:, 2:-2, 2:-2]
    # the box replaces the plain samples there (a replacement, not an added difference:
    # the plain sample at a cusp is huge and would cancel catastrophically)
    nb = box.shape[-1]
    canvas = _set_patches(canvas, box, (cy - ys[0]).long() - nb // 2, (cx - xs[0]).long() - nb // 2)
    return canvas, box.new_zeros(box.shape[0], 2 * half + 1, 2 * half + 1)


@functools.lru_cache(maxsize=32)
def fine_grid(config: RenderConfig, dtype, device):
    """The quadrature points of the fine grid centred on a component, as offsets [pix]
    from its centre: ``levels``, a tuple of tensor grids ``(node_offsets (N,), node_weights
    (N, N))`` (the same offsets on both axes; Gauss-Legendre weight times the window,
    zero where a finer level or the exact core takes the light), and the exact core's
    ``core_edges`` (n_core + 1,) and ``core_centres`` (n_core,).

    The central ``fine_inner_box`` pixels are covered by cells of 1 / ``fine_factor``
    pixel, the rest of the ``fine_box`` by cells of 1 / ``coarse_factor`` pixel (where
    the windowed light is smooth on the pixel scale); with ``fine_inner_box`` equal to
    ``fine_box`` there is one level. Constants of the configuration, cached per
    (config, dtype, device): shared, never modify them (made outside inference mode, so
    that autograd may save them later)."""
    with torch.inference_mode(False):
        return _fine_grid(config, dtype, device)


def _grid_level(box: int, factor: int, config: RenderConfig, dtype, device):
    """Offsets (box * factor * gl_order,) of the Gauss-Legendre nodes of a square of
    ``box`` pixels cut into cells of 1 / ``factor`` pixel, their windowed weights
    (N, N), and per node the index of its cell along the axis."""
    n_cells = box * factor
    cell_offsets = (torch.arange(n_cells, dtype=dtype, device=device) - (n_cells - 1) / 2) / factor
    nodes, gl_weights = gauss_legendre_unit(config.gl_order, dtype, device)
    node_offsets = (cell_offsets[:, None] + nodes[None, :] / factor).reshape(-1)
    weights_1d = (gl_weights[None, :].expand(n_cells, -1) / factor).reshape(-1)
    radius = torch.sqrt(node_offsets[None, :] ** 2 + node_offsets[:, None] ** 2)
    window = smooth_window(radius, config.window_inner, config.window_outer)
    cell = torch.arange(n_cells, device=device).repeat_interleave(config.gl_order)
    return node_offsets, window * weights_1d[:, None] * weights_1d[None, :], cell


def _fine_grid(config: RenderConfig, dtype, device):
    s = config.fine_factor
    inner_offsets, inner_weights, inner_cell = _grid_level(config.fine_inner_box, s, config, dtype, device)
    # cells of the exact core get no quadrature nodes
    core_half = config.exact_core // 2
    centre = (config.fine_inner_box * s - 1) // 2
    in_core = (inner_cell - centre).abs() <= core_half
    inner_weights = torch.where(in_core[:, None] & in_core[None, :], torch.zeros_like(inner_weights), inner_weights)
    levels = [(inner_offsets, inner_weights)]
    if config.fine_inner_box < config.fine_box:
        c = config.coarse_factor
        offsets, weights, cell = _grid_level(config.fine_box, c, config, dtype, device)
        # coarse cells inside the inner box (whose edges lie on the coarse grid) leave
        # their light to the fine level
        margin = (config.fine_box - config.fine_inner_box) // 2 * c
        inside = (cell >= margin) & (cell < config.fine_box * c - margin)
        levels.append((offsets, torch.where(inside[:, None] & inside[None, :], torch.zeros_like(weights), weights)))
    n_core = 2 * core_half + 1
    core_edges = (torch.arange(n_core + 1, dtype=dtype, device=device) - n_core / 2.0) / s
    core_centres = (torch.arange(n_core, dtype=dtype, device=device) - core_half) / s
    return tuple(levels), core_edges, core_centres


def _fine_light(profile, params, derived, cx, cy, half, config: RenderConfig):
    """The windowed inner light of an elliptical component (unit flux) on a
    (B, 2 half + 1, 2 half + 1) patch of pixels centred on the pixel (cx, cy).

    The inner light is represented by quadrature points (:func:`fine_grid`):
    Gauss-Legendre nodes in the cells of a fine grid centred on the component, and the
    centres of the exact cells around the cusp (whose flux is the exact integral).
    """
    x0, y0 = params["x"], params["y"]
    levels, edges, core_centres = fine_grid(config, x0.dtype, x0.device)
    fx, fy = (x0 - cx)[:, None], (y0 - cy)[:, None]
    order = config.psf_interpolation_order
    # the points of every level and of the exact core (its cells' integrals as points at
    # the cell centres), spread with Lanczos weights computed in one call
    weights = grid_weights(fx, fy, [o for o, _ in levels] + [core_centres], 2 * half + 1, order)
    patch = None
    for (node_offsets, node_w), (wx, wy) in zip(levels, weights):
        value = profile.brightness(node_offsets[None, None, :], node_offsets[None, :, None], derived)
        spread = wy.transpose(1, 2) @ (value * node_w) @ wx
        patch = spread if patch is None else patch + spread
    bsz = x0.shape[0]
    core = cell_integrals_exact(profile, derived, edges.expand(bsz, 1, -1), edges.view(1, -1, 1).expand(bsz, -1, 1),
                                config.edge_nodes, 1.0 / config.fine_factor)
    wx, wy = weights[-1]
    return patch + wy.transpose(1, 2) @ core @ wx


def _component_light(profile, params, xs, ys, config: RenderConfig):
    """One non-sky component of unit flux on the canvas, as light to be convolved with the ePSF."""
    x0, y0 = params["x"], params["y"]
    bsz = x0.shape[0]
    if profile.kind == "point":
        half = config.psf_interpolation_order + 1
        cx = _nearest_pixel(x0, xs, half)
        cy = _nearest_pixel(y0, ys, half)
        one = x0.new_ones(bsz, 1, 1)
        patch = _spread((x0 - cx)[:, None], (y0 - cy)[:, None], one, config.psf_interpolation_order, half)
        canvas = x0.new_zeros(bsz, ys.shape[0], xs.shape[0])
    else:
        derived = profile.setup({k: v[:, None, None] for k, v in params.items()})
        if config.legacy_pixel_integration:
            return _pixel_integrals(profile, params, derived, xs, ys, config)
        half = _patch_half(config)
        cx = _nearest_pixel(x0, xs, half)
        cy = _nearest_pixel(y0, ys, half)
        canvas, patch = _outer_light(profile, params, derived, xs, ys, cx, cy, half, config)
        patch = patch + _fine_light(profile, params, derived, cx, cy, half, config)
    return _add_patches(canvas, patch, (cy - ys[0] - half).long(), (cx - xs[0] - half).long())


def _convolve_canvas(light: torch.Tensor, psf: PreparedPSF) -> torch.Tensor:
    """Circular FFT convolution of (..., Hc, Wc) (or (B, C, Hc, Wc) with one ePSF per
    galaxy) with the ePSF centred at (0, 0).

    The canvas is larger than the frame by at least the PSF half-size on every side, so
    the wrap-around only reaches margin pixels that are cropped away.
    """
    hc, wc = light.shape[-2:]
    padded = _centred_kernel(psf, hc, wc, light)
    # Two real canvases a, b that meet the same ePSF are convolved as one complex canvas
    # a + i b (the kernel is real, so the real and imaginary parts stay apart): half as
    # many complex FFTs instead of real ones (torch's inverse real FFT is slow on the CPU:
    # (64, 7, 160, 160) float32 on 2 cores, 134 ms the real way, 113 ms packed).
    # Pairs are formed along the channels with one ePSF per galaxy, along all canvases
    # with a shared one.
    per_galaxy = psf.per_galaxy and light.dim() == 4
    stack = light if per_galaxy else light.reshape(1, -1, hc, wc)
    count = stack.shape[1]
    if count < 2:
        kernel_spectrum = torch.fft.rfft2(padded)
        if psf.per_galaxy:  # (B, Hc, Wc') against light (B, C, Hc, Wc)
            kernel_spectrum = kernel_spectrum[:, None]
        return torch.fft.irfft2(torch.fft.rfft2(light) * kernel_spectrum, s=(hc, wc))
    kernel_spectrum = torch.fft.fft2(padded)
    if per_galaxy:
        kernel_spectrum = kernel_spectrum[:, None]
    if count % 2:
        stack = torch.cat([stack, stack.new_zeros(stack.shape[0], 1, hc, wc)], dim=1)
    pairs = torch.fft.ifft2(torch.fft.fft2(torch.complex(stack[:, 0::2], stack[:, 1::2])) * kernel_spectrum)
    out = torch.stack((pairs.real, pairs.imag), dim=2).reshape(stack.shape[0], -1, hc, wc)[:, :count]
    return out.reshape(light.shape)


def _centred_kernel(psf: PreparedPSF, hc: int, wc: int, like: torch.Tensor) -> torch.Tensor:
    """The ePSF zero-padded to (Hc, Wc) with its centre moved to index (0, 0) (circularly),
    in the dtype and on the device of ``like``: (Hc, Wc), or (B, Hc, Wc) per galaxy."""
    kernel = psf.image.to(dtype=like.dtype, device=like.device)
    ky, kx = kernel.shape[-2] // 2, kernel.shape[-1] // 2
    padded = torch.nn.functional.pad(kernel, (0, wc - kernel.shape[-1], 0, hc - kernel.shape[-2]))
    padded = torch.roll(padded, shifts=(-ky, -kx), dims=(-2, -1))
    return padded


def _convolve_channels(canvases: list[torch.Tensor], psf: PreparedPSF) -> list[torch.Tensor]:
    """The channels of the (B, C_i, Hc, Wc) canvases, each convolved with galaxy b's ePSF
    (centred at (0, 0), circularly as :func:`_convolve_canvas`): a list of sum(C_i)
    (B, Hc, Wc) tensors, in order.

    For the analytic Jacobian's channel stacks (no autograd): consecutive channels a, b
    are written once into one complex canvas a + i b and convolved together (the kernel
    is real, so the parts stay apart); the results are views of the real and imaginary
    parts, without copying them back into a channel stack. An odd last channel goes
    through a real FFT (cheaper here than pairing it with zeros).
    """
    bsz, _, hc, wc = canvases[0].shape
    like = canvases[0]
    channels = [c[:, k] for c in canvases for k in range(c.shape[1])]
    pairs = len(channels) // 2
    padded = _centred_kernel(psf, hc, wc, like)
    out: list[torch.Tensor] = []
    if pairs:
        packed = torch.empty(bsz, pairs, hc, wc, 2, dtype=like.dtype, device=like.device)
        for p in range(pairs):
            packed[:, p, :, :, 0] = channels[2 * p]
            packed[:, p, :, :, 1] = channels[2 * p + 1]
        complex_canvas = torch.view_as_complex(packed)
        kernel_spectrum = torch.fft.fft2(padded)
        if psf.per_galaxy:
            kernel_spectrum = kernel_spectrum[:, None]
        spectrum = torch.fft.fft2(complex_canvas)
        spectrum.mul_(kernel_spectrum)
        result = torch.view_as_real(torch.fft.ifft2(spectrum, out=complex_canvas))
        for p in range(pairs):
            out.extend((result[:, p, :, :, 0], result[:, p, :, :, 1]))
    if len(channels) % 2:
        real_spectrum = torch.fft.rfft2(padded)
        out.append(torch.fft.irfft2(torch.fft.rfft2(channels[-1]) * real_spectrum, s=(hc, wc)))
    return out


def _sky(profile, params, frame: Frame, like: torch.Tensor) -> torch.Tensor:
    """A sky component over the frame, (B, H, W) [ADU]: the sum of its parameters times
    their basis images (``profile.sky_basis``: 1, x - x_c or y - y_c, with (x_c, y_c)
    the centre of the fit region)."""
    dx, dy = frame.sky_offsets(like)
    bsz = like.shape[0]
    total = like.new_zeros(bsz, frame.height, frame.width)
    for name, basis in profile.sky_basis.items():
        value = params[name][:, None, None]
        total = total + (value if basis == "1" else value * (dx if basis == "x" else dy))
    return total


def canvas_margin(psf: PreparedPSF | None, config: RenderConfig) -> int:
    """Pixels by which the rendering canvas extends beyond the fit region on each side."""
    inner = config.fine_box // 2 + 3
    if psf is None:
        return inner
    return max(psf.half_size, _patch_half(config) + 2)


_LN10_04 = 0.4 * math.log(10.0)


def amplitude_scale(profile, params: dict[str, torch.Tensor], frame: Frame) -> torch.Tensor:
    """(B,) the factor a component's unit-amplitude image is multiplied by [ADU].

    ``total_magnitude``: the total flux EXPTIME 10^(-0.4 (mag - zp)); ``surface_brightness``
    (mag/arcsec^2): EXPTIME dx dy 10^(-0.4 (mu - zp)) [ADU/pix]; ``intensity``: the
    value itself [ADU/pix].
    """
    value = params[profile.amplitude]
    if profile.amplitude_kind == "intensity":
        return value
    scale = flux_from_mag(value, frame.zeropoint, frame.exptime)
    if profile.amplitude_kind == "surface_brightness":
        scale = scale * (frame.pixel_scale[0] * frame.pixel_scale[1])
    return scale


def amplitude_log_slope(profile) -> float | None:
    """d ln(scale) / d amplitude for magnitude-like amplitudes (-0.4 ln 10); None for a
    linear intensity (d scale / d amplitude = 1)."""
    return None if profile.amplitude_kind == "intensity" else -_LN10_04


@dataclass(frozen=True)
class RenderedParts:
    """A model split into the pieces that its linear parameters multiply.

    Attributes:
        unit_images: (B, C, H, W) image of each non-sky component at unit amplitude
            (PSF-convolved when there is a PSF): for a total-magnitude profile the
            fraction of its flux per pixel.
        amplitudes: (B, C) what each unit image is multiplied by (:func:`amplitude_scale`):
            the total flux [ADU] of a total-magnitude profile.
        sky: (B, H, W) sum of the sky components [ADU], or None.
    """

    unit_images: torch.Tensor
    amplitudes: torch.Tensor
    sky: torch.Tensor | None

    def total(self) -> torch.Tensor:
        """The model image (B, H, W): sum of amplitude x unit image, plus the sky."""
        image = (self.amplitudes[:, :, None, None] * self.unit_images).sum(1)
        return image if self.sky is None else image + self.sky


def render_parts(components, frame: Frame, psf: PreparedPSF | None = None,
                 config: RenderConfig = RenderConfig()) -> RenderedParts:
    """The unit-amplitude images, amplitudes and sky of a model over the frame (see :func:`render_model`).

    Each non-sky component is rendered on its own canvas and all canvases are convolved
    together (one batched FFT); the sky is added after the convolution.
    """
    first = next(iter(components[0][1].values()))
    margin = canvas_margin(psf, config)
    xs, ys = _canvas(frame, margin, first, fft_friendly=psf is not None)
    bsz = first.shape[0]
    lights, fluxes = [], []
    sky = None
    for profile, params in components:
        if profile.kind == "sky":
            term = _sky(profile, params, frame, first)
            sky = term if sky is None else sky + term
            continue
        if profile.kind not in ("point", "elliptical") or (profile.kind == "elliptical"
                                                           and not issubclass(profile, EllipticalProfile)):
            raise RenderError(f"profile {profile.name!r} has an unknown kind {profile.kind!r}")
        fluxes.append(amplitude_scale(profile, params, frame))
        if psf is None:
            if profile.kind == "point":
                raise RenderError("a point source ('psf' component) needs a PSF image")
            derived = profile.setup({k: v[:, None, None] for k, v in params.items()})
            lights.append(_pixel_integrals(profile, params, derived, xs, ys, config))
        else:
            lights.append(_component_light(profile, params, xs, ys, config))
    if lights:
        light = torch.stack(lights, dim=1)
        if psf is not None:
            convolved = _convolve_canvas(light, psf)
            inside = frame.inside_convolution_box(first)
            if inside is not None:
                hc, wc = light.shape[-2:]
                inside = torch.nn.functional.pad(
                    inside, (margin, wc - frame.width - margin, margin, hc - frame.height - margin))
                convolved = torch.where(inside, convolved, light)
            light = convolved
        light = light[..., margin:margin + frame.height, margin:margin + frame.width]
        flux = torch.stack(fluxes, dim=1)
    else:
        light = first.new_zeros(bsz, 0, frame.height, frame.width)
        flux = first.new_zeros(bsz, 0)
    return RenderedParts(light, flux, sky)


def render_model(components, frame: Frame, psf: PreparedPSF | None = None,
                 config: RenderConfig = RenderConfig()) -> torch.Tensor:
    """Sum of the components' images over the frame, (B, H, W) [ADU per pixel].

    Args:
        components: sequence of (profile class, {name: (B,) tensor}) pairs, parameters
            in user units (1-based pixels, degrees, magnitudes; see
            :mod:`galprof.conventions`).
        frame: the fit region, zeropoint and exposure time.
        psf: prepared ePSF, or None for pixel-integrated models without convolution.
        config: numerical settings.

    Components are convolved with the ePSF by FFT; the sky is added after.
    """
    return render_parts(components, frame, psf, config).total()


def render_component(profile: type[Profile], params: dict[str, torch.Tensor], frame: Frame,
                     psf: PreparedPSF | None, config: RenderConfig = RenderConfig()) -> torch.Tensor:
    """Image (B, H, W) of one component over the fit region (see :func:`render_model`)."""
    return render_model([(profile, params)], frame, psf, config)
