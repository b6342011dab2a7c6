"""End-to-end: `galprof fit FEEDME` on a GalSim-rendered galaxy, GALFIT outputs, and clear errors."""

from __future__ import annotations

import pathlib

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
    text = FEEDME.format(mode=0, mask="none").replace(" 0) sky", " 0) blob", 1)
    open("f.feedme", "w").write(text)
    assert main(["fit", "f.feedme"]) == 2
    err = capsys.readouterr().err
    assert "f.feedme:" in err and "blob" in err
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


def _feedme_text(image, psf, out, region, x, y, zp=25.0):
    return f"""A) {image}
B) {out}
C) none
D) {psf}
E) 1
F) none
G) none
H) {region}
I) 100 100
J) {zp}
K) 0.4 0.4
O) regular
P) 0
 0) sersic
 1) {x} {y} 1 1
 3) 16.5 1
 4) 4.0 1
 5) 2.0 1
 9) 0.7 1
10) 30.0 1
 0) sky
 1) 0.0 1
 2) 0.0 0
 3) 0.0 0
"""


def test_several_feedmes_are_fitted_as_one_batch(tmp_path, monkeypatch, capsys):
    """Different image sizes, fit regions, PSFs and zeropoints in one batch; each writes
    its own outputs in its own image coordinates, equal to fitting it alone."""
    import galsim
    monkeypatch.chdir(tmp_path)
    truths = [dict(x=30.4, y=27.7, mag=16.0, r_e=3.0, n=2.5, q=0.6, pa=40.0, zp=25.0, beta=3.5, fwhm=2.8, size=(60, 56)),
              dict(x=41.2, y=45.9, mag=19.0, r_e=5.0, n=1.2, q=0.45, pa=-20.0, zp=27.5, beta=3.0, fwhm=2.4,
                   size=(70, 80))]
    for k, t in enumerate(truths):
        flux = 10 ** (-0.4 * (t["mag"] - t["zp"]))
        gal = galsim_sersic(t["n"], t["r_e"], t["q"], t["pa"], flux, gsparams=FFT_GSPARAMS)
        conv = galsim.Convolve(gal, galsim_moffat(t["beta"], t["fwhm"], gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
        nx, ny = t["size"]
        img = conv.drawImage(nx=nx, ny=ny, scale=1.0, offset=(t["x"] - (nx + 1) / 2, t["y"] - (ny + 1) / 2)).array
        rng = np.random.default_rng(k)
        hdu = fits.PrimaryHDU(img + 100.0 + rng.normal(0, 0.02, img.shape))
        hdu.header["GAIN"] = 1e6  # a sigma image from the data with a tiny Poisson part
        hdu.writeto(f"img{k}.fits")
        fits.writeto(f"psf{k}.fits", moffat_epsf(t["beta"], t["fwhm"], 25 if k == 0 else 19))
    regions = ["5 55 3 52", "12 66 10 76"]
    starts = [(30.0, 28.2), (41.8, 45.5)]
    for k, t in enumerate(truths):
        text = _feedme_text(f"img{k}.fits", f"psf{k}.fits", f"out{k}.fits", regions[k], *starts[k], zp=t["zp"])
        open(f"g{k}.feedme", "w").write(text)
        open(f"alone{k}.feedme", "w").write(text.replace(f"out{k}.fits", f"alone{k}.fits"))
    assert main(["fit", "g0.feedme", "g1.feedme"]) == 0
    assert "fitting 2 feedmes together" in capsys.readouterr().out
    for k in range(2):
        assert main(["fit", f"alone{k}.feedme", "--quiet"]) == 0
    for k, t in enumerate(truths):
        batch, alone = fits.getheader(f"out{k}.fits", 2), fits.getheader(f"alone{k}.fits", 2)
        for key, name in (("1_XC", "x"), ("1_YC", "y"), ("1_MAG", "mag"), ("1_RE", "r_e"), ("1_N", "n")):
            got = float(batch[key].split()[0])
            assert got == pytest.approx(float(alone[key].split()[0]), rel=2e-3, abs=2e-3), (k, key)
            assert got == pytest.approx(t[name], rel=0.02, abs=0.05), (k, key, got)
        assert batch["NDOF"] == alone["NDOF"]
        assert float(batch["2_SKY"].split()[0]) == pytest.approx(float(alone["2_SKY"].split()[0]), abs=1e-3)
        assert float(batch["2_SKY"].split()[0]) == pytest.approx(100.0, abs=0.01)
        data = fits.getdata(f"out{k}.fits", 1)
        assert data.shape == ((52 - 3 + 1, 55 - 5 + 1) if k == 0 else (76 - 10 + 1, 66 - 12 + 1))


def test_a_bad_feedme_does_not_stop_the_others(workdir, capsys):
    write_feedme(0, name="good.feedme")
    assert main(["fit", "missing.feedme", "good.feedme", "--quiet"]) == 2
    assert "missing.feedme" in capsys.readouterr().err
    assert fits.getheader("out.fits", 2)["COMP_1"] == "sersic"


KING_FEEDME = """A) king.fits
B) king_out.fits
C) none
D) none
H) 1 48 1 48
J) 24.0
K) 0.4 0.4
P) 0
 0) king
 1) 24.8 23.9 1 1
 3) 20.3 1
 4) 2.5 1
 5) 22.0 1
 6) 2.0 0
 9) 0.7 1
10) 25.0 1
C0) 0.0 1
 Z) 0
"""


def test_fit_of_a_boxy_king_feedme_reads_line_k_and_c0(tmp_path, monkeypatch):
    """A GALFIT king component with a C0 line: surface brightness mu_0 through the plate
    scale of line K, boxiness fitted, both written to the header and the restart file.
    The image is made by numpy from GALFIT's formulas (6 x 6 Gauss nodes per pixel)."""
    truth = dict(x=24.3, y=24.6, mu_0=20.0, r_c=3.0, r_t=20.0, alpha=2.0, q=0.6, pa=30.0, c0=0.4)
    nodes, weights = np.polynomial.legendre.leggauss(6)
    sub = (np.arange(1, 49)[:, None] + nodes[None, :] / 2).ravel()
    w = np.tile(weights / 2, 48)
    dx, dy = sub[None, :] - truth["x"], sub[:, None] - truth["y"]
    t = np.radians(truth["pa"])
    u = -dx * np.sin(t) + dy * np.cos(t)
    v = (-dx * np.cos(t) - dy * np.sin(t)) / truth["q"]
    c = truth["c0"] + 2
    r = (np.abs(u) ** c + np.abs(v) ** c) ** (1 / c)
    i0 = 0.4 * 0.4 * 10 ** (-0.4 * (truth["mu_0"] - 24.0))
    edge = (1 + (truth["r_t"] / truth["r_c"]) ** 2) ** (-1 / truth["alpha"])
    shape = np.where(r < truth["r_t"], (1 + (r / truth["r_c"]) ** 2) ** (-1 / truth["alpha"]) - edge, 0.0) ** 2
    image = (i0 * shape / (1 - edge) ** 2 * w[None, :] * w[:, None]).reshape(48, 6, 48, 6).sum((1, 3))
    monkeypatch.chdir(tmp_path)
    fits.writeto("king.fits", image)
    open("king.feedme", "w").write(KING_FEEDME)
    assert main(["fit", "king.feedme", "--quiet"]) == 0
    with fits.open("king_out.fits") as hdus:
        header = hdus[2].header
    assert header["COMP_1"] == "king"
    assert float(header["1_MU_0"].split()[0]) == pytest.approx(truth["mu_0"], abs=0.01)
    assert float(header["1_C0"].split()[0]) == pytest.approx(truth["c0"], abs=0.01)
    restart = read_feedme("galfit.01")
    comp = restart.components[0]
    assert comp.values["r_c"] == pytest.approx(truth["r_c"], rel=0.01)
    assert comp.values["r_t"] == pytest.approx(truth["r_t"], rel=0.01)
    assert comp.values["c0"] == pytest.approx(truth["c0"], abs=0.01) and comp.free["c0"]
    assert not comp.free["alpha"]


def test_batch_of_feedmes_writes_each_output_and_one_table(workdir, capsys):
    from astropy.table import Table

    write_feedme(0, name="a.feedme")
    open("b.feedme", "w").write(FEEDME.format(mode=0, mask="none").replace("B) out.fits", "B) out_b.fits")
                                .replace("A) img.fits", "A) nowhere.fits"))
    assert main(["batch", "a.feedme", "b.feedme", "-o", "table.ecsv", "--quiet", "--device", "cpu"]) == 2
    assert pathlib.Path("out.fits").exists() and pathlib.Path("galfit.01").exists()
    table = Table.read("table.ecsv")
    assert list(table["id"]) == ["a.feedme", "b.feedme"]
    assert table["STATUS"][0] == "converged" and table["STATUS"][1].startswith("failed")
    assert abs(table["1_N"][0] / TRUTH["n"] - 1) < 0.005 and table["1_N_ERR"][0] > 0
