"""The one loader of a galaxy's data: image, sigma, mask, PSF and EXPTIME.

Every source of galaxies (a GALFIT feedme, a catalog row, an imfit command line) names
files; :func:`load_galaxy` reads them the same way, checks them the same way and cuts
them to the fit region, and :func:`feedme_inputs` maps a feedme's lines onto it (with
the feedme's path and line numbers in every message). :func:`model_from_feedme` turns a
feedme's components (and its constraint file, line G) into a :class:`galprof.Model`.

Conventions: pixel coordinates are GALFIT's (1-based, the first pixel's centre at
(1, 1)); a fit region is (x1, x2, y1, y2), inclusive. Masks are boolean, True = bad.
Sigma is the 1-sigma noise per pixel [ADU]. Relative file names are taken as given
(relative to the current directory, as GALFIT does) unless the caller resolves them.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from astropy.io import fits

from ..errors import InputError, ModelError
from ..model import Component, Model
from .constraints import constraint_slots, read_constraints
from .feedme import Feedme
from .fits_io import exposure_time, read_image, read_mask, sigma_from_header


@dataclass
class GalaxyInputs:
    """One galaxy's data, cut to its fit region.

    Attributes:
        image: (H, W) data [ADU], float64.
        header: the input image's FITS header (for EXPTIME and the output image block).
        sigma: (H, W) 1-sigma noise [ADU].
        mask: (H, W) bool, True = bad pixel, or None.
        psf: 2-D empirical PSF (pixel response included; not cut), or None.
        exptime: EXPTIME [s] of the magnitude convention (1 when the header has none).
        sigma_note: where sigma came from (a file name, or how it was made).
        origin: 1-based (x, y) pixel of the image where the cut starts.
    """

    image: np.ndarray
    header: fits.Header
    sigma: np.ndarray
    mask: np.ndarray | None
    psf: np.ndarray | None
    exptime: float
    sigma_note: str
    origin: tuple[int, int] = (1, 1)


def _noise_from(array: np.ndarray, kind: str) -> np.ndarray:
    """sigma [ADU] from a noise image holding sigma, variance or weight (1/sigma^2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "variance":
            return np.sqrt(array)
        if kind == "weight":
            return np.where(array > 0, 1.0 / np.sqrt(array), 0.0)
    return array


def load_galaxy(image: str, *, hdu: int | None = None, sigma: str | None = None, sigma_kind: str = "sigma",
                psf: str | None = None, mask: str | None = None, segmentation: str | None = None,
                sigma_hdu: int | None = None, psf_hdu: int | None = None,
                target_label: int | None = None, region: tuple[int, int, int, int] | None = None,
                default_sigma: Callable | None = None, where: dict | None = None) -> GalaxyInputs:
    """Read and check one galaxy's files.

    Args:
        image: FITS file of the data [ADU]; ``hdu``: its HDU (None: the first with data).
        sigma: noise image of the image's shape, holding sigma [ADU] (``sigma_kind``
            ``"sigma"``), variances or weights 1/sigma^2; None: ``default_sigma``.
        psf: FITS file of the empirical PSF (must be finite).
        mask: bad-pixel mask: a FITS image (non-zero = bad) or a text list of 1-based
            ``x y`` pixels.
        segmentation, target_label: a segmentation map; every segment other than
            ``target_label`` (and not 0) is masked.
        region: 1-based inclusive (x1, x2, y1, y2) to cut every image to (None: all).
        default_sigma: callable(image, header, mask) -> (sigma, note) used without a noise
            image; default GALFIT's sigma from the header (:func:`sigma_from_header`).
        sigma_hdu, psf_hdu: HDUs of the noise image and the PSF (None: the first with data).
        where: names for the messages: {"image": "feedme.txt:3 (line A)", ...}; a
            missing file is reported with its entry.

    Raises:
        InputError: a missing or unreadable file, shapes that differ, a region outside
            the image, a PSF with NaN or infinite values, or no usable pixel.
    """
    where = where or {}

    def existing(name: str, key: str) -> str:
        if not pathlib.Path(name).exists():
            label = where.get(key, key)
            raise InputError(f"{label}: file {name!r} does not exist", path=name)
        return name

    data, header = read_image(existing(image, "image"), hdu)
    ny, nx = data.shape
    bad = np.zeros(data.shape, dtype=bool)
    if mask:
        bad |= read_mask(existing(mask, "mask"), data.shape)
    if segmentation:
        segments, _ = read_image(existing(segmentation, "segmentation"))
        if segments.shape != data.shape or target_label is None:
            raise InputError(f"segmentation map {segmentation} needs the image's shape and a target_label",
                             path=segmentation)
        segments = segments.astype(int)
        if not np.any(segments == int(target_label)) or int(target_label) == 0:
            raise InputError(f"target label {target_label} does not occur in the segmentation map {segmentation}",
                             path=segmentation)
        bad |= (segments != 0) & (segments != int(target_label))  # every other source's segment
    if sigma:
        noise, _ = read_image(existing(sigma, "sigma"), sigma_hdu)
        if noise.shape != data.shape:
            raise InputError(f"{where.get('sigma', 'sigma')}: sigma image {sigma} has shape {noise.shape[::-1]} but "
                             f"the image {image} has {data.shape[::-1]} (x, y)", path=sigma)
        noise = _noise_from(noise, sigma_kind)
        note = sigma
    else:
        noise, note = (default_sigma or (lambda d, h, m: sigma_from_header(d, h, mask=m)))(data, header,
                                                                                        bad if bad.any() else None)
    psf_array = None
    if psf:
        psf_array, _ = read_image(existing(psf, "psf"), psf_hdu)
        if not np.all(np.isfinite(psf_array)):
            raise InputError(f"PSF {psf} holds NaN or infinite values", path=psf)
    origin = (1, 1)
    if region is not None:
        x1, x2, y1, y2 = region
        if x1 < 1 or y1 < 1 or x2 > nx or y2 > ny or x2 < x1 or y2 < y1:
            raise InputError(f"{where.get('region', 'fit region')}: fit region [{x1}:{x2},{y1}:{y2}] lies outside "
                             f"the image {image} ({nx} x {ny} pixels)", path=image)
        cut = (slice(y1 - 1, y2), slice(x1 - 1, x2))
        data, noise, bad = data[cut], noise[cut], bad[cut]
        origin = (x1, y1)
    usable = np.isfinite(data) & np.isfinite(noise) & (noise > 0) & ~bad
    if not usable.any():
        raise InputError(f"{image}: no usable pixel (all masked, NaN or with sigma <= 0)", path=image)
    return GalaxyInputs(data, header, noise, bad if bad.any() else None, psf_array, exposure_time(header), note,
                        origin)


def feedme_path(feedme: Feedme, name: str, key: str) -> str:
    """A file named on line ``key`` of ``feedme``, checked to exist (the message names the
    feedme, its line number and the line's letter)."""
    if not pathlib.Path(name).exists():
        line = feedme.line_numbers.get(key, "?")
        raise InputError(f"{feedme.path}:{line}: file {name!r} (line {key}) does not exist", path=name, line=line)
    return name


def feedme_inputs(feedme: Feedme) -> GalaxyInputs:
    """The data a feedme names (lines A, C, D, F), cut to its fit region (line H)."""
    if feedme.psf_diffusion_kernel:
        raise InputError(f"{feedme.path}:{feedme.line_numbers.get('D', '?')}: a PSF diffusion kernel is not "
                         "supported; give the PSF alone on line D", path=str(feedme.path))
    line = feedme.line_numbers.get
    where = {"image": f"{feedme.path}:{line('A', '?')} (line A)", "sigma": f"{feedme.path}:{line('C', '?')}",
             "psf": f"{feedme.path}:{line('D', '?')} (line D)", "mask": f"{feedme.path}:{line('F', '?')} (line F)",
             "region": f"{feedme.path}:{line('H', '?')}"}
    return load_galaxy(feedme.input_image, hdu=feedme.input_extension, sigma=feedme.sigma_image, psf=feedme.psf_image,
                       mask=feedme.mask, region=tuple(feedme.fit_region), where=where)


def model_from_feedme(feedme: Feedme) -> Model:
    """The :class:`galprof.Model` of a feedme: its components with their initial values
    and fit flags, and the constraints of its constraint file (line G)."""
    comps = []
    for c in feedme.components:
        fixed = {name for name, free in c.free.items() if not free}
        comps.append(Component(c.profile, dict(c.values), fixed=frozenset(fixed), skip_in_residual=c.skip_in_residual))
    constraints = ()
    if feedme.constraint_file:
        path = feedme_path(feedme, feedme.constraint_file, "G")
        constraints = tuple(read_constraints(str(path), constraint_slots(feedme.components)))
    try:
        return Model(tuple(comps), constraints)
    except ModelError as err:
        raise ModelError(f"{feedme.constraint_file or feedme.path}: {err}") from None


__all__ = ["GalaxyInputs", "feedme_inputs", "feedme_path", "load_galaxy", "model_from_feedme"]
