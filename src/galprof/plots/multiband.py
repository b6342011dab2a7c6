"""The figure of a multi-band fit: one row per band.

Each row is the single-band figure of that band's :class:`galprof.plots.sources.FitView`
(the same panel code, :func:`galprof.plots.images.draw_image_panels` and
:func:`galprof.plots.profile1d.draw_profile_panels`): data | model | residual with the
band's own stretch and the R_e ellipse of every component (the shared geometry draws
the same ellipse in every band; a size that varies with wavelength draws each band's),
the text box with the band's parameters, and the band's 1-D surface-brightness profile
with its zeropoint and EXPTIME. The band label and its chi^2_nu
(:func:`galprof.plots.sources.band_chi2_nu`) stand at the left of its row; the title
gives the fit's status and chi^2_nu over every band. A model with several galaxy
components shows every component's profile and ellipse but no per-component image rows
(one row per band).

Conventions are GALFIT's: 1-based pixels, PA in degrees CCW from +y, sizes along the
major axis, q = b/a, mu = zp - 2.5 log10(I / (EXPTIME dx dy)) in each band's zeropoint.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from . import style
from .images import draw_image_panels, image_panel_size
from .profile1d import draw_profile_panels, profile_panel_size
from .sources import MultiBandView, PlotError

__all__ = ["KINDS", "draw_multiband_panels", "multiband_figure", "multiband_figure_size"]

#: What a multi-band figure shows: images and profiles, images only, profiles only.
KINDS = ("both", "images", "profile")
PANEL = 1.9    # image panel width [inch]
LABEL_W = 0.42  # the band-label column [inch]
HEAD = 0.36    # the title line [inch]
MIN_ROW = 3.1  # a row with a profile is at least this tall [inch]
ROW_PAD = 0.45  # above a profile panel: room for its arcsec axis and title [inch]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise PlotError(f"unknown figure kind {kind!r}; use one of {', '.join(KINDS)}")


def _row_size(view: MultiBandView, kind: str) -> tuple[float, float, float]:
    """(image block width, profile block width, row height) [inch]."""
    iw = ih = pw = 0.0
    if kind in ("both", "images"):
        sizes = [image_panel_size(v, PANEL, decomposition=False) for v in view.views]
        iw, ih = max(s[0] for s in sizes), max(s[1] for s in sizes)
    if kind in ("both", "profile"):
        pw = profile_panel_size()[0]
        ih = max(ih, MIN_ROW) + ROW_PAD
    return iw, pw, ih


def multiband_figure_size(view: MultiBandView, kind: str = "both") -> tuple[float, float]:
    """(width, height) [inch] of :func:`multiband_figure`."""
    _check_kind(kind)
    iw, pw, row_h = _row_size(view, kind)
    return LABEL_W + iw + pw, HEAD + len(view.views) * row_h


def draw_multiband_panels(fig: Figure, view: MultiBandView, *, kind: str = "both", stretch: str = "asinh",
                          residual_range: float = 5.0, log_radius: bool = True, ellipses: bool = True) -> list:
    """Draw one row per band into ``fig`` (sized by :func:`multiband_figure_size`).

    Returns:
        one dict per band, in band order: ``label``, ``chi2_nu``, ``label_text`` (the
        row's label, a matplotlib Text), ``images`` (the axes of
        :func:`galprof.plots.images.draw_image_panels`, or None) and ``profile`` (those of
        :func:`galprof.plots.profile1d.draw_profile_panels`, or None).
    """
    _check_kind(kind)
    width, height = multiband_figure_size(view, kind)
    iw, _, row_h = _row_size(view, kind)
    total = f"χ²/ν = {view.chi2_nu:.4g} (all bands)" if np.isfinite(view.chi2_nu) else ""
    title = "   ".join(t for t in (view.name, view.status, total) if t)
    fig.text(0.5, 1.0 - 0.55 * HEAD / height, title, ha="center", va="center", fontsize=style.FONT + 0.5,
             gid="title")
    out = []
    for k, (label, band_view) in enumerate(zip(view.bands.labels, view.views)):
        top = HEAD + k * row_h
        chi = f"χ²/ν = {band_view.chi2_nu:.3g}" if np.isfinite(band_view.chi2_nu) else "χ²/ν unknown"
        text = fig.text(0.45 * LABEL_W / width, 1.0 - (top + 0.5 * row_h) / height, f"{label}    {chi}",
                        rotation=90, ha="center", va="center", fontsize=style.FONT + 0.5, fontweight="bold",
                        gid=f"band-{label}")
        axes = {"label": label, "chi2_nu": band_view.chi2_nu, "label_text": text, "images": None, "profile": None}
        if kind in ("both", "images"):
            ih = image_panel_size(band_view, PANEL, decomposition=False)[1]
            axes["images"] = draw_image_panels(fig, band_view, rect_in=(LABEL_W, top + (row_h - ih) / 2),
                                               figure_size=(width, height), stretch=stretch,
                                               residual_range=residual_range, ellipses=ellipses, panel=PANEL,
                                               decomposition=False)
        if kind in ("both", "profile"):
            axes["profile"] = draw_profile_panels(fig, band_view, rect_in=(LABEL_W + iw, top + ROW_PAD),
                                                  figure_size=(width, height), log_radius=log_radius,
                                                  height=row_h - ROW_PAD)
        out.append(axes)
    return out


def multiband_figure(view: MultiBandView, *, kind: str = "both", stretch: str = "asinh", residual_range: float = 5.0,
                     log_radius: bool = True, ellipses: bool = True, dpi: float = 150) -> Figure:
    """The figure of a multi-band fit, one row per band (see the module docstring).

    Args:
        view: the fit (:func:`galprof.plots.load_result` of a GALFITM image block,
            :func:`galprof.plots.from_multiband_result`, or a multi-band table row).
        kind: ``both`` (images and the 1-D profile), ``images`` or ``profile``.
        stretch, residual_range, ellipses: as for :func:`galprof.plots.image_figure`
            (each band gets its own stretch limits).
        log_radius: log radius axis of the profiles.
    """
    width, height = multiband_figure_size(view, kind)
    fig = Figure(figsize=(width, height), dpi=dpi)
    draw_multiband_panels(fig, view, kind=kind, stretch=stretch, residual_range=residual_range,
                          log_radius=log_radius, ellipses=ellipses)
    return fig
