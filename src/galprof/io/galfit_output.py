"""GALFIT-compatible outputs: the image block, the model image and ``fit.log``.

The image block (``B)`` of the feedme) has four HDUs, as GALFIT writes it:

* HDU 0: empty primary;
* HDU 1 (``INPUT_<band>``): the data in the fit region;
* HDU 2 (``MODEL_<band>``): the model, whose header carries the fit summary
  (input files, fit section, one ``COMP_i`` card and one card per parameter for each
  component, then ``CHISQ``, ``NDOF``, ``NFREE``, ``NFIX``, ``CHI2NU``, ``FLAGS``);
* HDU 3 (``RESIDUAL_<band>``): data - model.

Parameter cards hold strings: ``'12.3456 +/- 0.0123'`` for a free parameter,
``'[12.3456]'`` for a fixed one, ``'{12.3456}'`` for one set by a constraint and
``'*12.3456* +/- *0.0123*'`` when the fit flags a problem (a parameter at a bound, an
undefined uncertainty). Positions are 1-based pixels of the full input image.

Internal parameter names are mapped to GALFIT's keywords only here
(:data:`HEADER_KEYWORDS`). Besides GALFIT's cards the files carry a ``GALPROF`` card
(the version), a ``HISTORY`` line and a ``COMMENT`` saying they are GALFIT-compatible
output of galprof, so they can be traced.
"""

from __future__ import annotations

import math
import pathlib
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import numpy as np
from astropy.io import fits

from .feedme import Feedme

__all__ = [
    "ComponentReport",
    "HEADER_KEYWORDS",
    "format_parameter",
    "galfit_header_cards",
    "write_imgblock",
    "write_model_image",
    "append_fit_log",
]

#: Internal parameter name -> GALFIT header keyword suffix (the card is ``<i>_<suffix>``).
#: ``beta`` -> ``PL`` (GALFIT's Moffat "powerlaw"): galprof's choice, not confirmed
#: against a GALFIT-written header; change it here if GALFIT spells it otherwise.
HEADER_KEYWORDS: dict[str, str] = {
    "x": "XC",
    "y": "YC",
    "mag": "MAG",
    "r_e": "RE",
    "r_s": "RS",
    "n": "N",
    "fwhm": "FWHM",
    "beta": "PL",
    "q": "AR",
    "pa": "PA",
    "sky": "SKY",
    "dsdx": "DSDX",
    "dsdy": "DSDY",
}
#: GALFIT's hidden lines (galprof's keywords; ``c0``, ``f<m>_amp``, ``f<m>_phase`` and bending
#: ``b<m>`` take the default rule, name.upper()): coordinate rotation (R1-R4, R9, R10) and
#: truncation ``T<I|O>[L|H]<what>`` (inner/outer, length/height; T1 XC, YC, T4 RB, T5 DR or, type
#: 2, RS, T9 AR, T10 PA), each at most 6 characters so that ``<i>_<key>`` stays a FITS keyword.
HEADER_KEYWORDS.update({"rot_r_in": "RIN", "rot_r_out": "ROUT", "rot_theta_out": "RANG", "rot_alpha": "RALPHA",
                        "rot_r_ws": "RWS", "rot_incl": "INCL", "rot_sky_pa": "SPA"})
HEADER_KEYWORDS.update({
    f"trunc_{side}{geometry}_{what}": f"T{side[0].upper()}{geometry[1:2].upper()}{key}"
    for side in ("in", "out") for geometry in ("", "_length", "_height")
    for what, key in (("x", "XC"), ("y", "YC"), ("break", "RB"), ("soft", "DR"), ("soft_at", "RS"), ("q", "AR"),
                      ("pa", "PA"))})

#: Card comments per internal name.
_CARD_COMMENTS: dict[str, str] = {
    "x": "X center [pixel]",
    "y": "Y center [pixel]",
    "mag": "Integrated magnitude [mag]",
    "r_e": "Effective radius Re [pixels]",
    "r_s": "Disk scale length Rs [pixels]",
    "n": "Sersic index",
    "fwhm": "FWHM [pixels]",
    "beta": "Moffat powerlaw index",
    "q": "Axis ratio (b/a)",
    "pa": "Position angle (PA) [degrees: Up=0, Left=90]",
    "sky": "Sky background [ADUs]",
    "dsdx": "Sky gradient in x [ADUs/pixel]",
    "dsdy": "Sky gradient in y [ADUs/pixel]",
    "rot_r_in": "Rotation: inner (bar) radius [pix]",
    "rot_r_out": "Rotation: outer radius [pix]",
    "rot_theta_out": "Rotation: angle out to ROUT [deg]",
    "rot_alpha": "Rotation: power-law index",
    "rot_r_ws": "Rotation: winding scale radius [pix]",
    "rot_incl": "Rotation: inclination [deg]",
    "rot_sky_pa": "Rotation: sky position angle [deg]",
}
_CARD_COMMENTS.update({f"b{m}": f"Bending mode {m} [pix]" for m in range(1, 11)})
_CARD_COMMENTS.update({
    f"trunc_{side}{geometry}_{what}": f"{label} trunc.: {text}"
    for side, label in (("in", "Inner"), ("out", "Outer")) for geometry in ("", "_length", "_height")
    for what, text in (("x", "x [pix]"), ("y", "y [pix]"), ("break", "break radius [pix]"),
                       ("soft", "softening [pix]"), ("soft_at", "softening radius [pix]"), ("q", "axis ratio"),
                       ("pa", "PA [deg]"))})

#: Parameter order of each component type in headers and logs.
_PROFILE_ORDER: dict[str, tuple[str, ...]] = {
    "sersic": ("x", "y", "mag", "r_e", "n", "q", "pa"),
    "devauc": ("x", "y", "mag", "r_e", "q", "pa"),
    "expdisk": ("x", "y", "mag", "r_s", "q", "pa"),
    "gaussian": ("x", "y", "mag", "fwhm", "q", "pa"),
    "moffat": ("x", "y", "mag", "fwhm", "beta", "q", "pa"),
    "psf": ("x", "y", "mag"),
    "sky": ("x", "y", "sky", "dsdx", "dsdy"),
}

#: Parameters written in exponential notation (tiny numbers).
_EXPONENTIAL = frozenset({"dsdx", "dsdy"})

#: Cards that come before the components, in GALFIT's order.
_LEADING_KEYS = ("OBJECT", "INITFILE", "DATAIN", "SIGMA", "PSF", "CONSTRNT", "MASK", "FITSECT", "CONVBOX", "MAGZPT")
_LEADING_COMMENTS = {
    "OBJECT": "Object name",
    "INITFILE": "GALFIT-style input parameter file",
    "DATAIN": "Input data image",
    "SIGMA": "Input sigma image",
    "PSF": "Convolution PSF and kernel",
    "CONSTRNT": "Parameter constraint file",
    "MASK": "Input mask image",
    "FITSECT": "Image section fitted",
    "CONVBOX": "Convolution box size",
    "MAGZPT": "Magnitude zeropoint",
}
#: Cards that come after the fit statistics.
_TRAILING_KEYS = ("FLAGS", "LOGFILE")
_TRAILING_COMMENTS = {"FLAGS": "Fit flags (warnings)", "LOGFILE": "Output log file"}


def galprof_version_text() -> str:
    """The installed galprof version (the package metadata), for output headers."""
    try:
        return version("galprof")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


@dataclass(frozen=True)
class ComponentReport:
    """The fitted state of one component, in internal names.

    Attributes
    ----------
    number : int
        1-based component number (as in the feedme).
    profile : str
        Component type (``sersic``, ``devauc``, ``expdisk``, ``gaussian``, ``moffat``,
        ``psf``, ``sky``).
    values : dict[str, float]
        Best-fit values; positions are 1-based pixels, sizes pixels, PA degrees
        counter-clockwise from +y, magnitudes with the feedme zeropoint, sky in ADU.
    errors : dict[str, float]
        1-sigma uncertainties (same units); missing or non-finite entries of free
        parameters are written as problems.
    free : dict[str, bool]
        Whether each parameter was free.
    problem : dict[str, bool]
        True to flag a parameter as GALFIT does with ``*value*`` (at a bound, or an
        undefined uncertainty).
    skip_in_residual : bool
        GALFIT's ``Z) 1``.
    constrained : dict[str, bool]
        True for parameters set by a constraint (written as ``{value}``); default none.
    """

    number: int
    profile: str
    values: dict[str, float]
    errors: dict[str, float]
    free: dict[str, bool]
    problem: dict[str, bool]
    skip_in_residual: bool = False
    constrained: dict[str, bool] = field(default_factory=dict)


def _number(value: float, exponential: bool) -> str:
    value = float(value)
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if exponential or (value != 0 and (abs(value) >= 1e8 or abs(value) < 1e-4)):
        return f"{value:.4e}"
    return f"{value:.4f}"


def format_parameter(value: float, error: float | None = None, *, free: bool = True, problem: bool = False,
                     constrained: bool = False, exponential: bool = False) -> str:
    """A header value string in GALFIT's style.

    Parameters
    ----------
    value, error : float
        The value and its 1-sigma uncertainty (ignored for fixed / constrained).
    free, problem, constrained : bool
        Fixed -> ``'[v]'``; constrained -> ``'{v}'``; free -> ``'v +/- e'``; a problem
        (or an undefined error of a free parameter) -> ``'*v* +/- *e*'``.
    exponential : bool
        Write ``%.4e`` instead of ``%.4f``.

    Returns
    -------
    str
    """
    v = _number(value, exponential)
    if not free:
        return f"[{v}]"
    if constrained:
        return f"{{{v}}}"
    err = float("nan") if error is None else float(error)
    e = _number(err, exponential)
    if problem or not math.isfinite(err):
        return f"*{v}* +/- *{e}*"
    return f"{v} +/- {e}"


def _order(report: ComponentReport) -> list[str]:
    order = [n for n in _PROFILE_ORDER.get(report.profile, ()) if n in report.values]
    return order + [n for n in report.values if n not in order]


def galfit_header_cards(
    components: list[ComponentReport],
    *,
    chi2: float,
    ndof: int,
    nfree: int,
    chi2nu: float,
    extra: dict[str, Any] | None = None,
) -> list[tuple[str, Any, str]]:
    """The model-HDU header cards of a GALFIT image block, in GALFIT's order.

    Parameters
    ----------
    components : list of ComponentReport
        Fitted components, in order.
    chi2 : float
        Chi-square of the fit.
    ndof : int
        Degrees of freedom (unmasked pixels - free parameters).
    nfree : int
        Number of free parameters.
    chi2nu : float
        chi2 / ndof.
    extra : dict, optional
        Further cards. ``OBJECT, INITFILE, DATAIN, SIGMA, PSF, CONSTRNT, MASK, FITSECT,
        CONVBOX, MAGZPT`` go first (in that order, those given), ``FLAGS`` and
        ``LOGFILE`` after ``CHI2NU``, anything else at the end in the given order.

    Returns
    -------
    list of (key, value, comment)
        ``COMP_i`` = profile name, ``i_XC``, ``i_YC``, ``i_MAG``, ``i_RE``, ``i_N``,
        ``i_AR``, ``i_PA`` ... (see :data:`HEADER_KEYWORDS`), ``CHISQ``, ``NDOF``,
        ``NFREE``, ``NFIX``, ``CHI2NU``. A sky component's ``XC``/``YC`` (its fixed
        reference point) are written only if its ``values`` hold ``x``/``y``.
    """
    extra = dict(extra or {})
    cards: list[tuple[str, Any, str]] = []
    for key in _LEADING_KEYS:
        if key in extra:
            cards.append((key, extra.pop(key), _LEADING_COMMENTS[key]))
    nfix = 0
    for report in components:
        i = report.number
        cards.append((f"COMP_{i}", report.profile, "Component type"))
        for name in _order(report):
            suffix = HEADER_KEYWORDS.get(name, name.upper())
            free = bool(report.free.get(name, False))
            if not free and not (report.profile == "sky" and name in ("x", "y")):
                nfix += 1  # a sky's reference point is not a parameter
            text = format_parameter(
                report.values[name],
                report.errors.get(name),
                free=free,
                problem=bool(report.problem.get(name, False)),
                constrained=bool(report.constrained.get(name, False)),
                exponential=name in _EXPONENTIAL,
            )
            comment = _CARD_COMMENTS.get(name, name)
            if name == "mag" and any(n.startswith("trunc_") for n in report.values):
                comment = "SB at break radius [mag/arcsec^2]"  # a truncated component's
            cards.append((f"{i}_{suffix}", text, comment))
    cards.append(("CHISQ", float(chi2), "Chi^2 of fit"))
    cards.append(("NDOF", int(ndof), "Degrees of freedom"))
    cards.append(("NFREE", int(nfree), "Number of free parameters"))
    cards.append(("NFIX", int(nfix), "Number of fixed parameters"))
    cards.append(("CHI2NU", float(chi2nu), "Reduced Chi^2"))
    for key in _TRAILING_KEYS:
        if key in extra:
            cards.append((key, extra.pop(key), _TRAILING_COMMENTS[key]))
    for key, value in extra.items():
        cards.append((key, value, ""))
    return cards


def _header_from_cards(cards) -> fits.Header:
    header = fits.Header()
    for key, value, comment in cards:
        if key == "COMMENT":
            header.add_comment(value)
        elif key == "HISTORY":
            header.add_history(value)
        else:
            header.append((key, value, comment), end=True)
    return header


def _stamp(header: fits.Header) -> None:
    version = galprof_version_text()
    header["GALPROF"] = (version, "galprof version that wrote this file")
    header.add_comment("GALFIT-compatible output written by galprof")
    header.add_history(f"galprof {version}")


def _files_from_feedme(feedme: Feedme | None) -> dict[str, Any]:
    if feedme is None:
        return {}
    xmin, xmax, ymin, ymax = feedme.fit_region
    psf = feedme.psf_image or "none"
    if feedme.psf_diffusion_kernel:
        psf = f"{psf} {feedme.psf_diffusion_kernel}"
    if feedme.convolution_box is not None:
        convbox = f"{feedme.convolution_box[0]}, {feedme.convolution_box[1]}"
    else:
        convbox = "none"
    return {
        "OBJECT": feedme.input_spec,
        "INITFILE": str(feedme.path),
        "DATAIN": feedme.input_spec,
        "SIGMA": feedme.sigma_image or "none",
        "PSF": psf,
        "CONSTRNT": feedme.constraint_file or "none",
        "MASK": feedme.mask or "none",
        "FITSECT": f"[{xmin}:{xmax},{ymin}:{ymax}]",
        "CONVBOX": convbox,
        "MAGZPT": float(feedme.zeropoint),
        "LOGFILE": "fit.log",
    }


_STRUCTURAL = frozenset({"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND",
                         "PCOUNT", "GCOUNT", "BSCALE", "BZERO", "BLANK", "EXTNAME", "EXTVER", "CHECKSUM",
                         "DATASUM", "END"})


def carried_card(card: fits.Card) -> tuple[fits.Card | None, str]:
    """``card`` as a FITS-standard card for an output header, and what was done to it.

    Archival headers often hold cards that astropy refuses to write (e.g. HST's
    ``CD1_1 = 4.73142247055e-06``, with a lower-case exponent). A card whose keyword,
    value and comment can be read is rebuilt from them (``"mended"``); one that cannot
    be read is dropped (None, ``"dropped: <why>"``); a standard card is kept as it is
    (``""``). The image data and the fit never depend on these cards.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            card.verify("exception")
            return card, ""
        except Exception:  # noqa: BLE001 - astropy raises VerifyError or ValueError subclasses
            pass
        try:
            if card.keyword in ("COMMENT", "HISTORY", ""):
                mended = fits.Card(card.keyword, str(card.value))
            else:
                mended = fits.Card(card.keyword, card.value, card.comment)
            mended.verify("exception")
            str(mended)
        except Exception as err:  # noqa: BLE001 - any card astropy cannot rebuild is dropped
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            return None, f"dropped: {reason}"
    return mended, "mended"


class HeaderCardWarning(UserWarning):
    """An input header card was mended or dropped while an output header was written."""


def input_image_header(input_header: fits.Header | None, feedme: Feedme | None) -> fits.Header:
    """Copy of the input image header without structural keys, WCS shifted to the cutout."""
    header = fits.Header()
    if input_header is None:
        return header
    mended: list[str] = []
    dropped: list[str] = []
    for card in input_header.cards:
        if card.keyword in _STRUCTURAL or card.keyword.startswith("NAXIS"):
            continue
        carried, note = carried_card(card)
        if carried is not None:
            header.append(carried, end=True)
        if note == "mended":
            mended.append(card.keyword)
        elif note:
            dropped.append(f"{card.keyword} ({note[len('dropped: '):]})")
    if mended or dropped:
        warnings.warn("input image header: " + "; ".join(
            part for part in (f"{len(mended)} non-standard card(s) rewritten in standard form: {', '.join(mended)}"
                              if mended else "",
                              f"{len(dropped)} unreadable card(s) dropped: {', '.join(dropped)}" if dropped else "")
            if part), HeaderCardWarning, stacklevel=3)
    if feedme is not None:
        xmin, _, ymin, _ = feedme.fit_region
        for axis, offset in (("1", xmin - 1), ("2", ymin - 1)):
            for key in (f"CRPIX{axis}", f"LTV{axis}"):
                if key in header:
                    try:
                        header[key] = float(header[key]) - offset
                    except (TypeError, ValueError):
                        pass
    return header


def write_imgblock(
    path,
    *,
    data: np.ndarray,
    model: np.ndarray,
    residual: np.ndarray,
    feedme: Feedme | None,
    components: list[ComponentReport],
    chi2: float,
    ndof: int,
    nfree: int,
    chi2nu: float,
    flags: str = "",
    input_names: dict[str, str] | None = None,
    overwrite: bool = True,
    input_header: fits.Header | None = None,
    band: str = "R",
) -> pathlib.Path:
    """Write a GALFIT image block (4 HDUs; see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        Output FITS file (``B)`` of the feedme).
    data, model, residual : numpy.ndarray, shape (ny, nx)
        The data, model and data - model in the fit region [ADU]; ``[0, 0]`` is the
        1-based pixel (xmin, ymin) of the input image. Written as float32, as GALFIT.
    feedme : Feedme or None
        Source of the file cards (INITFILE, DATAIN, SIGMA, PSF, CONSTRNT, MASK, FITSECT,
        CONVBOX, MAGZPT); when given, the arrays must have the fit-region shape.
    components : list of ComponentReport
        Fitted components. For sky components without ``x``/``y`` the centre of the
        fit region is written as their fixed ``XC``/``YC`` when ``feedme`` is given.
    chi2, ndof, nfree, chi2nu :
        Fit statistics (see :func:`galfit_header_cards`).
    flags : str
        Space-separated warning flags (``FLAGS`` card).
    input_names : dict, optional
        Overrides of the file cards by keyword (e.g. ``{"SIGMA": "none"}``, or resolved
        paths), also ``OBJECT`` and ``LOGFILE``.
    overwrite : bool
        Replace an existing file.
    input_header : astropy.io.fits.Header, optional
        Header of the input image; copied into HDU 1 (its CRPIX shifted to the cutout).
    band : str
        Suffix of the EXTNAMEs ``INPUT_<band>``, ``MODEL_<band>``, ``RESIDUAL_<band>``.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    arrays = [np.asarray(a) for a in (data, model, residual)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"data, model and residual must be 2-D arrays of one shape, got {[a.shape for a in arrays]}")
    if feedme is not None:
        xmin, xmax, ymin, ymax = feedme.fit_region
        expected = (ymax - ymin + 1, xmax - xmin + 1)
        if arrays[0].shape != expected:
            raise ValueError(f"arrays have shape {arrays[0].shape} but the fit region "
                             f"[{xmin}:{xmax},{ymin}:{ymax}] has shape {expected} (ny, nx)")
    extra = _files_from_feedme(feedme)
    extra.update(input_names or {})
    extra["FLAGS"] = flags
    extra.setdefault("LOGFILE", "fit.log")
    reports = list(components)
    if feedme is not None:
        xmin, xmax, ymin, ymax = feedme.fit_region
        centre = {"x": 0.5 * (xmin + xmax), "y": 0.5 * (ymin + ymax)}
        reports = [
            ComponentReport(r.number, r.profile, {**centre, **r.values}, r.errors,
                            {"x": False, "y": False, **r.free}, r.problem, r.skip_in_residual, r.constrained)
            if r.profile == "sky" and "x" not in r.values else r
            for r in reports
        ]
    cards = galfit_header_cards(reports, chi2=chi2, ndof=ndof, nfree=nfree, chi2nu=chi2nu, extra=extra)

    primary = fits.PrimaryHDU()
    _stamp(primary.header)
    hdu_input = fits.ImageHDU(arrays[0].astype(np.float32), header=input_image_header(input_header, feedme),
                              name=f"INPUT_{band}")
    model_header = _header_from_cards(cards)
    _stamp(model_header)
    hdu_model = fits.ImageHDU(arrays[1].astype(np.float32), header=model_header, name=f"MODEL_{band}")
    hdu_residual = fits.ImageHDU(arrays[2].astype(np.float32), name=f"RESIDUAL_{band}")
    out = pathlib.Path(path)
    fits.HDUList([primary, hdu_input, hdu_model, hdu_residual]).writeto(out, overwrite=overwrite,
                                                                         output_verify="silentfix")
    return out


def write_model_image(path, model: np.ndarray, header_cards, *, overwrite: bool = True) -> pathlib.Path:
    """Write a model image alone (GALFIT's ``P) 1``) as the primary HDU.

    Parameters
    ----------
    path : str or os.PathLike
        Output FITS file.
    model : numpy.ndarray, shape (ny, nx)
        Model in the fit region [ADU], written as float32.
    header_cards : iterable of (key, value, comment)
        E.g. from :func:`galfit_header_cards`; ``COMMENT``/``HISTORY`` keys allowed.
    overwrite : bool
        Replace an existing file.
    """
    model = np.asarray(model)
    if model.ndim != 2:
        raise ValueError(f"model must be a 2-D array, got shape {model.shape}")
    header = _header_from_cards(list(header_cards))
    _stamp(header)
    out = pathlib.Path(path)
    fits.PrimaryHDU(model.astype(np.float32), header=header).writeto(out, overwrite=overwrite)
    return out


# ----------------------------------------------------------------------------------------
# fit.log
# ----------------------------------------------------------------------------------------


def _log_value(value: float, *, free: bool, problem: bool, width: int, exponential: bool) -> str:
    text = f"{value:.2e}" if exponential else f"{value:.2f}"
    if not free:
        text = f"[{text}]"
    elif problem:
        text = f"*{text}*"
    return text.rjust(width)


def _log_lines(report: ComponentReport, *, label: str, with_errors: bool) -> list[str]:
    order = [n for n in _order(report) if not (report.profile == "sky" and n in ("x", "y"))]
    vals = report.values
    free = report.free
    prob = report.problem
    errs = report.errors

    def val(name, width=8):
        return _log_value(vals[name], free=bool(free.get(name, False)), problem=bool(prob.get(name, False)),
                          width=width, exponential=name in _EXPONENTIAL)

    def err(name, width=8):
        e = errs.get(name, float("nan"))
        text = f"{e:.2e}" if name in _EXPONENTIAL else f"{e:.2f}"
        return text.rjust(width)

    rest = [n for n in order if n not in ("x", "y")]
    if "x" in order and "y" in order:
        head = f"({val('x')}, {val('y')}) "
        ehead = f"({err('x')}, {err('y')}) "
    else:
        head = ehead = ""
    lines = [(f" {label:<10s}: {head}" + " ".join(val(n) for n in rest)).rstrip()]
    if with_errors:
        lines.append(" " * 13 + ehead + " ".join(err(n) for n in rest))
    return lines


def _arcsec_lines(components: list[ComponentReport], plate_scale: tuple[float, float]) -> list[str]:
    """``#`` comment lines with every component's sizes in arcsec (feedme line K).

    Sizes are along the major axis; with different x and y plate scales the mean of the
    two is used (GALFIT's line K gives dx dy in arcsec per pixel).
    """
    scale = 0.5 * (float(plate_scale[0]) + float(plate_scale[1]))
    out = []
    for report in components:
        parts = []
        for name in ("r_e", "r_s", "fwhm"):
            if name in report.values:
                value = report.values[name] * scale
                error = report.errors.get(name)
                text = f"{name} = {value:.4f}"
                if error is not None and report.free.get(name, False) and math.isfinite(error):
                    text += f" +/- {error * scale:.4f}"
                parts.append(text)
        if parts:
            out.append(f"# comp {report.number} {report.profile} [arcsec, {scale:g}\"/pix]: " + ", ".join(parts))
    return out


def append_fit_log(
    path,
    *,
    feedme: Feedme | None,
    components: list[ComponentReport],
    initial_components: list | None,
    chi2: float,
    ndof: int,
    chi2nu: float,
    date: str,
    restart_file: str | None = None,
    output_image: str | None = None,
    input_image: str | None = None,
) -> None:
    """Append one entry to a GALFIT-style ``fit.log``.

    The entry follows GALFIT's layout (a dashed separator, ``Input image``,
    ``Init. par. file``, ``Restart file`` and ``Output image`` lines, one value line and
    one uncertainty line per component with fixed values in ``[]`` and problems in
    ``**``, then ``Chi^2 = ..., ndof = ...`` and ``Chi^2/nu = ...``), so that existing
    fit.log readers work. galprof adds a ``Date`` line and, after the statistics, the
    initial values as ``#`` comment lines labelled by component number only (so that
    readers looking for profile names do not pick them up).

    Parameters
    ----------
    path : str or os.PathLike
        The log file (created if needed).
    feedme : Feedme or None
        Gives the input image, fit section, feedme name and output image.
    components : list of ComponentReport
        Final values and uncertainties.
    initial_components : list of ComponentReport or FeedmeComponent, optional
        Starting values (anything with ``number``, ``profile``, ``values``, ``free``).
    chi2, ndof, chi2nu :
        Fit statistics.
    date : str
        Time stamp of the fit.
    restart_file, output_image, input_image : str, optional
        Override the names written (default: from ``feedme``; restart ``none``).
    """
    if input_image is None:
        if feedme is not None:
            xmin, xmax, ymin, ymax = feedme.fit_region
            input_image = f"{feedme.input_spec}[{xmin}:{xmax},{ymin}:{ymax}]"
        else:
            input_image = "unknown"
    init_file = str(feedme.path) if feedme is not None else "none"
    if output_image is None:
        output_image = feedme.output_image if feedme is not None else "none"
    lines = [
        "",
        "-" * 77,
        "",
        f"Date            : {date}",
        f"Input image     : {input_image}",
        f"Init. par. file : {init_file}",
        f"Restart file    : {restart_file or 'none'}",
        f"Output image    : {output_image}",
        "",
    ]
    for report in components:
        lines.extend(_log_lines(report, label=report.profile, with_errors=True))
    lines.append(f" Chi^2 = {float(chi2):.5f},  ndof = {int(ndof)}")
    lines.append(f" Chi^2/nu = {float(chi2nu):.3f}")
    if feedme is not None:
        lines.extend(_arcsec_lines(components, feedme.plate_scale))
    if initial_components:
        lines.append("")
        for comp in initial_components:
            report = ComponentReport(
                number=comp.number, profile=comp.profile, values=dict(comp.values), errors={},
                free=dict(comp.free), problem={}, skip_in_residual=getattr(comp, "skip_in_residual", False),
            )
            body = _log_lines(report, label=f"comp {comp.number}", with_errors=False)[0]
            lines.append(f"# initial{body}")
    lines.append("")
    p = pathlib.Path(path)
    with open(p, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
