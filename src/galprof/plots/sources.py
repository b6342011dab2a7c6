"""One in-memory description of a fit, whatever produced it: :class:`FitView`.

A figure needs the data, the noise, the mask, the model and each component's model
image, the parameters with their errors, and the photometric calibration. This module
loads them from

* a GALFIT image block written by ``galprof fit`` (or GALFIT): :func:`from_imgblock`;
* an imfit best-fit parameter file written by ``galprof imfit`` (or imfit), with its
  image: :func:`from_imfit`;
* a row of a ``galprof batch`` results table: :class:`BatchResults`;
* a :class:`galprof.FitResult` in Python: :func:`from_fit_result`.

A multi-band fit is a :class:`MultiBandView`: one :class:`FitView` per band (each band's
data, model, noise, PSF-convolved components, zeropoint and EXPTIME), loaded from

* a GALFITM-style image block written by ``galprof fit`` (HDUs ``INPUT_<band>``,
  ``MODEL_<band>``, ``RESIDUAL_<band>``): :func:`from_galfitm_imgblock`;
* a :class:`galprof.fitting.MultiBandFitResult` in Python: :func:`from_multiband_result`;
* a row of a multi-band ``galprof batch`` table: :class:`BatchResults`.

Component images are always rendered with galprof's own renderer from the reported
parameters (PSF-convolved when the PSF is known), so a bulge/disk decomposition can be
shown for every kind of result.

Conventions are GALFIT's (:mod:`galprof.conventions`): positions are 1-based pixel
centres, ``data[j, i]`` is the pixel centred at (x, y) = (origin_x + i, origin_y + j);
PA in degrees counter-clockwise from +y; sizes along the major axis in pixels; q = b/a.
Surface brightnesses are mu = zp - 2.5 log10(I / (EXPTIME dx dy)) with I in ADU/pix.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
import warnings
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np
import torch
from astropy.io import fits
from astropy.table import Table

from ..errors import PlotError
from ..fitting.bands import Bands, parse_bands
from ..io.feedme import FeedmeError, read_feedme
from ..io.fits_io import (
    InputError,
    exposure_time,
    looks_like_fits,
    read_image,
    read_mask,
    sigma_from_header,
    split_extension,
)
from ..io.galfit_output import HEADER_KEYWORDS
from ..io.galfitm import read_galfitm_feedme
from ..io.imfit_config import (
    function_parameters,
    imfit_sigma,
    model_from_imfit,
    parse_imfit_config,
)
from ..io.imfit_output import fit_summary, run_inputs
from ..io.results import band_column, parameter_column
from ..pipeline.runner import BatchOptions
from ..pipeline.sources import (
    CatalogError,
    Failed,
    prepare,
    read_catalog,
    template_from_file,
    with_bands,
)
from ..profiles import get_profile
from ..profiles.modifiers import profile_for_values
from ..render.config import RenderConfig
from ..render.psf import prepare_psf, stack_psfs
from ..render.scene import Frame, render_parts

__all__ = ["BatchResults", "ComponentView", "FitView", "MultiBandView", "PlotError", "band_chi2_nu",
           "flagged_parameters", "from_fit_result", "from_galfitm_imgblock", "from_imfit", "from_imgblock",
           "from_multiband_result", "is_galfitm_imgblock", "load_result", "magnitude_bands", "parameter_key",
           "render_components", "table_bands", "with_frame"]


# ------------------------------------------------------------------------ descriptions

@dataclass(frozen=True)
class ComponentView:
    """One fitted component.

    Attributes:
        number: 1-based component number (as in the feedme / results columns).
        profile: galprof profile name (``sersic``, ``expdisk``, ``sky``, ...).
        kind: ``elliptical``, ``point`` or ``sky``.
        values: best-fit parameters in galprof's names and units (1-based pixels,
            degrees CCW from +y, sizes along the major axis [pix], q = b/a).
        errors: 1-sigma errors (NaN where unknown; 0 for fixed parameters).
        free: which parameters were free.
        flagged: parameters that ended on a bound or have an undefined error.
        image: (H, W) the component's model [ADU/pix], PSF-convolved when the PSF was
            known (see :attr:`FitView.notes`).
        display: optional ``[(label, value, error, state)]`` to show instead of
            ``values`` (imfit's own parameterisation); state is ``free``, ``fixed``,
            ``flagged`` or ``tied``.
    """

    number: int
    profile: str
    kind: str
    values: dict
    errors: dict
    free: dict
    flagged: dict
    image: np.ndarray
    display: tuple = ()

    @property
    def label(self) -> str:
        return f"{self.number}: {self.profile}"


@dataclass(frozen=True)
class FitView:
    """Everything a figure shows about one fit.

    Attributes:
        name: a label (file name, or the row's id).
        data: (H, W) the fitted image [ADU/pix].
        model: (H, W) the total model [ADU/pix] (sky included).
        components: every component, sky ones included.
        sigma: (H, W) 1-sigma noise [ADU] or None; pixels with sigma <= 0 or NaN carry
            no information.
        mask: (H, W) bool, True for a bad (masked) pixel, or None.
        origin: 1-based (x, y) of the pixel ``data[0, 0]``.
        zeropoint: magnitude zeropoint for surface brightnesses, or None (then profiles
            are in ADU/pix).
        exptime: EXPTIME [s] of mu = zp - 2.5 log10(I / (EXPTIME dx dy)).
        pixel_scale: (dx, dy) [arcsec/pix] or None when unknown.
        chi2_nu: reduced chi^2 of the fit (NaN when unknown).
        status: the fit's status (``converged``, ``hit a bound: ...``, ...) or "".
        source: the file the result came from.
        notes: caveats to print on the figure (e.g. components not PSF-convolved).
    """

    name: str
    data: np.ndarray
    model: np.ndarray
    components: tuple
    sigma: np.ndarray | None = None
    mask: np.ndarray | None = None
    origin: tuple = (1, 1)
    zeropoint: float | None = None
    exptime: float = 1.0
    pixel_scale: tuple | None = None
    chi2_nu: float = float("nan")
    status: str = ""
    source: str = ""
    notes: tuple = ()

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    @property
    def residual(self) -> np.ndarray:
        """data - model [ADU/pix]."""
        return self.data - self.model

    @property
    def bad(self) -> np.ndarray:
        """(H, W) bool: pixels without information (masked, non-finite data, sigma <= 0)."""
        bad = ~np.isfinite(self.data)
        if self.mask is not None:
            bad |= self.mask
        if self.sigma is not None:
            bad |= ~(np.isfinite(self.sigma) & (self.sigma > 0))
        return bad

    @property
    def galaxy_components(self) -> tuple:
        """The non-sky components."""
        return tuple(c for c in self.components if c.kind != "sky")

    @property
    def sky(self) -> np.ndarray:
        """(H, W) sum of the sky components [ADU/pix] (zeros without one)."""
        total = np.zeros(self.data.shape)
        for c in self.components:
            if c.kind == "sky":
                total = total + c.image
        return total

    @property
    def surface_brightness_units(self) -> bool:
        """True when mu [mag/arcsec^2] can be computed (zeropoint and plate scale known)."""
        return self.zeropoint is not None and self.pixel_scale is not None

    def extent(self) -> tuple[float, float, float, float]:
        """imshow extent so that axis coordinates are 1-based pixel coordinates."""
        h, w = self.data.shape
        x1, y1 = self.origin
        return (x1 - 0.5, x1 + w - 0.5, y1 - 0.5, y1 + h - 0.5)


@dataclass(frozen=True)
class MultiBandView:
    """A multi-band fit (GALFITM's: one model fitted to every band together): one
    :class:`FitView` per band.

    Each band's view holds that band's data, model, sigma, mask, zeropoint and EXPTIME,
    its components rendered with its own PSF from its own band values (a parameter
    shared by the bands has the same value in every view, so the R_e ellipses of shared
    geometry coincide), and its reduced chi^2 (:func:`band_chi2_nu`).

    Attributes:
        name: a label (file name, or the row's id).
        bands: the :class:`galprof.fitting.bands.Bands` (labels and wavelengths, in the
            order of ``views``).
        views: (K,) one :class:`FitView` per band; ``views[k].chi2_nu`` is band k's.
        chi2_nu: reduced chi^2 of the whole fit (every band).
        status: the fit's status.
        source: the file the result came from.
        notes: caveats that concern every band.
    """

    name: str
    bands: Bands
    views: tuple
    chi2_nu: float = float("nan")
    status: str = ""
    source: str = ""
    notes: tuple = ()

    @property
    def labels(self) -> tuple:
        return tuple(self.bands.labels)

    def band(self, label: str) -> FitView:
        """The view of the band labelled ``label``."""
        if label not in self.bands.labels:
            raise PlotError(f"{self.name}: no band {label!r} (bands: {', '.join(self.bands.labels)})")
        return self.views[self.bands.labels.index(label)]


def band_chi2_nu(chi2_band, ndof, n_good) -> np.ndarray:
    """(K,) reduced chi^2 of each band of a multi-band fit.

    A multi-band fit has one number of degrees of freedom, ndof = N - C (N good pixels
    of all bands, C free coefficients). Band k gets the share of it of its good pixels,
    ndof_k = ndof N_k / N (so that the ndof_k add up to ndof and every band has the
    fit's chi^2_nu when every band fits equally well): chi^2_nu,k = chi^2_k / ndof_k.

    Args:
        chi2_band: (K,) chi^2 of each band.
        ndof: degrees of freedom of the whole fit.
        n_good: (K,) good pixels of each band.

    Returns:
        (K,) NaN where a band has no good pixel.
    """
    chi2_band = np.asarray(chi2_band, dtype=np.float64)
    n_good = np.asarray(n_good, dtype=np.float64)
    total = float(n_good.sum())
    share = float(ndof) * n_good / total if total > 0 else np.zeros_like(n_good)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(share > 0, chi2_band / np.where(share > 0, share, 1.0), np.nan)


def flagged_parameters(status: str) -> set:
    """The ``<k>_<name>`` parameters a STATUS names (``hit a bound: 1_n,2_r_s``,
    ``degenerate: 2_mag``, ``off the region: 2_x``); empty for other statuses."""
    status = str(status or "")
    if status.startswith(("hit a bound:", "degenerate:", "off the region:")):
        return {s.strip() for s in status.split(":", 1)[1].split(",")}
    return set()


# --------------------------------------------------------------------------- rendering

def profile_with_modifiers(name: str, names):
    """The profile class ``name`` with the shape modifiers (C0, Fourier modes) that the
    parameter ``names`` ask for; a PlotError names an unknown profile."""
    try:
        return profile_for_values(get_profile(name), names)
    except KeyError as err:
        raise PlotError(str(err.args[0])) from None


def render_components(components, shape, *, origin=(1, 1), zeropoint=0.0, exptime=1.0, pixel_scale=(1.0, 1.0),
                      psf=None, psf_oversampling: int = 1, convolution_box=None,
                      config: RenderConfig = RenderConfig()) -> np.ndarray:
    """Images of each component of a batch of galaxies with galprof's renderer.

    Args:
        components: ``[(profile name, {parameter: value or (B,) array}), ...]`` in
            galprof's names and units (1-based pixels of the full image, degrees, mag).
        shape: (H, W) of the images.
        origin: 1-based (x, y) of the first pixel.
        zeropoint, exptime: mag = zp - 2.5 log10(flux / EXPTIME); numbers or (B,) arrays.
        pixel_scale: (dx, dy) [arcsec/pix] (for surface-brightness amplitudes).
        psf: None, one 2-D ePSF, or a list of B of them.
        psf_oversampling: the PSF is sampled this many times finer than the data.
        convolution_box: GALFIT's line I.

    Returns:
        (B, C, H, W) float64 [ADU/pix]: component c of galaxy b, PSF-convolved (sky not).
    """
    h, w = int(shape[0]), int(shape[1])
    sizes = {np.size(v) for _, values in components for v in values.values()} - {1}
    bsz = sizes.pop() if sizes else 1

    def column(v):
        return torch.as_tensor(np.broadcast_to(np.asarray(v, dtype=np.float64), (bsz,)).copy())

    zp = np.asarray(zeropoint, dtype=np.float64)
    et = np.asarray(exptime, dtype=np.float64)
    frame = Frame(int(origin[0]), int(origin[1]), w, h, float(zp) if zp.ndim == 0 else torch.as_tensor(zp),
                  float(et) if et.ndim == 0 else torch.as_tensor(et), convolution_box,
                  pixel_scale=(float(pixel_scale[0]), float(pixel_scale[1])))
    prepared = None
    if psf is not None:
        max_shape = (2 * h + 1, 2 * w + 1)
        if isinstance(psf, (list, tuple)):
            prepared = stack_psfs([prepare_psf(p, oversampling=psf_oversampling, max_shape=max_shape,
                                               dtype=torch.float64) for p in psf])
        else:
            prepared = prepare_psf(psf, oversampling=psf_oversampling, max_shape=max_shape, dtype=torch.float64)
    out = np.zeros((bsz, len(components), h, w))
    with torch.no_grad():
        for c, (name, values) in enumerate(components):
            profile = profile_with_modifiers(name, values.keys())
            params = {k: column(values[k]) for k in profile.parameter_names()}
            parts = render_parts([(profile, params)], frame, prepared, config)
            out[:, c] = parts.total().numpy()
    return out


def _kind(profile_name: str, names) -> str:
    return profile_with_modifiers(profile_name, names).kind


# ------------------------------------------------------------------------ file helpers

def _resolve(name: str | None, *bases) -> pathlib.Path | None:
    """An existing file: ``name`` as given (relative to the current directory), or
    relative to one of ``bases``; None if none exists."""
    if not name or str(name).strip().lower() in ("none", ""):
        return None
    path = pathlib.Path(str(name).strip())
    candidates = [path] if path.is_absolute() else [path] + [pathlib.Path(b) / path for b in bases if b is not None]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return None


def _read_named(spec, what: str, bases, source) -> np.ndarray:
    """Read ``spec`` ('file.fits' or 'file.fits[N]'), found as given or relative to one
    of ``bases``; a missing file is a PlotError naming ``source`` and ``what``."""
    name, extension = split_extension(str(spec))
    found = _resolve(name, *bases)
    if found is None:
        raise PlotError(f"{source}: {what} {name} not found")
    return _read(found, extension, what)[0]


def _read(path, extension=None, what="image"):

    try:
        return read_image(str(path), extension)
    except (InputError, OSError, ValueError) as err:
        raise PlotError(f"cannot read the {what} {path}: {err}") from None


# --------------------------------------------------------------------- GALFIT imgblock

_VALUE = re.compile(r"^\s*(?P<open>[\[{*]?)\s*(?P<value>[-+]?(?:nan|inf|[\d.]+(?:[eE][-+]?\d+)?))\s*[\]}*]?"
                    r"(?:\s*\+/-\s*\*?\s*(?P<error>[-+]?(?:nan|inf|[\d.]+(?:[eE][-+]?\d+)?))\s*\*?)?\s*$",
                    re.IGNORECASE)


def parse_header_value(text: str) -> tuple[float, float, str]:
    """A GALFIT header parameter string -> (value, error, state).

    ``'12.3 +/- 0.1'`` -> free; ``'[12.3]'`` -> fixed (error 0); ``'{12.3}'`` -> tied
    (set by a constraint; error NaN); ``'*12.3* +/- *0.1*'`` -> flagged.
    """
    match = _VALUE.match(str(text))
    if not match:
        raise ValueError(f"not a GALFIT parameter value: {text!r}")
    value = float(match.group("value"))
    error = float(match.group("error")) if match.group("error") else float("nan")
    state = {"[": "fixed", "{": "tied", "*": "flagged"}.get(match.group("open"), "free")
    if state == "fixed":
        error = 0.0
    return value, error, state


def _keyword_names() -> dict[str, str]:

    return {v: k for k, v in HEADER_KEYWORDS.items()}


def _section(text: str, path) -> tuple[int, int, int, int]:
    match = re.fullmatch(r"\s*\[(\d+):(\d+),(\d+):(\d+)\]\s*", str(text))
    if not match:
        raise PlotError(f"{path}: FITSECT {text!r} is not [x1:x2,y1:y2]")
    return tuple(int(g) for g in match.groups())


def from_imgblock(path, *, psf=None, sigma=None, mask=None, pixel_scale=None, zeropoint=None,
                  config: RenderConfig = RenderConfig()) -> FitView:
    """A GALFIT image block (HDU 1 data, HDU 2 model with the fit's header cards, HDU 3
    residual) as a :class:`FitView`.

    The component images are rendered by galprof from the header's parameters, with the
    PSF of the ``PSF`` card (or ``psf``: a file name or an array). The sigma image is the
    ``SIGMA`` card's file cut to ``FITSECT``, or GALFIT's recipe applied to the fit
    region (:func:`galprof.io.fits_io.sigma_from_header`); the mask is the ``MASK``
    card's. File names are tried as given, then relative to the image block and to the
    feedme (``INITFILE``). The plate scale (feedme line K) comes from the ``INITFILE``
    feedme when it can be read, else from ``pixel_scale``.
    """
    path = pathlib.Path(path)
    try:
        with fits.open(path) as hdul:
            if len(hdul) < 3:
                raise PlotError(f"{path}: not a GALFIT image block (it has {len(hdul)} HDUs; expected data, "
                                "model and residual in HDUs 1-3)")
            data = np.asarray(hdul[1].data, dtype=np.float64)
            model = np.asarray(hdul[2].data, dtype=np.float64)
            header = hdul[2].header.copy()
            input_header = hdul[1].header.copy()
    except PlotError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise PlotError(f"cannot read the image block {path}: {err}") from None
    if "COMP_1" not in header:
        raise PlotError(f"{path}: not a GALFIT image block (HDU 2 has no COMP_1 card)")
    if data.ndim != 2 or data.shape != model.shape:
        raise PlotError(f"{path}: HDUs 1 and 2 must be 2-D images of one shape, got {data.shape} and {model.shape}")
    feedme = None
    initfile = _resolve(header.get("INITFILE"), path.parent)
    if initfile is not None:
        try:
            feedme = read_feedme(initfile)
        except (FeedmeError, OSError):
            feedme = None
    frame = _BlockFrame(bases=(path.parent,) + ((initfile.parent,) if initfile is not None else ()))
    if feedme is not None:
        frame = replace(frame, plate_scale=tuple(feedme.plate_scale), psf_oversampling=feedme.psf_oversampling,
                        convolution_box=feedme.convolution_box)
    return _block_view(path, path.name, data, model, header, input_header, frame, psf=psf, sigma=sigma, mask=mask,
                       pixel_scale=pixel_scale, zeropoint=zeropoint, config=config)


@dataclass(frozen=True)
class _BlockFrame:
    """What an image block's header does not say: where to look for its files and the
    feedme's plate scale (line K), PSF oversampling (E) and convolution box (I)."""

    bases: tuple = ()
    plate_scale: tuple | None = None
    psf_oversampling: int = 1
    convolution_box: tuple | None = None


def _header_components(header, path) -> list:
    """[(number, profile, kind, values, errors, free, flagged)] from GALFIT's ``COMP_i``
    and ``i_<KEY>`` cards."""
    inverse = _keyword_names()
    comps = []
    number = 1
    while f"COMP_{number}" in header:
        profile_name = str(header[f"COMP_{number}"]).strip()
        try:
            base = profile_with_modifiers(profile_name, ())
        except PlotError:
            raise PlotError(f"{path}: COMP_{number} = {profile_name!r} is not a profile galprof knows") from None
        values, errors, states = {}, {}, {}
        prefix = f"{number}_"
        for key in header:
            if not key.startswith(prefix) or key[len(prefix):] == "":
                continue
            suffix = key[len(prefix):]
            name = inverse.get(suffix, suffix.lower())
            try:
                value, error, state = parse_header_value(header[key])
            except ValueError as err:
                raise PlotError(f"{path}: card {key}: {err}") from None
            values[name], errors[name], states[name] = value, error, state
        if base.kind == "sky":
            for name in ("x", "y"):
                values.pop(name, None)
        profile = profile_with_modifiers(profile_name, values.keys())
        names = profile.parameter_names()
        missing = [n for n in names if n not in values]
        if missing:
            raise PlotError(f"{path}: component {number} ({profile_name}) lacks the card(s) "
                            + ", ".join(f"{number}_{n.upper()}" for n in missing))
        comps.append((number, profile_name, profile.kind, {n: values[n] for n in names},
                      {n: errors[n] for n in names}, {n: states[n] != "fixed" for n in names},
                      {n: states[n] == "flagged" for n in names}))
        number += 1
    return comps


def _block_view(path, name, data, model, header, input_header, frame: _BlockFrame, *, psf=None, sigma=None,
                mask=None, pixel_scale=None, zeropoint=None, config: RenderConfig = RenderConfig()) -> FitView:
    """One band of an image block as a :class:`FitView`: ``header`` holds GALFIT's cards
    (COMP_i, i_<KEY>, PSF, SIGMA, MASK, FITSECT, MAGZPT, ...), ``input_header`` the input
    image's (EXPTIME, GAIN for GALFIT's sigma recipe)."""
    h, w = data.shape
    x1, _, y1, _ = _section(header.get("FITSECT", f"[1:{w},1:{h}]"), path)
    notes = []
    bases = frame.bases
    if pixel_scale is None and frame.plate_scale is not None:
        pixel_scale = tuple(frame.plate_scale)
    if zeropoint is None:
        zeropoint = float(header["MAGZPT"]) if "MAGZPT" in header else None
    exptime = exposure_time(input_header)
    comps = _header_components(header, path)

    psf_array = None
    if psf is not None and not isinstance(psf, (str, pathlib.Path)):
        psf_array = np.asarray(psf, dtype=np.float64)
    else:
        card = str(header.get("PSF", "none")).split()
        psf_name = str(psf) if psf is not None else (card[0] if card else "none")
        psf_path = _resolve(psf_name, *bases)
        if psf_path is not None:
            psf_array, _ = _read(psf_path, what="PSF")
        elif psf_name.lower() != "none":
            notes.append(f"PSF {psf_name} not found: component images are not PSF-convolved")
    region_sigma = None
    if sigma is not None and not isinstance(sigma, (str, pathlib.Path)):
        region_sigma = np.asarray(sigma, dtype=np.float64)
    else:
        sigma_name = str(sigma) if sigma is not None else str(header.get("SIGMA", "none"))
        sigma_path = _resolve(sigma_name, *bases)
        if sigma_path is not None:
            full, _ = _read(sigma_path, what="sigma image")
            region_sigma = full[y1 - 1:y1 - 1 + h, x1 - 1:x1 - 1 + w] if full.shape != (h, w) else full
            if region_sigma.shape != (h, w):
                raise PlotError(f"{path}: sigma image {sigma_path} ({full.shape[::-1]} x, y) does not cover "
                                f"FITSECT {header.get('FITSECT')}")
        else:
            if sigma_name.lower() != "none":
                notes.append(f"sigma image {sigma_name} not found: sigma from the data (GALFIT's recipe)")
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                region_sigma, _ = sigma_from_header(data, input_header)
    region_mask = None
    if mask is not None and not isinstance(mask, (str, pathlib.Path)):
        region_mask = np.asarray(mask, dtype=bool)
    else:
        mask_name = str(mask) if mask is not None else str(header.get("MASK", "none"))
        mask_path = _resolve(mask_name, *bases)
        if mask_path is not None:
            region_mask = _region_mask(mask_path, (x1, y1), (h, w), header.get("DATAIN"), bases, path)
        elif mask_name.lower() != "none":
            notes.append(f"mask {mask_name} not found: no pixels shown as masked")

    images = render_components([(c[1], c[3]) for c in comps], (h, w), origin=(x1, y1),
                               zeropoint=0.0 if zeropoint is None else zeropoint, exptime=exptime,
                               pixel_scale=pixel_scale or (1.0, 1.0), psf=psf_array,
                               psf_oversampling=frame.psf_oversampling, convolution_box=frame.convolution_box,
                               config=config)[0]
    peak = float(np.nanmax(np.abs(model))) or 1.0
    mismatch = float(np.nanmax(np.abs(images.sum(0) - model))) / peak
    if mismatch > 2e-3:
        notes.append(f"galprof's component images differ from the block's model by {100 * mismatch:.2g} % "
                     "of its peak")
    components = tuple(ComponentView(number=c[0], profile=c[1], kind=c[2], values=c[3], errors=c[4], free=c[5],
                                     flagged=c[6], image=images[k]) for k, c in enumerate(comps))
    flags = str(header.get("FLAGS", "")).strip()
    any_flagged = any(any(c.flagged.values()) for c in components)
    status = "flagged: " + ",".join(f"{c.number}_{n}" for c in components for n, f in c.flagged.items() if f) \
        if any_flagged else ("converged" if not flags else f"flags: {flags}")
    status = str(header.get("STATUS", "")).strip() or status  # galprof's STATUS card, where written
    return FitView(name=name, data=data, model=model, components=components, sigma=region_sigma,
                   mask=region_mask, origin=(x1, y1), zeropoint=zeropoint, exptime=exptime,
                   pixel_scale=tuple(pixel_scale) if pixel_scale else None,
                   chi2_nu=float(header.get("CHI2NU", float("nan"))), status=status, source=str(path),
                   notes=tuple(notes))


# ------------------------------------------------------------- GALFITM image block

def is_galfitm_imgblock(hdul) -> bool:
    """Whether an open FITS file is a GALFITM-style multi-band image block: a
    ``BAND_INFO`` table, several ``MODEL_<band>`` extensions, or one with a ``BAND`` card
    (GALFIT's own single-band block has one ``MODEL_<band>`` extension and none of these)."""
    models = [h for h in hdul if str(h.name).upper().startswith("MODEL_")]
    return ("BAND_INFO" in [str(h.name).upper() for h in hdul] or len(models) > 1
            or any("BAND" in h.header for h in models))


def _band_cards(header, label: str) -> dict:
    """A ``MODEL_<band>`` header as the single-band cards of that band: ``<i>_<KEY>_<band>``
    becomes ``<i>_<KEY>``; the Chebyshev cards ``<i>_<KEY>_CHEB<m>`` and other bands'
    cards are left out."""
    suffix = "_" + str(label).upper()
    out = {}
    for card in header.cards:
        key = str(card.keyword).upper()
        if not key or key in ("COMMENT", "HISTORY"):
            continue
        if re.match(r"^\d+_", key):
            if re.search(r"_CHEB\d+$", key) or not key.endswith(suffix):
                continue
            key = key[:-len(suffix)]
        out[key] = card.value
    return out


def _table_rows(hdul, name: str) -> list[dict]:
    if name not in hdul or not isinstance(hdul[name], fits.BinTableHDU):
        return []
    data = hdul[name].data
    return [{c: table_cell(row[c]) for c in data.columns.names} for row in data]


def _band_item(item, k: int, n_bands: int, what: str, path):
    """Band k's entry of an override given once for every band or as K entries."""
    if item is None:
        return None
    if isinstance(item, (list, tuple)) or (isinstance(item, np.ndarray) and item.ndim == 3) or (
            isinstance(item, np.ndarray) and item.ndim == 1 and what == "zeropoint"):
        if len(item) != n_bands:
            raise PlotError(f"{path}: {len(item)} {what} entries for {n_bands} bands (give one, or one per band)")
        return item[k]
    return item


def from_galfitm_imgblock(path, *, psf=None, sigma=None, mask=None, pixel_scale=None, zeropoint=None,
                          config: RenderConfig = RenderConfig()) -> MultiBandView:
    """A GALFITM-style multi-band image block (:func:`galprof.io.galfitm.write_galfitm_imgblock`)
    as a :class:`MultiBandView`.

    Bands (labels and wavelengths) come from the ``BAND_INFO`` table (else the ``BAND``
    and ``WL`` cards of the ``MODEL_<band>`` headers). Each band is read as a GALFIT
    image block is (:func:`from_imgblock`): data from ``INPUT_<band>`` (or model +
    ``RESIDUAL_<band>`` when the block has no inputs), the model from ``MODEL_<band>``,
    parameters from its ``<i>_<KEY>_<band>`` cards, PSF, sigma and mask from its
    ``PSF``, ``SIGMA``, ``MASK`` cards (tried as written, then relative to the block and
    to the ``INITFILE`` feedme), the zeropoint from ``MAGZPT``, EXPTIME from the input
    header; plate scale, PSF oversampling and convolution box from the GALFITM feedme
    ``INITFILE`` when it can be read. Each band's chi^2_nu is :func:`band_chi2_nu` of its
    ``BANDCHI2`` card; the status is FIT_INFO's ``STATUS``.

    Args:
        psf, sigma, mask: override the recorded files: one (file name or array) for
            every band, or a list of K in band order.
        zeropoint: one for every band or K; pixel_scale: (dx, dy) [arcsec/pix].
    """
    path = pathlib.Path(path)
    try:
        with fits.open(path) as hdul:
            names = [h.name.upper() for h in hdul]
            if not is_galfitm_imgblock(hdul):
                raise PlotError(f"{path}: not a GALFITM image block (no MODEL_<band> extension)")
            band_info = _table_rows(hdul, "BAND_INFO")
            fit_info = (_table_rows(hdul, "FIT_INFO") or [{}])[0]
            model_names = [n for n in names if n.startswith("MODEL_")]
            if band_info:
                labels = [str(r["BAND"]).strip() for r in band_info]
                waves = [float(r.get("WL", k)) for k, r in enumerate(band_info)]
            else:
                labels = [str(hdul[n].header.get("BAND", n[len("MODEL_"):])).strip() for n in model_names]
                waves = [float(hdul[n].header.get("WL", k)) for k, n in enumerate(model_names)]
            bands_read = []
            for label in labels:
                key = label.upper()
                if f"MODEL_{key}" not in names:
                    raise PlotError(f"{path}: band {label} has no MODEL_{key} extension")
                model = np.asarray(hdul[f"MODEL_{key}"].data, dtype=np.float64)
                header = _band_cards(hdul[f"MODEL_{key}"].header, label)
                if f"INPUT_{key}" in names:
                    data = np.asarray(hdul[f"INPUT_{key}"].data, dtype=np.float64)
                    input_header = hdul[f"INPUT_{key}"].header.copy()
                elif f"RESIDUAL_{key}" in names:
                    data = model + np.asarray(hdul[f"RESIDUAL_{key}"].data, dtype=np.float64)
                    input_header = fits.Header()
                else:
                    raise PlotError(f"{path}: band {label} has neither INPUT_{key} nor RESIDUAL_{key}: the data "
                                    "are unknown")
                if data.ndim != 2 or data.shape != model.shape:
                    raise PlotError(f"{path}: band {label}: data and model must be 2-D images of one shape, got "
                                    f"{data.shape} and {model.shape}")
                bands_read.append((label, data, model, header, input_header))
    except PlotError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise PlotError(f"cannot read the image block {path}: {err}") from None
    try:
        bands = Bands(tuple(labels), tuple(waves))
    except ValueError as err:
        raise PlotError(f"{path}: BAND_INFO: {err}") from None
    first_header = bands_read[0][3]
    initfile = _resolve(fit_info.get("INITFILE") or first_header.get("INITFILE"), path.parent)
    frame = _BlockFrame(bases=(path.parent,) + ((initfile.parent,) if initfile is not None else ()))
    if initfile is not None:
        try:
            feedme = read_galfitm_feedme(initfile)
            frame = replace(frame, plate_scale=tuple(feedme.plate_scale), psf_oversampling=feedme.psf_oversampling,
                            convolution_box=feedme.convolution_box)
        except (FeedmeError, OSError, ValueError):
            pass
    n_bands = len(bands)
    status = str(fit_info.get("STATUS") or "").strip()
    if not status:
        flags = str(first_header.get("FLAGS", "")).strip()
        status = "converged" if not flags else f"flags: {flags}"
    views = []
    for k, (label, data, model, header, input_header) in enumerate(bands_read):
        view = _block_view(path, f"{path.name} [{label}]", data, model, header, input_header, frame,
                           psf=_band_item(psf, k, n_bands, "PSF", path),
                           sigma=_band_item(sigma, k, n_bands, "sigma", path),
                           mask=_band_item(mask, k, n_bands, "mask", path), pixel_scale=pixel_scale,
                           zeropoint=_band_item(zeropoint, k, n_bands, "zeropoint", path), config=config)
        views.append(replace(view, status=status))
    ndof = float(fit_info.get("NDOF") if fit_info.get("NDOF") is not None else first_header.get("NDOF", np.nan))
    chi2_band = [float(b[3].get("BANDCHI2", np.nan)) for b in bands_read]
    chi2_nu = band_chi2_nu(chi2_band, ndof, [int((~v.bad).sum()) for v in views])
    views = tuple(replace(v, chi2_nu=float(c)) for v, c in zip(views, chi2_nu))
    total = fit_info.get("CHI2NU")
    total = float(total) if total is not None else float(first_header.get("CHI2NU", np.nan))
    return MultiBandView(name=path.name, bands=bands, views=views, chi2_nu=total, status=status, source=str(path))


def _region_mask(mask_path, origin, shape, datain, bases, block):
    x1, y1 = origin
    h, w = shape
    if looks_like_fits(pathlib.Path(mask_path)):
        full, _ = _read(mask_path, what="mask")
        full = (full != 0) | ~np.isfinite(full)
    else:
        size = None
        image = _resolve(str(datain).split("[")[0] if datain else None, *bases)
        if image is not None:

            try:
                head = fits.getheader(image, 0 if "[" not in str(datain) else int(str(datain).split("[")[1][:-1]))
                size = (int(head["NAXIS2"]), int(head["NAXIS1"]))
            except (OSError, KeyError, ValueError, IndexError):
                size = None
        try:
            full = read_mask(str(mask_path), size or (y1 - 1 + h, x1 - 1 + w))
        except InputError as err:
            raise PlotError(f"{block}: mask {mask_path}: {err}") from None
    if full.shape == (h, w):
        return full
    region = full[y1 - 1:y1 - 1 + h, x1 - 1:x1 - 1 + w]
    if region.shape != (h, w):
        raise PlotError(f"{block}: mask {mask_path} does not cover the fit region")
    return region


# ---------------------------------------------------------------------- imfit best fit

def _imfit_command(text: str):
    """The inputs of the ``galprof imfit`` run recorded in a best-fit header (the
    ``# galprof inputs:`` line), as attributes named like imfit's options; None if absent."""


    found = run_inputs(text)
    if not found:
        return None
    kind = found.get("noise_kind", "sigma")
    return SimpleNamespace(image=found.get("image"), psf=found.get("psf"), mask=found.get("mask"),
                           noise=found.get("noise"), errors_are_variances=kind == "variance",
                           errors_are_weights=kind == "weight", gain=found.get("GAIN"),
                           readnoise=found.get("READNOISE"), exptime=found.get("EXPTIME"),
                           ncombined=found.get("NCOMBINED"), sky=found.get("ORIGINAL_SKY"),
                           legacy_pixel_integration=bool(found.get("legacy_pixel_integration", False)))


def from_imfit(bestfit, image=None, *, psf=None, mask=None, noise=None, errors_are: str = "sigma",
               zeropoint=None, pixel_scale=None, config: RenderConfig | None = None) -> FitView:
    """An imfit best-fit parameter file (``galprof imfit --save-params`` or imfit's
    ``bestfit_parameters_imfit.dat``) and its image as a :class:`FitView`.

    The image, PSF, mask, noise image and prelude overrides (GAIN, ...) default to
    those recorded by ``galprof imfit`` in the ``# galprof inputs:`` header line
    (file names tried as given, then relative to the best-fit file). The noise is the
    noise image (``errors_are``: ``sigma``, ``variance`` or ``weight``) or imfit's
    data-based sigma. imfit has no zeropoint: profiles are in ADU/pix unless
    ``zeropoint`` (and ``pixel_scale`` [arcsec/pix]) are given. The parameter text
    shows imfit's own parameters with the errors of the ``# +/- err`` comments.
    """
    bestfit = pathlib.Path(bestfit)
    try:
        text = bestfit.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise PlotError(f"cannot read the imfit best-fit file {bestfit}: {err.strerror or err}") from None
    try:
        cfg = parse_imfit_config(text, str(bestfit))
    except FeedmeError as err:
        raise PlotError(str(err)) from None
    args = _imfit_command(text)
    bases = [bestfit.parent]
    if image is None:
        image = getattr(args, "image", None)
        if image is None:
            raise PlotError(f"{bestfit}: the file does not name its image; give it (galprof plot {bestfit} "
                            "--image IMAGE)")
    image_name, ext = split_extension(str(image))
    image_path = _resolve(image_name, *bases)
    if image_path is None:
        raise PlotError(f"{bestfit}: image {image_name} not found")
    data, header = _read(image_path, ext)
    h, w = data.shape
    if psf is None and args is not None and args.psf:
        psf = args.psf
    psf_array = None
    if psf is not None:
        if isinstance(psf, (str, pathlib.Path)):
            psf_array = _read_named(psf, "PSF", bases, bestfit)
        else:
            psf_array = np.asarray(psf, dtype=np.float64)
    if mask is None and args is not None and args.mask:
        mask = args.mask
    region_mask = None
    if mask is not None:
        if isinstance(mask, (str, pathlib.Path)):
            found = _resolve(str(mask), *bases)
            if found is None:
                raise PlotError(f"{bestfit}: mask {mask} not found")
            region_mask = _region_mask(found, (1, 1), (h, w), None, bases, bestfit)
        else:
            region_mask = np.asarray(mask, dtype=bool)
    if noise is None and args is not None and args.noise:
        noise = args.noise
        errors_are = "variance" if args.errors_are_variances else "weight" if args.errors_are_weights else "sigma"
    prelude = dict(cfg.prelude)
    if args is not None:
        for key, attr in (("GAIN", "gain"), ("READNOISE", "readnoise"), ("EXPTIME", "exptime"),
                          ("NCOMBINED", "ncombined"), ("ORIGINAL_SKY", "sky")):
            if getattr(args, attr, None) is not None:
                prelude[key] = getattr(args, attr)
    if noise is not None:
        if isinstance(noise, (str, pathlib.Path)):
            values = _read_named(noise, "noise image", bases, bestfit)
        else:
            values = np.asarray(noise, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = {"sigma": values, "variance": np.sqrt(values),
                     "weight": np.where(values > 0, 1.0 / np.sqrt(values), 0.0)}[errors_are]
    else:
        sigma = imfit_sigma(data, prelude)
    if config is None:
        config = RenderConfig(legacy_pixel_integration=bool(getattr(args, "legacy_pixel_integration", False)))
    centre = ((w + 1) / 2.0, (h + 1) / 2.0)
    model = model_from_imfit(cfg, centre)
    # errors of the imfit parameters: the "# +/- err" comment of each parameter line
    lines = text.splitlines()

    def error_of(p):
        if p.fixed or not 0 < p.line <= len(lines):
            return 0.0 if p.fixed else float("nan")
        match = re.search(r"\+/-\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?|nan|inf)", lines[p.line - 1], re.IGNORECASE)
        return float(match.group(1)) if match else float("nan")

    comps, k = [], 0
    for fset in cfg.sets:
        for j, func in enumerate(fset.functions):
            comp = model.components[k]
            k += 1
            display = []
            if j == 0 and func.name not in ("FlatSky", "TiltedSkyPlane"):
                for p in (fset.x0, fset.y0):
                    display.append((p.name, p.value, error_of(p), "fixed" if p.fixed else "free"))
            for name in function_parameters(func.name):
                p = func.parameters[name]
                display.append((name, p.value, error_of(p), "fixed" if p.fixed else "free"))
            comps.append((k, comp, func, tuple(display)))
    images = render_components([(c.profile, dict(c.values)) for _, c, _, _ in comps], (h, w), origin=(1, 1),
                               zeropoint=0.0, exptime=1.0, psf=psf_array, config=config)[0]
    components = []
    for index, (number, comp, func, display) in enumerate(comps):
        names = comp.profile_class.parameter_names()
        values = {n: float(np.asarray(comp.values[n])) for n in names}
        components.append(ComponentView(
            number=number, profile=f"{comp.profile}" + (f" ({func.label})" if func.label else ""),
            kind=comp.profile_class.kind, values=values, errors={n: float("nan") for n in names},
            free={n: n not in comp.fixed for n in names}, flagged={n: False for n in names}, image=images[index],
            display=display))
    summary = fit_summary(text)
    chi2_nu = summary["reduced"]
    status = summary["status"] or {None: "", True: "converged", False: "max iterations"}[summary["converged"]]
    return FitView(name=bestfit.name, data=data, model=images.sum(0), components=tuple(components), sigma=sigma,
                   mask=region_mask, origin=(1, 1), zeropoint=zeropoint, exptime=1.0,
                   pixel_scale=tuple(pixel_scale) if pixel_scale else None, chi2_nu=chi2_nu, status=status,
                   source=str(bestfit), notes=("imfit parameterisation (counts/pixel intensities)",))


# ------------------------------------------------------------------------ FitResult

def from_fit_result(result, image, *, galaxy: int = 0, sigma=None, mask=None, psf=None, origin=(1, 1),
                    zeropoint=0.0, exptime=1.0, pixel_scale=None, psf_oversampling: int = 1,
                    config: RenderConfig = RenderConfig(), name: str = "") -> FitView:
    """Galaxy ``galaxy`` of a :class:`galprof.FitResult` with the arrays it was fitted to
    (``image``, ``sigma``, ``mask``: (H, W) or (B, H, W); ``psf``: the ePSF used).
    ``zeropoint``, ``exptime`` and ``pixel_scale`` as given to :func:`galprof.fit`
    (``pixel_scale`` None: profiles in ADU/pix)."""
    def pick(a, dtype=np.float64):
        if a is None:
            return None
        a = np.asarray(a, dtype=dtype)
        return a[galaxy] if a.ndim == 3 else a

    data = pick(image)
    values = result.component_values(galaxy)
    comps, images_in = [], []
    for k, comp in enumerate(result.model.components):
        comps.append(comp)
        images_in.append((comp.profile, values[k]))
    zp = np.asarray(zeropoint, dtype=np.float64)
    zp = float(zp[galaxy]) if zp.ndim else float(zp)
    et = np.asarray(exptime, dtype=np.float64)
    et = float(et[galaxy]) if et.ndim else float(et)
    one_psf = psf[galaxy] if isinstance(psf, (list, tuple)) or np.ndim(psf) == 3 else psf
    images = render_components(images_in, data.shape, origin=origin, zeropoint=zp, exptime=et,
                               pixel_scale=pixel_scale or (1.0, 1.0), psf=one_psf, psf_oversampling=psf_oversampling,
                               config=config)[0]
    views = []
    for k, comp in enumerate(comps):
        names = list(values[k])
        errors = {n: float(result.errors[galaxy, result.column(k + 1, n)]) for n in names}
        free = {n: bool(result.free[result.column(k + 1, n)]) for n in names}
        flagged = {n: bool(result.at_bound[galaxy, result.column(k + 1, n)]) and free[n] for n in names}
        views.append(ComponentView(k + 1, comp.profile, comp.profile_class.kind, values[k], errors, free, flagged,
                                   images[k]))
    status = (str(result.status[galaxy]) if result.status is not None
              else "converged" if bool(result.converged[galaxy]) else "max iterations")
    return FitView(name=name or f"galaxy {galaxy}", data=data, model=np.asarray(result.model_images[galaxy]),
                   components=tuple(views), sigma=pick(sigma), mask=None if mask is None else pick(mask, bool),
                   origin=tuple(origin), zeropoint=zp, exptime=et, pixel_scale=pixel_scale,
                   chi2_nu=float(result.chi2_nu[galaxy]), status=status)


def _galaxy_bands(arrays, galaxy: int, n_bands: int, what: str, dtype=np.float64):
    """(K, H, W) of one galaxy from (B, K, H, W), (K, H, W) or a list of K per-band
    arrays ((H, W) or (B, H, W)), as :func:`galprof.fitting.fit_bands` takes them."""
    if arrays is None:
        return None
    if isinstance(arrays, (list, tuple)):
        if len(arrays) != n_bands:
            raise PlotError(f"{what}: {len(arrays)} per-band arrays for {n_bands} bands")
        out = [np.asarray(a, dtype=dtype) for a in arrays]
        return np.stack([a[galaxy] if a.ndim == 3 else a for a in out])
    arr = np.asarray(arrays, dtype=dtype)
    if arr.ndim == 4:
        arr = arr[galaxy]
    if arr.ndim != 3 or arr.shape[0] != n_bands:
        raise PlotError(f"{what}: expected (B, {n_bands}, H, W), ({n_bands}, H, W) or a list of {n_bands} "
                        f"per-band arrays, got shape {arr.shape}")
    return arr


def _band_numbers(value, galaxy: int, n_bands: int, what: str) -> np.ndarray:
    """(K,) zeropoints or EXPTIMEs of one galaxy from a number, (K,) or (B, K)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n_bands, float(arr))
    if arr.ndim == 2:
        arr = arr[galaxy]
    if arr.shape != (n_bands,):
        raise PlotError(f"{what}: give a number, one per band ({n_bands},) or (B, {n_bands}); got shape "
                        f"{np.shape(value)}")
    return arr


def _galaxy_psfs(psf, galaxy: int, n_bands: int):
    """One galaxy's PSFs: None, one 2-D ePSF for every band, or a list of K."""
    if psf is None or not isinstance(psf, (list, tuple)):
        return psf
    if len(psf) == n_bands and all(np.ndim(p) == 2 for p in psf):
        return list(psf)
    if all(isinstance(p, (list, tuple)) for p in psf) and galaxy < len(psf) and len(psf[galaxy]) == n_bands:
        return list(psf[galaxy])
    raise PlotError(f"psf: give one 2-D PSF, a list of {n_bands} (one per band) or B lists of {n_bands}")


def from_multiband_result(result, images, *, model, galaxy: int = 0, sigma=None, mask=None, psf=None,
                          origin=(1, 1), zeropoint=0.0, exptime=1.0, pixel_scale=None, psf_oversampling: int = 1,
                          convolution_box=None, config: RenderConfig = RenderConfig(),
                          name: str = "") -> MultiBandView:
    """Galaxy ``galaxy`` of a :class:`galprof.fitting.MultiBandFitResult` with what it was
    fitted to, as a :class:`MultiBandView`.

    Args:
        result: the result of :func:`galprof.fit_bands` (or :func:`galprof.fit` with
            ``bands=``).
        images, sigma, mask: as given to the fit: (B, K, H, W), (K, H, W) for one galaxy,
            or a list of K per-band arrays.
        model: the :class:`galprof.Model` that was fitted (the result does not keep the
            profiles).
        psf: None, one 2-D ePSF for every band, a list of K, or B lists of K.
        zeropoint, exptime: a number, (K,) per band or (B, K), as given to the fit.
        origin, pixel_scale, psf_oversampling, convolution_box: as given to the fit
            (``pixel_scale`` None: profiles in ADU/pix).

    Each band's components are rendered from its band values with its PSF, zeropoint and
    EXPTIME; its model image is the fit's; its chi^2_nu is :func:`band_chi2_nu` of the
    fit's ``chi2_band`` over the band's good pixels.
    """
    bands = result.bands
    n_bands = len(bands)
    data = _galaxy_bands(images, galaxy, n_bands, "images")
    sig = _galaxy_bands(sigma, galaxy, n_bands, "sigma")
    bad = _galaxy_bands(mask, galaxy, n_bands, "mask")
    bad = None if bad is None else bad != 0
    zp = _band_numbers(zeropoint, galaxy, n_bands, "zeropoint")
    et = _band_numbers(exptime, galaxy, n_bands, "exptime")
    band_psf = _galaxy_psfs(psf, galaxy, n_bands)
    values = np.asarray(result.values[galaxy])  # (K, P)
    errors = np.asarray(result.errors[galaxy])
    status = str(result.status[galaxy])
    flagged = flagged_parameters(status)
    comps = []
    for ci, comp in enumerate(model.components):
        columns = [(j, n) for j, (c, n) in enumerate(result.names) if c == ci + 1]
        comps.append((comp, columns, {n: values[:, j] for j, n in columns}))
    images_out = render_components([(comp.profile, per_band) for comp, _, per_band in comps], data.shape[1:],
                                   origin=origin, zeropoint=zp, exptime=et, pixel_scale=pixel_scale or (1.0, 1.0),
                                   psf=band_psf, psf_oversampling=psf_oversampling,
                                   convolution_box=convolution_box, config=config)  # (K, C, H, W)
    label = name or f"galaxy {galaxy}"
    views = []
    for k, band in enumerate(bands.labels):
        components = []
        for ci, (comp, columns, _) in enumerate(comps):
            free = {n: bool(result.terms[j] > 0) and n not in comp.fixed for j, n in columns}
            components.append(ComponentView(
                ci + 1, comp.profile, comp.profile_class.kind, {n: float(values[k, j]) for j, n in columns},
                {n: float(errors[k, j]) for j, n in columns}, free,
                {n: free[n] and f"{ci + 1}_{n}" in flagged for _, n in columns}, images_out[k, ci]))
        views.append(FitView(name=f"{label} [{band}]", data=data[k], model=np.asarray(result.model_images[galaxy, k]),
                             components=tuple(components), sigma=None if sig is None else sig[k],
                             mask=None if bad is None else bad[k], origin=tuple(origin), zeropoint=float(zp[k]),
                             exptime=float(et[k]), pixel_scale=pixel_scale, status=status))
    chi2_nu = band_chi2_nu(result.chi2_band[galaxy], result.ndof[galaxy], [int((~v.bad).sum()) for v in views])
    views = tuple(replace(v, chi2_nu=float(c)) for v, c in zip(views, chi2_nu))
    return MultiBandView(name=label, bands=bands, views=views, chi2_nu=float(result.chi2_nu[galaxy]),
                         status=status)


# ---------------------------------------------------------------- batch results tables

_TABLE_SUFFIXES = {".fits": "fits", ".fit": "fits", ".fits.gz": "fits", ".csv": "ascii.csv", ".ecsv": "ascii.ecsv",
                   ".parquet": "parquet"}


def read_results_table(path):
    """An astropy Table from a results table (.fits, .csv, .ecsv, .parquet)."""
    path = pathlib.Path(path)
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    fmt = _TABLE_SUFFIXES.get(suffix)
    if fmt is None:
        raise PlotError(f"{path}: unknown table format {suffix!r} (use .fits, .csv, .ecsv or .parquet)")
    if not path.exists():
        raise PlotError(f"{path}: file not found")
    try:
        return Table.read(str(path), format=fmt)
    except (OSError, ValueError, TypeError) as err:
        raise PlotError(f"{path}: cannot read the table: {err}") from None


def table_cell(value):
    """A results-table cell as a plain Python value (None for a masked cell, str for bytes)."""
    if np.ma.is_masked(value):
        return None
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") else value


@dataclass
class BatchResults:
    """A ``galprof batch`` results table with what is needed to re-render its rows: the
    template (model, zeropoint, plate scale, PSF), the catalog (each row's image, sigma,
    PSF, mask) and the batch options (automatic masks are recomputed as the batch did).

    Built by :meth:`open`; :meth:`view` gives one row as a :class:`FitView`, or as a
    :class:`MultiBandView` when the template is a multi-band GALFITM feedme (``bands``
    set): each band is rendered with its own PSF, zeropoint and EXPTIME from the row's
    ``<k>_<KEY>_<band>`` columns (parameters that vary with wavelength) and
    ``<k>_<KEY>`` columns (parameters shared by the bands).
    """

    path: pathlib.Path
    table: object
    template: object = None
    sources: dict = field(default_factory=dict)  # id -> GalaxySource
    options: object = None
    problem: str = ""  # why rows cannot be re-rendered ("" when they can)
    config: RenderConfig = RenderConfig()

    @classmethod
    def open(cls, path, *, catalog=None, template=None) -> BatchResults:
        """Read the table; find its template and catalog (table metadata ``TEMPLATE``,
        ``CATALOG``, or the arguments), tried as recorded and relative to the table."""
        path = pathlib.Path(path)
        table = read_results_table(path)
        if "id" not in table.colnames:
            raise PlotError(f"{path}: not a results table (no 'id' column; columns: {', '.join(table.colnames[:12])})")
        meta = {str(k).upper(): v for k, v in table.meta.items()}
        out = cls(path, table)
        template_name = template or meta.get("TEMPLATE")
        catalog_name = catalog or meta.get("CATALOG")
        options = {}
        try:
            options = json.loads(meta.get("OPTIONS", "{}"))
        except (TypeError, ValueError):
            options = {}
        config = options.get("config") or {}
        out.config = RenderConfig(legacy_pixel_integration=bool(config.get("legacy_pixel_integration", False)))
        out.options = BatchOptions(auto_init=options.get("auto_init", "auto"),
                                   mask_mode=options.get("mask_mode", "others"), config=out.config)
        if not template_name:
            out.problem = (f"{path}: the table metadata name no template; give --template (and --catalog) to "
                           "re-render its rows")
            return out
        template_path = _resolve(str(template_name), path.parent)
        if template_path is None:
            out.problem = f"{path}: template {template_name} (from the table metadata) not found; give --template"
            return out
        try:
            out.template = template_from_file(str(template_path))
            if meta.get("BANDS") and out.template.bands is None:  # a single-band template run with --bands
                out.template = with_bands(out.template, parse_bands(meta["BANDS"]))
        except (CatalogError, ValueError, OSError) as err:
            out.problem = f"{path}: template {template_path}: {err}"
            return out
        if not catalog_name:
            out.problem = (f"{path}: the table metadata name no catalog (a table written before galprof "
                           "recorded it); give --catalog CATALOG")
            return out
        catalog_path = _resolve(str(catalog_name), path.parent)
        if catalog_path is None:
            out.problem = f"{path}: catalog {catalog_name} not found; give --catalog"
            return out
        try:
            out.sources = {s.id: s for s in read_catalog(str(catalog_path), out.template)}
        except (CatalogError, ValueError, OSError) as err:
            out.problem = f"{path}: catalog {catalog_path}: {err}"
        return out

    def __len__(self) -> int:
        return len(self.table)

    def ids(self) -> list[str]:
        return [str(table_cell(v)) for v in self.table["id"]]

    def index(self, row) -> int:
        """The 0-based table index of ``row``: an id, or ``#N`` / an int for the N-th row (0-based)."""
        if isinstance(row, (int, np.integer)):
            index = int(row)
        elif isinstance(row, str) and row.startswith("#") and row[1:].isdigit():
            index = int(row[1:])
        else:
            ids = self.ids()
            if str(row) not in ids:
                near = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
                raise PlotError(f"{self.path}: no row with id {row!r} (ids: {near})")
            index = ids.index(str(row))
        if not 0 <= index < len(self.table):
            raise PlotError(f"{self.path}: row #{index} does not exist (the table has {len(self.table)} rows)")
        return index

    def row(self, index: int) -> dict:
        r = self.table[index]
        return {name: table_cell(r[name]) for name in self.table.colnames}

    @property
    def bands(self):
        """The template's :class:`galprof.fitting.bands.Bands` for a multi-band run, else None."""
        return self.template.bands if self.template is not None else None

    def _components(self, row: dict, band: str | None = None):
        """[(number, profile, kind, values, errors, free, flagged)] of a row (NaN where
        absent). ``band``: a band label of a multi-band run: a parameter's values are its
        ``<k>_<KEY>_<band>`` column where the table has one (it varies with wavelength),
        else its ``<k>_<KEY>`` column (shared by every band)."""
        flagged = flagged_parameters(row.get("STATUS") or "")
        out = []
        for ci, comp in enumerate(self.template.model.components):
            profile = comp.profile_class
            names = profile.parameter_names()
            values, errors = {}, {}
            for name in names:
                column = parameter_column(ci + 1, name)
                if band is not None and band_column(ci + 1, name, band) in row:
                    column = band_column(ci + 1, name, band)
                if column not in row:
                    raise PlotError(f"{self.path}: row {row.get('id')!r}: no column {column} (does the table match "
                                    f"template {self.template.source}?)")
                value = row[column]
                values[name] = float("nan") if value is None else float(value)
                err = row.get(column + "_ERR")
                errors[name] = float("nan") if err is None else float(err)
            out.append((ci + 1, comp.profile, profile.kind, values, errors, {n: n not in comp.fixed for n in names},
                        {n: f"{ci + 1}_{n}" in flagged for n in names}))
        return out

    def _check(self, index: int):
        if self.problem:
            raise PlotError(self.problem)
        row = self.row(index)
        gid = str(row["id"])
        if gid not in self.sources:
            raise PlotError(f"{self.path}: row {gid!r} is not in the catalog")
        return row, self.sources[gid]

    def prepared(self, index: int):
        """(row dict, runner.Prepared) of a row: its image, sigma, mask (as the batch
        made it: catalog mask, segmentation and automatic masks) and PSF. For a
        multi-band run the image, sigma and mask are (K, H, W), the PSF a list of K, the
        zeropoint and EXPTIME (K,) (:class:`galprof.pipeline.sources.Prepared`)."""
        row, source = self._check(index)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare(source, self.template, self.options)
        if isinstance(prepared, Failed):
            raise PlotError(f"{self.path}: row {row['id']!r}: {prepared.reason}")
        return row, prepared

    def view(self, row) -> FitView | MultiBandView:
        """One row as a :class:`FitView` (``row``: id, ``#N`` or 0-based index), or as a
        :class:`MultiBandView` for a multi-band run."""
        index = self.index(row)
        row, prepared = self.prepared(index)
        images = self.render([row], [prepared])[0]
        if prepared.bands is not None:
            return self._band_views(row, prepared, images)
        return self._view(row, prepared, images)

    def render(self, rows: list, prepared: list, config: RenderConfig | None = None) -> list:
        """(C, H, W) component images of several rows ((K, C, H, W) for the rows of a
        multi-band run: each band from its own values, PSF, zeropoint and EXPTIME); rows
        of one image shape and PSF presence are rendered together in one batch;
        ``config``: rendering settings (default: the batch's)."""
        out = [None] * len(rows)
        groups: dict = {}
        for k, p in enumerate(prepared):
            if p.bands is not None:
                key = ("bands", p.image.shape, p.psf is None, tuple(p.origin))
            else:
                key = (p.image.shape, p.psf is None)
            groups.setdefault(key, []).append(k)
        t = self.template
        for key, members in groups.items():
            if key[0] == "bands":
                images = self._render_bands([rows[k] for k in members], [prepared[k] for k in members],
                                            config or self.config)
                for j, k in enumerate(members):
                    out[k] = images[j]
                continue
            shape, no_psf = key
            comps = []
            per_row = [self._components(rows[k]) for k in members]
            for ci, first in enumerate(per_row[0]):
                values = {n: np.array([pr[ci][3][n] for pr in per_row]) for n in first[3]}
                values = {n: np.where(np.isfinite(v), v, 0.0) for n, v in values.items()}
                comps.append((first[1], values))
            psf = None if no_psf else [prepared[k].psf for k in members]
            if psf is not None and len(psf) == 1:
                psf = psf[0]
            images = render_components(comps, shape, zeropoint=t.zeropoint,
                                       exptime=np.array([prepared[k].exptime for k in members]),
                                       pixel_scale=t.plate_scale, psf=psf, psf_oversampling=t.psf_oversampling,
                                       config=config or self.config)
            for j, k in enumerate(members):
                out[k] = images[j]
        return out

    def _render_bands(self, rows: list, prepared: list, config: RenderConfig) -> np.ndarray:
        """(M, K, C, H, W) component images of M multi-band rows of one shape, PSF
        presence and origin: the M K (row, band) pairs rendered as one batch."""
        labels = prepared[0].bands.labels
        n_bands = len(labels)
        per = [self._components(row, band) for row in rows for band in labels]  # row-major, band-minor
        comps = []
        for ci, first in enumerate(per[0]):
            values = {n: np.array([p[ci][3][n] for p in per]) for n in first[3]}
            comps.append((first[1], {n: np.where(np.isfinite(v), v, 0.0) for n, v in values.items()}))
        zp = np.concatenate([np.broadcast_to(np.asarray(p.zeropoint, dtype=float), (n_bands,)) for p in prepared])
        et = np.concatenate([np.broadcast_to(np.asarray(p.exptime, dtype=float), (n_bands,)) for p in prepared])
        psf = None if prepared[0].psf is None else [p.psf[k] for p in prepared for k in range(n_bands)]
        t = self.template
        images = render_components(comps, prepared[0].image.shape[1:], origin=tuple(prepared[0].origin),
                                   zeropoint=zp, exptime=et, pixel_scale=t.plate_scale, psf=psf,
                                   psf_oversampling=t.psf_oversampling,
                                   convolution_box=prepared[0].convolution_box, config=config)
        return images.reshape((len(rows), n_bands) + images.shape[1:])

    def _view(self, row: dict, prepared, images) -> FitView:
        comps = self._components(row)
        status = str(row.get("STATUS") or "")
        notes = ()
        if status.startswith("failed"):
            notes = (status,)
        components = tuple(ComponentView(c[0], c[1], c[2], c[3], c[4], c[5], c[6], images[k])
                           for k, c in enumerate(comps))
        chi2 = row.get("CHI2NU")
        return FitView(name=str(row["id"]), data=prepared.image, model=images.sum(0), components=components,
                       sigma=prepared.sigma, mask=prepared.mask, origin=(1, 1), zeropoint=self.template.zeropoint,
                       exptime=prepared.exptime, pixel_scale=tuple(self.template.plate_scale),
                       chi2_nu=float("nan") if chi2 is None else float(chi2), status=status, source=str(self.path),
                       notes=notes)

    def _band_views(self, row: dict, prepared, images) -> MultiBandView:
        """A multi-band row as a :class:`MultiBandView`; each band's chi^2_nu is
        :func:`band_chi2_nu` of its chi^2 recomputed from the re-rendered model and the
        row's NDOF (the table records only the total)."""
        status = str(row.get("STATUS") or "")
        notes = (status,) if status.startswith("failed") else ()
        bands = prepared.bands
        zp = np.broadcast_to(np.asarray(prepared.zeropoint, dtype=float), (len(bands),))
        et = np.broadcast_to(np.asarray(prepared.exptime, dtype=float), (len(bands),))
        views = []
        for k, label in enumerate(bands.labels):
            comps = self._components(row, label)
            components = tuple(ComponentView(c[0], c[1], c[2], c[3], c[4], c[5], c[6], images[k, j])
                               for j, c in enumerate(comps))
            views.append(FitView(name=f"{row['id']} [{label}]", data=prepared.image[k], model=images[k].sum(0),
                                 components=components, sigma=prepared.sigma[k],
                                 mask=None if prepared.mask is None else prepared.mask[k],
                                 origin=tuple(prepared.origin), zeropoint=float(zp[k]), exptime=float(et[k]),
                                 pixel_scale=tuple(self.template.plate_scale), status=status, source=str(self.path),
                                 notes=notes))
        chi2_band, n_good = [], []
        for v in views:
            good = ~v.bad
            chi2_band.append(float(np.sum((v.residual[good] / v.sigma[good]) ** 2)))
            n_good.append(int(good.sum()))
        ndof = row.get("NDOF")
        chi2_nu = band_chi2_nu(chi2_band, float("nan") if ndof is None else float(ndof), n_good)
        total = row.get("CHI2NU")
        return MultiBandView(name=str(row["id"]), bands=bands,
                             views=tuple(replace(v, chi2_nu=float(c)) for v, c in zip(views, chi2_nu)),
                             chi2_nu=float("nan") if total is None else float(total), status=status,
                             source=str(self.path), notes=notes)


# ------------------------------------------------------------------------------ any

def result_kind(path) -> str:
    """``imgblock``, ``galfitm`` (a multi-band image block), ``imfit`` or ``table`` from a
    file's name and content."""
    path = pathlib.Path(path)
    if not path.exists():
        raise PlotError(f"{path}: file not found")
    name = path.name.lower()
    if name.endswith((".csv", ".ecsv", ".parquet")):
        return "table"
    if name.endswith((".fits", ".fit", ".fits.gz", ".fts")):

        try:
            with fits.open(path) as hdul:
                if is_galfitm_imgblock(hdul):
                    return "galfitm"
                if len(hdul) > 2 and "COMP_1" in hdul[2].header:
                    return "imgblock"
                if any(isinstance(h, (fits.BinTableHDU, fits.TableHDU)) for h in hdul):
                    return "table"
        except (OSError, ValueError) as err:
            raise PlotError(f"cannot read {path}: {err}") from None
        raise PlotError(f"{path}: neither a GALFIT image block (no COMP_1 card in HDU 2), a GALFITM image block "
                        "(no MODEL_<band> extension) nor a results table")
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:200000]
    except OSError as err:
        raise PlotError(f"cannot read {path}: {err.strerror or err}") from None
    if "FUNCTION" in head.split():
        return "imfit"
    raise PlotError(f"{path}: not a GALFIT image block, an imfit best-fit file or a results table")


def _split_bands(item):
    """A command-line override of a multi-band block: ``a.fits,b.fits,c.fits`` (one per
    band) -> a list; anything else as given (one for every band)."""
    if isinstance(item, str) and "," in item:
        return [part.strip() for part in item.split(",")]
    return item


def with_frame(view, *, pixel_scale=None, zeropoint=None):
    """``view`` (a :class:`FitView` or :class:`MultiBandView`) with another plate scale
    and / or zeropoint (None: unchanged; a multi-band view gets them in every band)."""
    changes = {}
    if pixel_scale is not None:
        changes["pixel_scale"] = tuple(pixel_scale)
    if zeropoint is not None:
        changes["zeropoint"] = zeropoint
    if not changes:
        return view
    if isinstance(view, MultiBandView):
        return replace(view, views=tuple(replace(v, **changes) for v in view.views))
    return replace(view, **changes)


def load_result(path, *, row=None, image=None, psf=None, mask=None, sigma=None, catalog=None, template=None,
                pixel_scale=None, zeropoint=None) -> FitView | MultiBandView:
    """Any RESULT of ``galprof plot`` as a :class:`FitView` (see the module docstring),
    or a :class:`MultiBandView` for a GALFITM image block or a row of a multi-band run
    (``psf``, ``mask``, ``sigma`` then name one file for every band or a comma-separated
    list of one per band)."""
    kind = result_kind(path)
    if kind == "imgblock":
        return from_imgblock(path, psf=psf, sigma=sigma, mask=mask, pixel_scale=pixel_scale, zeropoint=zeropoint)
    if kind == "galfitm":
        return from_galfitm_imgblock(path, psf=_split_bands(psf), sigma=_split_bands(sigma),
                                     mask=_split_bands(mask), pixel_scale=pixel_scale, zeropoint=zeropoint)
    if kind == "imfit":
        return from_imfit(path, image, psf=psf, mask=mask, noise=sigma, zeropoint=zeropoint,
                          pixel_scale=pixel_scale)
    results = BatchResults.open(path, catalog=catalog, template=template)
    if row is None:
        raise PlotError(f"{path} is a results table: choose a row with --row ID (or --row '#N', 0-based)")
    return with_frame(results.view(row), pixel_scale=pixel_scale, zeropoint=zeropoint)


#: parts of the names of error and uncertainty-summary columns (not parameter values)
NOT_VALUES = ("_ERR", "_BOOT", "_POST", "_RHAT", "_ESS")


def magnitude_bands(colnames) -> dict[int, list[str]]:
    """{component: [band, ...]} of a results table's per-band magnitude columns
    ``<k>_MAG_<band>`` (error and uncertainty columns left out), bands in column order."""
    out: dict[int, list[str]] = {}
    for name in colnames:
        match = re.fullmatch(r"(\d+)_MAG_(.+)", str(name))
        if match and not any(m in "_" + match.group(2) for m in NOT_VALUES):
            out.setdefault(int(match.group(1)), []).append(match.group(2))
    return out


def table_bands(colnames) -> list[str]:
    """The band labels of a multi-band results table, in column order: the ``<band>`` of
    its ``<k>_MAG_<band>`` and ``<k>_SKY_<band>`` value columns (empty for one band)."""
    out: list[str] = []
    for name in colnames:
        match = re.fullmatch(r"\d+_(?:MAG|SKY)_(.+)", str(name))
        if match and not any(m in "_" + match.group(1) for m in NOT_VALUES) and match.group(1) not in out:
            out.append(match.group(1))
    return out


def parameter_key(column: str, bands=()) -> str:
    """``column`` without its band: ``1_PA_g`` -> ``1_PA`` when ``g`` is one of ``bands``
    (a per-band column ``<k>_<KEY>_<band>``), else ``column`` unchanged."""
    for band in sorted(bands, key=len, reverse=True):
        stem = column[:-len(band) - 1] if column.endswith("_" + band) else ""
        if re.fullmatch(r"\d+_.+", stem):
            return stem
    return column


def robust_sigma(values) -> float:
    """1.4826 x the median absolute deviation from the median (NaN when empty)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(1.4826 * np.median(np.abs(values - np.median(values))))
