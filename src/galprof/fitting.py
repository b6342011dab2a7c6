"""Fit a model to one galaxy or a batch of galaxies: the Python entry point of the engine.

>>> from galprof import Component, Model, fit
>>> model = Model([Component("sersic", dict(x=32, y=32, mag=18, r_e=4, n=2, q=0.8, pa=10)),
...                Component("sky", dict(sky=0, dsdx=0, dsdy=0), fixed={"dsdx", "dsdy"})])
>>> result = fit(model, image, sigma=sigma, psf=psf, zeropoint=25)   # doctest: +SKIP

Coordinates are 1-based pixel centres of the *full* image; ``origin`` gives the
coordinates of the first pixel of the arrays passed in (GALFIT's fit region corner).
"""

from __future__ import annotations

import math
import multiprocessing
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch

from .covariance import covariance_estimate
from .evaluation import ModelFunctions
from .heap import release_free_memory, retained_heap
from .likelihood import prepare_data
from .model import Model, ModelError
from .optimise.adam import AdamSettings, adam_fit
from .optimise.lm import LMOutcome, LMSettings, levenberg_marquardt
from .optimise.problem import BatchProblem
from .optimise.result import FitResult
from .params import ParameterLayout
from .profiles.base import EllipticalProfile
from .render.config import RenderConfig
from .render.psf import prepare_psf, stack_psfs
from .render.scene import Frame

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


def _without_free_index(model: Model) -> Model | None:
    """The model with every free Sersic index held fixed, or None if none is free."""
    comps, changed = [], False
    for comp in model.components:
        if "n" in comp.profile_class.staged and "n" not in comp.fixed:
            comps.append(replace(comp, fixed=comp.fixed | {"n"}))
            changed = True
        else:
            comps.append(comp)
    return Model(tuple(comps), model.constraints) if changed else None


#: automatic CPU worker processes get at least this many galaxies each (the measured
#: gains of processes over intra-op threads are in bench/RESULTS.md).
MIN_ROWS_PER_PROCESS = 16
#: automatic CPU worker threads (where processes cannot be forked) get at least this
#: many galaxies each (threads share the interpreter, so they pay off only for large
#: batches; measurements in bench/RESULTS.md).
MIN_ROWS_PER_THREAD = 64
#: the kinds of CPU workers (``fit(cpu_worker_kind=...)``)
CPU_WORKER_KINDS = ("process", "thread")


def processes_available() -> bool:
    """Whether CPU worker processes can be forked here: on Linux (fork is the start
    method whose children inherit the prepared batch without copying or pickling it),
    and not inside a daemonic process (those may not have children: e.g. the workers of
    a ``multiprocessing.Pool``)."""
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


def resolve_cpu_worker_kind(kind: str | None) -> str:
    """``kind`` checked, or for None the default: processes where
    :func:`processes_available`, else threads."""
    if kind is None:
        return "process" if processes_available() else "thread"
    if kind not in CPU_WORKER_KINDS:
        raise ValueError(f"unknown cpu_worker_kind {kind!r}; use one of {', '.join(CPU_WORKER_KINDS)} or None")
    if kind == "process" and not processes_available():
        raise ValueError("cpu_worker_kind 'process' needs fork (Linux) outside a daemonic process; use 'thread'")
    return kind


def cpu_worker_parts(rows: int, device: torch.device, workers: int | None,
                     min_rows: int = MIN_ROWS_PER_PROCESS) -> list[slice]:
    """Contiguous slices of ``rows`` galaxies, one per CPU worker.

    ``workers`` None (automatic): on the CPU, one worker per intra-op thread
    (``torch.get_num_threads()``) as long as each gets at least ``min_rows`` galaxies
    (:data:`MIN_ROWS_PER_PROCESS` or :data:`MIN_ROWS_PER_THREAD`); on other devices one.
    Every galaxy's fit is independent of the others, so the split does not change the
    result."""
    if workers is None:
        workers = torch.get_num_threads() if torch.device(device).type == "cpu" else 1
        workers = min(workers, rows // min_rows)
    workers = max(1, min(int(workers), rows))
    bounds = np.linspace(0, rows, workers + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


_OUTCOME_FIELDS = ("theta", "chi2", "iterations", "converged")


def _child_solve(solve, start_values, galaxy, slot, counts, connection):
    """The body of a forked worker process: one intra-op thread, ``solve`` on its part,
    and the outcome (numpy arrays) or the text of its error sent back."""
    try:
        torch.set_num_threads(1)

        def report(iteration, n_running):
            counts[slot] = n_running

        fixed, out = solve(start_values, galaxy, report)
        connection.send(("ok", fixed.cpu().numpy(), {name: getattr(out, name).cpu().numpy()
                                                     for name in _OUTCOME_FIELDS}))
    except BaseException:  # noqa: BLE001 - everything goes to the parent, which raises it
        connection.send(("error", traceback.format_exc()))
    finally:
        connection.close()


def solve_in_processes(solve, start_values: np.ndarray, galaxy: torch.Tensor, parts: list[slice], progress):
    """``solve`` on each part of the batch: the first part in this process, the others in
    forked worker processes; each with one intra-op thread.

    Args:
        solve: ``solve(start_values, galaxy, report) -> (fixed, outcome)`` for one part:
            its (r, P) starting values, its (r,) galaxy indices, and a progress callback
            ``report(iteration, n_running)``; ``fixed`` an (r, ...) tensor and
            ``outcome`` an :class:`galprof.optimise.lm.LMOutcome` of r rows.
        start_values: (N, P) starting values of the whole batch.
        galaxy: (N,) galaxy indices of the whole batch.
        parts: slices of the N rows, one per worker (the first runs here).
        progress: ``progress(iteration, n_running)`` or None.

    Returns:
        (fixed, outcome): the parts' results concatenated in row order.

    Worker threads share one interpreter, and each of the engine's thousands of small
    operations per pass holds the GIL while it is dispatched, so threads scale poorly.
    Forked children share the prepared batch copy-on-write and send back only the
    outcome (a few numbers per galaxy). Progress reports the running galaxies of all
    parts. An error in a child is raised here with the child's traceback."""
    ctx = multiprocessing.get_context("fork")
    counts = ctx.Array("q", [part.stop - part.start for part in parts], lock=False)
    children = []
    previous = torch.get_num_threads()
    release_free_memory()  # free pages are then not shared copy-on-write with the children
    try:
        for slot, part in enumerate(parts[1:], start=1):
            receiver, sender = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_child_solve, args=(solve, start_values[part], galaxy[part], slot, counts,
                                                           sender), daemon=True)
            child.start()
            sender.close()
            children.append((child, receiver))

        def report(iteration, n_running):
            counts[0] = n_running
            if progress is not None:
                progress(iteration, int(sum(counts)))

        torch.set_num_threads(1)
        results = [solve(start_values[parts[0]], galaxy[parts[0]], report)]
        device = results[0][0].device
        for child, receiver in children:
            try:
                message = receiver.recv()
            except EOFError:
                child.join()
                raise RuntimeError(f"a fitting worker process ended without a result (exit code {child.exitcode})") \
                    from None
            if message[0] != "ok":
                raise RuntimeError("a fitting worker process failed:\n" + message[1])
            out = LMOutcome(*(torch.as_tensor(message[2][name], device=device) for name in _OUTCOME_FIELDS))
            results.append((torch.as_tensor(message[1], device=device), out))
    finally:
        torch.set_num_threads(previous)
        for child, receiver in children:
            receiver.close()
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
                child.join()
    fixed = torch.cat([f for f, _ in results])
    joined = LMOutcome(*(torch.cat([getattr(o, name) for _, o in results]) for name in _OUTCOME_FIELDS))
    return fixed, joined


def solve_in_threads(solve, start_values: np.ndarray, galaxy: torch.Tensor, parts: list[slice], progress):
    """``solve`` on each part of the batch in its own thread with one intra-op thread
    (arguments and result as :func:`solve_in_processes`).

    The engine is bound by operator dispatch more than by arithmetic, so W single-threaded
    workers on W cores beat one caller with W intra-op threads (the kernels release the
    GIL). torch's intra-op thread count is process-wide: it is 1 while the workers run
    and restored afterwards. Progress reports the sum of the running galaxies."""
    running = [part.stop - part.start for part in parts]
    lock = threading.Lock()

    def reporter(k):
        if progress is None:
            return None

        def report(iteration, n_running):
            with lock:
                running[k] = n_running
                progress(iteration, sum(running))
        return report

    def work(k):
        torch.set_num_threads(1)
        part = parts[k]
        return solve(start_values[part], galaxy[part], reporter(k))

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            outcomes = list(pool.map(work, range(len(parts))))
    finally:
        torch.set_num_threads(previous)
    fixed = torch.cat([f for f, _ in outcomes])
    joined = LMOutcome(*(torch.cat([getattr(o, name) for _, o in outcomes]) for name in _OUTCOME_FIELDS))
    return fixed, joined


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


def _optimise(layout: ParameterLayout, stage_layout: ParameterLayout | None, stage_settings: LMSettings | None,
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


@dataclass(frozen=True)
class FitSetup:
    """Everything :func:`fit` prepares before optimising (also used by
    :mod:`galprof.uncertainty` to re-evaluate the model at other parameters).

    Attributes:
        image: (B, H, W) float64 data (padding zeroed when ``region_sizes`` is given).
        batch_size: B.
        frame: the :class:`galprof.render.scene.Frame` (origin, zeropoint, EXPTIME, regions).
        psf: the prepared PSF (or None).
        data: :class:`galprof.likelihood.PreparedData` (data, 1/sigma weights, pixel counts).
        layout: the :class:`galprof.params.ParameterLayout` of the model.
        layout_bounds: default ((x_lo, x_hi), (y_lo, y_hi)) bounds of centres [pix, 1-based].
        initial: (B, P) starting values (moved inside constraint ranges).
    """

    image: np.ndarray
    batch_size: int
    frame: Frame
    psf: object
    data: object
    layout: ParameterLayout
    layout_bounds: tuple
    initial: np.ndarray


def prepare_fit(model: Model, image, *, sigma=None, mask=None, psf=None, psf_oversampling: int = 1,
                origin: tuple[int, int] = (1, 1), zeropoint=0.0, exptime=1.0,
                convolution_box: tuple[int, int] | None = None, region_sizes=None,
                pixel_scale: tuple[float, float] = (1.0, 1.0), dtype: torch.dtype = torch.float32, device=None,
                names=None) -> FitSetup:
    """Check and prepare the inputs of :func:`fit` (same arguments); see :class:`FitSetup`."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    bsz, height, width = img.shape
    model_batch = model.batch_size()
    if model_batch is not None and model_batch != bsz:
        raise ModelError(f"the model has parameters for {model_batch} galaxies but {bsz} images were given")
    def per_galaxy(value, what):
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            return float(arr)
        if arr.shape != (bsz,):
            raise ModelError(f"{what} must be a number or have one value per galaxy ({bsz}), got shape {arr.shape}")
        return torch.as_tensor(arr, dtype=dtype, device=device)

    sizes_t = None
    if region_sizes is not None:
        sizes = np.asarray(region_sizes, dtype=np.int64).reshape(bsz, 2)
        if (sizes < 1).any() or (sizes[:, 0] > width).any() or (sizes[:, 1] > height).any():
            raise ModelError(f"region_sizes must lie within the {width} x {height} arrays")
        sizes_t = torch.as_tensor(sizes, device=device)
        outside = ((np.arange(width)[None, None, :] >= sizes[:, 0, None, None])
                   | (np.arange(height)[None, :, None] >= sizes[:, 1, None, None]))
        mask = outside if mask is None else (np.asarray(mask).reshape(img.shape) != 0) | outside
        # padding is not data: give it harmless values so that it raises no warnings
        img = np.where(outside, 0.0, img)
        if sigma is not None:
            sigma = np.where(outside, 1.0, np.asarray(sigma, dtype=np.float64).reshape(img.shape))
    frame = Frame(int(origin[0]), int(origin[1]), width, height, per_galaxy(zeropoint, "zeropoint"),
                  per_galaxy(exptime, "exptime"),
                  None if convolution_box is None else (int(convolution_box[0]), int(convolution_box[1])), sizes_t,
                  (float(pixel_scale[0]), float(pixel_scale[1])))
    prepared_psf = None
    if psf is not None:
        max_shape = (2 * height + 1, 2 * width + 1)
        if isinstance(psf, (list, tuple)) or np.ndim(psf) == 3:
            if len(psf) != bsz:
                raise ModelError(f"{len(psf)} PSF images given for {bsz} galaxies")
            prepared_psf = stack_psfs([prepare_psf(p, oversampling=psf_oversampling, max_shape=max_shape,
                                                   source=f"PSF of galaxy {b}", dtype=dtype, device=device)
                                       for b, p in enumerate(psf)])
        else:
            prepared_psf = prepare_psf(psf, oversampling=psf_oversampling, max_shape=max_shape, dtype=dtype,
                                       device=device)
    data = prepare_data(img, sigma, mask, dtype=dtype, device=device, names=names)
    x_lo, y_lo = frame.x_min - 0.5, frame.y_min - 0.5
    layout_bounds = ((x_lo, x_lo + width), (y_lo, y_lo + height))
    layout = ParameterLayout(model, layout_bounds)
    initial = layout.initial_values(bsz)
    layout.check_inside_bounds(initial)
    initial = layout.move_inside_constraints(initial)

    return FitSetup(img, bsz, frame, prepared_psf, data, layout, layout_bounds, initial)


@retained_heap()
def fit(model: Model, image, *, sigma=None, mask=None, psf=None, psf_oversampling: int = 1,
        origin: tuple[int, int] = (1, 1), zeropoint=0.0, exptime=1.0,
        convolution_box: tuple[int, int] | None = None, region_sizes=None, statistic=None,
        pixel_scale: tuple[float, float] = (1.0, 1.0),
        method: str = "lm", n_starts: int = 1, retries: int = 2, staged: bool = True, stage_iterations: int = 8,
        config: RenderConfig = RenderConfig(),
        lm_settings: LMSettings = LMSettings(), adam_settings: AdamSettings = AdamSettings(),
        dtype: torch.dtype = torch.float32, device=None, names=None, progress=None,
        cpu_workers: int | None = None, cpu_worker_kind: str | None = None) -> FitResult:
    """Fit ``model`` to an image or a batch of images.

    Args:
        model: components with initial values (scalars, or arrays of shape (B,)).
        image: (H, W) or (B, H, W) data [ADU].
        sigma: same shape, 1-sigma noise [ADU]; None for unit weights (the CLI builds
            GALFIT's sigma image from the header when the feedme says ``none``).
        mask: same shape, non-zero = bad pixel; NaN/inf data or sigma and sigma <= 0 are
            masked too (with a warning).
        psf: 2-D empirical PSF (pixel response included) shared by the batch, a (B, h, w)
            array or a list of B 2-D arrays (sizes may differ: one ePSF per galaxy), or
            None for no convolution.
        psf_oversampling: the PSF is sampled this many times finer than the data.
        origin: 1-based (x, y) coordinates of the first pixel of ``image``.
        zeropoint, exptime: mag = zeropoint - 2.5 log10(flux / exptime); floats or (B,)
            arrays (one per galaxy).
        region_sizes: optional (B, 2) (width, height) [pix]: galaxy b's image is the first
            width x height pixels of its (padded) array; the rest is ignored (weight 0)
            and its sky is referred to the centre of that region. For fitting images of
            different sizes together.
        statistic: None for chi^2 with ``sigma`` (default), or a
            :class:`galprof.likelihood.PixelStatistic` (Poisson maximum-likelihood ratio,
            Cash, chi^2 with model-based sigmas); ``sigma`` then only selects pixels.
        convolution_box: GALFIT's line I, (size x, size y) [pix]: convolve only inside a
            box of this size centred on the region's centre (see :class:`Frame`).
        pixel_scale: GALFIT's line K, (dx, dy) [arcsec/pix]: surface-brightness
            amplitudes (mu_0 of ferrer, king, edgedisk; mu_b of nuker) are
            zp - 2.5 log10(I / (EXPTIME dx dy)) with I in ADU/pix.
        method: ``lm`` (batched Levenberg-Marquardt, default) or ``adam``.
        n_starts: starts per galaxy (the given one, then variants of n and size); the
            start with the lowest chi^2 wins.
        retries: rounds of further starts (two more each round) for galaxies whose shape
            parameters (n, sizes, q) ended on a bound.
        staged: with LM, first fit with every free Sersic index held fixed for at most
            ``stage_iterations`` iterations (with exact Jacobians, whatever
            ``lm_settings.broyden_updates``), then release it (robust to far starts).
        config: rendering settings (e.g. ``legacy_pixel_integration``).
        dtype: dtype of the rendering (float32 or float64); linear algebra is float64.
        device: torch device (e.g. "cuda").
        names: per-galaxy labels for messages.
        progress: optional callable(iteration, n_running).
        cpu_workers: on the CPU, split the batch among this many workers, each with one
            intra-op thread (None: one per ``torch.get_num_threads()``, with at least
            :data:`MIN_ROWS_PER_PROCESS` rows (galaxies x ``n_starts``) each, or
            :data:`MIN_ROWS_PER_THREAD` for threads; 1: no split). Each worker fits its
            galaxies from start to end (both stages, every start and retry). The
            result does not depend on it.
        cpu_worker_kind: ``process`` (forked worker processes: the default where
            :func:`processes_available`, i.e. on Linux outside daemonic processes),
            ``thread`` (worker threads; torch's thread count is process-wide and is 1
            while they run; models with forward-mode Jacobians are then not split), or
            None for that default.

    Returns:
        a :class:`FitResult`.
    """
    setup = prepare_fit(model, image, sigma=sigma, mask=mask, psf=psf, psf_oversampling=psf_oversampling,
                        origin=origin, zeropoint=zeropoint, exptime=exptime, convolution_box=convolution_box,
                        region_sizes=region_sizes, pixel_scale=pixel_scale, dtype=dtype, device=device, names=names)
    img, bsz, frame, prepared_psf, data = setup.image, setup.batch_size, setup.frame, setup.psf, setup.data
    layout, layout_bounds, initial = setup.layout, setup.layout_bounds, setup.initial

    n_starts = max(1, int(n_starts))
    if sigma is None and statistic is None:
        # unit weights: chi^2 has no absolute scale, so only the relative test applies
        lm_settings = replace(lm_settings, chi2_tolerance=0.0)
    optimise = dict(frame=frame, psf=prepared_psf, config=config, data=data, method=method, n_starts=n_starts,
                    retries=retries, lm_settings=lm_settings, adam_settings=adam_settings, dtype=dtype,
                    progress=progress, statistic=statistic, workers=cpu_workers,
                    worker_kind=resolve_cpu_worker_kind(cpu_worker_kind))
    staged_model = _without_free_index(model) if staged and method == "lm" else None
    stage_layout = stage_settings = None
    if staged_model is not None:
        # stage 1: everything but the Sersic indices, briefly. It brings size, flux and
        # shape near the valley before n is released; from far starts LM otherwise tends
        # to run along the n-R_e degeneracy to a bound.
        stage_layout = ParameterLayout(staged_model, layout_bounds)
        # exact Jacobians throughout: stage 1's few long steps from a far start are where
        # rank-one updates approximate J worst (with broyden_updates=3 a start 1 in n and
        # 1.5x in R_e off ended stage 1 at 5x the chi^2 and stage 2 on n's bound)
        stage_settings = replace(lm_settings, max_iterations=stage_iterations, ftol=STAGE_FTOL, broyden_updates=0)
    theta, best_fixed, iterations, converged_best = _optimise(layout, stage_layout, stage_settings, initial,
                                                              **optimise)
    at_bound_free = layout.at_bound(theta)
    user = layout.to_user(theta, best_fixed).cpu().numpy()
    values = layout.canonicalise(user)

    # covariance at the reported (canonical) values, in user units
    values_t = torch.as_tensor(values, dtype=torch.float64, device=data.data.device)
    index = torch.arange(bsz, device=data.data.device)
    functions = ModelFunctions(layout, values_t, frame, prepared_psf, config, internal=False)
    user_problem = BatchProblem(functions.render, data.data, data.weight, functions.jacobian, statistic,
                                fisher=True)
    free_cols = list(layout.free_index)
    with torch.no_grad():
        free_values = layout.free_coordinates(values_t).to(dtype)
    if layout.n_free:
        estimates = []
        for part in torch.split(index, lm_settings.pass_size):  # bounded temporaries for large batches
            _, jac = user_problem.residuals_and_jacobian(free_values[part], part)
            estimates.append(covariance_estimate(jac))
            del jac
        cov = torch.cat([e.covariance for e in estimates])
        undefined = torch.cat([e.undefined for e in estimates])
        condition = torch.cat([e.condition for e in estimates]).cpu().numpy()
        cov_flag = torch.cat([e.flag for e in estimates]).cpu().numpy()
    else:
        cov = torch.zeros(bsz, 0, 0, dtype=torch.float64)
        undefined = torch.zeros(bsz, 0, dtype=torch.bool)
        condition, cov_flag = np.ones(bsz), np.zeros(bsz, dtype=bool)
    parameter_covariance = np.zeros((bsz, layout.n_params, layout.n_params))
    with torch.no_grad():
        model_images = user_problem.render(free_values, index)
    errors = np.zeros_like(values)
    at_bound = np.zeros(values.shape, dtype=bool)
    if layout.n_free:
        # errors of every parameter that varies (tied and coupled ones through the
        # constraints): diag(G C G^T) with G = d values / d coordinates
        slope = layout.value_jacobian(free_values.to(torch.float64), values_t, internal=False)
        cov_values = slope @ cov.to(slope.device) @ slope.transpose(1, 2)
        varying = list(layout.varying_index)
        cov_values = cov_values.cpu().numpy()
        errors[:, varying] = np.sqrt(np.diagonal(cov_values, axis1=1, axis2=2))[:, varying]
        parameter_covariance[np.ix_(np.arange(bsz), varying, varying)] = cov_values[np.ix_(np.arange(bsz), varying,
                                                                                           varying)]
        flags = (at_bound_free | undefined.to(at_bound_free.device)).cpu().numpy()
        for k, i in enumerate(free_cols):
            at_bound[:, i] = flags[:, k]
            entry = layout.entries[i]
            if entry.role == "coupled":  # a coupled range at its limit flags both members
                at_bound[:, entry.ref] |= flags[:, k]

    model_np = model_images.detach().to(torch.float64).cpu().numpy()
    good = data.weight.cpu().numpy() > 0
    clean = data.data.to(torch.float64).cpu().numpy()  # unusable pixels zeroed (and weighted 0)
    chi2 = (((clean - model_np) * data.weight.cpu().numpy()) ** 2 * good).reshape(bsz, -1).sum(-1)
    if statistic is None:
        fit_statistic = chi2
    else:
        with torch.no_grad():
            fit_statistic = statistic.value(data.data.to(torch.float64), model_images.to(torch.float64),
                                            data.weight > 0).cpu().numpy()
    ndof = data.n_pixels.cpu().numpy() - layout.n_free
    chi2_nu = fit_statistic / np.maximum(ndof, 1)
    iterations = iterations.cpu().numpy()
    converged = converged_best.cpu().numpy() & np.isfinite(chi2)
    free = np.array([e.role == "free" for e in layout.entries], dtype=bool)
    constrained = np.zeros(layout.n_params, dtype=bool)
    constrained[list(layout.constrained_index)] = True
    return FitResult(
        model=model,
        names=tuple((c + 1, n) for c, n in layout.names),
        values=values,
        errors=errors,
        free=free,
        constrained=constrained,
        covariance=cov.cpu().numpy(),
        at_bound=at_bound,
        chi2=fit_statistic,
        ndof=ndof,
        chi2_nu=chi2_nu,
        iterations=iterations,
        converged=converged,
        model_images=model_np,
        residual_images=img - model_np,
        initial_values=initial,
        errors_scaled=errors * np.sqrt(np.where(np.isfinite(chi2_nu), chi2_nu, np.nan))[:, None],
        parameter_covariance=parameter_covariance,
        covariance_flag=cov_flag,
        condition_number=condition,
    )
