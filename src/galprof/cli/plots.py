"""``galprof plot``, ``galprof compare`` and ``galprof report``: argument parsers and
command functions over :mod:`galprof.plots`."""

from __future__ import annotations

import pathlib
import sys

from ..plots.compare import compare_figure, compare_tables, format_summary, parse_column_map
from ..plots.figure import fit_figure, save_figure
from ..plots.images import image_figure
from ..plots.multiband import multiband_figure
from ..plots.profile1d import profile_figure
from ..plots.report import write_report
from ..plots.sources import MultiBandView, load_result

__all__ = ["add_parsers", "run"]

COMMANDS = ("plot", "compare", "report")


def add_parsers(sub) -> None:
    """Add the ``plot``, ``compare`` and ``report`` sub-commands to ``sub``."""
    p = sub.add_parser("plot", help="per-galaxy figure: data/model/residual panels and the 1-D profile",
                       description="Plot one fit: RESULT is a GALFIT image block, a GALFITM multi-band image block "
                                   "(one row per band), an imfit best-fit file (with its image) or a galprof batch "
                                   "results table (with --row). The format of -o follows its extension (.png, .pdf, "
                                   ".svg).")
    p.add_argument("result", help="image block (.fits, GALFIT or GALFITM), imfit best-fit file, or results table")
    p.add_argument("--row", action="append", help="row of a results table: its id, or '#N' (0-based); repeatable")
    p.add_argument("-o", "--output", help="output file (.png, .pdf, .svg); default <name>_fit.png beside RESULT")
    p.add_argument("--kind", default="both", choices=["both", "images", "profile"],
                   help="image panel, 1-D profile, or both side by side (default)")
    p.add_argument("--stretch", default="asinh", choices=["asinh", "log"], help="stretch of data and model")
    p.add_argument("--residual-range", type=float, default=5.0, help="residual colour scale: +-N sigma")
    p.add_argument("--linear-radius", action="store_true", help="linear radius axis (default: log)")
    p.add_argument("--image", help="imfit: the fitted image (default: from the best-fit file's header)")
    p.add_argument("--psf", help="PSF image (default: the one recorded); multi-band: one for every band or "
                                 "a comma-separated list of one per band")
    p.add_argument("--mask", help="mask image (default: the one recorded); multi-band: as --psf")
    p.add_argument("--sigma", help="sigma / noise image (default: the one recorded, or from the data); "
                                   "multi-band: as --psf")
    p.add_argument("--catalog", help="results table: the batch catalog (default: the table metadata's)")
    p.add_argument("--template", help="results table: the batch template (default: the table metadata's)")
    p.add_argument("--zeropoint", type=float, help="magnitude zeropoint for mag/arcsec^2 (imfit has none)")
    p.add_argument("--pixel-scale", type=float, nargs=2, metavar=("DX", "DY"), help="plate scale [arcsec/pix]")
    p.add_argument("--dpi", type=float, default=150)

    c = sub.add_parser("compare", help="compare two results tables (or galprof vs a reference catalog)",
                       description="Match A and B by id and compare every parameter column they share (or those "
                                   "of --columns): scatter plots with the one-to-one line, histograms of the "
                                   "differences with median and robust scatter, outliers listed.")
    c.add_argument("a", help="table A (e.g. galprof's results)")
    c.add_argument("b", help="table B (e.g. a reference catalog such as GALFIT's results)")
    c.add_argument("--map", action="append", default=[], metavar="COL_A=COL_B",
                   help="B's name of A's column (repeatable), e.g. --map 1_RE=re_galfit")
    c.add_argument("--columns", help="comma-separated columns of A to compare (default: all shared parameters)")
    c.add_argument("--id-column", default="id", help="id column of A (and of B unless --id-column-b)")
    c.add_argument("--id-column-b", help="id column of B")
    c.add_argument("--labels", nargs=2, metavar=("A", "B"), help="names of A and B in the figure")
    c.add_argument("--outlier-sigma", type=float, default=5.0, help="outliers: beyond N robust sigma")
    c.add_argument("-o", "--output", default="compare.png", help="figure (.png, .pdf, .svg)")

    r = sub.add_parser("report", help="static HTML report of a batch run (opens from disk)",
                       description="Write DIR/index.html: summary statistics, parameter histograms, a sortable, "
                                   "filterable table of all galaxies with thumbnails, and full figures of flagged "
                                   "fits. Nothing is fetched from the network.")
    r.add_argument("results", help="galprof batch results table")
    r.add_argument("--out", required=True, help="report directory")
    r.add_argument("--catalog", help="the batch catalog (default: the table metadata's)")
    r.add_argument("--template", help="the batch template (default: the table metadata's)")
    r.add_argument("--figures", default="flagged", choices=["flagged", "all", "none"],
                   help="full per-galaxy figures for flagged fits (not converged or chi2nu > 2), all, or none")
    r.add_argument("--max-figures", type=int, default=100, help="at most this many full figures")
    r.add_argument("--no-thumbnails", action="store_true", help="no thumbnails")
    r.add_argument("--workers", type=int, default=2, help="threads reading images")
    r.add_argument("--title", help="page title")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def _plot(args) -> int:
    rows = args.row or [None]
    if len(rows) > 1 and args.output and "{" not in args.output:
        stem = pathlib.Path(args.output)
        outputs = [str(stem.with_name(f"{stem.stem}_{k}{stem.suffix}")) for k in range(len(rows))]
    else:
        outputs = [args.output] * len(rows)
    for row, output in zip(rows, outputs):
        view = load_result(args.result, row=row, image=args.image, psf=args.psf, mask=args.mask, sigma=args.sigma,
                           catalog=args.catalog, template=args.template, pixel_scale=args.pixel_scale,
                           zeropoint=args.zeropoint)
        if isinstance(view, MultiBandView):
            fig = multiband_figure(view, kind=args.kind, stretch=args.stretch, residual_range=args.residual_range,
                                   log_radius=not args.linear_radius, dpi=args.dpi)
        elif args.kind == "images":
            fig = image_figure(view, stretch=args.stretch, residual_range=args.residual_range, dpi=args.dpi)
        elif args.kind == "profile":
            fig = profile_figure(view, log_radius=not args.linear_radius, dpi=args.dpi)
        else:
            fig = fit_figure(view, stretch=args.stretch, residual_range=args.residual_range,
                             log_radius=not args.linear_radius, dpi=args.dpi)
        if output is None:
            base = pathlib.Path(args.result)
            name = view.name if row is not None else base.stem
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
            output = str(base.with_name(f"{pathlib.Path(safe).stem}_fit.png"))
        elif "{" in output:
            output = output.format(id=view.name)
        path = save_figure(fig, output)
        print(f"galprof plot: {view.name} -> {path}")
    return 0


def _compare(args) -> int:
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    labels = tuple(args.labels) if args.labels else (pathlib.Path(args.a).stem, pathlib.Path(args.b).stem)
    comparison = compare_tables(args.a, args.b, columns=columns, column_map=parse_column_map(args.map),
                                id_column=args.id_column, id_column_b=args.id_column_b, labels=labels,
                                outlier_sigma=args.outlier_sigma)
    print(format_summary(comparison))
    path = save_figure(compare_figure(comparison), args.output)
    print(f"galprof compare: figure -> {path}")
    return 0


def _report(args) -> int:
    summary = write_report(args.results, args.out, catalog=args.catalog, template=args.template,
                           thumbnails=not args.no_thumbnails, figures=args.figures, max_figures=args.max_figures,
                           progress=not args.quiet, workers=args.workers, title=args.title)
    for note in summary.notes:
        print(f"galprof report: note: {note}", file=sys.stderr)
    print(f"galprof report: {summary.n_rows} rows, {summary.n_thumbnails} thumbnails, {summary.n_figures} figures "
          f"in {summary.seconds:.1f} s -> {summary.index}")
    return 0


def run(args) -> int:
    """Run ``galprof plot|compare|report``; bad input raises a GalprofError (PlotError,
    InputError, FeedmeError), which the command line prints without a traceback."""
    return {"plot": _plot, "compare": _compare, "report": _report}[args.command](args)
