"""Benchmark (issue 21): bulge + disk decompositions from the starts GALFIT users write.

GalSim renders N bulge + disk galaxies (Sérsic bulge n 1.5-5, R_e 1.5-4 px; exponential
disk R_s 5-12 px, 2-4x the bulge; B/T 0.1-0.7; one shared centre; a Moffat PSF
(FWHM 2.8 px, beta 3.5); Gaussian noise for a total S/N of 100-400 inside 2 R_s; sky 0
but fitted). Every galaxy starts as the issue's example does: bulge R_e x1.5, n 2.5,
both magnitudes +0.5, disk R_s x1.5, q +0.15, PA +20 deg, each centre 1.3 px off in its
own random direction.

Variants:

* ``free``: the bulge and disk centres free and separate;
* ``tied``: the centres start together and are tied by a constraint (GALFIT's
  ``1_2 x offset``, ``1_2 y offset``).

Each fit is compared with a reference fit of the same image started at the truth:

* recovered: chi^2 within max(1, 1e-5 chi^2) of the reference fit's (the same minimum);
* flagged: not recovered, and its STATUS is not ``converged``;
* silently wrong: not recovered and ``converged``.

Prints counts, median and mean LM iterations (of every start, retry and restart of a
galaxy) and galaxies per second (the offset-start fits only; the mean iterations, not
the median, set the CPU cost).
Not a test: no assertions. Run:

    python bench/bench_multicomponent.py [--galaxies 32] [--size 96] [--seed 1] [--variants free tied]
"""

from __future__ import annotations

import argparse
import math
import time

import galsim
import numpy as np

from galprof import Component, Model, Tie, fit

ZP = 25.0
PSF_FWHM, PSF_BETA = 2.8, 3.5


def epsf(size: int = 25) -> np.ndarray:
    """The Moffat PSF drawn with its pixel response (an ePSF), normalised to 1."""
    stamp = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM).drawImage(nx=size, ny=size, scale=1.0).array
    return stamp / stamp.sum()


def truths(n: int, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Truth values in GALFIT's conventions (1-based pixels, PA CCW from +y, q = b/a)."""
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
    """GalSim images (B, size, size) with noise, and their sigma images."""
    psf = galsim.Moffat(beta=PSF_BETA, fwhm=PSF_FWHM)
    images, sigmas = [], []
    for i in range(len(t["x"])):
        bulge = galsim.Sersic(n=t["b_n"][i], half_light_radius=t["b_r_e"][i] * math.sqrt(t["b_q"][i]),
                              flux=10 ** (-0.4 * (t["b_mag"][i] - ZP)))
        bulge = bulge.shear(q=t["b_q"][i], beta=(t["b_pa"][i] + 90.0) * galsim.degrees)
        disk = galsim.Exponential(scale_radius=t["d_r_s"][i] * math.sqrt(t["d_q"][i]),
                                  flux=10 ** (-0.4 * (t["d_mag"][i] - ZP)))
        disk = disk.shear(q=t["d_q"][i], beta=(t["d_pa"][i] + 90.0) * galsim.degrees)
        offset = (t["x"][i] - (size + 1) / 2, t["y"][i] - (size + 1) / 2)
        image = galsim.Convolve(bulge + disk, psf).drawImage(nx=size, ny=size, scale=1.0, offset=offset).array
        area = 4.0 * math.pi * t["d_r_s"][i] ** 2 * t["d_q"][i]  # pixels inside 2 R_s
        sigma = image.sum() / (t["snr"][i] * math.sqrt(area))
        images.append(image + rng.normal(0.0, sigma, image.shape))
        sigmas.append(np.full(image.shape, sigma))
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


def model(bulge: dict, disk: dict, tied: bool) -> Model:
    n = len(bulge["x"])
    components = [Component("sersic", bulge), Component("expdisk", disk),
                  Component("sky", dict(sky=np.zeros(n), dsdx=np.zeros(n), dsdy=np.zeros(n)), fixed={"dsdx", "dsdy"})]
    constraints = [Tie((1, 2), "x", "offset"), Tie((1, 2), "y", "offset")] if tied else []
    return Model(components, constraints)


def truth_start(t: dict) -> tuple[dict, dict]:
    bulge = dict(x=t["x"], y=t["y"], mag=t["b_mag"], r_e=t["b_r_e"], n=t["b_n"], q=t["b_q"], pa=t["b_pa"])
    disk = dict(x=t["x"], y=t["y"], mag=t["d_mag"], r_s=t["d_r_s"], q=t["d_q"], pa=t["d_pa"])
    return bulge, disk


def run_variant(name: str, t: dict, images, sigmas, psf, rng, fit_options: dict) -> dict:
    tied = name == "tied"
    reference = fit(model(*truth_start(t), tied), images, sigma=sigmas, psf=psf, zeropoint=ZP, **fit_options)
    start = time.perf_counter()
    result = fit(model(*starts(t, rng, tied), tied), images, sigma=sigmas, psf=psf, zeropoint=ZP, **fit_options)
    seconds = time.perf_counter() - start
    same_minimum = result.chi2 <= reference.chi2 + np.maximum(1.0, 1e-5 * reference.chi2)
    flagged = np.array([s != "converged" for s in result.status])
    out = dict(variant=name, galaxies=len(t["x"]), recovered=int(same_minimum.sum()),
               flagged=int((~same_minimum & flagged).sum()), silently_wrong=int((~same_minimum & ~flagged).sum()),
               flagged_recovered=int((same_minimum & flagged).sum()),
               median_iterations=float(np.median(result.iterations)),
               mean_iterations=float(np.mean(result.iterations)), seconds=seconds,
               galaxies_per_second=len(t["x"]) / seconds)
    out["recovered_flagged"] = [f"galaxy {i}: {result.status[i]}" for i in np.nonzero(same_minimum & flagged)[0]]
    wrong = np.nonzero(~same_minimum)[0]
    out["unrecovered"] = [dict(galaxy=int(i), status=str(result.status[i]),
                               delta_chi2=float(result.chi2[i] - reference.chi2[i]),
                               bt_true=float(1 / (1 + 10 ** (-0.4 * (t["d_mag"][i] - t["b_mag"][i])))),
                               n_fit=float(result.value(1, "n")[i]), n_true=float(t["b_n"][i]))
                          for i in wrong]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galaxies", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["free", "tied"], choices=["free", "tied"])
    parser.add_argument("--n-starts", type=int, default=1, help="galprof fit's n_starts")
    parser.add_argument("--no-staged", action="store_true", help="fit with staged=False")
    parser.add_argument("--no-perturbed", action="store_true",
                        help="fit with perturbed_starts=False (no restarts near the fit)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t = truths(args.galaxies, rng, args.size)
    images, sigmas = render(t, args.size, rng)
    psf = epsf()
    options = dict(n_starts=args.n_starts, staged=not args.no_staged)
    if args.no_perturbed:
        options["perturbed_starts"] = False
    print(f"# bench_multicomponent: {args.galaxies} bulge+disk galaxies, {args.size}x{args.size}, seed {args.seed}, "
          f"options {options}")
    print("| variant | recovered | flagged | silently wrong | recovered but flagged | median iterations | "
          "mean iterations | gal/s |")
    print("|---|---|---|---|---|---|---|---|")
    details = []
    for name in args.variants:
        r = run_variant(name, t, images, sigmas, psf, rng, options)
        details.append(r)
        print(f"| {name} | {r['recovered']}/{r['galaxies']} | {r['flagged']} | {r['silently_wrong']} | "
              f"{r['flagged_recovered']} | {r['median_iterations']:.0f} | {r['mean_iterations']:.1f} | "
              f"{r['galaxies_per_second']:.2f} |")
    for r in details:
        for line in r["recovered_flagged"]:
            print(f"  {r['variant']} recovered but flagged, {line}")
        for u in r["unrecovered"]:
            print(f"  {r['variant']} galaxy {u['galaxy']}: {u['status']}, delta chi2 {u['delta_chi2']:.1f}, "
                  f"B/T {u['bt_true']:.2f}, n {u['n_fit']:.2f} (true {u['n_true']:.2f})")


if __name__ == "__main__":
    main()
