"""GALFIT's bending (B), coordinate-rotation (R) and truncation (T) lines: read into
parameters, written back into restart files and image-block headers, named in
constraint files."""

from __future__ import annotations

import warnings

import pytest

from galprof.errors import FeedmeError
from galprof.constraints import Range, RelativeRange, Tie
from galprof.io.constraints import constraint_slots, parse_constraints
from galprof.io.feedme import format_feedme, parse_feedme
from galprof.io.galfit_output import ComponentReport, galfit_header_cards
from galprof.io.inputs import model_from_feedme

CONTROL = """A) gal.fits
B) out.fits
C) none
D) none
H) 1 60 1 60
J) 25.0
K) 1 1
P) 0
"""

COMPONENTS = """
# Component number: 1
 0) sersic
 1) 30 31 1 1
 3) 18.5 1
 4) 6 1
 5) 2 0
 9) 0.6 1
10) 20 1
C0) 0.1 1
F1) 0.05 30 1 1
B1) 0.3 1
B3) -0.2 0
R0) powerlaw                # PA rotation function (power, log, none)
R1) 2 0
R2) 15 1
R3) 120 1
R4) 0.5 1
R9) 35 1
R10) 40 0
To) 2                       # outer truncation by component 2
 Z) 0

# Component number: 2
T0) radial2
T1) 31 30 0 0
T4) 12 1
T5) 20 0
T9) 0.8 1
T10) 10 1

# Component number: 3
 0) expdisk
 1) 30 31 1 1
 3) 19 1
 4) 8 1
 9) 0.5 1
10) -30 1
R0) log
R1) 1 1
R2) 10 1
R3) -90 1
R4) 4 1
Ti) 4
 Z) 0

# Component number: 4
T0) length
T4) 5 1
T5) 3 1

# Component number: 5
 0) sky
 1) 0.1 1
 2) 0 0
 3) 0 0
"""


def read(text, path="test.feedme"):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return parse_feedme(text, path)


def test_hidden_lines_become_parameters():
    feedme = read(CONTROL + COMPONENTS)
    sersic, disk, sky = feedme.components
    assert [c.number for c in feedme.components] == [1, 3, 5]  # GALFIT counts the truncation blocks
    assert sersic.truncation_blocks == (("out", 2),) and disk.truncation_blocks == (("in", 4),)
    assert {k: sersic.values[k] for k in ("b1", "b3", "c0", "f1_amp", "f1_phase")} == \
        {"b1": 0.3, "b3": -0.2, "c0": 0.1, "f1_amp": 0.05, "f1_phase": 30.0}
    assert sersic.free["b1"] and not sersic.free["b3"]
    assert {k: v for k, v in sersic.values.items() if k.startswith("rot_")} == dict(
        rot_r_in=2.0, rot_r_out=15.0, rot_theta_out=120.0, rot_alpha=0.5, rot_incl=35.0, rot_sky_pa=40.0)
    assert not sersic.free["rot_r_in"] and sersic.free["rot_r_out"] and not sersic.free["rot_sky_pa"]
    # T1 centre, T4 break radius, T5 of a type-2 truncation: the radius of the 1 % point, T9 q, T10 PA
    assert {k: v for k, v in sersic.values.items() if k.startswith("trunc_")} == dict(
        trunc_out_x=31.0, trunc_out_y=30.0, trunc_out_break=12.0, trunc_out_soft_at=20.0, trunc_out_q=0.8,
        trunc_out_pa=10.0)
    assert not sersic.free["trunc_out_x"] and sersic.free["trunc_out_q"]
    assert sersic.line_numbers["trunc_out_break"] == 35 and sersic.line_numbers["rot_theta_out"] == 25
    # a log spiral without R9), R10): face-on, sky PA 0, both fixed; a length truncation
    assert disk.values["rot_r_ws"] == 4.0 and disk.values["rot_incl"] == 0.0 and not disk.free["rot_sky_pa"]
    assert disk.values["trunc_in_length_break"] == 5.0 and disk.values["trunc_in_length_soft"] == 3.0
    assert sky.number == 5


def test_restart_round_trip_keeps_values_flags_and_numbering():
    feedme = read(CONTROL + COMPONENTS)
    text = format_feedme(feedme)
    assert "R0) power" in text and "T0) radial2" in text and "T0) length" in text
    assert "To) 2" in text and "Ti) 4" in text
    again = read(text, feedme.path)
    assert again == feedme
    # new values go into the components' lines and into their truncation blocks
    new = [dict(b1=0.45, rot_theta_out=133.5, trunc_out_break=12.5), dict(trunc_in_length_break=5.5), {}]
    moved = read(format_feedme(feedme, new), feedme.path)
    assert moved.components[0].values["b1"] == 0.45 and moved.components[0].values["rot_theta_out"] == 133.5
    assert moved.components[0].values["trunc_out_break"] == 12.5
    assert moved.components[1].values["trunc_in_length_break"] == 5.5
    assert moved.components[0].free == feedme.components[0].free


def test_a_truncation_block_may_come_first_and_blocks_get_numbers_when_written():
    text = CONTROL + """
T0) radial
T4) 10 1
T5) 4 0
 0) sersic
 1) 30 31 1 1
 3) 18.5 1
 4) 6 1
 5) 2 0
 9) 0.6 1
10) 20 1
To) 1
"""
    feedme = read(text)
    (comp,) = feedme.components
    assert comp.number == 2 and comp.truncation_blocks == (("out", 1),)
    assert read(format_feedme(feedme)) == feedme


@pytest.mark.parametrize("extra, line, fragment", [
    ("R0) tanh\nR1) 1 1\nR2) 9 1\nR3) 50 1\nR4) 0.5 1\n", 20, "takes no R4)"),
    ("R0) power\nR1) 1 1\nR3) 50 1\nR4) 0.5 1\n", 16, "needs R2)"),
    ("R5) 1 1\n", 16, "not a coordinate-rotation line"),
    ("B0) 0.1 1\n", 16, "bending modes run"),
    ("Ti) 1\n", 16, "component 1 is not a truncation block"),
    ("To) 9\nT0) radial\nT4) 10 1\nT5) 3 1\n", 16, "component 9 is not a truncation block"),
    ("To) 9 10\n", 16, "names one truncation block"),
    ("To) 9\nT0) radial-b\n", 17, "truncation types"),
    ("To) 2\nT0) length\nT4) 10 1\nT5) 3 1\nT9) 0.5 1\n", 20, "has no axis ratio"),
    ("To) 2\nT0) radial\nT4) 10 1\nT5) 3 1\nT6) 3 1\n", 20, "not a line of a truncation block"),
    ("To) 2\nTo) 2\n", 17, "given twice"),
    ("To) 2\nT0) radial\nT4) 10 1\nT5) 3 1\n 0) sersic\n 1) 3 3 1 1\n 3) 20 1\n 4) 3 1\n 5) 1 1\n 9) 1 1\n10) 0 1\n"
     "To) 2\n", 27, "already used by component 1"),
])
def test_errors_name_the_file_and_line(extra, line, fragment):
    """The component's lines are 9-15; the hidden lines start at line 16."""
    text = CONTROL + " 0) sersic\n 1) 30 31 1 1\n 3) 18.5 1\n 4) 6 1\n 5) 2 0\n 9) 0.6 1\n10) 20 1\n" + extra
    with pytest.raises(FeedmeError) as info:
        parse_feedme(text, "bad.feedme")
    assert str(info.value).startswith(f"bad.feedme:{line}:"), str(info.value)
    assert fragment in str(info.value)


def test_hidden_lines_on_a_point_source_are_refused():
    text = CONTROL + " 0) psf\n 1) 30 31 1 1\n 3) 18.5 1\nB1) 0.1 1\n"
    with pytest.raises(FeedmeError, match="bad.feedme:12: .*no bending, rotation or truncation"):
        parse_feedme(text, "bad.feedme")


def test_rotation_none_is_read_with_its_lines_ignored_and_unused_blocks_warn():
    text = CONTROL + " 0) sersic\n 1) 30 31 1 1\n 3) 18.5 1\n 4) 6 1\n 5) 2 0\n 9) 0.6 1\n10) 20 1\n" \
        "R0) none\nR1) 1 1\nR2) 9 1\n\nT0) radial\nT4) 10 1\nT5) 3 1\n"
    with pytest.warns(UserWarning) as caught:
        feedme = parse_feedme(text, "t.feedme")
    messages = [str(w.message) for w in caught]
    assert any("'R0) none'" in m for m in messages) and any("not named by any component" in m for m in messages)
    assert not any(k.startswith(("rot_", "trunc_")) for k in feedme.components[0].values)


def test_constraints_name_hidden_parameters_as_galfit_does(tmp_path, monkeypatch):
    feedme = read(CONTROL + COMPONENTS)
    text = """
1   f1a   -0.1 0.1
1   f1p   0 to 90
1   c     -0.5 to 0.5
1   b1    -1 1
1   r3    60 to 180
1   r4    0 to 2
2   4     10 to 14        # truncation block 2: its T4 (break radius) belongs to component 1
2   q     0.5 to 1
4   5     1 to 6
3   r4    1 to 10         # component 3 (the model's second): log winding radius
1_3 r2    ratio
"""
    got = parse_constraints(text, "c.txt", constraint_slots(feedme.components))
    assert got == [
        RelativeRange(1, "f1_amp", -0.1, 0.1), Range(1, "f1_phase", 0, 90), Range(1, "c0", -0.5, 0.5),
        RelativeRange(1, "b1", -1, 1), Range(1, "rot_theta_out", 60, 180), Range(1, "rot_alpha", 0, 2),
        Range(1, "trunc_out_break", 10, 14), Range(1, "trunc_out_q", 0.5, 1),
        Range(2, "trunc_in_length_soft", 1, 6), Range(2, "rot_r_ws", 1, 10), Tie((1, 2), "rot_r_out", "ratio")]
    with pytest.raises(FeedmeError, match="c.txt:1: component 3 \\(expdisk\\) has no parameter 'b2'"):
        parse_constraints("3 b2 -1 1", "c.txt", constraint_slots(feedme.components))
    with pytest.raises(FeedmeError, match="c.txt:1: component 4 \\(truncation\\) has no parameter 'q'"):
        parse_constraints("4 q 0.1 to 1", "c.txt", constraint_slots(feedme.components))
    # a constraint file alone (galprof check): hidden names read without a component to check them
    assert parse_constraints("1_2 f1p offset\n1 b2 0 1", "c", ["sersic", "sersic"]) == [
        Tie((1, 2), "f1_phase", "offset"), RelativeRange(1, "b2", 0, 1)]
    # and through the feedme's line G, as a model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text(text)
    model = model_from_feedme(parse_feedme((CONTROL + COMPONENTS).replace("C) none", "C) none\nG) c.txt"),
                                           "test.feedme"))
    assert model.constraints == tuple(got)
    assert [c.profile for c in model.components] == ["sersic", "expdisk", "sky"]


def test_header_cards_of_hidden_parameters():
    feedme = read(CONTROL + COMPONENTS)
    reports = [ComponentReport(c.number, c.profile, dict(c.values), {n: 0.01 for n in c.values}, dict(c.free),
                               {}) for c in feedme.components]
    cards = {key: (value, comment) for key, value, comment in galfit_header_cards(reports, chi2=1.0, ndof=1, nfree=1,
                                                                                 chi2nu=1.0)}
    assert all(len(key) <= 8 for key in cards if "_F1_" not in key)  # B, R and T keys are FITS keywords
    assert cards["1_B1"][0] == "0.3000 +/- 0.0100" and cards["1_B3"][0] == "[-0.2000]"
    assert cards["1_RANG"][0] == "120.0000 +/- 0.0100" and cards["1_RALPHA"][0] == "0.5000 +/- 0.0100"
    assert cards["3_RWS"][0] == "4.0000 +/- 0.0100" and cards["1_SPA"][0] == "[40.0000]"
    assert cards["1_TORB"][0] == "12.0000 +/- 0.0100" and cards["1_TORS"][0] == "[20.0000]"
    assert cards["3_TILRB"][0] == "5.0000 +/- 0.0100"
    assert cards["1_MAG"][1].startswith("SB at break radius")
