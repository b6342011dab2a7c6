"""Per-galaxy output files: GALFIT's for a feedme, imfit's for an imfit run.

* :class:`FeedmeOutputs`: the image block (``B)``; GALFIT's ``P) 0`` and ``2``), the model
  image (``P) 1``), ``subcomps.fits`` (``P) 3``), the restart file ``galfit.NN`` and the
  ``fit.log`` entry, all as GALFIT writes them (flagged parameters as ``*value*``), plus
  the fit's STATUS (:mod:`galprof.fitting.result`): a ``STATUS`` card in the image
  block's model header and a ``# status: ...`` line after the fit.log entry.
* :class:`ImfitOutputs`: imfit's best-fit parameter file (a valid imfit configuration
  with imfit's header lines), and the model, residual and weight images it asks for.

Both are called by :mod:`galprof.pipeline.runner` after a galaxy's fit, with the fit's
:class:`galprof.FitResult` and the galaxy's index in it. Conventions are GALFIT's:
1-based pixels, PA in degrees counter-clockwise from +y, sizes along the major axis
[pix], q = b/a.
"""

from __future__ import annotations

import datetime
import math
import os
import pathlib
from dataclasses import dataclass

import numpy as np
import torch
from astropy.io import fits

from .. import __version__
from ..errors import UsageError
from ..io.feedme import Feedme, format_feedme, next_restart_path
from ..io.galfit_output import (
    ComponentReport,
    append_fit_log,
    galfit_header_cards,
    write_imgblock,
    write_model_image,
)
from ..io.galfitm import (
    MultiBandFeedme,
    append_galfitm_log,
    format_galfitm_restart,
    galfitm_log_entry,
    write_galfitm_imgblock,
)
from ..io.imfit_config import (
    format_imfit_config,
    function_parameters,
    read_imfit_config,
    values_to_imfit,
)
from ..io.imfit_output import bestfit_header_lines
from ..io.results import NOT_FITTED, fit_status
from ..profiles import get_profile
from ..profiles.modifiers import profile_for_values
from ..render.config import RenderConfig
from ..render.psf import prepare_psf
from ..render.scene import Frame, render_component


def per_component(values, names) -> list[dict]:
    """[{name: value}, ...] per component from one galaxy's (P,) row and a FitResult's
    ``names`` ((component, name) pairs, components 1-based)."""
    out: dict = {}
    for j, (comp, name) in enumerate(names):
        out.setdefault(comp, {})[name] = values[j]
    return [out[k] for k in sorted(out)]


def _reports(feedme: Feedme, values, errors, at_bound, constrained=None) -> list[ComponentReport]:
    out = []
    for i, c in enumerate(feedme.components):
        names = list(c.values)
        held = constrained[i] if constrained is not None else {}
        out.append(ComponentReport(
            number=c.number, profile=c.profile, values={n: float(values[i][n]) for n in names},
            errors={n: float(errors[i].get(n, 0.0)) for n in names}, free=dict(c.free),
            problem={n: bool(at_bound[i].get(n, False)) for n in names}, skip_in_residual=c.skip_in_residual,
            constrained={n: bool(held.get(n, False)) for n in names}))
    return out


def _claim_restart_path() -> pathlib.Path:
    """The next free ``galfit.NN`` in the current directory, created empty at once
    (O_EXCL) so that two processes writing restart files never take the same number."""
    for _ in range(1000):
        path = next_restart_path(".")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return path
        except FileExistsError:
            continue
    raise UsageError("cannot claim a galfit.NN restart file name in the current directory")


@dataclass
class FeedmeOutputs:
    """GALFIT's files for one feedme (see the module docstring); ``verbose`` prints what
    is written and the fit's parameter table, as ``galprof fit`` does."""

    feedme: Feedme
    verbose: bool = False

    def _say(self, text: str = "") -> None:
        if self.verbose:
            print(text)

    def write(self, prepared, result=None, b: int = 0, extra=None, render_config=None) -> None:
        """Write the files of galaxy ``b`` of ``result`` (None: the starting values, for
        GALFIT's ``P) 1..3``)."""
        feedme = self.feedme
        x1, x2, y1, y2 = feedme.fit_region
        sigma_note = prepared.sigma_note if feedme.sigma_image else "from data"
        self._say(f"galprof {__version__}: {feedme.path}  fit region [{x1}:{x2},{y1}:{y2}]  "
                  f"PSF {feedme.psf_image or 'none'}  sigma {sigma_note}")
        if result is not None:
            values = per_component(result.values[b], result.names)
            errors = per_component(result.errors[b], result.names)
            at_bound = per_component(result.at_bound[b], result.names)
            constrained = per_component(result.constrained, result.names)
            chi2, ndof, chi2nu = float(result.chi2[b]), int(result.ndof[b]), float(result.chi2_nu[b])
            nfree = int(result.free.sum())
            status = fit_status(result, b)
            self._say("")
            self._say(result.table(b))
        else:
            values = [dict(c.values) for c in feedme.components]
            errors = [{n: 0.0 for n in c.values} for c in feedme.components]
            at_bound = [{} for _ in feedme.components]
            constrained = None
            nfree = sum(sum(c.free.values()) for c in feedme.components)
            status = NOT_FITTED + f"GALFIT option P) {feedme.mode}"
        frame = Frame(x1, y1, x2 - x1 + 1, y2 - y1 + 1, feedme.zeropoint, prepared.exptime, feedme.convolution_box,
                      pixel_scale=tuple(feedme.plate_scale))
        frame_psf = None
        if prepared.psf is not None:
            h, w = prepared.image.shape
            frame_psf = prepare_psf(prepared.psf, oversampling=feedme.psf_oversampling,
                                    max_shape=(2 * h + 1, 2 * w + 1), source=feedme.psf_image, dtype=torch.float64)
        comp_images = []
        render_config = render_config or RenderConfig()
        for c, v in zip(feedme.components, values):
            params = {k: torch.tensor([float(val)], dtype=torch.float64) for k, val in v.items()}
            profile = profile_for_values(get_profile(c.profile), v.keys())
            comp_images.append(render_component(profile, params, frame, frame_psf, render_config)[0].numpy())
        model_image = np.sum(comp_images, axis=0)
        residual = prepared.image - sum(img for img, c in zip(comp_images, feedme.components) if not c.skip_in_residual)
        if result is None:  # chi^2 of the starting model
            good = np.isfinite(prepared.sigma) & (prepared.sigma > 0) & np.isfinite(prepared.image)
            if prepared.mask is not None:
                good &= ~prepared.mask
            chi2 = float(np.sum((residual[good] / prepared.sigma[good]) ** 2))
            ndof = int(good.sum()) - nfree
            chi2nu = chi2 / max(ndof, 1)
        reports = _reports(feedme, values, errors, at_bound, constrained)
        if feedme.mode == 1:
            cards = galfit_header_cards(reports, chi2=chi2, ndof=ndof, nfree=nfree, chi2nu=chi2nu)
            write_model_image(feedme.output_image, model_image.astype(np.float32), cards)
            self._say(f"wrote model image {feedme.output_image}")
            return
        # the fit's STATUS (galprof's vocabulary: converged, degenerate: 2_mag, ...) as a card
        # after GALFIT's; flagged parameters are written *value* +/- *error*
        write_imgblock(feedme.output_image, data=prepared.image, model=model_image, residual=residual, feedme=feedme,
                       components=reports, chi2=chi2, ndof=ndof, nfree=nfree, chi2nu=chi2nu,
                       input_header=prepared.header, input_names={"STATUS": status})
        self._say(f"wrote image block {feedme.output_image}")
        if feedme.mode == 3:

            hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(img.astype(np.float32), name=f"COMP_{i + 1}")
                                          for i, img in enumerate(comp_images)]
            fits.HDUList(hdus).writeto("subcomps.fits", overwrite=True)
            self._say("wrote subcomps.fits")
        if feedme.mode == 0:
            restart = _claim_restart_path()
            restart.write_text(format_feedme(feedme, values, chi2=chi2, ndof=ndof, chi2nu=chi2nu))
            initial = _reports(feedme, [dict(c.values) for c in feedme.components],
                               [{} for _ in feedme.components], [{} for _ in feedme.components])
            append_fit_log("fit.log", feedme=feedme, components=reports, initial_components=initial, chi2=chi2,
                           ndof=ndof, chi2nu=chi2nu, date=datetime.datetime.now().isoformat(timespec="seconds"),
                           restart_file=str(restart), output_image=feedme.output_image)
            with open("fit.log", "a", encoding="utf-8") as log:  # GALFIT's entry, then galprof's STATUS
                log.write(f"# status: {status}\n")
            self._say(f"wrote {restart} and appended fit.log")


@dataclass
class GalfitmOutputs:
    """GALFITM's files for one multi-band feedme (:mod:`galprof.io.galfitm`): the image
    block of line B (input, model and residual of every band, per-band header cards and
    GALFITM's tables), the restart file ``galfit.NN`` in GALFITM's layout (Chebyshev
    coefficients), and the ``fit.log`` entry followed by a ``# status: ...`` line.
    ``verbose`` prints what is written and the entry's per-band table."""

    feedme: MultiBandFeedme
    verbose: bool = False

    def _say(self, text: str = "") -> None:
        if self.verbose:
            print(text)

    def write(self, prepared, result=None, b: int = 0, extra=None, render_config=None) -> None:
        """Write the files of galaxy ``b`` of ``result`` (a
        :class:`galprof.fitting.MultiBandFitResult`)."""
        feedme = self.feedme
        status = str(result.status[b])
        headers = prepared.header if isinstance(prepared.header, list) else None
        write_galfitm_imgblock(feedme.output_image, feedme, result, b, data=prepared.image, input_headers=headers,
                               flags="" if status == "converged" else status)
        restart = _claim_restart_path()
        restart.write_text(format_galfitm_restart(feedme, result, b))
        names = dict(restart_file=str(restart), output_image=feedme.output_image,
                     date=datetime.datetime.now().isoformat(timespec="seconds"))
        self._say(galfitm_log_entry(feedme, result, b, **names))
        self._say(f"  chi2 = {result.chi2[b]:g}  ndof = {int(result.ndof[b])}  chi2/nu = {result.chi2_nu[b]:.5g}  "
                  f"iterations = {int(result.iterations[b])}  status = {status}")
        append_galfitm_log("fit.log", feedme, result, b, **names)
        with open("fit.log", "a", encoding="utf-8") as log:  # GALFITM's entry, then galprof's STATUS
            log.write(f"# status: {status}\n")
        self._say(f"wrote image block {feedme.output_image}")
        self._say(f"wrote {restart} and appended fit.log")


@dataclass
class ImfitOutputs:
    """imfit's files for one ``galprof imfit`` run.

    Attributes:
        config: the configuration file (read again to write the best-fit file in its layout).
        save_params: best-fit parameter file (imfit's ``--save-params``).
        save_model, save_residual, save_weights: optional FITS images.
        save_bootstrap: with bootstrap errors, every resampling's parameters (imfit names).
        command: the command line, recorded in the best-fit header as imfit does.
        statistic_name: imfit's name of the fit statistic (``chi-squared (data-based
            errors)``, ...).
        errors: ``covariance``, ``scaled`` or ``bootstrap``.
        inputs: {"image": ..., "psf": ..., "mask": ..., "noise": ..., "noise_kind": ...,
            prelude keys}: recorded in the header so that plots find the run's files.
        verbose: print the best-fit file and what is written.
    """

    config: str
    save_params: str = "bestfit_parameters_imfit.dat"
    save_model: str | None = None
    save_residual: str | None = None
    save_weights: str | None = None
    save_bootstrap: str | None = None
    command: str = ""
    statistic_name: str = "chi-squared (data-based errors)"
    errors: str = "covariance"
    inputs: tuple = ()
    verbose: bool = False

    def _say(self, text: str = "") -> None:
        if self.verbose:
            print(text)

    def write(self, prepared, result, b: int = 0, extra=None, render_config=None) -> None:
        config = read_imfit_config(self.config)
        ny, nx = prepared.image.shape
        centre = ((nx + 1) / 2.0, (ny + 1) / 2.0)
        values = per_component(result.values[b], result.names)
        errors = per_component(result.errors[b], result.names)
        free_columns = [j for j in range(len(result.names)) if result.free[j]]
        covariance = result.covariance[b]
        if self.errors == "scaled":  # errors and covariance times chi2_nu (the conversions use the covariance)
            errors = per_component(result.errors_scaled[b], result.names)
            covariance = covariance * float(result.chi2_nu[b])

        def covariances(component, names):
            """Covariance of parameters ``names`` of component ``component`` (0-based)."""
            if result.constrained.any() and len(free_columns) != covariance.shape[0]:
                return None
            out = np.zeros((len(names), len(names)))
            where = [free_columns.index(result.column(component + 1, n)) if result.column(component + 1, n)
                     in free_columns else None for n in names]
            for a, ia in enumerate(where):
                for c, ic in enumerate(where):
                    if ia is not None and ic is not None:
                        out[a, c] = covariance[ia, ic]
            return out

        centres, rows = values_to_imfit(config, values, errors, centre, covariances)
        if self.errors == "bootstrap" and extra is not None and hasattr(extra, "replicates"):
            centre_err, function_err, names, table = _bootstrap_tables(config, extra, b, centre)
            centres = [(c[0], centre_err[2 * k], c[2], centre_err[2 * k + 1]) for k, c in enumerate(centres)]
            rows = [{name: (value, function_err[k][name]) for name, (value, _) in row.items()}
                    for k, row in enumerate(rows)]
            if self.save_bootstrap:
                np.savetxt(self.save_bootstrap, table, fmt="%.10g", header="  ".join(names),
                           comments=f"# galprof {__version__} bootstrap resamplings of {prepared.source.image}\n# ")
                self._say(f"wrote {self.save_bootstrap}")
        chi2, ndof = float(result.chi2[b]), int(result.ndof[b])
        n_free = int(result.free.sum())
        n_pix = ndof + n_free
        # imfit's AIC is corrected for small samples; its BIC uses the number of pixels
        aic = chi2 + 2 * n_free + (2 * n_free * (n_free + 1) / max(n_pix - n_free - 1, 1))
        bic = chi2 + n_free * math.log(max(n_pix, 1))
        header = bestfit_header_lines(
            program=f"galprof {__version__}", command=self.command, fit_status=fit_status(result, b),
            converged=bool(result.converged[b] if result.optimiser_converged is None
                           else result.optimiser_converged[b]),
            iterations=int(result.iterations[b]), statistic_name=self.statistic_name, best=chi2,
            reduced=float(result.chi2_nu[b]), aic=aic, bic=bic, inputs=dict(self.inputs),
            errors_note=("scatter of bootstrap resamplings" if self.errors == "bootstrap"
                         else "covariance matrix, scaled by the reduced chi^2" if self.errors == "scaled"
                         else "covariance matrix"))
        text = format_imfit_config(config, centres, rows, header, raw_header=True)
        pathlib.Path(self.save_params).write_text(text)
        self._say(text)
        self._say(f"wrote {self.save_params}")

        sigma = prepared.sigma
        for name, data in ((self.save_model, result.model_images[b]), (self.save_residual, result.residual_images[b]),
                           (self.save_weights, np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma, 1.0) ** 2, 0.0))):
            if name:
                fits.writeto(name, np.asarray(data, dtype=np.float32), overwrite=True)
                self._say(f"wrote {name}")


def _bootstrap_tables(config, extra, b: int, centre):
    """imfit's bootstrap outputs from galprof's replicates of galaxy ``b``: per-set centre
    errors, per-function {imfit name: std}, and the table of every resampling's
    parameters (imfit names, one row per resampling)."""
    rows, centres = [], []
    for k in range(extra.n_replicates):
        values = per_component(extra.replicates[k, b], extra.names)
        zeros = [{name: 0.0 for name in v} for v in values]
        c, r = values_to_imfit(config, values, zeros, centre)
        centres.append([v for cs in c for v in (cs[0], cs[2])])
        rows.append([r[k2][name][0] for k2, (_, func) in enumerate(config.functions())
                     for name in function_parameters(func.name)])
    centres, rows = np.array(centres), np.array(rows)
    centre_err = np.nanstd(centres, axis=0, ddof=1)
    per_function, j = [], 0
    for _, func in config.functions():
        per_function.append({name: float(np.nanstd(rows[:, j + i], ddof=1))
                             for i, name in enumerate(function_parameters(func.name))})
        j += len(function_parameters(func.name))
    names = [f"{axis}0_{k + 1}" for k in range(len(config.sets)) for axis in ("X", "Y")]
    names += [f"{name}_{k + 1}" for k, (_, func) in enumerate(config.functions())
              for name in function_parameters(func.name)]
    return centre_err, per_function, names, np.hstack([centres, rows])


__all__ = ["FeedmeOutputs", "ImfitOutputs", "per_component"]
