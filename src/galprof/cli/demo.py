"""``galprof demo``: a simulated survey fitted with the runner, then figures and reports.

``galprof demo --quick`` instead fits a handful of galaxies simulated in memory with
:func:`galprof.fit` and prints truth against fit.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from ..pipeline.demo import run_quick_demo, run_survey_demo, truth_table
from ..plots import (BatchResults, MultiBandView, compare_figure, compare_tables, fit_figure, multiband_figure,
                     save_figure, write_report)


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="simulate a small survey, fit it with galprof batch, print truth vs fit")
    p.add_argument("--galaxies", type=int, default=200,
                   help="single-Sersic cutouts (bulge+disk: 30 %% of this; g, r, i multi-band galaxies: 20 %%)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--directory", default=None, help="where to write the survey (default: a new temporary one)")
    p.add_argument("--no-plots", action="store_true", help="no figures or reports after the fits")
    p.add_argument("--quick", action="store_true",
                   help="instead: a handful of galaxies simulated in memory and fitted with galprof.fit")


def run(args) -> int:
    if args.quick:
        run_quick_demo(min(args.galaxies, 20), args.seed)
        return 0
    summaries = run_survey_demo(args.galaxies, max(1, int(round(0.3 * args.galaxies))), args.seed, args.directory,
                                n_multiband=max(1, int(round(0.2 * args.galaxies))))
    if not args.no_plots:
        t1 = time.perf_counter()
        paths = write_demo_plots(summaries["directory"], summaries["truths"])
        print(f"\nfigures and reports ({time.perf_counter() - t1:.1f} s):")
        for label, path in paths:
            print(f"  {label:<34s} {path}")
    return 0


def write_demo_plots(directory: pathlib.Path, truths: dict, *, progress: bool = True) -> list[tuple[str, str]]:
    """Per-galaxy figures, fit-vs-truth comparisons and the HTML reports of the demo's
    results tables (single Sersic, bulge + disk and, when simulated, the g, r, i survey:
    a row per band), under ``directory/plots``. Returns (label, path) pairs."""
    out = directory / "plots"
    out.mkdir(exist_ok=True)
    paths = []
    for kind in [k for k in ("sersic", "bulgedisk", "multiband") if k in truths]:
        results = BatchResults.open(directory / f"{kind}_results.fits")
        statuses = [str(s) for s in results.table["STATUS"]]
        chi = np.asarray(results.table["CHI2NU"], dtype=float)
        good = [i for i, s in enumerate(statuses) if s == "converged"]
        chosen = good[:1]
        flagged = [i for i, s in enumerate(statuses) if not s.startswith("failed") and s != "converged"]
        if flagged:
            chosen.append(max(flagged, key=lambda i: chi[i] if np.isfinite(chi[i]) else 0.0))
        for i in chosen:
            view = results.view(i)
            figure = multiband_figure(view) if isinstance(view, MultiBandView) else fit_figure(view)
            path = save_figure(figure, out / f"{view.name}.png")
            paths.append((f"{kind} fit ({view.status})", str(path)))
        truth = truth_table(truths[kind], kind)
        truth_path = directory / f"{kind}_truth.ecsv"
        truth.write(truth_path, format="ascii.ecsv", overwrite=True)
        comparison = compare_tables(truth, results.table, labels=("truth", "galprof"))
        path = save_figure(compare_figure(comparison), out / f"{kind}_compare_truth.png")
        paths.append((f"{kind} fit vs truth", str(path)))
        summary = write_report(results, out / f"report_{kind}", figures="flagged", max_figures=3, progress=progress)
        paths.append((f"{kind} report ({summary.n_thumbnails} thumbnails)", str(summary.index)))
    return paths
