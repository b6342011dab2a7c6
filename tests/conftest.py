"""Shared pytest setup for galprof's tests.

* The ``float64`` fixture makes float64 the default dtype for a test; modules opt in with
  ``pytestmark = pytest.mark.usefixtures("float64")`` (tests wanting float32 give the
  dtype of their tensors explicitly).
* Slow accuracy sweeps are marked ``@pytest.mark.slow`` (marker declared in
  pyproject.toml) and run by default; deselect them with ``-m "not slow"``.
* ``tests/`` is put on ``sys.path`` so that test modules can ``import references``.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def float64():
    """Make float64 the default dtype for the duration of each test, then restore it."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch.float64
    torch.set_default_dtype(previous)
