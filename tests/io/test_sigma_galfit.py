"""GALFIT 3's sigma image from the data (``C) none``), against hand-computed numbers.

The recipe (galprof.io.fits_io.sigma_from_header): with g = GAIN x NCOMBINE,
sigma^2 = sky_rms^2 + max(data - sky, 0) / g [ADU^2], the sky level and RMS measured on the
image. An image averaged over N exposures of ADU x GAIN electrons each holds
ADU x GAIN x N electrons; their Poisson sigma, sqrt(ADU x GAIN x N) e-, is
sqrt(ADU x GAIN x N) / (GAIN x N) ADU of the average.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from astropy.io import fits

from galprof.io import SigmaImageWarning, image_unit_kind, sigma_from_header, sky_statistics
from galprof.io.feedme import read_feedme
from galprof.io.inputs import feedme_inputs

SKY = 100.0      # ADU
NOISE = 5.0      # ADU, Gaussian
SIZE = 200


def sky_and_source(seed=3, gain=2.5, ncombine=4):
    """A flat sky with known Gaussian noise plus a compact Gaussian source (peak 2000 ADU)."""
    rng = np.random.default_rng(seed)
    j, i = np.indices((SIZE, SIZE), dtype=float)
    source = 2000.0 * np.exp(-((i - 60.0) ** 2 + (j - 80.0) ** 2) / (2 * 2.0**2))
    data = SKY + source + rng.normal(0.0, NOISE, (SIZE, SIZE))
    header = fits.Header([("GAIN", gain), ("NCOMBINE", ncombine), ("EXPTIME", 300.0), ("BUNIT", "ADU")])
    return data, header


def test_sky_sigma_matches_the_known_noise_within_its_sampling_error():
    data, _ = sky_and_source()
    level, rms, n = sky_statistics(data, unbiased=True)
    sampling = NOISE / math.sqrt(2 * n)  # standard error of a Gaussian standard deviation
    assert abs(rms - NOISE) < 3.5 * sampling
    assert abs(level - SKY) < 3.5 * NOISE / math.sqrt(n) * 1.26  # the median's standard error
    # the plain clipped RMS misses the clipped tails: ~1.5 % low, many sampling errors off
    _, plain, _ = sky_statistics(data)
    assert plain < NOISE - 3 * sampling
    assert plain / NOISE == pytest.approx(0.985, abs=0.005)


def test_poisson_term_hand_computed():
    gain, ncombine = 2.5, 4
    data, header = sky_and_source(gain=gain, ncombine=ncombine)
    sigma, description = sigma_from_header(data, header)
    assert "GAIN=2.5" in description and "NCOMBINE=4" in description
    # a sky pixel: the background noise alone
    assert sigma[150, 150] == pytest.approx(NOISE, rel=0.012)
    # the source's peak pixel and one on its flank, by hand: electrons in the N exposures,
    # their Poisson sigma, back to ADU of the average, in quadrature with the sky noise
    for jj, ii in ((80, 60), (80, 62)):
        electrons = (data[jj, ii] - SKY) * gain * ncombine
        poisson_adu = math.sqrt(electrons) / (gain * ncombine)
        expected = math.sqrt(NOISE**2 + poisson_adu**2)
        assert sigma[jj, ii] == pytest.approx(expected, rel=2e-3)
    assert sigma[80, 60] == pytest.approx(math.sqrt(25.0 + (data[80, 60] - 100.0) / 10.0), rel=2e-3)


def test_the_plain_clipped_rms_is_still_reachable():
    data, header = sky_and_source()
    sigma, description = sigma_from_header(data, header, unbiased=False)
    _, plain, _ = sky_statistics(data)
    assert sigma.min() == pytest.approx(plain) and "corrected" not in description  # pixels below the sky


def test_averaged_exposures_against_the_true_scatter():
    """NCOMBINE exposures of Poisson electrons, averaged: sigma is their true per-pixel scatter."""
    rng = np.random.default_rng(5)
    gain, ncombine = 2.0, 4
    truth_e = np.full((90, 90), 300.0)  # electrons per exposure
    truth_e[35:55, 35:55] += 3000.0
    exposures = rng.poisson(truth_e, size=(ncombine, 90, 90)) / gain  # ADU
    data = exposures.mean(axis=0)
    sigma, _ = sigma_from_header(data, fits.Header([("GAIN", gain), ("NCOMBINE", ncombine)]))
    expected = np.sqrt(truth_e * ncombine) / (gain * ncombine)
    ratio = sigma / expected
    assert np.median(ratio[:25, :25]) == pytest.approx(1.0, abs=0.02)
    assert np.median(ratio[40:50, 40:50]) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(("bunit", "kind"), [
    ("ADU", "counts"), ("DNs", "counts"), ("COUNTS", "counts"), ("ELECTRONS", "counts"), ("e-", "counts"),
    ("ELECTRONS/S", "rate"), ("counts/sec", "rate"), ("e-/s", "rate"), ("count s-1", "rate"), ("CPS", "rate"),
    ("MJy/sr", "flux"), ("nanomaggies", "flux"), ("erg/s/cm2/A", "flux"), ("mag/arcsec2", "flux"),
    ("furlongs", "unknown"), ("IMAGE", "unknown"),
])
def test_image_unit_kind(bunit, kind):
    assert image_unit_kind(fits.Header([("BUNIT", bunit)])) == (kind, bunit)


def test_no_bunit_is_unknown():
    assert image_unit_kind(fits.Header()) == ("unknown", None)
    assert image_unit_kind(None) == ("unknown", None)


def test_rate_units_warn_with_the_exptime_test():
    data, _ = sky_and_source()
    header = fits.Header([("GAIN", 2.5), ("EXPTIME", 1000.0), ("BUNIT", "ELECTRONS/S")])
    with pytest.warns(SigmaImageWarning, match="count rate") as caught:
        _, description = sigma_from_header(data, header)
    message = str(caught[0].message)
    assert "EXPTIME=1000 is not 1" in message and "+7.500 mag" in message  # 2.5 log10(1000)
    assert "WARNING" in description
    # a rate image whose EXPTIME is 1: the units warning without the magnitude note
    header["EXPTIME"] = 1.0
    with pytest.warns(SigmaImageWarning) as caught:
        sigma_from_header(data, header)
    assert "mag off" not in str(caught[0].message)


def test_flux_units_warn():
    data, _ = sky_and_source()
    with pytest.warns(SigmaImageWarning, match="calibrated flux"):
        sigma_from_header(data, fits.Header([("BUNIT", "MJy/sr")]))


def test_counts_do_not_warn():
    data, header = sky_and_source()
    for unit in ("ADU", "DNs", "ELECTRONS"):
        header["BUNIT"] = unit
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sigma_from_header(data, header)


def test_background_below_its_own_poisson_noise_warns():
    """A count-rate image without BUNIT: its sky scatter is far below sqrt(sky / GAIN)."""
    rng = np.random.default_rng(2)
    gain, exptime = 1.0, 100.0
    counts = rng.poisson(np.full((100, 100), 400.0)) / gain  # 400 e- of sky, ADU = e-
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sigma_from_header(counts, fits.Header([("GAIN", gain)]))  # counts: consistent
    with pytest.warns(SigmaImageWarning, match="not in counts"):
        sigma_from_header(counts / exptime, fits.Header([("GAIN", gain), ("EXPTIME", exptime)]))


def test_feedme_with_c_none_builds_the_sigma_from_the_whole_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, header = sky_and_source()
    fits.writeto("img.fits", data, header)
    fits.writeto("rate.fits", data, fits.Header([("GAIN", 2.5), ("EXPTIME", 50.0), ("BUNIT", "COUNTS/S")]))
    text = ("A) {image}\nB) out.fits\nC) none\nD) none\nE) 1\nF) none\nG) none\nH) 41 100 51 110\nI) 60 60\n"
            "J) 25.0\nK) 1 1\nO) regular\nP) 0\n\n 0) sersic\n 1) 60 80 1 1\n 3) 18 1\n 4) 3 1\n 5) 2 1\n"
            " 9) 1 1\n10) 0 1\n Z) 0\n")
    for name in ("img", "rate"):
        (tmp_path / f"{name}.feedme").write_text(text.format(image=f"{name}.fits"))
    got = feedme_inputs(read_feedme("img.feedme"))
    whole, _ = sigma_from_header(data, header)
    np.testing.assert_array_equal(got.sigma, whole[50:110, 40:100])  # region (41:100, 51:110), 1-based
    assert "sky_rms=" in got.sigma_note
    with pytest.warns(SigmaImageWarning, match="count rate"):
        rate = feedme_inputs(read_feedme("rate.feedme"))
    assert "WARNING" in rate.sigma_note
