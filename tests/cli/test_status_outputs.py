"""`galprof fit` on a feedme whose second component is switched off (mag 60): the same
STATUS (``degenerate: 2_mag``) in the console output, the image block's header, fit.log
and the results table, the flagged values written *value* as GALFIT does, NaN errors
and COV_FLAG set; and ``converged`` for the same galaxy without that component."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from galprof.cli import main
from galprof.profiles import get_profile
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model

SIZE = 24
GALAXY = dict(x=12.3, y=11.8, mag=18.0, r_e=2.5, n=1.5, q=0.7, pa=30.0)

FEEDME = """A) img.fits
B) out.fits
C) sig.fits
D) psf.fits
E) 1
F) none
G) none
H) 1 24 1 24
I) 20 20
J) 25.0
K) 0.4 0.4
O) regular
P) 0
 0) sersic
 1) 12.0 12.1 1 1
 3) 18.3 1
 4) 3.0 1
 5) 1.2 1
 9) 0.7 1
10) 30.0 1
 Z) 0
{disk}"""

DISK = """ 0) expdisk
 1) 12.0 12.0 1 1
 3) 60.0 1
 4) 4.0 1
 9) 0.6 1
10) 10.0 1
 Z) 0
"""


def gaussian_psf(fwhm=2.2, size=9):
    s = fwhm / (2 * math.sqrt(2 * math.log(2)))
    y, x = np.mgrid[:size, :size] - size // 2
    psf = np.exp(-(x**2 + y**2) / (2 * s * s))
    return psf / psf.sum()


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    psf = gaussian_psf()
    frame = Frame(1, 1, SIZE, SIZE, 25.0, 1.0)
    params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in GALAXY.items()}
    with torch.no_grad():
        image = render_model([(get_profile("sersic"), params)], frame, prepare_psf(psf, dtype=torch.float64))
    image = image.numpy()[0] + np.random.default_rng(1).normal(0.0, 1.0, (SIZE, SIZE))
    monkeypatch.chdir(tmp_path)
    fits.writeto("img.fits", image.astype(np.float32))
    fits.writeto("sig.fits", np.ones((SIZE, SIZE), dtype=np.float32))
    fits.writeto("psf.fits", psf)
    return tmp_path


def test_a_vanished_component_has_one_status_everywhere(workdir, capsys):
    with open("bd.feedme", "w") as f:
        f.write(FEEDME.format(disk=DISK))
    assert main(["fit", "bd.feedme", "-o", "results.ecsv"]) == 0
    out = capsys.readouterr().out
    assert "status = degenerate: 2_mag" in out
    assert "*60.0000* +/- nan" in out

    with fits.open("out.fits") as hdus:
        header = hdus[2].header
    assert header["STATUS"] == "degenerate: 2_mag"
    assert header["2_MAG"].startswith("*60.0000*") and header["2_MAG"].endswith("*nan*")
    assert not header["1_MAG"].startswith("*")

    log = open("fit.log").read()
    assert "# status: degenerate: 2_mag" in log
    disk_line = next(line for line in log.splitlines() if line.startswith(" expdisk"))
    assert "*60.00*" in disk_line

    table = Table.read("results.ecsv")
    assert table["STATUS"][0] == "degenerate: 2_mag" and table["COV_FLAG"][0]
    assert np.isnan(table["2_MAG_ERR"][0]) and np.isfinite(table["1_MAG_ERR"][0])


def test_a_good_fit_is_converged_everywhere(workdir, capsys):
    with open("g.feedme", "w") as f:
        f.write(FEEDME.format(disk=""))
    assert main(["fit", "g.feedme", "-o", "results.ecsv"]) == 0
    assert "status = converged" in capsys.readouterr().out
    with fits.open("out.fits") as hdus:
        assert hdus[2].header["STATUS"] == "converged"
    assert "# status: converged" in open("fit.log").read()
    table = Table.read("results.ecsv")
    assert table["STATUS"][0] == "converged" and not table["COV_FLAG"][0]
