"""Benchmark: `galprof batch` on a simulated catalog (single Sersic + sky, 64x64 cutouts,
four Moffat ePSFs, sky + Poisson noise, neighbours in a third of the cutouts, automatic
initial values). Prints galaxies per second end to end, the time the fitting loop waited
on image preparation, peak RSS, and the fraction of fits that reach the truth.
Not a test. Run: python bench/bench_batch.py [--galaxies 2000] [--batch-size 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from astropy.table import Table

from galprof.pipeline.sources import read_catalog, template_from_file
from galprof.pipeline.demo import simulate, summarise
from galprof.pipeline.runner import BatchOptions, run_batch


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--galaxies", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--directory", default=None)
    args = parser.parse_args()
    directory = Path(args.directory or tempfile.mkdtemp(prefix="galprof-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    truths = simulate(directory, args.galaxies, 0, seed=7)
    simulated = time.perf_counter() - t0
    template = template_from_file(str(directory / "sersic.feedme"))
    sources = read_catalog(str(directory / "sersic.csv"), template)
    options = BatchOptions(batch_size=args.batch_size, dtype=getattr(torch, args.dtype), device=args.device,
                           workers=args.workers)
    summary = run_batch(sources, template, directory / "results.fits", options, progress=False)
    result = summarise(Table.read(directory / "results.fits"), truths["sersic"], "sersic")
    print(f"device={args.device} dtype={args.dtype} batch={args.batch_size} galaxies={len(sources)} "
          f"(simulated in {simulated:.0f} s) threads={torch.get_num_threads()}")
    print(f"galaxies/s = {summary.n_fitted_now / summary.seconds:.2f} (wall {summary.seconds:.1f} s)")
    print(f"waiting on input = {summary.seconds_waiting:.2f} s ({100 * summary.seconds_waiting / summary.seconds:.1f} %)")
    print(f"failed = {summary.n_failed} (2 deliberately broken rows)")
    print(f"peak RSS = {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"reach the truth (n, r_e within 10 %, mag 0.1) = {result['success']:.3f}; "
          f"within 3 sigma = {result['within_3_sigma']:.3f}")
    for name, (median, scatter) in result["checks"].items():
        print(f"  {name:<12} median {median:+.4f} scatter {scatter:.4f}")


if __name__ == "__main__":
    main()
