"""Automatic initial values and masks from a sep (SExtractor) detection.

The truth is the simulation: Sersic galaxies rendered here with numpy (oversampled
pixels, a finely oversampled core, the analytic total flux), blurred by a Gaussian PSF
in Fourier space, on a flat sky with Gaussian noise of a fixed seed. The values are
initial guesses for a fit, so the tolerances are those of a good starting point, not of
a measurement: centre 0.2 px, PA 5 deg, q 0.1, mag 0.3, r_e 30 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("sep")

from galprof.pipeline.autoinit import (
    AutoInit,
    AutoInitError,
    _dilate,
    _wrap_pa,
    auto_initial,
    mask_from_segmentation,
)

ZP = 25.0
SKY = 100.0
NOISE = 2.0
FWHM = 2.5


# --------------------------------------------------------------------------- simulation


def _b_n(n):
    return 2 * n - 1 / 3 + 4 / (405 * n) + 46 / (25515 * n * n)


def _sersic_at(xs, ys, x0, y0, flux, r_e, n, q, pa):
    """Surface brightness at 1-based (xs[None, :], ys[:, None]), GALFIT geometry."""
    dx = xs[None, :] - x0
    dy = ys[:, None] - y0
    t = math.radians(pa)
    u = -dx * math.sin(t) + dy * math.cos(t)
    v = -dx * math.cos(t) - dy * math.sin(t)
    r = np.sqrt(u * u + (v / q) ** 2)
    b = _b_n(n)
    i_e = flux / (2 * math.pi * n * q * r_e**2 * math.exp(b) * b ** (-2 * n) * math.gamma(2 * n))
    return i_e * np.exp(-b * ((r / r_e) ** (1 / n) - 1))


def _render(i0, i1, j0, j1, os, *params):
    off = (np.arange(os) + 0.5) / os - 0.5
    xs = (np.arange(i0, i1)[:, None] + 1 + off[None, :]).ravel()
    ys = (np.arange(j0, j1)[:, None] + 1 + off[None, :]).ravel()
    return _sersic_at(xs, ys, *params).reshape(j1 - j0, os, i1 - i0, os).mean(axis=(1, 3))


def sersic_image(shape, x0, y0, flux, r_e, n, q, pa):
    """Pixel-integrated Sersic (5x5 sub-pixels, 60x60 in the 7x7 pixels of the core)."""
    ny, nx = shape
    img = _render(0, nx, 0, ny, 5, x0, y0, flux, r_e, n, q, pa)
    ic, jc = round(x0 - 1), round(y0 - 1)
    i0, i1 = max(ic - 3, 0), min(ic + 4, nx)
    j0, j1 = max(jc - 3, 0), min(jc + 4, ny)
    if i0 < i1 and j0 < j1:
        img[j0:j1, i0:i1] = _render(i0, i1, j0, j1, 60, x0, y0, flux, r_e, n, q, pa)
    return img


def gaussian_blur(img, fwhm):
    sig = fwhm / (2 * math.sqrt(2 * math.log(2)))
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.rfftfreq(img.shape[1])[None, :]
    kernel = np.exp(-2 * math.pi**2 * sig**2 * (fx**2 + fy**2))
    return np.fft.irfft2(np.fft.rfft2(img) * kernel, s=img.shape)


def observe(shape, galaxies, seed):
    """Sum of PSF-blurred Sersics + SKY + N(0, NOISE) noise."""
    light = np.zeros(shape)
    for g in galaxies:
        light += sersic_image(shape, *g)
    rng = np.random.default_rng(seed)
    return gaussian_blur(light, FWHM) + SKY + rng.normal(0.0, NOISE, shape)


def mag_of(flux, zp=ZP, exptime=1.0):
    return zp - 2.5 * math.log10(flux / exptime)


def _pa_diff(a, b):
    d = (a - b) % 180.0
    return min(d, 180.0 - d)


# ----------------------------------------------------------------- 1. single galaxies


@pytest.mark.parametrize("n", [1.0, 4.0])
@pytest.mark.parametrize("pa", [30.0, -60.0, 80.0])
def test_single_sersic_recovered(n, pa):
    x0, y0, flux, r_e, q = 64.3, 65.7, 5e4, 6.0, 0.5
    img = observe((128, 128), [(x0, y0, flux, r_e, n, q, pa)], seed=11)
    res = auto_initial(img, zeropoint=ZP)
    assert isinstance(res, AutoInit)
    v = res.values
    assert set(v) == {"x", "y", "mag", "r_e", "q", "pa", "sky"}
    assert all(isinstance(val, float) for val in v.values())
    assert res.n_sources == 1 and res.target_label >= 1
    assert abs(v["x"] - x0) < 0.2 and abs(v["y"] - y0) < 0.2  # 1-based, x along axis -1
    # GALFIT's PA: signed and in (-90, 90], so a sign or 90-degree slip fails here
    assert -90.0 < v["pa"] <= 90.0
    assert _pa_diff(v["pa"], pa) < 5.0
    assert abs(v["q"] - q) < 0.1
    assert abs(v["mag"] - mag_of(flux)) < 0.3
    assert abs(v["r_e"] / r_e - 1.0) < 0.3  # initial guess: PSF and Kron wings not corrected
    assert abs(v["sky"] - SKY) < 0.5
    assert res.mask.dtype == bool and res.mask.shape == img.shape
    assert not res.mask.any()  # nothing else in the field
    assert res.segmentation.shape == img.shape
    assert res.segmentation[round(y0 - 1), round(x0 - 1)] == res.target_label


def test_exptime_zeropoint_and_sigma_image():
    x0, y0, flux = 40.6, 38.2, 3e4
    img = observe((80, 80), [(x0, y0, flux, 4.0, 1.0, 0.7, -20.0)], seed=3)
    base = auto_initial(img, zeropoint=ZP)
    scaled = auto_initial(img, zeropoint=ZP, exptime=10.0)
    assert scaled.values["mag"] == pytest.approx(base.values["mag"] + 2.5, abs=1e-9)
    with_sigma = auto_initial(img, sigma=np.full(img.shape, NOISE), zeropoint=ZP)
    assert abs(with_sigma.values["x"] - x0) < 0.2 and abs(with_sigma.values["y"] - y0) < 0.2
    assert abs(with_sigma.values["mag"] - mag_of(flux)) < 0.3


def test_small_stamp():
    """Background boxes are sized from the image: a 31 x 25 stamp works."""
    x0, y0, flux = 16.4, 12.8, 8e3
    img = observe((25, 31), [(x0, y0, flux, 2.0, 1.0, 0.8, 10.0)], seed=5)
    v = auto_initial(img, zeropoint=ZP).values
    assert abs(v["x"] - x0) < 0.2 and abs(v["y"] - y0) < 0.2
    assert abs(v["mag"] - mag_of(flux)) < 0.3
    # FITS data come big-endian and float32: converted for sep
    v_be = auto_initial(img.astype(">f4"), zeropoint=ZP).values
    assert v_be["x"] == pytest.approx(v["x"], abs=1e-3) and v_be["y"] == pytest.approx(v["y"], abs=1e-3)


def test_wrap_pa():
    assert _wrap_pa(-90.0) == 90.0
    assert _wrap_pa(90.0) == 90.0
    assert _wrap_pa(-180.0) == 0.0
    assert _wrap_pa(120.0) == pytest.approx(-60.0)
    assert _wrap_pa(-100.0) == pytest.approx(80.0)


# ------------------------------------------------------------- 2. a field with neighbours

TARGET = (80.4, 79.6, 6e4, 7.0, 1.0, 0.6, 40.0)
NEIGHBOURS = [
    (25.0, 30.0, 1.5e4, 2.5, 1.0, 0.8, 0.0),
    (135.0, 140.0, 2e4, 3.0, 1.0, 0.7, -30.0),
    (97.0, 72.0, 8e3, 2.0, 1.0, 0.9, 0.0),  # on the target's outskirts
]


@pytest.fixture(scope="module")
def field():
    return observe((160, 160), [TARGET, *NEIGHBOURS], seed=21)


def _pix(x, y):
    """numpy index of the pixel holding 1-based (x, y)."""
    return round(y - 1), round(x - 1)


def test_field_mask_others(field):
    res = auto_initial(field, zeropoint=ZP, mask_mode="others", dilate=2)
    v = res.values
    assert res.n_sources == 4
    assert abs(v["x"] - TARGET[0]) < 0.2 and abs(v["y"] - TARGET[1]) < 0.2
    assert abs(v["mag"] - mag_of(TARGET[2])) < 0.3
    assert _pa_diff(v["pa"], TARGET[6]) < 5.0
    assert not res.mask[_pix(*TARGET[:2])]
    for nb in NEIGHBOURS:
        assert res.mask[_pix(*nb[:2])], nb
        assert res.segmentation[_pix(*nb[:2])] not in (0, res.target_label)
    seg = res.segmentation
    assert not res.mask[seg == res.target_label].any()  # never a target pixel
    assert res.mask[(seg != 0) & (seg != res.target_label)].all()
    assert not res.mask[_dilate(seg != 0, 2) == 0].any()  # empty sky stays in the fit
    # dilation by 2 px, checked by brute force: a non-target pixel is masked exactly when
    # it lies within Chebyshev distance 2 of another source's segment
    jo, io = np.nonzero((seg != 0) & (seg != res.target_label))
    jj, ii = np.mgrid[: seg.shape[0], : seg.shape[1]]
    dist = np.full(seg.shape, np.inf)
    for j, i in zip(jo, io):
        np.minimum(dist, np.maximum(abs(jj - j), abs(ii - i)), out=dist)
    expected = (dist <= 2) & (seg != res.target_label)
    np.testing.assert_array_equal(res.mask, expected)


def test_field_mask_target(field):
    res = auto_initial(field, zeropoint=ZP, mask_mode="target", dilate=2)
    seg = res.segmentation
    target = seg == res.target_label
    kept = ~res.mask
    assert kept[target].all()
    assert kept.sum() > target.sum()  # the 2-px ring around it
    # every fitted pixel lies within 2 px (Chebyshev) of the target's segment
    assert not (kept & ~_dilate(target, 2)).any()
    for nb in NEIGHBOURS:
        assert res.mask[_pix(*nb[:2])], nb
    assert res.mask[0, 0] and res.mask[-1, -1]  # empty sky far away is masked too


def test_field_mask_none(field):
    img = field.copy()
    img[5:7, 150:153] = np.nan
    res = auto_initial(img, zeropoint=ZP, mask_mode="none")
    np.testing.assert_array_equal(res.mask, np.isnan(img))
    assert res.n_sources == 4


# ---------------------------------------------------------------- 3. bad pixels and NaNs


def test_input_mask_and_nans():
    x0, y0, flux = 50.3, 49.6, 4e4
    clean_img = observe((100, 100), [(x0, y0, flux, 5.0, 1.0, 0.6, 30.0)], seed=8)
    ref = auto_initial(clean_img, zeropoint=ZP).values
    img = clean_img.copy()
    bad = np.zeros(img.shape, bool)
    img[:, 20] = 1e6  # a saturated column, flagged in the input mask
    bad[:, 20] = True
    img[47:50, 53:55] = np.nan  # NaNs on the galaxy, 3-5 px from its centre
    img[90:, 90:] = np.inf
    res = auto_initial(img, mask=bad, zeropoint=ZP)
    assert res.n_sources == 1  # the column is not a source
    assert res.mask[bad].all()
    assert res.mask[~np.isfinite(img)].all()
    assert not res.mask[_pix(x0, y0)]
    v = res.values
    assert abs(v["x"] - x0) < 0.2 and abs(v["y"] - y0) < 0.2
    assert abs(v["mag"] - ref["mag"]) < 0.05  # masked pixels are filled by symmetry
    assert abs(v["mag"] - mag_of(flux)) < 0.3
    assert abs(v["r_e"] / ref["r_e"] - 1) < 0.05


# ------------------------------------------------------------------------- 4. errors


def test_blank_image_has_no_source():
    rng = np.random.default_rng(0)
    img = SKY + rng.normal(0.0, NOISE, (128, 128))
    with pytest.raises(AutoInitError, match="no source"):
        auto_initial(img)


def test_all_nan_and_all_masked():
    with pytest.raises(AutoInitError, match="NaN"):
        auto_initial(np.full((40, 40), np.nan))
    img = np.random.default_rng(1).normal(0.0, 1.0, (40, 40))
    with pytest.raises(AutoInitError, match="masked"):
        auto_initial(img, mask=np.ones(img.shape, bool))
    with pytest.raises(AutoInitError, match="2-D"):
        auto_initial(np.zeros(10))
    with pytest.raises(AutoInitError, match="sigma shape"):
        auto_initial(img, sigma=np.ones((3, 3)))
    with pytest.raises(ValueError, match="mask_mode"):
        auto_initial(img, mask_mode="all")


# ------------------------------------------------------------- 5. user segmentation maps


def _toy_segmentation():
    seg = np.zeros((20, 20), np.int32)
    seg[8:12, 8:12] = 2  # target
    seg[8:12, 12:14] = 5  # touching the target
    seg[1:3, 1:3] = 7
    return seg


def test_mask_from_segmentation_modes():
    seg = _toy_segmentation()
    others = mask_from_segmentation(seg, 2, mode="others", dilate=0)
    np.testing.assert_array_equal(others, (seg == 5) | (seg == 7))
    grown = mask_from_segmentation(seg, 2, mode="others", dilate=1)
    assert not grown[seg == 2].any()  # dilation never reaches into the target
    assert grown[0:4, 0:4].all() and not grown[5, 5]
    assert grown[7, 14] and grown[12, 12] and not grown[7, 10]
    target = mask_from_segmentation(seg, 2, mode="target", dilate=1)
    kept = ~target
    expected = np.zeros_like(kept)
    expected[7:13, 7:13] = True
    expected &= ~grown  # the neighbour's (grown) pixels stay masked in the ring
    np.testing.assert_array_equal(kept, expected)
    none = mask_from_segmentation(seg, 2, mode="none")
    assert none.dtype == bool and not none.any()


def test_mask_from_segmentation_errors():
    seg = _toy_segmentation()
    with pytest.raises(AutoInitError, match="label 3 does not occur"):
        mask_from_segmentation(seg, 3)
    with pytest.raises(AutoInitError, match="background"):
        mask_from_segmentation(seg, 0)
    with pytest.raises(ValueError, match="mode"):
        mask_from_segmentation(seg, 2, mode="everything")
    with pytest.raises(ValueError, match="dilate"):
        mask_from_segmentation(seg, 2, dilate=-1)


def test_mask_from_segmentation_matches_auto_initial(field):
    res = auto_initial(field, zeropoint=ZP, mask_mode="others", dilate=2)
    np.testing.assert_array_equal(
        mask_from_segmentation(res.segmentation, res.target_label, mode="others", dilate=2), res.mask)
