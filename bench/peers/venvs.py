"""Create (or reuse) one virtual environment per peer tool under bench/peers/.venvs/<tool>.

Each venv is made with ``python -m venv``; torch==2.13.0 is installed first (the CPU
wheel is found through PIP_FIND_LINKS) and the same pin is passed as a constraint file
to every later install, so pip can never replace it with a CUDA build. A venv that
already exists and imports its tool is reused as it is.

Offline (``ensure_venv(tool, log_dir, wheels=DIR)``, ``run_peers.py --wheels DIR``; e.g.
on a GPU machine without network): the venv is made without pip and sees this
interpreter's packages through a ``.pth`` file (its torch, whatever build: a CUDA one on
a GPU machine, and numpy, pandas, ...); only the tool's ``offline`` wheels are installed
into it, from DIR (``bench/peers/fetch_wheels.py`` downloads them), with this
interpreter's pip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_ROOT = HERE / ".venvs"
TORCH_PIN = "torch==2.13.0"

# (The checks run with cwd=VENV_ROOT: importing astrophot writes AstroPhot.log to the cwd.)
# tool -> install steps (each a list of pip requirement specs, installed in order after
# torch), the import that proves the venv works, and the distributions whose versions
# are reported. ``alternatives`` are tried in order when an install step fails.
TOOLS = {
    "galmoss": dict(
        # galmoss 2.2 imports torch_optimizer, numpy, pandas, astropy, h5py and tqdm but
        # declares none of them (its README lists them as requirements).
        alternatives=[[["galmoss==2.2", "torch-optimizer", "numpy", "pandas", "astropy", "h5py", "tqdm"]]],
        # offline: the wheels of the packages that a CUDA machine's Python lacks (numpy,
        # pandas, astropy, h5py, tqdm and torch come from the interpreter running this)
        offline=["galmoss==2.2", "torch-optimizer==0.3.0", "pytorch-ranger==0.1.1"],
        check="import galmoss, torch_optimizer",
        dists=["galmoss", "torch-optimizer", "torch", "numpy"],
    ),
    "pyimfit": dict(
        # PyPI has only a source tarball of 1.1 for cp311 on Linux; it ships prebuilt
        # static libimfit/FFTW/GSL/NLopt and needs g++ with OpenMP. Older releases are
        # tried when it fails.
        alternatives=[[["numpy", "pyimfit==1.1"]], [["numpy<2", "pyimfit==1.0.2"]],
                      [["numpy<2", "pyimfit==0.12.2"]]],
        check="import pyimfit",
        dists=["pyimfit", "numpy"],
    ),
    "astrophot": dict(
        alternatives=[[["astrophot==0.18.0"]]],
        check="import astrophot",
        dists=["astrophot", "torch", "numpy"],
    ),
}


def venv_python(tool: str) -> Path:
    return VENV_ROOT / tool / "bin" / "python"


def _run(cmd, log):
    log.write("$ " + " ".join(map(str, cmd)) + "\n")
    log.flush()
    return subprocess.run(list(map(str, cmd)), stdout=log, stderr=subprocess.STDOUT).returncode


def _imports(tool: str, pinned: bool = True) -> bool:
    py = venv_python(tool)
    if not py.exists():
        return False
    # the tool imports, and (pinned) the torch in the venv is the pinned CPU build
    check = TOOLS[tool]["check"]
    if pinned:
        check += f"; import torch; assert torch.__version__.split('+')[0] == {TORCH_PIN.split('==')[1]!r}"
    return subprocess.run([str(py), "-c", check], capture_output=True, cwd=VENV_ROOT).returncode == 0


def versions(tool: str) -> dict:
    py = venv_python(tool)
    code = ("import json, importlib.metadata as m\nout = {}\n"
            f"for d in {TOOLS[tool]['dists']!r}:\n"
            "    try: out[d] = m.version(d)\n    except Exception: out[d] = None\n"
            "print(json.dumps(out))")
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=VENV_ROOT)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def _ensure_offline(tool: str, log_dir: Path, wheels: Path) -> tuple[bool, str]:
    """:func:`ensure_venv` from the wheels in ``wheels``, without network (see the module)."""
    if _imports(tool, pinned=False):
        return True, f"reused {VENV_ROOT / tool}"
    if "offline" not in TOOLS[tool]:
        return False, f"no offline install of {tool} (only {', '.join(t for t in TOOLS if 'offline' in TOOLS[t])})"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"install_{tool}.log"
    venv = VENV_ROOT / tool
    with open(log_path, "a") as log:
        if not venv_python(tool).exists() and _run([sys.executable, "-m", "venv", "--without-pip", venv], log) != 0:
            return False, f"python -m venv failed (log: {log_path})"
        purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        where = subprocess.run([str(venv_python(tool)), "-c", purelib], capture_output=True, text=True)
        site = Path(where.stdout.strip())
        if where.returncode != 0 or not site.is_dir():
            return False, f"the venv's site-packages not found (log: {log_path})"
        # this interpreter's packages, after the venv's own
        parent = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
        (site / "_parent_interpreter.pth").write_text("".join(f"{p}\n" for p in parent))
        cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-index", "--no-deps",
               "--no-compile", "--find-links", wheels, "--target", site, "--upgrade", *TOOLS[tool]["offline"]]
        if _run(cmd, log) != 0:
            return False, f"pip install --no-index from {wheels} failed (log: {log_path})"
    if not _imports(tool, pinned=False):
        return False, f"installed from {wheels} but `{TOOLS[tool]['check']}` fails (log: {log_path})"
    return True, f"created {venv} offline from {wheels}: " + " ".join(TOOLS[tool]["offline"]) + \
        f" on this interpreter's packages ({sys.executable})"


def ensure_venv(tool: str, log_dir: Path, wheels: Path | None = None) -> tuple[bool, str]:
    """Make the venv of ``tool`` usable. Returns (ok, message). ``wheels``: a folder of
    wheels to install from offline (see the module's docstring)."""
    if wheels is not None:
        return _ensure_offline(tool, log_dir, Path(wheels))
    if _imports(tool):
        return True, f"reused {VENV_ROOT / tool}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"install_{tool}.log"
    venv = VENV_ROOT / tool
    constraints = VENV_ROOT / "constraints.txt"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    constraints.write_text(TORCH_PIN + "\n")
    env_note = f" (log: {log_path})"
    with open(log_path, "a") as log:
        if not venv_python(tool).exists():
            if _run([sys.executable, "-m", "venv", venv], log) != 0:
                return False, "python -m venv failed" + env_note
        py = venv_python(tool)
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
        if _run(pip + ["--upgrade", "pip", "setuptools", "wheel"], log) != 0:
            return False, "upgrading pip failed" + env_note
        if _run(pip + [TORCH_PIN], log) != 0:
            return False, f"pip install {TORCH_PIN} failed" + env_note
        errors = []
        for steps in TOOLS[tool]["alternatives"]:
            if all(_run(pip + ["-c", constraints] + step, log) == 0 for step in steps):
                if _imports(tool):
                    return True, f"created {venv} with " + "; ".join(" ".join(s) for s in steps)
                errors.append(" ".join(" ".join(s) for s in steps) + ": installed but does not import")
            else:
                errors.append(" ".join(" ".join(s) for s in steps) + ": pip install failed")
    return False, "; ".join(errors) + env_note


if __name__ == "__main__":
    for name in sys.argv[1:] or TOOLS:
        print(name, *ensure_venv(name, HERE / ".venvs" / "logs"))
