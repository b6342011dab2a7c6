"""Builders of small results for the plot and report tests (no tests here).

Everything is written in the formats galprof's commands write: GALFIT image blocks
(:func:`galprof.io.galfit_output.write_imgblock`), imfit best-fit files
(:func:`galprof.io.imfit_config.format_imfit_config`) and ``galprof batch`` results
tables with their catalog, template and metadata, with known ("fitted") parameters so
that no fit has to run.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
from astropy.io import fits
from astropy.table import Table

from galprof.io.galfit_output import ComponentReport, write_imgblock
from galprof.io.results import error_column, parameter_column
from galprof.plots.sources import render_components

ZP = 25.0
SCALE = (0.4, 0.4)

BULGE = dict(x=30.4, y=29.7, mag=18.0, r_e=2.0, n=4.0, q=0.85, pa=30.0)
DISK = dict(x=30.4, y=29.7, mag=17.0, r_s=5.0, q=0.45, pa=30.0)
SERSIC = dict(x=24.3, y=25.2, mag=17.0, r_e=4.0, n=1.5, q=0.6, pa=-35.0)

TEMPLATE = """A) cutout.fits
B) out.fits
C) none
D) psf.fits
H) 1 48 1 48
J) 25.0
K) 0.4 0.4
P) 0
 0) sersic
 1) 24.5 24.5 1 1
 3) 18.0 1
 4) 4.0 1
 5) 2.0 1
 9) 0.8 1
10) 0.0 1
 0) sky
 1) 0.0 1
 2) 0.0 0
 3) 0.0 0
"""


def moffat_psf(fwhm=2.6, beta=3.5, size=15):
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    r = np.arange(size) - size // 2
    psf = (1 + (r[None, :] ** 2 + r[:, None] ** 2) / alpha**2) ** -beta
    return psf / psf.sum()


def _reports(comps, errors=0.01, flagged=()):
    out = []
    for k, (profile, values) in enumerate(comps, start=1):
        out.append(ComponentReport(k, profile, dict(values), {n: errors for n in values},
                                   {n: not (profile == "sersic" and n == "n" and values.get("n") == 4.0)
                                    for n in values},
                                   {n: (k, n) in flagged for n in values}))
    return out


def make_imgblock(directory, *, two_components=True, with_mask=True, seed=1, name="block.fits"):
    """A GALFIT image block of a bulge + disk (or a single Sersic) galaxy with sky,
    noise, a sigma image, a PSF and a mask (a masked neighbour) beside it."""
    directory = pathlib.Path(directory)
    rng = np.random.default_rng(seed)
    size = 60 if two_components else 48
    psf = moffat_psf()
    fits.writeto(directory / "psf.fits", psf, overwrite=True)
    comps = [("sersic", BULGE), ("expdisk", DISK)] if two_components else [("sersic", SERSIC)]
    comps = comps + [("sky", dict(sky=0.5, dsdx=0.0, dsdy=0.0))]
    images = render_components(comps, (size, size), zeropoint=ZP, pixel_scale=SCALE, psf=psf)[0]
    model = images.sum(0)
    sigma = np.sqrt(1.0 + np.clip(model, 0, None) / 5.0)
    data = model + rng.normal(size=model.shape) * sigma
    mask = np.zeros((size, size), dtype=np.int16)
    if with_mask:
        yy, xx = np.mgrid[1:size + 1, 1:size + 1]
        mask[(xx - 9) ** 2 + (yy - (size - 10)) ** 2 < 16] = 1
        fits.writeto(directory / "mask.fits", mask, overwrite=True)
    fits.writeto(directory / "sigma.fits", sigma.astype(np.float32), overwrite=True)
    fits.writeto(directory / "image.fits", data.astype(np.float32), overwrite=True)
    write_imgblock(directory / name, data=data, model=model, residual=data - model, feedme=None,
                   components=_reports(comps, flagged={(1, "r_e")} if not two_components else ()),
                   chi2=float(np.sum(((data - model) / sigma) ** 2)), ndof=size * size - 10, nfree=10, chi2nu=1.01,
                   input_names={"SIGMA": "sigma.fits", "PSF": "psf.fits", "MASK": "mask.fits" if with_mask else "none",
                                "FITSECT": f"[1:{size},1:{size}]", "MAGZPT": ZP})
    return directory / name, dict(data=data, model=model, images=images, mask=mask.astype(bool), sigma=sigma)


def make_survey(directory, n=12, *, seed=2, size=48):
    """A catalog of n single-Sersic cutouts (+ one missing file), the template feedme,
    and a results table with known parameters, every STATUS kind and the metadata
    ``galprof batch`` records. Returns (table path, truth list)."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    psf = moffat_psf()
    fits.writeto(directory / "psf.fits", psf, overwrite=True)
    (directory / "template.feedme").write_text(TEMPLATE)
    truths = []
    for i in range(n):
        truths.append(dict(x=24.5 + rng.uniform(-1, 1), y=24.5 + rng.uniform(-1, 1), mag=rng.uniform(16.5, 18.0),
                           r_e=rng.uniform(2.0, 6.0), n=rng.uniform(0.8, 4.0), q=rng.uniform(0.4, 0.95),
                           pa=rng.uniform(-80, 80)))
    values = {k: np.array([t[k] for t in truths]) for k in truths[0]}
    images = render_components([("sersic", values), ("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0))], (size, size),
                               zeropoint=ZP, pixel_scale=SCALE, psf=[psf] * n)
    rows, results = [], []
    statuses = ["converged", "hit a bound: 1_n", "max iterations", "converged"]
    for i in range(n):
        model = images[i].sum(0)
        sigma = np.sqrt(1.0 + np.clip(model, 0, None) / 5.0)
        data = model + rng.normal(size=model.shape) * sigma
        gid = f"gal{i:03d}"
        fits.writeto(directory / f"{gid}.fits", data.astype(np.float32), overwrite=True)
        fits.writeto(directory / f"{gid}_sigma.fits", sigma.astype(np.float32), overwrite=True)
        rows.append(dict(id=gid, image=f"{gid}.fits", sigma=f"{gid}_sigma.fits", psf="psf.fits"))
        row = {"id": gid}
        for name, value in truths[i].items():
            row[parameter_column(1, name)] = value
            row[error_column(1, name)] = 0.01 * (1 + i)
        for name, value in (("sky", 0.0), ("dsdx", 0.0), ("dsdy", 0.0)):
            row[parameter_column(2, name)] = value
            row[error_column(2, name)] = 0.0 if name != "sky" else 0.02
        chi2nu = 1.0 + 0.1 * i if i % 5 else 3.0 + i  # rows 0, 5, 10: chi2nu > 2
        row.update(CHISQ=chi2nu * (size * size - 8), CHI2NU=chi2nu, NDOF=size * size - 8, ITERATIONS=10 + i,
                   AUTO_INIT=False, STATUS=statuses[i % 4])
        results.append(row)
    rows.append(dict(id="broken", image="missing.fits", sigma="", psf="psf.fits"))
    broken = {k: (np.nan if isinstance(v, float) else v) for k, v in results[0].items()}
    broken.update(id="broken", NDOF=0, ITERATIONS=0, STATUS="failed: missing.fits: file not found")
    results.append(broken)
    Table(rows=rows).write(directory / "catalog.csv", format="ascii.csv", overwrite=True)
    table = Table(rows=results, names=list(results[0]))
    table.meta["GALPROF"] = "test"
    table.meta["DATE"] = "2026-01-01T00:00:00"
    table.meta["TEMPLATE"] = str(directory / "template.feedme")
    table.meta["CATALOG"] = str(directory / "catalog.csv")
    table.meta["OPTIONS"] = json.dumps({"auto_init": "never", "mask_mode": "others",
                                        "config": {"legacy_pixel_integration": False}})
    path = directory / "results.fits"
    table.write(path, overwrite=True)
    return path, truths


def exponential_disk_image(shape, x0, y0, mag, r_s, q, pa, zp=ZP, oversample=9):
    """An exponential disk I = I_0 exp(-a / R_s), I_0 = F / (2 pi q R_s^2), integrated
    over each pixel by numpy sub-sampling (independent of galprof's renderer)."""
    h, w = shape
    flux = 10 ** (-0.4 * (mag - zp))
    i0 = flux / (2 * np.pi * q * r_s**2)
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    xs = (np.arange(1, w + 1)[:, None] + sub[None, :]).ravel()
    ys = (np.arange(1, h + 1)[:, None] + sub[None, :]).ravel()
    dx = xs[None, :] - x0
    dy = ys[:, None] - y0
    t = np.radians(pa)
    u = -dx * np.sin(t) + dy * np.cos(t)
    v = -dx * np.cos(t) - dy * np.sin(t)
    a = np.sqrt(u**2 + (v / q) ** 2)
    fine = i0 * np.exp(-a / r_s)
    return fine.reshape(h, oversample, w, oversample).mean(axis=(1, 3)), i0
