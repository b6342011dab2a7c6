"""``galprof batch``: a catalog with a template, or a list of feedmes, through the runner.

Both go through :func:`galprof.pipeline.runner.run_batch`: streamed chunks, checkpoints
under ``<output>.parts/`` (rerun the same command to resume), Dask, failure isolation
and one results schema (:mod:`galprof.io.results`).
"""

from __future__ import annotations

import pathlib

from ..errors import ModelError, UsageError
from ..fitting.bands import parse_bands
from ..io.results import check_table_path
from ..pipeline.runner import run_batch
from ..pipeline.sources import feedme_sources, read_catalog, template_from_file, with_bands
from .fit import report_failures
from .options import add_engine_arguments, add_error_arguments, add_runner_arguments, batch_options, dask_client


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="fit a catalog of cutouts (or many feedmes) in streamed, checkpointed batches",
                       description="Fit every row of CATALOG (CSV, ECSV, FITS table or Parquet: id, image and "
                                   "optional sigma, psf, mask, segmentation/target_label and <k>_<KEY> initial "
                                   "values) with the model of --template (a GALFIT feedme or an imfit config), or "
                                   "every GALFIT feedme given (each with its usual outputs). Rerun the same "
                                   "command to resume after an interruption.")
    p.add_argument("catalog", nargs="+", help="a catalog table, or GALFIT feedme files")
    p.add_argument("--template", help="GALFIT feedme or imfit configuration giving the model (catalog mode)")
    p.add_argument("-o", "--output", required=True, help="results table: .fits, .parquet, .csv or .ecsv")
    p.add_argument("--id-column", default="id")
    p.add_argument("--image-column", default="image",
                   help="column of the image path (multi-band: <column>_<band> per band)")
    p.add_argument("--bands", metavar="LABEL:WAVELENGTH,...",
                   help="fit every band of a single-band template together: band labels and wavelengths, e.g. "
                        "g:4770,r:6231,i:7625 (the catalog then has image_<band> columns; magnitudes free per "
                        "band, structure shared); a GALFITM multi-band template brings its own")
    add_runner_arguments(p)
    add_engine_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_error_arguments(p)


def _is_feedme(name: str) -> bool:
    return name.lower().endswith(".feedme") or pathlib.Path(name).name.startswith("galfit.")


def run(args) -> int:
    check_table_path(args.output)
    feedmes = all(_is_feedme(name) for name in args.catalog)
    options = batch_options(args, pad_shapes=feedmes)
    if feedmes:
        if args.template or args.bands:
            raise UsageError("--template and --bands are for a catalog; feedmes carry their own models and bands")
        if args.id_column != "id" or args.image_column != "image":
            raise UsageError("--id-column and --image-column are for a catalog; a feedme's id is its path")
        sources, template, catalog = feedme_sources(args.catalog), None, None
    else:
        if len(args.catalog) != 1 or not args.template:
            raise UsageError("galprof batch takes one catalog with --template, or a list of feedme files")
        catalog = args.catalog[0]
        template = template_from_file(args.template)
        if args.bands:
            try:
                bands = parse_bands(args.bands)
            except ModelError as err:
                raise UsageError(f"--bands: {err}") from None
            template = with_bands(template, bands)
        sources = read_catalog(catalog, template, id_column=args.id_column, image_column=args.image_column)
    with dask_client(args) as client:
        summary = run_batch(sources, template, args.output, options, progress=not args.quiet, client=client,
                            catalog=catalog)
    rate = summary.n_fitted_now / summary.seconds if summary.seconds > 0 else float("nan")
    kind = "feedmes" if feedmes else "galaxies"
    print(f"galprof batch: {summary.n_galaxies} {kind} ({summary.n_fitted_now} fitted now, {rate:.1f}/s, "
          f"{summary.seconds_waiting:.1f} s of {summary.seconds:.1f} s waiting on input), "
          f"{summary.n_failed} failed -> {summary.output}")
    if feedmes:  # as galprof fit: a feedme that failed is an error of the command
        report_failures(summary.table)
        return 2 if summary.n_failed or summary.n_output_errors else 0
    return 2 if summary.n_output_errors else 0
