"""Posterior samples with Pyro's No-U-Turn sampler (optional: ``pip install "galprof[sample]"``).

The target is the posterior of the fit's own coordinates (the same parameterisation as
:func:`galprof.fit`: free parameters and coupled-range coordinates in user units, with
the fit's smooth bound transforms)::

    -log post = chi^2 / 2  - sum_k log prior_k(p_k)          (chi^2 or the fit statistic)

with a flat prior within each parameter's bounds by default (bounded coordinates are
sampled through the fit's sigmoid transform, so the bounds hold exactly; the transform's
log-Jacobian keeps the prior flat in user units). Priors can be set per parameter as
``torch.distributions`` objects on the value in user units (PA in degrees, sizes in
pixels...), keyed by ``(component, name)`` (1-based) or ``"<component>_<name>"``.

Batching: Pyro's NUTS runs one trajectory for one parameter vector, so every galaxy of
the batch and every chain is put into one joint vector (C chains x B galaxies x F
coordinates). The galaxies and chains are independent in the joint target, so each
(chain, galaxy) block is a valid Markov chain for that galaxy's posterior, while the
model images and gradients of all of them are computed in one batched call per leapfrog
step. The coordinates are whitened with the Cholesky factor of the covariance at the
best fit (an affine map: it changes nothing in the target, only the sampler's
efficiency), and the chains start from over-dispersed points drawn around the best fit.
R-hat (split Gelman-Rubin) and the effective sample size are computed per galaxy and
parameter across the C chains with :mod:`pyro.ops.stats`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UsageError
from ..fitting import prepare_fit
from ..fitting.functions import ModelFunctions
from ..model import ModelError
from ..optimise.problem import BatchProblem
from ..render.config import RenderConfig
from .bootstrap import summarise, unwrap_angles
from .summary import SampleSummary


class SamplingUnavailable(UsageError, ImportError):
    """Pyro is not installed."""


def _require_pyro():
    try:
        import pyro  # noqa: F401
        from pyro.infer import MCMC, NUTS  # noqa: F401
    except ImportError as err:
        raise SamplingUnavailable(
            "posterior sampling needs Pyro, an optional dependency: pip install \"galprof[sample]\" "
            f"(or pip install pyro-ppl) ({err})") from None
    import pyro

    return pyro


@dataclass(frozen=True)
class PosteriorSamples(SampleSummary):
    """Posterior draws for a batch of B galaxies.

    Attributes:
        names: ((component, 1-based), parameter name) of the P columns.
        best: (B, P) the best fit.
        chains: (C, S, B, P) draws per chain in user units (report form: q <= 1, PA
            unwrapped to within 90 deg of the best fit); fixed parameters constant.
        mean, std: (B, P) over all draws.
        intervals: {level: ((B, P) low, (B, P) high)} central percentile intervals.
        r_hat: (B, P) split R-hat across chains (NaN for fixed parameters).
        ess: (B, P) effective sample size (all chains together).
        divergences: number of divergent transitions after warm-up (whole joint chain).
        step_size: the adapted step size (whitened coordinates).
        seed: the seed used.
    """

    names: tuple
    best: np.ndarray
    chains: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    intervals: dict
    r_hat: np.ndarray
    ess: np.ndarray
    divergences: int
    step_size: float
    seed: int | None

    @property
    def samples(self) -> np.ndarray:
        """(C S, B, P) all draws, chains concatenated."""
        c, s = self.chains.shape[:2]
        return self.chains.reshape(c * s, *self.chains.shape[2:])


def _prior_table(priors, layout) -> dict:
    """{coordinate k: torch distribution} from user keys (1-based (component, name) or
    '<component>_<name>')."""
    out = {}
    if not priors:
        return out
    coords = {(layout.entries[i].component + 1, layout.entries[i].name): k for k, i in enumerate(layout.free_index)}
    for key, dist in priors.items():
        if isinstance(key, str):
            head, _, name = key.partition("_")
            if not head.isdigit() or not name:
                raise ModelError(f"prior key {key!r}: use (component, name) or '<component>_<name>', e.g. '1_n'")
            key = (int(head), name)
        key = (int(key[0]), str(key[1]))
        if key not in coords:
            raise ModelError(f"prior on {key[1]!r} of component {key[0]}: not a free parameter of the model "
                             f"(free: {sorted(coords)})")
        if not hasattr(dist, "log_prob"):
            raise ModelError(f"prior on {key}: needs a torch.distributions object with log_prob, got {dist!r}")
        out[coords[key]] = dist
    return out


def sample(model, result, image, *, sigma=None, mask=None, psf=None, priors=None, n_samples: int = 500,
           n_warmup: int = 300, n_chains: int = 4, seed: int | None = None, max_tree_depth: int = 8,
           init_scale: float = 1.5, levels=(0.68, 0.95), statistic=None, config=None, dtype=torch.float64,
           device=None, **frame_options) -> PosteriorSamples:
    """Draw posterior samples for every galaxy of a fit with Pyro's NUTS.

    Args:
        model, result: the fitted model and its :class:`galprof.FitResult`.
        image, sigma, mask, psf: as passed to :func:`galprof.fit`.
        priors: optional {(component, name) or "<k>_<name>": torch distribution} on
            parameters in user units (default: flat within the bounds).
        n_samples, n_warmup: kept draws and warm-up (adaptation) steps per chain.
        n_chains: C >= 2 chains per galaxy (for R-hat), run in the same joint vector.
        seed: makes the draws reproducible.
        max_tree_depth: NUTS tree depth limit (2^depth leapfrog steps at most).
        init_scale: chains start at best fit + init_scale x (covariance draw).
        statistic: the fit's :class:`galprof.fitting.likelihood.PixelStatistic` (None: chi^2).
        config: the fit's :class:`galprof.render.config.RenderConfig`.
        dtype: rendering dtype (float64 default: the energy must be accurate to << 1).
        **frame_options: the other inputs given to :func:`galprof.fit` (``origin``,
            ``zeropoint``, ``exptime``, ``psf_oversampling``, ``region_sizes``, ...).
    """
    pyro = _require_pyro()
    from pyro.infer import MCMC, NUTS
    from pyro.ops.stats import effective_sample_size, split_gelman_rubin


    for key in ("method", "n_starts", "retries", "staged", "lm_settings", "adam_settings", "names", "progress"):
        frame_options.pop(key, None)
    n_chains = int(n_chains)
    if n_chains < 2:
        raise ModelError(f"sampling needs at least 2 chains (for R-hat), got {n_chains}")
    config = RenderConfig() if config is None else config
    setup = prepare_fit(model, image, sigma=sigma, mask=mask, psf=psf, dtype=dtype, device=device, **frame_options)
    layout, data = setup.layout, setup.data
    bsz = setup.batch_size
    if result.batch_size != bsz:
        raise ModelError(f"the fit result has {result.batch_size} galaxies but {bsz} images were given")
    if layout.n_free == 0:
        raise ModelError("the model has no free parameter to sample")
    dev = data.data.device
    rows = n_chains * bsz
    galaxies = torch.arange(bsz, device=dev).repeat(n_chains)  # row r = chain * B + galaxy
    best = torch.as_tensor(np.asarray(result.values), dtype=torch.float64, device=dev)
    fixed = best.repeat(n_chains, 1)
    functions = ModelFunctions(layout, fixed, setup.frame, setup.psf, config, internal=True, galaxies=galaxies)
    problem = BatchProblem(functions.render, data.data[galaxies], data.weight[galaxies], functions.jacobian,
                           statistic, fisher=statistic is not None)
    index = torch.arange(rows, device=dev)
    theta_hat = layout.to_internal(best).repeat(n_chains, 1)  # (rows, F)
    per_row = galaxies if layout.batch_size is not None else None  # each row's galaxy's bounds

    # whitening: Cholesky factor of the covariance of theta at the best fit, regularised so
    # that a flat direction (a parameter on its bound) gets a finite scale
    _, jac = problem.residuals_and_jacobian(theta_hat[:bsz].to(dtype), index[:bsz])
    jac = jac.to(torch.float64)
    normal = jac.transpose(1, 2) @ jac
    normal = normal + torch.diag_embed(1e-8 * torch.diagonal(normal, dim1=-2, dim2=-1) + 0.25)
    chol_normal, info = torch.linalg.cholesky_ex(normal)
    eye = torch.eye(layout.n_free, dtype=torch.float64, device=dev)
    chol_normal = torch.where((info == 0)[:, None, None], chol_normal, eye.expand_as(normal))
    # theta = theta_hat + L z with L L^T = normal^-1: L = chol(normal)^-T
    whiten = torch.linalg.solve_triangular(chol_normal.transpose(1, 2), eye.expand_as(normal), upper=True)
    whiten = whiten.repeat(n_chains, 1, 1)  # (rows, F, F)

    prior_table = _prior_table(priors, layout)

    def coordinates(z):
        return theta_hat + torch.einsum("rij,...rj->...ri", whiten, z)

    def potential(params):
        z = params["z"]
        theta = coordinates(z)
        energy = 0.5 * problem.chi2(theta.to(dtype), index).to(torch.float64)
        energy = energy - layout.log_slope(theta, per_row)  # flat prior in user units
        if prior_table:
            user = layout.to_user(theta, fixed, per_row)
            coords = layout.free_coordinates(user)
            for k, dist in prior_table.items():
                energy = energy - dist.log_prob(coords[:, k]).to(torch.float64)
        return energy.sum()

    seed_value = int(seed) if seed is not None else int(torch.seed() % (2**31))
    pyro.set_rng_seed(seed_value)
    generator = torch.Generator().manual_seed(seed_value)
    z0 = (init_scale * torch.randn(rows, layout.n_free, generator=generator, dtype=torch.float64)).to(dev)
    kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True, full_mass=False,
                  max_tree_depth=int(max_tree_depth), jit_compile=False)
    mcmc = MCMC(kernel, num_samples=int(n_samples), warmup_steps=int(n_warmup), initial_params={"z": z0},
                disable_progbar=True)
    mcmc.run()
    z = mcmc.get_samples()["z"].to(torch.float64)  # (S, rows, F)
    n_s = z.shape[0]
    with torch.no_grad():
        theta = coordinates(z.to(dev))
        user = torch.stack([layout.to_user(t, fixed, per_row) for t in theta])  # (S, rows, P)
    user_np = user.cpu().numpy().reshape(n_s * rows, -1)
    user_np = layout.canonicalise(user_np).reshape(n_s, n_chains, bsz, -1)
    chains = unwrap_angles(np.moveaxis(user_np, 1, 0), np.asarray(result.values), result.names)  # (C, S, B, P)
    flat = torch.as_tensor(chains.reshape(n_chains * n_s, bsz, -1))
    std, intervals = summarise(flat, levels)
    c_t = torch.as_tensor(chains)
    varying = np.zeros(len(result.names), dtype=bool)
    varying[list(layout.varying_index)] = True
    r_hat = split_gelman_rubin(c_t, chain_dim=0, sample_dim=1).numpy()
    ess = effective_sample_size(c_t, chain_dim=0, sample_dim=1).numpy()
    r_hat = np.where(varying[None, :], r_hat, np.nan)
    ess = np.where(varying[None, :], ess, np.nan)
    diverging = 0
    try:
        diag = mcmc.diagnostics()
        diverging = int(sum(len(v) for v in diag.get("divergences", {}).values()))
    except Exception:  # diagnostics are a convenience; the samples stand without them
        diverging = -1
    step = float(getattr(kernel, "step_size", float("nan")))
    return PosteriorSamples(tuple(result.names), np.asarray(result.values), chains, flat.mean(0).numpy(), std,
                            intervals, r_hat, ess, diverging, step, seed_value)


__all__ = ["PosteriorSamples", "SamplingUnavailable", "sample"]
