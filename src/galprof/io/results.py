"""The results schema: one table layout for every galprof run.

``galprof batch`` (catalogs and feedmes), ``galprof fit`` and ``galprof imfit`` all
describe a fitted galaxy with one row of this schema:

* ``id``: the catalog id, the feedme's path or the imfit image;
* per parameter of component k (1-based) the column ``<k>_<KEY>``, with KEY the card
  suffix GALFIT writes in an imgblock header (``1_XC``, ``1_YC``, ``1_MAG``, ``1_RE``,
  ``1_N``, ``1_AR``, ``1_PA``, ``2_RS``, ``3_SKY``, ...; see
  :data:`galprof.io.galfit_output.HEADER_KEYWORDS`) or, for parameters GALFIT has no card
  for, the parameter's name in capitals (``3_MU_0``, ``1_C0``, ``1_F1_AMP``). Positions
  are GALFIT's 1-based pixels of the galaxy's image, PA in degrees counter-clockwise from
  +y, sizes in pixels along the major axis, q = b/a;
* its errors: ``<k>_<KEY>_ERR`` (raw covariance, (J^T W J)^-1), ``_ERR_SCALED`` (times
  sqrt(chi2_nu)) and, with ``--errors bootstrap`` or ``sample``, the columns of
  :data:`BOOTSTRAP_SUFFIXES` or :data:`POSTERIOR_SUFFIXES`;
* ``CHISQ``, ``CHI2NU``, ``NDOF``, ``ITERATIONS``, ``AUTO_INIT``, ``COV_FLAG`` and
  ``STATUS``.

``STATUS`` takes one of the values of galprof's one vocabulary (defined in
:mod:`galprof.fitting.result`, which explains each, and re-exported here), in order of
precedence: ``failed: <reason>`` (:data:`FAILED`; the row's values are then NaN),
``degenerate: 2_mag`` (:data:`DEGENERATE`: a component vanished, or the covariance is
singular; parameters as ``<k>_<name>``), ``off the region: 2_x`` (:data:`OFF_REGION`),
:data:`MAX_ITERATIONS`, ``hit a bound: 1_n,2_r_s`` (:data:`HIT_BOUND`), :data:`CONVERGED`,
and ``not fitted: <why>`` (:data:`NOT_FITTED`, GALFIT's ``P) 1..3``). Only ``converged``
rows are converged fits; the others' undefined errors are NaN with ``COV_FLAG`` set.
:func:`write_covariance` writes the companion covariance file (``--covariance-file``).
The same column names override template values in an input catalog.
"""

from __future__ import annotations

import math
import os
import pathlib

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..errors import UsageError
from ..fitting.result import (
    CONVERGED,
    DEGENERATE,
    FAILED,
    HIT_BOUND,
    MAX_ITERATIONS,
    NON_FINITE,
    NOT_FITTED,
    OFF_REGION,
)
from .galfit_output import HEADER_KEYWORDS

#: STATUS vocabulary (see :mod:`galprof.fitting.result`): prefixes end in ": "
STATUS_VOCABULARY = (CONVERGED, MAX_ITERATIONS, HIT_BOUND, DEGENERATE, OFF_REGION, NOT_FITTED, FAILED)

#: the per-galaxy columns after the parameters, in table order
SUMMARY_COLUMNS = ("CHISQ", "CHI2NU", "NDOF", "ITERATIONS", "AUTO_INIT", "COV_FLAG", "STATUS")

#: suffixes of the optional uncertainty columns (see docs/uncertainties.md)
BOOTSTRAP_SUFFIXES = ("_BOOT_ERR", "_BOOT_LO68", "_BOOT_HI68", "_BOOT_LO95", "_BOOT_HI95")
POSTERIOR_SUFFIXES = ("_POST_ERR", "_POST_LO68", "_POST_HI68", "_POST_LO95", "_POST_HI95", "_RHAT", "_ESS")


def parameter_column(component: int, name: str) -> str:
    """``<component>_<KEY>`` of parameter ``name`` of 1-based ``component``."""
    return f"{component}_{HEADER_KEYWORDS.get(name, name.upper())}"


def error_column(component: int, name: str) -> str:
    """``<component>_<KEY>_ERR``: the raw covariance error of a parameter."""
    return parameter_column(component, name) + "_ERR"


def uncertainty_suffixes(method: str) -> tuple[str, ...]:
    """Per-parameter column suffixes for an error method: always ``_ERR_SCALED`` (the
    covariance error times sqrt(chi2_nu)); plus bootstrap or posterior columns."""
    extra = {"bootstrap": BOOTSTRAP_SUFFIXES, "sample": POSTERIOR_SUFFIXES}.get(method, ())
    return ("_ERR_SCALED",) + extra


def parameter_columns(model, method: str = "covariance") -> list[str]:
    """The parameter columns of ``model`` (a :class:`galprof.model.Model`), in table order:
    for each component and parameter, value, ``_ERR`` and the ``method``'s suffixes."""
    names = []
    for ci, comp in enumerate(model.components):
        for name in comp.profile_class.parameter_names():
            names += [parameter_column(ci + 1, name), error_column(ci + 1, name)]
            names += [parameter_column(ci + 1, name) + suffix for suffix in uncertainty_suffixes(method)]
    return names


def fit_status(result, b: int) -> str:
    """STATUS of galaxy ``b`` of a :class:`galprof.FitResult` (its ``status``): failed
    (non-finite values), degenerate, off the region, max iterations, hit a bound or
    converged (see :mod:`galprof.fitting.result`)."""
    if not np.isfinite(result.chi2[b]) or not np.all(np.isfinite(result.values[b])):
        return FAILED + NON_FINITE
    return str(result.status[b])


def is_failed(status) -> bool:
    """True for a ``failed: ...`` STATUS."""
    return str(status).startswith(FAILED)


def failed_row(model, label: str, reason: str, method: str = "covariance", *, auto: bool = False) -> dict:
    """The row of a galaxy that could not be fitted: NaN values, ``STATUS = failed: reason``."""
    row = {"id": label}
    row.update({name: math.nan for name in parameter_columns(model, method)})
    row.update(CHISQ=math.nan, CHI2NU=math.nan, NDOF=0, ITERATIONS=0, AUTO_INIT=bool(auto), COV_FLAG=True,
               STATUS=FAILED + reason)
    return row


def fitted_row(result, b: int, label: str, *, extra=None, method: str = "covariance", auto: bool = False) -> dict:
    """The row of galaxy ``b`` of a :class:`galprof.FitResult`.

    Args:
        extra: the bootstrap or posterior summary of ``method`` (or None): it fills the
            ``_BOOT_*`` or ``_POST_*``, ``_RHAT`` and ``_ESS`` columns.
    """
    if is_failed(status := fit_status(result, b)):
        return failed_row(result.model, label, status[len(FAILED):], method, auto=auto)
    row = {"id": label}
    for j, (c, name) in enumerate(result.names):
        key = parameter_column(c, name)
        row[key] = float(result.values[b, j])
        row[key + "_ERR"] = float(result.errors[b, j])
        row[key + "_ERR_SCALED"] = float(result.errors_scaled[b, j])
        if extra is None:
            continue
        prefix = "_BOOT" if method == "bootstrap" else "_POST"
        row[key + prefix + "_ERR"] = float(extra.std[b, j])
        for level, tag in ((0.68, "68"), (0.95, "95")):
            low, high = extra.interval(level)
            row[key + prefix + "_LO" + tag] = float(low[b, j])
            row[key + prefix + "_HI" + tag] = float(high[b, j])
        if method == "sample":
            row[key + "_RHAT"] = float(extra.r_hat[b, j])
            row[key + "_ESS"] = float(extra.ess[b, j])
    row.update(CHISQ=float(result.chi2[b]), CHI2NU=float(result.chi2_nu[b]), NDOF=int(result.ndof[b]),
               ITERATIONS=int(result.iterations[b]), AUTO_INIT=bool(auto), COV_FLAG=bool(result.covariance_flag[b]),
               STATUS=status)
    return row


def band_column(component: int, name: str, band: str) -> str:
    """``<component>_<KEY>_<band>``: a parameter's value in one band of a multi-band fit."""
    return f"{parameter_column(component, name)}_{band}"


def multiband_row(result, b: int, label: str, *, auto: bool = False) -> dict:
    """The row of galaxy ``b`` of a :class:`galprof.fitting.MultiBandFitResult`.

    A parameter with one value in every band (fixed or shared: 0 or 1 terms) has the
    single-band columns ``<k>_<KEY>``, ``_ERR`` and ``_ERR_SCALED``; a parameter that
    varies with wavelength (a polynomial, or free per band) has them per band,
    ``<k>_<KEY>_<band>``, ``<k>_<KEY>_<band>_ERR``, ``<k>_<KEY>_<band>_ERR_SCALED`` (band
    labels as given, e.g. ``1_MAG_g``). CHISQ and NDOF are over every band."""
    values = np.asarray(result.values[b])  # (K, P)
    if not np.isfinite(result.chi2[b]) or not np.all(np.isfinite(values)):
        status = FAILED + NON_FINITE
    else:
        status = str(result.status[b])
    row = {"id": label}
    scale = math.sqrt(result.chi2_nu[b]) if np.isfinite(result.chi2_nu[b]) else math.nan
    labels = result.bands.labels
    for j, (c, name) in enumerate(result.names):
        keys = ([(parameter_column(c, name), 0)] if result.terms[j] <= 1
                else [(band_column(c, name, band), k) for k, band in enumerate(labels)])
        for key, k in keys:
            error = float(result.errors[b, k, j])
            row[key] = float(values[k, j]) if not is_failed(status) else math.nan
            row[key + "_ERR"] = error if not is_failed(status) else math.nan
            row[key + "_ERR_SCALED"] = error * scale if not is_failed(status) else math.nan
    row.update(CHISQ=float(result.chi2[b]), CHI2NU=float(result.chi2_nu[b]), NDOF=int(result.ndof[b]),
               ITERATIONS=int(result.iterations[b]), AUTO_INIT=bool(auto), COV_FLAG=bool(result.covariance_flag[b]),
               STATUS=status)
    return row


def multiband_columns(model, labels, terms: dict) -> list[str]:
    """The parameter columns of a multi-band fit of ``model`` (as :func:`multiband_row`
    writes them), in table order: per band ``<k>_<KEY>_<band>`` for a parameter of more
    than one term, else ``<k>_<KEY>``; each with ``_ERR`` and ``_ERR_SCALED``.
    ``labels``: the band labels; ``terms``: {(component 1-based, name): terms} of every
    parameter (:func:`galprof.fitting.multiband.parameter_terms`)."""
    names = []
    for ci, comp in enumerate(model.components):
        for name in comp.profile_class.parameter_names():
            keys = ([parameter_column(ci + 1, name)] if terms.get((ci + 1, name), 0) <= 1
                    else [band_column(ci + 1, name, band) for band in labels])
            for key in keys:
                names += [key, key + "_ERR", key + "_ERR_SCALED"]
    return names


def unfitted_row(model, values, label: str, reason: str, method: str = "covariance") -> dict:
    """The row of a galaxy that was rendered but not fitted (GALFIT's ``P) 1..3``): its
    initial ``values`` (per component {name: value}), NaN errors, ``STATUS = not fitted: reason``."""
    row = failed_row(model, label, reason, method)
    for ci, v in enumerate(values):
        for name, value in v.items():
            row[parameter_column(ci + 1, name)] = float(value)
    row["STATUS"] = NOT_FITTED + reason
    return row


def column_order(rows: list[dict]) -> list[str]:
    """The columns of a table of ``rows`` (possibly of different models): ``id``, then
    every parameter column in order of first appearance (component by component), then
    :data:`SUMMARY_COLUMNS`. Other keys (e.g. ``_row``) follow ``id``."""
    seen: dict[str, None] = {"id": None}
    for r in rows:
        for key in r:
            if key.startswith("_"):
                seen.setdefault(key, None)
    params: dict[str, None] = {}
    for r in rows:
        for key in r:
            if key not in seen and key not in SUMMARY_COLUMNS:
                params.setdefault(key, None)
    number = {key: int(key.split("_", 1)[0]) if key.split("_", 1)[0].isdigit() else 0 for key in params}
    ordered = sorted(params, key=lambda k: number[k])  # stable: the order of appearance within a component
    return list(seen) + ordered + list(SUMMARY_COLUMNS)


def _blank(name: str):
    if name in ("id", "STATUS"):
        return ""
    if name in ("NDOF", "ITERATIONS"):
        return 0
    if name in ("AUTO_INIT",):
        return False
    if name == "COV_FLAG":
        return True
    return math.nan


def rows_table(rows: list[dict], names: list[str] | None = None):
    """An astropy Table of ``rows`` in the schema's column order (``names`` to choose
    them); a column a row lacks (another model's parameter) is NaN there."""
    names = column_order(rows) if names is None else names
    table = Table({n: [r.get(n, _blank(n)) for r in rows] for n in names}, names=names)
    for name in ("id", "STATUS"):
        if name in table.colnames:
            table[name] = table[name].astype(str)
    return table


#: results formats by extension
TABLE_FORMATS = {".fits": "fits", ".fit": "fits", ".parquet": "parquet", ".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}


def check_table_path(output) -> pathlib.Path:
    """``output`` as a path, after checking its extension names a results format."""
    output = pathlib.Path(output)
    if output.suffix.lower() not in TABLE_FORMATS:
        raise UsageError(f"{output}: unknown results format (use .fits, .parquet, .csv or .ecsv)", path=str(output))
    return output


def write_table(table, output) -> None:
    """Write the results by extension: .fits, .parquet, .csv or .ecsv (atomically: a
    temporary file in the same directory, then ``os.replace``)."""
    output = check_table_path(output)
    tmp = output.with_name(output.stem + f".tmp{os.getpid()}" + output.suffix)
    table.write(str(tmp), format=TABLE_FORMATS[output.suffix.lower()], overwrite=True)
    os.replace(tmp, output)


def write_covariance(path, result, labels=None) -> None:
    """Write every galaxy's covariance of the varying parameters to a FITS file.

    ``result`` is a :class:`galprof.FitResult` (all its galaxies, ``labels`` naming
    them) or a list of (FitResult, galaxy index, label) entries.
    One image HDU per galaxy (EXTNAME = its label, default ``GALAXY_<b>``) holding the
    (V, V) covariance [user units^2] of the parameters that vary (free, tied, coupled);
    header cards ``PAR<i>`` name row/column i as in the results table (``1_XC``,
    ``1_MAG``, ``2_RS``, ...), and ``CHI2NU``, ``CONDNUM`` (condition number),
    ``COVFLAG`` (True: singular or ill-conditioned, entries NaN). Multiply by CHI2NU for
    the scaled covariance; the correlation is C_ij / sqrt(C_ii C_jj).
    """
    if isinstance(result, (list, tuple)):
        entries = list(result)
    else:
        entries = [(result, b, labels[b] if labels is not None else f"GALAXY_{b}") for b in range(result.batch_size)]
    hdus = [fits.PrimaryHDU()]
    for result, b, label in entries:
        varying = [j for j in range(len(result.names)) if result.free[j] or result.constrained[j]]
        cov = result.parameter_covariance[b][np.ix_(varying, varying)]
        hdu = fits.ImageHDU(cov.astype(np.float64), name=str(label)[:68])
        for i, j in enumerate(varying):
            hdu.header[f"PAR{i + 1}"] = parameter_column(*result.names[j])
        hdu.header["CHI2NU"] = float(result.chi2_nu[b])
        cond = float(result.condition_number[b]) if result.condition_number is not None else float("nan")
        hdu.header["CONDNUM"] = cond if np.isfinite(cond) else -1.0
        hdu.header["COVFLAG"] = bool(result.covariance_flag[b]) if result.covariance_flag is not None else False
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(str(path), overwrite=True)
