"""imfit 1.9's 3-D functions (ExponentialDisk3D, BrokenExponentialDisk3D, GaussianRing3D,
FerrersBar3D): galprof's fixed line-of-sight quadrature against scipy quad of imfit's
luminosity densities, written independently here.

* the surface brightness at sky points against scipy quad along the ray (split at the
  mid-plane crossing, the closest approach to the axis and the break circle, finite
  parts cut into many pieces): 2e-6 relative for the disks (measured 1.5e-6), 1e-5 for
  the ring (5.8e-6), 1e-9 for the Ferrers bar's closed form (1e-11);
* a face-on ExponentialDisk3D is the 2-D exponential with I_0 = J_0 int sech^(2/n) dz;
* the total light of the disk and the Ferrers bar is independent of the inclination and
  equals the 3-D integral;
* gradients by torch.autograd.gradcheck in float64 of the brightness on a 3 x 3 grid of
  sky points (a tiny image of samples: a rendered image, ~10^5 line-of-sight nodes per
  pass, takes tens of seconds to check on 2 cores; the renderer's own derivatives are
  tested with the 2-D profiles).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from galprof import RenderConfig
from galprof.profiles import get_profile
from galprof.render.scene import Frame, render_model

pytestmark = pytest.mark.usefixtures("float64")

#: relative agreement with scipy quad (measured: disks 1.5e-6, ring 5.8e-6, Ferrers 1e-11)
LOS_TOL = {"expdisk3d": 2e-6, "brokenexpdisk3d": 2e-6, "gaussianring3d": 1e-5, "ferrersbar3d": 1e-9}


def sech_power(z, n, z_0):
    """sech^(2/n)(n |z| / (2 z_0)), in logs."""
    t = n * abs(z) / (2.0 * z_0)
    return math.exp((2.0 / n) * (math.log(2.0) - t - math.log1p(math.exp(-2.0 * t))))


def broken(r, h1, h2, r_b, alpha):
    k = (1.0 / h1 - 1.0 / h2) / alpha
    return math.exp(-r / h1 + k * (np.logaddexp(0.0, alpha * (r - r_b)) - np.logaddexp(0.0, -alpha * r_b)))


def density(name, p):
    """imfit's luminosity density j(x_d, y_d, z_d) per unit J_0 (x_d along the line of nodes)."""
    if name == "expdisk3d":
        return lambda x, y, z: math.exp(-math.hypot(x, y) / p["h"]) * sech_power(z, p["n"], p["z_0"])
    if name == "brokenexpdisk3d":
        return lambda x, y, z: (broken(math.hypot(x, y), p["h1"], p["h2"], p["r_break"], p["alpha"])
                                * sech_power(z, p["n"], p["z_0"]))
    if name == "gaussianring3d":
        phi = math.radians(p["pa_ring"] + 90.0)  # imfit: x_ring at PA_ring + 90 deg from x_d

        def ring(x, y, z):
            xr = x * math.cos(phi) + y * math.sin(phi)
            yr = -x * math.sin(phi) + y * math.cos(phi)
            r = math.hypot(xr, yr / p["q_ring"])
            return math.exp(-((r - p["a_ring"]) ** 2) / (2 * p["sigma"] ** 2) - abs(z) / p["h_z"])

        return ring
    phi = math.radians(p["bar_pa"] + 90.0)  # imfit: the major axis is y_bar of that frame

    def bar(x, y, z):
        xb = x * math.cos(phi) + y * math.sin(phi)
        yb = -x * math.sin(phi) + y * math.cos(phi)
        r_bar = p["R_bar"]
        m2 = yb**2 / r_bar**2 + xb**2 / (p["q_bar"] * r_bar) ** 2 + z**2 / (p["q_z"] * r_bar) ** 2
        return (1.0 - m2) ** p["n"] if m2 < 1.0 else 0.0

    return bar


def line_of_sight_quad(name, p, u, v):
    """int j ds along the ray through sky offsets (u along the line of nodes, v across)."""
    ci, si = math.cos(math.radians(p["inc"])), math.sin(math.radians(p["inc"]))
    j = density(name, p)
    points = []
    if abs(ci) > 1e-12:
        points.append(v * si / ci)
    if abs(si) > 1e-12:
        points.append(-v * ci / si)
        for radius in (p.get("r_break"), p.get("a_ring")):
            if radius is not None and radius > abs(u):
                half = math.sqrt(radius**2 - u**2) / abs(si)
                points += [-v * ci / si - half, -v * ci / si + half]
    points = sorted(points)
    reach = 400.0
    edges = [-reach] + [x for x in points if -reach < x < reach] + [reach]
    total = 0.0
    for a, b in itertools.pairwise(edges):
        for x0, x1 in itertools.pairwise(np.linspace(a, b, 30)):
            total += integrate.quad(lambda s: j(u, v * ci + s * si, v * si - s * ci), x0, x1, epsabs=0.0,
                                    epsrel=1e-12)[0]
    return total


def galprof_los(name, p, u, v):
    """galprof's surface brightness per unit J_0 at sky offsets (u, v) (PA = 0: u = dy, v = -dx)."""
    profile = get_profile(name)
    values = dict(p, x=0.0, y=0.0, pa=0.0, J_0=1.0)
    derived = profile.setup({k: torch.tensor([[float(val)]]) for k, val in values.items()})
    return float(profile.brightness(torch.tensor([[-v]]), torch.tensor([[u]]), derived))


LOS_CASES = {
    "expdisk3d": [dict(h=8.0, n=1.0, z_0=1.0), dict(h=5.0, n=4.0, z_0=0.4), dict(h=10.0, n=100.0, z_0=0.5)],
    "brokenexpdisk3d": [dict(h1=5.0, h2=2.0, r_break=10.0, alpha=1.0, n=1.0, z_0=1.0),
                        dict(h1=3.0, h2=8.0, r_break=6.0, alpha=2.0, n=2.0, z_0=0.5)],
    "gaussianring3d": [dict(a_ring=10.0, sigma=2.0, h_z=1.0, pa_ring=0.0, q_ring=0.7),
                       dict(a_ring=8.0, sigma=1.0, h_z=0.5, pa_ring=40.0, q_ring=0.5)],
    "ferrersbar3d": [dict(R_bar=10.0, q_bar=0.5, q_z=0.3, n=1.0, bar_pa=0.0),
                     dict(R_bar=8.0, q_bar=0.4, q_z=0.4, n=2.0, bar_pa=30.0)],
}
POINTS = [(0.0, 0.0), (3.0, 2.0), (0.2, 6.0), (7.0, -1.5)]


@pytest.mark.parametrize("name", list(LOS_CASES))
@pytest.mark.parametrize("inc", [0.0, 35.0, 75.0, 88.0, 90.0])
def test_line_of_sight_integral_matches_scipy_quad(name, inc):
    for p in LOS_CASES[name]:
        p = dict(p, inc=inc)
        centre = line_of_sight_quad(name, p, 0.0, 0.0)
        for u, v in POINTS:
            expected = line_of_sight_quad(name, p, u, v) if (u, v) != (0.0, 0.0) else centre
            got = galprof_los(name, p, u, v)
            # relative, down to 1e-6 of the centre's brightness (the faint outskirts of a thin ring)
            assert abs(got - expected) <= LOS_TOL[name] * max(expected, 1e-6 * centre), (name, p, u, v, got, expected)


def test_inclination_and_pa_symmetries():
    """i, -i and 180 - i give the same disk; PA + 180 the same image (and for the ring)."""
    for name, p in (("expdisk3d", LOS_CASES["expdisk3d"][0]), ("gaussianring3d", LOS_CASES["gaussianring3d"][1])):
        base = galprof_los(name, dict(p, inc=50.0), 3.0, 2.0)
        if name == "expdisk3d":
            assert galprof_los(name, dict(p, inc=-50.0), 3.0, 2.0) == pytest.approx(base, rel=1e-9)
            assert galprof_los(name, dict(p, inc=130.0), 3.0, 2.0) == pytest.approx(base, rel=1e-9)
        assert galprof_los(name, dict(p, inc=50.0), -3.0, -2.0) == pytest.approx(base, rel=1e-9)


def render(name, values, size, config=None):
    params = {k: torch.tensor([float(v)]) for k, v in values.items()}
    return render_model([(get_profile(name), params)], Frame(1, 1, size, size),
                        config=config or RenderConfig())[0].numpy()


def test_face_on_disk_is_the_2d_exponential():
    """At inc = 0 the disk is exp(-r/h) with I_0 = J_0 int sech^(2/n)(n|z|/(2 z_0)) dz
    (= 4 z_0 for n = 1: imfit's I_0 ~ 2 J_0 z_0 is the exponential vertical profile's)."""
    n, z_0, h = 1.0, 0.8, 4.0
    vertical = integrate.quad(lambda z: sech_power(z, n, z_0), -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]
    assert vertical == pytest.approx(4.0 * z_0, rel=1e-10)
    disk = render("expdisk3d", dict(x=16.2, y=15.7, J_0=2.0, h=h, n=n, z_0=z_0, inc=0.0, pa=30.0), 32)
    flat = render("exponential_genellipse", dict(x=16.2, y=15.7, I_0=2.0 * vertical, h=h, q=1.0, pa=30.0), 32)
    np.testing.assert_allclose(disk, flat, rtol=0, atol=2e-3 * flat.max())


@pytest.mark.parametrize("inc", [0.0, 40.0, 80.0])
def test_total_light_is_independent_of_the_inclination(inc):
    n, z_0, h = 2.0, 0.6, 2.5
    vertical = integrate.quad(lambda z: sech_power(z, n, z_0), -np.inf, np.inf, epsabs=0, epsrel=1e-12)[0]
    expected = 2.0 * math.pi * h**2 * vertical
    image = render("expdisk3d", dict(x=40.0, y=40.0, J_0=1.0, h=h, n=n, z_0=z_0, inc=inc, pa=20.0), 80)
    assert image.sum() == pytest.approx(expected, rel=1e-4)
    # the Ferrers ellipsoid: 4 pi q q_z R^3 int_0^1 (1 - m^2)^n m^2 dm
    r_bar, q_bar, q_z, nb = 9.0, 0.5, 0.4, 1.0
    shell = integrate.quad(lambda m: (1 - m * m) ** nb * m * m, 0, 1)[0]
    bar = render("ferrersbar3d", dict(x=20.0, y=20.0, J_0=1.0, R_bar=r_bar, q_bar=q_bar, q_z=q_z, n=nb, bar_pa=25.0,
                                      inc=inc, pa=20.0), 40)
    assert bar.sum() == pytest.approx(4 * math.pi * q_bar * q_z * r_bar**3 * shell, rel=1e-3)
    assert float(special.gamma(nb + 1) / special.gamma(nb + 2.5)) * math.pi**1.5 == pytest.approx(4 * math.pi * shell)


GRAD_CASES = {
    "expdisk3d": dict(x=3.3, y=2.8, J_0=1.0, h=2.0, n=1.5, z_0=0.7, inc=60.0, pa=20.0),
    "brokenexpdisk3d": dict(x=3.2, y=2.9, J_0=1.0, h1=2.0, h2=1.0, r_break=2.0, alpha=1.5, n=1.0, z_0=0.6, inc=50.0,
                            pa=20.0),
    "gaussianring3d": dict(x=3.2, y=2.9, J_0=1.0, a_ring=2.0, sigma=0.8, h_z=0.5, pa_ring=30.0, q_ring=0.8, inc=40.0,
                           pa=20.0),
    "ferrersbar3d": dict(x=3.2, y=2.9, J_0=1.0, R_bar=3.0, q_bar=0.6, q_z=0.5, n=2.0, bar_pa=30.0, inc=50.0, pa=20.0),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradcheck(name):
    values = GRAD_CASES[name]
    profile = get_profile(name)
    names = list(values)
    grid = torch.arange(1.0, 4.0)
    dx, dy = grid[None, None, :] - 2.2, grid[None, :, None] - 1.9

    def samples(*theta):
        params = {n: t.reshape(1, 1, 1) for n, t in zip(names, theta)}
        return profile.brightness(dx - params["x"] + values["x"], dy - params["y"] + values["y"],
                                  profile.setup(params))

    theta = tuple(torch.tensor(float(values[n]), requires_grad=True) for n in names)
    assert torch.autograd.gradcheck(samples, theta, eps=1e-6, atol=1e-5, rtol=1e-3)

