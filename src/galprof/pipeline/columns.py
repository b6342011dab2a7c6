"""Column names of batch catalogs and results tables: GALFIT's header keywords.

A parameter of component k (1-based) is the column ``<k>_<KEY>``, with KEY the card
suffix GALFIT writes in an imgblock header (``1_XC``, ``1_YC``, ``1_MAG``, ``1_RE``,
``1_N``, ``1_AR``, ``1_PA``, ``2_RS``, ``3_SKY``, ...; see
:data:`galprof.io.galfit_output.HEADER_KEYWORDS`), and for parameters GALFIT has no card
for, the parameter's name in capitals (``3_MU_0``, ``1_C0``, ``1_F1_AMP``). Its error is
``<k>_<KEY>_ERR``. The same names override template values in an input catalog.
"""

from __future__ import annotations

from ..io.galfit_output import HEADER_KEYWORDS


def parameter_column(component: int, name: str) -> str:
    """``<component>_<KEY>`` of parameter ``name`` of 1-based ``component``."""
    return f"{component}_{HEADER_KEYWORDS.get(name, name.upper())}"


def error_column(component: int, name: str) -> str:
    return parameter_column(component, name) + "_ERR"


#: suffixes of the optional uncertainty columns of ``galprof batch`` (see docs/uncertainties.md)
BOOTSTRAP_SUFFIXES = ("_BOOT_ERR", "_BOOT_LO68", "_BOOT_HI68", "_BOOT_LO95", "_BOOT_HI95")
POSTERIOR_SUFFIXES = ("_POST_ERR", "_POST_LO68", "_POST_HI68", "_POST_LO95", "_POST_HI95", "_RHAT", "_ESS")


def uncertainty_suffixes(method: str) -> tuple[str, ...]:
    """Per-parameter column suffixes for an error method: always ``_ERR_SCALED`` (the
    covariance error times sqrt(chi2_nu)); plus bootstrap or posterior columns."""
    extra = {"bootstrap": BOOTSTRAP_SUFFIXES, "sample": POSTERIOR_SUFFIXES}.get(method, ())
    return ("_ERR_SCALED",) + extra
