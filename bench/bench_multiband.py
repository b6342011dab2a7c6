"""Benchmark and evidence (issue 22): multi-band fitting with ``galprof.fit_bands``.

Measures, in four parts (``--parts``, default all):

* ``sim``: GalSim simulations of B galaxies in five bands (SDSS-like u g r i z, 3543-9134 A),
  each band with its own Moffat PSF (beta 3.5, FWHM 3.4 3.0 2.7 2.5 2.6 px; the ePSF drawn
  with its pixel response is what galprof receives), zeropoint, sky level and gain; the
  images hold the galaxy + a flat sky + Gaussian noise of sigma^2 = (sky + model) / gain +
  read noise^2 (the exact sigma image is given to galprof). Scenes (``--scenes``):

  - ``sersic``: a single Sérsic (n 0.8-4, R_e 2.5-6 px, q 0.4-0.95, r mag 15-16.5) with
    per-band magnitudes (colours u-g 1.2-1.8, g-r 0.5-0.9, r-i 0.2-0.4, i-z 0.1-0.3) and the
    same structure in every band; 48x48 px by default;
  - ``bulgedisk``: a Sérsic bulge (n 2-4.5, R_e 1.5-3.5 px, q 0.6-0.95) + an exponential disk
    (R_s 4-8 px, q 0.3-0.9, PA within 25 deg of the bulge's) on one centre; total r mag
    14-15.5, B/T in r 0.2-0.6; the bulge is redder (u-g 1.8, g-r 0.8, r-i 0.4, i-z 0.3,
    +-0.1) than the disk (1.1, 0.45, 0.25, 0.15, +-0.1); structure shared by the bands per
    component; 64x64 px.

  Fits (galprof defaults, CPU, float32): the joint 5-band fit from offset starts (Sérsic or
  bulge: R_e x1.3, n 2.5; disk R_s x1.3; magnitudes +0.3; each centre 0.8 px off in its own
  random direction; PA +10 deg; q +0.1 capped at 0.95; sky at the median of the stamp's
  border) and from the truth; each band alone (``galprof.fit`` with the same model, from
  the same offset start and from the truth: ``--single-starts``). Reports: recovered /
  flagged / silently wrong (recovered: chi^2 within max(1, 1e-5 chi^2) of the truth-start
  fit's, or lower; flagged: not recovered and STATUS not ``converged``; silently wrong: the
  rest), pulls (fit - truth) / error of every parameter over the recovered galaxies (mean,
  std, robust std, fraction beyond 3: N(0, 1) expected), and the median ratio joint error /
  single-band error of R_e and n (and R_s) against the best single band of each galaxy (the
  smallest error among its single-band fits with STATUS ``converged``), against r and
  against each band, with the measured scatter of R_e and n around the truth (joint vs r
  alone) as a check that the smaller errors are real. ``--renderer galprof`` draws the same
  truth with galprof instead (a control free of GalSim-vs-galprof rendering differences).

* ``multisim``: GALFITM's simulated regression set (``../shared/data/realworld/multiband/
  multisim``): one Sérsic in five bands (a-e, 2000-6000 A) made by GALFITM from
  ``create/create.multi.feedme``; the galprof model is built by hand from
  ``fit.multi.feedme`` (magnitudes and sky per band, R_e and n 4 Chebyshev terms, x y q PA
  one value; its sigma image ``C) none`` made by galprof's GALFIT recipe
  ``galprof.io.fits_io.sigma_from_header``; the images have no GAIN, so GAIN = 7); fitted
  as the feedme says (``G) none``; line ``I) 30.0 30.0`` read as GALFIT reads it, a 30 x 0
  box: no convolution, which is how the images were made), with psf.fits applied (a 30 x
  30 box: the wrong model for these images), without a PSF with the set's ``constraints``
  file, and with the images' measured noise as sigma; each also from the truth. Reports the
  recovered values in every band vs the truth in units of galprof's errors, and the truth's
  own 4-term Chebyshev approximation (what a 4-term polynomial can reach). The noise law of
  the images, measured against GALFITM's noise-free images in ``create/``, is printed.

* ``ngc4261``: GALFITM's real regression case (SDSS ugriz of NGC 4261): ``ngc4261-s.feedme``
  (Sérsic + fixed sky per band) and ``ngc4261-se.feedme`` (Sérsic + Sérsic with n = 1)
  with their constraint files, region 150-450 x 150-450, convolution box 145, the mask, the
  per-band PSFs and zeropoints, sigma from the data (GALFIT's recipe, GAIN = 1 from the
  headers), float32. Compared with GALFITM 1.2.0's restart values (its ``cheb``
  coefficients converted with ``Bands.band_values``) per band and parameter in galprof's
  errors (GALFITM printed errors of 0.00 for these runs), and both solutions' chi^2 on the
  same pixels evaluated by galprof (GALFITM's solution rendered by galprof band by band:
  ``galprof.fit`` with every parameter fixed). Each with galprof's default rendering and with
  GALFIT's (``RenderConfig(legacy_pixel_integration=True)``: the pixel integral, then the
  PSF; ``--ngc-render``).

* ``speed``: 5-band single-Sérsic fits of 64 galaxies (64x64) on the CPU, float32: one
  ``fit_bands`` call (``joint``), and the same galaxies band by band (5 ``galprof.fit``
  calls: ``single``, with galprof.fit's default CPU worker processes, and ``single1``, with
  ``cpu_workers=1``, one process as fit_bands runs). Each run is a fresh process that first
  fits 2 of the galaxies (the first call's one-off costs, reported apart) and then times all
  of them: wall and CPU time, galaxies/s, LM iterations, rows rendered with and without
  derivatives (a row: one galaxy in one band) and peak RSS; the modes alternate for
  ``--speed-rounds`` rounds (medians reported). The images are made beforehand and
  excluded. Timings on a shared CPU swing 10x with other processes: compare modes within
  one run only.

Every timing is printed with the load average (``os.getloadavg``). Not a test: no
assertions. Run:

    python bench/bench_multiband.py [--parts sim multisim ngc4261 speed] [--galaxies 64]
        [--scenes sersic bulgedisk] [--renderer galsim|galprof] [--single-starts offset truth]
        [--seed 1] [--ngc-cases s se] [--ngc-render default legacy] [--speed-galaxies 64]
        [--speed-rounds 3] [--speed-modes joint single single1]
        [--data ../shared/data/realworld/multiband]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "realworld" / "multiband"

LABELS = ("u", "g", "r", "i", "z")
WAVELENGTHS = (3543.0, 4770.0, 6231.0, 7625.0, 9134.0)
PSF_FWHM = (3.4, 3.0, 2.7, 2.5, 2.6)  # px
PSF_BETA = 3.5
ZEROPOINTS = (24.6, 26.0, 25.8, 25.4, 24.0)
SKY = (60.0, 150.0, 300.0, 450.0, 400.0)  # ADU
GAIN = (1.5, 4.0, 4.7, 4.8, 4.6)  # e-/ADU
READ_NOISE = 1.0  # ADU
R_BAND = 2


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def out(text: str = "") -> None:
    print(text, flush=True)


def wrap_pa(d):
    """A PA difference [deg] reduced to (-90, 90] (PA is defined modulo 180)."""
    return (np.asarray(d) + 90.0) % 180.0 - 90.0


# =======================================================================================
# part 1: GalSim simulation
# =======================================================================================


def epsf(fwhm: float, size: int = 25) -> np.ndarray:
    """A Moffat PSF drawn with its pixel response (an ePSF), normalised to 1."""
    stamp = __import__("galsim").Moffat(beta=PSF_BETA, fwhm=fwhm).drawImage(nx=size, ny=size, scale=1.0).array
    return stamp / stamp.sum()


def _shear(profile, q: float, pa: float):
    """GalSim's shear(q, beta) is area-preserving, beta CCW from +x: beta = PA + 90 deg."""
    import galsim
    return profile.shear(q=q, beta=(pa + 90.0) * galsim.degrees)


def _flux(mag, zp):
    return 10 ** (-0.4 * (np.asarray(mag) - zp))


def _colour_mags(r_mag: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(B, 5) u g r i z magnitudes from r and the colours (B, 4) u-g, g-r, r-i, i-z."""
    g = r_mag + colours[:, 1]
    u = g + colours[:, 0]
    i = r_mag - colours[:, 2]
    z = i - colours[:, 3]
    return np.stack([u, g, r_mag, i, z], axis=1)


def sim_truths(scene: str, n: int, size: int, rng) -> dict:
    centre = (size + 1) / 2
    t = dict(x=centre + rng.uniform(-1, 1, n), y=centre + rng.uniform(-1, 1, n), sky=np.array(SKY))
    if scene == "sersic":
        colours = np.stack([rng.uniform(1.2, 1.8, n), rng.uniform(0.5, 0.9, n), rng.uniform(0.2, 0.4, n),
                            rng.uniform(0.1, 0.3, n)], axis=1)
        t.update(mag=_colour_mags(rng.uniform(15.0, 16.5, n), colours), r_e=rng.uniform(2.5, 6.0, n),
                 n=rng.uniform(0.8, 4.0, n), q=rng.uniform(0.4, 0.95, n), pa=rng.uniform(-90, 90, n))
    else:
        total_r = rng.uniform(14.0, 15.5, n)
        bt = rng.uniform(0.2, 0.6, n)
        jitter = lambda: rng.uniform(-0.1, 0.1, (n, 4))
        bulge_col = np.array([1.8, 0.8, 0.4, 0.3])[None] + jitter()
        disk_col = np.array([1.1, 0.45, 0.25, 0.15])[None] + jitter()
        t.update(b_mag=_colour_mags(total_r - 2.5 * np.log10(bt), bulge_col),
                 d_mag=_colour_mags(total_r - 2.5 * np.log10(1 - bt), disk_col),
                 b_r_e=rng.uniform(1.5, 3.5, n), b_n=rng.uniform(2.0, 4.5, n), b_q=rng.uniform(0.6, 0.95, n),
                 b_pa=rng.uniform(-90, 90, n), d_r_s=rng.uniform(4.0, 8.0, n), d_q=rng.uniform(0.3, 0.9, n))
        t["d_pa"] = t["b_pa"] + rng.uniform(-25, 25, n)
    return t


def sim_images(scene: str, t: dict, size: int, rng):
    """(B, 5, size, size) images and exact sigma images; GalSim convolves each band's
    galaxy with its Moffat and draws it with the pixel (the ePSF the fit gets)."""
    import galsim
    n = len(t["x"])
    images = np.zeros((n, 5, size, size))
    sigmas = np.zeros_like(images)
    gsp = galsim.GSParams(folding_threshold=1e-3, maximum_fft_size=16384)
    for b in range(n):
        offset = (t["x"][b] - (size + 1) / 2, t["y"][b] - (size + 1) / 2)
        for k in range(5):
            zp = ZEROPOINTS[k]
            if scene == "sersic":
                gal = galsim.Sersic(n=t["n"][b], half_light_radius=t["r_e"][b] * math.sqrt(t["q"][b]),
                                    flux=_flux(t["mag"][b, k], zp), gsparams=gsp)
                gal = _shear(gal, t["q"][b], t["pa"][b])
            else:
                bulge = galsim.Sersic(n=t["b_n"][b], half_light_radius=t["b_r_e"][b] * math.sqrt(t["b_q"][b]),
                                      flux=_flux(t["b_mag"][b, k], zp), gsparams=gsp)
                disk = galsim.Exponential(scale_radius=t["d_r_s"][b] * math.sqrt(t["d_q"][b]),
                                          flux=_flux(t["d_mag"][b, k], zp), gsparams=gsp)
                gal = _shear(bulge, t["b_q"][b], t["b_pa"][b]) + _shear(disk, t["d_q"][b], t["d_pa"][b])
            psf = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM[k], gsparams=gsp)
            clean = galsim.Convolve(gal, psf, gsparams=gsp).drawImage(nx=size, ny=size, scale=1.0,
                                                                      offset=offset).array
            sigma = np.sqrt((SKY[k] + np.clip(clean, 0, None)) / GAIN[k] + READ_NOISE**2)
            images[b, k] = clean + SKY[k] + rng.normal(0.0, 1.0, clean.shape) * sigma
            sigmas[b, k] = sigma
    return images, sigmas


def galprof_images(scene: str, t: dict, size: int, psfs, rng):
    """The truth drawn by galprof (band by band: ``galprof.fit`` with every parameter
    fixed, as ``fit_bands`` cannot run without a free parameter) + the same noise law as
    :func:`sim_images`: a control without any GalSim-vs-galprof rendering difference."""
    from galprof import Component, Model, fit
    n = len(t["x"])
    clean = np.zeros((n, 5, size, size))
    for k in range(5):
        comps = sim_components(scene, t, True, rng, np.zeros((n, 5)), band=k)
        comps = [Component(c.profile, c.values, fixed=frozenset(c.values)) for c in comps]
        res = fit(Model(comps), np.zeros((n, size, size)), sigma=np.ones((n, size, size)), psf=psfs[k],
                  zeropoint=ZEROPOINTS[k])
        clean[:, k] = res.model_images  # the sky included
    sigma = np.sqrt(np.clip(clean, 0, None) / np.array(GAIN)[None, :, None, None] + READ_NOISE**2)
    return clean + rng.normal(0.0, 1.0, clean.shape) * sigma, sigma


def border_sky(images: np.ndarray) -> np.ndarray:
    """(B, K) the median of each stamp's outermost 3-pixel frame (a user's sky start)."""
    frame = np.ones(images.shape[-2:], dtype=bool)
    frame[3:-3, 3:-3] = False
    return np.median(images[..., frame], axis=-1)


def sim_components(scene: str, t: dict, truth: bool, rng, sky0: np.ndarray, band: int | None = None):
    """The galprof model's components: the truth or the offset start; every band's
    magnitudes ((B, 5)), or band ``band``'s alone ((B,)) for a single-band fit."""
    from galprof import Component
    n = len(t["x"])
    pick = (lambda m: m) if band is None else (lambda m: m[:, band])
    sky_value = pick(np.tile(np.array(SKY)[None], (n, 1)) if truth else sky0)
    sky = Component("sky", dict(sky=sky_value, dsdx=0.0, dsdy=0.0), fixed=frozenset({"dsdx", "dsdy"}))

    def centre(seed_angle):
        if truth:
            return t["x"], t["y"]
        return t["x"] + 0.8 * np.cos(seed_angle), t["y"] + 0.8 * np.sin(seed_angle)

    if scene == "sersic":
        x, y = centre(rng.uniform(0, 2 * np.pi, n))
        if truth:
            vals = dict(x=x, y=y, mag=pick(t["mag"]), r_e=t["r_e"], n=t["n"], q=t["q"], pa=t["pa"])
        else:
            vals = dict(x=x, y=y, mag=pick(t["mag"] + 0.3), r_e=t["r_e"] * 1.3, n=np.full(n, 2.5),
                        q=np.minimum(t["q"] + 0.1, 0.95), pa=t["pa"] + 10.0)
        return [Component("sersic", vals), sky]
    xb, yb = centre(rng.uniform(0, 2 * np.pi, n))
    xd, yd = centre(rng.uniform(0, 2 * np.pi, n))
    if truth:
        bulge = dict(x=xb, y=yb, mag=pick(t["b_mag"]), r_e=t["b_r_e"], n=t["b_n"], q=t["b_q"], pa=t["b_pa"])
        disk = dict(x=xd, y=yd, mag=pick(t["d_mag"]), r_s=t["d_r_s"], q=t["d_q"], pa=t["d_pa"])
    else:
        bulge = dict(x=xb, y=yb, mag=pick(t["b_mag"] + 0.3), r_e=t["b_r_e"] * 1.3, n=np.full(n, 2.5),
                     q=np.minimum(t["b_q"] + 0.1, 0.95), pa=t["b_pa"] + 10.0)
        disk = dict(x=xd, y=yd, mag=pick(t["d_mag"] + 0.3), r_s=t["d_r_s"] * 1.3,
                    q=np.minimum(t["d_q"] + 0.1, 0.95), pa=t["d_pa"] + 10.0)
    return [Component("sersic", bulge), Component("expdisk", disk), sky]


def truth_columns(scene: str, t: dict) -> dict:
    """{(component, name): (B,) or (B, 5) truth} of every fitted parameter."""
    if scene == "sersic":
        cols = {(1, k): t[k] for k in ("x", "y", "mag", "r_e", "n", "q", "pa")}
        cols[(2, "sky")] = np.tile(np.array(SKY)[None], (len(t["x"]), 1))
        return cols
    cols = {(1, "x"): t["x"], (1, "y"): t["y"], (1, "mag"): t["b_mag"], (1, "r_e"): t["b_r_e"], (1, "n"): t["b_n"],
            (1, "q"): t["b_q"], (1, "pa"): t["b_pa"], (2, "x"): t["x"], (2, "y"): t["y"], (2, "mag"): t["d_mag"],
            (2, "r_s"): t["d_r_s"], (2, "q"): t["d_q"], (2, "pa"): t["d_pa"]}
    cols[(3, "sky")] = np.tile(np.array(SKY)[None], (len(t["x"]), 1))
    return cols


def classify(chi2_off, chi2_truth, status):
    recovered = chi2_off <= chi2_truth + np.maximum(1.0, 1e-5 * np.abs(chi2_truth))
    flagged = ~recovered & (status != "converged")
    silent = ~recovered & ~flagged
    return recovered, flagged, silent


def pull_table(result, cols: dict, good: np.ndarray) -> list[str]:
    lines = [("| parameter | bands | N (of recovered) | mean pull | std pull | robust std (1.48 MAD) | \\|pull\\| > 3 "
              "| median error |"), "|---|---|---|---|---|---|---|---|"]
    for (comp, name), truth in cols.items():
        fitted, error = result.value(comp, name), result.error(comp, name)  # (B, K)
        if truth.ndim == 1:  # shared: one value in every band
            diff, err, bands = fitted[:, 0] - truth, error[:, 0], "all"
            if name == "pa":
                diff = wrap_pa(diff)
            diff, err = diff[good], err[good]
            rows = [(bands, diff, err)]
        else:
            rows = [(LABELS[k], (fitted[:, k] - truth[:, k])[good], error[good, k]) for k in range(truth.shape[1])]
        for bands, diff, err in rows:
            ok = np.isfinite(err) & (err > 0)
            pulls = diff[ok] / err[ok]
            if pulls.size == 0:
                continue
            robust = 1.4826 * np.median(np.abs(pulls - np.median(pulls)))
            lines.append(f"| {comp} {name} | {bands} | {pulls.size} ({diff.size}) | {pulls.mean():+.2f} | "
                         f"{pulls.std():.2f} | {robust:.2f} | "
                         f"{np.mean(np.abs(pulls) > 3):.2f} | {np.median(err[ok]):.3g} |")
    return lines


def run_sim(scene: str, args, summary: dict) -> None:
    import torch

    from galprof import Bands, Model, fit, fit_bands
    size = args.size if args.size else (48 if scene == "sersic" else 64)
    n = args.galaxies
    rng = np.random.default_rng(args.seed)
    bands = Bands(LABELS, WAVELENGTHS)
    t = sim_truths(scene, n, size, rng)
    tic = time.perf_counter()
    images, sigmas = sim_images(scene, t, size, rng)
    psfs = [epsf(f) for f in PSF_FWHM]
    if args.renderer == "galprof":  # the same truth drawn by galprof itself, same noise law
        images, sigmas = galprof_images(scene, t, size, psfs, np.random.default_rng(args.seed + 2000))
    out(f"\n### sim `{scene}`: {n} galaxies, {size}x{size}, 5 bands, drawn by {args.renderer} "
        f"({time.perf_counter() - tic:.0f} s)")
    sky0 = border_sky(images)
    start_rng = np.random.default_rng(args.seed + 1000)
    common = dict(bands=bands, sigma=sigmas, psf=psfs, zeropoint=np.array(ZEROPOINTS), dtype=torch.float32)

    timings = {}
    tic, l0 = time.perf_counter(), load()
    restarts = {"auto": None, "on": True, "off": False}[args.restarts]
    joint = fit_bands(Model(sim_components(scene, t, False, start_rng, sky0)), images, perturbed_starts=restarts,
                      **common)
    timings["joint"] = (time.perf_counter() - tic, l0, load())
    tic, l0 = time.perf_counter(), load()
    truth_fit = fit_bands(Model(sim_components(scene, t, True, start_rng, sky0)), images, **common)
    timings["joint from truth"] = (time.perf_counter() - tic, l0, load())
    recovered, flagged, silent = classify(joint.chi2, truth_fit.chi2, joint.status)
    statuses = {s: int((joint.status == s).sum()) for s in np.unique(joint.status)}
    out(f"joint fit: recovered {recovered.sum()}/{n}, flagged {flagged.sum()}, silently wrong {silent.sum()}; "
        f"STATUS {statuses}; median iterations {np.median(joint.iterations):.0f} (truth start "
        f"{np.median(truth_fit.iterations):.0f}); median chi2_nu {np.median(joint.chi2_nu):.3f}")
    for b in np.flatnonzero(~recovered):
        out(f"  galaxy {b}: status {joint.status[b]}, chi2 {joint.chi2[b]:.1f} vs truth-start {truth_fit.chi2[b]:.1f}; "
            + ", ".join(f"{c}{k}={joint.value(c, k)[b, 0]:.3g}" for (c, k) in truth_columns(scene, t)
                        if k in ("r_e", "r_s", "n", "q")))

    cols = truth_columns(scene, t)
    lines = pull_table(joint, cols, recovered)
    out("\npulls (fit - truth) / error, joint fit from the offset start, recovered galaxies:")
    out("\n".join(lines))

    # each band alone, from the same offset start and (with --single-starts truth) from the truth
    size_params = [(1, "r_e"), (1, "n")] + ([(2, "r_s")] if scene == "bulgedisk" else [])
    single = {}
    for kind in args.single_starts:
        single[kind] = []
        for k in range(5):
            tic, l0 = time.perf_counter(), load()
            comps = sim_components(scene, t, kind == "truth", np.random.default_rng(args.seed + 1000), sky0, band=k)
            res = fit(Model(comps), images[:, k], sigma=sigmas[:, k], psf=psfs[k], zeropoint=ZEROPOINTS[k],
                      dtype=torch.float32)
            timings[f"single {LABELS[k]} from {kind}"] = (time.perf_counter() - tic, l0, load())
            single[kind].append(res)
    ratio_lines = [("| parameter | single-band fits from | joint / best single band of each galaxy (median, 16-84 %) "
                    "| joint / r band (median, 16-84 %) | joint / u, g, r, i, z (medians) | rms (fit - truth) / truth: "
                    "joint, r alone | median \\|fit - truth\\| / truth: joint, r alone | N |"),
                   "|---|---|---|---|---|---|---|---|"]
    ratios = {}
    single_status, best_band = {}, {}
    for kind, fits in single.items():
        single_status[kind] = {LABELS[k]: int((fits[k].status == "converged").sum()) for k in range(5)}
        for comp, name in size_params:
            col = fits[0].names.index((comp, name))
            single_err = np.stack([res.errors[:, col] for res in fits], axis=1)  # (B, 5)
            single_val = np.stack([res.values[:, col] for res in fits], axis=1)
            single_ok = np.stack([res.status == "converged" for res in fits], axis=1) & np.isfinite(single_err) \
                & (single_err > 0)
            joint_err = joint.error(comp, name)[:, 0]
            good = recovered & single_ok.any(1) & np.isfinite(joint_err)
            best = np.where(single_ok, single_err, np.inf).min(1)
            best_band[f"{kind} {comp}_{name}"] = {LABELS[k]: int((best[good] == single_err[good, k]).sum())
                                                  for k in range(5)}
            r_good = good & single_ok[:, R_BAND]
            if not r_good.any():
                continue
            vs_best = joint_err[good] / best[good]
            vs_r = joint_err[r_good] / single_err[r_good, R_BAND]
            per_band = [np.median(joint_err[good & single_ok[:, k]] / single_err[good & single_ok[:, k], k])
                        if (good & single_ok[:, k]).any() else np.nan for k in range(5)]
            truth = cols[(comp, name)]
            rms_joint = np.sqrt(np.mean(((joint.value(comp, name)[r_good, 0] - truth[r_good]) / truth[r_good]) ** 2))
            rms_r = np.sqrt(np.mean(((single_val[r_good, R_BAND] - truth[r_good]) / truth[r_good]) ** 2))
            mad_joint = np.median(np.abs(joint.value(comp, name)[r_good, 0] - truth[r_good]) / truth[r_good])
            mad_r = np.median(np.abs(single_val[r_good, R_BAND] - truth[r_good]) / truth[r_good])
            q = lambda a: f"{np.median(a):.2f} ({np.percentile(a, 16):.2f}-{np.percentile(a, 84):.2f})"
            ratio_lines.append(f"| {comp} {name} | {kind} | {q(vs_best)} | {q(vs_r)} | "
                               f"{', '.join(f'{v:.2f}' for v in per_band)} | {rms_joint:.3f}, {rms_r:.3f} | "
                               f"{mad_joint:.3f}, {mad_r:.3f} | {r_good.sum()} |")
            ratios[f"{kind} {comp}_{name}"] = dict(vs_best=float(np.median(vs_best)), vs_r=float(np.median(vs_r)),
                                                   per_band=[float(v) for v in per_band], rms_joint=float(rms_joint),
                                                   rms_r=float(rms_r), median_joint=float(mad_joint),
                                                   median_r=float(mad_r))
    out(f"\nsingle-band fits `converged` per band: {single_status}")
    out(f"band of the smallest single-band error per galaxy: {best_band}")
    out("\nerrors of the joint fit vs each band alone (recovered galaxies; single-band fits with STATUS converged):")
    out("\n".join(ratio_lines))
    out("\ntimes: " + "; ".join(f"{k} {v[0]:.0f} s ({v[1]} -> {v[2]})" for k, v in timings.items()))
    summary[f"sim_{scene}"] = dict(galaxies=n, size=size, recovered=int(recovered.sum()), flagged=int(flagged.sum()),
                                   silent=int(silent.sum()), status=statuses, pulls=lines, ratios=ratios,
                                   ratio_table=ratio_lines, single_converged=single_status,
                                   timings={k: list(v) for k, v in timings.items()})


# =======================================================================================
# part 2: GALFITM's multisim
# =======================================================================================

MULTISIM_TRUTH = dict(x=23.5, y=27.5, mag=(16.5, 17.0, 17.2, 17.1, 16.8), r_e=(0.4, 1.0, 2.5, 3.5, 3.3),
                      n=(1.0, 2.5, 4.0, 6.0, 4.0), q=0.75, pa=30.0, sky=(100.0,) * 5)


def run_multisim(args, summary: dict) -> None:
    import torch
    from astropy.io import fits

    from galprof import Bands, Component, Model, Range, fit_bands
    from galprof.io.fits_io import sigma_from_header
    root = pathlib.Path(args.data) / "multisim"
    labels = ("a", "b", "c", "d", "e")
    bands = Bands(labels, (2000, 3000, 4000, 5000, 6000))  # A1), A2)
    images, sigmas, notes = [], [], []
    for label in labels:
        with fits.open(root / f"img-{label}.fits") as hdul:
            data, header = hdul[0].data.astype(np.float64), hdul[0].header
        sigma, note = sigma_from_header(data, header)
        images.append(data)
        sigmas.append(sigma)
        notes.append(f"{label}: GAIN {header.get('GAIN', 'absent')}; {note}")
    images, sigmas = np.array(images), np.array(sigmas)
    psf = fits.getdata(root / "psf.fits").astype(np.float64)  # D) psf.fits in every band
    out("\n### multisim (GALFITM's simulated regression set)")
    out("sigma images (C) none):\n  " + "\n  ".join(notes))
    # the noise the images actually carry: data - GALFITM's noise-free image, var = a + model / g
    clean = np.array([fits.getdata(root / "create" / f"img-{label}.fits").astype(np.float64) for label in labels])
    resid = images - clean
    law = []
    for k in range(5):
        model = clean[k] - 100.0
        design = np.stack([np.ones(model.size), model.ravel()], 1)
        coef, *_ = np.linalg.lstsq(design, resid[k].ravel() ** 2, rcond=None)
        law.append(f"{labels[k]}: rms(data - noise-free) {resid[k].std():.3f}, var = {coef[0]:.2f} + "
                   f"{coef[1]:.3f} x galaxy -> gain {1 / coef[1] if coef[1] > 0 else float('inf'):.2f}; "
                   f"median sigma used {np.median(sigmas[k]):.3f}")
    out("noise of the images vs GALFITM's noise-free create/ images:\n  " + "\n  ".join(law))
    # were the images convolved with psf.fits? A convolved image's brightest pixel cannot hold
    # a larger fraction of the light than the PSF's brightest pixel
    peak = [float((clean[k] - 100.0).max() / (clean[k] - 100.0).sum()) for k in range(5)]
    out(f"brightest pixel / total light of the noise-free images: {', '.join(f'{p:.3f}' for p in peak)}; "
        f"of psf.fits: {psf.max() / psf.sum():.3f} (a larger fraction than the PSF's: not convolved with it)")

    def model(constrained: bool, truth: bool = False):
        t = MULTISIM_TRUTH
        if truth:  # R_e and n start on the truth's 4-term polynomial (fit_bands projects them)
            start = dict(x=t["x"], y=t["y"], mag=np.array([t["mag"]]), r_e=np.array([t["r_e"]]),
                         n=np.array([t["n"]]), q=t["q"], pa=t["pa"])
        else:  # fit.multi.feedme
            start = dict(x=25.0, y=25.0, mag=np.full((1, 5), 17.0), r_e=2.0, n=3.0, q=0.5, pa=0.0)
        comps = [Component("sersic", start),
                 Component("sky", dict(sky=np.full((1, 5), 100.0), dsdx=0.0, dsdy=0.0),
                           fixed=frozenset({"dsdx", "dsdy"}))]
        constraints = ()
        if constrained:  # the set's `constraints` file, its relative ranges and factor taken around the
            # feedme's start (x, y 25 +-5; mag 17 +-3; R_e 2 / 5 .. 2 x 5; sky 100 +-5) so that a
            # truth start has the same bounds; galprof's own Sersic bounds (n <= 10) still apply
            constraints = (Range(1, "x", 20.0, 30.0), Range(1, "y", 20.0, 30.0), Range(1, "mag", 14.0, 20.0),
                           Range(1, "n", 0.3, 15.0), Range(1, "r_e", 0.4, 10.0), Range(2, "sky", 95.0, 105.0))
        return Model(comps, constraints)

    terms = {(1, "x"): 1, (1, "y"): 1, (1, "mag"): 5, (1, "r_e"): 4, (1, "n"): 4, (1, "q"): 1, (1, "pa"): 1,
             (2, "sky"): 5}
    truth_poly = {name: bands.band_values(bands.coefficients(MULTISIM_TRUTH[name], 4)) for name in ("r_e", "n")}
    results = {}
    measured = np.array([np.full(images.shape[1:], resid[k].std()) for k in range(5)])
    # line I) 30.0 30.0: GALFIT reads "%d %d" from "30.0 30.0", i.e. a 30 x 0 box: no convolution
    # (CONVBOX = '30, 0' in the headers of create/*.fits); the images are indeed unconvolved
    variants = ((("as fit.multi.feedme read as GALFIT does: D) psf.fits, I) = 30 x 0 (no convolution), G) none, "
                  "sigma C) none"), psf, (30, 0), False, sigmas),
                ("psf.fits applied (a 30 x 30 convolution box), G) none, sigma C) none", psf, (30, 30), False, sigmas),
                ("no PSF, with the `constraints` file, sigma C) none", None, (30, 30), True, sigmas),
                ("no PSF, G) none, sigma = the measured noise rms", None, (30, 30), False, measured))
    for label, use_psf, box, constrained, sig in variants:
        tic, l0 = time.perf_counter(), load()
        try:
            res = fit_bands(model(constrained), images[None], bands=bands, terms=terms, sigma=sig[None], psf=use_psf,
                            zeropoint=25.0, convolution_box=box, pixel_scale=(0.396, 0.396), dtype=torch.float32)
        except Exception as exc:  # noqa: BLE001 (a benchmark reports what fails)
            out(f"\n{label}: FAILED {type(exc).__name__}: {exc}")
            results[label] = f"failed: {exc}"
            continue
        wall = time.perf_counter() - tic
        truth_res = fit_bands(model(constrained, truth=True), images[None], bands=bands, terms=terms,
                              sigma=sig[None], psf=use_psf, zeropoint=25.0, convolution_box=box,
                              pixel_scale=(0.396, 0.396), dtype=torch.float32)
        out(f"\n{label}: status {res.status[0]}, {res.iterations[0]} iterations, chi2 {res.chi2[0]:.2f} "
            f"(chi2_nu {res.chi2_nu[0]:.4f}), {wall:.1f} s ({l0} -> {load()}); the same fit from the truth: "
            f"status {truth_res.status[0]}, chi2 {truth_res.chi2[0]:.2f}, R_e "
            f"{np.array2string(truth_res.value(1, 'r_e')[0], precision=3)}, n "
            f"{np.array2string(truth_res.value(1, 'n')[0], precision=3)}")
        lines = [("| parameter | band | truth | 4-term truth | galprof | error | (galprof - truth) / error | "
                  "(galprof - 4-term truth) / error |"), "|---|---|---|---|---|---|---|---|"]
        for name in ("mag", "r_e", "n", "x", "y", "q", "pa"):
            comp = 1
            value, error = res.value(comp, name)[0], res.error(comp, name)[0]
            truth = np.broadcast_to(np.asarray(MULTISIM_TRUTH[name], dtype=float), (5,))
            poly = truth_poly.get(name)
            shown = range(5) if (np.ndim(MULTISIM_TRUTH[name]) or name in terms and terms[(1, name)] > 1) else [0]
            for k in shown:
                diff = value[k] - truth[k]
                if name == "pa":
                    diff = wrap_pa(diff)
                ptxt = f"{poly[k]:.3f}" if poly is not None else ""
                pp = f"{(value[k] - poly[k]) / error[k]:+.2f}" if poly is not None else ""
                lines.append(f"| {name} | {labels[k] if len(shown) > 1 else 'all'} | {truth[k]:.3f} | {ptxt} | "
                             f"{value[k]:.3f} | {error[k]:.3f} | {diff / error[k]:+.2f} | {pp} |")
        sky = res.value(2, "sky")[0]
        lines.append(f"| sky | a-e | 100 | | {', '.join(f'{s:.2f}' for s in sky)} | "
                     f"{', '.join(f'{e:.2f}' for e in res.error(2, 'sky')[0])} | | |")
        out("\n".join(lines))
        coef = res.coefficients[0, res.index(1, "r_e")]
        out(f"R_e Chebyshev coefficients {np.array2string(coef, precision=3)}; n "
            f"{np.array2string(res.coefficients[0, res.index(1, 'n')], precision=3)}")
        results[label] = dict(status=str(res.status[0]), iterations=int(res.iterations[0]), chi2=float(res.chi2[0]),
                              chi2_truth_start=float(truth_res.chi2[0]), truth_start_status=str(truth_res.status[0]),
                              chi2_nu=float(res.chi2_nu[0]), table=lines, seconds=wall)
    summary["multisim"] = dict(results=results, noise=law, sigma_notes=notes)


# =======================================================================================
# part 3: NGC 4261 (GALFITM 1.2.0)
# =======================================================================================

NGC_BANDS = (("u", "g", "r", "i", "z"), (3543, 4770, 6231, 7625, 9134))
NGC_ZP = (28.1408, 30.034, 29.94, 29.72, 27.88)
NGC_SKY = (35.7781, 292.9783, 646.1415, 926.4883, 493.7779)
NGC_REGION = (150, 450, 150, 450)
GALFIT_NAMES = {"sersic": {"1": "x", "2": "y", "3": "mag", "4": "r_e", "5": "n", "9": "q", "10": "pa"},
                "sky": {"1": "sky", "2": "dsdx", "3": "dsdy"}}


def read_galfitm_restart(path: pathlib.Path) -> tuple[list[tuple[str, dict]], dict]:
    """GALFITM restart file: per component (type, {galprof name: Chebyshev coefficients}) and
    the header's chi^2 line."""
    comps, current, info = [], None, {}
    for line in path.read_text().splitlines():
        text = line.split("#")[0].strip() if not line.lstrip().startswith("#") else ""
        if line.startswith("#  Chi^2/nu"):
            parts = line.replace("#", "").replace(",", " ").split()
            info = dict(chi2_nu=float(parts[2]), chi2=float(parts[5]), ndof=int(parts[8]))
        if not text or ")" not in text:
            continue
        key, rest = text.split(")", 1)
        key, words = key.strip(), rest.split()
        if key == "0" and words:
            current = (words[0], {})
            comps.append(current)
        elif current is not None and key in GALFIT_NAMES.get(current[0], {}) and words and words[-1] == "cheb":
            current[1][GALFIT_NAMES[current[0]][key]] = np.array([float(v) for v in words[0].split(",")])
    return comps, info


def ngc_inputs(root: pathlib.Path, unbiased: bool = True):
    """Images, sigma images (GALFIT's recipe from the whole image; ``unbiased``: the sky RMS
    corrected for its clipped tails, galprof's default), masks and PSFs, cut to the region."""
    from astropy.io import fits

    from galprof.io.fits_io import sigma_from_header
    x0, x1, y0, y1 = NGC_REGION
    mask_full = fits.getdata(root / "NGC_4261-mask.fits") != 0  # GALFIT: non-zero = bad
    images, sigmas, masks, psfs, notes = [], [], [], [], []
    for label in NGC_BANDS[0]:
        with fits.open(root / f"NGC_4261-{label}.fits") as hdul:
            data, header = hdul[0].data.astype(np.float64), hdul[0].header
        sigma, note = sigma_from_header(data, header, mask=mask_full, unbiased=unbiased)  # the whole image's sky
        cut = (slice(y0 - 1, y1), slice(x0 - 1, x1))
        images.append(data[cut])
        sigmas.append(sigma[cut])
        masks.append(mask_full[cut])
        psfs.append(fits.getdata(root / f"PSF-{label}.fits").astype(np.float64))
        notes.append(f"{label}: {note}")
    return np.array(images), np.array(sigmas), np.array(masks), psfs, notes


def ngc_model(case: str, values: dict | None = None):
    """The model of ngc4261-{case}.feedme with its constraint file; ``values``: per
    component number {name: (5,) band values} to start from instead of the feedme's."""
    from galprof import Component, Model, PairRange, Range, RelativeRange
    mags2 = np.array([[16.231, 14.357, 13.555, 13.12, 12.851]])
    sky = Component("sky", dict(sky=np.array([NGC_SKY]), dsdx=0.0, dsdy=0.0), fixed=frozenset({"sky", "dsdx", "dsdy"}))
    comp2 = dict(x=290.853, y=290.178, mag=mags2, r_e=19.5585, n=4.489, q=0.8, pa=10.0)
    comps = [sky, comp2]
    constraints = [RelativeRange(2, "x", -5.0, 5.0), RelativeRange(2, "y", -5.0, 5.0), Range(2, "n", 0.3, 15.0),
                   Range(2, "mag", 5.0, 30.0), Range(2, "r_e", 0.1, 300.0)]
    if case == "se":
        comps.append(dict(x=290.853, y=290.178, mag=np.array([[16.131, 14.257, 13.455, 13.02, 12.751]]), r_e=39.117,
                          n=1.0, q=0.826, pa=-18.615))
        constraints += [RelativeRange(3, "x", -5.0, 5.0), RelativeRange(3, "y", -5.0, 5.0), Range(3, "mag", 5.0, 30.0),
                        Range(3, "r_e", 0.1, 300.0), PairRange(2, 3, "r_e", "/", 0.05, 1.0)]
    built = [sky]
    for number, vals in enumerate(comps[1:], start=2):
        vals = dict(vals)
        if values is not None:
            vals.update(values[number])  # (1, 5) band values or one number
        fixed = frozenset({"n"}) if (case == "se" and number == 3) else frozenset()
        built.append(Component("sersic", vals, fixed=fixed))
    return Model(built, tuple(constraints))


def evaluate_chi2(model_values: dict, case: str, images, sigmas, masks, psfs, config=None) -> np.ndarray:
    """(5,) galprof's chi^2 per band of fixed parameters (band values per component),
    band by band with ``galprof.fit`` and every parameter fixed (fit_bands cannot run with
    no free parameter)."""
    import torch

    from galprof import Component, Model, RenderConfig, fit
    config = RenderConfig() if config is None else config
    chi2 = []
    for k in range(5):
        comps = [Component("sky", dict(sky=NGC_SKY[k], dsdx=0.0, dsdy=0.0), fixed=frozenset({"sky", "dsdx", "dsdy"}))]
        for number in sorted(model_values):
            vals = {name: float(v[k]) for name, v in model_values[number].items()}
            comps.append(Component("sersic", vals, fixed=frozenset(vals)))
        res = fit(Model(comps), images[k], sigma=sigmas[k], mask=masks[k], psf=psfs[k], origin=NGC_REGION[::2],
                  zeropoint=NGC_ZP[k], convolution_box=(145, 145), pixel_scale=(0.396, 0.396), dtype=torch.float32,
                  config=config)
        chi2.append(float(res.chi2[0]))
    return np.array(chi2)


def run_ngc4261(args, summary: dict) -> None:
    import torch

    from galprof import Bands, RenderConfig, fit_bands
    root = pathlib.Path(args.data) / "ngc4261"
    bands = Bands(*NGC_BANDS)
    out("\n### NGC 4261 (SDSS ugriz; GALFITM 1.2.0 restart values)")
    summary["ngc4261"] = {}
    sigma_kinds = (("galprof's C) none sigma (clipped sky RMS corrected for the clipping)", True),
                   ("C) none sigma with the plain clipped sky RMS (closer to GALFITM's: see the chi^2 rows)", False))
    for sigma_label, unbiased in sigma_kinds:
        images, sigmas, masks, psfs, notes = ngc_inputs(root, unbiased)
        out(f"\n**sigma: {sigma_label}**")
        out("  " + "\n  ".join(notes))
        out(f"good pixels: {int((~masks).sum())} of {masks.size} (5 x 301 x 301)")
        for case, render in [(c, r) for c in args.ngc_cases for r in args.ngc_render]:
            config = RenderConfig(legacy_pixel_integration=render == "legacy")
            comps, info = read_galfitm_restart(root / f"ngc4261-{case}.feedme.1.2.0-osx")
            galfitm = {}
            for number, (kind, params) in enumerate(comps, start=1):
                if kind == "sersic":
                    galfitm[number] = {name: bands.band_values(c) for name, c in params.items()}
                elif kind == "sky":
                    sky_vals = bands.band_values(params["sky"])
                    assert np.allclose(sky_vals, NGC_SKY, atol=2e-3), sky_vals  # the fixed sky of the feedme
            common = dict(bands=bands, sigma=sigmas[None], mask=masks[None], psf=psfs, origin=NGC_REGION[::2],
                          zeropoint=np.array(NGC_ZP), convolution_box=(145, 145), pixel_scale=(0.396, 0.396),
                          dtype=torch.float32, config=config)
            tic, l0 = time.perf_counter(), load()
            res = fit_bands(ngc_model(case), images[None], **common)
            wall, l1 = time.perf_counter() - tic, load()
            # the same fit started from GALFITM's solution (shared values: their u-band value)
            start = {number: {name: (v[None] if res.terms[res.index(number, name)] > 1 else float(v[0]))
                              for name, v in params.items() if not (case == "se" and number == 3 and name == "n")}
                     for number, params in galfitm.items()}
            from_galfitm = fit_bands(ngc_model(case, start), images[None], **common)
            out(f"\n#### ngc4261-{case}, {render} rendering: galprof status {res.status[0]}, "
                f"{res.iterations[0]} iterations, "
                f"{wall:.0f} s ({l0} -> {l1}); chi2 {res.chi2[0]:.1f}, ndof {res.ndof[0]}, chi2_nu "
                f"{res.chi2_nu[0]:.4f}; started from GALFITM's solution: {from_galfitm.status[0]}, "
                f"{from_galfitm.iterations[0]} iterations, chi2 {from_galfitm.chi2[0]:.1f}; GALFITM 1.2.0 chi2 "
                f"{info.get('chi2')}, ndof {info.get('ndof')}, chi2_nu {info.get('chi2_nu')}")
            lines = [("| component | parameter | band | GALFITM 1.2.0 | galprof | galprof error | "
                      "(galprof - GALFITM) / error | galprof from GALFITM's start |"),
                     "|---|---|---|---|---|---|---|---|"]
            ours = {}
            for number, params in galfitm.items():
                ours[number] = {}
                for name, gvals in params.items():
                    value, error = res.value(number, name)[0], res.error(number, name)[0]
                    other = from_galfitm.value(number, name)[0]
                    ours[number][name] = value
                    per_band = res.terms[res.index(number, name)] > 1
                    for k in (range(5) if per_band else [0]):
                        diff = value[k] - gvals[k]
                        if name == "pa":
                            diff = wrap_pa(diff)
                        sig = f"{diff / error[k]:+.1f}" if error[k] > 0 else "fixed"
                        lines.append(f"| {number} | {name} | {NGC_BANDS[0][k] if per_band else 'all'} | "
                                     f"{gvals[k]:.4f} | {value[k]:.4f} | {error[k]:.4f} | {sig} | {other[k]:.4f} |")
            out("\n".join(lines))
            tic = time.perf_counter()
            chi2_galfitm = evaluate_chi2(galfitm, case, images, sigmas, masks, psfs, config)
            chi2_ours = evaluate_chi2(ours, case, images, sigmas, masks, psfs, config)
            out(f"chi^2 by galprof on the same pixels and sigma, band by band ({time.perf_counter() - tic:.0f} s):")
            chi_lines = ["| solution | " + " | ".join(NGC_BANDS[0]) + " | total |", "|---|" + "---|" * 6]
            chi_lines.append("| galprof's fit (fit_bands chi2_band) | "
                             + " | ".join(f"{c:.1f}" for c in res.chi2_band[0]) + f" | {res.chi2[0]:.1f} |")
            chi_lines.append("| galprof's values, re-rendered per band | " + " | ".join(f"{c:.1f}" for c in chi2_ours)
                             + f" | {chi2_ours.sum():.1f} |")
            chi_lines.append("| GALFITM 1.2.0's values, rendered by galprof | "
                             + " | ".join(f"{c:.1f}" for c in chi2_galfitm) + f" | {chi2_galfitm.sum():.1f} |")
            chi_lines.append("| GALFITM 1.2.0's own chi^2 (its log) | | | | | | " + f"{info.get('chi2')} |")
            out("\n".join(chi_lines))
            out(f"galprof chi2 - GALFITM-solution chi2 (galprof's renderer): "
                f"{chi2_ours.sum() - chi2_galfitm.sum():+.1f}")
            summary["ngc4261"][f"{case} {render} {'unbiased' if unbiased else 'plain'}"] = dict(
                status=str(res.status[0]), iterations=int(res.iterations[0]), seconds=wall, load=[l0, l1],
                chi2=float(res.chi2[0]), ndof=int(res.ndof[0]), galfitm=info,
                chi2_from_galfitm_start=float(from_galfitm.chi2[0]),
                chi2_galfitm_by_galprof=float(chi2_galfitm.sum()), chi2_ours_rerendered=float(chi2_ours.sum()),
                table=lines, chi2_table=chi_lines)


# =======================================================================================
# part 4: speed
# =======================================================================================


def peak_rss_mib() -> float:
    """This process's peak resident memory [MiB]: VmHWM (it starts afresh at exec, whereas
    ru_maxrss keeps the forking parent's peak), or ru_maxrss where /proc is absent."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed_child(npz: str, mode: str) -> None:
    """In a fresh process: a warm-up fit of the first 2 galaxies (the first call's one-off
    costs, reported apart), then the timed fit of all saved galaxies (``joint``: one
    fit_bands call; ``single``: 5 galprof.fit calls; ``single1``: the same with one CPU
    worker); prints a JSON line with wall and CPU time (the CPU workers' included), LM
    iterations and the rows rendered with and without derivatives (a (galaxy, band) image
    is one row; counted in this process: rows rendered in galprof.fit's worker processes
    are not seen)."""
    import torch

    from galprof import Bands, Component, Model, fit, fit_bands
    from galprof.fitting.functions import ModelFunctions
    counts = {"render_rows": 0, "jacobian_rows": 0}

    def counted(method, key):
        def wrapper(self, free, index, *a, **k):
            counts[key] += int(free.shape[0])
            return method(self, free, index, *a, **k)
        return wrapper

    ModelFunctions.render = counted(ModelFunctions.render, "render_rows")
    ModelFunctions.jacobian = counted(ModelFunctions.jacobian, "jacobian_rows")
    d = np.load(npz)
    images, sigmas, start = d["images"], d["sigmas"], {k[6:]: d[k] for k in d.files if k.startswith("start_")}
    psfs = [epsf(f) for f in PSF_FWHM]

    def run(sel):
        if mode == "joint":
            model = Model([Component("sersic", {k: start[k][sel] for k in ("x", "y", "mag", "r_e", "n", "q", "pa")}),
                           Component("sky", dict(sky=start["sky"][sel], dsdx=0.0, dsdy=0.0),
                                     fixed=frozenset({"dsdx", "dsdy"}))])
            res = fit_bands(model, images[sel], bands=Bands(LABELS, WAVELENGTHS), sigma=sigmas[sel], psf=psfs,
                            zeropoint=np.array(ZEROPOINTS), dtype=torch.float32)
            return res.iterations, [int(res.converged.sum())]
        iterations, converged = [], []
        for k in range(5):
            vals = {key: start[key][sel] for key in ("x", "y", "r_e", "n", "q", "pa")}
            vals["mag"] = start["mag"][sel, k]
            model = Model([Component("sersic", vals),
                           Component("sky", dict(sky=start["sky"][sel, k], dsdx=0.0, dsdy=0.0),
                                     fixed=frozenset({"dsdx", "dsdy"}))])
            res = fit(model, images[sel, k], sigma=sigmas[sel, k], psf=psfs[k], zeropoint=ZEROPOINTS[k],
                      dtype=torch.float32, cpu_workers=1 if mode == "single1" else None)
            iterations.append(res.iterations)
            converged.append(int(res.converged.sum()))
        return np.concatenate(iterations), converged

    def cpu_time() -> float:  # this process and its finished children (galprof.fit's CPU workers)
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    tic = time.perf_counter()
    run(slice(0, 2))
    warm = time.perf_counter() - tic
    counts.update(render_rows=0, jacobian_rows=0)
    rss0 = peak_rss_mib()
    l0 = load()
    tic, cpu0 = time.perf_counter(), cpu_time()
    iterations, converged = run(slice(None))
    wall, cpu = time.perf_counter() - tic, cpu_time() - cpu0
    print(json.dumps(dict(mode=mode, seconds=wall, cpu_seconds=cpu, warmup_seconds=warm, galaxies=len(images),
                          converged=converged, median_iterations=float(np.median(iterations)),
                          mean_iterations=float(np.mean(iterations)), load_before=l0, load_after=load(),
                          rss_before_mib=rss0, peak_rss_mib=peak_rss_mib(), threads=torch.get_num_threads(), **counts)))


def run_speed(args, summary: dict) -> None:
    n, size = args.speed_galaxies, 64
    rng = np.random.default_rng(args.seed + 7)
    t = sim_truths("sersic", n, size, rng)
    images, sigmas = sim_images("sersic", t, size, rng)
    sky0 = border_sky(images)
    comps = sim_components("sersic", t, False, np.random.default_rng(args.seed + 8), sky0)
    out(f"\n### speed: {n} galaxies x 5 bands, {size}x{size}, single Sérsic + sky per band, CPU float32; "
        f"{args.speed_rounds} rounds alternating the modes, each in a fresh process after a 2-galaxy warm-up")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "speed.npz")
        np.savez(npz, images=images, sigmas=sigmas, start_sky=sky0,
                 **{f"start_{k}": np.asarray(v) for k, v in comps[0].values.items()})
        for round_ in range(args.speed_rounds):
            for mode in args.speed_modes:
                proc = subprocess.run([sys.executable, __file__, "--speed-child", npz, mode], capture_output=True,
                                      text=True, check=False)
                if proc.returncode:
                    out(f"{mode}: FAILED\n{proc.stdout}\n{proc.stderr}")
                    continue
                info = json.loads(proc.stdout.strip().splitlines()[-1])
                info["round"] = round_
                rows.append(info)
                out(f"round {round_} {mode}: {info['seconds']:.1f} s wall, {info['cpu_seconds']:.1f} s CPU, "
                    f"{n / info['seconds']:.2f} galaxies/s (all 5 bands); warm-up {info['warmup_seconds']:.1f} s; "
                    f"converged {info['converged']}, iterations median {info['median_iterations']:.0f} mean "
                    f"{info['mean_iterations']:.1f}; rows rendered {info['render_rows']}, with derivatives "
                    f"{info['jacobian_rows']}; peak RSS {info['peak_rss_mib']:.0f} MiB (after imports and warm-up "
                    f"{info['rss_before_mib']:.0f}), {info['threads']} threads, {info['load_before']} -> "
                    f"{info['load_after']}")
    for mode in args.speed_modes:
        mine = [r for r in rows if r["mode"] == mode]
        if mine:
            out(f"{mode}: median {np.median([r['seconds'] for r in mine]):.1f} s wall "
                f"({n / np.median([r['seconds'] for r in mine]):.2f} galaxies/s), median "
                f"{np.median([r['cpu_seconds'] for r in mine]):.1f} s CPU over {len(mine)} runs")
    summary["speed"] = rows


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--speed-child":
        speed_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["sim", "multisim", "ngc4261", "speed"],
                        choices=["sim", "multisim", "ngc4261", "speed"])
    parser.add_argument("--scenes", nargs="+", default=["sersic", "bulgedisk"], choices=["sersic", "bulgedisk"])
    parser.add_argument("--galaxies", type=int, default=64, help="galaxies per simulated scene")
    parser.add_argument("--restarts", default="auto", choices=["auto", "on", "off"],
                        help="fit_bands' perturbed restarts near the fit for the joint fit (auto: bulge + disk)")
    parser.add_argument("--size", type=int, default=0, help="stamp size (default 48 sersic, 64 bulgedisk)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--renderer", default="galsim", choices=["galsim", "galprof"],
                        help="who draws the simulated galaxies (galprof: a control free of rendering differences)")
    parser.add_argument("--single-starts", nargs="*", default=["offset", "truth"], choices=["offset", "truth"],
                        help="starts of the single-band fits of the sim part")
    parser.add_argument("--ngc-cases", nargs="+", default=["s", "se"], choices=["s", "se"])
    parser.add_argument("--ngc-render", nargs="+", default=["default", "legacy"], choices=["default", "legacy"],
                        help="galprof's rendering (default: the ePSF convolution alone) and/or GALFIT's "
                             "(legacy_pixel_integration: pixel integral, then the PSF)")
    parser.add_argument("--speed-galaxies", type=int, default=64)
    parser.add_argument("--speed-rounds", type=int, default=3, help="alternating runs of each speed mode")
    parser.add_argument("--speed-modes", nargs="+", default=["joint", "single", "single1"],
                        choices=["joint", "single", "single1"],
                        help="single1: galprof.fit with cpu_workers=1 (no worker processes, as fit_bands runs)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help=f"the multiband data (default {DEFAULT_DATA})")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    import hashlib

    import torch
    from host_speed import (
        host_speed,  # bench/host_speed.py (this script's folder is on sys.path)
    )
    engine = REPO / "src" / "galprof" / "fitting" / "multiband.py"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    out(f"bench_multiband: {time.strftime('%Y-%m-%d %H:%M')}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, {os.cpu_count()} CPUs, {load()}; {host_speed()}; commit {head.stdout.strip()} + working tree, "
        f"fitting/multiband.py md5 {hashlib.md5(engine.read_bytes()).hexdigest()[:10]} "
        f"(modified {time.strftime('%H:%M', time.localtime(engine.stat().st_mtime))})")
    summary = {}
    for part in args.parts:
        if part in ("multisim", "ngc4261") and not pathlib.Path(args.data).is_dir():
            out(f"{part}: no data at {args.data}; skipped")
            continue
        if part == "sim":
            for scene in args.scenes:
                run_sim(scene, args, summary)
        elif part == "multisim":
            run_multisim(args, summary)
        elif part == "ngc4261":
            run_ngc4261(args, summary)
        else:
            run_speed(args, summary)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
