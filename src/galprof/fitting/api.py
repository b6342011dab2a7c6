"""Fit a model to one galaxy or a batch of galaxies: the Python entry point of the engine.

>>> from galprof import Component, Model, fit
>>> model = Model([Component("sersic", dict(x=32, y=32, mag=18, r_e=4, n=2, q=0.8, pa=10)),
...                Component("sky", dict(sky=0, dsdx=0, dsdy=0), fixed={"dsdx", "dsdy"})])
>>> result = fit(model, image, sigma=sigma, psf=psf, zeropoint=25)   # doctest: +SKIP

Coordinates are 1-based pixel centres of the *full* image; ``origin`` gives the
coordinates of the first pixel of the arrays passed in (GALFIT's fit region corner).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..model import Model, ModelError
from ..optimise.adam import AdamSettings
from ..optimise.lm import LMSettings
from ..optimise.problem import BatchProblem
from ..render.config import RenderConfig
from .covariance import covariance_estimate
from .flags import centres_off_region, component_signal, vanished_components
from .functions import ModelFunctions
from .heap import retained_heap
from .layout import ParameterLayout
from .multiband import MultiBandFitResult, fit_bands
from .result import CONVERGED, FitResult, fit_statuses
from .setup import FitSetup, prepare_fit
from .strategy import STAGE_FTOL, has_perturbed_starts, luminous_components, optimise_batch, without_free_index
from .workers import resolve_cpu_worker_kind


@retained_heap()
def fit(model: Model, image, *, sigma=None, mask=None, psf=None, psf_oversampling: int = 1,
        origin: tuple[int, int] = (1, 1), zeropoint=0.0, exptime=1.0,
        convolution_box: tuple[int, int] | None = None, region_sizes=None, statistic=None,
        pixel_scale: tuple[float, float] = (1.0, 1.0),
        method: str = "lm", n_starts: int = 1, retries: int = 2, staged: bool = True, stage_iterations: int = 8,
        perturbed_starts: bool | None = None,
        config: RenderConfig = RenderConfig(),
        lm_settings: LMSettings = LMSettings(), adam_settings: AdamSettings = AdamSettings(),
        dtype: torch.dtype = torch.float32, device=None, names=None, progress=None,
        cpu_workers: int | None = None, cpu_worker_kind: str | None = None, bands=None,
        terms=None) -> FitResult | MultiBandFitResult:
    """Fit ``model`` to an image or a batch of images (or, with ``bands``, to every band of
    each galaxy together).

    Args:
        model: components with initial values (scalars, or arrays of shape (B,)) and
            constraints (:mod:`galprof.constraints`; their numbers scalars or one per
            galaxy; relative and factor ranges and ties refer to each galaxy's own start).
        image: (H, W) or (B, H, W) data [ADU].
        sigma: same shape, 1-sigma noise [ADU]; None for unit weights (the CLI builds
            GALFIT's sigma image from the header when the feedme says ``none``).
        mask: same shape, non-zero = bad pixel; NaN/inf data or sigma and sigma <= 0 are
            masked too (with a warning).
        psf: 2-D empirical PSF (pixel response included) shared by the batch, a (B, h, w)
            array or a list of B 2-D arrays (sizes may differ: one ePSF per galaxy), or
            None for no convolution.
        psf_oversampling: the PSF is sampled this many times finer than the data.
        origin: 1-based (x, y) coordinates of the first pixel of ``image``.
        zeropoint, exptime: mag = zeropoint - 2.5 log10(flux / exptime); floats or (B,)
            arrays (one per galaxy).
        region_sizes: optional (B, 2) (width, height) [pix]: galaxy b's image is the first
            width x height pixels of its (padded) array; the rest is ignored (weight 0)
            and its sky is referred to the centre of that region. For fitting images of
            different sizes together.
        statistic: None for chi^2 with ``sigma`` (default), or a
            :class:`galprof.fitting.likelihood.PixelStatistic` (Poisson maximum-likelihood ratio,
            Cash, chi^2 with model-based sigmas); ``sigma`` then only selects pixels.
        convolution_box: GALFIT's line I, (size x, size y) [pix]: convolve only inside a
            box of this size centred on the region's centre (see :class:`Frame`); a box
            with a zero side convolves nothing (the PSF is not used).
        pixel_scale: GALFIT's line K, (dx, dy) [arcsec/pix]: surface-brightness
            amplitudes (mu_0 of ferrer, king, edgedisk; mu_b of nuker) are
            zp - 2.5 log10(I / (EXPTIME dx dy)) with I in ADU/pix.
        method: ``lm`` (batched Levenberg-Marquardt, default) or ``adam``.
        n_starts: starts per galaxy (the given one, then variants of n and size); the
            start with the lowest chi^2 wins.
        retries: rounds of further starts (two more each round, rows of one batch) for
            galaxies whose fit lost a component: shape parameters (sizes, q, c0, shape indices
            n, alpha, beta, gamma) on a
            bound, a component switched off or a centre off the fit region (as the
            statuses flag them). With two or more luminous components the first round
            also restarts from the given start with each lost component re-centred on
            the strongest remaining one.
        staged: with LM, first fit with every free Sersic index held fixed for at most
            ``stage_iterations`` iterations (with exact Jacobians, whatever
            ``lm_settings.broyden_updates``), then release it (robust to far starts).
            Only models with one luminous component are staged (multi-component fits
            do better without it; bench/RESULTS.md, issue 21).
        perturbed_starts: after the starts and retries, restart a galaxy twice near
            its best fit, each component with a free Sersic index that is nested in
            another (fitted centres within 2 px or within the smaller of the two sizes:
            a bulge or bar in its disk, not separate galaxies of a field) made larger
            (R_e x2, n x1.6, 0.4 mag brighter) and smaller (R_e /2, n /1.6, 0.4 mag
            fainter), and keep the lowest chi^2 (bulge + disk fits have nearby minima in
            the bulge's size, index and share of the light); galaxies without nested
            components are not restarted. None (default): with LM, for models with two
            or more luminous components one of which has a free Sersic index.
        config: rendering settings (e.g. ``legacy_pixel_integration``).
        dtype: dtype of the rendering (float32 or float64); linear algebra is float64.
        device: torch device (e.g. "cuda").
        names: per-galaxy labels for messages.
        progress: optional callable(iteration, n_running).
        cpu_workers: on the CPU, split the batch among this many workers, each with one
            intra-op thread (None: one per ``torch.get_num_threads()``, with at least
            :data:`MIN_ROWS_PER_PROCESS` rows (galaxies x ``n_starts``) each, or
            :data:`MIN_ROWS_PER_THREAD` for threads; 1: no split). Each worker fits its
            galaxies from start to end (both stages, every start and retry). The
            result does not depend on it.
        cpu_worker_kind: ``process`` (forked worker processes: the default where
            :func:`processes_available`, i.e. on Linux outside daemonic processes),
            ``thread`` (worker threads; torch's thread count is process-wide and is 1
            while they run; models with forward-mode Jacobians are then not split), or
            None for that default.
        bands: a :class:`galprof.fitting.bands.Bands` for a multi-band fit: ``image`` is
            then (B, K, H, W) or a list of K per-band arrays, and the call is
            :func:`galprof.fitting.multiband.fit_bands` (see there for the per-band forms
            of ``sigma``, ``mask``, ``psf``, ``zeropoint`` and ``exptime``, and for the
            model's per-band values).
        terms: with ``bands``: {(component 1-based, name): 0 | 1 | N | "band"}, how each
            parameter varies with wavelength (fixed, shared, a Chebyshev polynomial of N
            terms, free per band; see :mod:`galprof.fitting.bands`).

    Returns:
        a :class:`FitResult` (a :class:`galprof.fitting.multiband.MultiBandFitResult`
        with ``bands``).
    """
    if bands is not None:
        unsupported = [name for name, given in (("region_sizes", region_sizes is not None),
                                                ("statistic", statistic is not None), ("method", method != "lm"),
                                                ("n_starts", n_starts != 1)) if given]
        if unsupported:
            raise ModelError(f"a multi-band fit does not take {', '.join(unsupported)} (yet)")
        return fit_bands(model, image, bands=bands, terms=terms, sigma=sigma, mask=mask, psf=psf,
                         psf_oversampling=psf_oversampling, origin=origin, zeropoint=zeropoint, exptime=exptime,
                         convolution_box=convolution_box, pixel_scale=pixel_scale, config=config,
                         lm_settings=lm_settings, staged=staged, stage_iterations_limit=stage_iterations,
                         perturbed_starts=perturbed_starts, dtype=dtype, device=device, names=names)
    if terms is not None:
        raise ModelError("terms (how parameters vary with wavelength) need bands")
    setup = prepare_fit(model, image, sigma=sigma, mask=mask, psf=psf, psf_oversampling=psf_oversampling,
                        origin=origin, zeropoint=zeropoint, exptime=exptime, convolution_box=convolution_box,
                        region_sizes=region_sizes, pixel_scale=pixel_scale, dtype=dtype, device=device, names=names)
    frame, prepared_psf, data = setup.frame, setup.psf, setup.data
    layout, layout_bounds, initial = setup.layout, setup.layout_bounds, setup.initial

    n_starts = max(1, int(n_starts))
    if sigma is None and statistic is None:
        # unit weights: chi^2 has no absolute scale, so only the relative test applies
        lm_settings = replace(lm_settings, chi2_tolerance=0.0)
    optimise = dict(frame=frame, psf=prepared_psf, config=config, data=data, method=method, n_starts=n_starts,
                    retries=retries, lm_settings=lm_settings, adam_settings=adam_settings, dtype=dtype,
                    progress=progress, statistic=statistic, unit_weights=sigma is None and statistic is None,
                    workers=cpu_workers,
                    worker_kind=resolve_cpu_worker_kind(cpu_worker_kind))
    if perturbed_starts is None:
        perturbed_starts = method == "lm" and has_perturbed_starts(layout)
    optimise["perturbed_starts"] = bool(perturbed_starts)
    # stage 1 only for models with one luminous component: with the trust region of every
    # LM step, a bulge + disk from the starts of bench_multicomponent.py is recovered more
    # often and in fewer iterations without it (bench/RESULTS.md, issue 21)
    staged = staged and len(luminous_components(layout)) < 2
    staged_model = without_free_index(model) if staged and method == "lm" else None
    stage_layout = stage_settings = None
    if staged_model is not None:
        # stage 1: everything but the Sersic indices, briefly. It brings size, flux and
        # shape near the valley before n is released; from far starts LM otherwise tends
        # to run along the n-R_e degeneracy to a bound.
        stage_layout = ParameterLayout(staged_model, layout_bounds)
        # exact Jacobians throughout: stage 1's few long steps from a far start are where
        # rank-one updates approximate J worst (with broyden_updates=3 a start 1 in n and
        # 1.5x in R_e off ended stage 1 at 5x the chi^2 and stage 2 on n's bound)
        stage_settings = replace(lm_settings, max_iterations=stage_iterations, ftol=STAGE_FTOL, broyden_updates=0,
                                 final_trial=False)
    theta, best_fixed, iterations, converged_best = optimise_batch(layout, stage_layout, stage_settings, initial,
                                                              **optimise)
    at_bound_free = layout.at_bound(theta)
    user = layout.to_user(theta, best_fixed).cpu().numpy()
    values = layout.canonicalise(user)
    unit_weights = sigma is None and statistic is None
    return _finished_fit(model, setup, values, at_bound_free, iterations.cpu().numpy(),
                         converged_best.cpu().numpy(), config=config, statistic=statistic,
                         pass_size=lm_settings.pass_size, dtype=dtype, unit_weights=unit_weights)


def _finished_fit(model: Model, setup: FitSetup, values: np.ndarray, at_bound_free: torch.Tensor,
                  iterations: np.ndarray, optimiser_converged: np.ndarray, *, config: RenderConfig, statistic,
                  pass_size: int, dtype: torch.dtype, unit_weights: bool) -> FitResult:
    """The :class:`FitResult` of optimised (B, P) canonical ``values``: model images, chi^2,
    the flags of :mod:`galprof.fitting.flags` (vanished components, centres off the
    region), the covariance with the coordinates the data do not determine held (those
    and the ones on a bound, ``at_bound_free`` (B, F)), errors and the STATUS."""
    img, bsz, frame, data, layout = setup.image, setup.batch_size, setup.frame, setup.data, setup.layout
    device = data.data.device
    values_t = torch.as_tensor(values, dtype=torch.float64, device=device)
    index = torch.arange(bsz, device=device)
    functions = ModelFunctions(layout, values_t, frame, setup.psf, config, internal=False)
    user_problem = BatchProblem(functions.render, data.data, data.weight, functions.jacobian, statistic,
                                fisher=True)
    free_cols = list(layout.free_index)
    with torch.no_grad():
        free_values = layout.free_coordinates(values_t).to(dtype)
        parts = functions.render_parts(free_values, index)
        model_images = parts.total()
        good_t = data.weight > 0
        weight = data.weight if statistic is None else statistic.fisher_scale(model_images, good_t)
        signal = component_signal(parts.unit_images, parts.amplitudes, weight)
    del parts

    model_np = model_images.detach().to(torch.float64).cpu().numpy()
    good = good_t.cpu().numpy()
    clean = data.data.to(torch.float64).cpu().numpy()  # unusable pixels zeroed (and weighted 0)
    chi2 = (((clean - model_np) * data.weight.cpu().numpy()) ** 2 * good).reshape(bsz, -1).sum(-1)
    if statistic is None:
        fit_statistic = chi2
    else:
        with torch.no_grad():
            fit_statistic = statistic.value(data.data.to(torch.float64), model_images.to(torch.float64),
                                            good_t).cpu().numpy()
    ndof = data.n_pixels.cpu().numpy() - layout.n_free
    chi2_nu = fit_statistic / np.maximum(ndof, 1)

    # flags: components that vanished, centres off the region (see galprof.fitting.flags)
    components = layout.model.components
    lit = [ci for ci, comp in enumerate(components) if comp.profile_class.kind != "sky"]
    varying_components = {layout.entries[i].component for i in layout.varying_index}
    tested = torch.tensor([ci in varying_components for ci in lit], dtype=torch.bool)
    noise = np.sqrt(np.where(np.isfinite(chi2_nu), chi2_nu, np.inf)) if unit_weights else np.ones(bsz)
    vanished_lit = vanished_components(signal, torch.as_tensor(noise, device=signal.device), tested)
    vanished = torch.zeros(bsz, len(components), dtype=torch.bool, device=device)
    vanished[:, lit] = vanished_lit.to(device)
    signal_all = np.full((bsz, len(components)), np.nan)
    signal_all[:, lit] = signal.cpu().numpy()
    x_cols = [i for i in layout.varying_index if layout.entries[i].name == "x"]
    y_cols = [i for i in layout.varying_index if layout.entries[i].name == "y"]
    sizes = (frame.region_sizes.cpu().numpy().astype(np.float64) if frame.region_sizes is not None
             else np.tile([float(frame.width), float(frame.height)], (bsz, 1)))
    x_low, y_low = frame.x_min - 0.5, frame.y_min - 0.5
    off_region = centres_off_region(values, x_cols, y_cols, np.stack([np.full(bsz, x_low), x_low + sizes[:, 0]], 1),
                                    np.stack([np.full(bsz, y_low), y_low + sizes[:, 1]], 1))

    # covariance at the reported (canonical) values, in user units, with the coordinates
    # the data do not determine held: a vanished component's, a centre off the region, a bound
    coordinate_component = torch.tensor([layout.entries[i].component for i in free_cols], dtype=torch.long,
                                        device=device)
    held = (vanished[:, coordinate_component] | at_bound_free.to(device)
            | torch.as_tensor(off_region[:, free_cols], device=device))
    if layout.n_free:
        estimates = []
        for part in torch.split(index, pass_size):  # bounded temporaries for large batches
            _, jac = user_problem.residuals_and_jacobian(free_values[part], part)
            estimates.append(covariance_estimate(jac, held=held[part]))
            del jac
        cov = torch.cat([e.covariance for e in estimates])
        undefined = torch.cat([e.undefined for e in estimates])
        null = torch.cat([e.degenerate for e in estimates]).cpu().numpy()
        condition = torch.cat([e.condition for e in estimates]).cpu().numpy()
        cov_flag = torch.cat([e.flag for e in estimates]).cpu().numpy()
    else:
        cov = torch.zeros(bsz, 0, 0, dtype=torch.float64)
        undefined = torch.zeros(bsz, 0, dtype=torch.bool)
        null = np.zeros((bsz, 0), dtype=bool)
        condition, cov_flag = np.ones(bsz), np.zeros(bsz, dtype=bool)
    parameter_covariance = np.zeros((bsz, layout.n_params, layout.n_params))
    errors = np.zeros_like(values)
    at_bound = np.zeros(values.shape, dtype=bool)
    on_bound = np.zeros(values.shape, dtype=bool)
    degenerate = np.zeros(values.shape, dtype=bool)
    for ci, comp in enumerate(components):  # a vanished component is named by its amplitude
        if comp.profile_class.amplitude is not None:
            degenerate[:, layout.index(ci, comp.profile_class.amplitude)] = vanished[:, ci].cpu().numpy()
    if layout.n_free:
        # errors of every parameter that varies (tied and coupled ones through the
        # constraints): diag(G C G^T) with G = d values / d coordinates; a parameter that
        # depends on an undefined coordinate is undefined (NaN) itself
        slope = layout.value_jacobian(free_values.to(torch.float64), values_t, internal=False)
        undefined_d = undefined.to(slope.device)
        cov_d = cov.to(slope.device)
        cov_values = slope @ torch.where(torch.isnan(cov_d), torch.zeros_like(cov_d), cov_d) @ slope.transpose(1, 2)
        unknown = ((slope != 0) & undefined_d[:, None, :]).any(-1)
        cov_values = torch.where(unknown[:, :, None] | unknown[:, None, :], torch.full_like(cov_values, float("nan")),
                                 cov_values)
        varying = list(layout.varying_index)
        cov_values = cov_values.cpu().numpy()
        errors[:, varying] = np.sqrt(np.diagonal(cov_values, axis1=1, axis2=2))[:, varying]
        parameter_covariance[np.ix_(np.arange(bsz), varying, varying)] = cov_values[np.ix_(np.arange(bsz), varying,
                                                                                           varying)]
        bound_flags = at_bound_free.cpu().numpy()
        flags = bound_flags | undefined.cpu().numpy()
        for k, i in enumerate(free_cols):
            at_bound[:, i] = flags[:, k]
            on_bound[:, i] = bound_flags[:, k]
            degenerate[:, i] |= null[:, k]
            entry = layout.entries[i]
            if entry.role == "coupled":  # a coupled range at its limit flags both members
                at_bound[:, entry.ref] |= flags[:, k]
                on_bound[:, entry.ref] |= bound_flags[:, k]
    at_bound |= degenerate | off_region
    names = tuple((c + 1, n) for c, n in layout.names)
    optimiser_converged = np.asarray(optimiser_converged, dtype=bool) & np.isfinite(chi2)
    status = fit_statuses(names, values, fit_statistic, optimiser_converged, degenerate, off_region, on_bound)
    free = np.array([e.role == "free" for e in layout.entries], dtype=bool)
    constrained = np.zeros(layout.n_params, dtype=bool)
    constrained[list(layout.constrained_index)] = True
    return FitResult(
        model=model,
        names=names,
        values=values,
        errors=errors,
        free=free,
        constrained=constrained,
        covariance=cov.cpu().numpy(),
        at_bound=at_bound,
        chi2=fit_statistic,
        ndof=ndof,
        chi2_nu=chi2_nu,
        iterations=iterations,
        converged=status == CONVERGED,
        model_images=model_np,
        residual_images=img - model_np,
        initial_values=setup.initial,
        errors_scaled=errors * np.sqrt(np.where(np.isfinite(chi2_nu), chi2_nu, np.nan))[:, None],
        parameter_covariance=parameter_covariance,
        covariance_flag=cov_flag,
        condition_number=condition,
        status=status,
        optimiser_converged=optimiser_converged,
        degenerate=degenerate,
        off_region=off_region,
        on_bound=on_bound,
        signal=signal_all,
    )
