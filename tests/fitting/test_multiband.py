"""Multi-band fitting (galprof.fitting.bands, galprof.fitting.multiband).

References: GALFITM 1.2.0's published restart and log of NGC 4261 (its Chebyshev
coefficients and the band magnitudes it printed), numpy's Chebyshev module, finite
differences, and GalSim renders of known galaxies in three bands (per-band PSFs,
magnitudes and noise)."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
import torch

from galprof import Bands, Component, Model, Range, RenderConfig, fit, fit_bands
from galprof.fitting import ModelFunctions, prepare_fit
from galprof.fitting.multiband import BandMap
from galprof.model import ModelError

SDSS = Bands(("u", "g", "r", "i", "z"), (3543, 4770, 6231, 7625, 9134))
GRI = Bands(("g", "r", "i"), (4770, 6231, 7625))
ZP = 25.0
SIZE = 40
FWHM = (3.0, 2.6, 2.3)  # g, r, i


def test_chebyshev_coefficients_give_galfitm_band_values():
    # GALFITM 1.2.0, ngc4261-s restart: 3) 13.185,-1.532,0.503,-0.185,7.901e-02 ... cheb;
    # its log prints the band magnitudes u..z as 15.48 13.62 12.80 12.35 12.05
    mags = SDSS.band_values([13.185, -1.532, 0.503, -0.185, 7.901e-02])
    np.testing.assert_allclose(mags, [15.48, 13.62, 12.80, 12.35, 12.05], atol=0.006)
    # and the same polynomial from numpy's own Chebyshev series on the mapped wavelengths
    x = 2 * (np.array(SDSS.wavelengths) - 3543) / (9134 - 3543) - 1
    np.testing.assert_allclose(mags, np.polynomial.chebyshev.chebval(x, [13.185, -1.532, 0.503, -0.185, 7.901e-02]))
    np.testing.assert_allclose(SDSS.coefficients(mags), [13.185, -1.532, 0.503, -0.185, 7.901e-02], atol=1e-12)
    # a line through three bands is two terms; the least-squares constant is the mean
    np.testing.assert_allclose(GRI.coefficients([1.0, 2.0, 4.0], 1), [7.0 / 3.0])
    line = 3.0 + 0.5 * GRI.normalised_wavelengths()  # linear in the mapped wavelength
    np.testing.assert_allclose(GRI.coefficients(line, 2), [3.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(GRI.band_values([3.0, 0.5]), line)


def test_bands_are_checked():
    with pytest.raises(ModelError, match="wavelengths must differ"):
        Bands(("a", "b"), (5000, 5000))
    with pytest.raises(ModelError, match="2 labels but 3 wavelengths"):
        Bands(("a", "b"), (1, 2, 3))


def epsf(fwhm: float, size: int = 17) -> np.ndarray:
    stamp = galsim.Moffat(beta=3.5, fwhm=fwhm).drawImage(nx=size, ny=size, scale=1.0).array
    return stamp / stamp.sum()


def galsim_image(x, y, mag, r_e, n, q, pa, psf_fwhm) -> np.ndarray:
    """A Sersic galaxy in GALFIT's conventions (1-based centre, PA from +y, R_e along the
    major axis) convolved with a Moffat PSF and the pixel, by GalSim."""
    flux = 10 ** (-0.4 * (mag - ZP))
    gal = galsim.Sersic(n=n, half_light_radius=r_e * np.sqrt(q), flux=flux)
    gal = gal.shear(q=q, beta=(pa + 90.0) * galsim.degrees)
    psf = galsim.Moffat(beta=3.5, fwhm=psf_fwhm)
    offset = (x - (SIZE / 2 + 0.5), y - (SIZE / 2 + 0.5))
    return galsim.Convolve(gal, psf).drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=offset).array


def simulate(truth: dict, mags: np.ndarray, r_e: np.ndarray, seed: int):
    """(B, 3, H, W) images and sigmas of galaxies with per-band magnitudes and R_e."""
    rng = np.random.default_rng(seed)
    bsz = len(truth["x"])
    images = np.zeros((bsz, 3, SIZE, SIZE))
    sigmas = np.zeros_like(images)
    for b in range(bsz):
        for k in range(3):
            clean = galsim_image(truth["x"][b], truth["y"][b], mags[b, k], r_e[b, k], truth["n"][b], truth["q"][b],
                                 truth["pa"][b], FWHM[k])
            sigma = np.sqrt(0.3**2 + np.clip(clean, 0, None) / 4.0)
            images[b, k] = clean + rng.normal(0.0, 1.0, clean.shape) * sigma
            sigmas[b, k] = sigma
    return images, sigmas


def truths(bsz: int, seed: int) -> tuple[dict, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = dict(x=SIZE / 2 + 0.5 + rng.uniform(-1, 1, bsz), y=SIZE / 2 + 0.5 + rng.uniform(-1, 1, bsz),
                 r_e=rng.uniform(2.5, 4.5, bsz), n=rng.uniform(1.0, 3.5, bsz), q=rng.uniform(0.5, 0.9, bsz),
                 pa=rng.uniform(-80, 80, bsz))
    mags = rng.uniform(17.0, 17.6, bsz)[:, None] + np.array([0.6, 0.0, -0.3])[None, :]
    return truth, mags


def offset_start(truth: dict, mags: np.ndarray) -> dict:
    return dict(x=truth["x"] + 0.8, y=truth["y"] - 0.8, mag=mags + 0.4, r_e=truth["r_e"] * 1.4, n=2.5,
                q=np.clip(truth["q"] + 0.1, 0.1, 0.95), pa=truth["pa"] + 12.0)


@pytest.fixture(scope="module")
def shared_structure():
    truth, mags = truths(5, seed=11)
    r_e = np.repeat(truth["r_e"][:, None], 3, axis=1)
    images, sigmas = simulate(truth, mags, r_e, seed=12)
    psfs = [epsf(f) for f in FWHM]
    result = fit_bands(Model([Component("sersic", offset_start(truth, mags))]), images, bands=GRI, sigma=sigmas,
                       psf=psfs, zeropoint=ZP)
    return truth, mags, images, sigmas, psfs, result


def test_joint_fit_recovers_galsim_truth_within_errors(shared_structure):
    truth, mags, _, _, _, result = shared_structure
    assert list(result.status) == ["converged"] * 5
    assert np.all(np.abs(result.chi2_nu - 1.0) < 0.1)
    for name in ("x", "y", "r_e", "n", "q", "pa"):
        fitted, error = result.value(1, name), result.error(1, name)
        np.testing.assert_allclose(fitted, fitted[:, :1].repeat(3, 1))  # one value in every band
        pulls = (fitted[:, 0] - truth[name]) / error[:, 0]
        assert np.all(np.abs(pulls) < 4.0), (name, pulls)
    mag_pulls = (result.value(1, "mag") - mags) / result.error(1, "mag")
    assert np.all(np.abs(mag_pulls) < 4.0), mag_pulls
    # structure shared by three bands is better determined than by one band alone
    assert result.terms[result.index(1, "r_e")] == 1 and result.terms[result.index(1, "mag")] == 3


def test_joint_errors_are_smaller_than_single_band_errors(shared_structure):
    truth, mags, images, sigmas, psfs, joint = shared_structure
    one = Bands(("r",), (6231,))
    start = offset_start(truth, mags)
    start["mag"] = start["mag"][:, 1:2]
    single = fit(Model([Component("sersic", start)]), images[:, 1:2], bands=one, sigma=sigmas[:, 1:2],
                 psf=[psfs[1]], zeropoint=ZP)
    for name in ("r_e", "n"):
        ratio = joint.error(1, name)[:, 0] / single.error(1, name)[:, 0]
        assert np.all(ratio < 0.9), (name, ratio)


def test_polynomial_size_recovers_a_size_that_grows_with_wavelength():
    truth, mags = truths(3, seed=21)
    x = GRI.normalised_wavelengths()
    r_e = truth["r_e"][:, None] * (1.0 + 0.2 * x[None, :])  # exactly linear in the mapped wavelength
    images, sigmas = simulate(truth, mags, r_e, seed=22)
    start = offset_start(truth, mags)
    result = fit_bands(Model([Component("sersic", start)]), images, bands=GRI, sigma=sigmas,
                       psf=[epsf(f) for f in FWHM], zeropoint=ZP, terms={(1, "r_e"): 2})
    assert list(result.status) == ["converged"] * 3
    pulls = (result.value(1, "r_e") - r_e) / result.error(1, "r_e")
    assert np.all(np.abs(pulls) < 4.0), pulls
    # two Chebyshev terms: the third coefficient of R_e is 0, the slope is 0.2 R_e
    coef = result.coefficients[:, result.index(1, "r_e")]
    np.testing.assert_allclose(coef[:, 2], 0.0, atol=1e-9)
    slope_pulls = (coef[:, 1] - 0.2 * truth["r_e"]) / result.coefficient_errors[:, result.index(1, "r_e"), 1]
    assert np.all(np.abs(slope_pulls) < 4.0), slope_pulls


def assert_jacobian_matches_finite_differences(constraints=()):
    """The LM's Jacobian of the stacked bands (row Jacobians times d theta / d coefficients,
    with a polynomial through the bound transform) against central differences."""
    values = dict(x=np.full(3, 20.3), y=np.full(3, 19.6), mag=np.array([18.0, 17.5, 17.3]),
                  r_e=np.array([3.0, 3.4, 3.8]), n=np.full(3, 2.0), q=np.full(3, 0.7), pa=np.full(3, 20.0))
    model = Model([Component("sersic", values)], constraints)
    setup = prepare_fit(model, np.zeros((3, 24, 24)), psf=epsf(2.5, 9), zeropoint=ZP, dtype=torch.float64)
    layout = setup.layout
    names = [layout.entries[i].name for i in layout.free_index]
    terms = [3 if n == "mag" else 2 if n == "r_e" else 1 for n in names]
    band_map = BandMap(layout, terms, GRI)
    fixed = torch.as_tensor(setup.initial, dtype=torch.float64)
    natural = layout.free_coordinates(torch.as_tensor(model_values(values), dtype=torch.float64))
    theta0 = layout.to_internal(fixed).reshape(1, 3, -1)
    coef = band_map.initial(theta0, natural.reshape(1, 3, -1), GRI)
    functions = ModelFunctions(layout, fixed, setup.frame, setup.psf, RenderConfig(), internal=True)
    rows = torch.arange(3)

    def stacked(c):
        theta = band_map.rows(c, fixed)
        return functions.render(theta.reshape(3, -1), rows)

    theta = band_map.rows(coef, fixed)
    _, jac_rows = functions.jacobian(theta.reshape(3, -1), rows)
    analytic = torch.einsum("kpf,kfc->kpc", jac_rows.reshape(3, -1, jac_rows.shape[-1]),
                            band_map.jacobian(coef, theta)[0])
    for c in range(coef.shape[1]):
        step = torch.zeros_like(coef)
        step[0, c] = 1e-5
        numeric = (stacked(coef + step) - stacked(coef - step)).reshape(3, -1) / 2e-5
        scale = numeric.abs().max()
        assert torch.allclose(analytic[:, :, c], numeric, atol=2e-6 * scale), (c, names)
    return band_map.natural_values(coef)[0, :, names.index("r_e")]


def model_values(values: dict) -> np.ndarray:
    """(3, 7) Sersic values in galprof's parameter order (x, y, mag, r_e, n, q, pa)."""
    return np.stack([values[n] for n in ("x", "y", "mag", "r_e", "n", "q", "pa")], axis=1)


def test_jacobian_matches_finite_differences():
    assert_jacobian_matches_finite_differences()


def test_jacobian_is_zero_where_a_bound_clips_a_polynomial():
    """R_e's two-term polynomial runs past a Range in the i band: that band's R_e sits on
    the bound whatever the coefficients do nearby, so its derivative is 0 (finite
    differences say so), not the polynomial's."""
    polynomial = assert_jacobian_matches_finite_differences((Range(1, "r_e", 1.0, 3.5),))
    assert float(polynomial[2]) > 3.5  # the i band's polynomial value lies beyond the bound


def test_bad_inputs_are_named():
    model = Model([Component("sersic", dict(x=10, y=10, mag=18, r_e=3, n=2, q=0.7, pa=0))])
    with pytest.raises(ModelError, match="2 per-band arrays given for 3 bands"):
        fit_bands(model, [np.zeros((20, 20))] * 2, bands=GRI)
    with pytest.raises(ModelError, match="differ in shape"):
        fit_bands(model, [np.zeros((20, 20)), np.zeros((20, 20)), np.zeros((22, 20))], bands=GRI)
    with pytest.raises(ModelError, match="terms must be a whole number from 0"):
        fit_bands(model, np.zeros((1, 3, 20, 20)), bands=GRI, terms={(1, "r_e"): 4})
    with pytest.raises(ModelError, match="component 2 does not exist"):
        fit_bands(model, np.zeros((1, 3, 20, 20)), bands=GRI, terms={(2, "r_e"): 1})


def test_per_galaxy_constraint_numbers_hold_in_every_band():
    """A Range with one pair of numbers per galaxy applies to that galaxy in every band:
    galaxy 0's range excludes its true R_e (the fit ends on the range's edge, flagged),
    galaxy 1's contains it."""
    truth, mags = truths(2, seed=31)
    r_e = np.repeat(truth["r_e"][:, None], 3, axis=1)
    images, sigmas = simulate(truth, mags, r_e, seed=32)
    low = (truth["r_e"][0] * 1.3, truth["r_e"][1] * 0.5)
    high = (truth["r_e"][0] * 1.6, truth["r_e"][1] * 2.0)
    start = offset_start(truth, mags)
    start["r_e"] = np.array([truth["r_e"][0] * 1.45, truth["r_e"][1] * 1.3])
    model = Model([Component("sersic", start)], (Range(1, "r_e", low, high),))
    result = fit(model, images, bands=GRI, sigma=sigmas, psf=[epsf(f) for f in FWHM], zeropoint=ZP)
    fitted = result.value(1, "r_e")
    assert np.all(fitted[0] >= low[0] - 1e-9) and np.all(fitted[0] <= high[0] + 1e-9)
    assert fitted[0, 0] == pytest.approx(low[0], rel=1e-3) and result.status[0] == "hit a bound: 1_r_e"
    assert abs(fitted[1, 0] - truth["r_e"][1]) < 4 * result.error(1, "r_e")[1, 0]


def test_errors_follow_the_reported_axes_when_the_fit_ends_with_q_above_one():
    """A fit started with the axes swapped (q > 1, R_e along the minor axis, PA + 90) ends
    on the same ellipse with q > 1; the values are reported with q <= 1 and their errors
    must be those of the reported values (the same as a fit that ended with q < 1): sigma_q
    of 1/q is sigma_q / q^2, R_e q's needs q's error too."""
    truth, mags = truths(1, seed=41)
    images, sigmas = simulate(truth, mags, np.repeat(truth["r_e"][:, None], 3, axis=1), seed=42)
    psfs = [epsf(f) for f in FWHM]
    usual = dict(x=truth["x"], y=truth["y"], mag=mags, r_e=truth["r_e"], n=truth["n"], q=truth["q"],
                 pa=truth["pa"])
    swapped = dict(usual, r_e=truth["r_e"] * truth["q"], q=1.0 / truth["q"], pa=truth["pa"] + 90.0)
    results = [fit_bands(Model([Component("sersic", start)]), images, bands=GRI, sigma=sigmas, psf=psfs,
                         zeropoint=ZP) for start in (usual, swapped)]
    assert [list(r.status) for r in results] == [["converged"]] * 2
    for name in ("r_e", "q", "pa", "n", "mag"):
        np.testing.assert_allclose(results[1].value(1, name), results[0].value(1, name), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(results[1].error(1, name), results[0].error(1, name), rtol=0.02)


def test_a_model_with_nothing_free_is_evaluated_not_fitted():
    """Every parameter fixed: no coefficients; chi^2 of the given model in every band (as
    numpy computes it from the GalSim images), no iterations, errors 0."""
    truth, mags = truths(1, seed=51)
    images, sigmas = simulate(truth, mags, np.repeat(truth["r_e"][:, None], 3, axis=1), seed=52)
    values = dict(x=truth["x"], y=truth["y"], mag=mags, r_e=truth["r_e"], n=truth["n"], q=truth["q"],
                  pa=truth["pa"])
    model = Model([Component("sersic", values, fixed=frozenset(values))])
    result = fit_bands(model, images, bands=GRI, sigma=sigmas, psf=[epsf(f) for f in FWHM], zeropoint=ZP)
    assert list(result.status) == ["converged"] and result.iterations[0] == 0
    np.testing.assert_array_equal(result.errors, 0.0)
    expected = (((images - result.model_images) / sigmas) ** 2).sum((-1, -2))
    np.testing.assert_allclose(result.chi2_band, expected, rtol=1e-6)
    assert np.all(np.abs(result.chi2_nu - 1.0) < 0.15)  # the GalSim truth fits the GalSim images
