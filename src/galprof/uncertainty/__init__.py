"""Parameter uncertainties."""

from .covariance import covariance_from_jacobian

__all__ = ["covariance_from_jacobian"]
