"""The set-up shared by every fit: inputs checked and put on the device, the frame, the
prepared PSF, the data and weights, and the parameter layout with its starting values.

Coordinates are 1-based pixel centres of the *full* image; ``origin`` gives the
coordinates of the first pixel of the arrays passed in (GALFIT's fit region corner).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model import Model, ModelError
from ..render.psf import prepare_psf, stack_psfs
from ..render.scene import Frame
from .layout import ParameterLayout
from .likelihood import prepare_data


@dataclass(frozen=True)
class FitSetup:
    """Everything :func:`fit` prepares before optimising (also used by
    :mod:`galprof.uncertainty` to re-evaluate the model at other parameters).

    Attributes:
        image: (B, H, W) float64 data (padding zeroed when ``region_sizes`` is given).
        batch_size: B.
        frame: the :class:`galprof.render.scene.Frame` (origin, zeropoint, EXPTIME, regions).
        psf: the prepared PSF (or None).
        data: :class:`galprof.fitting.likelihood.PreparedData` (data, 1/sigma weights, pixel counts).
        layout: the :class:`galprof.fitting.layout.ParameterLayout` of the model.
        layout_bounds: default ((x_lo, x_hi), (y_lo, y_hi)) bounds of centres [pix, 1-based].
        initial: (B, P) starting values (moved inside constraint ranges).
    """

    image: np.ndarray
    batch_size: int
    frame: Frame
    psf: object
    data: object
    layout: ParameterLayout
    layout_bounds: tuple
    initial: np.ndarray


def prepare_fit(model: Model, image, *, sigma=None, mask=None, psf=None, psf_oversampling: int = 1,
                origin: tuple[int, int] = (1, 1), zeropoint=0.0, exptime=1.0,
                convolution_box: tuple[int, int] | None = None, region_sizes=None,
                pixel_scale: tuple[float, float] = (1.0, 1.0), dtype: torch.dtype = torch.float32, device=None,
                names=None) -> FitSetup:
    """Check and prepare the inputs of :func:`fit` (same arguments); see :class:`FitSetup`."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    bsz, height, width = img.shape
    model_batch = model.batch_size()
    if model_batch is not None and model_batch != bsz:
        raise ModelError(f"the model has parameters for {model_batch} galaxies but {bsz} images were given")
    def per_galaxy(value, what):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            return float(arr)
        if arr.shape != (bsz,):
            raise ModelError(f"{what} must be a number or have one value per galaxy ({bsz}), got shape {arr.shape}")
        return torch.as_tensor(arr, dtype=dtype, device=device)

    sizes_t = None
    if region_sizes is not None:
        sizes = np.asarray(region_sizes, dtype=np.int64).reshape(bsz, 2)
        if (sizes < 1).any() or (sizes[:, 0] > width).any() or (sizes[:, 1] > height).any():
            raise ModelError(f"region_sizes must lie within the {width} x {height} arrays")
        sizes_t = torch.as_tensor(sizes, device=device)
        outside = ((np.arange(width)[None, None, :] >= sizes[:, 0, None, None])
                   | (np.arange(height)[None, :, None] >= sizes[:, 1, None, None]))
        mask = outside if mask is None else (np.asarray(mask).reshape(img.shape) != 0) | outside
        # padding is not data: give it harmless values so that it raises no warnings
        img = np.where(outside, 0.0, img)
        if sigma is not None:
            sigma = np.where(outside, 1.0, np.asarray(sigma, dtype=np.float64).reshape(img.shape))
    frame = Frame(int(origin[0]), int(origin[1]), width, height, per_galaxy(zeropoint, "zeropoint"),
                  per_galaxy(exptime, "exptime"),
                  None if convolution_box is None else (int(convolution_box[0]), int(convolution_box[1])), sizes_t,
                  (float(pixel_scale[0]), float(pixel_scale[1])))
    prepared_psf = None
    if convolution_box is not None and min(convolution_box) == 0:
        # a box with no pixels convolves nothing (GALFIT's reading of 'I) 30.0 30.0' is 30 x 0)
        psf = None
    if psf is not None:
        max_shape = (2 * height + 1, 2 * width + 1)
        if isinstance(psf, (list, tuple)) or np.ndim(psf) == 3:
            if len(psf) != bsz:
                raise ModelError(f"{len(psf)} PSF images given for {bsz} galaxies")
            prepared_psf = stack_psfs([prepare_psf(p, oversampling=psf_oversampling, max_shape=max_shape,
                                                   source=f"PSF of galaxy {b}", dtype=dtype, device=device)
                                       for b, p in enumerate(psf)])
        else:
            prepared_psf = prepare_psf(psf, oversampling=psf_oversampling, max_shape=max_shape, dtype=dtype,
                                       device=device)
    data = prepare_data(img, sigma, mask, dtype=dtype, device=device, names=names)
    x_lo, y_lo = frame.x_min - 0.5, frame.y_min - 0.5
    layout_bounds = ((x_lo, x_lo + width), (y_lo, y_lo + height))
    layout = ParameterLayout(model, layout_bounds)
    initial = layout.initial_values(bsz)
    layout.check_inside_bounds(initial)
    initial = layout.move_inside_constraints(initial)

    return FitSetup(img, bsz, frame, prepared_psf, data, layout, layout_bounds, initial)
