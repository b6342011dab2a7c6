"""Edge-on disks (GALFIT ``edgedisk``, imfit ``EdgeOnDisk``) and x K1(x) of galprof.bessel.

Every reference here is independent of galprof: scipy.special's K1 and K0, numpy
implementations of the two profiles integrated over pixels on dense Gauss-Legendre grids
(themselves checked against scipy.integrate.dblquad), scipy.integrate.quad along the
line of sight for imfit's closed form, scipy double integrals for the total light, and
central finite differences for derivatives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.special as sp
import torch

from galprof import Component, Model, ModelError, RenderConfig, fit
from galprof.bessel import x_k1
from galprof.fitting.functions import ModelFunctions
from galprof.fitting.layout import ParameterLayout
from galprof.profiles import get_profile
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model

pytestmark = pytest.mark.usefixtures("float64")

EDGEDISK = get_profile("edgedisk")
EDGEONDISK = get_profile("edgeondisk")
ZP = 25.0


# ---------------------------------------------------------------- independent references


def _disk_frame(x, y, x0, y0, pa):
    t = np.radians(pa)
    dx, dy = x - x0, y - y0
    return -dx * np.sin(t) + dy * np.cos(t), -dx * np.cos(t) - dy * np.sin(t)


def _xk1_np(a):
    a = np.abs(np.asarray(a, dtype=np.float64))
    with np.errstate(all="ignore"):
        return np.where(a > 0, a * sp.k1(np.maximum(a, 1e-300)), 1.0)


def edgedisk_np(x, y, x0, y0, h_s, r_s, pa):
    """GALFIT's edge-on disk for I_0 = 1: (|u|/r_s) K1(|u|/r_s) sech^2(v / h_s)."""
    u, v = _disk_frame(x, y, x0, y0, pa)
    return _xk1_np(u / r_s) / np.cosh(np.clip(v / h_s, -350, 350)) ** 2


def edgeondisk_np(x, y, x0, y0, h, n, z_0, pa):
    """imfit's EdgeOnDisk for L_0 = 1 (closed form, checked by :func:`test_edgeondisk_line_of_sight`)."""
    u, v = _disk_frame(x, y, x0, y0, pa)
    t = n * np.abs(v) / (2 * z_0)
    log_cosh = t + np.log1p(np.exp(-2 * t)) - math.log(2)
    return 2 * h * _xk1_np(u / h) * np.exp(-2.0 / n * log_cosh)


def edgeondisk_density(r, z, h, n, z_0):
    """imfit's luminosity density rho(R, z) for L_0 = 1."""
    return math.exp(-r / h) * math.cosh(n * abs(z) / (2 * z_0)) ** (-2.0 / n)


def pixel_integrals(f, width, height, sub=3, order=12, **p):
    """(H, W) integrals of f(x, y) over the pixels centred at (i + 1, j + 1): each pixel
    cut into sub x sub cells with order x order Gauss-Legendre nodes."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    offsets = ((np.arange(sub)[:, None] + (nodes[None, :] + 1) / 2) / sub - 0.5).ravel()
    w = np.tile(weights / 2, sub) / sub
    xs = ((np.arange(width) + 1)[:, None] + offsets[None, :]).ravel()[None, :]
    ys = ((np.arange(height) + 1)[:, None] + offsets[None, :]).ravel()[:, None]
    values = f(xs, ys, **p).reshape(height, len(offsets), width, len(offsets))
    return np.einsum("jaib,a,b->ji", values, w, w)


def _tensors(values: dict) -> dict:
    return {k: torch.tensor([float(v)]) for k, v in values.items()}


def _render(profile, values, width, height, config=RenderConfig(), dtype=torch.float64, device="cpu", **frame):
    params = {k: torch.tensor([float(v)], dtype=dtype, device=device) for k, v in values.items()}
    frame = Frame(1, 1, width, height, **{"zeropoint": ZP, "exptime": 1.0, **frame})
    return render_model([(profile, params)], frame, config=config)[0].double().cpu().numpy()


def _peak_error(image, reference):
    return np.abs(image - reference).max() / np.abs(reference).max()


# ---------------------------------------------------------------- x K1(x)

_X = np.concatenate([[0.0], np.geomspace(1e-8, 80.0, 1500)])


def test_x_k1_float64_against_scipy():
    x = torch.tensor(_X, requires_grad=True)
    value = x_k1(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    with np.errstate(all="ignore"):
        ref = np.where(_X > 0, _X * sp.k1(_X), 1.0)
        dref = np.where(_X > 0, -_X * sp.k0(_X), 0.0)
    assert np.max(np.abs(value.detach().numpy() - ref) / ref) < 2e-15
    assert np.max(np.abs(grad.numpy() - dref) / np.maximum(np.abs(dref), 1e-300)) < 3e-15
    assert value[0].item() == 1.0 and grad[0].item() == 0.0


def test_x_k1_float32_against_scipy():
    x = torch.tensor(_X, dtype=torch.float32, requires_grad=True)
    value = x_k1(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    assert value.dtype == grad.dtype == torch.float32
    xr = x.detach().double().numpy()  # scipy at the float32-rounded arguments
    with np.errstate(all="ignore"):
        ref = np.where(xr > 0, xr * sp.k1(xr), 1.0)
        dref = np.where(xr > 0, -xr * sp.k0(xr), 0.0)
    assert np.max(np.abs(value.detach().double().numpy() - ref) / ref) < 1e-6
    assert np.max(np.abs(grad.double().numpy() - dref) / np.maximum(np.abs(dref), 1e-300)) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_x_k1_limits(dtype):
    """Exactly 1 with a zero derivative at 0 (and at denormal x); a clean 0 with a zero
    derivative where K1 underflows; even in x."""
    x = torch.tensor([0.0, -0.0, 1e-40, 1e-30, 750.0, 1e5, float("inf"), -3.0], dtype=dtype, requires_grad=True)
    value = x_k1(x)
    (grad,) = torch.autograd.grad(value.sum(), x)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    assert value[:4].tolist() == [1.0] * 4
    assert value[4:7].tolist() == [0.0] * 3 and grad[4:7].abs().max().item() == 0.0
    assert grad[:2].abs().max().item() == 0.0
    assert value[7].item() == pytest.approx(3.0 * sp.k1(3.0), rel=1e-6)
    assert grad[7].item() == pytest.approx(3.0 * sp.k0(3.0), rel=1e-6)  # d/dx x K1(|x|) = +|x| K0(|x|) for x < 0


def test_x_k1_gradcheck_and_vmapped_jvp():
    x = torch.tensor([-4.0, -0.3, 1e-6, 0.05, 0.7, 2.0, 9.0, 40.0], requires_grad=True)
    assert torch.autograd.gradcheck(x_k1, (x,), check_forward_ad=True)
    # galprof's Jacobian: torch.func.jvp under torch.func.vmap over tangents
    tangents = torch.randn(5, x.shape[0], generator=torch.Generator().manual_seed(3))
    xd = x.detach()
    out = torch.func.vmap(lambda t: torch.func.jvp(x_k1, (xd,), (t,))[1])(tangents)
    xa = np.abs(xd.numpy())
    slope = -np.sign(xd.numpy()) * xa * sp.k0(xa)
    np.testing.assert_allclose(out.numpy(), tangents.numpy() * slope, rtol=1e-14, atol=1e-300)


# ---------------------------------------------------------------- declarations


def test_declarations():
    assert EDGEDISK.parameter_names() == ("x", "y", "mu_0", "h_s", "r_s", "pa")
    assert EDGEDISK.galfit_lines() == {"1": ("x", "y"), "3": ("mu_0",), "4": ("h_s",), "5": ("r_s",), "10": ("pa",)}
    assert set(EDGEDISK.galfit_comments) == set(EDGEDISK.galfit_lines())
    assert (EDGEDISK.galfit_name, EDGEDISK.amplitude, EDGEDISK.amplitude_kind) == ("edgedisk", "mu_0",
                                                                                  "surface_brightness")
    assert EDGEONDISK.imfit_name == "EdgeOnDisk" and EDGEONDISK.galfit_name is None
    assert (EDGEONDISK.amplitude, EDGEONDISK.amplitude_kind) == ("L_0", "intensity")
    assert {p.name: p.imfit for p in EDGEONDISK.parameters} == {
        "x": "X0", "y": "Y0", "L_0": "L_0", "h": "h", "n": "n", "z_0": "z_0", "pa": "PA"}
    assert all(p.galfit is None for p in EDGEONDISK.parameters if p.name not in ("x", "y"))
    for profile, size in ((EDGEDISK, "r_s"), (EDGEONDISK, "h")):
        assert not profile.radial and profile.kind == "elliptical" and "q" not in profile.parameter_names()
        assert [p.name for p in profile.parameters if p.is_size] == [size]
    derived = EDGEDISK.setup({k: torch.tensor([[[v]]]) for k, v in
                              dict(x=1.0, y=2.0, mu_0=20.0, h_s=1.0, r_s=3.0, pa=30.0).items()})
    assert derived["pa"].item() == 30.0 and "q" not in derived


# ---------------------------------------------------------------- rendering without a PSF


def test_reference_grid_against_dblquad():
    """The dense-grid pixel integrals used as references agree with dblquad (to ~1e-8
    where the minor axis, a line of weak x^2 log x singularity, crosses the pixel)."""
    p = dict(x0=8.3, y0=7.6, h_s=0.7, r_s=3.0, pa=37.0)
    grid = pixel_integrals(edgedisk_np, 16, 14, **p)
    for i, j in ((7, 6), (8, 7), (11, 9), (3, 10)):
        value, _ = si.dblquad(lambda y, x: edgedisk_np(x, y, **p), i + 0.5, i + 1.5, j + 0.5, j + 1.5,
                              epsabs=1e-12, epsrel=1e-11)
        assert grid[j, i] == pytest.approx(value, rel=5e-8, abs=1e-12)


DEFAULT_CASES = [  # (h_s, r_s, pa, x0, y0): scale heights the default quadrature resolves
    (1.5, 6.0, 0.0, 20.3, 16.6),
    (2.5, 8.0, 37.0, 19.5, 15.2),
    (1.2, 5.0, 90.0, 20.0, 16.0),
    (3.0, 2.5, -61.0, 21.7, 15.9),
]
THIN_CASES = [(0.7, 8.0, 0.0, 20.3, 16.6), (0.7, 8.0, 37.0, 20.0, 16.0), (0.7, 6.0, 90.0, 19.6, 16.45)]
FINE = RenderConfig(outer_gl_order=4)


@pytest.mark.parametrize("case", DEFAULT_CASES + [pytest.param(c, id=f"thin{c[2]:g}") for c in THIN_CASES])
def test_edgedisk_pixel_integrals(case):
    """Pixel integrals against dense Gauss grids of an own implementation, to 2e-3 of
    the peak; the surface-brightness amplitude is EXPTIME dx dy 10^(-0.4 (mu_0 - zp)).

    Scale heights below ~1 px need more than the default 2 x 2 Gauss nodes per pixel
    outside the central patch (see test_thin_edgedisk_default_quadrature)."""
    h_s, r_s, pa, x0, y0 = case
    config = FINE if h_s < 1.0 else RenderConfig()
    width, height, mu_0 = 40, 32, 21.3
    ref = pixel_integrals(edgedisk_np, width, height, x0=x0, y0=y0, h_s=h_s, r_s=r_s, pa=pa)
    image = _render(EDGEDISK, dict(x=x0, y=y0, mu_0=mu_0, h_s=h_s, r_s=r_s, pa=pa), width, height, config)
    i_0 = 10 ** (-0.4 * (mu_0 - ZP))
    assert _peak_error(image / i_0, ref) < 2e-3


# default settings: edge-on profiles ask for 4 x 4 nodes per pixel (min_gl_order); with 2 x 2 a
# 0.7 px scale height along the pixel axes was off by 0.5-1 % of the peak
@pytest.mark.parametrize("case", [THIN_CASES[0], THIN_CASES[2]], ids=["pa0", "pa90"])
def test_thin_edgedisk_default_quadrature(case):
    h_s, r_s, pa, x0, y0 = case
    ref = pixel_integrals(edgedisk_np, 40, 32, x0=x0, y0=y0, h_s=h_s, r_s=r_s, pa=pa)
    image = _render(EDGEDISK, dict(x=x0, y=y0, mu_0=ZP, h_s=h_s, r_s=r_s, pa=pa), 40, 32)
    assert _peak_error(image, ref) < 2e-3


def test_edgedisk_amplitude_units_and_float32():
    """mu_0 with EXPTIME and the pixel scale; float32 rendering against the float64 reference."""
    p = dict(x0=15.4, y0=12.2, h_s=1.8, r_s=4.0, pa=120.0)
    ref = pixel_integrals(edgedisk_np, 30, 24, **p)
    values = dict(x=p["x0"], y=p["y0"], mu_0=22.0, h_s=p["h_s"], r_s=p["r_s"], pa=p["pa"])
    i_0 = 3.0 * 0.4 * 0.5 * 10 ** (-0.4 * (22.0 - ZP))
    image = _render(EDGEDISK, values, 30, 24, exptime=3.0, pixel_scale=(0.4, 0.5))
    assert _peak_error(image / i_0, ref) < 2e-3
    image32 = _render(EDGEDISK, values, 30, 24, dtype=torch.float32, exptime=3.0, pixel_scale=(0.4, 0.5))
    assert _peak_error(image32 / i_0, ref) < 2e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_render_on_gpu(dtype):
    p = dict(x0=20.3, y0=16.6, h_s=0.7, r_s=8.0, pa=37.0)
    ref = pixel_integrals(edgedisk_np, 40, 32, **p)
    values = dict(x=p["x0"], y=p["y0"], mu_0=ZP, h_s=p["h_s"], r_s=p["r_s"], pa=p["pa"])
    assert _peak_error(_render(EDGEDISK, values, 40, 32, FINE, dtype=dtype, device="cuda"), ref) < 2e-3
    q = dict(x0=20.3, y0=16.6, h=5.0, n=2.0, z_0=1.0, pa=37.0)
    ref = pixel_integrals(edgeondisk_np, 40, 32, **q)
    values = dict(x=q["x0"], y=q["y0"], L_0=1.0, h=q["h"], n=q["n"], z_0=q["z_0"], pa=q["pa"])
    assert _peak_error(_render(EDGEONDISK, values, 40, 32, dtype=dtype, device="cuda"), ref) < 2e-3


def test_edgeondisk_line_of_sight():
    """imfit's closed form 2 h L_0 (|u|/h) K1(|u|/h) sech^(2/n)(n|v|/(2 z_0)) is the line-of-sight
    integral of rho = L_0 exp(-R/h) sech^(2/n)(n |z| / (2 z_0)) (scipy quad), and galprof's
    brightness equals it."""
    rng = np.random.default_rng(5)
    for h, n, z_0 in ((3.0, 1.0, 0.8), (5.0, 0.5, 2.0), (2.0, 4.0, 1.5), (7.0, 100.0, 0.6)):
        u = np.concatenate([[0.0, 1e-3, 0.4], rng.uniform(-6 * h, 6 * h, 6)])
        v = np.concatenate([[0.0, 0.7, -2.0], rng.uniform(-6 * z_0, 6 * z_0, 6)])
        los = np.array([2 * si.quad(lambda s, ui=ui, vi=vi: edgeondisk_density(math.hypot(ui, s), vi, h, n, z_0),
                                    0, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0] for ui, vi in zip(u, v)])
        # pa = 0: u = dy, v = -dx
        closed = edgeondisk_np(-v, u, 0.0, 0.0, h, n, z_0, 0.0)
        np.testing.assert_allclose(closed, los, rtol=1e-9)
        params = {k: torch.tensor([[[val]]]) for k, val in dict(h=h, n=n, z_0=z_0, pa=0.0, L_0=1.0).items()}
        derived = EDGEONDISK.setup(params)
        ours = EDGEONDISK.brightness(torch.tensor(-v)[None, None], torch.tensor(u)[None, None], derived)
        np.testing.assert_allclose(ours[0, 0].numpy(), los, rtol=1e-12)


FINER = RenderConfig(outer_gl_order=8, gl_order=8, edge_nodes=48)


@pytest.mark.parametrize("shape,config", [
    ((4.0, 1.0, 1.2, 0.0), RenderConfig()),
    ((3.0, 0.6, 2.0, 90.0), RenderConfig()),
    ((6.0, 3.0, 0.8, 37.0), FINE),
    ((8.0, 60.0, 1.5, -20.0), FINER),
    ((8.0, 200.0, 2.0, 0.0), FINER),
], ids=["n1", "n0.6", "n3_thin", "n60", "n200"])
def test_edgeondisk_pixel_integrals(shape, config):
    """Pixel integrals against dense Gauss grids of the closed form, to 2e-3 of the peak.

    For large n the vertical profile tends to exp(-|v| / z_0), with a kink along the
    major axis that Gauss-Legendre resolves only slowly: those need finer settings than
    the default (see test_edgeondisk_kink_default_quadrature)."""
    h, n, z_0, pa = shape
    x0, y0, l_0 = 20.4, 16.3, 0.37
    ref = pixel_integrals(edgeondisk_np, 40, 32, x0=x0, y0=y0, h=h, n=n, z_0=z_0, pa=pa)
    image = _render(EDGEONDISK, dict(x=x0, y=y0, L_0=l_0, h=h, n=n, z_0=z_0, pa=pa), 40, 32, config)
    assert _peak_error(image / l_0, ref) < 2e-3


# default settings (min_gl_order = 4): with 2 x 2 nodes per pixel the mid-plane kink of a
# large-n EdgeOnDisk was off by 0.3-2 % of the peak
@pytest.mark.parametrize("shape", [(8.0, 10.0, 1.5, 0.0), (8.0, 60.0, 3.0, -20.0)], ids=["n10", "n60"])
def test_edgeondisk_kink_default_quadrature(shape):
    h, n, z_0, pa = shape
    ref = pixel_integrals(edgeondisk_np, 40, 32, x0=20.4, y0=16.3, h=h, n=n, z_0=z_0, pa=pa)
    image = _render(EDGEONDISK, dict(x=20.4, y=16.3, L_0=1.0, h=h, n=n, z_0=z_0, pa=pa), 40, 32)
    assert _peak_error(image, ref) < 2e-3


# ---------------------------------------------------------------- total light


def _plane_integral(f):
    """4 x the integral over the quadrant u, v > 0 of a function even in both (scipy dblquad)."""
    value, _ = si.dblquad(lambda v, u: f(u, v), 0, np.inf, 0, np.inf, epsabs=1e-13, epsrel=1e-10)
    return 4 * value


def test_edgedisk_total_light():
    h_s, r_s, mu_0 = 1.5, 3.0, 20.0
    ref = _plane_integral(lambda u, v: edgedisk_np(-v, u, 0.0, 0.0, h_s, r_s, 0.0))
    derived = EDGEDISK.setup(_tensors(dict(x=0, y=0, mu_0=mu_0, h_s=h_s, r_s=r_s, pa=0)))
    assert EDGEDISK.total_per_amplitude(derived).item() == pytest.approx(ref, rel=1e-7)
    # the disk along x (PA 90), 20 r_s on each side: all but ~1e-8 of the light in the frame
    image = _render(EDGEDISK, dict(x=61.3, y=21.6, mu_0=mu_0, h_s=h_s, r_s=r_s, pa=90.0), 122, 42)
    i_0 = 10 ** (-0.4 * (mu_0 - ZP))
    assert image.sum() == pytest.approx(i_0 * ref, rel=1e-4)


@pytest.mark.parametrize("n", [1.0, 2.5, 0.7, 30.0])
def test_edgeondisk_total_light(n):
    h, z_0, l_0 = 2.5, 1.2, 0.7
    ref = _plane_integral(lambda u, v: edgeondisk_np(-v, u, 0.0, 0.0, h, n, z_0, 0.0))
    derived = EDGEONDISK.setup(_tensors(dict(x=0, y=0, L_0=l_0, h=h, n=n, z_0=z_0, pa=0)))
    assert EDGEONDISK.total_per_amplitude(derived).item() == pytest.approx(ref, rel=1e-7)
    image = _render(EDGEONDISK, dict(x=60.7, y=60.2, L_0=l_0, h=h, n=n, z_0=z_0, pa=37.0), 121, 121)
    assert image.sum() == pytest.approx(l_0 * ref, rel=1e-4)


@pytest.mark.parametrize("name,values", [
    ("edgedisk_mag", dict(x=61.3, y=21.6, mag=17.0, h_s=1.5, r_s=3.0, pa=90.0)),
    ("edgeondisk_mag", dict(x=60.7, y=60.2, mag=17.0, h=2.5, n=2.5, z_0=1.2, pa=37.0)),
])
def test_magnitude_variants_total(name, values):
    """The total-magnitude variants (galprof.profiles.variants, built on total_per_amplitude)
    hold EXPTIME 10^(-0.4 (mag - zp)) in a frame that contains the disk."""
    from galprof.profiles import available_profiles

    if name not in available_profiles():
        pytest.skip(f"{name} is not registered")
    width, height = (122, 42) if name == "edgedisk_mag" else (121, 121)
    image = _render(get_profile(name), values, width, height, exptime=2.0)
    assert image.sum() == pytest.approx(2.0 * 10 ** (-0.4 * (17.0 - ZP)), rel=1e-4)


# ---------------------------------------------------------------- derivatives


def test_edgedisk_gradcheck():
    base = dict(x=7.3, y=6.6, mu_0=ZP, h_s=0.9, r_s=2.5, pa=37.0)
    names = ("h_s", "r_s", "pa", "x", "y")
    frame = Frame(1, 1, 14, 12, zeropoint=ZP)

    def image(*args):
        params = {k: torch.tensor([v]) for k, v in base.items()}
        params.update(dict(zip(names, args)))
        return render_model([(EDGEDISK, params)], frame)

    inputs = tuple(torch.tensor([base[k]], requires_grad=True) for k in names)
    assert torch.autograd.gradcheck(image, inputs, fast_mode=True, check_forward_ad=True)


def test_edgeondisk_gradcheck():
    base = dict(x=7.3, y=6.6, L_0=0.5, h=2.5, n=1.7, z_0=0.9, pa=-25.0)
    names = ("h", "n", "z_0", "pa", "x", "y")
    frame = Frame(1, 1, 14, 12, zeropoint=ZP)

    def image(*args):
        params = {k: torch.tensor([v]) for k, v in base.items()}
        params.update(dict(zip(names, args)))
        return render_model([(EDGEONDISK, params)], frame)

    inputs = tuple(torch.tensor([base[k]], requires_grad=True) for k in names)
    assert torch.autograd.gradcheck(image, inputs, fast_mode=True, check_forward_ad=True)


@pytest.mark.parametrize("with_psf", [False, True], ids=["nopsf", "psf"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_gradients_centre_on_pixel(with_psf, dtype):
    """The centre exactly on a pixel centre (with a PSF the profile is sampled there, at
    u = v = 0): reverse- and forward-mode derivatives are finite."""
    k = np.arange(-6, 7)
    psf = prepare_psf(np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 4.5), dtype=dtype) if with_psf else None
    frame = Frame(1, 1, 15, 13, zeropoint=ZP)
    for profile, values in ((EDGEDISK, dict(x=8.0, y=7.0, mu_0=ZP, h_s=0.8, r_s=3.0, pa=0.0)),
                            (EDGEONDISK, dict(x=8.0, y=7.0, L_0=1.0, h=3.0, n=1.0, z_0=0.8, pa=90.0))):
        params = {k: torch.tensor([v], dtype=dtype, requires_grad=True) for k, v in values.items()}
        image = render_model([(profile, params)], frame, psf)
        grads = torch.autograd.grad((image * image).sum(), list(params.values()))
        assert all(torch.isfinite(g).all() for g in grads)
        assert torch.isfinite(image).all()
        for name in values:
            def of(t, name=name):
                return render_model([(profile, {**{k: v.detach() for k, v in params.items()}, name: t})], frame, psf)
            _, tangent = torch.func.jvp(of, (params[name].detach(),), (torch.ones(1, dtype=dtype),))
            assert torch.isfinite(tangent).all(), name
    # the brightness itself at u = v = 0
    params = {k: torch.tensor([[[v]]], dtype=dtype, requires_grad=True)
              for k, v in dict(x=0.0, y=0.0, mu_0=ZP, h_s=0.8, r_s=3.0, pa=20.0).items()}
    offsets = torch.zeros(1, 1, 1, dtype=dtype, requires_grad=True)
    value = EDGEDISK.brightness(offsets, offsets, EDGEDISK.setup(params))
    assert value.item() == 1.0
    grads = torch.autograd.grad(value.sum(), [offsets] + list(params.values()), allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("profile,values", [
    ("edgedisk", dict(x=[16.3, 15.6], y=[15.8, 16.4], mu_0=[20.0, 20.5], h_s=[1.2, 0.8], r_s=[4.0, 6.0],
                      pa=[30.0, -70.0])),
    ("edgeondisk", dict(x=[16.3, 15.6], y=[15.8, 16.4], L_0=[0.3, 0.2], h=[4.0, 6.0], n=[1.0, 3.0],
                        z_0=[1.2, 0.8], pa=[30.0, -70.0])),
])
def test_jacobian_forward_mode(profile, values):
    """galprof's Jacobian (torch.func.jvp vmapped over tangents, and the analytic amplitude
    column) against central finite differences of the rendered model, float64."""
    model = Model([Component(profile, values)])
    layout = ParameterLayout(model, ((0.5, 32.5), (0.5, 32.5)))
    start = torch.tensor(layout.initial_values(2), dtype=torch.float64)
    functions = ModelFunctions(layout, start, Frame(1, 1, 32, 32, zeropoint=ZP), None, RenderConfig(),
                               internal=False)
    free = start[:, list(layout.free_index)]
    index = torch.arange(2)
    _, jac = functions.jacobian(free, index)
    step = 1e-5
    columns = []
    for k in range(free.shape[1]):
        up, down = free.clone(), free.clone()
        up[:, k] += step
        down[:, k] -= step
        columns.append((functions.render(up, index) - functions.render(down, index)) / (2 * step))
    reference = torch.stack(columns, dim=-1)
    scale = reference.abs().amax(dim=(1, 2), keepdim=True)
    assert ((jac - reference).abs() / scale).amax().item() < 1e-6


# ---------------------------------------------------------------- fitting


def test_fit_recovers_edgedisk():
    """Noise-free images made by the reference renderer, a batch of three, offset starts."""
    width, height = 64, 48
    truth = dict(x=np.array([32.3, 31.7, 33.1]), y=np.array([24.6, 23.8, 24.2]), mu_0=np.array([19.0, 18.5, 19.5]),
                 h_s=np.array([2.0, 1.6, 2.5]), r_s=np.array([8.0, 6.0, 10.0]), pa=np.array([80.0, -35.0, 20.0]))
    images = np.stack([
        10 ** (-0.4 * (truth["mu_0"][b] - ZP)) * pixel_integrals(
            edgedisk_np, width, height, sub=2, order=8, x0=truth["x"][b], y0=truth["y"][b], h_s=truth["h_s"][b],
            r_s=truth["r_s"][b], pa=truth["pa"][b])
        for b in range(3)])
    start = dict(x=truth["x"] + 0.7, y=truth["y"] - 0.5, mu_0=truth["mu_0"] + 0.4, h_s=truth["h_s"] * 1.3,
                 r_s=truth["r_s"] * 0.8, pa=truth["pa"] + 8.0)
    result = fit(Model([Component("edgedisk", start)]), images, sigma=np.ones_like(images), zeropoint=ZP)
    assert result.converged.all()
    for name in ("h_s", "r_s"):
        np.testing.assert_allclose(result.value(1, name), truth[name], rtol=0.01)
    np.testing.assert_allclose(result.value(1, "mu_0"), truth["mu_0"], atol=0.01)
    np.testing.assert_allclose(result.value(1, "x"), truth["x"], atol=0.02)
    np.testing.assert_allclose(result.value(1, "y"), truth["y"], atol=0.02)
    dpa = (result.value(1, "pa") - truth["pa"] + 90.0) % 180.0 - 90.0
    assert np.abs(dpa).max() < 0.3


# ---------------------------------------------------------------- bounds and domains


def test_default_bounds_inside_domains():
    for profile in (EDGEDISK, EDGEONDISK):
        for spec in profile.parameters:
            if spec.domain is not None and spec.bounds is not None:
                assert spec.domain[0] < spec.bounds[0] < spec.bounds[1] < spec.domain[1], spec.name
            if spec.scale == "log":
                assert spec.bounds[0] > 0, spec.name


def test_bounds_outside_domain_rejected():
    values = dict(x=10.0, y=10.0, mu_0=20.0, h_s=1.0, r_s=3.0, pa=0.0)
    Component("edgedisk", values, bounds={"h_s": (0.1, 3.0)})
    with pytest.raises(ModelError):
        Component("edgedisk", values, bounds={"h_s": (-1.0, 3.0)})
    with pytest.raises(ModelError):
        Component("edgedisk", {**values, "r_s": -2.0})
    imfit_values = dict(x=10.0, y=10.0, L_0=1.0, h=3.0, n=1.0, z_0=1.0, pa=0.0)
    with pytest.raises(ModelError):
        Component("edgeondisk", imfit_values, bounds={"n": (-1.0, 5.0)})
    with pytest.raises(ModelError):
        Component("edgeondisk", {**imfit_values, "z_0": 0.0})
    with pytest.raises(ModelError):  # no axis ratio
        Component("edgedisk", {**values, "q": 0.5})
