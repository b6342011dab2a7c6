"""imfit 1.9's 3-D functions: luminosity densities integrated along the line of sight.

``ExponentialDisk3D``, ``BrokenExponentialDisk3D``, ``GaussianRing3D`` and ``FerrersBar3D``
place a 3-D luminosity density j [counts/voxel = ADU/pix^3] in a plane whose line of
nodes lies at PA (counter-clockwise from +y, as the major axis of the 2-D functions) and
which is inclined by ``inc`` to the sky (0: face-on, 90: edge-on). With u, v the sky
offsets along and perpendicular to the line of nodes, the ray through (u, v) meets the
sky plane at (x_d, y_d, z_d) = (u, v cos i, v sin i) of the object's frame (x_d along
the line of nodes, z_d perpendicular to its plane) and runs along (0, sin i, -cos i):

    I(u, v) = int j(u, v cos i + s sin i, v sin i - s cos i) ds     [ADU/pix].

* ``expdisk3d`` (PA, inc, J_0, h, n, z_0): j = J_0 exp(-R/h) sech^(2/n)(n |z| / (2 z_0)),
  R = sqrt(x_d^2 + y_d^2) (n = 1: sech^2; n -> inf: exp(-|z| / z_0));
* ``brokenexpdisk3d`` (PA, inc, J_0, h1, h2, r_break, alpha, n, z_0): the same with the
  broken exponential of :mod:`galprof.profiles.imfitexp` in R (1 at R = 0);
* ``gaussianring3d`` (PA, inc, PA_ring, ell, J_0, a_ring, sigma, h_z):
  j = J_0 exp(-(R_e - a_ring)^2 / (2 sigma^2)) exp(-|z| / h_z), R_e = sqrt(x^2 + (y/q)^2)
  in the ring's frame, its major axis x at PA_ring from the y_d axis (the perpendicular
  to the line of nodes, towards -x_d), q = 1 - ell;
* ``ferrersbar3d`` (PA, inc, barPA, J_0, R_bar, q, q_z, n): a Ferrers ellipsoid,
  j = J_0 (1 - m^2)^n for m < 1, m^2 = x^2/R_bar^2 + y^2/(q R_bar)^2 + z^2/(q_z R_bar)^2.
  imfit's code puts the bar's major axis at barPA from the line of nodes x_d (its manual
  says from the perpendicular); galprof follows the code, so fits and imfit's best-fit
  files agree.

The image is unchanged by inc -> -inc, inc -> 180 - inc (the disk and the ring: also
PA -> PA + 180); ``inc`` and the in-plane angles are unbounded and reported as fitted.

Quadrature (fixed, vectorised, differentiable; imfit integrates adaptively over
+-20 scale lengths). The ray is cut into parts at the points where the integrand
peaks or changes character (:func:`ray_integral`); each finite part gets 31 tanh-sinh
(double-exponential) nodes after a map that makes an exponential through its two end
values flat, and each infinite tail 31 nodes on s = end +- tau ln(1 / (1 - t)):

* the disks: cut at the mid-plane crossing s_* = v tan i and the closest approach to the
  axis s_0 = -v cot i (the broken disk also where the ray crosses R = r_break); tails
  with tau = 1 / (|cos i| / z_0 + |sin i| / h) (h2 for the broken disk), the rate at
  which j falls far along the ray. 93 evaluations per point (155 for the broken disk);
  against scipy's adaptive quad of the same integral 1.5e-6 relative at worst, ~1e-8
  typically, for inclinations 0 .. 90 deg, n = 1 .. 100;
* the ring: the ray clipped to the ring's in-plane extent (a_ring + 8 sigma, times
  max(1, q)) and to |z| <= 30 h_z, cut at the mid-plane kink s_* and where its projection
  crosses the ridge R_e = a_ring; each part's map flattens exp(-|z| / h_z) exactly; 61
  nodes per part (244 evaluations): 6e-6 relative at worst (a narrow ring, sigma q =
  0.5 px, seen at 85 deg);
* the Ferrers bar in closed form: along a ray m^2 = A (s - s_m)^2 + m_min^2 and
  int (1 - m^2)^n ds = sqrt(pi) Gamma(n + 1) / Gamma(n + 3/2) D^(n + 1/2) / sqrt(A),
  D = 1 - m_min^2 > 0 (a projected Ferrers profile of exponent n + 1/2; the projection
  of a Ferrers ellipsoid is elliptical, so its 3-D orientation and shape are degenerate
  in a fit of a single image).

All four are rendered as non-radial profiles (Gauss-Legendre over each pixel, 4 x 4
nodes at least; 3 x 3 for the ring): a 64 x 64 image is ~3 10^6 (disk) to ~5 10^6
(ring) density evaluations, several hundred MB of autodiff memory in float64.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..conventions import elliptical_coordinates
from .base import POSITION_X, POSITION_Y, EllipticalProfile, ParameterSpec, safe_radius
from .edgedisk import log_sech
from .imfitexp import log_broken_exponential
from .registry import register

_POSITIVE = (0.0, math.inf)
_NODES_PER_PART = 31
_RING_NODES_PER_PART = 61
_RING_SIGMAS = 8.0
_RING_HEIGHTS = 30.0
_DEG = math.pi / 180.0

LOS_PA = ParameterSpec("pa", "deg", "position angle of the line of nodes, CCW from +y (up=0, left=90)", None,
                       "angle", imfit="PA")
INC = ParameterSpec("inc", "deg", "inclination of the object's plane to the sky (0 face-on, 90 edge-on)", None, "free",
                    imfit="inc")
J_0 = ParameterSpec("J_0", "ADU/pix^3", "central luminosity density (counts/voxel)", None, "free", imfit="J_0")


def _length(name: str, description: str, low: float = 0.02) -> ParameterSpec:
    return ParameterSpec(name, "pix", description, (low, 1e4), "log", imfit=name, domain=_POSITIVE, is_size=True)


D_H = _length("h", "radial exponential scale length in the disk plane")
D_N = ParameterSpec("n", "", "vertical shape: sech^(2/n)(n |z| / (2 z_0)); 1: sech^2, inf: exponential", (0.1, 200.0),
                    "log", imfit="n", domain=_POSITIVE)
D_Z0 = ParameterSpec("z_0", "pix", "vertical scale height", (0.02, 1e4), "log", imfit="z_0", domain=_POSITIVE)
B_H1 = _length("h1", "radial scale length inside the break")
B_H2 = _length("h2", "radial scale length outside the break")
B_R = _length("r_break", "break radius in the disk plane", 0.05)
B_ALPHA = ParameterSpec("alpha", "1/pix", "sharpness of the break (width ~ 1/alpha pixels)", (0.01, 100.0), "log",
                        imfit="alpha", domain=_POSITIVE, per_length=True)
R_PA = ParameterSpec("pa_ring", "deg", "angle of the ring's major axis in its plane, from the perpendicular to the "
                     "line of nodes", None, "free", imfit="PA_ring")
R_Q = ParameterSpec("q_ring", "", "axis ratio of the ring in its plane (imfit ell = 1 - q_ring)", (0.02, 50.0), "log",
                    imfit="ell", domain=_POSITIVE)
R_A = _length("a_ring", "semi-major axis of the ring", 0.05)
R_SIGMA = _length("sigma", "Gaussian radial width of the ring in its plane", 0.05)
R_HZ = ParameterSpec("h_z", "pix", "exponential scale height of the ring", (0.02, 1e4), "log", imfit="h_z",
                     domain=_POSITIVE)
F_PA = ParameterSpec("bar_pa", "deg", "angle of the bar's major axis in its plane, from the line of nodes", None,
                     "free", imfit="barPA")
F_R = _length("R_bar", "semi-major axis of the bar (j = 0 beyond)", 0.1)
F_Q = ParameterSpec("q_bar", "", "in-plane axis ratio b/a of the bar", (0.02, 50.0), "log", imfit="q",
                    domain=_POSITIVE)
F_QZ = ParameterSpec("q_z", "", "vertical axis ratio c/a of the bar", (0.02, 50.0), "log", imfit="q_z",
                     domain=_POSITIVE)
F_N = ParameterSpec("n", "", "Ferrers exponent n of (1 - m^2)^n", (0.05, 10.0), "log", imfit="n", domain=_POSITIVE)


@functools.lru_cache(maxsize=32)
def tanh_sinh_nodes(count: int, dtype, device):
    """Tanh-sinh (double-exponential) nodes t on (0, 1), 1 - t and weights: the trapezoid
    rule in x on t = (1 + tanh(pi/2 sinh x)) / 2, |x| <= 3, ``count`` (odd) nodes. It
    converges exponentially also for integrands with algebraic or logarithmic behaviour
    at the ends (1 - t is kept separately: it reaches ~1e-14 there)."""
    half = count // 2
    step = 3.0 / half
    x = np.arange(-half, half + 1) * step
    y = 0.5 * math.pi * np.sinh(x)
    t = 1.0 / (1.0 + np.exp(-2.0 * y))
    one_minus = 1.0 / (1.0 + np.exp(2.0 * y))
    w = step * 0.25 * math.pi * np.cosh(x) / np.cosh(y) ** 2
    with torch.inference_mode(False):
        return tuple(torch.as_tensor(a, dtype=dtype, device=device) for a in (t, one_minus, w))


def _floor(dtype) -> float:
    return 1e-12 if dtype == torch.float64 else 1e-6


def inclination_terms(inc_deg: torch.Tensor) -> dict[str, torch.Tensor]:
    """cos i and sin i, kept at least 1e-12 (float64) in size with their signs, so that
    the ray's special points v tan i and -v cot i stay finite."""
    rad = inc_deg * _DEG
    c, s = torch.cos(rad), torch.sin(rad)
    tiny = _floor(inc_deg.dtype)
    c = torch.where(c < 0, -1.0, 1.0) * c.abs().clamp(min=tiny)
    s = torch.where(s < 0, -1.0, 1.0) * s.abs().clamp(min=tiny)
    return {"cos_i": c, "sin_i": s}


def _sky_frame(dx, dy, derived):
    return elliptical_coordinates(dx, dy, derived["pa"], torch.ones_like(derived["pa"]))


def ray_points(u, v, d):
    """The ray's mid-plane crossing s_* = v tan i and closest approach to the axis
    s_0 = -v cot i [pix along the ray]."""
    return v * d["sin_i"] / d["cos_i"], -v * d["cos_i"] / d["sin_i"]


def ray_integral(log_j, breakpoints, tail_scale=None, decay=None, nodes=None):
    """int exp(log_j(s)) ds over a ray cut at ``breakpoints``.

    Each finite part between consecutive (sorted) breakpoints gets
    :func:`tanh_sinh_nodes` after the map s = start + length phi(t),
    phi = -ln(1 - t (1 - e^-kappa)) / kappa, which makes the exponential through the
    part's two end values flat (kappa = the drop of ln j across it, from its brighter
    end), or with ``decay`` = (rate, centre) the known factor exp(-rate |s - centre|)
    (kappa = rate x length, from the end nearer the centre, which must be a breakpoint).
    With ``tail_scale`` tau, the two outer parts get the map
    s = end +- tau ln(1 / (1 - t)) (exact for j falling like exp(-|s| / tau)); without,
    the integral stops at the first and last breakpoints.

    Args:
        log_j: callable(s) -> ln of the integrand at ray positions s (..., N).
        breakpoints: tensors of a common broadcast shape (...,): the ridges of the
            integrand and the points where it changes character.
        tail_scale: None or a tensor (...,) [units of s].
        decay: None or (rate, centre), tensors (...,).
        nodes: tanh-sinh nodes per part (default 31).

    Returns:
        The integral, shape (...,).
    """
    shape = np.broadcast_shapes(*(p.shape for p in breakpoints))
    sample = breakpoints[0]
    t, one_minus_t, w = tanh_sinh_nodes(nodes or _NODES_PER_PART, sample.dtype, sample.device)
    tiny = _floor(sample.dtype)
    points = torch.sort(torch.stack([p.expand(shape) for p in breakpoints], dim=-1), dim=-1).values
    ends = log_j(points)
    total = torch.zeros(shape, dtype=sample.dtype, device=sample.device)
    for k in range(points.shape[-1] - 1):
        lo, hi = points[..., k:k + 1], points[..., k + 1:k + 2]
        length = hi - lo
        if decay is None:
            falls = ends[..., k:k + 1] >= ends[..., k + 1:k + 2]  # brighter at the start
            kappa = (ends[..., k:k + 1] - ends[..., k + 1:k + 2]).abs().nan_to_num(0.0).clamp(min=tiny)
        else:
            rate, centre = (x.unsqueeze(-1) for x in decay)
            falls = (lo - centre).abs() <= (hi - centre).abs()
            kappa = (rate * length).clamp(min=tiny)
        start = torch.where(falls, lo, hi)
        step = torch.where(falls, length, -length)
        rest = one_minus_t + t * torch.exp(-kappa)  # 1 - t (1 - e^-kappa)
        s = start + step * (-torch.log(rest) / kappa)
        jac = length * (-torch.expm1(-kappa) / kappa) / rest
        total = total + (torch.exp(log_j(s)) * w * jac).sum(-1)
    if tail_scale is not None:
        tau = tail_scale.unsqueeze(-1)
        stretch = tau * -torch.log(one_minus_t)
        for end, sign in ((points[..., :1], -1.0), (points[..., -1:], 1.0)):
            total = total + (torch.exp(log_j(end + sign * stretch)) * w * tau / one_minus_t).sum(-1)
    return total


def disk_line_integral(log_density, u, v, d, breakpoints, tail_radius, tail_height):
    """int j(R, z) ds along the rays through sky offsets (u, v) of an axisymmetric disk:
    :func:`ray_integral` cut at ``breakpoints``, with tails falling at
    a + b = |cos i| / tail_height + |sin i| / tail_radius per unit s.

    Args:
        log_density: callable(R, |z|, d) -> ln j per unit J_0, for R, |z| tensors of
            shape (..., N) and ``d`` the derived values unsqueezed once.
        u, v: offsets along and perpendicular to the line of nodes [pix].
        d: derived values with ``cos_i``, ``sin_i`` (broadcastable against u).
        breakpoints: list of tensors [pix along the ray].
        tail_radius, tail_height: the radial and vertical scales far along the ray [pix].

    Returns:
        The integral [pix per unit J_0], shape of u.
    """
    cos_i, sin_i = d["cos_i"].unsqueeze(-1), d["sin_i"].unsqueeze(-1)
    uu, vv = u.unsqueeze(-1), v.unsqueeze(-1)
    tiny = _floor(u.dtype)
    ex = {k: val.unsqueeze(-1) for k, val in d.items()}

    def log_j(s):
        y_d = vv * cos_i + s * sin_i
        z_d = vv * sin_i - s * cos_i
        return log_density(torch.sqrt(uu * uu + y_d * y_d + tiny * tiny), z_d.abs(), ex)

    shape = np.broadcast_shapes(u.shape, *(p.shape for p in breakpoints))
    tau = 1.0 / (d["cos_i"].abs() / tail_height + d["sin_i"].abs() / tail_radius)
    return ray_integral(log_j, [p.expand(shape) for p in breakpoints], tau.expand(shape))


class _LineOfSight(EllipticalProfile):
    radial = False
    galfit_name = None
    amplitude = "J_0"
    amplitude_kind = "intensity"
    min_gl_order = 4

    @classmethod
    def setup(cls, params):
        derived = dict(cls.prepare(params))
        derived.update(inclination_terms(params["inc"]))
        derived["pa"] = params["pa"]
        return derived


def _vertical_terms(params):
    n, z_0 = params["n"], params["z_0"]
    return {"two_over_n": 2.0 / n, "n_over_2z0": n / (2.0 * z_0), "z_0": z_0, "n": n}


def vertical_integral(n: torch.Tensor, z_0: torch.Tensor) -> torch.Tensor:
    """int sech^(2/n)(n |z| / (2 z_0)) dz = (2 sqrt(pi) z_0 / n) Gamma(1/n) / Gamma(1/n + 1/2) [pix]."""
    inv_n = 1.0 / n
    return (2.0 * math.sqrt(math.pi) * z_0 / n) * torch.exp(torch.lgamma(inv_n) - torch.lgamma(inv_n + 0.5))


@register
class ExponentialDisk3D(_LineOfSight):
    name = "expdisk3d"
    description = "inclined exponential disk with a sech^(2/n) vertical profile, line-of-sight integral " \
                  "(imfit ExponentialDisk3D)"
    imfit_name = "ExponentialDisk3D"
    imfit_order = ("PA", "inc", "J_0", "h", "n", "z_0")
    parameters = (POSITION_X, POSITION_Y, J_0, D_H, D_N, D_Z0, INC, LOS_PA)

    @staticmethod
    def prepare(params):
        derived = _vertical_terms(params)
        derived.update(h=params["h"], inv_h=1.0 / params["h"])
        return derived

    @classmethod
    def brightness(cls, dx, dy, derived):
        u, v = _sky_frame(dx, dy, derived)

        def log_density(radius, z, d):
            return -radius * d["inv_h"] + d["two_over_n"] * log_sech(z * d["n_over_2z0"])

        return disk_line_integral(log_density, u, v, derived, list(ray_points(u, v, derived)), derived["h"],
                                  derived["z_0"])

    @classmethod
    def total_per_amplitude(cls, derived):
        """2 pi h^2 times the vertical integral [pix^3] (independent of the inclination)."""
        return 2.0 * math.pi * derived["h"] ** 2 * vertical_integral(derived["n"], derived["z_0"])


@register
class BrokenExponentialDisk3D(_LineOfSight):
    name = "brokenexpdisk3d"
    description = "inclined broken-exponential disk, sech^(2/n) vertical profile, line-of-sight integral " \
                  "(imfit BrokenExponentialDisk3D)"
    imfit_name = "BrokenExponentialDisk3D"
    imfit_order = ("PA", "inc", "J_0", "h1", "h2", "r_break", "alpha", "n", "z_0")
    parameters = (POSITION_X, POSITION_Y, J_0, B_H1, B_H2, B_R, B_ALPHA, D_N, D_Z0, INC, LOS_PA)
    total_per_amplitude = None

    @staticmethod
    def prepare(params):
        derived = _vertical_terms(params)
        derived.update(inv_h1=1.0 / params["h1"], inv_h2=1.0 / params["h2"], h2=params["h2"],
                       r_break=params["r_break"], alpha=params["alpha"])
        return derived

    @classmethod
    def brightness(cls, dx, dy, derived):
        u, v = _sky_frame(dx, dy, derived)

        def log_density(radius, z, d):
            radial = log_broken_exponential(radius, d["inv_h1"], d["inv_h2"], d["r_break"], d["alpha"])
            return radial + d["two_over_n"] * log_sech(z * d["n_over_2z0"])

        s_mid, s_axis = ray_points(u, v, derived)
        # where the ray crosses the break circle R = r_break (at s_axis if it passes outside)
        half_chord = safe_radius(derived["r_break"] ** 2 - u * u) / derived["sin_i"].abs()
        points = [s_mid, s_axis, s_axis - half_chord, s_axis + half_chord]
        return disk_line_integral(log_density, u, v, derived, points, derived["h2"], derived["z_0"])


@register
class GaussianRing3D(_LineOfSight):
    name = "gaussianring3d"
    description = "inclined elliptical Gaussian ring with an exponential vertical profile, line-of-sight integral " \
                  "(imfit GaussianRing3D)"
    imfit_name = "GaussianRing3D"
    imfit_order = ("PA", "inc", "PA_ring", "ell", "J_0", "a_ring", "sigma", "h_z")
    parameters = (POSITION_X, POSITION_Y, J_0, R_A, R_SIGMA, R_HZ, R_PA, R_Q, INC, LOS_PA)
    total_per_amplitude = None
    min_gl_order = 3  # 244 evaluations per point already

    @staticmethod
    def prepare(params):
        ring = params["pa_ring"] * _DEG
        q = params["q_ring"]
        return {"a_ring": params["a_ring"], "half_inv_var": 0.5 / params["sigma"] ** 2, "inv_h_z": 1.0 / params["h_z"],
                "h_z": params["h_z"], "inv_q": 1.0 / q,
                "extent": (params["a_ring"] + _RING_SIGMAS * params["sigma"]) * torch.clamp(q, min=1.0),
                # the ring's major axis: (-sin PA_ring, cos PA_ring) in (x_d, y_d)
                "ring_c": torch.cos(ring), "ring_s": torch.sin(ring)}

    @classmethod
    def brightness(cls, dx, dy, derived):
        d = derived
        u, v = _sky_frame(dx, dy, d)
        cos_i, sin_i = d["cos_i"], d["sin_i"]
        # the ray within the ring's in-plane extent (|y_d| <= Y) and |z| <= 30 h_z
        half_chord = safe_radius(d["extent"] ** 2 - u * u)
        y_lo, y_hi = (-half_chord - v * cos_i) / sin_i, (half_chord - v * cos_i) / sin_i
        height = _RING_HEIGHTS * d["h_z"]
        z_lo, z_hi = (v * sin_i - height) / cos_i, (v * sin_i + height) / cos_i
        lo = torch.maximum(torch.minimum(y_lo, y_hi), torch.minimum(z_lo, z_hi))
        hi = torch.maximum(torch.minimum(torch.maximum(y_lo, y_hi), torch.maximum(z_lo, z_hi)), lo)
        # where the ray's projection crosses the ridge R_e = a_ring: in y_d, a quadratic
        # A y^2 + 2 B y + C = a_ring^2 (its vertex where it misses the ridge)
        rc, rs, inv_q2 = d["ring_c"], d["ring_s"], d["inv_q"] ** 2
        big_a = rc * rc + rs * rs * inv_q2
        big_b = u * rs * rc * (inv_q2 - 1.0)
        big_c = u * u * (rs * rs + rc * rc * inv_q2)
        root = safe_radius(big_b * big_b - big_a * (big_c - d["a_ring"] ** 2))
        crossings = [((-big_b + sign * root) / big_a - v * cos_i) / sin_i for sign in (-1.0, 1.0)]
        s_mid = (v * sin_i / cos_i).clamp(min=lo, max=hi)
        points = [lo, hi, s_mid] + [p.clamp(min=lo, max=hi) for p in crossings]
        shape = np.broadcast_shapes(*(p.shape for p in points))
        ex = {key: val.unsqueeze(-1) for key, val in d.items()}
        uu, vv = u.unsqueeze(-1), v.unsqueeze(-1)

        def log_j(s):
            y_d = vv * ex["cos_i"] + s * ex["sin_i"]
            z_d = vv * ex["sin_i"] - s * ex["cos_i"]
            x_r = -uu * ex["ring_s"] + y_d * ex["ring_c"]  # along the ring's major axis
            w_r = (-uu * ex["ring_c"] - y_d * ex["ring_s"]) * ex["inv_q"]
            off = torch.sqrt(x_r * x_r + w_r * w_r + _floor(u.dtype) ** 2) - ex["a_ring"]
            return -(off * off) * ex["half_inv_var"] - z_d.abs() * ex["inv_h_z"]

        # exp(-|z| / h_z) = exp(-(|cos i| / h_z) |s - s_mid|): flat in each part's map
        decay = ((cos_i.abs() * d["inv_h_z"]).expand(shape), s_mid.expand(shape))
        return ray_integral(log_j, [p.expand(shape) for p in points], decay=decay, nodes=_RING_NODES_PER_PART)


@register
class FerrersBar3D(_LineOfSight):
    name = "ferrersbar3d"
    description = "inclined triaxial Ferrers ellipsoid, line-of-sight integral in closed form (imfit FerrersBar3D)"
    imfit_name = "FerrersBar3D"
    imfit_order = ("PA", "inc", "barPA", "J_0", "R_bar", "q", "q_z", "n")
    parameters = (POSITION_X, POSITION_Y, J_0, F_R, F_Q, F_QZ, F_N, F_PA, INC, LOS_PA)

    @staticmethod
    def prepare(params):
        bar = params["bar_pa"] * _DEG
        r_bar, n = params["R_bar"], params["n"]
        return {"inv_a2": r_bar ** -2, "inv_b2": (params["q_bar"] * r_bar) ** -2,
                "inv_c2": (params["q_z"] * r_bar) ** -2, "n": n, "bar_c": torch.cos(bar), "bar_s": torch.sin(bar),
                "r_bar": r_bar, "q_bar": params["q_bar"], "q_z": params["q_z"],
                "log_norm": 0.5 * math.log(math.pi) + torch.lgamma(n + 1.0) - torch.lgamma(n + 1.5)}

    @classmethod
    def brightness(cls, dx, dy, derived):
        d = derived
        u, v = _sky_frame(dx, dy, d)
        cos_i, sin_i, c, s = d["cos_i"], d["sin_i"], d["bar_c"], d["bar_s"]
        # start point and direction of the ray in the bar's frame (major axis at bar_pa from x_d)
        y_d0, z_d0 = v * cos_i, v * sin_i
        p_major, p_minor = u * c + y_d0 * s, -u * s + y_d0 * c
        t_major, t_minor, t_z = sin_i * s, sin_i * c, -cos_i
        big_a = t_major ** 2 * d["inv_a2"] + t_minor ** 2 * d["inv_b2"] + t_z ** 2 * d["inv_c2"]
        big_b = p_major * t_major * d["inv_a2"] + p_minor * t_minor * d["inv_b2"] + z_d0 * t_z * d["inv_c2"]
        big_c = p_major ** 2 * d["inv_a2"] + p_minor ** 2 * d["inv_b2"] + z_d0 ** 2 * d["inv_c2"]
        room = 1.0 - (big_c - big_b * big_b / big_a)
        inside = room > 0
        tiny = 1e-300 if u.dtype == torch.float64 else 1e-37
        log_value = d["log_norm"] + (d["n"] + 0.5) * torch.log(room.clamp(min=tiny)) - 0.5 * torch.log(big_a)
        return torch.where(inside, torch.exp(log_value), torch.zeros_like(log_value))

    @classmethod
    def total_per_amplitude(cls, derived):
        """The ellipsoid's light: 4 pi q q_z R_bar^3 int_0^1 (1 - m^2)^n m^2 dm
        = pi^(3/2) q q_z R_bar^3 Gamma(n + 1) / Gamma(n + 5/2) [pix^3]."""
        n = derived["n"]
        return (math.pi ** 1.5 * derived["q_bar"] * derived["q_z"] * derived["r_bar"] ** 3
                * torch.exp(torch.lgamma(n + 1.0) - torch.lgamma(n + 2.5)))
