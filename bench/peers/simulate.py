"""Simulate the shared galaxy set of the peer benchmark with GalSim (not galprof's renderer).

Every image is drawn by GalSim with tightened GSParams (folding_threshold = maxk_threshold
= 1e-4). The PSF is a Moffat (FWHM 2.8 px, beta 3.5) drawn on a 25x25 stamp with
GalSim's default method='auto', so the stamp is an ePSF that contains the pixel response;
it is normalised to sum 1 and is what every tool is given. The galaxy is convolved with
a GalSim InterpolatedImage of exactly that stamp and drawn with method='no_pixel' (the
pixel is already in the ePSF), so the data are "galaxy (x) given ePSF" sampled at pixel
centres, with no PSF mismatch for any tool. A flat sky and Gaussian noise of known sigma
are added afterwards.

Truths and starts are stored in GALFIT conventions (see README.md): 1-based pixel
centres (x along NAXIS1), PA in degrees counter-clockwise from +y, R_e along the major
axis, q = b/a, mag = zp - 2.5 log10(total flux) (EXPTIME 1).

GalSim conversions: Sersic(half_light_radius=h) is circular; .shear(q=q, beta=b) is
area-preserving, so the major-axis R_e = h / sqrt(q), i.e. h = R_e sqrt(q). GalSim's beta
is counter-clockwise from +x, so beta = PA + 90 deg. GalSim images start at (1, 1) and
pixel (i, j) is centred at (i, j), which is GALFIT's convention; array[j-1, i-1] holds it.
"""

from __future__ import annotations

import json
import math

import numpy as np

ZEROPOINT = 25.0
PSF_SIZE = 25
PSF_FWHM = 2.8
PSF_BETA = 3.5
B1 = 1.6783469900166605  # exponential: R_e = b(1) R_s

# Parameter layout of each model: list of (component type, parameter names) in GALFIT
# conventions; the sky is the last component.
MODELS = {
    "sersic": [("sersic", ("x", "y", "mag", "r_e", "n", "q", "pa")), ("sky", ("sky",))],
    "bulgedisk": [("sersic", ("x", "y", "mag", "r_e", "n", "q", "pa")),
                  ("expdisk", ("x", "y", "mag", "r_s", "q", "pa")), ("sky", ("sky",))],
}


def param_keys(model: str) -> list[str]:
    """Flat keys '<component 1-based>_<name>' of a model, e.g. '1_n', '2_sky'."""
    return [f"{i}_{p}" for i, (_, names) in enumerate(MODELS[model], start=1) for p in names]


def _gsparams():
    import galsim

    return galsim.GSParams(folding_threshold=1e-4, maxk_threshold=1e-4, maximum_fft_size=16384)


def make_psf():
    """The 25x25 ePSF stamp (pixel included, sum 1) and GalSim's profile of it."""
    import galsim

    gsp = _gsparams()
    moffat = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM, gsparams=gsp)
    stamp = moffat.drawImage(nx=PSF_SIZE, ny=PSF_SIZE, scale=1.0, method="auto").array.astype(np.float64)
    stamp /= stamp.sum()
    epsf = galsim.InterpolatedImage(galsim.Image(stamp, scale=1.0), gsparams=gsp)
    return stamp, epsf


def _draw(components, size, epsf):
    """components: list of (kind, dict in GALFIT conventions) -> (size, size) image [ADU]."""
    import galsim

    gsp = _gsparams()
    image = galsim.ImageD(size, size, scale=1.0)
    for kind, p in components:
        q = p["q"]
        flux = 10 ** (-0.4 * (p["mag"] - ZEROPOINT))
        r_e = p["r_e"] if kind == "sersic" else B1 * p["r_s"]
        n = p["n"] if kind == "sersic" else 1.0
        prof = galsim.Sersic(n=n, half_light_radius=r_e * math.sqrt(q), flux=flux, gsparams=gsp)
        prof = prof.shear(q=q, beta=(p["pa"] + 90.0) * galsim.degrees)
        conv = galsim.Convolve(prof, epsf, gsparams=gsp)
        conv.drawImage(image=image, method="no_pixel", center=galsim.PositionD(p["x"], p["y"]), add_to_image=True)
    return image.array.copy()


def draw_truths(model: str, n: int, size: int, rng) -> dict[str, np.ndarray]:
    c = (size + 1) / 2.0  # geometric centre of a 1-based image
    t = {}
    if model == "sersic":
        t["1_x"] = c + rng.uniform(-2, 2, n)
        t["1_y"] = c + rng.uniform(-2, 2, n)
        t["1_mag"] = rng.uniform(17, 19, n)
        t["1_r_e"] = rng.uniform(2, 12, n)
        t["1_n"] = rng.uniform(0.6, 5, n)
        t["1_q"] = rng.uniform(0.3, 1.0, n)
        t["1_pa"] = rng.uniform(-90, 90, n)
        t["2_sky"] = rng.uniform(0, 1, n)
    elif model == "bulgedisk":
        x, y = c + rng.uniform(-2, 2, n), c + rng.uniform(-2, 2, n)
        mag = rng.uniform(17, 19, n)
        bt = rng.uniform(0.2, 0.6, n)
        pa_d = rng.uniform(-90, 90, n)
        t["1_x"], t["1_y"] = x, y.copy()
        t["1_mag"] = mag - 2.5 * np.log10(bt)
        t["1_r_e"] = rng.uniform(1.5, 4, n)
        t["1_n"] = np.full(n, 4.0)
        t["1_q"] = rng.uniform(0.6, 1.0, n)
        t["1_pa"] = pa_d + rng.uniform(-20, 20, n)
        t["2_x"], t["2_y"] = x.copy(), y.copy()
        t["2_mag"] = mag - 2.5 * np.log10(1 - bt)
        t["2_r_s"] = rng.uniform(5, 12, n) / B1
        t["2_q"] = rng.uniform(0.3, 1.0, n)
        t["2_pa"] = pa_d
        t["3_sky"] = rng.uniform(0, 1, n)
    else:
        raise ValueError(model)
    return t


def offset_starts(model: str, truth: dict, images: np.ndarray, rng) -> dict[str, np.ndarray]:
    """Starting values shared by every tool: truths moved by random offsets."""
    n = images.shape[0]
    s = {}
    for key, v in truth.items():
        name = key.split("_", 1)[1]
        if name in ("x", "y"):
            s[key] = v + rng.uniform(-1, 1, n)
        elif name == "mag":
            s[key] = v + rng.uniform(-0.3, 0.3, n)
        elif name in ("r_e", "r_s"):
            s[key] = v * rng.uniform(0.7, 1.4, n)
        elif name == "n":
            s[key] = np.clip(v + rng.uniform(-0.5, 0.5, n), 0.5, 7.5)
        elif name == "q":
            s[key] = np.clip(v + rng.uniform(-0.1, 0.1, n), 0.1, 0.95)
        elif name == "pa":
            s[key] = v + rng.uniform(-15, 15, n)
        elif name == "sky":
            border = np.concatenate([images[:, 0, :], images[:, -1, :], images[:, :, 0], images[:, :, -1]], axis=1)
            s[key] = np.median(border, axis=1)
    return s


def simulate(configs, n_galaxies: int, noise: float, seed: int) -> dict:
    """configs: list of (model, size). Returns the arrays to be saved in the .npz."""
    rng = np.random.default_rng(seed)
    stamp, epsf = make_psf()
    out = {"psf": stamp}
    meta = {"zeropoint": ZEROPOINT, "exptime": 1.0, "noise_sigma": noise, "seed": seed, "n_galaxies": n_galaxies,
            "psf": dict(kind="Moffat", fwhm=PSF_FWHM, beta=PSF_BETA, size=PSF_SIZE,
                        method="GalSim drawImage method='auto' (pixel included), normalised to sum 1"),
            "galaxy_drawing": "GalSim Convolve(profile, InterpolatedImage(ePSF stamp)), method='no_pixel', "
                              "GSParams(folding_threshold=1e-4, maxk_threshold=1e-4)",
            "configs": []}
    for model, size in configs:
        name = f"{model}_{size}"
        truth = draw_truths(model, n_galaxies, size, rng)
        images = np.empty((n_galaxies, size, size))
        for b in range(n_galaxies):
            comps = []
            for i, (kind, names) in enumerate(MODELS[model], start=1):
                if kind != "sky":
                    comps.append((kind, {p: float(truth[f"{i}_{p}"][b]) for p in names}))
            sky = truth[param_keys(model)[-1]][b]
            images[b] = _draw(comps, size, epsf) + sky
        noiseless = images.copy()
        if noise > 0:
            images = images + rng.normal(0.0, noise, images.shape)
        sigma = np.full(images.shape, noise if noise > 0 else 1.0)
        start = offset_starts(model, truth, images, rng)
        out[f"{name}/images"] = images
        out[f"{name}/noiseless"] = noiseless
        out[f"{name}/sigma"] = sigma
        for k, v in truth.items():
            out[f"{name}/truth/{k}"] = np.asarray(v, dtype=np.float64)
        for k, v in start.items():
            out[f"{name}/start/{k}"] = np.asarray(v, dtype=np.float64)
        meta["configs"].append(dict(name=name, model=model, size=size, keys=param_keys(model)))
    out["meta"] = np.array(json.dumps(meta))
    return out


def write(path, arrays: dict) -> None:
    np.savez(path, **arrays)
