"""GALFIT's bending modes (B), coordinate rotation (R) and truncation (T) against an
independent numpy implementation of the published formulas (Peng et al. 2010, GALFIT's
manual), integrated over pixels with scipy; analytic limits; gradients; fits."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from galprof import Component, Model, RenderConfig, fit
from galprof.fitting.functions import ModelFunctions
from galprof.fitting.layout import ParameterLayout
from galprof.profiles import EllipticalProfile, available_profiles, get_profile
from galprof.profiles.deformations import CDEF, rotation_angle, rotation_ramp_slope, taper
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model
from references import moffat_epsf, sersic_b_scipy

ZP = 25.0
TAPER_C = math.atanh(0.98)


# --------------------------------------------------------------------------------------
# The reference: written from the formulas, sharing no code with galprof
# --------------------------------------------------------------------------------------

def _axes(pa_deg):
    t = math.radians(pa_deg)
    return (-math.sin(t), math.cos(t)), (-math.cos(t), -math.sin(t))  # major, minor (right-handed)


def _theta(r, p):
    """Peng et al. (2010): theta_out tanh-ramp(r) g(r) [rad]."""
    theta_out = math.radians(p["rot_theta_out"])
    a = 2 * 0.23 / (abs(theta_out) + 0.23) - 1.00001
    b = (2 - math.atanh(a)) * p["rot_r_out"] / (p["rot_r_out"] - p["rot_r_in"])
    ramp = 0.5 * (np.tanh(b * (r / p["rot_r_out"] - 1) + 2) + 1)
    if "rot_alpha" in p:
        g = (0.5 * (r / p["rot_r_out"] + 1)) ** p["rot_alpha"]
    elif "rot_r_ws" in p:
        g = 0.5 * (np.log(r / p["rot_r_ws"] + 1) / np.log(p["rot_r_out"] / p["rot_r_ws"] + 1) + 1)
    else:
        g = 1.0
    return theta_out * ramp * g


def _shape_factor(theta, p):
    c = p.get("c0", 0.0) + 2.0
    h = (np.abs(np.cos(theta)) ** c + np.abs(np.sin(theta)) ** c) ** (1 / c)
    fourier = 1.0 + sum(p[f"f{m}_amp"] * np.cos(m * (theta + np.radians(p[f"f{m}_phase"])))
                        for m in range(1, 11) if f"f{m}_amp" in p)
    return h * fourier


def _sersic_unit(rho, p):
    """Sérsic brightness per unit total flux of the plain ellipse."""
    n, r_e, q = p["n"], p["r_e"], p["q"]
    b = sersic_b_scipy(n)
    i0 = b ** (2 * n) / (2 * math.pi * q * r_e**2 * n * special.gamma(2 * n))
    return i0 * np.exp(-b * (rho / r_e) ** (1 / n))


@functools.lru_cache(maxsize=None)
def _area_over_pi(shape):
    """Area of the unit isophote over pi, for the C0 and Fourier values ``shape`` (sorted items)."""
    p = dict(shape)
    value, _ = integrate.quad(lambda t: _shape_factor(t, p) ** -2, 0, 2 * math.pi, limit=400)
    return 0.5 * value / math.pi


def reference_brightness(dx, dy, p):
    """The deformed Sérsic at offsets dx, dy [pix], per unit amplitude scale (flux or, when
    truncated, the brightness at the break radius)."""
    x, y = np.asarray(dx, float), np.asarray(dy, float)
    if "rot_theta_out" in p:
        e_n, e_m = _axes(p["rot_sky_pa"])
        along, across = x * e_n[0] + y * e_n[1], (x * e_m[0] + y * e_m[1]) / math.cos(math.radians(p["rot_incl"]))
        x, y = along * e_n[0] + across * e_m[0], along * e_n[1] + across * e_m[1]
        t = -_theta(np.hypot(along, across), p)  # the coordinates turn by -theta
        x, y = x * np.cos(t) - y * np.sin(t), x * np.sin(t) + y * np.cos(t)
    e_u, e_v = _axes(p["pa"])
    u, v = x * e_u[0] + y * e_u[1], x * e_v[0] + y * e_v[1]
    v = v + sum(p[f"b{m}"] * (u / p["r_e"]) ** m for m in range(1, 11) if f"b{m}" in p)
    w = v / p["q"]
    rho = np.hypot(u, w) * _shape_factor(np.arctan2(w, u), p)
    value = _sersic_unit(rho, p)
    truncated = False
    for side in ("out", "in"):
        if f"trunc_{side}_break" not in p:
            continue
        truncated = True
        tx = np.asarray(dx, float) - (p.get(f"trunc_{side}_x", p["x"]) - p["x"])
        ty = np.asarray(dy, float) - (p.get(f"trunc_{side}_y", p["y"]) - p["y"])
        a_u, a_v = _axes(p.get(f"trunc_{side}_pa", p["pa"]))
        s = np.hypot(tx * a_u[0] + ty * a_u[1], (tx * a_v[0] + ty * a_v[1]) / p.get(f"trunc_{side}_q", p["q"]))
        r_b = p[f"trunc_{side}_break"]
        dr = p[f"trunc_{side}_soft"] if f"trunc_{side}_soft" in p else abs(p[f"trunc_{side}_soft_at"] - r_b)
        distance = (r_b - s) if side == "in" else (s - r_b)
        value = value * 0.5 * (1 + np.tanh(TAPER_C * (1 - 2 * distance / dr)))
    if truncated:
        r_b = p.get("trunc_out_break", p.get("trunc_in_break"))
        return value / _sersic_unit(r_b, p)
    shape = tuple(sorted((k, v) for k, v in p.items() if k == "c0" or k.startswith("f")))
    norm = 1.0 / _area_over_pi(shape) if shape else 1.0
    if "rot_incl" in p:
        norm /= math.cos(math.radians(p["rot_incl"]))
    return value * norm


def scipy_pixel(i, j, p):
    """The reference integrated over pixel (i, j) (1-based centres) by dblquad; a pixel
    holding the centre is split there so that the cusp sits on a corner."""
    xs, ys = [i - 0.5, i + 0.5], [j - 0.5, j + 0.5]
    if xs[0] < p["x"] < xs[1]:
        xs.insert(1, p["x"])
    if ys[0] < p["y"] < ys[1]:
        ys.insert(1, p["y"])
    total = 0.0
    for xa, xb in zip(xs[:-1], xs[1:]):
        for ya, yb in zip(ys[:-1], ys[1:]):
            value, _ = integrate.dblquad(lambda y, x: float(reference_brightness(x - p["x"], y - p["y"], p)),
                                         xa, xb, ya, yb, epsabs=1e-13, epsrel=1e-10)
            total += value
    return total


def render(values, size, psf=None, config=RenderConfig()):
    comp = Component("sersic", values)
    params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
    return render_model([(comp.profile_class, params)], Frame(1, 1, size, size, zeropoint=ZP), psf, config)[0].numpy()


BASE = dict(x=16.3, y=15.6, mag=ZP, r_e=4.0, n=1.5, q=0.6, pa=30.0)  # mag = ZP: unit flux (or brightness)
ROTATION = dict(rot_r_in=1.5, rot_r_out=9.0, rot_theta_out=120.0, rot_alpha=0.5, rot_incl=30.0, rot_sky_pa=20.0)
CASES = {
    "bending": dict(b1=0.6, b2=0.5, b3=-0.3),
    "bending+c0+fourier": dict(b2=0.8, c0=0.4, f3_amp=0.06, f3_phase=20.0),
    "bending n=4": dict(n=4.0, b1=0.4, b2=0.6),
    "rotation power": ROTATION,
    "rotation log+fourier": dict(ROTATION, rot_alpha=None, rot_r_ws=3.0, f2_amp=0.1, f2_phase=-30.0),
    "rotation tanh": dict(ROTATION, rot_alpha=None, rot_theta_out=-80.0),
    "truncation outer": dict(trunc_out_break=6.0, trunc_out_soft=4.0),
    "truncation ring": dict(trunc_in_break=4.0, trunc_in_soft=3.0, trunc_out_break=9.0, trunc_out_soft_at=12.0,
                            trunc_out_q=0.9, trunc_out_pa=-20.0, trunc_out_x=16.8, trunc_out_y=15.1),
    "everything": dict(ROTATION, b2=0.3, c0=-0.3, f1_amp=0.1, f1_phase=40.0, trunc_out_break=8.0, trunc_out_soft=3.0),
}
PIXELS = [(16, 16), (17, 16), (15, 15), (16, 14), (19, 18), (12, 17), (21, 11)]


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_pixel_integrals_match_scipy_of_the_published_formulas(case):
    """Without a PSF each pixel is the integral of the deformed profile over the pixel:
    agreement with scipy's dblquad of the independent implementation within 2e-5 of the
    brightest pixel for pixels near the centre (measured <= 3e-6; <= 1e-7 for all but the
    n = 4 cusps) and 1e-5 at the centre pixel, where the renderer's exact core works."""
    values = {k: v for k, v in {**BASE, **CASES[case]}.items() if v is not None}
    got = render(values, 32)
    ref = np.array([scipy_pixel(i, j, values) for i, j in PIXELS])
    got_pixels = np.array([got[j - 1, i - 1] for i, j in PIXELS])
    peak = ref.max()
    assert np.abs(got_pixels - ref).max() < 2e-5 * peak, (got_pixels - ref) / peak
    assert abs(got_pixels[0] - ref[0]) < 1e-5 * peak, (got_pixels[0] - ref[0]) / peak


@pytest.mark.parametrize("case", ["everything", "truncation ring", "bending n=4"])
def test_whole_image_against_dense_quadrature(case):
    """Every pixel (the far ones get 2 x 2 Gauss-Legendre nodes in the renderer) against
    12 x 12 Gauss-Legendre nodes per pixel of the independent implementation (40 x 40
    sub-cells of 4 x 4 nodes in the 3 x 3 pixels around the cusp): within 2e-4 of the peak."""
    values = {k: v for k, v in {**BASE, **CASES[case]}.items() if v is not None}
    size, nodes = 32, 12
    g, w = np.polynomial.legendre.leggauss(nodes)
    centres = np.arange(1, size + 1)
    points, weights = (centres[:, None] + g / 2).ravel(), np.tile(w / 2, size)
    value = reference_brightness(points[None, :] - values["x"], points[:, None] - values["y"], values)
    ref = (value * weights[None, :] * weights[:, None]).reshape(size, nodes, size, nodes).sum((1, 3))
    gf, wf = np.polynomial.legendre.leggauss(4)
    sub = ((np.arange(40) + 0.5) / 40 - 0.5)[:, None] + gf / 80
    offsets, subweights = sub.ravel(), np.tile(wf / 80, 40)
    cx, cy = round(values["x"]), round(values["y"])
    for j in range(cy - 1, cy + 2):
        for i in range(cx - 1, cx + 2):
            v = reference_brightness(i + offsets[None, :] - values["x"], j + offsets[:, None] - values["y"], values)
            ref[j - 1, i - 1] = (v * subweights[None, :] * subweights[:, None]).sum()
    got = render(values, size)
    assert np.abs(got - ref).max() < 2e-4 * ref.max(), np.abs(got - ref).max() / ref.max()


RADIAL = [name for name in available_profiles()
          if issubclass(get_profile(name), EllipticalProfile) and get_profile(name).radial
          and not get_profile(name).shape_modified and any(s.is_size for s in get_profile(name).parameters)]


def _defaults(name):
    """Valid values of a profile: centre, amplitude 20, sizes 3 pix, the rest mid-bounds."""
    cls = get_profile(name)
    out = {}
    for spec in cls.parameters:
        if spec.name in ("x", "y"):
            out[spec.name] = 20.4 if spec.name == "x" else 19.7
        elif spec.name == "q":
            out[spec.name] = 0.7
        elif spec.name == "pa":
            out[spec.name] = 25.0
        elif spec.name == cls.amplitude:
            out[spec.name] = 20.0
        elif spec.is_size:
            out[spec.name] = 3.0 + 2.0 * len([k for k in out if cls.spec(k).is_size])
        elif spec.bounds is not None:
            low, high = spec.bounds
            out[spec.name] = math.sqrt(low * high) if spec.scale == "log" else 0.5 * (low + high)
            if spec.domain is not None:
                out[spec.name] = min(max(out[spec.name], spec.domain[0] + 0.1), spec.domain[1] - 0.1)
        else:
            out[spec.name] = 1.0
    return out


def _render_profile(name, values, size=40, psf=None):
    comp = Component(name, values)
    params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
    return render_model([(comp.profile_class, params)], Frame(1, 1, size, size, zeropoint=ZP), psf)[0].numpy()


@pytest.mark.parametrize("name", RADIAL)
def test_every_radial_profile_takes_them_and_their_neutral_values_change_nothing(name):
    """Zero bending amplitudes, a zero rotation angle and a face-on disk, and a rotation of a
    round profile (q = 1, no Fourier modes) leave every radial profile's image unchanged."""
    values = _defaults(name)
    plain = _render_profile(name, values)
    neutral = dict(values, b1=0.0, b2=0.0, rot_r_in=1.0, rot_r_out=8.0, rot_theta_out=0.0, rot_alpha=0.5,
                   rot_incl=0.0, rot_sky_pa=10.0)
    assert np.abs(_render_profile(name, neutral) - plain).max() <= 1e-12 * np.abs(plain).max()
    round_values = dict(values, q=1.0)
    round_plain = _render_profile(name, round_values)
    spun = dict(round_values, rot_r_in=1.0, rot_r_out=8.0, rot_theta_out=150.0, rot_r_ws=2.0, rot_incl=0.0,
                rot_sky_pa=10.0)
    assert np.abs(_render_profile(name, spun) - round_plain).max() <= 1e-9 * np.abs(round_plain).max()
    bent = _render_profile(name, dict(values, b1=0.3, b2=0.2, trunc_out_break=2.5, trunc_out_soft=3.0))
    assert np.isfinite(bent).all() and bent.max() > 0


@pytest.mark.parametrize("name", ["sersic", "moffat", "nuker_mag", "expdisk", "gaussian"])
def test_bending_and_rotation_keep_the_total_flux(name):
    """Bending and coordinate rotation move light without creating any (unit-Jacobian maps),
    and a rotated component's total magnitude stays its total magnitude (the cos i of its
    inclination divided out): a compact source sums to the same light in a large frame."""
    values = dict(_defaults(name), x=40.3, y=39.6)
    plain = _render_profile(name, values, size=80).sum()
    deformed = dict(values, b1=0.2, b2=0.15, rot_r_in=1.0, rot_r_out=6.0, rot_theta_out=90.0, rot_alpha=0.3,
                    rot_incl=40.0, rot_sky_pa=30.0)
    assert _render_profile(name, deformed, size=80).sum() == pytest.approx(plain, rel=1e-4)


def test_the_total_flux_of_a_truncation_is_the_radial_integral():
    """A truncated Sérsic's light is 2 pi q int I(s) T(s) s ds / I(r_break) (scipy.quad of the
    independent formulas) per unit brightness at the break radius."""
    p = dict(x=40.2, y=39.7, mag=ZP, r_e=6.0, n=2.0, q=0.7, pa=-35.0, trunc_in_break=3.0, trunc_in_soft=2.5,
             trunc_out_break=12.0, trunc_out_soft=6.0)

    def radial(s):
        t_in = 0.5 * (1 + math.tanh(TAPER_C * (1 - 2 * (3.0 - s) / 2.5)))
        t_out = 0.5 * (1 + math.tanh(TAPER_C * (1 - 2 * (s - 12.0) / 6.0)))
        return float(_sersic_unit(s, p)) * t_in * t_out * s

    expected = 2 * math.pi * p["q"] * integrate.quad(radial, 0, 60, limit=200)[0] / float(_sersic_unit(12.0, p))
    assert render(p, 80).sum() == pytest.approx(expected, rel=1e-5)


def test_taper_and_rotation_ramp_have_the_documented_values():
    r = torch.linspace(0.0, 40.0, 2001, dtype=torch.float64)
    outer = taper(r, torch.tensor(20.0, dtype=torch.float64), torch.tensor(5.0, dtype=torch.float64), inner=False)
    inner = taper(r, torch.tensor(20.0, dtype=torch.float64), torch.tensor(5.0, dtype=torch.float64), inner=True)
    assert (outer.diff() <= 0).all() and (inner.diff() >= 0).all()  # monotonic
    at = {float(v): i for i, v in enumerate(r)}
    assert float(outer[at[20.0]]) == pytest.approx(0.99) and float(outer[at[25.0]]) == pytest.approx(0.01)
    assert float(inner[at[20.0]]) == pytest.approx(0.99) and float(inner[at[15.0]]) == pytest.approx(0.01)
    # rotation: tanh reaches tanh(2) = 96 % at r_out; about CDEF radians at r_in (for large theta_out)
    theta_out = torch.tensor(math.radians(600.0), dtype=torch.float64)
    r_in, r_out = torch.tensor(3.0, dtype=torch.float64), torch.tensor(20.0, dtype=torch.float64)
    slope = rotation_ramp_slope(r_in, r_out, theta_out)
    at_out = rotation_angle(r_out, "tanh", theta_out, slope, r_out)
    assert float(at_out) == pytest.approx(float(theta_out) * (math.tanh(2.0) + 1) / 2, rel=1e-12)
    at_in = rotation_angle(r_in, "tanh", theta_out, slope, r_out)
    assert float(at_in) == pytest.approx(CDEF * float(theta_out) / (float(theta_out) + CDEF), abs=1e-3)
    for kind, value in (("power", 0.7), ("log", 4.0)):
        shape = torch.tensor(value, dtype=torch.float64)
        assert float(rotation_angle(r_out, kind, theta_out, slope, r_out, shape)) == pytest.approx(float(at_out))


def test_the_exact_core_is_exact_for_a_cusp():
    """The centre pixel of a strongly bent de Vaucouleurs profile (its cusp at the pixel's
    centre region): the renderer's exact core of the linearised profile plus its quadrature
    of the remainder against scipy (measured 1.9e-5 relative; 1e-6 with 96 edge nodes); and
    the centre pixel of a truncated, rotated Nuker cusp does not change with a larger exact box."""
    p = dict(BASE, n=4.0, r_e=2.0, b1=0.8, b2=0.5, b3=0.3)
    reference = scipy_pixel(16, 16, p)
    assert render(p, 32)[15, 15] == pytest.approx(reference, rel=5e-5)
    assert render(p, 32, config=RenderConfig(edge_nodes=96))[15, 15] == pytest.approx(reference, rel=3e-6)
    values = dict(_defaults("nuker"), gamma=0.8, x=20.4, y=19.7)
    values.update(rot_r_in=0.5, rot_r_out=5.0, rot_theta_out=90.0, rot_alpha=0.5, rot_incl=0.0, rot_sky_pa=0.0,
                  trunc_out_break=6.0, trunc_out_soft=3.0)
    # the centre pixel does not change when the exact core is made larger (exact there)
    comp = Component("nuker", values)
    params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
    frame = Frame(1, 1, 40, 40, zeropoint=ZP)
    a = render_model([(comp.profile_class, params)], frame)[0, 19, 20]
    b = render_model([(comp.profile_class, params)], frame, None, RenderConfig(exact_box=9, edge_nodes=48))[0, 19, 20]
    assert float(a) == pytest.approx(float(b), rel=1e-6)


def test_with_a_psf_neutral_deformations_and_the_flux_are_kept():
    """With a PSF the deformed components take the anti-aliased outer light and the
    linearised exact core: zero deformation renders the plain profile (1e-6 of the peak)
    and bending and rotation keep the flux (1e-4)."""
    psf = prepare_psf(moffat_epsf(3.0, 2.8, 15), dtype=torch.float64)
    values = dict(BASE, x=24.3, y=23.6, n=4.0, r_e=3.0)
    plain = render(values, 48, psf)
    neutral = render(dict(values, b1=0.0, b2=0.0), 48, psf)
    assert np.abs(neutral - plain).max() < 1e-6 * plain.max()
    compact = dict(values, x=32.3, y=31.6, n=1.0, r_e=2.5)
    deformed = render(dict(compact, b1=0.3, b2=0.2, **ROTATION), 64, psf)
    assert deformed.sum() == pytest.approx(render(compact, 64, psf).sum(), rel=1e-4)


def test_batches_render_each_galaxy_as_alone():
    values = [dict(BASE, **CASES["everything"]), dict(BASE, x=15.8, r_e=3.0, b2=-0.4, c0=0.2, f1_amp=0.05,
                                                     f1_phase=10.0, **{k: v * 0.8 for k, v in ROTATION.items()},
                                                     trunc_out_break=7.0, trunc_out_soft=2.0)]
    comp = Component("sersic", {k: np.array([v[k] for v in values]) for k in values[0]})
    params = {k: torch.tensor(np.asarray(v, float), dtype=torch.float64) for k, v in comp.values.items()}
    both = render_model([(comp.profile_class, params)], Frame(1, 1, 32, 32, zeropoint=ZP)).numpy()
    for b, v in enumerate(values):
        assert np.abs(both[b] - render(v, 32)).max() <= 1e-12 * both[b].max()


@pytest.mark.parametrize("names", [("b1", "b2"), ("rot_theta_out", "rot_r_out", "rot_incl"),
                                   ("trunc_out_break", "trunc_out_soft", "trunc_in_break")],
                         ids=["bending", "rotation", "truncation"])
def test_gradcheck(names):
    values = dict(BASE, x=8.3, y=7.8, r_e=3.0, b1=0.4, b2=0.3, rot_r_in=1.0, rot_r_out=5.0, rot_theta_out=70.0,
                  rot_alpha=0.4, rot_incl=25.0, rot_sky_pa=15.0, trunc_in_break=1.5, trunc_in_soft=1.2,
                  trunc_out_break=5.0, trunc_out_soft=2.5)
    comp = Component("sersic", values)

    def image(*args):
        params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
        params.update(dict(zip(names, args)))
        return render_model([(comp.profile_class, params)], Frame(1, 1, 16, 16, zeropoint=ZP))

    inputs = tuple(torch.tensor([float(values[n])], dtype=torch.float64, requires_grad=True) for n in names)
    assert torch.autograd.gradcheck(image, inputs, eps=1e-6, atol=1e-7, rtol=1e-4)


def test_fitter_jacobian_with_a_psf_matches_central_differences():
    """The fitter's Jacobian (forward mode through the PSF renderer) of a bent, rotated,
    truncated component equals central differences of the rendered model (1e-6)."""
    size = 24
    comp = Component("sersic", dict(x=[12.3, 11.6], y=[11.8, 12.4], mag=[17.0, 17.5], r_e=[3.0, 3.5], n=[2.0, 1.3],
                                    q=[0.6, 0.8], pa=[30.0, -60.0], b2=[0.3, -0.2], rot_r_in=[1.0, 1.5],
                                    rot_r_out=[6.0, 7.0], rot_theta_out=[90.0, 60.0], rot_alpha=[0.4, 0.6],
                                    rot_incl=[20.0, 35.0], rot_sky_pa=[10.0, -30.0], trunc_out_break=[6.0, 7.0],
                                    trunc_out_soft=[3.0, 4.0]),
                     fixed={"n", "rot_r_in", "rot_alpha", "rot_sky_pa", "trunc_out_soft", "r_e", "pa"})
    layout = ParameterLayout(Model([comp]), ((0.5, size + 0.5), (0.5, size + 0.5)))
    values = torch.tensor(layout.initial_values(2), dtype=torch.float64)
    psf = prepare_psf(moffat_epsf(3.0, 2.8, 15), dtype=torch.float64)
    functions = ModelFunctions(layout, values, Frame(1, 1, size, size, zeropoint=ZP), psf, RenderConfig(),
                               internal=False)
    free = values[:, list(layout.free_index)]
    index = torch.arange(2)
    image, jac = functions.jacobian(free, index)
    columns = []
    for k in range(free.shape[1]):
        up, down = free.clone(), free.clone()
        up[:, k] += 1e-5
        down[:, k] -= 1e-5
        columns.append((functions.render(up, index) - functions.render(down, index)) / 2e-5)
    reference = torch.stack(columns, dim=-1)
    scale = reference.abs().amax(dim=(1, 2), keepdim=True)
    assert float(((jac - reference).abs() / scale).amax()) < 1e-6


@pytest.mark.parametrize("truth, start", [
    (dict(b1=0.6, b2=0.9), dict(b1=0.1, b2=0.3)),
    (dict(ROTATION, rot_theta_out=100.0), dict(ROTATION, rot_theta_out=70.0)),
    (dict(trunc_out_break=7.0, trunc_out_soft=3.0), dict(trunc_out_break=9.5, trunc_out_soft=3.0)),
], ids=["bending", "rotation", "truncation"])
def test_fit_recovers_the_deformation(truth, start):
    """A noiseless image rendered with known values: the fit from a start off by ~30 %
    recovers the bending amplitudes, the rotation angle, the truncation radius."""
    size = 32
    truth_values = dict(BASE, mag=18.0, n=1.0, **truth)
    image = render(truth_values, size)[None]
    targets = sorted(set(truth) - {"rot_r_in", "rot_r_out", "rot_alpha", "rot_incl", "rot_sky_pa", "trunc_out_soft"})
    comp = Component("sersic", dict(truth_values, mag=18.3, **start),
                     fixed={n for n in truth_values if n not in targets + ["mag", "x", "y"]})
    result = fit(Model([comp]), image, sigma=np.full_like(image, 0.01), zeropoint=ZP)
    assert bool(result.converged.all())
    for name in targets:
        assert result.value(1, name)[0] == pytest.approx(truth_values[name], abs=1e-3 * max(1.0, abs(truth[name])))
    assert result.value(1, "mag")[0] == pytest.approx(18.0, abs=1e-4)
