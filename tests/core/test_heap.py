"""galprof.fitting.heap: freed memory stays in the heap while a fit runs, and not afterwards."""

import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
import torch

from galprof.fitting import heap

pytestmark = pytest.mark.skipif(not heap.glibc_available(), reason="needs glibc (Linux)")

BLOCK = 8 << 20  # float64 values: 64 MiB, above glibc's largest adaptive mmap threshold (32 MiB)


def faults_of_reallocating(times=4):
    """Minor page faults of allocating, filling and freeing a 64 MiB tensor ``times``
    times, after one warm-up allocation."""
    torch.ones(BLOCK, dtype=torch.float64).sum()  # (numpy asks for huge pages: fewer faults)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(BLOCK, dtype=torch.float64).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


_REUSE_SCRIPT = """
import json, resource, torch
from galprof.fitting import heap
BLOCK = %d
def faults(times=4):
    torch.ones(BLOCK, dtype=torch.float64).sum()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(BLOCK, dtype=torch.float64).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
outside = faults()
with heap.retained_heap():
    inside = faults()
    with heap.retained_heap():
        pass
    nested = faults()
after = faults()
print(json.dumps(dict(outside=outside, inside=inside, nested=nested, after=after)))
"""


def test_freed_blocks_are_reused_without_page_faults_only_while_retained():
    """Measured in a fresh interpreter: in the test process, threads and heap left by
    earlier tests can place a chunk where a freed block would be reused."""
    pages = 4 * BLOCK * 8 // 4096
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("GALPROF_RETAIN_HEAP", None)
    run = subprocess.run([sys.executable, "-c", _REUSE_SCRIPT % BLOCK], capture_output=True, text=True, check=True,
                         env=env)
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    outside, inside, nested, after = (counts[k] for k in ("outside", "inside", "nested", "after"))
    # outside, each 64 MiB block is a fresh mmap: every page faults in again
    assert outside > 0.5 * pages and after > 0.5 * pages
    assert inside < 0.05 * pages and nested < 0.05 * pages


def test_retaining_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("GALPROF_RETAIN_HEAP", "0")
    with heap.retained_heap():
        assert faults_of_reallocating() > 0.5 * 4 * BLOCK * 8 // 4096


def test_the_fit_leaves_no_retained_heap_behind():
    """fit() retains the heap only while it runs: afterwards large blocks are mapped
    afresh again (and the heap was trimmed)."""
    from galprof import Component, Model, fit

    x = np.arange(48)[None, :]
    y = np.arange(48)[:, None]
    image = 100 * np.exp(-np.hypot(x - 23.6, y - 24.2) / 3.0)[None].repeat(8, 0)
    model = Model([Component("expdisk", dict(x=24, y=24, mag=14, r_s=3.5, q=0.9, pa=0))])
    fit(model, image, sigma=np.ones_like(image), zeropoint=25, dtype=torch.float32, cpu_workers=1)
    assert faults_of_reallocating() > 0.5 * 4 * BLOCK * 8 // 4096
    assert heap.retention_depth() == 0
