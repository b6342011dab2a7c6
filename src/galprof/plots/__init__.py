"""Figures of fits: per-galaxy image and 1-D profile panels, catalog comparisons and a
static HTML survey report (matplotlib; every figure function returns a
:class:`matplotlib.figure.Figure` and never touches pyplot's global state).

>>> from galprof.plots import load_result, fit_figure, save_figure
>>> view = load_result("imgblock.fits")              # or an imfit best-fit file, or a table row
>>> save_figure(fit_figure(view), "galaxy.pdf")      # doctest: +SKIP

* :mod:`.sources`: :class:`FitView`, loaded from a GALFIT image block, an imfit
  best-fit file, a ``galprof batch`` results row or a :class:`galprof.FitResult`; and
  :class:`MultiBandView` (one FitView per band) from a GALFITM image block, a
  multi-band results row or a :class:`galprof.fitting.MultiBandFitResult`;
* :mod:`.images`: data / model / residual (and per-component) panels;
* :mod:`.profile1d`: surface brightness in elliptical annuli;
* :mod:`.multiband`: the multi-band figure, one row per band;
* :mod:`.compare`: two catalogs parameter by parameter;
* :mod:`.report`: the HTML report.

Conventions are GALFIT's: 1-based pixels, PA in degrees CCW from +y, sizes along the
major axis, q = b/a, mu = zp - 2.5 log10(I / (EXPTIME dx dy)).
"""

from .compare import (
                      Comparison,
                      compare_figure,
                      compare_tables,
                      format_summary,
                      parse_column_map,
)
from .figure import fit_figure, save_figure
from .images import image_figure
from .multiband import multiband_figure
from .profile1d import RadialProfile, elliptical_annuli, profile_figure
from .report import colour_columns, write_report
from .sources import (
                      BatchResults,
                      ComponentView,
                      FitView,
                      MultiBandView,
                      PlotError,
                      band_chi2_nu,
                      from_fit_result,
                      from_galfitm_imgblock,
                      from_imfit,
                      from_imgblock,
                      from_multiband_result,
                      load_result,
)

__all__ = ["BatchResults", "Comparison", "ComponentView", "FitView", "MultiBandView", "PlotError", "RadialProfile",
           "band_chi2_nu", "colour_columns", "compare_figure", "compare_tables", "elliptical_annuli", "fit_figure",
           "format_summary", "from_fit_result", "from_galfitm_imgblock", "from_imfit", "from_imgblock",
           "from_multiband_result", "image_figure", "load_result", "multiband_figure", "parse_column_map",
           "profile_figure", "save_figure", "write_report"]
