"""Fitting: truth recovery on GalSim-rendered galaxies, errors vs scatter, bad inputs, API."""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest
import torch

from galprof import Component, Model, ModelError, fit
from galprof.fitting.layout import (
    BOUNDED_THETA_STEP_LIMIT,
    LOG_AXIS_RATIO_STEP_LIMIT,
    LOG_INDEX_STEP_LIMIT,
    LOG_SIZE_STEP_LIMIT,
    MAGNITUDE_STEP_LIMIT,
    PA_STEP_LIMIT,
    POSITION_STEP_LIMIT,
    ParameterLayout,
)
from galprof.fitting.likelihood import LikelihoodError
from galprof.optimise.lm import LMSettings, limit_step
from galprof.render.psf import PSFError
from galprof.render.scene import Frame, RenderError
from references import FFT_GSPARAMS, galsim_moffat, galsim_sersic, moffat_epsf

SIZE = 48
ZP = 25.0
PARAMS = ("x", "y", "mag", "r_e", "n", "q", "pa")


def galsim_image(truth, psf_beta=3.5, psf_fwhm=2.8, extra=None):
    """Noise-free GalSim render of one or two components (ePSF convolution), 48x48."""
    flux = 10 ** (-0.4 * (truth["mag"] - ZP))
    obj = galsim_sersic(truth["n"], truth["r_e"], truth["q"], truth["pa"], flux, gsparams=FFT_GSPARAMS)
    if extra is not None:
        disk = galsim.Exponential(scale_radius=extra["r_s"] * np.sqrt(extra["q"]),
                                  flux=10 ** (-0.4 * (extra["mag"] - ZP)), gsparams=FFT_GSPARAMS)
        obj = obj + disk.shear(q=extra["q"], beta=(extra["pa"] + 90) * galsim.degrees)
    conv = galsim.Convolve(obj, galsim_moffat(psf_beta, psf_fwhm, gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
    centre = (SIZE + 1) / 2
    return conv.drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=(truth["x"] - centre, truth["y"] - centre)).array


def offset_start(t):
    """The issue's offset start: R_e x1.5, n +1, mag +0.5, q +0.15, PA +20 deg, centre +1.3 px."""
    return dict(x=t["x"] + 1.3, y=t["y"] + 1.3, mag=t["mag"] + 0.5, r_e=t["r_e"] * 1.5,
                n=min(t["n"] + 1, 9.0), q=min(t["q"] + 0.15, 1.0), pa=t["pa"] + 20)


def assert_recovered(result, truths, b_offset=0, component=1):
    for b, t in enumerate(truths):
        g = b + b_offset
        assert abs(result.value(component, "n")[g] / t["n"] - 1) < 0.005, (b, result.value(component, "n")[g], t)
        assert abs(result.value(component, "r_e")[g] / t["r_e"] - 1) < 0.006
        assert abs(result.value(component, "mag")[g] - t["mag"]) < 0.004
        assert abs(result.value(component, "q")[g] - t["q"]) < 0.003
        dpa = (result.value(component, "pa")[g] - t["pa"] + 90) % 180 - 90
        assert abs(dpa) < 0.3
        assert abs(result.value(component, "x")[g] - t["x"]) < 0.02
        assert abs(result.value(component, "y")[g] - t["y"]) < 0.02


TRUTHS = [
    dict(x=24.3, y=23.8, mag=16.0, r_e=1.6, n=4.5, q=0.55, pa=35.0),
    dict(x=25.1, y=24.6, mag=16.5, r_e=5.0, n=1.0, q=0.35, pa=-60.0),
    dict(x=23.5, y=24.5, mag=15.5, r_e=3.0, n=6.0, q=0.9, pa=80.0),
    dict(x=24.7, y=25.2, mag=16.2, r_e=7.0, n=0.5, q=0.7, pa=-5.0),
]


def test_truth_recovery_single_sersic_batch():
    psf = moffat_epsf(3.5, 2.8, 25)
    images = np.stack([galsim_image(t) for t in TRUTHS])
    starts = [offset_start(t) for t in TRUTHS]
    model = Model([Component("sersic", {k: np.array([s[k] for s in starts]) for k in PARAMS})])
    result = fit(model, images, sigma=np.ones_like(images), psf=psf, zeropoint=ZP)
    assert result.converged.all()
    assert_recovered(result, TRUTHS)
    assert np.all(result.value(1, "q") <= 1.0)
    assert np.all((result.value(1, "pa") > -90) & (result.value(1, "pa") <= 90))


def test_broyden_updates_reach_the_same_truth():
    """LM with rank-one Jacobian updates between exact ones still ends on the GalSim truth."""
    psf = moffat_epsf(3.5, 2.8, 25)
    images = np.stack([galsim_image(t) for t in TRUTHS])
    starts = [offset_start(t) for t in TRUTHS]
    model = Model([Component("sersic", {k: np.array([s[k] for s in starts]) for k in PARAMS})])
    result = fit(model, images, sigma=np.ones_like(images), psf=psf, zeropoint=ZP,
                 lm_settings=LMSettings(broyden_updates=3))
    assert result.converged.all()
    assert_recovered(result, TRUTHS)


def test_pass_size_does_not_change_the_fit():
    """Jacobians, normal equations and covariances formed one galaxy per pass give the
    fit of the whole-batch passes (the passes only bound the temporaries' memory)."""
    psf = moffat_epsf(3.5, 2.8, 25)
    truths = TRUTHS[:2]
    images = np.stack([galsim_image(t) for t in truths])
    starts = [offset_start(t) for t in truths]
    model = Model([Component("sersic", {k: np.array([s[k] for s in starts]) for k in PARAMS})])
    kw = dict(sigma=np.ones_like(images), psf=psf, zeropoint=ZP, dtype=torch.float64)
    whole = fit(model, images, **kw)
    single = fit(model, images, lm_settings=LMSettings(pass_size=1), **kw)
    np.testing.assert_allclose(single.values, whole.values, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(single.errors, whole.errors, rtol=1e-7)
    np.testing.assert_array_equal(single.iterations, whole.iterations)


@pytest.mark.parametrize("kind, staged", [("thread", False), ("process", False), ("process", True)])
def test_cpu_workers_do_not_change_the_fit(kind, staged):
    """A batch split among two single-threaded workers (threads, or forked processes)
    gives the fit of one caller (in float64, to far below the errors: only the
    intra-op summation order differs), progress counts the galaxies of both workers,
    and the thread count is restored. Staged, each worker runs both stages (and the
    retries) of its galaxies from start to end."""
    from galprof.fitting import processes_available

    if kind == "process" and not processes_available():
        pytest.skip("no fork here")
    psf = moffat_epsf(3.5, 2.8, 25)
    truths = TRUTHS[:2] * 2
    images = np.stack([galsim_image(t) for t in truths])
    starts = [offset_start(t) for t in truths]
    model = Model([Component("sersic", {k: np.array([s[k] for s in starts]) for k in PARAMS})])
    kw = dict(sigma=np.ones_like(images), psf=psf, zeropoint=ZP, dtype=torch.float64, staged=staged)
    threads = torch.get_num_threads()
    one = fit(model, images, cpu_workers=1, **kw)
    seen = []
    two = fit(model, images, cpu_workers=2, cpu_worker_kind=kind, progress=lambda it, n: seen.append(n), **kw)
    assert torch.get_num_threads() == threads
    assert max(seen) == len(truths)
    np.testing.assert_allclose(two.values, one.values, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(two.errors, one.errors, rtol=1e-6)
    np.testing.assert_array_equal(two.iterations, one.iterations)


def test_worker_process_split_of_a_forward_mode_model():
    """Forward-mode autodiff keeps process-wide state, so threads never split a model
    with a component without analytic tangents; forked processes can: a Ferrer bar
    fits the same in two processes as in one."""
    from galprof.fitting import processes_available

    if not processes_available():
        pytest.skip("no fork here")
    bar = dict(x=12.2, y=11.8, mu_0=17.0, r_out=6.0, alpha=2.0, beta=0.5, q=0.6, pa=20.0)
    model = Model([Component("ferrer", {k: np.full(4, v) for k, v in bar.items()})])
    from galprof.render.psf import prepare_psf
    from galprof.render.scene import Frame, render_model
    from galprof.profiles import get_profile

    truth = {k: torch.full((4,), v + 0.1 * (k == "r_out"), dtype=torch.float64) for k, v in bar.items()}
    images = render_model([(get_profile("ferrer"), truth)], Frame(1, 1, 24, 24, zeropoint=ZP),
                          prepare_psf(moffat_epsf(3.5, 2.8, 15), dtype=torch.float64)).numpy()
    kw = dict(sigma=np.ones_like(images), psf=moffat_epsf(3.5, 2.8, 15), zeropoint=ZP, dtype=torch.float64,
              retries=0, lm_settings=LMSettings(max_iterations=6))
    one = fit(model, images, cpu_workers=1, **kw)
    two = fit(model, images, cpu_workers=2, cpu_worker_kind="process", **kw)
    np.testing.assert_allclose(two.values, one.values, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(two.iterations, one.iterations)


def test_a_failing_worker_process_raises_its_error():
    """An error inside a forked worker reaches the caller with the worker's traceback,
    not a hang or a partial result."""
    from galprof.fitting import solve_in_processes, processes_available

    if not processes_available():
        pytest.skip("no fork here")
    import os

    parent = os.getpid()

    def solve(start_values, galaxy, report):
        if os.getpid() != parent:
            raise ValueError("galaxy 3 is broken")
        from galprof.optimise.lm import LMOutcome

        b = galaxy.numel()
        return torch.zeros(b, 1), LMOutcome(torch.zeros(b, 1), torch.zeros(b), torch.zeros(b, dtype=torch.long),
                                            torch.ones(b, dtype=torch.bool))

    with pytest.raises(RuntimeError, match="galaxy 3 is broken"):
        solve_in_processes(solve, np.zeros((4, 1)), torch.arange(4), [slice(0, 2), slice(2, 4)], None)


def test_cpu_worker_threads_with_a_tied_centre():
    """Ties make the chain rule a full (b, V, F) product (reverse-mode autograd, safe in
    threads): a bulge + disk with a shared centre fits the same split or not."""
    from galprof.constraints import Tie

    bulge = dict(x=16.3, y=15.8, mag=17.0, r_e=1.8, n=3.0, q=0.8, pa=30.0)
    image = galsim_image(bulge, extra=dict(mag=16.5, r_s=4.0, q=0.5, pa=40.0))
    images = np.stack([image[:32, :32]] * 4)
    model = Model([Component("sersic", dict(bulge, x=16.0, y=16.0, r_e=2.2)),
                   Component("expdisk", dict(x=16.0, y=16.0, mag=16.8, r_s=3.5, q=0.6, pa=35.0))],
                  (Tie((1, 2), "x", "offset"), Tie((1, 2), "y", "offset")))
    kw = dict(sigma=np.ones_like(images), psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP, dtype=torch.float64,
              staged=False, retries=0, lm_settings=LMSettings(max_iterations=8))
    one = fit(model, images, cpu_workers=1, **kw)
    two = fit(model, images, cpu_workers=2, cpu_worker_kind="thread", **kw)
    np.testing.assert_allclose(two.values, one.values, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(two.values[:, two.names.index((2, "x"))], two.values[:, two.names.index((1, "x"))])


def test_cpu_workers_split_only_forward_mode_free_jacobians():
    """Forward-mode autodiff keeps process-wide state, so a model with a component
    without analytic tangents (a Ferrer bar) is never split among threads."""
    from galprof.fitting.functions import ModelFunctions
    from galprof.fitting import cpu_worker_parts, prepare_fit

    from galprof.fitting import MIN_ROWS_PER_THREAD

    assert cpu_worker_parts(64, torch.device("cpu"), 2) == [slice(0, 32), slice(32, 64)]
    assert cpu_worker_parts(5, torch.device("cpu"), None) == [slice(0, 5)]  # too few galaxies to split
    # one thread worker is as fast for 64 galaxies
    assert cpu_worker_parts(64, torch.device("cpu"), None, MIN_ROWS_PER_THREAD) == [slice(0, 64)]
    if torch.get_num_threads() >= 2:
        assert len(cpu_worker_parts(256, torch.device("cpu"), None, MIN_ROWS_PER_THREAD)) == 2
        assert len(cpu_worker_parts(64, torch.device("cpu"), None)) == 2  # processes from 32
    assert len(cpu_worker_parts(3, torch.device("cpu"), 8)) == 3
    psf = moffat_epsf(3.5, 2.8, 25)
    image = np.ones((1, 24, 24))

    def functions(comp, with_psf=True):
        from galprof.render.config import RenderConfig

        setup = prepare_fit(Model([comp]), image, psf=psf if with_psf else None)
        return ModelFunctions(setup.layout, torch.as_tensor(setup.initial), setup.frame, setup.psf, RenderConfig(),
                              internal=True)

    sersic = Component("sersic", dict(x=12, y=12, mag=18, r_e=3, n=2, q=0.7, pa=10))
    assert functions(sersic).forward_mode_free
    assert not functions(sersic, with_psf=False).forward_mode_free  # no PSF: forward mode through the render
    ferrer = Component("ferrer", dict(x=12, y=12, mu_0=18, r_out=6, alpha=2, beta=0.5, q=0.7, pa=10))
    assert not functions(ferrer).forward_mode_free
    fixed_shape = Component("ferrer", dict(x=12, y=12, mu_0=18, r_out=6, alpha=2, beta=0.5, q=0.7, pa=10),
                            fixed={"x", "y", "r_out", "alpha", "beta", "q", "pa"})
    assert functions(fixed_shape).forward_mode_free  # only its (linear) amplitude varies


def test_float32_normal_equation_products_give_the_float64_fit():
    """J^T J and J^T r from float32 matrix products (the default with float32 rendering)
    and from the Jacobian converted to float64 end at the same fit of noisy galaxies, to
    the stopping tolerance: LM stops once a step gains less than 1e-3 in chi^2, which
    leaves up to sqrt(2e-3) ~ 0.045 sigma along the flattest direction."""
    psf = moffat_epsf(3.5, 2.8, 25)
    rng = np.random.default_rng(7)
    images = np.stack([galsim_image(t) for t in TRUTHS]) + rng.normal(0.0, 0.3, (len(TRUTHS), SIZE, SIZE))
    starts = [offset_start(t) for t in TRUTHS]
    model = Model([Component("sersic", {k: np.array([s[k] for s in starts]) for k in PARAMS})])
    kw = dict(sigma=np.full(images.shape, 0.3), psf=psf, zeropoint=ZP, dtype=torch.float32)
    products32 = fit(model, images, **kw)
    products64 = fit(model, images, lm_settings=LMSettings(float64_products=True), **kw)
    assert products32.converged.all() and products64.converged.all()
    z = np.abs(products32.values - products64.values) / np.where(products64.errors > 0, products64.errors, np.inf)
    assert z.max() < 0.05, z.max(0)
    np.testing.assert_allclose(products32.chi2, products64.chi2, atol=1e-2)


def _far_start_fit(truth, start, sky, size=64):
    """A noise-free GalSim galaxy (size x size, 25x25 ePSF, constant sky) fitted from a
    far start; GalSim's image is not galprof's, so recovery is judged loosely."""
    flux = 10 ** (-0.4 * (truth["mag"] - ZP))
    obj = galsim_sersic(truth["n"], truth["r_e"], truth["q"], truth["pa"], flux, gsparams=FFT_GSPARAMS)
    conv = galsim.Convolve(obj, galsim_moffat(3.5, 2.8, gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
    centre = (size + 1) / 2
    image = conv.drawImage(nx=size, ny=size, scale=1.0, offset=(truth["x"] - centre, truth["y"] - centre)).array + sky
    model = Model([Component("sersic", start), Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0),
                                                           fixed={"dsdx", "dsdy"})])
    result = fit(model, image, sigma=np.full(image.shape, 0.1), psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP)
    for name, tolerance in (("n", 0.01), ("r_e", 0.01), ("q", 0.005)):
        assert abs(result.value(1, name)[0] / truth[name] - 1) < tolerance, (name, result.value(1, name)[0])
    assert abs(result.value(1, "mag")[0] - truth["mag"]) < 0.01
    return result


def test_far_start_does_not_switch_the_galaxy_off():
    """n held at 4.85 in stage 1 against a true n of 0.87: an unlimited LM step once took
    the magnitude to ~520 (no galaxy; R_e and q on their bounds), a flat state no later
    step or retry left. Magnitude steps are limited (ParameterLayout.step_limits) and
    coordinates left on a bound by stage 1 restart stage 2 just inside it."""
    c = 32.5
    truth = dict(x=c - 1.89, y=c - 0.31, mag=18.835, r_e=5.878, n=0.872, q=0.356, pa=86.76)
    start = dict(x=truth["x"] + 1.487, y=truth["y"] + 1.924, mag=19.618, r_e=4.626, n=4.852, q=0.121, pa=70.22)
    _far_start_fit(truth, start, sky=0.85)


def test_a_shape_stage_one_left_on_a_bound_restarts():
    """Stage 1 drives q onto its lower bound while the PA is still 37 deg off; before,
    stage 2 crept beside the bound (theta ~ -27, a flat transform) for ~80 iterations
    until a retry; restarting q just inside the bound converges in about 20 in all."""
    c = 32.5
    truth = dict(x=c + 1.726, y=c - 1.207, mag=18.177, r_e=2.123, n=2.844, q=0.350, pa=16.28)
    start = dict(x=c - 0.156, y=c - 2.566, mag=19.067, r_e=1.591, n=3.415, q=0.230, pa=52.81)
    result = _far_start_fit(truth, start, sky=-0.76)
    assert result.iterations[0] <= 30


def test_step_limits():
    """Every parameter with a natural scale gets a trust-region limit per LM step (pixels
    for centres, mag, a factor in size, n and q, degrees of PA); theta_step_limits turns
    them into limits on theta at the current point, at most BOUNDED_THETA_STEP_LIMIT for a
    bounded coordinate; a step beyond a limit is shortened along its direction."""
    model = Model([Component("sersic", dict(x=10, y=10, mag=18, r_e=3, n=2, q=0.7, pa=10)),
                   Component("ferrer", dict(x=10, y=10, mu_0=20, r_out=6, alpha=2, beta=0.5, q=0.7, pa=10),
                             fixed={"x", "y"}),
                   Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0))])
    layout = ParameterLayout(model, ((0.5, 20.5), (0.5, 20.5)))
    limits = layout.step_limits()
    got = {(layout.entries[i].component, layout.entries[i].name): lim for i, lim in zip(layout.free_index, limits)}
    expected = {(0, "x"): POSITION_STEP_LIMIT, (0, "y"): POSITION_STEP_LIMIT, (0, "mag"): MAGNITUDE_STEP_LIMIT,
                (0, "r_e"): LOG_SIZE_STEP_LIMIT, (0, "n"): LOG_INDEX_STEP_LIMIT, (0, "q"): LOG_AXIS_RATIO_STEP_LIMIT,
                (0, "pa"): PA_STEP_LIMIT, (1, "mu_0"): MAGNITUDE_STEP_LIMIT, (1, "r_out"): LOG_SIZE_STEP_LIMIT,
                (1, "alpha"): np.inf, (1, "beta"): np.inf, (1, "q"): LOG_AXIS_RATIO_STEP_LIMIT,
                (1, "pa"): PA_STEP_LIMIT, (2, "sky"): np.inf, (2, "dsdx"): np.inf, (2, "dsdy"): np.inf}
    assert got == expected
    # a theta step of the limit changes each coordinate by about its natural limit (first order)
    values = torch.as_tensor(layout.initial_values(1))
    theta = layout.to_internal(values)
    theta_limits = layout.theta_step_limits(theta, limits)
    small = torch.as_tensor(np.where(np.isfinite(limits), 1e-3, 0.0)) * theta_limits.nan_to_num(posinf=0.0)
    moved = layout.free_coordinates(layout.to_user(theta + small, values))
    before = layout.free_coordinates(values)
    for k, i in enumerate(layout.free_index):
        e = layout.entries[i]
        if not np.isfinite(limits[k]):
            continue
        change = math.log(moved[0, k] / before[0, k]) if e.scale == "log" else float(moved[0, k] - before[0, k])
        assert change == pytest.approx(1e-3 * limits[k], rel=1e-2), e.name
    bounded = [k for k, i in enumerate(layout.free_index) if layout.entries[i].scale in ("log", "linear")]
    assert (theta_limits[0, bounded] <= BOUNDED_THETA_STEP_LIMIT).all()
    alpha = [k for k, i in enumerate(layout.free_index) if layout.entries[i].name == "alpha"][0]
    assert theta_limits[0, alpha] == BOUNDED_THETA_STEP_LIMIT
    step = torch.tensor([[1.0, 6.0, 0.5], [0.2, -1.0, 3.0]], dtype=torch.float64)
    out = limit_step(step, torch.tensor([np.inf, 2.0, np.inf], dtype=torch.float64))
    np.testing.assert_allclose(out.numpy(), [[1.0 / 3.0, 2.0, 0.5 / 3.0], [0.2, -1.0, 3.0]])
    per_row = limit_step(step, torch.tensor([[np.inf, 2.0, np.inf], [0.1, np.inf, np.inf]], dtype=torch.float64))
    np.testing.assert_allclose(per_row.numpy(), [[1.0 / 3.0, 2.0, 0.5 / 3.0], [0.1, -0.5, 1.5]])


@pytest.mark.slow
def test_truth_recovery_bulge_disk():
    bulge = dict(x=24.4, y=24.1, mag=16.5, r_e=2.0, n=3.5, q=0.8, pa=20.0)
    disk = dict(mag=16.0, r_s=6.0, q=0.5, pa=30.0)
    image = galsim_image(bulge, extra={**disk})
    start_b = offset_start(bulge)
    model = Model([
        Component("sersic", start_b),
        Component("expdisk", dict(x=bulge["x"] + 1.3, y=bulge["y"] + 1.3, mag=disk["mag"] + 0.5, r_s=disk["r_s"] * 1.5,
                                  q=disk["q"] + 0.15, pa=disk["pa"] + 20)),
    ])
    result = fit(model, image, sigma=np.ones_like(image), psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP)
    assert_recovered(result, [bulge])
    assert abs(result.value(2, "r_s")[0] / disk["r_s"] - 1) < 0.006
    assert abs(result.value(2, "mag")[0] - disk["mag"]) < 0.004


@pytest.mark.slow
def test_noise_bias_and_pulls():
    """Mean bias < 0.35 sigma and pull scatter in [0.75, 1.35] over noise realisations."""
    truth = dict(x=24.2, y=24.7, mag=17.0, r_e=4.0, n=2.0, q=0.6, pa=25.0)
    clean = galsim_image(truth)
    rng = np.random.default_rng(5)
    n_real, noise = 40, 0.5
    images = clean + rng.normal(0, noise, (n_real, SIZE, SIZE))
    model = Model([Component("sersic", offset_start(truth))])
    result = fit(model, images, sigma=np.full(images.shape, noise), psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP)
    for name in PARAMS:
        pulls = (result.value(1, name) - truth[name]) / result.error(1, name)
        assert abs(pulls.mean()) < 0.35, (name, pulls.mean())
        assert 0.75 < pulls.std() < 1.35, (name, pulls.std())


def test_q_above_one_is_reported_as_swapped_axes():
    truth = dict(x=24.0, y=24.0, mag=16.0, r_e=4.0, n=1.5, q=0.5, pa=10.0)
    image = galsim_image(truth)
    # start with the axes swapped: q > 1 internally must come out as q < 1, PA + 90
    start = dict(truth, q=1.0, pa=100.0, r_e=3.0, n=1.5)
    result = fit(Model([Component("sersic", start)]), image, sigma=np.ones_like(image),
                 psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP)
    assert result.value(1, "q")[0] <= 1.0
    assert abs(result.value(1, "q")[0] - 0.5) < 0.003
    assert abs((result.value(1, "pa")[0] - 10.0 + 90) % 180 - 90) < 0.3


def test_adam_option_reduces_chi2():
    truth = dict(x=24.0, y=24.0, mag=16.0, r_e=3.0, n=1.0, q=0.8, pa=0.0)
    image = galsim_image(truth)
    model = Model([Component("sersic", offset_start(truth))])
    from galprof.optimise.adam import AdamSettings
    result = fit(model, image, sigma=np.ones_like(image), psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP,
                 method="adam", adam_settings=AdamSettings(steps=60))
    initial = fit(model, image, sigma=np.ones_like(image), psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP,
                  method="adam", adam_settings=AdamSettings(steps=1))
    assert result.chi2[0] < 0.5 * initial.chi2[0]


# ----------------------------------------------------------------------- bad inputs

def simple_model():
    return Model([Component("gaussian", dict(x=8.0, y=8.0, mag=20.0, fwhm=3.0, q=1.0, pa=0.0), fixed={"q", "pa"})])


def test_nan_pixels_are_masked_with_a_count():
    image = np.full((16, 16), 1.0)
    image[3, 4] = np.nan
    sigma = np.ones_like(image)
    sigma[5, 5] = 0.0
    with pytest.warns(UserWarning, match=r"masking 1 pixel\(s\) with NaN/infinite data and 1 pixel\(s\)"):
        result = fit(simple_model(), image, sigma=sigma, zeropoint=ZP, lm_settings=LMSettings(max_iterations=3))
    assert np.isfinite(result.chi2).all() and result.chi2[0] > 0
    assert result.ndof[0] == 16 * 16 - 2 - 4


def test_all_pixels_masked_is_an_error():
    with pytest.raises(LikelihoodError, match="every pixel is masked"):
        fit(simple_model(), np.ones((16, 16)), mask=np.ones((16, 16)), zeropoint=ZP)


def test_shape_mismatches_are_errors():
    with pytest.raises(LikelihoodError, match="sigma image shape"):
        fit(simple_model(), np.ones((16, 16)), sigma=np.ones((15, 16)))
    with pytest.raises(LikelihoodError, match="mask shape"):
        fit(simple_model(), np.ones((16, 16)), mask=np.zeros((16, 17)))


def test_start_outside_bounds_names_the_parameter():
    model = Model([Component("gaussian", dict(x=80.0, y=8.0, mag=20.0, fwhm=3.0, q=1.0, pa=0.0))])
    with pytest.raises(ModelError, match="initial x = 80"):
        fit(model, np.ones((16, 16)))


def test_a_start_on_a_bound_to_rounding_is_accepted_a_start_beyond_it_is_not():
    """A previous fit that ended on a log-scaled bound returns exp(log(10)) = 10 + 2e-15
    for n: refitting from it (bootstrap replicates start at the best fit) must work, while
    n = 10.01 is still an error."""
    image = np.ones((16, 16))
    on_bound = math.exp(math.log(10.0))
    model = Model([Component("sersic", dict(x=8.0, y=8.0, mag=20.0, r_e=3.0, n=np.array([2.0, on_bound]), q=0.8,
                                            pa=0.0))])
    result = fit(model, np.stack([image, image]), lm_settings=LMSettings(max_iterations=1), staged=False, retries=0)
    assert np.all(np.isfinite(result.chi2)) and result.value(1, "n")[1] <= 10.0
    with pytest.raises(ModelError, match="initial n = 10.01"):
        fit(Model([Component("sersic", dict(x=8.0, y=8.0, mag=20.0, r_e=3.0, n=10.01, q=0.8, pa=0.0))]), image)


def test_unknown_profile_and_parameter_are_errors():
    with pytest.raises(ModelError, match="unknown profile 'ferrerz'"):
        Component("ferrerz", {})
    with pytest.raises(ModelError, match="missing parameters"):
        Component("sersic", dict(x=1.0))


def test_point_source_needs_psf_and_bad_psf_is_an_error():
    model = Model([Component("psf", dict(x=8.0, y=8.0, mag=20.0))])
    with pytest.raises(RenderError, match="needs a PSF"):
        fit(model, np.ones((16, 16)))
    psf = np.ones((5, 5))
    psf[2, 2] = np.nan
    with pytest.raises(PSFError, match="NaN"):
        fit(model, np.ones((16, 16)), psf=psf)


def test_batch_fit_equals_single_fits():
    rng = np.random.default_rng(0)
    truths = [dict(x=8.2, y=7.9, mag=18.0, fwhm=3.0), dict(x=8.7, y=8.4, mag=18.5, fwhm=4.0)]
    images = []
    from galprof.profiles import get_profile
    from galprof.render.scene import render_model
    for t in truths:
        p = {k: torch.tensor([v], dtype=torch.float64) for k, v in dict(t, q=1.0, pa=0.0).items()}
        images.append(render_model([(get_profile("gaussian"), p)], Frame(1, 1, 16, 16, ZP, 1.0)).numpy()[0]
                      + rng.normal(0, 1e-3, (16, 16)))
    images = np.stack(images)
    start = dict(x=np.array([8.0, 8.0]), y=np.array([8.0, 8.0]), mag=np.array([18.3, 18.3]),
                 fwhm=np.array([3.5, 3.5]), q=1.0, pa=0.0)
    batch = fit(Model([Component("gaussian", start, fixed={"q", "pa"})]), images, sigma=np.full(images.shape, 1e-3),
                zeropoint=ZP, dtype=torch.float64)
    for b in range(2):
        single = fit(Model([Component("gaussian", {k: (v[b] if np.ndim(v) else v) for k, v in start.items()},
                                      fixed={"q", "pa"})]), images[b], sigma=np.full((16, 16), 1e-3), zeropoint=ZP,
                     dtype=torch.float64)
        np.testing.assert_allclose(batch.values[b], single.values[0], atol=1e-6)
        assert abs(batch.value(1, "fwhm")[b] - truths[b]["fwhm"]) < 0.01


def test_worker_split_counts_every_start():
    """A worker's rows are its galaxies times their starts: 8 galaxies with 4 starts each
    (32 rows) split between two automatic workers as 32 single-start ones do; a split
    multi-start fit equals the unsplit one."""
    from galprof.fitting import MIN_ROWS_PER_PROCESS, processes_available

    if not processes_available():
        pytest.skip("no fork here")
    import galprof.fitting.strategy as fitting  # where the batch split looks the worker function up

    psf = moffat_epsf(3.5, 2.8, 25)
    truths = (TRUTHS[:2] * 4)[:8]
    images = np.stack([galsim_image(t) for t in truths])
    starts = [offset_start(t) for t in truths]
    model = Model([Component("sersic", {k: np.array([s[k] for s in starts]) for k in PARAMS})])
    kw = dict(sigma=np.ones_like(images), psf=psf, zeropoint=ZP, dtype=torch.float64, staged=False, retries=0,
              n_starts=4, lm_settings=LMSettings(max_iterations=5))
    assert 8 < MIN_ROWS_PER_PROCESS <= 32
    seen = []
    original = fitting.solve_in_processes

    def recording(solve, start_values, galaxy, parts, progress):
        seen.append(parts)
        return original(solve, start_values, galaxy, parts, progress)

    one = fit(model, images, cpu_workers=1, **kw)
    threads = torch.get_num_threads()
    try:
        fitting.solve_in_processes = recording
        torch.set_num_threads(2)
        two = fit(model, images, cpu_worker_kind="process", **kw)
    finally:
        fitting.solve_in_processes = original
        torch.set_num_threads(threads)
    assert seen == [[slice(0, 4), slice(4, 8)]]
    np.testing.assert_allclose(two.values, one.values, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(two.iterations, one.iterations)
