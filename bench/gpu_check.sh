#!/usr/bin/env bash
# Every GPU figure galprof claims, in one command of under 8 minutes (docs/gpu.md):
#
#   bash bench/gpu_check.sh                        # CUDA: tests, bench_fit, profiler, GalMOSS, ...
#   bash bench/gpu_check.sh --device cpu --quick   # every part on the CPU at tiny sizes
#
# Options are bench/gpu_check.py's (--help). The Python used is $PYTHON, else the first
# python3 / python on PATH that imports torch. galprof runs from src/ (nothing is built
# or downloaded); packages the machine lacks are installed offline from
# bench/peers/.wheels (bench/peers/fetch_wheels.py). With $OUT set, the log and the
# figures are written there too.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [ -z "$python" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
            python="$candidate"
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "gpu_check: no python with torch on PATH (set PYTHON=/path/to/python)" >&2
    exit 2
fi
export PYTHONUNBUFFERED=1
exec "$python" "$here/gpu_check.py" "$@"
