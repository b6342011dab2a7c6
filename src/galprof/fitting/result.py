"""The value a fit returns. Nothing is stored on model objects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Model
from .covariance import correlation_matrix


@dataclass(frozen=True)
class FitResult:
    """Results of fitting a batch of B galaxies.

    Parameters are in user units (see :mod:`galprof.conventions`) and in report form:
    q <= 1 and PA in (-90, 90] for elliptical components.

    Attributes:
        model: the model description that was fitted.
        names: ((component number, 1-based), parameter name) for each of the P columns.
        values: (B, P) best-fit values (fixed parameters hold their input values).
        errors: (B, P) 1-sigma errors from the covariance (0 for fixed, NaN if undefined).
        free: (P,) bool, which columns were free (not fixed, not set by a constraint).
        constrained: (P,) bool, columns that follow another parameter through a tie or
            a coupled range (see :mod:`galprof.constraints`); their errors are propagated.
        covariance: (B, F, F) covariance of the optimiser's coordinates in user units:
            the free parameters, then (in layout order) the difference or ratio of each
            coupled range. Without constraints these are exactly the ``free`` columns.
        at_bound: (B, P) bool, parameters that ended on a bound or a constraint's limit,
            or whose error is undefined.
        chi2, ndof, chi2_nu: (B,) chi^2, degrees of freedom (pixels - free), chi^2/ndof.
            With another fit statistic (``fit(..., statistic=...)``) ``chi2`` holds that
            statistic's value and ``chi2_nu`` its value per degree of freedom.
        iterations: (B,) optimiser iterations (LM: Jacobian evaluations).
        converged: (B,) bool.
        model_images: (B, H, W) best-fit model over the fit region.
        residual_images: (B, H, W) data - model (masked pixels hold data - model too).
        initial_values: (B, P) the starting values.
        errors_scaled: (B, P) ``errors`` times sqrt(chi2_nu): the covariance errors if
            sigma were wrong by a constant factor (see :mod:`galprof.uncertainty`).
        parameter_covariance: (B, P, P) covariance of all P parameters in user units
            (rows and columns of fixed parameters 0; tied and coupled ones propagated);
            NaN where undefined. :meth:`correlation` gives the correlation matrix.
        covariance_flag: (B,) bool, the normal matrix J^T W J was singular or
            ill-conditioned (errors NaN).
        condition_number: (B,) condition number of the unit-diagonal normal matrix.
    """

    model: Model
    names: tuple
    values: np.ndarray
    errors: np.ndarray
    free: np.ndarray
    constrained: np.ndarray
    covariance: np.ndarray
    at_bound: np.ndarray
    chi2: np.ndarray
    ndof: np.ndarray
    chi2_nu: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    model_images: np.ndarray
    residual_images: np.ndarray
    initial_values: np.ndarray
    errors_scaled: np.ndarray | None = None
    parameter_covariance: np.ndarray | None = None
    covariance_flag: np.ndarray | None = None
    condition_number: np.ndarray | None = None

    @property
    def batch_size(self) -> int:
        return self.values.shape[0]

    def column(self, component: int, name: str) -> int:
        """Column of parameter ``name`` of component ``component`` (1-based)."""
        try:
            return self.names.index((component, name))
        except ValueError:
            raise KeyError(f"no parameter {name!r} in component {component}") from None

    def value(self, component: int, name: str) -> np.ndarray:
        """(B,) best-fit values of one parameter; ``component`` is 1-based."""
        return self.values[:, self.column(component, name)]

    def error(self, component: int, name: str) -> np.ndarray:
        """(B,) 1-sigma errors of one parameter; ``component`` is 1-based."""
        return self.errors[:, self.column(component, name)]

    def correlation(self) -> np.ndarray:
        """(B, P, P) correlation matrix of all parameters (fixed ones: 0 off the diagonal)."""
        return correlation_matrix(self.parameter_covariance)

    def component_values(self, galaxy: int = 0) -> list[dict[str, float]]:
        """Best-fit values of one galaxy as a list (one dict per component)."""
        out = [dict() for _ in self.model.components]
        for j, (comp, name) in enumerate(self.names):
            out[comp - 1][name] = float(self.values[galaxy, j])
        return out

    def table(self, galaxy: int = 0) -> str:
        """A plain-text parameter table of one galaxy (value +/- error, [fixed], {constrained})."""
        lines = []
        for j, (comp, name) in enumerate(self.names):
            profile = self.model.components[comp - 1].profile
            v = self.values[galaxy, j]
            if self.constrained[j]:
                text = f"{{{v:.4f}}} +/- {self.errors[galaxy, j]:.4f}"
            elif not self.free[j]:
                text = f"[{v:.4f}]"
            else:
                flag = "*" if (self.at_bound[galaxy, j] or not np.isfinite(self.errors[galaxy, j])) else ""
                text = f"{flag}{v:.4f}{flag} +/- {self.errors[galaxy, j]:.4f}"
            lines.append(f"  {comp:>2d} {profile:<9s} {name:<5s} {text}")
        lines.append(f"  chi2 = {self.chi2[galaxy]:.6g}  ndof = {self.ndof[galaxy]}  chi2/nu = {self.chi2_nu[galaxy]:.5g}"
                     f"  iterations = {self.iterations[galaxy]}  converged = {bool(self.converged[galaxy])}")
        return "\n".join(lines)
