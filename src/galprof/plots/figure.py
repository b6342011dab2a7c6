"""The per-galaxy figure (image panel and 1-D profile side by side) and saving figures."""

from __future__ import annotations

import pathlib

from matplotlib.figure import Figure

from .images import draw_image_panels, image_panel_size
from .profile1d import draw_profile_panels, profile_panel_size
from .sources import FitView, PlotError

__all__ = ["FORMATS", "fit_figure", "save_figure"]

#: Output formats by file extension.
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


def fit_figure(view: FitView, *, stretch: str = "asinh", residual_range: float = 5.0, log_radius: bool = True,
               dpi: float = 150) -> Figure:
    """Image panel (left) and 1-D profile panel (right) of one fit, as a Figure.

    See :func:`galprof.plots.images.image_figure` and
    :func:`galprof.plots.profile1d.profile_figure` for what each panel shows.
    """
    single_row = len(view.galaxy_components) < 2
    panel = 2.3 if single_row else 1.75  # one row of images: larger panels, a shorter profile
    iw, ih = image_panel_size(view, panel)
    pw, ph = profile_panel_size()
    width, height = iw + pw, max(ih, 3.2 if single_row else ph)
    fig = Figure(figsize=(width, height), dpi=dpi)
    draw_image_panels(fig, view, rect_in=(0.0, (height - ih) / 2), figure_size=(width, height), stretch=stretch,
                      residual_range=residual_range, panel=panel)
    draw_profile_panels(fig, view, rect_in=(iw, 0.0), figure_size=(width, height), log_radius=log_radius,
                        height=height)
    return fig


def save_figure(fig: Figure, path, *, dpi: float | None = None) -> pathlib.Path:
    """Write ``fig`` to ``path``; the format follows the extension (.png, .pdf, .svg)."""
    path = pathlib.Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PlotError(f"{path}: unknown figure format {path.suffix!r} (use {', '.join(FORMATS)})")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, format=fmt, dpi=dpi or fig.dpi)
    except OSError as err:
        raise PlotError(f"cannot write {path}: {err.strerror or err}") from None
    return path
