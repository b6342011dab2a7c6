"""The 1-D surface-brightness profile of a fit in elliptical annuli.

Annuli follow the best-fit geometry of the brightest galaxy component (the one with
the most light in the image): centre (x, y), axis ratio q and PA (CCW from +y). A
pixel's semi-major-axis radius is a = sqrt(u^2 + (v / q)^2) with u, v its offsets along
the major and minor axes (:mod:`galprof.conventions`). Bin edges are 0, 1, then grow by
10 % (and at least 1 pixel) per bin out to the farthest good pixel; a bin's radius is
the mean a of its pixels. Annuli with fewer pixels in the image than 60 % of their
area are left out.

In each annulus, over the good pixels only (unmasked, finite, sigma > 0):

* data: the mean of data - sky [ADU/pix], with the error sqrt(sum sigma^2) / N from the
  sigma image (without one: the scatter of the pixels / sqrt(N));
* model and each galaxy component: their means over the same pixels (the sky, i.e. the
  fitted sky components, is subtracted from data and model and not drawn).

Units: surface brightness mu = zp - 2.5 log10(I / (EXPTIME dx dy)) [mag/arcsec^2] when
the zeropoint and plate scale (dx, dy) [arcsec/pix] are known (brighter up), else I in
ADU/pix on a log axis. The panel below shows data - model (mu_data - mu_model in mag,
or I_data - I_model in ADU/pix). The radius axis is log or linear; with a plate scale
a top axis gives it in arcsec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from . import style
from .sources import FitView

__all__ = ["RadialProfile", "draw_profile_panels", "elliptical_annuli", "profile_figure", "semi_major_radius",
           "surface_brightness"]

_MAG = 2.5 / math.log(10.0)


def semi_major_radius(shape, origin, x0, y0, q, pa_deg) -> np.ndarray:
    """(H, W) semi-major-axis radius [pix] of each pixel centre about (x0, y0) for an
    ellipse of axis ratio q and PA [deg, CCW from +y]; 1-based pixel coordinates."""
    h, w = shape
    xs = origin[0] + np.arange(w)[None, :] - x0
    ys = origin[1] + np.arange(h)[:, None] - y0
    t = math.radians(pa_deg)
    u = -xs * math.sin(t) + ys * math.cos(t)
    v = -xs * math.cos(t) - ys * math.sin(t)
    return np.sqrt(u**2 + (v / max(q, 1e-3)) ** 2)


def surface_brightness(intensity, zeropoint: float, exptime: float, pixel_scale) -> np.ndarray:
    """mu = zp - 2.5 log10(I / (EXPTIME dx dy)) [mag/arcsec^2] of I [ADU/pix] (NaN for I <= 0)."""
    i = np.asarray(intensity, dtype=float)
    area = float(pixel_scale[0]) * float(pixel_scale[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(i > 0, zeropoint - 2.5 * np.log10(np.where(i > 0, i, 1.0) / (exptime * area)), np.nan)


@dataclass(frozen=True)
class RadialProfile:
    """Means in elliptical annuli (see the module docstring).

    Attributes:
        edges: (N + 1,) bin edges in semi-major axis [pix].
        radius: (N,) mean semi-major axis of the pixels of each bin [pix].
        n_pixels: (N,) good pixels per bin.
        data, error: (N,) mean of data - sky and its 1-sigma error [ADU/pix].
        model: (N,) mean of model - sky [ADU/pix].
        components: (C, N) mean of each galaxy component [ADU/pix].
        geometry: (x0, y0, q, pa) of the annuli.
    """

    edges: np.ndarray
    radius: np.ndarray
    n_pixels: np.ndarray
    data: np.ndarray
    error: np.ndarray
    model: np.ndarray
    components: np.ndarray
    geometry: tuple


def _geometry(view: FitView):
    gal = [c for c in view.galaxy_components if all(k in c.values for k in ("x", "y"))]
    if not gal:
        h, w = view.shape
        return (view.origin[0] + (w - 1) / 2, view.origin[1] + (h - 1) / 2, 1.0, 0.0)
    brightest = max(gal, key=lambda c: float(np.nansum(c.image)))
    v = brightest.values
    q = float(v.get("q", 1.0)) if np.isfinite(v.get("q", 1.0)) else 1.0
    pa = float(v.get("pa", 0.0)) if np.isfinite(v.get("pa", 0.0)) else 0.0
    return (float(v["x"]), float(v["y"]), q, pa)


def bin_edges(r_max: float, growth: float = 1.1) -> np.ndarray:
    """0, 1, then edges growing by ``growth`` (at least 1 pixel per bin) up to ``r_max``."""
    edges = [0.0, 1.0]
    while edges[-1] < r_max:
        edges.append(max(edges[-1] * growth, edges[-1] + 1.0))
    return np.array(edges)


def elliptical_annuli(view: FitView, geometry=None, *, growth: float = 1.1, min_pixels: int = 3) -> RadialProfile:
    """Mean data, model and component intensities in elliptical annuli (module docstring).

    Args:
        geometry: (x0, y0, q, pa_deg) of the annuli; default: the brightest component's.
        growth: ratio of consecutive bin edges beyond 1 pixel.
        min_pixels: bins with fewer good pixels are dropped.
    """
    x0, y0, q, pa = geometry or _geometry(view)
    a = semi_major_radius(view.shape, view.origin, x0, y0, q, pa)
    good = ~view.bad
    sky = view.sky
    data = view.data - sky
    model = view.model - sky
    gal = view.galaxy_components
    if not good.any():
        empty = np.zeros(0)
        return RadialProfile(np.zeros(1), empty, empty.astype(int), empty, empty, empty, np.zeros((len(gal), 0)),
                             (x0, y0, q, pa))
    edges = bin_edges(float(a[good].max()) + 1e-9, growth)
    which = np.digitize(a, edges) - 1
    nb = len(edges) - 1
    sel = good & (which >= 0) & (which < nb)
    idx = which[sel]
    count = np.bincount(idx, minlength=nb).astype(float)

    def mean(values):
        return np.bincount(idx, weights=values[sel], minlength=nb) / np.maximum(count, 1)

    radius = mean(a)
    mean_data = mean(data)
    if view.sigma is not None:
        var = np.bincount(idx, weights=(view.sigma[sel] ** 2), minlength=nb)
        error = np.sqrt(var) / np.maximum(count, 1)
    else:
        second = mean(data**2)
        error = np.sqrt(np.maximum(second - mean_data**2, 0.0) / np.maximum(count - 1, 1))
    comps = np.array([mean(c.image) for c in gal]).reshape(len(gal), nb)
    # drop annuli mostly outside the image: fewer pixels (good or not) than 60 % of the
    # annulus area pi q (a2^2 - a1^2)
    inside = np.bincount(np.clip(which.ravel(), 0, nb), minlength=nb + 1)[:nb]
    area = math.pi * q * (edges[1:] ** 2 - edges[:-1] ** 2)
    keep = (count >= min_pixels) & (inside >= 0.6 * area)
    return RadialProfile(edges, radius[keep], count[keep].astype(int), mean_data[keep], error[keep],
                         mean(model)[keep], comps[:, keep], (x0, y0, q, pa))


PROFILE_W = 3.7
PROFILE_MAIN = 2.55
PROFILE_RES = 0.95
P_LEFT = 0.62
P_TOP = 0.45
P_BOTTOM = 0.45
P_RIGHT = 0.15


def profile_panel_size() -> tuple[float, float]:
    """(width, height) [inch] of :func:`draw_profile_panels`."""
    return P_LEFT + PROFILE_W + P_RIGHT, P_TOP + PROFILE_MAIN + PROFILE_RES + P_BOTTOM


def draw_profile_panels(fig: Figure, view: FitView, *, rect_in=(0.0, 0.0), figure_size=None, log_radius: bool = True,
                        profile: RadialProfile | None = None, height: float | None = None) -> dict:
    """Draw the profile and residual axes into ``fig`` with the top-left corner at
    ``rect_in`` (inches from the figure's top-left). Returns ``{"profile": ax,
    "residual": ax, "data": RadialProfile}``."""
    fig_w, fig_h = figure_size or fig.get_size_inches()
    x0, y0 = rect_in
    main_h, res_h = PROFILE_MAIN, PROFILE_RES
    if height is not None:  # stretch to a given total height
        spare = height - (P_TOP + P_BOTTOM)
        main_h, res_h = spare * 0.73, spare * 0.27

    def axes(left, top, width, h, **kw):
        return fig.add_axes((left / fig_w, 1.0 - (top + h) / fig_h, width / fig_w, h / fig_h), **kw)

    ax = axes(x0 + P_LEFT, y0 + P_TOP, PROFILE_W, main_h)
    rax = axes(x0 + P_LEFT, y0 + P_TOP + main_h + 0.06, PROFILE_W, res_h - 0.06, sharex=ax)
    prof = profile or elliptical_annuli(view)
    mag = view.surface_brightness_units
    r = prof.radius
    if mag:
        zp, et, ps = view.zeropoint, view.exptime, view.pixel_scale

        def conv(i):
            return surface_brightness(i, zp, et, ps)

        y = conv(prof.data)
        with np.errstate(divide="ignore", invalid="ignore"):
            upper = conv(prof.data - prof.error)  # fainter
            lower = conv(prof.data + prof.error)
        upper = np.where(np.isfinite(upper), upper, y + 3.0)
        yerr = np.vstack([y - lower, upper - y])
        ok = np.isfinite(y)
        ylabel = "μ [mag arcsec$^{-2}$]"
        res = y - conv(prof.model)
        with np.errstate(divide="ignore", invalid="ignore"):
            res_err = _MAG * prof.error / np.abs(prof.data)
        res_label = "Δμ [mag]"
    else:
        y = prof.data
        yerr = np.vstack([prof.error, prof.error])
        ok = y > 0
        ylabel = "I [ADU pix$^{-1}$]"
        res = prof.data - prof.model
        res_err = prof.error

        def conv(i):
            return np.where(np.asarray(i) > 0, i, np.nan)

    ax.errorbar(r[ok], y[ok], yerr=yerr[:, ok], fmt="o", ms=2.6, color="black", ecolor="0.35", elinewidth=0.7,
                capsize=0, label="data", zorder=3, gid="data")
    ax.plot(r, conv(prof.model), "-", color="black", lw=1.3, label="model", gid="model", zorder=4)
    for k, comp in enumerate(view.galaxy_components):
        ax.plot(r, conv(prof.components[k]), "--", color=style.component_colour(k), lw=1.1,
                label=f"{comp.label}", gid=f"component-{comp.number}", zorder=2)
    if mag:
        good = y[ok]
        model_mu = conv(prof.model)
        finite = np.concatenate([good, model_mu[np.isfinite(model_mu)]])
        if finite.size:
            ax.set_ylim(np.nanmax(good) + 0.8 if good.size else np.nanmax(finite) + 0.8, np.nanmin(finite) - 0.5)
    else:
        ax.set_yscale("log")
        positive = np.concatenate([y[ok], prof.model[prof.model > 0]])
        if positive.size:
            ax.set_ylim(np.nanmin(y[ok]) / 2 if ok.any() else np.nanmin(positive) / 2, np.nanmax(positive) * 2)
    ax.set_ylabel(ylabel, fontsize=style.FONT)
    ax.tick_params(labelsize=style.SMALL, labelbottom=False)
    ax.legend(fontsize=style.SMALL - 0.5, loc="upper right", frameon=False, handlelength=1.8)
    fin = ok & np.isfinite(res)
    rax.errorbar(r[fin], res[fin], yerr=np.where(np.isfinite(res_err), res_err, 0)[fin], fmt="o", ms=2.2,
                 color="black", ecolor="0.35", elinewidth=0.6, capsize=0, gid="residual")
    rax.axhline(0.0, color="black", lw=0.8)
    if fin.any():
        span = np.nanpercentile(np.abs(res[fin]), 90) * 1.6
        span = max(span, 0.05 if mag else 1e-12)
        rax.set_ylim(span, -span) if mag else rax.set_ylim(-span, span)
    rax.set_ylabel(res_label if mag else "data − model", fontsize=style.FONT)
    rax.set_xlabel("semi-major axis a [pix]", fontsize=style.FONT)
    rax.tick_params(labelsize=style.SMALL)
    if log_radius:
        ax.set_xscale("log")
        _log_ticks(rax.xaxis)
    if r.size:
        lo = max(r.min() * 0.8, 0.3) if log_radius else 0.0
        ax.set_xlim(lo, r.max() * 1.1)
    if view.pixel_scale is not None:
        scale = math.sqrt(float(view.pixel_scale[0]) * float(view.pixel_scale[1]))
        top = ax.secondary_xaxis("top", functions=(lambda p: p * scale, lambda s: s / scale))
        top.set_xlabel("a [arcsec]", fontsize=style.SMALL)
        if log_radius:
            _log_ticks(top.xaxis)
        top.tick_params(labelsize=style.SMALL)
    x_c, y_c, q, pa = prof.geometry
    ax.set_title(f"{view.name}: annuli q = {q:.3f}, PA = {pa:.1f}°", fontsize=style.FONT,
                 pad=22 if view.pixel_scale is not None else 4)
    return {"profile": ax, "residual": rax, "data": prof}


def _log_ticks(axis) -> None:
    """Ticks at 1, 2, 5 x 10^k labelled as plain numbers (no crowded minor labels)."""
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def profile_figure(view: FitView, *, log_radius: bool = True, dpi: float = 150) -> Figure:
    """The 1-D profile panel (profile above, residual below) as a Figure."""
    width, height = profile_panel_size()
    fig = Figure(figsize=(width, height), dpi=dpi)
    draw_profile_panels(fig, view, log_radius=log_radius)
    return fig
