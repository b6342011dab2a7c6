"""chi^2 likelihood pieces: weights from sigma and mask, and chi^2.

Pure functions of tensors, batch first. A pixel takes part in the fit when its mask is
0 (GALFIT: non-zero = bad), its data and sigma are finite and sigma > 0. Pixels failing
the last two are masked with a warning that counts them, so chi^2 is never NaN; a galaxy
left with no usable pixel is an error. (GALFIT's sigma recipe for ``C) none`` lives in
:func:`galprof.io.fits_io.sigma_from_header`.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


class LikelihoodError(ValueError):
    """The data cannot be fitted (e.g. every pixel of a galaxy is masked)."""


@dataclass(frozen=True)
class PreparedData:
    """Data, weights and bookkeeping ready for the optimiser.

    Attributes:
        data: (B, H, W) with unusable pixels set to 0.
        weight: (B, H, W) 1 / sigma for pixels in the fit, 0 elsewhere.
        n_pixels: (B,) number of pixels in the fit.
    """

    data: torch.Tensor
    weight: torch.Tensor
    n_pixels: torch.Tensor


def prepare_data(image, sigma, mask, *, dtype=torch.float32, device=None, names=None) -> PreparedData:
    """Combine image, sigma and mask into data and weights, masking unusable pixels.

    Args:
        image: (H, W) or (B, H, W) array [ADU].
        sigma: same shape [ADU], or None for unit weights.
        mask: same shape, non-zero = bad, or None.
        names: optional per-galaxy labels used in warnings and errors.

    Warns:
        UserWarning counting NaN/infinite data or sigma pixels and sigma <= 0 pixels.

    Raises:
        LikelihoodError: a galaxy has no usable pixel; shapes disagree.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3:
        raise LikelihoodError(f"the image must be 2-D or a (B, H, W) stack, got shape {np.shape(image)}")
    if sigma is not None and np.shape(sigma)[-2:] != img.shape[-2:]:
        raise LikelihoodError(f"sigma image shape {np.shape(sigma)} does not match the image {img.shape[-2:]}")
    sig = np.ones_like(img) if sigma is None else np.broadcast_to(np.asarray(sigma, dtype=np.float64), img.shape)
    bad = np.zeros(img.shape, dtype=bool)
    if mask is not None:
        if np.shape(mask)[-2:] != img.shape[-2:]:
            raise LikelihoodError(f"mask shape {np.shape(mask)} does not match the image {img.shape[-2:]}")
        bad |= np.broadcast_to(np.asarray(mask) != 0, img.shape)
    bad_data = ~np.isfinite(img) & ~bad
    bad_sigma = (~np.isfinite(sig) | ~(sig > 0)) & ~bad & ~bad_data
    label = (lambda b: names[b]) if names is not None else (lambda b: f"galaxy {b}")
    for b in range(img.shape[0]):
        nd, ns = int(bad_data[b].sum()), int(bad_sigma[b].sum())
        if nd or ns:
            warnings.warn(
                f"{label(b)}: masking {nd} pixel(s) with NaN/infinite data and {ns} pixel(s) with "
                f"NaN/infinite or non-positive sigma", stacklevel=2,
            )
    bad |= bad_data | bad_sigma
    n_good = (~bad).reshape(img.shape[0], -1).sum(-1)
    if (n_good == 0).any():
        b = int(np.flatnonzero(n_good == 0)[0])
        raise LikelihoodError(f"{label(b)}: every pixel is masked or unusable; nothing to fit")
    weight = np.where(bad, 0.0, 1.0 / np.where(bad, 1.0, sig))
    data = np.where(bad, 0.0, img)
    return PreparedData(
        torch.as_tensor(data, dtype=dtype, device=device),
        torch.as_tensor(weight, dtype=dtype, device=device),
        torch.as_tensor(n_good, device=device),
    )


def chi2(model: torch.Tensor, data: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum(((data - model) * weight)^2) over each image. Shapes (B, H, W) -> (B,)."""
    return (((data - model) * weight) ** 2).flatten(1).sum(-1)
