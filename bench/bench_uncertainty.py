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

    nice python bench/bench_uncertainty.py [--quick] [--sections cov,boot,sample] [--cases TEXT] [--out table.md]

Covariance cases use 400 realisations; the bootstrap (100 replicates) and NUTS cases
the first 60 of them. For bulge + disk the derived quantities (total magnitude, B/T and
the R_e of the sum, by the delta method or from the samples) are scored as well.
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
    elif kind == "bd":  # bulge + disk, shared centre (a tie); the bulge barely resolved (FWHM 3 px)
        size = 56
        c = (size + 1) / 2 + 0.3
        truth = [("sersic", dict(x=c, y=c - 0.2, mag=20.5, r_e=1.8, n=3.0, q=0.8, pa=30.0)),
                 ("expdisk", dict(x=c, y=c - 0.2, mag=19.5, r_s=5.0, q=0.5, pa=40.0))]
    else:  # "bd_resolved": the same with a resolved bulge (R_e 4 px) in a larger disk
        size = 64
        c = (size + 1) / 2 + 0.3
        truth = [("sersic", dict(x=c, y=c - 0.2, mag=20.5, r_e=4.0, n=3.0, q=0.7, pa=30.0)),
                 ("expdisk", dict(x=c, y=c - 0.2, mag=19.5, r_s=7.0, q=0.5, pa=40.0))]
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
    """Coverage of [low, high] intervals (deltas relative to the truth) and error ratio.

    ``se68`` is the standard error of cov68 over realisations (the per-realisation
    fractions, so the correlation of one galaxy's parameters is counted)."""
    inside68 = (low[0] <= 0) & (0 <= high[0])
    inside95 = (low[1] <= 0) & (0 <= high[1])
    cols = np.flatnonzero(free)
    ok = np.all(np.isfinite(errors[:, cols]), 1) & np.all(np.isfinite(deltas[:, cols]), 1)
    i68, i95 = inside68[ok][:, cols], inside95[ok][:, cols]
    scatter = np.sqrt(np.mean(deltas[ok][:, cols] ** 2, 0))
    ratio = np.median(errors[ok][:, cols], 0) / scatter
    per = i68.mean(0)
    per_real = i68.mean(1)
    return dict(cov68=i68.mean(), se68=float(per_real.std(ddof=1) / math.sqrt(max(len(per_real), 1)))
                if len(per_real) > 1 else float("nan"), cov95=i95.mean(), ratio=float(np.median(ratio)),
                ratio_min=float(ratio.min()), ratio_max=float(ratio.max()), worst=int(cols[np.argmin(per)]),
                worst68=float(per.min()), n=int(ok.sum()))


def _derived_functions():
    """Derived quantities of a bulge (1) + disk (2) model, scored like parameters."""
    from galprof.uncertainty import bulge_to_total, effective_radius, total_magnitude

    return [("total mag", total_magnitude()), ("B/T", bulge_to_total(1)), ("R_e of the sum", effective_radius())]


def _derived_rows(label, method, result, case, samples=None):
    """Coverage of the derived quantities (delta method from the covariance, or from samples)."""
    from galprof.uncertainty import derived
    from galprof.uncertainty.derived import Parameters

    t_vec = np.array([[case["truth"][n] for n in result.names]])
    profiles = tuple(c.profile for c in result.model.components)
    rows = []
    for name, func in _derived_functions():
        est = derived(func, result, samples=samples)
        truth = func(Parameters(torch.as_tensor(t_vec), result.names, profiles)).detach().numpy().reshape(1, -1)
        if samples is None:
            value = est.value
        else:  # percentile intervals from the samples; the point is the best fit's value
            value = func(Parameters(torch.as_tensor(np.asarray(result.values)), result.names,
                                    profiles)).detach().numpy().reshape(-1, 1)
        d = value - truth
        if samples is None:
            low = (d - est.error, d - 1.96 * est.error)
            high = (d + est.error, d + 1.96 * est.error)
        else:
            low = (est.intervals[0.68][0] - truth, est.intervals[0.95][0] - truth)
            high = (est.intervals[0.68][1] - truth, est.intervals[0.95][1] - truth)
        s = score(d, low, high, est.error, np.ones(1, dtype=bool))
        rows.append((label, f"{method}: {name}", s, [(0, name)]))
    return rows


def run_case(label, case, methods, n_boot, sample_opts, derived_quantities=False):
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
            if derived_quantities and method == "covariance":
                out += _derived_rows(label, "covariance", result, case)
    n_real = images.shape[0]
    if "bootstrap" in methods:
        n_b = min(n_real, sample_opts.get("boot_galaxies", n_real))
        sub = slice(0, n_b)
        res_sub = _subset(result, sub)
        boot = bootstrap(model, res_sub, images[sub], n_replicates=n_boot, seed=1,
                         lm_settings=LMSettings(max_iterations=20), sigma=sigma[sub], psf=psf, zeropoint=25.0)
        lo68, hi68 = boot.interval(0.68)
        lo95, hi95 = boot.interval(0.95)
        t = result.values[sub] - d[sub]  # the truth (PA-unwrapped)
        s = score(d[sub], (lo68 - t, lo95 - t), (hi68 - t, hi95 - t), boot.std, free)
        s["extra"] = f"{n_boot} replicates"
        out.append((label, "bootstrap", s, names))
        if derived_quantities:
            out += _derived_rows(label, "bootstrap", res_sub, case, samples=boot)
    if "sample" in methods:
        n_gal = min(n_real, sample_opts.get("galaxies", n_real))
        per_call = sample_opts.get("per_call", n_gal)
        lows, highs, stds, rhat, ess, div, draws = [], [], [], [], [], 0, []
        for g0 in range(0, n_gal, per_call):
            sub = slice(g0, min(n_gal, g0 + per_call))
            post = sample(model, _subset(result, sub), images[sub], sigma=sigma[sub], psf=psf, zeropoint=25.0,
                          n_samples=sample_opts["samples"], n_warmup=sample_opts["warmup"], n_chains=2, seed=1 + g0,
                          dtype=torch.float32)
            t = result.values[sub] - d[sub]
            lo68, hi68 = post.interval(0.68)
            lo95, hi95 = post.interval(0.95)
            lows.append((lo68 - t, lo95 - t))
            highs.append((hi68 - t, hi95 - t))
            stds.append(post.std)
            draws.append(post.samples)
            rhat.append(np.nanmax(post.r_hat))
            ess.append(np.nanmin(post.ess))
            div += max(post.divergences, 0)
        sub = slice(0, n_gal)
        low = tuple(np.concatenate([x[i] for x in lows]) for i in range(2))
        high = tuple(np.concatenate([x[i] for x in highs]) for i in range(2))
        s = score(d[sub], low, high, np.concatenate(stds), free)
        s["extra"] = (f"{sample_opts['warmup']}+{sample_opts['samples']} steps x 2 chains; max R-hat {max(rhat):.3f}, "
                      f"min ESS {min(ess):.0f}, divergences {div}")
        out.append((label, "NUTS", s, names))
        if derived_quantities:
            out += _derived_rows(label, "NUTS", _subset(result, sub), case, samples=np.concatenate(draws, axis=1))
    return out, time.perf_counter() - t0


def _subset(result, sub):
    from dataclasses import replace as _replace

    return _replace(result, values=result.values[sub], chi2=result.chi2[sub])


def fmt(rows):
    lines = ["| case | method | N | cov68 (+- se) | cov95 | err/scatter median (min-max) | worst parameter (cov68) "
             "| note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label, method, s, names in rows:
        worst = names[s["worst"]]
        worst_name = f"{worst[0]}_{worst[1]}" if worst[0] else "-"
        lines.append(f"| {label} | {method} | {s['n']} | {s['cov68']:.3f} +- {s['se68']:.3f} | {s['cov95']:.3f} | "
                     f"{s['ratio']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | "
                     f"{worst_name} ({s['worst68']:.2f}) | {s.get('extra', '')} |")
    return "\n".join(lines)


def build_plan(quick: bool, sections: set[str]):
    """(label, case arguments, methods, derived quantities?) of every case to run."""
    cov = ("covariance", "scaled")
    plan = []
    if "cov" in sections:
        snrs = (10, 100) if quick else (10, 30, 100, 1000)
        sizes = (1.5, 5.0) if quick else (1.5, 5.0, 20.0)
        for snr in snrs:
            for r_e in sizes:
                plan.append((f"Sersic S/N {snr}, R_e {r_e}", ("sersic", snr, r_e, "white", False), cov, False))
        for snr in ((100,) if quick else (30, 100, 300, 1000)):
            plan.append((f"bulge+disk S/N {snr}", ("bd", snr, 0, "white", False), cov, True))
        for snr in (() if quick else (100, 1000)):
            plan.append((f"bulge+disk, resolved bulge, S/N {snr}", ("bd_resolved", snr, 0, "white", False), cov,
                         True))
        plan.append(("Sersic S/N 100, R_e 5, correlated noise", ("sersic", 100, 5.0, "smooth", False), cov, False))
        for snr in ((1000,) if quick else (100, 1000)):
            plan.append((f"Sersic S/N {snr}, R_e 3, wrong PSF", ("sersic", snr, 3.0, "white", True), cov, False))
    if "boot" in sections:
        plan += [("Sersic S/N 100, R_e 5", ("sersic", 100, 5.0, "white", False), ("bootstrap",), False),
                 ("Sersic S/N 10, R_e 5", ("sersic", 10, 5.0, "white", False), ("bootstrap",), False),
                 ("bulge+disk S/N 300", ("bd", 300, 0, "white", False), ("bootstrap",), True),
                 ("Sersic S/N 100, R_e 5, correlated noise", ("sersic", 100, 5.0, "smooth", False), ("bootstrap",),
                  False),
                 ("Sersic S/N 1000, R_e 3, wrong PSF", ("sersic", 1000, 3.0, "white", True), ("bootstrap",), False)]
    if "sample" in sections:
        plan += [("Sersic S/N 100, R_e 5", ("sersic", 100, 5.0, "white", False), ("sample",), False),
                 ("Sersic S/N 10, R_e 5", ("sersic", 10, 5.0, "white", False), ("sample",), False),
                 ("bulge+disk S/N 100", ("bd", 100, 0, "white", False), ("sample",), True)]
    return plan


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a few small cases (minutes)")
    parser.add_argument("--sections", default="cov,boot,sample", help="comma-separated: cov, boot, sample")
    parser.add_argument("--realisations", type=int, default=400, help="noise realisations per covariance case")
    parser.add_argument("--boot-realisations", type=int, default=60, help="realisations bootstrapped per case")
    parser.add_argument("--replicates", type=int, default=100, help="bootstrap replicates per realisation")
    parser.add_argument("--sample-realisations", type=int, default=60, help="realisations sampled per case")
    parser.add_argument("--steps", type=int, default=200, help="NUTS warm-up and kept steps per chain (each)")
    parser.add_argument("--cases", default=None, help="only the cases whose label contains one of these comma-separated texts")
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    quick = args.quick
    n = 24 if quick else args.realisations
    n_boot = 40 if quick else args.replicates
    sample_opts = dict(samples=60 if quick else args.steps, warmup=60 if quick else args.steps,
                       galaxies=4 if quick else args.sample_realisations, per_call=10,
                       boot_galaxies=8 if quick else args.boot_realisations)
    rows = []
    for k, (label, (kind, snr, r_e, noise, wrong), methods, with_derived) in enumerate(
            build_plan(quick, set(args.sections.split(",")))):
        if args.cases and not any(text in label for text in args.cases.split(",")):
            continue
        # the seed depends on the case only, so every method sees the same realisations
        seed = (100 + 7 * int(snr) + int(10 * r_e) + (1 if noise != "white" else 0) + (2 if wrong else 0)
                + {"sersic": 0, "bd": 3, "bd_resolved": 4}[kind])
        case = make_case(kind, snr, r_e, n, seed=seed, noise=noise, wrong_psf=wrong)
        out, seconds = run_case(label, case, methods, n_boot, sample_opts, derived_quantities=with_derived)
        rows += out
        print(f"# {label} {methods}: {seconds:.1f} s", flush=True)
        print(fmt(out), flush=True)
    table = fmt(rows)
    print(table)
    if args.out:
        open(args.out, "w").write(table + "\n")


if __name__ == "__main__":
    main()
