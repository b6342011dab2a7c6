"""Benchmark: how the cost of a fit grows with the number of components (issue 23).

A field of 96x78 pixels (a DECaLS cut-out's size) holds N Sersic galaxies plus a sky,
rendered by galprof in float64 with a Moffat ePSF and Gaussian noise; galprof fits it
from starts offset from the truth (centres +-0.5 px, magnitudes +-0.2, sizes x0.8-1.25,
n +-0.3). For N = 1, 2, 5, 10, 25 it prints the wall time of the whole fit, its LM
iterations, the time per iteration, the peak RSS, and the time of one pass of each
piece of an iteration at the start (Jacobian, render, d values / d coordinates with and
without constraints), so that a piece growing faster than N shows. Not a test.

Run: python bench/bench_components.py [--components 1 2 5 10 25] [--fields 1] [--tie]
(--tie ties every galaxy's centre to its start with offsets to the first: constraints,
so the chain rule through the constraints runs in every Jacobian pass).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from galprof import Component, Model, fit
from galprof.constraints import Tie
from galprof.fitting import ModelFunctions, prepare_fit
from galprof.profiles import get_profile
from galprof.render.config import RenderConfig
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model
from bench_fit import moffat_psf
from host_speed import host_speed

HEIGHT, WIDTH = 78, 96
ZP = 22.5


def truths(n: int, fields: int, rng) -> list[dict]:
    out = []
    for _ in range(n):
        out.append(dict(x=rng.uniform(8, WIDTH - 8, fields), y=rng.uniform(8, HEIGHT - 8, fields),
                        mag=rng.uniform(17.5, 20.5, fields), r_e=rng.uniform(1.5, 5.0, fields),
                        n=rng.uniform(0.8, 3.5, fields), q=rng.uniform(0.4, 0.95, fields),
                        pa=rng.uniform(-85, 85, fields)))
    return out


def offset(t: dict, rng) -> dict:
    f = len(t["x"])
    return dict(x=t["x"] + rng.uniform(-0.5, 0.5, f), y=t["y"] + rng.uniform(-0.5, 0.5, f),
                mag=t["mag"] + rng.uniform(-0.2, 0.2, f), r_e=t["r_e"] * np.exp(rng.uniform(-0.22, 0.22, f)),
                n=np.clip(t["n"] + rng.uniform(-0.3, 0.3, f), 0.5, 6), q=np.clip(t["q"] + rng.uniform(-0.1, 0.1, f),
                                                                                 0.1, 1.0),
                pa=t["pa"] + rng.uniform(-10, 10, f))


def model_of(starts: list[dict], tie: bool) -> Model:
    comps = [Component("sersic", s) for s in starts]
    comps.append(Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed=frozenset({"dsdx", "dsdy"})))
    constraints = ()
    if tie and len(starts) > 1:
        members = tuple(range(1, len(starts) + 1))
        constraints = (Tie(members, "x", "offset"), Tie(members, "y", "offset"))
    return Model(comps, constraints)


def pass_times(model: Model, images, psf) -> dict:
    setup = prepare_fit(model, images, sigma=np.ones_like(images), psf=psf, zeropoint=ZP, dtype=torch.float32)
    layout = setup.layout
    fixed = torch.as_tensor(setup.initial, dtype=torch.float64)
    functions = ModelFunctions(layout, fixed, setup.frame, setup.psf, RenderConfig(), internal=True)
    theta = layout.to_internal(fixed).to(torch.float32)
    index = torch.arange(images.shape[0])
    functions.jacobian(theta, index)  # warm-up
    layout.value_jacobian(theta.double(), fixed, True)
    out = {}
    for name, call in (("jacobian", lambda: functions.jacobian(theta, index)),
                       ("render", lambda: functions.render(theta, index)),
                       ("value_jacobian", lambda: layout.value_jacobian(theta.double(), fixed, True))):
        tic = time.perf_counter()
        call()
        out[name] = time.perf_counter() - tic
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--components", type=int, nargs="+", default=[1, 2, 5, 10, 25])
    parser.add_argument("--fields", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--tie", action="store_true")
    parser.add_argument("--no-fit", action="store_true", help="only the pass timings")
    args = parser.parse_args()
    speed = host_speed()
    print(f"bench_components: torch {torch.__version__}, {torch.get_num_threads()} threads, load "
          f"{os.getloadavg()[0]:.2f}; {speed}; {args.fields} field(s) of {WIDTH}x{HEIGHT}, tie={args.tie}")
    psf = moffat_psf(size=25, fwhm=3.0)
    print("| N | params | fit s | iterations | s / iteration | status | jacobian ms | render ms | "
          "value_jacobian ms | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.components:
        rng = np.random.default_rng(args.seed + n)
        ts = truths(n, args.fields, rng)
        comps = [(get_profile("sersic"), {k: torch.as_tensor(v) for k, v in t.items()}) for t in ts]
        frame = Frame(1, 1, WIDTH, HEIGHT, zeropoint=ZP)
        clean = render_model(comps, frame, prepare_psf(psf)).numpy() + 0.1
        images = clean + rng.normal(0.0, args.noise, clean.shape)
        model = model_of([offset(t, rng) for t in ts], args.tie)
        times = pass_times(model, images, psf)
        fit_s = iterations = per_iteration = float("nan")
        status = "-"
        if not args.no_fit:
            tic = time.perf_counter()
            result = fit(model, images, sigma=np.full(images.shape, args.noise), psf=psf, zeropoint=ZP)
            fit_s = time.perf_counter() - tic
            iterations = float(np.median(result.iterations))
            per_iteration = fit_s / max(float(result.iterations.sum()), 1.0)
            status = ", ".join(f"{s}: {int((result.status == s).sum())}" for s in np.unique(result.status))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        n_params = 7 * n + 1
        print(f"| {n} | {n_params} | {fit_s:.1f} | {iterations:.0f} | {per_iteration:.2f} | {status} | "
              f"{times['jacobian'] * 1e3:.0f} | {times['render'] * 1e3:.0f} | {times['value_jacobian'] * 1e3:.0f} | "
              f"{rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
