"""Tests of galprof.io.fits_io: images, masks, EXPTIME and the default sigma image."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from astropy.io import fits
from scipy.optimize import brentq
from scipy.stats import truncnorm

from galprof.io import InputError, exposure_time, read_image, read_mask, sigma_from_header, sky_statistics
from galprof.io.fits_io import DEFAULT_GAIN

# ----------------------------------------------------------------------------------------
# read_image
# ----------------------------------------------------------------------------------------


def test_read_primary(tmp_path):
    data = np.arange(12, dtype=np.int16).reshape(3, 4)
    path = tmp_path / "img.fits"
    fits.PrimaryHDU(data, header=fits.Header([("EXPTIME", 100.0)])).writeto(path)
    out, header = read_image(str(path))
    assert out.dtype == np.float64
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out, data)
    assert header["EXPTIME"] == 100.0


def test_read_first_image_extension_when_primary_empty(tmp_path):
    path = tmp_path / "mef.fits"
    a = np.ones((5, 6), dtype=np.float32)
    b = 2 * np.ones((2, 2))
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(a, name="SCI"), fits.ImageHDU(b)]).writeto(path)
    out, header = read_image(str(path))
    np.testing.assert_array_equal(out, a)
    assert header["EXTNAME"] == "SCI"
    out2, _ = read_image(str(path), 2)
    np.testing.assert_array_equal(out2, b)


def test_read_applies_bscale(tmp_path):
    path = tmp_path / "scaled.fits"
    hdu = fits.PrimaryHDU(np.array([[1, 2], [3, 4]], dtype=np.int16))
    hdu.header["BSCALE"] = 2.0
    hdu.header["BZERO"] = 10.0
    hdu.writeto(path)
    out, _ = read_image(str(path))
    np.testing.assert_array_equal(out, [[12, 14], [16, 18]])


def test_read_image_errors(tmp_path):
    with pytest.raises(InputError, match="missing.fits: file not found"):
        read_image(str(tmp_path / "missing.fits"))

    cube = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((2, 3, 4))).writeto(cube)
    with pytest.raises(InputError, match=r"cube.fits.*2-D image.*\(2, 3, 4\)"):
        read_image(str(cube))

    mef = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 2)))]).writeto(mef)
    with pytest.raises(InputError, match=r"mef.fits\[5\]: no such extension \(the file has HDUs 0..1\)"):
        read_image(str(mef), 5)
    with pytest.raises(InputError, match=r"mef.fits\[0\]: extension 0 holds no data"):
        read_image(str(mef), 0)

    table = tmp_path / "table.fits"
    columns = [fits.Column("a", "E", array=[1.0])]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(table)
    with pytest.raises(InputError, match=r"table.fits\[1\]: .*not an image"):
        read_image(str(table), 1)
    with pytest.raises(InputError, match="no HDU holds image data"):
        read_image(str(table))

    text = tmp_path / "notfits.fits"
    text.write_text("hello world\n")
    with pytest.raises(InputError, match="notfits.fits"):
        read_image(str(text))

    with pytest.raises(InputError, match="directory"):
        read_image(str(tmp_path))


# ----------------------------------------------------------------------------------------
# read_mask
# ----------------------------------------------------------------------------------------


def test_ascii_mask(tmp_path):
    path = tmp_path / "mask.txt"
    path.write_text("# bad pixels, 1-based x y\n1 1\n\n4 2   # hot pixel\n  3 3\n2.0 1\n")
    mask = read_mask(str(path), (3, 4))
    expected = np.zeros((3, 4), dtype=bool)
    expected[0, 0] = True  # (x, y) = (1, 1)
    expected[1, 3] = True  # (4, 2)
    expected[2, 2] = True  # (3, 3)
    expected[0, 1] = True  # (2, 1)
    np.testing.assert_array_equal(mask, expected)
    assert mask.dtype == bool


@pytest.mark.parametrize(
    "content, line, fragment",
    [
        ("1 1\n5 1\n", 2, "pixel (5, 1) is outside the image"),
        ("1 1\n0 1\n", 2, "outside the image"),
        ("1 4\n", 1, "outside the image"),
        ("# c\n1 2 3\n", 2, "expected 'x y'"),
        ("1 a\n", 1, "'a' is not a pixel coordinate"),
        ("1.5 2\n", 1, "must be integers"),
    ],
)
def test_ascii_mask_errors(tmp_path, content, line, fragment):
    path = tmp_path / "mask.txt"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        read_mask(str(path), (3, 4))
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert fragment in str(info.value)


def test_fits_mask(tmp_path):
    values = np.zeros((3, 4))
    values[1, 2] = 5
    values[2, 0] = -1
    values[0, 3] = np.nan
    path = tmp_path / "mask.fits"
    fits.PrimaryHDU(values).writeto(path)
    mask = read_mask(str(path), (3, 4))
    expected = np.zeros((3, 4), dtype=bool)
    expected[1, 2] = expected[2, 0] = expected[0, 3] = True
    np.testing.assert_array_equal(mask, expected)


def test_fits_mask_detected_by_content(tmp_path):
    path = tmp_path / "mask_without_suffix"
    fits.PrimaryHDU(np.eye(3, dtype=np.int16)).writeto(path, output_verify="ignore")
    np.testing.assert_array_equal(read_mask(str(path), (3, 3)), np.eye(3, dtype=bool))


def test_fits_mask_shape_mismatch(tmp_path):
    path = tmp_path / "mask.fits"
    fits.PrimaryHDU(np.zeros((5, 6))).writeto(path)
    with pytest.raises(InputError) as info:
        read_mask(str(path), (3, 4))
    message = str(info.value)
    assert str(path) in message and "(5, 6)" in message and "(3, 4)" in message


def test_mask_missing(tmp_path):
    with pytest.raises(InputError, match="mask file not found"):
        read_mask(str(tmp_path / "nope.txt"), (3, 3))


# ----------------------------------------------------------------------------------------
# EXPTIME
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cards, expected",
    [
        ({"EXPTIME": 300.0}, 300.0),
        ({}, 1.0),
        ({"EXPTIME": 0.0}, 1.0),
        ({"EXPTIME": -5.0}, 1.0),
        ({"EXPTIME": "abc"}, 1.0),
    ],
)
def test_exposure_time(cards, expected):
    assert exposure_time(fits.Header(list(cards.items()))) == expected


def test_exposure_time_none_header():
    assert exposure_time(None) == 1.0


# ----------------------------------------------------------------------------------------
# sigma image
# ----------------------------------------------------------------------------------------


def checkerboard(sky=10.0, d=2.0, n=20):
    """Sky of exactly sky +- d in a checkerboard, with a 2x2 block of 1000 ADU."""
    j, i = np.indices((n, n))
    data = np.where((i + j) % 2 == 0, sky - d, sky + d).astype(float)
    data[5:7, 5:7] = 1000.0
    return data


def unclipped(rms, limit):
    """sigma of the normal whose part within +-limit has standard deviation rms (scipy's truncnorm):
    what the sigma recipe reports as sky_rms for kept pixels of RMS ``rms`` clipped at ``limit``."""
    return brentq(lambda s: truncnorm(-limit / s, limit / s, scale=s).std() - rms, rms, 3 * rms)


#: the checkerboard's sky RMS as the sigma recipe reports it (kept RMS 2 ADU, clipped at 3 x 2 ADU)
CHECKER_RMS = unclipped(2.0, 6.0)


def test_sky_statistics_hand_computed():
    level, rms, n = sky_statistics(checkerboard())
    # the four 1000-ADU pixels are clipped; the rest are 198 x 8 and 198 x 12
    assert n == 396
    assert level == 10.0
    assert rms == pytest.approx(2.0, rel=1e-12)


def test_sky_statistics_respects_mask_and_nan():
    data = checkerboard()
    data[0, 0] = np.nan
    mask = np.zeros_like(data, dtype=bool)
    mask[5:7, 5:7] = True
    mask[0, 1] = True
    level, rms, n = sky_statistics(data, mask)
    assert n == 400 - 4 - 2


def test_sigma_measured_background():
    data = checkerboard()
    header = fits.Header([("GAIN", 2.0), ("NCOMBINE", 3), ("RDNOISE", 5.0)])
    sigma, description = sigma_from_header(data, header)
    g = 2.0 * 3
    # sigma^2 = max(data - sky, 0)/g + rms^2 with sky = 10, rms = CHECKER_RMS (2 ADU, unclipped)
    rms2 = CHECKER_RMS**2
    assert sigma[0, 0] == pytest.approx(math.sqrt(0 + rms2))          # data 8
    assert sigma[0, 1] == pytest.approx(math.sqrt(2 / g + rms2))      # data 12
    assert sigma[5, 5] == pytest.approx(math.sqrt(990 / g + rms2))    # data 1000
    assert sigma.dtype == np.float64 and sigma.shape == data.shape
    for fragment in ("GAIN=2", "NCOMBINE=3", "sky=10", f"sky_rms={CHECKER_RMS:.6g}", "396 pixels",
                     "max(data - sky, 0)"):
        assert fragment in description


def test_sigma_atodgain_and_defaults():
    data = checkerboard()
    sigma, description = sigma_from_header(data, fits.Header([("ATODGAIN", 4.0)]))
    assert sigma[5, 5] == pytest.approx(math.sqrt(990 / 4.0 + CHECKER_RMS**2))
    assert "ATODGAIN=4" in description
    sigma, description = sigma_from_header(data, fits.Header())
    assert sigma[5, 5] == pytest.approx(math.sqrt(990 / DEFAULT_GAIN + CHECKER_RMS**2))
    assert DEFAULT_GAIN == 7.0
    assert "GALFIT's default" in description and "NCOMBINE=1" in description
    sigma_none, _ = sigma_from_header(data, None)
    np.testing.assert_array_equal(sigma_none, sigma)


def test_sigma_fallback_ccd_equation_hand_computed():
    # a constant image has no measurable background RMS: the header-only CCD equation is used
    data = np.full((6, 6), 50.0)
    data[0, 0] = -3.0
    header = fits.Header([("GAIN", 2.0), ("NCOMBINE", 4), ("RDNOISE", 6.0)])
    sigma, description = sigma_from_header(data, header)
    g = 8.0
    assert sigma[1, 1] == pytest.approx(math.sqrt(50 / g + 4 * 36 / g**2))
    assert sigma[0, 0] == pytest.approx(math.sqrt(4 * 36 / g**2))   # negative data: read noise only
    assert "RDNOISE=6" in description and "background RMS is 0" in description


def test_sigma_zero_where_undefined():
    data = np.full((4, 4), 50.0)
    data[0, 0] = 0.0
    data[1, 1] = np.nan
    data[2, 2] = -10.0
    sigma, description = sigma_from_header(data, fits.Header([("GAIN", 1.0)]))  # RDNOISE absent -> 0
    assert sigma[0, 0] == 0.0 and sigma[1, 1] == 0.0 and sigma[2, 2] == 0.0
    assert sigma[3, 3] == pytest.approx(math.sqrt(50.0))
    assert "3 pixel(s) have sigma 0" in description


def test_sigma_mask_excludes_pixels_from_background():
    data = checkerboard()
    data[10:, :] += 100.0  # a bright lower half that we mask
    mask = np.zeros(data.shape, dtype=bool)
    mask[10:, :] = True
    sigma, description = sigma_from_header(data, fits.Header([("GAIN", 1.0)]), mask=mask)
    assert "sky=10" in description and f"sky_rms={CHECKER_RMS:.6g} " in description
    assert sigma[0, 0] == pytest.approx(CHECKER_RMS)


def test_sigma_rate_units_warn():
    data = checkerboard()
    with pytest.warns(UserWarning, match="count rate"):
        _, description = sigma_from_header(data, fits.Header([("BUNIT", "ELECTRONS/S")]))
    assert "WARNING" in description
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sigma_from_header(data, fits.Header([("BUNIT", "ADU")]))


def test_sigma_statistics_on_noise_image():
    """On a Poisson sky + source image sigma matches the true per-pixel scatter."""
    rng = np.random.default_rng(1)
    gain = 2.5
    sky_e = 400.0
    truth = np.full((80, 80), sky_e)
    truth[30:50, 30:50] += 4000.0
    data = rng.poisson(truth) / gain  # ADU
    sigma, _ = sigma_from_header(data, fits.Header([("GAIN", gain)]))
    expected = np.sqrt(truth) / gain
    ratio = sigma / expected
    assert np.median(ratio[:20, :20]) == pytest.approx(1.0, abs=0.03)
    assert np.median(ratio[35:45, 35:45]) == pytest.approx(1.0, abs=0.03)
