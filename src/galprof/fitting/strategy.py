"""How a batch is fitted: stages, starts, retries and restarts near the fit.

Every LM step of every fit stays inside a trust region scaled to the image
(:meth:`galprof.fitting.layout.ParameterLayout.step_limits`). A model with one luminous
component is fitted first with every free Sersic index held at its start (a few LM
steps that settle position, brightness and size), then in full; a model with two or
more luminous components in full from the start (:func:`luminous_components`).
Several starts per galaxy (``n_starts``) run as rows of one batch; galaxies whose fit
lost a component (switched off, a centre off the fit region, a shape on its bound:
:func:`_lost_components`, the tests of :mod:`galprof.fitting.flags`) get ``retries``
rounds of further starts, the lost components re-centred on the strongest remaining
one; multi-component models with a free Sersic index are restarted near their best
fit (:data:`PERTURBATIONS`) where a component with a free index is nested in another
(:func:`restart_components`). Each galaxy keeps the attempt with the lowest chi^2. The
batch is split among CPU workers (:mod:`galprof.fitting.workers`) once, around all of
it. Positions are 1-based pixels, PA in degrees counter-clockwise from +y.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from ..model import Model
from ..optimise.adam import adam_fit
from ..optimise.lm import LMOutcome, LMSettings, levenberg_marquardt
from ..optimise.problem import BatchProblem
from ..profiles.base import EllipticalProfile
from .flags import EDGE_MARGIN, component_signal, vanished_components
from .functions import ModelFunctions
from .layout import ParameterLayout
from .workers import (
    MIN_ROWS_PER_PROCESS,
    MIN_ROWS_PER_THREAD,
    cpu_worker_parts,
    solve_in_processes,
    solve_in_threads,
)

#: relative chi^2 decrease below which stage 1 (Sersic indices held) stops early: it only
#: brings size, flux and shape near the valley, so it need not converge (1e-2 instead of
#: 1e-4 reaches the same minima with 7-12 % fewer iterations; bench/RESULTS.md, issue 23)
STAGE_FTOL = 1e-2
#: where stage 2 restarts a bounded coordinate that stage 1 left on its bound: |theta| of
#: the logistic transform, 4.7 % of the range from the bound (in log for log-scaled
#: ones), where the transform still responds (farther out, the restarted coordinate
#: needs more iterations to leave the bound; restarting from the initial value instead
#: can send a boxy galaxy with a lopsided mode to the opposite mode).
STAGE_BOUND_LOGIT = 3.0

_START_N = (None, 1.0, 4.0, 2.0, 0.6, 6.0)
_START_SIZE = (1.0, 0.6, 1.7, 1.0, 1.3, 0.8)
#: besides every size (ParameterSpec.is_size): parameters whose ending on a bound
#: triggers further starts: the axis ratio, boxiness and every shape index (Sersic n;
#: Ferrer, Nuker, Core-Sersic and King alpha, beta, gamma; Moffat beta). A Ferrer bar's
#: alpha runs along its valley with r_out to its bound from most bar + disk starts
#: (bench/RESULTS.md, issue 21)
_RETRY_SHAPES = ("n", "q", "c0", "alpha", "beta", "gamma")
#: the starts near a multi-component fit (:func:`starts_near_fit`): (factor on every free
#: size, factor on the Sersic index, change of the magnitude [mag]) of each component
#: with a free Sersic index
PERTURBATIONS = ((2.0, 1.6, -0.4), (0.5, 1.0 / 1.6, 0.4))


def _retry_parameter(layout: ParameterLayout, i: int) -> bool:
    e = layout.entries[i]
    spec = layout.model.components[e.component].profile_class.spec(e.name)
    return e.name in _RETRY_SHAPES or spec.is_size or e.from_constraint


_START_FRACTION = (0.5, 0.5, 0.25, 0.75, 0.1, 0.9)


def _clip_inside_bounds(layout: ParameterLayout, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values`` (r, P) of the galaxies ``rows`` (r,) with every free parameter moved just
    inside its bounds (each galaxy's own; in place)."""
    low, high = layout.coordinate_bounds(rows)
    for k, i in enumerate(layout.free_index):
        if not layout.entries[i].free:
            continue
        lo, hi = low[:, k], high[:, k]
        finite = np.isfinite(lo) & np.isfinite(hi)
        if not finite.any():
            continue
        with np.errstate(invalid="ignore"):
            span = hi - lo
            clipped = np.clip(values[:, i], lo + 1e-6 * span, hi - 1e-6 * span)
        values[:, i] = np.where(finite, clipped, values[:, i])
    return values


def _start_variants(layout: ParameterLayout, values: np.ndarray, n_starts: int, rows: np.ndarray) -> np.ndarray:
    """(B * n_starts, P) starting points of the galaxies ``rows`` (B,) from their starts
    ``values`` (B, P): the given start first, then variants of n and size."""
    starts = [values]
    for k in range(1, n_starts):
        v = values.copy()
        for ci, comp in enumerate(layout.model.components):
            if not issubclass(comp.profile_class, EllipticalProfile):
                continue
            for spec in comp.profile_class.parameters:
                if spec.is_size and spec.name not in comp.fixed:
                    v[:, layout.index(ci, spec.name)] *= _START_SIZE[k % len(_START_SIZE)]
            if "n" in comp.profile_class.staged and "n" not in comp.fixed:
                n_value = _START_N[k % len(_START_N)]
                if n_value is not None:
                    v[:, layout.index(ci, "n")] = n_value
        _clip_inside_bounds(layout, v, rows)
        # coordinates bounded by a constraint start at a different point of their range
        coords = layout.free_coordinates(torch.as_tensor(v))
        fraction = _START_FRACTION[k % len(_START_FRACTION)]
        low, high = layout.coordinate_bounds(rows)
        for j, i in enumerate(layout.free_index):
            e = layout.entries[i]
            if e.from_constraint:
                if np.ndim(e.low) == 0 and np.ndim(e.high) == 0:  # one range for the batch
                    lo, hi = e.low, e.high
                    if e.scale == "log":
                        coords[:, j] = math.exp(math.log(lo) + fraction * (math.log(hi) - math.log(lo)))
                    else:
                        coords[:, j] = lo + fraction * (hi - lo)
                    continue
                lo, hi = low[:, j], high[:, j]  # each galaxy's own range
                if e.scale == "log":
                    coords[:, j] = torch.as_tensor(np.exp(np.log(lo) + fraction * (np.log(hi) - np.log(lo))))
                else:
                    coords[:, j] = torch.as_tensor(lo + fraction * (hi - lo))
        v = layout.from_free_coordinates(coords, torch.as_tensor(v), _layout_rows(layout, rows)).numpy()
        starts.append(v)
    return np.concatenate(starts, axis=0)


def _layout_rows(layout: ParameterLayout, rows) -> torch.Tensor | None:
    """``rows`` as the CPU index tensor the layout's transforms take (None when its
    bounds and tie constants are the same for every galaxy)."""
    if layout.batch_size is None:
        return None
    return torch.as_tensor(np.asarray(rows.cpu() if torch.is_tensor(rows) else rows, dtype=np.int64))


def without_free_index(model: Model) -> Model | None:
    """The model with every free Sersic index held fixed, or None if none is free."""
    comps, changed = [], False
    for comp in model.components:
        if "n" in comp.profile_class.staged and "n" not in comp.fixed:
            comps.append(replace(comp, fixed=comp.fixed | {"n"}))
            changed = True
        else:
            comps.append(comp)
    return Model(tuple(comps), model.constraints) if changed else None


def luminous_components(layout: ParameterLayout) -> list[int]:
    """The non-sky components with at least one parameter that varies (free, tied or
    coupled): the components a fit can lose."""
    varying = {layout.entries[i].component for i in layout.varying_index}
    return [ci for ci, comp in enumerate(layout.model.components)
            if comp.profile_class.kind != "sky" and ci in varying]


#: a component with a free Sersic index is restarted near the fit only where another
#: luminous component's fitted centre lies within this distance [pix] of its own, or
#: within the smaller of the two components' sizes (a bulge or bar inside its disk; not
#: separate galaxies in one field, nor neighbours 1 R_e apart or more)
NEST_RADIUS_PX = 2.0


def _size_column(layout: ParameterLayout, ci: int) -> int | None:
    """The value column of component ``ci``'s first size parameter (R_e, R_s, r_out, ...)."""
    for spec in layout.model.components[ci].profile_class.parameters:
        if spec.is_size and (ci, spec.name) in layout.names:
            return layout.index(ci, spec.name)
    return None


def restart_components(layout: ParameterLayout, values: np.ndarray) -> np.ndarray:
    """(r, C) bool over the model's components: which components of the fits ``values``
    (r, P; user units, 1-based pixel centres) :func:`starts_near_fit` perturbs: luminous
    components (:func:`luminous_components`) with a free Sersic index whose fitted centre
    lies within max(:data:`NEST_RADIUS_PX`, the smaller of the two sizes) [pix] of another
    luminous component's (nested light profiles, whose index, size and flux split have
    nearby minima). A galaxy with none is not restarted."""
    comps = layout.model.components
    rows = values.shape[0]
    out = np.zeros((rows, len(comps)), dtype=bool)
    lit = [ci for ci in luminous_components(layout)
           if (ci, "x") in layout.names and (ci, "y") in layout.names]
    for ci in lit:
        if "n" not in comps[ci].profile_class.staged or "n" in comps[ci].fixed:
            continue
        xi, yi = values[:, layout.index(ci, "x")], values[:, layout.index(ci, "y")]
        size_i = _size_column(layout, ci)
        for cj in lit:
            if cj == ci:
                continue
            distance = np.hypot(values[:, layout.index(cj, "x")] - xi, values[:, layout.index(cj, "y")] - yi)
            size_j = _size_column(layout, cj)
            reach = np.full(rows, NEST_RADIUS_PX)
            if size_i is not None and size_j is not None:
                smaller = np.minimum(np.abs(values[:, size_i]), np.abs(values[:, size_j]))
                reach = np.maximum(reach, np.where(np.isfinite(smaller), smaller, 0.0))
            out[:, ci] |= distance < reach
    return out


def starts_near_fit(layout: ParameterLayout, values: np.ndarray, rows: np.ndarray,
                    components: np.ndarray | None = None) -> np.ndarray:
    """(len(PERTURBATIONS) * r, P) starts near the fits ``values`` (r, P) of the galaxies
    ``rows`` (r,): the components ``components`` ((r, C) bool; default
    :func:`restart_components`) made larger, steeper and brighter, and smaller, shallower
    and fainter (:data:`PERTURBATIONS`), the other parameters as fitted."""
    if components is None:
        components = restart_components(layout, values)
    starts = []
    for size_factor, n_factor, dmag in PERTURBATIONS:
        v = values.copy()
        for ci, comp in enumerate(layout.model.components):
            profile = comp.profile_class
            pick = components[:, ci]
            if "n" not in profile.staged or "n" in comp.fixed or not pick.any():
                continue
            v[pick, layout.index(ci, "n")] *= n_factor
            for spec in profile.parameters:
                if spec.is_size and spec.name not in comp.fixed:
                    v[pick, layout.index(ci, spec.name)] *= size_factor
            amplitude = profile.amplitude
            if amplitude is not None and amplitude not in comp.fixed and profile.spec(amplitude).unit.startswith("mag"):
                v[pick, layout.index(ci, amplitude)] += dmag
        starts.append(_clip_inside_bounds(layout, v, rows))
    return np.concatenate(starts, axis=0)


def has_perturbed_starts(layout: ParameterLayout) -> bool:
    """True when :func:`fit` restarts galaxies near their fit by default: a model with
    at least two luminous components (:func:`luminous_components`), one of them with a
    free Sersic index (bulge + disk: the index, size and flux split of the bulge have
    nearby minima that no local step leaves). Which galaxies and components are
    restarted follows from their fits (:func:`restart_components`)."""
    comps = layout.model.components
    return len(luminous_components(layout)) >= 2 and any(
        "n" in comps[ci].profile_class.staged and "n" not in comps[ci].fixed for ci in luminous_components(layout))


def _reseeded_starts(layout: ParameterLayout, initial: np.ndarray, fitted: np.ndarray, lost: np.ndarray,
                     signal: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(r, P) starts for the galaxies ``rows`` (r,) whose fit lost a component: the given
    start ``initial`` (r, P), with every lost component (``lost`` (r, C) over the model's components)
    centred on the fitted centre (``fitted`` (r, P)) of the galaxy's strongest component
    that was not lost (``signal`` (r, C), the matched-filter signal of each component)."""
    v = initial.copy()
    strength = np.where(lost | ~np.isfinite(signal), -np.inf, signal)
    anchor = np.where(np.isfinite(strength.max(-1)), strength.argmax(-1), -1)  # -1: every component lost
    names = layout.names
    for ci in range(len(layout.model.components)):
        for axis in ("x", "y"):
            if (ci, axis) not in names:
                continue
            column = layout.index(ci, axis)
            anchor_value = np.full(v.shape[0], np.nan)
            for cj in range(len(layout.model.components)):
                if (cj, axis) in names:
                    pick = anchor == cj
                    anchor_value[pick] = fitted[pick, layout.index(cj, axis)]
            move = lost[:, ci] & np.isfinite(anchor_value)
            v[move, column] = anchor_value[move]
    return _clip_inside_bounds(layout, v, rows)


def _optimise_part(layout: ParameterLayout, initial: np.ndarray, galaxies: torch.Tensor, *, frame, psf, config,
                   data, method, n_starts, retries, perturbed_starts, lm_settings, adam_settings, dtype, report,
                   statistic=None, unit_weights=False):
    """Run the optimiser from ``initial`` (b, P) values for the galaxies ``galaxies`` (b,)
    (indices into the prepared batch), in this thread; keep the best attempt per galaxy:
    the ``n_starts`` starts of each, ``retries`` rounds of further starts for galaxies
    whose fit lost a component (:func:`_lost_components`), then, with
    ``perturbed_starts``, two starts near the best fit of each galaxy with nested
    components (:func:`restart_components`, :func:`starts_near_fit`). All of a round's
    starts are rows of one batch.

    Returns (theta (b, F), values (b, P) holding the fixed parameters, chi2 (b,),
    iterations (b,): summed over every attempt, converged (b,)).
    """
    bsz = initial.shape[0]
    device_ = data.data.device
    natural_limits = layout.step_limits()  # on the host: no synchronisation per iteration

    per_galaxy = layout.batch_size is not None  # bounds or tie constants differ per galaxy

    def solve(start_values: np.ndarray, local: torch.Tensor):
        """Optimise from (r, P) starting values for the galaxies ``local`` (r,) of this part."""
        galaxy = galaxies[local]
        fixed = torch.as_tensor(start_values, dtype=torch.float64, device=device_)
        functions = ModelFunctions(layout, fixed, frame, psf, config, internal=True, galaxies=galaxy)
        problem = BatchProblem(functions.render, data.data[galaxy], data.weight[galaxy], functions.jacobian,
                               statistic)
        theta0 = layout.to_internal(fixed, galaxy if per_galaxy else None)

        def step_limits(theta: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return layout.theta_step_limits(theta, natural_limits, galaxy[index] if per_galaxy else None)

        if method == "lm":
            out = levenberg_marquardt(problem, theta0, lm_settings, dtype, report, step_limits)
        elif method == "adam":
            out = adam_fit(problem, theta0, adam_settings, dtype, report)
        else:
            raise ValueError(f"unknown method {method!r}; use 'lm' or 'adam'")
        return fixed, out

    local_all = torch.arange(bsz, device=device_).repeat(n_starts)
    galaxies_np = galaxies.cpu().numpy()
    fixed_all, outcome = solve(_start_variants(layout, initial, n_starts, galaxies_np), local_all)
    best_chi2 = torch.full((bsz,), float("inf"), dtype=torch.float64, device=device_)
    best_theta = torch.zeros(bsz, layout.n_free, dtype=torch.float64, device=device_)
    best_fixed = torch.as_tensor(initial, dtype=torch.float64, device=device_).clone()
    iterations = torch.zeros(bsz, dtype=torch.long, device=device_)
    converged_best = torch.zeros(bsz, dtype=torch.bool, device=device_)

    best_score = torch.full((bsz,), float("inf"), dtype=torch.float64, device=device_)

    def merge(local, fixed, out):
        """Keep, per galaxy, the attempt with the lowest finite chi^2 (vectorised); an
        attempt that met the stopping test wins over one that did not (max iterations)
        whose chi^2 is lower by less than the LM's tolerance (``ftol`` chi^2, at least
        ``chi2_tolerance``)."""
        chi = torch.where(torch.isfinite(out.chi2), out.chi2, torch.full_like(out.chi2, float("inf")))
        tolerance = torch.clamp(lm_settings.ftol * chi, min=lm_settings.chi2_tolerance)
        score = torch.where(out.converged & torch.isfinite(chi), chi - tolerance, chi)
        lowest = torch.full_like(best_score, float("inf")).scatter_reduce(0, local, score, "amin")
        rows = torch.nonzero((score == lowest[local]) & (score < best_score[local])).squeeze(-1)
        target = local[rows]
        best_score[target] = score[rows]
        best_chi2[target] = chi[rows]
        best_theta[target] = out.theta[rows]
        best_fixed[target] = fixed[rows]
        converged_best[target] = out.converged[rows]
        iterations.index_add_(0, local, out.iterations)

    merge(local_all, fixed_all, outcome)
    # galaxies whose fit lost a component (switched off, pushed off the region, a shape on
    # its bound: LM from a poor start can run off to n -> 10 or R_e -> huge, and the bound
    # transform is flat there) get further starts: the given start with the lost
    # components re-centred on the strongest remaining one, then variants of n and size;
    # the lowest chi^2 wins
    shape_cols = [k for k, i in enumerate(layout.free_index) if _retry_parameter(layout, i)]
    for attempt in range(1, retries + 1):
        lost, signal = _lost_components(layout, best_theta, best_fixed, best_chi2, galaxies, shape_cols,
                                        frame=frame, psf=psf, config=config, data=data, dtype=dtype,
                                        statistic=statistic, unit_weights=unit_weights,
                                        pass_size=lm_settings.pass_size)
        redo = torch.nonzero(lost.any(-1)).squeeze(-1)  # one host synchronisation per round
        if redo.numel() == 0:
            break
        redo_np = redo.cpu().numpy()
        rows = galaxies[redo]
        fitted = layout.to_user(best_theta[redo], best_fixed[redo], rows if per_galaxy else None).cpu().numpy()
        starts = _start_variants(layout, initial[redo_np], n_starts + 2 * attempt, galaxies_np[redo_np])[
            redo.numel() * (n_starts + 2 * (attempt - 1)):]
        if attempt == 1 and len(luminous_components(layout)) >= 2:
            reseeded = _reseeded_starts(layout, initial[redo_np], fitted, lost[redo].cpu().numpy(),
                                        signal[redo].cpu().numpy(), galaxies_np[redo_np])
            starts = np.concatenate([reseeded, starts], axis=0)
        local_redo = redo.repeat(starts.shape[0] // redo.numel())
        fixed_r, out_r = solve(starts, local_redo)
        merge(local_redo, fixed_r, out_r)
    if perturbed_starts and layout.n_free:
        fitted = layout.to_user(best_theta, best_fixed, galaxies if per_galaxy else None).cpu().numpy()
        which = restart_components(layout, fitted)
        restarted = np.flatnonzero(which.any(-1))  # galaxies with nested components only
        if restarted.size:
            starts = starts_near_fit(layout, fitted[restarted], galaxies_np[restarted], which[restarted])
            local_p = torch.as_tensor(restarted, device=device_).repeat(len(PERTURBATIONS))
            fixed_p, out_p = solve(starts, local_p)
            merge(local_p, fixed_p, out_p)
    return best_theta, best_fixed, best_chi2, iterations, converged_best


def _lost_components(layout: ParameterLayout, theta: torch.Tensor, fixed: torch.Tensor, chi2: torch.Tensor,
                     galaxies: torch.Tensor, shape_cols: list[int], *, frame, psf, config, data, dtype, statistic,
                     unit_weights: bool, pass_size: int):
    """Which components each fit (theta (b, F), ``fixed`` (b, P)) of the galaxies
    ``galaxies`` (b,) lost, as :func:`galprof.fit` flags them: vanished
    (:func:`galprof.fitting.flags.vanished_components`), a centre off the fit region
    (within :data:`galprof.fitting.flags.EDGE_MARGIN` [pix] of its edge or beyond), or
    a retried shape coordinate (``shape_cols``: n, sizes, q, constrained ones) on its bound.

    Returns ((b, C) bool over the model's components, (b, C) float64 matched-filter
    signal [sigma] of each component (NaN for the sky)). Batched: one render of the b fits
    (``pass_size`` galaxies at a time).
    """
    bsz, n_comp = theta.shape[0], len(layout.model.components)
    device_ = theta.device
    lost = torch.zeros(bsz, n_comp, dtype=torch.bool, device=device_)
    signal_all = torch.full((bsz, n_comp), float("nan"), dtype=torch.float64, device=device_)
    if bsz == 0 or layout.n_free == 0:
        return lost, signal_all
    if shape_cols:
        on_bound = layout.at_bound(theta)
        for ci in range(n_comp):
            cols = [k for k in shape_cols if layout.entries[layout.free_index[k]].component == ci]
            if cols:
                lost[:, ci] |= on_bound[:, cols].any(-1)
    lit = [ci for ci, comp in enumerate(layout.model.components) if comp.profile_class.kind != "sky"]
    if not lit:
        return lost, signal_all
    functions = ModelFunctions(layout, fixed, frame, psf, config, internal=True, galaxies=galaxies)
    values = layout.to_user(theta, fixed, galaxies if layout.batch_size is not None else None)
    signals = []
    with torch.no_grad():
        for part in torch.split(torch.arange(bsz, device=device_), pass_size):  # bounded temporaries
            parts = functions.render_parts(theta[part].to(dtype), part)
            weight = data.weight[galaxies[part]]
            if statistic is not None:
                weight = statistic.fisher_scale(parts.total(), weight > 0)
            signals.append(component_signal(parts.unit_images, parts.amplitudes, weight))
            del parts
    signal = torch.cat(signals)
    ndof = (data.n_pixels[galaxies].to(torch.float64) - layout.n_free).clamp(min=1.0)
    noise = torch.sqrt(chi2 / ndof) if unit_weights else torch.ones_like(chi2)
    noise = torch.where(torch.isfinite(noise), noise, torch.full_like(noise, float("inf")))
    luminous = set(luminous_components(layout))
    tested = torch.tensor([ci in luminous for ci in lit], dtype=torch.bool)
    lost[:, lit] |= vanished_components(signal, noise, tested).to(device_)
    signal_all[:, lit] = signal.to(device_)
    # centres off the region (each galaxy's own region with region_sizes)
    sub = frame.select(galaxies)
    sizes = (sub.region_sizes.to(device=device_, dtype=torch.float64) if sub.region_sizes is not None
             else torch.tensor([[float(frame.width), float(frame.height)]], dtype=torch.float64,
                               device=device_).expand(bsz, 2))
    low = torch.tensor([frame.x_min - 0.5, frame.y_min - 0.5], dtype=torch.float64, device=device_)
    for i in layout.varying_index:
        e = layout.entries[i]
        if e.name not in ("x", "y"):
            continue
        axis = 0 if e.name == "x" else 1
        v = values[:, i]
        off = ~((v > low[axis] + EDGE_MARGIN) & (v < low[axis] + sizes[:, axis] - EDGE_MARGIN))
        lost[:, e.component] |= off
    return lost, signal_all


def _fit_part(layout: ParameterLayout, stage_layout: ParameterLayout | None, stage_settings: LMSettings | None,
              initial: np.ndarray, galaxies: torch.Tensor, report, **optimise):
    """The whole optimisation of the galaxies ``galaxies`` (b,) from ``initial`` (b, P):
    the staged first part (with ``stage_layout``: the Sersic indices held, at most
    ``stage_settings.max_iterations``), then every free parameter with the starts,
    retries and restarts near the fit of :func:`_optimise_part`.

    One CPU worker runs this for its part of the batch from start to end (one fork and
    one join per fit; each galaxy's fit is independent of the others).

    Returns (values (b, P) holding the fixed parameters, :class:`LMOutcome` with the
    best attempt's theta (b, F), chi2, iterations of both stages, converged)."""
    start = initial
    extra_iterations = 0
    if stage_layout is not None:
        theta1, fixed1, _, extra_iterations, _ = _optimise_part(
            stage_layout, start, galaxies, report=report,
            **{**optimise, "retries": 0, "n_starts": 1, "perturbed_starts": False, "lm_settings": stage_settings})
        # a coordinate that stage 1 drove onto a bound (R_e -> 0 while a wrong n is held,
        # q -> 0 while the PA is still wrong) starts stage 2 just inside it, where the
        # bound transform still responds: far out (theta ~ -27) it is flat, and LM spent
        # the whole of stage 2 beside the bound before a retry could start afresh
        stuck = stage_layout.at_bound(theta1)
        theta1 = torch.where(stuck, theta1.clamp(-STAGE_BOUND_LOGIT, STAGE_BOUND_LOGIT), theta1)
        start = stage_layout.to_user(theta1, fixed1,
                                     galaxies if stage_layout.batch_size is not None else None).cpu().numpy()
    theta, best_fixed, chi2, iterations, converged = _optimise_part(layout, start, galaxies, report=report,
                                                                    **optimise)
    return best_fixed, LMOutcome(theta, chi2, iterations + extra_iterations, converged)


def optimise_batch(layout: ParameterLayout, stage_layout: ParameterLayout | None, stage_settings: LMSettings | None,
              initial: np.ndarray, *, workers=None, worker_kind="thread", progress=None, **optimise):
    """:func:`_fit_part` for the whole batch from ``initial`` (B, P), split among CPU
    workers (``workers``, ``worker_kind``: "process" or "thread"; see :func:`fit`).

    Returns (theta (B, F), values (B, P) holding the fixed parameters, iterations (B,),
    converged (B,))."""
    bsz = initial.shape[0]
    data = optimise["data"]
    device_ = data.data.device
    galaxy = torch.arange(bsz, device=device_)

    def part(start_values: np.ndarray, galaxies: torch.Tensor, report):
        return _fit_part(layout, stage_layout, stage_settings, start_values, galaxies, report, **optimise)

    def forward_mode_free(lay):
        probe = ModelFunctions(lay, torch.as_tensor(initial[:1], dtype=torch.float64, device=device_),
                               optimise["frame"], optimise["psf"], optimise["config"], internal=True,
                               galaxies=galaxy[:1])
        return probe.forward_mode_free

    def per_galaxy(min_rows):  # a worker's rows are its galaxies times the starts of each
        return max(1, -(-min_rows // optimise["n_starts"]))

    parts = [slice(0, bsz)]
    if torch.device(device_).type == "cpu":  # CPU workers only (no fork after CUDA)
        if worker_kind == "process":
            parts = cpu_worker_parts(bsz, device_, workers, per_galaxy(MIN_ROWS_PER_PROCESS))
        # forward-mode autodiff (torch.func.jvp) keeps process-wide state: such
        # Jacobians run in the calling thread only
        elif forward_mode_free(layout) and (stage_layout is None or forward_mode_free(stage_layout)):
            parts = cpu_worker_parts(bsz, device_, workers, per_galaxy(MIN_ROWS_PER_THREAD))
    if len(parts) == 1:
        fixed, outcome = part(initial, galaxy, progress)
    elif worker_kind == "process":
        fixed, outcome = solve_in_processes(part, initial, galaxy, parts, progress)
    else:
        fixed, outcome = solve_in_threads(part, initial, galaxy, parts, progress)
    return outcome.theta, fixed, outcome.iterations, outcome.converged
