"""--errors, --covariance-file and --save-bootstrap of `galprof fit` / `galprof batch`, and
the sampler (Pyro NUTS) against exact posteriors of linear-Gaussian problems."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from scipy import special

from galprof import Component, Model, fit
from galprof.cli import main

FEEDME = """A) img.fits
B) out.fits
C) sig.fits
D) none
E) 1
F) none
G) none
H) 1 20 1 18
I) 20 20
J) 25.0
K) 1 1
O) regular
P) 0
 0) gaussian
 1) 10.0 9.0 1 1
 3) 19.2 1
 4) 3.0 1
 9) 1.0 0
10) 0.0 0
 Z) 0
"""


def _gaussian_image(x0=10.4, y0=9.3, fwhm=3.2, flux=400.0, shape=(18, 20)):
    s = fwhm / (2 * math.sqrt(2 * math.log(2)))
    cx = np.diff(special.erf((np.arange(shape[1] + 1) + 0.5 - x0) / (math.sqrt(2) * s))) / 2
    cy = np.diff(special.erf((np.arange(shape[0] + 1) + 0.5 - y0) / (math.sqrt(2) * s))) / 2
    return flux * np.outer(cy, cx)


@pytest.fixture()
def feedme_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    img = _gaussian_image() + rng.normal(0, 1.0, (18, 20))
    fits.writeto("img.fits", img)
    fits.writeto("sig.fits", np.ones_like(img))
    (tmp_path / "g.feedme").write_text(FEEDME)
    return tmp_path


def test_fit_writes_the_covariance_file_and_bootstrap_replicates(feedme_dir):
    assert main(["batch", "g.feedme", "-o", "cov.ecsv", "--quiet", "--device", "cpu"]) == 0
    assert main(["fit", "g.feedme", "--quiet", "--covariance-file", "cov.fits"]) == 0
    with fits.open("cov.fits") as hdus:
        hdu = hdus[1]
        names = [hdu.header[f"PAR{i + 1}"] for i in range(hdu.data.shape[0])]
        cov = hdu.data
        assert names == ["1_XC", "1_YC", "1_MAG", "1_FWHM"] and not hdu.header["COVFLAG"]
    table = Table.read("cov.ecsv")
    for i, name in enumerate(names):
        assert math.sqrt(cov[i, i]) == pytest.approx(table[name + "_ERR"][0], rel=1e-4)
    np.testing.assert_allclose(cov, cov.T, rtol=1e-10)
    assert main(["batch", "g.feedme", "-o", "boot.ecsv", "--quiet", "--device", "cpu", "--errors", "bootstrap",
                 "--bootstrap", "24", "--seed", "3"]) == 0
    boot = Table.read("boot.ecsv")
    for name in names:  # bootstrap errors beside the covariance ones (one schema), and agree roughly (24 replicates)
        assert boot[name + "_ERR"][0] == pytest.approx(table[name + "_ERR"][0], rel=1e-6)
        assert boot[name + "_BOOT_ERR"][0] != table[name + "_ERR"][0]
        assert 0.5 < boot[name + "_BOOT_ERR"][0] / table[name + "_ERR"][0] < 1.6
    assert main(["fit", "g.feedme", "--quiet", "--errors", "bootstrap", "--bootstrap", "5", "--seed", "2",
                 "--save-bootstrap", "reps.csv"]) == 0
    reps = Table.read("reps.csv")
    assert len(reps) == 5 and list(reps["REPLICATE"]) == [0, 1, 2, 3, 4] and "1_MAG" in reps.colnames
    assert main(["fit", "g.feedme", "--quiet", "--errors", "bootstrap", "--bootstrap", "1"]) == 2


def test_batch_catalog_adds_scaled_and_bootstrap_columns(tmp_path):
    from galprof.pipeline.sources import read_catalog, template_from_file
    from galprof.pipeline.runner import BatchOptions, run_batch
    from galprof.uncertainty.methods import ErrorOptions

    rng = np.random.default_rng(2)
    rows = []
    for k in range(3):
        fits.writeto(tmp_path / f"c{k}.fits", _gaussian_image() + rng.normal(0, 1.0, (18, 20)))
        fits.writeto(tmp_path / f"s{k}.fits", np.ones((18, 20)))
        rows.append({"id": f"g{k}", "image": f"c{k}.fits", "sigma": f"s{k}.fits", "1_XC": 10.0, "1_YC": 9.0})
    Table(rows=rows).write(tmp_path / "cat.ecsv", format="ascii.ecsv")
    (tmp_path / "t.feedme").write_text(FEEDME.replace("A) img.fits", "A) c0.fits").replace("C) sig.fits", "C) none"))
    template = template_from_file(str(tmp_path / "t.feedme"))
    sources = read_catalog(str(tmp_path / "cat.ecsv"), template)
    options = BatchOptions(batch_size=3, errors=ErrorOptions("bootstrap", bootstrap=12, seed=1))
    run_batch(sources, template, tmp_path / "out.ecsv", options, progress=False)
    table = Table.read(tmp_path / "out.ecsv")
    for suffix in ("_ERR", "_ERR_SCALED", "_BOOT_ERR", "_BOOT_LO68", "_BOOT_HI68", "_BOOT_LO95", "_BOOT_HI95"):
        assert "1_MAG" + suffix in table.colnames
    assert "COV_FLAG" in table.colnames and not any(table["COV_FLAG"])
    np.testing.assert_allclose(table["1_MAG_ERR_SCALED"], table["1_MAG_ERR"] * np.sqrt(table["CHI2NU"]), rtol=1e-5)
    assert np.all(table["1_MAG_BOOT_LO68"] < table["1_MAG"]) and np.all(table["1_MAG"] < table["1_MAG_BOOT_HI68"])
    assert np.all(table["1_MAG_BOOT_LO95"] <= table["1_MAG_BOOT_LO68"])


# ------------------------------------------------------------------------------ sampling

def _sky(seed, shape=(14, 16), level=4.0, sigma=1.5):
    rng = np.random.default_rng(seed)
    return level + rng.normal(0, sigma, shape), np.full(shape, sigma)


def test_nuts_posterior_of_a_linear_model_is_the_analytic_gaussian():
    """Tilted sky plane, flat priors: the posterior is Gaussian with mean = the weighted
    least-squares estimate and covariance (X^T W X)^-1 (computed by hand)."""
    pytest.importorskip("pyro")
    from galprof.uncertainty import sample

    image, sigma = _sky(3)
    model = Model([Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0))])
    result = fit(model, image, sigma=sigma, dtype=torch.float64)
    h, w = image.shape
    ys, xs = np.mgrid[1:h + 1, 1:w + 1]
    x = np.stack([np.ones(h * w), (xs - (w + 1) / 2).ravel(), (ys - (h + 1) / 2).ravel()], 1)
    cov = np.linalg.inv(x.T @ x / 1.5**2)
    mean = cov @ (x.T @ image.ravel() / 1.5**2)
    post = sample(model, result, image, sigma=sigma, n_samples=400, n_warmup=200, n_chains=3, seed=4)
    assert post.chains.shape == (3, 400, 1, 3)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(post.mean[0], mean, atol=0.15 * sd.max())
    assert np.all(np.abs(post.mean[0] - mean) < 0.15 * sd)
    np.testing.assert_allclose(post.std[0], sd, rtol=0.12)
    assert np.all(post.r_hat < 1.05) and np.all(post.ess > 200)
    low, high = post.interval(0.68)
    np.testing.assert_allclose((high - low)[0] / 2, sd, rtol=0.15)
    again = sample(model, result, image, sigma=sigma, n_samples=50, n_warmup=30, n_chains=2, seed=4)
    same = sample(model, result, image, sigma=sigma, n_samples=50, n_warmup=30, n_chains=2, seed=4)
    np.testing.assert_array_equal(again.chains, same.chains)


def test_nuts_with_a_gaussian_prior_gives_the_conjugate_posterior():
    """Sky level only, data sd s/sqrt(N), prior N(mu0, tau): the posterior is Gaussian with
    precision N/s^2 + 1/tau^2 and the precision-weighted mean."""
    pytest.importorskip("pyro")
    from galprof.uncertainty import sample

    image, sigma = _sky(5, level=4.0, sigma=2.0)
    n = image.size
    model = Model([Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed=frozenset({"dsdx", "dsdy"}))])
    result = fit(model, image, sigma=sigma, dtype=torch.float64)
    mu0, tau = 3.0, 0.1
    precision = n / 4.0 + 1 / tau**2
    mean = (image.sum() / 4.0 + mu0 / tau**2) / precision
    post = sample(model, result, image, sigma=sigma, priors={"1_sky": torch.distributions.Normal(mu0, tau)},
                  n_samples=500, n_warmup=200, n_chains=2, seed=1)
    assert post.mean[0, 0] == pytest.approx(mean, abs=0.12 / math.sqrt(precision))
    assert post.std[0, 0] == pytest.approx(1 / math.sqrt(precision), rel=0.12)
    assert post.std[0, 1] == 0 and np.isnan(post.r_hat[0, 1])  # fixed gradient
    with pytest.raises(ValueError, match="not a free parameter"):
        sample(model, result, image, sigma=sigma, priors={"1_dsdx": torch.distributions.Normal(0, 1)})


def test_sampling_without_pyro_is_a_clear_error(monkeypatch):
    import builtins

    from galprof.uncertainty import SamplingUnavailable, sample

    real_import = builtins.__import__

    def no_pyro(name, *args, **kwargs):
        if name == "pyro" or name.startswith("pyro."):
            raise ImportError("No module named 'pyro'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyro)
    image, sigma = _sky(1)
    model = Model([Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0))])
    with pytest.raises(SamplingUnavailable, match=r"pip install \"galprof\[sample\]\""):
        sample(model, None, image, sigma=sigma)
