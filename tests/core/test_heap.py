"""galprof.fitting.heap: freed memory stays in the heap while a fit runs, and not afterwards."""

import resource

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


def test_freed_blocks_are_reused_without_page_faults_only_while_retained():
    pages = 4 * BLOCK * 8 // 4096
    outside = faults_of_reallocating()
    with heap.retained_heap():
        inside = faults_of_reallocating()
        with heap.retained_heap():  # nested: the inner exit leaves the outer setting
            pass
        nested = faults_of_reallocating()
    after = faults_of_reallocating()
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
