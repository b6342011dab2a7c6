"""A convolution box with a zero side convolves nothing (GALFIT's reading of
``I) 30.0 30.0`` is a 30 x 0 box, and GALFITM's model images made with it are
unconvolved): a galaxy drawn by GalSim without a PSF (pixel-integrated) is recovered
with such a box although a broad PSF is given, and is not recovered without the box."""

from __future__ import annotations

import galsim
import numpy as np

from galprof import Component, Model, fit

SIZE = 40
TRUTH = dict(x=20.3, y=19.6, mag=17.0, r_e=2.0, n=1.5, q=0.7, pa=30.0)


def test_a_box_with_no_pixels_convolves_nothing():
    q = TRUTH["q"]
    gal = galsim.Sersic(n=TRUTH["n"], half_light_radius=TRUTH["r_e"] * np.sqrt(q),
                        flux=10 ** (-0.4 * (TRUTH["mag"] - 25.0)))
    gal = gal.shear(q=q, beta=(TRUTH["pa"] + 90.0) * galsim.degrees)
    clean = gal.drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=(TRUTH["x"] - 20.5, TRUTH["y"] - 20.5)).array
    sigma = np.sqrt(0.5**2 + np.clip(clean, 0, None) / 5.0)
    image = clean + np.random.default_rng(4).normal(0.0, 1.0, clean.shape) * sigma
    psf = galsim.Gaussian(fwhm=4.0).drawImage(nx=21, ny=21, scale=1.0).array
    start = dict(TRUTH, r_e=3.0, n=2.5, mag=17.4, x=21.0, y=19.0)
    unconvolved = fit(Model([Component("sersic", start)]), image, sigma=sigma, psf=psf / psf.sum(), zeropoint=25.0,
                      convolution_box=(30, 0))
    assert unconvolved.status[0] == "converged"
    for j, (_, name) in enumerate(unconvolved.names):
        assert abs(unconvolved.values[0, j] - TRUTH[name]) < 4 * unconvolved.errors[0, j], name
    convolved = fit(Model([Component("sersic", start)]), image, sigma=sigma, psf=psf / psf.sum(), zeropoint=25.0)
    r_e = convolved.names.index((1, "r_e"))
    assert abs(convolved.values[0, r_e] - TRUTH["r_e"]) > 10 * convolved.errors[0, r_e]
