"""CPU workers: a batch split among forked processes (Linux) or threads.

Each worker fits its own galaxies from start to end (every stage, start and retry), so a
fit forks and joins once. On CUDA nothing is split (one process drives the GPU).
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..optimise.lm import LMOutcome
from .heap import release_free_memory

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
