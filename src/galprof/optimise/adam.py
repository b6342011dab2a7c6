"""Adam, the first-order optimiser of GalMOSS-style fitters, offered for comparison.

Default schedule: learning rate 0.05 in theta units for the first 20 % of the steps,
then a cosine decay to 1e-4 of that by the last step; 1500 steps. Every galaxy's loss is
its own chi^2 (the sum over the batch is what autograd sees; galaxies do not interact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .lm import LMOutcome
from .problem import BatchProblem


@dataclass(frozen=True)
class AdamSettings:
    steps: int = 1500
    learning_rate: float = 0.05
    warm_fraction: float = 0.2
    final_fraction: float = 1e-4


def adam_fit(problem: BatchProblem, theta0: torch.Tensor, settings: AdamSettings = AdamSettings(),
             render_dtype: torch.dtype = torch.float32, progress=None) -> LMOutcome:
    """Minimise chi^2 with Adam; returns the best theta seen for each galaxy."""
    index = torch.arange(theta0.shape[0], device=theta0.device)
    theta = theta0.to(render_dtype).clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=settings.learning_rate)
    warm = int(settings.warm_fraction * settings.steps)

    def lr_factor(step):
        if step < warm:
            return 1.0
        t = (step - warm) / max(1, settings.steps - warm)
        return settings.final_fraction + (1 - settings.final_fraction) * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    best_theta = theta0.to(torch.float64).clone()
    best_chi2 = torch.full((theta0.shape[0],), float("inf"), dtype=torch.float64, device=theta0.device)
    for step in range(settings.steps):
        opt.zero_grad()
        chi2 = problem.chi2(theta, index)
        loss = chi2.sum()
        loss.backward()
        with torch.no_grad():
            c = chi2.detach().to(torch.float64)
            improved = torch.isfinite(c) & (c < best_chi2)
            best_chi2 = torch.where(improved, c, best_chi2)
            best_theta = torch.where(improved[:, None], theta.detach().to(torch.float64), best_theta)
        opt.step()
        sched.step()
        if progress is not None and step % 100 == 0:
            progress(step, theta0.shape[0])
    steps = torch.full((theta0.shape[0],), settings.steps, dtype=torch.long, device=theta0.device)
    return LMOutcome(best_theta, best_chi2, steps, torch.isfinite(best_chi2))
