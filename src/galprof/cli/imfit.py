"""``galprof imfit IMAGE -c CONFIG``: imfit's command line, galprof's engine.

The run is one :class:`galprof.pipeline.sources.ImfitSource` fitted by
:func:`galprof.pipeline.runner.run_batch`; its best-fit file (imfit's header lines, a
valid imfit configuration) and optional images are written by
:class:`galprof.pipeline.outputs.ImfitOutputs`. Conventions are imfit's: 1-based pixels,
PA in degrees counter-clockwise from +y, ell = 1 - b/a, intensities in counts/pixel.
"""

from __future__ import annotations

import shlex
import sys

from .. import __version__
from ..errors import UsageError
from ..io.fits_io import split_extension
from ..io.imfit_output import STATISTIC_NAMES
from ..io.results import is_failed
from ..optimise.lm import LMSettings
from ..pipeline.outputs import ImfitOutputs
from ..pipeline.runner import run_batch
from ..pipeline.sources import ImfitSource
from ..uncertainty.methods import ErrorOptions
from .options import add_engine_arguments, batch_options


def add_parser(sub) -> None:
    p = sub.add_parser("imfit", help="fit an image with an imfit configuration file (imfit's options)")
    p.add_argument("image", help="FITS image (file.fits or file.fits[N])")
    p.add_argument("-c", "--config", required=True, help="imfit configuration file")
    p.add_argument("--psf", help="PSF image (an empirical PSF, pixel response included)")
    p.add_argument("--mask", help="mask image (non-zero = bad pixel)")
    p.add_argument("--noise", help="noise image: sigma per pixel (default), or see the two options below")
    p.add_argument("--errors-are-variances", action="store_true", help="the noise image holds variances")
    p.add_argument("--errors-are-weights", action="store_true", help="the noise image holds weights 1/sigma^2")
    p.add_argument("--gain", type=float, help="A/D gain [e-/ADU] (overrides GAIN in the config)")
    p.add_argument("--readnoise", type=float, help="read noise [e-]")
    p.add_argument("--exptime", type=float, help="exposure time (for images in counts per second)")
    p.add_argument("--ncombined", type=float, help="number of images averaged")
    p.add_argument("--sky", type=float, help="original sky level [ADU] already subtracted from the image")
    p.add_argument("--model-errors", action="store_true", help="chi^2 with sigmas from the model, not the data")
    p.add_argument("--cashstat", action="store_true", help="Cash statistic (Poisson likelihood)")
    p.add_argument("--poisson-mlr", "--mlr", dest="poisson_mlr", action="store_true",
                   help="Poisson maximum-likelihood-ratio statistic")
    p.add_argument("--ftol", type=float, default=1e-8, help="fractional tolerance of the fit statistic")
    p.add_argument("--max-iter", type=int, default=100, help="maximum iterations")
    p.add_argument("--bootstrap", type=int, default=0,
                   help="N bootstrap resamplings (refitted as one batch); their scatter gives the errors")
    p.add_argument("--save-bootstrap", help="write every bootstrap parameter set to this file")
    p.add_argument("--seed", type=int, default=None, help="random seed for the bootstrap")
    p.add_argument("--errors", default="covariance", choices=["covariance", "scaled"],
                   help="without --bootstrap: errors from the covariance matrix, raw (default) or scaled by the "
                        "reduced chi^2")
    p.add_argument("--save-params", default="bestfit_parameters_imfit.dat", help="best-fit parameter file")
    p.add_argument("--save-model", help="write the best-fit model image")
    p.add_argument("--save-residual", help="write the residual image (data - model)")
    p.add_argument("--save-weights", help="write the weight image 1/sigma^2")
    p.add_argument("--nosubsampling", action="store_true", help="accepted; galprof always integrates accurately")
    add_engine_arguments(p)
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    if sum(bool(x) for x in (args.model_errors, args.cashstat, args.poisson_mlr)) > 1:
        raise UsageError("choose one of --model-errors, --cashstat and --poisson-mlr")
    statistic = ("model-chi2" if args.model_errors else "cash" if args.cashstat
                 else "poisson-mlr" if args.poisson_mlr else None)
    if args.bootstrap and statistic is not None:
        raise UsageError("--bootstrap works with chi^2 only in galprof for now")
    if args.bootstrap and args.bootstrap < 2:
        raise UsageError(f"--bootstrap needs at least 2 resamplings, got {args.bootstrap}")
    if args.save_bootstrap and not args.bootstrap:
        raise UsageError("--save-bootstrap needs --bootstrap N")
    if args.errors_are_variances and args.errors_are_weights:
        raise UsageError("choose one of --errors-are-variances and --errors-are-weights")
    if (args.errors_are_variances or args.errors_are_weights) and not args.noise:
        raise UsageError("--errors-are-variances and --errors-are-weights describe a --noise image; give one")
    split_extension(args.image)  # a malformed extension is reported before anything is read
    say = (lambda *a: None) if args.quiet else print
    if args.nosubsampling:
        say("galprof: --nosubsampling has no effect: galprof always integrates the model accurately")
    noise_kind = "variance" if args.errors_are_variances else "weight" if args.errors_are_weights else "sigma"
    prelude = tuple((key, value) for key, value in (("GAIN", args.gain), ("READNOISE", args.readnoise),
                                                     ("EXPTIME", args.exptime), ("NCOMBINED", args.ncombined),
                                                     ("ORIGINAL_SKY", args.sky)) if value is not None)
    error_method = "bootstrap" if args.bootstrap else args.errors
    statistic_name = STATISTIC_NAMES["noise" if statistic is None and args.noise else statistic]
    command = "galprof " + " ".join(shlex.quote(word) for word in args.argv)
    inputs = (("image", args.image), ("psf", args.psf), ("mask", args.mask), ("noise", args.noise),
              ("noise_kind", noise_kind),
              ("legacy_pixel_integration", args.legacy_pixel_integration)) + prelude
    outputs = ImfitOutputs(args.config, save_params=args.save_params, save_model=args.save_model,
                           save_residual=args.save_residual, save_weights=args.save_weights,
                           save_bootstrap=args.save_bootstrap, command=command, statistic_name=statistic_name,
                           errors=error_method, inputs=inputs, verbose=not args.quiet)
    source = ImfitSource(0, args.image, args.image, args.config, psf=args.psf, mask=args.mask, noise=args.noise,
                         noise_kind=noise_kind, prelude=prelude, statistic=statistic,
                         fit_options=(("lm_settings", LMSettings(max_iterations=args.max_iter, ftol=args.ftol)),),
                         outputs=outputs)
    errors = ErrorOptions(error_method, bootstrap=args.bootstrap or ErrorOptions().bootstrap, seed=args.seed)
    options = batch_options(args, verbose=not args.quiet, errors=errors, legacy_sampling="imfit")
    noise_note = args.noise or "from the data (GAIN, READNOISE, NCOMBINED, EXPTIME, ORIGINAL_SKY)"
    say(f"galprof {__version__} imfit: {args.image} with {args.config}; noise {noise_note}; PSF {args.psf or 'none'}")
    if args.bootstrap:
        say(f"bootstrap: {args.bootstrap} resamplings, fitted as one batch ...")
    summary = run_batch([source], None, None, options, progress=False)
    status = str(summary.table["STATUS"][0])
    if is_failed(status):
        print(f"galprof: error: {args.image}: {status[len('failed: '):]}", file=sys.stderr)
        return 2
    return 2 if summary.n_output_errors else 0

