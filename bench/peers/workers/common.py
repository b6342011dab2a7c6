"""Helpers shared by the peer workers (numpy and the standard library only: every venv has them).

A worker reads the benchmark .npz, fits one configuration (model + image size) from the
shared starts, and writes a JSON of fitted values in GALFIT conventions:
1-based pixel centres, PA [deg] counter-clockwise from +y in (-90, 90], R_e / R_s along
the major axis [pix], q = b/a <= 1, mag = zp - 2.5 log10(total flux).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import time

import numpy as np

B1 = 1.6783469900166605  # exponential: R_e = b(1) R_s


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, help="the .npz written by run_peers.py")
    p.add_argument("--config", required=True, help="e.g. sersic_128, bulgedisk_64")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--variant", default="default")
    p.add_argument("--max-iter", type=int, default=None)
    p.add_argument("--device", default="cpu", help="torch device of the torch-based tools (galprof, galmoss)")
    return p


def load(path: str, config: str) -> dict:
    z = np.load(path)
    meta = json.loads(str(z["meta"]))
    cfg = next(c for c in meta["configs"] if c["name"] == config)
    prefix = f"{config}/start/"
    start = {k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)}
    return dict(images=z[f"{config}/images"], sigma=z[f"{config}/sigma"], psf=z["psf"], start=start,
                keys=cfg["keys"], model=cfg["model"], size=cfg["size"], zeropoint=meta["zeropoint"], meta=meta)


def wrap_pa(pa_deg):
    """Map angles [deg] to (-90, 90] (an ellipse's PA is defined modulo 180)."""
    pa = np.mod(np.asarray(pa_deg, dtype=float) + 90.0, 180.0) - 90.0
    return np.where(pa <= -90.0, pa + 180.0, pa)


def canonical(values: dict) -> dict:
    """q > 1 (a tool without a bound on q): swap axes so q <= 1, size along the new major axis, PA + 90."""
    out = {k: np.asarray(v, dtype=float).copy() for k, v in values.items()}
    comps = {k.split("_", 1)[0] for k in out if k.endswith("_q")}
    for c in comps:
        q = out[f"{c}_q"]
        flip = q > 1
        size_key = f"{c}_r_e" if f"{c}_r_e" in out else f"{c}_r_s"
        out[size_key] = np.where(flip, out[size_key] * q, out[size_key])
        out[f"{c}_pa"] = np.where(flip, out[f"{c}_pa"] + 90.0, out[f"{c}_pa"])
        out[f"{c}_q"] = np.where(flip, 1 / q, q)
        out[f"{c}_pa"] = wrap_pa(out[f"{c}_pa"])
    return out


def bn_ciotti_bertin(n):
    """b(n) of the Sersic profile as imfit, AstroPhot and galmoss compute it for n > 0.36
    (the asymptotic expansion of Ciotti & Bertin 1999)."""
    n = np.asarray(n, dtype=float)
    return (2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n**2) + 131 / (1148175 * n**3)
            - 2194697 / (30690717750 * n**4))


def sersic_flux_from_ie(ie, r_e, n, q, bn=None):
    """Total flux of an elliptical Sersic: F = 2 pi q r_e^2 I_e n e^b b^(-2n) Gamma(2n)."""
    n = np.asarray(n, dtype=float)
    b = bn_ciotti_bertin(n) if bn is None else bn
    lg = np.vectorize(math.lgamma)(2 * n)
    return 2 * np.pi * q * r_e**2 * ie * n * np.exp(b + lg - 2 * n * np.log(b))


def sersic_ie_from_flux(flux, r_e, n, q, bn=None):
    return flux / sersic_flux_from_ie(1.0, r_e, n, q, bn)


def flux_from_mag(mag, zp):
    return 10 ** (-0.4 * (np.asarray(mag, dtype=float) - zp))


def mag_from_flux(flux, zp):
    flux = np.asarray(flux, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flux > 0, zp - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def peak_rss_mib() -> float:
    """Peak resident memory of this worker plus that of the largest process it forked
    (galprof's CPU worker processes; 0 for fitters without children) [MiB]. Pages the
    children share copy-on-write with this process are counted twice, so it is an
    upper bound."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024.0


def peak_gpu_mib(device: str):
    """Peak memory torch allocated on a CUDA ``device`` [MiB]; None on the CPU."""
    import torch

    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def versions(dists) -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for d in dists:
        try:
            out[d] = md.version(d)
        except Exception:
            out[d] = None
    return out


class Clock:
    def __init__(self):
        self.t0 = time.perf_counter()
        self.fit = 0.0

    def start(self):
        self._t = time.perf_counter()

    def stop(self):
        self.fit += time.perf_counter() - self._t

    @property
    def total(self):
        return time.perf_counter() - self.t0


def write(args, tool: str, data: dict, values: dict, clock: Clock, *, errors=None, status=None,
          settings=None, dists=(), notes=()):
    keys = data["keys"]
    values = canonical(values)
    n = data["images"].shape[0]
    out = dict(
        tool=tool, variant=args.variant, config=args.config, n_galaxies=n,
        fit_seconds=clock.fit, total_seconds=clock.total, peak_rss_mib=peak_rss_mib(),
        threads=os.environ.get("OMP_NUM_THREADS"), settings=settings or {}, versions=versions(dists),
        values={k: [float(v) for v in np.asarray(values[k], dtype=float)] for k in keys if k in values},
        errors=None if errors is None else {k: [float(v) for v in np.asarray(e, dtype=float)] for k, e in errors.items()},
        status=list(status) if status is not None else None, notes=list(notes),
        argv=sys.argv,
    )
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, allow_nan=True)
