"""The one runner: every fit of galprof's command line goes through :func:`run_batch`.

Its sources are catalog rows (``galprof batch catalog.csv --template t.feedme``), GALFIT
feedmes (``galprof fit``, ``galprof batch *.feedme``) and imfit runs (``galprof imfit``);
see :mod:`galprof.pipeline.sources`. The list of sources is cut into *chunks* of
``batch_size`` consecutive sources. A chunk is the unit of work and of checkpointing:

* background threads read and prepare the next chunk's images (FITS reading, sigma
  images, masks, automatic initial values) while the current chunk is fitted, so at
  most two chunks of images are in memory, whatever the catalog's length;
* within a chunk, galaxies with the same kind of model (profiles, parameters, fixed
  flags, bounds, and constraints of the same structure: types, components, names and
  kinds, whatever their numbers), cutout shape, PSF presence and frame are fitted
  together as one batch (``galprof.fit``: one LM per galaxy, vectorised over the batch;
  PSFs may differ in size; each galaxy keeps its own constraint numbers, relative ranges
  and tie offsets); others are separate batches (bucketing: no padding cost). With
  padding (feedmes), cutouts of different sizes and fit regions share a batch too;
* after the fit each feedme gets its GALFIT files and each imfit run its best-fit file
  (:mod:`galprof.pipeline.outputs`); a file that cannot be written is reported, and the
  fit's row is kept;
* with an output table, the chunk's rows are written atomically (temporary file, then
  ``os.replace``) to ``<output>.parts/chunk-NNNNNN.ecsv``. Rerunning the same command
  skips every chunk already there, so a killed run resumes without refitting or
  duplicating anything. A chunk's result depends only on its own rows, so a resumed run
  gives the same table as an uninterrupted one, bit for bit on the same device and dtype;
* at the end the chunks are joined, in order, into the output table
  (:mod:`galprof.io.results`: one schema for every source).

Failures stay with their galaxy: a missing or corrupt file, an all-masked image, a
PSF with NaNs, a failed automatic initialisation or a fit that ends non-finite gives
that row ``STATUS = failed: <reason>`` and NaN values; the run goes on. With a Dask
client the chunks run on its workers instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import pathlib
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from astropy.table import Table, vstack
from tqdm import tqdm

from .. import __version__
from ..constraints import constraint_structure, shift_constraints, shifts_with_origin, stack_constraints
from ..errors import GalprofError, InputError, UsageError
from ..fitting import fit
from ..io.results import (
    FAILED,
    SUMMARY_COLUMNS,
    failed_row,
    fitted_row,
    is_failed,
    multiband_columns,
    multiband_row,
    parameter_columns,
    rows_table,
    unfitted_row,
    write_table,
)
from ..model import Component, Model, shift_positions
from ..render.config import RenderConfig
from ..uncertainty.methods import reported_errors
from .sources import Failed, FeedmeSource, Prepared, Template, prepare


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
        verbose: print each feedme's parameter table and the files written (``galprof fit``).
        pad_shapes: fit cutouts of different sizes and fit regions together, padded to
            the largest (GALFIT feedmes); otherwise each size is its own batch (catalogs).
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
    verbose: bool = False
    pad_shapes: bool = False

    def describe(self) -> dict:
        out = {"batch_size": self.batch_size, "dtype": str(self.dtype).replace("torch.", ""), "device": self.device,
               "method": self.method, "auto_init": self.auto_init, "mask_mode": self.mask_mode,
               "config": {k: v for k, v in dataclasses.asdict(self.config).items() if k != "fused"},
               "fit_options": dict(self.fit_options)}
        if self.errors is not None and not self.errors.is_default:  # keeps older runs' fingerprints
            out["errors"] = dataclasses.asdict(self.errors)
        if self.pad_shapes:
            out["pad_shapes"] = True
        return out

    @property
    def error_method(self) -> str:
        return "covariance" if self.errors is None else self.errors.method


# ----------------------------------------------------------------------------- fitting

def _group_key(p: Prepared, pad: bool):
    """Galaxies with equal keys are fitted together in one batch: the same model kind and
    constraints of the same structure (:func:`galprof.constraints.constraint_structure`;
    their numbers may differ). With ``pad`` (feedmes), cutouts of different sizes and fit
    regions share a batch (padded, each in its own region's pixels, absolute position
    ranges shifted with it), except galaxies with a convolution box smaller than their
    region or a constraint that changes meaning when the origin moves (a ratio or factor
    on a position: :func:`galprof.constraints.shifts_with_origin`), which keep their
    image shape and origin."""
    comps = tuple((c.profile, tuple(sorted(c.values)), tuple(sorted(c.fixed)), tuple(sorted(c.bounds.items())),
                   c.skip_in_residual) for c in p.model.components)
    if p.bands is not None:  # multi-band: the same bands, terms, constraint structure and pixel grid
        return ("bands", comps, p.bands, p.terms, constraint_structure(p.model.constraints), p.psf is None,
                p.psf_oversampling, tuple(p.plate_scale), repr(p.fit_options), p.image.shape, tuple(p.origin),
                p.convolution_box)
    common = (comps, constraint_structure(p.model.constraints), p.psf is None, p.psf_oversampling,
              tuple(p.plate_scale), repr(p.fit_options))
    h, w = p.image.shape
    box = p.convolution_box
    movable = all(shifts_with_origin(c) for c in p.model.constraints)
    if pad and movable and (box is None or (box[0] >= w and box[1] >= h)):
        return common + ("padded",)
    return common + (p.image.shape, tuple(p.origin), box)


def _failed(item, reason: str, method: str) -> dict:
    """The row of a galaxy that failed, whatever its source."""
    model = getattr(item, "model", None)
    if model is None:
        row = {"id": item.source.id, **{name: np.nan for name in SUMMARY_COLUMNS}}
        row.update(NDOF=0, ITERATIONS=0, AUTO_INIT=False, COV_FLAG=True, STATUS=FAILED + reason)
    else:
        row = failed_row(model, item.source.id, reason, method, auto=bool(getattr(item, "auto", False)))
    row["_row"] = item.source.row
    return row


def _write_outputs(p: Prepared, row: dict, options: BatchOptions, *args) -> None:
    """A galaxy's own files (feedme, imfit run); a failure is reported and the row kept."""
    if p.outputs is None:
        return
    try:
        p.outputs.write(p, *args, render_config=options.config)
    except Exception as err:  # noqa: BLE001 - a finished fit is never lost to output formatting
        message = str(err).splitlines()[0] if str(err) else ""
        print(f"galprof: error: {p.source.id}: the fit is in the results, but its output files were not "
              f"written: {type(err).__name__}: {message}", file=sys.stderr)
        row["_output_error"] = f"{type(err).__name__}: {message}"


def _fit_group(group: list[Prepared], options: BatchOptions, on_fitted=None) -> list[dict]:
    first = group[0]
    if first.bands is not None:
        return _fit_band_group(group, options)
    padded = len({g.image.shape for g in group}) > 1 or len({tuple(g.origin) for g in group}) > 1
    # padded: each galaxy in its own region's pixels, (1, 1) at the region's first pixel
    shifts = [((g.origin[0] - 1.0, g.origin[1] - 1.0) if padded else (0.0, 0.0)) for g in group]
    starts = [shift_positions(first.model, g.values, -dx, -dy) for g, (dx, dy) in zip(group, shifts)]
    comps = []
    for ci, comp in enumerate(first.model.components):
        values = {name: np.array([v[ci][name] for v in starts], dtype=float) for name in comp.values}
        comps.append(Component(comp.profile, values, fixed=comp.fixed, bounds=comp.bounds,
                               skip_in_residual=comp.skip_in_residual))
    # each galaxy's own constraint numbers, absolute position ranges in its padded pixels
    own = [shift_constraints(g.model.constraints, dx, dy) if padded else g.model.constraints
           for g, (dx, dy) in zip(group, shifts)]
    model = Model(tuple(comps), stack_constraints(own))
    height = max(g.image.shape[0] for g in group)
    width = max(g.image.shape[1] for g in group)
    images = np.zeros((len(group), height, width))
    sigma = np.ones((len(group), height, width))
    mask = np.zeros((len(group), height, width), dtype=bool)
    for b, g in enumerate(group):
        h, w = g.image.shape
        images[b, :h, :w] = g.image
        sigma[b, :h, :w] = g.sigma
        if g.mask is not None:
            mask[b, :h, :w] = g.mask
    psf = [g.psf for g in group] if first.psf is not None else None
    method = options.error_method
    inputs = dict(sigma=sigma, mask=mask, psf=psf, psf_oversampling=first.psf_oversampling,
                  origin=(1, 1) if padded else tuple(first.origin),
                  zeropoint=np.array([g.zeropoint for g in group], dtype=float),
                  exptime=np.array([g.exptime for g in group], dtype=float), pixel_scale=tuple(first.plate_scale),
                  # padded: every box covers its own region (see _group_key), so convolve everything
                  convolution_box=None if padded else first.convolution_box, config=options.config,
                  dtype=options.dtype,
                  device=options.device)
    if padded:
        inputs["region_sizes"] = np.array([(g.image.shape[1], g.image.shape[0]) for g in group])
    keywords = {**dict(options.fit_options), **dict(first.fit_options)}
    if options.verbose and len(group) > 1:
        kind = "feedmes" if all(isinstance(g.source, FeedmeSource) for g in group) else "galaxies"
        print(f"galprof {__version__}: fitting {len(group)} {kind} together: " + ", ".join(g.source.id for g in group))
    with warnings.catch_warnings():
        if not options.verbose:  # masked-pixel notes: the mask is the user's or auto-init's
            warnings.simplefilter("ignore", UserWarning)
        result = fit(model, images, method=options.method, names=[g.source.id for g in group], **inputs, **keywords)
        reported, extra = result, None
        if options.errors is not None and method != "covariance":
            reported, extra = reported_errors(options.errors, model, result, images, **inputs)
    rows = []
    for b, g in enumerate(group):
        # rows, outputs and callers see the galaxy's own image pixels
        row = fitted_row(_moved(result, b, shifts[b]) if padded else result, b, g.source.id, extra=extra,
                         method=method, auto=g.auto)
        row["_row"] = g.source.row
        if not is_failed(row["STATUS"]):
            own = _moved(reported, b, shifts[b]) if padded else reported
            _write_outputs(g, row, options, own, b, extra)
            if on_fitted is not None:
                on_fitted(g, own, b, extra)
        rows.append(row)
    return rows


def _fit_band_group(group: list[Prepared], options: BatchOptions) -> list[dict]:
    """Fit multi-band galaxies of one group (same bands, terms, pixel grid) together with
    :func:`galprof.fit` (``bands=``); rows by :func:`galprof.io.results.multiband_row`."""
    first = group[0]
    if options.error_method != "covariance":
        raise UsageError(f"multi-band fits report covariance errors only (--errors {options.error_method} is not "
                         "supported for them yet)")
    n_bands = len(first.bands)
    comps = []
    for ci, comp in enumerate(first.model.components):
        values = {name: np.stack([np.broadcast_to(np.asarray(g.values[ci][name], dtype=float), (n_bands,))
                                  for g in group]) for name in comp.values}
        comps.append(Component(comp.profile, values, fixed=comp.fixed, bounds=comp.bounds,
                               skip_in_residual=comp.skip_in_residual))
    model = Model(tuple(comps), stack_constraints([g.model.constraints for g in group]))
    mask = None
    if any(g.mask is not None for g in group):
        mask = np.stack([np.zeros(g.image.shape, dtype=bool) if g.mask is None else g.mask for g in group])
    keywords = {**dict(options.fit_options), **dict(first.fit_options)}
    if options.verbose and len(group) > 1:
        print(f"galprof {__version__}: fitting {len(group)} multi-band feedmes together: "
              + ", ".join(g.source.id for g in group))
    with warnings.catch_warnings():
        if not options.verbose:
            warnings.simplefilter("ignore", UserWarning)
        result = fit(model, np.stack([g.image for g in group]), bands=first.bands, terms=dict(first.terms),
                     sigma=np.stack([g.sigma for g in group]), mask=mask,
                     psf=[list(g.psf) for g in group] if first.psf is not None else None,
                     psf_oversampling=first.psf_oversampling, origin=tuple(first.origin),
                     zeropoint=np.stack([np.broadcast_to(g.zeropoint, (n_bands,)) for g in group]),
                     exptime=np.stack([np.broadcast_to(g.exptime, (n_bands,)) for g in group]),
                     pixel_scale=tuple(first.plate_scale), convolution_box=first.convolution_box,
                     config=options.config, dtype=options.dtype, device=options.device,
                     names=[g.source.id for g in group], **keywords)
    rows = []
    for b, g in enumerate(group):
        row = multiband_row(result, b, g.source.id, auto=g.auto)
        row["_row"] = g.source.row
        if not is_failed(row["STATUS"]):
            _write_outputs(g, row, options, result, b, None)
        rows.append(row)
    return rows


def _moved(result, b: int, shift) -> object:
    """``result`` with galaxy b's positions moved by ``shift`` (padded pixels -> image pixels)."""
    kinds = [c.profile_class.kind for c in result.model.components]
    values = np.array(result.values, dtype=float, copy=True)
    for j, (c, name) in enumerate(result.names):
        if name in ("x", "y") and kinds[c - 1] != "sky":
            values[b, j] += shift[0 if name == "x" else 1]
    return dataclasses.replace(result, values=values)


def fit_chunk(items: list, template: Template | None, options: BatchOptions, on_fitted=None) -> list[dict]:
    """Rows for one chunk of prepared (or failed) galaxies, in the chunk's order.

    ``on_fitted``: optional callable(prepared, result, b, extra) after each galaxy's fit
    (in-process runs only; ``galprof fit`` collects covariances with it).
    """
    rows = {}
    ready = []
    method = options.error_method
    for p in items:
        if isinstance(p, Failed):
            rows[p.source.row] = _failed(p, p.reason, method)
        elif not p.fitted:  # GALFIT's P) 1..3: the starting model, rendered
            mode = getattr(getattr(p.outputs, "feedme", None), "mode", "?")
            row = unfitted_row(p.model, p.values, p.source.id, f"GALFIT option P) {mode}", method)
            row["_row"] = p.source.row
            _write_outputs(p, row, options, None, 0, None)
            rows[p.source.row] = row
        else:
            ready.append(p)
    groups: dict = {}
    for p in ready:
        groups.setdefault(_group_key(p, options.pad_shapes), []).append(p)
    for group in groups.values():
        if len(group) == 1:
            out = _fit_alone(group[0], options, on_fitted)
        else:
            try:
                out = _fit_group(group, options, on_fitted)
            except Exception:  # noqa: BLE001 - isolate the galaxy that breaks the batch: fit one by one
                out = [row for p in group for row in _fit_alone(p, options, on_fitted)]
        for row in out:
            rows[row["_row"]] = row
    return [rows[p.source.row] for p in items]


def _fit_alone(p: Prepared, options: BatchOptions, on_fitted) -> list[dict]:
    try:
        return _fit_group([p], options, on_fitted)
    except GalprofError as err:
        return [_failed(p, str(err).splitlines()[0] or type(err).__name__, options.error_method)]
    except Exception as err:  # noqa: BLE001 - one bad galaxy never takes the others down
        text = str(err).splitlines()[0] if str(err) else ""
        return [_failed(p, f"{type(err).__name__}: {text}", options.error_method)]


def chunk_task(sources: list, template: Template | None, options: BatchOptions) -> list[dict]:
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


def run_fingerprint(sources, template: Template | None, options: BatchOptions) -> str:
    """A digest of what a run fits and how: the sources (catalog rows, feedmes and their
    text), the template and the options. Checkpoints of another run are never mixed in."""
    rows = [s.describe() if hasattr(s, "describe") else (s.id, s.image, s.hdu) for s in sources]
    described = {"options": options.describe(), "rows": rows}
    if template is not None:
        described.update(template=template.source, model=_model_description(template.model))
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _parts_dir(output: pathlib.Path) -> pathlib.Path:
    return output.with_name(output.name + ".parts")


def _write_atomically(table, path: pathlib.Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    table.write(str(tmp), format="ascii.ecsv", overwrite=True)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _chunk_table(rows: list[dict], template: Template | None, method: str):
    """A chunk's rows as a table (``_row`` kept for the final order); the template's
    columns when there is one, so that every chunk of a catalog has the same."""
    if template is not None:
        columns = (parameter_columns(template.model, method) if template.bands is None
                   else multiband_columns(template.model, template.bands.labels, dict(template.terms)))
        names = ["id", "_row"] + columns + list(SUMMARY_COLUMNS)
    else:
        names = [n for n in rows_table(rows).colnames if n == "_row" or not n.startswith("_")]
    return rows_table(rows, names)


def _filled(table):
    """``table`` with the masked cells of an outer join (galaxies of different models)
    filled: NaN, 0, False or ''."""
    for name in table.colnames:
        column = table[name]
        if getattr(column, "mask", None) is None or not np.any(column.mask):
            continue
        kind = column.dtype.kind
        fill = np.nan if kind == "f" else 0 if kind in "iu" else False if kind == "b" else ""
        table[name] = column.filled(fill)
    return table


# ------------------------------------------------------------------------------- run

@dataclass(frozen=True)
class BatchSummary:
    """What a run did.

    Attributes:
        output: the results table written (None for a run without one).
        n_galaxies, n_failed: galaxies in the run, and those whose STATUS is failed.
        n_fitted_now: galaxies fitted by this call (not taken from checkpoints).
        n_output_errors: galaxies whose own files (feedme or imfit outputs) were not
            written although their fit finished (their rows are kept).
        seconds, seconds_waiting: wall time, and the part the fitting loop waited on
            image preparation.
        table: the results (astropy Table in the schema of :mod:`galprof.io.results`).
    """

    output: pathlib.Path | None
    n_galaxies: int
    n_failed: int
    n_fitted_now: int
    seconds: float
    seconds_waiting: float
    table: object = None
    n_output_errors: int = 0


def run_batch(sources: list, template: Template | None, output, options: BatchOptions = BatchOptions(),
              *, progress: bool = True, chunk_hook=None, client=None, catalog=None, on_fitted=None) -> BatchSummary:
    """Fit every source; write the results table ``output``. Resumes a killed run.

    Args:
        sources: catalog rows from :func:`galprof.pipeline.sources.read_catalog` (with
            ``template``), :class:`~galprof.pipeline.sources.FeedmeSource` or
            :class:`~galprof.pipeline.sources.ImfitSource` values (``template`` None).
        template: the model and frame settings of catalog rows.
        output: results path (.fits, .parquet, .csv, .ecsv); checkpoints go to
            ``<output>.parts/``. None: no table and no checkpoints (``galprof fit``,
            ``galprof imfit``); the rows are in the summary's ``table``.
        options: batch settings.
        progress: show a tqdm progress bar (galaxies/s, ETA, failed fits) on stderr.
        chunk_hook: optional callable(chunk index) after each committed chunk (tests).
        client: optional ``dask.distributed.Client``: chunks become tasks on its
            workers (each preparing and fitting its chunk on its own device, see
            ``options.device``); results stream back into the same checkpoints.
        catalog: path of the catalog ``sources`` came from, recorded (absolute) in the
            table metadata as ``CATALOG`` so that plots can find each row's images.
        on_fitted: optional callable(prepared, result, b, extra) after each galaxy's fit;
            in-process runs only (not with ``client``).
    """
    if client is not None and on_fitted is not None:
        raise UsageError("results collected in this process (covariance and bootstrap files) cannot come back "
                           "from Dask workers; run without Dask for them")
    parts = None
    if output is not None:
        output = pathlib.Path(output)
        parts = _parts_dir(output)
        parts.mkdir(parents=True, exist_ok=True)
        fingerprint = run_fingerprint(sources, template, options)
        stamp = parts / "run.json"
        if stamp.exists():
            previous = json.loads(stamp.read_text())
            if previous.get("fingerprint") != fingerprint:
                raise InputError(f"{parts} holds checkpoints of a different run (other sources, template or "
                                   "options); remove it or choose another output")
        else:
            tmp = stamp.with_name(f"run.json.tmp{os.getpid()}")
            tmp.write_text(json.dumps({"fingerprint": fingerprint, "created": datetime.datetime.now().isoformat()}))
            os.replace(tmp, stamp)
    else:
        fingerprint = run_fingerprint(sources, template, options)
    size = max(1, int(options.batch_size))
    chunks = [sources[i:i + size] for i in range(0, len(sources), size)]
    method = options.error_method

    def part(k):
        return parts / f"chunk-{k:06d}.ecsv"

    done_before = {k for k in range(len(chunks)) if parts is not None and part(k).exists()}
    todo = [k for k in range(len(chunks)) if k not in done_before]
    failed_before = 0
    for k in sorted(done_before):
        done = Table.read(str(part(k)), format="ascii.ecsv")
        failed_before += int(sum(is_failed(s) for s in done["STATUS"]))
    bar = None
    if progress:

        bar = tqdm(total=len(sources), initial=len(sources) - sum(len(chunks[k]) for k in todo), unit="gal",
                   desc="galprof", dynamic_ncols=True)
        bar.set_postfix(failed=failed_before)
    start = time.perf_counter()
    waiting = 0.0
    failed = failed_before
    output_errors = 0
    in_memory: dict = {}

    def commit(k, rows):
        nonlocal failed, output_errors
        output_errors += sum("_output_error" in r for r in rows)
        if parts is not None:
            _write_atomically(_chunk_table(rows, template, method), part(k))
        else:
            in_memory[k] = rows
        failed += sum(is_failed(r["STATUS"]) for r in rows)
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
                commit(k, fit_chunk(items, template, options, on_fitted))
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - start
    if parts is not None:
        tables = [Table.read(str(part(k)), format="ascii.ecsv") for k in range(len(chunks))]
        table = _filled(vstack(tables, join_type="outer", metadata_conflicts="silent"))
    else:
        rows = [r for k in sorted(in_memory) for r in in_memory[k]]
        table = rows_table(rows, [n for n in rows_table(rows).colnames if n == "_row" or not n.startswith("_")])
    table.sort("_row")
    table.remove_column("_row")
    table.meta.clear()
    table.meta["GALPROF"] = __version__
    table.meta["DATE"] = datetime.datetime.now().replace(microsecond=0).isoformat()
    if template is not None:
        table.meta["TEMPLATE"] = template.source
        if template.bands is not None:
            table.meta["BANDS"] = template.bands.text()
    if catalog is not None:
        table.meta["CATALOG"] = str(pathlib.Path(catalog).resolve())
    table.meta["OPTIONS"] = json.dumps(options.describe(), default=str)
    if output is not None:
        write_table(table, output)
    return BatchSummary(output, len(sources), failed, sum(len(chunks[k]) for k in todo), elapsed, waiting, table,
                        output_errors)
