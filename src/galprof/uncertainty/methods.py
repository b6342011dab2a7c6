"""Choosing the reported errors by name (the ``--errors`` option of ``galprof fit``,
``galprof imfit`` and ``galprof batch``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..model import ModelError
from .bootstrap import bootstrap
from .sampling import sample

METHODS = ("covariance", "scaled", "bootstrap", "sample")


@dataclass(frozen=True)
class ErrorOptions:
    """Which errors to report.

    Attributes:
        method: ``covariance`` (raw (J^T W J)^-1, default), ``scaled`` (times chi2_nu),
            ``bootstrap`` (scatter of ``bootstrap`` refits of resampled pixels) or
            ``sample`` (posterior standard deviation from Pyro NUTS).
        bootstrap: replicates for ``bootstrap``.
        seed: seed of the bootstrap / sampler.
        samples, warmup, chains: NUTS settings for ``sample``.
    """

    method: str = "covariance"
    bootstrap: int = 100
    seed: int | None = None
    samples: int = 500
    warmup: int = 300
    chains: int = 4

    def __post_init__(self):
        if self.method not in METHODS:
            raise ModelError(f"unknown error method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.method == "bootstrap" and self.bootstrap < 2:
            raise ModelError(f"the bootstrap needs at least 2 replicates, got {self.bootstrap}")

    @property
    def is_default(self) -> bool:
        return self == ErrorOptions()


def reported_errors(options: ErrorOptions, model, result, image, **fit_inputs):
    """(result with ``errors`` replaced by the chosen method's, extra) for a fit of
    ``model`` to ``image`` with ``fit_inputs`` (sigma, mask, psf, zeropoint, ...).

    ``extra`` is None, a :class:`~galprof.uncertainty.BootstrapResult` or a
    :class:`~galprof.uncertainty.PosteriorSamples`. Fixed parameters keep error 0.
    """
    if options.method == "covariance":
        return result, None
    if options.method == "scaled":
        return replace(result, errors=np.asarray(result.errors_scaled)), None
    varying = result.free | result.constrained
    if options.method == "bootstrap":

        extra = bootstrap(model, result, image, n_replicates=options.bootstrap, seed=options.seed, **fit_inputs)
        std = extra.std
    else:

        keep = {k: v for k, v in fit_inputs.items() if k not in ("method", "lm_settings", "adam_settings")}
        extra = sample(model, result, image, n_samples=options.samples, n_warmup=options.warmup,
                       n_chains=options.chains, seed=options.seed, **keep)
        std = extra.std
    errors = np.where(varying[None, :], std, 0.0)
    return replace(result, errors=errors), extra
