"""Helpers of the tests of the code paths that differ on CUDA (``tests/*/test_*cuda_paths.py``).

galprof chooses a few things by the device type of its tensors: on any device but the
CPU it reads no tensor values on the host while rendering (special functions take their
static worst-case number of terms and iterations), forms the Jacobian in larger passes,
and never splits a batch among CPU workers (no forked processes). On a machine without
a GPU, :func:`emulate_other_device` makes those choices see a non-CPU device (the real
branches run: each check is handed a ``meta`` tensor or device), so that the CPU runs
exactly the logic a GPU would, and :class:`HostSyncs` counts the operations that would
synchronise a GPU with the host. Tests that need CUDA itself take :data:`DEVICE_CASES` (the
``cuda`` cases are marked ``gpu``: skipped without CUDA, run by ``pytest -m gpu``).
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: (device, dtype) of the tests that compare a device with the CPU: CUDA in both dtypes
#: (marked gpu), and the CPU once, so that those tests' own code runs everywhere
DEVICE_CASES = [pytest.param("cpu", torch.float32, id="cpu-float32"),
                pytest.param("cuda", torch.float32, marks=pytest.mark.gpu, id="cuda-float32"),
                pytest.param("cuda", torch.float64, marks=pytest.mark.gpu, id="cuda-float64")]

#: operations whose result size or value the host must wait for on a GPU
_READS = {"aten._local_scalar_dense": "value reads", "aten.nonzero": "index gathers"}


class HostSyncs(TorchDispatchMode):
    """Counts, while active, the operations that make the host wait for a GPU: value
    reads (``.item()``, ``float(t)``, ``bool(t)``, ``if t:``), index gathers
    (``torch.nonzero``) and boolean-mask indexing (``t[mask]``), by kind."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name in _READS:
            self.counts[_READS[name]] += 1
        elif name == "aten.index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                          for i in args[1] if i is not None):
            self.counts["mask indexing"] += 1
        return func(*args, **(kwargs or {}))

    @property
    def gathers(self) -> int:
        """Index gathers and boolean-mask indexing: syncs whose count the code bounds."""
        return self.counts["index gathers"] + self.counts["mask indexing"]


def emulate_other_device(monkeypatch) -> None:
    """Make every device-type choice of galprof take its non-CPU branch (for the tensors
    and devices of a CPU run): the special functions' static bounds, the Jacobian pass
    size and the CPU-worker split (one part: nothing forked, nothing threaded)."""
    from galprof import special
    from galprof.fitting import strategy
    from galprof.fitting.functions import ModelFunctions

    meta = torch.device("meta")
    series_length, in_range = special._series_length, special._all_in_table_range
    chunk_size, worker_parts = ModelFunctions._chunk_size, strategy.cpu_worker_parts
    monkeypatch.setattr(special, "_series_length", lambda a64, x64: series_length(a64, x64.to(meta)))
    monkeypatch.setattr(special, "_all_in_table_range", lambda n64: in_range(n64.to(meta)))
    monkeypatch.setattr(ModelFunctions, "_chunk_size", lambda self, device: chunk_size(self, meta))
    monkeypatch.setattr(strategy, "cpu_worker_parts",
                        lambda rows, device, workers, *rest: worker_parts(rows, meta, workers, *rest))


def moffat_stamp(size: int = 15, fwhm: float = 2.8, beta: float = 3.5) -> np.ndarray:
    """A small normalised Moffat PSF stamp (pixel centres; shape matters here, not accuracy)."""
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    r = np.arange(size) - size // 2
    stamp = (1 + (r[:, None] ** 2 + r[None, :] ** 2) / alpha**2) ** (-beta)
    return stamp / stamp.sum()


def skip_without(device: str) -> None:
    """Skip the calling test where ``device`` is CUDA and CUDA is not available (tests
    run without the conftest's skip of ``gpu``-marked tests, e.g. one node id)."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
