"""galprof.io.inputs: the one loader of a galaxy's data, against hand-made files."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from galprof.errors import InputError
from galprof.io.inputs import load_galaxy


@pytest.fixture()
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = np.arange(12 * 10, dtype=float).reshape(12, 10) + 1.0  # (ny, nx): pixel (x, y) holds 10 (y-1) + x
    header = fits.Header()
    header["EXPTIME"] = 30.0
    fits.writeto("img.fits", image, header)
    fits.writeto("var.fits", np.full(image.shape, 4.0))
    segments = np.zeros(image.shape, dtype=int)
    segments[0:3, 0:3] = 1  # the target
    segments[8:10, 6:9] = 2  # a neighbour
    fits.writeto("seg.fits", segments)
    fits.writeto("psf.fits", np.ones((5, 5)) / 25)
    return image


def test_region_cut_noise_kinds_and_exptime(files):
    got = load_galaxy("img.fits", sigma="var.fits", sigma_kind="variance", region=(3, 7, 2, 5))
    assert got.origin == (3, 2) and got.image.shape == (4, 5)
    assert got.image[0, 0] == 10 * (2 - 1) + 3  # pixel (3, 2), 1-based
    np.testing.assert_array_equal(got.sigma, 2.0)  # sqrt of the variance
    assert got.exptime == 30.0 and got.mask is None and got.psf is None
    weights = load_galaxy("img.fits", sigma="var.fits", sigma_kind="weight")
    np.testing.assert_array_equal(weights.sigma, 0.5)  # 1 / sqrt(weight)


def test_segmentation_masks_the_other_sources_only(files):
    got = load_galaxy("img.fits", sigma="var.fits", segmentation="seg.fits", target_label=1, psf="psf.fits")
    expected = np.zeros(files.shape, dtype=bool)
    expected[8:10, 6:9] = True
    np.testing.assert_array_equal(got.mask, expected)
    assert got.psf.shape == (5, 5)
    with pytest.raises(InputError, match="target label 3 does not occur"):
        load_galaxy("img.fits", sigma="var.fits", segmentation="seg.fits", target_label=3)


def test_bad_inputs_are_named(files):
    with pytest.raises(InputError, match="feedme.txt:4 \\(line C\\): file 'nowhere.fits' does not exist"):
        load_galaxy("img.fits", sigma="nowhere.fits", where={"sigma": "feedme.txt:4 (line C)"})
    with pytest.raises(InputError, match=r"fit region \[3:12,1:5\] lies outside the image img.fits \(10 x 12"):
        load_galaxy("img.fits", sigma="var.fits", region=(3, 12, 1, 5))
    fits.writeto("nan.fits", np.full((12, 10), np.nan))
    with pytest.raises(InputError, match="nan.fits: no usable pixel"):
        load_galaxy("nan.fits", sigma="var.fits")
    fits.writeto("badpsf.fits", np.full((5, 5), np.nan))
    with pytest.raises(InputError, match="PSF badpsf.fits holds NaN"):
        load_galaxy("img.fits", sigma="var.fits", psf="badpsf.fits")
