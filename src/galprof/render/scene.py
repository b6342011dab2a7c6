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

The canvas itself (coordinates, patch placement, the fine grid and its Lanczos spreading,
the inverse-pixel filter and the FFT convolution) is :mod:`galprof.render.canvas`.

``legacy_pixel_integration`` reproduces GALFIT/imfit: pixel integrals, then a discrete
convolution with the ePSF (which widens the effective PSF by one pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ..conventions import elliptical_radius_squared, flux_from_mag
from ..errors import RenderError
from ..profiles.base import EllipticalProfile, Profile
from .canvas import (add_patches, canvas_axes, canvas_margin, convolve_canvas, deconvolve_pixel, fine_grid,
                     grid_weights, nearest_pixel, patch_half, pixel_axis, set_patches, spread_points)
from .config import RenderConfig
from .fusion import run_fused
from .psf import PreparedPSF
from .quadrature import cell_integrals_exact, cell_integrals_gauss


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
        xs = pixel_axis(self.x_min, self.width, like)[None, None, :]
        ys = pixel_axis(self.y_min, self.height, like)[None, :, None]
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
        xs = pixel_axis(self.x_min, self.width, like) - xc
        ys = pixel_axis(self.y_min, self.height, like) - yc
        return (xs.abs()[None, :] <= box_x / 2.0) & (ys.abs()[:, None] <= box_y / 2.0)

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the region (x_c, y_c), where the sky value is defined."""
        return (self.x_min + (self.width - 1) / 2.0, self.y_min + (self.height - 1) / 2.0)


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
    cx = nearest_pixel(x0, xs, half)
    cy = nearest_pixel(y0, ys, half)
    k = torch.arange(-half, half + 1, dtype=x0.dtype, device=x0.device)
    pdx = (cx - x0)[:, None, None] + k[None, None, :]
    pdy = (cy - y0)[:, None, None] + k[None, :, None]
    patch = cell_integrals_gauss(profile, derived, pdx, pdy, 1.0, config.gl_order)
    e = config.exact_box // 2
    edges = torch.arange(-e, e + 2, dtype=x0.dtype, device=x0.device) - 0.5
    box = cell_integrals_exact(profile, derived, (cx - x0)[:, None, None] + edges[None, None, :],
                               (cy - y0)[:, None, None] + edges[None, :, None], config.edge_nodes, 1.0)
    patch = set_patches(patch, box, torch.full_like(cx, half - e).long(), torch.full_like(cx, half - e).long())
    row0 = (cy - ys[0] - half).long()
    col0 = (cx - xs[0] - half).long()
    return set_patches(image, patch, row0, col0)


def _pixel_light(profile, params, derived, xs, ys, config: RenderConfig):
    """The unit-flux light of each pixel without a PSF or with ``legacy_pixel_integration``:
    pixel integrals, or imfit's sub-pixel samples (``config.legacy_sampling``)."""
    if config.legacy_pixel_integration and config.legacy_sampling == "imfit" and profile.name in IMFIT_SUBSAMPLING:
        return _imfit_samples(profile, params, derived, xs, ys)
    return _pixel_integrals(profile, params, derived, xs, ys, config)


#: imfit's subsampling of a pixel (``RenderConfig.legacy_sampling = "imfit"``): galprof
#: profile -> (radius [pix] within which every pixel takes 20 x 20 samples, the
#: largest elliptical radius [pix] with more than one sample per pixel)
IMFIT_SUBSAMPLING = {"sersic": (4.0, 10.0), "expdisk": (3.0, 10.0)}
_IMFIT_MAX_SUBSAMPLES = 20


def _imfit_samples(profile, params, derived, xs, ys):
    """Unit-flux profile over the pixels at centres xs (W,), ys (H,) -> (B, H, W), sampled
    as imfit does: the value at the pixel centre where the elliptical radius r of the
    centre is at least 10 px, otherwise the mean of an n x n grid of sub-pixel centres,
    n = 20 for r within the profile's inner radius and int(20 / r) beyond.

    The samples of every n are computed in a box around the centre and the pixel's own n
    is selected, so the work is the same for every galaxy of the batch (no host sync).
    The profile's total-flux normalisation is kept: a pixel's value is the mean
    brightness times the pixel area (1 pix^2).
    """
    inner, outer = IMFIT_SUBSAMPLING[profile.name]
    x0, y0 = params["x"], params["y"]
    dx = xs[None, None, :] - x0[:, None, None]
    dy = ys[None, :, None] - y0[:, None, None]
    image = profile.brightness(dx, dy, derived)
    half = int(math.ceil(outer)) + 1
    cx = nearest_pixel(x0, xs, half)
    cy = nearest_pixel(y0, ys, half)
    k = torch.arange(-half, half + 1, dtype=x0.dtype, device=x0.device)
    pdx = (cx - x0)[:, None, None] + k[None, None, :]
    pdy = (cy - y0)[:, None, None] + k[None, :, None]
    q = params["q"][:, None, None]
    # imfit's radius is along the major axis: with q > 1 (axes swapped) that is q times galprof's
    radius = torch.sqrt(elliptical_radius_squared(pdx, pdy, params["pa"][:, None, None], q)) * q.clamp(min=1.0)
    count = torch.where(radius <= inner, torch.full_like(radius, _IMFIT_MAX_SUBSAMPLES),
                        torch.floor(_IMFIT_MAX_SUBSAMPLES / radius.clamp(min=1e-12)))
    count = torch.where(radius < outer, count.clamp(1, _IMFIT_MAX_SUBSAMPLES), torch.ones_like(count))
    patch = profile.brightness(pdx, pdy, derived)
    size = 2 * half + 1
    for n in range(2, _IMFIT_MAX_SUBSAMPLES + 1):
        offsets = (torch.arange(n, dtype=x0.dtype, device=x0.device) + 0.5) / n - 0.5
        # (B, size, size, n, n) sub-pixel offsets, flattened to (B, size, size n n) so that
        # the per-galaxy (B, 1, 1) set-up broadcasts
        sx = (pdx[..., None, None] + offsets[None, None, None, None, :]).expand(-1, size, size, n, n)
        sy = (pdy[..., None, None] + offsets[None, None, None, :, None]).expand(-1, size, size, n, n)
        samples = profile.brightness(sx.reshape(-1, size, size * n * n), sy.reshape(-1, size, size * n * n), derived)
        patch = torch.where(count == n, samples.reshape(-1, size, size, n * n).mean(-1), patch)
    return set_patches(image, patch, (cy - ys[0] - half).long(), (cx - xs[0] - half).long())


def _brightness(profile, dx: torch.Tensor, dy: torch.Tensor, derived: dict) -> torch.Tensor:
    """``profile.brightness`` at offsets dx (B, 1, W), dy (B, H, 1): the per-pixel chain
    that :attr:`RenderConfig.fused` compiles (:func:`galprof.render.fusion.run_fused`)."""
    return profile.brightness(dx, dy, derived)


def _outer_light(profile, params, derived, xs, ys, cx, cy, half, config: RenderConfig):
    """The light the fine grid does not take (unit-flux profile times 1 - window).

    Returns the canvas of samples at the pixel centres xs (W,), ys (H,), (B, H, W), and
    a (B, 2 half + 1, 2 half + 1) correction patch centred on the pixel (cx, cy).

    Far from the centre a radial profile is smooth on the pixel scale and is sampled at
    the pixel centres (a non-radial one is anti-aliased everywhere, see below). In a box
    of ``outer_box`` pixels around the centre, where it may still be steep, the samples
    are anti-aliased: pixel integrals (``gl_order`` nodes in the
    windowed patch, ``outer_gl_order`` elsewhere) turned into samples by the 5-tap
    inverse-pixel filter; the patch holds their difference from the plain samples. The
    two agree to fourth order in the pixel scale at the box's edge, so moving the box
    with the centre's nearest pixel leaves no visible seam.
    """
    x0, y0 = params["x"], params["y"]
    dx = xs[None, None, :] - x0[:, None, None]
    dy = ys[None, :, None] - y0[:, None, None]
    if profile.radial and profile.homogeneous_radius:
        canvas = run_fused(_brightness, profile, dx, dy, derived) if config.fused else _brightness(profile, dx, dy,
                                                                                                     derived)
    else:
        # a non-radial profile (a thin edge-on disk) keeps sub-pixel structure along its
        # whole length, and a bent, rotated or truncated one may (thin spiral arms, a sharp
        # truncation): anti-aliased samples over the whole canvas
        order = max(config.outer_gl_order, profile.min_gl_order)
        canvas = deconvolve_pixel(cell_integrals_gauss(profile, derived, dx, dy, 1.0, order))
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
    box = deconvolve_pixel(set_patches(box, patch, start, start))[:, 2:-2, 2:-2]
    # the box replaces the plain samples there (a replacement, not an added difference:
    # the plain sample at a cusp is huge and would cancel catastrophically)
    nb = box.shape[-1]
    canvas = set_patches(canvas, box, (cy - ys[0]).long() - nb // 2, (cx - xs[0]).long() - nb // 2)
    return canvas, box.new_zeros(box.shape[0], 2 * half + 1, 2 * half + 1)


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


def component_light(profile, params, xs, ys, config: RenderConfig):
    """One non-sky component of unit flux on the canvas, as light to be convolved with the ePSF.

    Args:
        profile: a point-source or elliptical profile class.
        params: {name: (B,) tensor} in user units (1-based pixels, degrees, ...).
        xs, ys: (Wc,) and (Hc,) pixel-centre coordinates of the canvas [pix]
            (:func:`galprof.render.canvas.canvas_axes`).
        config: numerical settings.

    Returns:
        (B, Hc, Wc) light per pixel for unit amplitude (see
        :func:`amplitude_scale`): for a total-magnitude profile, the fraction of its
        flux. With ``legacy_pixel_integration``, pixel integrals instead.
    """
    x0, y0 = params["x"], params["y"]
    bsz = x0.shape[0]
    if profile.kind == "point":
        half = config.psf_interpolation_order + 1
        cx = nearest_pixel(x0, xs, half)
        cy = nearest_pixel(y0, ys, half)
        one = x0.new_ones(bsz, 1, 1)
        patch = spread_points((x0 - cx)[:, None], (y0 - cy)[:, None], one, config.psf_interpolation_order, half)
        canvas = x0.new_zeros(bsz, ys.shape[0], xs.shape[0])
    else:
        derived = profile.setup({k: v[:, None, None] for k, v in params.items()})
        if config.legacy_pixel_integration:
            return _pixel_light(profile, params, derived, xs, ys, config)
        half = patch_half(config)
        cx = nearest_pixel(x0, xs, half)
        cy = nearest_pixel(y0, ys, half)
        canvas, patch = _outer_light(profile, params, derived, xs, ys, cx, cy, half, config)
        patch = patch + _fine_light(profile, params, derived, cx, cy, half, config)
    return add_patches(canvas, patch, (cy - ys[0] - half).long(), (cx - xs[0] - half).long())


def sky_image(profile, params, frame: Frame, like: torch.Tensor) -> torch.Tensor:
    """A sky component over the frame, (B, H, W) [ADU]: the sum of its parameters times
    their basis images (``profile.sky_basis``: 1, x - x_c or y - y_c [pix], with
    (x_c, y_c) the centre of the fit region, see :meth:`Frame.sky_offsets`).

    ``params``: {name: (B,) tensor}; ``like``: a (B, ...) tensor giving the batch size,
    dtype and device. Not convolved with the PSF."""
    dx, dy = frame.sky_offsets(like)
    bsz = like.shape[0]
    total = like.new_zeros(bsz, frame.height, frame.width)
    for name, basis in profile.sky_basis.items():
        value = params[name][:, None, None]
        total = total + (value if basis == "1" else value * (dx if basis == "x" else dy))
    return total


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
    xs, ys = canvas_axes(frame, margin, first, fft_friendly=psf is not None)
    bsz = first.shape[0]
    lights, fluxes = [], []
    sky = None
    for profile, params in components:
        if profile.kind == "sky":
            term = sky_image(profile, params, frame, first)
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
            lights.append(_pixel_light(profile, params, derived, xs, ys, config))
        else:
            lights.append(component_light(profile, params, xs, ys, config))
    if lights:
        light = torch.stack(lights, dim=1)
        if psf is not None:
            convolved = convolve_canvas(light, psf)
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
