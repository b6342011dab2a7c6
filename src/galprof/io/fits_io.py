"""FITS input for GALFIT-style fits: images, bad-pixel masks and the default sigma image.

Arrays are numpy arrays indexed ``[j, i]`` with j along NAXIS2 (y) and i along NAXIS1
(x); the pixel ``[j, i]`` is GALFIT's 1-based pixel (x, y) = (i + 1, j + 1) (see
:mod:`galprof.conventions`). Coordinates in ASCII masks are 1-based, as in GALFIT.
"""

from __future__ import annotations

import math
import pathlib
import re
import warnings

import numpy as np
from astropy.io import fits

from ..errors import InputError

__all__ = [
    "InputError",
    "split_extension",
    "read_image",
    "read_mask",
    "sigma_from_header",
    "exposure_time",
    "sky_statistics",
    "image_unit_kind",
    "SigmaImageWarning",
    "DEFAULT_GAIN",
    "DEFAULT_NCOMBINE",
]

#: Gain [e-/ADU] assumed when neither GAIN nor ATODGAIN is in the header. GALFIT's
#: documentation (advisory page) states its defaults as EXPTIME=1, GAIN=7, NCOMBINE=1.
DEFAULT_GAIN = 7.0
#: Number of combined exposures assumed when NCOMBINE is absent.
DEFAULT_NCOMBINE = 1.0


class SigmaImageWarning(UserWarning):
    """GALFIT's sigma image (``C) none``) is being made from an image that does not look
    like counts: BUNIT names a count rate or a calibrated flux, or the background scatter
    is smaller than the Poisson noise of the background level itself. The source's Poisson
    term is then wrong; give a sigma image instead (or convert the image to counts)."""

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fz", ".fits.fz")


# ----------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------


def _describe(path, extension) -> str:
    return f"{path}[{extension}]" if extension is not None else str(path)


_EXTENSION = re.compile(r"^(?P<name>.+?)\[(?P<ext>[^\[\]]*)\]$")


def split_extension(spec: str) -> tuple[str, int | None]:
    """'image.fits[N]' -> ('image.fits', N); 'image.fits' -> ('image.fits', None).

    Raises:
        InputError: brackets that do not hold an HDU number (named in the message).
    """
    match = _EXTENSION.match(spec)
    if match is None:
        if "[" in spec or "]" in spec:
            raise InputError(f"cannot read the extension in {spec!r}; use 'image.fits[N]'")
        return spec, None
    ext = match.group("ext").strip()
    if not ext.isdigit():
        raise InputError(f"galprof does not support the extension syntax [{ext}] yet; give the HDU number, "
                         "e.g. 'image.fits[1]'")
    return match.group("name"), int(ext)


def read_image(path: str, extension: int | None = None) -> tuple[np.ndarray, fits.Header]:
    """Read a 2-D FITS image as float64.

    Parameters
    ----------
    path : str
        FITS file.
    extension : int, optional
        HDU number (0 = primary). When None, the primary HDU is used if it holds data,
        otherwise the first image extension that does.

    Returns
    -------
    data : numpy.ndarray, shape (NAXIS2, NAXIS1), float64
        Pixel values with BSCALE/BZERO applied; ``data[j, i]`` is the 1-based pixel
        (x, y) = (i + 1, j + 1).
    header : astropy.io.fits.Header
        A copy of that HDU's header.

    Raises
    ------
    InputError
        The file is missing or not FITS, the extension does not exist or holds no
        image, or the data are not 2-D.
    """
    p = pathlib.Path(path)
    if not p.exists():
        raise InputError(f"{path}: file not found")
    if p.is_dir():
        raise InputError(f"{path}: is a directory, not a FITS file")
    try:
        with fits.open(p, memmap=False) as hdul:
            if extension is not None:
                if not 0 <= extension < len(hdul):
                    raise InputError(f"{_describe(path, extension)}: no such extension "
                                     f"(the file has HDUs 0..{len(hdul) - 1})")
                hdu = hdul[extension]
                if not hdu.is_image:
                    raise InputError(f"{_describe(path, extension)}: extension {extension} is a "
                                     f"{type(hdu).__name__}, not an image")
                if hdu.data is None:
                    raise InputError(f"{_describe(path, extension)}: extension {extension} holds no data")
                chosen = extension
            else:
                chosen = None
                for index, hdu in enumerate(hdul):
                    if hdu.is_image and hdu.data is not None:
                        chosen = index
                        break
                if chosen is None:
                    raise InputError(f"{path}: no HDU holds image data")
                hdu = hdul[chosen]
            data = np.asarray(hdu.data)
            header = hdu.header.copy()
    except InputError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"{_describe(path, extension)}: cannot read as FITS: {err}") from None
    if data.ndim != 2:
        raise InputError(f"{_describe(path, chosen)}: expected a 2-D image, got data of shape {data.shape}")
    if not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{_describe(path, chosen)}: image data are not numeric ({data.dtype})")
    return np.array(data, dtype=np.float64), header


# ----------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------


def looks_like_fits(path: pathlib.Path) -> bool:
    """True when ``path`` is named like a FITS file (.fits, .fit, .fts, gzipped too) or starts
    with the FITS signature or gzip's magic number (a mask may be a FITS image or a text list)."""
    name = path.name.lower()
    if name.endswith(_FITS_SUFFIXES):
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    return head.startswith(b"SIMPLE  =") or head.startswith(b"\x1f\x8b")


def read_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
    """Read a GALFIT bad-pixel mask.

    Parameters
    ----------
    path : str
        Either a FITS image of the same shape as the data, where every non-zero (or
        NaN) pixel is bad, or an ASCII file with one bad pixel per line given as
        ``x y`` in 1-based pixel coordinates (blank lines and ``#`` comments allowed).
        A file is taken as FITS when its name ends in a FITS suffix or its content
        starts with the FITS signature.
    shape : tuple of int
        (NAXIS2, NAXIS1) of the data image.

    Returns
    -------
    numpy.ndarray of bool, shape ``shape``
        True where a pixel is bad (excluded from the fit).

    Raises
    ------
    InputError
        Missing file, FITS mask of another shape (both shapes are named), or an ASCII
        line that is not two integers or points outside the image (``path:line:``).
    """
    shape = (int(shape[0]), int(shape[1]))
    p = pathlib.Path(path)
    if not p.exists():
        raise InputError(f"{path}: mask file not found")
    if looks_like_fits(p):
        data, _ = read_image(path)
        if data.shape != shape:
            raise InputError(f"{path}: mask has shape {data.shape} (NAXIS2, NAXIS1) but the image has shape {shape}")
        return (data != 0) | ~np.isfinite(data)
    mask = np.zeros(shape, dtype=bool)
    ny, nx = shape
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise InputError(f"{path}: cannot read the mask: {err.strerror or err}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        tokens = body.replace(",", " ").split()
        if len(tokens) != 2:
            raise InputError(f"{path}:{number}: expected 'x y' (two 1-based pixel coordinates), got {body!r}")
        coords = []
        for token in tokens:
            try:
                value = float(token)
            except ValueError:
                raise InputError(f"{path}:{number}: {token!r} is not a pixel coordinate") from None
            if not math.isfinite(value) or value != int(value):
                raise InputError(f"{path}:{number}: pixel coordinates must be integers, got {token!r}")
            coords.append(int(value))
        x, y = coords
        if not (1 <= x <= nx and 1 <= y <= ny):
            raise InputError(f"{path}:{number}: pixel ({x}, {y}) is outside the image "
                             f"(x 1..{nx}, y 1..{ny}; coordinates are 1-based)")
        mask[y - 1, x - 1] = True
    return mask


# ----------------------------------------------------------------------------------------
# Header quantities and the default sigma image
# ----------------------------------------------------------------------------------------


def _header_float(header, keys, *, positive: bool = True) -> tuple[float | None, str | None]:
    """First usable numeric value among ``keys``: (value, key) or (None, None)."""
    if header is None:
        return None, None
    for key in keys:
        if key not in header:
            continue
        try:
            value = float(header[key])
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        if positive and value <= 0:
            continue
        if not positive and value < 0:
            continue
        return value, key
    return None, None


def exposure_time(header) -> float:
    """EXPTIME [s] from a FITS header; 1.0 when absent, not a number or not positive.

    This is the EXPTIME of the magnitude convention
    mag = zeropoint - 2.5 log10(flux [ADU] / EXPTIME) (GALFIT's default is also 1).
    """
    value, _ = _header_float(header, ("EXPTIME",))
    return 1.0 if value is None else value


def _clipped_normal_factor(t: float) -> float:
    """std of a unit normal truncated to [-t, t]: sqrt(1 - 2 t phi(t) / (2 Phi(t) - 1))."""
    phi = math.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    inside = math.erf(t / math.sqrt(2.0))  # 2 Phi(t) - 1
    return math.sqrt(max(1.0 - 2.0 * t * phi / inside, 1e-12))


def _unclipped_rms(rms: float, limit: float) -> float:
    """The sigma of a normal distribution whose part within +-``limit`` (same units) has
    standard deviation ``rms``: solves rms = sigma * f(limit / sigma) by fixed-point
    iteration (f: :func:`_clipped_normal_factor`; converges in a few steps for limit >~ 2 rms)."""
    sigma = rms
    for _ in range(50):
        updated = rms / _clipped_normal_factor(limit / sigma)
        if abs(updated - sigma) <= 1e-12 * sigma:
            return updated
        sigma = updated
    return sigma


def sky_statistics(data: np.ndarray, mask: np.ndarray | None = None, *, nsigma: float = 3.0,
                   max_iterations: int = 20, unbiased: bool = False) -> tuple[float, float, int]:
    """Background level and RMS by iterative sigma clipping.

    Pixels more than ``nsigma`` standard deviations from the median are rejected until
    no more are; the level is the median and the RMS the (population) standard
    deviation of the kept pixels.

    Clipping a Gaussian at +-3 of its own (shrinking) standard deviation cuts its tails:
    the plain RMS of the kept pixels is then about 1.5 % below the true sigma (the
    fixed point of s = sigma f(3 s / sigma), f(t) = sqrt(1 - 2 t phi(t) / (2 Phi(t) - 1))
    the standard deviation of a unit normal truncated to [-t, t]). With ``unbiased``
    that is undone: the RMS returned is the sigma of the normal distribution whose part
    within the final clipping limit (``nsigma`` x the kept pixels' RMS) has the kept
    pixels' RMS. This assumes Gaussian background noise (as is sky plus read noise).

    Parameters
    ----------
    data : numpy.ndarray
        Image [ADU]; non-finite pixels are ignored.
    mask : numpy.ndarray of bool, optional
        True for pixels to ignore.
    unbiased : bool
        Correct the RMS for the clipping of Gaussian tails (see above).

    Returns
    -------
    level : float
        Median of the kept pixels [ADU] (NaN when no pixel is usable).
    rms : float
        Their standard deviation [ADU] (NaN when fewer than 2), corrected with ``unbiased``.
    n : int
        Number of pixels kept.
    """
    values = np.asarray(data, dtype=np.float64)
    good = np.isfinite(values)
    if mask is not None:
        good &= ~np.asarray(mask, dtype=bool)
    kept = values[good]
    if kept.size == 0:
        return float("nan"), float("nan"), 0
    for _ in range(max_iterations):
        if kept.size < 2:
            break
        level = np.median(kept)
        rms = kept.std()
        if rms == 0:
            break
        keep = np.abs(kept - level) <= nsigma * rms
        if keep.all():
            break
        kept = kept[keep]
    rms = float(kept.std()) if kept.size >= 2 else float("nan")
    if unbiased and math.isfinite(rms) and rms > 0:
        rms = _unclipped_rms(rms, nsigma * rms)
    return float(np.median(kept)), rms, int(kept.size)


_RATE_UNITS = ("/s", "/sec", "/second", "/seconds", "s-1", "s**-1", "s^-1", "sec-1", "cps", "persec", "persecond")
_FLUX_UNITS = ("jy", "maggie", "nmgy", "erg", "w/m", "w.m")
_COUNT_UNITS = ("adu", "adus", "dn", "dns", "count", "counts", "electron", "electrons", "e", "e-", "photon",
                "photons", "data number", "datanumber")


def image_unit_kind(header) -> tuple[str, str | None]:
    """What the BUNIT card of ``header`` says the pixels hold: (kind, BUNIT as written).

    kind is ``"rate"`` (counts, electrons or ADU per second: a unit ending in ``/s``,
    ``s-1``, ``cps`` ...), ``"flux"`` (a calibrated flux: Jy, maggies, erg ...),
    ``"counts"`` (ADU, DN, counts, electrons, photons) or ``"unknown"`` (no BUNIT, or a
    unit not recognised). GALFIT's sigma recipe needs ``"counts"``: pixel x GAIN must be
    electrons.
    """
    if header is None or "BUNIT" not in header:
        return "unknown", None
    unit = str(header["BUNIT"]).strip()
    compact = unit.lower().replace(" ", "")
    if any(word in compact for word in _FLUX_UNITS) or compact.startswith("mag"):  # erg/s/cm2: a flux, not a rate
        return "flux", unit
    if compact.endswith(_RATE_UNITS) or "/s/" in compact or "s-1" in compact:
        return "rate", unit
    if compact in _COUNT_UNITS or unit.lower() in _COUNT_UNITS:
        return "counts", unit
    return "unknown", unit


def _units_problem(header, gain: float, ncombine: float, level: float, rms: float, n_sky: int,
                   min_sky_pixels: int) -> str | None:
    """Why the image does not look like counts (a message), or None.

    Two tests: GALFIT's documented one (the pixels must be counts, not counts per second:
    BUNIT, and EXPTIME, which is then 1 for a rate image but the exposure time here), and
    a physical one: in counts, the background scatter cannot be much smaller than the
    Poisson noise of the background level itself, sky_rms^2 >= sky / (GAIN x NCOMBINE)
    (read noise only adds). It is applied when the background level is positive (not
    sky-subtracted); less than a quarter of that variance means another unit or a GAIN
    that does not apply to these pixels.
    """
    kind, unit = image_unit_kind(header)
    exptime, _ = _header_float(header, ("EXPTIME",))
    if kind == "rate":
        note = (f"BUNIT={unit!r} is a count rate, but GALFIT's sigma image (C) none) needs counts (pixel x GAIN = "
                "electrons): the source's Poisson variance is then too large by the exposure time")
        if exptime is not None and exptime != 1.0:
            note += (f"; and EXPTIME={exptime:g} is not 1 as GALFIT expects for a rate image, so the magnitudes "
                     f"(J - 2.5 log10(flux / EXPTIME)) are {2.5 * math.log10(exptime):+.3f} mag off too")
        return note + "; multiply the image by the exposure time (and set EXPTIME to it), or give a sigma image"
    if kind == "flux":
        return (f"BUNIT={unit!r} is a calibrated flux, not counts: GALFIT's sigma image (C) none) needs pixel x "
                "GAIN = electrons, so its Poisson term is meaningless here; give a sigma image")
    if n_sky >= min_sky_pixels and math.isfinite(rms) and rms > 0 and level > 0:
        poisson = level / (gain * ncombine)
        if rms**2 < 0.25 * poisson:
            return (f"the background scatter (sky_rms={rms:.4g}) is less than half the Poisson noise of the "
                    f"background level itself (sqrt(sky/(GAIN*NCOMBINE)) = {math.sqrt(poisson):.4g} for "
                    f"sky={level:.4g}, GAIN*NCOMBINE={gain * ncombine:g}): the image is probably not in counts "
                    "(counts per second?) or GAIN does not apply to its units, and the source's Poisson term of "
                    "GALFIT's sigma image (C) none) is then wrong; give a sigma image")
    return None


def sigma_from_header(data: np.ndarray, header, *, mask: np.ndarray | None = None,
                      min_sky_pixels: int = 10, unbiased: bool = True) -> tuple[np.ndarray, str]:
    """GALFIT 3's sigma image [ADU] for when no sigma image is given (``C) none``).

    What GALFIT documents (users.obs.carnegiescience.edu/peng/work/galfit/: the
    advisory page, "When one doesn't have an input sigma image" and "Three image header
    keywords"; the FAQ SIGMA_GEN.html; the sigma/chi^2 FAQ CHI2.html):

    * without a sigma image GALFIT creates one internally from the data; the pixels must
      be in counts, not counts per second: what it needs is pixel x GAIN = electrons;
    * it reads GAIN (or ATODGAIN) [e-/ADU], NCOMBINE (the number of images *averaged*)
      and EXPTIME, with defaults GAIN=7, NCOMBINE=1, EXPTIME=1 (:data:`DEFAULT_GAIN`,
      :data:`DEFAULT_NCOMBINE`); EXPTIME enters the magnitudes only (1 for an image in
      flux units, the total exposure time for an image in counts, the single-exposure
      time T for an average of N exposures of T seconds);
    * in GALFIT 3, RDNOISE "is no longer an important parameter": it "is now
      automatically estimated along with the background noise", as the sigma image need
      not tell sky Poisson noise from read noise;
    * sigma(x, y) is the Poisson (Gaussian) 1-sigma deviate of the flux at (x, y), in the
      image's units.

    The sky-estimation algorithm itself is not documented; galprof's, with
    g = GAIN x NCOMBINE (an average of N exposures of ADU x GAIN electrons each holds
    ADU x GAIN x N electrons, whose Poisson sigma is sqrt(ADU x GAIN x N) e- =
    sqrt(ADU / g) ADU of the average):

    1. the sky level and RMS of the (unmasked, finite) pixels by iterative 3-sigma
       clipping, the RMS corrected for the clipped Gaussian tails
       (:func:`sky_statistics` with ``unbiased=True``), and

           sigma^2 = sky_rms^2 + max(data - sky, 0) / g          [ADU^2]

       the measured background noise (sky photons and read noise together) plus the
       Poisson noise of the source's own electrons. This works whether or not the sky has
       been subtracted from the image.
    2. When no background RMS can be measured (fewer than ``min_sky_pixels`` usable
       pixels, or an RMS of 0 as in a noiseless simulation), the CCD equation from the
       header alone, with RDNOISE [e-] (default 0; GALFIT 3 uses RDNOISE only when the
       sky value is given by hand):

           sigma^2 = max(data, 0) / g + NCOMBINE * RDNOISE^2 / g^2   [ADU^2]

    Pixels where this gives sigma <= 0, or whose data are not finite, get sigma = 0;
    the likelihood masks such pixels (with a warning).

    A :class:`SigmaImageWarning` is issued (and noted in the description) when the
    image does not look like counts (:func:`image_unit_kind`): BUNIT is a count rate
    (then the source's Poisson variance is too large by the exposure time, and an EXPTIME
    other than 1 also shifts the magnitudes, as GALFIT's advisory warns) or a calibrated
    flux; or the measured background scatter is less than half the Poisson noise of the
    (positive) background level, sky_rms^2 < sky / (4 g), which counts cannot give.

    Parameters
    ----------
    data : numpy.ndarray, shape (ny, nx)
        Image [ADU]. Pass the whole input image (or at least an area with plenty of
        sky) so that the background statistics are not dominated by the galaxy; cut
        the result to the fit region afterwards.
    header : astropy.io.fits.Header or mapping
        Header of the image (may be None: all defaults).
    mask : numpy.ndarray of bool, optional
        Bad pixels (True) to leave out of the background statistics.
    min_sky_pixels : int
        Fewest usable pixels needed to measure the background.
    unbiased : bool
        Correct the clipped sky RMS for the Gaussian tails the clipping removed (default);
        False gives the plain RMS of the kept pixels (galprof before issue 20, ~1.5 % low).

    Returns
    -------
    sigma : numpy.ndarray, shape (ny, nx), float64
        1-sigma uncertainty of each pixel [ADU]; 0 where undefined.
    description : str
        The formula and the keyword values (and measured background) that were used,
        suitable for a log.
    """
    values = np.asarray(data, dtype=np.float64)
    gain, gain_key = _header_float(header, ("GAIN", "ATODGAIN"))
    ncombine, ncombine_key = _header_float(header, ("NCOMBINE",))
    rdnoise, rdnoise_key = _header_float(header, ("RDNOISE",), positive=False)
    if gain is None:
        gain, gain_text = DEFAULT_GAIN, f"GAIN={DEFAULT_GAIN:g} (absent: GALFIT's default)"
    else:
        gain_text = f"{gain_key}={gain:g}"
    if ncombine is None:
        ncombine, ncombine_text = DEFAULT_NCOMBINE, f"NCOMBINE={DEFAULT_NCOMBINE:g} (absent: default)"
    else:
        ncombine_text = f"NCOMBINE={ncombine:g}"
    if rdnoise is None:
        rdnoise, rdnoise_text = 0.0, "RDNOISE=0 (absent: default)"
    else:
        rdnoise_text = f"{rdnoise_key}={rdnoise:g}"
    g = gain * ncombine
    finite = np.isfinite(values)

    level, rms, n_sky = sky_statistics(values, mask, unbiased=unbiased)
    with np.errstate(invalid="ignore"):
        if n_sky >= min_sky_pixels and math.isfinite(rms) and rms > 0:
            variance = np.maximum(values - level, 0.0) / g + rms**2
            description = (
                "sigma^2 = max(data - sky, 0)/(GAIN*NCOMBINE) + sky_rms^2 [ADU^2], with "
                f"{gain_text}, {ncombine_text}, sky={level:.6g} ADU and sky_rms={rms:.6g} ADU measured by "
                f"3-sigma clipping over {n_sky} pixels ({'corrected for the clipped tails; ' if unbiased else ''}"
                "read noise is part of sky_rms, as in GALFIT 3)"
            )
        else:
            variance = np.maximum(values, 0.0) / g + ncombine * rdnoise**2 / g**2
            reason = "no usable background pixels" if n_sky < min_sky_pixels else "background RMS is 0"
            description = (
                "sigma^2 = max(data, 0)/(GAIN*NCOMBINE) + NCOMBINE*RDNOISE^2/(GAIN*NCOMBINE)^2 [ADU^2], with "
                f"{gain_text}, {ncombine_text}, {rdnoise_text} (background RMS not measurable: {reason})"
            )
    good = finite & (variance > 0)
    sigma = np.zeros_like(values)
    sigma[good] = np.sqrt(variance[good])
    note = _units_problem(header, gain, ncombine, level, rms, n_sky, min_sky_pixels)
    if note is not None:
        warnings.warn(note, SigmaImageWarning, stacklevel=2)
        description += "; WARNING: " + note
    n_zero = int(values.size - good.sum())
    if n_zero:
        description += f"; {n_zero} pixel(s) have sigma 0 (undefined) and will be masked"
    return sigma, description
