"""Batched rendering of a model (a sum of components) into images of shape (B, H, W).

Pixel values and coordinates follow :mod:`galprof.conventions` (1-based pixel centres).

**Without a PSF** a pixel holds the profile integrated over that pixel: Gauss-Legendre
quadrature in every pixel, and exact integrals (Green's theorem) in a small box of
pixels around each centre, where the profile may have a cusp.

**With a PSF** (an empirical PSF, pixel response included) the model is the galaxy
convolved with the ePSF and *sampled* at pixel centres; the galaxy is not integrated
over the pixel a second time. The light of each elliptical component is split by a
smooth radial window into

* an inner part, integrated exactly over the cells of a fine grid (``fine_factor``
  cells per pixel over a ``fine_box`` pixel box) centred on the component's centre, and
* an outer part, integrated over the pixels (Gauss-Legendre).

Each part is convolved, by zero-padded FFT (a true convolution), with the ePSF at its
grid's offsets and deconvolved by its cell's box, so that cell integrals stand for a
continuous light distribution. The outer part lies on the pixel grid and needs the ePSF
only at integer offsets, where it is known exactly; only the inner part uses the ePSF
interpolated to sub-pixel offsets. The window and the fine grid move with the centre,
so the model is smooth in the centre position. The canvas extends beyond the fit region by the PSF
half-size so that light from outside the frame is scattered in.

``legacy_pixel_integration`` reproduces GALFIT/imfit: pixel integrals, then a discrete
convolution with the ePSF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..conventions import flux_from_mag
from ..profiles.base import EllipticalProfile, Profile
from .config import RenderConfig
from .psf import PreparedPSF, interpolate_psf
from .quadrature import cell_integrals_exact, cell_integrals_gauss


class RenderError(ValueError):
    """A model cannot be rendered as asked (e.g. a point source without a PSF)."""


@dataclass(frozen=True)
class Frame:
    """Where the fit region lies in the image, in 1-based pixel coordinates.

    Attributes:
        x_min, y_min: coordinates of the first (lower-left) pixel centre of the region.
        width, height: size in pixels (NAXIS1, NAXIS2 of the cut-out).
        zeropoint: magnitude zeropoint.
        exptime: exposure time used in magnitudes (mag = zp - 2.5 log10(flux / EXPTIME)).
    """

    x_min: int
    y_min: int
    width: int
    height: int
    zeropoint: float = 0.0
    exptime: float = 1.0

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


def _sinc(f: torch.Tensor) -> torch.Tensor:
    return torch.sinc(f)


def _convolve(image: torch.Tensor, kernel: torch.Tensor, deconvolve_cell: bool) -> torch.Tensor:
    """'Full' linear convolution of (B, Hi, Wi) with (B, Hk, Wk) by zero-padded FFT.

    With ``deconvolve_cell`` the result is divided, frequency by frequency, by the
    transform of a one-sample box, sinc(f_x) sinc(f_y).

    Returns (B, Hi + Hk - 1, Wi + Wk - 1).
    """
    hi, wi = image.shape[-2:]
    hk, wk = kernel.shape[-2:]
    out_h, out_w = hi + hk - 1, wi + wk - 1
    ly, lx = _fft_size(out_h), _fft_size(out_w)
    spectrum = torch.fft.rfft2(image, s=(ly, lx)) * torch.fft.rfft2(kernel, s=(ly, lx))
    if deconvolve_cell:
        fy = torch.fft.fftfreq(ly, dtype=image.dtype, device=image.device)
        fx = torch.fft.rfftfreq(lx, dtype=image.dtype, device=image.device)
        spectrum = spectrum / (_sinc(fy)[:, None] * _sinc(fx)[None, :])
    return torch.fft.irfft2(spectrum, s=(ly, lx))[..., :out_h, :out_w]


def _add_patches(canvas: torch.Tensor, patch: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """canvas[b, row0[b] + i, col0[b] + j] += patch[b, i, j]; out of place, differentiable.

    Shape: canvas (B, H, W); patch (B, h, w); row0, col0 (B,) integer tensors.
    """
    bsz, height, width = canvas.shape
    h, w = patch.shape[-2:]
    rows = (row0[:, None] + torch.arange(h, device=canvas.device)).clamp(0, height - 1)
    cols = (col0[:, None] + torch.arange(w, device=canvas.device)).clamp(0, width - 1)
    index = (rows[:, :, None] * width + cols[:, None, :]).reshape(bsz, -1)
    return canvas.reshape(bsz, -1).scatter_add(1, index, patch.reshape(bsz, -1)).reshape(bsz, height, width)


def _set_patches(canvas: torch.Tensor, patch: torch.Tensor, row0: torch.Tensor, col0: torch.Tensor) -> torch.Tensor:
    """Like :func:`_add_patches` but replacing the values (indices must stay inside)."""
    bsz, height, width = canvas.shape
    h, w = patch.shape[-2:]
    rows = (row0[:, None] + torch.arange(h, device=canvas.device)).clamp(0, height - 1)
    cols = (col0[:, None] + torch.arange(w, device=canvas.device)).clamp(0, width - 1)
    index = (rows[:, :, None] * width + cols[:, None, :]).reshape(bsz, -1)
    return canvas.reshape(bsz, -1).scatter(1, index, patch.reshape(bsz, -1)).reshape(bsz, height, width)


def _geometry(params: dict[str, torch.Tensor]):
    """(B,1,1) views of q and pa of an elliptical component."""
    return params["pa"][:, None, None], params["q"][:, None, None]


def _pixel_integrated(profile, params, derived, frame: Frame, margin: int, config: RenderConfig):
    """Unit-flux profile integrated over the pixels of the frame extended by ``margin``.

    Returns (B, H + 2 margin, W + 2 margin).
    """
    x0, y0 = params["x"], params["y"]
    pa, q = _geometry(params)
    xs = _axis(frame.x_min - margin, frame.width + 2 * margin, x0)
    ys = _axis(frame.y_min - margin, frame.height + 2 * margin, x0)
    dx = xs[None, None, :] - x0[:, None, None]
    dy = ys[None, :, None] - y0[:, None, None]
    image = cell_integrals_gauss(profile, derived, dx, dy, pa, q, 1.0, config.gl_order)
    # exact integrals in a box of pixels around the centre (cusps)
    half = config.exact_box // 2
    cx = torch.round(x0.detach()).clamp(frame.x_min - margin + half, frame.x_min + frame.width - 1 + margin - half)
    cy = torch.round(y0.detach()).clamp(frame.y_min - margin + half, frame.y_min + frame.height - 1 + margin - half)
    k = torch.arange(-half, half + 2, dtype=x0.dtype, device=x0.device) - 0.5
    x_edges = (cx - x0)[:, None, None] + k[None, None, :]
    y_edges = (cy - y0)[:, None, None] + k[None, :, None]
    box = cell_integrals_exact(profile, derived, x_edges, y_edges, pa, q, config.edge_nodes)
    col0 = (cx - (frame.x_min - margin) - half).long()
    row0 = (cy - (frame.y_min - margin) - half).long()
    return _set_patches(image, box, row0, col0)


def _windowed_psf_convolved(profile, params, derived, frame: Frame, psf: PreparedPSF, margin: int,
                            config: RenderConfig) -> torch.Tensor:
    """Unit-flux component convolved with the ePSF, sampled at the canvas pixel centres.

    Returns (B, H + 2 margin, W + 2 margin).
    """
    x0, y0 = params["x"], params["y"]
    pa, q = _geometry(params)
    dtype, device = x0.dtype, x0.device
    s = config.fine_factor
    hp = psf.half_size
    kernel_image = psf.image.to(dtype=dtype, device=device)
    cx, cy = torch.round(x0.detach()), torch.round(y0.detach())
    fx, fy = x0 - cx, y0 - cy  # sub-pixel offsets in [-1/2, 1/2]

    # outer light integrated over the pixels themselves: the ePSF is needed only at
    # integer offsets, where it is known exactly (no interpolation)
    canvas_w, canvas_h = frame.width + 2 * margin, frame.height + 2 * margin
    xs = _axis(frame.x_min - margin, canvas_w, x0)
    ys = _axis(frame.y_min - margin, canvas_h, x0)
    dx = xs[None, None, :] - x0[:, None, None]
    dy = ys[None, :, None] - y0[:, None, None]
    window = (config.window_inner, config.window_outer)
    outer = cell_integrals_gauss(profile, derived, dx, dy, pa, q, 1.0, config.gl_order, window=(*window, True))
    full = _convolve(outer, kernel_image[None], deconvolve_cell=True)
    ky, kx = kernel_image.shape[0] // 2, kernel_image.shape[1] // 2
    model = full[:, ky:ky + canvas_h, kx:kx + canvas_w]

    # inner light on fine cells centred on the component
    n_fine = config.fine_box * s
    a_half = (n_fine - 1) // 2
    offsets = (torch.arange(n_fine, dtype=dtype, device=device) - a_half) / s
    inner = cell_integrals_gauss(profile, derived, offsets[None, None, :], offsets[None, :, None], pa, q,
                                 1.0 / s, config.gl_order, window=(*window, False))
    # the cells around the cusp, where the window is 1: exact integrals
    core_half = int(math.floor(config.window_inner / math.sqrt(2.0) * s - 0.5))
    n_core = 2 * core_half + 1
    edges = (torch.arange(n_core + 1, dtype=dtype, device=device) - n_core / 2.0) / s
    bsz = x0.shape[0]
    core = cell_integrals_exact(profile, derived, edges.expand(bsz, 1, -1), edges.view(1, -1, 1).expand(bsz, -1, 1),
                                pa, q, config.edge_nodes)
    lo = a_half - core_half
    pad = (lo, n_fine - lo - n_core, lo, n_fine - lo - n_core)
    core_mask = torch.nn.functional.pad(torch.ones(n_core, n_core, dtype=torch.bool, device=device), pad)
    inner = torch.where(core_mask, torch.nn.functional.pad(core, pad), inner)

    j_half = (hp + 1) * s
    fine_taps = torch.arange(-j_half, j_half + 1, dtype=dtype, device=device) / s
    fine_kernel = interpolate_psf(kernel_image, fine_taps[None, :] - fx[:, None], fine_taps[None, :] - fy[:, None],
                                  config.psf_interpolation_order)
    fine_full = _convolve(inner, fine_kernel, deconvolve_cell=True)
    p_half = config.fine_box // 2 + hp + 1
    start = a_half + j_half - s * p_half
    patch = fine_full[:, start::s, start::s][:, : 2 * p_half + 1, : 2 * p_half + 1]
    row0 = (cy - (frame.y_min - margin) - p_half).long()
    col0 = (cx - (frame.x_min - margin) - p_half).long()
    return _add_patches(model, patch, row0, col0)


def _point_source(params, frame: Frame, psf: PreparedPSF | None, margin: int, config: RenderConfig) -> torch.Tensor:
    """Unit-flux point source: the ePSF interpolated to the sub-pixel position."""
    if psf is None:
        raise RenderError("a point source ('psf' component) needs a PSF image")
    x0, y0 = params["x"], params["y"]
    dtype, device = x0.dtype, x0.device
    hp = psf.half_size
    cx, cy = torch.round(x0.detach()), torch.round(y0.detach())
    taps = torch.arange(-(hp + 1), hp + 2, dtype=dtype, device=device)
    patch = interpolate_psf(psf.image.to(dtype=dtype, device=device), taps[None, :] - (x0 - cx)[:, None],
                            taps[None, :] - (y0 - cy)[:, None], config.psf_interpolation_order)
    canvas = x0.new_zeros(x0.shape[0], frame.height + 2 * margin, frame.width + 2 * margin)
    row0 = (cy - (frame.y_min - margin) - (hp + 1)).long()
    col0 = (cx - (frame.x_min - margin) - (hp + 1)).long()
    return _add_patches(canvas, patch, row0, col0)


def _sky(params, frame: Frame, like: torch.Tensor) -> torch.Tensor:
    xc, yc = frame.centre
    xs = _axis(frame.x_min, frame.width, like) - xc
    ys = _axis(frame.y_min, frame.height, like) - yc
    return (params["sky"][:, None, None] + params["dsdx"][:, None, None] * xs[None, None, :]
            + params["dsdy"][:, None, None] * ys[None, :, None])


def canvas_margin(psf: PreparedPSF | None, config: RenderConfig) -> int:
    """Pixels by which the rendering canvas extends beyond the fit region on each side."""
    if psf is None:
        return config.exact_box // 2 + 1
    return psf.half_size + config.fine_box // 2 + 2


def render_component(profile: type[Profile], params: dict[str, torch.Tensor], frame: Frame,
                     psf: PreparedPSF | None, config: RenderConfig = RenderConfig()) -> torch.Tensor:
    """Image (B, H, W) of one component over the fit region.

    Args:
        profile: a registered profile class.
        params: parameter name -> (B,) tensor in user units (1-based pixels, degrees,
            magnitudes; see :mod:`galprof.conventions`).
        frame: the fit region, zeropoint and exposure time.
        psf: prepared ePSF or None.
        config: numerical settings.
    """
    first = next(iter(params.values()))
    if profile.kind == "sky":
        return _sky(params, frame, first)
    margin = canvas_margin(psf, config)
    if profile.kind == "point":
        canvas = _point_source(params, frame, psf, margin, config)
    elif issubclass(profile, EllipticalProfile):
        shape_params = {k: v[:, None, None] for k, v in params.items()}
        derived = profile.prepare(shape_params)
        if psf is None:
            canvas = _pixel_integrated(profile, params, derived, frame, margin, config)
        elif config.legacy_pixel_integration:
            pixels = _pixel_integrated(profile, params, derived, frame, margin, config)
            kernel = psf.image.to(dtype=first.dtype, device=first.device).expand(first.shape[0], -1, -1)
            ky, kx = psf.image.shape[0] // 2, psf.image.shape[1] // 2
            full = _convolve(pixels, kernel, deconvolve_cell=False)
            canvas = full[:, ky:ky + pixels.shape[1], kx:kx + pixels.shape[2]]
        else:
            canvas = _windowed_psf_convolved(profile, params, derived, frame, psf, margin, config)
    else:
        raise RenderError(f"profile {profile.name!r} has an unknown kind {profile.kind!r}")
    flux = flux_from_mag(params["mag"], frame.zeropoint, frame.exptime)
    image = canvas[:, margin:margin + frame.height, margin:margin + frame.width]
    return flux[:, None, None] * image


def render_model(components, frame: Frame, psf: PreparedPSF | None = None,
                 config: RenderConfig = RenderConfig()) -> torch.Tensor:
    """Sum of the components' images, (B, H, W).

    Args:
        components: sequence of (profile class, {name: (B,) tensor}) pairs.
    """
    total = None
    for profile, params in components:
        image = render_component(profile, params, frame, psf, config)
        total = image if total is None else total + image
    return total
