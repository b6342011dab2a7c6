"""PSF-convolved Sérsic images against GalSim (Sérsic ⊗ Moffat ⊗ pixel), and PSF validation.

The ePSF is a GalSim Moffat drawn with its pixel response (``method='auto'``, tight
GSParams) into a stamp large enough that truncation does not matter: 51 x 51 for
beta = 4.5, 75 x 75 for beta = 3 (a 51 x 51 stamp misses 6e-5 (FWHM 2.5) to 1.2e-4
(FWHM 3) of a beta = 3 Moffat's flux, which the unit-sum ePSF puts back into the core,
so galprof's image sum then exceeds GalSim's by up to 2e-4). The reference is the same Sérsic convolved with
the same Moffat and the pixel by GalSim's FFT with tight GSParams (converged to ~1e-7
of the peak). Tolerances: every pixel within 1.2e-3 of the peak and the image sum within
1e-4 of GalSim's sum over the same frame.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
import torch

from galprof.profiles import get_profile
from galprof.render.config import RenderConfig
from galprof.render.psf import PSFError, prepare_psf
from galprof.render.scene import Frame, RenderError, render_model
from references import (FFT_GSPARAMS, galsim_moffat, galsim_moffat_image, galsim_sersic_image,
                        galsim_sersic_moffat_image, moffat_epsf, moffat_oversampled, render_sersic)

pytestmark = pytest.mark.usefixtures("float64")

PIXEL_TOL = 1.2e-3  # of the peak
FLUX_TOL = 1e-4  # relative
STAMP = {3.0: 75, 4.5: 51}  # by beta
FRAME = Frame(x_min=1, y_min=1, width=40, height=38)
PSFS = [(3.0, 2.5), (4.5, 2.5), (3.0, 3.0), (4.5, 3.0)]  # (beta, FWHM [pix])


@functools.lru_cache(maxsize=None)
def _psf(beta, fwhm, size=None):
    return prepare_psf(moffat_epsf(beta, fwhm, size or STAMP.get(beta, 75)))


def _case(n, r_e, q, seed):
    rng = np.random.default_rng(1000 + seed)
    return dict(x0=20.0 + float(rng.uniform(-0.5, 0.5)), y0=19.0 + float(rng.uniform(-0.5, 0.5)), flux=1.0,
                r_e=r_e, n=n, q=q, pa=float(rng.uniform(-90.0, 90.0)))


def _errors(params, beta, fwhm, frame=FRAME, psf=None, config=None, extra_pixel=False):
    """(max |galprof - GalSim| / peak, |sum ratio - 1|) for one Sérsic."""
    reference = galsim_sersic_moffat_image(frame, beta=beta, fwhm=fwhm, extra_pixel=extra_pixel, **params)
    got = render_sersic(frame, x0=params["x0"], y0=params["y0"], mag=-2.5 * math.log10(params["flux"]),
                        r_e=params["r_e"], n=params["n"], q=params["q"], pa=params["pa"],
                        psf=psf or _psf(beta, fwhm), config=config)
    return np.abs(got - reference).max() / reference.max(), abs(got.sum() / reference.sum() - 1.0)


def _check(params, beta, fwhm, **kw):
    pixel_err, flux_err = _errors(params, beta, fwhm, **kw)
    assert pixel_err < PIXEL_TOL, f"max |galprof - GalSim| = {pixel_err:.2e} of the peak (beta={beta}, fwhm={fwhm}, {params})"
    assert flux_err < FLUX_TOL, f"flux error {flux_err:.2e} (beta={beta}, fwhm={fwhm}, {params})"


# ----------------------------------------------------------------------------- accuracy grid

GRID = list(itertools.product(PSFS, (0.5, 1.0, 2.5, 4.0, 6.0), (1.5, 3.0, 8.0), (0.3, 1.0)))
FAST = [((3.0, 3.0), 1.0, 3.0, 0.3), ((4.5, 3.0), 4.0, 8.0, 1.0), ((4.5, 2.5), 2.5, 3.0, 1.0),
        ((3.0, 2.5), 0.5, 8.0, 0.3)]

# Cases measured above PIXEL_TOL with the renderer as of this writing (max |error| / peak);
# the error is that of the Lanczos-interpolated ePSF at sub-pixel offsets (an ePSF of
# FWHM 2.5 px is undersampled; a point source alone is off by 1.4e-3 - 2.5e-3 there).
KNOWN_ABOVE_TOL: dict[tuple, float] = {
    ((3.0, 2.5), 0.5, 1.5, 0.3): 1.69e-03,
    ((4.5, 2.5), 0.5, 1.5, 0.3): 1.47e-03,
}


def _grid_param(case):
    marks = []
    if case in KNOWN_ABOVE_TOL:
        marks.append(pytest.mark.xfail(strict=True, reason=f"measured {KNOWN_ABOVE_TOL[case]:.2e} of the peak > 1.2e-3"))
    (beta, fwhm), n, r_e, q = case
    return pytest.param(beta, fwhm, n, r_e, q, GRID.index(case), marks=marks, id=f"b{beta:g}-f{fwhm:g}-n{n:g}-re{r_e:g}-q{q:g}")


@pytest.mark.parametrize("beta, fwhm, n, r_e, q, seed", [_grid_param(c) for c in FAST])
def test_matches_galsim_fast(beta, fwhm, n, r_e, q, seed):
    _check(_case(n, r_e, q, seed), beta, fwhm)


@pytest.mark.slow
@pytest.mark.parametrize("beta, fwhm, n, r_e, q, seed", [_grid_param(c) for c in GRID if c not in FAST])
def test_matches_galsim_grid(beta, fwhm, n, r_e, q, seed):
    _check(_case(n, r_e, q, seed), beta, fwhm)


@pytest.mark.parametrize("x0, y0", [(20.0, 19.0), (20.5, 19.5), (20.5, 19.0)], ids=["centre", "corner", "edge"])
def test_pixel_centre_and_corner_positions(x0, y0):
    _check(dict(x0=x0, y0=y0, flux=1.0, r_e=2.0, n=2.0, q=0.5, pa=33.0), 3.5, 2.8)


@pytest.mark.parametrize("beta", [3.0, 4.5])
def test_light_scattered_in_from_outside_the_frame(beta):
    """A large galaxy centred outside the frame: pixels near the edge get light from outside."""
    params = dict(x0=-6.3, y0=15.2, flux=5.0, r_e=20.0, n=1.0, q=0.5, pa=-20.0)
    _check(params, beta, 2.5)
    # and a galaxy centred just outside the frame (the fine grid straddles the edge)
    _check(dict(x0=-0.4, y0=40.2, flux=1.0, r_e=3.0, n=2.0, q=0.6, pa=40.0), beta, 3.0)


@pytest.mark.parametrize("beta, fwhm", PSFS)
def test_flux_of_a_galaxy_inside_a_large_frame(beta, fwhm):
    """Sum over a 101 x 101 frame: vs GalSim's sum and vs the magnitude's flux."""
    frame = Frame(x_min=1, y_min=1, width=101, height=101)
    params = dict(x0=51.3, y0=50.8, flux=2.0, r_e=2.5, n=1.5, q=0.5, pa=12.0)
    pixel_err, flux_err = _errors(params, beta, fwhm, frame=frame)
    assert flux_err < FLUX_TOL
    got = render_sersic(frame, x0=51.3, y0=50.8, mag=-2.5 * math.log10(2.0), r_e=2.5, n=1.5, q=0.5, pa=12.0,
                        psf=_psf(beta, fwhm))
    assert abs(got.sum() / 2.0 - 1.0) < FLUX_TOL


# ----------------------------------------------------------------------------- PSF stamps

def test_even_stamp_centring():
    """GalSim centres even images between pixels; offset=(0.5, 0.5) puts the peak on N // 2.

    galprof's PSF centre is the pixel with 0-based index N // 2 (GALFIT's convention).
    """
    n = 24
    galsim_default = moffat_epsf(4.5, 2.5, n, centre_even=False)
    # GalSim's true centre of an even image: between 0-based pixels N/2 - 1 and N/2
    np.testing.assert_allclose(galsim_default, galsim_default[::-1, ::-1], rtol=0, atol=1e-12)
    centred = moffat_epsf(4.5, 2.5, n)
    assert np.unravel_index(np.argmax(centred), centred.shape) == (n // 2, n // 2)
    # symmetric about index N // 2: stamp[N//2 + k] == stamp[N//2 - k] for k = 1 .. N//2 - 1
    inner = centred[1:, 1:]
    np.testing.assert_allclose(inner, inner[::-1, ::-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(inner, inner.T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [24, 25])
@pytest.mark.parametrize("fwhm", [2.5, 3.0])
def test_small_odd_and_even_stamps(size, fwhm):
    """A 24 x 24 (even) and a 25 x 25 (odd) ePSF (beta = 4.5, so truncation is negligible)."""
    psf = prepare_psf(moffat_epsf(4.5, fwhm, size))
    assert tuple(psf.image.shape) == (size, size)
    _check(dict(x0=20.3, y0=18.8, flux=1.0, r_e=2.5, n=1.5, q=0.6, pa=-40.0), 4.5, fwhm, psf=psf)


def test_even_stamp_with_galsim_centring_is_shifted():
    """Negative control: an even stamp left as GalSim centres it shifts the model by half a pixel."""
    params = dict(x0=20.0, y0=19.0, r_e=2.0, n=1.0, q=1.0, pa=0.0)
    ys, xs = np.mgrid[1:FRAME.height + 1, 1:FRAME.width + 1]
    for stamp, expected in ((moffat_epsf(4.5, 2.5, 24), 0.0), (moffat_epsf(4.5, 2.5, 24, centre_even=False), -0.5)):
        image = render_sersic(FRAME, psf=prepare_psf(stamp), **params)
        cx, cy = (image * xs).sum() / image.sum(), (image * ys).sum() / image.sum()
        assert abs(cx - 20.0 - expected) < 2e-3 and abs(cy - 19.0 - expected) < 2e-3, (cx, cy)


def _oversampled_vs_pixel_scale(fine, beta, fwhm, size, factor):
    binned = prepare_psf(fine, oversampling=factor)
    assert tuple(binned.image.shape) == (size, size)
    pixel_scale = prepare_psf(moffat_epsf(beta, fwhm, size))
    frame = Frame(x_min=1, y_min=1, width=36, height=34)
    kw = dict(x0=18.4, y0=16.7, r_e=2.0, n=2.0, q=0.5, pa=25.0)
    a = render_sersic(frame, psf=binned, **kw)
    b = render_sersic(frame, psf=pixel_scale, **kw)
    return np.abs(a - b).max() / b.max()


_MIDPOINT = ("binning point samples (no pixel) with a 3-sample box is a midpoint rule for the pixel "
             "integral; the binned ePSF itself is off by {} of its peak")


@pytest.mark.parametrize("beta, fwhm", [
    pytest.param(3.0, 2.5, marks=pytest.mark.xfail(strict=True, reason="measured 4.2e-3: " + _MIDPOINT.format("8.2e-3"))),
    pytest.param(4.5, 3.0, marks=pytest.mark.xfail(strict=True, reason="measured 3.3e-3: " + _MIDPOINT.format("5.8e-3"))),
])
def test_oversampled_psf_point_samples(beta, fwhm):
    """A PSF sampled 3x finer *without* the pixel (``method='no_pixel'``), binned by galprof,
    gives the same model as the pixel-scale ePSF within 1e-3 of the peak."""
    size, factor = 25, 3
    assert _oversampled_vs_pixel_scale(moffat_oversampled(beta, fwhm, size, factor), beta, fwhm, size, factor) < 1e-3


@pytest.mark.parametrize("beta, fwhm", [(3.0, 2.5), (4.5, 3.0)])
def test_oversampled_psf_with_fine_pixel(beta, fwhm):
    """A 3x oversampled PSF that includes the *fine* pixel response (GalSim ``method='auto'``
    at scale 1/3): the 3-sample box sum is then exactly the data-pixel response (measured
    1.8e-5 of the peak, GalSim's drawing accuracy)."""
    size, factor = 25, 3
    fine = galsim_moffat(beta, fwhm, FFT_GSPARAMS).drawImage(nx=size * factor, ny=size * factor, scale=1.0 / factor,
                                                              dtype=np.float64).array
    assert _oversampled_vs_pixel_scale(fine, beta, fwhm, size, factor) < 1e-4


LEGACY_CASES = [(0.5, 1.5, 0.3), (1.0, 3.0, 0.5), (4.0, 1.5, 0.3), (2.5, 3.0, 0.5)]


@pytest.mark.parametrize("beta, fwhm", [(3.0, 2.5), (4.5, 3.0)])
@pytest.mark.parametrize("n, r_e, q", LEGACY_CASES)
def test_legacy_matches_discrete_convolution(beta, fwhm, n, r_e, q):
    """``legacy_pixel_integration`` is GALFIT's computation: pixel integrals (GalSim
    real-space, on the frame padded by the PSF half-size) discretely convolved with the
    ePSF stamp (scipy). Measured within 3.2e-6 of the peak."""
    from scipy import signal

    pad = STAMP[beta] // 2
    padded = Frame(x_min=FRAME.x_min - pad, y_min=FRAME.y_min - pad, width=FRAME.width + 2 * pad,
                   height=FRAME.height + 2 * pad)
    params = dict(x0=20.3, y0=18.6, flux=1.0, r_e=r_e, n=n, q=q, pa=50.0)
    stamp = moffat_epsf(beta, fwhm, STAMP[beta])
    pixels = galsim_sersic_image(padded, **params)
    full = signal.fftconvolve(pixels, stamp / stamp.sum(), mode="same")
    reference = full[pad:pad + FRAME.height, pad:pad + FRAME.width]
    got = render_sersic(FRAME, x0=20.3, y0=18.6, r_e=r_e, n=n, q=q, pa=50.0, psf=_psf(beta, fwhm),
                        config=RenderConfig(legacy_pixel_integration=True))
    assert np.abs(got - reference).max() < 1e-4 * reference.max()


def _legacy_param(n, r_e, q, measured):
    marks = []
    if measured:
        marks.append(pytest.mark.xfail(strict=True, reason=(
            f"measured {measured} of the peak: the discrete convolution of the undersampled pixel integrals "
            "of a cuspy profile is not the continuous double-pixel convolution (galprof equals the exact "
            "discrete computation, see test_legacy_matches_discrete_convolution)")))
    return pytest.param(n, r_e, q, marks=marks)


@pytest.mark.parametrize("beta, fwhm", [(3.0, 2.5), (4.5, 3.0)])
@pytest.mark.parametrize("n, r_e, q", [
    _legacy_param(0.5, 1.5, 0.3, None),
    _legacy_param(1.0, 3.0, 0.5, None),
    _legacy_param(4.0, 1.5, 0.3, "4.3e-2 (beta 4.5, FWHM 3) to 5.3e-2 (beta 3, FWHM 2.5)"),
    _legacy_param(2.5, 3.0, 0.5, "1.3e-2 (beta 4.5, FWHM 3) to 1.7e-2 (beta 3, FWHM 2.5)"),
])
def test_legacy_pixel_integration_is_double_pixel(beta, fwhm, n, r_e, q):
    """GALFIT-style pixel integration then ePSF convolution ~ galaxy ⊗ Moffat ⊗ pixel ⊗ pixel
    within 2e-3 of the peak (which holds for smooth profiles only)."""
    params = dict(x0=20.3, y0=18.6, flux=1.0, r_e=r_e, n=n, q=q, pa=50.0)
    pixel_err, flux_err = _errors(params, beta, fwhm, config=RenderConfig(legacy_pixel_integration=True),
                                  extra_pixel=True)
    assert flux_err < FLUX_TOL
    assert pixel_err < 2e-3


def test_point_source_at_integer_position_is_the_stamp():
    frame = Frame(x_min=1, y_min=1, width=40, height=38)
    psf = _psf(3.0, 2.5)
    params = {"x": torch.tensor([17.0]), "y": torch.tensor([22.0]), "mag": torch.tensor([-1.0])}
    got = render_model([(get_profile("psf"), params)], frame, psf=psf)[0].numpy()
    # exactly the (unit-sum) stamp, its centre (index N // 2) on pixel (17, 22)
    stamp = psf.image.numpy() * 10 ** 0.4
    c = stamp.shape[0] // 2
    rows, cols = np.arange(frame.height) - (22 - 1) + c, np.arange(frame.width) - (17 - 1) + c
    np.testing.assert_allclose(got, stamp[np.ix_(rows, cols)], rtol=1e-10, atol=1e-14 * stamp.max())
    # and GalSim's Moffat there (the stamp's truncated tail, 1.2e-5 of the flux, aside)
    reference = galsim_moffat_image(frame, x0=17.0, y0=22.0, flux=10 ** 0.4, beta=3.0, fwhm=2.5)
    assert np.abs(got - reference).max() < 3e-5 * reference.max()


@pytest.mark.parametrize("x0, y0", [(17.5, 22.5), (17.2, 21.7)])
def test_point_source_at_subpixel_position(x0, y0):
    """Lanczos interpolation of a FWHM = 3 px ePSF: within 1.2e-3 of the peak of GalSim."""
    frame = Frame(x_min=1, y_min=1, width=40, height=38)
    params = {"x": torch.tensor([x0]), "y": torch.tensor([y0]), "mag": torch.tensor([0.0])}
    for beta in (3.0, 4.5):
        got = render_model([(get_profile("psf"), params)], frame, psf=_psf(beta, 3.0))[0].numpy()
        reference = galsim_moffat_image(frame, x0=x0, y0=y0, flux=1.0, beta=beta, fwhm=3.0)
        assert np.abs(got - reference).max() < PIXEL_TOL * reference.max()


# ----------------------------------------------------------------------------- validation

def test_psf_validation_errors():
    good = moffat_epsf(3.0, 2.5, 11)
    with_nan = good.copy()
    with_nan[3, 4] = np.nan
    with pytest.raises(PSFError, match="NaN"):
        prepare_psf(with_nan)
    with_inf = good.copy()
    with_inf[0, 0] = np.inf
    with pytest.raises(PSFError, match="infinite"):
        prepare_psf(with_inf)
    with pytest.raises(PSFError, match="positive sum"):
        prepare_psf(np.zeros((9, 9)))
    with pytest.raises(PSFError, match="positive sum"):
        prepare_psf(-good)
    with pytest.raises(PSFError, match="2-D"):
        prepare_psf(good[0])
    with pytest.raises(PSFError, match="2-D"):
        prepare_psf(good[None])
    with pytest.raises(PSFError, match="larger than"):
        prepare_psf(good, max_shape=(5, 5))
    with pytest.raises(PSFError, match="larger than"):
        prepare_psf(np.ones((5, 7)), max_shape=(5, 5))
    with pytest.raises(PSFError, match="oversampling"):
        prepare_psf(good, oversampling=0)
    with pytest.raises(PSFError, match="oversampling"):
        prepare_psf(good, oversampling=1.5)
    # the message names the source
    with pytest.raises(PSFError, match="psf.fits"):
        prepare_psf(with_nan, source="psf.fits")
    assert isinstance(PSFError("x"), ValueError)
    # a valid PSF is normalised to unit sum, at most the allowed size passes
    prepared = prepare_psf(good * 7.0, max_shape=(11, 11))
    assert abs(prepared.image.sum().item() - 1.0) < 1e-14


def test_point_source_without_psf_raises():
    params = {"x": torch.tensor([5.0]), "y": torch.tensor([5.0]), "mag": torch.tensor([0.0])}
    with pytest.raises(RenderError, match="PSF"):
        render_model([(get_profile("psf"), params)], Frame(x_min=1, y_min=1, width=10, height=10))


def test_convolution_box_convolves_only_inside():
    """GALFIT's line I: inside a box centred on the region the model is PSF-convolved,
    outside it is the unconvolved model; a box as large as the region changes nothing."""
    params = {k: torch.tensor([v], dtype=torch.float64)
              for k, v in dict(x=20.3, y=19.6, mag=18.0, r_e=4.0, n=1.5, q=0.7, pa=30.0).items()}
    sersic = get_profile("sersic")
    psf = _psf(3.5, 3.0)
    frame = Frame(1, 1, 40, 40, zeropoint=25.0)
    full = render_model([(sersic, params)], frame, psf=psf)[0].numpy()
    same = render_model([(sersic, params)], Frame(1, 1, 40, 40, 25.0, 1.0, (40, 40)), psf=psf)[0].numpy()
    np.testing.assert_array_equal(full, same)
    boxed = render_model([(sersic, params)], Frame(1, 1, 40, 40, 25.0, 1.0, (10, 16)), psf=psf)[0].numpy()
    unconvolved = render_model([(sersic, params)], frame, psf=prepare_psf(np.array([[1.0]])))[0].numpy()
    xs = np.arange(1, 41) - 20.5
    inside = (np.abs(xs)[None, :] <= 5) & (np.abs(xs)[:, None] <= 8)
    np.testing.assert_allclose(boxed[inside], full[inside], rtol=1e-12, atol=0)
    # outside: the unconvolved profile (a delta-function PSF), not the convolved one
    np.testing.assert_allclose(boxed[~inside], unconvolved[~inside], rtol=1e-6, atol=1e-9 * full.max())
    assert np.abs(boxed[~inside] - full[~inside]).max() > 1e-3 * full.max()
