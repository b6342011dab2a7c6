"""Batch inputs: a catalog of cutouts and a model template.

A catalog is a table (CSV, ECSV, FITS table or Parquet, by extension) with one row per
galaxy:

* ``id`` (or ``--id-column``): a unique label, written back in the results;
* ``image``: path of the cutout, with an optional HDU as ``cutout.fits[1]``;
* optional ``sigma``, ``psf``, ``mask`` paths (empty or ``none``: absent), and
  ``segmentation`` with ``target_label``: a segmentation map whose other segments are
  masked (GalMOSS's ``mask_index``);
* optional initial values named like GALFIT's header keywords, ``<k>_<KEY>``
  (:mod:`galprof.pipeline.columns`): ``1_XC``, ``1_YC``, ``1_MAG``, ``1_RE``, ``1_N``,
  ``1_AR``, ``1_PA``, ``2_RS``, ...; they override the template's values for that row
  (blank or NaN: the template's value).

Relative paths are relative to the catalog's directory. The template is a GALFIT feedme
or an imfit configuration: its components, values (defaults), free/fixed flags and
constraints apply to every galaxy; a feedme's J (zeropoint), K (plate scale), D (PSF,
when the catalog has no psf column) and E (PSF oversampling) too. Positions in the
template and in the catalog are 1-based pixels of each cutout.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field

import numpy as np

from ..io.fits_io import InputError, split_extension
from ..model import Model
from .columns import parameter_column
from ..errors import CatalogError


@dataclass(frozen=True)
class Template:
    """The model every galaxy starts from, and the settings of its frame."""

    model: Model
    zeropoint: float = 0.0
    plate_scale: tuple[float, float] = (1.0, 1.0)
    psf: str | None = None
    psf_oversampling: int = 1
    source: str = ""


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
    overrides: dict = field(default_factory=dict)  # (component index, name) -> value


def template_from_file(path: str) -> Template:
    """A :class:`Template` from a GALFIT feedme or (``.dat``/``.cfg``/``.conf``, or a
    file with FUNCTION lines) an imfit configuration."""
    p = pathlib.Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise CatalogError(f"cannot read template {path}: {err.strerror}") from None
    if "FUNCTION" in text.split():
        from ..io.imfit_config import model_from_imfit, parse_imfit_config

        config = parse_imfit_config(text, str(p))
        # imfit positions are absolute; a template's are per cutout, so the sky is at the centre
        return Template(model_from_imfit(config, (0.0, 0.0)), 0.0, (1.0, 1.0), None, 1, str(p))
    from ..cli import _model_from_feedme
    from ..io.feedme import read_feedme

    feedme = read_feedme(str(p))
    psf = feedme.psf_image
    if psf is not None and not pathlib.Path(psf).is_absolute():
        psf = str(p.parent / psf)
    return Template(_model_from_feedme(feedme), feedme.zeropoint, tuple(feedme.plate_scale), psf,
                    feedme.psf_oversampling, str(p))


def _read_table(path: pathlib.Path):
    from astropy.table import Table

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
    """The rows of a catalog as :class:`GalaxySource` values, in catalog order.

    Raises:
        CatalogError: unknown format, a missing id or image column, duplicate ids, a
            value column that matches no template parameter.
    """
    p = pathlib.Path(path)
    table = _read_table(p)
    for name in (id_column, image_column):
        if name not in table.colnames:
            raise CatalogError(f"{path}: no column {name!r} (columns: {', '.join(table.colnames)})")
    # value columns: every <k>_<KEY> of the template's parameters
    by_column = {}
    for ci, comp in enumerate(template.model.components):
        for name in comp.profile_class.parameter_names():
            by_column[parameter_column(ci + 1, name)] = (ci, name)
    known = {id_column, image_column, "sigma", "psf", "mask", "segmentation", "target_label"}
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

    sources, seen = [], {}
    for row_index, row in enumerate(table):
        gid = _text(row[id_column])
        if gid is None:
            raise CatalogError(f"{path}: row {row_index + 1} has no {id_column}")
        if gid in seen:
            raise CatalogError(f"{path}: id {gid!r} appears in rows {seen[gid] + 1} and {row_index + 1}")
        seen[gid] = row_index
        image = _text(row[image_column])
        if image is None:
            raise CatalogError(f"{path}: row {row_index + 1} ({gid}) has no {image_column}")
        image_path, hdu = resolve(image)
        extra = {}
        for key in ("sigma", "psf", "mask", "segmentation"):
            if key in table.colnames:
                found = resolve(_text(row[key]))
                extra[key] = None if found is None else found[0]
        if "target_label" in table.colnames and _text(row["target_label"]) is not None:
            extra["target_label"] = int(row["target_label"])
        overrides = {}
        for column, key in by_column.items():
            if column in table.colnames:
                value = row[column]
                if not np.ma.is_masked(value) and math.isfinite(float(value)):
                    overrides[key] = float(value)
        sources.append(GalaxySource(row_index, gid, image_path, hdu, overrides=overrides, **extra))
    if not sources:
        raise CatalogError(f"{path}: the catalog has no rows")
    return sources


__all__ = ["CatalogError", "GalaxySource", "InputError", "Template", "read_catalog", "template_from_file"]
