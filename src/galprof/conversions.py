"""Conversions between GALFIT's, imfit's and galprof's parameterisations.

galprof uses GALFIT's conventions (:mod:`galprof.conventions`): total magnitudes,
q = b/a, PA counter-clockwise from +y, sizes along the major axis in pixels, 1-based
pixel centres. imfit uses the same pixel coordinates and PA convention, but
ellipticity ell = 1 - q and *surface brightness* at a reference radius (I_e at R_e for
a Sérsic, I_0 at the centre for the others) in counts per pixel, and a Gaussian's
sigma instead of its FWHM. All functions work on numpy arrays or floats.

Total flux F of an elliptical profile of axis ratio q (an integral over the plane):

* Sérsic: F = 2 pi q R_e^2 I_e n e^b Gamma(2n) / b^(2n), b = b_n exact;
* exponential: F = 2 pi q h^2 I_0;
* Gaussian: F = 2 pi q sigma^2 I_0;
* Moffat: F = pi q alpha^2 I_0 / (beta - 1), alpha = FWHM / (2 sqrt(2^(1/beta) - 1)).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .special import sersic_b

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))

__all__ = [
    "FWHM_PER_SIGMA",
    "ell_from_q",
    "exponential_flux",
    "exponential_i0",
    "gaussian_flux",
    "gaussian_i0",
    "moffat_alpha",
    "moffat_flux",
    "moffat_i0",
    "q_from_ell",
    "sersic_flux",
    "sersic_i_e",
]


def q_from_ell(ell):
    """Axis ratio q = b/a from imfit's ellipticity ell = 1 - b/a."""
    return 1.0 - np.asarray(ell, dtype=np.float64)


def ell_from_q(q):
    """imfit's ellipticity ell = 1 - q from the axis ratio q = b/a."""
    return 1.0 - np.asarray(q, dtype=np.float64)


def _sersic_factor(n):
    """2 pi n e^b Gamma(2n) / b^(2n) for Sérsic index n (exact b_n)."""
    n = np.asarray(n, dtype=np.float64)
    b = sersic_b(torch.as_tensor(n)).numpy()
    log_factor = math.log(2.0 * math.pi) + np.log(n) + b + np.vectorize(math.lgamma)(2.0 * n) - 2.0 * n * np.log(b)
    return np.exp(log_factor)


def sersic_flux(i_e, r_e, n, q):
    """Total flux of a Sérsic profile from I_e [counts/pix] at R_e [pix] (major axis)."""
    return np.asarray(i_e, dtype=np.float64) * np.asarray(q) * np.asarray(r_e, dtype=np.float64) ** 2 \
        * _sersic_factor(n)


def sersic_i_e(flux, r_e, n, q):
    """Surface brightness I_e [counts/pix] at R_e of a Sérsic profile of total ``flux``."""
    return np.asarray(flux, dtype=np.float64) / (np.asarray(q) * np.asarray(r_e, dtype=np.float64) ** 2
                                                  * _sersic_factor(n))


def exponential_flux(i_0, h, q):
    """Total flux of an exponential disk from its central surface brightness I_0 and scale length h [pix]."""
    return 2.0 * math.pi * np.asarray(q) * np.asarray(h, dtype=np.float64) ** 2 * np.asarray(i_0, dtype=np.float64)


def exponential_i0(flux, h, q):
    """Central surface brightness I_0 [counts/pix] of an exponential disk of total ``flux``."""
    return np.asarray(flux, dtype=np.float64) / (2.0 * math.pi * np.asarray(q) * np.asarray(h, dtype=np.float64) ** 2)


def gaussian_flux(i_0, sigma, q):
    """Total flux of an elliptical Gaussian from I_0 and sigma [pix] along the major axis."""
    return 2.0 * math.pi * np.asarray(q) * np.asarray(sigma, dtype=np.float64) ** 2 * np.asarray(i_0, dtype=np.float64)


def gaussian_i0(flux, sigma, q):
    """Central surface brightness I_0 of an elliptical Gaussian of total ``flux``."""
    return np.asarray(flux, dtype=np.float64) / (2.0 * math.pi * np.asarray(q) * np.asarray(sigma, dtype=np.float64) ** 2)


def moffat_alpha(fwhm, beta):
    """Moffat core radius alpha [pix] from FWHM [pix] and beta."""
    beta = np.asarray(beta, dtype=np.float64)
    return np.asarray(fwhm, dtype=np.float64) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_flux(i_0, fwhm, beta, q):
    """Total flux of an elliptical Moffat (beta > 1) from its central surface brightness I_0."""
    alpha = moffat_alpha(fwhm, beta)
    return math.pi * np.asarray(q) * alpha**2 * np.asarray(i_0, dtype=np.float64) / (np.asarray(beta) - 1.0)


def moffat_i0(flux, fwhm, beta, q):
    """Central surface brightness I_0 of an elliptical Moffat of total ``flux``."""
    alpha = moffat_alpha(fwhm, beta)
    return np.asarray(flux, dtype=np.float64) * (np.asarray(beta) - 1.0) / (math.pi * np.asarray(q) * alpha**2)
