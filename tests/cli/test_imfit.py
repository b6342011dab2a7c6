"""imfit configuration files and `galprof imfit`: parsing (imfit's documented examples
written out by hand), round trips, the surface-brightness <-> magnitude conversions
against numerical integration, and an end-to-end fit of a GalSim-rendered galaxy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from scipy import integrate, special

from galprof import conversions as conv
from galprof.cli import main
from galprof.constraints import Tie
from galprof.io.feedme import FeedmeError
from galprof.io.imfit_config import (format_imfit_config, model_from_imfit, parse_imfit_config,
                                     read_imfit_config)
from references import FFT_GSPARAMS, galsim_moffat, galsim_sersic, moffat_epsf

EXAMPLE = """# Sample input file: Sersic + Exponential sharing a centre
GAIN   4.725
READNOISE   4.3
ORIGINAL_SKY   154.33

X0   101.0    90,110
Y0   97.0     90,110
FUNCTION Sersic   # LABEL bulge
PA    110.0   0,180
ell    0.2    0,1
n      1.5    fixed
I_e    150    0,500
r_e    15     0,100

FUNCTION   Exponential   # here is a comment
PA    55.0   0,90      # another note
ell    0.2   0,1
I_0   70.0   0,600
h     45.0   0,1000

X0   30   fixed
Y0   40
FUNCTION PointSource
I_tot  1000
FUNCTION FlatSky
I_sky  2.5
"""


def test_parse_documented_example():
    config = parse_imfit_config(EXAMPLE, "ex.dat")
    assert config.prelude == {"GAIN": 4.725, "READNOISE": 4.3, "ORIGINAL_SKY": 154.33}
    assert len(config.sets) == 2
    first = config.sets[0]
    assert (first.x0.value, first.x0.low, first.x0.high) == (101.0, 90.0, 110.0)
    sersic, expo = first.functions
    assert sersic.name == "Sersic" and sersic.label == "bulge"
    assert sersic.parameters["n"].fixed and sersic.parameters["n"].value == 1.5
    assert expo.parameters["h"].high == 1000.0 and expo.label == ""
    assert config.sets[1].x0.fixed and config.sets[1].y0.low is None
    assert [f.name for f in config.sets[1].functions] == ["PointSource", "FlatSky"]


def test_round_trip_read_write_read(tmp_path):
    config = parse_imfit_config(EXAMPLE, "ex.dat")
    text = format_imfit_config(config)
    again = parse_imfit_config(text, "again.dat")
    assert again.sets == config.sets and again.prelude == config.prelude
    path = tmp_path / "c.dat"
    path.write_text(text)
    assert read_imfit_config(str(path)).sets == config.sets


@pytest.mark.parametrize("text, line, fragment", [
    ("X0 10\nY0 10\nFUNCTION Sersic\nPA 1\nell 0.1\nn 2\nI_e 1\nr_e 0 1,2\n", 8, "outside its limits"),
    ("X0 10\nY0 10\nFUNCTION LogSpiralExp\n", 3, "not supported by galprof yet"),
    ("X0 10\nY0 10\nFUNCTION Blob\n", 3, "unknown imfit function 'Blob'"),
    ("X0 10\nY0 10\nFUNCTION Exponential\nPA 1\nell 0.1\nI_0 1\nh 3\nq 3\n", 8, "'q' is one too many"),
    ("X0 10\nY0 10\nFUNCTION Exponential\nPA 1\nell 0.1\nI_0 1\n", 3, "lacks parameter(s) h"),
    ("FUNCTION Exponential\n", 1, "before a function set"),
    ("X0 10\nY0 10\nFUNCTION FlatSky\nI_sky 1 5;7\n", 4, "'low,high' or 'fixed'"),
])
def test_errors_name_file_and_line(text, line, fragment):
    with pytest.raises(FeedmeError) as info:
        parse_imfit_config(text, "bad.dat")
    assert str(info.value).startswith(f"bad.dat:{line}:")
    assert fragment in str(info.value)


def test_parameters_are_taken_by_position_as_imfit_does():
    """imfit ignores a parameter line's name (its own regression config names FlatSky's
    level I_0) and warns about nothing; galprof reads it by position and warns. Unknown
    keywords before the first function set (makeimage's NCOLS, NROWS) are ignored."""
    text = "NCOLS 100\nNROWS 80\nGAIN 4\nX0 10\nY0 12\nFUNCTION FlatSky\nI_0 1.5\nFUNCTION Exponential\n" \
           "PA 1\nell 0.1\nI_0 1\nq 3\n"
    with pytest.warns(UserWarning) as caught:
        config = parse_imfit_config(text, "pos.dat")
    messages = [str(w.message) for w in caught]
    assert any("pos.dat:1: unknown keyword 'NCOLS'" in m for m in messages)
    assert any("pos.dat:7: parameter 1 of FUNCTION FlatSky is I_sky; the line names it 'I_0'" in m for m in messages)
    assert any("pos.dat:12: parameter 4 of FUNCTION Exponential is h; the line names it 'q'" in m for m in messages)
    sky, disk = config.sets[0].functions
    assert sky.parameters["I_sky"].value == 1.5 and disk.parameters["h"].value == 3.0
    assert config.prelude == {"GAIN": 4.0}


def _numerical_flux(profile, q):
    """2 pi q int_0^inf I(r) r dr by scipy quadrature."""
    value, _ = integrate.quad(lambda r: profile(r) * r, 0, np.inf, limit=400)
    return 2 * math.pi * q * value


@pytest.mark.parametrize("n", [0.5, 1.0, 2.5, 4.0, 7.0])
def test_sersic_flux_matches_numerical_integration(n):
    b = special.gammaincinv(2 * n, 0.5)  # scipy's b_n, independent of galprof's
    i_e, r_e, q = 12.0, 7.5, 0.6
    expected = _numerical_flux(lambda r: i_e * math.exp(-b * ((r / r_e) ** (1 / n) - 1)), q)
    assert conv.sersic_flux(i_e, r_e, n, q) == pytest.approx(expected, rel=1e-7)
    assert conv.sersic_i_e(expected, r_e, n, q) == pytest.approx(i_e, rel=1e-7)


def test_other_profile_fluxes_match_numerical_integration():
    q = 0.7
    assert conv.exponential_flux(5.0, 4.0, q) == pytest.approx(_numerical_flux(lambda r: 5 * math.exp(-r / 4), q))
    assert conv.gaussian_flux(5.0, 3.0, q) == pytest.approx(
        _numerical_flux(lambda r: 5 * math.exp(-0.5 * (r / 3) ** 2), q))
    alpha = conv.moffat_alpha(4.0, 3.2)
    assert (1 + (2.0 / alpha) ** 2) ** -3.2 == pytest.approx(0.5)  # FWHM = 4
    assert conv.moffat_flux(5.0, 4.0, 3.2, q) == pytest.approx(
        _numerical_flux(lambda r: 5 * (1 + (r / alpha) ** 2) ** -3.2, q))
    assert conv.q_from_ell(0.25) == pytest.approx(0.75) and conv.ell_from_q(0.75) == pytest.approx(0.25)


def test_model_mapping_ties_a_function_set_centre():
    config = parse_imfit_config(EXAMPLE, "ex.dat")
    model = model_from_imfit(config, (100.5, 100.5))
    profiles = [c.profile for c in model.components]
    assert profiles == ["sersic", "expdisk", "psf", "sky"]
    sersic = model.components[0]
    assert sersic.values["q"] == pytest.approx(0.8) and "n" in sersic.fixed
    assert 10 ** (-0.4 * sersic.values["mag"]) == pytest.approx(conv.sersic_flux(150, 15, 1.5, 0.8))
    assert sersic.bounds["x"] == (90.0, 110.0) and sersic.bounds["pa"] == (0.0, 180.0)
    assert model.components[2].fixed >= {"x"}
    assert Tie((1, 2), "x", "offset") in model.constraints and Tie((1, 2), "y", "offset") in model.constraints


TRUTH = dict(x=40.3, y=38.8, n=2.2, r_e=6.0, q=0.65, pa=35.0, i_e=30.0)


@pytest.fixture()
def imfit_workdir(tmp_path, monkeypatch):
    import galsim
    flux = conv.sersic_flux(TRUTH["i_e"], TRUTH["r_e"], TRUTH["n"], TRUTH["q"])
    gal = galsim_sersic(TRUTH["n"], TRUTH["r_e"], TRUTH["q"], TRUTH["pa"], float(flux), gsparams=FFT_GSPARAMS)
    conv_obj = galsim.Convolve(gal, galsim_moffat(3.5, 2.8, gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
    image = conv_obj.drawImage(nx=80, ny=78, scale=1.0, offset=(TRUTH["x"] - 40.5, TRUTH["y"] - 39.5)).array
    monkeypatch.chdir(tmp_path)
    fits.writeto("gal.fits", image)
    fits.writeto("psf.fits", moffat_epsf(3.5, 2.8, 25))
    fits.writeto("noise.fits", np.full(image.shape, 0.01))
    open("config.dat", "w").write("X0 41 30,50\nY0 38 30,50\nFUNCTION Sersic\nPA 20 -90,90\nell 0.3 0,0.9\n"
                                  "n 3 0.5,8\nI_e 20 0,1000\nr_e 8 1,40\n")
    return tmp_path


def test_galprof_imfit_recovers_a_galsim_galaxy(imfit_workdir):
    assert main(["imfit", "gal.fits", "-c", "config.dat", "--psf", "psf.fits", "--noise", "noise.fits",
                 "--save-model", "model.fits", "--save-residual", "resid.fits", "--quiet"]) == 0
    text = open("bestfit_parameters_imfit.dat").read()
    best = parse_imfit_config(text, "bestfit_parameters_imfit.dat")  # a valid config again
    fset = best.sets[0]
    p = fset.functions[0].parameters
    assert fset.x0.value == pytest.approx(TRUTH["x"], abs=0.02)
    assert fset.y0.value == pytest.approx(TRUTH["y"], abs=0.02)
    assert p["n"].value == pytest.approx(TRUTH["n"], rel=0.005)
    assert p["r_e"].value == pytest.approx(TRUTH["r_e"], rel=0.006)
    assert p["ell"].value == pytest.approx(1 - TRUTH["q"], abs=0.003)
    assert p["PA"].value == pytest.approx(TRUTH["pa"], abs=0.3)
    assert p["I_e"].value == pytest.approx(TRUTH["i_e"], rel=0.01)
    import re
    assert re.search(r"^I_e\s+[-\d.e+]+\s+0,1000\s+# \+/- [\d.e+-]+$", text, re.M)
    # imfit's own header lines, in imfit's format (chi^2 / reduced chi^2 = ndof = pixels - free parameters)
    assert re.search(r"^#   Fit statistic: chi-squared \(user-supplied errors\)$", text, re.M)
    best = re.search(r"^#   Best-fit value: (\d+\.\d{6})$", text, re.M)
    reduced = re.search(r"^#   Reduced value: (\d+\.\d{6})$", text, re.M)
    assert best and reduced and float(best.group(1)) / float(reduced.group(1)) == pytest.approx(80 * 78 - 7, rel=1e-5)
    assert re.search(r"^#   AIC: \d+\.\d{6}$", text, re.M) and re.search(r"^#   BIC: \d+\.\d{6}$", text, re.M)
    data = fits.getdata("gal.fits")
    np.testing.assert_allclose(fits.getdata("resid.fits"), data - fits.getdata("model.fits"), atol=1e-4 * data.max())


def test_galprof_imfit_unsupported_options_are_clear_errors(imfit_workdir, capsys):
    assert main(["imfit", "gal.fits", "-c", "config.dat", "--bootstrap", "4", "--cashstat", "--quiet"]) == 2
    assert "--bootstrap works with chi^2 only" in capsys.readouterr().err
    assert main(["imfit", "gal.fits", "-c", "config.dat", "--cashstat", "--poisson-mlr"]) == 2
    assert "choose one" in capsys.readouterr().err
    open("bad.dat", "w").write("X0 41\nY0 38\nFUNCTION Core-Sersic\n")
    assert main(["imfit", "gal.fits", "-c", "bad.dat"]) == 2
    assert "bad.dat:3" in capsys.readouterr().err


SHARED = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data" / "imfit" / "tests"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "n3073rss_small.fits").exists(), reason="needs ../shared/data (not in the repo)")
def test_agrees_with_imfits_published_fit_of_n3073(tmp_path, monkeypatch):
    """imfit's own reference run (perwin/imfit tests/imfit_reference/imfit_textout4: Sersic +
    Exponential, PSF, mask, data-based chi^2) gives n = 3.2805, r_e = 26.7975, h = 53.6058.
    With --legacy-pixel-integration galprof must agree to 0.5 %."""
    monkeypatch.chdir(tmp_path)
    assert main(["imfit", str(SHARED / "n3073rss_small.fits"), "-c", str(SHARED / "imfit_reference" /
                 "imfit_config_n3073.dat"), "--psf", str(SHARED / "psf_moffat_35_n4699z.fits"), "--mask",
                 str(SHARED / "n3073rss_small_mask.fits"), "--legacy-pixel-integration", "--quiet"]) == 0
    best = read_imfit_config("bestfit_parameters_imfit.dat")
    sersic, expo = best.sets[0].functions
    assert sersic.parameters["n"].value == pytest.approx(3.2805, rel=0.005)
    assert sersic.parameters["r_e"].value == pytest.approx(26.7975, rel=0.005)
    assert expo.parameters["h"].value == pytest.approx(53.6058, rel=0.005)
    assert sersic.parameters["PA"].value == pytest.approx(111.919, abs=0.3)
    # imfit's chi^2 of the initial model (tests/imfit_reference/imfit_textout4c): 235606.146670
    # on 28754 pixels; galprof's noise model and legacy rendering give it to 0.1 %
    from galprof.io.imfit_config import imfit_sigma
    from galprof.fitting.layout import ParameterLayout
    from galprof.render.config import RenderConfig
    from galprof.render.psf import prepare_psf
    from galprof.render.scene import Frame, render_model
    image = fits.getdata(SHARED / "n3073rss_small.fits").astype(float)
    mask = fits.getdata(SHARED / "n3073rss_small_mask.fits")
    config = read_imfit_config(str(SHARED / "imfit_reference" / "imfit_config_n3073.dat"))
    ny, nx = image.shape
    model = model_from_imfit(config, ((nx + 1) / 2, (ny + 1) / 2))
    layout = ParameterLayout(model, ((0.5, nx + 0.5), (0.5, ny + 0.5)))
    import torch
    rendered = render_model(layout.components(torch.tensor(layout.initial_values(1))), Frame(1, 1, nx, ny),
                            prepare_psf(fits.getdata(SHARED / "psf_moffat_35_n4699z.fits").astype(float)),
                            RenderConfig(legacy_pixel_integration=True))[0].numpy()
    sigma = imfit_sigma(image, config.prelude)
    good = (mask == 0) & (sigma > 0)
    assert good.sum() == 28754
    assert ((image - rendered)[good] ** 2 / sigma[good] ** 2).sum() == pytest.approx(235606.146670, rel=1e-3)


@pytest.mark.parametrize("option, name", [("--poisson-mlr", "Poisson-MLR statistic"), ("--cashstat", "Cash statistic"),
                                          ("--model-errors", "chi-squared (model-based errors)")])
def test_galprof_imfit_poisson_and_model_based_statistics(imfit_workdir, option, name):
    """Counts-like data (sky 50 ADU, gain 4): every statistic recovers the galaxy and says
    which statistic it reports."""
    data = fits.getdata("gal.fits")
    rng = np.random.default_rng(7)
    noisy = rng.poisson((data * 40 + 50.0) * 4.0) / 4.0 - 50.0  # 40x brighter than the noise-free render
    fits.writeto("counts.fits", noisy, overwrite=True)
    open("config40.dat", "w").write(open("config.dat").read().replace("I_e 20 0,1000", "I_e 800 0,5000"))
    assert main(["imfit", "counts.fits", "-c", "config40.dat", "--psf", "psf.fits", "--gain", "4", "--sky", "50",
                 option, "--quiet"]) == 0
    text = open("bestfit_parameters_imfit.dat").read()
    assert f"\n#   Fit statistic: {name}\n" in text
    p = parse_imfit_config(text, "best").sets[0].functions[0].parameters
    assert p["n"].value == pytest.approx(TRUTH["n"], rel=0.05)
    assert p["r_e"].value == pytest.approx(TRUTH["r_e"], rel=0.05)


def test_galprof_imfit_bootstrap_errors_match_the_covariance_for_white_noise(imfit_workdir):
    """With white Gaussian noise and the right model, the bootstrap scatter estimates the
    same errors as the covariance matrix (to the precision of 40 resamplings)."""
    rng = np.random.default_rng(11)
    noisy = fits.getdata("gal.fits") + rng.normal(0, 0.05, fits.getdata("gal.fits").shape)
    fits.writeto("noisy.fits", noisy)
    fits.writeto("sig.fits", np.full(noisy.shape, 0.05))
    common = ["imfit", "noisy.fits", "-c", "config.dat", "--psf", "psf.fits", "--noise", "sig.fits", "--quiet"]
    assert main(common + ["--save-params", "cov.dat"]) == 0
    assert main(common + ["--bootstrap", "40", "--seed", "3", "--save-bootstrap", "boot.dat",
                          "--save-params", "boot_params.dat"]) == 0
    import re

    def errors(path):
        text = open(path).read()
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+)\s+\S+\s+\S+\s+# \+/- (\S+)$", text, re.M)}

    cov, boot = errors("cov.dat"), errors("boot_params.dat")
    assert "bootstrap" in open("boot_params.dat").read()
    for name in ("X0", "Y0", "n", "r_e", "ell", "PA", "I_e"):
        assert 0.6 < boot[name] / cov[name] < 1.6, (name, boot[name], cov[name])
    table = np.loadtxt("boot.dat")
    assert table.shape == (40, 7)
