"""Honest flags: a fit whose component vanished, whose centre left the region, whose
parameter sits on a bound or whose covariance is singular gets a STATUS that says so, is
never ``converged``, and reports NaN errors with ``covariance_flag`` set; a
well-conditioned fit stays ``converged`` with finite errors.

The images are small (24 x 24) galprof renders with a Gaussian ePSF and seeded noise:
what is tested is the flagging, not the rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from galprof import Component, Model, fit
from galprof.fitting.flags import (
    EDGE_MARGIN,
    VANISHED_FRACTION,
    VANISHED_SNR,
    centres_off_region,
    component_signal,
    vanished_components,
)
from galprof.fitting.result import fit_statuses
from galprof.io.results import CONVERGED, DEGENERATE, HIT_BOUND, OFF_REGION, fit_status, fitted_row
from galprof.profiles import get_profile
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model
from galprof.uncertainty import covariance_estimate

SIZE = 24
ZP = 25.0
GALAXY = dict(x=12.3, y=11.8, mag=18.0, r_e=2.5, n=1.5, q=0.7, pa=30.0)
START = dict(GALAXY, x=12.0, y=12.1, mag=18.3, r_e=3.0, n=1.2)


def gaussian_psf(fwhm=2.2, size=9):
    s = fwhm / (2 * math.sqrt(2 * math.log(2)))
    y, x = np.mgrid[:size, :size] - size // 2
    psf = np.exp(-(x**2 + y**2) / (2 * s * s))
    return psf / psf.sum()


PSF = gaussian_psf()


def render(*components):
    """Noise-free (SIZE, SIZE) image [ADU] of (profile, values) pairs (1-based pixels)."""
    frame = Frame(1, 1, SIZE, SIZE, ZP, 1.0)
    parts = [(get_profile(p), {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()})
             for p, values in components]
    with torch.no_grad():
        return render_model(parts, frame, prepare_psf(PSF, dtype=torch.float64)).numpy()[0]


def noisy(image, seed=1):
    return image + np.random.default_rng(seed).normal(0.0, 1.0, image.shape)


def run(components, image, **kw):
    """One fit; without the staging and retry rounds unless asked (what is tested is where
    the fit ends, and the tests stay fast)."""
    kw = {"staged": False, "retries": 0, **kw}
    return fit(Model(components), image, sigma=np.ones_like(image), psf=PSF, zeropoint=ZP, **kw)


def assert_flagged(result, status, nan_columns):
    assert result.status[0] == status
    assert fit_status(result, 0) == status
    assert not result.converged[0]
    assert result.covariance_flag[0]
    for component, name in nan_columns:
        assert np.isnan(result.error(component, name)[0]), (component, name)
        assert result.at_bound[0, result.column(component, name)], (component, name)  # written *value*
    row = fitted_row(result, 0, "g")
    assert row["STATUS"] == status and row["COV_FLAG"]


@pytest.fixture(scope="module")
def galaxy_image():
    return noisy(render(("sersic", GALAXY)))


@pytest.fixture(scope="module")
def single(galaxy_image):
    """The galaxy fitted with galprof's default strategy (staged, with retries)."""
    return run([Component("sersic", START)], galaxy_image, staged=True, retries=2)


def test_a_well_conditioned_single_sersic_stays_converged_with_finite_errors(single):
    result = single
    assert result.status[0] == CONVERGED and result.converged[0] and result.optimiser_converged[0]
    assert not result.covariance_flag[0] and np.all(np.isfinite(result.errors[0]))
    assert not result.at_bound.any() and not result.degenerate.any() and not result.off_region.any()
    assert result.signal[0, 0] > 50  # the galaxy's matched-filter S/N
    assert fitted_row(result, 0, "g")["STATUS"] == CONVERGED


def test_a_vanished_component_is_degenerate_with_nan_errors(galaxy_image, single):
    """A second component switched off (mag 60: ~1e-17 of the galaxy's flux) has Jacobian
    columns ~1e-17 of a normal one; the unit-diagonal conditioning test alone found it
    healthy and gave errors of 1e16 and more."""
    disk = Component("expdisk", dict(x=12.0, y=12.0, mag=60.0, r_s=4.0, q=0.6, pa=10.0))
    result = run([Component("sersic", START), disk], galaxy_image)
    assert result.signal[0, 1] < 1e-10 * result.signal[0, 0]
    assert_flagged(result, DEGENERATE + "2_mag", [(2, name) for name in ("x", "y", "mag", "r_s", "q", "pa")])
    assert result.degenerate[0, result.column(2, "mag")]
    # the galaxy's own errors are those with the vanished component held: finite, and
    # those of the single-component fit
    for name in ("x", "mag", "r_e", "n"):
        assert result.error(1, name)[0] == pytest.approx(single.error(1, name)[0], rel=0.02)


def test_a_centre_off_the_fit_region_is_flagged():
    """A neighbour centred 3 px outside the image (its wing inside), with its x free over
    a range beyond the region: it ends outside, named by the status."""
    image = noisy(render(("sersic", GALAXY), ("expdisk", dict(x=-2.0, y=16.0, mag=16.0, r_s=2.5, q=1.0, pa=0.0))))
    neighbour = Component("expdisk", dict(x=1.0, y=16.5, mag=16.5, r_s=2.5, q=1.0, pa=0.0),
                          fixed=frozenset({"r_s", "q", "pa"}), bounds={"x": (-20.0, 40.0)})
    result = run([Component("sersic", START), neighbour], image)
    assert result.value(2, "x")[0] < 0.5
    assert result.off_region[0, result.column(2, "x")] and not result.off_region[0, result.column(2, "y")]
    assert_flagged(result, OFF_REGION + "2_x", [(2, "x")])
    assert np.isfinite(result.error(2, "mag")[0]) and np.isfinite(result.error(1, "r_e")[0])


def test_a_parameter_on_a_bound_is_flagged_with_a_nan_error(galaxy_image):
    """The truth n = 1.5 lies outside the bounds [0.5, 1.2]: n ends on 1.2."""
    component = Component("sersic", dict(START, n=1.0), bounds={"n": (0.5, 1.2)})
    result = run([component], galaxy_image)
    assert result.value(1, "n")[0] == pytest.approx(1.2, abs=1e-3)
    assert result.on_bound[0, result.column(1, "n")]
    assert_flagged(result, HIT_BOUND + "1_n", [(1, "n")])
    # the others' errors are those with n held at its bound
    assert np.all(np.isfinite([result.error(1, name)[0] for name in ("x", "y", "mag", "r_e", "q", "pa")]))


def test_a_singular_covariance_names_its_null_direction(galaxy_image):
    """Two identical components with fixed shapes: only the sum of their fluxes is
    constrained, J^T W J is singular along (1_mag, -2_mag)."""
    held = frozenset({"x", "y", "r_e", "n", "q", "pa"})
    result = run([Component("sersic", dict(GALAXY, mag=18.9), fixed=held),
                  Component("sersic", dict(GALAXY, mag=18.9), fixed=held)], galaxy_image)
    assert_flagged(result, DEGENERATE + "1_mag,2_mag", [(1, "mag"), (2, "mag")])
    assert np.isnan(result.errors_scaled[0, result.column(1, "mag")])


# --------------------------------------------------------------------------- the pieces


def test_covariance_held_coordinates_give_the_conditional_covariance_and_a_flag():
    rng = np.random.default_rng(2)
    jac = torch.as_tensor(rng.normal(size=(2, 300, 3)))
    jac[1, :, 2] *= 1e-17  # a vanished coordinate: tiny, not zero
    plain = covariance_estimate(jac)
    assert not plain.flag[1] and plain.covariance[1, 2, 2] > 1e30  # the scaled test alone misses it
    held = torch.tensor([[False, False, False], [False, False, True]])
    est = covariance_estimate(jac, held=held)
    torch.testing.assert_close(est.covariance[0], plain.covariance[0], rtol=0, atol=0)  # untouched
    assert est.flag.tolist() == [False, True]
    assert torch.isnan(est.covariance[1, 2]).all() and torch.isnan(est.covariance[1, :, 2]).all()
    sub = torch.linalg.inv(jac[1, :, :2].T @ jac[1, :, :2])
    torch.testing.assert_close(est.covariance[1, :2, :2], sub, rtol=1e-10, atol=0)
    assert est.undefined.tolist() == [[False, False, False], [False, False, True]]
    assert not est.degenerate.any()  # held coordinates are the caller's, not the matrix's


def test_covariance_degenerate_names_the_null_direction():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(1, 200, 1))
    jac = torch.as_tensor(np.concatenate([a, rng.normal(size=(1, 200, 1)), a], -1))
    est = covariance_estimate(jac)
    assert est.flag[0] and est.degenerate[0].tolist() == [True, False, True]
    zero = jac.clone()
    zero[..., 1] = 0
    assert covariance_estimate(zero).degenerate[0].tolist() == [False, True, False]


def test_signal_thresholds():
    unit = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    unit[0, :, 1, 1] = 1.0
    weight = torch.full((1, 4, 4), 2.0, dtype=torch.float64)  # sigma = 0.5
    signal = component_signal(unit, torch.tensor([[100.0, 1e-30]], dtype=torch.float64), weight)
    torch.testing.assert_close(signal, torch.tensor([[200.0, 2e-30]], dtype=torch.float64))
    tested = torch.tensor([True, True])
    s = torch.tensor([[200.0, VANISHED_SNR * 1.01], [1e9, 1e9 * VANISHED_FRACTION * 0.99]], dtype=torch.float64)
    assert vanished_components(s, torch.ones(2), tested).tolist() == [[False, False], [False, True]]
    # unit weights: the noise scale is the residuals' (sqrt(chi2/nu))
    assert vanished_components(s[:1], torch.tensor([2.0]), tested).tolist() == [[False, True]]
    assert not vanished_components(s, torch.ones(2), torch.tensor([True, False])).any()


def test_centres_off_region_edges():
    values = np.array([[5.0, 0.5, 3.0], [5.0, 10.5 - EDGE_MARGIN / 2, 12.0], [5.0, 10.0, 3.0]])
    bounds = np.array([[0.5, 10.5]] * 3)
    off = centres_off_region(values, [1], [2], bounds, bounds)
    assert off.tolist() == [[False, True, False], [False, True, True], [False, False, False]]


def test_status_precedence():
    names = ((1, "x"), (1, "mag"), (2, "mag"))
    values = np.zeros((5, 3))
    values[4, 0] = np.nan
    flag = np.zeros((5, 3), dtype=bool)
    degenerate, off, bound = flag.copy(), flag.copy(), flag.copy()
    degenerate[0, 2] = off[0, 0] = bound[0, 1] = True
    off[1, 0] = bound[1, 1] = True
    bound[2, 1] = True
    converged = np.array([True, True, False, True, True])
    status = fit_statuses(names, values, np.zeros(5), converged, degenerate, off, bound)
    assert list(status) == ["degenerate: 2_mag", "off the region: 1_x", "max iterations", "converged",
                            "failed: the fit ended with non-finite values"]
