"""`galprof fit --starts N` and `--restarts auto|on|off` reach galprof.fit: the LM
iterations in the results table count every start and restart, so extra starts add
iterations and switching off the restarts near the fit removes them; the fits still
recover the bulge + disk they were made from. `--starts 0` is refused by name."""

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

SIZE = 40
BULGE = dict(x=20.3, y=19.8, mag=17.8, r_e=2.0, n=3.0, q=0.85, pa=20.0)
DISK = dict(x=20.3, y=19.8, mag=17.2, r_s=5.0, q=0.55, pa=60.0)

FEEDME = f"""A) img.fits
B) out.fits
C) sig.fits
D) psf.fits
E) 1
F) none
G) none
H) 1 {SIZE} 1 {SIZE}
I) 25 25
J) 25.0
K) 0.4 0.4
O) regular
P) 0
 0) sersic
 1) 20.0 20.5 1 1
 3) 18.3 1
 4) 3.0 1
 5) 2.5 1
 9) 0.85 1
10) 20.0 1
 Z) 0
 0) expdisk
 1) 21.0 19.0 1 1
 3) 17.7 1
 4) 7.0 1
 9) 0.7 1
10) 75.0 1
 Z) 0
"""


def gaussian_psf(fwhm=2.5, size=11):
    s = fwhm / (2 * math.sqrt(2 * math.log(2)))
    y, x = np.mgrid[:size, :size] - size // 2
    psf = np.exp(-(x**2 + y**2) / (2 * s * s))
    return psf / psf.sum()


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    psf = gaussian_psf()
    frame = Frame(1, 1, SIZE, SIZE, 25.0, 1.0)
    comps = [(get_profile(name), {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()})
             for name, values in (("sersic", BULGE), ("expdisk", DISK))]
    with torch.no_grad():
        image = render_model(comps, frame, prepare_psf(psf, dtype=torch.float64)).numpy()[0]
    sigma = np.full((SIZE, SIZE), 0.05)
    image = image + np.random.default_rng(3).normal(0.0, 0.05, (SIZE, SIZE))
    monkeypatch.chdir(tmp_path)
    fits.writeto("img.fits", image.astype(np.float32))
    fits.writeto("sig.fits", sigma.astype(np.float32))
    fits.writeto("psf.fits", psf)
    with open("bd.feedme", "w") as f:
        f.write(FEEDME)
    return tmp_path


def fitted(table: str, *options) -> dict:
    assert main(["fit", "bd.feedme", "--quiet", "--dtype", "float64", "-o", table, *options]) == 0
    row = Table.read(table)[0]
    return {name: row[name] for name in row.colnames}


def test_starts_and_restarts_reach_the_fit(workdir):
    off = fitted("off.ecsv", "--restarts", "off")
    auto = fitted("auto.ecsv")
    more = fitted("more.ecsv", "--restarts", "off", "--starts", "3")
    for row in (off, auto, more):
        assert row["STATUS"] == "converged"
        for column, truth in (("1_N", BULGE["n"]), ("1_RE", BULGE["r_e"]), ("2_RS", DISK["r_s"]),
                              ("1_MAG", BULGE["mag"]), ("2_MAG", DISK["mag"])):
            assert abs(row[column] - truth) < 5 * row[column + "_ERR"], column
    # a bulge + disk with a free n restarts near its fit by default: more iterations
    assert auto["ITERATIONS"] > off["ITERATIONS"]
    assert more["ITERATIONS"] > off["ITERATIONS"]


def test_zero_starts_is_refused(workdir, capsys):
    assert main(["fit", "bd.feedme", "--quiet", "--starts", "0"]) == 2
    assert "--starts 0" in capsys.readouterr().err
