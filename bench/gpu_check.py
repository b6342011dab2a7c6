"""Every GPU figure galprof claims, in one run of under 8 minutes (bench/gpu_check.sh calls this).

    bash bench/gpu_check.sh                       # on a CUDA machine: everything, ~5-7 min
    bash bench/gpu_check.sh --device cpu --quick  # every part on the CPU at tiny sizes (< 1 min)

Parts, in this order; each prints its figures as it goes, so that a run cut short still
gives the figures of the parts it finished (and, where the environment variable OUT
names a folder, writes them there: gpu_check.log, gpu_check.json, profile.txt,
peers_report.md):

  info          the device, its memory, torch and CUDA versions, the commit, and which
                of galprof's optional packages import
  wheels        the packages that do not import installed offline from
                bench/peers/.wheels (bench/peers/fetch_wheels.py) into a temporary folder
  gpu-tests     ``pytest -m gpu`` (the tests marked gpu, e.g. tests/*/test_*cuda_paths.py)
  bench         bench/bench_fit.py on the device: 128x128 single Sersic + sky at batch 1024
                and 4096, float32 and float64, then 1024 float32 with the fused renderer
                (--fused: torch.compile, Triton): galaxies/s, peak GPU memory, success rate
  profile       torch.profiler of one LM iteration (batch 1024, 128x128): top operations by
                device time, kernel launches, host synchronisations
  peers         bench/peers/run_peers.py: galprof and GalMOSS on the same device, from the
                same GalSim images and starts (GalMOSS's venv made offline from the wheels)
  device-tests  tests/render and tests/optimise with ``--device cuda`` (torch's default
                device; tests/conftest.py), plus the profile tests that render on CUDA

galprof itself is used from src/ (PYTHONPATH), so nothing needs building or network. A
part whose packages are missing is skipped, saying which. Every part runs in its own
process with a timeout taken from what is left of ``--budget``; a part that cannot have
``MIN_PART_SECONDS`` is skipped. Exit status: 0 when every part that ran finished, 1
when one failed or timed out, 2 when the device itself is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WHEELS = BENCH / "peers" / ".wheels"
PARTS = ("info", "wheels", "gpu-tests", "bench", "profile", "peers", "device-tests")
#: a part is skipped when less than this is left of the budget [s]
MIN_PART_SECONDS = 15
#: (distribution, import name, what needs it) of the packages checked by ``info``
PACKAGES = [("torch", "torch", "everything"), ("numpy", "numpy", "everything"), ("tqdm", "tqdm", "galprof"),
            ("astropy", "astropy", "galprof's io, GalMOSS"), ("sep", "sep", "galprof's automatic starts"),
            ("matplotlib", "matplotlib", "galprof's plots"), ("pytest", "pytest", "the tests"),
            ("scipy", "scipy", "the tests"), ("galsim", "galsim", "the tests, the peer images"),
            ("hypothesis", "hypothesis", "the property tests"), ("pandas", "pandas", "GalMOSS"),
            ("h5py", "h5py", "GalMOSS")]

_INFO_SCRIPT = r"""
import importlib.metadata, importlib.util, json, os, platform, sys
packages = json.loads(sys.argv[1])
out = dict(python=sys.version.split()[0], executable=sys.executable, platform=platform.platform(),
           cores=os.cpu_count(), packages={})
for dist, module, _ in packages:
    found = importlib.util.find_spec(module) is not None
    try:
        version = importlib.metadata.version(dist) if found else None
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    out["packages"][dist] = version if found else None
try:
    import torch
    out.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
               threads=torch.get_num_threads())
    if out["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                   gpu_memory_gib=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}",
                   multiprocessors=props.multi_processor_count,
                   cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
except Exception as error:
    out["torch_error"] = repr(error)
try:
    out["cpu"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
except (OSError, StopIteration):
    out["cpu"] = platform.processor() or "unknown"
print("INFO " + json.dumps(out))
"""


class Report:
    """Prints lines, appends them to ``<out>/gpu_check.log`` and keeps the figures of each
    part in ``<out>/gpu_check.json`` (rewritten after every figure)."""

    def __init__(self, out: Path | None):
        self.out = out
        self.figures: dict = {}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        if self.out is not None:  # opened per line: a run killed at any moment leaves its log
            with open(self.out / "gpu_check.log", "a") as log:
                log.write(text + "\n")

    def section(self, part: str, title: str) -> None:
        self.line()
        self.line(f"== {part}: {title}")

    def record(self, part: str, key: str, value) -> None:
        self.figures.setdefault(part, {})[key] = value
        if self.out is not None:
            tmp = self.out / "gpu_check.json.tmp"
            tmp.write_text(json.dumps(self.figures, indent=1, default=str))
            tmp.replace(self.out / "gpu_check.json")

    def save_file(self, name: str, text: str) -> None:
        if self.out is not None:
            (self.out / name).write_text(text)


class Runner:
    """Runs commands in their own process group, streams their output into the report
    (indented), and stops them at a timeout: SIGINT first where asked (pytest then
    prints its summary), then SIGKILL of the whole group."""

    def __init__(self, report: Report, env: dict):
        self.report = report
        self.env = env
        self._current = None

    def run(self, cmd, timeout: float, *, interrupt: bool = False, cwd: Path = ROOT,
            label: str | None = None) -> tuple[object, list[str]]:
        """(exit status or "timeout", output lines) of ``cmd`` run for at most ``timeout`` s
        (``label``: what the log shows instead of the command line)."""
        self.report.line("$ " + (label or " ".join(map(str, cmd))) + f"   (timeout {timeout:.0f} s)")
        lines: list[str] = []
        group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
        proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=self.env, cwd=cwd, bufsize=1, **group)
        self._current = proc

        def pump():
            for raw in proc.stdout:
                lines.append(raw.rstrip("\n"))
                self.report.line("  | " + lines[-1])

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        status: object
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            status = "timeout"
            self._stop(proc, interrupt)
        reader.join(timeout=10)
        self._current = None
        return status, lines

    def _stop(self, proc, interrupt: bool) -> None:
        if interrupt:
            self._signal(proc, signal.SIGINT)
            try:
                proc.wait(timeout=20)
                return
            except subprocess.TimeoutExpired:
                pass
        self._signal(proc, signal.SIGKILL)
        proc.wait()

    @staticmethod
    def _signal(proc, sig) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop_current(self) -> None:
        if self._current is not None and self._current.poll() is None:
            self._signal(self._current, signal.SIGKILL)


# ----------------------------------------------------------------------------- helpers

def commit() -> str:
    """$GALPROF_COMMIT where set (the GPU machine's copy of the tree has no .git), else the
    commit of the working tree read from .git (without running git), else 'unknown'."""
    if os.environ.get("GALPROF_COMMIT"):
        return os.environ["GALPROF_COMMIT"]
    git = ROOT / ".git"
    try:
        if git.is_file():  # a worktree's .git file: "gitdir: <path>"
            git = (ROOT / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(None, 1)[1]
        common = git / (git / "commondir").read_text().strip() if (git / "commondir").exists() else git
        for base in (git, common):
            if (base / ref).exists():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except (OSError, IndexError):
        pass
    return "unknown (no .git here; set GALPROF_COMMIT)"


def source_fingerprint() -> str:
    """sha256 of src/galprof's Python files (names and contents): identifies the code
    that ran where no commit can be read."""
    digest = hashlib.sha256()
    files = sorted((ROOT / "src" / "galprof").rglob("*.py"))
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return f"{digest.hexdigest()[:16]} ({len(files)} files)"


def pytest_summary(lines: list[str]) -> str | None:
    """pytest's closing counts ('12 passed, 3 skipped in 20.1s'), or None."""
    for text in reversed(lines):
        match = re.search(r"(\d+ (?:passed|failed|skipped|deselected|error|errors|xfailed|xpassed|warnings?)"
                          r"(?:, \d+ \w+)*)(?: in [\d.]+s)?", text)
        if match and ("passed" in text or "failed" in text or "skipped" in text or "error" in text
                      or "deselected" in text):
            return match.group(1)
    return None


def figure(lines: list[str], pattern: str) -> str | None:
    """The first group of the last line matching ``pattern``."""
    for text in reversed(lines):
        match = re.search(pattern, text)
        if match:
            return match.group(1)
    return None


# ----------------------------------------------------------------------------- parts

class Check:
    def __init__(self, args, report: Report):
        self.args = args
        self.report = report
        self.quick = args.quick
        self.device = args.device
        self.cuda = args.device.startswith("cuda")
        self.deadline = time.monotonic() + args.budget
        self.packages: dict = {}
        self.failed = False
        env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1", MPLBACKEND="Agg")
        self.env = env
        self._set_pythonpath()
        if self.quick and not self.cuda:
            env["OMP_NUM_THREADS"] = "1"  # tiny batches: threads only contend (and a busy host spins them)
        self.runner = Runner(report, env)
        self.tmp = Path(tempfile.mkdtemp(prefix="galprof_gpu_check_"))
        self.site = self.tmp / "site"  # packages installed from the wheels
        self.wheels_dir = Path(args.wheels)

    def _set_pythonpath(self, extra: tuple[Path, ...] = ()) -> None:
        """galprof from src/ (no install needed), then any offline-installed packages."""
        given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *map(str, extra), *given])

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, cap: float) -> float | None:
        """min(cap, what is left of the budget), or None (and a note) when too little is left."""
        left = self.left()
        if left < MIN_PART_SECONDS:
            self.report.line(f"skipped: {left:.0f} s left of the {self.args.budget:.0f} s budget")
            return None
        return min(cap, left)

    def missing(self, *dists: str) -> list[str]:
        return [d for d in dists if not self.packages.get(d)]

    def status(self, part: str, status, what: str) -> None:
        """Record how a command ended; a failure or timeout makes the exit status 1."""
        ok = status == 0
        self.report.record(part, f"{what} status", status)
        if not ok:
            self.failed = True
            self.report.line(f"{part}: {what} " + ("TIMED OUT" if status == "timeout" else f"FAILED (exit {status})"))

    # ------------------------------------------------------------------ info
    def info(self) -> bool:
        self.report.section("info", "device, versions, commit, packages")
        status, lines = self.runner.run([sys.executable, "-c", _INFO_SCRIPT, json.dumps(PACKAGES)],
                                        self.timeout(60) or 60, label=f"{sys.executable} -c <versions, device>")
        text = figure(lines, r"^INFO (\{.*\})$")
        if status != 0 or text is None:
            self.report.line("info: the interpreter check failed; nothing else can run")
            self.failed = True
            return False
        info = json.loads(text)
        self.packages = info.pop("packages")
        for key, value in info.items():
            self.report.record("info", key, value)
        self.report.record("info", "commit", commit())
        self.report.record("info", "source", source_fingerprint())
        self.report.record("info", "packages", self.packages)
        r = self.report
        r.line(f"python {info['python']} ({info['executable']}), {info['cores']} cores: {info['cpu']}")
        if "torch_error" in info:
            r.line(f"torch does not import: {info['torch_error']}")
            self.failed = True
            return False
        r.line(f"torch {info['torch']}, built for CUDA {info['torch_cuda']}; CUDA available: {info['cuda_available']}")
        if info.get("cuda_available"):
            r.line(f"device: {info['gpu']} ({info['gpu_memory_gib']} GiB, compute capability {info['capability']}, "
                   f"{info['multiprocessors']} multiprocessors; {info['gpus']} GPU(s); cuDNN {info['cudnn']})")
        r.line(f"commit: {commit()}; src/galprof fingerprint: {source_fingerprint()}")
        r.line("packages: " + ", ".join(f"{d} {v}" if v else f"{d} MISSING" for d, v in self.packages.items()))
        for dist, _, needed_by in PACKAGES:
            if not self.packages.get(dist):
                r.line(f"  missing {dist}: needed by {needed_by}")
        if self.cuda and not info.get("cuda_available"):
            r.line(f"--device {self.device}: CUDA is not available here; nothing to measure")
            self.failed = True
            return False
        return not self.missing("torch", "numpy")

    # ------------------------------------------------------------------ wheels
    def wheels(self) -> None:
        self.report.section("wheels", "missing packages from bench/peers/.wheels (offline)")
        sys.path.insert(0, str(BENCH / "peers"))
        from fetch_wheels import MAIN

        found = self._importable([module for _, module in MAIN])
        wanted = [spec for spec, module in MAIN if not found.get(module)]
        if not wanted:
            self.report.line("nothing missing")
            return
        if not self.wheels_dir.is_dir():
            self.report.line(f"missing {', '.join(wanted)} and no {self.wheels_dir}: run "
                             "`python bench/peers/fetch_wheels.py` where pip has network and carry the folder")
            return
        timeout = self.timeout(120)
        if timeout is None:
            return
        status, _ = self.runner.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                                     "--no-index", "--no-deps", "--no-compile", "--upgrade",
                                     "--find-links", self.wheels_dir, "--target", self.site, *wanted], timeout)
        self.status("wheels", status, "pip install")
        self._set_pythonpath((self.site,))
        found = self._importable([module for _, module in MAIN])
        for spec, module in MAIN:
            if found.get(module):
                self.packages[spec.split("==")[0]] = self.packages.get(spec.split("==")[0]) or spec.split("==")[1]
        self.report.record("wheels", "installed", [spec for spec in wanted if found.get(dict(MAIN)[spec])])
        self.report.line("installed: " + (", ".join(spec for spec in wanted if found.get(dict(MAIN)[spec])) or "none")
                         + "; still missing: " + (", ".join(s for s, m in MAIN if not found.get(m)) or "none"))

    def _importable(self, modules: list[str]) -> dict:
        """{module: whether it imports} in the environment of the parts."""
        check = ("import importlib.util, json, sys; print('FOUND ' + json.dumps({m: importlib.util.find_spec(m) "
                 "is not None for m in sys.argv[1:]}))")
        _, lines = self.runner.run([sys.executable, "-c", check, *modules], 60,
                                   label=f"{sys.executable} -c <find {' '.join(modules)}>")
        return json.loads(figure(lines, r"^FOUND (\{.*\})$") or "{}")

    # ------------------------------------------------------------------ tests
    def _pytest(self, part: str, args: list[str], cap: float) -> None:
        if self.missing("pytest"):
            self.report.line("skipped: pytest is missing")
            return
        timeout = self.timeout(cap)
        if timeout is None:
            return
        status, lines = self.runner.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
                                         "--tb=short", *args], timeout, interrupt=True)
        summary = pytest_summary(lines)
        self.report.record(part, "pytest", summary)
        self.report.line(f"{part}: {summary or 'no pytest summary'}" + (" (timed out)" if status == "timeout" else ""))
        if status not in (0, 5):  # 5: no test selected
            self.status(part, status, "pytest")

    def gpu_tests(self) -> None:
        self.report.section("gpu-tests", "pytest -m gpu")
        where = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("tests/*/test_*cuda_paths.py")) if self.quick \
            else ["tests", "--continue-on-collection-errors"]
        self._pytest("gpu-tests", ["-m", "gpu", *where], 120)

    def device_tests(self) -> None:
        self.report.section("device-tests", f"the render and LM tests with --device {self.device}")
        if self.quick:
            where = ["tests/optimise/test_lm.py"]
        else:
            where = ["tests/render", "tests/optimise",
                     "tests/profiles/test_profiles_galfit_extra.py::test_render_on_gpu",
                     "tests/profiles/test_profiles_edgeon.py::test_render_on_gpu", "-m", "not slow",
                     # (the cuda_paths tests compare the CPU with the device: run by gpu-tests)
                     "-k", "not cuda_paths"]
            if self.missing("galsim", "scipy"):
                self.report.line(f"missing {', '.join(self.missing('galsim', 'scipy'))}: tests that compare with "
                                 "GalSim or scipy fail to import")
        self._pytest("device-tests", ["--device", self.device, *where], 240)

    # ------------------------------------------------------------------ bench
    def bench(self) -> None:
        self.report.section("bench", f"bench/bench_fit.py --device {self.device} (single Sersic + sky, Moffat PSF)")
        size = 32 if self.quick else 128
        # float32 first (the claimed figures); then, on a GPU, the fused renderer (torch.compile, Triton):
        # its first fit pays the compilation, the second is warm
        runs = [(b, d, False) for d in ("float32", "float64") for b in self.args.batches]
        if not self.quick:
            runs.append((self.args.batches[0], "float32", True))
        given_up: set[str] = set()  # dtypes whose first run failed or timed out: the later ones would too
        for i, (batch, dtype, fused) in enumerate(runs):
            key = f"batch {batch} {size}x{size} {dtype}" + (" fused" if fused else "")
            if dtype in given_up:
                self.report.line(f"bench: {key}: skipped (an earlier {dtype} run did not finish)")
                continue
            timeout = self.timeout(40 if self.quick else (120 if fused else 60 if batch <= 1024 else 90))
            if timeout is None:
                return
            cmd = [sys.executable, BENCH / "bench_fit.py", "--device", self.device, "--batch", batch, "--size", size,
                   "--dtype", dtype]
            if self.quick:
                cmd += ["--max-iter", "3"]
            if fused:
                cmd += ["--fused"]
            if (i == 0 or fused) and not self.quick:
                cmd += ["--repeat", "2"]  # the first fit pays the one-off costs; the second is warm
            status, lines = self.runner.run(cmd, timeout, cwd=BENCH)
            rate = figure(lines, r"galaxies/s = ([\d.]+)")
            every = figure(lines, r"\[every fit: ([^\]]+)\]")
            peak = figure(lines, r"peak GPU memory = (\d+) MiB")
            rss = figure(lines, r"peak host RSS = (\d+) MiB")
            succ = figure(lines, r"success rate from offset starts = ([\d.]+ \(\d+/\d+\))")
            conv = figure(lines, r"converged = ([\d.]+)")
            iters = figure(lines, r"median LM iterations = (\d+)")
            wall = figure(lines, r"\(wall ([\d.]+) s\)")
            result = dict(galaxies_per_s=rate, every_fit=every, wall_s=wall, peak_gpu_mib=peak, peak_host_rss_mib=rss,
                          success=succ, converged=conv, median_iterations=iters,
                          fusion=figure(lines, r" fused=(.*)$") if fused else None)
            self.report.record("bench", key, result)
            if status == 0 and rate is not None:
                self.report.line(f"bench: {key}: {rate} galaxies/s" + (f" (each fit: {every})" if every else "")
                                 + (f", peak GPU memory {peak} MiB" if peak else f", peak host RSS {rss} MiB")
                                 + f", success {succ}, converged {conv}, median iterations {iters}"
                                 + (f"; fusion: {result['fusion']}" if fused else ""))
            else:
                given_up.add(dtype)
                if status == "timeout":
                    self.report.line(f"bench: {key}: no figure within {timeout:.0f} s (< {batch / timeout:.1f} "
                                     "galaxies/s, the simulation included)")
            self.status("bench", status, key)

    # ------------------------------------------------------------------ profile
    def profile(self) -> None:
        batch = self.args.batches[0]
        size = 32 if self.quick else 128
        self.report.section("profile", f"torch.profiler of one LM iteration (batch {batch}, {size}x{size}, float32)")
        timeout = self.timeout(60 if self.quick else 120)
        if timeout is None:
            return
        table = self.tmp / "profile.txt"
        status, lines = self.runner.run([sys.executable, Path(__file__), "--profile-worker", "--device", self.device,
                                         "--batches", batch, "--size", size, "--table", table], timeout)
        summary = figure(lines, r"^(profile: .*)$")
        if summary:
            self.report.record("profile", "summary", summary)
            self.report.line(summary)
        if table.exists():
            self.report.save_file("profile.txt", table.read_text())
        self.status("profile", status, "profiler")

    # ------------------------------------------------------------------ peers
    def peers(self) -> None:
        self.report.section("peers", f"bench/peers/run_peers.py: galprof and GalMOSS on {self.device}")
        if self.missing("galsim"):
            self.report.line("skipped: GalSim is missing (it draws the peer benchmark's images); "
                             "see bench/peers/fetch_wheels.py")
            return
        venv = BENCH / "peers" / ".venvs" / "galmoss" / "bin" / "python"
        tools = list(self.args.peers_tools or ("galprof", "galmoss"))
        if self.quick and self.args.peers_tools is None and not venv.exists():
            tools.remove("galmoss")
            self.report.line("quick: GalMOSS skipped (no bench/peers/.venvs/galmoss)")
        if "galmoss" in tools and not venv.exists() and self.missing("astropy", "pandas", "h5py"):
            self.report.line(f"GalMOSS needs {', '.join(self.missing('astropy', 'pandas', 'h5py'))}: skipped")
            tools.remove("galmoss")
        timeout = self.timeout(90 if self.quick else 200)
        if timeout is None:
            return
        out = self.tmp / "peers"
        n = self.args.peers_galaxies
        cmd = [sys.executable, BENCH / "peers" / "run_peers.py", "--tools", *tools, "--models", "sersic",
               "--sizes", 32 if self.quick else 128, "--n-galaxies", n, "--device", self.device, "--out", out,
               "--timeout", max(10, int(timeout * 0.4))]
        iterations = 30 if self.quick else 1000  # GalMOSS's README: 1000
        cmd += ["--galmoss-iterations", iterations, iterations]
        if self.quick:
            cmd += ["--galprof-max-iter", "3"]
        if self.wheels_dir.is_dir() and "galmoss" in tools:
            cmd += ["--wheels", self.wheels_dir]
        status, lines = self.runner.run(cmd, timeout, interrupt=True)
        rates = {}
        for text in lines:
            match = re.search(r"\[peers\] (\S+): (\S+) \((\S+)\) \.\.\. ([\d.e+]+) gal/s", text)
            if match:
                config, tool, variant, rate = match.groups()
                rates[f"{tool} {variant} {config}"] = float(rate)
        summary_path = out / "summary.json"
        results = json.loads(summary_path.read_text()).get("results", {}) if summary_path.exists() else {}
        for key, res in results.items():  # "<tool>/<variant>/<config>"
            settings = res.get("settings") or {}
            self.report.record("peers", key, dict(galaxies_per_s=res.get("galaxies_per_s"),
                                                  reach_truth=res.get("reach_truth"), fit_s=res.get("fit_seconds"),
                                                  peak_gpu_mib=settings.get("peak_gpu_mib"), failed=res.get("failed")))
        if (out / "report.md").exists():
            self.report.save_file("peers_report.md", (out / "report.md").read_text())
        for key, rate in rates.items():
            res = results.get(key.replace(" ", "/"), {})
            peak = (res.get("settings") or {}).get("peak_gpu_mib")
            self.report.line(f"peers: {key}: {rate:.4g} galaxies/s"
                             + (f", reach truth {res['reach_truth']:.3f}" if res.get("reach_truth") is not None else "")
                             + (f", peak GPU memory {peak:.0f} MiB" if peak else ""))
        ref = next((r for k, r in rates.items() if k.startswith("galprof float32")), None)
        moss = next((r for k, r in rates.items() if k.startswith("galmoss default")), None)
        if ref and moss:
            self.report.record("peers", "galprof float32 / galmoss", ref / moss)
            self.report.line(f"peers: galprof float32 / GalMOSS ({iterations} iterations) = {ref / moss:.1f}x "
                             f"on {self.device}")
        self.status("peers", status, "run_peers")

    # ------------------------------------------------------------------ all
    def run(self, parts) -> int:
        started = time.monotonic()
        self.report.line(f"galprof GPU check: --device {self.device}{' --quick' if self.quick else ''}, "
                         f"budget {self.args.budget:.0f} s, parts: {' '.join(parts)}")
        if not self.info():
            return 2
        steps = {"wheels": self.wheels, "gpu-tests": self.gpu_tests, "bench": self.bench, "profile": self.profile,
                 "peers": self.peers, "device-tests": self.device_tests}
        for part in parts:
            if part in steps:
                try:
                    steps[part]()
                except Exception:  # noqa: BLE001 - one part's failure must not stop the others
                    self.failed = True
                    self.report.line(f"{part}: the check itself failed:")
                    for text in traceback.format_exc().splitlines():
                        self.report.line("  ! " + text)
        elapsed = time.monotonic() - started
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.report.record("info", "elapsed_s", round(elapsed, 1))
        self.report.line()
        self.report.line(f"== done in {elapsed:.0f} s" + (" (some parts failed or timed out)" if self.failed else ""))
        return 1 if self.failed else 0


# ----------------------------------------------------------------------------- profiler worker

#: the CUDA runtime/driver calls that launch a kernel, and those that make the host wait
_LAUNCHES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx",
             "cudaLaunchCooperativeKernel")
_WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "aten::_local_scalar_dense",
          "aten::nonzero", "cudaMemcpyAsync")


def profile_worker(args) -> None:
    """One LM iteration (one Jacobian pass and its trial steps) of a batch, as ``fit``
    runs its second stage, under torch.profiler after one warm-up iteration."""
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(BENCH))
    from bench_fit import moffat_psf, offset_start, simulate

    from galprof import Component, Model, RenderConfig
    from galprof.fitting.functions import ModelFunctions
    from galprof.fitting.setup import prepare_fit
    from galprof.optimise.lm import LMSettings, levenberg_marquardt
    from galprof.optimise.problem import BatchProblem

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch, size, dtype = args.batches[0], args.size, torch.float32
    rng = np.random.default_rng(1)
    psf = moffat_psf()
    truth, _, images = simulate(batch, size, rng, psf, device=device)
    model = Model([Component("sersic", offset_start(truth, rng)),
                   Component("sky", dict(sky=np.zeros(batch), dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    setup = prepare_fit(model, images, sigma=np.full(images.shape, 0.1), psf=psf, zeropoint=25.0, dtype=dtype,
                        device=device)
    layout = setup.layout
    fixed = torch.as_tensor(setup.initial, dtype=torch.float64, device=device)
    galaxy = torch.arange(batch, device=device)
    functions = ModelFunctions(layout, fixed, setup.frame, setup.psf, RenderConfig(), internal=True, galaxies=galaxy)
    problem = BatchProblem(functions.render, setup.data.data, setup.data.weight, functions.jacobian)
    theta0 = layout.to_internal(fixed)
    natural = layout.step_limits()

    def step_limits(theta, index):
        return layout.theta_step_limits(theta, natural, None)

    def iteration():
        out = levenberg_marquardt(problem, theta0, LMSettings(max_iterations=1), dtype, None, step_limits)
        if cuda:
            torch.cuda.synchronize()
        return out

    iteration()  # warm-up: CUDA libraries, cached grids and tables
    t0 = time.perf_counter()
    iteration()
    wall = time.perf_counter() - t0
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        iteration()
    events = prof.events()
    names = [e.name for e in events]
    launches = sum(names.count(n) for n in _LAUNCHES)
    device_kernels = sum(1 for e in events if cuda and str(getattr(e, "device_type", "")).endswith("CUDA"))
    aten = sum(1 for n in names if n.startswith("aten::"))
    waits = {n: names.count(n) for n in _WAITS if names.count(n)}
    averages = prof.key_averages()
    try:
        table = averages.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=25)
    except (KeyError, AttributeError, ValueError):
        table = averages.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=25)
    header = (f"one LM iteration of fit()'s second stage: batch {batch}, {size}x{size}, float32, {device}; "
              f"wall {wall * 1e3:.1f} ms unprofiled\n")
    Path(args.table).write_text(header + table)
    print(table)
    print(f"profile: one LM iteration (batch {batch}, {size}x{size}, float32, {device}): {wall * 1e3:.1f} ms wall, "
          f"{wall * 1e3 / batch:.3f} ms per galaxy; {launches} kernel launches ({device_kernels} device kernels); "
          f"{aten} aten ops; host waits: " + (", ".join(f"{k} {v}" for k, v in waits.items()) or "none"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (batch 8, 32x32, few iterations; GalMOSS only if its venv exists)")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 450; quick 240)")
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="the parts to run (default all)")
    p.add_argument("--skip", nargs="+", default=[], choices=PARTS, help="parts not to run")
    p.add_argument("--batches", nargs="+", type=int, default=None,
                   help="bench_fit batch sizes (default 1024 4096; quick 8); the first is profiled")
    p.add_argument("--size", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--peers-galaxies", type=int, default=None, help="galaxies of the peer run (default 256; quick 4)")
    p.add_argument("--peers-tools", nargs="+", default=None, choices=("galprof", "galmoss"),
                   help="tools of the peers part (default galprof galmoss; quick: galmoss only if its venv exists)")
    p.add_argument("--wheels", default=str(WHEELS),
                   help="folder of wheels to install missing packages from (default bench/peers/.wheels)")
    p.add_argument("--out", default=os.environ.get("OUT") or None,
                   help="folder for the log and figures (default: $OUT where set, else none)")
    p.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--table", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.batches = args.batches or ([8] if args.quick else [1024, 4096])
    if args.profile_worker:
        profile_worker(args)
        return
    args.budget = args.budget or (240.0 if args.quick else 450.0)
    args.peers_galaxies = args.peers_galaxies or (4 if args.quick else 256)
    report = Report(Path(args.out) if args.out else None)
    check = Check(args, report)
    parts = [part for part in args.parts if part not in args.skip]

    def stop(signum, frame):
        check.runner.stop_current()
        report.line(f"stopped by signal {signum}")
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    sys.exit(check.run(parts))


if __name__ == "__main__":
    main()
