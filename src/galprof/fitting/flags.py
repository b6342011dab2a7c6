"""Honest flags of a finished fit: components that vanished and centres that left the fit region.

A least-squares fit can end in a state that its chi^2 test calls converged although
part of the model no longer describes anything: LM switches a component off (its
magnitude runs to +30 or +65, its flux to ~0) or pushes it out of the frame, and from
there it never comes back, because every Jacobian column of that component is ~0. The
covariance's conditioning test on the unit-diagonal normal matrix cannot see this (see
:mod:`galprof.fitting.covariance`). The tests here use the parameters' physical scale:

* **a vanished component**: its *signal* S_c = sqrt(sum_pixels (m_c w)^2) is the
  matched-filter signal-to-noise ratio of component c's model image m_c (PSF-convolved,
  over the fit region's unmasked pixels, w = 1/sigma or the statistic's Fisher weight):
  the number of sigmas by which the data could tell the component from nothing if every
  other parameter were known. The component has vanished when S_c < :data:`VANISHED_SNR`
  (0.1) times the noise scale (1 with a sigma image or a likelihood statistic;
  sqrt(chi^2/nu), the residuals' own scatter, with unit weights), or when S_c <
  :data:`VANISHED_FRACTION` (1e-6) times the largest S of the model's components (at
  float32 rendering such a component is below the model's rounding in every pixel).
  A tenth of a sigma in total is far below anything a fit can measure, so a component
  that is merely faint (S of a few) is never flagged; a switched-off one (S ~ 1e-10 or
  less) always is. Only components with at least one parameter that varies are tested.
* **a centre off the fit region**: a varying ``x`` or ``y`` outside the region's pixels
  or within :data:`EDGE_MARGIN` (0.001 px) of its outer edge (the default bounds of a
  centre are that edge, so a centre pushed out ends on it). With ``region_sizes`` the
  region is each galaxy's own.

Positions are 1-based pixel coordinates of the full image (pixel centres at integers, so
the region of width W starting at x_min spans x_min - 0.5 .. x_min - 0.5 + W).
"""

from __future__ import annotations

import numpy as np
import torch

#: a component whose matched-filter signal is below this many noise sigmas has vanished
VANISHED_SNR = 0.1
#: ... or below this fraction of the brightest component's signal
VANISHED_FRACTION = 1e-6
#: a centre closer than this [pix] to the fit region's outer edge (or beyond it) is off the region
EDGE_MARGIN = 1e-3


def component_signal(unit_images: torch.Tensor, amplitudes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Matched-filter signal of each component, S_c = |a_c| sqrt(sum_pixels (u_c w)^2) [sigma].

    Args:
        unit_images: (B, C, H, W) each (non-sky) component's image at unit amplitude.
        amplitudes: (B, C) what each unit image is multiplied by (a total flux [ADU] for
            a total-magnitude profile).
        weight: (B, H, W) per-pixel weight: 1/sigma [1/ADU] for chi^2, the Fisher weight
            of a likelihood statistic; 0 outside the fit.

    Returns:
        (B, C) float64 signals (the amplitude is applied in float64, so a component
        switched off to ~1e-20 of its flux gives ~1e-20, not an underflowed 0 or NaN).

    Shape:
        (B, C).
    """
    norm = torch.linalg.vector_norm(unit_images * weight[:, None], dim=(-2, -1))  # one (B, C, H, W) temporary
    return amplitudes.to(torch.float64).abs() * norm.to(torch.float64)


def vanished_components(signal: torch.Tensor, noise: torch.Tensor, tested: torch.Tensor) -> torch.Tensor:
    """(B, C) bool: components whose signal fell below the thresholds (see the module docstring).

    Args:
        signal: (B, C) from :func:`component_signal` [sigma].
        noise: (B,) the noise scale the signal is measured against (1 for a true sigma).
        tested: (C,) bool, the components to test (those with a varying parameter).
    """
    if signal.shape[-1] == 0:
        return torch.zeros_like(signal, dtype=torch.bool)
    brightest = signal.max(-1, keepdim=True).values
    faint = (signal < VANISHED_SNR * noise.to(signal)[:, None]) | (signal < VANISHED_FRACTION * brightest)
    return faint & tested.to(signal.device)[None, :]


def centres_off_region(values: np.ndarray, x_columns, y_columns, x_range: np.ndarray,
                       y_range: np.ndarray) -> np.ndarray:
    """(B, P) bool: the ``x`` columns ``x_columns`` and ``y`` columns ``y_columns`` (lists
    of column indices of ``values``) that lie outside, or within :data:`EDGE_MARGIN` of
    the edge of, each galaxy's fit region.

    Args:
        values: (B, P) parameter values [pix for the centres, 1-based].
        x_range, y_range: (B, 2) [low, high] outer pixel edges of each galaxy's region.
    """
    off = np.zeros(values.shape, dtype=bool)
    for columns, bounds in ((list(x_columns), x_range), (list(y_columns), y_range)):
        if not columns:
            continue
        v = values[:, columns]
        off[:, columns] = ~((v > bounds[:, :1] + EDGE_MARGIN) & (v < bounds[:, 1:] - EDGE_MARGIN))
    return off
