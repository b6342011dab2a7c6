"""Shared look of galprof's figures: sizes, fonts, colours and the image stretches.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), with
axes placed in inches so that panels keep their size and fonts stay readable when a
figure is put in a paper at its natural width (fonts 8-9 pt).

Stretches (data and model always share one):

* ``asinh`` (default): y = asinh((I - lo) / a) / asinh((hi - lo) / a), with the
  softening a = the median sigma of the image (the noise level): linear within about
  one sigma of the floor ``lo``, logarithmic above. ``lo`` is the 2nd percentile of the
  good data, ``hi`` the 99.8th percentile (at least the model's peak).
* ``log``: y = log10(1 + (I - lo) / a) / log10(1 + (hi - lo) / a), the same limits.

Residuals are (data - model) / sigma on a diverging colour map symmetric about zero,
+-5 sigma by default. Masked pixels are drawn in :data:`MASK_COLOUR`, a colour none of
the colour maps uses: a translucent overlay on the data, solid on the residual.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib import colors

#: Colour of masked pixels (green: not in the grey data map nor the red-blue residual map).
MASK_COLOUR = (0.0, 0.75, 0.0)
#: Opacity of the mask overlay on data panels.
MASK_ALPHA = 0.55
#: One colour per galaxy component (ellipses and profile lines), in component order.
COMPONENT_COLOURS = ("#e6550d", "#3182bd", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
DATA_CMAP = "gray"
RESIDUAL_CMAP = "RdBu_r"
FONT = 8.5
SMALL = 7.5
STRETCHES = ("asinh", "log")


def component_colour(k: int) -> str:
    """Colour of the k-th (0-based) galaxy component."""
    return COMPONENT_COLOURS[k % len(COMPONENT_COLOURS)]


def residual_cmap():
    """The residual colour map with masked ('bad') pixels in :data:`MASK_COLOUR`."""
    return matplotlib.colormaps[RESIDUAL_CMAP].with_extremes(bad=MASK_COLOUR)


def stretch_limits(data: np.ndarray, model: np.ndarray | None, good: np.ndarray, sigma: np.ndarray | None):
    """(lo, hi, softening) of the display stretch [ADU/pix] (see the module docstring)."""
    values = data[good & np.isfinite(data)]
    if values.size == 0:
        values = np.array([0.0, 1.0])
    lo = float(np.percentile(values, 2.0))
    hi = float(np.percentile(values, 99.8))
    if model is not None and np.isfinite(model).any():
        hi = max(hi, float(np.nanmax(model[good])) if good.any() else float(np.nanmax(model)))
    soft = None
    if sigma is not None:
        s = sigma[good & np.isfinite(sigma) & (sigma > 0)]
        if s.size:
            soft = float(np.median(s))
    if soft is None or soft <= 0:
        # robust noise estimate of the faint half of the data
        faint = values[values <= np.median(values)]
        soft = float(1.4826 * np.median(np.abs(faint - np.median(faint)))) if faint.size else 0.0
    if not soft > 0:
        soft = max((hi - lo) * 1e-3, 1e-12)
    if not hi > lo:
        hi = lo + max(abs(lo), 1.0)
    return lo, hi, soft


def stretch_norm(lo: float, hi: float, soft: float, stretch: str = "asinh") -> colors.Normalize:
    """A matplotlib norm mapping [lo, hi] to [0, 1] with the given stretch."""
    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}; use one of {', '.join(STRETCHES)}")
    if stretch == "asinh":
        def forward(x):
            return np.arcsinh((np.asarray(x, dtype=float) - lo) / soft)

        def inverse(y):
            return lo + soft * np.sinh(y)
    else:
        def forward(x):
            return np.log10(1.0 + np.clip((np.asarray(x, dtype=float) - lo) / soft, 0.0, None))

        def inverse(y):
            return lo + soft * (10.0 ** np.asarray(y) - 1.0)
    return colors.FuncNorm((forward, inverse), vmin=lo, vmax=hi, clip=True)


def stretch_unit(values: np.ndarray, lo: float, hi: float, soft: float, stretch: str = "asinh") -> np.ndarray:
    """The stretch as numbers in [0, 1] (for thumbnails made without axes)."""
    x = np.asarray(values, dtype=float)
    if stretch == "asinh":
        y = np.arcsinh((x - lo) / soft) / np.arcsinh((hi - lo) / soft)
    else:
        y = np.log10(1.0 + np.clip((x - lo) / soft, 0.0, None)) / np.log10(1.0 + (hi - lo) / soft)
    return np.clip(np.nan_to_num(y, nan=0.0), 0.0, 1.0)


def format_value(value: float) -> str:
    """A parameter value with about five significant digits."""
    if value is None or not np.isfinite(value):
        return "nan"
    a = abs(value)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{value:.3e}"
    if a >= 1000:
        return f"{value:.1f}"
    if a >= 100:
        return f"{value:.2f}"
    return f"{value:.3f}" if a >= 1 else f"{value:.4f}"


def format_error(error: float) -> str:
    """An error with two significant digits."""
    if error is None or not np.isfinite(error):
        return "nan"
    if error == 0:
        return "0"
    return f"{error:.2g}"
