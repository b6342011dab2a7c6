"""The image panel of a fit: data, model and residual with the same stretch, and for
multi-component models one row per component (its model and the data minus the other
components: a bulge/disk decomposition).

Axes are in 1-based pixel coordinates (GALFIT's; the first pixel's centre is at the
fit region's corner ``origin``). The R_e ellipse of every component (half-light
semi-major axis R_e, axis ratio q, PA counter-clockwise from +y) is drawn on the data.
For profiles whose size parameter is not R_e it is converted: expdisk R_e = 1.678 R_s,
gaussian R_e = FWHM / 2, moffat R_e = alpha sqrt(2^(1/(beta-1)) - 1); other profiles
use their first size parameter (named in the legend).

Row 0: data | model | (data - model) / sigma | fit summary. Row k (k = 1..n when there
are n >= 2 galaxy components): data - all other components (sky included) | component
k's model | component k's parameters. Without the decomposition (``decomposition=False``,
as in the per-band rows of :func:`galprof.plots.multiband.multiband_figure`) only row 0
is drawn and its text lists every component's parameters. Masked pixels: see
:mod:`galprof.plots.style`.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Patch

from . import style
from .sources import FitView, profile_with_modifiers

__all__ = ["draw_image_panels", "half_light_ellipse", "image_figure", "image_panel_size", "parameter_lines"]

PANEL = 1.75   # image panel size [inch]
GAP = 0.12     # between image panels [inch]
ROW_GAP = 0.32  # between rows (titles) [inch]
CBAR = 0.62    # colour bar and its labels [inch]
TEXT = 1.95    # parameter text column [inch]
LEFT = 0.5
TOP = 0.28
BOTTOM = 0.42


def half_light_ellipse(component) -> tuple[float, str] | None:
    """(semi-major axis [pix], label) of the ellipse drawn for a component, or None."""
    v = component.values
    if component.kind != "elliptical":
        return None
    base = component.profile.split()[0]
    if "r_e" in v:
        return float(v["r_e"]), "R_e"
    if base == "expdisk" and "r_s" in v:
        return 1.678 * float(v["r_s"]), "R_e"
    if base == "gaussian" and "fwhm" in v:
        return 0.5 * float(v["fwhm"]), "R_e"
    if base == "moffat" and "fwhm" in v and "beta" in v and v["beta"] > 1:
        alpha = v["fwhm"] / (2.0 * math.sqrt(2.0 ** (1.0 / v["beta"]) - 1.0))
        return float(alpha * math.sqrt(2.0 ** (1.0 / (v["beta"] - 1.0)) - 1.0)), "R_e"

    try:
        profile = profile_with_modifiers(base, v.keys())
        for spec in profile.parameters:
            if spec.is_size and spec.name in v:
                return float(v[spec.name]), spec.name
    except Exception:  # an unknown profile: no ellipse
        return None
    return None


def parameter_lines(component) -> list[str]:
    """Text lines ``name  value ± error`` of a component ([value]: fixed; *value*:
    at a bound or with an undefined error)."""
    lines = [f"{component.label}"]
    if component.display:
        rows = component.display
    else:
        rows = [(n, component.values[n], component.errors.get(n, float("nan")),
                 "fixed" if not component.free.get(n, True) else
                 ("flagged" if component.flagged.get(n, False) else "free")) for n in component.values]
    for name, value, error, state in rows:
        text = style.format_value(value)
        if state == "fixed":
            lines.append(f"  {name:<6s} [{text}]")
        elif state == "flagged":
            lines.append(f"  {name:<6s} *{text}* ± {style.format_error(error)}")
        else:
            lines.append(f"  {name:<6s} {text} ± {style.format_error(error)}")
    return lines


def _summary_lines(view: FitView) -> list[str]:
    lines = [view.name]
    if view.status:
        lines.append(f"status: {view.status}")
    if np.isfinite(view.chi2_nu):
        lines.append(f"χ²/ν = {view.chi2_nu:.4g}")
    if view.zeropoint is not None:
        lines.append(f"zeropoint {view.zeropoint:g}, EXPTIME {view.exptime:g}")
    if view.pixel_scale is not None:
        lines.append(f"scale {view.pixel_scale[0]:g} x {view.pixel_scale[1]:g} ″/pix")
    n_bad = int(view.bad.sum())
    if n_bad:
        lines.append(f"{n_bad} masked/bad pixels")
    return lines


def image_panel_size(view: FitView, panel: float = PANEL, *, decomposition: bool = True) -> tuple[float, float]:
    """(width, height) [inch] of the image block of :func:`draw_image_panels`."""
    rows = _n_rows(view, decomposition)
    h, w = view.shape
    panel_h = panel * min(max(h / w, 0.4), 2.5)
    width = LEFT + 3 * panel + 2 * GAP + CBAR + TEXT
    height = TOP + rows * panel_h + (rows - 1) * ROW_GAP + BOTTOM
    return width, height


def _n_rows(view: FitView, decomposition: bool = True) -> int:
    n = len(view.galaxy_components)
    return 1 + (n if n >= 2 and decomposition else 0)


def _mask_overlay(bad: np.ndarray) -> np.ndarray:
    rgba = np.zeros(bad.shape + (4,))
    rgba[..., :3] = style.MASK_COLOUR
    rgba[..., 3] = np.where(bad, style.MASK_ALPHA, 0.0)
    return rgba


def _residual_map(view: FitView, residual_range: float):
    """(masked residual image, vmax, label): (data - model) / sigma, or ADU without sigma."""
    bad = view.bad
    res = view.residual
    if view.sigma is not None and np.any(~bad):
        with np.errstate(divide="ignore", invalid="ignore"):
            res = res / np.where(bad, 1.0, view.sigma)
        return np.ma.array(res, mask=bad), float(residual_range), "(data − model) / σ"
    good = res[~bad & np.isfinite(res)]
    scale = float(1.4826 * np.median(np.abs(good - np.median(good)))) if good.size else 1.0
    vmax = residual_range * scale if scale > 0 else float(np.nanmax(np.abs(good))) if good.size else 1.0
    return np.ma.array(res, mask=bad), vmax, "data − model [ADU/pix]"


def draw_image_panels(fig: Figure, view: FitView, *, rect_in=(0.0, 0.0), figure_size=None, stretch: str = "asinh",
                      residual_range: float = 5.0, ellipses: bool = True, panel: float = PANEL,
                      decomposition: bool = True) -> dict:
    """Draw the image block of ``view`` into ``fig`` with its top-left corner at
    ``rect_in`` = (x, y) inches from the figure's top-left. Returns the axes by role:
    ``data``, ``model``, ``residual``, ``colorbar``, ``text``, and lists
    ``component_data`` / ``component_model`` / ``component_text`` (rows 1..n).
    ``panel``: width of an image panel [inch]. ``decomposition``: the per-component
    rows of a model with two or more galaxy components (False: row 0 only)."""
    PANEL = panel  # noqa: N806 - the module default, overridden
    fig_w, fig_h = figure_size or fig.get_size_inches()
    h, w = view.shape
    panel_h = PANEL * min(max(h / w, 0.4), 2.5)
    x0, y0 = rect_in

    def axes(left, top, width, height):
        return fig.add_axes((left / fig_w, 1.0 - (top + height) / fig_h, width / fig_w, height / fig_h))

    bad = view.bad
    good = ~bad
    lo, hi, soft = style.stretch_limits(view.data, view.model, good, view.sigma)
    norm = style.stretch_norm(lo, hi, soft, stretch)
    extent = view.extent()
    common = dict(origin="lower", extent=extent, interpolation="nearest", aspect="auto")
    out = {"component_data": [], "component_model": [], "component_text": []}
    overlay = _mask_overlay(bad)
    gal = view.galaxy_components
    decompose = decomposition and len(gal) >= 2

    def image_axes(row, col):
        left = x0 + LEFT + col * (PANEL + GAP)
        top = y0 + TOP + row * (panel_h + ROW_GAP)
        ax = axes(left, top, PANEL, panel_h)
        ax.tick_params(labelsize=style.SMALL, length=2, pad=1)
        if col:
            ax.tick_params(labelleft=False)
        if row < _n_rows(view, decomposition) - 1:
            ax.tick_params(labelbottom=False)
        return ax

    def text_axes(row):
        left = x0 + LEFT + 3 * PANEL + 2 * GAP + CBAR
        top = y0 + TOP + row * (panel_h + ROW_GAP)
        ax = axes(left, top, TEXT, panel_h)
        ax.set_axis_off()
        return ax

    ax = image_axes(0, 0)
    ax.imshow(view.data, cmap=style.DATA_CMAP, norm=norm, **common)
    ax.imshow(overlay, gid="mask", **common)
    ax.set_title("data", fontsize=style.FONT, pad=3)
    ax.set_ylabel("y [pix]", fontsize=style.SMALL, labelpad=1)
    handles = []
    if ellipses:
        for k, comp in enumerate(gal):
            ell = _ellipse(comp, style.component_colour(k))
            if ell is not None:
                ax.add_patch(ell)
                handles.append(Patch(facecolor="none", edgecolor=style.component_colour(k),
                                     label=f"{comp.number} {half_light_ellipse(comp)[1]}"))
    if bad.any():
        handles.append(Patch(facecolor=style.MASK_COLOUR, alpha=style.MASK_ALPHA, label="masked"))
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=style.SMALL - 1.5, frameon=True, framealpha=0.7,
                  handlelength=1.0, borderpad=0.3, labelspacing=0.2, handletextpad=0.4)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    out["data"] = ax

    ax = image_axes(0, 1)
    ax.imshow(view.model, cmap=style.DATA_CMAP, norm=norm, **common)
    ax.set_title("model", fontsize=style.FONT, pad=3)
    out["model"] = ax

    ax = image_axes(0, 2)
    res, vmax, label = _residual_map(view, residual_range)
    im = ax.imshow(res, cmap=style.residual_cmap(), vmin=-vmax, vmax=vmax, **common)
    ax.set_title("residual", fontsize=style.FONT, pad=3)
    out["residual"] = ax
    left = x0 + LEFT + 3 * PANEL + 2 * GAP + 0.06
    cax = axes(left, y0 + TOP, 0.09, panel_h)
    cbar = fig.colorbar(im, cax=cax)
    cbar.set_label(label, fontsize=style.SMALL, labelpad=2)
    cbar.ax.tick_params(labelsize=style.SMALL - 0.5, length=2, pad=1)
    out["colorbar"] = cax

    tax = text_axes(0)
    lines = _summary_lines(view)
    if not decompose:
        for comp in view.components:
            lines += parameter_lines(comp)
    else:
        for comp in view.components:
            if comp.kind == "sky":
                lines += parameter_lines(comp)
    lines += [f"note: {n}" for n in view.notes]
    _text(tax, lines, panel_h)
    out["text"] = tax

    if decompose:
        for k, comp in enumerate(gal):
            others = view.data - (view.model - comp.image)
            ax = image_axes(k + 1, 0)
            ax.imshow(others, cmap=style.DATA_CMAP, norm=norm, **common)
            ax.imshow(overlay, gid="mask", **common)
            ax.set_title(f"data − all but {comp.number}", fontsize=style.FONT, pad=3)
            ax.set_ylabel("y [pix]", fontsize=style.SMALL, labelpad=1)
            if ellipses:
                ell = _ellipse(comp, style.component_colour(k))
                if ell is not None:
                    ax.add_patch(ell)
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            out["component_data"].append(ax)
            ax = image_axes(k + 1, 1)
            ax.imshow(comp.image, cmap=style.DATA_CMAP, norm=norm, **common)
            ax.set_title(f"component {comp.label}", fontsize=style.FONT, pad=3, color=style.component_colour(k))
            out["component_model"].append(ax)
            tax = axes(x0 + LEFT + 2 * (PANEL + GAP) + 0.05, y0 + TOP + (k + 1) * (panel_h + ROW_GAP),
                       PANEL + CBAR + TEXT - 0.05, panel_h)
            tax.set_axis_off()
            _text(tax, parameter_lines(comp), panel_h, colour=style.component_colour(k))
            out["component_text"].append(tax)
    bottom_axes = out["component_data"][-1] if out["component_data"] else out["data"]
    bottom_axes.set_xlabel("x [pix]", fontsize=style.SMALL, labelpad=1)
    return out


def _text(ax, lines, panel_h, colour="black"):
    # shrink the font when the lines would not fit the panel
    size = style.SMALL
    max_lines = max(1, int(panel_h * 72 / (size * 1.25)))
    if len(lines) > max_lines:
        size = max(4.5, size * max_lines / len(lines))
    ax.text(0.0, 1.0, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize=size,
            family="monospace", color=colour, linespacing=1.15)


def _ellipse(component, colour):
    found = half_light_ellipse(component)
    if found is None:
        return None
    a, _ = found
    v = component.values
    q = float(v.get("q", 1.0))
    if not (np.isfinite(a) and np.isfinite(q) and a > 0 and np.isfinite(v.get("x", np.nan))):
        return None
    # GALFIT's PA is CCW from +y; matplotlib's angle rotates the width axis CCW from +x:
    # the major axis along +y (height) rotated by PA.
    return Ellipse((float(v["x"]), float(v["y"])), width=2 * a * q, height=2 * a, angle=float(v.get("pa", 0.0)),
                   fill=False, edgecolor=colour, linewidth=1.0, gid=f"ellipse-{component.number}")


def image_figure(view: FitView, *, stretch: str = "asinh", residual_range: float = 5.0, ellipses: bool = True,
                 dpi: float = 150) -> Figure:
    """The image panel of a fit as a :class:`matplotlib.figure.Figure`.

    Args:
        view: the fit (:mod:`galprof.plots.sources`).
        stretch: ``asinh`` (default) or ``log``, shared by the data and model panels.
        residual_range: the residual colour scale spans +-this many sigma.
        ellipses: draw each component's R_e ellipse on the data.
    """
    width, height = image_panel_size(view)
    fig = Figure(figsize=(width, height), dpi=dpi)
    draw_image_panels(fig, view, stretch=stretch, residual_range=residual_range, ellipses=ellipses)
    return fig
