"""``galprof batch``: fit a catalog of cutouts in streamed, checkpointed batches.

The catalog is cut into *chunks* of ``batch_size`` consecutive rows. A chunk is the
unit of work and of checkpointing:

* background threads read and prepare the next chunk's images (FITS reading, sigma
  images, masks, automatic initial values) while the current chunk is fitted, so at
  most two chunks of images are in memory, whatever the catalog's length;
* within a chunk, galaxies whose cutouts have the same shape are fitted together as
  one batch (``galprof.fit``: one LM per galaxy, vectorised over the batch; PSFs may
  differ in size); different shapes are separate batches (bucketing: no padding cost);
* the chunk's rows are written atomically (temporary file, then ``os.replace``) to
  ``<output>.parts/chunk-NNNNNN.ecsv``. Rerunning the same command skips every chunk
  already there, so a killed run resumes without refitting or duplicating anything.
  A chunk's result depends only on its own rows, so a resumed run gives the same table
  as an uninterrupted one, bit for bit on the same device and dtype;
* at the end the chunks are joined, in catalog order, into the output table.

Failures stay with their galaxy: a missing or corrupt file, an all-masked image, a
PSF with NaNs, a failed automatic initialisation or a fit that ends non-finite gives
that row ``STATUS = failed: <reason>`` and NaN values; the run goes on.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import pathlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..io.fits_io import InputError, exposure_time, read_image, read_mask, sigma_from_header
from ..model import Component, Model
from ..render.config import RenderConfig
from .catalog import GalaxySource, Template
from .columns import error_column, parameter_column, uncertainty_suffixes


@dataclass(frozen=True)
class BatchOptions:
    """Settings of :func:`run_batch`.

    Attributes:
        batch_size: catalog rows per chunk (and at most per fitted batch).
        dtype: rendering dtype, torch.float32 or torch.float64.
        device: torch device string ("cpu", "cuda", "cuda:1", "mps").
        method: "lm" or "adam".
        auto_init: "auto" (detect with sep when a row gives no centre, ``1_XC``/``1_YC``),
            "always", or "never".
        mask_mode: with automatic initialisation: "others" (mask other sources), "target"
            (fit only the target's segment) or "none".
        workers: background threads that read and prepare images.
        config: rendering settings.
        fit_options: further keyword arguments of :func:`galprof.fit`.
        errors: :class:`galprof.uncertainty.methods.ErrorOptions`: ``bootstrap`` or
            ``sample`` add bootstrap (``<k>_<KEY>_BOOT_ERR``, ``_BOOT_LO68`` ...) or
            posterior (``_POST_ERR``, ``_POST_LO68`` ..., ``_RHAT``, ``_ESS``) columns;
            ``_ERR`` is always the raw covariance error and ``_ERR_SCALED`` the scaled one.
    """

    batch_size: int = 64
    dtype: torch.dtype = torch.float32
    device: str = "cpu"
    method: str = "lm"
    auto_init: str = "auto"
    mask_mode: str = "others"
    workers: int = 2
    config: RenderConfig = RenderConfig()
    fit_options: tuple = ()
    errors: object = None  # galprof.uncertainty.methods.ErrorOptions; None: covariance

    def describe(self) -> dict:
        out = {"batch_size": self.batch_size, "dtype": str(self.dtype).replace("torch.", ""), "device": self.device,
               "method": self.method, "auto_init": self.auto_init, "mask_mode": self.mask_mode,
               "config": dataclasses.asdict(self.config), "fit_options": dict(self.fit_options)}
        if self.errors is not None and not self.errors.is_default:  # keeps older runs' fingerprints
            out["errors"] = dataclasses.asdict(self.errors)
        return out

    @property
    def error_method(self) -> str:
        return "covariance" if self.errors is None else self.errors.method


@dataclass
class Prepared:
    """A galaxy ready to fit: its data and starting values."""

    source: GalaxySource
    image: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray | None
    psf: np.ndarray | None
    exptime: float
    values: list  # per component {name: value}
    auto: bool


@dataclass
class Failed:
    source: GalaxySource
    reason: str


# ------------------------------------------------------------------------ preparation

def _auto_values(template: Template, values: list[dict], found) -> None:
    """Put the detected centre, shape, brightness and size into the starting values."""
    comps = template.model.components
    galaxies = [i for i, c in enumerate(comps) if c.profile_class.kind != "sky"]
    share = 2.5 * math.log10(max(1, len(galaxies)))  # the flux split between the components
    for ci in galaxies:
        v = values[ci]
        profile = comps[ci].profile_class
        for name in ("x", "y", "q", "pa"):
            if name in v:
                v[name] = found.values[name]
        if "mag" in v:
            v["mag"] = found.values["mag"] + share
        sizes = [s.name for s in profile.parameters if s.is_size]
        if sizes:
            scale = 1.0 / 1.678 if sizes[0] == "r_s" else 1.0
            v[sizes[0]] = max(found.values["r_e"] * scale, 0.5)
    for ci, comp in enumerate(comps):
        if comp.profile_class.kind == "sky" and "sky" in values[ci]:
            values[ci]["sky"] = found.values["sky"]


def prepare(source: GalaxySource, template: Template, options: BatchOptions) -> Prepared | Failed:
    """Read a row's files and make its starting values; never raises for bad data."""
    try:
        image, header = read_image(source.image, source.hdu)
        mask = np.zeros(image.shape, dtype=bool)
        if source.mask:
            mask |= read_mask(source.mask, image.shape)
        if source.segmentation:
            from .autoinit import mask_from_segmentation

            segmap, _ = read_image(source.segmentation)
            if segmap.shape != image.shape or source.target_label is None:
                return Failed(source, "segmentation map needs the image's shape and a target_label")
            mask |= mask_from_segmentation(segmap.astype(int), source.target_label, mode="others")
        if source.sigma:
            sigma, _ = read_image(source.sigma)
            if sigma.shape != image.shape:
                return Failed(source, f"sigma image {source.sigma} has shape {sigma.shape}, image {image.shape}")
        else:
            sigma, _ = sigma_from_header(image, header, mask=mask)
        usable = np.isfinite(image) & np.isfinite(sigma) & (sigma > 0) & ~mask
        if not usable.any():
            return Failed(source, "no usable pixel (all masked, NaN or with sigma <= 0)")
        psf_path = source.psf or template.psf
        psf = None
        if psf_path:
            psf, _ = read_image(psf_path)
            if not np.all(np.isfinite(psf)):
                return Failed(source, f"PSF {psf_path} holds NaN or infinite values")
        values = [dict(c.values) for c in template.model.components]
        for (ci, name), value in source.overrides.items():
            values[ci][name] = value
        has_centre = any((ci, "x") in source.overrides for ci in range(len(values)))
        auto = options.auto_init == "always" or (options.auto_init == "auto" and not has_centre)
        if auto:
            from .autoinit import AutoInitError, auto_initial

            try:
                found = auto_initial(np.where(usable, image, np.nan), sigma=np.where(usable, sigma, 1.0),
                                     mask=~usable, zeropoint=template.zeropoint, exptime=exposure_time(header),
                                     mask_mode=options.mask_mode)
            except AutoInitError as err:
                return Failed(source, f"automatic initial values: {err}")
            _auto_values(template, values, found)
            for (ci, name), value in source.overrides.items():  # the catalog still wins
                values[ci][name] = value
            mask |= found.mask
        return Prepared(source, image, sigma, mask if mask.any() else None, psf, exposure_time(header), values, auto)
    except (InputError, OSError, ValueError) as err:
        return Failed(source, str(err) or type(err).__name__)


# ----------------------------------------------------------------------------- fitting

def _columns(template: Template) -> list[tuple[int, str]]:
    return [(ci, name) for ci, comp in enumerate(template.model.components)
            for name in comp.profile_class.parameter_names()]


def _failed_row(template: Template, source: GalaxySource, reason: str, method: str = "covariance") -> dict:
    row = {"id": source.id, "_row": source.row}
    for ci, name in _columns(template):
        row[parameter_column(ci + 1, name)] = math.nan
        row[error_column(ci + 1, name)] = math.nan
        for suffix in uncertainty_suffixes(method):
            row[parameter_column(ci + 1, name) + suffix] = math.nan
    row.update(CHISQ=math.nan, CHI2NU=math.nan, NDOF=0, ITERATIONS=0, AUTO_INIT=False, COV_FLAG=True,
               STATUS=f"failed: {reason}")
    return row


def _uncertainty_columns(row: dict, b: int, result, extra, method: str) -> None:
    """Add galaxy b's scaled errors and bootstrap / posterior columns to ``row``."""
    for j, (c, name) in enumerate(result.names):
        key = parameter_column(c, name)
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
    row["COV_FLAG"] = bool(result.covariance_flag[b])


def _status(result, b: int) -> str:
    if not np.isfinite(result.chi2[b]) or not np.all(np.isfinite(result.values[b])):
        return "failed: the fit ended with non-finite values"
    bound = [f"{c}_{n}" for j, (c, n) in enumerate(result.names) if result.at_bound[b, j] and result.free[j]]
    if not result.converged[b]:
        return "max iterations"
    if bound:
        return "hit a bound: " + ",".join(bound)
    return "converged"


def _fit_group(group: list[Prepared], template: Template, options: BatchOptions) -> list[dict]:
    from ..fitting import fit

    comps = []
    for ci, comp in enumerate(template.model.components):
        values = {name: np.array([g.values[ci][name] for g in group], dtype=float) for name in comp.values}
        comps.append(Component(comp.profile, values, fixed=comp.fixed, bounds=comp.bounds,
                               skip_in_residual=comp.skip_in_residual))
    model = Model(tuple(comps), template.model.constraints)
    images = np.stack([g.image for g in group])
    sigma = np.stack([g.sigma for g in group])
    mask = np.stack([g.mask if g.mask is not None else np.zeros(g.image.shape, bool) for g in group])
    psf = [g.psf for g in group] if group[0].psf is not None else None
    method = options.error_method
    inputs = dict(sigma=sigma, mask=mask, psf=psf, psf_oversampling=template.psf_oversampling,
                  zeropoint=template.zeropoint, exptime=np.array([g.exptime for g in group]),
                  pixel_scale=template.plate_scale, config=options.config, dtype=options.dtype,
                  device=options.device)
    with warnings.catch_warnings():  # masked-pixel notes: the mask is the user's or auto-init's
        warnings.simplefilter("ignore", UserWarning)
        result = fit(model, images, method=options.method, names=[g.source.id for g in group], **inputs,
                     **dict(options.fit_options))
        extra = None
        if method in ("bootstrap", "sample"):
            from ..uncertainty.methods import reported_errors

            _, extra = reported_errors(options.errors, model, result, images, **inputs)
    rows = []
    for b, g in enumerate(group):
        row = {"id": g.source.id, "_row": g.source.row}
        for j, (c, name) in enumerate(result.names):
            row[parameter_column(c, name)] = float(result.values[b, j])
            row[error_column(c, name)] = float(result.errors[b, j])
        _uncertainty_columns(row, b, result, extra, method)
        row.update(CHISQ=float(result.chi2[b]), CHI2NU=float(result.chi2_nu[b]), NDOF=int(result.ndof[b]),
                   ITERATIONS=int(result.iterations[b]), AUTO_INIT=bool(g.auto), STATUS=_status(result, b))
        if row["STATUS"].startswith("failed"):
            row = {**_failed_row(template, g.source, row["STATUS"][len("failed: "):], method),
                   "AUTO_INIT": bool(g.auto)}
        rows.append(row)
    return rows


def fit_chunk(items: list, template: Template, options: BatchOptions) -> list[dict]:
    """Rows for one chunk of prepared (or failed) galaxies, in the chunk's order."""
    from ..cli import _USER_ERRORS

    rows = {}
    ready = [p for p in items if isinstance(p, Prepared)]
    for p in items:
        if isinstance(p, Failed):
            rows[p.source.row] = _failed_row(template, p.source, p.reason, options.error_method)
    groups: dict = {}
    for p in ready:
        groups.setdefault((p.image.shape, p.psf is None), []).append(p)
    for group in groups.values():
        try:
            out = _fit_group(group, template, options)
        except _USER_ERRORS + (RuntimeError,):
            # isolate the galaxy that breaks the batch: fit one by one
            out = []
            for p in group:
                try:
                    out += _fit_group([p], template, options)
                except _USER_ERRORS + (RuntimeError,) as err:
                    out.append(_failed_row(template, p.source, str(err).splitlines()[0] or type(err).__name__,
                                           options.error_method))
        for row in out:
            rows[row["_row"]] = row
    return [rows[p.source.row] for p in items]


def chunk_task(sources: list[GalaxySource], template: Template, options: BatchOptions) -> list[dict]:
    """Prepare and fit one chunk in the calling process (a Dask task)."""
    return fit_chunk([prepare(s, template, options) for s in sources], template, options)


# --------------------------------------------------------------------- checkpointing

def _model_description(model) -> dict:
    """A canonical, process-independent description of a model for the fingerprint:
    sets are sorted (the repr of a frozenset of strings changes order with Python's
    per-process hash seed, which made a resumed run look like a different one)."""
    return {"components": [{"profile": c.profile, "values": {k: c.values[k] for k in sorted(c.values)},
                            "fixed": sorted(c.fixed), "bounds": {k: c.bounds[k] for k in sorted(c.bounds)},
                            "skip_in_residual": c.skip_in_residual} for c in model.components],
            "constraints": [repr(c) for c in model.constraints]}


def _fingerprint(sources, template: Template, options: BatchOptions) -> str:
    text = json.dumps({"template": template.source, "model": _model_description(template.model),
                       "options": options.describe(),
                       "rows": [(s.id, s.image, s.hdu) for s in sources]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _parts_dir(output: pathlib.Path) -> pathlib.Path:
    return output.with_name(output.name + ".parts")


def _write_atomically(table, path: pathlib.Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    table.write(str(tmp), format="ascii.ecsv", overwrite=True)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _rows_table(rows: list[dict], template: Template, method: str = "covariance"):
    from astropy.table import Table

    names = ["id", "_row"]
    for ci, name in _columns(template):
        names += [parameter_column(ci + 1, name), error_column(ci + 1, name)]
        names += [parameter_column(ci + 1, name) + suffix for suffix in uncertainty_suffixes(method)]
    names += ["CHISQ", "CHI2NU", "NDOF", "ITERATIONS", "AUTO_INIT", "COV_FLAG", "STATUS"]
    columns = {n: [r[n] for r in rows] for n in names}
    table = Table(columns, names=names)
    table["id"] = table["id"].astype(str)
    table["STATUS"] = table["STATUS"].astype(str)
    return table


def write_table(table, output: pathlib.Path) -> None:
    """Write the results by extension: .fits, .parquet, .csv or .ecsv (atomically)."""
    formats = {".fits": "fits", ".fit": "fits", ".parquet": "parquet", ".csv": "ascii.csv", ".ecsv": "ascii.ecsv"}
    fmt = formats.get(output.suffix.lower())
    if fmt is None:
        raise ValueError(f"{output}: unknown results format (use .fits, .parquet, .csv or .ecsv)")
    tmp = output.with_name(output.stem + f".tmp{os.getpid()}" + output.suffix)
    table.write(str(tmp), format=fmt, overwrite=True)
    os.replace(tmp, output)


# ------------------------------------------------------------------------------- run

@dataclass(frozen=True)
class BatchSummary:
    output: pathlib.Path
    n_galaxies: int
    n_failed: int
    n_fitted_now: int
    seconds: float
    seconds_waiting: float  # the fitting loop waited on image preparation


def run_batch(sources: list[GalaxySource], template: Template, output, options: BatchOptions = BatchOptions(),
              *, progress: bool = True, chunk_hook=None, client=None, catalog=None) -> BatchSummary:
    """Fit every catalog row; write the results table ``output``. Resumes a killed run.

    Args:
        sources: rows from :func:`galprof.pipeline.catalog.read_catalog`.
        template: the model and frame settings.
        output: results path (.fits, .parquet, .csv, .ecsv); checkpoints go to
            ``<output>.parts/``.
        options: batch settings.
        progress: show a tqdm progress bar (galaxies/s, ETA, failed fits) on stderr.
        chunk_hook: optional callable(chunk index) after each committed chunk (tests).
        client: optional ``dask.distributed.Client``: chunks become tasks on its
            workers (each preparing and fitting its chunk on its own device, see
            ``options.device``); results stream back into the same checkpoints.
        catalog: path of the catalog ``sources`` came from, recorded (absolute) in the
            table metadata as ``CATALOG`` so that plots can find each row's images.
    """
    import time

    from astropy.table import vstack

    output = pathlib.Path(output)
    parts = _parts_dir(output)
    parts.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(sources, template, options)
    stamp = parts / "run.json"
    if stamp.exists():
        previous = json.loads(stamp.read_text())
        if previous.get("fingerprint") != fingerprint:
            raise ValueError(f"{parts} holds checkpoints of a different run (other catalog, template or "
                             "options); remove it or choose another output")
    else:
        tmp = stamp.with_name(f"run.json.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "created": datetime.datetime.now().isoformat()}))
        os.replace(tmp, stamp)
    size = max(1, int(options.batch_size))
    chunks = [sources[i:i + size] for i in range(0, len(sources), size)]

    def part(k):
        return parts / f"chunk-{k:06d}.ecsv"

    todo = [k for k in range(len(chunks)) if not part(k).exists()]
    failed_before = 0
    from astropy.table import Table

    for k in range(len(chunks)):
        if part(k).exists():
            done = Table.read(str(part(k)), format="ascii.ecsv")
            failed_before += int(sum(str(s).startswith("failed") for s in done["STATUS"]))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sources), initial=len(sources) - sum(len(chunks[k]) for k in todo), unit="gal",
                   desc="galprof batch", dynamic_ncols=True)
        bar.set_postfix(failed=failed_before)
    start = time.perf_counter()
    waiting = 0.0
    failed = failed_before

    def commit(k, rows):
        nonlocal failed
        _write_atomically(_rows_table(rows, template, options.error_method), part(k))
        failed += sum(r["STATUS"].startswith("failed") for r in rows)
        if bar is not None:
            bar.update(len(rows))
            bar.set_postfix(failed=failed)
        if chunk_hook is not None:
            chunk_hook(k)

    if client is not None and todo:
        from dask.distributed import as_completed

        # one task per chunk; Dask re-runs the chunk of a worker that dies
        futures = {client.submit(chunk_task, chunks[k], template, options, key=f"galprof-{fingerprint[:12]}-{k}"): k
                   for k in todo}
        for future in as_completed(futures):
            commit(futures[future], future.result())
            future.release()
    else:
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            def submit(k):
                return [pool.submit(prepare, s, template, options) for s in chunks[k]]

            pending = submit(todo[0]) if todo else None
            for position, k in enumerate(todo):
                t0 = time.perf_counter()
                items = [f.result() for f in pending]
                waiting += time.perf_counter() - t0
                pending = submit(todo[position + 1]) if position + 1 < len(todo) else None
                commit(k, fit_chunk(items, template, options))
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - start
    tables = [Table.read(str(part(k)), format="ascii.ecsv") for k in range(len(chunks))]
    table = vstack(tables, metadata_conflicts="silent")
    table.sort("_row")
    table.remove_column("_row")
    from .. import __version__

    table.meta.clear()
    table.meta["GALPROF"] = __version__
    table.meta["DATE"] = datetime.datetime.now().replace(microsecond=0).isoformat()
    table.meta["TEMPLATE"] = template.source
    if catalog is not None:
        table.meta["CATALOG"] = str(pathlib.Path(catalog).resolve())
    table.meta["OPTIONS"] = json.dumps(options.describe(), default=str)
    write_table(table, output)
    return BatchSummary(output, len(sources), failed, sum(len(chunks[k]) for k in todo), elapsed, waiting)
