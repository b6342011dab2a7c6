"""How a batch is fitted: stages, starts and retries.

A fit of a batch runs, per galaxy, a first stage with every free Sersic index held at
its start (a few nearly undamped LM steps that settle position, brightness and size),
then the full model from there; several starts per galaxy (``n_starts``) keep the best;
galaxies whose shape parameters end on a bound get ``retries`` rounds of further starts.
The batch is split among CPU workers (:mod:`galprof.fitting.workers`) once, around all
of it. Positions are 1-based pixels, PA in degrees counter-clockwise from +y.
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
from .functions import ModelFunctions
from .layout import ParameterLayout
from .workers import (
    MIN_ROWS_PER_PROCESS,
    MIN_ROWS_PER_THREAD,
    cpu_worker_parts,
    solve_in_processes,
    solve_in_threads,
)

#: relative chi^2 decrease below which stage 1 (Sersic indices held) stops early
STAGE_FTOL = 1e-4
#: where stage 2 restarts a bounded coordinate that stage 1 left on its bound: |theta| of
#: the logistic transform, 4.7 % of the range from the bound (in log for log-scaled
#: ones), where the transform still responds (farther out, the restarted coordinate
#: needs more iterations to leave the bound; restarting from the initial value instead
#: can send a boxy galaxy with a lopsided mode to the opposite mode).
STAGE_BOUND_LOGIT = 3.0

_START_N = (None, 1.0, 4.0, 2.0, 0.6, 6.0)
_START_SIZE = (1.0, 0.6, 1.7, 1.0, 1.3, 0.8)
#: besides every size (ParameterSpec.is_size): parameters whose ending on a bound
#: triggers further starts
_RETRY_SHAPES = ("n", "q", "c0")


def _retry_parameter(layout: ParameterLayout, i: int) -> bool:
    e = layout.entries[i]
    spec = layout.model.components[e.component].profile_class.spec(e.name)
    return e.name in _RETRY_SHAPES or spec.is_size or e.from_constraint


_START_FRACTION = (0.5, 0.5, 0.25, 0.75, 0.1, 0.9)


def _start_variants(layout: ParameterLayout, values: np.ndarray, n_starts: int) -> np.ndarray:
    """(B * n_starts, P) starting points: the given start first, then variants of n and size."""
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
        for i, e in enumerate(layout.entries):
            if e.free and np.isfinite(e.low) and np.isfinite(e.high):
                span = e.high - e.low
                v[:, i] = np.clip(v[:, i], e.low + 1e-6 * span, e.high - 1e-6 * span)
        # coordinates bounded by a constraint start at a different point of their range
        coords = layout.free_coordinates(torch.as_tensor(v))
        fraction = _START_FRACTION[k % len(_START_FRACTION)]
        for j, i in enumerate(layout.free_index):
            e = layout.entries[i]
            if e.from_constraint:
                if e.scale == "log":
                    coords[:, j] = math.exp(math.log(e.low) + fraction * (math.log(e.high) - math.log(e.low)))
                else:
                    coords[:, j] = e.low + fraction * (e.high - e.low)
        v = layout.from_free_coordinates(coords, torch.as_tensor(v)).numpy()
        starts.append(v)
    return np.concatenate(starts, axis=0)


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


def _optimise_part(layout: ParameterLayout, initial: np.ndarray, galaxies: torch.Tensor, *, frame, psf, config,
                   data, method, n_starts, retries, lm_settings, adam_settings, dtype, report, statistic=None):
    """Run the optimiser from ``initial`` (b, P) values for the galaxies ``galaxies`` (b,)
    (indices into the prepared batch), in this thread; keep the best attempt per galaxy.

    Returns (theta (b, F), values (b, P) holding the fixed parameters, chi2 (b,),
    iterations (b,), converged (b,)).
    """
    bsz = initial.shape[0]
    device_ = data.data.device

    def solve(start_values: np.ndarray, local: torch.Tensor):
        """Optimise from (r, P) starting values for the galaxies ``local`` (r,) of this part."""
        galaxy = galaxies[local]
        fixed = torch.as_tensor(start_values, dtype=torch.float64, device=device_)
        functions = ModelFunctions(layout, fixed, frame, psf, config, internal=True, galaxies=galaxy)
        problem = BatchProblem(functions.render, data.data[galaxy], data.weight[galaxy], functions.jacobian,
                               statistic)
        theta0 = layout.to_internal(fixed)
        if method == "lm":
            out = levenberg_marquardt(problem, theta0, lm_settings, dtype, report, layout.step_limits())
        elif method == "adam":
            out = adam_fit(problem, theta0, adam_settings, dtype, report)
        else:
            raise ValueError(f"unknown method {method!r}; use 'lm' or 'adam'")
        return fixed, out

    local_all = torch.arange(bsz, device=device_).repeat(n_starts)
    fixed_all, outcome = solve(_start_variants(layout, initial, n_starts), local_all)
    best_chi2 = torch.full((bsz,), float("inf"), dtype=torch.float64, device=device_)
    best_theta = torch.zeros(bsz, layout.n_free, dtype=torch.float64, device=device_)
    best_fixed = torch.as_tensor(initial, dtype=torch.float64, device=device_).clone()
    iterations = torch.zeros(bsz, dtype=torch.long, device=device_)
    converged_best = torch.zeros(bsz, dtype=torch.bool, device=device_)

    def merge(local, fixed, out):
        """Keep, per galaxy, the attempt with the lowest finite chi^2 (vectorised)."""
        chi = torch.where(torch.isfinite(out.chi2), out.chi2, torch.full_like(out.chi2, float("inf")))
        lowest = torch.full_like(best_chi2, float("inf")).scatter_reduce(0, local, chi, "amin")
        rows = torch.nonzero((chi == lowest[local]) & (chi < best_chi2[local])).squeeze(-1)
        target = local[rows]
        best_chi2[target] = chi[rows]
        best_theta[target] = out.theta[rows]
        best_fixed[target] = fixed[rows]
        converged_best[target] = out.converged[rows]
        iterations.index_add_(0, local, out.iterations)

    merge(local_all, fixed_all, outcome)
    # galaxies whose shape parameters, or coordinates bounded by a constraint, ended on
    # a bound get further starts (LM from a poor start can run off to n -> 10 or R_e ->
    # huge, and the bound transform is flat there); the lowest chi^2 wins
    shape_cols = [k for k, i in enumerate(layout.free_index) if _retry_parameter(layout, i)]
    for attempt in range(1, retries + 1):
        if not shape_cols:
            break
        stuck = layout.at_bound(best_theta)[:, shape_cols].any(-1)
        redo = torch.nonzero(stuck).squeeze(-1)
        if redo.numel() == 0:
            break
        variants = _start_variants(layout, initial[redo.cpu().numpy()], n_starts + 2 * attempt)[
            redo.numel() * (n_starts + 2 * (attempt - 1)):]
        local_redo = redo.repeat(variants.shape[0] // redo.numel())
        fixed_r, out_r = solve(variants, local_redo)
        merge(local_redo, fixed_r, out_r)
    return best_theta, best_fixed, best_chi2, iterations, converged_best


def _fit_part(layout: ParameterLayout, stage_layout: ParameterLayout | None, stage_settings: LMSettings | None,
              initial: np.ndarray, galaxies: torch.Tensor, report, **optimise):
    """The whole optimisation of the galaxies ``galaxies`` (b,) from ``initial`` (b, P):
    the staged first part (with ``stage_layout``: the Sersic indices held, at most
    ``stage_settings.max_iterations``), then every free parameter with retries.

    One CPU worker runs this for its part of the batch from start to end (one fork and
    one join per fit; each galaxy's fit is independent of the others).

    Returns (values (b, P) holding the fixed parameters, :class:`LMOutcome` with the
    best attempt's theta (b, F), chi2, iterations of both stages, converged)."""
    start = initial
    extra_iterations = 0
    if stage_layout is not None:
        theta1, fixed1, _, extra_iterations, _ = _optimise_part(
            stage_layout, start, galaxies, report=report,
            **{**optimise, "retries": 0, "n_starts": 1, "lm_settings": stage_settings})
        # a coordinate that stage 1 drove onto a bound (R_e -> 0 while a wrong n is held,
        # q -> 0 while the PA is still wrong) starts stage 2 just inside it, where the
        # bound transform still responds: far out (theta ~ -27) it is flat, and LM spent
        # the whole of stage 2 beside the bound before a retry could start afresh
        stuck = stage_layout.at_bound(theta1)
        theta1 = torch.where(stuck, theta1.clamp(-STAGE_BOUND_LOGIT, STAGE_BOUND_LOGIT), theta1)
        start = stage_layout.to_user(theta1, fixed1).cpu().numpy()
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
