"""Bootstrap errors: resample the pixels with replacement and refit, batched on the device.

For each galaxy with n usable pixels (unmasked, finite data and sigma > 0), a replicate
draws n pixels with replacement; pixel i drawn c_i times (multinomial counts, sum c_i =
n) enters the replicate's chi^2 with weight c_i::

    chi^2_rep = sum_i c_i ((data_i - model_i) / sigma_i)^2

i.e. the residual is multiplied by sqrt(c_i) (sigma_i / sqrt(c_i) is passed to the fit),
never by c_i (which would weight a pixel by its count squared). Pixels with c_i = 0 are
left out. Every replicate is refitted from the best fit with the batched optimiser: the
replicates are an extra batch dimension (replicate r of galaxy b is row r * B + b of one
:func:`galprof.fit` call; ``max_batch`` rows per call at most). The counts are drawn
from a seeded ``torch.Generator`` on the CPU, so a seed gives the same replicates on
every device.

The bootstrap assumes independent pixels: like the covariance it underestimates the
errors for correlated noise (see docs/uncertainties.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..constraints import FactorRange, Range, RelativeRange
from ..fitting import fit
from ..model import Model, ModelError
from .summary import SampleSummary

#: keyword arguments of :func:`galprof.fit` that hold one value per galaxy when they are arrays
_PER_GALAXY = ("zeropoint", "exptime", "region_sizes")


@dataclass(frozen=True)
class BootstrapResult(SampleSummary):
    """Bootstrap estimate for a batch of B galaxies and N replicates.

    Attributes:
        names: ((component, 1-based), parameter name) for each of the P columns, as in
            :class:`galprof.FitResult`.
        best: (B, P) the best fit the replicates started from.
        replicates: (N, B, P) refitted values in user units (PA and Fourier phases
            unwrapped to lie within half a period of the best fit); NaN for a replicate
            whose fit failed.
        converged: (N, B) bool.
        std: (B, P) standard deviation of the replicates (ddof = 1): the bootstrap errors.
        intervals: {level: ((B, P) low, (B, P) high)} percentile intervals, central, e.g.
            level 0.68 -> the 16th and 84th percentiles.
        seed: the seed used (None: drawn from the OS).
    """

    names: tuple
    best: np.ndarray
    replicates: np.ndarray
    converged: np.ndarray
    std: np.ndarray
    intervals: dict
    seed: int | None

    @property
    def n_replicates(self) -> int:
        return self.replicates.shape[0]


def resample_counts(usable: torch.Tensor, n_replicates: int, generator: torch.Generator) -> torch.Tensor:
    """Multinomial bootstrap counts: (B, H, W) bool usable pixels -> (N, B, H, W) float64.

    Galaxy b's n_b usable pixels are drawn n_b times with replacement (uniformly), in
    every replicate; unusable pixels get 0. Draws use ``generator`` (a CPU generator), so
    the counts do not depend on the device.
    """
    usable = usable.detach().to("cpu", torch.bool)
    bsz = usable.shape[0]
    flat = usable.reshape(bsz, -1)
    n_pix = flat.shape[1]
    n_use = flat.sum(-1)  # (B,)
    if bool((n_use == 0).any()):
        raise ModelError(f"galaxy {int(torch.nonzero(n_use == 0)[0])} has no usable pixel to resample")
    # the usable pixels' flat indices first, in order
    order = torch.argsort((~flat).to(torch.int8), dim=-1, stable=True)
    most = int(n_use.max())
    u = torch.rand(n_replicates, bsz, most, generator=generator, dtype=torch.float64)
    pick = torch.minimum((u * n_use[None, :, None]).long(), (n_use - 1)[None, :, None])
    pixel = torch.gather(order[None].expand(n_replicates, -1, -1), 2, pick)
    valid = (torch.arange(most)[None, None, :] < n_use[None, :, None]).to(torch.float64).expand_as(pixel)
    counts = torch.zeros(n_replicates, bsz, n_pix, dtype=torch.float64).scatter_add_(2, pixel, valid)
    return counts.reshape(n_replicates, *usable.shape)


def _absolute_constraints(model: Model) -> tuple:
    """Relative ranges (relative to each galaxy's *initial* value) as absolute ranges (one
    per galaxy where the starts differ), so that a refit started from the best fit keeps
    the original range."""
    out = []
    for c in model.constraints:
        if isinstance(c, (RelativeRange, FactorRange)):
            start = np.asarray(model.components[c.component - 1].values[c.name], dtype=np.float64)
            if isinstance(c, FactorRange):
                low, high = start / np.asarray(c.factor), start * np.asarray(c.factor)
            else:
                low, high = start + np.asarray(c.below), start + np.asarray(c.above)
            low, high = np.broadcast_arrays(low, high)
            out.append(Range(c.component, c.name, low, high))
        else:
            out.append(c)
    return tuple(out)


def _periods(names) -> np.ndarray:
    """(P,) period [deg] of angle parameters (PA: 180; Fourier phase of mode m: 360/m), 0 otherwise."""
    out = np.zeros(len(names))
    for j, (_, name) in enumerate(names):
        if name == "pa":
            out[j] = 180.0
        elif name.startswith("f") and name.endswith("_phase"):
            out[j] = 360.0 / int(name[1:-len("_phase")])
    return out


def unwrap_angles(values: np.ndarray, reference: np.ndarray, names) -> np.ndarray:
    """Angles of ``values`` (..., B, P) moved by whole periods to within half a period of
    ``reference`` (B, P), so that a PA near +-90 deg gives a sensible scatter."""
    period = _periods(names)
    out = np.array(values, dtype=np.float64, copy=True)
    cols = np.flatnonzero(period > 0)
    if cols.size:
        p = period[cols]
        delta = out[..., cols] - reference[..., cols]
        out[..., cols] = reference[..., cols] + (delta + p / 2) % p - p / 2
    return out


def summarise(samples: torch.Tensor, levels=(0.68, 0.95)):
    """(S, B, P) samples (NaN = missing) -> ((B, P) std (ddof 1), {level: (low, high)}),
    computed on the samples' device."""
    finite = torch.isfinite(samples)
    count = finite.sum(0).to(samples.dtype)
    zeroed = torch.where(finite, samples, torch.zeros_like(samples))
    mean = zeroed.sum(0) / count.clamp(min=1)
    var = (torch.where(finite, samples - mean, torch.zeros_like(samples)) ** 2).sum(0) / (count - 1).clamp(min=1)
    std = torch.where(count > 1, var.sqrt(), torch.full_like(var, float("nan")))
    intervals = {}
    for level in levels:
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=samples.dtype, device=samples.device)
        bounds = torch.nanquantile(samples, q, dim=0)
        intervals[float(level)] = (bounds[0].cpu().numpy(), bounds[1].cpu().numpy())
    return std.cpu().numpy(), intervals


def _tile(value, n: int, bsz: int):
    """A per-galaxy fit argument repeated for n replicates (replicate-major)."""
    arr = np.asarray(value)
    if arr.ndim >= 1 and arr.shape[0] == bsz:
        return np.concatenate([arr] * n, axis=0)
    return value


def bootstrap(model: Model, result, image, *, sigma=None, mask=None, psf=None, n_replicates: int = 100,
              seed: int | None = None, levels=(0.68, 0.95), max_batch: int = 512, n_starts: int = 1,
              **fit_options) -> BootstrapResult:
    """Bootstrap errors for every galaxy of a fit: resample pixels, refit, take the scatter.

    Args:
        model: the model that was fitted (its constraints are kept; starts are the best fit).
        result: the :class:`galprof.FitResult` of ``fit(model, image, ...)``.
        image, sigma, mask, psf: as passed to :func:`galprof.fit` ((H, W) or (B, H, W);
            sigma None means unit weights).
        n_replicates: N, bootstrap replicates per galaxy (>= 2).
        seed: integer seed: the same seed gives the same replicates (on any device).
        levels: central percentile-interval levels to report.
        max_batch: rows (replicates x galaxies) per fit call at most (memory).
        n_starts: starts per replicate (1: the best fit only).
        **fit_options: the other keyword arguments given to :func:`galprof.fit`
            (``psf_oversampling``, ``origin``, ``zeropoint``, ``exptime``, ``region_sizes``,
            ``config``, ``dtype``, ``device``, ``pixel_scale``, ``lm_settings``, ...).
            ``statistic`` must be None: the count weights are chi^2 weights.

    Returns:
        a :class:`BootstrapResult`.
    """

    if fit_options.get("statistic") is not None:
        raise ModelError("the bootstrap works with chi^2 only (its counts are chi^2 weights), not with "
                         "a PixelStatistic")
    fit_options.pop("statistic", None)
    for key in ("staged", "retries"):
        fit_options.pop(key, None)
    n = int(n_replicates)
    if n < 2:
        raise ModelError(f"the bootstrap needs at least 2 replicates, got {n_replicates}")
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    bsz = img.shape[0]
    if result.batch_size != bsz:
        raise ModelError(f"the fit result has {result.batch_size} galaxies but {bsz} images were given")
    sig = np.ones_like(img) if sigma is None else np.broadcast_to(np.asarray(sigma, dtype=np.float64), img.shape)
    bad = np.zeros(img.shape, dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask) != 0, img.shape)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(img) & np.isfinite(sig) & (sig > 0) & ~bad
    region_sizes = fit_options.get("region_sizes")
    if region_sizes is not None:
        sizes = np.asarray(region_sizes, dtype=np.int64).reshape(bsz, 2)
        usable &= ((np.arange(img.shape[2])[None, None, :] < sizes[:, 0, None, None])
                   & (np.arange(img.shape[1])[None, :, None] < sizes[:, 1, None, None]))
    generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed()))
    counts = resample_counts(torch.as_tensor(usable), n, generator).numpy()  # (N, B, H, W)

    constraints = _absolute_constraints(model)
    # a tie's constant comes from each row's start (the best fit, which keeps the
    # galaxy's own initial offset or ratio); per-galaxy constraint numbers follow the rows
    groups = [list(range(bsz))]
    replicates = np.full((n, bsz, len(result.names)), np.nan)
    converged = np.zeros((n, bsz), dtype=bool)
    safe_img = np.where(usable, img, 0.0)
    safe_sig = np.where(usable, sig, 1.0)
    for galaxies in groups:
        g = np.asarray(galaxies)
        per_call = max(1, max_batch // len(g))
        for r0 in range(0, n, per_call):
            r1 = min(n, r0 + per_call)
            k = r1 - r0
            c = counts[r0:r1][:, g]  # (k, b, H, W)
            values = np.concatenate([result.values[g]] * k, axis=0)  # (k b, P)
            comps = []
            for ci, comp in enumerate(model.components):
                vals = {name: values[:, result.column(ci + 1, name)] for name in comp.values}
                comps.append(replace(comp, values=vals))
            rows = np.tile(g, k)  # row r * len(g) + j is galaxy g[j]
            start = Model(tuple(comps), tuple(c.select(rows) for c in constraints))
            options = dict(fit_options)
            for key in _PER_GALAXY:
                if key in options and options[key] is not None:
                    options[key] = _tile(np.asarray(options[key])[g] if np.ndim(options[key]) >= 1
                                         and np.shape(options[key])[0] == bsz else options[key], k, len(g))
            boot_psf = psf
            if psf is not None and (isinstance(psf, (list, tuple)) or np.ndim(psf) == 3):
                boot_psf = [psf[b] for b in g] * k
            shape = (k * len(g),) + img.shape[1:]
            weights_sigma = np.where(c > 0, safe_sig[g][None] / np.sqrt(np.maximum(c, 1.0)), 1.0).reshape(shape)
            out = fit(start, np.broadcast_to(safe_img[g][None], c.shape).reshape(shape), sigma=weights_sigma,
                      mask=(c == 0).reshape(shape), psf=boot_psf, staged=False, retries=0, n_starts=n_starts,
                      **options)
            vals = out.values.reshape(k, len(g), -1)
            ok = np.isfinite(out.chi2).reshape(k, len(g)) & np.isfinite(vals).all(-1)
            replicates[r0:r1, g] = np.where(ok[..., None], vals, np.nan)
            converged[r0:r1, g] = out.converged.reshape(k, len(g)) & ok
    replicates = unwrap_angles(replicates, result.values, result.names)
    std, intervals = summarise(torch.as_tensor(replicates), levels)
    return BootstrapResult(tuple(result.names), np.asarray(result.values), replicates, converged, std, intervals,
                           seed)
