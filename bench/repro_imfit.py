"""Rerun imfit's and pyimfit's published fits of real galaxies with ``galprof imfit`` (issue 20).

Cases (files of ``shared/data/realworld``; imfit's regression-test outputs name their image,
configuration and options in their first lines):

* ``ic3478_textout2``: imfit's ``tests/imfit_reference/imfit_textout2``: SDSS r IC 3478 64x64,
  ``imfit_config_ic3478_64x64.dat``, ``--gain 4.725 --readnoise 4.3 --sky 130.1``, no PSF.
* ``ic3478_textout3``: ``imfit_textout3``: the same fit with the options in the configuration
  (``imfit_config_ic3478_64x64b.dat``).
* ``ic3478_textout3e``: ``imfit_textout3e``: ``imfit_config_ic3478_64x64c.dat`` (n fixed at 2.4),
  ``--noise ic3478rss_64x64_sigma.fits``.
* ``n3073_textout4``: ``imfit_textout4``: SDSS r NGC 3073, Sersic + Exponential,
  ``imfit_config_n3073.dat``, PSF ``psf_moffat_35_n4699z.fits``, mask.
* ``ic3478_256``: imfit 1.8.0's best-fit file in IVChugunov/IMFIT_spirals (its header holds
  the command): ``config_sersic_ic3478_256.dat``, mask, ``--gain=4.725 --readnoise=4.3
  --sky=130.14``, no PSF.
* ``vcc1512``: pyimfit's bootstrap tutorial (``pyimfit_bootstrap_BtoT.md``): VCC 1512 cutout,
  ``config_imfit_vcc1512.dat`` (GAIN, READNOISE, ORIGINAL_SKY in it), mask, no PSF; the
  published vector is the ``results`` printout (its fitStat belongs to it).

Every fit uses ``--legacy-pixel-integration --dtype float64`` (imfit integrates the galaxy
over the pixels before convolving, in double precision). Besides galprof's chi^2 at the
published and at its own parameters, each case evaluates an *emulation of imfit's own model*
at the published parameters: imfit's pixel sampling (Sersic/Exponential: an n x n midpoint
grid per pixel with n = 20 within r <= 4 (3 for the exponential) pixels, int(20 / r) up to
r = 10, the pixel centre beyond; r the major-axis elliptical radius), on a grid extended
by the PSF size, convolved with the normalised PSF, with galprof's data-based sigma and
mask. When its chi^2 equals imfit's published one, the data, sigma, mask and PSF are
reproduced exactly and any remaining parameter difference comes from the model sampling.

Run: ``python bench/repro_imfit.py [DATA_DIR] [--cases NAME ...]`` (DATA_DIR defaults to
``../shared/data/realworld``).
"""

from __future__ import annotations

import math
import pathlib
import re
import tempfile

import numpy as np
from scipy.optimize import least_squares
from scipy.signal import fftconvolve

from repro_common import (Case, Row, chi2_at, config_body, data_root, imfit_parameters, prepared, print_case,
                          run_command, usable_pixels)

from galprof.io.imfit_config import model_from_imfit, parse_imfit_config
from galprof.pipeline.sources import ImfitSource

W = "withfit/"
I = "imfit/"  # noqa: E741 - the imfit directory

CASES = {
    "ic3478_textout2": dict(
        image=W + "perwin__imfit__tests__ic3478rss_64x64.fits",
        config=I + "perwin__imfit__tests__imfit_reference__imfit_config_ic3478_64x64.dat",
        options={"gain": 4.725, "readnoise": 4.3, "sky": 130.1},
        published=W + "perwin__imfit__tests__imfit_reference__imfit_textout2"),
    "ic3478_textout3": dict(
        image=W + "perwin__imfit__tests__ic3478rss_64x64.fits",
        config=I + "perwin__imfit__tests__imfit_reference__imfit_config_ic3478_64x64b.dat",
        published=W + "perwin__imfit__tests__imfit_reference__imfit_textout3"),
    "ic3478_textout3e": dict(
        image=W + "perwin__imfit__tests__ic3478rss_64x64.fits",
        config=I + "perwin__imfit__tests__imfit_reference__imfit_config_ic3478_64x64c.dat",
        noise=W + "perwin__imfit__tests__ic3478rss_64x64_sigma.fits",
        published=W + "perwin__imfit__tests__imfit_reference__imfit_textout3e"),
    "n3073_textout4": dict(
        image=W + "perwin__imfit__tests__n3073rss_small.fits",
        config=I + "perwin__imfit__tests__imfit_reference__imfit_config_n3073.dat",
        psf=W + "perwin__imfit__tests__psf_moffat_35_n4699z.fits",
        mask=W + "perwin__imfit__tests__n3073rss_small_mask.fits",
        published=W + "perwin__imfit__tests__imfit_reference__imfit_textout4"),
    "ic3478_256": dict(
        image=W + "perwin__imfit__examples__ic3478rss_256.fits",
        config=I + "perwin__imfit__examples__config_sersic_ic3478_256.dat",
        mask=W + "perwin__imfit__examples__ic3478rss_256_mask.fits",
        options={"gain": 4.725, "readnoise": 4.3, "sky": 130.14},
        published=W + "IVChugunov__IMFIT_spirals__examples__bestfit_parameters_imfit.dat"),
    "vcc1512": dict(
        image=W + "perwin__pyimfit__docs__pyimfit_bootstrap_BtoT_files__vcc1512rss_cutout.fits",
        config=I + "perwin__pyimfit__docs__pyimfit_bootstrap_BtoT_files__config_imfit_vcc1512.dat",
        mask=W + "perwin__pyimfit__docs__pyimfit_bootstrap_BtoT_files__vcc1512rss_mask_cutout.fits",
        published=W + "perwin__pyimfit__docs__pyimfit_bootstrap_BtoT.md"),
}

PRELUDE_KEYS = {"gain": "GAIN", "readnoise": "READNOISE", "sky": "ORIGINAL_SKY"}


# --------------------------------------------------------------------------- published fits

def published_fit(path: pathlib.Path, config_text: str):
    """(parameters [(name, value, error)], chi^2, ndof, configuration text with the published
    values) of an imfit text output, an imfit best-fit file or pyimfit's tutorial page."""
    text = path.read_text()
    if path.suffix == ".md":  # pyimfit: the results printout, in the configuration's order
        def array(label):
            block = re.search(label + r": array\(\[(.*?)\]\)", text, re.S).group(1)
            return [float(v) for v in block.replace("\n", " ").split(",")]
        values, errors = array("params"), array("paramErrs")
        chi2 = float(re.search(r"fitStat: ([0-9.]+)", text).group(1))
        reduced = float(re.search(r"fitStatReduced: ([0-9.]+)", text).group(1))
        config = parse_imfit_config(config_text)
        names, lines = ["X0", "Y0"], []
        k = 2
        lines += [f"X0 {values[0]!r}", f"Y0 {values[1]!r}"]
        seen: dict = {}
        for func in config.sets[0].functions:
            seen[func.name] = seen.get(func.name, 0) + 1
            prefix = func.name + (str(seen[func.name]) if seen[func.name] > 1 else "") + "."
            lines.append(f"FUNCTION {func.name}")
            for pname in func.parameters:
                names.append(prefix + pname)
                lines.append(f"{pname} {values[k]!r}")
                k += 1
        params = list(zip(names, values, errors))
        return params, chi2, chi2 / reduced, "\n".join(lines) + "\n"
    params = imfit_parameters(text)
    match = re.search(r"CHI-SQUARE = ([0-9.]+)\s+\((\d+) DOF\)", text)
    if match:  # imfit's console output
        return params, float(match.group(1)), float(match.group(2)), config_body(text)
    chi2 = float(re.search(r"Best-fit value: ([0-9.]+)", text).group(1))
    reduced = float(re.search(r"Reduced value: ([0-9.]+)", text).group(1))
    return params, chi2, chi2 / reduced, text


# --------------------------------------------------------------------------- imfit's own model

def _subsamples(r: np.ndarray, scale: float, inner: float) -> np.ndarray:
    """imfit's number of sub-pixels per axis at major-axis radius r [pix] (scale: r_e or h)."""
    n = np.ones(r.shape, dtype=int)
    near = r < 10.0
    with np.errstate(divide="ignore"):
        outer = np.minimum(100, (20.0 / np.maximum(r, 1e-300)).astype(int))
    n = np.where(near & (r <= inner), 20, np.where(near, outer, n))
    if scale <= 1.0:
        n = np.where(r <= 1.0, min(100, int(20.0 / scale)), n)
    return n


def _profile(func: str, p: dict):
    """(intensity(r), scale, inner radius of the 20x20 sampling) of an imfit function."""
    if func == "Sersic":
        n = p["n"]
        b = (2 * n - 1.0 / 3 + 4.0 / (405 * n) + 46.0 / (25515 * n**2) + 131.0 / (1148175 * n**3)
             - 2194697.0 / (30690717750 * n**4))  # Ciotti & Bertin (1999), as imfit uses for n > 0.36
        return (lambda r: p["I_e"] * np.exp(-b * ((r / p["r_e"]) ** (1.0 / n) - 1.0))), p["r_e"], 4.0
    if func == "Exponential":
        return (lambda r: p["I_0"] * np.exp(-r / p["h"])), p["h"], 3.0
    raise ValueError(f"no imfit emulation for {func}")


def model_sets(config_text: str) -> list:
    """[(x0, y0, [(function name, {parameter: value}), ...]), ...] of a configuration."""
    config = parse_imfit_config(config_text)
    return [(s.x0.value, s.y0.value, [(f.name, {k: v.value for k, v in f.parameters.items()}) for f in s.functions])
            for s in config.sets]


def imfit_model_image(sets: list, shape: tuple[int, int], psf: np.ndarray | None, min_sub: int = 1,
                      inner_sub: int = 20) -> np.ndarray:
    """imfit's model image (counts/pixel) of :func:`model_sets` ``sets`` over an image of ``shape``.
    Finer than imfit (towards exact pixel integrals): ``min_sub`` sub-pixels per axis at least
    everywhere, ``inner_sub`` (imfit: 20) within imfit's inner radius."""
    ny, nx = shape
    py, px = psf.shape if psf is not None else (0, 0)
    ys = np.arange(1 - py, ny + py + 1, dtype=float)  # imfit's pixel centres, 1-based, extended by the PSF
    xs = np.arange(1 - px, nx + px + 1, dtype=float)
    gx, gy = np.meshgrid(xs, ys)
    total = np.zeros(gx.shape)
    for x0, y0, functions in sets:
        for name, p in functions:
            intensity, scale, inner = _profile(name, p)
            angle = math.radians(p["PA"] + 90.0)
            cos, sin, q = math.cos(angle), math.sin(angle), 1.0 - p["ell"]

            def radius(x, y, x0=x0, y0=y0, cos=cos, sin=sin, q=q):
                dx, dy = x - x0, y - y0
                return np.hypot(dx * cos + dy * sin, (-dx * sin + dy * cos) / q)

            r_centre = radius(gx, gy)
            n_sub = np.maximum(_subsamples(r_centre, scale, inner), min_sub)
            n_sub = np.where(r_centre <= inner, np.maximum(n_sub, inner_sub), n_sub)
            image = intensity(radius(gx, gy))
            for n in np.unique(n_sub[n_sub > 1]):
                where = np.nonzero(n_sub == n)
                offsets = -0.5 + (np.arange(n) + 0.5) / n
                ox, oy = np.meshgrid(offsets, offsets)
                sx = gx[where][:, None] + ox.ravel()[None, :]
                sy = gy[where][:, None] + oy.ravel()[None, :]
                image[where] = intensity(radius(sx, sy)).mean(axis=1)
            total += image
    if psf is not None:
        total = fftconvolve(total, psf / psf.sum(), mode="same")
    return total[py:py + ny, px:px + nx]


def _good(p) -> np.ndarray:
    good = np.isfinite(p.image) & (p.sigma > 0)
    if p.mask is not None:
        good &= ~p.mask
    return good


def emulated_chi2(p, sets: list, min_sub: int = 1, inner_sub: int = 20) -> float:
    """chi^2 of imfit's emulated model (or a finer one) with galprof's data, sigma and mask."""
    good = _good(p)
    model = imfit_model_image(sets, p.image.shape, p.psf, min_sub, inner_sub)
    return float((((p.image - model) / np.where(good, p.sigma, 1.0))[good] ** 2).sum())


def emulated_fit(p, sets: list, fixed: set) -> tuple[list, float]:
    """Refit imfit's emulated model (scipy's Levenberg-Marquardt from ``sets``); ``fixed``:
    {(set, function, name)} held. Returns (fitted sets, chi^2)."""
    keys = [(k, None, "x0") for k in range(len(sets))] + [(k, None, "y0") for k in range(len(sets))]
    keys += [(k, j, name) for k, (_, _, funcs) in enumerate(sets) for j, (_, par) in enumerate(funcs)
             for name in par if (k, j, name) not in fixed]

    def unpack(theta):
        out = [[x0, y0, [(n, dict(par)) for n, par in funcs]] for x0, y0, funcs in sets]
        for (k, j, name), value in zip(keys, theta):
            if j is None:
                out[k][0 if name == "x0" else 1] = value
            else:
                out[k][2][j][1][name] = value
        return out

    start = [sets[k][0 if n == "x0" else 1] if j is None else sets[k][2][j][1][n] for k, j, n in keys]
    good = _good(p)
    weight = np.where(good, 1.0 / np.where(good, p.sigma, 1.0), 0.0)[good]

    def residuals(theta):
        return (p.image[good] - imfit_model_image(unpack(theta), p.image.shape, p.psf)[good]) * weight

    solution = least_squares(residuals, start, method="lm", x_scale="jac", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    fitted = unpack(solution.x)
    return fitted, float((residuals(solution.x) ** 2).sum())


def flat_values(sets: list) -> dict:
    """{"X0": .., "Y0": .., "Sersic.n": ..} (the names of :func:`imfit_parameters`) of ``sets``."""
    out, seen = {}, {}
    for x0, y0, funcs in sets[:1]:
        out["X0"], out["Y0"] = x0, y0
        for name, par in funcs:
            seen[name] = seen.get(name, 0) + 1
            prefix = name + (str(seen[name]) if seen[name] > 1 else "") + "."
            out.update({prefix + k: v for k, v in par.items()})
    return out


# --------------------------------------------------------------------------- one case

def run_case(name: str, spec: dict, root: pathlib.Path, work: pathlib.Path) -> Case:
    image, config = root / spec["image"], root / spec["config"]
    words = ["galprof", "imfit", str(image), "-c", str(config)]
    for key in ("psf", "mask", "noise"):
        if key in spec:
            words += [f"--{key}", str(root / spec[key])]
    for key, value in spec.get("options", {}).items():
        words += [f"--{key}", str(value)]
    bestfit = work / f"{name}_bestfit.dat"
    words += ["--legacy-pixel-integration", "--dtype", "float64", "--save-params", str(bestfit), "--quiet"]
    _, wall = run_command(words, work)
    shown = " ".join(w.replace(str(root) + "/", "$DATA/") for w in words)
    case = Case(name, shown.replace(str(work) + "/", ""), wall=wall)

    ours_text = bestfit.read_text()
    ours = imfit_parameters(ours_text)
    case.galprof_chi2 = float(re.search(r"Best-fit value: ([0-9.]+)", ours_text).group(1))
    reduced = float(re.search(r"Reduced value: ([0-9.]+)", ours_text).group(1))
    case.galprof_ndof = round(case.galprof_chi2 / reduced)
    params, case.published_chi2, case.published_ndof, published_text = published_fit(root / spec["published"],
                                                                                      config.read_text())
    by_name = {n: (v, e) for n, v, e in ours}
    for pname, value, error in params:
        if pname not in by_name:
            case.notes.append(f"{pname} is not in galprof's best-fit file")
            continue
        mine, mine_error = by_name[pname]
        fixed = error == 0.0 and mine_error == 0.0
        case.rows.append(Row(pname, value, error if error > 0 else math.nan, mine, mine_error,
                             "(fixed)" if fixed else ""))

    prelude = tuple((PRELUDE_KEYS[k], float(v)) for k, v in spec.get("options", {}).items())
    source = ImfitSource(0, name, str(image), str(config), psf=str(root / spec["psf"]) if "psf" in spec else None,
                         mask=str(root / spec["mask"]) if "mask" in spec else None,
                         noise=str(root / spec["noise"]) if "noise" in spec else None, prelude=prelude)
    p = prepared(source)
    ny, nx = p.image.shape
    centre = ((nx + 1) / 2.0, (ny + 1) / 2.0)

    def values(text):
        return [dict(c.values) for c in model_from_imfit(parse_imfit_config(text), centre).components]

    # galprof imfit --legacy-pixel-integration samples Sersic and Exponential pixels as imfit does
    case.chi2_at_published = chi2_at(p, values(published_text), sampling="imfit")
    case.chi2_at_galprof = chi2_at(p, values(ours_text), sampling="imfit")
    integrated = chi2_at(p, values(published_text))
    sets = model_sets(published_text)
    emulated = emulated_chi2(p, sets)
    case.notes.append(f"imfit's model emulated at the published parameters (imfit's pixel sampling, same data, sigma, "
                      f"mask, PSF): chi^2 = {emulated:.3f} (published {case.published_chi2:.3f}, "
                      f"{(emulated - case.published_chi2) / case.published_chi2:+.1e} relative)")
    finer = [emulated_chi2(p, sets, min_sub=m, inner_sub=k) for m, k in ((8, 20), (16, 60))]
    case.notes.append(f"the same model sampled finer, towards exact pixel integrals (at least 8 x 8, then 16 x 16 "
                      f"sub-pixels in every pixel and 60 x 60 in the core): chi^2 = {finer[0]:.3f}, {finer[1]:.3f}, "
                      f"approaching galprof's exact pixel integrals ({integrated:.3f} at the published parameters)")
    original = parse_imfit_config(config.read_text())
    fixed = {(k, j, name) for k, fs in enumerate(original.sets) for j, f in enumerate(fs.functions)
             for name, par in f.parameters.items() if par.fixed}
    refit, refit_chi2 = emulated_fit(p, sets, fixed)
    flat, pub = flat_values(refit), {r.name: r.published for r in case.rows}
    worst = max(((abs(flat[k] / pub[k] - 1.0), k) for k in pub if pub[k]), default=(0.0, "-"))
    case.notes.append(f"imfit's emulated model refitted (scipy LM from the published values): chi^2 {refit_chi2:.3f}; "
                      f"largest relative change of a parameter {worst[0]:.1e} ({worst[1]}), so imfit's published "
                      "minimum is reproduced by its own sampling: " + ", ".join(
                          f"{k} {flat[k] / pub[k] - 1.0:+.1e}" for k in pub if pub[k]))
    n_pix = usable_pixels(p)
    n_free = sum(1 for r in case.rows if not r.note)
    case.notes.append(f"pixels fitted: galprof {n_pix}, so ndof {n_pix - n_free}; published ndof "
                      f"{case.published_ndof:.0f}")
    return case


def main() -> None:
    root, args = data_root(__doc__.splitlines()[0])
    names = args.cases or list(CASES)
    with tempfile.TemporaryDirectory(prefix="repro_imfit_") as tmp:
        work = pathlib.Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in names:
            print_case(run_case(name, CASES[name], root, work))


if __name__ == "__main__":
    main()
