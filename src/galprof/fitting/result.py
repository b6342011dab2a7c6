"""The value a fit returns, and the STATUS vocabulary that describes each galaxy's fit.

Nothing is stored on model objects.

STATUS (one string per galaxy, the same in ``FitResult.status``, ``galprof fit``'s
console output and fit.log, the image block's ``STATUS`` card and the results table's
``STATUS`` column; :mod:`galprof.io.results` re-exports it). Details name parameters as
``<component>_<name>`` (components 1-based). In order of precedence:

* ``failed: <reason>`` (:data:`FAILED`): the fit ended with non-finite values (or, in
  a batch run, the galaxy could not be read or fitted);
* ``degenerate: 2_mag`` (:data:`DEGENERATE`): the data do not determine these
  parameters: the amplitude of each component that vanished (its signal fell below the
  thresholds of :mod:`galprof.fitting.flags`), then the parameters spanning a singular
  or ill-conditioned covariance's null direction (``1_mag,2_mag`` for two identical
  components);
* ``off the region: 2_x,2_y`` (:data:`OFF_REGION`): a varying centre left the fit
  region (or sits on its edge);
* ``max iterations`` (:data:`MAX_ITERATIONS`): the optimiser stopped at its iteration
  limit;
* ``hit a bound: 1_n,2_r_s`` (:data:`HIT_BOUND`): parameters on a bound or a
  constraint's limit;
* ``converged`` (:data:`CONVERGED`): none of the above.
* ``not fitted: <why>`` (:data:`NOT_FITTED`): only in batch tables (GALFIT's ``P) 1..3``).

``FitResult.converged`` is True exactly where the status is ``converged``: no flagged fit
is ever called converged. The errors of a flagged fit are NaN where undefined, with
``covariance_flag`` set (see :class:`FitResult`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import Model
from .covariance import correlation_matrix

#: STATUS vocabulary: exact values, and prefixes followed by details (see the module docstring)
CONVERGED = "converged"
MAX_ITERATIONS = "max iterations"
HIT_BOUND = "hit a bound: "
DEGENERATE = "degenerate: "
OFF_REGION = "off the region: "
NOT_FITTED = "not fitted: "
FAILED = "failed: "
#: the details of a fit that ended with non-finite values
NON_FINITE = "the fit ended with non-finite values"


def fit_statuses(names, values, chi2, optimiser_converged, degenerate, off_region, on_bound) -> np.ndarray:
    """(B,) STATUS strings from a batch's flags (see the module docstring).

    Args:
        names: ((component, 1-based), name) of each of the P columns.
        values: (B, P) best-fit values; chi2: (B,) fit statistic.
        optimiser_converged: (B,) bool, the optimiser's stopping test was met.
        degenerate, off_region, on_bound: (B, P) bool flags (see :class:`FitResult`).
    """
    labels = np.array([f"{c}_{n}" for c, n in names], dtype=object)
    finite = np.isfinite(np.asarray(chi2)) & np.isfinite(np.asarray(values)).all(-1)
    out = []
    for b in range(len(finite)):  # string formatting only: every test above is batched
        if not finite[b]:
            out.append(FAILED + NON_FINITE)
        elif degenerate[b].any():
            out.append(DEGENERATE + ",".join(labels[degenerate[b]]))
        elif off_region[b].any():
            out.append(OFF_REGION + ",".join(labels[off_region[b]]))
        elif not optimiser_converged[b]:
            out.append(MAX_ITERATIONS)
        elif on_bound[b].any():
            out.append(HIT_BOUND + ",".join(labels[on_bound[b]]))
        else:
            out.append(CONVERGED)
    return np.array(out, dtype=object)


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
        at_bound: (B, P) bool, parameters flagged as GALFIT flags them with ``*value*``:
            on a bound or a constraint's limit, with an undefined error, or named by a
            ``degenerate`` or ``off the region`` status.
        chi2, ndof, chi2_nu: (B,) chi^2, degrees of freedom (pixels - free), chi^2/ndof.
            With another fit statistic (``fit(..., statistic=...)``) ``chi2`` holds that
            statistic's value and ``chi2_nu`` its value per degree of freedom.
        iterations: (B,) optimiser iterations (LM: Jacobian evaluations).
        converged: (B,) bool, the status is ``converged``: the optimiser's test was met
            and nothing is flagged (see ``status``).
        model_images: (B, H, W) best-fit model over the fit region.
        residual_images: (B, H, W) data - model (masked pixels hold data - model too).
        initial_values: (B, P) the starting values.
        errors_scaled: (B, P) ``errors`` times sqrt(chi2_nu): the covariance errors if
            sigma were wrong by a constant factor (see :mod:`galprof.uncertainty`).
        parameter_covariance: (B, P, P) covariance of all P parameters in user units
            (rows and columns of fixed parameters 0; tied and coupled ones propagated);
            NaN where undefined. :meth:`correlation` gives the correlation matrix.
        covariance_flag: (B,) bool, some errors are undefined (NaN): the normal matrix
            J^T W J was singular or ill-conditioned (all errors NaN), or some coordinates
            were held out of it (their errors NaN; the others' are the covariance with
            them held): those of a vanished component, a centre off the region, or a
            parameter on a bound.
        condition_number: (B,) condition number of the unit-diagonal normal matrix (of
            the coordinates not held).
        status: (B,) str, the STATUS of each galaxy (see the module docstring).
        optimiser_converged: (B,) bool, the optimiser's own stopping test was met
            (``converged`` also requires that nothing is flagged).
        degenerate: (B, P) bool, the parameters a ``degenerate`` status names.
        off_region: (B, P) bool, varying centres off the fit region (or on its edge).
        on_bound: (B, P) bool, varying parameters on a bound or a constraint's limit (a
            coupled range at its limit marks both members).
        signal: (B, C) each component's matched-filter signal [sigma] (NaN for sky
            components; see :mod:`galprof.fitting.flags`).
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
    status: np.ndarray | None = None
    optimiser_converged: np.ndarray | None = None
    degenerate: np.ndarray | None = None
    off_region: np.ndarray | None = None
    on_bound: np.ndarray | None = None
    signal: np.ndarray | None = None

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
        """A plain-text parameter table of one galaxy (value +/- error, [fixed], {constrained},
        *flagged*), then chi^2, iterations and the STATUS."""
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
        status = self.status[galaxy] if self.status is not None else (CONVERGED if self.converged[galaxy]
                                                                      else MAX_ITERATIONS)
        lines.append(f"  chi2 = {self.chi2[galaxy]:.6g}  ndof = {self.ndof[galaxy]}"
                     f"  chi2/nu = {self.chi2_nu[galaxy]:.5g}  iterations = {self.iterations[galaxy]}"
                     f"  status = {status}")
        return "\n".join(lines)
