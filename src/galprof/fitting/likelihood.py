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

from ..errors import LikelihoodError


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


@dataclass(frozen=True)
class PixelStatistic:
    """A fit statistic other than chi^2 with fixed sigmas, written as a sum of squares
    sum(rho_i^2) of per-pixel terms rho(d, m) so that Levenberg-Marquardt applies.

    Kinds (imfit's names):

    * ``poisson-mlr``: the Poisson maximum-likelihood-ratio statistic on counts,
      2 sum(m - d + d ln(d / m)) with d = (data + sky) g, m = (model + sky) g, g the
      effective gain [e-/ADU]; each term is >= 0, rho = sign(m - d) sqrt(term).
      Negative counts are treated as 0 (the d ln d term vanishes).
    * ``cash``: the Cash statistic 2 sum(m - d ln m). It differs from ``poisson-mlr``
      by a term of the data alone, so the same rho is minimised; only the reported value
      differs.
    * ``model-chi2``: chi^2 with the sigmas of the model, sigma^2 = (model + sky)/g +
      N rn^2 / g^2 [ADU^2]; rho = (m - d) / sigma(m).

    Attributes:
        kind: one of the above.
        gain: effective gain g [e-/ADU] (GAIN x NCOMBINED x EXPTIME).
        sky: sky level [ADU] subtracted from the data before (imfit's ORIGINAL_SKY).
        read_noise: [e-] (``model-chi2`` only).
        ncombined: N, images averaged (``model-chi2`` only).
    """

    kind: str
    gain: float = 1.0
    sky: float = 0.0
    read_noise: float = 0.0
    ncombined: float = 1.0

    def __post_init__(self):
        if self.kind not in ("poisson-mlr", "cash", "model-chi2"):
            raise LikelihoodError(f"unknown fit statistic {self.kind!r}")
        if not self.gain > 0:
            raise LikelihoodError(f"the {self.kind} statistic needs a positive gain, got {self.gain}")

    def rho(self, data: torch.Tensor, model: torch.Tensor, good: torch.Tensor):
        """(rho, d rho / d model) per pixel, both (B, H, W); zero where ``good`` is False."""
        g = self.gain
        if self.kind == "model-chi2":
            var = ((model + self.sky) / g + self.ncombined * self.read_noise**2 / g**2).clamp(min=1e-30)
            sd = torch.sqrt(var)
            rho = (model - data) / sd
            drho = 1.0 / sd - (model - data) / (2.0 * var * sd * g)
        else:
            # float64, and series near m = d: m - d + d ln(d/m) cancels badly in float32
            out_dtype = torch.promote_types(model.dtype, data.dtype)
            counts = ((data.double() + self.sky) * g).clamp(min=0.0)
            expected = ((model.double() + self.sky) * g).clamp(min=1e-30)
            safe_counts = counts.clamp(min=1e-30)
            x = (expected - counts) / safe_counts  # m = d (1 + x)
            small = x.abs() < 1e-4
            x_small = torch.where(small, x, torch.zeros_like(x))
            series = 1.0 - 2.0 * x_small / 3.0 + x_small**2 / 2.0  # 2 (x - log1p x) / x^2
            x_big = torch.where(small, torch.ones_like(x), x)
            term = torch.where(small, 0.5 * counts * x_small**2 * series, counts * (x_big - torch.log1p(x_big)))
            term = torch.where(counts > 0, term, expected)  # d = 0: the term is m
            rho = torch.sign(expected - counts) * torch.sqrt(2.0 * term.clamp(min=0.0))
            # d rho / d m = (1 - d/m) / rho, with its finite limit 1 / sqrt(m) near m = d
            drho_small = 1.0 / ((1.0 + x_small) * torch.sqrt(safe_counts * series))
            drho_big = (1.0 - counts / expected) / torch.where(rho == 0, torch.ones_like(rho), rho)
            drho = g * torch.where(small & (counts > 0), drho_small, drho_big)
            rho, drho = rho.to(out_dtype), drho.to(out_dtype)
        zero = torch.zeros_like(rho)
        return torch.where(good, rho, zero), torch.where(good, drho, zero)

    def fisher_scale(self, model: torch.Tensor, good: torch.Tensor) -> torch.Tensor:
        """Per-pixel factor s with Fisher information sum (s dm/dtheta)^2: the expected
        (not the observed) curvature, for the covariance. Poisson: g / sqrt(m_counts);
        model-based chi^2: 1 / sigma(model)."""
        m = model.double()
        if self.kind == "model-chi2":
            var = ((m + self.sky) / self.gain + self.ncombined * self.read_noise**2 / self.gain**2).clamp(min=1e-30)
            scale = 1.0 / torch.sqrt(var)
        else:
            scale = self.gain / torch.sqrt(((m + self.sky) * self.gain).clamp(min=1e-30))
        return torch.where(good, scale, torch.zeros_like(scale)).to(model.dtype)

    def value(self, data: torch.Tensor, model: torch.Tensor, good: torch.Tensor) -> torch.Tensor:
        """(B,) the statistic as imfit reports it."""
        rho, _ = self.rho(data, model, good)
        total = (rho**2).flatten(1).sum(-1)
        if self.kind == "cash":
            counts = ((data + self.sky) * self.gain).clamp(min=0.0)
            d_log_d = torch.where(counts > 0, counts * torch.log(counts.clamp(min=1e-30)), torch.zeros_like(counts))
            total = total + 2.0 * torch.where(good, counts - d_log_d, torch.zeros_like(counts)).flatten(1).sum(-1)
        return total
