"""Fused evaluation of the renderer's per-pixel chains (``RenderConfig.fused``).

The light of a component over its canvas, and in the Jacobian passes its derivatives,
are chains of elementwise operations over every canvas pixel (a quadratic form, powers,
exponentials, products with per-galaxy factors). Run one operation at a time, each link
streams the whole canvas through memory and costs a dispatch. :func:`run_fused` runs
such a function through ``torch.compile`` (inductor: one C++/OpenMP loop on the CPU, one
Triton kernel on CUDA), compiled once per process and function with dynamic shapes (the
same kernel for every batch and canvas size), and falls back to the plain function,
once and with a warning, where compilation fails; :func:`fusion_status` says which.
The functions must be pure tensor functions of their arguments (profile classes, name
tuples and dicts of tensors are fine).
"""

from __future__ import annotations

import warnings

import torch

_STATE = {"status": "not used"}
_KERNELS: dict = {}


def fusion_status() -> str:
    """``not used`` (nothing fused in this process yet), ``compiled`` or ``eager: <why
    compilation failed>``."""
    return _STATE["status"]


def run_fused(function, *args):
    """``function(*args)`` through its compiled kernel (see the module docstring)."""
    if _STATE["status"].startswith("eager"):
        return function(*args)
    kernel = _KERNELS.get(function)
    if kernel is None:
        kernel = _KERNELS[function] = torch.compile(function, dynamic=True)
    try:
        out = kernel(*args)
    except Exception as err:  # noqa: BLE001 - any backend failure: the plain function gives the same numbers
        text = str(err).splitlines()[0] if str(err) else ""
        _STATE["status"] = f"eager: {type(err).__name__}: {text}"[:300]
        warnings.warn(f"galprof: fused rendering is not available here ({_STATE['status']}); rendering "
                      "operation by operation", RuntimeWarning, stacklevel=2)
        return function(*args)
    _STATE["status"] = "compiled"
    return out


def reset_fusion() -> None:
    """Forget the compiled kernels and the status (the next fused call compiles again)."""
    _KERNELS.clear()
    _STATE["status"] = "not used"
