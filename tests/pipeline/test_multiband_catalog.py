"""Multi-band catalogs through ``galprof batch`` (issue 22, "Catalog batches").

GalSim renders Sersic galaxies in three bands (g, r, i: their own magnitudes, Moffat
PSFs and noise, one shape and size); a catalog names every band's files
(``image_<band>``, ``sigma_<band>``, ``psf_<band>``), and the model comes from a GALFITM
multi-band template or from a single-band feedme with ``--bands``. The fitted per-band
magnitudes (``1_MAG_g`` ...) and shared structure (``1_RE`` ...) must recover GalSim's
truth within errors, from automatic starting values detected on the stacked bands.

Conventions: 1-based pixels, PA counter-clockwise from +y [deg], R_e along the major axis
[pix], q = b/a, mag = zeropoint - 2.5 log10(flux [ADU] / EXPTIME).
"""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galprof.cli.main import main
from galprof.errors import CatalogError
from galprof.fitting.bands import Bands
from galprof.pipeline.autoinit import auto_initial_bands
from galprof.pipeline.runner import BatchOptions, run_batch
from galprof.pipeline.sources import read_catalog, template_from_file, with_bands
from galprof.plots import BatchResults

LABELS = ("g", "r", "i")
ZEROPOINTS = (25.0, 25.5, 25.2)
FWHM = (3.0, 2.6, 2.3)
SIZE = 40
TRUTH = [  # x, y, r_e, n, q, pa, and the g, r, i magnitudes
    dict(x=20.3, y=20.9, r_e=3.2, n=1.5, q=0.6, pa=30.0, mags=(18.2, 17.6, 17.2)),
    dict(x=21.0, y=20.2, r_e=4.0, n=2.5, q=0.8, pa=-50.0, mags=(18.0, 17.1, 16.8)),
    dict(x=20.6, y=21.3, r_e=2.6, n=1.0, q=0.5, pa=75.0, mags=(17.8, 17.5, 17.4)),
]

GALFITM_TEMPLATE = """\
A) g.fits,r.fits,i.fits
A1) g,r,i
A2) 4770,6231,7625
B) block.fits
C) none
D) psf_g.fits,psf_r.fits,psf_i.fits
E) 1
F) none
G) none
H) 1 40 1 40
I) 40 40
J) 25.0,25.5,25.2
K) 0.396 0.396
O) regular
P) 0

0) sersic
1) 20.5   1
2) 20.5   1
3) 18.0,17.5,17.0   3
4) 3.0   1
5) 2.0   1
9) 0.7   1
10) 0   1
Z) 0
"""

SINGLE_TEMPLATE = """\
A) none.fits
B) block.fits
C) none
D) none
H) 1 40 1 40
I) 40 40
J) 25.0
K) 0.396 0.396
O) regular
P) 0

0) sersic
1) 20.5   1
2) 20.5   1
3) 18.0   1
4) 3.0   1
5) 2.0   1
9) 0.7   1
10) 0   1
Z) 0
"""


def epsf(fwhm: float) -> np.ndarray:
    stamp = galsim.Moffat(beta=3.5, fwhm=fwhm).drawImage(nx=17, ny=17, scale=1.0).array
    return stamp / stamp.sum()


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Three galaxies x three bands on disk, their PSFs, sigmas and a catalog."""
    root = tmp_path_factory.mktemp("multiband_catalog")
    rng = np.random.default_rng(5)
    for k, label in enumerate(LABELS):
        fits.writeto(root / f"psf_{label}.fits", epsf(FWHM[k]))
    rows = []
    for b, truth in enumerate(TRUTH):
        row = {"id": f"gal{b}"}
        for k, label in enumerate(LABELS):
            flux = 10 ** (-0.4 * (truth["mags"][k] - ZEROPOINTS[k]))
            gal = galsim.Sersic(n=truth["n"], half_light_radius=truth["r_e"] * np.sqrt(truth["q"]), flux=flux)
            gal = gal.shear(q=truth["q"], beta=(truth["pa"] + 90.0) * galsim.degrees)
            offset = (truth["x"] - (SIZE / 2 + 0.5), truth["y"] - (SIZE / 2 + 0.5))
            clean = galsim.Convolve(gal, galsim.Moffat(beta=3.5, fwhm=FWHM[k])).drawImage(
                nx=SIZE, ny=SIZE, scale=1.0, offset=offset).array
            sigma = np.sqrt(0.3**2 + np.clip(clean, 0, None) / 4.0)
            fits.writeto(root / f"g{b}_{label}.fits", clean + rng.normal(size=clean.shape) * sigma)
            fits.writeto(root / f"g{b}_{label}_sig.fits", sigma)
            row[f"image_{label}"] = f"g{b}_{label}.fits"
            row[f"sigma_{label}"] = f"g{b}_{label}_sig.fits"
            row[f"psf_{label}"] = f"psf_{label}.fits"
        rows.append(row)
    Table(rows=rows).write(root / "catalog.csv")
    (root / "galfitm.feedme").write_text(GALFITM_TEMPLATE)
    (root / "single.feedme").write_text(SINGLE_TEMPLATE)
    return root


def assert_recovers_truth(table) -> None:
    assert list(table["STATUS"]) == ["converged"] * len(TRUTH), list(table["STATUS"])
    assert all(table["AUTO_INIT"])  # no centre in the catalog: detected on the stacked bands
    for b, truth in enumerate(TRUTH):
        row = table[b]
        for k, label in enumerate(LABELS):
            pull = (row[f"1_MAG_{label}"] - truth["mags"][k]) / row[f"1_MAG_{label}_ERR"]
            assert abs(pull) < 4.0, (b, label, pull)
        for key, name in (("1_RE", "r_e"), ("1_N", "n"), ("1_AR", "q"), ("1_XC", "x"), ("1_YC", "y")):
            pull = (row[key] - truth[name]) / row[key + "_ERR"]
            assert abs(pull) < 4.0, (b, key, pull)
        assert abs(row["CHI2NU"] - 1.0) < 0.15


def test_galfitm_template_catalog_recovers_galsim_truth(survey):
    out = survey / "galfitm.ecsv"
    assert main(["batch", str(survey / "catalog.csv"), "--template", str(survey / "galfitm.feedme"), "-o", str(out),
                 "--quiet"]) == 0
    table = Table.read(out)
    assert "1_MAG_g" in table.colnames and "1_MAG" not in table.colnames and "1_RE_g" not in table.colnames
    assert_recovers_truth(table)


def test_single_band_template_with_bands_option(survey):
    out = survey / "single.ecsv"
    assert main(["batch", str(survey / "catalog.csv"), "--template", str(survey / "single.feedme"),
                 "--bands", "g:4770,r:6231,i:7625", "-o", str(out), "--quiet"]) == 0
    table = Table.read(out)
    # the single template's zeropoint (25.0) in every band: r and i magnitudes shift by
    # their zeropoints' differences from the truth's
    shift = np.array(ZEROPOINTS) - 25.0
    for k, label in enumerate(LABELS):
        table[f"1_MAG_{label}"] += shift[k]
    assert_recovers_truth(table)
    assert table.meta["BANDS"] == "g:4770,r:6231,i:7625"
    # the report's re-rendering knows the bands from the table (the template is single-band)
    view = BatchResults.open(out).view("gal1")
    assert [band.name for band in view.views] == ["gal1 [g]", "gal1 [r]", "gal1 [i]"]


def test_stacked_detection_measures_every_band(survey):
    """auto_initial_bands: one centre and shape from the stacked bands; each band's
    magnitude near its truth (isophotal colours: within 0.3 mag) and its colours closer."""
    images = np.stack([fits.getdata(survey / f"g0_{label}.fits") for label in LABELS])
    sigmas = np.stack([fits.getdata(survey / f"g0_{label}_sig.fits") for label in LABELS])
    found = auto_initial_bands(images, sigma=sigmas, zeropoints=ZEROPOINTS)
    truth = TRUTH[0]
    assert abs(found.stacked.values["x"] - truth["x"]) < 0.5 and abs(found.stacked.values["y"] - truth["y"]) < 0.5
    np.testing.assert_allclose(found.mags, truth["mags"], atol=0.3)
    np.testing.assert_allclose(np.diff(found.mags), np.diff(truth["mags"]), atol=0.1)


def test_bad_rows_and_catalogs_are_named(survey, tmp_path):
    template = template_from_file(str(survey / "galfitm.feedme"))
    assert template.bands.labels == LABELS and template.zeropoint == ZEROPOINTS
    missing = Table(rows=[{"id": "a", "image_g": "x.fits", "image_r": "y.fits"}])
    missing.write(tmp_path / "missing.csv")
    with pytest.raises(CatalogError, match="no column 'image_i'.*image_g, image_r, image_i"):
        read_catalog(str(tmp_path / "missing.csv"), template)
    unknown = Table(rows=[{"id": "a", "image_g": "x", "image_r": "y", "image_i": "z", "1_MAG_u": 18.0}])
    unknown.write(tmp_path / "unknown.csv")
    with pytest.raises(CatalogError, match="'1_MAG_u' names no parameter"):
        read_catalog(str(tmp_path / "unknown.csv"), template)
    with pytest.raises(CatalogError, match="already multi-band"):
        with_bands(template, Bands(("g", "r"), (1.0, 2.0)))
    # one galaxy's r image is missing: that galaxy fails, by name; the others are fitted
    table = Table.read(survey / "catalog.csv")
    table["image_r"] = table["image_r"].astype("U64")
    table["image_r"][1] = "nowhere.fits"
    table.write(survey / "broken.csv", overwrite=True)
    sources = read_catalog(str(survey / "broken.csv"), template)
    summary = run_batch(sources, template, survey / "broken.ecsv", BatchOptions(), progress=False)
    status = list(summary.table["STATUS"])
    assert status[0] == "converged" and status[2] == "converged"
    assert status[1].startswith("failed") and "gal1 band r (image)" in status[1] and "nowhere.fits" in status[1]
    assert np.isnan(summary.table["1_MAG_r"][1])


def test_a_template_whose_box_convolves_nothing_is_honoured(survey):
    """``I) 40.0 40.0`` reads as GALFIT reads it, 40 x 0: nothing is convolved with the PSF,
    for a catalog too. Fitted without the PSF, the PSF-broadened GalSim galaxies come out
    larger than their truth (with it they would recover it, as the tests above show)."""
    (survey / "nobox.feedme").write_text(GALFITM_TEMPLATE.replace("I) 40 40", "I) 40.0 40.0"))
    template = template_from_file(str(survey / "nobox.feedme"))
    assert not template.convolve and template_from_file(str(survey / "galfitm.feedme")).convolve
    out = survey / "nobox.ecsv"
    assert main(["batch", str(survey / "catalog.csv"), "--template", str(survey / "nobox.feedme"), "-o", str(out),
                 "--quiet"]) == 0
    table = Table.read(out)
    for b, truth in enumerate(TRUTH):
        assert table["1_RE"][b] > 1.1 * truth["r_e"], (b, table["1_RE"][b], truth["r_e"])
