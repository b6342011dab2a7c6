"""Parameter uncertainties: covariance (raw and chi2_nu-scaled), bootstrap, posterior
sampling (Pyro NUTS, optional) and derived quantities. See docs/uncertainties.md.

>>> result = galprof.fit(model, images, sigma=sigma, psf=psf)          # doctest: +SKIP
>>> result.errors, result.errors_scaled, result.covariance_flag        # doctest: +SKIP
>>> boot = galprof.uncertainty.bootstrap(model, result, images, sigma=sigma, psf=psf,
...                                      n_replicates=100, seed=1)      # doctest: +SKIP
>>> post = galprof.uncertainty.sample(model, result, images, sigma=sigma, psf=psf)  # doctest: +SKIP
>>> galprof.uncertainty.derived(galprof.uncertainty.bulge_to_total(1), result)     # doctest: +SKIP

Results are returned as values; nothing is stored on model objects.
"""

from ..fitting.covariance import (
                         CovarianceEstimate,
                         correlation_matrix,
                         covariance_estimate,
                         covariance_from_jacobian,
                         default_max_condition,
                         scaled_errors,
)
from .bootstrap import BootstrapResult, bootstrap, resample_counts, unwrap_angles
from .derived import (
                         DerivedEstimate,
                         Parameters,
                         bulge_to_total,
                         delta_method,
                         derived,
                         effective_radius,
                         from_samples,
                         total_magnitude,
)
from .sampling import PosteriorSamples, SamplingUnavailable, sample

__all__ = ["BootstrapResult", "CovarianceEstimate", "DerivedEstimate", "Parameters", "PosteriorSamples",
           "SamplingUnavailable", "bootstrap", "bulge_to_total", "correlation_matrix", "covariance_estimate",
           "covariance_from_jacobian", "default_max_condition", "delta_method", "derived", "effective_radius",
           "from_samples", "resample_counts", "sample", "scaled_errors", "total_magnitude", "unwrap_angles"]
