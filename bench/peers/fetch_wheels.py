"""Download the wheels that bench/gpu_check.sh installs offline on a GPU machine, into
bench/peers/.wheels/ (git-ignored; carry it to the GPU machine).

A GPU machine here has no network, and its Python (3.12, with a CUDA torch, numpy,
scipy, pandas, h5py, matplotlib, tqdm, pytest) lacks:

- for galprof's tests and the peer benchmark's images: astropy (with pyerfa and
  astropy-iers-data), sep, GalSim (with LSSTDESC.Coord);
- for the GalMOSS venv: galmoss 2.2, torch-optimizer, pytorch-ranger (numpy, pandas,
  astropy, h5py, tqdm and torch then come from the main interpreter: see
  bench/peers/venvs.py).

torch is never downloaded: the GPU machine's CUDA build is used. GalSim's wheel ships
its extension with debug information (199 MB unpacked, 56 MB zipped); its debug
sections are stripped (``strip --strip-debug``, about 5 MB left) and the wheel's RECORD
updated, so that everything fits in what travels to the GPU machine (64 MiB).

    python bench/peers/fetch_wheels.py [--python-version 3.12] [--dest bench/peers/.wheels]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import venvs  # noqa: E402

#: the wheels of packages the GPU machine's main interpreter may lack: (distribution
#: name as pip knows it, import name); gpu_check.py installs those that do not import
MAIN = [("astropy==8.0.2", "astropy"), ("pyerfa==2.0.1.5", "erfa"),
        ("astropy-iers-data==0.2026.11.16.0.37.44", "astropy_iers_data"), ("sep==1.4.1", "sep"),
        ("galsim==2.8.5", "galsim"), ("lsstdesc.coord==1.3.1", "coord")]
#: manylinux tags accepted by the GPU machine's pip (x86-64, glibc >= 2.28)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def requirements() -> list[str]:
    """Every requirement to download: the main interpreter's, then the GalMOSS venv's."""
    return [spec for spec, _ in MAIN] + list(venvs.TOOLS["galmoss"]["offline"])


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def strip_wheel(path: Path) -> tuple[int, int]:
    """Strip the debug sections of every shared library in the wheel at ``path`` and
    rewrite it with an updated RECORD. Returns (bytes before, bytes after)."""
    before = path.stat().st_size
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as wheel:
        entries = []
        for info in wheel.infolist():
            data = wheel.read(info)
            if info.filename.endswith(".so") or ".so." in info.filename:
                lib = Path(tmp) / "lib.so"
                lib.write_bytes(data)
                subprocess.run(["strip", "--strip-debug", str(lib)], check=True)
                data = lib.read_bytes()
            entries.append((info, data))
    hashes = {info.filename: (_record_hash(data), len(data)) for info, data in entries}
    out = path.with_suffix(".tmp")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for info, data in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                rows = []
                for line in data.decode().splitlines():
                    name = line.split(",")[0]
                    if name in hashes and not name.endswith("RECORD"):
                        digest, size = hashes[name]
                        line = f"{name},{digest},{size}"
                    rows.append(line)
                data = ("\n".join(rows) + "\n").encode()
            wheel.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    out.replace(path)
    return before, path.stat().st_size


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    p.add_argument("--dest", default=str(HERE / ".wheels"), help="folder of the wheels (default bench/peers/.wheels)")
    args = p.parse_args()
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", args.python_version, "--implementation", "cp",
           *[arg for tag in PLATFORMS for arg in ("--platform", tag)], "-d", str(dest), *requirements()]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    if shutil.which("strip") is None:
        sys.exit("fetch_wheels: `strip` (binutils) is needed to shrink GalSim's wheel")
    for wheel in sorted(dest.glob("galsim-*.whl")):
        before, after = strip_wheel(wheel)
        print(f"stripped {wheel.name}: {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")
    total = sum(f.stat().st_size for f in dest.glob("*.whl"))
    print(f"{dest}: {len(list(dest.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
