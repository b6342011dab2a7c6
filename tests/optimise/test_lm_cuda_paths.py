"""Levenberg-Marquardt as a GPU runs it: host synchronisations per iteration, float64
solves of float32 renders, and (``gpu``) the same fits on CUDA as on the CPU.

The problem is a batch of elliptical Gaussian blobs (amplitude, centre, log width) with
a Jacobian by forward-mode autodiff, started off the truth so that LM takes several
iterations, rejects trial steps and raises its damping.
"""

from __future__ import annotations

import pytest
import torch

from cuda_paths import DEVICE_CASES, HostSyncs, skip_without
from galprof.optimise.lm import LMSettings, levenberg_marquardt
from galprof.optimise.problem import BatchProblem

HEIGHT, WIDTH = 14, 12


def _blobs(bsz: int, device="cpu"):
    """(problem, start (B, 4), truth (B, 4)): Gaussian blobs in float64 with noise."""
    gen = torch.Generator().manual_seed(11)
    truth = torch.stack([torch.rand(bsz, generator=gen, dtype=torch.float64) * 5 + 5,
                         torch.rand(bsz, generator=gen, dtype=torch.float64) * 2 + 5,
                         torch.rand(bsz, generator=gen, dtype=torch.float64) * 2 + 6,
                         torch.rand(bsz, generator=gen, dtype=torch.float64) * 0.6 + 0.3], dim=-1)
    start = truth + torch.tensor([2.0, 1.5, -1.2, 0.5], dtype=torch.float64)
    y = torch.arange(HEIGHT, dtype=torch.float64)[:, None]
    x = torch.arange(WIDTH, dtype=torch.float64)[None, :]
    truth, start, y, x = (t.to(device) for t in (truth, start, y, x))

    def render(theta, index):
        amp, x0, y0, log_w = (theta[:, k, None, None] for k in range(4))
        r2 = (x.to(theta.dtype) - x0) ** 2 + (y.to(theta.dtype) - y0) ** 2
        return amp * torch.exp(-0.5 * r2 * torch.exp(-2.0 * log_w))

    index = torch.arange(bsz, device=device)
    noise = 0.01 * torch.randn(bsz, HEIGHT, WIDTH, generator=gen, dtype=torch.float64).to(device)
    data = render(truth, index) + noise
    problem = BatchProblem(render, data, torch.full_like(data, 100.0))
    return problem, start, truth


def test_lm_synchronises_a_bounded_number_of_times_per_iteration():
    """Per iteration: one gather of the running galaxies, one of those needing a fresh
    Jacobian (a boolean mask), one per trial step; no value is read on the host."""
    problem, start, _ = _blobs(6)
    settings = LMSettings()
    with HostSyncs() as syncs:
        out = levenberg_marquardt(problem, start, settings, torch.float32)
    iterations = int(out.iterations.max())
    assert iterations >= 4  # the start is far enough for the test to mean something
    assert syncs.counts["value reads"] == 0, dict(syncs.counts)
    # the last iteration's gather finds nothing running, hence the + 1
    assert syncs.gathers <= (iterations + 1) * (2 + settings.max_trials), (dict(syncs.counts), iterations)


def test_lm_solves_float32_renders_in_float64(monkeypatch):
    problem, start, truth = _blobs(4)
    solved = []
    solve_ex = torch.linalg.solve_ex

    def spy(lhs, rhs, *args, **kwargs):
        solved.append((lhs.dtype, rhs.dtype))
        return solve_ex(lhs, rhs, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "solve_ex", spy)
    out = levenberg_marquardt(problem, start, LMSettings(), torch.float32)
    assert solved and set(solved) == {(torch.float64, torch.float64)}
    assert out.theta.dtype == out.chi2.dtype == torch.float64
    assert out.converged.all()
    torch.testing.assert_close(out.theta, truth, rtol=0, atol=0.05)


@pytest.mark.parametrize("device, dtype", DEVICE_CASES)
def test_lm_on_the_device_equals_the_cpu(device, dtype):
    skip_without(device)
    problem, start, _ = _blobs(8)
    reference = levenberg_marquardt(problem, start, LMSettings(), torch.float64)
    problem_d, start_d, _ = _blobs(8, device)
    out = levenberg_marquardt(problem_d, start_d, LMSettings(), dtype)
    assert out.theta.device.type == torch.device(device).type
    assert bool(out.converged.all())
    tolerance = 1e-8 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(out.theta.cpu(), reference.theta, rtol=0, atol=tolerance)
