"""``galprof report``: a static HTML report of a batch run that opens from disk.

The report directory holds

* ``index.html``, ``report.js``, ``report.css``: the page (plain JavaScript, no
  dependencies, nothing fetched from the network);
* ``data.js``: the results table (column-major, numbers to 6 significant digits),
  loaded with a ``<script>`` tag so that it works from ``file://``;
* ``histograms.png``: parameter histograms of the galaxies that did not fail;
* ``thumbs/<row>.png``: data | model | residual of each row (made after the page, in a
  background step with a progress bar; the page shows each as soon as it exists);
* ``figures/<row>.png``: full per-galaxy figures (:func:`galprof.plots.fit_figure`;
  :func:`galprof.plots.multiband_figure`, one row per band, for a multi-band run) for
  the flagged rows (not converged, or chi^2_nu > 2; at most ``max_figures``), or all /
  none of them.

Multi-band tables (``galprof fit`` / ``galprof batch`` of GALFITM feedmes, with per-band
columns ``<k>_MAG_<band>``) get colour columns (:func:`colour_columns`): for each
component and each pair of adjacent bands in the table's band order,
``<k>_<b1>-<b2>`` = ``<k>_MAG_<b1>`` - ``<k>_MAG_<b2>`` with the error
``<k>_<b1>-<b2>_ERR`` = the two magnitude errors in quadrature (which ignores their
covariance). They appear in the summary, the histograms (always among them) and the
table like the other parameters. A multi-band row's thumbnail shows its middle band
(r of g, r, i; the band of index K // 2 in the table's band order).

The page shows summary statistics and the histograms at the top, then a table of all
rows, 100 per page (so that 100,000 rows stay responsive), sortable by any column
(click its header), filtered by status (converged, degenerate (or off the region), hit
a bound, max iterations, failed) and by ranges of any numeric column; quick filters give chi^2_nu > 2, hit a
bound and failed. Clicking a row opens its figure (or its thumbnail) with the
parameters and errors; Escape closes it, the arrow keys step through the filtered rows.
``<row>`` is the 0-based row of the results table.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import pathlib
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.image import imsave
from tqdm import tqdm

from ..render.config import RenderConfig
from . import style
from .figure import fit_figure, save_figure
from .multiband import multiband_figure
from .sources import NOT_VALUES, BatchResults, MultiBandView, PlotError, magnitude_bands, table_cell

__all__ = ["ReportSummary", "colour_columns", "status_category", "thumbnail_rgb", "write_report"]

_ASSETS = pathlib.Path(__file__).with_name("report_assets")

#: Cheaper rendering settings for thumbnails (fewer quadrature nodes; model images within
#: ~0.5 % of the peak of the default settings, invisible at thumbnail size).
THUMBNAIL_RENDER = RenderConfig(gl_order=2, outer_gl_order=1, fine_factor=3, psf_interpolation_order=3,
                                edge_nodes=8, outer_box=11)


def status_category(status: str) -> str:
    """``converged``, ``degenerate`` (also ``off the region``), ``bound``, ``maxiter`` or
    ``failed`` from a STATUS string."""
    s = str(status or "")
    if s.startswith("failed"):
        return "failed"
    if s.startswith(("degenerate", "off the region")):
        return "degenerate"
    if s.startswith("hit a bound"):
        return "bound"
    if s.startswith("max iter"):
        return "maxiter"
    if not s:
        return "failed"
    return "converged"


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`write_report` wrote."""

    index: pathlib.Path
    n_rows: int
    n_thumbnails: int
    n_figures: int
    seconds: float
    notes: tuple = ()


# ------------------------------------------------------------------------- thumbnails

def thumbnail_rgb(data, model, sigma, bad, *, stretch: str = "asinh", residual_range: float = 5.0,
                  max_panel: int = 96) -> np.ndarray:
    """(h, 3 w + 2, 3) uint8 image: data | model | (data - model) / sigma, the data and
    model with the same stretch, the residual on +-``residual_range`` sigma, masked
    pixels in the mask colour; panels larger than ``max_panel`` are subsampled."""
    good = ~bad
    lo, hi, soft = style.stretch_limits(data, model, good, sigma)
    grey = matplotlib.colormaps[style.DATA_CMAP]
    d = grey(style.stretch_unit(data, lo, hi, soft, stretch))[..., :3]
    m = grey(style.stretch_unit(model, lo, hi, soft, stretch))[..., :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        if sigma is not None:
            r = (data - model) / np.where(good, sigma, 1.0)
            vmax = residual_range
        else:
            r = data - model
            vmax = residual_range * max(float(np.nanstd(r[good])) if good.any() else 1.0, 1e-30)
    res = matplotlib.colormaps[style.RESIDUAL_CMAP](np.clip(0.5 + 0.5 * np.nan_to_num(r) / vmax, 0.0, 1.0))[..., :3]
    mask_rgb = np.array(style.MASK_COLOUR)
    d = np.where(bad[..., None], (1 - style.MASK_ALPHA) * d + style.MASK_ALPHA * mask_rgb, d)
    res = np.where(bad[..., None], mask_rgb, res)
    step = max(1, int(math.ceil(max(data.shape) / max_panel)))
    panels = [p[::-1][::step, ::step] for p in (d, m, res)]  # row 0 at the bottom, as in the figures
    h = panels[0].shape[0]
    gap = np.ones((h, 1, 3))
    strip = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    return (np.clip(strip, 0, 1) * 255).astype(np.uint8)


def _write_png(rgb: np.ndarray, path: pathlib.Path) -> None:

    imsave(path, rgb, format="png")


# ----------------------------------------------------------------------- the data file

def _column_json(values, kind: str) -> str:
    if kind == "num":
        out = []
        for v in values:
            out.append("null" if v is None or not math.isfinite(v) else
                       (str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:.6g}"))
        return "[" + ",".join(out) + "]"
    return json.dumps(["" if v is None else str(v) for v in values])


def _columns(table):
    """(names, kinds, values) of the table's columns (numbers as floats, NaN for masked)."""
    names, kinds, values = [], {}, {}
    for name in table.colnames:
        column = table[name]
        if column.ndim > 1:
            continue
        if column.dtype.kind in "fiub":
            arr = np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)
            kinds[name] = "num"
            values[name] = np.asarray(arr, dtype=float).tolist()
        else:
            kinds[name] = "str"
            values[name] = [("" if table_cell(v) is None else str(table_cell(v))) for v in column]
        names.append(name)
    return names, kinds, values


def colour_columns(table) -> dict[str, np.ndarray]:
    """Colours of adjacent bands from the per-band magnitudes of a results table.

    For every component k with magnitude columns ``<k>_MAG_<band>`` in two or more bands
    b_1, ..., b_n (in the table's column order):
    ``<k>_<b_i>-<b_i+1>`` = ``<k>_MAG_<b_i>`` - ``<k>_MAG_<b_i+1>`` [mag], and where both
    ``<k>_MAG_<b>_ERR`` columns exist, ``<k>_<b_i>-<b_i+1>_ERR`` = sqrt(err_i^2 +
    err_i+1^2): the two errors added in quadrature, which ignores their covariance (the
    magnitudes of one fit are correlated, e.g. through the shared size; the colour's
    true error can be smaller or larger).

    Args:
        table: an astropy Table or a mapping of column name -> values (NaN or masked
            where unknown).

    Returns:
        {column name: (N,) float array}, colours and their errors, in component order.
    """
    names = list(table.colnames) if hasattr(table, "colnames") else list(table)

    def column(name):
        return np.asarray(np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan), dtype=float)

    out = {}
    for k, bands in magnitude_bands(names).items():
        for b1, b2 in zip(bands, bands[1:]):
            name = f"{k}_{b1}-{b2}"
            out[name] = column(f"{k}_MAG_{b1}") - column(f"{k}_MAG_{b2}")
            e1, e2 = f"{k}_MAG_{b1}_ERR", f"{k}_MAG_{b2}_ERR"
            if e1 in names and e2 in names:
                out[name + "_ERR"] = np.hypot(column(e1), column(e2))
    return out


def _with_colours(names, kinds, values, table) -> tuple[list, list]:
    """Add :func:`colour_columns` to the report's columns, each component's after its
    last magnitude column; returns (names, the colour columns)."""
    colours = colour_columns(table)
    if not colours:
        return names, []
    for c, v in colours.items():
        kinds[c] = "num"
        values[c] = v.tolist()
    out = list(names)
    for k in sorted(magnitude_bands(names), reverse=True):
        mine = [c for c in colours if c.split("_", 1)[0] == str(k)]
        last = max(i for i, n in enumerate(out) if n.startswith(f"{k}_MAG_"))
        out[last + 1:last + 1] = mine
    return out, [c for c in colours if not c.endswith("_ERR")]


def _shown(names, kinds, values) -> list[str]:
    """Table columns: id, STATUS, CHI2NU, parameters that vary, then the rest (no errors)."""
    first = [n for n in ("id", "STATUS", "CHI2NU") if n in names]
    rest = []
    for n in names:
        if n in first or any(m in n for m in NOT_VALUES) or n in ("AUTO_INIT",):
            continue
        if kinds[n] == "num":
            finite = [v for v in values[n] if math.isfinite(v)]
            if finite and min(finite) == max(finite) and len(values[n]) > 1:
                continue  # a fixed parameter: the same in every row
        rest.append(n)
    return first + rest


def _histograms(values, kinds, shown, flags, path: pathlib.Path, first=()) -> bool:
    """At most 16 histograms of the shown numeric columns; those of ``first`` (the
    colours) are always among them."""
    ok = np.array([f != "failed" for f in flags])
    cols = [c for c in shown if kinds[c] == "num" and c not in ("NDOF", "ITERATIONS")]
    cols = [c for c in cols if np.isfinite(np.asarray(values[c], dtype=float)[ok]).sum() > 1]
    keep = [c for c in cols if c in first][:16]
    keep += [c for c in cols if c not in keep][:16 - len(keep)]
    cols = [c for c in cols if c in keep]
    if not cols:
        return False
    ncol = min(4, len(cols))
    nrow = int(math.ceil(len(cols) / ncol))
    fig = Figure(figsize=(2.3 * ncol, 1.6 * nrow), dpi=90)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.5 / (1.6 * nrow), top=1 - 0.1 / (1.6 * nrow),
                        wspace=0.25, hspace=0.65)
    for k, c in enumerate(cols):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        v = np.asarray(values[c], dtype=float)[ok]
        v = v[np.isfinite(v)]
        label = c
        if c == "CHI2NU" and v.size and v.min() > 0:
            v, label = np.log10(v), "log10 CHI2NU"
        lo, hi = np.percentile(v, [0.5, 99.5])
        if not hi > lo:
            lo, hi = lo - 0.5, hi + 0.5
        counts, edges = np.histogram(np.clip(v, lo, hi), bins=40, range=(lo, hi))
        ax.stairs(counts, edges, fill=True, color="0.45")
        ax.set_xlabel(label, fontsize=style.SMALL, labelpad=1)
        ax.tick_params(labelsize=style.SMALL - 1, pad=1)
    fig.savefig(path, format="png")
    return True


def _summary_html(values, kinds, shown, flags) -> str:
    n = len(flags)
    counts = {k: sum(1 for f in flags if f == k) for k in ("converged", "degenerate", "bound", "maxiter", "failed")}
    chi = np.asarray(values.get("CHI2NU", [math.nan] * n), dtype=float)
    finite = chi[np.isfinite(chi)]
    cards = [("galaxies", str(n)), ("converged", str(counts["converged"])), ("degenerate", str(counts["degenerate"])),
             ("hit a bound", str(counts["bound"])), ("max iterations", str(counts["maxiter"])),
             ("failed", str(counts["failed"]))]
    if finite.size:
        cards += [("median χ²/ν", f"{np.median(finite):.3f}"),
                  ("χ²/ν > 2", f"{int((finite > 2).sum())} ({100 * np.mean(finite > 2):.1f} %)")]
    out = ['<div class="cards">'] + [f'<div class="card"><div class="v">{html.escape(v)}</div>'
                                     f'<div class="k">{html.escape(k)}</div></div>' for k, v in cards] + ["</div>"]
    ok = np.array([f != "failed" for f in flags])
    rows = []
    for c in shown:
        if kinds[c] != "num" or c in ("NDOF", "ITERATIONS"):
            continue
        v = np.asarray(values[c], dtype=float)[ok]
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        p16, p50, p84 = np.percentile(v, [16, 50, 84])
        rows.append(f"<tr><td>{html.escape(c)}</td><td>{v.size}</td><td>{style.format_value(p50)}</td>"
                    f"<td>{style.format_value(p16)}</td><td>{style.format_value(p84)}</td>"
                    f"<td>{style.format_value(v.min())}</td><td>{style.format_value(v.max())}</td></tr>")
    if rows:
        out.append('<table class="stats"><tr><th>column</th><th>N</th><th>median</th><th>16 %</th><th>84 %</th>'
                   "<th>min</th><th>max</th></tr>" + "".join(rows) + "</table>")
    return "\n".join(out)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="report.css">
</head>
<body>
<header><h1 id="title">{title}</h1><p>{subtitle}</p></header>
<main>
<section id="summary"><h2>Summary</h2>
{summary}
{notes}
</section>
{histograms}
<section>
<h2>Galaxies</h2>
<div class="controls">
  <fieldset><legend>status</legend>
    <label><input type="checkbox" class="status-filter" value="converged" checked> converged</label>
    <label><input type="checkbox" class="status-filter" value="degenerate" checked> degenerate</label>
    <label><input type="checkbox" class="status-filter" value="bound" checked> hit a bound</label>
    <label><input type="checkbox" class="status-filter" value="maxiter" checked> max iterations</label>
    <label><input type="checkbox" class="status-filter" value="failed" checked> failed</label>
  </fieldset>
  <fieldset><legend>quick</legend>
    <button id="q-chi2" type="button">χ²/ν &gt; 2</button>
    <button id="q-bound" type="button">hit a bound</button>
    <button id="q-failed" type="button">failed</button>
    <button id="q-clear" type="button">clear filters</button>
  </fieldset>
  <fieldset><legend>range</legend>
    <select id="range-column"></select>
    <input id="range-min" type="number" step="any" placeholder="min">
    <input id="range-max" type="number" step="any" placeholder="max">
    <button id="range-add" type="button">add</button>
  </fieldset>
  <div id="active-filters"></div>
</div>
<div class="pager"><button id="prev" type="button">&larr; prev</button><span id="page-info"></span>
<button id="next" type="button">next &rarr;</button>
<label>rows per page <select id="page-size"><option>50</option><option selected>100</option><option>250</option>
<option>1000</option></select></label>
<span id="count"></span></div>
<table id="galaxies"><thead></thead><tbody></tbody></table>
</section>
</main>
<div id="detail" hidden><div class="box">
<div class="head"><h2 id="detail-title"></h2><span>
<button id="detail-prev" type="button">&larr;</button><button id="detail-next" type="button">&rarr;</button>
<button id="detail-close" type="button">close (Esc)</button></span></div>
<img id="detail-figure" alt="">
<p id="detail-note" class="note"></p>
<table id="detail-params"></table>
</div></div>
<script src="data.js"></script>
<script src="report.js"></script>
</body>
</html>
"""


def _select_figures(flags, values, figures, max_figures) -> list[int]:
    n = len(flags)
    if figures in (None, "none", False) or max_figures == 0:
        return []
    if figures == "all":
        chosen = [i for i in range(n) if flags[i] != "failed"]
    elif figures == "flagged":
        chi = values.get("CHI2NU", [math.nan] * n)
        chosen = [i for i in range(n) if flags[i] in ("degenerate", "bound", "maxiter")
                  or (flags[i] == "converged" and math.isfinite(chi[i]) and chi[i] > 2)]
        chosen.sort(key=lambda i: -(chi[i] if math.isfinite(chi[i]) else 0.0))
    elif isinstance(figures, (list, tuple, set)):
        chosen = [int(i) for i in figures]
    else:
        raise PlotError(f"figures must be 'flagged', 'all', 'none' or a list of rows, not {figures!r}")
    return sorted(chosen[:max_figures]) if max_figures is not None else sorted(chosen)


def write_report(results, out_dir, *, catalog=None, template=None, thumbnails: bool = True, figures="flagged",
                 max_figures: int | None = 100, progress: bool = True, background: bool = False,
                 workers: int = 2, title: str | None = None, stretch: str = "asinh"):
    """Write the report of a ``galprof batch`` results table into ``out_dir``.

    Args:
        results: the results table (a path), or a :class:`BatchResults`.
        catalog, template: override the table metadata's (needed to re-render rows).
        thumbnails: make ``thumbs/<row>.png`` for every row that can be re-rendered.
        figures: ``flagged`` (default), ``all``, ``none`` or a list of 0-based rows to
            make full figures for; at most ``max_figures`` (None: no limit).
        progress: tqdm progress bars on stderr.
        background: return as soon as the page is written, with the thumbnails and
            figures made by a background thread (returned as the second value; join it).
        workers: threads reading and preparing images.

    Returns:
        a :class:`ReportSummary` (or ``(ReportSummary, thread)`` with ``background``).
    """
    t0 = time.perf_counter()
    batch = results if isinstance(results, BatchResults) else BatchResults.open(results, catalog=catalog,
                                                                                  template=template)
    out = pathlib.Path(out_dir)
    try:
        (out / "thumbs").mkdir(parents=True, exist_ok=True)
        (out / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PlotError(f"cannot create the report directory {out}: {err.strerror or err}") from None
    names, kinds, values = _columns(batch.table)
    names, colours = _with_colours(names, kinds, values, batch.table)
    n = len(batch.table)
    statuses = values.get("STATUS", [""] * n)
    flags = [status_category(s) for s in statuses]
    shown = _shown(names, kinds, values)
    params = []
    for c in shown:
        if c in ("id", "STATUS"):
            continue
        params.append([c, c + "_ERR" if c + "_ERR" in kinds else None])
    notes = []
    can_render = not batch.problem
    if not can_render:
        notes.append(batch.problem + " (no thumbnails or figures)")
    fig_rows = _select_figures(flags, values, figures, max_figures) if can_render else []
    fig_flags = [0] * n
    for i in fig_rows:
        fig_flags[i] = 1
    data = {
        "title": title or f"galprof report: {batch.path.name}",
        "n": n,
        "kinds": {c: kinds[c] for c in names},
        "show": shown,
        "params": params,
        "thumbs": bool(thumbnails and can_render),
        "figures": fig_flags,
        "flag": flags,
        "command": f"galprof plot {batch.path}",
    }
    body = json.dumps(data, ensure_ascii=False)[:-1]
    parts = [body, ', "data": {']
    parts.append(",".join(f"{json.dumps(c)}:{_column_json(values[c], kinds[c])}" for c in names))
    parts.append("}}")
    (out / "data.js").write_text("window.GALPROF_REPORT = " + "".join(parts) + ";\n", encoding="utf-8")
    for asset in ("report.js", "report.css"):
        shutil.copyfile(_ASSETS / asset, out / asset)
    has_hist = _histograms(values, kinds, shown, flags, out / "histograms.png", first=colours)
    generated = datetime.datetime.now().replace(microsecond=0).isoformat()
    meta = {str(k).upper(): v for k, v in batch.table.meta.items()}
    subtitle = f"{html.escape(str(batch.path))} · {n} rows · galprof {meta.get('GALPROF', '')} · " \
               f"run {html.escape(str(meta.get('DATE', '?')))} · report {generated}"
    notes_html = "".join(f'<p class="note">{html.escape(s)}</p>' for s in notes)
    hist_html = ('<section><h2>Parameter histograms (rows that did not fail)</h2>'
                 '<img id="histograms" src="histograms.png" alt="parameter histograms"></section>') if has_hist else ""
    page = _PAGE.format(title=html.escape(data["title"]), subtitle=subtitle, summary=_summary_html(
        values, kinds, shown, flags), notes=notes_html, histograms=hist_html)
    (out / "index.html").write_text(page, encoding="utf-8")

    counter = {"thumbs": 0, "figures": 0}

    def images():
        if not can_render:
            return
        rows = [i for i in range(n) if flags[i] != "failed"] if thumbnails else []
        counter["thumbs"] = _thumbnails(batch, rows, out / "thumbs", progress=progress, workers=workers,
                                        stretch=stretch)
        counter["figures"] = _figures(batch, fig_rows, out / "figures", progress=progress, stretch=stretch)

    def summary():
        return ReportSummary(out / "index.html", n, counter["thumbs"], counter["figures"],
                             time.perf_counter() - t0, tuple(notes))

    if background:
        thread = threading.Thread(target=images, name="galprof-report-images", daemon=True)
        thread.start()
        return summary(), thread
    images()
    return summary()


def _bar(total, desc, progress):

    return tqdm(total=total, desc=desc, unit="gal", disable=not progress, dynamic_ncols=True, leave=True)


def _thumbnails(batch: BatchResults, rows, directory: pathlib.Path, *, progress, workers, stretch,
                chunk: int = 64) -> int:
    """Thumbnails of ``rows``: images prepared by a thread pool, models rendered in
    batches of ``chunk`` (one batch per cutout shape), PNGs written with imsave."""
    made = 0
    with _bar(len(rows), "thumbnails", progress) as bar, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        def prep(i):
            try:
                return i, batch.prepared(i)
            except PlotError:
                return i, None

        pending = [pool.submit(prep, i) for i in rows[:chunk]]
        start = chunk
        while pending:
            done = [f.result() for f in pending]
            pending = [pool.submit(prep, i) for i in rows[start:start + chunk]]
            start += chunk
            ready = [(i, p) for i, p in done if p is not None]
            if ready:
                try:
                    images = batch.render([p[0] for _, p in ready], [p[1] for _, p in ready],
                                          config=THUMBNAIL_RENDER)
                except (PlotError, ValueError, RuntimeError):
                    images = [None] * len(ready)
                for (i, (row, prepared)), comps in zip(ready, images):
                    if comps is None:
                        continue
                    data, model, sigma, mask = _thumbnail_band(prepared, comps)
                    bad = ~np.isfinite(data) | ~(np.isfinite(sigma) & (sigma > 0))
                    if mask is not None:
                        bad |= mask
                    rgb = thumbnail_rgb(data, model, sigma, bad, stretch=stretch)
                    _write_png(rgb, directory / f"{i}.png")
                    made += 1
            bar.update(len(done))
    return made


def _thumbnail_band(prepared, comps):
    """(data, model, sigma, mask) of a thumbnail: the row's, or for a multi-band row
    ((K, C, H, W) components) those of its middle band, K // 2."""
    if comps.ndim == 4:
        k = comps.shape[0] // 2
        mask = None if prepared.mask is None else prepared.mask[k]
        return prepared.image[k], comps[k].sum(0), prepared.sigma[k], mask
    return prepared.image, comps.sum(0), prepared.sigma, prepared.mask


def _figures(batch: BatchResults, rows, directory: pathlib.Path, *, progress, stretch) -> int:
    made = 0
    with _bar(len(rows), "figures", progress) as bar:
        for i in rows:
            try:
                view = batch.view(i)
                if isinstance(view, MultiBandView):
                    fig = multiband_figure(view, stretch=stretch, dpi=80)
                else:
                    fig = fit_figure(view, stretch=stretch, dpi=80)
                save_figure(fig, directory / f"{i}.png")
                made += 1
            except (PlotError, ValueError, RuntimeError):
                pass
            bar.update(1)
    return made
