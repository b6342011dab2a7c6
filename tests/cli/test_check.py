"""galprof check: what galprof understands of each file, without fitting."""

from __future__ import annotations

import json
import pathlib

import pytest

from galprof.cli import main
from galprof.io.imfit_output import bestfit_header_lines

FEEDME = """A) missing.fits
B) out.fits
C) none
D) none
F) none
G) cons.txt
H) 1 50 1 60
J) 25.0
P) 0
0) sersic   object type
1) 25 30 1 1
3) 18 1
4) 5 1
5) 2 0
9) 0.8 1
10) 10 1
0) sky
1) 0.1 1
2) 0 0
3) 0 0
"""
CONSTRAINTS = "# n within limits\n1 n 0.5 to 8\n"
IMFIT = "GAIN 4\nNCOLS 100\nX0 30 20,40\nY0 31\nFUNCTION Sersic\nPA 10\nell 0.2 fixed\nn 2\nI_e 1\nr_e 5 1,20\n"


@pytest.fixture()
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pathlib.Path("g.feedme").write_text(FEEDME)
    pathlib.Path("cons.txt").write_text(CONSTRAINTS)
    pathlib.Path("config.dat").write_text(IMFIT)
    header = bestfit_header_lines(program="galprof", command="galprof imfit img.fits -c config.dat", converged=True,
                                  iterations=5, statistic_name="chi-squared (data-based errors)", best=10.0,
                                  reduced=1.0, aic=12.0, bic=13.0)
    pathlib.Path("bestfit.dat").write_text("\n".join(header) + "\n\n" + IMFIT)
    pathlib.Path("broken.feedme").write_text(FEEDME.replace("5) 2 0", "5) 2 on"))
    pathlib.Path("notes.txt").write_text("just some words\n")
    return tmp_path


def test_every_kind_is_understood(files, capsys):
    assert main(["check", "g.feedme", "cons.txt", "config.dat", "bestfit.dat", "--json"]) == 0
    records = {r["file"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    feedme = records["g.feedme"]
    assert feedme["kind"] == "feedme" and feedme["status"] == "ok"
    assert feedme["warnings"] == ["g.feedme:1: file 'missing.fits' (line A) does not exist"]
    sersic, sky = feedme["components"]
    assert sersic["profile"] == "sersic" and sersic["values"]["n"] == 2 and not sersic["free"]["n"]
    assert sersic["free"]["r_e"] and sky["values"]["sky"] == 0.1
    assert feedme["control"]["H"] == [1, 50, 1, 60] and len(feedme["constraints"]) == 1
    assert records["cons.txt"]["kind"] == "constraints" and len(records["cons.txt"]["constraints"]) == 1
    config = records["config.dat"]
    assert config["kind"] == "imfit-config" and config["prelude"] == {"GAIN": 4.0}
    assert any("unknown keyword 'NCOLS'" in w for w in config["warnings"])
    (function,) = config["components"]
    assert function["profile"] == "Sersic" and function["values"]["X0"] == 30 and not function["free"]["ell"]
    assert records["bestfit.dat"]["kind"] == "imfit-bestfit" and records["bestfit.dat"]["status"] == "ok"


def test_refusals_name_file_and_line_and_set_the_exit_status(files, capsys):
    assert main(["check", "g.feedme", "broken.feedme", "notes.txt", "nowhere.dat"]) == 1
    out = capsys.readouterr().out
    assert "g.feedme: feedme, ok" in out and "1 sersic: x=25, y=30" in out and "n=2 (fixed)" in out
    assert "broken.feedme: feedme, refused: broken.feedme:14: line '5)': fit flag must be 0" in out
    assert "notes.txt: unknown, refused" in out
    assert "nowhere.dat: unknown, refused: nowhere.dat: cannot read the file" in out
