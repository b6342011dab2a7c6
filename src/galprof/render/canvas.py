"""The pixel canvas on which components are rendered, and its FFT convolution with the ePSF.

Shared by :mod:`galprof.render.scene` (the model images) and
:mod:`galprof.render.tangents` (the images with their parameter derivatives), so that
both place, spread and convolve light in exactly the same way.

A canvas is a (B, Hc, Wc) (or (B, C, Hc, Wc)) tensor of pixel values over the fit region
extended by :func:`canvas_margin` pixels on every side (and, with a PSF, to FFT-friendly
sizes). Its pixel centres are 1-based image coordinates (see :mod:`galprof.conventions`):
``xs`` (Wc,) along x, ``ys`` (Hc,) along y. Row index = y - ys[0], column index = x - xs[0].

Contents: the canvas's coordinates and margin; patch placement (differentiable,
out of place); the 5-tap inverse-pixel filter; the fine quadrature grid centred on a
component and the Lanczos weights that spread its points onto the pixel grid; and the
circular FFT convolution with the ePSF centred at index (0, 0).
"""

from __future__ import annotations

import functools

import torch

from .config import RenderConfig
from .psf import PreparedPSF, interpolation_matrix, interpolation_matrix_with_slope
from .quadrature import gauss_legendre_unit, smooth_window


def pixel_axis(start: float, size: int, like: torch.Tensor) -> torch.Tensor:
    """(size,) pixel-centre coordinates start, start + 1, ... [pix, 1-based], in the dtype
    and on the device of ``like``."""
    return start + torch.arange(size, dtype=like.dtype, device=like.device)


def fft_size(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n [pix] (lengths the FFT handles without large prime factors)."""
    best = n
    while True:
        m = best
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return best
        best += 1


def canvas_axes(frame, margin: int, like: torch.Tensor, fft_friendly: bool):
    """Pixel-centre coordinates of the canvas: the frame plus ``margin`` pixels on each side.

    ``frame`` is the fit region, a :class:`galprof.render.scene.Frame` (only its
    ``x_min``, ``y_min``, ``width`` and ``height`` are read).

    Returns:
        (xs, ys): (Wc,) and (Hc,) coordinates [pix, 1-based], Wc = width + 2 margin and
        Hc = height + 2 margin, each rounded up by :func:`fft_size` if ``fft_friendly``
        (extra pixels on the high side only); dtype and device of ``like``.
    """
    width, height = frame.width + 2 * margin, frame.height + 2 * margin
    if fft_friendly:
        width, height = fft_size(width), fft_size(height)
    return pixel_axis(frame.x_min - margin, width, like), pixel_axis(frame.y_min - margin, height, like)


def canvas_margin(psf: PreparedPSF | None, config: RenderConfig) -> int:
    """Pixels by which the rendering canvas extends beyond the fit region on each side.

    Without a PSF: room for the quadrature patch around a centre near the edge. With a
    PSF: at least the PSF half-size (so that light from outside the region is scattered
    in and the FFT's circular wrap-around only reaches cropped pixels) and room for the
    inner-light patch (:func:`patch_half`)."""
    inner = config.fine_box // 2 + 3
    if psf is None:
        return inner
    return max(psf.half_size, patch_half(config) + 2)


def patch_half(config: RenderConfig) -> int:
    """Half-size [pix] of the patch around each component that holds its inner light."""
    return max(config.outer_box // 2, config.psf_interpolation_order + config.fine_box // 2 + 1)


def nearest_pixel(x0: torch.Tensor, axis: torch.Tensor, inset: int = 0) -> torch.Tensor:
    """Pixel-centre coordinate [pix] nearest to x0, kept ``inset`` pixels inside ``axis``;
    no gradient.

    Shape: x0 (B,) [pix]; axis (N,) the canvas's coordinates along that direction
    (:func:`canvas_axes`); returns (B,) in the dtype of x0 (integer values). Tensor
    bounds, so no host synchronisation on a GPU.
    """
    return torch.round(x0.detach()).clamp(axis[0] + inset, axis[-1] - inset)


def patch_index(height: int, width: int, h: int, w: int, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """(B, h * w) flat indices into (H, W) canvases of the h x w patches whose first
    (lowest row and column) pixel is at (row0[b], col0[b]), clamped to the canvas.

    Shape: row0, col0 (B,) integer tensors (array indices, not coordinates)."""
    rows = (row0[:, None] + torch.arange(h, device=row0.device)).clamp(0, height - 1)
    cols = (col0[:, None] + torch.arange(w, device=row0.device)).clamp(0, width - 1)
    return (rows[:, :, None] * width + cols[:, None, :]).reshape(row0.shape[0], -1)


def add_patches(canvas: torch.Tensor, patch: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """canvas[b, row0[b] + i, col0[b] + j] += patch[b, i, j]; out of place, differentiable.

    Shape: canvas (B, H, W); patch (B, h, w); row0, col0 (B,) integer tensors.
    """
    bsz, height, width = canvas.shape
    index = patch_index(height, width, *patch.shape[-2:], row0, col0)
    return canvas.reshape(bsz, -1).scatter_add(1, index, patch.reshape(bsz, -1)).reshape(bsz, height, width)


def set_patches(canvas: torch.Tensor, patch: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """canvas[b, row0[b] + i, col0[b] + j] = patch[b, i, j]: like :func:`add_patches` but
    replacing the values (the patches must lie inside the canvas).

    Shape: canvas (B, H, W); patch (B, h, w); row0, col0 (B,) integer tensors.
    """
    bsz, height, width = canvas.shape
    index = patch_index(height, width, *patch.shape[-2:], row0, col0)
    return canvas.reshape(bsz, -1).scatter(1, index, patch.reshape(bsz, -1)).reshape(bsz, height, width)


# 5-tap separable filter whose response matches 1 / sinc(f) to fourth order in f: it turns
# pixel integrals into the samples of a function whose pixel integrals they are.
_PIXEL_DECONVOLUTION = (3.0 / 640.0, -29.0 / 480.0, 1.0 + 29.0 / 240.0 - 3.0 / 320.0, -29.0 / 480.0, 3.0 / 640.0)


def deconvolve_pixel(image: torch.Tensor) -> torch.Tensor:
    """Apply the separable 5-tap inverse-pixel filter along the last two axes (zero
    padding at the edges): pixel integrals [per pixel] in, samples at the pixel centres
    [per pixel area] out.

    Shape: (..., H, W) -> (..., H, W).
    """
    for dim in (-1, -2):
        pad = [0, 0, 0, 0]
        pad[0 if dim == -1 else 2] = 2
        pad[1 if dim == -1 else 3] = 2
        padded = torch.nn.functional.pad(image, pad)
        n = image.shape[dim]
        image = sum(c * padded.narrow(dim, k, n) for k, c in enumerate(_PIXEL_DECONVOLUTION))
    return image


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
    """The uncached :func:`fine_grid`."""
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


def spread_points(u: torch.Tensor, v: torch.Tensor, weights: torch.Tensor, order: int, half: int) -> torch.Tensor:
    """Points spread over a (B, 2 half + 1, 2 half + 1) patch of pixels with Lanczos weights.

    The points lie on a tensor grid: x offsets ``u`` (B, Nu) and y offsets ``v`` (B, Nv)
    [pix] from the patch's central pixel, carrying ``weights`` (B, Nv, Nu) of flux. Spreading
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
    dwy) with their derivatives with respect to the offsets [per pix]. One evaluation
    for every row (each row is independent), then split: the same values as one call
    per grid and axis, with fewer operations."""
    targets = torch.cat([fx + o for o in offsets] + [fy + o for o in offsets], dim=1)
    sizes = [int(o.shape[0]) for o in offsets] * 2
    k = len(offsets)
    if with_slope:
        weights, slopes = interpolation_matrix_with_slope(targets, n, order)
        w, d = weights.split(sizes, dim=1), slopes.split(sizes, dim=1)
        return [(w[g], w[k + g], d[g], d[k + g]) for g in range(k)]
    w = interpolation_matrix(targets, n, order).split(sizes, dim=1)
    return [(w[g], w[k + g]) for g in range(k)]


def centred_kernel(psf: PreparedPSF, hc: int, wc: int, like: torch.Tensor) -> torch.Tensor:
    """The ePSF zero-padded to (Hc, Wc) with its centre moved to index (0, 0) (circularly),
    in the dtype and on the device of ``like``: (Hc, Wc), or (B, Hc, Wc) per galaxy.

    The ePSF image must be no larger than (Hc, Wc); its values are not renormalised."""
    kernel = psf.image.to(dtype=like.dtype, device=like.device)
    ky, kx = kernel.shape[-2] // 2, kernel.shape[-1] // 2
    padded = torch.nn.functional.pad(kernel, (0, wc - kernel.shape[-1], 0, hc - kernel.shape[-2]))
    padded = torch.roll(padded, shifts=(-ky, -kx), dims=(-2, -1))
    return padded


def convolve_canvas(light: torch.Tensor, psf: PreparedPSF) -> torch.Tensor:
    """Circular FFT convolution of (..., Hc, Wc) (or (B, C, Hc, Wc) with one ePSF per
    galaxy) with the ePSF centred at (0, 0); the result has the shape of ``light``.

    A true convolution (not a correlation). The canvas is larger than the frame by at
    least the PSF half-size on every side, so the wrap-around only reaches margin pixels
    that are cropped away.
    """
    hc, wc = light.shape[-2:]
    padded = centred_kernel(psf, hc, wc, light)
    # Two real canvases a, b that meet the same ePSF are convolved as one complex canvas
    # a + i b (the kernel is real, so the real and imaginary parts stay apart): half as
    # many complex FFTs instead of real ones (torch's inverse real FFT is slow on the CPU).
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


def convolve_channels(canvases: list[torch.Tensor], psf: PreparedPSF) -> list[torch.Tensor]:
    """The channels of the (B, C_i, Hc, Wc) canvases, each convolved with galaxy b's ePSF
    (centred at (0, 0), circularly as :func:`convolve_canvas`): a list of sum(C_i)
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
    padded = centred_kernel(psf, hc, wc, like)
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
