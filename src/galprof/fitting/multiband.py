"""Fit every band of a galaxy together (GALFITM's multi-band fitting), batched over galaxies.

The images of B galaxies in K bands, (B, K, H, W), are fitted by one model whose
parameters vary with wavelength as declared per parameter (see
:mod:`galprof.fitting.bands`: fixed, the same in every band, a Chebyshev polynomial of
N terms in wavelength, or free in every band).

How it runs on the single-band engine:

* every (galaxy, band) pair is one *row* of a batch of B K single-band problems, with
  its own image, sigma, mask, PSF, zeropoint and EXPTIME; a row's parameters are mapped
  to the unbounded internal coordinates of :class:`galprof.fitting.layout.ParameterLayout`
  (bounds and constraints apply in every band);
* the optimiser's coordinates, per galaxy, are the *coefficients*: for a parameter
  shared by all bands its one internal coordinate, for a parameter free in every band
  its K internal coordinates, and for a polynomial its N Chebyshev coefficients in the
  parameter's own units (as GALFITM's), mapped through the bound transform in each band;
* the LM of :mod:`galprof.optimise.lm` sees each galaxy's K band images stacked into
  one (K H, W) image, and its Jacobian is the exact single-band Jacobian of every row
  times the small exact Jacobian of the map from coefficients to row coordinates
  (d theta / d coefficients: 0/1 selections, and T_m(x_k) / (d p / d theta) for
  polynomials).

Conventions are GALFIT's in every band: 1-based pixels, PA counter-clockwise from +y
[deg], R_e along the major axis [pix], q = b/a, magnitudes with each band's zeropoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..model import Component, Model, ModelError
from ..optimise.lm import LMSettings, levenberg_marquardt
from ..optimise.problem import BatchProblem
from ..render.config import RenderConfig
from .setup import prepare_fit
from .strategy import has_perturbed_starts, restart_components, starts_near_fit
from .bands import Bands, resolve_terms
from .covariance import covariance_estimate
from .flags import centres_off_region, component_signal, vanished_components
from .functions import ModelFunctions
from .result import CONVERGED, fit_statuses

#: relative chi^2 decrease below which the first stage of a joint fit (Sersic indices held)
#: stops early. Tighter than single-band stage 1 (:data:`galprof.fitting.strategy.STAGE_FTOL`):
#: joint bulge + disk fits, staged and restarted, recover fewer galaxies with 1e-2 (30/32
#: against 32/32 on bench_multiband's seed 1; bench/RESULTS.md, issue 23)
BANDS_STAGE_FTOL = 1e-4


@dataclass(frozen=True)
class MultiBandFitResult:
    """The result of :func:`fit_bands` (returned as a value; nothing is stored on the model).

    Shapes: B galaxies, K bands, P parameters (``names``), C coefficients.

    Attributes:
        bands: the :class:`galprof.fitting.bands.Bands`.
        names: ((component, 1-based), name) of each parameter column.
        terms: (P,) terms of each parameter (0 fixed, 1 shared, N polynomial, K per band).
        values: (B, K, P) best-fit values in every band (GALFIT units and conventions).
        errors: (B, K, P) 1-sigma errors from the covariance (0 for fixed, NaN where
            the data do not determine them).
        coefficients: (B, P, K) Chebyshev coefficients of each parameter's band values
            (GALFITM's restart ``cheb`` values; the first ``terms`` are the fitted ones,
            the rest 0); coefficient_errors: their 1-sigma errors.
        chi2: (B,) chi^2 over every band; chi2_band: (B, K); ndof: (B,) good pixels of
            all bands minus the free coefficients; chi2_nu: chi2 / ndof.
        iterations: (B,) LM iterations; status: (B,) STATUS strings
            (:mod:`galprof.fitting.result`); converged: status == ``converged``.
        covariance: (B, C, C) of the optimiser's coefficients; covariance_flag: (B,)
            True where it is singular or ill-conditioned.
        model_images, residual_images: (B, K, H, W).
        initial_values: (B, K, P) the starting values in every band.
    """

    bands: Bands
    names: tuple
    terms: np.ndarray
    values: np.ndarray
    errors: np.ndarray
    coefficients: np.ndarray
    coefficient_errors: np.ndarray
    chi2: np.ndarray
    chi2_band: np.ndarray
    ndof: np.ndarray
    chi2_nu: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    converged: np.ndarray
    covariance: np.ndarray
    covariance_flag: np.ndarray
    model_images: np.ndarray
    residual_images: np.ndarray
    initial_values: np.ndarray

    def index(self, component: int, name: str) -> int:
        """Column of parameter ``name`` of ``component`` (1-based)."""
        return self.names.index((component, name))

    def value(self, component: int, name: str) -> np.ndarray:
        """(B, K) the best-fit values of one parameter in every band."""
        return self.values[:, :, self.index(component, name)]

    def error(self, component: int, name: str) -> np.ndarray:
        """(B, K) the 1-sigma errors of one parameter in every band."""
        return self.errors[:, :, self.index(component, name)]


def default_terms(component: Component, name: str, n_bands: int) -> int:
    """Terms of a parameter without a declaration: 0 if fixed; every band for an amplitude
    (magnitude, surface brightness) and the sky's parameters; otherwise 1 (one value in
    every band: the structure is the same at every wavelength)."""
    if name in component.fixed:
        return 0
    profile = component.profile_class
    if profile.kind == "sky" or name == profile.amplitude:
        return n_bands
    return 1


def parameter_terms(model: Model, terms, n_bands: int) -> dict:
    """{(component 1-based, name): terms} of every parameter of ``model``: the declaration
    in ``terms`` ({(component, name): int 0..K or "band"}), else :func:`default_terms`; 0
    for a parameter in ``Component.fixed`` whatever its declaration.

    Raises:
        ModelError: a declaration for a component or parameter that does not exist, or a
            number of terms outside 0..K.
    """
    terms = dict(terms or {})
    for (number, name) in terms:
        if not 1 <= number <= len(model.components):
            raise ModelError(f"terms: component {number} does not exist (the model has {len(model.components)})")
        if name not in model.components[number - 1].values:
            raise ModelError(f"terms: component {number} ({model.components[number - 1].profile}) has no "
                             f"parameter {name!r}")
    out = {}
    for ci, comp in enumerate(model.components):
        for name in comp.values:
            count = default_terms(comp, name, n_bands)
            if (ci + 1, name) in terms and name not in comp.fixed:
                count = resolve_terms(terms[(ci + 1, name)], n_bands, f"component {ci + 1} ({comp.profile}) {name}")
            out[(ci + 1, name)] = count
    return out


def _band_array(value, bsz: int, n_bands: int, what: str) -> np.ndarray:
    """(B, K) from a number, (B,) (per galaxy) or (B, K) (per galaxy and band)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full((bsz, n_bands), float(arr))
    if arr.ndim == 1 and arr.shape[0] == bsz:
        return np.repeat(arr[:, None], n_bands, axis=1)
    if arr.shape == (bsz, n_bands):
        return arr
    raise ModelError(f"{what}: give a number, one value per galaxy ({bsz},) or one per galaxy and band "
                     f"({bsz}, {n_bands}); got shape {arr.shape}")


def _per_band_inputs(value, bsz: int, n_bands: int, what: str) -> np.ndarray:
    """(B, K) zeropoints or EXPTIMEs from a number, (K,) per band, or (B, K)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full((bsz, n_bands), float(arr))
    if arr.shape == (n_bands,):
        return np.tile(arr, (bsz, 1))
    if arr.shape == (bsz, n_bands):
        return arr
    raise ModelError(f"{what}: give a number, one per band ({n_bands},) or one per galaxy and band "
                     f"({bsz}, {n_bands}); got shape {arr.shape}")


def _stack_bands(images, n_bands: int, what: str) -> np.ndarray | None:
    """(B, K, H, W) from a (B, K, H, W) array, a (K, H, W) array (one galaxy), or a list of
    K per-band arrays of shape (H, W) or (B, H, W)."""
    if images is None:
        return None
    if isinstance(images, (list, tuple)):
        if len(images) != n_bands:
            raise ModelError(f"{what}: {len(images)} per-band arrays given for {n_bands} bands")
        arrays = [np.asarray(a, dtype=np.float64) for a in images]
        arrays = [a[None] if a.ndim == 2 else a for a in arrays]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ModelError(f"{what}: the bands' arrays differ in shape ({sorted(shapes)}); cut-outs of one "
                             "galaxy must have the same size and pixel grid in every band")
        return np.stack(arrays, axis=1)
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[0] == n_bands:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != n_bands:
        raise ModelError(f"{what}: expected (B, {n_bands}, H, W) or a list of {n_bands} per-band arrays, "
                         f"got shape {arr.shape}")
    return arr


def _row_psfs(psf, bsz: int, n_bands: int):
    """The PSF of every (galaxy, band) row, galaxy-major: None; one 2-D PSF for all; a
    list of K per-band PSFs; or B lists of K."""
    if psf is None:
        return None
    if isinstance(psf, (list, tuple)):
        if len(psf) == n_bands and all(np.ndim(p) == 2 for p in psf):
            return [psf[k] for _ in range(bsz) for k in range(n_bands)]
        if len(psf) == bsz and all(isinstance(p, (list, tuple)) and len(p) == n_bands for p in psf):
            return [p[k] for p in psf for k in range(n_bands)]
        raise ModelError(f"psf: give one 2-D PSF, a list of {n_bands} (one per band) or {bsz} lists of {n_bands}")
    if np.ndim(psf) == 2:
        return psf
    raise ModelError("psf: give one 2-D PSF, a list with one per band, or one list per galaxy")


class BandMap:
    """The map from each galaxy's coefficients (b, C) to the internal coordinates of its
    K rows (b, K, F), and its exact Jacobian (b, K, F, C) (see the module docstring).

    Args:
        layout: the single-band layout of the rows (its free coordinates, F of them).
        terms: (F,) terms of each free coordinate: 1, K or 1 < N < K.
        bands: the bands.
    """

    def __init__(self, layout, terms, bands: Bands):
        self.layout = layout
        self.n_bands = len(bands)
        self.terms = [int(t) for t in terms]
        self.offsets = np.concatenate([[0], np.cumsum(self.terms)]).astype(int)
        self.n_coefficients = int(self.offsets[-1])
        n_free = len(self.terms)
        select = np.zeros((self.n_bands, n_free, self.n_coefficients))
        poly = np.zeros((self.n_bands, n_free, self.n_coefficients))
        self.poly_columns = []
        for f, (terms, offset) in enumerate(zip(self.terms, self.offsets)):
            if terms == 1:
                select[:, f, offset] = 1.0
            elif terms == self.n_bands:
                select[np.arange(self.n_bands), f, offset + np.arange(self.n_bands)] = 1.0
            else:
                poly[:, f, offset:offset + terms] = bands.chebyshev_basis(terms).T
                self.poly_columns.append(f)
        self._select = torch.as_tensor(select)
        self._poly = torch.as_tensor(poly)

    def _on(self, like: torch.Tensor):
        return self._select.to(like), self._poly.to(like)

    def natural_values(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(b, K, F) the polynomial columns' values in every band (natural units; other
        columns 0)."""
        _, poly = self._on(coefficients)
        return torch.einsum("kfc,bc->bkf", poly, coefficients)

    def rows(self, coefficients: torch.Tensor, fixed_rows: torch.Tensor, rows=None) -> torch.Tensor:
        """(b, K, F) row coordinates of ``coefficients`` (b, C); ``fixed_rows`` (b K, P)
        user values holding the fixed parameters (for the polynomials' transforms);
        ``rows`` (b K,) their rows in the layout's batch (None: all rows in order)."""
        select, _ = self._on(coefficients)
        theta = torch.einsum("kfc,bc->bkf", select, coefficients)
        if self.poly_columns:
            theta = theta + self._natural_to_theta(self.natural_values(coefficients), fixed_rows, rows)
        return theta

    def _natural_to_theta(self, natural: torch.Tensor, fixed_rows: torch.Tensor, rows=None) -> torch.Tensor:
        """Internal coordinates of the polynomial columns from their natural values (other
        columns 0)."""
        bsz = natural.shape[0]
        values = fixed_rows.to(natural).clone()
        free = list(self.layout.free_index)
        for f in self.poly_columns:
            column = natural[:, :, f].reshape(-1)
            if self.layout.entries[free[f]].scale == "log":
                column = column.clamp(min=1e-12)
            values[:, free[f]] = column
        theta = self.layout.to_internal(values, rows).reshape(bsz, self.n_bands, len(self.terms))
        keep = torch.zeros(theta.shape[-1], dtype=theta.dtype, device=theta.device)
        keep[self.poly_columns] = 1.0
        return theta * keep

    def jacobian(self, coefficients: torch.Tensor, theta: torch.Tensor, rows=None) -> torch.Tensor:
        """(b, K, F, C) d row coordinates / d coefficients at ``theta`` (b, K, F) = rows(...)
        (``rows`` as for :meth:`rows`)."""
        select, poly = self._on(coefficients)
        bsz = coefficients.shape[0]
        jac = select.expand(bsz, -1, -1, -1)
        if self.poly_columns:
            slopes = self.layout.coordinate_slopes(theta.reshape(bsz * self.n_bands, len(self.terms)), True, rows)
            slopes = slopes.reshape(bsz, self.n_bands, len(self.terms))
            # a band value the bound transform clipped (see ParameterLayout.at_internal_edge)
            # does not move with the coefficients: derivative 0, not T_m / slope
            moving = ~self.layout.at_internal_edge(theta.reshape(bsz * self.n_bands, len(self.terms)))
            slopes = torch.where(moving.reshape(slopes.shape), slopes, torch.full_like(slopes, math.inf))
            jac = jac + poly[None] / slopes[..., None]
        return jac

    def initial(self, theta_rows: torch.Tensor, natural_rows: torch.Tensor, bands: Bands) -> torch.Tensor:
        """(b, C) starting coefficients from the rows' starting internal coordinates
        (b, K, F) and natural values (b, K, F): the mean over bands of a shared one, each
        band's own, and the least-squares Chebyshev polynomial of N terms."""
        out = []
        for f, terms in enumerate(self.terms):
            if terms == 1:
                out.append(theta_rows[:, :, f].mean(1, keepdim=True))
            elif terms == self.n_bands:
                out.append(theta_rows[:, :, f])
            else:
                coef = bands.coefficients(natural_rows[:, :, f].cpu().numpy(), terms)
                out.append(torch.as_tensor(coef, dtype=theta_rows.dtype, device=theta_rows.device))
        return torch.cat(out, dim=1) if out else theta_rows.new_zeros(theta_rows.shape[0], 0)


def fit_bands(model: Model, images, *, bands: Bands, terms=None, sigma=None, mask=None, psf=None,
              psf_oversampling: int = 1, origin: tuple[int, int] = (1, 1), zeropoint=0.0, exptime=1.0,
              convolution_box: tuple[int, int] | None = None, pixel_scale: tuple[float, float] = (1.0, 1.0),
              config: RenderConfig = RenderConfig(), lm_settings: LMSettings = LMSettings(),
              staged: bool = True, stage_iterations_limit: int = 8, perturbed_starts: bool | None = None,
              dtype: torch.dtype = torch.float32, device=None, names=None) -> MultiBandFitResult:
    """Fit ``model`` to the images of B galaxies in K bands, all bands of a galaxy together.

    Args:
        model: components with initial values: a number, a (B,) array (per galaxy, the
            same in every band) or a (B, K) array (per galaxy and band) for each
            parameter; its constraints apply in every band.
        images: (B, K, H, W) [ADU], a (K, H, W) array for one galaxy, or a list of K
            per-band arrays ((H, W) or (B, H, W)); every band of a galaxy on the same
            pixel grid (other cut-outs are refused).
        bands: the :class:`galprof.fitting.bands.Bands` (labels and wavelengths, in the
            order of the band axis).
        terms: {(component 1-based, name): terms}: 0 fixed, 1 the same in every band, N
            a Chebyshev polynomial of N terms in wavelength, K or ``"band"`` free in every
            band; parameters not named take :func:`default_terms`. A parameter held in
            ``Component.fixed`` is fixed whatever its terms.
        sigma, mask: as ``images`` (1-sigma noise [ADU]; non-zero = bad pixel).
        psf: one 2-D ePSF for every band, a list of K (one per band), or B lists of K.
        zeropoint, exptime: a number, (K,) per band or (B, K).
        staged: first fit with every Sersic index held at its start for at most
            ``stage_iterations_limit`` iterations, then release it (as :func:`galprof.fit`
            does for one luminous component; here for every model with a free index).
        perturbed_starts: after the fit, restart every galaxy twice near it (each
            component with a free Sersic index larger, steeper and brighter, then
            smaller, shallower and fainter in every band) and keep the lowest chi^2;
            None (default): for models with two or more luminous components, one with a
            free index (as :func:`galprof.fit`: bulge + disk).
        origin, convolution_box, pixel_scale, psf_oversampling, config, lm_settings,
            dtype, device, names: as for :func:`galprof.fit` (per galaxy).

    Returns:
        a :class:`MultiBandFitResult`.
    """
    n_bands = len(bands)
    data = _stack_bands(images, n_bands, "images")
    bsz, _, height, width = data.shape
    sigma_rows = _stack_bands(sigma, n_bands, "sigma")
    mask_rows = _stack_bands(mask, n_bands, "mask")
    for what, arr in (("sigma", sigma_rows), ("mask", mask_rows)):
        if arr is not None and arr.shape != data.shape:
            raise ModelError(f"{what}: shape {arr.shape} differs from the images' {data.shape}")
    declared = {(c - 1, name): count for (c, name), count in parameter_terms(model, terms, n_bands).items()}
    row_components = []
    for ci, comp in enumerate(model.components):
        values, fixed = {}, set(comp.fixed)
        for name, value in comp.values.items():
            what = f"component {ci + 1} ({comp.profile}) {name}"
            count = declared[(ci, name)]
            per_band = _band_array(value, bsz, n_bands, what)
            if count == 0:
                fixed.add(name)
            elif count < n_bands:  # start on the polynomial (a constant: the mean) through the given values
                per_band = bands.band_values(bands.coefficients(per_band, count))
            values[name] = per_band.reshape(-1)
        row_components.append(Component(comp.profile, values, fixed=frozenset(fixed), bounds=comp.bounds,
                                        skip_in_residual=comp.skip_in_residual))
    # constraints apply in every band: per-galaxy numbers repeat over each galaxy's rows
    galaxy_of_row = np.repeat(np.arange(bsz), n_bands)
    row_constraints = tuple(c.select(galaxy_of_row) if c.batch_size is not None else c
                            for c in model.constraints)
    row_model = Model(tuple(row_components), row_constraints)
    zp = _per_band_inputs(zeropoint, bsz, n_bands, "zeropoint").reshape(-1)
    et = _per_band_inputs(exptime, bsz, n_bands, "exptime").reshape(-1)
    row_names = None
    if names is not None:
        row_names = [f"{names[b]} [{label}]" for b in range(bsz) for label in bands.labels]
    setup = prepare_fit(row_model, data.reshape(bsz * n_bands, height, width),
                        sigma=None if sigma_rows is None else sigma_rows.reshape(bsz * n_bands, height, width),
                        mask=None if mask_rows is None else mask_rows.reshape(bsz * n_bands, height, width),
                        psf=_row_psfs(psf, bsz, n_bands), psf_oversampling=psf_oversampling, origin=origin,
                        zeropoint=zp, exptime=et, convolution_box=convolution_box, pixel_scale=pixel_scale,
                        dtype=dtype, device=device, names=row_names)
    layout = setup.layout
    free = list(layout.free_index)
    free_terms = []
    for i in free:
        entry = layout.entries[i]
        count = declared[(entry.component, entry.name)]
        if entry.role == "coupled" and 1 < count < n_bands:
            raise ModelError(f"component {entry.component + 1} {entry.name}: a polynomial in wavelength cannot "
                             "also be set through a two-component constraint; use 1 or 'band' terms for it")
        free_terms.append(count)
    band_map = BandMap(layout, free_terms, bands)
    n_free = len(free)

    work = torch.float64
    dev = setup.data.data.device
    fixed_rows = torch.as_tensor(setup.initial, dtype=work, device=dev)
    theta0 = layout.to_internal(fixed_rows).reshape(bsz, n_bands, n_free)
    natural0 = layout.free_coordinates(fixed_rows).reshape(bsz, n_bands, n_free)
    coef0 = band_map.initial(theta0, natural0, bands)
    functions = ModelFunctions(layout, fixed_rows, setup.frame, setup.psf, config, internal=True)
    band_offsets = torch.arange(n_bands, device=dev)

    def rows_of(coef: torch.Tensor, index: torch.Tensor):
        row_index = (index[:, None] * n_bands + band_offsets[None, :]).reshape(-1)
        theta = band_map.rows(coef.to(work), fixed_rows[row_index], row_index)
        return theta, row_index

    def render(coef: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        theta, row_index = rows_of(coef, index)
        image = functions.render(theta.reshape(row_index.shape[0], n_free).to(coef.dtype), row_index)
        return image.reshape(coef.shape[0], n_bands * height, width)

    def jacobian(coef: torch.Tensor, index: torch.Tensor):
        theta, row_index = rows_of(coef, index)
        model_rows, jac_rows = functions.jacobian(theta.reshape(row_index.shape[0], n_free).to(coef.dtype),
                                                  row_index)
        slope = band_map.jacobian(coef.to(work), theta, row_index).to(jac_rows.dtype)  # (b, K, F, C)
        b = coef.shape[0]
        jac = torch.einsum("bkpf,bkfc->bkpc", jac_rows.reshape(b, n_bands, height * width, n_free), slope)
        return (model_rows.reshape(b, n_bands * height, width),
                jac.reshape(b, n_bands * height, width, band_map.n_coefficients))

    natural_limits = layout.step_limits()  # (F,) on the host: no synchronisation per iteration
    log_scaled = torch.tensor([layout.entries[i].scale == "log" for i in free], device=dev)

    def step_limits(coef: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The trust region of :meth:`ParameterLayout.step_limits` on the coefficients: a
        shared or per-band coordinate's limit on theta (the tightest over the bands for a
        shared one); a polynomial's coefficients each a 1/N share of the natural limit
        (times the smallest band value for a log-scaled parameter)."""
        theta, row_index = rows_of(coef, index)
        b = coef.shape[0]
        per_row = layout.theta_step_limits(theta.reshape(b * n_bands, n_free), natural_limits, row_index)
        per_row = per_row.reshape(b, n_bands, n_free)
        natural = band_map.natural_values(coef.to(work)).abs().amin(1)  # (b, F)
        out = []
        for f, terms in enumerate(band_map.terms):
            if terms == 1:
                out.append(per_row[:, :, f].amin(1, keepdim=True))
            elif terms == n_bands:
                out.append(per_row[:, :, f])
            else:
                limit = float(natural_limits[f]) / terms
                scale = torch.where(log_scaled[f], natural[:, f], torch.ones_like(natural[:, f]))
                out.append((limit * scale)[:, None].expand(b, terms))
        return torch.cat(out, dim=1).to(coef.dtype)

    stacked_data = setup.data.data.reshape(bsz, n_bands * height, width)
    stacked_weight = setup.data.weight.reshape(bsz, n_bands * height, width)
    problem = BatchProblem(render, stacked_data, stacked_weight, jacobian)

    def solve(start: torch.Tensor, active: torch.Tensor, settings: LMSettings):
        """LM on the ``active`` coefficients (a (C,) bool mask), the others held at ``start``."""
        held = start.clone()
        columns = active.nonzero().flatten()

        def expand(sub: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            full = held[index].to(sub.dtype).clone()
            full[:, columns] = sub
            return full

        def jacobian_of(sub, index):
            model_images, jac = jacobian(expand(sub, index), index)
            return model_images, jac[..., columns]

        part = BatchProblem(lambda sub, index: render(expand(sub, index), index), stacked_data, stacked_weight,
                            jacobian_of)
        out = levenberg_marquardt(part, held[:, columns], settings, dtype, None,
                                  lambda sub, index: step_limits(expand(sub, index), index)[:, columns])
        result = held.clone()
        result[:, columns] = out.theta
        return result, out

    everything = torch.ones(band_map.n_coefficients, dtype=torch.bool, device=dev)
    # stage 1 (as for single-band models with one luminous component): every Sersic index
    # held at its start for a few iterations, so that sizes, fluxes and shapes settle
    # before n is released; from far starts the index otherwise runs along its
    # degeneracy with the size (GALFITM's multisim collapsed to R_e 0.05 px without it)
    index_columns = torch.zeros_like(everything)
    for f, i in enumerate(free):
        entry = layout.entries[i]
        profile = layout.model.components[entry.component].profile_class
        if entry.name == "n" and profile.kind != "sky":
            index_columns[band_map.offsets[f]:band_map.offsets[f + 1]] = True
    stage_limit = min(stage_iterations_limit, lm_settings.max_iterations)
    two_stages = staged and stage_limit > 0 and bool(index_columns.any()) and bool((~index_columns).any())
    first_settings = replace(lm_settings, max_iterations=stage_limit, ftol=BANDS_STAGE_FTOL, broyden_updates=0)

    def staged_solve(start: torch.Tensor):
        """(coefficients, LM outcome with the iterations of both stages) from ``start``."""
        stage_iterations = torch.zeros(bsz, dtype=torch.long, device=dev)
        if two_stages:
            start, first = solve(start, ~index_columns, first_settings)
            stage_iterations = first.iterations
        found, outcome = solve(start, everything, lm_settings)
        return found, replace(outcome, iterations=outcome.iterations + stage_iterations)

    coef = coef0.to(work)
    iterations = torch.zeros(bsz, dtype=torch.long, device=dev)
    optimiser_converged = torch.ones(bsz, dtype=torch.bool, device=dev)  # nothing free: nothing to optimise
    if band_map.n_coefficients:
        coef, outcome = staged_solve(coef)
        iterations, optimiser_converged = outcome.iterations, outcome.converged
        if perturbed_starts is None:
            perturbed_starts = has_perturbed_starts(layout)
        restart_starts = []
        if perturbed_starts:  # bulge + disk: nearby minima that no local step leaves
            theta_fit, _ = rows_of(coef, torch.arange(bsz, device=dev))
            fitted = layout.to_user(theta_fit.reshape(bsz * n_bands, n_free), fixed_rows).cpu().numpy()
            # nested components (a bulge in its disk) in any band: perturbed in every band
            which = restart_components(layout, fitted).reshape(bsz, n_bands, -1).any(1)
            if which.any():
                starts = starts_near_fit(layout, fitted, np.arange(bsz * n_bands), np.repeat(which, n_bands, 0))
                restart_starts = np.split(starts, starts.shape[0] // (bsz * n_bands))
        if restart_starts:
            best_chi2 = outcome.chi2
            for start in restart_starts:
                start_rows = torch.as_tensor(start, dtype=work, device=dev)
                start_coef = band_map.initial(layout.to_internal(start_rows).reshape(bsz, n_bands, n_free),
                                              layout.free_coordinates(start_rows).reshape(bsz, n_bands, n_free), bands)
                # staged as the first fit: from these starts, n released at once runs along its
                # valley with R_e and stops far from the minimum (bench/RESULTS.md, issue 22)
                new_coef, new = staged_solve(start_coef)
                better = new.chi2 < best_chi2 - torch.clamp(1e-6 * best_chi2.abs(), min=1e-9)
                coef = torch.where(better[:, None], new_coef, coef)
                best_chi2 = torch.where(better, new.chi2, best_chi2)
                optimiser_converged = torch.where(better, new.converged, optimiser_converged)
                iterations = iterations + new.iterations
    index = torch.arange(bsz, device=dev)

    # values, images and chi^2 in every band
    theta, row_index = rows_of(coef, index)
    theta_flat = theta.reshape(bsz * n_bands, n_free)
    with torch.no_grad():
        user_rows = layout.to_user(theta_flat, fixed_rows)
        parts = functions.render_parts(theta_flat.to(dtype), row_index)
        model_rows = parts.total()
        signal = component_signal(parts.unit_images, parts.amplitudes, setup.data.weight)
    raw_values = user_rows.cpu().numpy()
    values = layout.canonicalise(raw_values).reshape(bsz, n_bands, -1)
    model_np = model_rows.to(torch.float64).cpu().numpy().reshape(bsz, n_bands, height, width)
    weight = setup.data.weight.to(torch.float64).cpu().numpy().reshape(bsz, n_bands, height, width)
    clean = setup.data.data.to(torch.float64).cpu().numpy().reshape(bsz, n_bands, height, width)
    chi2_band = (((clean - model_np) * weight) ** 2).sum((-1, -2))
    chi2 = chi2_band.sum(-1)
    ndof = setup.data.n_pixels.cpu().numpy().reshape(bsz, n_bands).sum(-1) - band_map.n_coefficients
    chi2_nu = chi2 / np.maximum(ndof, 1)

    # covariance of the coefficients, and errors of every band value
    _, jac = problem.residuals_and_jacobian(coef.to(dtype), index)
    estimate = covariance_estimate(jac)
    cov = estimate.covariance.to(work)
    slope_rows = band_map.jacobian(coef, theta)  # (B, K, F, C)
    value_slope = layout.value_jacobian(theta_flat, fixed_rows, True).reshape(bsz, n_bands, layout.n_params,
                                                                                n_free)
    g = torch.einsum("bkpf,bkfc->bkpc", value_slope.to(work), slope_rows)  # d values / d coefficients
    # of the reported (canonical: q <= 1) values
    n_coef = band_map.n_coefficients
    g = layout.canonical_slopes(raw_values, g.reshape(bsz * n_bands, layout.n_params, n_coef))
    g = g.reshape(bsz, n_bands, layout.n_params, n_coef)
    cov_clean = torch.where(torch.isnan(cov), torch.zeros_like(cov), cov)
    variances = torch.einsum("bkpc,bcd,bkpd->bkp", g, cov_clean, g)
    unknown = ((g != 0) & estimate.undefined.to(g.device)[:, None, None, :]).any(-1)
    errors = torch.sqrt(variances.clamp(min=0)).masked_fill(unknown, float("nan")).cpu().numpy()

    # Chebyshev coefficients of every parameter's band values (GALFITM's restart form)
    basis_inverse = np.linalg.inv(bands.chebyshev_basis())  # values (.., K) @ inv -> coefficients
    coefficients = np.einsum("bkp,km->bpm", values, basis_inverse)
    coefficient_errors = _coefficient_errors(g, cov_clean, basis_inverse)

    # flags: a component vanished in every band, a centre off the region, a bound
    components = layout.model.components
    lit = [ci for ci, comp in enumerate(components) if comp.profile_class.kind != "sky"]
    varying_components = {layout.entries[i].component for i in layout.varying_index}
    tested = torch.tensor([ci in varying_components for ci in lit], dtype=torch.bool)
    vanished_rows = vanished_components(signal, torch.ones(bsz * n_bands, device=signal.device), tested)
    vanished = vanished_rows.reshape(bsz, n_bands, -1).all(1).cpu().numpy()
    n_params = layout.n_params
    degenerate = np.zeros((bsz, n_params), dtype=bool)
    for k, ci in enumerate(lit):
        amplitude = components[ci].profile_class.amplitude
        if amplitude is not None:
            degenerate[:, layout.index(ci, amplitude)] = vanished[:, k]
    flat_values = values.reshape(bsz * n_bands, -1)
    x_cols = [i for i in layout.varying_index if layout.entries[i].name == "x"]
    y_cols = [i for i in layout.varying_index if layout.entries[i].name == "y"]
    x_low, y_low = setup.frame.x_min - 0.5, setup.frame.y_min - 0.5
    off_rows = centres_off_region(flat_values, x_cols, y_cols,
                                  np.tile([x_low, x_low + width], (bsz * n_bands, 1)),
                                  np.tile([y_low, y_low + height], (bsz * n_bands, 1)))
    off_region = off_rows.reshape(bsz, n_bands, -1).any(1)
    bound_rows = layout.at_bound(theta_flat).cpu().numpy().reshape(bsz, n_bands, n_free).any(1)
    on_bound = np.zeros((bsz, n_params), dtype=bool)
    on_bound[:, free] = bound_rows
    null = estimate.degenerate.cpu().numpy()  # (B, C): coefficients spanning a null direction
    for f, i in enumerate(free):
        start, stop = band_map.offsets[f], band_map.offsets[f + 1]
        degenerate[:, i] |= null[:, start:stop].any(-1)
    names_out = tuple((c + 1, n) for c, n in layout.names)
    optimiser_converged = optimiser_converged.cpu().numpy() & np.isfinite(chi2)
    finite = np.isfinite(values).all(1)  # a non-finite value in any band fails the galaxy
    status = fit_statuses(names_out, np.where(finite, values[:, 0, :], np.nan), chi2, optimiser_converged,
                          degenerate, off_region, on_bound)
    term_array = np.array([declared[(c, n)] for c, n in layout.names])
    return MultiBandFitResult(
        bands=bands, names=names_out, terms=term_array, values=values, errors=errors,
        coefficients=coefficients, coefficient_errors=coefficient_errors, chi2=chi2, chi2_band=chi2_band,
        ndof=ndof, chi2_nu=chi2_nu, iterations=iterations.cpu().numpy(), status=status,
        converged=status == CONVERGED, covariance=cov.cpu().numpy(),
        covariance_flag=estimate.flag.cpu().numpy(), model_images=model_np,
        residual_images=data - model_np, initial_values=setup.initial.reshape(bsz, n_bands, -1))


def _coefficient_errors(value_slope: torch.Tensor, cov: torch.Tensor, basis_inverse: np.ndarray) -> np.ndarray:
    """(B, P, K) 1-sigma errors of the Chebyshev coefficients of every parameter's band
    values: coefficients = values @ basis_inverse, a linear map of the coefficients'
    covariance ``cov`` (B, C, C) through ``value_slope`` (B, K, P, C)."""
    inverse = torch.as_tensor(basis_inverse, dtype=value_slope.dtype, device=value_slope.device)  # (K, M)
    g = torch.einsum("bkpc,km->bpmc", value_slope, inverse)
    variances = torch.einsum("bpmc,bcd,bpmd->bpm", g, cov, g)
    return torch.sqrt(variances.clamp(min=0)).cpu().numpy()
