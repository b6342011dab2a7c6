"""Fitting: :func:`fit` and what it is made of, one job per module.

* :mod:`~galprof.fitting.api`: :func:`fit`;
  :mod:`~galprof.fitting.setup`: :func:`prepare_fit` (inputs checked, data, PSF and
  parameter layout prepared).
* :mod:`~galprof.fitting.multiband`: :func:`fit_bands` (every band of a galaxy together)
  and :mod:`~galprof.fitting.bands`: :class:`Bands` and the wavelength basis.
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

from .api import fit
from .bands import Bands
from .functions import ModelFunctions
from .layout import ParameterLayout
from .likelihood import LikelihoodError, PixelStatistic
from .multiband import MultiBandFitResult, fit_bands
from .result import FitResult
from .setup import FitSetup, prepare_fit
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

__all__ = ["CPU_WORKER_KINDS", "Bands", "FitResult", "FitSetup", "LikelihoodError", "MIN_ROWS_PER_PROCESS",
           "MIN_ROWS_PER_THREAD", "ModelFunctions", "MultiBandFitResult", "ParameterLayout", "PixelStatistic", "cpu_worker_parts", "fit",
           "fit_bands", "prepare_fit", "processes_available", "resolve_cpu_worker_kind", "solve_in_processes", "solve_in_threads"]
