"""A bulge + disk + bar (Sersic + expdisk + ferrer) fit of a simulated barred galaxy.

The images are made by plain numpy from the published formulas (pixel integrals by
Gauss-Legendre quadrature, densely sub-divided around the cuspy centre), with no PSF;
galprof fits all three components together and must recover each of them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from galprof import Component, Model, fit
from references import sersic_b_scipy
from scipy import special

ZP = 25.0
SIZE = 96


def _radius(dx, dy, q, pa):
    t = np.radians(pa)
    u = -dx * np.sin(t) + dy * np.cos(t)
    v = -dx * np.cos(t) - dy * np.sin(t)
    return np.sqrt(u**2 + (v / q) ** 2)


def galaxy(dx, dy, t):
    """Surface brightness [ADU/pix] of the three components at offsets from the centre."""
    b = sersic_b_scipy(t["n"])
    bulge_flux = 10 ** (-0.4 * (t["bulge_mag"] - ZP))
    i_e = bulge_flux * b ** (2 * t["n"]) / (2 * np.pi * t["bulge_q"] * t["r_e"] ** 2 * t["n"] * np.exp(b)
                                           * special.gamma(2 * t["n"]))
    bulge = i_e * np.exp(-b * ((_radius(dx, dy, t["bulge_q"], t["bulge_pa"]) / t["r_e"]) ** (1 / t["n"]) - 1))
    disk_flux = 10 ** (-0.4 * (t["disk_mag"] - ZP))
    disk = disk_flux / (2 * np.pi * t["disk_q"] * t["r_s"] ** 2) * np.exp(
        -_radius(dx, dy, t["disk_q"], t["disk_pa"]) / t["r_s"])
    x = _radius(dx, dy, t["bar_q"], t["bar_pa"]) / t["r_out"]
    bar_i0 = 10 ** (-0.4 * (t["mu_0"] - ZP))  # EXPTIME 1, 1"/pix
    bar = bar_i0 * np.clip(1 - np.minimum(x, 1) ** (2 - t["beta"]), 0, None) ** t["alpha"]
    return bulge + disk + bar


def simulate(t, nodes=6, fine=24):
    g, w = np.polynomial.legendre.leggauss(nodes)
    g, w = g / 2, w / 2
    centres = np.arange(1, SIZE + 1)
    px = (centres[:, None] + g[None, :]).ravel()
    wx = np.tile(w, SIZE)
    value = galaxy(px[None, :] - t["x"], px[:, None] - t["y"], t)
    image = (value * wx[None, :] * wx[:, None]).reshape(SIZE, nodes, SIZE, nodes).sum((1, 3))
    # the 5 x 5 pixels around the cusp: fine x fine cells of 4 x 4 nodes each
    gf, wf = np.polynomial.legendre.leggauss(4)
    sub = (np.arange(fine) + 0.5) / fine - 0.5
    offs = (sub[:, None] + gf[None, :] / (2 * fine)).ravel()
    wo = np.tile(wf / (2 * fine), fine)
    cx, cy = int(round(t["x"])), int(round(t["y"]))
    for j in range(cy - 2, cy + 3):
        for i in range(cx - 2, cx + 3):
            v = galaxy(i + offs[None, :] - t["x"], j + offs[:, None] - t["y"], t)
            image[j - 1, i - 1] = (v * wo[None, :] * wo[:, None]).sum()
    return image


TRUTH = dict(x=48.3, y=47.6, bulge_mag=18.0, r_e=2.5, n=2.2, bulge_q=0.85, bulge_pa=10.0,
             disk_mag=16.2, r_s=11.0, disk_q=0.75, disk_pa=-20.0,
             mu_0=21.4, r_out=14.0, alpha=2.0, beta=0.2, bar_q=0.3, bar_pa=60.0)


@pytest.mark.slow
def test_bulge_disk_bar_fit_recovers_every_component():
    t = TRUTH
    image = simulate(t)
    sigma = np.full_like(image, 0.02 * image.max())  # noise-free data; sigma only sets the weights
    data = image
    model = Model([
        Component("sersic", dict(x=t["x"] + 0.6, y=t["y"] - 0.5, mag=t["bulge_mag"] + 0.4, r_e=t["r_e"] * 1.4,
                                 n=2.8, q=0.75, pa=t["bulge_pa"] + 15)),
        Component("expdisk", dict(x=t["x"] + 0.6, y=t["y"] - 0.5, mag=t["disk_mag"] - 0.3, r_s=t["r_s"] * 0.8,
                                  q=0.65, pa=t["disk_pa"] - 10)),
        Component("ferrer", dict(x=t["x"] + 0.6, y=t["y"] - 0.5, mu_0=t["mu_0"] + 0.4, r_out=t["r_out"] * 1.15,
                                 alpha=1.5, beta=0.0, q=0.4, pa=t["bar_pa"] - 8)),
    ])
    result = fit(model, data, sigma=sigma, zeropoint=ZP)
    assert result.converged.all()

    def value(c, name):
        return float(result.value(c, name)[0])

    for c in (1, 2, 3):
        assert value(c, "x") == pytest.approx(t["x"], abs=0.02)
        assert value(c, "y") == pytest.approx(t["y"], abs=0.02)
    assert value(1, "mag") == pytest.approx(t["bulge_mag"], abs=0.01)
    assert value(1, "r_e") == pytest.approx(t["r_e"], rel=0.01)
    assert value(1, "n") == pytest.approx(t["n"], rel=0.01)
    assert value(1, "q") == pytest.approx(t["bulge_q"], abs=0.005)
    assert value(2, "mag") == pytest.approx(t["disk_mag"], abs=0.01)
    assert value(2, "r_s") == pytest.approx(t["r_s"], rel=0.01)
    assert value(2, "q") == pytest.approx(t["disk_q"], abs=0.005)
    assert math.remainder(value(2, "pa") - t["disk_pa"], 180) == pytest.approx(0, abs=0.5)
    assert value(3, "mu_0") == pytest.approx(t["mu_0"], abs=0.02)
    assert value(3, "r_out") == pytest.approx(t["r_out"], rel=0.01)
    assert value(3, "alpha") == pytest.approx(t["alpha"], rel=0.03)
    assert value(3, "beta") == pytest.approx(t["beta"], abs=0.05)
    assert value(3, "q") == pytest.approx(t["bar_q"], abs=0.005)
    assert math.remainder(value(3, "pa") - t["bar_pa"], 180) == pytest.approx(0, abs=0.5)
