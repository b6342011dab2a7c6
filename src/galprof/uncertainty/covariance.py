"""Covariance of the free parameters from the Jacobian at the optimum: (J^T W J)^-1.

J is the Jacobian of the PSF-convolved model with respect to the free parameters in
user units (pixels, magnitudes, degrees...), already multiplied by 1/sigma, so the
covariance is in user units too. Only (B, N, F) Jacobians and (B, F, F) matrices are
formed, never an N x N pixel matrix.
"""

from __future__ import annotations

import torch


def covariance_from_jacobian(weighted_jacobian: torch.Tensor):
    """(B, N, F) weighted Jacobian -> ((B, F, F) covariance, (B, F) bool 'undefined').

    A parameter's error is undefined (flagged) when the normal matrix is singular or its
    variance comes out non-finite or non-positive; such entries are NaN.
    """
    jac = weighted_jacobian.to(torch.float64)
    normal = jac.transpose(1, 2) @ jac
    # scale to unit diagonal for a well-conditioned inverse
    d = torch.sqrt(torch.diagonal(normal, dim1=-2, dim2=-1).clamp(min=1e-300))
    scaled = normal / (d[:, :, None] * d[:, None, :])
    inverse, info = torch.linalg.inv_ex(scaled)
    cov = inverse / (d[:, :, None] * d[:, None, :])
    var = torch.diagonal(cov, dim1=-2, dim2=-1)
    undefined = (info != 0)[:, None] | ~torch.isfinite(var) | (var <= 0)
    cov = torch.where(undefined[:, :, None] | undefined[:, None, :], torch.full_like(cov, float("nan")), cov)
    return cov, undefined
