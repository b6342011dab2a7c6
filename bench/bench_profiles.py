"""Benchmark: cost of one model render and one Jacobian per profile (batch of galaxies,
128x128, 25x25 Moffat ePSF, float32, the LM's internal coordinates). Not a test.
Run: python bench/bench_profiles.py [--batch 32] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench_fit import moffat_psf
from galprof import Component, Model
from galprof.fitting.functions import ModelFunctions
from galprof.fitting.layout import ParameterLayout
from galprof.render.config import RenderConfig
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame

GEOMETRY = dict(x=64.3, y=63.8, q=0.6, pa=30.0)
CASES = {
    "sersic": dict(mag=17.0, r_e=6.0, n=2.5, **GEOMETRY),
    "sersic+c0+f1,f4": dict(mag=17.0, r_e=6.0, n=2.5, c0=0.3, f1_amp=0.05, f1_phase=10.0, f4_amp=0.03,
                            f4_phase=0.0, **GEOMETRY),
    "expdisk": dict(mag=17.0, r_s=8.0, **GEOMETRY),
    "ferrer": dict(mu_0=20.0, r_out=15.0, alpha=2.0, beta=0.5, **GEOMETRY),
    "king": dict(mu_0=20.0, r_c=3.0, r_t=25.0, alpha=2.0, **GEOMETRY),
    "nuker": dict(mu_b=21.0, r_b=5.0, alpha=2.0, beta=3.0, gamma=0.7, **GEOMETRY),
    "coresersic": dict(n=3.0, I_b=50.0, r_e=8.0, r_b=1.5, alpha=2.0, gamma=0.5, **GEOMETRY),
    "brokenexp": dict(I_0=100.0, h1=8.0, h2=3.0, r_break=15.0, alpha=1.0, **GEOMETRY),
    "gaussianring": dict(A=20.0, R_ring=15.0, sigma_r=2.0, **GEOMETRY),
    "edgedisk": dict(x=64.3, y=63.8, mu_0=20.0, h_s=2.0, r_s=10.0, pa=30.0),
    "edgeondisk": dict(x=64.3, y=63.8, L_0=5.0, h=10.0, n=2.0, z_0=2.0, pa=30.0),
}


def timed(fn, repeats=3):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    psf = prepare_psf(moffat_psf(), device=device)
    print(f"device={device} batch={args.batch} 128x128 float32")
    print("| profile | render [ms/galaxy] | Jacobian [ms/galaxy] | free parameters |")
    print("|---|---|---|---|")
    for label, values in CASES.items():
        name = label.split("+")[0]
        comp = Component(name, values)
        layout = ParameterLayout(Model([comp]), ((0.5, 128.5), (0.5, 128.5)))
        fixed = torch.tensor(np.tile([[float(values[n]) for _, n in layout.names]], (args.batch, 1)), device=device)
        functions = ModelFunctions(layout, fixed, Frame(1, 1, 128, 128, zeropoint=25.0), psf, RenderConfig(),
                                   internal=True)
        theta = layout.to_internal(fixed).float()
        index = torch.arange(args.batch, device=device)
        render = timed(lambda: functions.render(theta, index))
        jac = timed(lambda: functions.jacobian(theta, index))
        print(f"| {label} | {1e3 * render / args.batch:.2f} | {1e3 * jac / args.batch:.2f} | {theta.shape[1]} |")


if __name__ == "__main__":
    main()
