"""Shared pytest setup for galprof's tests.

* The ``float64`` fixture makes float64 the default dtype for a test; modules opt in with
  ``pytestmark = pytest.mark.usefixtures("float64")`` (tests wanting float32 give the
  dtype of their tensors explicitly).
* Slow accuracy sweeps are marked ``@pytest.mark.slow`` (marker declared in
  pyproject.toml) and run by default; deselect them with ``-m "not slow"``.
* ``tests/`` is put on ``sys.path`` so that test modules can ``import references``.
* Tests marked ``@pytest.mark.gpu`` need CUDA and are skipped where it is not available.
* ``--device cuda`` makes that torch's default device for the run, so that tests written
  for the CPU (tensors made without a device) run there; ``tensor.numpy()`` then copies
  to the host first. ``bench/gpu_check.sh`` runs the render and LM tests so.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="torch's default device for the tests (e.g. cuda; default cpu)")


def pytest_configure(config):
    device = config.getoption("--device")
    if torch.device(device).type != "cpu":
        torch.set_default_device(device)
        to_numpy = torch.Tensor.numpy

        def numpy_on_the_host(self, *, force=False):
            return to_numpy(self.cpu(), force=force)

        torch.Tensor.numpy = numpy_on_the_host


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    if marked and not torch.cuda.is_available():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture
def float64():
    """Make float64 the default dtype for the duration of each test, then restore it."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch.float64
    torch.set_default_dtype(previous)
