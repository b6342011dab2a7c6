"""bench/gpu_check.sh on the CPU: ``--device cpu --quick`` runs every part of the GPU check
at tiny sizes (batch 8, 32x32, a few iterations), so that a GPU's few minutes are spent
measuring, not debugging the script."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("info", "wheels", "gpu-tests", "bench", "profile", "peers", "device-tests")


def test_the_gpu_check_runs_every_part_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out))
    run = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--device", "cpu", "--quick",
                          "--budget", "150"], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    text = run.stdout
    assert run.returncode == 0, text[-4000:] + run.stderr[-2000:]
    for part in PARTS:
        assert f"\n== {part}:" in text, part
    assert re.search(r"^torch \S+, built for CUDA \S+; CUDA available: (True|False)$", text, re.M)
    assert re.search(r"^commit: \S+; src/galprof fingerprint: [0-9a-f]{16} \(\d+ files\)$", text, re.M)
    # every test marked gpu is skipped on the CPU, and the LM tests pass with --device cpu
    assert re.search(r"^gpu-tests: \d+ skipped, \d+ deselected$", text, re.M)
    assert re.search(r"^device-tests: \d+ passed$", text, re.M)
    for dtype in ("float32", "float64"):
        assert re.search(rf"^bench: batch 8 32x32 {dtype}: [\d.]+ galaxies/s, peak host RSS \d+ MiB, "
                         r"success [\d.]+ \(\d+/8\)", text, re.M), dtype
    assert re.search(r"^profile: one LM iteration \(batch 8, 32x32, float32, cpu\): [\d.]+ ms wall, .* \d+ aten ops; "
                     r"host waits: ", text, re.M)
    if importlib.util.find_spec("galsim") is not None:
        assert re.search(r"^peers: galprof float32 sersic_32: [\d.]+ galaxies/s", text, re.M)
        assert (out / "peers_report.md").exists()
    assert re.search(r"^== done in \d+ s$", text, re.M)
    figures = json.loads((out / "gpu_check.json").read_text())
    assert float(figures["bench"]["batch 8 32x32 float32"]["galaxies_per_s"]) > 0
    assert figures["profile"]["summary"].startswith("profile: one LM iteration")
    assert "one LM iteration" in (out / "profile.txt").read_text()
    assert "== bench:" in (out / "gpu_check.log").read_text()
