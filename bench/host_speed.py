"""How fast this host is today: two single-thread reference figures printed beside
every benchmark, so that figures from different days (or a busy shared host) can be
compared.

- ``small op``: wall time of one tiny torch operation (dispatch overhead, the fixed
  cost of each of the ~1,000-2,300 operations of a render or Jacobian pass);
- ``sgemm``: float32 matrix-product rate of one thread (1024 x 1024).

On the 2-core development VM (AMD EPYC) the same code ran 2x faster on 2026-12-01
(10th session; small op 3.9 us, sgemm 94 GFLOP/s) than in the session before.
"""

from __future__ import annotations

import time

import torch


def host_speed() -> str:
    """One line: single-thread small-op time [us] and sgemm rate [GFLOP/s]."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.zeros(8)
        for _ in range(200):
            x = x + 1
        t0 = time.perf_counter()
        for _ in range(5000):
            x = x + 1
        small = (time.perf_counter() - t0) / 5000
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        a @ b
        t0 = time.perf_counter()
        for _ in range(5):
            a @ b
        sgemm = 5 * 2 * 1024**3 / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return f"host speed (1 thread): small torch op {small * 1e6:.1f} us, sgemm {sgemm / 1e9:.0f} GFLOP/s"


if __name__ == "__main__":
    print(host_speed())
