"""Photometric bands and how parameters vary with wavelength (GALFITM's convention).

A multi-band fit (:func:`galprof.fitting.multiband.fit_bands`) describes each parameter
of each component in every band by a number of *terms*:

* 0: fixed, at the value given for each band;
* 1: one value shared by every band;
* N (1 < N < K): a Chebyshev polynomial of N terms in wavelength, the parameter's value
  in band k being ``sum_m a_m T_m(x_k)``;
* K (the number of bands): free in every band.

``x_k`` is the band's wavelength mapped linearly onto [-1, 1] over the bands' range
(``x = 2 (lambda - lambda_min) / (lambda_max - lambda_min) - 1``) and ``T_m`` is the
Chebyshev polynomial of the first kind of degree m. This is how GALFITM writes the
``cheb`` coefficients of its restart files (checked on GALFITM 1.2.0's restart of
NGC 4261, where the five coefficients of a magnitude give the five band magnitudes of
its log to 0.001 mag). Wavelengths are in any one unit (GALFITM's examples use
Angstrom); only their ratios of differences matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import ModelError

#: ``terms`` value meaning "free in every band" (the number of bands)
FREE_PER_BAND = "band"


@dataclass(frozen=True)
class Bands:
    """The bands of a multi-band fit, in the order of the images' band axis.

    Attributes:
        labels: one short name per band (``u``, ``g``, ...), used in messages, output
            keywords (``1_MAG_g``) and file names.
        wavelengths: one wavelength per band (any unit, e.g. Angstrom; distinct).
    """

    labels: tuple[str, ...]
    wavelengths: tuple[float, ...]

    def __post_init__(self):
        labels = tuple(str(label) for label in self.labels)
        wavelengths = tuple(float(w) for w in self.wavelengths)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "wavelengths", wavelengths)
        if not labels:
            raise ModelError("Bands: at least one band is needed")
        if len(wavelengths) != len(labels):
            raise ModelError(f"Bands: {len(labels)} labels but {len(wavelengths)} wavelengths")
        if len(set(labels)) != len(labels):
            raise ModelError(f"Bands: labels must differ, got {', '.join(labels)}")
        if not all(np.isfinite(wavelengths)):
            raise ModelError("Bands: wavelengths must be finite numbers")
        if len(set(wavelengths)) != len(wavelengths):
            raise ModelError(f"Bands: wavelengths must differ (a polynomial in wavelength needs distinct "
                             f"points), got {', '.join(f'{w:g}' for w in wavelengths)}")

    def __len__(self) -> int:
        return len(self.labels)

    def text(self) -> str:
        """``label:wavelength`` pairs separated by commas (read back by :func:`parse_bands`)."""
        return ",".join(f"{label}:{wavelength:g}" for label, wavelength in zip(self.labels, self.wavelengths))

    def normalised_wavelengths(self) -> np.ndarray:
        """(K,) the wavelengths mapped linearly onto [-1, 1] (0 for a single band)."""
        w = np.asarray(self.wavelengths, dtype=np.float64)
        span = w.max() - w.min()
        if span == 0:
            return np.zeros_like(w)
        return 2.0 * (w - w.min()) / span - 1.0

    def chebyshev_basis(self, terms: int | None = None) -> np.ndarray:
        """(terms, K) ``T_m(x_k)``, m = 0 .. terms - 1 (default: K terms, a square matrix
        that maps K coefficients to K band values and back)."""
        terms = len(self) if terms is None else int(terms)
        return np.polynomial.chebyshev.chebvander(self.normalised_wavelengths(), max(terms - 1, 0)).T[:terms]

    def band_values(self, coefficients) -> np.ndarray:
        """(..., K) values in every band of Chebyshev ``coefficients`` (..., N), N <= K."""
        c = np.asarray(coefficients, dtype=np.float64)
        return c @ self.chebyshev_basis(c.shape[-1])

    def coefficients(self, values, terms: int | None = None) -> np.ndarray:
        """(..., terms) Chebyshev coefficients of band ``values`` (..., K): the least-squares
        polynomial of ``terms`` terms through them (exact for ``terms`` = K)."""
        v = np.asarray(values, dtype=np.float64)
        basis = self.chebyshev_basis(terms)  # (N, K)
        solution, *_ = np.linalg.lstsq(basis.T, np.moveaxis(v, -1, 0).reshape(len(self), -1), rcond=None)
        return np.moveaxis(solution.reshape((basis.shape[0],) + v.shape[:-1]), 0, -1)


def resolve_terms(value, n_bands: int, what: str) -> int:
    """The number of terms of a declaration: an int 0..K, or ``"band"`` (K)."""
    if isinstance(value, str):
        if value.lower() in (FREE_PER_BAND, "free", "bands"):
            return n_bands
        raise ModelError(f"{what}: terms must be a number 0..{n_bands} or 'band', got {value!r}")
    terms = int(value)
    if terms != value or not 0 <= terms <= n_bands:
        raise ModelError(f"{what}: terms must be a whole number from 0 to the number of bands ({n_bands}), "
                         f"got {value!r}")
    return terms


def parse_bands(text: str) -> Bands:
    """:class:`Bands` from ``label:wavelength`` pairs separated by commas, e.g.
    ``g:4770,r:6231,i:7625`` (wavelengths in any one unit, as GALFITM's A2)).

    Raises:
        ModelError: an item that is not LABEL:WAVELENGTH, or bands :class:`Bands` refuses.
    """
    labels, wavelengths = [], []
    for item in str(text).split(","):
        label, sep, wavelength = item.strip().partition(":")
        try:
            value = float(wavelength)
        except ValueError:
            value = None
        if not sep or not label or value is None:
            raise ModelError(f"{item.strip()!r} is not LABEL:WAVELENGTH (e.g. g:4770,r:6231,i:7625)")
        labels.append(label)
        wavelengths.append(value)
    return Bands(tuple(labels), tuple(wavelengths))
