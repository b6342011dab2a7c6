"""``galprof fit FEEDME [FEEDME ...]``: GALFIT's command line, galprof's engine.

Each feedme is a source of :func:`galprof.pipeline.runner.run_batch`: feedmes with the
same kind of model and frame are fitted together in one batch, each one gets GALFIT's
outputs (image block, ``galfit.NN``, ``fit.log``) as if fitted alone, and a feedme that
cannot be read or fitted is reported while the others go on (exit status 2). Relative
file names in a feedme are resolved against the current directory, as GALFIT does.
Conventions are GALFIT's: 1-based pixels, PA in degrees counter-clockwise from +y,
sizes along the major axis [pix], q = b/a.
"""

from __future__ import annotations

import pathlib
import sys

from astropy.table import Table

from ..errors import UsageError
from ..io.results import is_failed, parameter_column, write_covariance, write_table
from ..pipeline.runner import run_batch
from ..pipeline.sources import feedme_sources
from .options import (
    add_engine_arguments,
    add_error_arguments,
    add_runner_arguments,
    batch_options,
    dask_client,
)


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="fit GALFIT feedme file(s) and write GALFIT's outputs")
    p.add_argument("feedme", nargs="+")
    add_engine_arguments(p)
    add_error_arguments(p)
    add_runner_arguments(p)
    p.add_argument("-o", "--output", help="also write a results table (.fits, .parquet, .csv, .ecsv); with it a "
                                          "killed run resumes where it stopped")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--covariance-file", help="write each feedme's covariance matrix of the varying parameters "
                                             "(FITS, one HDU per feedme; see docs/uncertainties.md)")
    p.add_argument("--save-bootstrap", help="with --errors bootstrap: write every replicate's parameters "
                                            "(table by extension: .csv, .ecsv, .fits)")


def report_failures(table) -> int:
    """Print each failed row's reason on stderr; the number of failures."""
    failed = 0
    for gid, status in zip(table["id"], table["STATUS"]):
        if is_failed(status):
            reason = str(status)[len("failed: "):]
            print(f"galprof: error: {reason if str(gid) in reason else f'{gid}: {reason}'}", file=sys.stderr)
            failed += 1
    return failed


def _bootstrap_table(collected) -> Table:
    """One row per replicate and feedme: id, REPLICATE and <k>_<KEY>."""
    rows = []
    for result, b, label, extra in collected:
        if extra is None or not hasattr(extra, "replicates"):
            continue
        for k in range(extra.n_replicates):
            row = {"id": label, "REPLICATE": k}
            row.update({parameter_column(c, n): float(extra.replicates[k, b, j])
                        for j, (c, n) in enumerate(extra.names)})
            rows.append(row)
    if not rows:
        raise UsageError("--save-bootstrap needs --errors bootstrap")
    names = list(rows[0])
    return Table({n: [r[n] for r in rows] for n in names}, names=names)


def run(args) -> int:
    if args.save_bootstrap and args.errors != "bootstrap":
        raise UsageError("--save-bootstrap needs --errors bootstrap")
    if (args.covariance_file or args.save_bootstrap) and (args.scheduler or args.dask_workers):
        raise UsageError("--covariance-file and --save-bootstrap collect results in this process; they cannot come "
                         "back from Dask workers (run without --scheduler / --dask-workers for them)")
    options = batch_options(args, verbose=not args.quiet, pad_shapes=True)
    sources = feedme_sources(args.feedme)
    collected: list = []
    keep = None
    if args.covariance_file or args.save_bootstrap:
        def keep(prepared, result, b, extra):
            collected.append((result, b, prepared.source.id, extra))
    with dask_client(args) as client:
        summary = run_batch(sources, None, args.output, options, progress=not args.quiet and len(sources) > 1,
                            client=client, on_fitted=keep)
    failed = report_failures(summary.table)
    if args.covariance_file:
        write_covariance(args.covariance_file, [(r, b, label) for r, b, label, _ in collected])
        if not args.quiet:
            print(f"wrote {args.covariance_file}")
    if args.save_bootstrap:
        write_table(_bootstrap_table(collected), pathlib.Path(args.save_bootstrap))
        if not args.quiet:
            print(f"wrote {args.save_bootstrap}")
    if args.output and not args.quiet:
        print(f"galprof fit: {summary.n_galaxies} feedmes, {failed} failed -> {args.output}")
    return 2 if failed or summary.n_output_errors else 0
