"""Levenberg-Marquardt pieces checked against hand-derived properties."""

from __future__ import annotations

import torch

from galprof.optimise.lm import broyden_update


def test_broyden_update_is_the_minimal_secant_correction():
    gen = torch.Generator().manual_seed(3)
    jac = torch.randn(3, 50, 4, generator=gen, dtype=torch.float64)
    step = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    step[2] = 0.0  # a galaxy whose step was rejected
    change = torch.randn(3, 50, generator=gen, dtype=torch.float64)
    updated = broyden_update(jac, step, change)
    # secant condition J_new s = model change
    torch.testing.assert_close(torch.einsum("bnf,bf->bn", updated[:2], step[:2]), change[:2])
    # directions orthogonal to the step see the old J (the change is rank one along s)
    other = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    other = other - (other * step[:2]).sum(-1, keepdim=True) / (step[:2] ** 2).sum(-1, keepdim=True) * step[:2]
    torch.testing.assert_close(torch.einsum("bnf,bf->bn", updated[:2], other),
                               torch.einsum("bnf,bf->bn", jac[:2], other))
    assert torch.equal(updated[2], jac[2])


def test_lm_stops_at_the_optimum_after_one_trial():
    """On a linear model LM reaches numpy's lstsq solution; at the Jacobian at the
    optimum the Gauss-Newton step predicts no decrease above the tolerances, so every
    galaxy stops after that iteration's first trial, accepted or not (rounding used to
    reject such final steps one damping increase after another up to max_damping, four
    renders per iteration)."""
    import numpy as np

    from galprof.optimise.lm import LMSettings, levenberg_marquardt
    from galprof.optimise.problem import BatchProblem

    gen = torch.Generator().manual_seed(5)
    bsz, height, width, n_free = 3, 12, 10, 4
    basis = torch.randn(bsz, n_free, height, width, generator=gen, dtype=torch.float64)
    truth = torch.randn(bsz, n_free, generator=gen, dtype=torch.float64)
    data = torch.einsum("bk,bkhw->bhw", truth, basis) + 0.1 * torch.randn(bsz, height, width, generator=gen,
                                                                          dtype=torch.float64)
    weight = torch.full_like(data, 2.0)
    calls = []

    def render(theta, index):
        calls.append(("render", int(index.numel())))
        return torch.einsum("bk,bkhw->bhw", theta, basis[index])

    def jacobian(theta, index):
        calls.append(("jacobian", int(index.numel())))
        return torch.einsum("bk,bkhw->bhw", theta, basis[index]), basis[index].permute(0, 2, 3, 1).clone()

    problem = BatchProblem(render, data, weight, jacobian)
    settings = LMSettings(ftol=1e-12, chi2_tolerance=0.0)  # nothing but the exact optimum stops it
    out = levenberg_marquardt(problem, torch.zeros(bsz, n_free, dtype=torch.float64), settings, torch.float64)
    for b in range(bsz):
        design = (basis[b] * weight[b]).reshape(n_free, -1).T.numpy()
        expected = np.linalg.lstsq(design, (data[b] * weight[b]).reshape(-1).numpy(), rcond=None)[0]
        np.testing.assert_allclose(out.theta[b].numpy(), expected, rtol=1e-9, atol=1e-12)
    assert out.converged.all()
    # one trial render per Jacobian, the whole batch each time, nothing after the last
    kinds = [kind for kind, _ in calls]
    assert kinds == ["jacobian", "render"] * out.iterations.max().item()
    assert all(rows == bsz for _, rows in calls)
