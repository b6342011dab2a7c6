"""`galprof fit` on GALFITM multi-band feedmes: GalSim images of one galaxy in three bands
(per-band PSFs, noise and zeropoints), fitted with every band together. The fitted
magnitudes and shared structure agree with GalSim's truth within the reported errors;
the results table has per-band columns (``1_MAG_g``), the image block GALFITM's
extensions, the restart file reads back to the fitted values, fit.log gets GALFITM's
entry and the STATUS; two feedmes of one structure are fitted as one batch."""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galprof.cli import main
from galprof.io.galfitm import read_galfitm_feedme

SIZE = 40
ZP = (25.0, 25.2, 24.9)
BANDS = (("g", 4770, 3.0), ("r", 6231, 2.6), ("i", 7625, 2.3))
TRUTH = dict(x=20.4, y=19.7, r_e=3.5, n=2.2, q=0.7, pa=30.0)
MAGS = (17.9, 17.3, 17.0)

FEEDME = """A) {prefix}g.fits,{prefix}r.fits,{prefix}i.fits
A1) g,r,i
A2) 4770,6231,7625
B) {prefix}out.fits
C) {prefix}sig_g.fits,{prefix}sig_r.fits,{prefix}sig_i.fits
D) psf_g.fits,psf_r.fits,psf_i.fits
E) 1
F) none
G) none
H) 1 40 1 40
I) 40 40
J) 25.0,25.2,24.9
K) 0.4 0.4
O) regular
P) 0
 0) sersic
 1) 21.0  1
 2) 19.0  1
 3) 18.4,17.8,17.4  3
 4) 5.0  1
 5) 2.5  1
 9) 0.8  1
10) 40.0  1
 Z) 0
"""


def write_galaxy(prefix: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for (label, _, fwhm), mag, zp in zip(BANDS, MAGS, ZP):
        flux = 10 ** (-0.4 * (mag - zp))
        q = TRUTH["q"]
        gal = galsim.Sersic(n=TRUTH["n"], half_light_radius=TRUTH["r_e"] * np.sqrt(q), flux=flux)
        gal = gal.shear(q=q, beta=(TRUTH["pa"] + 90.0) * galsim.degrees)
        offset = (TRUTH["x"] - (SIZE / 2 + 0.5), TRUTH["y"] - (SIZE / 2 + 0.5))
        image = galsim.Convolve(gal, galsim.Moffat(beta=3.5, fwhm=fwhm)).drawImage(
            nx=SIZE, ny=SIZE, scale=1.0, offset=offset).array
        sigma = np.sqrt(0.3**2 + np.clip(image, 0, None) / 4.0)
        fits.writeto(f"{prefix}{label}.fits", (image + rng.normal(0, 1, image.shape) * sigma).astype(np.float32))
        fits.writeto(f"{prefix}sig_{label}.fits", sigma.astype(np.float32))
    with open(f"{prefix}m.feedme", "w") as f:
        f.write(FEEDME.format(prefix=prefix))


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for label, _, fwhm in BANDS:
        stamp = galsim.Moffat(beta=3.5, fwhm=fwhm).drawImage(nx=17, ny=17, scale=1.0).array
        fits.writeto(f"psf_{label}.fits", stamp / stamp.sum())
    write_galaxy("a_", seed=1)
    return tmp_path


def test_a_multiband_feedme_is_fitted_and_written_as_galfitm_does(workdir):
    assert main(["fit", "a_m.feedme", "-o", "t.ecsv"]) == 0
    row = Table.read("t.ecsv")[0]
    assert row["STATUS"] == "converged"
    for (label, _, _), mag in zip(BANDS, MAGS):
        assert abs(row[f"1_MAG_{label}"] - mag) < 4 * row[f"1_MAG_{label}_ERR"], label
    for name, key in (("x", "1_XC"), ("y", "1_YC"), ("r_e", "1_RE"), ("n", "1_N"), ("q", "1_AR"), ("pa", "1_PA")):
        assert abs(row[key] - TRUTH[name]) < 4 * row[key + "_ERR"], name
    assert "1_RE_g" not in row.colnames  # a shared parameter has one column
    with fits.open("a_out.fits") as block:
        names = [h.name for h in block]
        assert names[1:10] == ["INPUT_G", "INPUT_R", "INPUT_I", "MODEL_G", "MODEL_R", "MODEL_I",
                               "RESIDUAL_G", "RESIDUAL_R", "RESIDUAL_I"]
        data = fits.getdata("a_r.fits")
        np.testing.assert_allclose(block["INPUT_R"].data, data)
        np.testing.assert_allclose(block["RESIDUAL_R"].data, data - block["MODEL_R"].data, atol=1e-4)
    restart = read_galfitm_feedme("galfit.01")
    sersic = restart.components[0]
    np.testing.assert_allclose(sersic.values["mag"], [row["1_MAG_g"], row["1_MAG_r"], row["1_MAG_i"]], atol=1e-6)
    np.testing.assert_allclose(sersic.values["r_e"], row["1_RE"], rtol=1e-6)
    assert sersic.terms["mag"] == 3 and sersic.terms["r_e"] == 1
    log = open("fit.log").read()
    assert " r  : sersic" in log and log.rstrip().endswith("# status: converged")


def test_two_multiband_feedmes_are_fitted_together(workdir, capsys):
    write_galaxy("b_", seed=2)
    assert main(["fit", "a_m.feedme", "b_m.feedme", "-o", "t.ecsv"]) == 0
    assert "fitting 2 multi-band feedmes together" in capsys.readouterr().out
    table = Table.read("t.ecsv")
    assert list(table["STATUS"]) == ["converged", "converged"]
    assert abs(table["1_MAG_i"][1] - MAGS[2]) < 4 * table["1_MAG_i_ERR"][1]


def test_a_band_of_another_size_is_refused_by_name(workdir, capsys):
    fits.writeto("a_i.fits", np.zeros((30, 30), dtype=np.float32), overwrite=True)
    assert main(["fit", "a_m.feedme"]) == 2
    err = capsys.readouterr().err
    assert "a_m.feedme" in err and "band i" in err


def test_auto_init_detects_on_the_stacked_bands(workdir):
    """--auto-init always replaces the feedme's starting values (here far off: centre 6 px
    away, magnitudes 2 mag faint, R_e 4x) with a detection on the stacked bands; the fit
    then recovers the truth."""
    text = open("a_m.feedme").read()
    text = text.replace(" 1) 21.0  1", " 1) 26.0  1").replace(" 2) 19.0  1", " 2) 15.0  1")
    text = text.replace("18.4,17.8,17.4", "20.0,19.5,19.0").replace(" 4) 5.0  1", " 4) 14.0  1")
    open("far.feedme", "w").write(text.replace("a_out.fits", "far_out.fits"))
    assert main(["fit", "far.feedme", "--auto-init", "always", "-o", "t.ecsv"]) == 0
    row = Table.read("t.ecsv")[0]
    assert row["STATUS"] == "converged" and row["AUTO_INIT"]
    for (label, _, _), mag in zip(BANDS, MAGS):
        assert abs(row[f"1_MAG_{label}"] - mag) < 4 * row[f"1_MAG_{label}_ERR"], label
    for name, key in (("x", "1_XC"), ("y", "1_YC"), ("r_e", "1_RE"), ("n", "1_N")):
        assert abs(row[key] - TRUTH[name]) < 4 * row[key + "_ERR"], name
