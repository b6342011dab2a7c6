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

The unit-diagonal scaling makes the test blind to a column that is tiny but not zero
(a component whose flux fell to ~0 has Jacobian columns ~1e-19 of a normal one: scaled,
they look healthy, and its variances come out at 1e16 or more). Such columns are found
by the caller, who knows the parameters' physical scale (:mod:`galprof.fitting.flags`:
a component's signal against the noise), and passed as ``held``: coordinates the data
do not determine (also those on a bound). They are taken out of the inversion (the
other entries are the covariance with them held where they are), reported NaN, and
flag the galaxy.
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
        flag: (B,) bool, the galaxy's matrix is singular, ill-conditioned or non-finite,
            or some of its coordinates were held (their entries NaN).
        degenerate: (B, F) bool, the coordinates that make a flagged matrix singular: its
            zero columns, else those with at least half the largest weight in the
            eigenvector of the unit-diagonal matrix's smallest eigenvalue (the direction
            the data do not constrain), or every coordinate of a non-finite matrix.
            Held coordinates are not among them.
    """

    covariance: torch.Tensor
    undefined: torch.Tensor
    condition: torch.Tensor
    flag: torch.Tensor
    degenerate: torch.Tensor


def default_max_condition(dtype: torch.dtype) -> float:
    """Largest accepted condition number for a Jacobian computed in ``dtype``: 0.05 / eps,
    so that rounding in J (relative ~eps) moves no variance by more than ~5 %
    (float32: 4.2e5; float64: 2.3e14)."""
    return 0.05 / torch.finfo(dtype).eps


def covariance_estimate(weighted_jacobian: torch.Tensor, max_condition: float | None = None,
                        held: torch.Tensor | None = None) -> CovarianceEstimate:
    """(B, N, F) weighted Jacobian d(model / sigma)/d(parameters) -> :class:`CovarianceEstimate`.

    Args:
        weighted_jacobian: (B, N, F), the model's Jacobian times 1/sigma per pixel
            (0 for masked pixels).
        max_condition: condition number above which a galaxy is flagged; default
            :func:`default_max_condition` of the Jacobian's dtype.
        held: optional (B, F) bool, coordinates the data do not determine (a vanished
            component's, one on a bound): their rows and columns are replaced by the
            identity's before the inversion, so the other entries are the covariance
            with them held at their values; their own entries are NaN and the galaxy is
            flagged. Galaxies without held coordinates are computed exactly as without
            ``held``.

    Shape:
        covariance (B, F, F); undefined, degenerate (B, F); condition, flag (B,).
    """
    if weighted_jacobian.ndim != 3:
        raise ValueError(f"the weighted Jacobian must be (B, N, F), got shape {tuple(weighted_jacobian.shape)}")
    if max_condition is None:
        max_condition = default_max_condition(weighted_jacobian.dtype)
    jac = weighted_jacobian.to(torch.float64)
    normal = jac.transpose(1, 2) @ jac
    bsz, n_free = normal.shape[0], normal.shape[-1]
    no = torch.zeros(bsz, n_free, dtype=torch.bool, device=normal.device)
    if n_free == 0:
        empty = normal.new_zeros(bsz, 0, 0)
        return CovarianceEstimate(empty, no, normal.new_ones(bsz), torch.zeros(bsz, dtype=torch.bool,
                                                                               device=normal.device), no)
    held = no if held is None else held.to(device=normal.device, dtype=torch.bool)
    eye = torch.eye(n_free, dtype=normal.dtype, device=normal.device)
    kept = ~held[:, :, None] & ~held[:, None, :]
    normal = torch.where(kept, normal, eye)
    diag = torch.diagonal(normal, dim1=-2, dim2=-1)
    finite = torch.isfinite(normal).flatten(1).all(-1)
    zero_columns = diag <= 0
    zero_column = zero_columns.any(-1)
    # scale to unit diagonal: the condition number of this matrix measures degeneracy
    # (correlations), not the parameters' units
    d = torch.sqrt(diag.clamp(min=1e-300))
    scaled = normal / (d[:, :, None] * d[:, None, :])
    scaled = torch.where(finite[:, None, None], scaled, eye)
    eig, vectors = torch.linalg.eigh(scaled)
    lowest, highest = eig[:, 0], eig[:, -1]
    condition = torch.where(lowest > 0, highest / lowest.clamp(min=1e-300), torch.full_like(lowest, float("inf")))
    condition = torch.where(finite & ~zero_column, condition, torch.full_like(condition, float("inf")))
    inverse, info = torch.linalg.inv_ex(scaled)
    cov = inverse / (d[:, :, None] * d[:, None, :])
    var = torch.diagonal(cov, dim1=-2, dim2=-1)
    singular = (info != 0) | ~finite | zero_column | ~(condition <= max_condition)
    undefined = singular[:, None] | ~torch.isfinite(var) | (var <= 0) | held
    cov = torch.where(undefined[:, :, None] | undefined[:, None, :], torch.full_like(cov, float("nan")), cov)
    flag = singular | undefined.any(-1)
    # which coordinates span the singular direction
    weight = vectors[:, :, 0].abs()
    null = weight >= 0.5 * weight.max(-1, keepdim=True).values
    null = torch.where(zero_column[:, None], zero_columns, null)
    null = torch.where(finite[:, None], null, torch.ones_like(null))
    degenerate = ((singular[:, None] & null) | (~singular[:, None] & undefined)) & ~held
    return CovarianceEstimate(cov, undefined, condition, flag, degenerate)


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
