"""Special functions needed by the profiles, written as pure, differentiable torch code.

``torch.special.gammainc`` has no derivative with respect to its shape argument, but
the Sérsic profile needs d/dn of P(2n, x) (through b_n and the enclosed flux), so the
regularised lower incomplete gamma function is implemented here from its power series,
summed in log space so that it neither overflows nor loses precision for large x.
Everything works for forward- and reverse-mode autodiff and under ``torch.func.vmap``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["gammainc_lower_regularized", "sersic_b", "sersic_b_initial_guess"]

_SERIES_TERMS = 220
_X_MAX = 100.0  # 1 - P(25, 100) < 1e-20: P == 1 to double precision beyond


def gammainc_lower_regularized(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Regularised lower incomplete gamma function P(a, x) = gamma(a, x) / Gamma(a).

    Valid (relative error < 1e-12 in float64) for 0.1 <= a <= 25 and any x >= 0.
    Differentiable in both ``a`` and ``x``. Computed in float64 whatever the input
    dtype; the result has the broadcast dtype of the inputs.

    Shape:
        a, x: broadcastable tensors; the result has their broadcast shape.
    """
    out_dtype = torch.promote_types(a.dtype, x.dtype)
    a64 = a.to(torch.float64)
    x64 = x.to(torch.float64)
    a64, x64 = torch.broadcast_tensors(a64, x64)
    # Clamp x into the range where the series is summed; beyond _X_MAX, P == 1.
    x_safe = x64.clamp(min=1e-280, max=_X_MAX)
    k = torch.arange(1, _SERIES_TERMS + 1, dtype=torch.float64, device=x64.device)
    log_x = torch.log(x_safe)
    # log of x^k / ((a+1)...(a+k)), k = 1..K
    log_ratios = log_x.unsqueeze(-1) - torch.log(a64.unsqueeze(-1) + k)
    log_terms = torch.cumsum(log_ratios, dim=-1)
    zeros = torch.zeros_like(log_x).unsqueeze(-1)
    log_sum = torch.logsumexp(torch.cat([zeros, log_terms], dim=-1), dim=-1)
    log_p = a64 * log_x - x_safe - torch.lgamma(a64 + 1.0) + log_sum
    p = torch.exp(log_p.clamp(max=0.0))
    p = torch.where(x64 >= _X_MAX, torch.ones_like(p), p)
    p = torch.where(x64 <= 0.0, torch.zeros_like(p), p)
    return p.to(out_dtype)


def sersic_b_initial_guess(n: torch.Tensor) -> torch.Tensor:
    """Starting value for b_n (asymptotic expansion for n >= 0.36, a polynomial fit below).

    Only a starting point for :func:`sersic_b`, never used as the answer.
    """
    large = 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)
    small = 0.01945 - 0.8902 * n + 10.95 * n**2 - 19.67 * n**3 + 13.43 * n**4
    return torch.where(n >= 0.36, large, small.clamp(min=1e-3))


def sersic_b(n: torch.Tensor, iterations: int = 12) -> torch.Tensor:
    """Exact Sérsic b_n: the root of P(2n, b_n) = 1/2, so that R_e encloses half the light.

    Newton iterations on log(b) run without gradient tracking; one final Newton step is
    taken with gradients from the converged (detached) root, which gives the exact
    derivative db/dn = -(dP/dn)/(dP/db) of the implicit function. Accurate to ~1e-12
    relative for 0.2 <= n <= 10 (float64 internally).

    Shape:
        n: any shape; the result has the same shape and dtype.
    """
    n64 = n.to(torch.float64)
    a = 2.0 * n64
    with torch.no_grad():
        log_b = torch.log(sersic_b_initial_guess(n64.detach()))
        a_d = a.detach()
        for _ in range(iterations):
            b = torch.exp(log_b)
            f = gammainc_lower_regularized(a_d, b) - 0.5
            log_density = (a_d - 1.0) * log_b - b - torch.lgamma(a_d)
            df_dlogb = torch.exp(log_density + log_b)
            step = (f / df_dlogb).clamp(-2.0, 2.0)
            log_b = log_b - step
        b_root = torch.exp(log_b)
    f = gammainc_lower_regularized(a, b_root) - 0.5
    density = torch.exp((a - 1.0) * torch.log(b_root) - b_root - torch.lgamma(a))
    b = b_root - f / density
    return b.to(n.dtype)


LN10_OVER_2P5 = math.log(10.0) / 2.5
