"""One in-memory description of a fit, whatever produced it: :class:`FitView`.

A figure needs the data, the noise, the mask, the model and each component's model
image, the parameters with their errors, and the photometric calibration. This module
loads them from

* a GALFIT image block written by ``galprof fit`` (or GALFIT): :func:`from_imgblock`;
* an imfit best-fit parameter file written by ``galprof imfit`` (or imfit), with its
  image: :func:`from_imfit`;
* a row of a ``galprof batch`` results table: :class:`BatchResults`;
* a :class:`galprof.FitResult` in Python: :func:`from_fit_result`.

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
from ..io.imfit_config import (
    function_parameters,
    imfit_sigma,
    model_from_imfit,
    parse_imfit_config,
)
from ..io.imfit_output import fit_summary, run_inputs
from ..io.results import error_column, parameter_column
from ..pipeline.runner import BatchOptions
from ..pipeline.sources import (
    CatalogError,
    Failed,
    prepare,
    read_catalog,
    template_from_file,
)
from ..profiles import get_profile
from ..profiles.modifiers import profile_for_values
from ..render.config import RenderConfig
from ..render.psf import prepare_psf, stack_psfs
from ..render.scene import Frame, render_parts

__all__ = ["BatchResults", "ComponentView", "FitView", "PlotError", "from_fit_result", "from_imfit",
           "from_imgblock", "load_result", "render_components"]


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
    h, w = data.shape
    x1, _, y1, _ = _section(header.get("FITSECT", f"[1:{w},1:{h}]"), path)
    notes = []
    feedme = None
    initfile = _resolve(header.get("INITFILE"), path.parent)
    if initfile is not None:

        try:
            feedme = read_feedme(initfile)
        except (FeedmeError, OSError):
            feedme = None
    bases = [path.parent] + ([initfile.parent] if initfile is not None else [])
    if pixel_scale is None and feedme is not None:
        pixel_scale = tuple(feedme.plate_scale)
    if zeropoint is None:
        zeropoint = float(header["MAGZPT"]) if "MAGZPT" in header else None
    exptime = exposure_time(input_header)

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

    psf_array = None
    psf_oversampling = feedme.psf_oversampling if feedme is not None else 1
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
            with np.errstate(all="ignore"):

                with warnings.catch_warnings():
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

    convbox = None
    if feedme is not None and feedme.convolution_box is not None:
        convbox = feedme.convolution_box
    images = render_components([(c[1], c[3]) for c in comps], (h, w), origin=(x1, y1),
                               zeropoint=0.0 if zeropoint is None else zeropoint, exptime=exptime,
                               pixel_scale=pixel_scale or (1.0, 1.0), psf=psf_array,
                               psf_oversampling=psf_oversampling, convolution_box=convbox, config=config)[0]
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
    return FitView(name=path.name, data=data, model=model, components=components, sigma=region_sigma,
                   mask=region_mask, origin=(x1, y1), zeropoint=zeropoint, exptime=exptime,
                   pixel_scale=tuple(pixel_scale) if pixel_scale else None,
                   chi2_nu=float(header.get("CHI2NU", float("nan"))), status=status, source=str(path),
                   notes=tuple(notes))


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

    Built by :meth:`open`; :meth:`view` gives one row as a :class:`FitView`.
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

    def _components(self, row: dict):
        """[(number, profile, kind, values, errors, free, flagged)] of a row (NaN where absent)."""
        status = str(row.get("STATUS") or "")
        flagged = set()
        if status.startswith(("hit a bound:", "degenerate:", "off the region:")):  # they name <k>_<name>
            flagged = {s.strip() for s in status.split(":", 1)[1].split(",")}
        out = []
        for ci, comp in enumerate(self.template.model.components):
            profile = comp.profile_class
            names = profile.parameter_names()
            values, errors = {}, {}
            for name in names:
                column = parameter_column(ci + 1, name)
                if column not in row:
                    raise PlotError(f"{self.path}: row {row.get('id')!r}: no column {column} (does the table match "
                                    f"template {self.template.source}?)")
                value = row[column]
                values[name] = float("nan") if value is None else float(value)
                err = row.get(error_column(ci + 1, name))
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
        made it: catalog mask, segmentation and automatic masks) and PSF."""
        row, source = self._check(index)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared = prepare(source, self.template, self.options)
        if isinstance(prepared, Failed):
            raise PlotError(f"{self.path}: row {row['id']!r}: {prepared.reason}")
        return row, prepared

    def view(self, row) -> FitView:
        """One row as a :class:`FitView` (``row``: id, ``#N`` or 0-based index)."""
        index = self.index(row)
        row, prepared = self.prepared(index)
        return self._view(row, prepared, self.render([row], [prepared])[0])

    def render(self, rows: list, prepared: list, config: RenderConfig | None = None) -> list:
        """(C, H, W) component images of several rows (same image shape and PSF presence
        rendered together in one batch); ``config``: rendering settings (default: the
        batch's)."""
        out = [None] * len(rows)
        groups: dict = {}
        for k, p in enumerate(prepared):
            groups.setdefault((p.image.shape, p.psf is None), []).append(k)
        t = self.template
        for (shape, no_psf), members in groups.items():
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


# ------------------------------------------------------------------------------ any

def result_kind(path) -> str:
    """``imgblock``, ``imfit`` or ``table`` from a file's name and content."""
    path = pathlib.Path(path)
    if not path.exists():
        raise PlotError(f"{path}: file not found")
    name = path.name.lower()
    if name.endswith((".csv", ".ecsv", ".parquet")):
        return "table"
    if name.endswith((".fits", ".fit", ".fits.gz", ".fts")):

        try:
            with fits.open(path) as hdul:
                if len(hdul) > 2 and "COMP_1" in hdul[2].header:
                    return "imgblock"
                if any(isinstance(h, (fits.BinTableHDU, fits.TableHDU)) for h in hdul):
                    return "table"
        except (OSError, ValueError) as err:
            raise PlotError(f"cannot read {path}: {err}") from None
        raise PlotError(f"{path}: neither a GALFIT image block (no COMP_1 card in HDU 2) nor a results table")
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:200000]
    except OSError as err:
        raise PlotError(f"cannot read {path}: {err.strerror or err}") from None
    if "FUNCTION" in head.split():
        return "imfit"
    raise PlotError(f"{path}: not a GALFIT image block, an imfit best-fit file or a results table")


def load_result(path, *, row=None, image=None, psf=None, mask=None, sigma=None, catalog=None, template=None,
                pixel_scale=None, zeropoint=None) -> FitView:
    """Any RESULT of ``galprof plot`` as a :class:`FitView` (see the module docstring)."""
    kind = result_kind(path)
    if kind == "imgblock":
        return from_imgblock(path, psf=psf, sigma=sigma, mask=mask, pixel_scale=pixel_scale, zeropoint=zeropoint)
    if kind == "imfit":
        return from_imfit(path, image, psf=psf, mask=mask, noise=sigma, zeropoint=zeropoint,
                          pixel_scale=pixel_scale)
    results = BatchResults.open(path, catalog=catalog, template=template)
    if row is None:
        raise PlotError(f"{path} is a results table: choose a row with --row ID (or --row '#N', 0-based)")
    view = results.view(row)
    if pixel_scale is not None:
        view = replace(view, pixel_scale=tuple(pixel_scale))
    if zeropoint is not None:
        view = replace(view, zeropoint=zeropoint)
    return view


def robust_sigma(values) -> float:
    """1.4826 x the median absolute deviation from the median (NaN when empty)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(1.4826 * np.median(np.abs(values - np.median(values))))
