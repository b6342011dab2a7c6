"""Sources of galaxies: catalog rows, GALFIT feedmes and imfit runs, as galaxy jobs.

Every way of naming galaxies to fit becomes a list of *sources*, each of which
:func:`prepare` turns into a :class:`Prepared` galaxy (data cut to its fit region, a
model with its starting values, its frame settings and, for feedmes and imfit runs, the
per-galaxy files to write) or a :class:`Failed` one (why it cannot be fitted).
:mod:`galprof.pipeline.runner` fits every kind the same way.

* :class:`GalaxySource`: one row of a catalog, with a :class:`Template` (below).
* :class:`FeedmeSource`: one GALFIT feedme (its own model, region, PSF, zeropoint...).
* :class:`ImfitSource`: one ``galprof imfit`` run (image, configuration and options).

A catalog of cutouts and a model template:

A catalog is a table (CSV, ECSV, FITS table or Parquet, by extension) with one row per
galaxy:

* ``id`` (or ``--id-column``): a unique label, written back in the results;
* ``image``: path of the cutout, with an optional HDU as ``cutout.fits[1]``;
* optional ``sigma``, ``psf``, ``mask`` paths (empty or ``none``: absent), and
  ``segmentation`` with ``target_label``: a segmentation map whose other segments are
  masked (GalMOSS's ``mask_index``);
* optional initial values named like GALFIT's header keywords, ``<k>_<KEY>``
  (:mod:`galprof.io.results`): ``1_XC``, ``1_YC``, ``1_MAG``, ``1_RE``, ``1_N``,
  ``1_AR``, ``1_PA``, ``2_RS``, ...; they override the template's values for that row
  (blank or NaN: the template's value).

A multi-band catalog (a GALFITM multi-band template, or any template with ``bands``,
see :func:`with_bands`) names each band's files in columns suffixed with the band's
label: ``image_<band>`` (required for every band), optional ``sigma_<band>``,
``psf_<band>`` and ``mask_<band>``; ``sigma``, ``psf``, ``mask`` and
``segmentation``/``target_label`` without a suffix apply to every band. Initial values
``<k>_<KEY>_<band>`` (e.g. ``1_MAG_g``) set one band's value, ``<k>_<KEY>`` every
band's. Every band of a galaxy must be on the same pixel grid.

Relative paths are relative to the catalog's directory. The template is a GALFIT feedme,
a GALFITM multi-band feedme or an imfit configuration: its components, values
(defaults), free/fixed flags and constraints apply to every galaxy; a feedme's J
(zeropoint), K (plate scale), D (PSF, when the catalog has no psf column) and E (PSF
oversampling) too. Positions in the template and in the catalog are 1-based pixels of
each cutout.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field, replace

import numpy as np
from astropy.table import Table

from ..errors import CatalogError, GalprofError, InputError
from ..fitting.bands import Bands
from ..fitting.likelihood import PixelStatistic
from ..fitting.multiband import parameter_terms
from ..io.feedme import read_feedme
from ..io.galfitm import is_multiband_feedme, multiband_model, read_galfitm_feedme
from ..io.fits_io import split_extension
from ..io.imfit_config import (
    imfit_sigma,
    model_from_imfit,
    parse_imfit_config,
    read_imfit_config,
)
from ..io.inputs import GalaxyInputs, feedme_inputs, load_galaxy, model_from_feedme
from ..io.results import band_column, parameter_column
from ..model import Model, shift_positions
from .autoinit import auto_initial, auto_initial_bands
from .outputs import FeedmeOutputs, GalfitmOutputs


@dataclass(frozen=True)
class Template:
    """The model every galaxy starts from, and the settings of its frame.

    For a multi-band template ``bands`` is the :class:`galprof.fitting.bands.Bands`,
    ``terms`` ((component 1-based, name), terms) of every parameter, ``zeropoint`` a
    tuple with one per band, ``psf`` a tuple with one path (or None) per band, and the
    model's values numbers or (K,) band values; None and () for one band. ``convolve``
    False: the feedme's convolution box has a zero side, so no cutout is convolved with
    the PSF (as GALFIT does with that feedme).
    """

    model: Model
    zeropoint: float | tuple = 0.0
    plate_scale: tuple[float, float] = (1.0, 1.0)
    psf: str | tuple | None = None
    psf_oversampling: int = 1
    source: str = ""
    bands: Bands | None = None
    terms: tuple = ()
    convolve: bool = True


def _convolves(box) -> bool:
    """False for a feedme's convolution box with a zero side (``I) 30.0 30.0`` read as
    GALFIT reads it: 30 x 0): nothing is convolved with the PSF, in any cutout."""
    return box is None or min(box) > 0


def with_bands(template: Template, bands: Bands) -> Template:
    """A single-band ``template`` made multi-band: the same model in every band (values
    shared by every band as the template gives them), each parameter's terms the
    default of :func:`galprof.fitting.multiband.default_terms` (magnitudes and the sky
    free in every band, the structure the same in every band), the template's zeropoint
    and PSF (if any) in every band.

    Raises:
        CatalogError: the template is already multi-band.
    """
    if template.bands is not None:
        raise CatalogError(f"{template.source}: the template is already multi-band (bands "
                           f"{', '.join(template.bands.labels)}); do not give bands again")
    n_bands = len(bands)
    terms = parameter_terms(template.model, {}, n_bands)
    return Template(template.model, (float(template.zeropoint),) * n_bands, tuple(template.plate_scale),
                    None if template.psf is None else (template.psf,) * n_bands, template.psf_oversampling,
                    template.source, bands, tuple(sorted(terms.items())), template.convolve)


@dataclass(frozen=True)
class BandFiles:
    """One band's files in a multi-band catalog row (paths resolved; None: absent)."""

    label: str
    image: str
    hdu: int | None = None
    sigma: str | None = None
    psf: str | None = None
    mask: str | None = None


@dataclass(frozen=True)
class GalaxySource:
    """One catalog row: where its data are and what it overrides."""

    row: int  # 0-based position in the catalog
    id: str
    image: str
    hdu: int | None = None
    sigma: str | None = None
    psf: str | None = None
    mask: str | None = None
    segmentation: str | None = None
    target_label: int | None = None
    overrides: dict = field(default_factory=dict)  # (component index, name[, band index]) -> value
    bands: tuple = ()  # BandFiles of each band of a multi-band catalog, in the template's band order

    def describe(self) -> list:
        """What identifies the row in a run's fingerprint (its id and files)."""
        out = [self.id, self.image, self.hdu]
        if self.bands:
            out.append([[b.label, b.image, b.hdu] for b in self.bands])
        return out


def template_from_file(path: str) -> Template:
    """A :class:`Template` from a GALFIT feedme or (``.dat``/``.cfg``/``.conf``, or a
    file with FUNCTION lines) an imfit configuration."""
    p = pathlib.Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise CatalogError(f"cannot read template {path}: {err.strerror}") from None
    if "FUNCTION" in text.split():

        config = parse_imfit_config(text, str(p))
        # imfit positions are absolute; a template's are per cutout, so the sky is at the centre
        return Template(model_from_imfit(config, (0.0, 0.0)), 0.0, (1.0, 1.0), None, 1, str(p))
    if is_multiband_feedme(text):
        return _multiband_template(p)
    feedme = read_feedme(str(p))
    psf = feedme.psf_image
    if psf is not None and not pathlib.Path(psf).is_absolute():
        psf = str(p.parent / psf)
    return Template(model_from_feedme(feedme), feedme.zeropoint, tuple(feedme.plate_scale), psf,
                    feedme.psf_oversampling, str(p), convolve=_convolves(feedme.convolution_box))


def _multiband_template(path: pathlib.Path) -> Template:
    """A GALFITM multi-band feedme as a template: its bands (A1, A2), per-band values and
    degrees of freedom, zeropoints (J) and PSFs (D, relative to the template's directory)."""
    feedme = read_galfitm_feedme(str(path))
    model, terms = multiband_model(feedme)
    values = [{name: np.asarray(v, dtype=float).reshape(-1) for name, v in c.values.items()}
              for c in model.components]
    model = Model(tuple(replace(c, values=v) for c, v in zip(model.components, values)), model.constraints)
    psfs = tuple(None if name is None or pathlib.Path(name).is_absolute() else str(path.parent / name)
                 for name in feedme.psf_images)
    if any(name is None for name in psfs) and not all(name is None for name in psfs):
        raise CatalogError(f"{path}:{feedme.line_numbers.get('D', '?')}: give a PSF for every band or for none")
    return Template(model, tuple(float(z) for z in feedme.zeropoints), tuple(feedme.plate_scale),
                    None if psfs[0] is None else psfs, feedme.psf_oversampling, str(path), feedme.bands,
                    tuple(sorted(terms.items())), _convolves(feedme.convolution_box))


def _read_table(path: pathlib.Path):
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    formats = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits", ".fits.gz": "fits",
               ".parquet": "parquet"}
    if suffix not in formats:
        raise CatalogError(f"{path}: unknown catalog format {suffix!r} (use .csv, .ecsv, .fits or .parquet)")
    try:
        return Table.read(str(path), format=formats[suffix])
    except (OSError, ValueError) as err:
        raise CatalogError(f"{path}: cannot read the catalog: {err}") from None


def _text(value) -> str | None:
    if value is None or np.ma.is_masked(value):
        return None
    text = str(value.decode() if isinstance(value, bytes) else value).strip()
    return None if text == "" or text.lower() in ("none", "nan", "--") else text


def read_catalog(path: str, template: Template, *, id_column: str = "id", image_column: str = "image"):
    """The rows of a catalog as :class:`GalaxySource` values, in catalog order (a
    multi-band template's catalog: each with its :class:`BandFiles`).

    Raises:
        CatalogError: unknown format, a missing id or image column (``image_<band>`` for
            every band of a multi-band template), duplicate ids, a value column that
            matches no template parameter.
    """
    p = pathlib.Path(path)
    table = _read_table(p)
    labels = template.bands.labels if template.bands is not None else ()
    image_columns = [f"{image_column}_{label}" for label in labels] or [image_column]
    for name in [id_column] + image_columns:
        if name not in table.colnames:
            hint = (f"; a multi-band catalog names every band's image: {', '.join(image_columns)}" if labels else "")
            raise CatalogError(f"{path}: no column {name!r} (columns: {', '.join(table.colnames)}){hint}")
    # value columns: every <k>_<KEY> of the template's parameters (and <k>_<KEY>_<band>)
    by_column = {}
    for ci, comp in enumerate(template.model.components):
        for name in comp.profile_class.parameter_names():
            by_column[parameter_column(ci + 1, name)] = (ci, name)
            for k, label in enumerate(labels):
                by_column[band_column(ci + 1, name, label)] = (ci, name, k)
    known = {id_column, image_column, "sigma", "psf", "mask", "segmentation", "target_label"}
    known |= {f"{key}_{label}" for key in (image_column, "sigma", "psf", "mask") for label in labels}
    for name in table.colnames:
        if name not in known and name not in by_column and name[:1].isdigit():
            raise CatalogError(f"{path}: column {name!r} names no parameter of the template "
                               f"(expected one of {', '.join(sorted(by_column))})")
    base = p.parent

    def resolve(text):
        if text is None:
            return None
        name, ext = split_extension(text)
        q = pathlib.Path(name)
        return (str(q if q.is_absolute() else base / q), ext)

    def resolved_path(row, column):
        if column not in table.colnames:
            return None
        found = resolve(_text(row[column]))
        return None if found is None else found[0]

    sources, seen = [], {}
    for row_index, row in enumerate(table):
        gid = _text(row[id_column])
        if gid is None:
            raise CatalogError(f"{path}: row {row_index + 1} has no {id_column}")
        if gid in seen:
            raise CatalogError(f"{path}: id {gid!r} appears in rows {seen[gid] + 1} and {row_index + 1}")
        seen[gid] = row_index
        band_files = []
        for column, label in zip(image_columns, labels or (None,)):
            image = _text(row[column])
            if image is None:
                raise CatalogError(f"{path}: row {row_index + 1} ({gid}) has no {column}")
            image_path, hdu = resolve(image)
            if label is not None:
                band_files.append(BandFiles(label, image_path, hdu, sigma=resolved_path(row, f"sigma_{label}"),
                                            psf=resolved_path(row, f"psf_{label}"),
                                            mask=resolved_path(row, f"mask_{label}")))
        if band_files:
            image_path, hdu = band_files[0].image, band_files[0].hdu
        extra = {key: resolved_path(row, key) for key in ("sigma", "psf", "mask", "segmentation")
                 if key in table.colnames}
        if "target_label" in table.colnames and _text(row["target_label"]) is not None:
            extra["target_label"] = int(row["target_label"])
        overrides = {}
        for column, key in by_column.items():
            if column in table.colnames:
                value = row[column]
                if not np.ma.is_masked(value) and math.isfinite(float(value)):
                    overrides[key] = float(value)
        sources.append(GalaxySource(row_index, gid, image_path, hdu, overrides=overrides, bands=tuple(band_files),
                                    **extra))
    if not sources:
        raise CatalogError(f"{path}: the catalog has no rows")
    return sources


# ------------------------------------------------------------------------ other sources

@dataclass(frozen=True)
class FeedmeSource:
    """One GALFIT feedme: its own model, fit region, PSF, zeropoint and outputs.

    ``row`` is its 0-based position in the run, ``id`` its label in the results (the path
    as given).
    """

    row: int
    id: str
    path: str

    def describe(self) -> list:
        """What identifies this job in a run's fingerprint: the path and the feedme's text."""
        try:
            text = pathlib.Path(self.path).read_text(errors="replace")
        except OSError:
            text = ""
        return [self.id, self.path, text]


def feedme_sources(paths) -> list[FeedmeSource]:
    """One :class:`FeedmeSource` per path, in order (a path given twice is refused)."""
    seen: dict = {}
    for k, path in enumerate(paths):
        if str(path) in seen:
            raise CatalogError(f"feedme {path} is given twice (positions {seen[str(path)] + 1} and {k + 1})")
        seen[str(path)] = k
    return [FeedmeSource(k, str(path), str(path)) for k, path in enumerate(paths)]


@dataclass(frozen=True)
class ImfitSource:
    """One ``galprof imfit`` run: an image and an imfit configuration.

    Attributes:
        image: FITS image, ``file.fits`` or ``file.fits[N]``.
        config: imfit configuration file.
        psf, mask, noise: optional files (``noise_kind``: sigma, variance or weight).
        prelude: GAIN, READNOISE, EXPTIME, NCOMBINED, ORIGINAL_SKY overriding the
            configuration's (imfit's command-line options).
        statistic: None (chi^2) or ``model-chi2``, ``cash``, ``poisson-mlr``.
        fit_options: further :func:`galprof.fit` keywords as (name, value) pairs
            (``lm_settings``).
        outputs: what to write after the fit (a :class:`galprof.pipeline.outputs.ImfitOutputs`).
    """

    row: int
    id: str
    image: str
    config: str
    psf: str | None = None
    mask: str | None = None
    noise: str | None = None
    noise_kind: str = "sigma"
    prelude: tuple = ()
    statistic: str | None = None
    fit_options: tuple = ()
    outputs: object = None

    def describe(self) -> list:
        return [self.id, self.image, self.config, self.psf, self.mask, self.noise, self.noise_kind,
                list(self.prelude), self.statistic]


# ------------------------------------------------------------------------ preparation

@dataclass
class Prepared:
    """A galaxy ready to fit: its data, its model and starting values, its frame.

    Attributes:
        source: the :class:`GalaxySource`, :class:`FeedmeSource` or :class:`ImfitSource`.
        image, sigma, mask, psf, exptime: see :class:`galprof.io.inputs.GalaxyInputs`.
        values: per component {name: value}: the starting values (positions in 1-based
            pixels of the whole image, PA in degrees CCW from +y, sizes in pixels).
        auto: the starting values came from source detection.
        model: the model's structure (profiles, fixed flags, bounds, constraints); its
            values are replaced by ``values`` for the fit.
        zeropoint, plate_scale, psf_oversampling, convolution_box: the frame (GALFIT's
            lines J, K, E, I).
        origin: 1-based (x, y) image pixel of ``image[0, 0]`` (the fit region's corner).
        fit_options: further :func:`galprof.fit` keywords, (name, value) pairs.
        outputs: per-galaxy files to write after the fit (feedmes, imfit runs), or None.
        fitted: False for GALFIT's ``P) 1..3``: rendered at the starting values, not fitted.
        header, sigma_note: the input image's header and where sigma came from (outputs).
        bands, terms: a multi-band feedme's :class:`galprof.fitting.bands.Bands` and its
            ((component, name), terms) pairs; ``image``, ``sigma`` and ``mask`` are then
            (K, H, W), ``psf`` a list of K, ``exptime`` and ``zeropoint`` (K,) arrays,
            ``header`` a list of K headers and ``values`` per component {name: (K,) band
            values}. None for one band.
    """

    source: object
    image: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray | None
    psf: np.ndarray | None
    exptime: float
    values: list
    auto: bool
    model: Model | None = None
    zeropoint: float = 0.0
    plate_scale: tuple = (1.0, 1.0)
    psf_oversampling: int = 1
    origin: tuple = (1, 1)
    convolution_box: tuple | None = None
    fit_options: tuple = ()
    outputs: object = None
    fitted: bool = True
    header: object = None
    sigma_note: str = ""
    bands: object = None
    terms: tuple = ()


@dataclass
class Failed:
    """A galaxy that cannot be fitted, and why."""

    source: object
    reason: str
    model: Model | None = None


def _auto_values(model: Model, values: list[dict], detected: dict, mag, sky) -> None:
    """Put a detection into the starting values: ``detected``'s centre, shape and size
    (:class:`galprof.pipeline.autoinit.AutoInit` values) in every band, the brightness
    ``mag`` split between the luminous components and the sky ``sky`` (numbers, or (K,)
    per band for (K,) band values)."""

    def put(v: dict, name: str, value) -> None:
        v[name] = np.array(np.broadcast_to(value, np.shape(v[name]))) if np.ndim(v[name]) else float(value)

    comps = model.components
    galaxies = [i for i, c in enumerate(comps) if c.profile_class.kind != "sky"]
    share = 2.5 * math.log10(max(1, len(galaxies)))  # the flux split between the components
    for ci in galaxies:
        v = values[ci]
        profile = comps[ci].profile_class
        for name in ("x", "y", "q", "pa"):
            if name in v:
                put(v, name, detected[name])
        if "mag" in v:
            put(v, "mag", np.asarray(mag) + share)
        sizes = [s.name for s in profile.parameters if s.is_size]
        if sizes:
            scale = 1.0 / 1.678 if sizes[0] == "r_s" else 1.0
            put(v, sizes[0], max(detected["r_e"] * scale, 0.5))
    for ci, comp in enumerate(comps):
        if comp.profile_class.kind == "sky" and "sky" in values[ci]:
            put(values[ci], "sky", sky)


def _detect(inputs: GalaxyInputs, model: Model, values: list[dict], zeropoint: float, mask_mode: str,
            overrides: dict) -> np.ndarray | None:
    """Automatic starting values (source detection on the cut image); returns the mask
    of the other sources (or None). ``overrides`` still win over what is detected."""
    bad = inputs.mask if inputs.mask is not None else np.zeros(inputs.image.shape, dtype=bool)
    usable = np.isfinite(inputs.image) & np.isfinite(inputs.sigma) & (inputs.sigma > 0) & ~bad
    found = auto_initial(np.where(usable, inputs.image, np.nan), sigma=np.where(usable, inputs.sigma, 1.0),
                         mask=~usable, zeropoint=zeropoint, exptime=inputs.exptime, mask_mode=mask_mode)
    _auto_values(model, values, found.values, found.values["mag"], found.values["sky"])
    for (ci, name), value in overrides.items():
        values[ci][name] = value
    return found.mask


def _with_auto(inputs: GalaxyInputs, model: Model, values: list[dict], zeropoint: float, options, overrides: dict,
               has_centre: bool):
    """(mask, auto) after the automatic initialisation that ``options.auto_init`` asks for."""
    auto = options.auto_init == "always" or (options.auto_init == "auto" and not has_centre)
    mask = inputs.mask
    if auto:
        found_mask = _detect(inputs, model, values, zeropoint, options.mask_mode, overrides)
        if found_mask is not None and found_mask.any():
            mask = found_mask if mask is None else (mask | found_mask)
    return mask, auto


def _prepare_row(source: GalaxySource, template: Template, options) -> Prepared:
    if source.bands:
        return _prepare_band_row(source, template, options)
    if template.bands is not None:
        raise CatalogError(f"row {source.row + 1} ({source.id}): the template is multi-band but the row names no "
                           "band images")
    inputs = load_galaxy(source.image, hdu=source.hdu, sigma=source.sigma, psf=source.psf or template.psf,
                         mask=source.mask, segmentation=source.segmentation, target_label=source.target_label)
    values = [dict(c.values) for c in template.model.components]
    for (ci, name), value in source.overrides.items():
        values[ci][name] = value
    has_centre = any((ci, "x") in source.overrides for ci in range(len(values)))
    mask, auto = _with_auto(inputs, template.model, values, template.zeropoint, options, source.overrides, has_centre)
    return Prepared(source, inputs.image, inputs.sigma, mask, inputs.psf, inputs.exptime, values, auto,
                    model=template.model, zeropoint=template.zeropoint, plate_scale=tuple(template.plate_scale),
                    psf_oversampling=template.psf_oversampling, header=inputs.header, sigma_note=inputs.sigma_note,
                    convolution_box=None if template.convolve else (0, 0))


def _band_overrides(values: list[dict], overrides: dict) -> None:
    """A multi-band row's catalog values into its (K,) starting values: (component, name)
    sets every band, (component, name, band) one band (and wins)."""
    for key, value in sorted(overrides.items(), key=lambda item: len(item[0])):
        if len(key) == 2:
            values[key[0]][key[1]][:] = value
        else:
            values[key[0]][key[1]][key[2]] = value


def _prepare_band_row(source: GalaxySource, template: Template, options) -> Prepared:
    """A multi-band catalog row: every band's files read and checked (the band's own
    sigma, PSF and mask, else the row's shared ones, else the template's PSF of that
    band), starting values from the template, the row's overrides and (``auto_init``)
    the detection on the stacked bands (:func:`galprof.pipeline.autoinit.auto_initial_bands`)."""
    labels = template.bands.labels
    if [b.label for b in source.bands] != list(labels):
        raise CatalogError(f"row {source.row + 1} ({source.id}): bands {[b.label for b in source.bands]} differ from "
                           f"the template's {list(labels)}")
    n_bands = len(labels)
    template_psfs = template.psf if template.psf is not None else (None,) * n_bands
    loaded = []
    for k, files in enumerate(source.bands):
        where = {key: f"{source.id} band {files.label} ({key})" for key in ("image", "sigma", "psf", "mask")}
        loaded.append(load_galaxy(files.image, hdu=files.hdu, sigma=files.sigma or source.sigma,
                                  psf=files.psf or source.psf or template_psfs[k], mask=files.mask or source.mask,
                                  segmentation=source.segmentation, target_label=source.target_label, where=where))
    shapes = {b.image.shape for b in loaded}
    if len(shapes) > 1:
        raise InputError(f"{source.id}: the bands' images differ in shape ({sorted(shapes)}); every band must be on "
                         "the same pixel grid", path=source.bands[0].image)
    has_psf = [b.psf is not None for b in loaded]
    if any(has_psf) and not all(has_psf):
        raise InputError(f"{source.id}: give a PSF for every band or for none (bands without one: "
                         f"{', '.join(label for label, h in zip(labels, has_psf) if not h)})")
    values = [{name: np.array(np.broadcast_to(np.asarray(v, dtype=float).reshape(-1), (n_bands,)))
               for name, v in c.values.items()} for c in template.model.components]
    _band_overrides(values, source.overrides)
    zeropoints = np.array(np.broadcast_to(np.asarray(template.zeropoint, dtype=float), (n_bands,)))
    exptimes = np.array([b.exptime for b in loaded])
    image = np.stack([b.image for b in loaded])
    sigma = np.stack([b.sigma for b in loaded])
    masks = [b.mask for b in loaded]
    mask = None if all(m is None for m in masks) else np.stack(
        [np.zeros(b.image.shape, dtype=bool) if m is None else m for b, m in zip(loaded, masks)])
    has_centre = any(key[:2] == (ci, "x") for key in source.overrides for ci in range(len(values)))
    auto = options.auto_init == "always" or (options.auto_init == "auto" and not has_centre)
    if auto:
        found = auto_initial_bands(image, sigma=sigma, mask=mask, zeropoints=zeropoints, exptimes=exptimes,
                                   mask_mode=options.mask_mode)
        _auto_values(template.model, values, found.stacked.values, found.mags, found.skies)
        _band_overrides(values, source.overrides)  # the catalog's values still win
        if found.stacked.mask.any():
            others = np.broadcast_to(found.stacked.mask, image.shape)
            mask = others.copy() if mask is None else (mask | others)
    notes = sorted({b.sigma_note for b in loaded})
    return Prepared(source, image, sigma, mask, [b.psf for b in loaded] if all(has_psf) else None, exptimes, values,
                    auto, model=template.model, zeropoint=zeropoints, plate_scale=tuple(template.plate_scale),
                    psf_oversampling=template.psf_oversampling, header=[b.header for b in loaded],
                    sigma_note="; ".join(notes), bands=template.bands, terms=tuple(template.terms),
                    convolution_box=None if template.convolve else (0, 0))


def _prepare_feedme(source: FeedmeSource, options) -> Prepared:
    try:
        text = pathlib.Path(source.path).read_text(encoding="utf-8", errors="replace")
        if is_multiband_feedme(text):
            return _prepare_multiband_feedme(source, options)
        feedme = read_feedme(source.path)
    except OSError as err:
        raise InputError(f"cannot read feedme {source.path}: {err.strerror}", path=source.path) from None
    inputs = feedme_inputs(feedme)
    model = model_from_feedme(feedme)
    values = [dict(c.values) for c in model.components]
    fitted = feedme.mode == 0
    mask, auto = inputs.mask, False
    if fitted and options.auto_init == "always":
        # detection works in the cut's pixels; the feedme's positions are the image's
        x0, y0 = inputs.origin
        local = shift_positions(model, values, -(x0 - 1), -(y0 - 1))
        mask, auto = _with_auto(inputs, model, local, feedme.zeropoint, options, {}, True)
        values = shift_positions(model, local, x0 - 1, y0 - 1)
    return Prepared(source, inputs.image, inputs.sigma, mask, inputs.psf, inputs.exptime, values, auto, model=model,
                    zeropoint=feedme.zeropoint, plate_scale=tuple(feedme.plate_scale),
                    psf_oversampling=feedme.psf_oversampling, origin=inputs.origin,
                    convolution_box=feedme.convolution_box, outputs=FeedmeOutputs(feedme, verbose=options.verbose),
                    fitted=fitted, header=inputs.header, sigma_note=inputs.sigma_note)


def _prepare_multiband_feedme(source: FeedmeSource, options) -> Prepared:
    """A multi-band GALFITM feedme (:mod:`galprof.io.galfitm`): every band's data cut to the
    fit region (line H), with its own sigma (from the data for ``none``), mask, PSF,
    zeropoint and EXPTIME; every band on the same pixel grid."""
    feedme = read_galfitm_feedme(source.path)
    line = feedme.line_numbers.get
    if feedme.mode != 0:
        raise InputError(f"{feedme.path}:{line('P', '?')}: P) {feedme.mode} (render without fitting) is not "
                         "supported for multi-band feedmes yet; use P) 0", path=str(feedme.path))
    if feedme.min_sigma_factor:
        raise InputError(f"{feedme.path}:{line('C', '?')}: GALFITM's minimum-sigma factor "
                         f"({feedme.min_sigma_factor:g}) is not supported; give 0 or leave it out",
                         path=str(feedme.path))
    if feedme.psf_diffusion_kernel:
        raise InputError(f"{feedme.path}:{line('D', '?')}: a PSF diffusion kernel is not supported; give the PSFs "
                         "alone on line D", path=str(feedme.path))
    model, terms = multiband_model(feedme)
    bands = []
    for k, label in enumerate(feedme.bands.labels):
        image, hdu = feedme.input_file(k)
        where = {"image": f"{feedme.path}:{line('A', '?')} (line A, band {label})",
                 "sigma": f"{feedme.path}:{line('C', '?')} (line C, band {label})",
                 "psf": f"{feedme.path}:{line('D', '?')} (line D, band {label})",
                 "mask": f"{feedme.path}:{line('F', '?')} (line F, band {label})",
                 "region": f"{feedme.path}:{line('H', '?')}"}
        bands.append(load_galaxy(image, hdu=hdu, sigma=feedme.sigma_images[k], psf=feedme.psf_images[k],
                                 mask=feedme.masks[k], region=tuple(feedme.fit_region), where=where))
    shapes = {b.image.shape for b in bands}
    if len(shapes) > 1:
        raise InputError(f"{feedme.path}:{line('A', '?')}: the bands' images cut to the fit region differ in "
                         f"shape ({sorted(shapes)}); every band must be on the same pixel grid",
                         path=str(feedme.path))
    has_psf = [b.psf is not None for b in bands]
    if any(has_psf) and not all(has_psf):
        raise InputError(f"{feedme.path}:{line('D', '?')}: give a PSF for every band or for none",
                         path=str(feedme.path))
    masks = [b.mask for b in bands]
    mask = None if all(m is None for m in masks) else np.stack(
        [np.zeros(b.image.shape, dtype=bool) if m is None else m for b, m in zip(bands, masks)])
    values = [{name: np.asarray(v, dtype=float).reshape(-1) for name, v in c.values.items()} for c in model.components]
    image, sigma = np.stack([b.image for b in bands]), np.stack([b.sigma for b in bands])
    exptimes = np.array([b.exptime for b in bands])
    auto = options.auto_init == "always"
    if auto:  # detection on the stacked bands, in the fit region's pixels
        x0, y0 = bands[0].origin
        found = auto_initial_bands(image, sigma=sigma, mask=mask, zeropoints=np.asarray(feedme.zeropoints, dtype=float),
                                   exptimes=exptimes, mask_mode=options.mask_mode)
        local = shift_positions(model, values, -(x0 - 1), -(y0 - 1))
        _auto_values(model, local, found.stacked.values, found.mags, found.skies)
        values = shift_positions(model, local, x0 - 1, y0 - 1)
        if found.stacked.mask.any():
            others = np.broadcast_to(found.stacked.mask, image.shape)
            mask = others.copy() if mask is None else (mask | others)
    notes = sorted({b.sigma_note for b in bands})
    return Prepared(source, image, sigma, mask, [b.psf for b in bands] if all(has_psf) else None, exptimes, values,
                    auto, model=model, zeropoint=np.asarray(feedme.zeropoints, dtype=float),
                    plate_scale=tuple(feedme.plate_scale), psf_oversampling=feedme.psf_oversampling,
                    origin=bands[0].origin, convolution_box=feedme.convolution_box,
                    outputs=GalfitmOutputs(feedme, verbose=options.verbose), header=[b.header for b in bands],
                    sigma_note="; ".join(notes), bands=feedme.bands, terms=tuple(sorted(terms.items())))


def _prepare_imfit(source: ImfitSource, options) -> Prepared:
    path, ext = split_extension(source.image)
    config = read_imfit_config(source.config)
    prelude = {**config.prelude, **dict(source.prelude)}

    def data_sigma(data, header, mask):
        return imfit_sigma(data, prelude), "from the data (GAIN, READNOISE, NCOMBINED, EXPTIME, ORIGINAL_SKY)"

    noise, noise_hdu = split_extension(source.noise) if source.noise else (None, None)
    psf, psf_hdu = split_extension(source.psf) if source.psf else (None, None)
    inputs = load_galaxy(path, hdu=ext, sigma=noise, sigma_kind=source.noise_kind, psf=psf, mask=source.mask,
                         sigma_hdu=noise_hdu, psf_hdu=psf_hdu, default_sigma=data_sigma)
    ny, nx = inputs.image.shape
    model = model_from_imfit(config, ((nx + 1) / 2.0, (ny + 1) / 2.0))
    fit_options = tuple(source.fit_options)
    sigma = inputs.sigma
    if source.statistic is not None:

        gain = prelude.get("GAIN", 1.0) * prelude.get("NCOMBINED", 1.0) * prelude.get("EXPTIME", 1.0)
        statistic = PixelStatistic(source.statistic, gain=gain, sky=prelude.get("ORIGINAL_SKY", 0.0),
                                   read_noise=prelude.get("READNOISE", 0.0), ncombined=prelude.get("NCOMBINED", 1.0))
        fit_options += (("statistic", statistic),)
        sigma = np.ones_like(inputs.image)  # the statistic brings its own noise model; sigma only selects pixels
    values = [dict(c.values) for c in model.components]
    return Prepared(source, inputs.image, sigma, inputs.mask, inputs.psf, 1.0, values, False, model=model,
                    zeropoint=0.0, fit_options=fit_options, outputs=source.outputs, header=inputs.header,
                    sigma_note=inputs.sigma_note if source.noise else "from the data")


def prepare(source, template: Template | None, options) -> Prepared | Failed:
    """Read a source's files and make its starting values; never raises for bad data.

    Args:
        source: a :class:`GalaxySource` (with ``template``), :class:`FeedmeSource` or
            :class:`ImfitSource`.
        options: anything with ``auto_init`` ("auto", "always", "never"), ``mask_mode``
            and ``verbose`` (e.g. :class:`galprof.pipeline.runner.BatchOptions`).

    Returns:
        :class:`Prepared`, or :class:`Failed` with the reason (a missing or corrupt file,
        no usable pixel, a PSF with NaNs, a failed automatic initialisation ...).
    """
    model = template.model if template is not None else None
    try:
        if isinstance(source, FeedmeSource):
            return _prepare_feedme(source, options)
        if isinstance(source, ImfitSource):
            return _prepare_imfit(source, options)
        return _prepare_row(source, template, options)
    except GalprofError as err:
        reason = str(err) or type(err).__name__
        if type(err).__name__ == "AutoInitError":
            reason = f"automatic initial values: {reason}"
        return Failed(source, reason, model)
    except (OSError, ValueError) as err:
        return Failed(source, str(err) or type(err).__name__, model)


__all__ = ["BandFiles", "CatalogError", "Failed", "FeedmeSource", "GalaxySource", "ImfitSource", "InputError",
           "Prepared", "Template", "feedme_sources", "prepare", "read_catalog", "template_from_file", "with_bands"]
