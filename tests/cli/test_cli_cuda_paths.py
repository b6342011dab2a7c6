"""``--device``: ``auto`` picks CUDA where it is available, and an explicit CUDA device on a
machine without one is a usage error (exit status 2), not a traceback from torch."""

from __future__ import annotations

import pytest
import torch

from galprof.cli.options import resolve_device
from galprof.errors import UsageError


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_usage_error():
    assert resolve_device("auto") in ("cpu", "mps")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device(name)
    with pytest.raises(UsageError, match="not a device"):
        resolve_device("gpu")


@pytest.mark.gpu
def test_auto_is_cuda_where_available():
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:0") == "cuda:0"
