"""Fitting: :func:`fit` and what it is made of, one job per module.

* :mod:`~galprof.fitting.api`: :func:`fit` and :func:`prepare_fit` (inputs checked,
  data, PSF and parameter layout prepared).
* :mod:`~galprof.fitting.layout`: :class:`ParameterLayout`: names <-> (B, P) values,
  fixed and tied parameters, bounds as bijections, constraints.
* :mod:`~galprof.fitting.functions`: :class:`ModelFunctions`: the model image and its
  Jacobian of a batch at given parameters.
* :mod:`~galprof.fitting.likelihood`: chi^2 and Poisson pixel statistics, prepared data.
* :mod:`~galprof.fitting.strategy`: stages, starts and retries.
* :mod:`~galprof.fitting.workers`: CPU worker processes and threads;
  :mod:`~galprof.fitting.heap`: the allocator settings kept while a fit runs.
* :mod:`~galprof.fitting.covariance`: the covariance and its conditioning test.
* :mod:`~galprof.fitting.result`: :class:`FitResult`, returned by :func:`fit`.

Conventions (GALFIT's): 1-based pixels, PA in degrees counter-clockwise from +y, sizes
along the major axis [pix], q = b/a, mag = zeropoint - 2.5 log10(flux / EXPTIME).
"""

from .api import FitSetup, fit, prepare_fit
from .functions import ModelFunctions
from .layout import ParameterLayout
from .likelihood import LikelihoodError, PixelStatistic
from .result import FitResult
from .workers import (
                      CPU_WORKER_KINDS,
                      MIN_ROWS_PER_PROCESS,
                      MIN_ROWS_PER_THREAD,
                      cpu_worker_parts,
                      processes_available,
                      resolve_cpu_worker_kind,
                      solve_in_processes,
                      solve_in_threads,
)

__all__ = ["CPU_WORKER_KINDS", "FitResult", "FitSetup", "LikelihoodError", "MIN_ROWS_PER_PROCESS",
           "MIN_ROWS_PER_THREAD", "ModelFunctions", "ParameterLayout", "PixelStatistic", "cpu_worker_parts", "fit",
           "prepare_fit", "processes_available", "resolve_cpu_worker_kind", "solve_in_processes", "solve_in_threads"]
