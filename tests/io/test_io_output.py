"""Tests of galprof.io.galfit_output: image block, header strings, model image, fit.log."""

from __future__ import annotations

import re

import numpy as np
import pytest
from astropy.io import fits

from galprof.io import (
    ComponentReport,
    append_fit_log,
    format_parameter,
    galfit_header_cards,
    parse_feedme,
    write_imgblock,
    write_model_image,
)
from galprof.io.galfit_output import HEADER_KEYWORDS

FEEDME = """\
A) galaxy.fits[1]
B) imgblock.fits
C) none
D) psf.fits
E) 1
F) mask.fits
G) none
H) 11 40 21 45
I) 50 60
J) 26.5
K) 0.1 0.1
O) regular
P) 0

0) sersic
1) 25 33 1 1
3) 18 1
4) 5 1
5) 2 0
9) 0.8 1
10) 10 1

0) sky
1) 1.5 1
2) 0 0
3) 0 0
Z) 0
"""


@pytest.fixture
def feedme():
    return parse_feedme(FEEDME, "galfit.feedme")


def sersic_report(**overrides):
    report = dict(
        number=1,
        profile="sersic",
        values={"x": 25.4321, "y": 33.1, "mag": 18.123456, "r_e": 5.5, "n": 2.0, "q": 0.812345, "pa": -12.3},
        errors={"x": 0.0123, "y": 0.02, "mag": 0.0045, "r_e": 0.1, "n": 0.0, "q": 0.00123, "pa": 0.5},
        free={"x": True, "y": True, "mag": True, "r_e": True, "n": False, "q": True, "pa": True},
        problem={"q": True},
    )
    report.update(overrides)
    return ComponentReport(**report)


def sky_report():
    return ComponentReport(
        number=2,
        profile="sky",
        values={"sky": 1.4567, "dsdx": 0.0, "dsdy": 0.0},
        errors={"sky": 0.0012, "dsdx": 0.0, "dsdy": 0.0},
        free={"sky": True, "dsdx": False, "dsdy": False},
        problem={},
    )


# ----------------------------------------------------------------------------------------
# Value strings
# ----------------------------------------------------------------------------------------


def test_format_parameter():
    assert format_parameter(12.3456, 0.0123) == "12.3456 +/- 0.0123"
    assert format_parameter(12.34561, 0.01234, free=False) == "[12.3456]"
    assert format_parameter(12.3456, 0.0123, problem=True) == "*12.3456* +/- *0.0123*"
    assert format_parameter(12.3456, 0.0123, constrained=True) == "{12.3456}"
    assert format_parameter(12.3456, float("nan")) == "*12.3456* +/- *nan*"
    assert format_parameter(12.3456, None) == "*12.3456* +/- *nan*"
    assert format_parameter(1.5e-5, 2e-6, exponential=True) == "1.5000e-05 +/- 2.0000e-06"
    assert format_parameter(0.0, 0.0, free=False, exponential=True) == "[0.0000e+00]"
    assert format_parameter(-3e-6, 1e-7) == "-3.0000e-06 +/- 1.0000e-07"


def parse_value(text: str):
    """An independent reader of GALFIT value strings, as third-party parsers do it."""
    if text.startswith("["):
        return float(text.strip("[]")), None, "fixed"
    if text.startswith("{"):
        return float(text.strip("{}")), None, "constrained"
    value, error = (t.strip() for t in text.split("+/-"))
    flag = "problem" if value.startswith("*") else "free"
    return float(value.strip("*")), float(error.strip("*")), flag


# ----------------------------------------------------------------------------------------
# Header cards
# ----------------------------------------------------------------------------------------


def test_header_cards_order_and_values():
    cards = galfit_header_cards(
        [sersic_report(), sky_report()],
        chi2=1234.5,
        ndof=1000,
        nfree=7,
        chi2nu=1.2345,
        extra={"FLAGS": "2", "MAGZPT": 26.5, "DATAIN": "galaxy.fits", "INITFILE": "galfit.feedme", "XTRA": "x"},
    )
    keys = [k for k, _, _ in cards]
    assert keys == [
        "INITFILE", "DATAIN", "MAGZPT",
        "COMP_1", "1_XC", "1_YC", "1_MAG", "1_RE", "1_N", "1_AR", "1_PA",
        "COMP_2", "2_SKY", "2_DSDX", "2_DSDY",
        "CHISQ", "NDOF", "NFREE", "NFIX", "CHI2NU", "FLAGS", "XTRA",
    ]
    values = {k: v for k, v, _ in cards}
    assert values["COMP_1"] == "sersic"
    assert values["1_XC"] == "25.4321 +/- 0.0123"
    assert values["1_MAG"] == "18.1235 +/- 0.0045"
    assert values["1_N"] == "[2.0000]"
    assert values["1_AR"] == "*0.8123* +/- *0.0012*"
    assert values["2_SKY"] == "1.4567 +/- 0.0012"
    assert values["2_DSDX"] == "[0.0000e+00]"
    assert values["NFIX"] == 3
    assert values["NFREE"] == 7 and values["NDOF"] == 1000
    assert values["CHISQ"] == 1234.5 and values["CHI2NU"] == 1.2345


@pytest.mark.parametrize(
    "profile, values, keys",
    [
        ("devauc", ["x", "y", "mag", "r_e", "q", "pa"], ["XC", "YC", "MAG", "RE", "AR", "PA"]),
        ("expdisk", ["x", "y", "mag", "r_s", "q", "pa"], ["XC", "YC", "MAG", "RS", "AR", "PA"]),
        ("gaussian", ["x", "y", "mag", "fwhm", "q", "pa"], ["XC", "YC", "MAG", "FWHM", "AR", "PA"]),
        ("moffat", ["x", "y", "mag", "fwhm", "beta", "q", "pa"], ["XC", "YC", "MAG", "FWHM", "PL", "AR", "PA"]),
        ("psf", ["x", "y", "mag"], ["XC", "YC", "MAG"]),
    ],
)
def test_header_keywords_per_profile(profile, values, keys):
    report = ComponentReport(3, profile, {n: 1.0 for n in values}, {n: 0.1 for n in values},
                             {n: True for n in values}, {})
    cards = galfit_header_cards([report], chi2=1, ndof=1, nfree=len(values), chi2nu=1)
    assert [k for k, _, _ in cards][:len(keys) + 1] == ["COMP_3"] + [f"3_{k}" for k in keys]
    assert set(HEADER_KEYWORDS[n] for n in values) == set(keys)


# ----------------------------------------------------------------------------------------
# Image block
# ----------------------------------------------------------------------------------------


def test_write_imgblock(tmp_path, feedme):
    rng = np.random.default_rng(0)
    shape = (25, 30)  # H) 11 40 21 45 -> ny = 25, nx = 30
    data = rng.normal(size=shape)
    model = rng.normal(size=shape)
    residual = data - model
    input_header = fits.Header([("OBJECT", "NGC 1"), ("CRPIX1", 100.0), ("CRPIX2", 50.0), ("EXPTIME", 300.0)])
    path = write_imgblock(
        tmp_path / "imgblock.fits",
        data=data, model=model, residual=residual, feedme=feedme,
        components=[sersic_report(), sky_report()],
        chi2=800.0, ndof=743, nfree=7, chi2nu=800 / 743, flags="1 2",
        input_names={"SIGMA": "none (made from data)"}, input_header=input_header,
    )
    assert path == tmp_path / "imgblock.fits"
    with fits.open(path) as hdul:
        assert len(hdul) == 4
        assert hdul[0].data is None
        assert [h.name for h in hdul[1:]] == ["INPUT_R", "MODEL_R", "RESIDUAL_R"]
        np.testing.assert_allclose(hdul[1].data, data, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(hdul[2].data, model, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(hdul[3].data, residual, rtol=1e-6, atol=1e-6)
        assert hdul[1].data.dtype.kind == "f" and hdul[1].header["BITPIX"] == -32
        # the input header is copied with its reference pixel moved to the cut-out
        assert hdul[1].header["CRPIX1"] == 90.0 and hdul[1].header["CRPIX2"] == 30.0
        assert hdul[1].header["EXPTIME"] == 300.0

        h = hdul[2].header
        assert h["INITFILE"] == "galfit.feedme"
        assert h["DATAIN"] == "galaxy.fits[1]"
        assert h["SIGMA"] == "none (made from data)"
        assert h["PSF"] == "psf.fits"
        assert h["CONSTRNT"] == "none"
        assert h["MASK"] == "mask.fits"
        assert h["FITSECT"] == "[11:40,21:45]"
        assert h["CONVBOX"] == "50, 60"
        assert h["MAGZPT"] == 26.5
        assert h["COMP_1"] == "sersic"
        assert h["1_XC"] == "25.4321 +/- 0.0123"
        assert h["1_N"] == "[2.0000]"
        assert h["1_AR"] == "*0.8123* +/- *0.0012*"
        assert h["COMP_2"] == "sky"
        # the sky's reference point is the centre of the fit region, fixed
        assert h["2_XC"] == "[25.5000]" and h["2_YC"] == "[33.0000]"
        assert h["2_SKY"] == "1.4567 +/- 0.0012"
        assert h["CHISQ"] == 800.0 and h["NDOF"] == 743 and h["NFREE"] == 7 and h["NFIX"] == 3
        assert h["CHI2NU"] == pytest.approx(800 / 743)
        assert h["FLAGS"] == "1 2"
        assert h["LOGFILE"] == "fit.log"
        assert "GALPROF" in h
        assert any("galprof" in str(c) for c in h["HISTORY"])
        assert any("GALFIT" in str(c) for c in h["COMMENT"])

        keys = list(h.keys())
        order = ["INITFILE", "DATAIN", "SIGMA", "PSF", "CONSTRNT", "MASK", "FITSECT", "CONVBOX", "MAGZPT",
                 "COMP_1", "1_XC", "1_PA", "COMP_2", "2_DSDY", "CHISQ", "NDOF", "NFREE", "CHI2NU", "FLAGS"]
        positions = [keys.index(k) for k in order]
        assert positions == sorted(positions)

        # every parameter card parses back as GALFIT readers do
        parsed = {k: parse_value(h[k]) for k in keys if re.match(r"^\d+_", k)}
        assert parsed["1_XC"] == (25.4321, 0.0123, "free")
        assert parsed["1_N"] == (2.0, None, "fixed")
        assert parsed["1_AR"] == (0.8123, 0.0012, "problem")
        assert parsed["1_PA"] == (-12.3, 0.5, "free")


def test_write_imgblock_shape_checks(tmp_path, feedme):
    a = np.zeros((25, 30))
    with pytest.raises(ValueError, match="fit region"):
        write_imgblock(tmp_path / "x.fits", data=np.zeros((10, 10)), model=np.zeros((10, 10)),
                       residual=np.zeros((10, 10)), feedme=feedme, components=[], chi2=0, ndof=1, nfree=0, chi2nu=0)
    with pytest.raises(ValueError, match="one shape"):
        write_imgblock(tmp_path / "x.fits", data=a, model=np.zeros((3, 3)), residual=a, feedme=None,
                       components=[], chi2=0, ndof=1, nfree=0, chi2nu=0)


def test_write_imgblock_without_feedme_and_overwrite(tmp_path):
    a = np.ones((4, 5))
    kwargs = dict(data=a, model=a, residual=0 * a, feedme=None, components=[sky_report()],
                  chi2=1.0, ndof=19, nfree=1, chi2nu=1 / 19)
    path = write_imgblock(tmp_path / "b.fits", **kwargs)
    write_imgblock(path, **kwargs)  # overwrite=True by default
    with pytest.raises(OSError):
        write_imgblock(path, overwrite=False, **kwargs)
    with fits.open(path) as hdul:
        assert "2_XC" not in hdul[2].header
        assert hdul[2].header["2_SKY"] == "1.4567 +/- 0.0012"


def test_write_model_image(tmp_path):
    model = np.arange(6.0).reshape(2, 3)
    cards = galfit_header_cards([sersic_report()], chi2=1.0, ndof=2, nfree=6, chi2nu=0.5)
    path = write_model_image(tmp_path / "model.fits", model, cards)
    with fits.open(path) as hdul:
        assert len(hdul) == 1
        np.testing.assert_array_equal(hdul[0].data, model)
        assert hdul[0].header["COMP_1"] == "sersic"
        assert hdul[0].header["1_N"] == "[2.0000]"
        assert "GALPROF" in hdul[0].header


# ----------------------------------------------------------------------------------------
# fit.log
# ----------------------------------------------------------------------------------------


def test_append_fit_log(tmp_path, feedme):
    log = tmp_path / "fit.log"
    for _ in range(2):
        append_fit_log(
            log, feedme=feedme, components=[sersic_report(), sky_report()],
            initial_components=list(feedme.components), chi2=800.0, ndof=743, chi2nu=800 / 743,
            date="2024-01-02 03:04:05", restart_file="galfit.01",
        )
    text = log.read_text()
    assert text.count("Init. par. file : galfit.feedme") == 2
    assert "Input image     : galaxy.fits[1][11:40,21:45]" in text
    assert "Restart file    : galfit.01" in text
    assert "Output image    : imgblock.fits" in text
    assert "Date            : 2024-01-02 03:04:05" in text
    assert " Chi^2 = 800.00000,  ndof = 743" in text
    assert " Chi^2/nu = 1.077" in text
    lines = text.splitlines()
    sersic = [line for line in lines if line.startswith(" sersic")]
    assert len(sersic) == 2
    line = sersic[0]
    assert "(   25.43,    33.10)" in line
    assert "[2.00]" in line and "*0.81*" in line
    error_line = lines[lines.index(line) + 1]
    assert "(    0.01,     0.02)" in error_line
    sky = [line for line in lines if line.startswith(" sky")]
    assert "[0.00e+00]" in sky[0]
    # initial values are comment lines that do not repeat the profile names
    initial = [line for line in lines if line.startswith("# initial")]
    assert len(initial) == 4
    assert all("sersic" not in line and "sky" not in line for line in initial)
    assert "25.00" in initial[0] and "[2.00]" in initial[0]
