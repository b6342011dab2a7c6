"""Tests of galprof.io.feedme: GALFIT feedme parsing, errors, formatting and restarts."""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galprof.io import Feedme, FeedmeComponent, FeedmeError, format_feedme, next_restart_path, read_feedme
from galprof.io.feedme import parse_feedme, profile_lines

REALISTIC = """\

#  Input menu file: galfit.feedme

#  Chi^2/nu = 1.072,  Chi^2 = 1792.673,  Ndof = 1673

================================================================================
# IMAGE and GALFIT CONTROL PARAMETERS
A) data/ngc1234.fits[1]    # Input data image (FITS file)
B) imgblock.fits       # Output data image block
C) none                # Sigma image name (made from data if blank or "none")
D) psf.fits  kernel.txt  # Input PSF image and (optional) diffusion kernel
E) 2                   # PSF fine sampling factor relative to data
F) mask.txt            # Bad pixel mask (FITS image or ASCII coord list)
G) none                # File with parameter constraints (ASCII file)
H) 11   210  21   220  # Image region to fit (xmin xmax ymin ymax)
I) 100    90           # Size of the convolution box (x y)
J) 26.563              # Magnitude photometric zeropoint
K) 0.038  0.039        # Plate scale (dx dy)   [arcsec per pixel]
O) regular             # Display type (regular, curses, both)
P) 0                   # Choose: 0=optimize, 1=model, 2=imgblock, 3=subcomps
S) 0                   # Modify/create objects interactively?

# INITIAL FITTING PARAMETERS
#
#   par)    par value(s)    fit toggle(s)    # parameter description

# Component number: 1
 0) sersic                 #  Component type
 1) 110.5 120.25 1 0       #  Position x, y
 3) 14.2       1           #  Integrated magnitude
 4) 25.0       1           #  R_e (effective radius)   [pix]
 5) 4.0        0           #  Sersic index n (de Vaucouleurs n=4)
 6) 0.0000      0          #     -----
 7) 0.0000      0          #     -----
 8) 0.0000      0          #     -----
 9) 0.7        1           #  Axis ratio (b/a)
10) -35.0      1           #  Position angle (PA) [deg: Up=0, Left=90]
 Z) 0                      #  Skip this model in output image?  (yes=1, no=0)

# Component number: 2
  0) expdisk
  1) 110.0  120.0  1 1
  3) 15.5    1
  4) 40.0    1   # disk scale length
  9) 0.3     1
 10) 50.0    0
  Z) 1

# Component number: 3
 0) sky                    #  Component type
 1) 1.3920      1          #  Sky background at center of fitting region [ADUs]
 2) 0.000e+00      0       #  dsky/dx (sky gradient in x)     [ADUs/pix]
 3) 1.5e-4      1          #  dsky/dy (sky gradient in y)     [ADUs/pix]
 Z) 0                      #  Skip this model in output image?  (yes=1, no=0)

================================================================================
"""

MINIMAL_CONTROL = """\
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


def write(tmp_path: pathlib.Path, text: str, name: str = "test.feedme") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_realistic_feedme(tmp_path):
    path = write(tmp_path, REALISTIC)
    f = read_feedme(path)
    assert f.path == path
    assert f.input_image == "data/ngc1234.fits"
    assert f.input_extension == 1
    assert f.input_spec == "data/ngc1234.fits[1]"
    assert f.output_image == "imgblock.fits"
    assert f.sigma_image is None
    assert f.psf_image == "psf.fits"
    assert f.psf_diffusion_kernel == "kernel.txt"
    assert f.psf_oversampling == 2
    assert f.mask == "mask.txt"
    assert f.constraint_file is None
    assert f.fit_region == (11, 210, 21, 220)
    assert f.convolution_box == (100, 90)
    assert f.zeropoint == 26.563
    assert f.plate_scale == (0.038, 0.039)
    assert f.display_type == "regular"
    assert f.mode == 0
    assert f.line_numbers["A"] == 8 and f.line_numbers["H"] == 15 and f.line_numbers["P"] == 20
    assert "S" not in f.line_numbers
    assert len(f.components) == 3

    sersic, disk, sky = f.components
    assert sersic == FeedmeComponent(
        number=1,
        profile="sersic",
        values={"x": 110.5, "y": 120.25, "mag": 14.2, "r_e": 25.0, "n": 4.0, "q": 0.7, "pa": -35.0},
        free={"x": True, "y": False, "mag": True, "r_e": True, "n": False, "q": True, "pa": True},
        skip_in_residual=False,
    )
    assert list(sersic.values) == ["x", "y", "mag", "r_e", "n", "q", "pa"]
    assert sersic.line_numbers["x"] == sersic.line_numbers["y"] == 29
    assert sersic.line_numbers["pa"] == 37
    assert sersic.line_numbers["profile"] == 28

    assert disk.number == 2 and disk.profile == "expdisk"
    assert disk.values == {"x": 110.0, "y": 120.0, "mag": 15.5, "r_s": 40.0, "q": 0.3, "pa": 50.0}
    assert disk.free == {"x": True, "y": True, "mag": True, "r_s": True, "q": True, "pa": False}
    assert disk.skip_in_residual is True

    assert sky.profile == "sky"
    assert sky.values == {"sky": 1.392, "dsdx": 0.0, "dsdy": 1.5e-4}
    assert sky.free == {"sky": True, "dsdx": False, "dsdy": True}
    assert sky.line_numbers == {"sky": 51, "dsdx": 52, "dsdy": 53, "profile": 50}


@pytest.mark.parametrize(
    "profile, lines, expected",
    [
        ("devauc", "1) 5 6 1 1\n3) 20 1\n4) 3 1\n9) 0.5 1\n10) 45 1\n",
         {"x": 5, "y": 6, "mag": 20, "r_e": 3, "q": 0.5, "pa": 45}),
        ("gaussian", "1) 5 6 1 1\n3) 20 1\n4) 3 1\n9) 0.5 1\n10) 45 1\n",
         {"x": 5, "y": 6, "mag": 20, "fwhm": 3, "q": 0.5, "pa": 45}),
        ("moffat", "1) 5 6 1 1\n3) 20 1\n4) 3 1\n5) 2.5 1\n6) 0 0\n7) 0 0\n8) 0 0\n9) 0.5 1\n10) 45 1\n",
         {"x": 5, "y": 6, "mag": 20, "fwhm": 3, "beta": 2.5, "q": 0.5, "pa": 45}),
        ("psf", "1) 5 6 1 1\n3) 20 1\n", {"x": 5, "y": 6, "mag": 20}),
        ("sky", "1) 100 1\n", {"sky": 100, "dsdx": 0.0, "dsdy": 0.0}),
    ],
)
def test_each_profile(tmp_path, profile, lines, expected):
    f = read_feedme(write(tmp_path, MINIMAL_CONTROL + f"0) {profile}\n" + lines))
    (comp,) = f.components
    assert comp.profile == profile
    assert comp.values == expected
    assert list(comp.values) == [n for names in profile_lines(profile).values() for n in names]
    if profile == "sky":
        assert comp.free == {"sky": True, "dsdx": False, "dsdy": False}


def test_defaults(tmp_path):
    f = read_feedme(write(tmp_path, MINIMAL_CONTROL + SERSIC))
    assert f.sigma_image is None and f.psf_image is None and f.psf_diffusion_kernel is None
    assert f.mask is None and f.constraint_file is None and f.convolution_box is None
    assert f.psf_oversampling == 1
    assert f.plate_scale == (1.0, 1.0)
    assert f.mode == 0
    assert f.display_type == "regular"
    assert f.input_extension is None


def test_blank_and_none_file_lines(tmp_path):
    text = MINIMAL_CONTROL + "C) None\nD)            # nothing\nF) NONE\nG)\n" + SERSIC
    f = read_feedme(write(tmp_path, text))
    assert f.sigma_image is None and f.psf_image is None and f.mask is None and f.constraint_file is None


def test_paths_kept_as_written(tmp_path):
    text = MINIMAL_CONTROL.replace("image.fits", "../up/dir/Image.FITS[0]") + "C) ./sig.fits\n" + SERSIC
    f = read_feedme(write(tmp_path, text))
    assert f.input_image == "../up/dir/Image.FITS"
    assert f.input_extension == 0
    assert f.sigma_image == "./sig.fits"


def test_leading_spaces_and_case(tmp_path):
    head = "   a) image.fits\n  B) out.fits\n h) 1 10 1 10\nJ) 20\n   0) SERSIC\n"
    text = head + SERSIC.split("\n", 1)[1] + " z) 1\n"
    f = read_feedme(write(tmp_path, text))
    assert f.input_image == "image.fits"
    assert f.fit_region == (1, 10, 1, 10)
    assert f.components[0].profile == "sersic"
    assert f.components[0].skip_in_residual


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_modes(tmp_path, mode):
    f = read_feedme(write(tmp_path, MINIMAL_CONTROL + f"P) {mode}\n" + SERSIC))
    assert f.mode == mode


# ----------------------------------------------------------------------------------------
# Errors: each names the file and line
# ----------------------------------------------------------------------------------------

BAD_CASES = [
    # (text appended/replaced, expected line, fragment of the message)
    (MINIMAL_CONTROL + "0) sersic\n1) 25 30 1 1\n3) 18 1\n4) 5 1\n5) 2 1\n9) 0.8 1\n10) ten 1\n", 11, "not a number"),
    (MINIMAL_CONTROL + "0) sersic\n1) 25 30 1\n", 6, "needs 4 tokens"),
    (MINIMAL_CONTROL + "0) sersic\n1) 25 30 1 1\n3) 18 yes\n", 7, "fit flag must be 0"),
    (MINIMAL_CONTROL + "0) sersic\n1) 25 30 1 1\n3) 18 1 1\n", 7, "needs 2 tokens"),
    (MINIMAL_CONTROL + "P) 4\n" + SERSIC, 5, "'P)' must be"),
    (MINIMAL_CONTROL.replace("H) 1 50 1 60", "H) 50 1 1 60") + SERSIC, 3, "xmin <= xmax"),
    (MINIMAL_CONTROL.replace("H) 1 50 1 60", "H) 1 50 60 1") + SERSIC, 3, "ymin <= ymax"),
    (MINIMAL_CONTROL.replace("H) 1 50 1 60", "H) 1 50 1") + SERSIC, 3, "needs 4 integers"),
    (MINIMAL_CONTROL.replace("H) 1 50 1 60", "H) 1 50.5 1 60") + SERSIC, 3, "not an integer"),
    (MINIMAL_CONTROL.replace("J) 25.0", "J) abc") + SERSIC, 4, "not a number"),
    (MINIMAL_CONTROL + "E) 0.5\n" + SERSIC, 5, "not an integer"),
    (MINIMAL_CONTROL + "E) 0\n" + SERSIC, 5, "positive integer"),
    (MINIMAL_CONTROL + "0) blob\n", 5, "unknown component type 'blob'"),
    (MINIMAL_CONTROL + "0) sersik\n", 5, "unknown component type 'sersik'"),
    (MINIMAL_CONTROL + SERSIC + "C0) 0.1 1 1\n", 12, "needs 2 tokens"),
    (MINIMAL_CONTROL + SERSIC + "F1) 0.1 10 1\n", 12, "needs 4 tokens"),
    (MINIMAL_CONTROL + SERSIC + "F11) 0.1 10 1 1\n", 12, "unknown parameter line 'F11)'"),
    (MINIMAL_CONTROL + SERSIC.replace("0) sersic", "0) psf").replace("4) 5 1\n", "").replace("5) 2 1\n", "")
     .replace("9) 0.8 1\n", "").replace("10) 10 1\n", "") + "C0) 0.1 1\n", 8, "takes no shape modifiers"),
    (MINIMAL_CONTROL + SERSIC + "B11) 0.1 1\n", 12, "bending modes run from B1) to B10)"),
    (MINIMAL_CONTROL + SERSIC + "R0) powerlaw\n", 12, "'R0)' needs R1), R2), R3), R4)"),
    (MINIMAL_CONTROL + SERSIC + "R0) spiral\n", 12, "the rotation function is one of"),
    (MINIMAL_CONTROL + SERSIC + "R1) 2 1\n", 12, "need 'R0)'"),
    (MINIMAL_CONTROL + SERSIC + "T0) cone\n", 12, "galprof reads the truncation types"),
    (MINIMAL_CONTROL + SERSIC + "Ti) 2\nT0) radial\nT4) 10 1\n", 13, "needs T4) (break radius) and T5)"),
    (MINIMAL_CONTROL + SERSIC + "T4) 10 1\n", 12, "belongs in a truncation block"),
    (MINIMAL_CONTROL + SERSIC + "Ti) 1\n", 12, "component 1 is not a truncation block"),
    (MINIMAL_CONTROL + "Q) 1\n" + SERSIC, 5, "galprof does not support the control line 'Q)'"),
    (MINIMAL_CONTROL + "A1) g,r\n" + SERSIC, 5, "a multi-band GALFITM feedme ('A1)' lists 2 bands: g,r)"),
    (MINIMAL_CONTROL + SERSIC + "6) 0.1 1\n", 12, "cannot be free"),
    (MINIMAL_CONTROL + SERSIC + "11) 0.1 1\n", 12, "not a parameter of a sersic"),
    (MINIMAL_CONTROL + "0) psf\n1) 1 2 1 1\n3) 20 1\n4) 2 1\n", 8, "not a parameter of a psf"),
    (MINIMAL_CONTROL + "0) sky\n1) 1 1\n4) 2 0\n", 7, "not a parameter of a sky"),
    (MINIMAL_CONTROL + SERSIC + "Z) 2\n", 12, "'Z)' takes one flag"),
    (MINIMAL_CONTROL + SERSIC + "3) 19 1\n", 12, "given twice"),
    (MINIMAL_CONTROL + "J) 26\n" + SERSIC, 5, "given twice (first at line 4)"),
    (MINIMAL_CONTROL + "1) 2 3 1 1\n" + SERSIC, 5, "before any '0) type'"),
    (MINIMAL_CONTROL + "this is not a feedme line\n" + SERSIC, 5, "cannot parse"),
    (MINIMAL_CONTROL + "0) sersic\n1) 25 30 1 1\n3) 18 1\n4) 5 1\n9) 0.8 1\n10) 10 1\n", 5, "missing line '5)' (n)"),
    (MINIMAL_CONTROL + "0)\n", 5, "needs a component type"),
    (MINIMAL_CONTROL.replace("image.fits", "image.fits[SCI]") + SERSIC, 1, "extension syntax [SCI]"),
    (MINIMAL_CONTROL.replace("image.fits", "image.fits[1") + SERSIC, 1, "cannot read the extension"),
    (MINIMAL_CONTROL.replace("image.fits", "a.fits b.fits") + SERSIC, 1, "'A)' takes one file name"),
    (MINIMAL_CONTROL + "C) sigma.fits 0.1\n" + SERSIC, 5, "minimum-sigma factor"),
    (MINIMAL_CONTROL + "D) none kernel.txt\n" + SERSIC, 5, "needs a PSF image"),
    (MINIMAL_CONTROL + "I) -4 10\n" + SERSIC, 5, "must not be negative"),
    (MINIMAL_CONTROL.replace("H) 1 50 1 60", "H) 0 50 1 60") + SERSIC, 3, "1-based"),
    (MINIMAL_CONTROL + "0) sersic\n1) 25 30 1 1\n3) inf 1\n", 7, "not a finite number"),
]


@pytest.mark.parametrize("text, line, fragment", BAD_CASES)
def test_errors_name_file_and_line(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(FeedmeError) as info:
        read_feedme(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message
    assert info.value.line == line
    assert info.value.path == str(path)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text, fragment",
    [
        (MINIMAL_CONTROL.replace("A) image.fits\n", "") + SERSIC, "missing required line 'A)'"),
        (MINIMAL_CONTROL.replace("B) out.fits\n", "") + SERSIC, "missing required line 'B)'"),
        (MINIMAL_CONTROL.replace("H) 1 50 1 60\n", "") + SERSIC, "missing required line 'H)'"),
        (MINIMAL_CONTROL.replace("J) 25.0\n", "") + SERSIC, "missing required line 'J)'"),
        (MINIMAL_CONTROL, "no components"),
    ],
)
def test_missing_required_lines(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(FeedmeError) as info:
        read_feedme(path)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)
    assert info.value.line is None


def test_empty_required_line_names_its_line(tmp_path):
    path = write(tmp_path, MINIMAL_CONTROL.replace("J) 25.0", "J)") + SERSIC)
    with pytest.raises(FeedmeError, match=r":4: 'J\)' \(magnitude zeropoint\) is empty"):
        read_feedme(path)


def test_missing_file(tmp_path):
    with pytest.raises(FeedmeError, match="cannot read the feedme file"):
        read_feedme(tmp_path / "nope.feedme")


# ----------------------------------------------------------------------------------------
# Formatting and round trips
# ----------------------------------------------------------------------------------------


def without_path(f: Feedme) -> Feedme:
    return dataclasses.replace(f, path=pathlib.Path("x"))


def test_format_round_trip(tmp_path):
    original = read_feedme(write(tmp_path, REALISTIC))
    text = format_feedme(original)
    again = read_feedme(write(tmp_path, text, "galfit.01"))
    assert without_path(again) == without_path(original)
    for a, b in zip(again.components, original.components):
        assert a.values == b.values and list(a.values) == list(b.values)


def test_format_with_new_values(tmp_path):
    original = read_feedme(write(tmp_path, REALISTIC))
    new = [{"x": 111.123456789, "r_e": 26.5}, {"mag": 15.25}, {"sky": 1.4, "dsdy": -3.25e-6}]
    text = format_feedme(original, new, chi2=1792.673, ndof=1673, chi2nu=1.0716)
    assert "#  Chi^2/nu = 1.072,  Chi^2 = 1792.673,  Ndof = 1673" in text
    assert f"#  Input menu file: {original.path}" in text
    again = read_feedme(write(tmp_path, text, "galfit.02"))
    assert again.components[0].values["x"] == 111.123456789
    assert again.components[0].values["r_e"] == 26.5
    assert again.components[0].values["y"] == 120.25
    assert again.components[1].values["mag"] == 15.25
    assert again.components[2].values["dsdy"] == -3.25e-6
    # flags and Z are kept
    assert [c.free for c in again.components] == [c.free for c in original.components]
    assert again.components[1].skip_in_residual
    # control lines are kept
    assert without_path(dataclasses.replace(again, components=original.components)) == without_path(original)


def test_format_writes_galfit_layout(tmp_path):
    original = read_feedme(write(tmp_path, REALISTIC))
    text = format_feedme(original)
    lines = text.splitlines()
    assert any(line.startswith("A) data/ngc1234.fits[1]") for line in lines)
    assert any(line.startswith("D) psf.fits kernel.txt") for line in lines)
    assert any(line.startswith("H) 11 210 21 220") for line in lines)
    assert any(line.startswith("C) none") for line in lines)
    assert " 0) sersic" in text and " 0) expdisk" in text and " 0) sky" in text
    assert any(line.startswith(" 1) 110.5000 120.2500  1 0") for line in lines)
    assert any(line.startswith("10) -35.0000") for line in lines)
    assert any(line.startswith(" Z) 1") for line in lines)
    assert "# Component number: 3" in text


def test_format_rejects_bad_values(tmp_path):
    original = read_feedme(write(tmp_path, REALISTIC))
    with pytest.raises(ValueError, match="3 components"):
        format_feedme(original, [{}])
    with pytest.raises(ValueError, match="no parameter"):
        format_feedme(original, [{"n": 1.0}, {"n": 2.0}, {}])


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(finite, min_size=7, max_size=7), flags=st.lists(st.booleans(), min_size=7, max_size=7),
       skip=st.booleans())
def test_round_trip_property(values, flags, skip):
    names = ["x", "y", "mag", "r_e", "n", "q", "pa"]
    comp = FeedmeComponent(1, "sersic", dict(zip(names, values)), dict(zip(names, flags)), skip)
    base = parse_feedme(MINIMAL_CONTROL + SERSIC, "a.feedme")
    feedme = dataclasses.replace(base, components=(comp,))
    again = parse_feedme(format_feedme(feedme), "a.feedme")
    assert again == feedme


# ----------------------------------------------------------------------------------------
# Restart file names
# ----------------------------------------------------------------------------------------


def test_next_restart_path(tmp_path):
    assert next_restart_path(tmp_path) == tmp_path / "galfit.01"
    (tmp_path / "galfit.01").write_text("")
    assert next_restart_path(tmp_path) == tmp_path / "galfit.02"
    (tmp_path / "galfit.07").write_text("")
    (tmp_path / "galfit.feedme").write_text("")
    (tmp_path / "galfit.1").write_text("")  # not a restart name
    assert next_restart_path(tmp_path) == tmp_path / "galfit.08"
    (tmp_path / "galfit.99").write_text("")
    assert next_restart_path(str(tmp_path)) == tmp_path / "galfit.100"


def test_next_restart_path_missing_directory(tmp_path):
    assert next_restart_path(tmp_path / "new") == tmp_path / "new" / "galfit.01"


def test_shape_modifier_lines_are_read_and_written_back(tmp_path):
    """GALFIT's C0 and F<m> lines become c0, f<m>_amp, f<m>_phase with their flags, and
    the writer puts them back as the same lines."""
    text = MINIMAL_CONTROL + SERSIC + "C0) -0.25 1\nF1) 0.05 30.0 1 0\nF4) 0.02 -10 0 1\n"
    feedme = read_feedme(write(tmp_path, text))
    comp = feedme.components[0]
    assert comp.values["c0"] == -0.25 and comp.free["c0"]
    assert (comp.values["f1_amp"], comp.values["f1_phase"]) == (0.05, 30.0)
    assert comp.free["f1_amp"] and not comp.free["f1_phase"]
    assert (comp.values["f4_amp"], comp.values["f4_phase"]) == (0.02, -10.0)
    assert not comp.free["f4_amp"] and comp.free["f4_phase"]
    written = format_feedme(feedme)
    assert re.search(r"^C0\) -0\.2500 +1 ", written, re.M)
    assert re.search(r"^F1\) 0\.0500 30\.0000 +1 0 ", written, re.M)
    again = parse_feedme(written, "again")
    assert again.components == feedme.components


def test_galfit_restart_psf_lines_are_read(tmp_path):
    """GALFIT's own restart files write every line of a psf component: 4)-8) as 'value 0'
    and the axis ratio and PA (9, 10) with the flag -1 (not a parameter)."""
    psf = (" 0) psf\n 1) 200.37 202.34 1 1\n 3) 21.2604 1\n 4) 0.0000 0\n 5) 0.0000 0\n 6) 0.0000 0\n"
           " 7) 0.0000 0\n 8) 0.0000 0\n 9) 1.0000 -1\n10) 0.0000 -1\n Z) 0\n")
    path = tmp_path / "galfit.01"
    path.write_text(MINIMAL_CONTROL + psf)
    feedme = read_feedme(path)
    (comp,) = feedme.components
    assert comp.profile == "psf" and comp.values == {"x": 200.37, "y": 202.34, "mag": 21.2604}
    assert all(comp.free.values())
    # a used line still takes 0 or 1 only, and an unused one cannot be free
    path.write_text(MINIMAL_CONTROL + psf.replace(" 3) 21.2604 1", " 3) 21.2604 -1"))
    with pytest.raises(FeedmeError, match="fit flag must be 0"):
        read_feedme(path)
    path.write_text(MINIMAL_CONTROL + psf.replace(" 9) 1.0000 -1", " 9) 1.0000 1"))
    with pytest.raises(FeedmeError, match="cannot be free"):
        read_feedme(path)


def test_galfitm_single_band_lines_and_comments_without_hash(tmp_path):
    """GALFITM's A1) / A2) for one band are read; '0) sersic   object type' (a comment
    without '#', as some hand-written feedmes have) is the sersic type."""
    text = MINIMAL_CONTROL.replace("A) image.fits\n", "A) image.fits\nA1) r\nA2) 6231\n") + \
        SERSIC.replace("0) sersic", "0) sersic   object type")
    path = tmp_path / "single.feedme"
    path.write_text(text)
    feedme = read_feedme(path)
    assert feedme.input_image == "image.fits" and feedme.components[0].profile == "sersic"


@pytest.mark.parametrize("lines, line, fragment", [
    ("A1) u,g,r\n", 2, "a multi-band GALFITM feedme ('A1)' lists 3 bands: u,g,r)"),
    ("A2) 3543,4770\n", 2, "('A2)' lists 2 bands"),
])
def test_multiband_galfitm_feedmes_are_refused_by_name(tmp_path, lines, line, fragment):
    path = tmp_path / "multi.feedme"
    path.write_text(MINIMAL_CONTROL.replace("A) image.fits\n", "A) image.fits\n" + lines) + SERSIC)
    with pytest.raises(FeedmeError) as info:
        read_feedme(path)
    assert str(info.value).startswith(f"{path}:{line}:") and fragment in str(info.value)
    path.write_text(MINIMAL_CONTROL.replace("A) image.fits", "A) u.fits,g.fits") + SERSIC)
    with pytest.raises(FeedmeError, match="multi-band GALFITM feedme .'A\\)' lists 2 images"):
        read_feedme(path)


def test_galfit2_numbering_is_read_as_galfit2_never_misread(tmp_path):
    """pymorph writes GALFIT 2's numbering: 8) axis ratio, 9) PA, 10) boxiness. Reading
    line 9) as GALFIT 3's q would turn a PA of -17.7 into q."""
    galfit2 = ("0) sersic\n1) 57.7 57.8 1 1\n3) 19.15 1\n4) 2.77 1\n5) 4.0 1\n"
               "8) 0.638 1   # axis ratio (b/a)\n9) -17.7 1   # position angle\n10) 0.0 0   # diskiness\nZ) 0\n")
    path = tmp_path / "pymorph.in"
    path.write_text(MINIMAL_CONTROL + galfit2)
    with pytest.warns(UserWarning, match="GALFIT-2 numbering"):
        feedme = read_feedme(path)
    comp = feedme.components[0]
    assert comp.values["q"] == 0.638 and comp.values["pa"] == -17.7 and comp.values["c0"] == 0.0
    assert comp.free["q"] and comp.free["pa"] and not comp.free["c0"]
    # a fixed GALFIT-2 axis ratio is recognised by its comment
    path.write_text(MINIMAL_CONTROL + galfit2.replace("8) 0.638 1", "8) 0.638 0"))
    with pytest.warns(UserWarning, match="GALFIT-2 numbering"):
        assert read_feedme(path).components[0].values["pa"] == -17.7
    # GALFIT 3's own unused line 8) ("0.0000 0") changes nothing
    path.write_text(MINIMAL_CONTROL + SERSIC.replace("0) sersic\n", "0) sersic\n8) 0.0000 0\n"))
    assert read_feedme(path).components[0].values["q"] == 0.8
