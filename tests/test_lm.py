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
