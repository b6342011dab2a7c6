"""Total flux of every elliptical profile equals the flux of its magnitude.

Three independent routes: scipy quadrature of ``surface_brightness`` over the plane,
``enclosed_fraction`` at a radius enclosing everything, and the sum of a rendered image
of a source well inside a large frame (with and without a PSF).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy import special as sps

from galprof.conventions import flux_from_mag, mag_from_flux
from galprof.profiles import available_profiles, get_profile
from galprof.profiles.base import EllipticalProfile
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model
from references import flux_from_mag_reference, moffat_epsf, radial_flux_integral, sersic_b_scipy

pytestmark = pytest.mark.usefixtures("float64")

# (profile name, shape parameters, a length scale for the integration grid)
CASES = [
    *[("sersic", {"r_e": re, "n": n, "q": q}, re)
      for n in (0.2, 0.3, 0.5, 1.0, 2.5, 4.0, 6.0, 10.0) for re, q in ((0.7, 0.2), (5.0, 1.0))],
    ("devauc", {"r_e": 1.0, "q": 0.35}, 1.0),
    ("devauc", {"r_e": 12.0, "q": 1.0}, 12.0),
    ("expdisk", {"r_s": 0.5, "q": 0.2}, 0.5),
    ("expdisk", {"r_s": 4.0, "q": 0.9}, 4.0),
    ("gaussian", {"fwhm": 1.0, "q": 0.3}, 1.0),
    ("gaussian", {"fwhm": 6.0, "q": 1.0}, 6.0),
    *[("moffat", {"fwhm": fwhm, "beta": beta, "q": q}, fwhm)
      for fwhm, q in ((2.0, 0.5), (5.0, 1.0)) for beta in (1.5, 2.5, 4.5)],
]


def _case_id(case):
    name, shape, _ = case
    return name + "-" + "-".join(f"{k}{v:g}" for k, v in shape.items())


def _derived(name, shape):
    params = {"x": 0.0, "y": 0.0, "mag": 0.0, "pa": 0.0, **shape}
    return get_profile(name).prepare({k: torch.tensor([[v]], dtype=torch.float64) for k, v in params.items()})


def _sb(name, derived):
    profile = get_profile(name)

    def surface_brightness(r):
        rho = torch.as_tensor(np.atleast_1d(r), dtype=torch.float64)[None, :]
        return profile.surface_brightness(rho, derived)[0].numpy()

    return surface_brightness


def test_all_elliptical_profiles_are_covered():
    """Every built-in total-magnitude profile is checked here; the surface-brightness and
    intensity profiles and their <name>_mag twins in test_profiles_galfit_extra.py,
    test_profiles_imfit_extra.py and test_profiles_edgeon.py."""
    elliptical = {name for name in available_profiles() if issubclass(get_profile(name), EllipticalProfile)
                  and get_profile(name).amplitude_kind == "total_magnitude" and not name.endswith("_mag")}
    assert elliptical == {case[0] for case in CASES}


def test_flux_from_mag_matches_definition():
    mags = torch.tensor([-3.0, 0.0, 12.5, 27.0])
    for zp, exptime in ((0.0, 1.0), (25.0, 300.0), (30.1, 1.5)):
        flux = flux_from_mag(mags, zp, exptime).numpy()
        np.testing.assert_allclose(flux, [flux_from_mag_reference(m, zp, exptime) for m in mags.tolist()], rtol=1e-13)
        np.testing.assert_allclose(mag_from_flux(torch.tensor(flux), zp, exptime).numpy(), mags.numpy(), atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_surface_brightness_integrates_to_unit_flux(case):
    """2 pi q ∫ I(r) r dr = 1 by scipy quad (measured |error| < 1e-10 for every case)."""
    name, shape, scale = case
    total = radial_flux_integral(_sb(name, _derived(name, shape)), shape["q"], scale)
    assert abs(total - 1.0) < 1e-4, f"{name} {shape}: ∫ = {total!r}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_enclosed_fraction(case):
    """enclosed_fraction -> 1 at a huge radius, and matches scipy's cumulative integral."""
    name, shape, scale = case
    profile = get_profile(name)
    derived = _derived(name, shape)
    radii = torch.tensor([[0.1, 0.5, 1.0, 3.0, 1e12]]) * scale
    enclosed = profile.enclosed_fraction(radii, derived)[0].numpy()
    assert abs(enclosed[-1] - 1.0) < 1e-4
    sb = _sb(name, derived)
    for radius, value in zip(radii[0, :-1].tolist(), enclosed[:-1]):
        inner, _ = integrate.quad(lambda r: float(sb(r)[0]) * r, 0.0, radius, epsabs=1e-14, epsrel=1e-11,
                                  limit=200, points=[radius * 1e-6, radius * 1e-3])
        assert abs(2 * math.pi * shape["q"] * inner - value) < 1e-7, (radius, value)


@pytest.mark.parametrize("name, shape, radius, expected", [
    ("sersic", {"r_e": 3.0, "n": 1.7, "q": 0.4}, 3.0, 0.5),
    ("devauc", {"r_e": 7.0, "q": 0.8}, 7.0, 0.5),
    ("expdisk", {"r_s": 2.0, "q": 0.6}, 2.0 * sersic_b_scipy(1.0), 0.5),  # R_e = b_1 R_s
    ("gaussian", {"fwhm": 3.0, "q": 0.5}, 1.5, 0.5),  # exp(-(FWHM/2)^2 / 2 sigma^2) = 1/2
    ("moffat", {"fwhm": 3.0, "beta": 2.5, "q": 0.5}, 1.5, 1.0 - 2.0 ** (-1.5 / 2.5)),  # (1 + (FWHM/2a)^2) = 2^(1/beta)
])
def test_enclosed_fraction_known_radii(name, shape, radius, expected):
    profile = get_profile(name)
    value = profile.enclosed_fraction(torch.tensor([[radius]]), _derived(name, shape)).item()
    assert abs(value - expected) < 1e-10


def test_sersic_enclosed_fraction_is_scipy_gammainc():
    n_values = np.array([0.3, 0.8, 1.0, 3.3, 6.0, 9.0])
    radii = np.array([0.2, 1.0, 2.0, 7.0, 40.0])
    for n in n_values:
        derived = _derived("sersic", {"r_e": 2.0, "n": n, "q": 0.7})
        got = get_profile("sersic").enclosed_fraction(torch.tensor(radii)[None, :], derived)[0].numpy()
        b = sersic_b_scipy(float(n))
        np.testing.assert_allclose(got, sps.gammainc(2 * n, b * (radii / 2.0) ** (1 / n)), rtol=1e-9, atol=1e-13)


# Rendered sums: sources whose light outside the frame is < 1e-7 of their flux.
ZP, EXPTIME, MAG = 25.0, 300.0, 18.0
RENDER_CASES = [
    ("sersic", {"r_e": 5.0, "n": 0.5, "q": 0.4, "pa": 20.0}, 64),
    ("sersic", {"r_e": 3.0, "n": 1.0, "q": 0.5, "pa": -35.0}, 72),
    ("sersic", {"r_e": 1.0, "n": 2.5, "q": 0.7, "pa": 60.0}, 150),
    ("sersic", {"r_e": 0.5, "n": 4.0, "q": 0.6, "pa": 10.0}, 240),
    ("devauc", {"r_e": 0.5, "q": 0.3, "pa": -80.0}, 240),
    ("expdisk", {"r_s": 2.0, "q": 0.3, "pa": 45.0}, 80),
    ("gaussian", {"fwhm": 4.0, "q": 0.4, "pa": 70.0}, 40),
    ("moffat", {"fwhm": 3.0, "beta": 4.5, "q": 0.8, "pa": 5.0}, 100),
]


def _render(name, shape, size, psf):
    centre = (size + 1) / 2.0
    params = {"x": centre + 0.31, "y": centre - 0.22, "mag": MAG, **shape}
    tensors = {k: torch.tensor([v]) for k, v in params.items()}
    frame = Frame(x_min=1, y_min=1, width=size, height=size, zeropoint=ZP, exptime=EXPTIME)
    with torch.no_grad():
        return render_model([(get_profile(name), tensors)], frame, psf=psf)[0]


@pytest.mark.parametrize("with_psf", [False, True], ids=["nopsf", "psf"])
@pytest.mark.parametrize("name, shape, size", RENDER_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(RENDER_CASES)])
def test_rendered_image_sums_to_flux(name, shape, size, with_psf):
    psf = prepare_psf(moffat_epsf(4.5, 2.5, 25)) if with_psf else None
    image = _render(name, shape, size, psf)
    flux = flux_from_mag_reference(MAG, ZP, EXPTIME)
    assert abs(image.sum().item() / flux - 1.0) < 1e-4


def test_point_source_sums_to_flux():
    psf = prepare_psf(moffat_epsf(3.0, 2.7, 25))
    frame = Frame(x_min=11, y_min=21, width=50, height=44, zeropoint=ZP, exptime=EXPTIME)
    params = {"x": torch.tensor([33.4, 36.0]), "y": torch.tensor([41.7, 43.5]), "mag": torch.tensor([MAG, MAG + 1])}
    image = render_model([(get_profile("psf"), params)], frame, psf=psf)
    expected = np.array([flux_from_mag_reference(MAG, ZP, EXPTIME), flux_from_mag_reference(MAG + 1, ZP, EXPTIME)])
    np.testing.assert_allclose(image.sum((-1, -2)).numpy(), expected, rtol=1e-10)
