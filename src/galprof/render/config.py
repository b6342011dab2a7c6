"""Accuracy/speed settings of the renderer, in one frozen value object (like GalSim's GSParams)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RenderConfig:
    """Numerical settings of :func:`galprof.render.render_model`.

    Attributes:
        legacy_pixel_integration: integrate the galaxy over each pixel and then convolve
            with the PSF, as GALFIT and imfit do. An empirical PSF already contains the
            pixel response, so this widens the PSF by a pixel; off by default.
        legacy_sampling: how ``legacy_pixel_integration`` takes a pixel's light:
            ``"integrate"`` (default: the pixel integral, to quadrature accuracy) or
            ``"imfit"`` (imfit's subsampling of Sérsic and exponential components: the mean
            of an n x n grid of pixel-centred sub-pixel samples, n = 20 within an
            elliptical radius of 4 px (Sérsic) or 3 px (exponential) of the centre,
            int(20 / r) out to r = 10 px, and the value at the pixel centre beyond; other
            profiles are integrated). For reproducing imfit's own fits.
        gl_order: Gauss-Legendre nodes per axis per cell near the centre (a patch of
            ``fine_box + 4`` pixels) and in the fine cells.
        outer_gl_order: Gauss-Legendre nodes per axis per pixel elsewhere (without a PSF
            or with ``legacy_pixel_integration``: everywhere; with a PSF: in the box of
            ``outer_box`` pixels around the centre, beyond which the outer light is
            sampled at pixel centres).
        outer_box: odd size [pix] of the box around each component's centre in which,
            with a PSF, the outer light is anti-aliased (pixel integrals and the
            inverse-pixel filter) rather than sampled.
        fine_factor: odd sub-sampling factor of the fine grid centred on each component.
        fine_box: odd size [pix] of the fine box centred on each component.
        fine_inner_box: odd size [pix] of its central part cut into ``fine_factor``
            cells per pixel; the rest of the fine box has ``coarse_factor`` cells per
            pixel (``fine_inner_box`` = ``fine_box``: one level).
        coarse_factor: cells per pixel of the fine box outside ``fine_inner_box``.
        window_inner, window_outer: radii [pix] between which the smooth window that
            hands light from the fine box to the pixel grid falls from 1 to 0.
        exact_box: odd size [pix] of the box of pixels around the centre whose integrals
            are computed exactly (Green's theorem on the enclosed flux) without a PSF.
        exact_core: odd number of fine cells (per axis) around the centre whose
            integrals are computed exactly with a PSF.
        edge_nodes: quadrature nodes on each cell edge for the exact integrals.
        psf_interpolation_order: order a of the Lanczos kernel interpolating the ePSF to
            sub-pixel offsets.
        fused: evaluate each component's light canvas and its analytic derivatives (the
            elementwise chain over every canvas pixel, in the Jacobian passes) as one
            ``torch.compile``-d kernel (inductor: C++/OpenMP on the CPU, Triton on CUDA)
            instead of one operation at a time. The same numbers to float rounding; the
            first call of each process compiles (tens of seconds on a CPU; cached on
            disk by torch for later processes). Falls back to the eager path, with a
            warning, where compilation fails (:func:`galprof.render.fusion.fusion_status`).
    """

    legacy_pixel_integration: bool = False
    legacy_sampling: str = "integrate"
    gl_order: int = 4
    outer_gl_order: int = 2
    outer_box: int = 21
    fine_factor: int = 5
    fine_box: int = 7
    fine_inner_box: int = 3
    coarse_factor: int = 2
    window_inner: float = 1.2
    window_outer: float = 3.3
    exact_box: int = 5
    exact_core: int = 3
    edge_nodes: int = 24
    psf_interpolation_order: int = 8
    fused: bool = False

    def __post_init__(self):
        for name in ("fine_factor", "fine_box", "fine_inner_box", "exact_box", "exact_core", "outer_box"):
            value = getattr(self, name)
            if value < 1 or value % 2 == 0:
                raise ValueError(f"RenderConfig.{name} must be a positive odd integer, got {value}")
        if not 0 < self.window_inner < self.window_outer <= self.fine_box / 2:
            raise ValueError("RenderConfig needs 0 < window_inner < window_outer <= fine_box / 2")
        if not self.exact_core <= self.fine_inner_box * self.fine_factor or self.fine_inner_box > self.fine_box:
            raise ValueError("RenderConfig needs exact_core <= fine_inner_box * fine_factor and "
                             "fine_inner_box <= fine_box")
        if self.coarse_factor < 1:
            raise ValueError("RenderConfig needs coarse_factor >= 1")
        if self.outer_box < self.fine_box + 4:
            raise ValueError("RenderConfig needs outer_box >= fine_box + 4")
        if self.legacy_sampling not in ("integrate", "imfit"):
            raise ValueError(f"RenderConfig.legacy_sampling is 'integrate' or 'imfit', got {self.legacy_sampling!r}")
        if self.gl_order < 1 or self.outer_gl_order < 1 or self.edge_nodes < 2:
            raise ValueError("RenderConfig needs gl_order, outer_gl_order >= 1 and edge_nodes >= 2")

    def with_(self, **changes) -> "RenderConfig":
        """A copy with some settings changed."""
        return replace(self, **changes)
