"""Figures of fits (galprof.plots): structure, ranges, masks, and a 1-D profile checked
against an analytic exponential disk."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
from astropy.table import Table
from matplotlib.figure import Figure

from galprof.cli import main
from galprof.io.imfit_config import format_imfit_config, parse_imfit_config, values_to_imfit
from galprof.io.imfit_output import bestfit_header_lines
from galprof.plots import (BatchResults, ComponentView, FitView, PlotError, compare_figure, compare_tables,
                           elliptical_annuli, fit_figure, format_summary, from_imfit, image_figure, load_result,
                           profile_figure, save_figure, write_report)
from galprof.plots import style
from galprof.plots.report import thumbnail_rgb
from galprof.plots.sources import render_components

from test_plots_fixtures import BULGE, DISK, SCALE, SERSIC, ZP, exponential_disk_image, make_imgblock, make_survey


@pytest.fixture(scope="module")
def block(tmp_path_factory):
    return make_imgblock(tmp_path_factory.mktemp("block"))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return make_imgblock(tmp_path_factory.mktemp("single"), two_components=False, with_mask=False)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return make_survey(tmp_path_factory.mktemp("survey"))


def _images(ax):
    return [im for im in ax.get_images() if im.get_gid() != "mask"]


def _distance_to_cmap(colour, cmap) -> float:
    table = cmap(np.linspace(0, 1, 512))[:, :3]
    return float(np.min(np.linalg.norm(table - np.asarray(colour)[None, :3], axis=1)))


# --------------------------------------------------------------------- loading

def test_imgblock_loads_components_psf_sigma_and_mask(block):
    path, truth = block
    view = load_result(path)
    assert [c.profile for c in view.components] == ["sersic", "expdisk", "sky"]
    assert view.notes == ()  # PSF found: galprof's components add up to the block's model
    np.testing.assert_allclose(sum(c.image for c in view.components), truth["model"], rtol=0, atol=2e-4 * truth[
        "model"].max())
    np.testing.assert_array_equal(view.mask, truth["mask"])
    np.testing.assert_allclose(view.sigma, truth["sigma"], rtol=1e-6)
    assert view.zeropoint == ZP and view.components[0].values["r_e"] == pytest.approx(BULGE["r_e"])
    assert not view.components[0].free["n"]  # written as [4.0000]


def test_bad_inputs_name_the_file(tmp_path, survey):
    with pytest.raises(PlotError, match="nothing.fits"):
        load_result(tmp_path / "nothing.fits")
    table_path, _ = survey
    with pytest.raises(PlotError, match="--row"):
        load_result(table_path)
    with pytest.raises(PlotError, match="no row with id 'nope'"):
        load_result(table_path, row="nope")
    with pytest.raises(PlotError, match="broken"):
        load_result(table_path, row="broken")
    assert main(["plot", str(table_path), "--row", "broken"]) == 2


# ----------------------------------------------------------------- image panel

def test_image_figure_multi_component_structure(block):
    path, truth = block
    view = load_result(path)
    fig = image_figure(view)
    assert isinstance(fig, Figure)
    # row 0: data, model, residual, colour bar, text; rows 1-2: data - others, component, text
    assert len(fig.axes) == 11
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["data", "model", "residual", "data − all but 1", "component 1: sersic",
                      "data − all but 2", "component 2: expdisk"]
    data_ax, model_ax, res_ax = fig.axes[:3]
    d, m = _images(data_ax)[0], _images(model_ax)[0]
    assert (d.norm.vmin, d.norm.vmax) == (m.norm.vmin, m.norm.vmax)  # one stretch for data and model
    # residual: (data - model) / sigma, symmetric colour scale in sigma
    r = _images(res_ax)[0]
    assert r.norm.vmin == -r.norm.vmax == -5.0
    res = r.get_array()
    good = ~truth["mask"]
    np.testing.assert_allclose(res[good], ((truth["data"] - truth["model"]) / truth["sigma"])[good], atol=1e-4)
    assert 0.8 < float(np.std(res[good])) < 1.2
    # masked pixels: masked in the residual, drawn in a colour the residual map does not use
    np.testing.assert_array_equal(np.ma.getmaskarray(res), truth["mask"])
    rgba = r.to_rgba(res)
    y, x = np.argwhere(truth["mask"])[0]
    np.testing.assert_allclose(rgba[y, x, :3], style.MASK_COLOUR, atol=1e-6)
    assert _distance_to_cmap(style.MASK_COLOUR, matplotlib.colormaps[style.RESIDUAL_CMAP]) > 0.3
    assert _distance_to_cmap(style.MASK_COLOUR, matplotlib.colormaps[style.DATA_CMAP]) > 0.3
    overlay = [im for im in data_ax.get_images() if im.get_gid() == "mask"][0].get_array()
    np.testing.assert_array_equal(overlay[..., 3] > 0, truth["mask"])
    # the decomposition: row 1 shows data minus the disk and the sky
    others = _images(fig.axes[5])[0].get_array()
    np.testing.assert_allclose(others, truth["data"] - truth["images"][1] - truth["images"][2], atol=2e-3)
    # R_e ellipses: bulge R_e, disk 1.678 R_s; width = minor axis, rotated by PA from +y
    ellipses = {p.get_gid(): p for p in data_ax.patches}
    bulge, disk = ellipses["ellipse-1"], ellipses["ellipse-2"]
    assert bulge.height == pytest.approx(2 * BULGE["r_e"], rel=1e-3)
    assert bulge.width == pytest.approx(2 * BULGE["r_e"] * BULGE["q"], rel=1e-3)
    assert disk.height == pytest.approx(2 * 1.678 * DISK["r_s"], rel=1e-3)
    assert disk.angle == pytest.approx(DISK["pa"])
    assert disk.center == pytest.approx((DISK["x"], DISK["y"]))
    # axes in 1-based pixel coordinates
    assert data_ax.get_xlim() == (0.5, 60.5)
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "n      [4.000]" in text and "r_s    5.000 ± 0.01" in text and "χ²/ν = 1.01" in text


def test_ellipse_follows_the_rendered_galaxy():
    """The drawn ellipse's major axis points where the rendered galaxy is elongated
    (second moments): PA counter-clockwise from +y."""
    values = dict(x=30.0, y=30.0, mag=15.0, r_e=6.0, n=1.0, q=0.4, pa=30.0)
    image = render_components([("sersic", values)], (60, 60), zeropoint=ZP)[0, 0]
    yy, xx = np.mgrid[1:61, 1:61]
    w = image / image.sum()
    dx, dy = xx - (w * xx).sum(), yy - (w * yy).sum()
    cov = [[(w * dx * dx).sum(), (w * dx * dy).sum()], [(w * dx * dy).sum(), (w * dy * dy).sum()]]
    major = np.linalg.eigh(cov)[1][:, 1]
    comp = ComponentView(1, "sersic", "elliptical", values, {}, {}, {}, image)
    view = FitView("g", image, image, (comp,))
    ellipse = [p for p in image_figure(view).axes[0].patches if p.get_gid() == "ellipse-1"][0]
    # the end of the patch's height axis (the unit circle's (0, 1)) in data coordinates
    end = ellipse.get_patch_transform().transform([[0.0, 1.0]])[0] - 30.0
    assert np.linalg.norm(end) == pytest.approx(values["r_e"])
    assert abs(abs(np.dot(end / np.linalg.norm(end), major)) - 1) < 1e-4
    assert np.degrees(np.arctan2(-major[0], major[1])) % 180 == pytest.approx(30.0, abs=0.5)


def test_image_figure_single_component_and_flags(single):
    path, _ = single
    view = load_result(path)
    fig = image_figure(view, stretch="log")
    assert len(fig.axes) == 5
    text = fig.axes[4].texts[0].get_text()
    assert "*4.000*" in text  # r_e flagged (at a bound) in the block
    assert "status: flagged: 1_r_e" in text
    assert not [im for im in fig.axes[0].get_images() if im.get_gid() == "mask"][0].get_array()[..., 3].any()
    with pytest.raises(ValueError, match="stretch"):
        image_figure(view, stretch="cube")


# ------------------------------------------------------------------ 1-D profile

def test_profile_matches_an_analytic_exponential_disk():
    """Data from an independent numpy rendering, model from galprof's renderer: both
    agree with mu(a) = mu_0 + 1.0857 a / R_s in elliptical annuli."""
    shape, x0, y0, mag, r_s, q, pa = (81, 81), 41.3, 40.6, 15.0, 6.0, 0.55, 25.0
    data, i0 = exponential_disk_image(shape, x0, y0, mag, r_s, q, pa)
    values = dict(x=x0, y=y0, mag=mag, r_s=r_s, q=q, pa=pa)
    model = render_components([("expdisk", values)], shape, zeropoint=ZP, pixel_scale=SCALE)[0, 0]
    comp = ComponentView(1, "expdisk", "elliptical", values, {k: 0.0 for k in values}, {k: True for k in values},
                         {k: False for k in values}, model)
    view = FitView("disk", data, model, (comp,), sigma=np.full(shape, 1e-3), zeropoint=ZP, pixel_scale=SCALE)
    fig = profile_figure(view)
    ax = fig.axes[0]
    assert "mag arcsec" in ax.get_ylabel() and ax.get_xscale() == "log"
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # brighter up
    points = [line for line in ax.lines if line.get_gid() == "data"][0]
    r, mu = points.get_xdata(), points.get_ydata()
    mu0 = ZP - 2.5 * np.log10(i0 / (SCALE[0] * SCALE[1]))
    analytic = mu0 + 2.5 / math.log(10) * r / r_s
    inside = (r > 1.5) & (r < 30)
    assert inside.sum() > 10
    np.testing.assert_allclose(mu[inside], analytic[inside], atol=0.02)
    model_line = [line for line in ax.lines if line.get_gid() == "model"][0]
    np.testing.assert_allclose(model_line.get_ydata()[inside], analytic[inside], atol=0.03)
    prof = elliptical_annuli(view)
    assert prof.geometry == (x0, y0, q, pa)
    assert np.all(np.diff(prof.radius) > 0)


def test_profile_panel_components_units_and_radius_axis(block):
    view = load_result(block[0], pixel_scale=SCALE)  # the block has no INITFILE feedme (line K)
    fig = profile_figure(view)
    ax, rax = fig.axes[0], fig.axes[1]
    gids = {line.get_gid() for line in ax.lines}
    assert {"model", "component-1", "component-2", "data"} <= gids
    assert rax.get_ylabel() == "Δμ [mag]" and rax.get_shared_x_axes().joined(ax, rax)
    assert any("arcsec" in child.get_xlabel() for child in ax.child_axes)  # top axis in arcsec
    # the disk dominates the outer profile, the bulge the centre
    c1 = [line for line in ax.lines if line.get_gid() == "component-1"][0].get_ydata()
    c2 = [line for line in ax.lines if line.get_gid() == "component-2"][0].get_ydata()
    assert c1[0] < c2[0] and c1[-1] > c2[-1]
    lin = profile_figure(view, log_radius=False)
    assert lin.axes[0].get_xscale() == "linear"
    # without a zeropoint or plate scale: ADU per pixel on a log axis
    counts = profile_figure(FitView(view.name, view.data, view.model, view.components, view.sigma, view.mask))
    assert "ADU" in counts.axes[0].get_ylabel() and counts.axes[0].get_yscale() == "log"


def test_fit_figure_and_formats(block, tmp_path):
    view = load_result(block[0])
    fig = fit_figure(view)
    assert len(fig.axes) >= 13 and fig.get_size_inches()[0] < 15  # images + profile panels, paper sized
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")):
        path = save_figure(fig, tmp_path / f"fit{suffix}")
        assert path.read_bytes()[:len(magic)] == magic
    with pytest.raises(PlotError, match="unknown figure format"):
        save_figure(fig, tmp_path / "fit.gif")


# ------------------------------------------------------------------------ imfit

def test_imfit_bestfit_file(block, tmp_path):
    directory = block[0].parent
    text = f"""GAIN 5
X0   30.4  20,40
Y0   29.7  20,40
FUNCTION Sersic   # LABEL bulge
PA    30    0,90
ell   0.15  0,1
n     4     fixed
I_e   5     0,100
r_e   2     0,10
FUNCTION Exponential   # LABEL disk
PA    30    0,90
ell   0.55  0,1
I_0   10    0,100
h     5     0,20
"""
    cfg = parse_imfit_config(text)
    centre = (30.5, 30.5)
    values = [dict(BULGE), dict(DISK)]
    errors = [{k: 0.05 for k in v} for v in values]
    centres, rows = values_to_imfit(cfg, values, errors, centre)
    header = bestfit_header_lines(
        program="galprof", command=f"galprof imfit {directory / 'image.fits'} -c cfg.dat", converged=True,
        iterations=9, statistic_name="chi-squared (user-supplied errors)", best=3674.0, reduced=1.0234, aic=3690.0,
        bic=3740.0, inputs={"image": str(directory / "image.fits"), "psf": str(directory / "psf.fits"),
                            "mask": str(directory / "mask.fits"), "noise": str(directory / "sigma.fits")})
    best = tmp_path / "bestfit_parameters_imfit.dat"
    best.write_text(format_imfit_config(cfg, centres, rows, header, raw_header=True))
    view = from_imfit(best)
    assert view.mask is not None and view.mask.sum() == block[1]["mask"].sum()
    assert view.chi2_nu == pytest.approx(1.0234) and view.status == "converged"
    fig = image_figure(view)
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "I_e" in text and "ell" in text and "(bulge)" in text and "n      [4.000]" in text
    prof = profile_figure(view)
    assert "ADU" in prof.axes[0].get_ylabel()  # imfit has no zeropoint
    assert main(["plot", str(best), "-o", str(tmp_path / "imfit.png"), "--zeropoint", "25",
                 "--pixel-scale", "0.4", "0.4"]) == 0


# ------------------------------------------------------------------ results rows

def test_results_row_rerendered_with_its_data(survey):
    path, truths = survey
    results = BatchResults.open(path)
    assert results.problem == ""
    view = results.view("gal002")
    assert view.status == "max iterations" and view.name == "gal002"
    assert view.components[0].values["r_e"] == pytest.approx(truths[2]["r_e"])
    pull = (view.data - view.model) / view.sigma
    assert 0.85 < float(np.std(pull)) < 1.15 and abs(float(np.mean(pull))) < 0.1  # same model as simulated
    by_index = results.view("#2")
    np.testing.assert_array_equal(by_index.data, view.data)
    flagged = results.view("gal001")
    assert flagged.components[0].flagged["n"] and not flagged.components[0].flagged["r_e"]


# -------------------------------------------------------------------- compare

def _catalogs():
    rng = np.random.default_rng(5)
    n = 60
    ids = [f"g{i}" for i in range(n)]
    re = rng.uniform(2, 8, n)
    mag = rng.uniform(16, 19, n)
    pa = rng.uniform(-89, 89, n)
    pa[0] = 89.0
    a = Table({"id": ids, "1_RE": re, "1_MAG": mag, "1_PA": pa, "1_N": np.full(n, 4.0),
               "STATUS": ["converged"] * n})
    b_re = re * (1.02 + rng.normal(0, 0.005, n))
    b_re[[3, 7]] *= 1.5  # two outliers
    b_mag = mag + 0.01
    b_pa = pa + 1.0
    b_pa[0] = -90.0  # 90 and -90 are the same direction
    b = Table({"name": ids[::-1], "re_ref": b_re[::-1], "1_MAG": b_mag[::-1], "1_PA": b_pa[::-1],
               "1_N": np.full(n, 4.0)})
    return a, b, pa


def test_compare_statistics_outliers_and_figure(tmp_path):
    a, b, pa = _catalogs()
    comparison = compare_tables(a, b, column_map={"1_RE": "re_ref"}, id_column_b="name", labels=("galprof", "ref"))
    by = {p.column_a: p for p in comparison.parameters}
    assert set(by) == {"1_RE", "1_MAG", "1_PA"}  # 1_N is fixed (constant): left out
    assert comparison.n_matched == 60
    assert by["1_RE"].kind == "fractional" and by["1_RE"].median == pytest.approx(0.02, abs=0.003)
    assert by["1_RE"].scatter == pytest.approx(0.005, rel=0.4)
    assert set(by["1_RE"].ids[by["1_RE"].outliers]) == {"g3", "g7"}
    assert by["1_MAG"].median == pytest.approx(0.01) and by["1_MAG"].outliers.size == 0
    # PA differences wrap: 89 vs -90 is 1 degree, not 179
    assert np.max(np.abs(by["1_PA"].diff)) < 2.0 and by["1_PA"].median == pytest.approx(1.0, abs=0.01)
    text = format_summary(comparison)
    assert "outliers in 1_RE: g" in text and "60 matched" in text
    fig = compare_figure(comparison)
    assert len(fig.axes) == 6
    scatter_ax = fig.axes[0]
    line = [ln for ln in scatter_ax.lines if ln.get_gid() == "one-to-one"][0]
    x, y = line.get_data()
    assert np.allclose(x, y)
    outliers = [c for c in scatter_ax.collections if c.get_gid() == "outliers"][0]
    assert len(outliers.get_offsets()) == 2
    a.write(tmp_path / "a.csv", format="ascii.csv")
    b.write(tmp_path / "b.ecsv", format="ascii.ecsv")
    assert main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.ecsv"), "--map", "1_RE=re_ref",
                 "--id-column-b", "name", "-o", str(tmp_path / "cmp.pdf")]) == 0
    assert (tmp_path / "cmp.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(PlotError, match="no column"):
        compare_tables(a, b, columns=["1_XC"], id_column_b="name")


# --------------------------------------------------------------------- report

def read_report_data(directory):
    text = (directory / "data.js").read_text()
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def test_report_files_thumbnails_and_figures(survey, tmp_path):
    path, _ = survey
    out = tmp_path / "report"
    summary = write_report(path, out, progress=False)
    data = read_report_data(out)
    assert data["n"] == 13 and len(data["data"]["id"]) == 13
    assert data["flag"].count("failed") == 1 and data["flag"].count("bound") == 3
    assert "1_N" in data["show"] and "2_DSDX" not in data["show"]  # fixed columns are not shown
    assert summary.n_thumbnails == 12 and len(list((out / "thumbs").glob("*.png"))) == 12
    # flagged: hit a bound, max iterations, chi2nu > 2 (rows 0, 1, 2, 5, 6, 9, 10, 11)
    chi2nu = read_report_data(out)["data"]["CHI2NU"]
    expected = {i for i in range(12) if i % 4 in (1, 2) or chi2nu[i] > 2}
    assert expected == {0, 1, 2, 5, 6, 9, 10, 11}
    assert {i for i, f in enumerate(data["figures"]) if f} == expected
    assert {int(p.stem) for p in (out / "figures").glob("*.png")} == expected
    html = (out / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from the network
    assert "galaxies" in html and "histograms.png" in html
    thumb = matplotlib.image.imread(out / "thumbs" / "4.png")
    assert thumb.shape[:2] == (48, 3 * 48 + 2)
    residual = thumb[:, 2 * 48 + 2:, :3]
    assert np.abs(residual.mean(axis=(0, 1)) - 0.95).max() < 0.15  # mostly near-white: a good fit


def test_thumbnail_marks_masked_pixels():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20, 30))
    bad = np.zeros(data.shape, dtype=bool)
    bad[2:5, 3:6] = True
    rgb = thumbnail_rgb(data, np.zeros_like(data), np.ones_like(data), bad)
    assert rgb.shape == (20, 92, 3)
    res = rgb[:, 62:].astype(float) / 255
    flipped = bad[::-1]
    np.testing.assert_allclose(res[flipped], np.tile(style.MASK_COLOUR, (flipped.sum(), 1)), atol=0.01)


def test_report_of_a_large_table_without_rendering(tmp_path):
    """100,000 rows: the page data are written quickly (the browser test loads it)."""
    import time

    from test_report_browser import large_table

    path = large_table(tmp_path, 100_000)
    t0 = time.perf_counter()
    summary = write_report(path, tmp_path / "big", progress=False)
    elapsed = time.perf_counter() - t0
    assert summary.n_rows == 100_000 and summary.n_thumbnails == 0 and summary.notes
    assert elapsed < 30
    assert read_report_data(tmp_path / "big")["n"] == 100_000


def test_report_command(survey, tmp_path, capsys):
    path, _ = survey
    assert main(["report", str(path), "--out", str(tmp_path / "r"), "--figures", "none", "--quiet"]) == 0
    assert "13 rows, 12 thumbnails, 0 figures" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.fits"), "--out", str(tmp_path / "r2")]) == 2
