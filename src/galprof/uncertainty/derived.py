"""Errors of derived quantities: the delta method (autograd Jacobian) or from samples.

A derived quantity is a function ``f(p)`` of a :class:`Parameters` view of a (B, P)
tensor of fitted values in user units (``p[1, "mag"]`` is the (B,) magnitudes of
component 1), returning a (B,) or (B, K) tensor. Its errors are

* :func:`delta_method`: C_f = G C G^T with G = d f / d p (B, K, P) from autograd at the
  best fit and C the (B, P, P) parameter covariance (``FitResult.parameter_covariance``,
  raw or times chi2_nu). First order: good while f is close to linear over the errors;
* :func:`from_samples`: f applied to each bootstrap replicate or posterior sample, with
  the standard deviation and percentile intervals of the results (no linearisation).

Built-in quantities (factories returning such functions): :func:`total_magnitude`,
:func:`bulge_to_total` and :func:`effective_radius` (half-light radius of the sum).
Magnitudes of one model share the zeropoint and EXPTIME, so flux ratios are
10^(-0.4 (m_i - m_j)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import torch

from ..profiles import get_profile
from ..special import gammainc_lower_regularized, sersic_b
from .bootstrap import summarise

_LN10_04 = 0.4 * math.log(10.0)


class Parameters:
    """Read-only view of (B, P) values by (1-based component, name).

    Attributes:
        values: (B, P) tensor.
        names: ((component, name), ...) of the P columns.
        profiles: profile name of each component (``sersic``, ``expdisk``, ...).
    """

    def __init__(self, values: torch.Tensor, names, profiles):
        self.values = values
        self.names = tuple(tuple(n) for n in names)
        self.profiles = tuple(profiles)

    def __getitem__(self, key) -> torch.Tensor:
        component, name = key
        try:
            return self.values[..., self.names.index((component, name))]
        except ValueError:
            raise KeyError(f"no parameter {name!r} in component {component}") from None

    def has(self, component: int, name: str) -> bool:
        return (component, name) in self.names

    def profile(self, component: int) -> str:
        return self.profiles[component - 1]

    @property
    def n_components(self) -> int:
        return len(self.profiles)


def _profiles(model) -> tuple:
    return tuple(c.profile for c in model.components)


def _luminous(p: Parameters, components) -> list[int]:
    if components is None:
        components = [c for c in range(1, p.n_components + 1) if p.has(c, "mag")]
    missing = [c for c in components if not p.has(c, "mag")]
    if missing:
        raise KeyError(f"components {missing} have no total magnitude 'mag'")
    if not components:
        raise KeyError("the model has no component with a total magnitude")
    return list(components)


def total_magnitude(components=None):
    """f(p) = -2.5 log10(sum_i 10^(-0.4 m_i)) [mag], the total magnitude of ``components``
    (1-based; default: every component with a ``mag``)."""
    def f(p: Parameters) -> torch.Tensor:
        mags = torch.stack([p[c, "mag"] for c in _luminous(p, components)], -1)
        return -torch.logsumexp(-_LN10_04 * mags, -1) / _LN10_04

    return f


def bulge_to_total(bulge: int = 1, components=None):
    """f(p) = F_bulge / sum_i F_i with F = 10^(-0.4 mag): the bulge-to-total flux ratio
    (``bulge`` 1-based; ``components``: the total's components, default every one with a
    ``mag``)."""
    def f(p: Parameters) -> torch.Tensor:
        comps = _luminous(p, components)
        mags = torch.stack([p[c, "mag"] for c in comps], -1)
        return torch.exp(-_LN10_04 * p[bulge, "mag"] - torch.logsumexp(-_LN10_04 * mags, -1))

    return f


def _sersic_like(p: Parameters, c: int):
    """(R_e along the major axis [pix], n) of a component, or None for a point source: its
    profile's :meth:`~galprof.profiles.base.Profile.sersic_equivalent`."""
    profile = p.profile(c)
    unsupported = KeyError(f"effective_radius: component {c} ({profile}) is not supported: its profile has no "
                           "Sérsic equivalent (sersic, devauc, expdisk, gaussian and psf have)")
    try:
        profile_class = get_profile(profile)
    except KeyError:
        raise unsupported from None
    try:
        return profile_class.sersic_equivalent(lambda name: p[c, name])
    except NotImplementedError:
        raise unsupported from None


def effective_radius(components=None, circularised: bool = False, iterations: int = 60):
    """f(p) = the half-light radius [pix] of the sum of ``components`` (intrinsic, before
    the PSF): the R with sum_i F_i P(2 n_i, b_i (R / R_i)^(1/n_i)) = sum_i F_i / 2.

    R_i is each component's R_e along its major axis (GALFIT's convention), so R is the
    semi-major axis of the half-light ellipse of the sum, exact when the components are
    concentric with one q and PA. With ``circularised``, R_i = R_e sqrt(q) and R is the
    circular half-light radius of the circularised components. Each profile gives its
    (R_e, n) (:meth:`~galprof.profiles.base.Profile.sersic_equivalent`): exponential
    disks have R_e = 1.678 r_s, Gaussians FWHM / 2; point sources count at R = 0.

    Solved by bisection in log R (no gradient), then one Newton step carrying the
    implicit-function gradient dR/dp = -(dG/dp) / (dG/dR).
    """
    def enclosed(p: Parameters, comps, radius: torch.Tensor) -> torch.Tensor:
        total = 0.0
        inside = 0.0
        for c in comps:
            flux = torch.exp(-_LN10_04 * p[c, "mag"])
            total = total + flux
            shape = _sersic_like(p, c)
            if shape is None:
                inside = inside + flux
                continue
            r_e, n = shape
            if circularised and p.has(c, "q"):
                q = p[c, "q"]
                r_e = r_e * torch.sqrt(torch.where(q > 1, 1.0 / q, q))
            b = sersic_b(n.to(torch.float64)).to(radius.dtype)
            x = b * (radius / r_e) ** (1.0 / n)
            inside = inside + flux * gammainc_lower_regularized(2.0 * n, x)
        return inside / total - 0.5

    def f(p: Parameters) -> torch.Tensor:
        comps = _luminous(p, components)
        sizes = [s[0] for s in (_sersic_like(p, c) for c in comps) if s is not None]
        if not sizes:
            return torch.zeros_like(p[comps[0], "mag"])
        with torch.no_grad():
            detached = Parameters(p.values.detach(), p.names, p.profiles)
            stack = torch.stack([s.detach() for s in sizes], -1)
            lo = torch.log(stack.amin(-1) * 1e-4)
            hi = torch.log(stack.amax(-1) * 1e4)
            for _ in range(iterations):
                mid = 0.5 * (lo + hi)
                below = enclosed(detached, comps, torch.exp(mid)) < 0
                lo = torch.where(below, mid, lo)
                hi = torch.where(below, hi, mid)
            root = torch.exp(0.5 * (lo + hi))
        r = root.clone().requires_grad_(True)
        with torch.enable_grad():
            g_r = torch.autograd.grad(enclosed(detached, comps, r).sum(), r)[0]
        return root - enclosed(p, comps, root) / g_r.detach()

    return f


@dataclass(frozen=True)
class DerivedEstimate:
    """A derived quantity for B galaxies (K values each).

    Attributes:
        value: (B, K) at the best fit (delta method) or the median of the samples.
        error: (B, K) standard deviation.
        covariance: (B, K, K) (delta method; None from samples).
        intervals: {level: ((B, K) low, (B, K) high)} percentile intervals (samples;
            the delta method gives value -+ z error).
    """

    value: np.ndarray
    error: np.ndarray
    covariance: np.ndarray | None
    intervals: dict


def _call(func, values: torch.Tensor, names, profiles) -> torch.Tensor:
    out = func(Parameters(values, names, profiles))
    return out[..., None] if out.ndim == values.ndim - 1 else out


def delta_method(func, values, covariance, names, profiles, levels=(0.68, 0.95)) -> DerivedEstimate:
    """Propagate a (B, P, P) covariance through ``func`` to first order.

    Args:
        func: f(Parameters) -> (B,) or (B, K) tensor (batch first; galaxies independent).
        values: (B, P) best-fit values in user units.
        covariance: (B, P, P) their covariance (NaN rows propagate to NaN errors).
        names, profiles: column names ((component, name), ...) and component profile names.
    """
    v = torch.as_tensor(np.asarray(values, dtype=np.float64)).clone().requires_grad_(True)
    out = _call(func, v, names, profiles)
    rows = []
    for k in range(out.shape[-1]):  # galaxies are independent: d sum_b f_bk / d v = rows of G
        rows.append(torch.autograd.grad(out[:, k].sum(), v, retain_graph=True, allow_unused=True)[0]
                    if out.requires_grad else torch.zeros_like(v))
    grad = torch.stack([r if r is not None else torch.zeros_like(v) for r in rows], 1).detach().numpy()  # (B, K, P)
    cov = np.asarray(covariance, dtype=np.float64)
    # fixed parameters have zero variance: leave their (zero) columns out of the product
    used = np.any(grad != 0, axis=(0, 1))
    g = grad[:, :, used]
    c = cov[:, used][:, :, used]
    cov_f = np.einsum("bkp,bpq,blq->bkl", g, c, g)
    value = out.detach().numpy()
    error = np.sqrt(np.diagonal(cov_f, axis1=1, axis2=2))
    intervals = {float(lv): (value - NormalDist().inv_cdf(0.5 + lv / 2) * error,
                             value + NormalDist().inv_cdf(0.5 + lv / 2) * error)
                 for lv in levels}
    return DerivedEstimate(value, error, cov_f, intervals)


def from_samples(func, samples, names, profiles, levels=(0.68, 0.95)) -> DerivedEstimate:
    """``func`` applied to (S, B, P) samples (bootstrap replicates or posterior draws; NaN
    rows are skipped): median, standard deviation and percentile intervals."""
    s = torch.as_tensor(np.asarray(samples, dtype=np.float64))
    n_s, bsz, n_p = s.shape
    with torch.no_grad():
        out = _call(func, s.reshape(n_s * bsz, n_p), names, profiles).reshape(n_s, bsz, -1)
    bad = ~torch.isfinite(s).all(-1, keepdim=True)
    out = torch.where(bad, torch.full_like(out, float("nan")), out)
    std, intervals = summarise(out, levels)
    return DerivedEstimate(torch.nanmedian(out, 0).values.numpy(), std, None, intervals)


def derived(func, result, *, samples=None, scaled: bool = False, levels=(0.68, 0.95)) -> DerivedEstimate:
    """A derived quantity of a :class:`galprof.FitResult`: from ``samples`` (a
    :class:`~galprof.uncertainty.BootstrapResult` or
    :class:`~galprof.uncertainty.PosteriorSamples`, or an (S, B, P) array) when given,
    else by the delta method with the fit's covariance (times chi2_nu if ``scaled``)."""
    profiles = _profiles(result.model)
    if samples is not None:
        draws = getattr(samples, "replicates", None)
        if draws is None:
            draws = getattr(samples, "samples", samples)
        return from_samples(func, draws, result.names, profiles, levels)
    cov = np.asarray(result.parameter_covariance)
    if scaled:
        cov = cov * np.asarray(result.chi2_nu)[:, None, None]
    return delta_method(func, result.values, cov, result.names, profiles, levels)
