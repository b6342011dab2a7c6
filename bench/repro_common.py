"""Shared helpers of the ``bench/repro_*.py`` scripts (issue 20: published fits of real galaxies).

Each script reruns fits that GALFIT, GALFITM, imfit or pyimfit published for real images of
``shared/data/realworld/withfit`` (see its README.md and MANIFEST.tsv) through galprof's command
line, then prints per parameter: the published value and error, galprof's value and error,
|difference| in units of the published error and the relative difference; the published chi^2
and galprof's; and galprof's chi^2 evaluated at the published parameters and at its own best
fit (same data, sigma, mask and PSF), which tells a better minimum (galprof's chi^2 lower at
its own values) from a model difference (galprof's chi^2 at the published values differs
from the published chi^2).

The data directory is an argument (default ``../shared/data/realworld`` next to the
repository); without it the scripts say so and exit with status 0.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from galprof import Component, Model, RenderConfig, fit
from galprof.pipeline.runner import BatchOptions
from galprof.pipeline.sources import Failed, prepare

REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "realworld"


def data_root(description: str) -> tuple[pathlib.Path, argparse.Namespace]:
    """Parse the command line (``data`` directory, ``--cases``, ``--keep``); exit 0 with a
    message when the data directory is absent."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA),
                        help=f"shared/data/realworld directory (default {DEFAULT_DATA})")
    parser.add_argument("--cases", nargs="*", default=None, help="run only these cases (default: all)")
    parser.add_argument("--keep", default=None, help="run in this directory and keep the files (default: a temp dir)")
    args = parser.parse_args()
    root = pathlib.Path(args.data)
    if not (root / "withfit").is_dir():
        print(f"{pathlib.Path(sys.argv[0]).name}: no published-fit data at {root / 'withfit'} "
              "(shared/data/realworld is not on this machine); nothing to do.")
        sys.exit(0)
    return root, args


def run_command(words: list[str], cwd: pathlib.Path) -> tuple[str, float]:
    """Run a galprof command (the venv's ``galprof``) in ``cwd``; (its output, wall seconds).
    A failing command stops the script with its output."""
    exe = pathlib.Path(sys.executable).with_name("galprof")
    command = [str(exe) if words[0] == "galprof" else words[0]] + words[1:]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "default"})
    wall = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != 0:
        print(output)
        raise SystemExit(f"command failed ({done.returncode}): {shlex.join(words)}")
    return output, wall


def link(target: pathlib.Path, name: pathlib.Path) -> pathlib.Path:
    """A symbolic link ``name`` -> ``target`` (parents made, an old link replaced)."""
    name.parent.mkdir(parents=True, exist_ok=True)
    if name.is_symlink() or name.exists():
        name.unlink()
    name.symlink_to(target)
    return name


_VALUE_ERROR = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s+(?P<value>[-+0-9.eE]+)[^#]*#\s*\+/-\s*"
                          r"(?P<error>[-+0-9.eEnaif]+)")
_FIXED = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s+(?P<value>[-+0-9.eE]+)\s+fixed\b")


def imfit_parameters(text: str) -> list[tuple[str, float, float]]:
    """(name, value, error) of every ``NAME value ... # +/- error`` line of an imfit text
    output or best-fit file, in order; a function's parameters are named ``FUNCTION.NAME``
    (``Sersic.n``; the second Sersic ``Sersic2.n``)."""
    out, seen, prefix = [], {}, ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("FUNCTION"):
            name = stripped.split()[1]
            seen[name] = seen.get(name, 0) + 1
            prefix = name + (str(seen[name]) if seen[name] > 1 else "") + "."
            continue
        if stripped.startswith("#"):
            continue
        match = _VALUE_ERROR.match(line)
        if match:
            out.append((prefix + match["name"], float(match["value"]), float(match["error"])))
        elif match := _FIXED.match(line):  # a fixed parameter: error 0
            out.append((prefix + match["name"], float(match["value"]), 0.0))
    return out


def config_body(text: str) -> str:
    """The function-set part of an imfit text output (from the first ``X0`` line to the last
    parameter line): a valid imfit configuration holding the published values."""
    lines = text.splitlines()
    start = next(k for k, line in enumerate(lines) if line.split()[:1] == ["X0"])
    body = []
    for line in lines[start:]:
        if line.strip().startswith(("Saving", "(Elapsed", "Done")):
            break
        body.append(line)
    return "\n".join(body) + "\n"


@dataclass
class Row:
    """One parameter of the comparison table (errors NaN where not published)."""

    name: str
    published: float
    published_error: float
    galprof: float
    galprof_error: float
    note: str = ""


@dataclass
class Case:
    """One published fit rerun: its table rows and chi^2 figures."""

    name: str
    command: str
    rows: list[Row] = field(default_factory=list)
    published_chi2: float = math.nan
    published_ndof: float = math.nan
    galprof_chi2: float = math.nan
    galprof_ndof: float = math.nan
    chi2_at_published: float = math.nan
    chi2_at_galprof: float = math.nan
    wall: float = math.nan
    notes: list[str] = field(default_factory=list)


def _fmt(value: float, digits: int = 6) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def print_case(case: Case) -> None:
    """The case's table in Markdown (as pasted into bench/RESULTS.md)."""
    print(f"\n### {case.name}\n")
    print(f"`{case.command}` ({case.wall:.1f} s)\n")
    print("| parameter | published | pub. error | galprof | galprof error | abs diff / pub. error | rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for r in case.rows:
        diff = r.galprof - r.published
        in_sigma = abs(diff) / r.published_error if r.published_error and math.isfinite(r.published_error) else math.nan
        rel = diff / abs(r.published) if r.published else math.nan
        print(f"| {r.name}{(' ' + r.note) if r.note else ''} | {_fmt(r.published)} | {_fmt(r.published_error, 3)} | "
              f"{_fmt(r.galprof)} | {_fmt(r.galprof_error, 3)} | {_fmt(in_sigma, 2)} | {rel:+.2e} |")
    print()
    pub = (f"{case.published_chi2:.3f} / {case.published_ndof:.0f} = "
           f"{case.published_chi2 / case.published_ndof:.4f}") if math.isfinite(case.published_chi2) else "-"
    own = f"{case.galprof_chi2:.3f} / {case.galprof_ndof:.0f} = {case.galprof_chi2 / case.galprof_ndof:.4f}"
    print(f"- chi^2 (reduced): published {pub}; galprof {own}")
    print(f"- galprof's chi^2 at the published parameters: {case.chi2_at_published:.3f}; at its own best fit: "
          f"{case.chi2_at_galprof:.3f} (difference {case.chi2_at_published - case.chi2_at_galprof:+.3f})")
    for note in case.notes:
        print(f"- {note}")
    sys.stdout.flush()


def prepared(source, options: BatchOptions | None = None):
    """galprof's own preparation of a source (the data, sigma, mask, PSF and model it fits)."""
    p = prepare(source, None, options or BatchOptions(auto_init="never"))
    if isinstance(p, Failed):
        raise SystemExit(f"cannot prepare {source}: {p.reason}")
    return p


def chi2_at(p, values: list[dict], *, legacy: bool = True, sampling: str = "integrate",
            dtype=torch.float64) -> float:
    """galprof's chi^2 of prepared galaxy ``p`` with every parameter held at ``values``
    (per component {name: value}, galprof's names and units): nothing is fitted.
    ``sampling``: ``RenderConfig.legacy_sampling`` (``imfit``: imfit's sub-pixel samples)."""
    comps = [Component(c.profile, dict(v), fixed=frozenset(v), skip_in_residual=c.skip_in_residual)
             for c, v in zip(p.model.components, values)]
    keywords = {k: v for k, v in dict(p.fit_options).items() if k != "lm_settings"}
    result = fit(Model(tuple(comps)), p.image, sigma=p.sigma, mask=p.mask, psf=p.psf,
                 psf_oversampling=p.psf_oversampling, origin=p.origin, zeropoint=p.zeropoint, exptime=p.exptime,
                 convolution_box=p.convolution_box, pixel_scale=p.plate_scale,
                 config=RenderConfig(legacy_pixel_integration=legacy, legacy_sampling=sampling), dtype=dtype,
                 staged=False, retries=0,
                 cpu_workers=1, **keywords)
    return float(result.chi2[0])


def refit_from(p, values: list[dict], *, legacy: bool = True, dtype=torch.float64) -> tuple[float, list[dict]]:
    """galprof's fit of prepared galaxy ``p`` started from ``values`` (its free/fixed flags and
    constraints kept; a relative constraint range is then relative to ``values``): (chi^2,
    fitted values per component)."""
    comps = [Component(c.profile, dict(v), fixed=c.fixed, bounds=c.bounds, skip_in_residual=c.skip_in_residual)
             for c, v in zip(p.model.components, values)]
    keywords = {k: v for k, v in dict(p.fit_options).items() if k != "lm_settings"}
    result = fit(Model(tuple(comps), p.model.constraints), p.image, sigma=p.sigma, mask=p.mask, psf=p.psf,
                 psf_oversampling=p.psf_oversampling, origin=p.origin, zeropoint=p.zeropoint, exptime=p.exptime,
                 convolution_box=p.convolution_box, pixel_scale=p.plate_scale,
                 config=RenderConfig(legacy_pixel_integration=legacy), dtype=dtype, **keywords)
    fitted = [dict() for _ in p.model.components]
    for j, (c, name) in enumerate(result.names):
        fitted[c - 1][name] = float(result.values[0, j])
    return float(result.chi2[0]), fitted


def usable_pixels(p) -> int:
    """Pixels that enter galprof's chi^2 (finite data and sigma > 0, not masked)."""
    good = np.isfinite(p.image) & np.isfinite(p.sigma) & (p.sigma > 0)
    if p.mask is not None:
        good &= ~np.asarray(p.mask, dtype=bool)
    return int(good.sum())
