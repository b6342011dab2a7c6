"""Feedme lines that GALFIT and GALFITM accept but galprof used to refuse: GALFITM's
U)/V)/W) switches and per-line wavelength bases, fit flags above 1, lines without flags,
a fractional convolution box, GALFITM's one-parameter position lines and its ``corser``
component. Each case is a small file written the way the real files write it (GALFIT's
own restart files, GALFITM's regression tests, GALFITools' MGE files)."""

from __future__ import annotations

import math
import pathlib
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special

from galprof import RenderConfig
from galprof.io import FeedmeError, read_feedme
from galprof.io.feedme import FeedmeWarning
from galprof.profiles import get_profile
from galprof.render.scene import Frame, render_model

CONTROL = """\
A) image.fits
B) out.fits
H) 1 50 1 60
J) 25.0
"""

SERSIC = """\
0) sersic
1) 25 30 1 1
3) 18 1
4) 5 1
5) 2 1
9) 0.8 1
10) 10 1
"""


def read(tmp_path: pathlib.Path, text: str):
    path = tmp_path / "test.feedme"
    path.write_text(text)
    return read_feedme(path), path


@pytest.mark.parametrize("line", ["U) 0\n", "U) 0,0.750000,25,4,40      # Non-parametric component settings\n",
                                  "V) 0,0,500,0.800000,0.500000,100000   # MultiNest options\n",
                                  "W) blank,input,model,residual      # Output options\n"])
def test_galfitm_switches_that_are_off_are_read(tmp_path, line, recwarn):
    feedme, _ = read(tmp_path, CONTROL + line + SERSIC)
    assert feedme.components[0].values["r_e"] == 5.0
    assert not [w for w in recwarn if issubclass(w.category, FeedmeWarning)]


@pytest.mark.parametrize("line, fragment", [
    ("U) 1\n", "non-parametric component"),
    ("U) 3,0.75,25,4,40\n", "non-parametric component"),
    ("V) 1,0,500\n", "MultiNest"),
    ("U) on\n", "is not a number"),
])
def test_galfitm_switches_that_are_on_are_refused_by_name(tmp_path, line, fragment):
    with pytest.raises(FeedmeError) as info:
        read(tmp_path, CONTROL + line + SERSIC)
    assert str(info.value).startswith(f"{tmp_path / 'test.feedme'}:5:") and fragment in str(info.value)


def test_galfitm_extra_output_extensions_warn(tmp_path):
    with pytest.warns(FeedmeWarning, match="not nonparam, psf"):
        read(tmp_path, CONTROL + "W) blank,input,model,residual,psf,nonparam\n" + SERSIC)


def test_fit_flags_above_one_are_free_with_a_warning(tmp_path):
    # GALFITools' MGE files: every Gaussian's centre with flags "2 2" (tied by a constraint file)
    text = CONTROL + SERSIC.replace("1) 25 30 1 1", "1) 25 30 2 2").replace("10) 10 1", "10) 10 2")
    with pytest.warns(FeedmeWarning, match=r"test.feedme:6: line '1\)': fit flag 2 read as free") as record:
        feedme, _ = read(tmp_path, text)
    assert len([w for w in record if "line '1)'" in str(w.message)]) == 1  # one warning per line
    free = feedme.components[0].free
    assert free["x"] and free["y"] and free["pa"]
    with pytest.raises(FeedmeError, match=r"test.feedme:6: line '1\)': fit flag must be 0 \(fixed\) or 1"):
        read(tmp_path, CONTROL + SERSIC.replace("1) 25 30 1 1", "1) 25 30 1 x"))
    with pytest.raises(FeedmeError, match="fit flag must be 0"):
        read(tmp_path, CONTROL + SERSIC.replace("3) 18 1", "3) 18 -1"))


def test_line_without_flags_is_fixed(tmp_path):
    # GALFITM's spiral example: "F1) 0.2   90   # Offset arms slightly"
    with pytest.warns(FeedmeWarning, match=r"line 'F1\)' has no fit flags; read as fixed"):
        feedme, _ = read(tmp_path, CONTROL + SERSIC + "F1) 0.2\t\t90\t   # Offset arms slightly\n")
    comp = feedme.components[0]
    assert comp.values["f1_amp"] == 0.2 and comp.values["f1_phase"] == 90.0
    assert not comp.free["f1_amp"] and not comp.free["f1_phase"]
    with pytest.raises(FeedmeError, match="needs 4 tokens"):
        read(tmp_path, CONTROL + SERSIC + "F1) 0.2 90 1\n")


@pytest.mark.parametrize(("line", "box"), [("I) 109.3333 109.3333", (109, 0)), ("I) 30.0 30.0", (30, 0)),
                                           ("I) 30 30.5", (30, 30)), ("I) 40 0", (40, 0))])
def test_convolution_box_is_read_as_galfit_reads_it(tmp_path, line, box):
    # GALFIT reads two integers (C's %d %d), which stop at a decimal point: GALFITM's own
    # multisim model images, made from 'I) 30.0 30.0', record CONVBOX = '30, 0' and are
    # unconvolved (a box with no pixels)
    with pytest.warns(FeedmeWarning, match=rf"convolution box is {box[0]} x {box[1]}|a box with no pixels"):
        feedme, _ = read(tmp_path, CONTROL + line + " # Size of the convolution box (x y)\n" + SERSIC)
    assert feedme.convolution_box == box


def test_whole_number_convolution_box_is_read_silently(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeedmeWarning)
        feedme, _ = read(tmp_path, CONTROL + "I) 100 90\n" + SERSIC)
    assert feedme.convolution_box == (100, 90)
    with pytest.raises(FeedmeError, match="must not be negative"):
        read(tmp_path, CONTROL + "I) -5 10\n" + SERSIC)


def test_galfitm_restart_lines_with_basis_and_split_position(tmp_path):
    # GALFITM 1.2 restart files: x on 1), y on 2), each 'value flag basis'
    sersic = """\
 0) sersic                 #  Component type
 1) 46.527            1                   cheb #      Position x
 2) 48.256            0                   cheb #      Position y
 3) 22.976            1                   cheb #  Integrated magnitude
 4) 2.624             1                   cheb #  R_e (effective radius)   [pix]
 5) 4.109             1                   band #  Sersic index n (de Vaucouleurs n=4)
 6) 0                 0                   cheb #     -----
 9) 0.857             1                   cheb #  Axis ratio (b/a)
10) -71.741           1                   cheb #  Position angle (PA) [deg: Up=0, Left=90]
 Z) 0                      #  Skip this model in output image?  (yes=1, no=0)
 0) sky
 1) 0.730             1                   cheb #  Sky background at center of fitting region [ADUs]
 2) 0                 0                   cheb #  dsky/dx (sky gradient in x)     [ADUs/pix]
 3) 0                 0                   cheb #  dsky/dy (sky gradient in y)     [ADUs/pix]
"""
    feedme, _ = read(tmp_path, CONTROL + "A1) x\nA2) 1.000\n" + sersic)
    galaxy, sky = feedme.components
    assert galaxy.values == {"x": 46.527, "y": 48.256, "mag": 22.976, "r_e": 2.624, "n": 4.109, "q": 0.857,
                             "pa": -71.741}
    assert galaxy.free["x"] and not galaxy.free["y"]
    assert sky.values == {"sky": 0.73, "dsdx": 0.0, "dsdy": 0.0} and sky.free["sky"] and not sky.free["dsdx"]


# ------------------------------------------------------------------- GALFITM's corser

CORSER = """\
 0) corser                 # object type
 1) 30.4 29.7 1 1          # position x, y        [pixel]
 3) 18.0      1            # mu(Rb)               [surface brightness mag. at Rb]
 4) 3         1            # R_b                  [pixel]
 5) 4         1            # alpha
 6) 0.12      1            # gamma
 7) 12        1            # R_e                  [pixel]
 8) 3         1            # Sersic exponent
 9) 0.7       1            # axis ratio (b/a)
10) 101       1            # position angle (PA)  [Degrees: Up=0, Left=90]
"""


def test_corser_lines_are_read_in_galfitm_order(tmp_path):
    feedme, _ = read(tmp_path, CONTROL + CORSER)
    (comp,) = feedme.components
    assert comp.profile == "corser"
    assert comp.values == {"x": 30.4, "y": 29.7, "mu_b": 18.0, "r_b": 3.0, "alpha": 4.0, "gamma": 0.12,
                           "r_e": 12.0, "n": 3.0, "q": 0.7, "pa": 101.0}


def core_sersic_reference(r, *, n, I_b, r_e, r_b, alpha, gamma):
    """Graham et al. (2003), eq. 2-3, normalised to I_b at r_b, in plain numpy."""
    b = optimize.brentq(lambda x: special.gammainc(2.0 * n, x) - 0.5, 1e-8, 4.0 * n + 10.0, xtol=1e-14)
    i_prime = I_b * 2.0 ** (-gamma / alpha) * math.exp(b * 2.0 ** (1.0 / (alpha * n)) * (r_b / r_e) ** (1.0 / n))
    return i_prime * (1.0 + (r_b / r) ** alpha) ** (gamma / alpha) * np.exp(
        -b * ((r**alpha + r_b**alpha) / r_e**alpha) ** (1.0 / (alpha * n)))


@pytest.mark.usefixtures("float64")
def test_corser_pixels_match_the_published_formula():
    """mu(R_b) is the surface brightness at the break radius: I_b = 10^(-0.4 (mu - zp))
    EXPTIME dx dy [ADU/pix]; pixels away from the cusp against scipy dblquad."""
    zp, exptime, plate = 25.0, 2.0, 0.5
    values = dict(x=30.4, y=29.7, mu_b=18.0, r_b=3.0, alpha=4.0, gamma=0.12, r_e=12.0, n=3.0, q=0.7, pa=101.0)
    i_b = 10 ** (-0.4 * (values["mu_b"] - zp)) * exptime * plate * plate
    profile = get_profile("corser")
    params = {k: torch.tensor([v], dtype=torch.float64) for k, v in values.items()}
    frame = Frame(1, 1, 60, 60, zeropoint=zp, exptime=exptime, pixel_scale=(plate, plate))
    image = render_model([(profile, params)], frame, config=RenderConfig())[0].numpy()
    pa = math.radians(values["pa"])
    major = np.array([-math.sin(pa), math.cos(pa)])  # PA counter-clockwise from +y
    minor = np.array([-math.cos(pa), -math.sin(pa)])

    def brightness(y, x):
        d = np.array([x - values["x"], y - values["y"]])
        r = math.hypot(d @ major, (d @ minor) / values["q"])
        return core_sersic_reference(r, n=3.0, I_b=i_b, r_e=12.0, r_b=3.0, alpha=4.0, gamma=0.12)

    for col, row in ((36, 30), (30, 22), (41, 37), (25, 33)):  # 1-based pixel centres
        expected = integrate.dblquad(brightness, col - 0.5, col + 0.5, row - 0.5, row + 0.5, epsabs=0,
                                     epsrel=1e-9)[0]
        assert image[row - 1, col - 1] == pytest.approx(expected, rel=2e-4), (col, row)
