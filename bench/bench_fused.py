"""Benchmark: fused kernels (``RenderConfig(fused=True)``, ``--fused``) against the
operation-by-operation engine, alternated in one process (issue 23).

The galaxies of bench_fit.py (128x128 single Sersic + sky, 25x25 Moffat ePSF, offset
starts) are fitted with ``galprof.fit`` in rounds that alternate the two engines; the
first fused call's compilation is timed apart (a fit of 2 galaxies) and reported. Prints
galaxies/s per round, the median of each engine, the success rate (n, R_e, mag within 1 %)
and the largest difference between the two engines' fitted values. Not a test.

Run: python bench/bench_fused.py [--batch 64] [--size 128] [--rounds 2] [--dtype float32] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from galprof import Component, Model, fit
from galprof.render.config import RenderConfig
from galprof.render.fusion import fusion_status
from bench_fit import moffat_psf, offset_start, simulate, success
from host_speed import host_speed


def fit_once(images, start, psf, sky, config, dtype, device):
    model = Model([Component("sersic", start),
                   Component("sky", dict(sky=sky, dsdx=0.0, dsdy=0.0), fixed=frozenset({"dsdx", "dsdy"}))])
    tic = time.perf_counter()
    result = fit(model, images, psf=psf, zeropoint=25.0, dtype=dtype, device=device, config=config)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result, time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    print(f"bench_fused: torch {torch.__version__}, {torch.get_num_threads()} threads, load "
          f"{os.getloadavg()[0]:.2f}/{os.getloadavg()[1]:.2f}; {host_speed()}; {args.batch} galaxies "
          f"{args.size}x{args.size}, {args.dtype}, {args.device}")
    rng = np.random.default_rng(args.seed)
    psf = moffat_psf()
    truth, sky, images = simulate(args.batch, args.size, rng, psf)
    start = offset_start(truth, rng)
    eager, fused = RenderConfig(), RenderConfig(fused=True)

    tic = time.perf_counter()
    fit_once(images[:2], {k: v[:2] for k, v in start.items()}, psf, sky[:2], fused, dtype, args.device)
    compile_s = time.perf_counter() - tic
    print(f"first fused fit (2 galaxies, compilation included): {compile_s:.1f} s; fusion: {fusion_status()}")
    rates = {"eager": [], "fused": []}
    per_iteration = {"eager": [], "fused": []}  # galaxy-iterations per second: paths differ in rounding
    results = {}
    for r in range(args.rounds):
        for name, config in (("eager", eager), ("fused", fused)):
            result, seconds = fit_once(images, start, psf, sky, config, dtype, args.device)
            rates[name].append(args.batch / seconds)
            per_iteration[name].append(float(result.iterations.sum()) / seconds)
            results[name] = result
            print(f"round {r + 1} {name:5s}: {args.batch / seconds:6.2f} gal/s ({seconds:.1f} s), median "
                  f"{np.median(result.iterations):.0f} iterations, success {success(result, truth).mean():.3f}, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    diff = np.nanmax(np.abs(results["fused"].values - results["eager"].values) / np.maximum(results["eager"].errors, 1e-12))
    print(f"median gal/s: eager {np.median(rates['eager']):.2f}, fused {np.median(rates['fused']):.2f} "
          f"(x{np.median(rates['fused']) / np.median(rates['eager']):.2f}); galaxy-iterations/s: eager "
          f"{np.median(per_iteration['eager']):.1f}, fused {np.median(per_iteration['fused']):.1f} "
          f"(x{np.median(per_iteration['fused']) / np.median(per_iteration['eager']):.2f}); largest |fused - eager| / error "
          f"{diff:.2e}; compilation {compile_s:.1f} s = {compile_s * np.median(rates['fused']):.0f} galaxies' worth")


if __name__ == "__main__":
    main()
