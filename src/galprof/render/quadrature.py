"""Integrals of elliptical profiles over rectangular cells (pixels or sub-pixels).

Two methods, both pure functions of tensors, batch first:

* :func:`cell_integrals_gauss` — tensor-product Gauss-Legendre quadrature in each cell,
  optionally multiplied by a smooth radial window. Accurate where the profile is smooth
  across the cell.
* :func:`cell_integrals_exact` — exact to quadrature precision also for the cell that
  holds a cuspy centre. By Green's theorem, the integral of a radial profile f(rho) over
  a polygon equals (1/2pi) times the boundary integral of E(rho) dphi, with E the
  enclosed-flux fraction and phi the polar angle about the centre (in the circularised
  frame). Along a straight edge at distance d from the centre we substitute
  phi = gd(t) (the Gudermannian), rho = d cosh t, so the edge integral is
  int E(d cosh t) / cosh t dt: smooth in t however close the edge passes to the centre.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..conventions import elliptical_coordinates
from ..profiles.base import EllipticalProfile, safe_radius


@functools.lru_cache(maxsize=None)
def _leggauss(order: int):
    return np.polynomial.legendre.leggauss(order)


@functools.lru_cache(maxsize=64)
def gauss_legendre_unit(order: int, dtype, device):
    """Nodes on [-1/2, 1/2] and weights summing to 1 (cached: shared, never modify them)."""
    nodes, weights = _leggauss(order)
    with torch.inference_mode(False):  # plain tensors even if first made under inference mode
        return (
            torch.as_tensor(nodes / 2.0, dtype=dtype, device=device),
            torch.as_tensor(weights / 2.0, dtype=dtype, device=device),
        )


@functools.lru_cache(maxsize=64)
def gauss_legendre(order: int, dtype, device):
    """Gauss-Legendre nodes on [-1, 1] and their weights (cached: shared, never modify them)."""
    nodes, weights = _leggauss(order)
    with torch.inference_mode(False):
        return torch.as_tensor(nodes, dtype=dtype, device=device), torch.as_tensor(weights, dtype=dtype, device=device)


def smooth_window(r: torch.Tensor, inner: float, outer: float) -> torch.Tensor:
    """C-infinity window: 1 for r <= inner, 0 for r >= outer, smooth in between."""
    t = ((r - inner) / (outer - inner)).clamp(0.0, 1.0)

    def bump(z):
        return torch.where(z > 0, torch.exp(-1.0 / z.clamp(min=1e-6)), torch.zeros_like(z))

    a, b = bump(1.0 - t), bump(t)
    return a / (a + b)


def smooth_window_slope(r: torch.Tensor, inner: float, outer: float) -> torch.Tensor:
    """d/dr of :func:`smooth_window` [1/pix]: with w = a / (a + b), a = f(1 - t),
    b = f(t), f(z) = exp(-1/z), f'(z) = f(z) / z^2, t = (r - inner) / (outer - inner):
    dw/dt = -(f'(1 - t) b + a f'(t)) / (a + b)^2; zero outside (inner, outer)."""
    t = (r - inner) / (outer - inner)
    inside = (t > 0.0) & (t < 1.0)
    tc = torch.where(inside, t, torch.full_like(t, 0.5))
    a, b = torch.exp(-1.0 / (1.0 - tc)), torch.exp(-1.0 / tc)
    da, db = a / (1.0 - tc) ** 2, b / tc**2
    slope = -(da * b + a * db) / ((a + b) ** 2 * (outer - inner))
    return torch.where(inside, slope, torch.zeros_like(slope))


def cell_integrals_gauss(
    profile: type[EllipticalProfile],
    derived: dict[str, torch.Tensor],
    dx: torch.Tensor,
    dy: torch.Tensor,
    cell: float,
    order: int,
    window: tuple[float, float, bool] | None = None,
    remainder: bool = False,
) -> torch.Tensor:
    """Unit-amplitude profile integrated over square cells by Gauss-Legendre quadrature.

    Args:
        profile: the elliptical profile class.
        derived: ``profile.setup`` output (geometry included), tensors of shape (B, 1, 1).
        dx, dy: cell-centre offsets from the profile centre [pix], broadcastable to
            (B, Ny, Nx).
        cell: side of the cells [pix].
        order: nodes per axis.
        window: optional (inner, outer, complement): multiply the profile by the radial
            window (or by 1 - window if ``complement``), with r the circular radius [pix]
            from the centre.
        remainder: integrate ``brightness - brightness_reference`` instead (the part of a
            profile without a homogeneous radius that its exact core leaves out).

    Returns:
        (B, Ny, Nx) light in each cell per unit amplitude (for a total-magnitude
        profile: the fraction of the total flux).
    """
    nodes, weights = gauss_legendre_unit(order, dx.dtype, dx.device)
    offsets = cell * nodes
    # all nodes at once: (B, Ny, order_y, Nx, order_x), one operation per step
    dxn = (dx.unsqueeze(-1) + offsets).unsqueeze(-3)  # (B, *, 1, Nx, ox)
    dyn = (dy.unsqueeze(-2) + offsets[:, None]).unsqueeze(-1)  # (B, Ny, oy, *, 1)

    def expand(t):
        return t[..., None, None]

    der = {k: expand(v) for k, v in derived.items()}
    value = profile.brightness(dxn, dyn, der)
    if remainder:
        value = value - profile.brightness_reference(dxn, dyn, der)
    if window is not None:
        inner, outer, complement = window
        win = smooth_window(safe_radius(dxn * dxn + dyn * dyn), inner, outer)
        value = value * ((1.0 - win) if complement else win)
    weight = weights[:, None, None] * weights  # (oy, 1, ox)
    total = (value * weight).sum((-3, -1))
    return total * (cell * cell)


def _edge_nodes(derived, x0, y0, x1, y1, nodes):
    """The quadrature of straight segments (x0, y0) -> (x1, y1) (offsets from the centre
    [pix]) in the circularised frame (u, w) of the ellipse: the point at parameter t lies
    d sinh t from the foot of the perpendicular from the centre, d its distance.

    Returns (u0, w0, du, dw, length, cross, dist, t_foot, half, t): the start and
    direction in (u, w), the segment's length there, u0 dw - w0 du, d, the foot's
    fraction of the way along the segment, half the t-range (...) and the nodes t
    (..., n) of ``nodes`` on [-1, 1] mapped to the segment.
    """
    u0, w0 = elliptical_coordinates(x0, y0, derived["pa"], derived["q"])
    u1, w1 = elliptical_coordinates(x1, y1, derived["pa"], derived["q"])
    du, dw = u1 - u0, w1 - w0
    length = safe_radius(du * du + dw * dw)
    cross = u0 * dw - w0 * du
    dist = (cross.abs() / length).clamp(min=1e-9)
    t_foot = -(u0 * du + w0 * dw) / (length * length)
    t_start = torch.asinh(length * (0.0 - t_foot) / dist)
    t_end = torch.asinh(length * (1.0 - t_foot) / dist)
    half = 0.5 * (t_end - t_start)
    t = (0.5 * (t_end + t_start)).unsqueeze(-1) + half.unsqueeze(-1) * nodes
    return u0, w0, du, dw, length, cross, dist, t_foot, half, t


def _edge_integrals(profile, derived, x0, y0, x1, y1, nodes, weights, tangents=None):
    """(1/2pi) * signed integral of E(rho h) / h^2 dphi along the segments (x0,y0) -> (x1,y1).

    Segment coordinates are offsets from the profile centre [pix], (B, ...) tensors. The
    integral runs in the circularised frame (u, w) of the ellipse, where the plain
    elliptical radius is the distance from the centre; a shape-modified radius is that
    distance times h(direction) (:meth:`EllipticalProfile.radius_scale`), and the light
    of the sector under the segment is then E(R h) / h^2 / (2 pi) per unit angle.

    With ``tangents`` (``[(name, d derived / d name)]``, a radial unmodified profile
    with ``enclosed_fraction_tangents``): a list, the integral and then the same
    integral of dE/d name for each (the geometry held fixed).
    """
    u0, w0, du, dw, length, cross, dist, t_foot, half, t = _edge_nodes(derived, x0, y0, x1, y1, nodes)
    cosh_t = torch.cosh(t)
    d = {k: v.unsqueeze(-1) for k, v in derived.items()}
    radius = dist.unsqueeze(-1) * cosh_t
    if tangents is not None:
        expanded = [(name, {k: v.unsqueeze(-1) for k, v in td.items()}) for name, td in tangents]
        value, slopes = profile.enclosed_fraction_tangents(radius, d, expanded)
        return [torch.sign(cross) * (half * (e / cosh_t * weights).sum(-1)) / (2.0 * math.pi)
                for e in [value] + slopes]
    scale = None
    if profile.shape_modified:
        # the point of the edge at parameter t: foot + d sinh(t) along the edge direction
        fu = (u0 + t_foot * du).unsqueeze(-1)
        fw = (w0 + t_foot * dw).unsqueeze(-1)
        along = dist.unsqueeze(-1) * torch.sinh(t) / length.unsqueeze(-1)
        scale = profile.radius_scale(fu + along * du.unsqueeze(-1), fw + along * dw.unsqueeze(-1), d)
    if scale is None:
        enclosed = profile.enclosed_fraction(radius, d)
    else:
        enclosed = profile.enclosed_fraction(radius * scale, d) / (scale * scale)
    integral = half * (enclosed / cosh_t * weights).sum(-1)
    return torch.sign(cross) * integral / (2.0 * math.pi)


def cell_integrals_exact(
    profile: type[EllipticalProfile],
    derived: dict[str, torch.Tensor],
    x_edges: torch.Tensor,
    y_edges: torch.Tensor,
    edge_nodes: int,
    cell: float,
) -> torch.Tensor:
    """Exact unit-amplitude integrals over the cells of a square grid (Green's theorem).

    Args:
        x_edges: (B, 1, Nx+1) cell edges along x, offsets from the centre [pix].
        y_edges: (B, Ny+1, 1) cell edges along y.
        derived: ``profile.setup`` output, (B, 1, 1) tensors.
        edge_nodes: quadrature nodes per edge.
        cell: side of the cells [pix] (the edges are uniformly spaced).

    A non-radial profile (``profile.radial`` False, no cusp) gets tensor-product
    Gauss-Legendre with ``edge_nodes // 3`` nodes per axis per cell instead. A profile
    whose radius is not homogeneous (``homogeneous_radius`` False: bending, rotation,
    truncation) gets the exact integrals of its linearisation at the centre
    (``brightness_reference``) plus the remainder by that Gauss-Legendre rule (the
    remainder is continuous at the centre: O(r^2) in the radius, O(r) for a taper).

    Returns:
        (B, Ny, Nx) light per unit amplitude. Computed in float64, returned in the input dtype.
    """
    dtype = x_edges.dtype
    if not profile.radial:
        order = max(4, edge_nodes // 3)
        centres_x = 0.5 * (x_edges[..., 1:] + x_edges[..., :-1])
        centres_y = 0.5 * (y_edges[:, 1:] + y_edges[:, :-1])
        return cell_integrals_gauss(profile, derived, centres_x, centres_y, cell, order)
    f64 = torch.float64
    xe, ye = x_edges.to(f64), y_edges.to(f64)
    der = {k: v.to(f64) for k, v in derived.items()}
    nodes, weights = gauss_legendre(edge_nodes, f64, xe.device)
    horizontal, vertical = _edge_segments(xe, ye)
    h_edges = _edge_integrals(profile, der, *horizontal, nodes, weights)  # (B, Ny+1, Nx)
    v_edges = _edge_integrals(profile, der, *vertical, nodes, weights)  # (B, Ny, Nx+1)
    cells = _cells_from_edges(h_edges, v_edges)
    if not profile.homogeneous_radius:
        cells = cells + _remainder_cells(profile, der, xe, ye, cell, max(4, edge_nodes // 3))
    return cells.to(dtype)


_REMAINDER_SPLIT = 4  # sub-cells per axis of each exact cell for the remainder's quadrature


def _remainder_cells(profile, derived, x_edges, y_edges, cell: float, order: int) -> torch.Tensor:
    """(B, Ny, Nx): ``brightness - brightness_reference`` integrated over the cells of a
    grid by Gauss-Legendre quadrature on 4 x 4 sub-cells of each (the remainder is
    continuous but not smooth at the centre: r^(1 + 1/n) for a Sérsic profile, composite
    quadrature converges there). Edges as :func:`cell_integrals_exact` (uniform)."""
    k = _REMAINDER_SPLIT
    sub = (torch.arange(k, dtype=x_edges.dtype, device=x_edges.device) + 0.5) * (cell / k)
    xs = (x_edges[..., :-1, None] + sub).flatten(-2)  # (B, 1, Nx k) sub-cell centres
    ys = (y_edges[:, :-1, :, None] + sub).transpose(-1, -2).reshape(y_edges.shape[0], -1, 1)  # (B, Ny k, 1)
    parts = cell_integrals_gauss(profile, derived, xs, ys, cell / k, order, remainder=True)
    bsz, ny, nx = parts.shape
    return parts.reshape(bsz, ny // k, k, nx // k, k).sum((2, 4))


def _cells_from_edges(h_edges: torch.Tensor, v_edges: torch.Tensor) -> torch.Tensor:
    """Green's theorem: a cell's light from the signed integrals along its four edges
    (horizontal (B, Ny+1, Nx), vertical (B, Ny, Nx+1)), counter-clockwise."""
    return h_edges[:, :-1, :] + v_edges[:, :, 1:] - h_edges[:, 1:, :] - v_edges[:, :, :-1]


def cell_integrals_exact_tangents(
    profile: type[EllipticalProfile],
    derived: dict[str, torch.Tensor],
    tangents,
    x_edges: torch.Tensor,
    y_edges: torch.Tensor,
    edge_nodes: int,
) -> list[torch.Tensor]:
    """:func:`cell_integrals_exact` of a radial, unmodified profile with
    ``enclosed_fraction_tangents`` (e.g. the Sérsic), and its derivatives with respect to
    parameters that leave the geometry alone (the Sérsic n): the same Green's-theorem
    edge integrals of dE/d name (from one series evaluation of the incomplete gamma
    function, no central differences).

    Args:
        derived: ``profile.setup`` output, (B, 1, 1) tensors.
        tangents: ``[(name, {key: d derived[key] / d name})]``, (B, 1, 1) tensors.
        x_edges, y_edges, edge_nodes: as :func:`cell_integrals_exact`.

    Returns:
        [cells, d cells / d name for each tangent], (B, Ny, Nx) in the edges' dtype;
        ``cells`` equals :func:`cell_integrals_exact`'s to rounding.
    """
    dtype = x_edges.dtype
    f64 = torch.float64
    xe, ye = x_edges.to(f64), y_edges.to(f64)
    der = {k: v.to(f64) for k, v in derived.items()}
    tan = [(name, {k: v.to(f64) for k, v in d.items()}) for name, d in tangents]
    nodes, weights = gauss_legendre(edge_nodes, f64, xe.device)
    horizontal, vertical = _edge_segments(xe, ye)
    h_edges = _edge_integrals(profile, der, *horizontal, nodes, weights, tan)
    v_edges = _edge_integrals(profile, der, *vertical, nodes, weights, tan)
    return [_cells_from_edges(h, v).to(dtype) for h, v in zip(h_edges, v_edges)]


def _edge_segments(x_edges: torch.Tensor, y_edges: torch.Tensor):
    """The horizontal ((x_i, y_j) -> (x_(i+1), y_j), (B, Ny+1, Nx)) and vertical
    ((x_i, y_j) -> (x_i, y_(j+1)), (B, Ny, Nx+1)) edges of a grid, as (x0, y0, x1, y1)."""
    ny, nx = y_edges.shape[1], x_edges.shape[2]
    horizontal = (x_edges[..., :-1].expand(-1, ny, -1), y_edges.expand(-1, -1, nx - 1),
                  x_edges[..., 1:].expand(-1, ny, -1), y_edges.expand(-1, -1, nx - 1))
    vertical = (x_edges.expand(-1, ny - 1, -1), y_edges[:, :-1].expand(-1, -1, nx),
                x_edges.expand(-1, ny - 1, -1), y_edges[:, 1:].expand(-1, -1, nx))
    return horizontal, vertical


def _edge_brightness_moments(profile, derived, x0, y0, x1, y1, nodes, weights):
    """Line integrals of the unit-flux brightness f along straight segments (offsets
    from the centre [pix]): (int f ds, int f x ds, int f y ds), ds the length element
    in pixels. The same substitution as :func:`_edge_integrals` (the point at parameter
    t lies d sinh t from the foot of the perpendicular in the circularised frame), so
    the integrand f(d cosh t) d cosh t is smooth however steep the profile."""
    *_, length, _, dist, t_foot, half, t = _edge_nodes(derived, x0, y0, x1, y1, nodes)
    dist, length, half = dist.unsqueeze(-1), length.unsqueeze(-1), half.unsqueeze(-1)
    tau = t_foot.unsqueeze(-1) + dist * torch.sinh(t) / length  # fraction of the way along the segment
    ex, ey = (x1 - x0).unsqueeze(-1), (y1 - y0).unsqueeze(-1)
    px, py = x0.unsqueeze(-1) + tau * ex, y0.unsqueeze(-1) + tau * ey
    d = {k: v.unsqueeze(-1) for k, v in derived.items()}
    # ds = |P1 - P0| dtau, dtau = d cosh t / length dt
    weighted = profile.brightness(px, py, d) * (half * weights * torch.sqrt(ex * ex + ey * ey) * dist
                                                 * torch.cosh(t) / length)
    return weighted.sum(-1), (weighted * px).sum(-1), (weighted * py).sum(-1)


def transport_parameters(profile: type[EllipticalProfile], names) -> dict[str, str]:
    """Those of ``names`` whose effect on a radial, unmodified elliptical profile of unit
    flux is a flux-conserving transport of its light (see
    :func:`cell_integrals_transport_derivatives`): ``{name: "size" | "pa" | "q"}``.

    The size is the profile's only length parameter (``ParameterSpec.is_size``); with two
    or more lengths (a broken exponential, a core-Sérsic) none of them is a pure scaling."""
    if not profile.radial or profile.shape_modified:
        return {}
    sizes = [spec.name for spec in profile.parameters if spec.is_size]
    kinds = {"pa": "pa", "q": "q"}
    if len(sizes) == 1:
        kinds[sizes[0]] = "size"
    return {name: kinds[name] for name in names if name in kinds}


def cell_integrals_transport_derivatives(
    profile: type[EllipticalProfile],
    derived: dict[str, torch.Tensor],
    size: torch.Tensor,
    x_edges: torch.Tensor,
    y_edges: torch.Tensor,
    edge_nodes: int,
    kinds: dict[str, str],
) -> dict[str, torch.Tensor]:
    """Derivatives of :func:`cell_integrals_exact` with respect to the size, PA and q.

    Changing any of these moves the profile's light without creating or destroying any
    (the profile has unit flux): the light flows with a velocity field V, linear in the
    offset x from the centre, and the continuity equation d f / d theta = -div(f V)
    turns the derivative of a cell's light into the flux of f V out through its edges,
    dF/dtheta = -oint f V.n ds: line integrals of the brightness itself, without the
    enclosed-flux function (no incomplete gamma function). The fields:

    * size s (R_e, R_s) [pix]: V = x / s (a dilation);
    * PA [degrees, counter-clockwise from +y]: V = (pi / 180) (-y, x) (a rotation);
    * q: V = (w / q) e_w, a stretch along the minor axis e_w = (cos PA, sin PA), with
      w = x . e_w the offset along it (at fixed major-axis size and flux).

    Args:
        derived: ``profile.setup`` output (geometry included), (B, 1, 1) float64 tensors.
        size: (B, 1, 1) the profile's size parameter [pix].
        x_edges, y_edges: as :func:`cell_integrals_exact` (float64).
        kinds: ``{name: "size" | "pa" | "q"}`` (:func:`transport_parameters`).

    Returns:
        ``{name: (B, Ny, Nx)}`` d(cell light per unit amplitude)/d(parameter), in the
        dtype of the edges.
    """
    nodes, weights = gauss_legendre(edge_nodes, x_edges.dtype, x_edges.device)
    horizontal, vertical = _edge_segments(x_edges, y_edges)
    h0, hx, hy = _edge_brightness_moments(profile, derived, *horizontal, nodes, weights)
    v0, vx, vy = _edge_brightness_moments(profile, derived, *vertical, nodes, weights)
    pa = derived["pa"] * (math.pi / 180.0)
    c, s = torch.cos(pa), torch.sin(pa)
    q = derived["q"]
    out = {}
    for name, kind in kinds.items():
        # int f V.n ds through each edge: n = +y on horizontal edges, +x on vertical ones
        if kind == "size":
            through_h, through_v = horizontal[1] * h0 / size, vertical[0] * v0 / size
        elif kind == "pa":
            through_h, through_v = (math.pi / 180.0) * hx, -(math.pi / 180.0) * vy
        elif kind == "q":
            through_h, through_v = s * (c * hx + s * hy) / q, c * (c * vx + s * vy) / q
        else:
            raise ValueError(f"unknown transport kind {kind!r}")
        outflow = through_h[:, 1:, :] - through_h[:, :-1, :] + through_v[:, :, 1:] - through_v[:, :, :-1]
        out[name] = -outflow
    return out
