"""Covariance of the free parameters from the Jacobian at the optimum: (J^T W J)^-1.

J is the Jacobian of the PSF-convolved model with respect to the free parameters in
user units (pixels, magnitudes, degrees...), already multiplied by 1/sigma, so the
covariance is in user units too (see :mod:`galprof.conventions`: 1-based pixel
centres, PA in degrees CCW from +y, R_e along the major axis, q = b/a). Only (B, N, F)
Jacobians and (B, F, F) matrices are formed, never an N x N pixel matrix.

Two versions are reported by :func:`galprof.fit`:

* raw: C = (J^T W J)^-1, right when sigma is the true per-pixel noise, the noise is
  white and the model (PSF included) is right;
* scaled: C chi^2_nu, the usual correction when sigma is known only up to a factor
  (errors * sqrt(chi^2_nu)). It does not repair correlated noise or a wrong model
  (see docs/uncertainties.md for the measured coverage).

A singular or ill-conditioned normal matrix (condition number of the unit-diagonal
matrix D^-1/2 J^T W J D^-1/2 above ``max_condition``) gives NaN for every entry of that
galaxy and sets its flag; it never raises and never returns a silently huge number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CovarianceEstimate:
    """Covariance of a batch from :func:`covariance_estimate`.

    Attributes:
        covariance: (B, F, F) float64 (J^T W J)^-1 [user units^2]; NaN rows/columns for
            undefined parameters, all NaN for a flagged galaxy.
        undefined: (B, F) bool, parameters whose variance is undefined.
        condition: (B,) condition number of the unit-diagonal normal matrix (inf when
            singular).
        flag: (B,) bool, the galaxy's matrix is singular, ill-conditioned or non-finite.
    """

    covariance: torch.Tensor
    undefined: torch.Tensor
    condition: torch.Tensor
    flag: torch.Tensor


def default_max_condition(dtype: torch.dtype) -> float:
    """Largest accepted condition number for a Jacobian computed in ``dtype``: 0.05 / eps,
    so that rounding in J (relative ~eps) moves no variance by more than ~5 %
    (float32: 4.2e5; float64: 2.3e14)."""
    return 0.05 / torch.finfo(dtype).eps


def covariance_estimate(weighted_jacobian: torch.Tensor, max_condition: float | None = None) -> CovarianceEstimate:
    """(B, N, F) weighted Jacobian d(model / sigma)/d(parameters) -> :class:`CovarianceEstimate`.

    Args:
        weighted_jacobian: (B, N, F), the model's Jacobian times 1/sigma per pixel
            (0 for masked pixels).
        max_condition: condition number above which a galaxy is flagged; default
            :func:`default_max_condition` of the Jacobian's dtype.

    Shape:
        covariance (B, F, F); undefined (B, F); condition, flag (B,).
    """
    if weighted_jacobian.ndim != 3:
        raise ValueError(f"the weighted Jacobian must be (B, N, F), got shape {tuple(weighted_jacobian.shape)}")
    if max_condition is None:
        max_condition = default_max_condition(weighted_jacobian.dtype)
    jac = weighted_jacobian.to(torch.float64)
    normal = jac.transpose(1, 2) @ jac
    bsz, n_free = normal.shape[0], normal.shape[-1]
    if n_free == 0:
        empty = normal.new_zeros(bsz, 0, 0)
        return CovarianceEstimate(empty, torch.zeros(bsz, 0, dtype=torch.bool, device=normal.device),
                                  normal.new_ones(bsz), torch.zeros(bsz, dtype=torch.bool, device=normal.device))
    diag = torch.diagonal(normal, dim1=-2, dim2=-1)
    finite = torch.isfinite(normal).flatten(1).all(-1)
    zero_column = (diag <= 0).any(-1)
    # scale to unit diagonal: the condition number of this matrix measures degeneracy
    # (correlations), not the parameters' units
    d = torch.sqrt(diag.clamp(min=1e-300))
    scaled = normal / (d[:, :, None] * d[:, None, :])
    scaled = torch.where(finite[:, None, None], scaled, torch.eye(n_free, dtype=scaled.dtype, device=scaled.device))
    eig = torch.linalg.eigvalsh(scaled)
    lowest, highest = eig[:, 0], eig[:, -1]
    condition = torch.where(lowest > 0, highest / lowest.clamp(min=1e-300), torch.full_like(lowest, float("inf")))
    condition = torch.where(finite & ~zero_column, condition, torch.full_like(condition, float("inf")))
    inverse, info = torch.linalg.inv_ex(scaled)
    cov = inverse / (d[:, :, None] * d[:, None, :])
    var = torch.diagonal(cov, dim1=-2, dim2=-1)
    flag = (info != 0) | ~finite | zero_column | ~(condition <= max_condition)
    undefined = flag[:, None] | ~torch.isfinite(var) | (var <= 0)
    cov = torch.where(undefined[:, :, None] | undefined[:, None, :], torch.full_like(cov, float("nan")), cov)
    flag = flag | undefined.any(-1)
    return CovarianceEstimate(cov, undefined, condition, flag)


def covariance_from_jacobian(weighted_jacobian: torch.Tensor, max_condition: float | None = None):
    """(B, N, F) weighted Jacobian -> ((B, F, F) covariance, (B, F) bool 'undefined').

    See :func:`covariance_estimate` (this keeps only its first two fields).
    """
    estimate = covariance_estimate(weighted_jacobian, max_condition)
    return estimate.covariance, estimate.undefined


def correlation_matrix(covariance) -> np.ndarray:
    """(..., P, P) covariance -> correlation C_ij / sqrt(C_ii C_jj); rows and columns of
    parameters with zero variance (fixed ones) are 0 with 1 on the diagonal, NaN stays NaN."""
    cov = np.asarray(covariance, dtype=np.float64)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / (sd[..., :, None] * sd[..., None, :])
    zero = sd == 0
    corr = np.where(zero[..., :, None] | zero[..., None, :], 0.0, corr)
    eye = np.broadcast_to(np.eye(cov.shape[-1], dtype=bool), cov.shape)
    return np.where(eye & ~np.isnan(corr), 1.0, corr)


def scaled_errors(errors, chi2_nu) -> np.ndarray:
    """(B, P) errors scaled by sqrt(chi^2_nu) (B,): the errors if sigma were wrong by a
    constant factor. Always scaled (also for chi^2_nu < 1)."""
    return np.asarray(errors) * np.sqrt(np.asarray(chi2_nu, dtype=np.float64))[:, None]
