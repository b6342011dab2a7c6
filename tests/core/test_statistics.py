"""Fit statistics other than fixed-sigma chi^2 (imfit's --poisson-mlr, --cashstat,
--model-errors): values against numbers computed by hand on a tiny image, derivatives
against finite differences, and a batched Poisson fit of GalSim galaxies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from galprof import Component, Model, fit
from galprof.fitting.likelihood import LikelihoodError, PixelStatistic
from references import FFT_GSPARAMS, galsim_moffat, galsim_sersic, moffat_epsf

DATA = np.array([[[3.0, 0.0], [10.0, 7.5]]])  # ADU, sky already subtracted
MODEL = np.array([[[2.5, 1.0], [9.0, 9.0]]])
GAIN, SKY, RN, NCOMB = 2.0, 2.0, 3.0, 1.0


def _tensors():
    good = torch.ones(DATA.shape, dtype=torch.bool)
    return torch.tensor(DATA), torch.tensor(MODEL), good


def test_poisson_mlr_and_cash_by_hand():
    # counts: d = (data + 2) * 2 = 10, 4, 24, 19; m = (model + 2) * 2 = 9, 6, 22, 22
    d = [10.0, 4.0, 24.0, 19.0]
    m = [9.0, 6.0, 22.0, 22.0]
    mlr = 2 * sum(mi - di + di * math.log(di / mi) for di, mi in zip(d, m))
    cash = 2 * sum(mi - di * math.log(mi) for di, mi in zip(d, m))
    data, model, good = _tensors()
    got_mlr = PixelStatistic("poisson-mlr", gain=GAIN, sky=SKY).value(data, model, good).item()
    got_cash = PixelStatistic("cash", gain=GAIN, sky=SKY).value(data, model, good).item()
    assert got_mlr == pytest.approx(mlr, rel=1e-12)
    assert got_cash == pytest.approx(cash, rel=1e-12)
    # a masked pixel contributes nothing
    good[0, 0, 0] = False
    part = 2 * sum(mi - di + di * math.log(di / mi) for di, mi in zip(d[1:], m[1:]))
    assert PixelStatistic("poisson-mlr", gain=GAIN, sky=SKY).value(data, model, good).item() == pytest.approx(part)


def test_model_based_chi2_by_hand():
    expected = sum((d - m) ** 2 / ((m + SKY) / GAIN + NCOMB * RN**2 / GAIN**2)
                   for d, m in zip(DATA.ravel(), MODEL.ravel()))
    data, model, good = _tensors()
    stat = PixelStatistic("model-chi2", gain=GAIN, sky=SKY, read_noise=RN, ncombined=NCOMB)
    assert stat.value(data, model, good).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", ["poisson-mlr", "model-chi2"])
def test_rho_derivative_matches_finite_differences(kind):
    stat = PixelStatistic(kind, gain=GAIN, sky=SKY, read_noise=RN)
    data, model, good = _tensors()
    # include a model exactly at the data (the 0/0 limit) and one close to it
    model = model.clone()
    model[0, 0, 0] = data[0, 0, 0]
    model[0, 1, 0] = data[0, 1, 0] * (1 + 1e-7)
    _, drho = stat.rho(data, model, good)
    h = 1e-6
    numeric = (stat.rho(data, model + h, good)[0] - stat.rho(data, model - h, good)[0]) / (2 * h)
    np.testing.assert_allclose(drho.numpy(), numeric.numpy(), rtol=1e-5)
    with pytest.raises(LikelihoodError):
        PixelStatistic("poisson", gain=1.0)


@pytest.mark.slow
def test_poisson_fit_recovers_low_count_galaxies():
    """Batched Poisson-MLR fits of 24 Poisson realisations of a GalSim galaxy (counts of
    tens per pixel): mean within 0.35 sigma of the truth (plus sampling noise), errors
    (expected Fisher information) consistent with the scatter."""
    import galsim
    truth = dict(x=16.3, y=15.8, mag=16.0, r_e=3.0, n=1.5, q=0.7, pa=30.0)  # peak ~100 ADU, sky 20, gain 2
    zp, gain, sky = 25.0, 2.0, 20.0
    flux = 10 ** (-0.4 * (truth["mag"] - zp))
    gal = galsim_sersic(truth["n"], truth["r_e"], truth["q"], truth["pa"], flux, gsparams=FFT_GSPARAMS)
    conv = galsim.Convolve(gal, galsim_moffat(3.5, 2.8, gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
    clean = conv.drawImage(nx=32, ny=32, scale=1.0, offset=(truth["x"] - 16.5, truth["y"] - 16.5)).array
    rng = np.random.default_rng(3)
    n_real = 24
    images = rng.poisson((clean + sky) * gain, size=(n_real, 32, 32)) / gain - sky
    start = dict(truth, x=16.8, r_e=3.6, n=2.0, mag=16.3)
    stat = PixelStatistic("poisson-mlr", gain=gain, sky=sky)
    result = fit(Model([Component("sersic", start)]), images, psf=moffat_epsf(3.5, 2.8, 25), zeropoint=zp,
                 statistic=stat, dtype=torch.float64)
    assert result.converged.all()
    for name in ("mag", "r_e", "n", "x"):
        pulls = (result.value(1, name) - truth[name]) / result.error(1, name)
        # bias below 0.35 sigma, plus two standard errors of a 24-realisation mean
        assert abs(pulls.mean()) < 0.35 + 2 / 24**0.5, (name, pulls.mean())
        assert 0.6 < pulls.std() < 1.6, (name, pulls.std())  # 24 samples: the std is known to ~15 %
    # the reduced statistic of a good fit is near 1
    assert 0.8 < np.median(result.chi2_nu) < 1.2
