"""``galprof``: the command line.

Subcommands, one module each: ``fit`` (GALFIT feedmes), ``imfit`` (imfit's command
line), ``batch`` (catalogs and many feedmes), ``check`` (read files without fitting),
``plot``/``compare``/``report`` (figures), ``demo``. Every fit goes through :mod:`galprof.pipeline.runner`. A user-facing error (any
:class:`galprof.errors.GalprofError`) is printed as ``galprof: error: <message>`` without
a traceback, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .. import __version__
from ..errors import GalprofError
from . import batch, check, demo, fit, imfit, plots

_COMMANDS = {"fit": fit.run, "imfit": imfit.run, "batch": batch.run, "check": check.run, "demo": demo.run,
             **{name: plots.run for name in plots.COMMANDS}}


def build_parser() -> argparse.ArgumentParser:
    """The ``galprof`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="galprof", description="Batched galaxy profile fitting (GALFIT drop-in).")
    parser.add_argument("--version", action="version", version=f"galprof {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    fit.add_parser(sub)
    imfit.add_parser(sub)
    batch.add_parser(sub)
    check.add_parser(sub)
    plots.add_parsers(sub)
    demo.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run ``galprof`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return _COMMANDS[args.command](args)
        except GalprofError as err:
            print(f"galprof: error: {err}", file=sys.stderr)
            return 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line, ``galprof: warning: <message>`` (no source line)."""
    print(f"galprof: warning: {message}", file=sys.stderr if file is None else file)


if __name__ == "__main__":
    sys.exit(main())
