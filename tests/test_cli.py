"""End-to-end: `galprof fit FEEDME` on a GalSim-rendered galaxy, GALFIT outputs, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from galprof.cli import main
from galprof.io.feedme import read_feedme
from references import FFT_GSPARAMS, galsim_moffat, galsim_sersic, moffat_epsf

FEEDME = """A) img.fits
B) out.fits
C) sig.fits
D) psf.fits
E) 1
F) {mask}
G) none
H) 3 38 3 38
I) 30 30
J) 25.0
K) 0.396 0.396
O) regular
P) {mode}
 0) sersic
 1) 21.0 19.5 1 1
 3) 16.3 1
 4) 4.5 1
 5) 2.5 1
 9) 0.75 1
10) 50.0 1
 Z) 0
 0) sky
 1) 0.0 1
 2) 0.0 0
 3) 0.0 0
 Z) 0
"""

TRUTH = dict(x=20.3, y=19.8, mag=16.0, r_e=3.5, n=1.8, q=0.6, pa=40.0)


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    import galsim
    flux = 10 ** (-0.4 * (TRUTH["mag"] - 25.0))
    gal = galsim_sersic(TRUTH["n"], TRUTH["r_e"], TRUTH["q"], TRUTH["pa"], flux, gsparams=FFT_GSPARAMS)
    conv = galsim.Convolve(gal, galsim_moffat(3.5, 2.8, gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
    img = conv.drawImage(nx=40, ny=40, scale=1.0, offset=(TRUTH["x"] - 20.5, TRUTH["y"] - 20.5)).array
    monkeypatch.chdir(tmp_path)
    fits.writeto("img.fits", img)
    fits.writeto("sig.fits", np.ones_like(img))
    fits.writeto("psf.fits", moffat_epsf(3.5, 2.8, 25))
    return tmp_path


def write_feedme(mode=0, mask="none", name="g.feedme"):
    with open(name, "w") as f:
        f.write(FEEDME.format(mode=mode, mask=mask))
    return name


def test_fit_writes_galfit_outputs_and_restart_reproduces_model(workdir, capsys):
    assert main(["fit", write_feedme(0), "--quiet"]) == 0
    with fits.open("out.fits") as hdus:
        assert len(hdus) == 4
        header = hdus[2].header
        data, model, resid = hdus[1].data, hdus[2].data, hdus[3].data
    assert data.shape == (36, 36)
    assert header["COMP_1"] == "sersic"
    n_text = header["1_N"]
    value, err = (float(t) for t in n_text.split("+/-"))
    assert abs(value / TRUTH["n"] - 1) < 0.005 and err > 0
    assert abs(float(header["1_XC"].split()[0]) - TRUTH["x"]) < 0.02
    assert header["2_DSDX"].startswith("[")
    assert header["CHI2NU"] >= 0 and header["NDOF"] == 36 * 36 - 8
    np.testing.assert_allclose(resid, data - model, atol=1e-4 * data.max())
    # galfit.01 holds the best fit; running it with P) 2 reproduces the same model
    restart = read_feedme("galfit.01")
    assert abs(restart.components[0].values["n"] - value) < 1e-3
    text = open("galfit.01").read().replace("P) 0", "P) 2").replace("B) out.fits", "B) again.fits")
    open("again.feedme", "w").write(text)
    assert main(["fit", "again.feedme", "--quiet"]) == 0
    again = fits.getdata("again.fits", 2)
    np.testing.assert_allclose(again, model, atol=1e-4 * model.max())
    log = open("fit.log").read()
    assert "Chi^2" in log
    # line K (0.396 "/pix): the sizes in arcsec as comment lines
    import re
    match = re.search(r"# comp 1 sersic \[arcsec, 0\.396\"/pix\]: r_e = ([\d.]+) \+/- ([\d.]+)", log)
    assert match, log
    r_e_pix = float(header["1_RE"].split()[0])
    assert float(match.group(1)) == pytest.approx(r_e_pix * 0.396, abs=1e-3)


def test_mode_1_writes_only_the_model(workdir):
    assert main(["fit", write_feedme(1), "--quiet"]) == 0
    with fits.open("out.fits") as hdus:
        assert hdus[0].data.shape == (36, 36) or hdus[-1].data.shape == (36, 36)


def test_missing_file_and_region_errors_name_the_line(workdir, capsys):
    write_feedme(2, mask="nomask.fits")
    assert main(["fit", "g.feedme"]) == 2
    err = capsys.readouterr().err
    assert "g.feedme:6" in err and "nomask.fits" in err
    text = FEEDME.format(mode=2, mask="none").replace("H) 3 38 3 38", "H) 3 60 3 38")
    open("h.feedme", "w").write(text)
    assert main(["fit", "h.feedme"]) == 2
    assert "h.feedme:8" in capsys.readouterr().err


def test_unsupported_component_and_missing_constraint_file_are_clear_errors(workdir, capsys):
    text = FEEDME.format(mode=0, mask="none").replace(" 0) sky", " 0) ferrer", 1)
    open("f.feedme", "w").write(text)
    assert main(["fit", "f.feedme"]) == 2
    err = capsys.readouterr().err
    assert "f.feedme:" in err and "ferrer" in err
    open("c.feedme", "w").write(FEEDME.format(mode=0, mask="none").replace("G) none", "G) my.constraints"))
    assert main(["fit", "c.feedme"]) == 2
    err = capsys.readouterr().err
    assert "c.feedme:7" in err and "my.constraints" in err
    open("my.constraints", "w").write("1 n 0.5 to 8\n2 rs 1 to 3\n")  # the sky has no size
    assert main(["fit", "c.feedme"]) == 2
    err = capsys.readouterr().err
    assert "my.constraints:2" in err and "rs" in err


def test_missing_feedme_is_a_clear_error(workdir, capsys):
    assert main(["fit", "nope.feedme"]) == 2
    assert "nope.feedme" in capsys.readouterr().err


def test_demo_runs(capsys):
    from galprof.cli import run_demo
    out = run_demo(n_galaxies=2, seed=3, quiet=True)
    res = out["result"]
    assert res.converged.all()
    pulls = (res.value(1, "n") - out["truth"]["n"]) / res.error(1, "n")
    assert np.all(np.abs(pulls) < 5)
