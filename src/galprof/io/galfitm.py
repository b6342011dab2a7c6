"""GALFITM's multi-band feedme format: reading, constraint files, and GALFITM-style outputs.

GALFITM (MegaMorph; Häußler et al. 2013, MNRAS 430, 330; Vika et al. 2013) fits the
images of one galaxy in K bands together. Its feedme is GALFIT's with comma-separated
lists (no spaces inside a list) where a band needs its own entry:

* ``A)`` the K input images (their number defines K), ``A1)`` K band labels (distinct,
  ignoring case), ``A2)`` K wavelengths (any one unit);
* ``C)`` sigma images (one entry, e.g. ``none``, means the same for every band; a
  second number is GALFITM's minimum-sigma factor), ``D)`` PSFs (and an optional
  diffusion kernel after a space), ``F)`` masks, ``J)`` zeropoints: one entry for all
  bands, or K;
* a parameter line holds, per value, a list of K band values (or one value for all
  bands), then, per value, a degrees-of-freedom flag: ``0`` fixed, ``1`` the same in
  every band, ``N`` a Chebyshev polynomial of N terms in wavelength, ``K`` free in every
  band; or a list of per-coefficient flags (``1,1,0,0,0``: the first two Chebyshev
  coefficients free; missing trailing flags are 0). An optional last word says what the
  values are: ``band`` (or ``bands``; the default) per-band values, ``cheb`` Chebyshev
  coefficients (at most K; missing ones are 0), as GALFITM 1.2.0 writes its restart files::

      3) 16.231,14.357,13.555,13.12,12.851  5       # a magnitude free in every band
      4) 19.5585    1                                # R_e shared by the bands
      3) 13.185,-1.532,0.503,-0.185,7.901e-02    1,1,1,1,1   cheb

  Coefficients are converted to band values with :meth:`Bands.band_values` (x = 2
  (lambda - lambda_min) / (lambda_max - lambda_min) - 1, as GALFITM's).

galprof frees the *leading* N coefficients of a parameter (N = 0, 1, ..., K); flags that
free other coefficients (``0,1,0``) are refused by name. GALFITM's guide says that 1 and
2 terms fit a constant (linear) function *added to* the given band values while 3 and
more start from the polynomial fitted to them; :func:`galprof.fitting.fit_bands` starts
every polynomial (1 term: the mean) from the least-squares fit to the given values, so a
line whose values do not lie on its polynomial gets a :class:`FeedmeWarning` (as does a
``cheb`` line whose fixed higher coefficients are not 0).

Everything else (control lines B, E, G-P, S, U, V, W, component types, GALFIT's hidden
lines C0, F<m>, B<m>, R<k>, truncation blocks, ``Z)``) is read as
:func:`galprof.io.feedme.parse_feedme` reads it (each line stands for its first band), so a
multi-band feedme accepts and refuses exactly what a single-band one does; GALFITM's
non-parametric component (``U)`` on) and MultiNest sampling (``V)`` on) are refused by name.

Conventions are GALFIT's in every band: 1-based pixels (the first pixel's centre is (1,
1)), PA in degrees counter-clockwise from +y, sizes along the major axis [pix], q = b/a,
magnitudes with each band's zeropoint. Errors are :class:`FeedmeError` ``path:line: ...``.

**Constraint files** (:func:`parse_galfitm_constraints`): GALFIT's ranges (``3 n 0.7 to
5``), relative ranges (``2 x -1 0.5`` and GALFITM's ``2 x -1 in 0.5``), ``factor``
ranges, pair ranges (``3-7``, ``3/5``) and ties (``offset``, ``ratio``) are applied to
the parameter's value in every band. GALFITM's per-coefficient (``n_1``: the linear
Chebyshev coefficient), per-band (``re_B``) and reference-wavelength (``-2 ref 2``)
constraints have no galprof equivalent and are refused by name.

**Outputs** written from a :class:`galprof.fitting.MultiBandFitResult`:

* :func:`format_galfitm_restart`: a restart feedme laid out as GALFITM 1.2.0's (A1/A2
  lines, per-band lists, ``C)`` with the minimum-sigma factor, every parameter as K
  Chebyshev coefficients, K per-coefficient flags and ``cheb``), numbers written so that
  they read back to the same band values;
* :func:`galfitm_log_entry` / :func:`append_galfitm_log`: the ``fit.log`` entry, one
  value line and one error line per component and band (``u  : sersic    : (x, y) ...``);
* :func:`write_galfitm_imgblock`: the image block. HDU 0 is blank; then ``INPUT_<band>``
  for every band, ``MODEL_<band>`` for every band, ``RESIDUAL_<band>`` for every band
  (GALFITM's order: the first model is HDU K+1), the kinds named on ``W)`` among input,
  model and residual; then the binary tables ``BAND_INFO`` (one row per band: BAND, WL,
  DATAIN, SIGMA, PSF, MASK, MAGZPT), ``FIT_INFO`` (one row: INITFILE, CONSTRNT, FITSECT,
  CONVBOX, CHISQ, NDOF, NFREE, NFIX, CHI2NU, NITER, VERSION, REFWLBAND, LOWDWLBAND,
  HIGHDWLBAND, STATUS), ``FINAL_BAND`` (row k = band k) and ``FINAL_CHEB`` (row m =
  Chebyshev coefficient m) with columns ``COMP<i>_<KEY>`` and ``COMP<i>_<KEY>_ERR``
  (KEY as in GALFIT's headers: XC, YC, MAG, RE, N, AR, PA, SKY, ...).

Header keywords. GALFITM's documentation does not list its image-block keywords; what is
written here follows what programs that read GALFITM's files use (GALAPAGOS-2 and
MegaMorph's galfitm-utilities): extension names ``INPUT_<band>``, ``MODEL_<band>``,
``RESIDUAL_<band>``, per-band parameter cards ``<i>_<KEY>_<band>`` (e.g. ``2_PA_R`` in
``MODEL_r``; FITS upper-cases the band in the keyword), the tables above and their
column names, and the Chebyshev domain (REFWLBAND = first band's wavelength, the
reference band; LOWDWLBAND, HIGHDWLBAND = shortest and longest wavelength minus it).
galprof's own choices (not confirmed against a GALFITM-written file): each
``MODEL_<band>`` header also carries ``BAND``, ``WL``, ``BANDCHI2`` (that band's chi^2),
GALFIT's file cards for that band (DATAIN, SIGMA, PSF, MASK, MAGZPT), and the fitted
Chebyshev coefficients ``<i>_<KEY>_CHEB<m>`` (m = 0 .. terms - 1, value +/- error; none
for a fixed parameter); the STATUS column of FIT_INFO; no ``INIT_*`` tables. Cards
longer than 8 characters are written as FITS HIERARCH cards. Values are GALFIT's strings
(``'v +/- e'``, ``'[v]'`` fixed, ``'*v* +/- *e*'`` when the error is undefined).
"""

from __future__ import annotations

import math
import pathlib
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import FeedmeError, InputError, ModelError
from ..fitting.bands import Bands
from ..model import Component, Model
from .constraints import constraint_slots, parse_constraints
from .feedme import (
    Feedme,
    FeedmeWarning,
    format_feedme,
    format_number,
    parse_feedme,
    profile_lines,
)
from .fits_io import split_extension
from .galfit_output import (
    HEADER_KEYWORDS,
    ComponentReport,
    format_parameter,
    galfit_header_cards,
    galprof_version_text,
    input_image_header,
)

__all__ = [
    "MultiBandComponent",
    "MultiBandFeedme",
    "append_galfitm_log",
    "format_galfitm_restart",
    "galfitm_band_header_cards",
    "galfitm_log_entry",
    "is_multiband_feedme",
    "multiband_model",
    "parse_galfitm_constraints",
    "parse_galfitm_feedme",
    "read_galfitm_constraints",
    "read_galfitm_feedme",
    "write_galfitm_imgblock",
]

#: GALFITM's words after a parameter line's flags: what its values are
_BASES = {"band": "band", "bands": "band", "cheb": "cheb"}
#: GALFITM's defaults for a single band without A1) / A2) (as its own restart files write them)
_SINGLE_BAND = ("x", 1.0)
_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9]+)\)(.*)$")
_RULE_LINE = re.compile(r"^\s*=+\s*$")
_WORD = re.compile(r"^[A-Za-z]+$")
_VALUE_KEY = re.compile(r"^(\d+|C0|F\d+|B\d+|R([1-9]|10)|T([1-9]|10))$", re.IGNORECASE)
_LIST_KEYS = ("A", "A1", "A2", "C", "D", "F", "J")


# ----------------------------------------------------------------------------------------
# Data classes
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiBandComponent:
    """One component of a multi-band GALFITM feedme.

    Attributes:
        number: GALFIT's component number (1-based position, truncation blocks counted).
        profile: galprof / GALFIT component name (``sersic``, ``expdisk``, ``sky``, ...).
        values: internal parameter name -> (K,) start value in every band, in GALFIT's
            units (1-based pixels, PA degrees CCW from +y, sizes along the major axis
            [pix], q = b/a, magnitudes with each band's zeropoint, sky [ADU]).
        terms: name -> how the parameter varies with wavelength: 0 fixed, 1 the same in
            every band, 1 < N < K a Chebyshev polynomial of N terms, K free per band.
        skip_in_residual: GALFIT's ``Z) 1``.
        line_numbers: name -> line of the file that set it (``"profile"``: the ``0)``
            line); not used in comparisons.
        truncation_blocks: as :attr:`galprof.io.feedme.FeedmeComponent.truncation_blocks`.
    """

    number: int
    profile: str
    values: dict[str, np.ndarray]
    terms: dict[str, int]
    skip_in_residual: bool = False
    line_numbers: dict[str, int] = field(default_factory=dict, compare=False)
    truncation_blocks: tuple[tuple[str, int], ...] = ()

    def __eq__(self, other):
        if not isinstance(other, MultiBandComponent):
            return NotImplemented
        return (self.number, self.profile, self.terms, self.skip_in_residual, self.truncation_blocks) == \
            (other.number, other.profile, other.terms, other.skip_in_residual, other.truncation_blocks) and \
            list(self.values) == list(other.values) and \
            all(np.array_equal(self.values[n], other.values[n]) for n in self.values)

    __hash__ = None

    @property
    def free(self) -> dict[str, bool]:
        """name -> True where the parameter is fitted (terms > 0)."""
        return {name: t > 0 for name, t in self.terms.items()}


@dataclass(frozen=True)
class MultiBandFeedme:
    """The content of a multi-band GALFITM feedme (or GALFITM restart file).

    Per-band entries are tuples in band order (the order of ``A)``); a single entry in the
    file is repeated for every band. File names are kept as written (not resolved).

    Attributes:
        path: the file that was read.
        bands: :class:`galprof.fitting.Bands` from ``A1)`` and ``A2)``.
        input_images: ``A)`` per band, as written (``image.fits`` or ``image.fits[N]``;
            see :meth:`input_file`); ``none`` for GALFITM's model-only runs.
        output_image: ``B)`` the image block.
        sigma_images: ``C)`` per band; None for ``none`` (made from the data).
        min_sigma_factor: ``C)``'s optional second number (GALFITM: the sigma made from
            the data is at least this times the sky-subtracted data); 0 when absent.
        psf_images: ``D)`` per band; None for ``none``.
        psf_diffusion_kernel: ``D)``'s optional kernel (one for all bands) or None.
        psf_oversampling: ``E)``.
        masks: ``F)`` per band; None for ``none``.
        constraint_file: ``G)`` or None.
        fit_region: ``H)`` (xmin, xmax, ymin, ymax), 1-based and inclusive, every band.
        convolution_box: ``I)`` (nx, ny) or None.
        zeropoints: ``J)`` per band [mag]: mag = J - 2.5 log10(flux [ADU] / EXPTIME).
        plate_scale: ``K)`` (dx, dy) [arcsec / pixel].
        display_type: ``O)``.
        mode: ``P)`` 0 optimise, 1 model, 2 image block, 3 image block and components.
        output_options: ``W)`` extension kinds (default blank, input, model, residual).
        components: in file order.
        line_numbers: control key (``"A"``, ``"A1"``, ...) -> line.
        reference: the file read as a single-band feedme standing for the first band (its
            structure: component numbers, hidden lines, truncation blocks).
    """

    path: pathlib.Path
    bands: Bands
    input_images: tuple[str, ...]
    output_image: str
    sigma_images: tuple[str | None, ...]
    min_sigma_factor: float
    psf_images: tuple[str | None, ...]
    psf_diffusion_kernel: str | None
    psf_oversampling: int
    masks: tuple[str | None, ...]
    constraint_file: str | None
    fit_region: tuple[int, int, int, int]
    convolution_box: tuple[int, int] | None
    zeropoints: tuple[float, ...]
    plate_scale: tuple[float, float]
    display_type: str
    mode: int
    output_options: tuple[str, ...]
    components: tuple[MultiBandComponent, ...]
    line_numbers: dict[str, int] = field(default_factory=dict, compare=False)
    reference: Feedme | None = field(default=None, compare=False, repr=False)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    def input_file(self, band: int) -> tuple[str, int | None]:
        """(file, HDU number or None) of band ``band`` (0-based) of ``A)``."""
        return split_extension(self.input_images[band])

    def terms(self) -> dict[tuple[int, str], int]:
        """{(component 1-based position, name): terms} of every parameter, for
        :func:`galprof.fitting.fit_bands`."""
        return {(i, name): t for i, comp in enumerate(self.components, start=1) for name, t in comp.terms.items()}


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------


def _items(tokens_text: str) -> list[str]:
    """The entries of a comma-separated list (empty entries from stray commas dropped)."""
    return [item for item in tokens_text.split(",") if item.strip()]


def is_multiband_feedme(text: str) -> bool:
    """Whether a feedme's text is a multi-band GALFITM feedme: its ``A)``, ``A1)`` or
    ``A2)`` line lists more than one entry."""
    for raw in text.splitlines():
        match = _KEY_LINE.match(raw.partition("#")[0])
        if match and match.group(1).upper() in ("A", "A1", "A2"):
            tokens = match.group(2).split()
            if tokens and len(_items(tokens[0])) > 1:
                return True
    return False


def read_galfitm_feedme(path) -> MultiBandFeedme:
    """Read a multi-band GALFITM feedme or restart file (see the module docstring).

    Raises:
        FeedmeError: an unreadable file, or ``path:line: what is wrong``.
    """
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise FeedmeError(path, None, f"cannot read the feedme file: {err.strerror or err}") from None
    return parse_galfitm_feedme(text, path)


@dataclass
class _Line:
    """A parameter line's per-band content: per value group, (K,) values and terms."""

    values: list[np.ndarray]
    terms: list[int]


class _Reader:
    """Turns a multi-band feedme into a single-band one (each line standing for its first
    band) for :func:`parse_feedme`, keeping the per-band content of every line."""

    def __init__(self, path: str):
        self.path = path
        self.control: dict[str, tuple[list[str], int]] = {}
        self.lines: dict[int, _Line] = {}
        self.bands: Bands | None = None

    def error(self, line, reason: str) -> FeedmeError:
        return FeedmeError(self.path, line, reason)

    def number(self, line: int, key: str, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise self.error(line, f"line '{key})': {text!r} is not a number") from None
        if not math.isfinite(value):
            raise self.error(line, f"line '{key})': {text!r} is not a finite number")
        return value

    # -- control lines --------------------------------------------------------------------
    def collect_control(self, text: str) -> None:
        for number, raw in enumerate(text.splitlines(), start=1):
            match = _KEY_LINE.match(raw.partition("#")[0].strip())
            if match and match.group(1).upper() in _LIST_KEYS:
                key = match.group(1).upper()
                if key in self.control:
                    raise self.error(number, f"control line '{key})' given twice (first at line "
                                             f"{self.control[key][1]})")
                self.control[key] = (match.group(2).split(), number)
                placeholder = re.search(r"\{[^{}]*\}", match.group(2))
                if placeholder:
                    raise self.error(number, f"'{key})' holds the template placeholder {placeholder.group(0)!r}; "
                                             "fill in the template first")

    def per_band(self, key: str, n_bands: int, what: str) -> list[str] | None:
        """The K entries of list line ``key`` (one entry: repeated), or None if absent."""
        if key not in self.control or not self.control[key][0]:
            return None
        tokens, line = self.control[key]
        items = _items(tokens[0])
        if len(items) == 1:
            return items * n_bands
        if len(items) != n_bands:
            raise self.error(line, f"'{key})' lists {len(items)} {what} for {n_bands} bands ('A)' lists "
                                   f"{n_bands} images): give one for every band, or one for all")
        return items

    def make_bands(self) -> list[str]:
        if "A" not in self.control or not self.control["A"][0]:
            line = self.control["A"][1] if "A" in self.control else None
            raise self.error(line, "missing required line 'A)' (the input images, one per band)")
        tokens, line = self.control["A"]
        if len(tokens) != 1:
            raise self.error(line, f"'A)' takes one comma-separated list of images (no spaces), got {len(tokens)} "
                                   "tokens")
        images = _items(tokens[0])
        n_bands = len(images)
        for key, what in (("A1", "labels"), ("A2", "wavelengths")):
            if key in self.control and len(self.control[key][0]) > 1:
                raise self.error(self.control[key][1], f"'{key})' takes one comma-separated list of {what} (no "
                                                       f"spaces), got {len(self.control[key][0])} tokens")
        labels = None
        if "A1" in self.control and self.control["A1"][0]:
            labels = _items(self.control["A1"][0][0])
            if len(labels) != n_bands:
                raise self.error(self.control["A1"][1], f"'A1)' lists {len(labels)} labels for {n_bands} bands "
                                                        f"('A)' lists {n_bands} images)")
        waves = None
        if "A2" in self.control and self.control["A2"][0]:
            waves_text = _items(self.control["A2"][0][0])
            if len(waves_text) != n_bands:
                raise self.error(self.control["A2"][1], f"'A2)' lists {len(waves_text)} wavelengths for {n_bands} "
                                                        f"bands ('A)' lists {n_bands} images)")
            waves = [self.number(self.control["A2"][1], "A2", w) for w in waves_text]
        if n_bands > 1 and labels is None:
            raise self.error(None, f"missing line 'A1)' (band labels): 'A)' lists {n_bands} images")
        if n_bands > 1 and waves is None:
            raise self.error(None, f"missing line 'A2)' (band wavelengths): 'A)' lists {n_bands} images")
        labels = labels or [_SINGLE_BAND[0]]
        waves = waves or [_SINGLE_BAND[1]]
        lowered = [label.lower() for label in labels]
        if len(set(lowered)) != len(lowered):
            raise self.error(self.control["A1"][1], f"'A1)': band labels must differ (ignoring case), got "
                                                    f"{','.join(labels)}")
        try:
            self.bands = Bands(tuple(labels), tuple(waves))
        except ModelError as err:
            raise self.error(self.control.get("A2", ([], None))[1], f"'A2)': {err}") from None
        return images

    # -- parameter lines ------------------------------------------------------------------
    def flags(self, line: int, key: str, text: str) -> tuple[int, bool]:
        """Terms of a flag token, and whether it was a list of per-coefficient flags."""
        n_bands = len(self.bands)
        if "," in text:
            items = [i.strip() for i in text.split(",")]
            if items and items[-1] == "":
                items = items[:-1]
            if any(i not in ("0", "1") for i in items):
                raise self.error(line, f"line '{key})': per-coefficient fit flags are 0 or 1, got {text!r}")
            if len(items) > n_bands:
                raise self.error(line, f"line '{key})': {len(items)} fit flags for {n_bands} bands")
            flags = [i == "1" for i in items] + [False] * (n_bands - len(items))
            terms = sum(flags)
            if any(flags[terms:]) or not all(flags[:terms]):
                free = ", ".join(str(m) for m, f in enumerate(flags) if f)
                raise self.error(line, f"line '{key})': flags {text} free Chebyshev coefficient(s) {free}; galprof "
                                       "fits the leading terms only (1,0,0,...: constant; 1,1,0,...: linear; ...)")
            return terms, True
        if not re.fullmatch(r"\d+", text):
            raise self.error(line, f"line '{key})': the fit flag must be a whole number (0 fixed, 1 the same in "
                                   f"every band, N terms, {n_bands} free per band) or a list of 0/1, got {text!r}")
        terms = int(text)
        if terms > n_bands:
            raise self.error(line, f"line '{key})': degrees-of-freedom flag {terms} is more than the number of "
                                   f"bands ({n_bands})")
        return terms, False

    def values(self, line: int, key: str, text: str, basis: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(K,) band values of a value token, and the Chebyshev coefficients when given."""
        n_bands = len(self.bands)
        items = _items(text)
        if not items:
            raise self.error(line, f"line '{key})': no value in {text!r}")
        numbers = np.array([self.number(line, key, i) for i in items])
        if basis == "cheb":
            if len(numbers) > n_bands:
                raise self.error(line, f"line '{key})': {len(numbers)} Chebyshev coefficients for {n_bands} bands "
                                       f"(at most {n_bands})")
            coefficients = np.concatenate([numbers, np.zeros(n_bands - len(numbers))])
            return self.bands.band_values(coefficients), coefficients
        if len(numbers) == 1:
            return np.full(n_bands, numbers[0]), None
        if len(numbers) != n_bands:
            raise self.error(line, f"line '{key})': {len(numbers)} values for {n_bands} bands (give one value for "
                                   "every band, or one for all)")
        return numbers, None

    def value_line(self, line: int, key: str, tokens: list[str], profile: str | None) -> list[str]:
        """The single-band tokens of a parameter line, keeping its per-band content."""
        basis = "band"
        if tokens and _WORD.match(tokens[-1]):
            word = tokens[-1].lower()
            if word not in _BASES:
                raise self.error(line, f"line '{key})': unknown word {tokens[-1]!r} after the values (GALFITM's are "
                                       "'band' for per-band values and 'cheb' for Chebyshev coefficients)")
            basis, tokens = _BASES[word], tokens[:-1]
        n = len(tokens)
        expected = _expected_groups(profile, key)
        if n == 2 and key == "1":
            groups, with_flags = 1, True  # GALFITM writes x on line 1) and y on line 2)
        elif expected is not None and n == expected:
            groups, with_flags = n, False
        elif n and n % 2 == 0:
            groups, with_flags = n // 2, True
        else:
            raise self.error(line, f"line '{key})' needs its value(s) then as many fit flags (e.g. '3) 17.2,16.9,16.5 "
                                   f"3'), got {' '.join(tokens) or 'nothing'!r}")
        values, terms, out_values, out_flags = [], [], [], []
        for g in range(groups):
            band_values, coefficients = self.values(line, key, tokens[g], basis)
            count, _ = self.flags(line, key, tokens[groups + g]) if with_flags else (0, False)
            values.append(band_values)
            terms.append(count)
            out_values.append(repr(float(band_values[0])))
            out_flags.append("1" if count else "0")
            self.check_start(line, key, band_values, coefficients, count)
        self.lines[line] = _Line(values, terms)
        return out_values + (out_flags if with_flags else [])

    def check_start(self, line: int, key: str, band_values: np.ndarray, coefficients, terms: int) -> None:
        """Warn where GALFITM would start a polynomial elsewhere than fit_bands does."""
        n_bands = len(self.bands)
        if terms == 0 or terms >= n_bands:
            return
        if coefficients is not None:
            if np.any(coefficients[terms:] != 0):
                warnings.warn(f"{self.path}:{line}: line '{key})': GALFITM holds the fixed Chebyshev coefficients "
                              f"{terms}..{n_bands - 1} at their (non-zero) values; galprof fits a polynomial of "
                              f"{terms} term(s), starting from the least-squares fit to the band values", FeedmeWarning,
                              stacklevel=4)
            return
        fitted = self.bands.band_values(self.bands.coefficients(band_values, terms))
        scale = max(1.0, float(np.max(np.abs(band_values))))
        if terms <= 2 and np.max(np.abs(fitted - band_values)) > 1e-9 * scale:
            warnings.warn(f"{self.path}:{line}: line '{key})': GALFITM fits a {'constant' if terms == 1 else 'linear'} "
                          "function added to these band values; galprof fits a polynomial of "
                          f"{terms} term(s) starting from the least-squares fit to them", FeedmeWarning, stacklevel=4)

    # -- the whole file -------------------------------------------------------------------
    def single_band_text(self, text: str) -> tuple[str, dict[str, Any]]:
        self.collect_control(text)
        images = self.make_bands()
        n_bands = len(self.bands)
        lists = {"A": images}
        control = {"min_sigma_factor": 0.0, "kernel": None}
        out_lines = []
        profile = None
        for number, raw in enumerate(text.splitlines(), start=1):
            body, hash_, comment = raw.partition("#")
            stripped = body.strip()
            match = _KEY_LINE.match(stripped)
            if not stripped or _RULE_LINE.match(stripped) or match is None:
                out_lines.append(raw)
                continue
            key, tokens = match.group(1), match.group(2).split()
            ukey = key.upper()
            if ukey in ("A1", "A2"):
                out_lines.append("")
                continue
            if ukey == "A":
                out_lines.append(f"A) {images[0]}")
                continue
            if ukey in ("C", "D", "F"):
                out_lines.append(self.list_line(number, ukey, tokens, n_bands, lists, control))
                continue
            if ukey == "J":
                zps = self.per_band("J", n_bands, "zeropoints")
                if zps is None or len(tokens) != 1:
                    raise self.error(number, f"'J)' takes one comma-separated list of zeropoints (one, or one per "
                                             f"band), got {' '.join(tokens) or 'nothing'!r}")
                lists["J"] = [self.number(number, "J", z) for z in zps]
                out_lines.append(f"J) {zps[0]}")
                continue
            if key == "0":
                profile = tokens[0].lower() if tokens else None
            elif ukey == "T0":
                profile = None
            elif _VALUE_KEY.match(key):
                single = self.value_line(number, ukey if ukey[0].isalpha() else key, tokens, profile)
                out_lines.append(f"{key}) {' '.join(single)}  {hash_}{comment}")
                continue
            out_lines.append(raw)
        lists.setdefault("J", None)
        control["lists"] = lists
        return "\n".join(out_lines) + "\n", control

    def list_line(self, number: int, key: str, tokens: list[str], n_bands: int, lists: dict, control: dict) -> str:
        what = {"C": "sigma images", "D": "PSFs", "F": "masks"}[key]
        if not tokens:
            lists[key] = [None] * n_bands
            return f"{key})"
        if len(tokens) > 2:
            raise self.error(number, f"'{key})' takes one comma-separated list of {what} (no spaces) and, "
                                     f"{'a minimum-sigma factor' if key == 'C' else 'a diffusion kernel' if key == 'D' else 'nothing else'}; "
                                     f"got {len(tokens)} tokens")
        names = self.per_band(key, n_bands, what)
        lists[key] = [None if n.lower() == "none" else n for n in names]
        if len(tokens) == 2:
            if key == "C":
                control["min_sigma_factor"] = self.number(number, "C", tokens[1])
                if control["min_sigma_factor"] < 0:
                    raise self.error(number, f"'C)': the minimum-sigma factor must be >= 0, got {tokens[1]}")
            elif key == "D":
                control["kernel"] = None if tokens[1].lower() == "none" else tokens[1]
            else:
                raise self.error(number, f"'F)' takes one comma-separated list of masks (no spaces), got {len(tokens)} "
                                         "tokens")
        first = names[0]
        if key == "D" and control["kernel"] is not None:
            return f"D) {first} {control['kernel']}"
        return f"{key}) {first}"


def _expected_groups(profile: str | None, key: str) -> int | None:
    """How many values parameter line ``key`` of a ``profile`` component holds (None: not
    known here; the single-band reader decides)."""
    ukey = key.upper()
    if ukey.startswith("F") and ukey[1:].isdigit():
        return 2
    if ukey == "C0" or ukey[0] in "BR":
        return 1
    if ukey.startswith("T"):
        return 2 if ukey == "T1" else 1
    if profile is None:
        return None
    try:
        names = profile_lines(profile).get(key)
    except KeyError:
        return None
    return None if names is None else len(names)


def parse_galfitm_feedme(text: str, path="<feedme>") -> MultiBandFeedme:
    """Parse the text of a multi-band GALFITM feedme; ``path`` is used in messages.

    See :func:`read_galfitm_feedme` and the module docstring.
    """
    reader = _Reader(str(path))
    single_text, control = reader.single_band_text(text)
    reference = parse_feedme(single_text, path)
    bands = reader.bands
    n_bands = len(bands)
    lists = control["lists"]
    components = []
    for comp in reference.components:
        values, terms = {}, {}
        for name, start in comp.values.items():
            line = comp.line_numbers.get(name)
            content = reader.lines.get(line)
            on_line = [n for n in comp.values if comp.line_numbers.get(n) == line]
            group = on_line.index(name)
            if content is None or group >= len(content.values):
                values[name] = np.full(n_bands, float(start))  # a default (sky gradient, R9/R10): fixed
                terms[name] = 0 if not comp.free[name] else n_bands
                continue
            values[name] = np.array(content.values[group], dtype=float)
            terms[name] = int(content.terms[group])
        components.append(MultiBandComponent(number=comp.number, profile=comp.profile, values=values, terms=terms,
                                             skip_in_residual=comp.skip_in_residual,
                                             line_numbers=dict(comp.line_numbers),
                                             truncation_blocks=comp.truncation_blocks))
    line_numbers = dict(reference.line_numbers)
    line_numbers.update({key: line for key, (_, line) in reader.control.items()})
    for spec in lists["A"]:
        try:
            split_extension(spec)
        except InputError as err:
            raise FeedmeError(path, line_numbers.get("A"), f"'A)': {err}") from None
    output_options = ("blank", "input", "model", "residual")
    for raw in text.splitlines():
        match = _KEY_LINE.match(raw.partition("#")[0].strip())
        if match and match.group(1).upper() == "W" and match.group(2).split():
            output_options = tuple(item.lower() for item in _items(",".join(match.group(2).split())))
    return MultiBandFeedme(
        path=pathlib.Path(path),
        bands=bands,
        input_images=tuple(lists["A"]),
        output_image=reference.output_image,
        sigma_images=tuple(lists.get("C") or [None] * n_bands),
        min_sigma_factor=float(control["min_sigma_factor"]),
        psf_images=tuple(lists.get("D") or [None] * n_bands),
        psf_diffusion_kernel=control["kernel"],
        psf_oversampling=reference.psf_oversampling,
        masks=tuple(lists.get("F") or [None] * n_bands),
        constraint_file=reference.constraint_file,
        fit_region=reference.fit_region,
        convolution_box=reference.convolution_box,
        zeropoints=tuple(lists["J"]),
        plate_scale=reference.plate_scale,
        display_type=reference.display_type,
        mode=reference.mode,
        output_options=output_options,
        components=tuple(components),
        line_numbers=line_numbers,
        reference=reference,
    )


# ----------------------------------------------------------------------------------------
# Constraint files and the galprof model
# ----------------------------------------------------------------------------------------

#: galprof's own parameter names that contain an underscore (not GALFITM's ``name_suffix``)
_UNDERSCORE_NAMES = frozenset({"r_e", "r_s"})


def parse_galfitm_constraints(text: str, path: str, components, bands: Bands) -> list:
    """Constraints of a GALFITM constraint file, each applied in every band.

    Args:
        text: the file's content; path: its name, for messages.
        components: the feedme's components (:class:`MultiBandComponent` or
            :class:`galprof.io.feedme.FeedmeComponent`: GALFIT's numbering, truncation
            blocks counted).
        bands: the feedme's bands (to tell GALFITM's per-band names, ``re_B``).

    Returns:
        :mod:`galprof.constraints` objects (Range, RelativeRange, FactorRange, PairRange,
        Tie) numbering the model's components (1-based positions).

    Raises:
        FeedmeError: ``path:line: ...`` for a line galprof cannot honour, among them
            GALFITM's per-coefficient (``n_1``), per-band (``re_B``) and
            reference-wavelength (``-2 ref 2``) constraints, named as such.
    """
    labels = {label.lower(): label for label in bands.labels}
    normalised = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.split("#", 1)[0]
        tokens = body.split()
        if len(tokens) < 3:
            normalised.append(body)
            continue
        param, rest = tokens[1], tokens[2:]
        if "_" in param and param.lower() not in _UNDERSCORE_NAMES:
            base, suffix = param.rsplit("_", 1)
            if suffix.isdigit():
                raise FeedmeError(path, number, f"{param!r} is GALFITM's Chebyshev coefficient {int(suffix)} of "
                                                f"{base!r} (its wavelength dependence); galprof constrains a "
                                                "parameter's value, in every band, not its coefficients")
            if suffix.lower() in labels:
                raise FeedmeError(path, number, f"{param!r} is GALFITM's per-band constraint on {base!r} in band "
                                                f"{labels[suffix.lower()]!r}; galprof applies a constraint in every "
                                                "band")
        words = [w.lower() for w in rest]
        if len(rest) == 3 and words[1] == "ref":
            raise FeedmeError(path, number, f"'{' '.join(rest)}' is a range relative to the value at GALFITM's "
                                            "reference wavelength; galprof's relative ranges ('low high') are "
                                            "relative to each band's start value")
        if len(rest) == 3 and words[1] == "in":
            rest = [rest[0], rest[2]]  # GALFITM's 'low in high': the relative range 'low high'
        normalised.append(" ".join(tokens[:2] + rest))
    return parse_constraints("\n".join(normalised), path, constraint_slots(components))


def read_galfitm_constraints(path, components, bands: Bands) -> list:
    """:func:`parse_galfitm_constraints` of a file; an unreadable file is a FeedmeError."""
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise FeedmeError(path, None, f"cannot read the constraint file: {err.strerror or err}") from None
    return parse_galfitm_constraints(text, str(path), components, bands)


def multiband_model(feedme: MultiBandFeedme, constraints=None):
    """The galprof model and wavelength declarations of a multi-band feedme, for
    :func:`galprof.fitting.fit_bands`.

    Args:
        feedme: from :func:`read_galfitm_feedme`.
        constraints: galprof constraints to use; None (default) reads the feedme's
            constraint file (``G)``, a path relative to the working directory, as for a
            single-band feedme); ``()`` for none.

    Returns:
        (model, terms): a :class:`galprof.Model` whose parameter values are (1, K) arrays
        (one galaxy, every band) with the parameters of 0 terms in ``Component.fixed``;
        and {(component 1-based, name): terms} of every parameter. Use them as
        ``fit_bands(model, images, bands=feedme.bands, terms=terms, ...)``.

    Raises:
        FeedmeError / InputError: an unreadable or missing constraint file, a bad line.
        ModelError: values outside a profile's domain (naming the feedme).
    """
    comps = []
    for comp in feedme.components:
        fixed = frozenset(name for name, t in comp.terms.items() if t == 0)
        values = {name: np.asarray(v, dtype=float).reshape(1, -1) for name, v in comp.values.items()}
        try:
            comps.append(Component(comp.profile, values, fixed=fixed, skip_in_residual=comp.skip_in_residual))
        except ModelError as err:
            raise ModelError(f"{feedme.path}:{comp.line_numbers.get('profile', '?')}: {err}") from None
    if constraints is None:
        constraints = ()
        if feedme.constraint_file:
            name = feedme.constraint_file
            if not pathlib.Path(name).exists():
                line = feedme.line_numbers.get("G", "?")
                raise InputError(f"{feedme.path}:{line}: file {name!r} (line G) does not exist", path=name, line=line)
            constraints = tuple(read_galfitm_constraints(name, feedme.components, feedme.bands))
    try:
        model = Model(tuple(comps), tuple(constraints))
    except ModelError as err:
        raise ModelError(f"{feedme.constraint_file or feedme.path}: {err}") from None
    return model, feedme.terms()


# ----------------------------------------------------------------------------------------
# Values of a fit
# ----------------------------------------------------------------------------------------


def _fit_state(feedme: MultiBandFeedme, result, galaxy: int):
    """Per component: {name: (values (K,), errors (K,), terms, coefficient errors (K,))}.

    From ``result`` (a MultiBandFitResult) for galaxy ``galaxy``, or the feedme's start
    values (errors NaN) when ``result`` is None."""
    n_bands = feedme.n_bands
    out = []
    for position, comp in enumerate(feedme.components, start=1):
        state = {}
        for name in comp.values:
            if result is None:
                state[name] = (np.asarray(comp.values[name], float), np.full(n_bands, np.nan), comp.terms[name],
                               np.full(n_bands, np.nan))
                continue
            try:
                p = list(result.names).index((position, name))
            except ValueError:
                raise ValueError(f"the result has no parameter {name!r} of component {position} ({comp.profile}); "
                                 "was it fitted with this feedme's model?") from None
            state[name] = (np.asarray(result.values[galaxy, :, p], float), np.asarray(result.errors[galaxy, :, p], float),
                           int(result.terms[p]), np.asarray(result.coefficient_errors[galaxy, p], float))
        out.append(state)
    return out


def _coefficients(bands: Bands, values: np.ndarray, terms: int) -> np.ndarray:
    """(K,) Chebyshev coefficients of band values: the N-term polynomial's (zeros after)
    when the values lie on it, else all K (exact)."""
    n_bands = len(bands)
    full = bands.coefficients(values)
    if 1 <= terms < n_bands:
        short = np.concatenate([bands.coefficients(values, terms), np.zeros(n_bands - terms)])
        scale = max(1.0, float(np.max(np.abs(values))))
        if np.max(np.abs(bands.band_values(short) - values)) <= 1e-9 * scale:
            return short
    return full


def _statistics(result, galaxy: int) -> dict[str, Any]:
    if result is None:
        return {}
    return {"chi2": float(result.chi2[galaxy]), "ndof": int(result.ndof[galaxy]),
            "chi2nu": float(result.chi2_nu[galaxy]), "nfree": int(np.shape(result.covariance)[-1]),
            "niter": int(result.iterations[galaxy]), "status": str(result.status[galaxy])}


# ----------------------------------------------------------------------------------------
# Restart file
# ----------------------------------------------------------------------------------------


def _coefficient_text(value: float, scale: float) -> str:
    """A coefficient with 3 or more decimals, as few as keep it within 1e-12 of the largest
    coefficient ``scale`` of its parameter (the Chebyshev transform's own rounding); "0"
    below that."""
    value = float(value)
    tolerance = 1e-12 * max(scale, np.finfo(float).tiny)
    if abs(value) <= tolerance:
        return "0"
    for decimals in range(3, 18):
        text = f"{value:.{decimals}f}"
        if abs(float(text) - value) <= tolerance:
            return text
    return repr(value)


def _list(items) -> str:
    return ",".join("none" if i is None else str(i) for i in items)


def format_galfitm_restart(feedme: MultiBandFeedme, result=None, galaxy: int = 0) -> str:
    """A restart feedme in GALFITM 1.2.0's layout holding the best-fit values.

    Args:
        feedme: the multi-band feedme that was fitted (its control lines are written back).
        result: a :class:`galprof.fitting.MultiBandFitResult` of the model of
            :func:`multiband_model`; None writes the feedme's start values.
        galaxy: which galaxy of the result (0-based).

    Returns:
        The text: the ``#  Chi^2/nu = ...,  Chi^2 = ...,  Ndof = ...`` comment (with a
        result), the control lines with per-band lists (``A1)``, ``A2)``, ``C)`` with the
        minimum-sigma factor, ``U) 0``, ``V) 0``, ``W)``), then every parameter as K
        Chebyshev coefficients, K fit flags (the first ``terms`` are 1) and ``cheb``, x and y
        on lines 1) and 2). :func:`read_galfitm_feedme` reads it back to the same band
        values (to rounding of the Chebyshev transform, ~1e-12 relative) and terms.
    """
    if feedme.reference is None:
        raise ValueError("format_galfitm_restart needs a MultiBandFeedme read by read_galfitm_feedme / "
                         "parse_galfitm_feedme (its 'reference' holds the component layout)")
    bands = feedme.bands
    states = _fit_state(feedme, result, galaxy)
    stats = _statistics(result, galaxy)
    out = ["", f"#  Input menu file: {feedme.path}", ""]
    if stats:
        out += [f"#  Chi^2/nu = {stats['chi2nu']:.3f},  Chi^2 = {stats['chi2']:.3f},  Ndof = {stats['ndof']}", ""]
    out += ["=" * 80, "# IMAGE and GALFIT CONTROL PARAMETERS (written by galprof)"]

    def control(key: str, value: str, comment: str) -> None:
        out.append(f"{key}) {value:<18s}  # {comment}")

    xmin, xmax, ymin, ymax = feedme.fit_region
    control("A", _list(feedme.input_images), "Input data image (FITS file)")
    control("A1", ",".join(bands.labels), "Band labels")
    control("A2", ",".join(format_number(w, 2) for w in bands.wavelengths), "Band wavelengths")
    control("B", feedme.output_image, "Output data image block")
    control("C", f"{_list(feedme.sigma_images)} {format_number(feedme.min_sigma_factor, 3)}",
            'Sigma image and min. sigma factor (made from data if blank or "none")')
    psf = _list(feedme.psf_images) + (f" {feedme.psf_diffusion_kernel}" if feedme.psf_diffusion_kernel else "")
    control("D", psf, "Input PSF image and (optional) diffusion kernel")
    control("E", str(feedme.psf_oversampling), "PSF fine sampling factor relative to data")
    control("F", _list(feedme.masks), "Bad pixel mask (FITS image or ASCII coord list)")
    control("G", feedme.constraint_file or "none", "File with parameter constraints (ASCII file)")
    control("H", f"{xmin}  {xmax}  {ymin}  {ymax}", "Image region to fit (xmin xmax ymin ymax)")
    if feedme.convolution_box is not None:
        control("I", f"{feedme.convolution_box[0]}    {feedme.convolution_box[1]}", "Size of the convolution box (x y)")
    control("J", ",".join(format_number(z, 3) for z in feedme.zeropoints), "Magnitude photometric zeropoint")
    control("K", f"{format_number(feedme.plate_scale[0], 3)}  {format_number(feedme.plate_scale[1], 3)}",
            "Plate scale (dx dy)   [arcsec per pixel]")
    control("O", feedme.display_type, "Display type (regular, curses, both)")
    control("P", str(feedme.mode), "Choose: 0=optimize, 1=model, 2=imgblock, 3=subcomps")
    control("U", "0", "Non-parametric component (off: galprof has none)")
    control("V", "0", "MultiNest sampling (off)")
    control("W", ",".join(feedme.output_options), "Output options")
    out += ["", "# INITIAL CHEBYSHEV FITTING PARAMETERS",
            (f"#   Each parameter: {len(bands)} Chebyshev coefficients in wavelength x = 2 (lambda - lambda_min) / "
             "(lambda_max - lambda_min) - 1,"),
            "#   then one fit flag per coefficient (1 = free), then 'cheb'.",
            "#   par)    par value(s)    fit toggle(s)    # parameter description"]
    out += _restart_components(feedme, states)
    out += ["", "=" * 80, ""]
    return "\n".join(out)


def _group_order(name: str) -> int:
    return 1 if name == "y" or name.endswith(("_y", "_phase")) else 0


def _restart_components(feedme: MultiBandFeedme, states) -> list[str]:
    """The component lines: GALFIT's layout from :func:`format_feedme` (component numbers,
    hidden lines, truncation blocks, ``Z)``), each value line rewritten as coefficients."""
    reference = feedme.reference
    n_bands = feedme.n_bands
    first = [{name: float(v[0][0]) for name, v in state.items()} for state in states]
    text = format_feedme(reference, first)
    lines = text.splitlines()
    reread = parse_feedme(text, "<restart>")
    at_line: dict[int, list[tuple[int, str]]] = {}
    for index, comp in enumerate(reread.components):
        for name in comp.values:
            line = comp.line_numbers.get(name)
            if line is not None and line != comp.line_numbers.get("profile"):
                at_line.setdefault(line, []).append((index, name))
    start = next(i for i, line in enumerate(lines) if line.startswith("# INITIAL FITTING PARAMETERS")) + 2
    out = []
    for number, raw in enumerate(lines[start:], start=start + 1):
        if number not in at_line:
            if not raw.startswith("="):
                out.append(raw)
            continue
        key = raw.split(")", 1)[0].strip()
        comment = raw.partition("#")[2].strip()
        entries = sorted(at_line[number], key=lambda e: _group_order(e[1]))
        index = entries[0][0]
        if key == "1" and [n for _, n in entries] == ["x", "y"]:
            out.append(_cheb_line("1", [states[index]["x"]], n_bands, feedme.bands, "Position x [pix]"))
            out.append(_cheb_line("2", [states[index]["y"]], n_bands, feedme.bands, "Position y [pix]"))
            continue
        out.append(_cheb_line(key, [states[index][n] for _, n in entries], n_bands, feedme.bands, comment))
    while out and not out[-1].strip():
        out.pop()
    return out


def _cheb_line(key: str, states, n_bands: int, bands: Bands, comment: str) -> str:
    values, flags = [], []
    for band_values, _, terms, _ in states:
        coefficients = _coefficients(bands, band_values, terms)
        scale = float(np.max(np.abs(coefficients)))
        values.append(",".join(_coefficient_text(c, scale) for c in coefficients))
        flags.append(",".join(["1"] * terms + ["0"] * (n_bands - terms)))
    return f"{key:>2s}) {' '.join(values)}    {' '.join(flags):<19s} cheb #  {comment}"


# ----------------------------------------------------------------------------------------
# fit.log
# ----------------------------------------------------------------------------------------


_EXPONENTIAL = frozenset({"dsdx", "dsdy"})


def _log_text(value: float, *, exponential: bool) -> str:
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.2e}" if exponential else f"{value:.2f}"


def _log_field(value: float, error: float, terms: int, exponential: bool) -> tuple[str, str]:
    v, e = _log_text(value, exponential=exponential), _log_text(error if terms else 0.0, exponential=exponential)
    if terms == 0:
        return f"[{v}]", f"[{e}]"
    if not math.isfinite(error):
        return f"*{v}*", f"*{e}*"
    return v, e


def galfitm_log_entry(feedme: MultiBandFeedme, result, galaxy: int = 0, *, restart_file: str | None = None,
                      output_image: str | None = None, date: str | None = None) -> str:
    """One ``fit.log`` entry in GALFITM's layout.

    A dashed separator; ``Input images`` (the ``A)`` list and the fit section),
    ``Init. par. file``, ``Restart file``, ``Output image``; then for each component and
    each band a value line ``<band> : <type> : (x, y) value ...`` and an error line
    under it (fixed values and their errors in ``[]``, values with undefined errors in
    ``**``; a sky's reference point, the centre of the fit region, in ``[]``); then
    ``Chi^2 = ...,  ndof = ...`` and ``Chi^2/nu = ...``. ``date`` adds a ``Date`` line
    (GALFITM writes none). Values in GALFIT's units (1-based pixels, PA degrees CCW from
    +y, sizes along the major axis [pix], magnitudes with each band's zeropoint).
    """
    states = _fit_state(feedme, result, galaxy)
    stats = _statistics(result, galaxy)
    xmin, xmax, ymin, ymax = feedme.fit_region
    lines = ["", "-" * 77, ""]
    if date:
        lines.append(f"Date            : {date}")
    lines += [f"Input images    : {_list(feedme.input_images)} [{xmin}:{xmax},{ymin}:{ymax}] ",
              f"Init. par. file : {feedme.path} ",
              f"Restart file    : {restart_file or 'none'} ",
              f"Output image    : {output_image or feedme.output_image} ", ""]
    for comp, state in zip(feedme.components, states):
        order = list(comp.values)
        for k, label in enumerate(feedme.bands.labels):
            prefix = f" {label:<3s}: {comp.profile:<10s}: "
            fields = {n: _log_field(state[n][0][k], state[n][1][k], state[n][2], n in _EXPONENTIAL) for n in order}
            if comp.profile == "sky":
                head = f"[{0.5 * (xmin + xmax):.2f}, {0.5 * (ymin + ymax):.2f}]"
                rest = order
                value_line = prefix + head + "".join(f"{fields[n][0]:>11s}" for n in rest)
                error_line = " " * len(prefix + head) + "".join(f"{fields[n][1]:>11s}" for n in rest)
            else:
                rest = [n for n in order if n not in ("x", "y")]
                head = f"({fields['x'][0]:>8s}, {fields['y'][0]:>8s})" if "x" in fields else ""
                ehead = f"({fields['x'][1]:>8s}, {fields['y'][1]:>8s})" if "x" in fields else ""
                value_line = prefix + head + "".join(f"{fields[n][0]:>9s}" for n in rest)
                error_line = " " * len(prefix) + ehead + "".join(f"{fields[n][1]:>9s}" for n in rest)
            lines += [value_line, error_line]
    if stats:
        lines += [f" Chi^2 = {stats['chi2']:.5f},  ndof = {stats['ndof']}", f" Chi^2/nu = {stats['chi2nu']:.3f} "]
    lines += ["", "-" * 77, ""]
    return "\n".join(lines)


def append_galfitm_log(path, feedme: MultiBandFeedme, result, galaxy: int = 0, **names) -> None:
    """Append :func:`galfitm_log_entry` to the log file ``path`` (created if needed);
    ``names``: ``restart_file``, ``output_image``, ``date``."""
    with open(pathlib.Path(path), "a", encoding="utf-8") as handle:
        handle.write(galfitm_log_entry(feedme, result, galaxy, **names))


# ----------------------------------------------------------------------------------------
# Image block
# ----------------------------------------------------------------------------------------


def _reports(feedme: MultiBandFeedme, states, band: int) -> list[ComponentReport]:
    """GALFIT component reports of one band (sky reference point: the region's centre)."""
    xmin, xmax, ymin, ymax = feedme.fit_region
    reports = []
    for position, (comp, state) in enumerate(zip(feedme.components, states), start=1):
        values = {n: float(s[0][band]) for n, s in state.items()}
        errors = {n: float(s[1][band]) for n, s in state.items()}
        free = {n: s[2] > 0 for n, s in state.items()}
        if comp.profile == "sky" and "x" not in values:
            values = {"x": 0.5 * (xmin + xmax), "y": 0.5 * (ymin + ymax), **values}
            free = {"x": False, "y": False, **free}
        reports.append(ComponentReport(position, comp.profile, values, errors, free, {}, comp.skip_in_residual))
    return reports


def _card(key: str, value, comment: str = "") -> fits.Card:
    if len(key) > 8:
        return fits.Card(f"HIERARCH {key}", value, comment)
    return fits.Card(key, value, comment)


def galfitm_band_header_cards(feedme: MultiBandFeedme, result, galaxy: int = 0, band: int = 0,
                              flags: str = "") -> list[fits.Card]:
    """The ``MODEL_<band>`` header cards of band ``band`` (0-based): GALFIT's file cards of
    that band, ``BAND``, ``WL``, ``COMP_i`` and ``<i>_<KEY>_<band>`` per parameter,
    ``<i>_<KEY>_CHEB<m>`` per fitted Chebyshev coefficient, then CHISQ, NDOF, NFREE,
    NFIX, CHI2NU (of all bands), ``BANDCHI2`` (this band's chi^2), FLAGS and LOGFILE.
    See the module docstring for which of these GALFITM is known to write."""
    states = _fit_state(feedme, result, galaxy)
    stats = _statistics(result, galaxy) or {"chi2": float("nan"), "ndof": 0, "chi2nu": float("nan"), "nfree": 0}
    label = feedme.bands.labels[band]
    xmin, xmax, ymin, ymax = feedme.fit_region
    psf = feedme.psf_images[band] or "none"
    if feedme.psf_diffusion_kernel:
        psf = f"{psf} {feedme.psf_diffusion_kernel}"
    extra = {"OBJECT": feedme.input_images[band], "INITFILE": str(feedme.path), "DATAIN": feedme.input_images[band],
             "SIGMA": feedme.sigma_images[band] or "none", "PSF": psf, "CONSTRNT": feedme.constraint_file or "none",
             "MASK": feedme.masks[band] or "none", "FITSECT": f"[{xmin}:{xmax},{ymin}:{ymax}]",
             "CONVBOX": (f"{feedme.convolution_box[0]}, {feedme.convolution_box[1]}" if feedme.convolution_box
                         else "none"),
             "MAGZPT": float(feedme.zeropoints[band]), "FLAGS": flags, "LOGFILE": "fit.log"}
    cards = galfit_header_cards(_reports(feedme, states, band), chi2=stats["chi2"], ndof=stats["ndof"],
                                nfree=stats["nfree"], chi2nu=stats["chi2nu"], extra=extra)
    out = []
    for key, value, comment in cards:
        if re.match(r"^\d+_", key):
            out.append(_card(f"{key}_{label}", value, comment))
            continue
        if key == "COMP_1":
            out.append(_card("BAND", label, "Band label"))
            out.append(_card("WL", float(feedme.bands.wavelengths[band]), "Band wavelength"))
        if key == "CHISQ":
            out += _coefficient_cards(feedme, states, result, galaxy)
        out.append(_card(key, value, comment))
        if key == "CHI2NU" and result is not None:
            out.append(_card("BANDCHI2", float(result.chi2_band[galaxy, band]), "Chi^2 of this band"))
    return out


def _coefficient_cards(feedme: MultiBandFeedme, states, result, galaxy: int) -> list[fits.Card]:
    cards = []
    for position, state in enumerate(states, start=1):
        for name, (values, _, terms, coefficient_errors) in state.items():
            if terms == 0:
                continue
            coefficients = _coefficients(feedme.bands, values, terms)
            suffix = HEADER_KEYWORDS.get(name, name.upper())
            for m in range(terms):
                error = coefficient_errors[m] if result is not None else float("nan")
                text = format_parameter(coefficients[m], error, exponential=name in _EXPONENTIAL)
                cards.append(_card(f"{position}_{suffix}_CHEB{m}", text, f"Chebyshev coefficient {m} of {name}"))
    return cards


def _table(name: str, columns: dict[str, np.ndarray]) -> fits.BinTableHDU:
    cols = []
    for key, values in columns.items():
        arr = np.asarray(values)
        if arr.dtype.kind in "USO":
            arr = np.asarray([str(v) for v in np.ravel(arr)])
            width = max(1, max((len(v) for v in arr), default=1))
            cols.append(fits.Column(name=key, format=f"{width}A", array=arr))
        elif arr.dtype.kind in "iu":
            cols.append(fits.Column(name=key, format="K", array=arr.astype(np.int64)))
        else:
            cols.append(fits.Column(name=key, format="D", array=arr.astype(np.float64)))
    return fits.BinTableHDU.from_columns(cols, name=name)


def write_galfitm_imgblock(path, feedme: MultiBandFeedme, result, galaxy: int = 0, *, data=None,
                           input_headers=None, flags: str = "", overwrite: bool = True) -> pathlib.Path:
    """Write a GALFITM-style multi-band image block (see the module docstring).

    Args:
        path: the output FITS file (``B)`` of the feedme).
        feedme: the multi-band feedme that was fitted.
        result: its :class:`galprof.fitting.MultiBandFitResult`.
        galaxy: which galaxy of the result (0-based).
        data: (K, H, W) input data in the fit region [ADU]; default model + residual.
            ``[k, 0, 0]`` is the 1-based pixel (xmin, ymin) of band k's image.
        input_headers: K headers of the input images, copied into the ``INPUT_<band>``
            HDUs (CRPIX shifted to the fit region), or None.
        flags: the ``FLAGS`` card (space-separated warnings).
        overwrite: replace an existing file.

    Returns:
        The path written. Images are float32, as GALFIT's.
    """
    n_bands = feedme.n_bands
    model = np.asarray(result.model_images[galaxy], dtype=float)
    residual = np.asarray(result.residual_images[galaxy], dtype=float)
    data = model + residual if data is None else np.asarray(data, dtype=float)
    if model.shape[0] != n_bands or data.shape != model.shape:
        raise ValueError(f"expected (K={n_bands}, H, W) data and model, got {data.shape} and {model.shape}")
    xmin, xmax, ymin, ymax = feedme.fit_region
    if model.shape[1:] != (ymax - ymin + 1, xmax - xmin + 1):
        raise ValueError(f"the images have shape {model.shape[1:]} but the fit region [{xmin}:{xmax},{ymin}:{ymax}] "
                         f"has {(ymax - ymin + 1, xmax - xmin + 1)} (ny, nx)")
    version = galprof_version_text()
    primary = fits.PrimaryHDU()
    primary.header["GALPROF"] = (version, "galprof version that wrote this file")
    primary.header.add_comment("GALFITM-compatible multi-band output written by galprof")
    kinds = [k for k in ("input", "model", "residual") if k in feedme.output_options] or ["input", "model", "residual"]
    hdus = [primary]
    labels = feedme.bands.labels
    if "input" in kinds:
        for k in range(n_bands):
            header = input_image_header(None if input_headers is None else input_headers[k], feedme)
            hdus.append(fits.ImageHDU(data[k].astype(np.float32), header=header, name=f"INPUT_{labels[k]}"))
    if "model" in kinds:
        for k in range(n_bands):
            header = fits.Header(galfitm_band_header_cards(feedme, result, galaxy, k, flags))
            header["GALPROF"] = (version, "galprof version that wrote this file")
            hdus.append(fits.ImageHDU(model[k].astype(np.float32), header=header, name=f"MODEL_{labels[k]}"))
    if "residual" in kinds:
        for k in range(n_bands):
            hdus.append(fits.ImageHDU(residual[k].astype(np.float32), name=f"RESIDUAL_{labels[k]}"))
    hdus += _tables(feedme, result, galaxy, version)
    out = pathlib.Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        fits.HDUList(hdus).writeto(out, overwrite=overwrite, output_verify="silentfix")
    return out


def _tables(feedme: MultiBandFeedme, result, galaxy: int, version: str) -> list[fits.BinTableHDU]:
    bands = feedme.bands
    n_bands = len(bands)
    states = _fit_state(feedme, result, galaxy)
    stats = _statistics(result, galaxy)
    band_info = _table("BAND_INFO", {
        "BAND": np.array(bands.labels), "WL": np.array(bands.wavelengths),
        "DATAIN": np.array(feedme.input_images), "SIGMA": np.array([s or "none" for s in feedme.sigma_images]),
        "PSF": np.array([p or "none" for p in feedme.psf_images]), "MASK": np.array([m or "none" for m in feedme.masks]),
        "MAGZPT": np.array(feedme.zeropoints)})
    xmin, xmax, ymin, ymax = feedme.fit_region
    waves = np.asarray(bands.wavelengths, dtype=float)
    nfix = sum(1 for comp in feedme.components for t in comp.terms.values() if t == 0)
    fit_info = _table("FIT_INFO", {
        "INITFILE": np.array([str(feedme.path)]), "CONSTRNT": np.array([feedme.constraint_file or "none"]),
        "FITSECT": np.array([f"[{xmin}:{xmax},{ymin}:{ymax}]"]),
        "CONVBOX": np.array([f"{feedme.convolution_box[0]}, {feedme.convolution_box[1]}" if feedme.convolution_box
                             else "none"]),
        "CHISQ": np.array([stats.get("chi2", np.nan)]), "NDOF": np.array([stats.get("ndof", 0)]),
        "NFREE": np.array([stats.get("nfree", 0)]), "NFIX": np.array([nfix]),
        "CHI2NU": np.array([stats.get("chi2nu", np.nan)]), "NITER": np.array([stats.get("niter", 0)]),
        "VERSION": np.array([f"galprof {version}"]), "REFWLBAND": np.array([waves[0]]),
        "LOWDWLBAND": np.array([waves.min() - waves[0]]), "HIGHDWLBAND": np.array([waves.max() - waves[0]]),
        "STATUS": np.array([stats.get("status", "")])})
    final_band, final_cheb = {"BAND": np.array(bands.labels)}, {}
    for position, state in enumerate(states, start=1):
        for name, (values, errors, terms, coefficient_errors) in state.items():
            key = f"COMP{position}_{HEADER_KEYWORDS.get(name, name.upper())}"
            final_band[key] = values
            final_band[f"{key}_ERR"] = np.where(terms > 0, errors, 0.0)
            final_cheb[key] = _coefficients(bands, values, terms)
            final_cheb[f"{key}_ERR"] = np.where(terms > 0, coefficient_errors, 0.0) * np.ones(n_bands)
    return [band_info, fit_info, _table("FINAL_BAND", final_band), _table("FINAL_CHEB", final_cheb)]
