"""Catalog comparison: two results tables (or galprof against a reference catalog such
as GALFIT's results) matched by id, parameter by parameter.

For each compared parameter: a scatter plot of B against A with the one-to-one line,
and the distribution of the differences with their median and robust scatter
(1.4826 x the median absolute deviation). Differences are

* fractional, (B - A) / A, for sizes and the Sersic index (columns ending in ``_RE``,
  ``_RS``, ``_FWHM``, ``_N``; the usual way size agreement is quoted);
* B - A, wrapped into (-90, 90], for position angles (``_PA``: a PA is defined modulo
  180 degrees);
* B - A otherwise (magnitudes, axis ratios, positions, sky).

Per-band columns of multi-band tables (``1_MAG_g``, ``1_PA_r``: ``<k>_<KEY>_<band>``,
the bands read from the table's ``<k>_MAG_<band>`` and ``<k>_SKY_<band>`` columns) are
compared like their single-band columns: the kind follows the KEY.

Outliers are the rows whose difference lies more than ``outlier_sigma`` robust scatters
from the median. Rows whose ``STATUS`` starts with ``failed`` in either table, or with a
non-finite value, are left out of that parameter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure

from . import style
from .sources import NOT_VALUES, PlotError, parameter_key, read_results_table, robust_sigma, table_bands, table_cell

__all__ = ["Comparison", "ParameterComparison", "compare_figure", "compare_tables", "format_summary",
           "parse_column_map"]

_FRACTIONAL = ("_RE", "_RS", "_FWHM", "_N")


@dataclass(frozen=True)
class ParameterComparison:
    """One parameter: matched finite values, their differences and statistics.

    Attributes:
        column_a, column_b: the columns compared.
        kind: ``fractional`` ((B - A) / A), ``angle`` (B - A wrapped to (-90, 90] deg)
            or ``difference`` (B - A).
        ids, a, b, diff: (N,) matched rows.
        median, scatter: median and robust scatter of ``diff``.
        outliers: indices into ``ids`` of the outliers, largest |diff - median| first.
    """

    column_a: str
    column_b: str
    kind: str
    ids: np.ndarray
    a: np.ndarray
    b: np.ndarray
    diff: np.ndarray
    median: float
    scatter: float
    outliers: np.ndarray

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def label(self) -> str:
        return self.describe()

    def describe(self, labels=("A", "B")) -> str:
        """The difference as text, e.g. ``(B − A) / A``."""
        a, b = labels
        return {"fractional": f"({b} − {a}) / {a}", "angle": f"{b} − {a} [deg]", "difference": f"{b} − {a}"}[self.kind]


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare_tables`."""

    labels: tuple
    n_a: int
    n_b: int
    n_matched: int
    parameters: tuple
    notes: tuple = field(default=())


def parse_column_map(items) -> dict[str, str]:
    """``["1_RE=re_galfit", ...]`` (A's column = B's column) -> dict."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise PlotError(f"column map entry {item!r} is not COLUMN_A=COLUMN_B")
        left, right = item.split("=", 1)
        out[left.strip()] = right.strip()
    return out


def _kind(column: str, bands=()) -> str:
    """``angle``, ``fractional`` or ``difference`` from a column's KEY (its band, one of
    ``bands``, left out)."""
    name = parameter_key(column, bands).upper()
    if name.endswith("_PA"):
        return "angle"
    if name.endswith(_FRACTIONAL):
        return "fractional"
    return "difference"


def _numeric(table, name) -> np.ndarray:
    column = table[name]
    try:
        values = np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)
    except (TypeError, ValueError):
        raise PlotError(f"column {name!r} is not numeric") from None
    return np.asarray(values, dtype=float)


def _ids(table, column, where) -> list[str]:
    if column not in table.colnames:
        raise PlotError(f"{where}: no id column {column!r} (columns: {', '.join(table.colnames[:15])})")
    return [str(table_cell(v)).strip() for v in table[column]]


def _failed(table) -> np.ndarray:
    if "STATUS" not in table.colnames:
        return np.zeros(len(table), dtype=bool)
    return np.array([str(table_cell(s) or "").startswith("failed") for s in table["STATUS"]])


def default_columns(table_a, table_b, column_map) -> list[tuple[str, str]]:
    """Parameter columns (``<k>_<KEY>``, not errors) present in both tables that vary in
    A (fixed parameters are left out), plus every mapped pair."""
    pairs = []
    for name in table_a.colnames:
        if not re.fullmatch(r"\d+_\w[\w.+-]*", name) or any(m in name for m in NOT_VALUES):
            continue
        other = column_map.get(name, name)
        if other not in table_b.colnames:
            continue
        try:
            values = _numeric(table_a, name)
        except PlotError:
            continue
        finite = values[np.isfinite(values)]
        if finite.size and np.ptp(finite) > 0:
            pairs.append((name, other))
    for left, right in column_map.items():
        if (left, right) not in pairs and left in table_a.colnames and right in table_b.colnames:
            pairs.append((left, right))
    return pairs


def compare_tables(a, b, *, columns=None, column_map=None, id_column: str = "id", id_column_b: str | None = None,
                   labels=("A", "B"), outlier_sigma: float = 5.0) -> Comparison:
    """Match two tables by id and compare their parameters.

    Args:
        a, b: results tables (paths or astropy Tables).
        columns: A's columns to compare (default: :func:`default_columns`).
        column_map: {A's column: B's column} for columns named differently in B (a
            reference catalog), e.g. ``{"1_RE": "re_galfit"}``.
        id_column, id_column_b: the id columns of A and B (B's defaults to A's).
        labels: names of A and B on the figure.
        outlier_sigma: outliers lie beyond this many robust scatters from the median.
    """
    names = []
    tables = []
    for t in (a, b):
        if isinstance(t, (str, bytes)) or hasattr(t, "__fspath__"):
            names.append(str(t))
            tables.append(read_results_table(t))
        else:
            names.append("table")
            tables.append(t)
    ta, tb = tables
    column_map = dict(column_map or {})
    ids_a = _ids(ta, id_column, names[0])
    ids_b = _ids(tb, id_column_b or id_column, names[1])
    if len(set(ids_b)) != len(ids_b):
        raise PlotError(f"{names[1]}: ids are not unique")
    where_b = {gid: k for k, gid in enumerate(ids_b)}
    ia = np.array([k for k, gid in enumerate(ids_a) if gid in where_b], dtype=int)
    ib = np.array([where_b[ids_a[k]] for k in ia], dtype=int)
    if columns:
        pairs = []
        for name in columns:
            other = column_map.get(name, name)
            for tname, table, col in ((names[0], ta, name), (names[1], tb, other)):
                if col not in table.colnames:
                    raise PlotError(f"{tname}: no column {col!r}")
            pairs.append((name, other))
    else:
        pairs = default_columns(ta, tb, column_map)
    if not pairs:
        raise PlotError(f"{names[0]} and {names[1]} have no parameter column in common (map names with "
                        "--map COLUMN_A=COLUMN_B)")
    ok = ~(_failed(ta)[ia] | _failed(tb)[ib]) if ia.size else np.zeros(0, dtype=bool)
    matched_ids = np.array([ids_a[k] for k in ia], dtype=object)
    results = []
    bands = table_bands(ta.colnames)
    for name, other in pairs:
        va = _numeric(ta, name)[ia]
        vb = _numeric(tb, other)[ib]
        kind = _kind(name, bands)
        keep = ok & np.isfinite(va) & np.isfinite(vb)
        if kind == "fractional":
            keep &= va != 0
        va, vb, gids = va[keep], vb[keep], matched_ids[keep]
        if kind == "fractional":
            diff = (vb - va) / va
        elif kind == "angle":
            diff = (vb - va + 90.0) % 180.0 - 90.0
            diff = np.where(diff == -90.0, 90.0, diff)
        else:
            diff = vb - va
        median = float(np.median(diff)) if diff.size else math.nan
        scatter = robust_sigma(diff)
        if diff.size and np.isfinite(scatter):
            distance = np.abs(diff - median)
            limit = outlier_sigma * scatter if scatter > 0 else 0.0
            outliers = np.nonzero(distance > limit)[0] if scatter > 0 else np.nonzero(distance > 0)[0]
            outliers = outliers[np.argsort(-distance[outliers])]
        else:
            outliers = np.zeros(0, dtype=int)
        results.append(ParameterComparison(name, other, kind, gids, va, vb, diff, median, scatter, outliers))
    return Comparison(tuple(labels), len(ta), len(tb), int(ia.size), tuple(results))


def format_summary(comparison: Comparison, *, max_outliers: int = 10) -> str:
    """The printed summary: matched rows, per-parameter N, median, robust scatter and
    outliers."""
    la, lb = comparison.labels
    lines = [f"A = {la} ({comparison.n_a} rows), B = {lb} ({comparison.n_b} rows), {comparison.n_matched} matched "
             "by id",
             f"{'parameter':<22s} {'N':>6s} {'quantity':<13s} {'median':>11s} {'scatter':>11s} {'outliers':>8s}"]
    for p in comparison.parameters:
        name = p.column_a if p.column_a == p.column_b else f"{p.column_a}/{p.column_b}"
        lines.append(f"{name:<22s} {p.n:>6d} {p.label:<13s} {p.median:>11.4g} {p.scatter:>11.4g} "
                     f"{p.outliers.size:>8d}")
    for p in comparison.parameters:
        if p.outliers.size:
            shown = ", ".join(f"{p.ids[k]} ({p.a[k]:.4g} vs {p.b[k]:.4g})" for k in p.outliers[:max_outliers])
            more = f" and {p.outliers.size - max_outliers} more" if p.outliers.size > max_outliers else ""
            lines.append(f"outliers in {p.column_a}: {shown}{more}")
    return "\n".join(lines)


def compare_figure(comparison: Comparison, *, dpi: float = 150, columns_per_row: int = 4) -> Figure:
    """Per parameter: B against A with the one-to-one line (outliers in red) above the
    histogram of the differences (median: solid line; +-1 robust scatter: dashed)."""
    params = comparison.parameters
    n = len(params)
    ncol = min(n, columns_per_row)
    nrow = int(math.ceil(n / ncol))
    cell_w, scat_h, hist_h = 2.15, 2.0, 1.25
    fig = Figure(figsize=(ncol * cell_w + 0.3, nrow * (scat_h + hist_h + 0.55) + 0.35), dpi=dpi,
                 layout="constrained")
    grid = fig.add_gridspec(2 * nrow, ncol, height_ratios=[scat_h, hist_h] * nrow)
    la, lb = comparison.labels
    for k, p in enumerate(params):
        r, c = divmod(k, ncol)
        ax = fig.add_subplot(grid[2 * r, c])
        hx = fig.add_subplot(grid[2 * r + 1, c])
        ok = np.ones(p.n, dtype=bool)
        ok[p.outliers] = False
        ax.scatter(p.a[ok], p.b[ok], s=5, color="black", alpha=0.6, linewidths=0, gid="points")
        if p.outliers.size:
            ax.scatter(p.a[p.outliers], p.b[p.outliers], s=9, color="#d62728", linewidths=0, gid="outliers",
                       label=f"{p.outliers.size} outliers")
            ax.legend(fontsize=style.SMALL - 1, loc="upper left", frameon=False, handletextpad=0.2)
        if p.n:
            lo = float(min(p.a.min(), p.b.min()))
            hi = float(max(p.a.max(), p.b.max()))
            pad = 0.05 * (hi - lo if hi > lo else 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "-", color="#3182bd", lw=1.0, gid="one-to-one")
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
        title = p.column_a if p.column_a == p.column_b else f"{p.column_a} / {p.column_b}"
        ax.set_title(title, fontsize=style.FONT)
        ax.set_xlabel(la, fontsize=style.SMALL)
        ax.set_ylabel(lb, fontsize=style.SMALL)
        ax.tick_params(labelsize=style.SMALL - 0.5)
        if p.n:
            core = p.diff if not np.isfinite(p.scatter) or p.scatter == 0 else \
                p.diff[np.abs(p.diff - p.median) <= 6 * p.scatter]
            hx.hist(core, bins=min(40, max(5, int(np.sqrt(core.size)) * 2)), color="0.55", gid="differences")
            hx.axvline(p.median, color="black", lw=1.0, gid="median")
            if np.isfinite(p.scatter):
                for s in (-1, 1):
                    hx.axvline(p.median + s * p.scatter, color="black", lw=0.8, ls="--")
            hx.set_title(f"median {p.median:.3g}, σ {p.scatter:.3g}, N {p.n}", fontsize=style.SMALL - 0.5)
        hx.set_xlabel(p.describe(comparison.labels), fontsize=style.SMALL)
        hx.tick_params(labelsize=style.SMALL - 0.5)
    return fig
