"""The interface between a model and an optimiser: model images and Jacobians of theta."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import jvp


@dataclass(frozen=True)
class BatchProblem:
    """A batch of independent least-squares problems.

    Attributes:
        render: ``render(theta, index) -> (b, H, W)`` model images for the galaxies
            ``index`` (a (b,) long tensor) at internal parameters ``theta`` (b, F).
        data: (B, H, W) data with unusable pixels zeroed.
        weight: (B, H, W) inverse sigma, 0 for pixels outside the fit.
        jacobian: optional ``jacobian(theta, index) -> (model (b, H, W), J (b, H, W, F))``
            (e.g. :meth:`galprof.fitting.functions.ModelFunctions.jacobian`), J a new tensor on
            every call (it is weighted in place; any memory layout); without it the
            Jacobian is computed by forward-mode autodiff of ``render``, one tangent per
            free parameter.
    """

    render: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    data: torch.Tensor
    weight: torch.Tensor
    jacobian: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    statistic: object | None = None  # a galprof.fitting.likelihood.PixelStatistic, or None for chi^2
    fisher: bool = False  # with a statistic: Jacobian for the covariance (expected information)

    def _rho(self, model: torch.Tensor, index: torch.Tensor):
        """Per-pixel terms (rho, d rho / d model) of a non-chi^2 statistic."""
        return self.statistic.rho(self.data[index], model, self.weight[index] > 0)

    def chi2(self, theta: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """(b,) chi^2 (or the sum of squares of ``statistic``) of galaxies ``index`` at ``theta`` (b, F)."""
        model = self.render(theta, index)
        if self.statistic is not None:
            rho, _ = self._rho(model, index)
            return (rho**2).flatten(1).sum(-1)
        return (((self.data[index] - model) * self.weight[index]) ** 2).flatten(1).sum(-1)

    def residuals(self, theta: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """(b, N) the residual vector whose sum of squares :meth:`chi2` returns:
        (data - model) w, or -rho with a ``statistic``."""
        model = self.render(theta, index)
        if self.statistic is not None:
            rho, _ = self._rho(model, index)
            return (-rho).flatten(1)
        return ((self.data[index] - model) * self.weight[index]).flatten(1)

    def residuals_and_jacobian(self, theta: torch.Tensor, index: torch.Tensor):
        """Weighted residuals r = (data - model) w, (b, N), and J = d(model w)/d theta, (b, N, F).

        Without a ``jacobian`` function: forward-mode autodiff (``torch.func.jvp``), one
        tangent per free parameter; galaxy b's tangent only moves galaxy b's
        parameters, so one pass gives that column for the whole batch.
        """
        if self.jacobian is not None:
            model, jac = self.jacobian(theta, index)
        else:
            columns = []
            model = None
            for k in range(theta.shape[-1]):
                tangent = torch.zeros_like(theta)
                tangent[:, k] = 1.0
                model, column = jvp(lambda t: self.render(t, index), (theta,), (tangent,))
                columns.append(column)
            jac = torch.stack(columns, dim=-1)
        if self.statistic is not None:  # minimise sum(rho^2): residual -rho, Jacobian d rho / d theta
            rho, drho = self._rho(model, index)
            if self.fisher:
                drho = self.statistic.fisher_scale(model, self.weight[index] > 0)
            return (-rho).flatten(1), (jac * drho.unsqueeze(-1)).flatten(1, 2)
        w = self.weight[index]
        residual = ((self.data[index] - model) * w).flatten(1)
        jac = jac.mul_(w.unsqueeze(-1)).flatten(1, 2)  # in place: J is the jacobian function's own
        return residual, jac
