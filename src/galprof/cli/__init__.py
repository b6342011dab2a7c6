"""The ``galprof`` command line (see :mod:`galprof.cli.main`)."""

from ..pipeline.demo import run_quick_demo as run_demo
from .main import build_parser, main

__all__ = ["build_parser", "main", "run_demo"]
