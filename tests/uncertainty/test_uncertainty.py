"""Parameter uncertainties against independent truths: the analytic covariance of linear
problems (a tilted sky plane: weighted least squares by hand; a Gaussian's amplitude with
its pixel integrals from erf), hand-computed count-weighted bootstrap estimates (which
squared-count weights would not reproduce), exact posteriors of linear-Gaussian models
for the sampler, hand-derived delta-method formulas, and coverage on simulated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from galprof import Component, Model, fit
from galprof.uncertainty import (bootstrap, bulge_to_total, correlation_matrix, covariance_estimate, delta_method,
                                 derived, effective_radius, from_samples, resample_counts, total_magnitude)

H, W = 18, 22


def _sky_problem(seed=1, level=3.0, free=("sky", "dsdx", "dsdy")):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.5, 2.0, (H, W))
    image = level + rng.normal(0.0, 1.0, (H, W)) * sigma
    fixed = frozenset({"sky", "dsdx", "dsdy"} - set(free))
    model = Model([Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed=fixed)])
    return model, image, sigma


def _design():
    ys, xs = np.mgrid[1:H + 1, 1:W + 1]  # 1-based pixel centres; the sky's reference is the region centre
    return np.stack([np.ones(H * W), (xs - (W + 1) / 2).ravel(), (ys - (H + 1) / 2).ravel()], 1)


def test_covariance_of_a_tilted_sky_equals_weighted_least_squares():
    model, image, sigma = _sky_problem()
    result = fit(model, image, sigma=sigma, dtype=torch.float64)
    x = _design()
    w = 1.0 / sigma.ravel() ** 2
    cov = np.linalg.inv(x.T @ (x * w[:, None]))
    estimate = cov @ (x.T @ (w * image.ravel()))
    np.testing.assert_allclose(result.values[0], estimate, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.covariance[0], cov, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(result.errors[0], np.sqrt(np.diag(cov)), rtol=1e-8)
    np.testing.assert_allclose(result.parameter_covariance[0], cov, rtol=1e-8, atol=1e-14)
    residual = image.ravel() - x @ estimate
    chi2_nu = (residual**2 * w).sum() / (H * W - 3)
    np.testing.assert_allclose(result.errors_scaled[0], np.sqrt(np.diag(cov) * chi2_nu), rtol=1e-6)
    corr = result.correlation()[0]
    np.testing.assert_allclose(corr, cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov))), rtol=1e-8, atol=1e-12)
    assert not result.covariance_flag[0] and result.condition_number[0] < 10


def _gaussian_unit_image(x0, y0, sigma_pix):
    """Pixel integrals of a unit-flux round Gaussian (1-based pixel centres), from erf."""
    edges_x = np.arange(W + 1) + 0.5
    edges_y = np.arange(H + 1) + 0.5
    cx = np.diff(special.erf((edges_x - x0) / (math.sqrt(2) * sigma_pix))) / 2
    cy = np.diff(special.erf((edges_y - y0) / (math.sqrt(2) * sigma_pix))) / 2
    return np.outer(cy, cx)


def test_magnitude_error_of_an_amplitude_only_fit_is_analytic():
    """Linear problem: only the flux F of a fixed-shape Gaussian is free. var(F) =
    1 / sum(u^2 / sigma^2) with u the unit-flux image; mag = zp - 2.5 log10 F, so
    err(mag) = 2.5 / ln 10 * err(F) / F."""
    rng = np.random.default_rng(3)
    x0, y0, fwhm, zp = 11.3, 9.6, 3.0, 25.0
    unit = _gaussian_unit_image(x0, y0, fwhm / (2 * math.sqrt(2 * math.log(2))))
    flux = 500.0
    sigma = rng.uniform(0.8, 1.5, (H, W))
    image = flux * unit + rng.normal(0, 1, (H, W)) * sigma
    model = Model([Component("gaussian", dict(x=x0, y=y0, mag=zp - 2.5 * math.log10(flux * 1.1), fwhm=fwhm, q=1.0,
                                              pa=0.0), fixed=frozenset({"x", "y", "fwhm", "q", "pa"}))])
    result = fit(model, image, sigma=sigma, zeropoint=zp, dtype=torch.float64)
    f_hat = (unit * image / sigma**2).sum() / (unit**2 / sigma**2).sum()
    err_f = 1.0 / math.sqrt((unit**2 / sigma**2).sum())
    assert result.value(1, "mag")[0] == pytest.approx(zp - 2.5 * math.log10(f_hat), abs=1e-5)
    assert result.error(1, "mag")[0] == pytest.approx(2.5 / math.log(10) * err_f / f_hat, rel=1e-3)


def test_degenerate_model_gives_nan_errors_and_a_flag_not_a_crash():
    """Two identical Gaussians at one fixed position: only the sum of their fluxes is
    constrained, so J^T W J is singular."""
    rng = np.random.default_rng(4)
    unit = _gaussian_unit_image(11.0, 9.0, 1.5)
    image = 300 * unit + rng.normal(0, 1, (H, W))
    comp = dict(x=11.0, y=9.0, mag=19.0, fwhm=1.5 * 2.3548, q=1.0, pa=0.0)
    held = frozenset({"x", "y", "fwhm", "q", "pa"})
    model = Model([Component("gaussian", comp, fixed=held), Component("gaussian", comp, fixed=held)])
    result = fit(model, image, sigma=np.ones_like(image), zeropoint=25.0, dtype=torch.float64)
    assert result.covariance_flag[0]
    assert np.isnan(result.error(1, "mag")[0]) and np.isnan(result.error(2, "mag")[0])
    assert np.isnan(result.errors_scaled[0, result.column(1, "mag")])
    assert result.at_bound[0, result.column(1, "mag")]


def test_ill_conditioned_jacobian_is_flagged_and_good_one_is_not():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(2, 200, 1))
    good = torch.as_tensor(np.concatenate([a, rng.normal(size=(2, 200, 1))], -1))
    near = torch.as_tensor(np.concatenate([a, a * (1 + 1e-9) + 1e-9 * rng.normal(size=(2, 200, 1))], -1))
    est = covariance_estimate(torch.cat([good, near]))
    assert est.flag.tolist() == [False, False, True, True]
    assert torch.isnan(est.covariance[2:]).all() and torch.isfinite(est.covariance[:2]).all()
    assert (est.condition[2:] > 1e14).all()
    # a zero column (a parameter the model does not depend on) is flagged too
    zero = good.clone()
    zero[..., 1] = 0
    assert covariance_estimate(zero).flag.all()


def test_correlation_matrix_of_fixed_and_nan_entries():
    cov = np.array([[[4.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    corr = correlation_matrix(cov)
    np.testing.assert_allclose(corr[0], [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])


# ---------------------------------------------------------------------------- bootstrap

def test_bootstrap_replicates_are_count_weighted_refits():
    """With only the sky level free the refit of a replicate is the weighted mean
    sum(c w d) / sum(c w) with w = 1 / sigma^2 and c the counts. Squared counts would give
    sum(c^2 w d) / sum(c^2 w), far from it for these replicates."""
    model, image, sigma = _sky_problem(seed=7, free=("sky",))
    result = fit(model, image, sigma=sigma, dtype=torch.float64)
    boot = bootstrap(model, result, image, sigma=sigma, n_replicates=12, seed=42, dtype=torch.float64)
    counts = resample_counts(torch.ones(1, H, W, dtype=torch.bool), 12,
                             torch.Generator().manual_seed(42)).numpy()[:, 0]
    assert counts.sum(axis=(1, 2)).tolist() == [H * W] * 12
    w = 1 / sigma**2
    by_counts = (counts * w * image).sum((1, 2)) / (counts * w).sum((1, 2))
    by_squares = (counts**2 * w * image).sum((1, 2)) / (counts**2 * w).sum((1, 2))
    got = boot.replicates[:, 0, result.column(1, "sky")]
    np.testing.assert_allclose(got, by_counts, rtol=0, atol=1e-6)
    assert np.abs(got - by_squares).max() > 20 * 1e-6


def test_bootstrap_error_of_a_mean_matches_the_analytic_error():
    """White noise, unit sigma, sky level only: the bootstrap standard deviation of the mean
    is sigma / sqrt(N); weights c^2 would inflate it by sqrt(E c^4 / (E c^2)^2) = 1.9."""
    rng = np.random.default_rng(8)
    image = 2.0 + rng.normal(0, 1.0, (H, W))
    model = Model([Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed=frozenset({"dsdx", "dsdy"}))])
    result = fit(model, image, sigma=np.ones_like(image), dtype=torch.float64)
    boot = bootstrap(model, result, image, sigma=np.ones_like(image), n_replicates=300, seed=1, dtype=torch.float64)
    analytic = image.std(ddof=1) / math.sqrt(H * W)
    assert boot.error(1, "sky")[0] / analytic == pytest.approx(1.0, abs=0.12)
    low, high = boot.interval(0.68)
    assert low[0, 0] < result.values[0, 0] < high[0, 0]
    assert (high - low)[0, 0] / 2 == pytest.approx(analytic, rel=0.2)


def test_bootstrap_is_reproducible_with_a_seed_and_batched_over_galaxies():
    model, image, sigma = _sky_problem(seed=9)
    images = np.stack([image, image[::-1] + 1.0])
    sigmas = np.stack([sigma, sigma[::-1]])
    result = fit(model, images, sigma=sigmas, dtype=torch.float64)
    a = bootstrap(model, result, images, sigma=sigmas, n_replicates=6, seed=5, dtype=torch.float64, max_batch=4)
    b = bootstrap(model, result, images, sigma=sigmas, n_replicates=6, seed=5, dtype=torch.float64)
    c = bootstrap(model, result, images, sigma=sigmas, n_replicates=6, seed=6, dtype=torch.float64)
    np.testing.assert_allclose(a.replicates, b.replicates, rtol=0, atol=1e-9)
    assert not np.allclose(a.replicates, c.replicates)
    assert a.replicates.shape == (6, 2, 3) and a.converged.all()
    # galaxy 1 alone gives the same replicates as in the batch (its counts are its own draws)
    x = _design()
    for g in range(2):
        cnt = resample_counts(torch.ones(2, H, W, dtype=torch.bool), 6, torch.Generator().manual_seed(5)).numpy()[:, g]
        w = cnt.reshape(6, -1) / sigmas[g].ravel() ** 2
        for r in range(6):
            est = np.linalg.solve(x.T @ (x * w[r][:, None]), x.T @ (w[r] * images[g].ravel()))
            np.testing.assert_allclose(a.replicates[r, g], est, rtol=1e-5, atol=1e-7)


def test_bootstrap_rejects_other_statistics_and_too_few_replicates():
    from galprof import ModelError, PixelStatistic

    model, image, sigma = _sky_problem()
    result = fit(model, image, sigma=sigma, dtype=torch.float64)
    with pytest.raises(ModelError, match="chi\\^2 only"):
        bootstrap(model, result, image, sigma=sigma, statistic=PixelStatistic("cash", gain=1.0), n_replicates=4)
    with pytest.raises(ModelError, match="at least 2 replicates"):
        bootstrap(model, result, image, sigma=sigma, n_replicates=1)


# ------------------------------------------------------------------------ derived values

NAMES = ((1, "mag"), (2, "mag"), (1, "r_e"), (1, "n"), (2, "r_s"))
PROFILES = ("sersic", "expdisk")


def test_delta_method_total_magnitude_and_bulge_to_total_by_hand():
    values = np.array([[18.0, 17.0, 3.0, 4.0, 8.0]])
    cov = np.zeros((1, 5, 5))
    cov[0, :2, :2] = [[0.01, 0.002], [0.002, 0.004]]
    f1, f2 = 10 ** (-0.4 * 18.0), 10 ** (-0.4 * 17.0)
    g = np.array([f1, f2]) / (f1 + f2)  # d m_tot / d m_i
    m_tot = delta_method(total_magnitude(), values, cov, NAMES, PROFILES)
    assert m_tot.value[0, 0] == pytest.approx(-2.5 * math.log10(f1 + f2), abs=1e-12)
    assert m_tot.error[0, 0] == pytest.approx(math.sqrt(g @ cov[0, :2, :2] @ g), rel=1e-10)
    bt = f1 / (f1 + f2)
    # d(B/T)/d m_1 = -0.4 ln10 B/T (1 - B/T), d/d m_2 = +0.4 ln10 B/T (1 - B/T)
    k = 0.4 * math.log(10) * bt * (1 - bt)
    grad = np.array([-k, k])
    est = delta_method(bulge_to_total(1), values, cov, NAMES, PROFILES)
    assert est.value[0, 0] == pytest.approx(bt, rel=1e-12)
    assert est.error[0, 0] == pytest.approx(math.sqrt(grad @ cov[0, :2, :2] @ grad), rel=1e-10)


def test_effective_radius_of_the_sum_by_quadrature():
    """Half-light radius of a Sersic (n=4, R_e=3) + exponential (r_s=8): root of the
    enclosed-flux fraction, each component's being scipy's P(2n, b_n (R/R_e)^(1/n))
    (exponential: P(2, R/r_s)); single components give their own R_e."""
    from scipy import optimize

    values = np.array([[18.0, 17.0, 3.0, 4.0, 8.0]])

    def sersic_b(n):
        return optimize.brentq(lambda b: special.gammainc(2 * n, b) - 0.5, 1e-3, 30, xtol=1e-14)

    b4 = sersic_b(4.0)
    f1, f2 = 10 ** (-0.4 * 18.0), 10 ** (-0.4 * 17.0)

    def fraction(r):
        return (f1 * special.gammainc(8.0, b4 * (r / 3.0) ** 0.25) + f2 * special.gammainc(2.0, r / 8.0)) / (f1 + f2)

    half = optimize.brentq(lambda r: fraction(r) - 0.5, 0.1, 100, xtol=1e-12)
    est = delta_method(effective_radius(), values, np.zeros((1, 5, 5)), NAMES, PROFILES)
    assert est.value[0, 0] == pytest.approx(half, rel=1e-5)
    single = delta_method(effective_radius([1]), values, np.zeros((1, 5, 5)), NAMES, PROFILES)
    assert single.value[0, 0] == pytest.approx(3.0, rel=1e-7)
    disk = delta_method(effective_radius([2]), values, np.zeros((1, 5, 5)), NAMES, PROFILES)
    assert disk.value[0, 0] == pytest.approx(8 * sersic_b(1.0), rel=1e-7)


def test_derived_from_samples_agrees_with_the_delta_method_for_small_errors():
    rng = np.random.default_rng(2)
    values = np.array([[18.0, 17.0, 3.0, 4.0, 8.0]])
    cov = np.diag([0.004, 0.002, 0.01, 0.02, 0.05])[None] * 0.01
    draws = rng.multivariate_normal(values[0], cov[0], size=1500)[:, None, :]
    for func in (total_magnitude(), bulge_to_total(1), effective_radius()):
        lin = delta_method(func, values, cov, NAMES, PROFILES)
        mc = from_samples(func, draws, NAMES, PROFILES)
        assert mc.error[0, 0] == pytest.approx(lin.error[0, 0], rel=0.08)
        assert mc.value[0, 0] == pytest.approx(lin.value[0, 0], abs=4 * lin.error[0, 0] / math.sqrt(1500))


# ------------------------------------------------------------------------------ coverage

def _sersic_set(n_gal, snr, seed, size=28, r_e=2.5):
    from galprof.profiles import get_profile
    from galprof.render.psf import prepare_psf
    from galprof.render.scene import Frame, render_model

    yy, xx = np.mgrid[-6:7, -6:7]
    psf = np.exp(-(xx**2 + yy**2) / (2 * 1.1**2))
    psf /= psf.sum()
    truth = dict(x=14.3, y=13.8, mag=20.0, r_e=r_e, n=1.5, q=0.65, pa=35.0)
    frame = Frame(1, 1, size, size, zeropoint=25.0)
    clean = render_model([(get_profile("sersic"), {k: torch.tensor([v], dtype=torch.float64)
                                                   for k, v in truth.items()})],
                         frame, prepare_psf(psf, dtype=torch.float64)).numpy()[0]
    noise = math.sqrt((clean**2).sum()) / snr  # S/N = sqrt(sum (model / sigma)^2)
    rng = np.random.default_rng(seed)
    images = clean + rng.normal(0, noise, (n_gal, size, size))
    return truth, images, np.full(images.shape, noise), psf


def test_covariance_coverage_on_simulated_white_noise():
    truth, images, sigma, psf = _sersic_set(36, 60.0, seed=11, size=24)
    model = Model([Component("sersic", dict(truth))])
    result = fit(model, images, sigma=sigma, psf=psf, zeropoint=25.0, staged=False, retries=0)
    t = np.array([truth[n] for _, n in result.names])
    inside = np.abs(result.values - t) <= result.errors
    inside95 = np.abs(result.values - t) <= 1.96 * result.errors
    # 36 x 7 = 252 pulls (correlated within a galaxy): binomial sd ~0.03
    assert 0.58 <= inside.mean() <= 0.78, inside.mean(0)
    assert 0.90 <= inside95.mean() <= 0.99, inside95.mean(0)
    # the scatter of the fits matches the reported errors
    ratio = np.median(result.errors, 0) / result.values.std(0, ddof=1)
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio
    # chi2_nu ~ 1, so the scaled errors agree with the raw ones
    np.testing.assert_allclose(result.errors_scaled, result.errors, rtol=0.08)


def test_scaled_errors_repair_a_sigma_that_is_wrong_by_a_constant():
    """Sky-only fits where the given sigma is half the true noise: raw errors are 2x too
    small, the chi2_nu-scaled ones match the true scatter sigma_true / sqrt(N)."""
    rng = np.random.default_rng(12)
    images = 5.0 + rng.normal(0, 2.0, (40, H, W))
    model = Model([Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed=frozenset({"dsdx", "dsdy"}))])
    result = fit(model, images, sigma=np.ones_like(images), dtype=torch.float64)
    truth = 2.0 / math.sqrt(H * W)
    assert result.error(1, "sky")[0] == pytest.approx(truth / 2, rel=1e-6)
    assert np.median(result.errors_scaled[:, 0]) == pytest.approx(truth, rel=0.05)
    assert result.values[:, 0].std(ddof=1) == pytest.approx(truth, rel=0.3)


def test_derived_from_a_fit_result_uses_its_parameter_covariance():
    truth, images, sigma, psf = _sersic_set(2, 80.0, seed=13)
    model = Model([Component("sersic", dict(truth))])
    result = fit(model, images, sigma=sigma, psf=psf, zeropoint=25.0, staged=False, retries=0)
    est = derived(total_magnitude(), result)
    np.testing.assert_allclose(est.value[:, 0], result.value(1, "mag"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(est.error[:, 0], result.error(1, "mag"), rtol=1e-9)
    scaled = derived(total_magnitude(), result, scaled=True)
    np.testing.assert_allclose(scaled.error[:, 0], result.errors_scaled[:, result.column(1, "mag")], rtol=1e-9)


@pytest.mark.slow
def test_bootstrap_coverage_and_scatter_on_simulated_white_noise():
    """Percentile intervals of 30 count-weighted replicates cover the truth of independent
    noise realisations at about the nominal rate, and the replicate sd matches both the
    scatter of the fits and the covariance errors (which squared-count weights would not:
    for Poisson(1) counts Var(c^2) / E(c^2)^2 = 11/4, so the replicate sd would be ~1.7x)."""
    truth, images, sigma, psf = _sersic_set(20, 60.0, seed=21, size=24)
    model = Model([Component("sersic", dict(truth))])
    result = fit(model, images, sigma=sigma, psf=psf, zeropoint=25.0, staged=False, retries=0)
    boot = bootstrap(model, result, images, sigma=sigma, psf=psf, zeropoint=25.0, n_replicates=30, seed=3)
    t = np.array([truth[n] for _, n in result.names])
    free = result.free
    lo68, hi68 = boot.interval(0.68)
    lo95, hi95 = boot.interval(0.95)
    inside68 = ((lo68 <= t) & (t <= hi68))[:, free]
    inside95 = ((lo95 <= t) & (t <= hi95))[:, free]
    # 20 x 7 = 140 (correlated) pulls: sd of the pooled fraction ~0.05
    assert 0.50 <= inside68.mean() <= 0.85, inside68.mean(0)
    assert 0.82 <= inside95.mean() <= 1.0, inside95.mean(0)
    ratio_cov = np.median(boot.std[:, free] / result.errors[:, free], 0)
    assert np.all((ratio_cov > 0.8) & (ratio_cov < 1.25)), ratio_cov
    ratio_scatter = np.median(boot.std[:, free], 0) / result.values[:, free].std(0, ddof=1)
    # the scatter of 20 fits is itself uncertain by ~16 %
    assert np.all((ratio_scatter > 0.6) & (ratio_scatter < 1.7)), ratio_scatter
