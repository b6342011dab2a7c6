"""Command line: ``galprof fit FEEDME [...]`` (GALFIT drop-in), ``galprof imfit IMAGE -c
CONFIG`` (imfit drop-in) and ``galprof demo``.

Conventions are GALFIT's (see :mod:`galprof.conventions`): 1-based pixels, PA in
degrees counter-clockwise from +y, sizes along the major axis in pixels, q = b/a.
Relative file names in a feedme are resolved against the current directory, as GALFIT
does.
"""

from __future__ import annotations

import argparse
import datetime
import math
import pathlib
import sys
from dataclasses import dataclass

import numpy as np
import torch

from . import __version__
from .fitting import fit
from .io.constraints import read_constraints
from .io.feedme import Feedme, FeedmeError, format_feedme, next_restart_path, read_feedme
from .io.fits_io import InputError, exposure_time, read_image, read_mask, sigma_from_header, split_extension
from .io.galfit_output import ComponentReport, append_fit_log, galfit_header_cards, write_imgblock, write_model_image
from .likelihood import LikelihoodError, PixelStatistic
from .model import Component, Model, ModelError
from .render.config import RenderConfig
from .render.psf import PSFError, prepare_psf
from .render.scene import Frame, RenderError, render_component, render_model


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


_USER_ERRORS = (CommandError, FeedmeError, InputError, PSFError, RenderError, ModelError, LikelihoodError)


def _path(name: str, feedme: Feedme, key: str) -> pathlib.Path:
    path = pathlib.Path(name)
    if not path.exists():
        line = feedme.line_numbers.get(key, "?")
        raise CommandError(f"{feedme.path}:{line}: file {name!r} (line {key}) does not exist")
    return path


def _model_from_feedme(feedme: Feedme) -> Model:
    comps = []
    for c in feedme.components:
        fixed = {name for name, free in c.free.items() if not free}
        comps.append(Component(c.profile, dict(c.values), fixed=frozenset(fixed), skip_in_residual=c.skip_in_residual))
    constraints = ()
    if feedme.constraint_file:
        path = _path(feedme.constraint_file, feedme, "G")
        constraints = tuple(read_constraints(str(path), [c.profile for c in feedme.components]))
    try:
        return Model(tuple(comps), constraints)
    except ModelError as err:
        raise CommandError(f"{feedme.constraint_file}: {err}") from None


def _load_inputs(feedme: Feedme):
    """Read image, sigma, PSF and mask; cut them to the fit region (H)."""
    if feedme.psf_diffusion_kernel:
        raise CommandError(f"{feedme.path}:{feedme.line_numbers.get('D', '?')}: a PSF diffusion kernel is not "
                           "supported; give the PSF alone on line D")
    image, header = read_image(str(_path(feedme.input_image, feedme, "A")), feedme.input_extension)
    ny, nx = image.shape
    x1, x2, y1, y2 = feedme.fit_region
    if x1 < 1 or y1 < 1 or x2 > nx or y2 > ny:
        raise CommandError(f"{feedme.path}:{feedme.line_numbers.get('H', '?')}: fit region [{x1}:{x2},{y1}:{y2}] "
                           f"lies outside the image {feedme.input_image} ({nx} x {ny} pixels)")
    cut = (slice(y1 - 1, y2), slice(x1 - 1, x2))
    mask = None
    if feedme.mask:
        mask = read_mask(str(_path(feedme.mask, feedme, "F")), image.shape)
    if feedme.sigma_image:
        sigma, _ = read_image(str(_path(feedme.sigma_image, feedme, "C")))
        if sigma.shape != image.shape:
            raise CommandError(f"{feedme.path}:{feedme.line_numbers.get('C', '?')}: sigma image {feedme.sigma_image} "
                               f"has shape {sigma.shape[::-1]} but the input image has {image.shape[::-1]} (x, y)")
        sigma_note = feedme.sigma_image
    else:
        sigma, sigma_note = sigma_from_header(image, header, mask=mask)
    psf = None
    if feedme.psf_image:
        psf, _ = read_image(str(_path(feedme.psf_image, feedme, "D")))
    return dict(image=image[cut], header=header, sigma=sigma[cut], mask=None if mask is None else mask[cut],
                psf=psf, sigma_note=sigma_note)


def _reports(feedme: Feedme, values, errors, at_bound, constrained=None) -> list[ComponentReport]:
    out = []
    for i, c in enumerate(feedme.components):
        names = list(c.values)
        held = constrained[i] if constrained is not None else {}
        out.append(ComponentReport(
            number=c.number, profile=c.profile, values={n: float(values[i][n]) for n in names},
            errors={n: float(errors[i].get(n, 0.0)) for n in names}, free=dict(c.free),
            problem={n: bool(at_bound[i].get(n, False)) for n in names}, skip_in_residual=c.skip_in_residual,
            constrained={n: bool(held.get(n, False)) for n in names}))
    return out


def _per_component(values, names):
    """[{name: value}, ...] per component from one galaxy's (P,) row and the result's names."""
    out = {}
    for j, (comp, name) in enumerate(names):
        out.setdefault(comp, {})[name] = values[j]
    return [out[k] for k in sorted(out)]


@dataclass
class _Job:
    """One feedme, read and checked, with its inputs cut to the fit region."""

    feedme: Feedme
    inputs: dict
    model: Model
    exptime: float
    frame_psf: object  # PreparedPSF at the data scale, float64, for the output images

    @property
    def shape(self) -> tuple[int, int]:
        return self.inputs["image"].shape


@dataclass
class _Outcome:
    values: list
    errors: list
    at_bound: list
    constrained: list | None
    chi2: float
    ndof: int
    chi2nu: float
    nfree: int
    table: str = ""


def _prepare_job(path: str) -> _Job:
    try:
        feedme = read_feedme(path)
    except OSError as err:
        raise CommandError(f"cannot read feedme {path}: {err.strerror}") from None
    inputs = _load_inputs(feedme)
    model = _model_from_feedme(feedme)
    frame_psf = None
    if inputs["psf"] is not None:
        h, w = inputs["image"].shape
        frame_psf = prepare_psf(inputs["psf"], oversampling=feedme.psf_oversampling, max_shape=(2 * h + 1, 2 * w + 1),
                                source=feedme.psf_image, dtype=torch.float64)
    return _Job(feedme, inputs, model, exposure_time(inputs["header"]), frame_psf)


def _batch_key(job: _Job):
    """Feedmes with equal keys are fitted together as one batch; None: alone."""
    f = job.feedme
    h, w = job.shape
    if f.mode != 0 or f.constraint_file:
        return None
    if f.convolution_box is not None and (f.convolution_box[0] < w or f.convolution_box[1] < h):
        return None
    comps = tuple((c.profile, tuple(c.values), frozenset(n for n, free in c.free.items() if not free),
                   c.skip_in_residual) for c in f.components)
    return comps, job.inputs["psf"] is not None, f.psf_oversampling, tuple(f.plate_scale)


def _outcome(result, b: int, shift=(0.0, 0.0)) -> _Outcome:
    """Galaxy b of a FitResult, positions moved by ``shift`` (local -> image coordinates)."""
    names = result.names
    values = _per_component(result.values[b], names)
    for comp, v in zip(result.model.components, values):
        if comp.profile != "sky":
            v["x"] += shift[0]
            v["y"] += shift[1]
    return _Outcome(values, _per_component(result.errors[b], names), _per_component(result.at_bound[b], names),
                    _per_component(result.constrained, names), float(result.chi2[b]), int(result.ndof[b]),
                    float(result.chi2_nu[b]), int(result.free.sum()),
                    result.table(b) + ("\n  (x, y above: pixels of the fit region, (1, 1) at its first pixel)"
                                       if shift != (0.0, 0.0) else ""))


def _chosen_errors(errors, model, result, image, inputs, labels, collected, quiet):
    """The fit with the errors of ``errors`` (an ErrorOptions; None: the covariance);
    appends (result, galaxy, label, extra) to ``collected`` for the output files."""
    from .uncertainty.methods import reported_errors

    extra = None
    if errors is not None and errors.method != "covariance":
        if not quiet:
            print(f"errors: {errors.method}" + (f" ({errors.bootstrap} replicates)" if errors.method == "bootstrap"
                                                else ""))
        result, extra = reported_errors(errors, model, result, image, **inputs)
    if collected is not None:
        collected.extend((result, b, label, extra) for b, label in enumerate(labels))
    return result


def _write_error_files(collected, covariance_file, bootstrap_file, say) -> None:
    """``--covariance-file`` (FITS, one HDU per feedme) and ``--save-bootstrap`` (a table:
    one row per replicate and feedme, columns id, REPLICATE and <k>_<KEY>)."""
    from .uncertainty.covariance import write_covariance

    if covariance_file:
        write_covariance(covariance_file, [(r, b, label) for r, b, label, _ in collected])
        say(f"wrote {covariance_file}")
    if bootstrap_file:
        from astropy.table import Table

        from .pipeline.columns import parameter_column
        from .pipeline.runner import write_table

        rows = []
        for result, b, label, extra in collected:
            if extra is None or not hasattr(extra, "replicates"):
                continue
            for k in range(extra.n_replicates):
                row = {"id": label, "REPLICATE": k}
                row.update({parameter_column(c, n): float(extra.replicates[k, b, j])
                            for j, (c, n) in enumerate(extra.names)})
                rows.append(row)
        if not rows:
            raise CommandError("--save-bootstrap needs --errors bootstrap")
        names = list(rows[0])
        write_table(Table({n: [r[n] for r in rows] for n in names}, names=names), pathlib.Path(bootstrap_file))
        say(f"wrote {bootstrap_file}")


def _fit_group(jobs: list[_Job], *, config, dtype, device, quiet, errors=None, collected=None) -> list[_Outcome]:
    """Fit the feedmes of one group: alone, or padded to one batch (positions in each
    fit region's own frame, one ePSF, zeropoint and EXPTIME per galaxy). ``errors``:
    which errors to report (:class:`galprof.uncertainty.methods.ErrorOptions`)."""
    progress = None if quiet else (lambda it, n: print(f"  LM iteration {it + 1}: {n} running", end="\r"))
    if len(jobs) == 1:
        job = jobs[0]
        f = job.feedme
        x1, _, y1, _ = f.fit_region
        inputs = dict(sigma=job.inputs["sigma"], mask=job.inputs["mask"], psf=job.inputs["psf"],
                      psf_oversampling=f.psf_oversampling, origin=(x1, y1), zeropoint=f.zeropoint,
                      exptime=job.exptime, convolution_box=f.convolution_box, config=config,
                      pixel_scale=f.plate_scale, dtype=dtype, device=device)
        result = fit(job.model, job.inputs["image"], names=[str(f.path)], progress=progress, **inputs)
        result = _chosen_errors(errors, job.model, result, job.inputs["image"], inputs, [str(f.path)], collected,
                                quiet)
        return [_outcome(result, 0)]
    height = max(j.shape[0] for j in jobs)
    width = max(j.shape[1] for j in jobs)
    bsz = len(jobs)
    image = np.zeros((bsz, height, width))
    sigma = np.ones((bsz, height, width))
    mask = np.zeros((bsz, height, width), dtype=bool)
    shifts = []
    for b, job in enumerate(jobs):
        h, w = job.shape
        image[b, :h, :w] = job.inputs["image"]
        sigma[b, :h, :w] = job.inputs["sigma"]
        if job.inputs["mask"] is not None:
            mask[b, :h, :w] = job.inputs["mask"]
        x1, _, y1, _ = job.feedme.fit_region
        shifts.append((x1 - 1.0, y1 - 1.0))
    components = []
    for ci, comp in enumerate(jobs[0].model.components):
        values = {}
        for name in comp.values:
            column = np.array([float(j.model.components[ci].values[name]) for j in jobs])
            if comp.profile != "sky" and name in ("x", "y"):
                column = column - np.array([sh[0 if name == "x" else 1] for sh in shifts])
            values[name] = column
        components.append(Component(comp.profile, values, fixed=comp.fixed, skip_in_residual=comp.skip_in_residual))
    psf = [j.inputs["psf"] for j in jobs] if jobs[0].inputs["psf"] is not None else None
    inputs = dict(sigma=sigma, mask=mask, psf=psf, psf_oversampling=jobs[0].feedme.psf_oversampling, origin=(1, 1),
                  zeropoint=np.array([j.feedme.zeropoint for j in jobs]), exptime=np.array([j.exptime for j in jobs]),
                  region_sizes=np.array([(j.shape[1], j.shape[0]) for j in jobs]), config=config, dtype=dtype,
                  device=device, pixel_scale=jobs[0].feedme.plate_scale)
    model = Model(tuple(components))
    result = fit(model, image, names=[str(j.feedme.path) for j in jobs], progress=progress, **inputs)
    result = _chosen_errors(errors, model, result, image, inputs, [str(j.feedme.path) for j in jobs], collected, quiet)
    return [_outcome(result, b, shifts[b]) for b in range(bsz)]


def run_feedmes(paths: list[str], *, config: RenderConfig, dtype, device, quiet: bool = False,
                rows: list | None = None, errors=None, covariance_file: str | None = None,
                bootstrap_file: str | None = None) -> int:
    """``galprof fit A.feedme B.feedme ...``: feedmes with the same kind of model (component
    types and fixed flags, PSF oversampling; no constraint file) are fitted together as one
    batch, whatever their image sizes; each one's outputs are written as if it had been
    fitted alone. A feedme that cannot be read or fitted is reported and the others go on
    (exit status 2). With ``rows``, one results-table row per feedme is appended to it
    (``galprof batch`` with feedmes). ``errors`` (an ErrorOptions) chooses the reported
    errors; ``covariance_file`` / ``bootstrap_file`` write the covariance matrices and
    bootstrap replicates."""
    say = (lambda *a: None) if quiet else print
    status = 0
    collected: list = []
    jobs = []
    for path in paths:
        try:
            jobs.append(_prepare_job(path))
        except _USER_ERRORS as err:
            print(f"galprof: error: {err}", file=sys.stderr)
            status = 2
            if rows is not None:
                rows.append({"id": path, "STATUS": f"failed: {err}"})
    groups: dict = {}
    for job in jobs:
        key = _batch_key(job)
        groups.setdefault(key if key is not None else id(job), []).append(job)
    for group in groups.values():
        if len(group) > 1:
            say(f"galprof {__version__}: fitting {len(group)} feedmes together: "
                + ", ".join(str(j.feedme.path) for j in group))
        try:
            outcomes = (_fit_group(group, config=config, dtype=dtype, device=device, quiet=quiet, errors=errors,
                                   collected=collected)
                        if group[0].feedme.mode == 0 else [None])
        except _USER_ERRORS as err:
            print(f"galprof: error: {err}", file=sys.stderr)
            status = 2
            if rows is not None:
                rows.extend({"id": str(j.feedme.path), "STATUS": f"failed: {err}"} for j in group)
            continue
        for job, outcome in zip(group, outcomes):
            try:
                _write_job(job, outcome, config=config, say=say)
                if rows is not None and outcome is not None:
                    rows.append(_feedme_row(job, outcome))
            except _USER_ERRORS as err:
                print(f"galprof: error: {err}", file=sys.stderr)
                status = 2
                if rows is not None:
                    rows.append({"id": str(job.feedme.path), "STATUS": f"failed: {err}"})
    if covariance_file or bootstrap_file:
        try:
            _write_error_files(collected, covariance_file, bootstrap_file, say)
        except _USER_ERRORS as err:
            print(f"galprof: error: {err}", file=sys.stderr)
            status = 2
    return status


def _feedme_row(job: _Job, outcome: _Outcome) -> dict:
    from .pipeline.columns import error_column, parameter_column

    row = {"id": str(job.feedme.path)}
    for number, (values, errors) in enumerate(zip(outcome.values, outcome.errors), start=1):
        for name, value in values.items():
            row[parameter_column(number, name)] = float(value)
            row[error_column(number, name)] = float(errors.get(name, float("nan")))
    bound = [f"{k}_{n}" for k, comp in enumerate(outcome.at_bound, start=1) for n, hit in comp.items() if hit]
    finite = math.isfinite(outcome.chi2)
    row.update(CHISQ=outcome.chi2, CHI2NU=outcome.chi2nu, NDOF=outcome.ndof,
               STATUS=("hit a bound: " + ",".join(bound)) if bound and finite else
               ("converged" if finite else "failed: non-finite chi^2"))
    return row


def _write_job(job: _Job, outcome: _Outcome | None, *, config, say) -> int:
    """Write one feedme's outputs (imgblock or model, subcomps, galfit.NN, fit.log)."""
    feedme, inputs, exptime, frame_psf = job.feedme, job.inputs, job.exptime, job.frame_psf
    x1, x2, y1, y2 = feedme.fit_region
    say(f"galprof {__version__}: {feedme.path}  fit region [{x1}:{x2},{y1}:{y2}]  "
        f"PSF {feedme.psf_image or 'none'}  sigma {inputs['sigma_note'] if feedme.sigma_image else 'from data'}")
    if outcome is not None:
        values, errors, at_bound, constrained = outcome.values, outcome.errors, outcome.at_bound, outcome.constrained
        chi2, ndof, chi2nu, nfree = outcome.chi2, outcome.ndof, outcome.chi2nu, outcome.nfree
        say("")
        say(outcome.table)
    else:
        values = [dict(c.values) for c in feedme.components]
        errors = [{n: 0.0 for n in c.values} for c in feedme.components]
        at_bound = [{} for _ in feedme.components]
        constrained = None
        chi2 = ndof = chi2nu = 0.0
        nfree = sum(sum(c.free.values()) for c in feedme.components)
    # images of every component at the reported values
    frame = Frame(x1, y1, x2 - x1 + 1, y2 - y1 + 1, feedme.zeropoint, exptime, feedme.convolution_box,
                  pixel_scale=tuple(feedme.plate_scale))
    from .profiles import get_profile
    from .profiles.modifiers import profile_for_values
    comp_images = []
    for c, v in zip(feedme.components, values):
        params = {k: torch.tensor([float(val)], dtype=torch.float64) for k, val in v.items()}
        profile = profile_for_values(get_profile(c.profile), v.keys())
        comp_images.append(render_component(profile, params, frame, frame_psf, config)[0].numpy())
    model_image = np.sum(comp_images, axis=0)
    residual = inputs["image"] - sum(img for img, c in zip(comp_images, feedme.components) if not c.skip_in_residual)
    if feedme.mode != 0:  # chi^2 of the initial model
        good = np.isfinite(inputs["sigma"]) & (inputs["sigma"] > 0) & np.isfinite(inputs["image"])
        if inputs["mask"] is not None:
            good &= ~inputs["mask"]
        chi2 = float(np.sum((residual[good] / inputs["sigma"][good]) ** 2))
        ndof = int(good.sum()) - nfree
        chi2nu = chi2 / max(ndof, 1)
    reports = _reports(feedme, values, errors, at_bound, constrained)
    if feedme.mode == 1:
        cards = galfit_header_cards(reports, chi2=chi2, ndof=ndof, nfree=nfree, chi2nu=chi2nu)
        write_model_image(feedme.output_image, model_image.astype(np.float32), cards)
        say(f"wrote model image {feedme.output_image}")
        return 0
    write_imgblock(feedme.output_image, data=inputs["image"], model=model_image, residual=residual, feedme=feedme,
                   components=reports, chi2=chi2, ndof=ndof, nfree=nfree, chi2nu=chi2nu,
                   input_header=inputs["header"])
    say(f"wrote image block {feedme.output_image}")
    if feedme.mode == 3:
        from astropy.io import fits
        hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(img.astype(np.float32), name=f"COMP_{i + 1}")
                                      for i, img in enumerate(comp_images)]
        fits.HDUList(hdus).writeto("subcomps.fits", overwrite=True)
        say("wrote subcomps.fits")
    if feedme.mode == 0:
        restart = next_restart_path(".")
        restart.write_text(format_feedme(feedme, values, chi2=chi2, ndof=ndof, chi2nu=chi2nu))
        initial = _reports(feedme, [dict(c.values) for c in feedme.components],
                           [{} for _ in feedme.components], [{} for _ in feedme.components])
        append_fit_log("fit.log", feedme=feedme, components=reports, initial_components=initial, chi2=chi2,
                       ndof=ndof, chi2nu=chi2nu, date=datetime.datetime.now().isoformat(timespec="seconds"),
                       restart_file=str(restart), output_image=feedme.output_image)
        say(f"wrote {restart} and appended fit.log")
    return 0


def run_demo(n_galaxies: int = 6, seed: int = 2, dtype=torch.float32, quiet=False) -> dict:
    """Simulate galaxies in memory (galprof renderer, float64, Moffat ePSF, Gaussian noise),
    fit them from offset starts and print a truth-vs-fit table. Returns the arrays."""
    rng = np.random.default_rng(seed)
    size = 64
    yy, xx = np.mgrid[-12:13, -12:13]
    fine = 9
    sub = (np.arange(25 * fine) - (25 * fine - 1) / 2) / fine
    alpha, beta = 2.8 / (2 * np.sqrt(2 ** (1 / 3.5) - 1)), 3.5
    psf = ((1 + (sub[:, None] ** 2 + sub[None, :] ** 2) / alpha**2) ** -beta).reshape(25, fine, 25, fine).sum((1, 3))
    psf /= psf.sum()
    truth = dict(x=32.5 + rng.uniform(-1, 1, n_galaxies), y=32.5 + rng.uniform(-1, 1, n_galaxies),
                 mag=rng.uniform(16.5, 18, n_galaxies), r_e=rng.uniform(2, 8, n_galaxies),
                 n=rng.uniform(0.7, 4.5, n_galaxies), q=rng.uniform(0.35, 0.95, n_galaxies),
                 pa=rng.uniform(-80, 80, n_galaxies))
    from .profiles import get_profile
    frame = Frame(1, 1, size, size, zeropoint=25.0)
    clean = render_model([(get_profile("sersic"), {k: torch.tensor(v) for k, v in truth.items()})], frame,
                         prepare_psf(psf)).numpy()
    noise = 0.5
    images = clean + rng.normal(0, noise, clean.shape)
    start = dict(x=truth["x"] + 1.0, y=truth["y"] - 1.0, mag=truth["mag"] + 0.5, r_e=truth["r_e"] * 1.5,
                 n=np.full(n_galaxies, 2.0), q=np.clip(truth["q"] + 0.15, 0.1, 1.0), pa=truth["pa"] + 20)
    result = fit(Model([Component("sersic", start)]), images, sigma=np.full(images.shape, noise), psf=psf,
                 zeropoint=25.0, dtype=dtype)
    if not quiet:
        print(f"galprof {__version__} demo: {n_galaxies} simulated Sersic galaxies, {size}x{size} px, "
              f"Moffat ePSF FWHM 2.8 px, noise sigma {noise}; fit from offset starts ({dtype})")
        print(f"{'gal':>3} {'param':>5} {'truth':>10} {'fit':>10} {'error':>9} {'pull':>6}")
        for b in range(n_galaxies):
            for name in ("x", "y", "mag", "r_e", "n", "q", "pa"):
                v, e, t = result.value(1, name)[b], result.error(1, name)[b], truth[name][b]
                print(f"{b:>3} {name:>5} {t:>10.4f} {v:>10.4f} {e:>9.4f} {(v - t) / e:>6.2f}")
            print(f"    chi2/nu = {result.chi2_nu[b]:.4f}  iterations = {result.iterations[b]}  "
                  f"converged = {bool(result.converged[b])}")
    return dict(truth=truth, result=result)


def _imfit_bootstrap(args, config, model, result, image, sigma, mask, psf, render_config, centre, statistic):
    """imfit's --bootstrap N with :func:`galprof.uncertainty.bootstrap`: N resamplings of
    the pixels (drawn with replacement; a pixel drawn k times weighs k times in chi^2),
    refitted in one batch from the best fit. Returns per-set centre errors, per-function
    {imfit name: std} and the table of all N parameter sets (imfit names, one row per
    resampling)."""
    from .io.imfit_config import function_parameters, values_to_imfit
    from .uncertainty.bootstrap import bootstrap

    if statistic is not None:
        raise CommandError("--bootstrap works with chi^2 only in galprof for now")
    n = int(args.bootstrap)
    if n < 2:
        raise CommandError(f"--bootstrap needs at least 2 resamplings, got {n}")
    boot = bootstrap(model, result, image, sigma=sigma, mask=mask, psf=psf, n_replicates=n, seed=args.seed,
                     zeropoint=0.0, exptime=1.0, config=render_config, dtype=getattr(torch, args.dtype),
                     device=args.device)
    rows, centres = [], []
    for b in range(n):
        values = _per_component(boot.replicates[b, 0], boot.names)
        zeros = [{k: 0.0 for k in v} for v in values]
        c, r = values_to_imfit(config, values, zeros, centre)
        centres.append([v for cs in c for v in (cs[0], cs[2])])
        rows.append([r[k][name][0] for k, (_, func) in enumerate(config.functions())
                     for name in function_parameters(func.name)])
    centres, rows = np.array(centres), np.array(rows)
    centre_err = np.nanstd(centres, axis=0, ddof=1)
    per_function, j = [], 0
    for _, func in config.functions():
        per_function.append({name: float(np.nanstd(rows[:, j + i], ddof=1))
                             for i, name in enumerate(function_parameters(func.name))})
        j += len(function_parameters(func.name))
    names = [f"{axis}0_{k + 1}" for k in range(len(config.sets)) for axis in ("X", "Y")]
    names += [f"{name}_{k + 1}" for k, (_, func) in enumerate(config.functions()) for name in function_parameters(func.name)]
    return centre_err, per_function, names, np.hstack([centres, rows])


_IMFIT_UNSUPPORTED: dict[str, str] = {}


def run_imfit(args) -> int:
    """``galprof imfit IMAGE -c CONFIG``: imfit's command line, galprof's engine."""
    from .io.imfit_config import (format_imfit_config, imfit_sigma, model_from_imfit, read_imfit_config,
                                  values_to_imfit)
    from .optimise.lm import LMSettings

    for attr, flag in _IMFIT_UNSUPPORTED.items():
        if getattr(args, attr):
            raise CommandError(f"{flag} is not supported by galprof yet (parameter errors come from the "
                               "covariance matrix)")
    if sum(bool(x) for x in (args.model_errors, args.cashstat, args.poisson_mlr)) > 1:
        raise CommandError("choose one of --model-errors, --cashstat and --poisson-mlr")
    if args.bootstrap and (args.model_errors or args.cashstat or args.poisson_mlr):
        raise CommandError("--bootstrap works with chi^2 only in galprof for now")
    say = (lambda *a: None) if args.quiet else print
    path, ext = split_extension(args.image)
    if not pathlib.Path(path).exists():
        raise CommandError(f"image {path} does not exist")
    image, header = read_image(path, ext)
    config = read_imfit_config(args.config)
    prelude = dict(config.prelude)
    for key, value in (("GAIN", args.gain), ("READNOISE", args.readnoise), ("EXPTIME", args.exptime),
                       ("NCOMBINED", args.ncombined), ("ORIGINAL_SKY", args.sky)):
        if value is not None:
            prelude[key] = value
    if args.noise:
        noise, _ = read_image(*split_extension(args.noise))
        if noise.shape != image.shape:
            raise CommandError(f"noise image {args.noise} has shape {noise.shape[::-1]} but the image has "
                               f"{image.shape[::-1]} (x, y)")
        with np.errstate(divide="ignore", invalid="ignore"):
            if args.errors_are_variances:
                sigma = np.sqrt(noise)
            elif args.errors_are_weights:
                sigma = np.where(noise > 0, 1.0 / np.sqrt(noise), 0.0)
            else:
                sigma = noise
        noise_note = args.noise
    else:
        sigma = imfit_sigma(image, prelude)
        noise_note = "from the data (GAIN, READNOISE, NCOMBINED, EXPTIME, ORIGINAL_SKY)"
    mask = read_mask(args.mask, image.shape) if args.mask else None
    psf = None
    if args.psf:
        psf, _ = read_image(*split_extension(args.psf))
    if args.nosubsampling:
        say("galprof: --nosubsampling has no effect: galprof always integrates the model accurately")
    ny, nx = image.shape
    centre = ((nx + 1) / 2.0, (ny + 1) / 2.0)
    model = model_from_imfit(config, centre)
    statistic, statistic_name = None, "chi^2 (data-based)" if not args.noise else "chi^2 (noise image)"
    kind = "model-chi2" if args.model_errors else "cash" if args.cashstat else "poisson-mlr" if args.poisson_mlr else None
    if kind is not None:
        gain = prelude.get("GAIN", 1.0) * prelude.get("NCOMBINED", 1.0) * prelude.get("EXPTIME", 1.0)
        statistic = PixelStatistic(kind, gain=gain, sky=prelude.get("ORIGINAL_SKY", 0.0),
                                   read_noise=prelude.get("READNOISE", 0.0), ncombined=prelude.get("NCOMBINED", 1.0))
        statistic_name = {"model-chi2": "chi^2 (model-based)", "cash": "Cash statistic",
                          "poisson-mlr": "Poisson-MLR statistic"}[kind]
        sigma = np.ones_like(image)  # the statistic brings its own noise model; sigma only selects pixels
    config_render = RenderConfig(legacy_pixel_integration=args.legacy_pixel_integration)
    lm = LMSettings(max_iterations=args.max_iter, ftol=args.ftol)
    say(f"galprof {__version__} imfit: {args.image} with {args.config}; noise {noise_note}; PSF {args.psf or 'none'}")
    result = fit(model, image, sigma=sigma, mask=mask, psf=psf, zeropoint=0.0, exptime=1.0, config=config_render,
                 lm_settings=lm, dtype=getattr(torch, args.dtype), device=args.device, names=[args.image],
                 statistic=statistic)
    values = _per_component(result.values[0], result.names)
    errors = _per_component(result.errors[0], result.names)
    free_columns = [j for j in range(len(result.names)) if result.free[j]]
    covariance = result.covariance[0]
    if args.errors == "scaled":  # errors and covariance times chi2_nu (the conversions use the covariance)
        errors = _per_component(result.errors_scaled[0], result.names)
        covariance = covariance * float(result.chi2_nu[0])

    def covariances(component, names):
        """Covariance of parameters ``names`` of component ``component`` (0-based)."""
        if result.constrained.any() and len(free_columns) != covariance.shape[0]:
            return None
        out = np.zeros((len(names), len(names)))
        where = [free_columns.index(result.column(component + 1, n)) if result.column(component + 1, n)
                 in free_columns else None for n in names]
        for a, ia in enumerate(where):
            for b, ib in enumerate(where):
                if ia is not None and ib is not None:
                    out[a, b] = covariance[ia, ib]
        return out

    centres, rows = values_to_imfit(config, values, errors, centre, covariances)
    if args.bootstrap:
        say(f"bootstrap: {args.bootstrap} resamplings, fitted as one batch ...")
        centre_err, function_err, names, table = _imfit_bootstrap(args, config, model, result, image, sigma, mask,
                                                                  psf, config_render, centre, statistic)
        centres = [(c[0], centre_err[2 * k], c[2], centre_err[2 * k + 1]) for k, c in enumerate(centres)]
        rows = [{name: (value, function_err[k][name]) for name, (value, _) in row.items()} for k, row in enumerate(rows)]
        if args.save_bootstrap:
            np.savetxt(args.save_bootstrap, table, fmt="%.10g", header="  ".join(names),
                       comments=f"# galprof {__version__} bootstrap resamplings of {args.image}\n# ")
            say(f"wrote {args.save_bootstrap}")
    chi2, ndof = float(result.chi2[0]), int(result.ndof[0])
    n_free = int(result.free.sum())
    n_pix = ndof + n_free
    aic = chi2 + 2 * n_free + (2 * n_free * (n_free + 1) / max(n_pix - n_free - 1, 1))
    bic = chi2 + n_free * math.log(max(n_pix, 1))
    header = [f"Best-fit model results for {args.image} (galprof {__version__}, imfit-compatible output)",
              f"Command line: galprof {' '.join(args.argv)}",
              f"Config file: {args.config}",
              f"Fit statistic: {statistic_name}",
              f"Fit statistic = {chi2:.6f}, reduced = {result.chi2_nu[0]:.6f}, ndof = {ndof}",
              f"AIC = {aic:.6f}, BIC = {bic:.6f}",
              f"Converged: {bool(result.converged[0])}, iterations: {int(result.iterations[0])}",
              ("Errors: scatter of " + str(args.bootstrap) + " bootstrap resamplings" if args.bootstrap
               else "Errors: from the covariance matrix, scaled by the reduced chi^2" if args.errors == "scaled"
               else "Errors: from the covariance matrix")]
    text = format_imfit_config(config, centres, rows, header)
    pathlib.Path(args.save_params).write_text(text)
    say(text)
    say(f"wrote {args.save_params}")
    from astropy.io import fits
    for name, data in ((args.save_model, result.model_images[0]), (args.save_residual, result.residual_images[0]),
                       (args.save_weights, np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma, 1.0) ** 2, 0.0))):
        if name:
            fits.writeto(name, np.asarray(data, dtype=np.float32), overwrite=True)
            say(f"wrote {name}")
    return 0


def _imfit_parser(sub):
    p = sub.add_parser("imfit", help="fit an image with an imfit configuration file (imfit's options)")
    p.add_argument("image", help="FITS image (file.fits or file.fits[N])")
    p.add_argument("-c", "--config", required=True, help="imfit configuration file")
    p.add_argument("--psf", help="PSF image (an empirical PSF, pixel response included)")
    p.add_argument("--mask", help="mask image (non-zero = bad pixel)")
    p.add_argument("--noise", help="noise image: sigma per pixel (default), or see the two options below")
    p.add_argument("--errors-are-variances", action="store_true", help="the noise image holds variances")
    p.add_argument("--errors-are-weights", action="store_true", help="the noise image holds weights 1/sigma^2")
    p.add_argument("--gain", type=float, help="A/D gain [e-/ADU] (overrides GAIN in the config)")
    p.add_argument("--readnoise", type=float, help="read noise [e-]")
    p.add_argument("--exptime", type=float, help="exposure time (for images in counts per second)")
    p.add_argument("--ncombined", type=float, help="number of images averaged")
    p.add_argument("--sky", type=float, help="original sky level [ADU] already subtracted from the image")
    p.add_argument("--model-errors", action="store_true", help="chi^2 with sigmas from the model, not the data")
    p.add_argument("--cashstat", action="store_true", help="Cash statistic (Poisson likelihood)")
    p.add_argument("--poisson-mlr", "--mlr", dest="poisson_mlr", action="store_true",
                   help="Poisson maximum-likelihood-ratio statistic")
    p.add_argument("--ftol", type=float, default=1e-8, help="fractional tolerance of the fit statistic")
    p.add_argument("--max-iter", type=int, default=100, help="maximum iterations")
    p.add_argument("--bootstrap", type=int, default=0,
                   help="N bootstrap resamplings (refitted as one batch); their scatter gives the errors")
    p.add_argument("--save-bootstrap", help="write every bootstrap parameter set to this file")
    p.add_argument("--seed", type=int, default=None, help="random seed for the bootstrap")
    p.add_argument("--errors", default="covariance", choices=["covariance", "scaled"],
                   help="without --bootstrap: errors from the covariance matrix, raw (default) or scaled by the "
                        "reduced chi^2")
    p.add_argument("--save-params", default="bestfit_parameters_imfit.dat", help="best-fit parameter file")
    p.add_argument("--save-model", help="write the best-fit model image")
    p.add_argument("--save-residual", help="write the residual image (data - model)")
    p.add_argument("--save-weights", help="write the weight image 1/sigma^2")
    p.add_argument("--nosubsampling", action="store_true", help="accepted; galprof always integrates accurately")
    p.add_argument("--legacy-pixel-integration", action="store_true",
                   help="integrate over pixels before convolving with the PSF, as imfit does")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--quiet", action="store_true")
    return p


def _batch_parser(sub):
    p = sub.add_parser("batch", help="fit a catalog of cutouts in streamed, checkpointed batches",
                       description="Fit every row of CATALOG (CSV, ECSV, FITS table or Parquet: id, image and "
                                   "optional sigma, psf, mask, segmentation/target_label and <k>_<KEY> initial "
                                   "values) with the model of --template (a GALFIT feedme or an imfit config). "
                                   "Rerun the same command to resume after an interruption.")
    p.add_argument("catalog", nargs="+", help="a catalog table, or GALFIT feedme files (each fitted as galprof "
                                              "fit would, with its usual outputs, together in batches)")
    p.add_argument("--template", help="GALFIT feedme or imfit configuration giving the model (catalog mode)")
    p.add_argument("-o", "--output", required=True, help="results table: .fits, .parquet, .csv or .ecsv")
    p.add_argument("--id-column", default="id")
    p.add_argument("--image-column", default="image")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--method", default="lm", choices=["lm", "adam"])
    p.add_argument("--auto-init", default="auto", choices=["auto", "always", "never"],
                   help="initial values and masks from source detection (sep): when a row gives no 1_XC/1_YC "
                        "(auto), always, or never")
    p.add_argument("--mask-mode", default="others", choices=["others", "target", "none"],
                   help="with automatic initial values: mask the other detected sources (others), fit only the "
                        "target's segment (target), or mask nothing")
    p.add_argument("--workers", type=int, default=2, help="background threads reading and preparing images")
    p.add_argument("--scheduler", default=None,
                   help="address of a dask.distributed scheduler (tcp://HOST:PORT): chunks run on its workers")
    p.add_argument("--dask-workers", type=int, default=0,
                   help="start a local Dask cluster with this many worker processes (one thread each)")
    p.add_argument("--legacy-pixel-integration", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _error_arguments(p)


def _error_arguments(p, bootstrap_flag: bool = True):
    """--errors and its settings (galprof fit and batch)."""
    p.add_argument("--errors", default="covariance", choices=["covariance", "scaled", "bootstrap", "sample"],
                   help="reported errors: covariance (raw (J^T W J)^-1, default), scaled (times chi2_nu), "
                        "bootstrap (scatter of refits of resampled pixels) or sample (posterior std from "
                        "Pyro NUTS; pip install 'galprof[sample]')")
    if bootstrap_flag:
        p.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates (with --errors bootstrap)")
        p.add_argument("--seed", type=int, default=None, help="seed of the bootstrap / sampler")
    p.add_argument("--samples", type=int, default=500, help="posterior draws per chain (with --errors sample)")
    p.add_argument("--warmup", type=int, default=300, help="NUTS warm-up steps per chain")
    p.add_argument("--chains", type=int, default=4, help="NUTS chains per galaxy (R-hat needs >= 2)")


def _error_options(args):
    from .uncertainty.methods import ErrorOptions

    return ErrorOptions(args.errors, bootstrap=args.bootstrap, seed=args.seed, samples=args.samples,
                        warmup=args.warmup, chains=args.chains)


def _device(name: str) -> str:
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _batch_feedmes(args) -> int:
    """``galprof batch *.feedme -o results.fits``: :func:`run_feedmes` on ``--batch-size``
    feedmes at a time (each one's GALFIT outputs as usual), plus one results table."""
    from astropy.table import Table

    from .pipeline.runner import write_table

    rows: list = []
    status = 0
    config = RenderConfig(legacy_pixel_integration=args.legacy_pixel_integration)
    size = max(1, args.batch_size)
    for start in range(0, len(args.catalog), size):
        status |= run_feedmes(args.catalog[start:start + size], config=config, dtype=getattr(torch, args.dtype),
                              device=_device(args.device), quiet=args.quiet, rows=rows, errors=_error_options(args))
    names = ["id"] + sorted({k for r in rows for k in r} - {"id", "CHISQ", "CHI2NU", "NDOF", "STATUS"},
                            key=lambda k: (int(k.split("_")[0]), k)) + ["CHISQ", "CHI2NU", "NDOF", "STATUS"]
    order = {name: i for i, name in enumerate(args.catalog)}
    rows.sort(key=lambda r: order.get(r["id"], len(order)))
    table = Table({n: [r.get(n, float("nan") if n not in ("id", "STATUS", "NDOF") else (0 if n == "NDOF" else ""))
                       for r in rows] for n in names}, names=names)
    table.meta["GALPROF"] = __version__
    write_table(table, pathlib.Path(args.output))
    failed = sum(str(r["STATUS"]).startswith("failed") for r in rows)
    print(f"galprof batch: {len(rows)} feedmes, {failed} failed -> {args.output}")
    return status


def run_batch_command(args) -> int:
    """``galprof batch``: see :mod:`galprof.pipeline.runner`."""
    from .pipeline.catalog import CatalogError, read_catalog, template_from_file
    from .pipeline.runner import BatchOptions, run_batch

    if all(name.lower().endswith(".feedme") or pathlib.Path(name).name.startswith("galfit.")
           for name in args.catalog):
        return _batch_feedmes(args)
    if len(args.catalog) != 1 or not args.template:
        raise CommandError("galprof batch takes one catalog with --template, or a list of feedme files")
    args.catalog = args.catalog[0]
    try:
        template = template_from_file(args.template)
        sources = read_catalog(args.catalog, template, id_column=args.id_column, image_column=args.image_column)
        options = BatchOptions(batch_size=args.batch_size, dtype=getattr(torch, args.dtype), device=_device(args.device),
                               method=args.method, auto_init=args.auto_init, mask_mode=args.mask_mode,
                               workers=args.workers,
                               config=RenderConfig(legacy_pixel_integration=args.legacy_pixel_integration),
                               errors=_error_options(args))
        client = cluster = None
        if args.scheduler or args.dask_workers:
            try:
                from dask.distributed import Client, LocalCluster
            except ImportError:
                raise CommandError("--scheduler and --dask-workers need dask.distributed: "
                                   "pip install 'dask[distributed]'") from None
            if args.scheduler:
                client = Client(args.scheduler)
            else:
                cluster = LocalCluster(n_workers=args.dask_workers, threads_per_worker=1, processes=True)
                client = Client(cluster)
        try:
            summary = run_batch(sources, template, args.output, options, progress=not args.quiet, client=client,
                                catalog=args.catalog)
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
    except (CatalogError, ValueError) as err:
        raise CommandError(str(err)) from None
    rate = summary.n_fitted_now / summary.seconds if summary.seconds > 0 else float("nan")
    print(f"galprof batch: {summary.n_galaxies} galaxies ({summary.n_fitted_now} fitted now, {rate:.1f}/s, "
          f"{summary.seconds_waiting:.1f} s of {summary.seconds:.1f} s waiting on input), "
          f"{summary.n_failed} failed -> {summary.output}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="galprof", description="Batched galaxy profile fitting (GALFIT drop-in).")
    parser.add_argument("--version", action="version", version=f"galprof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fit = sub.add_parser("fit", help="fit GALFIT feedme file(s) and write GALFIT's outputs")
    p_fit.add_argument("feedme", nargs="+")
    p_fit.add_argument("--legacy-pixel-integration", action="store_true",
                       help="integrate the galaxy over pixels before convolving with the PSF, as GALFIT/imfit do")
    p_fit.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p_fit.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p_fit.add_argument("--quiet", action="store_true")
    _error_arguments(p_fit)
    p_fit.add_argument("--covariance-file", help="write each feedme's covariance matrix of the varying parameters "
                                                 "(FITS, one HDU per feedme; see docs/uncertainties.md)")
    p_fit.add_argument("--save-bootstrap", help="with --errors bootstrap: write every replicate's parameters "
                                                "(table by extension: .csv, .ecsv, .fits)")
    _imfit_parser(sub)
    _batch_parser(sub)
    from .plots.commands import COMMANDS as _PLOT_COMMANDS, add_parsers as _plot_parsers

    _plot_parsers(sub)
    p_demo = sub.add_parser("demo", help="simulate a small survey, fit it with galprof batch, print truth vs fit")
    p_demo.add_argument("--galaxies", type=int, default=200, help="single-Sersic cutouts (bulge+disk: 30 %% of this)")
    p_demo.add_argument("--seed", type=int, default=1)
    p_demo.add_argument("--directory", default=None, help="where to write the survey (default: a new temporary one)")
    p_demo.add_argument("--quick", action="store_true",
                        help="instead: a handful of galaxies simulated in memory and fitted with galprof.fit")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "demo":
            if args.quick:
                run_demo(min(args.galaxies, 20), args.seed)
            else:
                from .pipeline.demo import run_survey_demo

                run_survey_demo(args.galaxies, max(1, int(round(0.3 * args.galaxies))), args.seed, args.directory)
            return 0
        if args.command == "imfit":
            return run_imfit(args)
        if args.command == "batch":
            return run_batch_command(args)
        if args.command in _PLOT_COMMANDS:
            from .plots.commands import run as run_plot_command

            return run_plot_command(args)
        config = RenderConfig(legacy_pixel_integration=args.legacy_pixel_integration)
        return run_feedmes(args.feedme, config=config, dtype=getattr(torch, args.dtype), device=args.device,
                           quiet=args.quiet, errors=_error_options(args), covariance_file=args.covariance_file,
                           bootstrap_file=args.save_bootstrap)
    except _USER_ERRORS as err:
        print(f"galprof: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
