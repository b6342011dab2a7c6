"""Options that mean the same in every subcommand, and their resolution.

``--device auto|cpu|cuda|cuda:N|mps`` (default ``auto``: CUDA when available, then MPS,
else the CPU), ``--dtype float32|float64``, ``--legacy-pixel-integration`` and the error
options (``--errors covariance|scaled|bootstrap|sample`` and their settings), plus the
runner's options (batch size, workers, Dask, automatic initial values).
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import UsageError
from ..pipeline.runner import BatchOptions
from ..render.config import RenderConfig
from ..uncertainty.methods import ErrorOptions


def resolve_device(name: str) -> str:
    """A torch device name: ``auto`` becomes ``cuda`` when CUDA is available, then ``mps``,
    else ``cpu``; an explicit device that this machine lacks is a UsageError."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name}: not a device (use auto, cpu, cuda, cuda:N or mps)", value=name) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine (use --device auto or cpu)",
                         value=name)
    return name


def add_engine_arguments(p) -> None:
    """--device, --dtype, --legacy-pixel-integration and --fused."""
    p.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="rendering and fitting dtype")
    p.add_argument("--legacy-pixel-integration", action="store_true",
                   help="integrate the galaxy over pixels before convolving with the PSF, as GALFIT/imfit do")
    p.add_argument("--fused", action="store_true",
                   help="compile the light canvases and their derivatives into fused kernels (torch.compile): "
                        "pays a compilation at the start, worth it for large runs (see docs/method.md)")


def add_error_arguments(p, bootstrap_flag: bool = True) -> None:
    """--errors and its settings (galprof fit and batch)."""
    p.add_argument("--errors", default="covariance", choices=["covariance", "scaled", "bootstrap", "sample"],
                   help="reported errors: covariance (raw (J^T W J)^-1, default), scaled (times chi2_nu), "
                        "bootstrap (scatter of refits of resampled pixels) or sample (posterior std from "
                        "Pyro NUTS; pip install 'galprof[sample]')")
    if bootstrap_flag:
        p.add_argument("--bootstrap", type=int, default=100, help="bootstrap replicates (with --errors bootstrap)")
        p.add_argument("--seed", type=int, default=None, help="seed of the bootstrap / sampler")
    p.add_argument("--samples", type=int, default=500, help="posterior draws per chain (with --errors sample)")
    p.add_argument("--warmup", type=int, default=300, help="NUTS warm-up steps per chain")
    p.add_argument("--chains", type=int, default=4, help="NUTS chains per galaxy (R-hat needs >= 2)")


def add_runner_arguments(p, *, batch_size: int = 64) -> None:
    """The runner's options: batch size, method, automatic initial values, workers, Dask."""
    p.add_argument("--batch-size", type=int, default=batch_size, help="galaxies per chunk (and at most per batch)")
    p.add_argument("--method", default="lm", choices=["lm", "adam"])
    p.add_argument("--auto-init", default="auto", choices=["auto", "always", "never"],
                   help="initial values and masks from source detection (sep): when a row gives no 1_XC/1_YC "
                        "(auto; a feedme always gives them), always, or never")
    p.add_argument("--mask-mode", default="others", choices=["others", "target", "none"],
                   help="with automatic initial values: mask the other detected sources (others), fit only the "
                        "target's segment (target), or mask nothing")
    p.add_argument("--workers", type=int, default=2, help="background threads reading and preparing images")
    p.add_argument("--scheduler", default=None,
                   help="address of a dask.distributed scheduler (tcp://HOST:PORT): chunks run on its workers")
    p.add_argument("--dask-workers", type=int, default=0,
                   help="start a local Dask cluster with this many worker processes (one thread each)")
    p.add_argument("--starts", type=int, default=1, metavar="N",
                   help="starts per galaxy, run as extra rows of the batch: the given values, then variants of "
                        "n and size; the lowest chi^2 is kept (default 1)")
    p.add_argument("--restarts", default="auto", choices=["auto", "on", "off"],
                   help="restart each fit twice near its result and keep the lowest chi^2: auto (models with "
                        "two or more luminous components and a free Sersic index), on or off")


def error_options(args) -> ErrorOptions:
    return ErrorOptions(args.errors, bootstrap=args.bootstrap, seed=args.seed, samples=args.samples,
                        warmup=args.warmup, chains=args.chains)


def batch_options(args, *, verbose: bool = False, pad_shapes: bool = False,
                  errors: ErrorOptions | None = None, legacy_sampling: str = "integrate") -> BatchOptions:
    """The runner's settings from parsed arguments (every subcommand's shared options).
    An option that cannot act is refused (``--mask-mode`` without automatic initial values).
    ``errors``: the error options when the subcommand has its own (imfit's ``--bootstrap N``).
    ``legacy_sampling``: how ``--legacy-pixel-integration`` samples pixels
    (:class:`galprof.render.config.RenderConfig`; ``imfit`` for ``galprof imfit``)."""
    if getattr(args, "auto_init", "auto") == "never" and getattr(args, "mask_mode", "others") != "others":
        raise UsageError("--mask-mode applies to automatic initial values; it has no effect with --auto-init never")
    starts, restarts = getattr(args, "starts", 1), getattr(args, "restarts", "auto")
    if starts < 1:
        raise UsageError(f"--starts {starts}: needs at least one start per galaxy", value=str(starts))
    fit_options = ()  # only what differs from galprof.fit's defaults (keeps runs' fingerprints)
    if starts != 1:
        fit_options += (("n_starts", starts),)
    if restarts != "auto":
        fit_options += (("perturbed_starts", restarts == "on"),)
    return BatchOptions(batch_size=getattr(args, "batch_size", 64), dtype=getattr(torch, args.dtype),
                        device=resolve_device(args.device), method=getattr(args, "method", "lm"),
                        auto_init=getattr(args, "auto_init", "auto"), mask_mode=getattr(args, "mask_mode", "others"),
                        workers=getattr(args, "workers", 2),
                        config=RenderConfig(legacy_pixel_integration=args.legacy_pixel_integration,
                                            legacy_sampling=legacy_sampling, fused=getattr(args, "fused", False)),
                        errors=errors or error_options(args), verbose=verbose, pad_shapes=pad_shapes,
                        fit_options=fit_options)


@contextlib.contextmanager
def dask_client(args):
    """A ``dask.distributed.Client`` for ``--scheduler`` or ``--dask-workers`` (None
    without either); closed afterwards. Without dask installed, a UsageError."""
    scheduler, n_workers = getattr(args, "scheduler", None), getattr(args, "dask_workers", 0)
    if not scheduler and not n_workers:
        yield None
        return
    if scheduler and n_workers:
        raise UsageError("give --scheduler or --dask-workers, not both")
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--scheduler and --dask-workers need dask.distributed: pip install 'dask[distributed]'") \
            from None
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True)
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
