"""Benchmark (issue 21): multi-component fits from the starts GALFIT users write, galprof and pyimfit.

Scenes (``--scenes``, default all three), rendered with GalSim; Moffat PSF (FWHM 2.8 px,
beta 3.5) drawn with its pixel response (the ePSF every tool receives); Gaussian noise
for a total S/N of 100-400 (sigma = F_total / (S/N sqrt(A)), A the area named below);
sky 0 but fitted (a flat sky: galprof ``sky`` with its gradients fixed, imfit ``FlatSky``):

* ``bulgedisk``: Sérsic bulge n 1.5-5, R_e 1.5-4 px, q 0.6-0.95 + exponential disk R_s
  5-12 px (2-4x the bulge), q 0.3-0.9; B/T 0.1-0.7, total mag 16.5-18; one shared centre;
  A = 4 pi R_s^2 q (inside 2 R_s). Starts as the issue's example: bulge R_e x1.5, n 2.5,
  q +0.15, PA +20 deg, both magnitudes +0.5, disk R_s x1.5, q +0.15, PA +20 deg, each
  centre 1.3 px off in its own random direction.
* ``bardisk``: a Ferrer bar (galprof ``ferrer_mag``: GALFIT's ``ferrer``,
  I = I_0 (1 - (r / r_out)^(2 - beta))^alpha inside r_out, with a total magnitude instead
  of mu_0) with alpha 1.5-3, beta = 0 (held fixed in the fits, as GALFIT users often do),
  r_out 1-1.8 R_s (5-14 px), q 0.2-0.45, PA independent of the disk's, + an exponential
  disk R_s 5-9 px, q 0.5-0.95; Bar/T 0.1-0.4, total mag 16.5-18; one shared centre;
  A = 4 pi R_s^2 q_disk. GalSim has no Ferrer profile: the bar is the GALFIT manual's
  formula evaluated with numpy on a grid of 1/8 px pixels, each the mean of 4 x 4
  sub-samples (32 samples per pixel along each axis), handed to ``galsim.InterpolatedImage``
  (quintic interpolant) with the exact total flux pi q r_out^2 I_0 / (alpha + 1), added to
  the disk and convolved with the same Moffat PSF. Starts: bar r_out x1.3, q +0.1, PA +15
  deg, alpha 2.0 (whatever the truth), mag +0.5; disk as in ``bulgedisk`` (R_s x1.5, q
  +0.15, PA +20 deg, mag +0.5); each centre 1 px off in its own random direction.
* ``pair``: two single Sérsic galaxies fitted together, centres 6-12 px apart (midpoint
  within 2 px of the image centre), each with R_e = separation / U(1, 2) (3-12 px), n
  0.8-4, q 0.4-0.95, mag 16.5-18 (the second 0-1.5 mag fainter); A = sum 4 pi R_e^2 q.
  Each galaxy starts R_e x1.5, n 2.5, mag +0.5, q +0.15, PA +20 deg, centre 1.3 px off in
  its own random direction. ``free`` only (two galaxies have two centres).

q is capped at 1 in every start. Variants (``--variants``): ``free`` (every centre free
and separate) and ``tied`` (the centres start together, 1.3 or 1 px off the truth in one
direction, and are tied by a constraint: GALFIT's ``1_2 x offset``, ``1_2 y offset``;
imfit: both functions in one function block with one X0, Y0).

Tools (``--tools``, default galprof only):

* ``galprof``: one batched ``galprof.fit`` call per scene and variant (CPU, float32,
  default strategy and CPU workers).
* ``pyimfit``: imfit's Levenberg-Marquardt (pyimfit 1.1, ``solver='LM'``, its defaults)
  from the same starts, images, sigma images and PSF stamp, one galaxy at a time, in its
  own venv (bench/peers/.venvs/pyimfit, made by ``bench/peers/venvs.py`` on first use) as
  a subprocess: bench/peers/workers/pyimfit_scene_worker.py reads an .npz and writes a JSON.
  Conventions converted there: imfit's pixels are 1-based and its PA is counter-clockwise
  from +y, as GALFIT's; ell = 1 - q; imfit takes intensities [ADU/pix], so each start
  magnitude becomes F = 10^(-0.4 (mag - zp)) and then Sersic I_e = F / (2 pi q R_e^2 n
  e^b b^(-2n) Gamma(2n)) (imfit's b(n)), Exponential I_0 = F / (2 pi q h^2) (h = R_s),
  FerrersBar2D I_0 = F (n + 1) / (pi q a_bar^2) (a_bar = r_out, n = alpha, c0 = 0 fixed:
  exactly GALFIT's Ferrer with beta = 0); tied centres are one function block holding both
  functions (one X0, Y0), free centres one block per function; limits x, y +- 10 px,
  ell [0, 0.95], Sersic n [0.36, 8], Ferrers n [0.05, 10], sizes [0.1, 500] px.

Each tool's fit is compared with the same tool's fit of the same image started at the
truth (chi^2 of its own model: galprof's, or imfit's own fit statistic):

* recovered: chi^2 within max(1, 1e-5 chi^2) of the truth-start fit's (the same minimum);
* flagged: not recovered, and the fit said so (galprof: STATUS not ``converged``;
  pyimfit: ``fitConverged`` false);
* silently wrong: not recovered and reported as converged.

Prints counts, median and mean iterations and galaxies per second (the offset-start fits
only, fit time only: galprof's ``fit`` call; pyimfit's ``Imfit.fit`` calls, which load the
data and fit, summed over the galaxies; not the worker's start-up). Iterations: galprof's
LM iterations (Jacobian evaluations) of every start, retry and restart of a galaxy;
imfit's ``nIter`` (its LM iterations, each a finite-difference Jacobian). Unrecovered
galaxies are listed with their fitted parameters beside the truth. Not a test: no
assertions. Run:

    python bench/bench_multicomponent.py [--galaxies 32] [--size 96] [--seed 1]
        [--variants free tied] [--scenes bulgedisk bardisk pair] [--tools galprof pyimfit] [--json OUT]

(``--json``: every count, per-galaxy chi^2 / iterations / status and the unrecovered fits.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np

from galprof import Component, Model, Tie, fit

ZP = 25.0
PSF_FWHM, PSF_BETA = 2.8, 3.5
SCENES = ("bulgedisk", "bardisk", "pair")
PEERS = Path(__file__).resolve().parent / "peers"
# galprof profile -> the kind the pyimfit worker knows
IMFIT_KIND = {"sersic": "sersic", "expdisk": "expdisk", "ferrer_mag": "ferrer"}


def epsf(size: int = 25) -> np.ndarray:
    """The Moffat PSF drawn with its pixel response (an ePSF), normalised to 1."""
    stamp = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM).drawImage(nx=size, ny=size, scale=1.0).array
    return stamp / stamp.sum()


def _flux(mag):
    return 10 ** (-0.4 * (np.asarray(mag) - ZP))


def _shear(profile, q: float, pa: float):
    """GalSim's shear(q, beta) is area-preserving and beta is CCW from +x: beta = PA + 90."""
    return profile.shear(q=q, beta=(pa + 90.0) * galsim.degrees)


def _noisy(image: np.ndarray, snr: float, area: float, rng) -> tuple[np.ndarray, np.ndarray]:
    sigma = image.sum() / (snr * math.sqrt(area))
    return image + rng.normal(0.0, sigma, image.shape), np.full(image.shape, sigma)


def _draw(profile, psf, size: int, x: float, y: float) -> np.ndarray:
    offset = (x - (size + 1) / 2, y - (size + 1) / 2)
    return galsim.Convolve(profile, psf).drawImage(nx=size, ny=size, scale=1.0, offset=offset).array


# --- bulge + disk -------------------------------------------------------------------

def truths(n: int, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Bulge + disk truth values in GALFIT's conventions (1-based pixels, PA CCW from +y, q = b/a)."""
    r_e = rng.uniform(1.5, 4.0, n)
    total = rng.uniform(16.5, 18.0, n)
    bt = rng.uniform(0.1, 0.7, n)
    return dict(
        x=(size + 1) / 2 + rng.uniform(-2, 2, n), y=(size + 1) / 2 + rng.uniform(-2, 2, n),
        b_mag=total - 2.5 * np.log10(bt), b_r_e=r_e, b_n=rng.uniform(1.5, 5.0, n), b_q=rng.uniform(0.6, 0.95, n),
        b_pa=rng.uniform(-90, 90, n),
        d_mag=total - 2.5 * np.log10(1 - bt), d_r_s=np.clip(r_e * rng.uniform(2.0, 4.0, n), 5.0, 12.0),
        d_q=rng.uniform(0.3, 0.9, n), d_pa=rng.uniform(-90, 90, n),
        snr=rng.uniform(100, 400, n),
    )


def render(t: dict, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """GalSim bulge + disk images (B, size, size) with noise, and their sigma images."""
    psf = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM)
    images, sigmas = [], []
    for i in range(len(t["x"])):
        bulge = galsim.Sersic(n=t["b_n"][i], half_light_radius=t["b_r_e"][i] * math.sqrt(t["b_q"][i]),
                              flux=_flux(t["b_mag"][i]))
        disk = galsim.Exponential(scale_radius=t["d_r_s"][i] * math.sqrt(t["d_q"][i]), flux=_flux(t["d_mag"][i]))
        image = _draw(_shear(bulge, t["b_q"][i], t["b_pa"][i]) + _shear(disk, t["d_q"][i], t["d_pa"][i]), psf,
                      size, t["x"][i], t["y"][i])
        area = 4.0 * math.pi * t["d_r_s"][i] ** 2 * t["d_q"][i]  # pixels inside 2 R_s
        image, sigma = _noisy(image, t["snr"][i], area, rng)
        images.append(image)
        sigmas.append(sigma)
    return np.array(images), np.array(sigmas)


def starts(t: dict, rng: np.random.Generator, tied: bool) -> tuple[dict, dict]:
    """The issue's offset starts: (bulge values, disk values), arrays of shape (B,)."""
    n = len(t["x"])
    angle_b, angle_d = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    if tied:
        angle_d = angle_b
    bulge = dict(x=t["x"] + 1.3 * np.cos(angle_b), y=t["y"] + 1.3 * np.sin(angle_b), mag=t["b_mag"] + 0.5,
                 r_e=t["b_r_e"] * 1.5, n=np.full(n, 2.5), q=np.minimum(t["b_q"] + 0.15, 1.0), pa=t["b_pa"] + 20.0)
    disk = dict(x=t["x"] + 1.3 * np.cos(angle_d), y=t["y"] + 1.3 * np.sin(angle_d), mag=t["d_mag"] + 0.5,
                r_s=t["d_r_s"] * 1.5, q=np.minimum(t["d_q"] + 0.15, 1.0), pa=t["d_pa"] + 20.0)
    return bulge, disk


def truth_start(t: dict) -> tuple[dict, dict]:
    bulge = dict(x=t["x"], y=t["y"], mag=t["b_mag"], r_e=t["b_r_e"], n=t["b_n"], q=t["b_q"], pa=t["b_pa"])
    disk = dict(x=t["x"], y=t["y"], mag=t["d_mag"], r_s=t["d_r_s"], q=t["d_q"], pa=t["d_pa"])
    return bulge, disk


# --- bar + disk -----------------------------------------------------------------------

def ferrer_brightness(dx, dy, r_out, alpha, beta, q, pa):
    """GALFIT's Ferrer profile per unit I_0 at offsets (dx, dy) [pix] from the centre:
    (1 - (r / r_out)^(2 - beta))^alpha inside r_out, 0 beyond; r the elliptical radius
    along the major axis (PA CCW from +y: the major axis points to (-sin PA, cos PA))."""
    t = math.radians(pa)
    major = -dx * math.sin(t) + dy * math.cos(t)
    minor = dx * math.cos(t) + dy * math.sin(t)
    r = np.hypot(major, minor / q)
    inside = r < r_out
    return np.where(inside, np.clip(1.0 - (np.where(inside, r, 0.0) / r_out) ** (2.0 - beta), 0.0, 1.0) ** alpha, 0.0)


def ferrer_galsim(r_out, alpha, q, pa, flux, oversample: int = 8, subsamples: int = 4):
    """A Ferrer bar (beta = 0) as a ``galsim.InterpolatedImage`` of a numpy evaluation on
    1/oversample px pixels, each the mean of subsamples^2 points, with total ``flux``."""
    scale = 1.0 / oversample
    half = math.ceil((r_out + 1.0) * oversample)
    centres = (np.arange(2 * half + 1) - half) * scale  # odd size: the centre pixel is the profile's centre
    sub = ((np.arange(subsamples) + 0.5) / subsamples - 0.5) * scale
    axis = (centres[:, None] + sub[None, :]).ravel()
    xx, yy = np.meshgrid(axis, axis)  # galsim arrays are [y, x]
    sb = ferrer_brightness(xx, yy, r_out, alpha, 0.0, q, pa)
    fine = sb.reshape(2 * half + 1, subsamples, 2 * half + 1, subsamples).mean(axis=(1, 3))
    return galsim.InterpolatedImage(galsim.Image(fine, scale=scale), x_interpolant="quintic", flux=flux)


def bar_truths(n: int, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    r_s = rng.uniform(5.0, 9.0, n)
    total = rng.uniform(16.5, 18.0, n)
    bar_t = rng.uniform(0.1, 0.4, n)
    return dict(
        x=(size + 1) / 2 + rng.uniform(-2, 2, n), y=(size + 1) / 2 + rng.uniform(-2, 2, n),
        bar_mag=total - 2.5 * np.log10(bar_t), bar_r_out=np.clip(r_s * rng.uniform(1.0, 1.8, n), 5.0, 14.0),
        bar_alpha=rng.uniform(1.5, 3.0, n), bar_q=rng.uniform(0.2, 0.45, n), bar_pa=rng.uniform(-90, 90, n),
        d_mag=total - 2.5 * np.log10(1 - bar_t), d_r_s=r_s, d_q=rng.uniform(0.5, 0.95, n),
        d_pa=rng.uniform(-90, 90, n), snr=rng.uniform(100, 400, n),
    )


def bar_render(t: dict, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    psf = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM)
    images, sigmas = [], []
    for i in range(len(t["x"])):
        bar = ferrer_galsim(t["bar_r_out"][i], t["bar_alpha"][i], t["bar_q"][i], t["bar_pa"][i],
                            float(_flux(t["bar_mag"][i])))
        disk = galsim.Exponential(scale_radius=t["d_r_s"][i] * math.sqrt(t["d_q"][i]), flux=_flux(t["d_mag"][i]))
        image = _draw(bar + _shear(disk, t["d_q"][i], t["d_pa"][i]), psf, size, t["x"][i], t["y"][i])
        image, sigma = _noisy(image, t["snr"][i], 4.0 * math.pi * t["d_r_s"][i] ** 2 * t["d_q"][i], rng)
        images.append(image)
        sigmas.append(sigma)
    return np.array(images), np.array(sigmas)


def bar_truth_start(t: dict) -> tuple[dict, dict]:
    n = len(t["x"])
    bar = dict(x=t["x"], y=t["y"], mag=t["bar_mag"], r_out=t["bar_r_out"], alpha=t["bar_alpha"],
               beta=np.zeros(n), q=t["bar_q"], pa=t["bar_pa"])
    disk = dict(x=t["x"], y=t["y"], mag=t["d_mag"], r_s=t["d_r_s"], q=t["d_q"], pa=t["d_pa"])
    return bar, disk


def bar_starts(t: dict, rng: np.random.Generator, tied: bool) -> tuple[dict, dict]:
    n = len(t["x"])
    angle_bar, angle_d = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    if tied:
        angle_d = angle_bar
    bar = dict(x=t["x"] + np.cos(angle_bar), y=t["y"] + np.sin(angle_bar), mag=t["bar_mag"] + 0.5,
               r_out=t["bar_r_out"] * 1.3, alpha=np.full(n, 2.0), beta=np.zeros(n),
               q=np.minimum(t["bar_q"] + 0.1, 1.0), pa=t["bar_pa"] + 15.0)
    disk = dict(x=t["x"] + np.cos(angle_d), y=t["y"] + np.sin(angle_d), mag=t["d_mag"] + 0.5,
                r_s=t["d_r_s"] * 1.5, q=np.minimum(t["d_q"] + 0.15, 1.0), pa=t["d_pa"] + 20.0)
    return bar, disk


# --- two overlapping galaxies ---------------------------------------------------------------

def pair_truths(n: int, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    sep = rng.uniform(6.0, 12.0, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    mx, my = (size + 1) / 2 + rng.uniform(-2, 2, n), (size + 1) / 2 + rng.uniform(-2, 2, n)
    mag1 = rng.uniform(16.5, 18.0, n)
    t = dict(sep=sep, snr=rng.uniform(100, 400, n))
    for g, sign, mag in ((1, -0.5, mag1), (2, 0.5, mag1 + rng.uniform(0.0, 1.5, n))):
        t.update({f"g{g}_x": mx + sign * sep * np.cos(angle), f"g{g}_y": my + sign * sep * np.sin(angle),
                  f"g{g}_mag": mag, f"g{g}_r_e": sep / rng.uniform(1.0, 2.0, n), f"g{g}_n": rng.uniform(0.8, 4.0, n),
                  f"g{g}_q": rng.uniform(0.4, 0.95, n), f"g{g}_pa": rng.uniform(-90, 90, n)})
    return t


def pair_render(t: dict, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    psf = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM)
    centre = (size + 1) / 2
    images, sigmas = [], []
    for i in range(len(t["sep"])):
        galaxies, area = [], 0.0
        for g in (1, 2):
            r_e, q = t[f"g{g}_r_e"][i], t[f"g{g}_q"][i]
            s = galsim.Sersic(n=t[f"g{g}_n"][i], half_light_radius=r_e * math.sqrt(q), flux=_flux(t[f"g{g}_mag"][i]))
            galaxies.append(_shear(s, q, t[f"g{g}_pa"][i]).shift(t[f"g{g}_x"][i] - centre, t[f"g{g}_y"][i] - centre))
            area += 4.0 * math.pi * r_e**2 * q
        image = _draw(galaxies[0] + galaxies[1], psf, size, centre, centre)
        image, sigma = _noisy(image, t["snr"][i], area, rng)
        images.append(image)
        sigmas.append(sigma)
    return np.array(images), np.array(sigmas)


def pair_truth_start(t: dict) -> tuple[dict, dict]:
    return tuple({k: t[f"g{g}_{k}"] for k in ("x", "y", "mag", "r_e", "n", "q", "pa")} for g in (1, 2))


def pair_starts(t: dict, rng: np.random.Generator, tied: bool) -> tuple[dict, dict]:
    n = len(t["sep"])
    out = []
    for g in (1, 2):
        angle = rng.uniform(0, 2 * np.pi, n)
        out.append(dict(x=t[f"g{g}_x"] + 1.3 * np.cos(angle), y=t[f"g{g}_y"] + 1.3 * np.sin(angle),
                        mag=t[f"g{g}_mag"] + 0.5, r_e=t[f"g{g}_r_e"] * 1.5, n=np.full(n, 2.5),
                        q=np.minimum(t[f"g{g}_q"] + 0.15, 1.0), pa=t[f"g{g}_pa"] + 20.0))
    return tuple(out)


# (profile, fixed) per component; truths, render, truth start, offset starts; variants
SCENE = {
    "bulgedisk": dict(components=[("sersic", set()), ("expdisk", set())], truths=truths, render=render,
                      truth_start=truth_start, starts=starts, variants=("free", "tied")),
    "bardisk": dict(components=[("ferrer_mag", {"beta"}), ("expdisk", set())], truths=bar_truths,
                    render=bar_render, truth_start=bar_truth_start, starts=bar_starts, variants=("free", "tied")),
    "pair": dict(components=[("sersic", set()), ("sersic", set())], truths=pair_truths, render=pair_render,
                 truth_start=pair_truth_start, starts=pair_starts, variants=("free",)),
}


def model(components, values, tied: bool) -> Model:
    """galprof model: the scene's components with ``values`` (one dict per component), a sky."""
    n = len(values[0]["x"])
    comps = [Component(profile, v, fixed=set(fixed)) for (profile, fixed), v in zip(components, values)]
    comps.append(Component("sky", dict(sky=np.zeros(n), dsdx=np.zeros(n), dsdy=np.zeros(n)), fixed={"dsdx", "dsdy"}))
    constraints = [Tie((1, 2), "x", "offset"), Tie((1, 2), "y", "offset")] if tied else []
    return Model(comps, constraints)


def classify(chi2, reference_chi2, flagged) -> dict:
    same = np.asarray(chi2) <= np.asarray(reference_chi2) + np.maximum(1.0, 1e-5 * np.asarray(reference_chi2))
    flagged = np.asarray(flagged, dtype=bool)
    return dict(same=same, recovered=int(same.sum()), flagged=int((~same & flagged).sum()),
                silently_wrong=int((~same & ~flagged).sum()), flagged_recovered=int((same & flagged).sum()))


def run_galprof(scene: dict, truth_values, start_values, tied, images, sigmas, psf, options) -> dict:
    comps = scene["components"]
    reference = fit(model(comps, truth_values, tied), images, sigma=sigmas, psf=psf, zeropoint=ZP, **options)
    start = time.perf_counter()
    result = fit(model(comps, start_values, tied), images, sigma=sigmas, psf=psf, zeropoint=ZP, **options)
    seconds = time.perf_counter() - start
    values = [{name: result.value(ci, name) for name in truth_values[ci - 1]} for ci in range(1, len(comps) + 1)]
    return dict(chi2=result.chi2, reference_chi2=reference.chi2, flagged=[s != "converged" for s in result.status],
                status=[str(s) for s in result.status], iterations=np.asarray(result.iterations, dtype=float),
                seconds=seconds, values=values,
                reference_status=[str(s) for s in reference.status])


def run_pyimfit(scene: dict, truth_values, start_values, tied, images, sigmas, psf, workdir: Path) -> dict:
    if str(PEERS) not in sys.path:
        sys.path.insert(0, str(PEERS))
    import venvs

    ok, message = venvs.ensure_venv("pyimfit", PEERS / ".venvs" / "logs")
    if not ok:
        raise RuntimeError(f"pyimfit venv: {message}")
    spec = dict(zeropoint=ZP, tied=tied, components=[dict(kind=IMFIT_KIND[p]) for p, _ in scene["components"]])
    arrays = dict(images=images, sigma=sigmas, psf=psf, spec=json.dumps(spec))
    for which, values in (("truth", truth_values), ("offset", start_values)):
        for c, v in enumerate(values, start=1):
            arrays.update({f"{which}/{c}_{k}": np.asarray(a, dtype=float) for k, a in v.items()})
    data, out = workdir / "scene.npz", workdir / "pyimfit.json"
    np.savez(data, **arrays)
    worker = PEERS / "workers" / "pyimfit_scene_worker.py"
    run = subprocess.run([str(venvs.venv_python("pyimfit")), str(worker), "--data", str(data), "--out", str(out)],
                         capture_output=True, text=True, cwd=workdir, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"pyimfit worker failed:\n{run.stdout}\n{run.stderr}")
    r = json.loads(out.read_text())
    offset, truth = r["offset"], r["truth"]
    names = [list(v) for v in truth_values]
    values = [{k: np.array([g[f"{c}_{k}"] for g in offset["values"]]) for k in names[c - 1]}
              for c in range(1, len(names) + 1)]
    status = [("converged" if conv else "not converged") + f", {it} it, {fe} evals, {pg} pegged"
              for conv, it, fe, pg in zip(offset["converged"], offset["iterations"], offset["func_evals"],
                                          offset["pegged"])]
    return dict(chi2=np.array(offset["chi2"]), reference_chi2=np.array(truth["chi2"]),
                flagged=[not c or e for c, e in zip(offset["converged"], offset["error"])], status=status,
                iterations=np.array(offset["iterations"], dtype=float), seconds=offset["seconds"], values=values,
                reference_status=["converged" if c else "not converged" for c in truth["converged"]],
                versions=r["versions"])


def describe(values_fit, values_true, i) -> str:
    """One galaxy's fitted values beside the truth, component by component."""
    parts = []
    for c, (vf, vt) in enumerate(zip(values_fit, values_true), start=1):
        items = [f"{k} {float(vf[k][i]):.3g}/{float(vt[k][i]):.3g}" for k in vt if k in vf and k != "beta"]
        parts.append(f"[{c}] " + ", ".join(items))
    return "; ".join(parts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["free", "tied"], choices=["free", "tied"])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=SCENES)
    parser.add_argument("--tools", nargs="+", default=["galprof"], choices=["galprof", "pyimfit"])
    parser.add_argument("--n-starts", type=int, default=1, help="galprof fit's n_starts")
    parser.add_argument("--no-staged", action="store_true", help="fit with staged=False")
    parser.add_argument("--no-perturbed", action="store_true",
                        help="fit with perturbed_starts=False (no restarts near the fit)")
    parser.add_argument("--json", help="write every count and per-galaxy result to this file")
    args = parser.parse_args(argv)
    psf = epsf()
    options = dict(n_starts=args.n_starts, staged=not args.no_staged)
    if args.no_perturbed:
        options["perturbed_starts"] = False
    print(f"# bench_multicomponent: {args.galaxies} galaxies per scene, {args.size}x{args.size}, seed {args.seed}, "
          f"galprof options {options}, load average {tuple(round(x, 2) for x in os.getloadavg())}")
    report = []
    with tempfile.TemporaryDirectory(prefix="bench_multicomponent_") as tmp:
        for scene_name in args.scenes:
            scene = SCENE[scene_name]
            # bulge + disk keeps the seed's original stream; the other scenes have their own
            rng = np.random.default_rng(args.seed if scene_name == "bulgedisk"
                                        else [args.seed, SCENES.index(scene_name)])
            t = scene["truths"](args.galaxies, rng, args.size)
            images, sigmas = scene["render"](t, args.size, rng)
            truth_values = list(scene["truth_start"](t))
            print(f"\n## {scene_name}\n")
            print("| tool | variant | recovered | flagged | silently wrong | recovered but flagged | "
                  "median iterations | mean iterations | gal/s |")
            print("|---|---|---|---|---|---|---|---|---|")
            details = []
            for variant in args.variants:
                if variant not in scene["variants"]:
                    print(f"| (all) | {variant} | not run: the scene has no {variant} variant | | | | | | |")
                    continue
                tied = variant == "tied"
                start_values = list(scene["starts"](t, rng, tied))
                for tool in args.tools:
                    if tool == "galprof":
                        r = run_galprof(scene, truth_values, start_values, tied, images, sigmas, psf, options)
                    else:
                        r = run_pyimfit(scene, truth_values, start_values, tied, images, sigmas, psf, Path(tmp))
                    counts = classify(r["chi2"], r["reference_chi2"], r["flagged"])
                    row = dict(scene=scene_name, tool=tool, variant=variant, galaxies=args.galaxies,
                               **{k: v for k, v in counts.items() if k != "same"},
                               median_iterations=float(np.median(r["iterations"])),
                               mean_iterations=float(np.mean(r["iterations"])), seconds=float(r["seconds"]),
                               galaxies_per_second=args.galaxies / r["seconds"], versions=r.get("versions"),
                               per_galaxy=dict(chi2=[float(v) for v in r["chi2"]],
                                               reference_chi2=[float(v) for v in r["reference_chi2"]],
                                               iterations=[float(v) for v in r["iterations"]],
                                               status=list(r["status"])))
                    print(f"| {tool} | {variant} | {row['recovered']}/{args.galaxies} | {row['flagged']} | "
                          f"{row['silently_wrong']} | {row['flagged_recovered']} | {row['median_iterations']:.0f} | "
                          f"{row['mean_iterations']:.1f} | {row['galaxies_per_second']:.2f} |")
                    row["unrecovered"] = []
                    for i in np.nonzero(~counts["same"])[0]:
                        row["unrecovered"].append(dict(
                            galaxy=int(i), status=r["status"][i], reference_status=r["reference_status"][i],
                            delta_chi2=float(r["chi2"][i] - r["reference_chi2"][i]),
                            chi2_reference=float(r["reference_chi2"][i]),
                            fit_vs_truth=describe(r["values"], truth_values, i)))
                    row["recovered_flagged"] = [f"galaxy {i}: {r['status'][i]}"
                                                for i in np.nonzero(counts["same"] & np.asarray(r["flagged"]))[0]]
                    details.append(row)
            for row in details:
                for line in row["recovered_flagged"]:
                    print(f"  {row['tool']} {row['variant']} recovered but flagged, {line}")
                for u in row["unrecovered"]:
                    print(f"  {row['tool']} {row['variant']} galaxy {u['galaxy']}: {u['status']}, "
                          f"delta chi2 {u['delta_chi2']:.2f} (truth-start chi2 {u['chi2_reference']:.1f}, "
                          f"{u['reference_status']}); fit/true: {u['fit_vs_truth']}")
            report += details
    if args.json:
        Path(args.json).write_text(json.dumps(dict(argv=sys.argv, galaxies=args.galaxies, size=args.size,
                                                   seed=args.seed, options=options, rows=report), indent=1))


if __name__ == "__main__":
    main()
