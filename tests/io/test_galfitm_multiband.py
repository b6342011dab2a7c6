"""GALFITM's multi-band feedme format (galprof.io.galfitm): reading, constraint files and
the GALFITM-style restart, fit.log and image block.

The files are written here (the suite does not need ../shared). References: GALFITM's
documented input format (EXAMPLE.GALFITM.INPUT: per-band lists, degrees-of-freedom flags,
'band' / 'cheb'), GALFITM 1.2.0's NGC 4261 restart line
``3) 13.185,-1.532,0.503,-0.185,7.901e-02 1,1,1,1,1 cheb`` whose band magnitudes its log
prints as 15.48 13.62 12.80 12.35 12.05 (checked here against Chebyshev polynomials
evaluated by hand), and GALFITM's constraint documentation (EXAMPLE.GALFITM.CONSTRAINTS).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from astropy.io import fits

from galprof import Bands, fit_bands
from galprof.constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from galprof.errors import FeedmeError
from galprof.fitting.multiband import MultiBandFitResult
from galprof.io.feedme import FeedmeWarning
from galprof.io.galfitm import (
    append_galfitm_log,
    format_galfitm_restart,
    galfitm_log_entry,
    is_multiband_feedme,
    multiband_model,
    parse_galfitm_constraints,
    parse_galfitm_feedme,
    read_galfitm_feedme,
    write_galfitm_imgblock,
)
from galprof.optimise.lm import LMSettings

SDSS_WAVES = "3543,4770,6231,7625,9134"

CONTROL_3 = """\
# three bands
A) g.fits,r.fits,i.fits        # images
A1) g,r,i
A2) 4000,5000,6000
B) block.fits
C) none
D) psf-g.fits,psf-r.fits,psf-i.fits
E) 1
F) mask.fits
G) none
H) 1 24 1 24
I) 24 24
J) 25.0,25.5,26.0
K) 0.2 0.2
O) regular
P) 0
"""

SERSIC_3 = """
0) sersic
1) 12.3    1              # x
2) 12.7    1              # y
3) 18.5,18.0,17.7   3     # magnitude free per band
4) 3.0,3.5,4.0   2   band # R_e linear in wavelength
5) 1.5   1                # n the same in every band
9) 0.7   0                # q fixed
10) 20   1
Z) 0
"""

SKY_3 = """
0) sky
1) 0.5,0.6,0.7   3   bands
2) 0   0
3) 0   0
Z) 0
"""

NGC_CONTROL = f"""\
A) u.fits,g.fits,r.fits,i.fits,z.fits
A1) u,g,r,i,z
A2) {SDSS_WAVES}
B) out.fits
C) none,none,none,none,none 0.000
D) psf.fits
F) none
H) 150  450  150  450
I) 145    145
J) 28.141,30.034,29.940,29.720,27.880
K) 0.396  0.396
O) regular
P) 0
U) 0,0.750000,25,4,40
V) 0,0,500,0.800000,0.500000,100000
W) blank,input,model,residual
"""

# GALFITM 1.2.0's restart of NGC 4261 (single Sersic), parameter lines as GALFITM writes them
NGC_RESTART = NGC_CONTROL + """
# Component number: 1
 0) sky                    #  Component type
 1) 508.887,353.740,-204.734,-124.740,-39.375    0,0,0,0,0           cheb #  Sky
 2) 0,0,0,0,0         0,0,0,0,0           cheb #  dsky/dx
 3) 0,0,0,0,0         0,0,0,0,0           cheb #  dsky/dy
 Z) 0

# Component number: 2
 0) sersic                 #  Component type
 1) 290.852,0,0,0,0    1,0,0,0,0           cheb #      Position x
 2) 290.178,0,0,0,0    1,0,0,0,0           cheb #      Position y
 3) 13.185,-1.532,0.503,-0.185,7.901e-02    1,1,1,1,1           cheb #  Integrated magnitude
 4) 39.387,0,0,0,0    1,0,0,0,0           cheb #  R_e (effective radius)   [pix]
 5) 4.912,0,0,0,0     1,0,0,0,0           cheb #  Sersic index n
 6) 0,0,0,0,0         0,0,0,0,0           cheb #     -----
 7) 0,0,0,0,0         0,0,0,0,0           cheb #     -----
 8) 0,0,0,0,0         0,0,0,0,0           cheb #     -----
 9) 0.808,0,0,0,0     1,0,0,0,0           cheb #  Axis ratio (b/a)
10) -20.951,0,0,0,0    1,0,0,0,0           cheb #  Position angle (PA) [deg: Up=0, Left=90]
 Z) 0
"""


def parse(text: str, path: str = "test.feedme"):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeedmeWarning)
        return parse_galfitm_feedme(text, path)


def chebyshev_by_hand(coefficients, x: float) -> float:
    """sum_m c_m T_m(x) with T_0..T_4 written out: 1, x, 2x^2-1, 4x^3-3x, 8x^4-8x^2+1."""
    t = [1.0, x, 2 * x**2 - 1, 4 * x**3 - 3 * x, 8 * x**4 - 8 * x**2 + 1]
    return sum(c * tm for c, tm in zip(coefficients, t))


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------


def test_per_band_lists_and_every_parameter_form():
    feedme = parse(CONTROL_3 + SERSIC_3 + SKY_3)
    assert feedme.bands == Bands(("g", "r", "i"), (4000.0, 5000.0, 6000.0))
    assert feedme.input_images == ("g.fits", "r.fits", "i.fits")
    assert feedme.sigma_images == (None, None, None)  # one 'none' for every band
    assert feedme.psf_images == ("psf-g.fits", "psf-r.fits", "psf-i.fits")
    assert feedme.masks == ("mask.fits",) * 3  # one mask for every band
    assert feedme.zeropoints == (25.0, 25.5, 26.0)
    assert feedme.fit_region == (1, 24, 1, 24) and feedme.convolution_box == (24, 24)
    assert feedme.plate_scale == (0.2, 0.2) and feedme.min_sigma_factor == 0.0
    sersic, sky = feedme.components
    assert (sersic.number, sersic.profile, sky.number, sky.profile) == (1, "sersic", 2, "sky")
    np.testing.assert_array_equal(sersic.values["x"], [12.3] * 3)
    np.testing.assert_array_equal(sersic.values["y"], [12.7] * 3)
    np.testing.assert_array_equal(sersic.values["mag"], [18.5, 18.0, 17.7])
    np.testing.assert_array_equal(sersic.values["r_e"], [3.0, 3.5, 4.0])
    np.testing.assert_array_equal(sersic.values["q"], [0.7] * 3)
    assert sersic.terms == {"x": 1, "y": 1, "mag": 3, "r_e": 2, "n": 1, "q": 0, "pa": 1}
    np.testing.assert_array_equal(sky.values["sky"], [0.5, 0.6, 0.7])
    assert sky.terms == {"sky": 3, "dsdx": 0, "dsdy": 0}
    assert sersic.line_numbers["mag"] == 21 and feedme.line_numbers["A2"] == 4
    assert feedme.terms()[(1, "r_e")] == 2 and feedme.terms()[(2, "sky")] == 3


def test_position_on_one_line_and_single_values_for_every_band():
    text = CONTROL_3 + "0) psf\n1) 10.5 11.5  1 1\n3) 20.1  3\nZ) 0\n"
    (psf,) = parse(text).components
    np.testing.assert_array_equal(psf.values["x"], [10.5] * 3)
    np.testing.assert_array_equal(psf.values["y"], [11.5] * 3)
    np.testing.assert_array_equal(psf.values["mag"], [20.1] * 3)
    assert psf.terms == {"x": 1, "y": 1, "mag": 3}


def test_cheb_restart_gives_galfitm_band_values():
    feedme = parse(NGC_RESTART)
    sky, sersic = feedme.components
    x = 2 * (np.array([3543, 4770, 6231, 7625, 9134]) - 3543) / (9134 - 3543) - 1
    coefficients = [13.185, -1.532, 0.503, -0.185, 7.901e-02]
    by_hand = [chebyshev_by_hand(coefficients, xk) for xk in x]
    np.testing.assert_allclose(sersic.values["mag"], by_hand, rtol=1e-13)
    # the end points by hand: 13.185 + 1.532 + 0.503 + 0.185 + 0.07901, 13.185 - 1.532 + 0.503 - 0.185 + 0.07901
    np.testing.assert_allclose(sersic.values["mag"][[0, 4]], [15.48401, 12.05001], rtol=1e-13)
    # GALFITM 1.2.0's log of this fit: 15.48 13.62 12.80 12.35 12.05
    np.testing.assert_allclose(sersic.values["mag"], [15.484, 13.620, 12.799, 12.347, 12.050], atol=5e-4)
    np.testing.assert_allclose(sky.values["sky"], [35.778, 292.977, 646.141, 926.488, 493.778], atol=5e-4)
    assert sky.terms == {"sky": 0, "dsdx": 0, "dsdy": 0}
    assert sersic.terms == {"x": 1, "y": 1, "mag": 5, "r_e": 1, "n": 1, "q": 1, "pa": 1}
    np.testing.assert_allclose(sersic.values["r_e"], [39.387] * 5)
    assert feedme.output_options == ("blank", "input", "model", "residual")
    assert feedme.sigma_images == (None,) * 5 and feedme.psf_images == ("psf.fits",) * 5


def test_cheb_with_fewer_coefficients_and_an_integer_flag():
    text = CONTROL_3 + "0) sersic\n1) 12 1\n2) 12 1\n3) 18.0,-0.5 2 cheb\n4) 3 1\n5) 2 1\n9) 0.8 1\n10) 0 1\n"
    (sersic,) = parse(text).components
    np.testing.assert_allclose(sersic.values["mag"], [18.5, 18.0, 17.5])  # 18 - 0.5 x at x = -1, 0, 1
    assert sersic.terms["mag"] == 2


def test_min_sigma_factor_kernel_and_single_band_defaults():
    text = CONTROL_3.replace("C) none", "C) s-g.fits,none,s-i.fits 0.1").replace(
        "D) psf-g.fits,psf-r.fits,psf-i.fits", "D) p.fits,p.fits,p.fits, kernel.fits") + SKY_3
    feedme = parse(text)
    assert feedme.sigma_images == ("s-g.fits", None, "s-i.fits")
    assert feedme.min_sigma_factor == 0.1
    assert feedme.psf_images == ("p.fits",) * 3 and feedme.psf_diffusion_kernel == "kernel.fits"
    assert is_multiband_feedme(text) and not is_multiband_feedme("A) one.fits\nJ) 25\n")


def test_hidden_lines_per_band():
    text = CONTROL_3 + SERSIC_3.replace("Z) 0", "C0) 0.1,0.2,0.3  3\nF1) 0.05 45  1 1\nZ) 0") + SKY_3
    sersic = parse(text).components[0]
    np.testing.assert_array_equal(sersic.values["c0"], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(sersic.values["f1_amp"], [0.05] * 3)
    np.testing.assert_array_equal(sersic.values["f1_phase"], [45.0] * 3)
    assert (sersic.terms["c0"], sersic.terms["f1_amp"], sersic.terms["f1_phase"]) == (3, 1, 1)


def test_truncation_block_per_band():
    sersic = SERSIC_3.replace("Z) 0", "To) 2\nZ) 0")
    block = "\nT0) radial\nT4) 10,11,12  3\nT5) 2.0  0\n"
    feedme = parse(CONTROL_3 + sersic + block)
    comp = feedme.components[0]
    np.testing.assert_array_equal(comp.values["trunc_out_break"], [10.0, 11.0, 12.0])
    assert comp.terms["trunc_out_break"] == 3 and comp.terms["trunc_out_soft"] == 0
    assert comp.truncation_blocks == (("out", 2),)


def test_read_from_a_file(tmp_path):
    path = tmp_path / "multi.feedme"
    path.write_text(CONTROL_3 + SKY_3)
    assert read_galfitm_feedme(path).path == path
    with pytest.raises(FeedmeError, match="cannot read the feedme file"):
        read_galfitm_feedme(tmp_path / "missing.feedme")


# ----------------------------------------------------------------------------------------
# bad input: FeedmeError naming the file and line
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, line, message", [
    ("3) 18.5,18.0,17.7   3", "3) 18.5,18.0   3", 21, r"2 values for 3 bands"),
    ("5) 1.5   1", "5) 1.5   4", 23, r"degrees-of-freedom flag 4 is more than the number of bands \(3\)"),
    ("5) 1.5   1", "5) 1.5   1   poly", 23, r"unknown word 'poly'"),
    ("A1) g,r,i", "A1) g,r", 3, r"'A1\)' lists 2 labels for 3 bands"),
    ("A2) 4000,5000,6000", "A2) 4000,5000", 4, r"'A2\)' lists 2 wavelengths for 3 bands"),
    ("D) psf-g.fits,psf-r.fits,psf-i.fits", "D) psf-g.fits,psf-r.fits", 7, r"'D\)' lists 2 PSFs for 3 bands"),
    ("J) 25.0,25.5,26.0", "J) 25.0,25.5", 13, r"'J\)' lists 2 zeropoints for 3 bands"),
    ("A1) g,r,i", "A1) g,r,G", 3, r"band labels must differ \(ignoring case\)"),
    ("A2) 4000,5000,6000", "A2) 4000,4000,6000", 4, r"wavelengths must differ"),
    ("3) 18.5,18.0,17.7   3", "3) 18.5,18.0,17.7   0,1,0", 21,
     r"free Chebyshev coefficient\(s\) 1; galprof fits the leading terms only"),
    ("3) 18.5,18.0,17.7   3", "3) 18.5,18.0,17.7   1,1,1,1", 21, r"4 fit flags for 3 bands"),
    ("3) 18.5,18.0,17.7   3", "3) 18,0,-1  1,1,1,1 cheb", 21, r"4 fit flags for 3 bands"),
    ("3) 18.5,18.0,17.7   3", "3) 18,0,-1,0.3  1 cheb", 21, r"4 Chebyshev coefficients for 3 bands"),
    ("3) 18.5,18.0,17.7   3", "3) 18.5,x,17.7   3", 21, r"'x' is not a number"),
    ("3) 18.5,18.0,17.7   3", "3) 18.5,18.0,17.7   3 1", 21, r"needs its value\(s\) then as many fit flags"),
    ("A) g.fits,r.fits,i.fits", "A) {images}", 2, r"template placeholder '\{images\}'"),
    ("P) 0", "P) 0\nU) 1", 17, r"non-parametric component"),
    ("P) 0", "P) 0\nV) 1,0,500", 17, r"MultiNest"),
])
def test_bad_lines_are_named(old, new, line, message):
    text = (CONTROL_3 + SERSIC_3 + SKY_3).replace(old, new)
    with pytest.raises(FeedmeError, match=message) as caught:
        parse_galfitm_feedme(text, "bad.feedme")
    assert caught.value.path == "bad.feedme" and caught.value.line == line
    assert str(caught.value).startswith(f"bad.feedme:{line}: ")


def test_missing_band_lines_are_named():
    for key in ("A1", "A2"):
        text = "\n".join(line for line in (CONTROL_3 + SKY_3).splitlines() if not line.startswith(f"{key})"))
        with pytest.raises(FeedmeError, match=rf"missing line '{key}\)'") as caught:
            parse_galfitm_feedme(text, "bad.feedme")
        assert caught.value.line is None


def test_start_values_galfitm_would_treat_differently_are_warned():
    # GALFITM's flag 1 fits a constant added to differing band values; fit_bands starts from their mean
    text = CONTROL_3 + SERSIC_3.replace("5) 1.5   1", "5) 1.5,2.0,2.5   1") + SKY_3
    with pytest.warns(FeedmeWarning, match="GALFITM fits a constant function added to these band values"):
        parse_galfitm_feedme(text, "w.feedme")
    # a cheb line whose fixed higher coefficient is not 0
    text = CONTROL_3 + SERSIC_3.replace("5) 1.5   1", "5) 1.5,0.2  1,0  cheb") + SKY_3
    with pytest.warns(FeedmeWarning, match="holds the fixed Chebyshev coefficients 1..2"):
        parse_galfitm_feedme(text, "w.feedme")
    # values on a straight line with 2 terms, and 3 terms through any values: no warning
    parse(CONTROL_3 + SERSIC_3.replace("5) 1.5   1", "5) 1.0,2.0,4.0   3") + SKY_3)


# ----------------------------------------------------------------------------------------
# constraint files
# ----------------------------------------------------------------------------------------

SE_CONTROL = CONTROL_3 + SERSIC_3 + SERSIC_3.replace("12.3", "12.0") + SKY_3


def test_galfitm_constraints_apply_in_every_band():
    feedme = parse(SE_CONTROL)
    text = """# Component/ parameter constraint Comment
    1   n     0.3 to 15      # absolute range
    1   x     -1 0.5         # relative to the start value (in every band)
    2   y     -1 in 0.5      # GALFITM's alternative form
    1   re    factor 3       # GALFITM's factor range
    1/2 re    0.05 1         # ratio range
    1-2 mag   -0.5 3         # difference range
    1_2 pa    offset         # tie
    """
    constraints = parse_galfitm_constraints(text, "c.txt", feedme.components, feedme.bands)
    assert constraints == [Range(1, "n", 0.3, 15.0), RelativeRange(1, "x", -1.0, 0.5), RelativeRange(2, "y", -1.0, 0.5),
                           FactorRange(1, "r_e", 3.0), PairRange(1, 2, "r_e", "/", 0.05, 1.0),
                           PairRange(1, 2, "mag", "-", -0.5, 3.0), Tie((1, 2), "pa", "offset")]


@pytest.mark.parametrize("line, message", [
    ("1 n_1 -10 to 10", r"'n_1' is GALFITM's Chebyshev coefficient 1 of 'n'"),
    ("1 re_R -1 0.5", r"'re_R' is GALFITM's per-band constraint on 're' in band 'r'"),
    ("1_2 x_0 offset", r"'x_0' is GALFITM's Chebyshev coefficient 0 of 'x'"),
    ("1 x -2.0 ref 2.0", r"reference wavelength"),
    ("4 n 0.3 to 15", r"there is no component 4"),
])
def test_galfitm_constraints_galprof_cannot_honour_are_named(line, message):
    feedme = parse(SE_CONTROL)
    with pytest.raises(FeedmeError, match=message) as caught:
        parse_galfitm_constraints("# header\n" + line + "\n", "c.txt", feedme.components, feedme.bands)
    assert caught.value.line == 2 and str(caught.value).startswith("c.txt:2: ")


def test_mag_constrains_line_3_of_a_surface_brightness_profile():
    # GALFITM's own ngc4261 corser test constrains '2 mag 5 to 30' (corser's line 3 is mu_b)
    text = CONTROL_3 + "0) corser\n1) 12 1\n2) 12 1\n3) 16,15,14 3\n4) 2 1\n5) 1 1\n6) 1 1\n7) 19 1\n8) 4 1\n" \
                       "9) 0.8 1\n10) 10 1\n"
    feedme = parse(text)
    assert parse_galfitm_constraints("1 mag 5 to 30\n", "c", feedme.components, feedme.bands) == \
        [Range(1, "mu_b", 5.0, 30.0)]


def test_model_and_terms_for_fit_bands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "constraints").write_text("1 n 0.3 to 15\n2 mag -3 3\n")
    feedme = parse(SE_CONTROL.replace("G) none", "G) constraints"))
    model, terms = multiband_model(feedme)
    assert [c.profile for c in model.components] == ["sersic", "sersic", "sky"]
    assert model.components[0].values["mag"].shape == (1, 3)
    np.testing.assert_array_equal(model.components[0].values["r_e"], [[3.0, 3.5, 4.0]])
    assert model.components[0].fixed == frozenset({"q"})
    assert model.components[2].fixed == frozenset({"dsdx", "dsdy"})
    assert terms[(1, "mag")] == 3 and terms[(1, "r_e")] == 2 and terms[(1, "q")] == 0 and terms[(3, "sky")] == 3
    assert model.constraints == (Range(1, "n", 0.3, 15.0), RelativeRange(2, "mag", -3.0, 3.0))
    assert multiband_model(feedme, constraints=())[0].constraints == ()
    missing = parse(SE_CONTROL.replace("G) none", "G) nowhere"))
    with pytest.raises(Exception, match=r"test.feedme:10: file 'nowhere' \(line G\) does not exist"):
        multiband_model(missing)


# ----------------------------------------------------------------------------------------
# writing: restart, fit.log, image block
# ----------------------------------------------------------------------------------------


def assert_same_feedme(a, b, rtol=1e-10):
    assert a.bands == b.bands and a.zeropoints == b.zeropoints and a.input_images == b.input_images
    assert (a.sigma_images, a.psf_images, a.masks, a.fit_region, a.convolution_box) == \
        (b.sigma_images, b.psf_images, b.masks, b.fit_region, b.convolution_box)
    for ca, cb in zip(a.components, b.components, strict=True):
        assert (ca.profile, ca.terms, ca.truncation_blocks) == (cb.profile, cb.terms, cb.truncation_blocks)
        for name in ca.values:
            np.testing.assert_allclose(cb.values[name], ca.values[name], rtol=rtol, atol=1e-12, err_msg=name)


def test_restart_of_galfitm_restart_reads_back_and_keeps_galfitm_layout():
    feedme = parse(NGC_RESTART)
    text = format_galfitm_restart(feedme)
    lines = text.splitlines()
    assert "A1) u,g,r,i,z" in text and "A2) 3543.00,4770.00,6231.00,7625.00,9134.00" in text
    assert any(line.startswith("C) none,none,none,none,none 0.000 ") for line in lines)
    assert any(line.startswith("J) 28.141,30.034,29.940,29.720,27.880 ") for line in lines)
    assert any(line.startswith("U) 0 ") for line in lines) and any(line.startswith("W) blank,input,model,residual")
                                                                  for line in lines)
    assert " 3) 13.185,-1.532,0.503,-0.185,0.07901    1,1,1,1,1           cheb #  Integrated magnitude" in lines
    assert any(line.startswith(" 1) 508.887,353.740,-204.734,-124.740,-39.375    0,0,0,0,0 ") for line in lines)
    assert any(line.startswith(" 1) 290.852,0,0,0,0    1,0,0,0,0 ") for line in lines)
    assert any(line.startswith(" 2) 290.178,0,0,0,0    1,0,0,0,0 ") for line in lines)
    assert_same_feedme(feedme, parse(text))


def test_restart_round_trip_with_hidden_lines_and_truncation():
    sersic = SERSIC_3.replace("Z) 0", "C0) 0.1,0.2,0.3  3\nF1) 0.05 45  1 1\nTo) 2\nZ) 0")
    feedme = parse(CONTROL_3 + sersic + "\nT0) radial\nT4) 10,11,12  3\nT5) 2.0  0\n" + SKY_3)
    assert_same_feedme(feedme, parse(format_galfitm_restart(feedme)))


def hand_made_result(feedme, galaxy_values=None):
    """A MultiBandFitResult of one galaxy from hand-made arrays (values: the feedme's start
    values, errors 0.01 for free parameters; images 24 x 24)."""
    bands = feedme.bands
    n_bands = len(bands)
    names, terms, columns = [], [], []
    for position, comp in enumerate(feedme.components, start=1):
        for name, values in comp.values.items():
            names.append((position, name))
            terms.append(comp.terms[name])
            columns.append(values if galaxy_values is None else galaxy_values[(position, name)])
    values = np.stack(columns, axis=-1)[None]  # (1, K, P)
    terms = np.array(terms)
    errors = np.where(terms > 0, 0.01, 0.0) * np.ones_like(values)
    coefficients = np.einsum("bkp,km->bpm", values, np.linalg.inv(bands.chebyshev_basis()))
    xmin, xmax, ymin, ymax = feedme.fit_region
    shape = (1, n_bands, ymax - ymin + 1, xmax - xmin + 1)
    model = np.arange(np.prod(shape), dtype=float).reshape(shape)
    n_coefficients = int(terms.sum())
    return MultiBandFitResult(
        bands=bands, names=tuple(names), terms=terms, values=values, errors=errors, coefficients=coefficients,
        coefficient_errors=np.full_like(coefficients, 0.02), chi2=np.array([1234.5]),
        chi2_band=np.array([[400.0, 434.5, 400.0]]), ndof=np.array([1700]), chi2_nu=np.array([1234.5 / 1700]),
        iterations=np.array([7]), status=np.array(["converged"]), converged=np.array([True]),
        covariance=np.zeros((1, n_coefficients, n_coefficients)), covariance_flag=np.array([False]),
        model_images=model, residual_images=np.full(shape, 0.5), initial_values=values.copy())


def test_restart_log_and_imgblock_from_a_result(tmp_path):
    feedme = parse(CONTROL_3 + SERSIC_3 + SKY_3)
    result = hand_made_result(feedme)
    text = format_galfitm_restart(feedme, result)
    assert "#  Chi^2/nu = 0.726,  Chi^2 = 1234.500,  Ndof = 1700" in text.splitlines()
    assert_same_feedme(feedme, parse(text))
    # R_e (2 terms) as a line: 2 coefficients free, the third 0
    assert " 4) 3.500,0.500,0    1,1,0               cheb #  R_e (effective radius)  [pix]" in text.splitlines()
    # fit.log in GALFITM's layout: a value line and an error line per component and band
    entry = galfitm_log_entry(feedme, result, restart_file="galfit.01")
    lines = entry.splitlines()
    assert "Input images    : g.fits,r.fits,i.fits [1:24,1:24] " in lines
    assert "Restart file    : galfit.01 " in lines
    g_line = next(line for line in lines if line.startswith(" g  : sersic    : "))
    assert g_line.split(":", 2)[2].split() == ["(", "12.30,", "12.70)", "18.50", "3.00", "1.50", "[0.70]", "20.00"]
    error_line = lines[lines.index(g_line) + 1]
    assert error_line.startswith(" " * 18 + "(    0.01,     0.01)") and "[0.00]" in error_line
    sky_line = next(line for line in lines if line.startswith(" i  : sky       : "))
    assert sky_line.split(":", 2)[2].split() == ["[12.50,", "12.50]", "0.70", "[0.00e+00]", "[0.00e+00]"]
    assert " Chi^2 = 1234.50000,  ndof = 1700" in lines and " Chi^2/nu = 0.726 " in lines
    log = tmp_path / "fit.log"
    append_galfitm_log(log, feedme, result)
    append_galfitm_log(log, feedme, result)
    assert log.read_text().count("Init. par. file : test.feedme") == 2
    # the image block
    path = write_galfitm_imgblock(tmp_path / "block.fits", feedme, result)
    with fits.open(path) as hdus:
        names = [hdu.name for hdu in hdus]
        assert names == ["PRIMARY", "INPUT_G", "INPUT_R", "INPUT_I", "MODEL_G", "MODEL_R", "MODEL_I", "RESIDUAL_G",
                         "RESIDUAL_R", "RESIDUAL_I", "BAND_INFO", "FIT_INFO", "FINAL_BAND", "FINAL_CHEB"]
        np.testing.assert_allclose(hdus["MODEL_r"].data, result.model_images[0, 1])
        np.testing.assert_allclose(hdus["INPUT_i"].data, result.model_images[0, 2] + 0.5)
        header = hdus["MODEL_r"].header
        assert header["COMP_1"] == "sersic" and header["COMP_2"] == "sky"
        assert header["1_MAG_r"] == "18.0000 +/- 0.0100" and header["1_AR_R"] == "[0.7000]"
        assert header["2_SKY_R"] == "0.6000 +/- 0.0100" and header["BAND"] == "r" and header["WL"] == 5000.0
        assert header["DATAIN"] == "r.fits" and header["PSF"] == "psf-r.fits" and header["MAGZPT"] == 25.5
        assert header["CHISQ"] == 1234.5 and header["NDOF"] == 1700 and header["BANDCHI2"] == 434.5
        assert header["1_RE_CHEB0"] == "3.5000 +/- 0.0200" and header["1_RE_CHEB1"] == "0.5000 +/- 0.0200"
        assert "1_RE_CHEB2" not in header and "1_AR_CHEB0" not in header
        band = hdus["FINAL_BAND"].data
        np.testing.assert_allclose(band["COMP1_MAG"], [18.5, 18.0, 17.7])
        np.testing.assert_allclose(band["COMP1_MAG_ERR"], [0.01] * 3)
        np.testing.assert_allclose(band["COMP1_AR_ERR"], [0.0] * 3)
        assert list(band["BAND"]) == ["g", "r", "i"]
        np.testing.assert_allclose(hdus["FINAL_CHEB"].data["COMP1_RE"], [3.5, 0.5, 0.0], atol=1e-12)
        info = hdus["FIT_INFO"].data[0]
        assert (info["REFWLBAND"], info["LOWDWLBAND"], info["HIGHDWLBAND"]) == (4000.0, 0.0, 2000.0)
        assert info["NDOF"] == 1700 and info["STATUS"] == "converged" and info["NITER"] == 7
        assert list(hdus["BAND_INFO"].data["PSF"]) == ["psf-g.fits", "psf-r.fits", "psf-i.fits"]


@pytest.mark.usefixtures("float64")
def test_feedme_model_goes_through_fit_bands_and_back(tmp_path):
    """fit_bands takes the model and terms of a feedme; a zero-iteration fit reports the
    start values, which the restart file writes back."""
    feedme = parse(CONTROL_3.replace("D) psf-g.fits,psf-r.fits,psf-i.fits", "D) none") + SERSIC_3 + SKY_3)
    model, terms = multiband_model(feedme)
    images = np.zeros((1, 3, 24, 24))
    result = fit_bands(model, images, bands=feedme.bands, terms=terms, sigma=np.ones_like(images),
                       zeropoint=np.array(feedme.zeropoints), lm_settings=LMSettings(max_iterations=0),
                       dtype=torch.float64)
    np.testing.assert_allclose(result.value(1, "r_e")[0], [3.0, 3.5, 4.0], rtol=1e-10)
    assert result.terms[result.index(1, "r_e")] == 2
    assert np.all(result.model_images[0].sum((-1, -2)) > 0)
    assert_same_feedme(feedme, parse(format_galfitm_restart(feedme, result)), rtol=1e-9)
    write_galfitm_imgblock(tmp_path / "block.fits", feedme, result)
    with fits.open(tmp_path / "block.fits") as hdus:
        np.testing.assert_allclose(hdus["INPUT_G"].data, 0.0, atol=1e-4)


def test_galprof_check_reads_multiband_feedmes(tmp_path, monkeypatch):
    import json

    from galprof.cli.check import check_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "multi.feedme").write_text(NGC_RESTART)
    record = check_file("multi.feedme")
    assert (record["kind"], record["status"]) == ("feedme", "ok")
    assert record["bands"]["labels"] == ["u", "g", "r", "i", "z"]
    sersic = record["components"][1]
    np.testing.assert_allclose(sersic["values"]["mag"], [15.484, 13.620, 12.799, 12.347, 12.050], atol=5e-4)
    assert sersic["terms"]["mag"] == 5 and record["components"][0]["free"]["sky"] is False
    assert any("file 'u.fits' (line A) does not exist" in w for w in record["warnings"])
    json.dumps(record)
    (tmp_path / "bad.feedme").write_text(NGC_RESTART.replace("1,1,1,1,1           cheb", "1,1,1,1,1,1 cheb"))
    record = check_file("bad.feedme")
    assert record["status"] == "refused" and record["message"].startswith("bad.feedme:29: ")
