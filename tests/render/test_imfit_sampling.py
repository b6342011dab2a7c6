"""``RenderConfig(legacy_pixel_integration=True, legacy_sampling="imfit")`` samples pixels
as imfit does (``galprof imfit --legacy-pixel-integration``), checked against an
independent numpy implementation of the rule and of the Sérsic and exponential formulas:
the mean of an n x n grid of sub-pixel centres, n = 20 within 4 px (Sérsic) or 3 px
(exponential) of the centre in elliptical radius, int(20 / r) out to 10 px, the
pixel-centre value beyond."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, special

from galprof import RenderConfig
from galprof.profiles import get_profile
from galprof.render.scene import Frame, render_model

pytestmark = pytest.mark.usefixtures("float64")

ZP = 25.0
SIZE = 41


def sersic_b(n):
    return optimize.brentq(lambda b: special.gammainc(2 * n, b) - 0.5, 1e-6, 4 * n + 10, xtol=1e-15)


def reference(kind, values, inner):
    """imfit's sampling of a unit-pixel-scale image, 1-based pixel centres."""
    x0, y0, q, pa = values["x"], values["y"], values["q"], math.radians(values["pa"])
    flux = 10 ** (-0.4 * (values["mag"] - ZP))
    if kind == "sersic":
        n, r_e = values["n"], values["r_e"]
        b = sersic_b(n)
        i_e = flux / (2 * math.pi * n * q * r_e**2 * math.exp(b) * b ** (-2 * n) * math.gamma(2 * n))

        def brightness(r):
            return i_e * np.exp(-b * ((r / r_e) ** (1 / n) - 1))
    else:
        h = values["r_s"]
        i_0 = flux / (2 * math.pi * q * h * h)

        def brightness(r):
            return i_0 * np.exp(-r / h)

    def radius(x, y):
        dx, dy = x - x0, y - y0
        u = -dx * math.sin(pa) + dy * math.cos(pa)  # along the major axis (PA from +y, counter-clockwise)
        w = -dx * math.cos(pa) - dy * math.sin(pa)
        return np.hypot(u, w / q)

    image = np.zeros((SIZE, SIZE))
    for row in range(SIZE):
        for col in range(SIZE):
            x, y = col + 1.0, row + 1.0
            r = radius(x, y)
            n_sub = 1 if r >= 10 else (20 if r <= inner else max(1, min(20, int(20 / r))))
            offsets = (np.arange(n_sub) + 0.5) / n_sub - 0.5
            sx, sy = np.meshgrid(x + offsets, y + offsets)
            image[row, col] = brightness(radius(sx, sy)).mean()
    return image


@pytest.mark.parametrize("kind, values, inner", [
    ("sersic", dict(x=20.3, y=21.6, mag=17.0, r_e=4.0, n=2.5, q=0.6, pa=35.0), 4.0),
    ("expdisk", dict(x=21.0, y=20.0, mag=16.0, r_s=5.0, q=0.8, pa=-70.0), 3.0),
])
def test_imfit_sampling_matches_the_rule(kind, values, inner):
    profile = get_profile(kind)
    params = {k: torch.tensor([v]) for k, v in values.items()}
    frame = Frame(1, 1, SIZE, SIZE, zeropoint=ZP)
    config = RenderConfig(legacy_pixel_integration=True, legacy_sampling="imfit")
    got = render_model([(profile, params)], frame, config=config)[0].numpy()
    expected = reference(kind, values, inner)
    assert np.abs(got / expected - 1).max() < 1e-9
    # and it is not the pixel integral: pixels beyond 10 px differ by the curvature term
    integrated = render_model([(profile, params)], frame, config=RenderConfig(legacy_pixel_integration=True))[0]
    assert np.abs(integrated.numpy() / expected - 1).max() > 1e-4


def test_unknown_sampling_is_refused():
    with pytest.raises(ValueError, match="legacy_sampling"):
        RenderConfig(legacy_sampling="galfit")
