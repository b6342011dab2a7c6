"""Keep freed memory in the C heap while a fit runs (glibc on Linux; elsewhere a no-op).

A fit allocates and frees the same tens of MiB of temporaries (canvases, tangent
images, Jacobians) in every pass, hundreds of times. glibc's malloc hands blocks above
its mmap threshold (128 KiB at start, raised as large blocks are freed, but never above
32 MiB) out as fresh ``mmap`` pages and unmaps them on ``free``, and it returns the top
of the heap to the kernel once more than the trim threshold is free there. Each pass
then page-faults its working set in again, which costs system time; with the heap kept,
only the working set's first touch in each fit faults (measurements in bench/RESULTS.md).

:func:`retained_heap` raises both thresholds while it is active. When the outermost use
ends it sets them to the values glibc's own adaptation reaches once large blocks have
been freed (mmap threshold 32 MiB, trim threshold 64 MiB: glibc stops adapting once they
are set) and releases the free memory to the kernel (``malloc_trim``), so the process's
resident memory falls back afterwards. Set the environment variable
``GALPROF_RETAIN_HEAP=0`` to leave malloc alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: after use: the ceilings of glibc's adaptive thresholds (mmap: 32 MiB on 64-bit; trim:
#: twice the mmap threshold) [bytes]
_AFTER_MMAP_THRESHOLD = 32 << 20
_AFTER_TRIM_THRESHOLD = 64 << 20
#: while retained: blocks up to this size come from the heap [bytes] (larger ones, or
#: ones glibc refuses, keep the mmap path: older glibc caps the threshold at 32 MiB)
_RETAINED_MMAP_THRESHOLD = 1 << 30
#: while retained: free memory at the top of the heap is kept up to this much [bytes]
_RETAINED_TRIM_THRESHOLD = (1 << 31) - 1

_lock = threading.Lock()
_depth = 0


@functools.lru_cache(maxsize=None)
def _glibc():
    """The C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (musl has no such symbol)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return libc


def glibc_available() -> bool:
    """Whether the C library is glibc, whose heap :func:`retained_heap` can tune (Linux);
    elsewhere :func:`retained_heap` and :func:`release_free_memory` do nothing."""
    return _glibc() is not None


def retention_depth() -> int:
    """How many :func:`retained_heap` contexts are active now (nested or in other
    threads); 0 when the heap is not retained."""
    return _depth


def _enabled() -> bool:
    return os.environ.get("GALPROF_RETAIN_HEAP", "1").strip().lower() not in ("0", "false", "no", "off")


def release_free_memory() -> None:
    """Return the heap's free pages to the kernel (``malloc_trim(0)``; glibc only).

    Done before forking worker processes: pages that neither side needs are then not
    shared copy-on-write, so neither copies them on its first write."""
    libc = _glibc()
    if libc is not None and _enabled():
        libc.malloc_trim(0)


@contextlib.contextmanager
def retained_heap():
    """Within this context, freed blocks (up to 1 GiB) stay in this process's heap.

    Nested and concurrent uses (threads) share one setting; the outermost exit sets the
    thresholds glibc adapts to by itself (32 / 64 MiB) and trims the heap. A no-op without glibc or with
    ``GALPROF_RETAIN_HEAP=0``. The result of any computation does not depend on it."""
    global _depth
    libc = _glibc() if _enabled() else None
    if libc is None:
        yield
        return
    with _lock:
        if _depth == 0:
            if not libc.mallopt(_M_MMAP_THRESHOLD, _RETAINED_MMAP_THRESHOLD):
                libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, _RETAINED_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM_THRESHOLD)
                libc.malloc_trim(0)
