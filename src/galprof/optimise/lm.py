"""Batched Levenberg-Marquardt: every galaxy has its own damping, acceptance and stopping.

Each iteration computes, for the galaxies still running, the weighted residuals r and
the Jacobian J of the model (see :mod:`galprof.fitting.functions`), forms J^T J and J^T r
(matrix products in J's dtype, see ``LMSettings.float64_products``) and solves
(J^T J + lambda diag(J^T J)) delta = J^T r per galaxy in float64; a step beyond the
optional trust region (a limit per coordinate) is shortened along its direction. A
step is accepted where it lowers chi^2; rejected galaxies retry with larger damping
without recomputing J (also across iterations: the normal equations are kept per galaxy
until the galaxy moves, and J itself only for the optional Broyden updates, see
:class:`LMSettings`),
except where the undamped Gauss-Newton step is predicted to lower chi^2 by less than
the tolerances: such a galaxy stops after its first trial. Galaxies that have converged
drop out of the batch, so they stop costing work. The host synchronisations per
iteration are the two that gather the indices of the galaxies still running and of
those whose normal equations must be recomputed (boolean-mask indexing), and one per
trial, for those still pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .problem import BatchProblem


@dataclass(frozen=True)
class LMSettings:
    """Settings of :func:`levenberg_marquardt`.

    Attributes:
        max_iterations: LM iterations (damped solves) per galaxy at most.
        ftol: converged when an accepted step lowers chi^2 by less than ftol * chi^2,
            or after one more trial step (taken if it lowers chi^2, not retried) where,
            at an exact J, the undamped Gauss-Newton step is predicted to lower it by
            less than that (the quadratic model).
        chi2_tolerance: the same two tests with this absolute amount of chi^2 (the
            larger of the two tolerances applies): a change of chi^2 far below 1 moves
            no parameter by a noticeable fraction of its error (noise-free data
            otherwise iterate until rounding, chi^2 falling geometrically towards 0).
        xtol: converged when no theta moves by more than xtol * (1 + |theta|).
        initial_damping: starting lambda (Marquardt scaling by diag(J^T J)).
        max_trials: damping increases tried per iteration before recomputing J.
        max_damping: a galaxy whose lambda exceeds this has no downhill step left at the
            working precision and is declared converged.
        broyden_updates: 0 (default): the exact J at every accepted point. k >= 2: after
            an exact J, up to k - 1 iterations use rank-one (Broyden) updates of it
            from the accepted steps' residual changes; a galaxy converges only on a step
            computed with the exact J. Updates trade Jacobians for extra iterations
            (measured trade-off in bench/RESULTS.md). J is kept for the whole batch either
            way, so a galaxy whose trial steps all fail retries with its stored J.
            (:func:`galprof.fit` runs its first, staged part with exact J throughout.)
        pass_size: galaxies whose Jacobians (and float64 normal equations) are formed
            together: the temporaries of a pass (the (b, N, F) Jacobian, its float64
            copy) scale with it. Only with Broyden updates is J stored for the whole
            batch (4 N F bytes per galaxy). The result does not depend on it.
        float64_products: form J^T J and J^T r from the Jacobian converted to float64
            (True), or with the Jacobian's own dtype's matrix products (False, default;
            the same with float64 rendering). They are solved in float64 either way. A
            float32 J carries float32 precision in its entries already, and its float32
            Gram matrix is within ~3e-6 of sqrt(D_i D_j) of the float64 one, so the
            fits agree with the float64 products' within the statistical errors.
        final_trial: where the undamped step is predicted to lower chi^2 by less than the
            tolerances, take that step if it lowers chi^2 (True, default: one more render)
            or stop where the galaxy is (False: for a first stage whose end is only a
            start, see :mod:`galprof.fitting.strategy`).
    """

    max_iterations: int = 100
    ftol: float = 1e-7
    chi2_tolerance: float = 1e-3
    xtol: float = 1e-8
    initial_damping: float = 1e-3
    max_trials: int = 4
    max_damping: float = 1e10
    broyden_updates: int = 0
    pass_size: int = 512
    float64_products: bool = False
    final_trial: bool = True


@dataclass(frozen=True)
class LMOutcome:
    theta: torch.Tensor  # (B, F) float64
    chi2: torch.Tensor  # (B,)
    iterations: torch.Tensor  # (B,) Jacobian evaluations
    converged: torch.Tensor  # (B,) bool


def _solve_damped(jtj: torch.Tensor, jtr: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
    diag = torch.diagonal(jtj, dim1=-2, dim2=-1)
    scale = diag.clamp(min=1e-12 * diag.amax(-1, keepdim=True).clamp(min=1e-30))
    lhs = jtj + torch.diag_embed(damping[:, None] * scale)
    step, info = torch.linalg.solve_ex(lhs, jtr.unsqueeze(-1))
    step = step.squeeze(-1)
    return torch.where((info == 0)[:, None] & torch.isfinite(step), step, torch.zeros_like(step))


def _predicted_decrease(jtj: torch.Tensor, jtr: torch.Tensor) -> torch.Tensor:
    """(b,) decrease of chi^2 that the undamped Gauss-Newton step (J^T J) delta = J^T r
    would bring if the model were linear: (J^T r) . delta; +inf where J^T J is singular
    or the result is not finite and non-negative (no conclusion drawn)."""
    step, info = torch.linalg.solve_ex(jtj, jtr.unsqueeze(-1))
    decrease = (jtr * step.squeeze(-1)).sum(-1)
    usable = (info == 0) & torch.isfinite(decrease) & (decrease >= 0)
    return torch.where(usable, decrease, torch.full_like(decrease, float("inf")))


def _normal_equations(jac: torch.Tensor, residual: torch.Tensor, float64_products: bool):
    """J^T J (b, F, F) and J^T r (b, F), returned in float64, of a (b, N, F) Jacobian (any
    layout) and (b, N) residuals; the products in float64, or with ``float64_products``
    False in the Jacobian's own dtype (see :class:`LMSettings`)."""
    if not float64_products:
        jac_t = jac.transpose(1, 2)
        return ((jac_t @ jac).to(torch.float64),
                (jac_t @ residual.to(jac.dtype).unsqueeze(-1)).squeeze(-1).to(torch.float64))
    jac64 = jac.to(torch.float64)
    jac_t = jac64.transpose(1, 2)
    return jac_t @ jac64, (jac_t @ residual.to(torch.float64).unsqueeze(-1)).squeeze(-1)


def _stored_normal_equations(jac_store: torch.Tensor, residual_store: torch.Tensor, index: torch.Tensor,
                             pass_size: int, float64_products: bool):
    """:func:`_normal_equations` of the stored float32 J of galaxies ``index``, converted
    to float64 ``pass_size`` galaxies at a time."""
    parts = [_normal_equations(jac_store[part], residual_store[part], float64_products)
             for part in torch.split(index, pass_size)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def broyden_update(jac: torch.Tensor, step: torch.Tensor, model_change: torch.Tensor) -> torch.Tensor:
    """Broyden's rank-one update of J (b, N, F) after a step (b, F) changed the model by
    ``model_change`` (b, N): the smallest change of J (Frobenius norm) for which
    J_new @ step = model_change. Rows with a zero step are returned unchanged."""
    predicted = torch.einsum("bnf,bf->bn", jac, step)
    norm = (step * step).sum(-1)
    scale = torch.where(norm > 0, 1.0 / norm.clamp(min=torch.finfo(step.dtype).tiny), torch.zeros_like(norm))
    return jac + (model_change - predicted)[:, :, None] * (step * scale[:, None])[:, None, :]


def limit_step(step: torch.Tensor, limits: torch.Tensor | None) -> torch.Tensor:
    """The step (b, F) shortened along its direction so that no coordinate changes by
    more than its limit ((F,) or (b, F), in the internal, free-parameter units of the
    step; inf: no limit); ``limits`` None: the step unchanged. Rows within their limits
    are returned as they are. (Shortening keeps the direction of the damped step, a
    descent direction; clipping each coordinate alone measured the same on
    bench_multicomponent.py.)"""
    if limits is None:
        return step
    ratio = (step.abs() / limits).amax(-1, keepdim=True)
    return torch.where(ratio > 1.0, step / ratio.clamp(min=1.0), step)


def levenberg_marquardt(problem: BatchProblem, theta0: torch.Tensor, settings: LMSettings = LMSettings(),
                        render_dtype: torch.dtype = torch.float32, progress=None,
                        step_limits: torch.Tensor | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                        ) -> LMOutcome:
    """Minimise chi^2 for every galaxy of the batch independently.

    Args:
        problem: the batch of least-squares problems.
        theta0: (B, F) starting internal parameters.
        settings: stopping and damping settings.
        render_dtype: dtype in which models and Jacobians are computed; the normal
            equations are always solved in float64.
        progress: optional callable(iteration, n_running) for progress reporting.
        step_limits: optional largest change of each coordinate in one step (inf: none):
            an (F,) tensor, or a callable ``step_limits(theta, index) -> (b, F)`` evaluated
            at the current point ``theta`` (b, F) of the running galaxies ``index`` (b,)
            (rows of ``theta0``) once per iteration (elementwise: no host
            synchronisation; e.g. :meth:`galprof.fitting.layout.ParameterLayout.theta_step_limits`).
            A longer step is shortened along its direction (:func:`limit_step`): a trust
            region on those coordinates.
    """
    device = theta0.device
    if step_limits is not None and not callable(step_limits):
        step_limits = torch.as_tensor(step_limits, dtype=torch.float64, device=device)
        if not torch.isfinite(step_limits).any():
            step_limits = None
    bsz = theta0.shape[0]
    theta = theta0.to(torch.float64).clone()
    damping = torch.full((bsz,), settings.initial_damping, dtype=torch.float64, device=device)
    chi2 = torch.full((bsz,), float("inf"), dtype=torch.float64, device=device)
    iterations = torch.zeros(bsz, dtype=torch.long, device=device)
    converged = torch.zeros(bsz, dtype=torch.bool, device=device)
    running = torch.ones(bsz, dtype=torch.bool, device=device)
    if theta.shape[1] == 0:
        index = torch.arange(bsz, device=device)
        chi2 = problem.chi2(theta.to(render_dtype), index).to(torch.float64)
        return LMOutcome(theta, chi2, iterations, torch.ones_like(converged))

    n_pix = problem.data[0].numel()
    n_free = theta.shape[1]
    # Broyden updates need J itself; otherwise only the normal equations at theta are kept
    keep_jacobian = settings.broyden_updates > 0
    if keep_jacobian:
        jac_store = torch.zeros(bsz, n_pix, n_free, dtype=render_dtype, device=device)
        residual_store = torch.zeros(bsz, n_pix, dtype=render_dtype, device=device)
    else:
        jtj_store = torch.zeros(bsz, n_free, n_free, dtype=torch.float64, device=device)
        jtr_store = torch.zeros(bsz, n_free, dtype=torch.float64, device=device)
    chi2_here = torch.zeros(bsz, dtype=torch.float64, device=device)  # chi^2 at theta
    exact = torch.zeros(bsz, dtype=torch.bool, device=device)  # stored J exact at theta
    since_exact = torch.zeros(bsz, dtype=torch.long, device=device)  # Broyden updates since
    want_exact = torch.ones(bsz, dtype=torch.bool, device=device)

    for iteration in range(settings.max_iterations):
        index = torch.nonzero(running).squeeze(-1)  # a host sync (the other: index[recompute])
        if index.numel() == 0:
            break
        if progress is not None:
            progress(iteration, int(index.numel()))
        th = theta[index]
        recompute = ~exact[index] & (want_exact[index] | (since_exact[index] >= settings.broyden_updates))
        fresh = index[recompute]
        if fresh.numel():
            for part in torch.split(fresh, settings.pass_size):
                r_part, j_part = problem.residuals_and_jacobian(theta[part].to(render_dtype), part)
                r_part = r_part.to(render_dtype)
                chi2_here[part] = (r_part.to(torch.float64) ** 2).sum(-1)
                if keep_jacobian:
                    jac_store[part] = j_part.to(render_dtype)
                    residual_store[part] = r_part
                else:
                    jtj_store[part], jtr_store[part] = _normal_equations(j_part.to(render_dtype), r_part,
                                                                         settings.float64_products)
                del r_part, j_part
            exact[fresh] = True
            since_exact[fresh] = 0
            want_exact[fresh] = False
        used_exact = exact[index]
        current = chi2_here[index]
        chi2[index] = current
        iterations[index] += 1
        if keep_jacobian:
            residual = residual_store[index]
            jtj, jtr = _stored_normal_equations(jac_store, residual_store, index, settings.pass_size,
                                                settings.float64_products)
        else:
            jtj, jtr = jtj_store[index], jtr_store[index]
        lam = damping[index]
        limits = step_limits(th, index) if callable(step_limits) else step_limits
        # last step: where even the undamped Gauss-Newton step would lower chi^2 by less
        # than the tolerances (in the quadratic model), the galaxy takes its first trial
        # step if it lowers chi^2 and stops either way; near the optimum, rounding
        # otherwise rejected such steps one damping increase after another up to
        # max_damping, each a render
        tolerance = torch.clamp(settings.ftol * current, min=settings.chi2_tolerance)
        final = used_exact & (_predicted_decrease(jtj, jtr) <= tolerance)
        accepted = torch.zeros_like(current, dtype=torch.bool)
        new_theta = th.clone()
        new_chi2 = current.clone()
        new_residual = residual.clone() if keep_jacobian else None
        last_step = torch.zeros_like(th)
        for trial_number in range(settings.max_trials):
            pending = ~accepted if trial_number == 0 and settings.final_trial else ~accepted & ~final
            sub = torch.nonzero(pending).squeeze(-1)
            if sub.numel() == 0:
                break
            step = limit_step(_solve_damped(jtj, jtr, lam), limits)
            trial = th + step
            trial_residual = problem.residuals(trial[sub].to(render_dtype), index[sub]).to(render_dtype)
            trial_chi2 = torch.full_like(current, float("inf"))
            trial_chi2[sub] = (trial_residual.to(torch.float64) ** 2).sum(-1)
            better = pending & torch.isfinite(trial_chi2) & (trial_chi2 < current)
            new_theta = torch.where(better[:, None], trial, new_theta)
            new_chi2 = torch.where(better, trial_chi2, new_chi2)
            if keep_jacobian:
                new_residual[sub] = torch.where(better[sub, None], trial_residual, new_residual[sub])
            last_step = torch.where(better[:, None], step, last_step)
            accepted = accepted | better
            lam = torch.where(better, (lam / 5.0).clamp(min=1e-12), torch.where(pending, lam * 8.0, lam))
        if keep_jacobian:
            # rank-one (Broyden) update of J = d(model w)/d theta = -d residual/d theta
            delta = torch.where(accepted[:, None], new_theta - th, torch.zeros_like(th)).to(render_dtype)
            jac_store[index] = broyden_update(jac_store[index], delta, residual - new_residual)
            residual_store[index] = new_residual
        theta[index] = new_theta
        chi2[index] = new_chi2
        chi2_here[index] = new_chi2
        damping[index] = lam
        exact[index] = used_exact & ~accepted
        since_exact[index] += accepted.long()
        decrease = current - new_chi2
        small_f = accepted & ((decrease <= settings.ftol * new_chi2.clamp(min=1e-300))
                              | (decrease <= settings.chi2_tolerance))
        small_x = accepted & (last_step.abs() <= settings.xtol * (1.0 + th.abs())).all(-1)
        stalled = lam > settings.max_damping
        done = small_f | small_x | stalled | final
        # a galaxy converges only on a step computed with the exact J; a Broyden step that
        # looks final, or fails, asks for the exact J first
        want_exact[index] = ~used_exact & (done | ~accepted)
        done = done & used_exact
        converged[index] = done
        running[index] = ~done
    return LMOutcome(theta, chi2, iterations, converged)
