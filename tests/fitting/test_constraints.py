"""GALFIT constraint files: parsing (GALFIT's documented syntax written out by hand) and
exact enforcement of every form in fits, on GalSim-rendered galaxies."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from galprof import Component, Model, ModelError, fit
from galprof.cli import main
from galprof.constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from galprof.fitting.layout import ParameterLayout
from galprof.io.constraints import parse_constraints
from galprof.io.feedme import FeedmeError
from references import moffat_epsf
from test_fit import SIZE, ZP, galsim_image

PROFILES = ["sersic", "sersic", "sersic", "expdisk", "sersic", "sky", "psf", "sersic", "sersic"]


def test_galfit_documented_examples():
    text = """
    # Component/    parameter   constraint   Comment
    # operation     (see below) range
    3_2_1_9    x      offset      # hard: relative x positions as in the input
    1_5_3_2    re     ratio       # hard: R_e ratios as in the input
    3          n      0.7 to 5    # soft: absolute range
    2          x      -1  0.5     # soft: relative to the input value
    3-7        mag    -0.5 3      # soft: difference of two components
    3/5        re     1   3       # soft: ratio of two components
    """
    got = parse_constraints(text, "c.txt", PROFILES)
    assert got == [
        Tie((3, 2, 1, 9), "x", "offset"),
        Tie((1, 5, 3, 2), "r_e", "ratio"),
        Range(3, "n", 0.7, 5.0),
        RelativeRange(2, "x", -1.0, 0.5),
        PairRange(3, 7, "mag", "-", -0.5, 3.0),
        PairRange(3, 5, "r_e", "/", 1.0, 3.0),
    ]


def test_parameter_numbers_and_size_aliases():
    text = "4 4 2 to 9\n1 5 0.5 to 6\n1_2 1 offset\n1_2 2 offset\n6 1 -3 3\n4_1 rs ratio\n1 10 -40 40\n"
    got = parse_constraints(text, "c.txt", PROFILES)
    assert got == [Range(4, "r_s", 2.0, 9.0), Range(1, "n", 0.5, 6.0), Tie((1, 2), "x", "offset"),
                   Tie((1, 2), "y", "offset"), RelativeRange(6, "sky", -3.0, 3.0),
                   Tie((4, 1), ("r_s", "r_e"), "ratio"), RelativeRange(1, "pa", -40.0, 40.0)]
    # "re or rs -- it doesn't matter": the size of each component, whatever its profile calls it
    assert parse_constraints("1_2 rs ratio", "c", PROFILES) == [Tie((1, 2), "r_e", "ratio")]
    assert parse_constraints("1/4 re 0.1 0.5", "c", PROFILES) == [PairRange(1, 4, ("r_e", "r_s"), "/", 0.1, 0.5)]


def test_galfitm_factor_ranges():
    # GALFITM's constraint files: "1 re factor 3" keeps R_e within a factor of 3 of its input
    text = "    1   re   factor 3   # soft\n 4 rs factor 2.5\n"
    assert parse_constraints(text, "c.txt", PROFILES) == [FactorRange(1, "r_e", 3.0), FactorRange(4, "r_s", 2.5)]
    assert FactorRange(1, "r_e", 3.0).describe() == "1 r_e factor 3"


@pytest.mark.parametrize("line, fragment", [
    ("1 re factor 1", "above 1"),
    ("1_2 re factor 3", "one component"),
    ("12 n 1 to 3", "no component 12"),
    ("6 n 1 to 3", "has no parameter 'n'"),
    ("1 n 3 to 1", "low < high"),
    ("1 n 1 to", "cannot read the range"),
    ("1 x offset", "two or more components"),
    ("1 alpha -1 1", "not supported"),
    ("1/2 re 0 3", "positive"),
    ("a_b x offset", "component field"),
    ("1 n", "expected"),
])
def test_errors_name_file_and_line(line, fragment):
    with pytest.raises(FeedmeError) as info:
        parse_constraints("# comment\n\n" + line + "\n", "my.constraints", PROFILES)
    assert str(info.value).startswith("my.constraints:3:")
    assert fragment in str(info.value)


def test_model_rejects_inconsistent_constraints():
    comps = [Component("sersic", dict(x=20, y=20, mag=17, r_e=3, n=2, q=0.8, pa=0)),
             Component("sky", dict(sky=0, dsdx=0, dsdy=0))]
    with pytest.raises(ModelError, match="no component 3"):
        Model(comps, [Range(3, "n", 1, 2)])
    with pytest.raises(ModelError, match="no parameter 'n'"):
        Model(comps, [Tie((1, 2), "n", "offset")])


# ------------------------------------------------------------------------ enforcement

BULGE = dict(x=24.4, y=24.1, mag=16.8, r_e=2.0, n=3.5, q=0.8, pa=20.0)
DISK = dict(mag=16.0, r_s=5.0, q=0.5, pa=30.0)
PSF = moffat_epsf(3.5, 2.8, 25)


@pytest.fixture(scope="module")
def bulge_disk_image():
    return galsim_image(BULGE, extra=DISK)


def _components(bulge=None, disk=None, disk_fixed=frozenset()):
    b = dict(BULGE, x=24.9, y=23.6, mag=17.1, r_e=2.6, n=3.0, q=0.75, pa=25.0)
    d = dict(x=24.0, y=24.6, mag=16.3, r_s=6.0, q=0.6, pa=40.0)
    b.update(bulge or {})
    d.update(disk or {})
    return [Component("sersic", b), Component("expdisk", d, fixed=disk_fixed)]


def _fit(image, constraints, retries=0, **kw):
    """One fit of the bulge+disk image. Without the retry rounds by default: a parameter
    that a constraint holds on its limit is what these tests expect, and each retry round
    refits from two more starts (the tests that need them, or check that they respect the
    constraint, ask for them)."""
    model = Model(_components(**kw), constraints)
    return fit(model, image, sigma=np.full(image.shape, 0.05), psf=PSF, zeropoint=ZP, retries=retries)


def test_hard_offset_and_ratio_ties_hold_exactly(bulge_disk_image):
    constraints = [Tie((1, 2), "x", "offset"), Tie((1, 2), "y", "offset"), Tie((1, 2), "pa", "offset")]
    result = _fit(bulge_disk_image, constraints)
    for name, start_offset in (("x", 24.0 - 24.9), ("y", 24.6 - 23.6), ("pa", 40.0 - 25.0)):
        offset = result.value(2, name)[0] - result.value(1, name)[0]
        assert offset == pytest.approx(start_offset, abs=1e-9)
        assert result.constrained[result.column(2, name)]
        assert np.isfinite(result.error(2, name)[0]) and result.error(2, name)[0] > 0
    assert result.value(1, "x")[0] != pytest.approx(24.9, abs=1e-3)  # the leader moved
    ratio = _fit(bulge_disk_image, [Tie((1, 2), "q", "ratio")])
    assert ratio.value(2, "q")[0] / ratio.value(1, "q")[0] == pytest.approx(0.6 / 0.75, rel=1e-9)


def test_absolute_and_relative_ranges_bind(bulge_disk_image):
    # truth n = 3.5 lies outside [1, 2.5]: the fit ends at the upper limit, flagged
    with pytest.warns(UserWarning, match="outside"):  # the start (n = 3) is moved inside
        result = _fit(bulge_disk_image, [Range(1, "n", 1.0, 2.5)])
    n = result.value(1, "n")[0]
    assert 1.0 <= n <= 2.5 + 1e-9 and n == pytest.approx(2.5, abs=2e-3)
    assert result.at_bound[0, result.column(1, "n")]
    # x of the bulge may move only within [-0.3, +0.2] of its start (24.9): truth 24.4 is outside
    result = _fit(bulge_disk_image, [RelativeRange(1, "x", -0.3, 0.2)])
    x = result.value(1, "x")[0]
    assert 24.6 - 1e-9 <= x <= 25.1 + 1e-9 and x == pytest.approx(24.6, abs=2e-3)


def test_factor_range_binds(bulge_disk_image):
    # the disk starts at R_s = 6 (truth 5); within a factor 1.1 of its start it may not go
    # below 6 / 1.1 = 5.4545, where the fit ends, flagged as constrained
    result = _fit(bulge_disk_image, [FactorRange(2, "r_s", 1.1)])
    r_s = result.value(2, "r_s")[0]
    assert 6.0 / 1.1 - 1e-9 <= r_s <= 6.6 and r_s == pytest.approx(6.0 / 1.1, abs=2e-3)
    assert result.at_bound[0, result.column(2, "r_s")]


def test_difference_and_ratio_of_two_components_bind(bulge_disk_image):
    # truth: mag(2) - mag(1) = -0.8; allowed [-0.5, 3] -> ends at -0.5
    result = _fit(bulge_disk_image, [PairRange(1, 2, "mag", "-", -0.5, 3.0)], retries=2)
    diff = result.value(2, "mag")[0] - result.value(1, "mag")[0]
    assert -0.5 - 1e-9 <= diff <= 3.0 and diff == pytest.approx(-0.5, abs=2e-3)
    # truth: q(1) / q(2) = 1.6; allowed [0.8, 1.3] -> ends at 1.3
    result = _fit(bulge_disk_image, [PairRange(1, 2, "q", "/", 0.8, 1.3)])
    ratio = result.value(1, "q")[0] / result.value(2, "q")[0]
    assert 0.8 <= ratio <= 1.3 + 1e-9 and ratio == pytest.approx(1.3, abs=2e-3)
    assert result.constrained[result.column(2, "q")]


def test_pair_range_with_a_fixed_second_member_bounds_the_first(bulge_disk_image):
    # from the start pa(1) = 25 ends on the limit; the retry rounds find the truth inside
    result = _fit(bulge_disk_image, [PairRange(1, 2, "pa", "-", 5.0, 12.0)], disk={"pa": 30.0},
                  disk_fixed=frozenset({"pa"}), retries=2)
    # pa(2) - pa(1) in [5, 12] with pa(2) = 30 fixed -> pa(1) in [18, 25]; truth 20 is inside
    assert 18.0 <= result.value(1, "pa")[0] <= 25.0
    assert result.value(1, "pa")[0] == pytest.approx(20.0, abs=0.5)


def test_start_outside_a_constraint_range_is_moved_inside_but_other_bounds_are_errors(bulge_disk_image):
    with pytest.warns(UserWarning, match=r"mag\(2\) - mag\(1\) = -0.8"):
        result = _fit(bulge_disk_image, [PairRange(1, 2, "mag", "-", 1.0, 3.0)])
    diff = result.value(2, "mag")[0] - result.value(1, "mag")[0]
    assert 1.0 - 1e-9 <= diff <= 3.0 + 1e-9  # mag(2) - mag(1) of the reported values rounds
    with pytest.raises(ModelError, match="outside"):  # a centre outside the fit region stays an error
        _fit(bulge_disk_image, [], bulge={"x": 60.0})


def test_feedme_with_constraint_file_writes_braces(tmp_path, monkeypatch, bulge_disk_image):
    monkeypatch.chdir(tmp_path)
    fits.writeto("img.fits", bulge_disk_image)
    fits.writeto("sig.fits", np.full(bulge_disk_image.shape, 0.05))
    fits.writeto("psf.fits", PSF)
    open("c.constraints", "w").write("# ties\n1_2 x offset\n1_2 2 offset\n1 n 1 to 5\n")
    open("g.feedme", "w").write(f"""A) img.fits
B) out.fits
C) sig.fits
D) psf.fits
E) 1
F) none
G) c.constraints
H) 1 {SIZE} 1 {SIZE}
I) 40 40
J) {ZP}
K) 0.4 0.4
O) regular
P) 0
 0) sersic
 1) 24.9 23.6 1 1
 3) 17.1 1
 4) 2.6 1
 5) 3.0 1
 9) 0.75 1
10) 25.0 1
 0) expdisk
 1) 24.0 24.6 1 1
 3) 16.3 1
 4) 6.0 1
 9) 0.6 1
10) 40.0 1
""")
    assert main(["fit", "g.feedme", "--quiet"]) == 0
    header = fits.getheader("out.fits", 2)
    import re
    x1 = float(re.match(r"([-\d.]+) \+/- ", header["1_XC"]).group(1))
    x2 = re.fullmatch(r"\{([-\d.]+)\}", header["2_XC"])
    y2 = re.fullmatch(r"\{([-\d.]+)\}", header["2_YC"])
    assert x2 and y2, (header["2_XC"], header["2_YC"])
    assert float(x2.group(1)) - x1 == pytest.approx(24.0 - 24.9, abs=2e-4)  # 4 decimals in the header
    assert "c.constraints" in header["CONSTRNT"]


def test_a_tie_batches_galaxies_with_different_starts_and_one_offset():
    """A tie's constant comes from the initial values: galaxies of a batch may start at
    different values; one offset (or ratio) for all is one number (issue 21:
    bench_multicomponent.py's tied centres), different offsets are kept per galaxy."""
    x = np.array([20.0, 24.0, 28.5])
    comps = [Component("sersic", dict(x=x, y=x, mag=17.0, r_e=3.0, n=2.0, q=0.8, pa=0.0)),
             Component("expdisk", dict(x=x + 0.5, y=x, mag=17.0, r_s=5.0, q=0.5, pa=0.0))]
    layout = ParameterLayout(Model(comps, [Tie((1, 2), "x", "offset"), Tie((1, 2), "y", "offset")]),
                             ((0.5, 48.5), (0.5, 48.5)))
    entry = layout.entries[layout.index(1, "x")]
    assert entry.role == "tied" and entry.const == pytest.approx(0.5)
    comps[1] = Component("expdisk", dict(x=x + np.array([0.5, 0.5, 0.7]), y=x, mag=17.0, r_s=5.0, q=0.5, pa=0.0))
    layout = ParameterLayout(Model(comps, [Tie((1, 2), "x", "offset")]), ((0.5, 48.5), (0.5, 48.5)))
    np.testing.assert_allclose(layout.entries[layout.index(1, "x")].const, [0.5, 0.5, 0.7])
