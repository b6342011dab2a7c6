"""The header of imfit's best-fit parameter file, and the run inputs recorded in it.

imfit starts ``bestfit_parameters_imfit.dat`` with these lines, which scripts in the wild
parse (``#   Reduced value:`` above all)::

    # Best-fit model results for imfit 1.8.0 (OpenMP-enabled)
    # Generated on Sat Apr  9 01:05:13 2022 by the following command:
    #    imfit image.fits -c config.dat --mask mask.fits

    # Results of fit:
    #   Algorithm: Levenberg-Marquardt: status = 1 -- SUCCESS: Convergence in fit-statistic value.
    #   Fit statistic: chi-squared (data-based errors)
    #   Best-fit value: 66932.392040
    #   Reduced value: 1.055366
    #   AIC: 66946.393806
    #   BIC: 67009.795665

:func:`bestfit_header_lines` writes the same lines, in the same format, for a galprof fit,
plus two comment lines of galprof's own (where the errors come from, and a JSON record
of the run's input files that :func:`run_inputs` reads back for plots). The file stays a
valid imfit configuration: every header line is a comment.
"""

from __future__ import annotations

import json
import time

#: imfit's names of its fit statistics (``Fit statistic:`` line)
STATISTIC_NAMES = {None: "chi-squared (data-based errors)", "noise": "chi-squared (user-supplied errors)",
                   "model-chi2": "chi-squared (model-based errors)", "cash": "Cash statistic",
                   "poisson-mlr": "Poisson-MLR statistic"}

_INPUTS_PREFIX = "# galprof inputs: "


def bestfit_header_lines(*, program: str, command: str, converged: bool, iterations: int, statistic_name: str,
                         best: float, reduced: float, aic: float, bic: float, inputs: dict | None = None,
                         errors_note: str = "covariance matrix", date: str | None = None,
                         fit_status: str | None = None) -> list[str]:
    """The header of a best-fit file, as complete lines (``#`` included, blank lines as "").

    Args:
        program: what made the fit (``galprof 0.1.0``), in imfit's first line.
        command: the command line, in imfit's third line.
        converged, iterations: the optimiser's state (imfit's ``Algorithm:`` line: its
            stopping test was met, or the iteration limit reached).
        statistic_name: imfit's name of the statistic (:data:`STATISTIC_NAMES`).
        best, reduced: the statistic at the best fit and per degree of freedom.
        aic, bic: Akaike and Bayesian information criteria.
        inputs: the run's input files (image, psf, mask, noise, ...), recorded as JSON.
        errors_note: where the ``# +/-`` errors come from.
        date: the date in imfit's format (``time.asctime()``); default now.
        fit_status: galprof's STATUS of the fit (``converged``, ``degenerate: 2_mag``, ...;
            see :mod:`galprof.fitting.result`), written as a ``#   Status:`` line after
            the ``Algorithm:`` line; None for none.
    """
    status = ("status = 1 -- SUCCESS: Convergence in fit-statistic value." if converged
              else f"status = 5 -- maximum number of iterations ({iterations}) reached")
    lines = [f"# Best-fit model results for {program}",
             f"# Generated on {date or time.asctime()} by the following command:",
             f"#    {command}"]
    if inputs:
        lines.append(_INPUTS_PREFIX + json.dumps({k: v for k, v in inputs.items() if v is not None}, sort_keys=True))
    lines.append(f"# Errors: from the {errors_note}")
    lines += ["",
              "# Results of fit:",
              f"#   Algorithm: Levenberg-Marquardt: {status}"]
    if fit_status is not None:
        lines.append(f"#   Status: {fit_status}")
    lines += [f"#   Fit statistic: {statistic_name}",
              f"#   Best-fit value: {best:.6f}",
              f"#   Reduced value: {reduced:.6f}",
              f"#   AIC: {aic:.6f}",
              f"#   BIC: {bic:.6f}"]
    return lines


def run_inputs(text: str) -> dict:
    """The input files a galprof best-fit file records (``# galprof inputs: {...}``), or {}."""
    for line in text.splitlines():
        if line.startswith(_INPUTS_PREFIX):
            try:
                found = json.loads(line[len(_INPUTS_PREFIX):])
            except ValueError:
                return {}
            return found if isinstance(found, dict) else {}
    return {}


def fit_summary(text: str) -> dict:
    """What a best-fit header says of the fit (imfit's or galprof's): ``reduced`` (the
    ``Reduced value:``, NaN when absent), ``converged`` (True for imfit's ``status =
    1..4 -- SUCCESS``, False for another status, None without an ``Algorithm:`` line)
    and ``status`` (galprof's ``Status:`` line, None without one)."""
    reduced, converged, status = float("nan"), None, None
    for line in text.splitlines():
        body = line.lstrip("#").strip()
        if body.startswith("Reduced value:"):
            try:
                reduced = float(body.split(":", 1)[1])
            except ValueError:
                pass
        elif body.startswith("Algorithm:"):
            converged = "SUCCESS" in body
        elif body.startswith("Status:"):
            status = body.split(":", 1)[1].strip()
    return {"reduced": reduced, "converged": converged, "status": status}


__all__ = ["STATISTIC_NAMES", "bestfit_header_lines", "fit_summary", "run_inputs"]
