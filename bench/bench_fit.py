"""Benchmark: fit a batch of simulated 128x128 galaxies (single Sersic + sky, 25x25 PSF).

Prints galaxies per second (end to end: rendering the truth excluded), median LM
iterations, peak memory (host RSS; on CUDA also torch.cuda.max_memory_allocated) and the
success rate from offset starts. Not a test: no assertions. Run:
python bench/bench_fit.py [--batch 64] [--device cpu|cuda] [--dtype float32] [--cpu-workers W] [--repeat N]
The truth images are rendered on --device (float64), so that large GPU batches need no
long CPU render first; --repeat fits the same batch again (the first fit pays the one-off
costs: CUDA library handles, caches).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch

from galprof import Component, Model, RenderConfig, fit
from galprof.optimise.lm import LMSettings
from galprof.profiles import get_profile
from galprof.render.fusion import fusion_status
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model
from host_speed import host_speed


def moffat_psf(size=25, fwhm=2.8, beta=3.5, oversample=9):
    """A Moffat ePSF stamp (pixel-integrated by oversampling), centre at index size // 2."""
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    sub = (np.arange(size * oversample) - (size * oversample - 1) / 2) / oversample
    r2 = sub[:, None] ** 2 + sub[None, :] ** 2
    fine = (1 + r2 / alpha**2) ** (-beta)
    stamp = fine.reshape(size, oversample, size, oversample).sum((1, 3))
    return stamp / stamp.sum()


def simulate(batch, size, rng, psf, noise_sigma=None, device="cpu"):
    """Truth table and images rendered by galprof in float64 on ``device`` (the benchmark
    measures speed)."""
    truth = dict(
        x=size / 2 + 0.5 + rng.uniform(-2, 2, batch), y=size / 2 + 0.5 + rng.uniform(-2, 2, batch),
        mag=rng.uniform(17, 19, batch), r_e=rng.uniform(2, 12, batch), n=rng.uniform(0.6, 5, batch),
        q=rng.uniform(0.3, 1.0, batch), pa=rng.uniform(-89, 89, batch),
    )
    sky = rng.uniform(-1, 1, batch)
    comps = [(get_profile("sersic"), {k: torch.tensor(v, device=device) for k, v in truth.items()}),
             (get_profile("sky"), {"sky": torch.tensor(sky, device=device),
                                   "dsdx": torch.zeros(batch, dtype=torch.float64, device=device),
                                   "dsdy": torch.zeros(batch, dtype=torch.float64, device=device)})]
    frame = Frame(1, 1, size, size, zeropoint=25.0)
    images = render_model(comps, frame, prepare_psf(psf, device=device)).cpu().numpy()
    if noise_sigma is not None:
        images = images + rng.normal(0, noise_sigma, images.shape)
    return truth, sky, images


def offset_start(truth, rng):
    b = len(truth["x"])
    return dict(
        x=truth["x"] + rng.uniform(-2, 2, b), y=truth["y"] + rng.uniform(-2, 2, b),
        mag=truth["mag"] + rng.uniform(-1, 1, b), r_e=truth["r_e"] * np.exp(rng.uniform(np.log(0.4), np.log(2.5), b)),
        n=rng.uniform(0.5, 6, b), q=np.clip(truth["q"] + rng.uniform(-0.3, 0.3, b), 0.05, 1.0),
        pa=truth["pa"] + rng.uniform(-45, 45, b),
    )


def success(result, truth):
    ok = np.ones(len(truth["x"]), dtype=bool)
    ok &= np.abs(result.value(1, "n") / truth["n"] - 1) < 0.01
    ok &= np.abs(result.value(1, "r_e") / truth["r_e"] - 1) < 0.01
    ok &= np.abs(result.value(1, "mag") - truth["mag"]) < 0.01
    return ok


def success_noisy(result, truth, pulls=5.0):
    ok = np.ones(len(truth["x"]), dtype=bool)
    for name in ("n", "r_e", "mag"):
        ok &= np.abs(result.value(1, name) - truth[name]) < pulls * result.error(1, name)
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--starts", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.0,
                        help="Gaussian noise sigma [ADU] added to the images (0: noise-free; success is "
                             "then judged against the errors: |n, R_e, mag - truth| < 5 sigma)")
    parser.add_argument("--cpu-workers", type=int, default=None,
                        help="workers on the CPU (default: one per intra-op thread; 1: no split)")
    parser.add_argument("--cpu-worker-kind", default=None, choices=("process", "thread"),
                        help="CPU workers: forked processes (default on Linux) or threads")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="LM iterations per stage at most (default: LMSettings')")
    parser.add_argument("--repeat", type=int, default=1, help="fit the batch this many times, each timed (default 1)")
    parser.add_argument("--fused", action="store_true", help="RenderConfig(fused=True): torch.compile'd render chains")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    psf = moffat_psf()
    truth, sky, images = simulate(args.batch, args.size, rng, psf, noise_sigma=args.noise or None,
                                  device=args.device)
    start = offset_start(truth, rng)
    model = Model([Component("sersic", start),
                   Component("sky", dict(sky=np.zeros(args.batch), dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    sigma = np.full(images.shape, args.noise or 0.1)
    extra = {} if args.max_iter is None else {"lm_settings": LMSettings(max_iterations=args.max_iter)}
    if args.fused:
        extra["config"] = RenderConfig(fused=True)
    rates = []
    for _ in range(max(1, args.repeat)):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        result = fit(model, images, sigma=sigma, psf=psf, zeropoint=25.0, dtype=getattr(torch, args.dtype),
                     device=args.device, n_starts=args.starts, cpu_workers=args.cpu_workers,
                     cpu_worker_kind=args.cpu_worker_kind, **extra)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        rates.append(args.batch / elapsed)
    ok = success(result, truth) if not args.noise else success_noisy(result, truth)
    print(f"device={args.device} dtype={args.dtype} batch={args.batch} size={args.size} starts={args.starts} "
          f"noise={args.noise} "
          f"threads={torch.get_num_threads()} cpu_workers={args.cpu_workers or 'auto'} "
          f"cpu_worker_kind={args.cpu_worker_kind or 'auto'} max_iter={args.max_iter or 'default'}"
          + (f" fused={fusion_status()}" if args.fused else ""))
    print(f"galaxies/s = {args.batch / elapsed:.2f}  (wall {elapsed:.1f} s)"
          + ("" if len(rates) == 1 else "  [every fit: " + ", ".join(f"{r:.2f}" for r in rates) + "]"))
    print(host_speed())
    print(f"median LM iterations = {np.median(result.iterations):.0f}")
    print(f"success rate from offset starts = {ok.mean():.3f} ({ok.sum()}/{len(ok)})")
    print(f"converged = {result.converged.mean():.3f}")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory = {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak host RSS = {own:.0f} MiB (this process) + {children:.0f} MiB (largest worker process)")
    # a one-off cost to watch: torch's symbolic-shape module (tensor grad_outputs,
    # torch.broadcast_shapes) imports sympy, 0.35 s in a process's first fit
    print(f"sympy imported by the fit: {'yes' if 'sympy' in sys.modules else 'no'}")
    bad = np.flatnonzero(~ok)
    for b in bad[:10]:
        print("  failed:", {k: round(float(v[b]), 3) for k, v in truth.items()},
              "fit n=%.3f re=%.3f" % (result.value(1, "n")[b], result.value(1, "r_e")[b]))


if __name__ == "__main__":
    main()
