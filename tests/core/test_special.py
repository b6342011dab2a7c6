"""galprof.special against scipy: the exact Sérsic b_n, its derivative, P(a, x), and the
incomplete beta integral B(t; a, b)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special as sps

from galprof.special import beta_integral, expm1_ratio, gammainc_lower_regularized, log_beta, sersic_b
from references import sersic_b_scipy

pytestmark = pytest.mark.usefixtures("float64")

N_GRID = np.concatenate([np.linspace(0.2, 10.0, 50), [0.25, 0.3, 0.36, 0.5, 1.0, 2.0, 4.0, 6.2, 8.0]])


def test_sersic_b_matches_brentq():
    """b_n solves P(2n, b_n) = 1/2 to < 1e-6 relative (measured ~1e-15) for 0.2 <= n <= 10."""
    n = torch.tensor(N_GRID, dtype=torch.float64)
    b = sersic_b(n).numpy()
    reference = np.array([sersic_b_scipy(v) for v in N_GRID])
    rel = np.abs(b / reference - 1.0)
    assert rel.max() < 1e-6, f"worst rel. error {rel.max():.2e} at n = {N_GRID[rel.argmax()]}"
    # and it really is the root, by scipy's own gammainc
    assert np.abs(sps.gammainc(2 * N_GRID, b) - 0.5).max() < 1e-9


def test_sersic_b_known_values():
    """Textbook values: b_1 = 1.67834699, b_4 = 7.66924944 (Ciotti & Bertin 1999)."""
    b = sersic_b(torch.tensor([1.0, 4.0], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(b, [1.678346990016, 7.669249443404], rtol=1e-9)


def test_sersic_b_outside_the_table_of_roots():
    """Inside 0.2 <= n <= 10 Newton starts from a table of roots (one iteration on the
    CPU); any n outside it sends the whole tensor through the general start (three
    iterations): both paths, and a tensor mixing them, agree with scipy's root."""
    outside = np.array([0.1, 0.15, 10.5, 14.0, 20.0])
    mixed = np.array([0.1, 0.2, 1.0, 4.0, 10.0, 20.0])
    for values in (outside, mixed, N_GRID):
        b = sersic_b(torch.tensor(values, dtype=torch.float64)).numpy()
        reference = np.array([sersic_b_scipy(v) for v in values])
        np.testing.assert_allclose(b, reference, rtol=1e-10)
        assert np.abs(sps.gammainc(2 * values, b) - 0.5).max() < 1e-10


def test_sersic_b_float32_keeps_dtype():
    n = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float32)
    b = sersic_b(n)
    assert b.dtype == torch.float32
    np.testing.assert_allclose(b.numpy(), [sersic_b_scipy(v) for v in (0.5, 1.0, 4.0)], rtol=1e-6)


def test_sersic_b_derivative():
    """db/dn by autograd equals finite differences of galprof's b and of scipy's root."""
    n_values = np.array([0.2, 0.35, 0.5, 1.0, 2.5, 4.0, 7.0, 10.0])
    n = torch.tensor(n_values, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(sersic_b(n).sum(), n)
    h = 1e-5
    with torch.no_grad():
        fd = (sersic_b(n + h) - sersic_b(n - h)) / (2 * h)
    fd_scipy = np.array([(sersic_b_scipy(v + h) - sersic_b_scipy(v - h)) / (2 * h) for v in n_values])
    np.testing.assert_allclose(grad.numpy(), fd.numpy(), rtol=1e-7)
    np.testing.assert_allclose(grad.numpy(), fd_scipy, rtol=1e-7)
    # asymptotically db/dn -> 2
    assert abs(grad[-1].item() - 2.0) < 0.01


def test_sersic_b_forward_mode_equals_reverse_mode():
    n = torch.tensor([0.4, 1.3, 5.0], dtype=torch.float64)
    jf = torch.func.jacfwd(sersic_b)(n)
    jr = torch.func.jacrev(sersic_b)(n)
    torch.testing.assert_close(jf, jr, rtol=1e-10, atol=1e-12)


def _gamma_grid():
    a = np.geomspace(0.4, 20.0, 25)
    x = np.unique(np.concatenate([[0.0, 1e-300, 1e-12, 1e-6, 1e-3], np.geomspace(0.01, 200.0, 60),
                                  a + 1.0, a + 1.0 - 1e-9, a + 1.0 + 1e-9, a]))  # include the branch switch
    return np.meshgrid(a, x, indexing="ij")


def test_gammainc_matches_scipy():
    """P(a, x) over a in [0.4, 20], x in [0, 200]: abs. error < 1e-12 and rel. error < 1e-9
    where P > 1e-300 (measured 1.1e-13 and 1.2e-13)."""
    a, x = _gamma_grid()
    p = gammainc_lower_regularized(torch.tensor(a), torch.tensor(x)).numpy()
    reference = sps.gammainc(a, x)
    assert np.all(np.isfinite(p))
    abs_err = np.abs(p - reference)
    assert abs_err.max() < 1e-12, f"worst abs. error {abs_err.max():.2e}"
    mask = reference > 1e-300
    rel_err = np.abs(p[mask] / reference[mask] - 1.0)
    worst = np.argmax(rel_err)
    assert rel_err.max() < 1e-9, f"worst rel. error {rel_err.max():.2e} at a={a[mask][worst]}, x={x[mask][worst]}"
    np.testing.assert_array_equal(p[x == 0.0], 0.0)
    assert np.all((p >= 0.0) & (p <= 1.0))


def test_gammainc_gradients():
    """dP/dx = x^(a-1) e^-x / Gamma(a) analytically; dP/da by finite differences of scipy."""
    a_values = np.array([0.4, 0.9, 2.0, 5.0, 12.0, 20.0])
    x_values = np.array([0.05, 0.8, 3.0, 6.5, 13.0, 40.0])
    a = torch.tensor(a_values, requires_grad=True)
    x = torch.tensor(x_values, requires_grad=True)
    ga, gx = torch.autograd.grad(gammainc_lower_regularized(a, x).sum(), (a, x))
    expected_gx = np.exp((a_values - 1) * np.log(x_values) - x_values - sps.gammaln(a_values))
    np.testing.assert_allclose(gx.numpy(), expected_gx, rtol=1e-8, atol=1e-15)
    h = 1e-6
    expected_ga = (sps.gammainc(a_values + h, x_values) - sps.gammainc(a_values - h, x_values)) / (2 * h)
    np.testing.assert_allclose(ga.numpy(), expected_ga, rtol=1e-6, atol=1e-10)


def test_gammainc_forward_mode_matches_scipy():
    """Forward mode (torch.func.jvp, as the fitter's Jacobian uses) and vmap over tangents
    give scipy's partial derivatives."""
    from torch.func import jvp, vmap

    a_values = np.array([0.4, 0.9, 2.0, 5.0, 12.0, 20.0])
    x_values = np.array([0.05, 0.8, 3.0, 6.5, 13.0, 40.0])
    a, x = torch.tensor(a_values), torch.tensor(x_values)
    h = 1e-6
    expected_ga = (sps.gammainc(a_values + h, x_values) - sps.gammainc(a_values - h, x_values)) / (2 * h)
    expected_gx = (sps.gammainc(a_values, x_values + h) - sps.gammainc(a_values, x_values - h)) / (2 * h)
    _, da = jvp(lambda t: gammainc_lower_regularized(t, x), (a,), (torch.ones_like(a),))
    _, dx = jvp(lambda t: gammainc_lower_regularized(a, t), (x,), (torch.ones_like(x),))
    np.testing.assert_allclose(da.numpy(), expected_ga, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(dx.numpy(), expected_gx, rtol=1e-6, atol=1e-10)
    tangents = torch.stack([torch.ones_like(a), torch.zeros_like(a)])
    both = vmap(lambda t: jvp(lambda u: gammainc_lower_regularized(u, x), (a,), (t,))[1])(tangents)
    np.testing.assert_allclose(both[0].numpy(), expected_ga, rtol=1e-6, atol=1e-10)
    np.testing.assert_array_equal(both[1].numpy(), 0.0)


def test_gammainc_no_nan_gradient_at_edges():
    """x = 0, x at the series/fraction switch and huge x give finite gradients."""
    a = torch.tensor([0.5, 2.0, 2.0, 8.0, 8.0], requires_grad=True)
    x = torch.tensor([0.0, 3.0, 1e-300, 1e5, 9.0], requires_grad=True)
    ga, gx = torch.autograd.grad(gammainc_lower_regularized(a, x).sum(), (a, x))
    assert torch.isfinite(ga).all() and torch.isfinite(gx).all()


def test_gammainc_gradcheck():
    a = torch.tensor([0.7, 3.0, 9.5], requires_grad=True)
    x = torch.tensor([0.3, 2.5, 14.0], requires_grad=True)
    assert torch.autograd.gradcheck(gammainc_lower_regularized, (a, x), eps=1e-6, atol=1e-8, rtol=1e-5)


def test_gammainc_with_one_shape_argument_per_row():
    """A shape argument a of fewer elements than x (one per galaxy, broadcast inside the
    series) gives the values, reverse- and forward-mode derivatives of the broadcast
    call, and passes gradcheck in both modes."""
    a = torch.tensor([[0.6], [3.0], [9.0]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[0.01, 0.5, 2.0, 7.0], [0.3, 2.9, 3.1, 12.0], [1.0, 8.0, 9.5, 30.0]],
                     dtype=torch.float64, requires_grad=True)
    wide = a.detach().expand(-1, 4).clone().requires_grad_(True)
    small, full = gammainc_lower_regularized(a, x), gammainc_lower_regularized(wide, x)
    np.testing.assert_allclose(small.detach().numpy(), full.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(small.detach().numpy(), sps.gammainc(a.detach().numpy(), x.detach().numpy()),
                               rtol=1e-9)
    (ga,) = torch.autograd.grad(small.sum(), a)
    (gw,) = torch.autograd.grad(full.sum(), wide)
    np.testing.assert_allclose(ga.numpy(), gw.sum(-1, keepdim=True).numpy(), rtol=1e-12)
    assert torch.autograd.gradcheck(gammainc_lower_regularized, (a, x), eps=1e-6, atol=1e-8, rtol=1e-5,
                                    check_forward_ad=True)


def test_gammainc_float32():
    a = torch.tensor([1.0, 4.0], dtype=torch.float32)
    x = torch.tensor([1.0, 3.0], dtype=torch.float32)
    p = gammainc_lower_regularized(a, x)
    assert p.dtype == torch.float32
    np.testing.assert_allclose(p.numpy(), sps.gammainc([1.0, 4.0], [1.0, 3.0]), rtol=1e-6)
    assert math.isclose(p[0].item(), 1.0 - math.exp(-1.0), rel_tol=1e-6)


def test_beta_integral_matches_scipy():
    """B(t; a, b) = betainc(a, b, t) B(a, b) from t = 0, over 300 random cases with
    0 < a <= 12, 0 < b <= 13 and 1e-4 <= t <= 0.9; log_beta against scipy's betaln."""
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0.05, 12.0, 300), rng.uniform(0.05, 13.0, 300)
    hi = np.exp(rng.uniform(math.log(1e-4), math.log(0.9), 300))
    got = beta_integral(torch.tensor(a), torch.tensor(b), torch.tensor(np.log(hi))).numpy()
    np.testing.assert_allclose(got, sps.betainc(a, b, hi) * sps.beta(a, b), rtol=5e-9)
    np.testing.assert_allclose(log_beta(torch.tensor(a), torch.tensor(b)).numpy(), sps.betaln(a, b),
                               rtol=1e-13, atol=1e-13)


def test_beta_integral_with_a_lower_limit_matches_quadrature():
    """int_lo^hi t^(a-1) (1-t)^(b-1) dt for exponents a of either sign (lo > 0) against
    scipy's quad in y = log t; rows without a lower limit (``has_lo`` False) start at 0."""
    from scipy import integrate

    rng = np.random.default_rng(11)
    n = 60
    a, b = rng.uniform(-12.0, 12.0, n), rng.uniform(0.05, 13.0, n)
    hi = rng.uniform(0.05, 0.9, n)
    lo = hi * np.exp(rng.uniform(math.log(1e-3), math.log(0.9), n))
    has_lo = a <= 0.5  # a > 0 where lo = 0
    got = beta_integral(torch.tensor(a), torch.tensor(b), torch.tensor(np.log(hi)), torch.tensor(np.log(lo)),
                        torch.tensor(has_lo)).numpy()
    reference = [integrate.quad(lambda y, i=i: np.exp(a[i] * y) * (1.0 - np.exp(y)) ** (b[i] - 1.0),
                                math.log(lo[i]) if has_lo[i] else -np.inf, math.log(hi[i]),
                                epsabs=0.0, epsrel=1e-13, limit=200)[0] for i in range(n)]
    np.testing.assert_allclose(got, reference, rtol=1e-7)


def test_beta_integral_gradcheck():
    """The panel sums' hand-written derivatives (reverse and forward mode) in a, b and
    both limits (the derivatives are those of the exact integral, so the cases keep the
    quadrature's own error far below gradcheck's tolerance)."""
    a = torch.tensor([0.6, 2.5, -0.5], requires_grad=True)
    b = torch.tensor([1.5, 0.4, 3.0], requires_grad=True)
    log_hi = torch.log(torch.tensor([0.3, 0.8, 0.5])).requires_grad_(True)
    log_lo = torch.log(torch.tensor([1e-3, 0.05, 0.1])).requires_grad_(True)
    has_lo = torch.tensor([False, True, True])

    def integral(a, b, log_hi, log_lo):
        return beta_integral(a, b, log_hi, log_lo, has_lo)

    assert torch.autograd.gradcheck(integral, (a, b, log_hi, log_lo), eps=1e-6, atol=1e-8, rtol=1e-5,
                                    check_forward_ad=True)


def test_expm1_ratio_is_smooth_through_zero():
    """expm1(x) / x on both branches (|x| < 0.1: the series), 1 at x = 0, and the
    derivative 1/2 there."""
    x = torch.tensor([-3.0, -0.1, -0.05, -1e-9, 1e-9, 0.05, 0.0999, 0.1, 2.0])
    np.testing.assert_allclose(expm1_ratio(x).numpy(), np.expm1(x.numpy()) / x.numpy(), rtol=1e-14)
    zero = torch.zeros(1, requires_grad=True)
    value = expm1_ratio(zero)
    (slope,) = torch.autograd.grad(value.sum(), zero)
    assert float(value.detach()) == 1.0 and float(slope) == pytest.approx(0.5, rel=1e-14)
