"""Figures and reports of multi-band fits (galprof.plots on GALFITM-style results).

A small galaxy in three bands (g, r, i: per-band PSFs, zeropoints, magnitudes and noise;
one shared geometry) is fitted once with :func:`galprof.fit_bands` and once with
``galprof fit`` on a GALFITM feedme. The figures must hold each band's own arrays, the
image block must read back to its input files, the table rows must re-render to the
block's models, and the report's colours must be the differences of the table's
magnitudes."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from galprof import Bands, Component, Model, fit_bands
from galprof.cli import main
from galprof.plots import (BatchResults, MultiBandView, band_chi2_nu, colour_columns, compare_tables,
                           from_multiband_result, load_result, multiband_figure, write_report)
from galprof.plots.report import thumbnail_rgb
from galprof.plots.sources import render_components, result_kind

from test_plots_fixtures import moffat_psf

SIZE = 24
BANDS = Bands(("g", "r", "i"), (4770.0, 6231.0, 7625.0))
ZPS = np.array([25.0, 25.2, 24.9])
MAGS = np.array([18.6, 18.0, 17.7])
SKY = np.array([0.2, 0.3, 0.4])
FWHM = (2.6, 2.3, 2.0)
SHAPE = dict(x=12.4, y=11.8, r_e=3.0, n=1.5, q=0.7, pa=30.0)
SCALE = (0.4, 0.4)

FEEDME = """A) g.fits,r.fits,i.fits
A1) g,r,i
A2) 4770,6231,7625
B) out.fits
C) sig_g.fits,sig_r.fits,sig_i.fits
D) psf_g.fits,psf_r.fits,psf_i.fits
E) 1
F) none
G) none
H) 1 24 1 24
I) 24 24
J) 25.0,25.2,24.9
K) 0.4 0.4
O) regular
P) 0
 0) sersic
 1) 12.0  1
 2) 12.0  1
 3) 18.4,17.8,17.4  3
 4) 3.5  1
 5) 2.0  1
 9) 0.8  1
10) 20.0  1
 Z) 0
"""


def simulate(seed: int = 3):
    """(K, H, W) images and sigmas, and the K PSFs: a Sersic galaxy plus sky rendered by
    galprof in each band with that band's PSF, zeropoint and magnitude, plus noise."""
    psfs = [moffat_psf(fwhm=f, size=11) for f in FWHM]
    values = {**{k: np.full(3, v) for k, v in SHAPE.items()}, "mag": MAGS}
    galaxy = render_components([("sersic", values)], (SIZE, SIZE), zeropoint=ZPS, psf=psfs)[:, 0]
    clean = galaxy + SKY[:, None, None]
    sigma = np.sqrt(0.3**2 + np.clip(galaxy, 0, None) / 4.0)
    rng = np.random.default_rng(seed)
    return clean + rng.normal(size=clean.shape) * sigma, sigma, psfs


@pytest.fixture(scope="module")
def fitted():
    """A fit_bands result of the simulated galaxy, with a masked patch in band i."""
    images, sigma, psfs = simulate()
    mask = np.zeros(images.shape, dtype=bool)
    mask[2, 3:6, 18:21] = True
    model = Model([Component("sersic", dict(x=12.0, y=12.0, mag=[[18.4, 17.8, 17.4]], r_e=3.5, n=2.0, q=0.8,
                                            pa=20.0)),
                   Component("sky", dict(sky=[[0.0, 0.0, 0.0]], dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    result = fit_bands(model, images[None], bands=BANDS, sigma=sigma[None], mask=mask[None], psf=psfs,
                       zeropoint=ZPS, pixel_scale=SCALE, dtype=torch.float64)
    return dict(result=result, model=model, images=images, sigma=sigma, mask=mask, psfs=psfs)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``galprof fit m.feedme -o t.ecsv`` on the simulated galaxy: the GALFITM image block
    out.fits and a one-row results table."""
    directory = tmp_path_factory.mktemp("galfitm")
    images, sigma, psfs = simulate(seed=4)
    for k, label in enumerate(BANDS.labels):
        fits.writeto(directory / f"{label}.fits", images[k].astype(np.float32))
        fits.writeto(directory / f"sig_{label}.fits", sigma[k].astype(np.float32))
        fits.writeto(directory / f"psf_{label}.fits", psfs[k])
    (directory / "m.feedme").write_text(FEEDME)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(directory)
        assert main(["fit", "m.feedme", "-o", "t.ecsv"]) == 0
    return directory


def _image(ax):
    return [im for im in ax.get_images() if im.get_gid() != "mask"][0].get_array()


# ------------------------------------------------------------------- the figure

def test_figure_of_a_fit_bands_result_has_one_row_per_band(fitted):
    result, images, sigma, mask = fitted["result"], fitted["images"], fitted["sigma"], fitted["mask"]
    view = from_multiband_result(result, images[None], model=fitted["model"], sigma=sigma[None], mask=mask[None],
                                 psf=fitted["psfs"], zeropoint=ZPS, pixel_scale=SCALE, name="sim")
    assert isinstance(view, MultiBandView) and view.labels == ("g", "r", "i")
    # each band's chi2_nu: its chi^2 over its share ndof N_k / N of the degrees of freedom
    good = [int((~(mask[k])).sum()) for k in range(3)]
    chi2 = [float((((images[k] - result.model_images[0, k]) / sigma[k])[~mask[k]] ** 2).sum()) for k in range(3)]
    expected = [chi2[k] / (result.ndof[0] * good[k] / sum(good)) for k in range(3)]
    np.testing.assert_allclose([v.chi2_nu for v in view.views], expected, rtol=1e-6)
    np.testing.assert_allclose(band_chi2_nu(result.chi2_band[0], result.ndof[0], good), expected, rtol=1e-6)
    for k, band in enumerate(view.views):
        assert band.zeropoint == ZPS[k] and band.name == f"sim [{BANDS.labels[k]}]"
        sersic = band.components[0]
        assert sersic.values["mag"] == pytest.approx(result.value(1, "mag")[0, k])
        # components rendered with the band's PSF and zeropoint add up to the fit's model
        np.testing.assert_allclose(sum(c.image for c in band.components), result.model_images[0, k],
                                   atol=1e-3 * result.model_images[0, k].max())

    fig = multiband_figure(view)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title() in ("data", "model", "residual")]
    assert titles == ["data", "model", "residual"] * 3
    data_axes = [ax for ax in fig.axes if ax.get_title() == "data"]
    model_axes = [ax for ax in fig.axes if ax.get_title() == "model"]
    residual_axes = [ax for ax in fig.axes if ax.get_title() == "residual"]
    labels = {t.get_gid(): t.get_text() for t in fig.texts}
    for k, label in enumerate(BANDS.labels):
        np.testing.assert_array_equal(_image(data_axes[k]), images[k])
        np.testing.assert_allclose(_image(model_axes[k]), result.model_images[0, k])
        res = _image(residual_axes[k])
        np.testing.assert_allclose(res[~mask[k]], ((images[k] - result.model_images[0, k]) / sigma[k])[~mask[k]])
        np.testing.assert_array_equal(np.ma.getmaskarray(res), mask[k])
        assert labels[f"band-{label}"] == f"{label}    χ²/ν = {expected[k]:.3g}"
        # the shared geometry: the same R_e ellipse in every band, as the single-band figure draws it
        ellipse = [p for p in data_axes[k].patches if p.get_gid() == "ellipse-1"][0]
        assert ellipse.height == pytest.approx(2 * result.value(1, "r_e")[0, 0])
        assert ellipse.width == pytest.approx(2 * result.value(1, "r_e")[0, 0] * result.value(1, "q")[0, 0])
        assert ellipse.angle == pytest.approx(result.value(1, "pa")[0, 0])
        assert ellipse.center == pytest.approx((result.value(1, "x")[0, 0], result.value(1, "y")[0, 0]))
    profiles = [ax for ax in fig.axes if "annuli" in ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in profiles] == ["sim [g]", "sim [r]", "sim [i]"]
    assert len(multiband_figure(view, kind="images").axes) == 3 * 5
    profile_only = multiband_figure(view, kind="profile").axes
    assert len(profile_only) == 3 * 2 and sum("annuli" in ax.get_title() for ax in profile_only) == 3


# --------------------------------------------------------------- the image block

def test_galfitm_imgblock_reads_back_to_its_inputs(run):
    path = run / "out.fits"
    assert result_kind(path) == "galfitm"
    view = load_result(path)  # its files (SIGMA, PSF cards) found relative to the block
    table = Table.read(run / "t.ecsv")
    row = table[0]
    assert view.labels == BANDS.labels and view.bands.wavelengths == BANDS.wavelengths
    assert view.status == row["STATUS"] and view.chi2_nu == pytest.approx(row["CHI2NU"])
    n_good, chi2 = [], []
    with fits.open(path) as block:
        for k, label in enumerate(BANDS.labels):
            band = view.views[k]
            data = fits.getdata(run / f"{label}.fits").astype(float)
            sigma = fits.getdata(run / f"sig_{label}.fits").astype(float)
            np.testing.assert_array_equal(band.data, data)
            np.testing.assert_array_equal(band.sigma, sigma)
            np.testing.assert_array_equal(band.model, block[f"MODEL_{label}"].data)
            assert band.zeropoint == ZPS[k] and band.pixel_scale == SCALE and band.notes == ()
            values = band.components[0].values
            assert values["mag"] == pytest.approx(row[f"1_MAG_{label}"], abs=1e-4)
            assert values["r_e"] == pytest.approx(row["1_RE"], abs=1e-4)
            chi2.append(float((((data - band.model) / sigma) ** 2).sum()))
            n_good.append(data.size)
    expected = np.array(chi2) / (row["NDOF"] * np.array(n_good) / sum(n_good))
    np.testing.assert_allclose([v.chi2_nu for v in view.views], expected, rtol=1e-4)


def test_plot_command_draws_a_galfitm_block(run, capsys):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(run)
        assert main(["plot", "out.fits", "-o", "bands.png", "--dpi", "40"]) == 0
        assert main(["plot", "out.fits", "--kind", "images", "-o", "images.png", "--dpi", "40"]) == 0
    assert "out.fits -> bands.png" in capsys.readouterr().out
    for name in ("bands.png", "images.png"):
        assert matplotlib.image.imread(run / name).shape[0] > 100


# ------------------------------------------------------- rows of a multi-band run

def test_multiband_rows_rerender_and_make_thumbnails_and_figures(run, tmp_path):
    """A row of a multi-band catalog run (``galprof batch`` with image_<band> columns and
    the feedme as a GALFITM template) re-rendered from its per-band and shared columns,
    each band with its own PSF and zeropoint: its chi^2 over the bands is the table's."""
    rows = [{"id": "gal", **{f"{key}_{label}": name.format(label=label) for label in BANDS.labels
                             for key, name in (("image", "{label}.fits"), ("sigma", "sig_{label}.fits"),
                                               ("psf", "psf_{label}.fits"))}}]
    Table(rows=rows).write(run / "catalog.csv", overwrite=True)
    assert main(["batch", str(run / "catalog.csv"), "--template", str(run / "m.feedme"), "-o",
                 str(run / "c.ecsv"), "--auto-init", "never", "--quiet"]) == 0
    batch = BatchResults.open(run / "c.ecsv")
    table = batch.table
    view = batch.view("gal")
    assert isinstance(view, MultiBandView) and view.labels == BANDS.labels
    chi2 = 0.0
    for k, label in enumerate(BANDS.labels):
        band = view.views[k]
        np.testing.assert_array_equal(band.data, fits.getdata(run / f"{label}.fits"))
        assert band.components[0].values["mag"] == table[0][f"1_MAG_{label}"]
        assert band.zeropoint == ZPS[k]
        chi2 += float((((band.data - band.model) / fits.getdata(run / f"sig_{label}.fits")) ** 2).sum())
    assert chi2 == pytest.approx(float(table[0]["CHISQ"]), rel=1e-4)
    summary = write_report(batch, tmp_path / "report", figures="all", progress=False)
    assert summary.n_thumbnails == 1 and summary.n_figures == 1
    # the thumbnail shows the middle band, r (its model rendered with the cheaper thumbnail settings)
    thumb = (matplotlib.image.imread(tmp_path / "report" / "thumbs" / "0.png")[..., :3] * 255).round()
    differences = {}
    for band in view.views:
        expected = thumbnail_rgb(band.data, band.model, band.sigma, band.bad).astype(float)
        differences[band.name] = float(np.abs(thumb - expected).mean())
    assert min(differences, key=differences.get) == "gal [r]"
    assert differences["gal [r]"] < 1.0 < min(differences["gal [g]"], differences["gal [i]"])


# ------------------------------------------------------------- colours in reports

def _colour_table(path):
    """A multi-band results table with bands in the order r, g, i (not alphabetical)."""
    rng = np.random.default_rng(5)
    n = 9
    table = Table()
    table["id"] = [f"gal{i}" for i in range(n)]
    table["1_XC"] = rng.uniform(10, 14, n)
    for band in ("r", "g", "i"):
        table[f"1_MAG_{band}"] = rng.uniform(17, 19, n)
        table[f"1_MAG_{band}_ERR"] = rng.uniform(0.01, 0.05, n)
        table[f"1_MAG_{band}_ERR_SCALED"] = table[f"1_MAG_{band}_ERR"] * 1.1
    table["1_RE"] = rng.uniform(2, 5, n)
    table["1_PA_r"] = rng.uniform(-80, 80, n)
    table["1_PA_g"] = table["1_PA_r"] + 1.0
    table["2_SKY_r"] = rng.normal(0, 0.1, n)
    table["2_SKY_g"] = rng.normal(0, 0.1, n)
    table["CHI2NU"] = rng.uniform(0.9, 1.3, n)
    table["STATUS"] = ["converged"] * n
    table["1_MAG_g"][3] = np.nan  # a missing magnitude: its colours are NaN, not a crash
    table.write(path, overwrite=True)
    return table


def test_report_gains_colour_columns(tmp_path):
    table = _colour_table(tmp_path / "multi.fits")
    colours = colour_columns(table)
    assert list(colours) == ["1_r-g", "1_r-g_ERR", "1_g-i", "1_g-i_ERR"]
    np.testing.assert_allclose(colours["1_r-g"], table["1_MAG_r"] - table["1_MAG_g"])
    np.testing.assert_allclose(colours["1_g-i_ERR"], np.sqrt(table["1_MAG_g_ERR"] ** 2 + table["1_MAG_i_ERR"] ** 2))
    summary = write_report(tmp_path / "multi.fits", tmp_path / "report", progress=False)
    assert summary.n_thumbnails == 0  # no template: nothing to render
    text = (tmp_path / "report" / "data.js").read_text()
    data = json.loads(text[text.index("{"):text.rindex("}") + 1])
    shown = data["show"]
    assert shown.index("1_MAG_i") < shown.index("1_r-g") < shown.index("1_g-i") < shown.index("1_RE")
    assert ["1_r-g", "1_r-g_ERR"] in data["params"] and ["1_MAG_g", "1_MAG_g_ERR"] in data["params"]
    got = np.array([np.nan if v is None else v for v in data["data"]["1_g-i"]])
    hand = np.array(table["1_MAG_g"] - table["1_MAG_i"])
    assert np.isnan(got[3]) and np.isnan(hand[3])
    np.testing.assert_allclose(got[~np.isnan(hand)], hand[~np.isnan(hand)], rtol=1e-5)
    html = (tmp_path / "report" / "index.html").read_text()
    assert "<td>1_r-g</td>" in html and "<td>1_MAG_g</td>" in html
    assert (tmp_path / "report" / "histograms.png").exists()


def test_compare_reads_per_band_columns(tmp_path):
    a = _colour_table(tmp_path / "a.fits")
    b = a.copy()
    b["1_PA_g"] = b["1_PA_g"] + 179.0  # the same PA, written 180 degrees on: -1 degree
    b["1_RE"] = b["1_RE"] * 1.1
    comparison = compare_tables(a, b)
    kinds = {p.column_a: p for p in comparison.parameters}
    assert {"1_MAG_g", "1_PA_g", "1_PA_r", "2_SKY_r", "1_RE"} <= set(kinds)
    assert kinds["1_PA_g"].kind == "angle" and kinds["1_PA_g"].median == pytest.approx(-1.0)
    assert kinds["1_RE"].kind == "fractional" and kinds["1_MAG_g"].kind == "difference"
