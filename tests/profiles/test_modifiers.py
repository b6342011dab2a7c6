"""GALFIT's shape modifiers (generalised ellipse C0, Fourier modes) against independent
numpy/scipy references written from the documented formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from galprof import Component, Model, ModelError, fit
from galprof.render.scene import Frame, render_model
from references import sersic_b_scipy

ZP = 25.0


def modified_radius(dx, dy, *, q, pa, c0=0.0, modes=()):
    """Generalised radius from the documented convention (galprof.profiles.modifiers)."""
    t = np.radians(pa)
    u = -dx * np.sin(t) + dy * np.cos(t)
    w = (-dx * np.cos(t) - dy * np.sin(t)) / q
    c = c0 + 2.0
    rho = (np.abs(u) ** c + np.abs(w) ** c) ** (1.0 / c)
    theta = np.arctan2(w, u)
    factor = 1.0 + sum(a * np.cos(m * (theta + np.radians(phi))) for m, a, phi in modes)
    return rho * factor


def sersic_shape(rho, r_e, n):
    return np.exp(-sersic_b_scipy(n) * ((rho / r_e) ** (1.0 / n) - 1.0))


def normalisation(r_e, n, q, c0, modes):
    """1 / integral of the unnormalised shape over the plane (scipy, polar coordinates)."""
    def inner(phi):
        # radius along direction phi scales as r * h(phi): int f(r h) r dr = int f(s) s ds / h^2
        h = modified_radius(np.cos(phi), np.sin(phi), q=q, pa=0.0, c0=c0, modes=modes)
        return 1.0 / h**2
    angular, _ = integrate.quad(inner, 0.0, 2 * np.pi, limit=400)
    radial, _ = integrate.quad(lambda s: sersic_shape(s, r_e, n) * s, 0.0, np.inf, limit=400)
    return 1.0 / (angular * radial)


def reference_image(size, *, x0, y0, flux, r_e, n, q, pa, c0=0.0, modes=(), nodes=8):
    """Pixel integrals by Gauss-Legendre (``nodes``^2 per pixel, 40^2 in the 3x3 pixels
    around the centre)."""
    norm = flux * normalisation(r_e, n, q, c0, modes)
    g, wts = np.polynomial.legendre.leggauss(nodes)
    g, wts = g / 2, wts / 2
    xs = np.arange(1, size + 1)
    px = (xs[:, None] + g[None, :]).ravel()
    wx = np.tile(wts, size)
    dx = px[None, :] - x0
    dy = px[:, None] - y0
    value = norm * sersic_shape(modified_radius(dx, dy, q=q, pa=pa, c0=c0, modes=modes), r_e, n)
    image = (value * wx[None, :] * wx[:, None]).reshape(size, nodes, size, nodes).sum((1, 3))
    fine = 40
    gf, wf = np.polynomial.legendre.leggauss(4)
    sub = (np.arange(fine) + 0.5) / fine - 0.5
    offs = (sub[:, None] + gf[None, :] / (2 * fine)).ravel()
    wo = np.tile(wf / (2 * fine), fine)
    cx, cy = int(round(x0)), int(round(y0))
    for j in range(cy - 1, cy + 2):
        for i in range(cx - 1, cx + 2):
            ddx = i + offs[None, :] - x0
            ddy = j + offs[:, None] - y0
            v = norm * sersic_shape(modified_radius(ddx, ddy, q=q, pa=pa, c0=c0, modes=modes), r_e, n)
            image[j - 1, i - 1] = (v * wo[None, :] * wo[:, None]).sum()
    return image


CASES = [
    dict(c0=0.6, modes=()),
    dict(c0=-0.5, modes=()),
    dict(c0=0.0, modes=((1, 0.08, 25.0), (4, 0.05, -10.0))),
    dict(c0=0.3, modes=((3, 0.06, 40.0),)),
]


def _values(case):
    values = {"c0": case["c0"]}
    for m, a, phi in case["modes"]:
        values[f"f{m}_amp"], values[f"f{m}_phase"] = a, phi
    return values


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"c0{c['c0']}-modes{[m for m, _, _ in c['modes']]}")
def test_modified_sersic_matches_the_independent_reference(case):
    geometry = dict(x0=24.3, y0=25.6, r_e=5.0, n=1.5, q=0.6, pa=30.0)
    flux = 1000.0
    ref = reference_image(48, flux=flux, c0=case["c0"], modes=case["modes"], **geometry)
    values = dict(x=geometry["x0"], y=geometry["y0"], mag=ZP - 2.5 * math.log10(flux), r_e=5.0, n=1.5, q=0.6,
                  pa=30.0, **_values(case))
    comp = Component("sersic", values)
    params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
    got = render_model([(comp.profile_class, params)], Frame(1, 1, 48, 48, zeropoint=ZP))[0].numpy()
    assert np.abs(got - ref).max() < 2e-3 * ref.max(), np.abs(got - ref).max() / ref.max()


@pytest.mark.parametrize("case", CASES[:3], ids=["boxy", "disky", "fourier"])
def test_magnitude_is_the_total_flux_of_the_modified_shape(case):
    """Flux normalisation corrected for the changed area: the image of a compact source in
    a large frame sums to the flux of its magnitude (within 1e-4)."""
    values = dict(x=60.2, y=59.7, mag=20.0, r_e=3.0, n=1.0, q=0.7, pa=-20.0, **_values(case))
    comp = Component("sersic", values)
    params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
    image = render_model([(comp.profile_class, params)], Frame(1, 1, 120, 120, zeropoint=20.0))
    assert abs(float(image.sum()) - 1.0) < 1e-4


def test_c0_area_has_the_superellipse_closed_form():
    """The renderer's area factor for C0 alone equals scipy's integral of the isophote."""
    from galprof.profiles.modifiers import isophote_area_over_pi

    for c0 in (-1.0, -0.4, 0.5, 2.0):
        got = float(isophote_area_over_pi(True, (), {"c0": torch.tensor(c0, dtype=torch.float64)}, torch.zeros(1)))
        c = c0 + 2.0
        area, _ = integrate.quad(lambda x: 2 * (1 - abs(x) ** c) ** (1 / c), -1, 1)
        assert got == pytest.approx(area / math.pi, rel=1e-8)
        assert got == pytest.approx(4 * special.gamma(1 + 1 / c) ** 2 / special.gamma(1 + 2 / c) / math.pi, rel=1e-10)


def test_gradients_are_finite_with_the_centre_on_a_pixel_centre():
    values = dict(x=20.0, y=20.0, mag=18.0, r_e=2.0, n=4.0, q=0.5, pa=10.0, c0=0.4, f1_amp=0.1, f1_phase=0.0,
                  f2_amp=0.05, f2_phase=30.0)
    comp = Component("sersic", values)
    params = {k: torch.tensor([float(v)], dtype=torch.float64, requires_grad=True) for k, v in values.items()}
    image = render_model([(comp.profile_class, params)], Frame(1, 1, 40, 40, zeropoint=ZP))
    image.sum().backward()
    grads = {k: float(v.grad) for k, v in params.items()}
    assert all(math.isfinite(g) for g in grads.values()), grads


def test_gradcheck_of_modifier_parameters():
    base = dict(x=12.3, y=11.8, mag=18.0, r_e=3.0, n=1.2, q=0.7, pa=15.0)
    comp = Component("sersic", {**base, "c0": 0.3, "f3_amp": 0.05, "f3_phase": 20.0})
    names = ("c0", "f3_amp", "f3_phase")

    def render(c0, amp, phase):
        params = {k: torch.tensor([v], dtype=torch.float64) for k, v in base.items()}
        params.update(c0=c0, f3_amp=amp, f3_phase=phase)
        return render_model([(comp.profile_class, params)], Frame(1, 1, 24, 24, zeropoint=ZP))

    inputs = tuple(torch.tensor([float(comp.values[n])], dtype=torch.float64, requires_grad=True) for n in names)
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_fit_recovers_boxiness_and_fourier_modes():
    truths = [dict(x0=24.4, y0=23.7, flux=2e4, r_e=5.0, n=1.0, q=0.6, pa=30.0, c0=0.5, modes=((1, 0.06, 20.0),)),
              dict(x0=23.8, y0=24.9, flux=1e4, r_e=4.0, n=2.0, q=0.8, pa=-40.0, c0=-0.4, modes=((1, 0.04, -120.0),))]
    images = np.stack([reference_image(48, **t) for t in truths])
    start = {k: [] for k in ("x", "y", "mag", "r_e", "n", "q", "pa", "c0", "f1_amp", "f1_phase")}
    for t in truths:
        for k, v in dict(x=t["x0"] + 0.7, y=t["y0"] - 0.5, mag=ZP - 2.5 * math.log10(t["flux"]) + 0.3,
                         r_e=t["r_e"] * 1.3, n=t["n"] * 1.3, q=t["q"] + 0.1, pa=t["pa"] + 8, c0=0.0,
                         f1_amp=0.01, f1_phase=t["modes"][0][2] + 15).items():
            start[k].append(v)
    model = Model([Component("sersic", {k: np.array(v) for k, v in start.items()})])
    result = fit(model, images, sigma=np.ones_like(images), zeropoint=ZP)
    assert result.converged.all()
    for b, t in enumerate(truths):
        assert result.value(1, "c0")[b] == pytest.approx(t["c0"], abs=0.01)
        assert result.value(1, "f1_amp")[b] == pytest.approx(t["modes"][0][1], abs=2e-3)
        assert result.value(1, "f1_phase")[b] == pytest.approx(t["modes"][0][2], abs=1.0)
        assert result.value(1, "r_e")[b] == pytest.approx(t["r_e"], rel=5e-3)
        assert result.value(1, "n")[b] == pytest.approx(t["n"], rel=5e-3)
        assert result.value(1, "mag")[b] == pytest.approx(ZP - 2.5 * math.log10(t["flux"]), abs=5e-3)


def test_modifiers_are_refused_where_they_make_no_sense():
    with pytest.raises(ModelError, match="no shape modifiers"):
        Component("psf", dict(x=1, y=1, mag=20, c0=0.1))
    with pytest.raises(ModelError, match="outside"):
        Component("sersic", dict(x=1, y=1, mag=20, r_e=2, n=1, q=1, pa=0, c0=-2.5))
    with pytest.raises(ModelError, match="reach outside"):
        Component("sersic", dict(x=1, y=1, mag=20, r_e=2, n=1, q=1, pa=0, f2_amp=0.1, f2_phase=0),
                  bounds={"f2_amp": (-1.5, 0.5)})
