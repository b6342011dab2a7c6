"""Coverage of galprof's parameter uncertainties (issue 6): simulate, fit, compare.

For each case, many noise realisations of one galaxy (single Sersic or bulge + disk,
PSF-convolved, rendered in float64 with galprof's renderer) are fitted as one batch,
starting from the truth. For each method we report, pooled over the free parameters:

* cov68 / cov95: fraction of (realisation, parameter) pairs whose truth lies inside the
  reported 68 % / 95 % interval (covariance: value -+ 1 / 1.96 sigma; bootstrap and
  posterior: percentile intervals);
* ratio: median over parameters of (median reported error) / (actual scatter of the
  fitted values about the truth, rms), 1 = honest errors;
* worst: the parameter with the lowest 68 % coverage.

S/N is the matched-filter S/N of the noise-free galaxy, sqrt(sum (model / sigma)^2).
Cases: white noise with the right model (the targets), noise correlated by a Gaussian
kernel (sigma_k = 1.5 px, rescaled to the same per-pixel sigma), and a wrong PSF (data
made with a Moffat FWHM 3 px, beta 3; fitted with a Gaussian PSF of FWHM 2.4 px).

    nice python bench/bench_uncertainty.py [--quick] [--sections cov,boot,sample] [--out table.md]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from galprof import Component, Model, fit
from galprof.optimise.lm import LMSettings
from galprof.profiles import get_profile
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model
from galprof.uncertainty import bootstrap, sample


def moffat(fwhm=3.0, beta=3.0, half=10):
    sub = 9
    grid = (np.arange((2 * half + 1) * sub) - ((2 * half + 1) * sub - 1) / 2) / sub
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    img = (1 + (grid[:, None] ** 2 + grid[None, :] ** 2) / alpha**2) ** -beta
    img = img.reshape(2 * half + 1, sub, 2 * half + 1, sub).sum((1, 3))
    return img / img.sum()


def gaussian_psf(fwhm, half=10):
    s = fwhm / 2.3548
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    img = np.exp(-(xx**2 + yy**2) / (2 * s**2))
    return img / img.sum()


def smooth_noise(rng, shape, kernel_sigma):
    """White noise convolved with a Gaussian kernel, rescaled to unit per-pixel sigma."""
    half = int(4 * kernel_sigma) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    k = np.exp(-(xx**2 + yy**2) / (2 * kernel_sigma**2))
    big = rng.normal(0, 1, (shape[0], shape[1] + 2 * half, shape[2] + 2 * half))
    f = np.fft.rfft2(big) * np.fft.rfft2(k, s=big.shape[1:])
    out = np.fft.irfft2(f, s=big.shape[1:])[:, 2 * half:, 2 * half:][:, :shape[1], :shape[2]]
    return out / out.std()


def make_case(kind, snr, r_e, n_real, seed, noise="white", wrong_psf=False):
    psf_true = moffat()
    if kind == "sersic":
        size = int(min(80, max(28, 2 * round(2.0 * r_e + 8))))
        c = (size + 1) / 2 + 0.3
        truth = [("sersic", dict(x=c, y=c - 0.2, mag=20.0, r_e=r_e, n=1.5, q=0.65, pa=35.0))]
    else:  # bulge + disk, shared centre (a tie)
        size = 56
        c = (size + 1) / 2 + 0.3
        truth = [("sersic", dict(x=c, y=c - 0.2, mag=20.5, r_e=1.8, n=3.0, q=0.8, pa=30.0)),
                 ("expdisk", dict(x=c, y=c - 0.2, mag=19.5, r_s=5.0, q=0.5, pa=40.0))]
    frame = Frame(1, 1, size, size, zeropoint=25.0)
    comps = [(get_profile(p), {k: torch.tensor([v], dtype=torch.float64) for k, v in vals.items()})
             for p, vals in truth]
    clean = render_model(comps, frame, prepare_psf(psf_true, dtype=torch.float64)).numpy()[0]
    sigma = math.sqrt((clean**2).sum()) / snr
    rng = np.random.default_rng(seed)
    if noise == "white":
        eps = rng.normal(0, 1, (n_real, size, size))
    else:
        eps = smooth_noise(rng, (n_real, size, size), 1.5)
    images = clean + sigma * eps
    from galprof.constraints import Tie

    constraints = (Tie((1, 2), "x", "offset"), Tie((1, 2), "y", "offset")) if kind != "sersic" else ()
    model = Model([Component(p, dict(v)) for p, v in truth], constraints)
    truth_vec = {(i + 1, k): v for i, (_, vals) in enumerate(truth) for k, v in vals.items()}
    fit_psf = gaussian_psf(2.4) if wrong_psf else psf_true
    return dict(model=model, images=images, sigma=np.full(images.shape, sigma), psf=fit_psf, truth=truth_vec)


def _deltas(values, truth, names):
    t = np.array([truth[n] for n in names])
    d = values - t
    for j, (_, name) in enumerate(names):
        if name == "pa":
            d[..., j] = (d[..., j] + 90) % 180 - 90
    return d


def score(deltas, low, high, errors, free):
    """Coverage of [low, high] intervals (deltas relative to the truth) and error ratio."""
    inside68 = (low[0] <= 0) & (0 <= high[0])
    inside95 = (low[1] <= 0) & (0 <= high[1])
    cols = np.flatnonzero(free)
    ok = np.all(np.isfinite(errors[:, cols]), 1)
    i68, i95 = inside68[ok][:, cols], inside95[ok][:, cols]
    scatter = np.sqrt(np.mean(deltas[ok][:, cols] ** 2, 0))
    ratio = np.median(errors[ok][:, cols], 0) / scatter
    per = i68.mean(0)
    return dict(cov68=i68.mean(), cov95=i95.mean(), ratio=float(np.median(ratio)), ratio_min=float(ratio.min()),
                ratio_max=float(ratio.max()), worst=int(cols[np.argmin(per)]), worst68=float(per.min()),
                n=int(ok.sum()))


def run_case(label, case, methods, n_boot, sample_opts):
    t0 = time.perf_counter()
    model, images, sigma, psf = case["model"], case["images"], case["sigma"], case["psf"]
    common = dict(sigma=sigma, psf=psf, zeropoint=25.0)
    lm = LMSettings(max_iterations=40)
    result = fit(model, images, staged=False, retries=0, lm_settings=lm, **common)
    names = result.names
    free = result.free.copy()
    d = _deltas(result.values, case["truth"], names)
    out = []
    err = result.errors
    for method, e in (("covariance", err), ("scaled", result.errors_scaled)):
        if method in methods:
            lows = [(-d - e), (-d - 1.96 * e)]  # truth - value in [-e, e]  <=> -d-e <= 0 <= -d+e
            highs = [(-d + e), (-d + 1.96 * e)]
            s = score(d, (lows[0], lows[1]), (highs[0], highs[1]), e, free)
            out.append((label, method, s, names))
    if "bootstrap" in methods:
        boot = bootstrap(model, result, images, n_replicates=n_boot, seed=1, lm_settings=LMSettings(max_iterations=20),
                         **common)
        lo68, hi68 = boot.interval(0.68)
        lo95, hi95 = boot.interval(0.95)
        t = result.values - d  # the truth (PA-unwrapped)
        s = score(d, (lo68 - t, lo95 - t), (hi68 - t, hi95 - t), boot.std, free)
        out.append((label, f"bootstrap {n_boot}", s, names))
    if "sample" in methods:
        n_gal = sample_opts.get("galaxies", images.shape[0])
        sub = slice(0, n_gal)
        from dataclasses import replace as _replace

        res_sub = _replace(result, values=result.values[sub], chi2=result.chi2[sub])
        post = sample(model, res_sub, images[sub], sigma=sigma[sub], psf=psf, zeropoint=25.0,
                      n_samples=sample_opts["samples"], n_warmup=sample_opts["warmup"], n_chains=2, seed=1,
                      dtype=torch.float32)
        lo68, hi68 = post.interval(0.68)
        lo95, hi95 = post.interval(0.95)
        t = result.values[sub] - d[sub]
        s = score(d[sub], (lo68 - t, lo95 - t), (hi68 - t, hi95 - t), post.std, free)
        rh = np.nanmax(post.r_hat)
        s["extra"] = f"max R-hat {rh:.3f}, min ESS {np.nanmin(post.ess):.0f}, divergences {post.divergences}"
        out.append((label, "NUTS", s, names))
    return out, time.perf_counter() - t0


def fmt(rows):
    lines = ["| case | method | N | cov68 | cov95 | err/scatter median (min-max) | worst parameter (cov68) | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, method, s, names in rows:
        worst = names[s["worst"]]
        lines.append(f"| {label} | {method} | {s['n']} | {s['cov68']:.2f} | {s['cov95']:.2f} | "
                     f"{s['ratio']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | "
                     f"{worst[0]}_{worst[1]} ({s['worst68']:.2f}) | {s.get('extra', '')} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", default="cov,boot,sample")
    parser.add_argument("--realisations", type=int, default=20)
    parser.add_argument("--out", default=None)
    parser.add_argument("--priority", action="store_true", help="run the key cases first (then the full plan)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    n = 8 if args.quick else args.realisations
    sections = set(args.sections.split(","))
    rows = []
    cov = ("covariance", "scaled")
    plan = []
    if "cov" in sections:
        snrs = (10, 100) if args.quick else (10, 100, 1000)
        sizes = (1.5, 5.0) if args.quick else (1.5, 5.0, 20.0)
        for snr in snrs:
            for r_e in sizes:
                plan.append((f"Sersic S/N {snr}, R_e {r_e}", ("sersic", snr, r_e, "white", False), cov))
        for snr in ((30,) if args.quick else (30, 300)):
            plan.append((f"bulge+disk S/N {snr}", ("bd", snr, 0, "white", False), cov))
        plan.append(("Sersic S/N 100, R_e 5, correlated noise", ("sersic", 100, 5.0, "smooth", False), cov))
        for snr in ((100,) if args.quick else (100, 1000)):
            plan.append((f"Sersic S/N {snr}, R_e 3, wrong PSF", ("sersic", snr, 3.0, "white", True), cov))
    n_boot = 10 if args.quick else 12
    if "boot" in sections:
        plan += [("Sersic S/N 100, R_e 5", ("sersic", 100, 5.0, "white", False), ("bootstrap",)),
                 ("Sersic S/N 100, R_e 5, correlated noise", ("sersic", 100, 5.0, "smooth", False), ("bootstrap",)),
                 ("Sersic S/N 1000, R_e 3, wrong PSF", ("sersic", 1000, 3.0, "white", True), ("bootstrap",))]
    sample_opts = dict(samples=60 if args.quick else 80, warmup=60 if args.quick else 80,
                       galaxies=4 if args.quick else 6)
    if "sample" in sections:
        plan += [("Sersic S/N 100, R_e 5", ("sersic", 100, 5.0, "white", False), ("sample",))]
    if args.priority:  # the key cases first, bootstrap on the same realisations as the covariance
        both = ("covariance", "scaled", "bootstrap")
        plan = [("Sersic S/N 100, R_e 5", ("sersic", 100, 5.0, "white", False), both),
                ("Sersic S/N 100, R_e 5, correlated noise", ("sersic", 100, 5.0, "smooth", False), both),
                ("Sersic S/N 1000, R_e 3, wrong PSF", ("sersic", 1000, 3.0, "white", True), both),
                ("bulge+disk S/N 300", ("bd", 300, 0, "white", False), cov),
                ("Sersic S/N 1000, R_e 20", ("sersic", 1000, 20.0, "white", False), cov),
                ("Sersic S/N 100, R_e 5", ("sersic", 100, 5.0, "white", False), ("sample",)),
                ("Sersic S/N 10, R_e 5", ("sersic", 10, 5.0, "white", False), cov),
                ("Sersic S/N 100, R_e 1.5", ("sersic", 100, 1.5, "white", False), cov),
                ("bulge+disk S/N 30", ("bd", 30, 0, "white", False), cov)] + plan
    for k, (label, (kind, snr, r_e, noise, wrong), methods) in enumerate(plan):
        case = make_case(kind, snr, r_e, n, seed=100 + k, noise=noise, wrong_psf=wrong)
        out, seconds = run_case(label, case, methods, n_boot, sample_opts)
        rows += out
        print(f"# {label} {methods}: {seconds:.1f} s", flush=True)
        print(fmt(out), flush=True)
    table = fmt(rows)
    print(table)
    if args.out:
        open(args.out, "w").write(table + "\n")


if __name__ == "__main__":
    main()
