"""Reading and writing GALFIT 3 parameter files ("feedme" files and ``galfit.NN`` restarts).

A feedme file has two parts. Control lines ``A)`` ... ``P)`` name the input and output
files, the fit region and the photometric zeropoint; then come components, each opened
by a ``0) type`` line and followed by numbered parameter lines
``N) value [value] flag [flag]  # comment`` (flag 1 = free, 0 = fixed) and an optional
``Z) 0|1`` line (1 = leave this component in the residual image).

Everything here uses galprof's internal parameter names (``x, y, mag, r_e, n, q, pa``,
``r_s``, ``fwhm``, ``beta``, ``sky, dsdx, dsdy``); GALFIT's numbered lines are mapped to
them only in this module. Pixel coordinates are GALFIT's: 1-based, the centre of the
first pixel at (1, 1), x along NAXIS1 (see :mod:`galprof.conventions`). File paths are
kept exactly as written; resolving them against a directory is the caller's job.

Every problem is reported as a :class:`FeedmeError` whose message starts with
``path:line:`` so that editors can jump to it.
"""

from __future__ import annotations

import math
import pathlib
import re
import warnings
from dataclasses import dataclass, field

from ..errors import FeedmeError
from ..profiles import EllipticalProfile, available_profiles, get_profile
from ..profiles.modifiers import TRUNCATION_LINES, hidden_shape, profile_for_values
from .fits_io import InputError, split_extension

__all__ = [
    "FeedmeError",
    "FeedmeComponent",
    "Feedme",
    "profile_lines",
    "supported_profiles",
    "read_feedme",
    "parse_feedme",
    "format_feedme",
    "next_restart_path",
]


# ----------------------------------------------------------------------------------------
# The GALFIT <-> galprof vocabulary (the only place where GALFIT line numbers appear).
# ----------------------------------------------------------------------------------------

#: GALFIT's hidden lines C0 (generalised ellipse) and F1..F10 (Fourier modes, amplitude
#: and phase); bending B, rotation R and truncation T lines are read by ``_Parser.hidden_line``.
_MODIFIER_KEY = re.compile(r"^(C0|F([1-9]|10))$", re.IGNORECASE)
_MODIFIER_COMMENTS = {"C0": "traditional diskyness(-)/boxyness(+)"}


class FeedmeWarning(UserWarning):
    """A feedme line that galprof reads in a way the user should know about (e.g. GALFIT-2
    numbering)."""


def _profile_class(profile: str):
    """The registered profile whose GALFIT component name is ``profile``, or None."""
    for name in available_profiles():
        cls = get_profile(name)
        if cls.galfit_name == profile:
            return cls
    return None


def supported_profiles() -> tuple[str, ...]:
    """GALFIT component types galprof reads (every registered profile with a GALFIT name)."""
    return tuple(sorted(c.galfit_name for c in map(get_profile, available_profiles()) if c.galfit_name))


def profile_lines(profile: str, names=None) -> dict[str, tuple[str, ...]]:
    """GALFIT parameter line -> internal name(s) of component type ``profile``.

    Line 1 carries two values (x, y) and two flags; an F line a Fourier amplitude and
    phase. ``names`` (the component's parameter names) adds the lines of its shape
    modifiers (C0, F<m>, B<m>, R<k>; a truncation's lines are keyed ``TI<k>`` / ``TO<k>``:
    line T<k> of the truncation block its ``Ti)`` / ``To)`` line names). Taken from the
    profile's :class:`ParameterSpec` declarations, so a registered profile needs no entry here.
    """
    cls = _profile_class(profile)
    if cls is None:
        raise KeyError(profile)
    if names is not None:
        cls = profile_for_values(cls, names)
    return cls.galfit_lines()


def _line_comment(profile: str, key: str, names=None) -> str:
    """The comment written after line ``key)`` of a ``profile`` component (with parameter
    ``names``: of its shape-modified variant, e.g. a truncated one's surface brightness)."""
    base = _profile_class(profile)
    cls = base if names is None else profile_for_values(base, names)
    if key in base.galfit_comments and (key != "3" or cls.amplitude_kind == base.amplitude_kind):
        return base.galfit_comments[key]
    if key.upper() in _MODIFIER_COMMENTS:
        return _MODIFIER_COMMENTS[key.upper()]
    if key.upper().startswith("F"):
        return f"Azim. Fourier mode {key[1:]}, amplitude & phase angle [deg]"
    names = cls.galfit_lines().get(key, ())
    return ", ".join(f"{cls.spec(n).description} [{cls.spec(n).unit}]" if cls.spec(n).unit else cls.spec(n).description
                     for n in names)


def _truncation_lines(comp: FeedmeComponent, vals: dict[str, float], number: int, side: str) -> list[str]:
    """GALFIT's truncation block ``number`` (``T0) type`` and its T1, T4, T5, T9, T10 lines)
    holding ``comp``'s ``side`` ("in" / "out") truncation."""
    truncation = next(t for t in hidden_shape(comp.values).truncations if t.side == side)
    out = ["", f"# Component number: {number}  ({_SIDE[side]} truncation of component {comp.number})",
           f"T0) {truncation.galfit_type:<22s} #  truncation type"]
    comments = {"1": "Position x, y (optional: default the component's) [pix]",
                "4": "Break radius (99% normal flux) [pix]",
                "5": "Softening radius (1% normal flux) [pix]" if truncation.softening == "radius"
                else "Softening length (1% normal flux) [pix]",
                "9": "Axis ratio (optional)", "10": "Position angle (optional) [deg: Up=0, Left=90]"}
    by_line: dict[str, list[str]] = {}
    for name in truncation.parameter_names:
        by_line.setdefault(TRUNCATION_LINES[name[len(truncation.prefix) + 1:]], []).append(name)
    for line in sorted(by_line, key=int):
        names = by_line[line]
        nums = " ".join(format_number(vals[n]) for n in names)
        flags = " ".join(_fmt_flag(comp.free[n]) for n in names)
        out.append(f"{'T' + line + ')':<4s}{nums + '  ' + flags:<23s}#  {comments[line]}")
    return out


#: Sky gradients may be left out of a feedme; they are then 0 and fixed.
_OPTIONAL_DEFAULTS: dict[str, dict[str, float]] = {"sky": {"dsdx": 0.0, "dsdy": 0.0}}

#: Control keys galprof reads, and the ones it accepts and ignores.
_CONTROL_KEYS = frozenset("ABCDEFGHIJKOP")
_IGNORED_CONTROL_KEYS = frozenset("S")  # S) interactive modification of objects
#: GALFITM's band labels and wavelengths: read for a single band, refused for several
_GALFITM_BAND_KEYS = frozenset({"A1", "A2"})
#: the wavelength basis GALFITM writes after a parameter line's flags (Chebyshev or per band)
_GALFITM_BASES = frozenset({"cheb", "band"})
_REQUIRED_CONTROL = {"A": "input image", "B": "output image block", "H": "fit region", "J": "magnitude zeropoint"}

_KEY_LINE = re.compile(r"^\s*([A-Za-z0-9]+)\)(.*)$")
_RULE_LINE = re.compile(r"^\s*=+\s*$")
_HIDDEN_KEY = re.compile(r"^([BR]\d+|T[oi0-9]\d*)$", re.IGNORECASE)
#: R0) names of the rotation functions (GALFIT: power, log, none; "powerlaw" as GALFITM's tests write it)
_ROTATION_FUNCTIONS = {"power": "power", "powerlaw": "power", "log": "log", "logarithmic": "log", "tanh": "tanh",
                       "none": None}
_SIDE = {"in": "inner", "out": "outer"}
_ROTATION_NAMES = {"1": "rot_r_in", "2": "rot_r_out", "3": "rot_theta_out", "9": "rot_incl", "10": "rot_sky_pa"}
#: T0) types galprof reads: the geometry and whether T5 is a softening length or (type 2) radius
_TRUNCATION_TYPES = {"radial": ("radial", "length"), "radial2": ("radial", "radius"),
                     "length": ("length", "length"), "length2": ("length", "radius"),
                     "height": ("height", "length"), "height2": ("height", "radius")}
# ----------------------------------------------------------------------------------------
# Data classes
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedmeComponent:
    """One component of a feedme file.

    Attributes
    ----------
    number : int
        1-based position of the component in the file: GALFIT's component number, which
        counts truncation blocks (``T0)``) too.
    profile : str
        GALFIT / galprof component name: ``sersic``, ``devauc``, ``expdisk``,
        ``gaussian``, ``moffat``, ``psf`` or ``sky``.
    values : dict[str, float]
        Initial values by internal name. Positions are 1-based pixels, sizes are pixels
        along the major axis, PA in degrees counter-clockwise from +y, magnitudes with
        the feedme's zeropoint, sky in ADU (gradients in ADU per pixel).
    free : dict[str, bool]
        True where the parameter is free (flag 1), False where fixed (flag 0).
    skip_in_residual : bool
        GALFIT's ``Z) 1``: the component is fitted but not subtracted in the residual.
    line_numbers : dict[str, int]
        Internal name -> line of the file that set it (for error messages); key
        ``"profile"`` holds the line of the ``0)`` line. Parameters given defaults
        (sky gradients left out) point at the ``0)`` line. Not used in comparisons.
    truncation_blocks : tuple of (str, int)
        ``("in" | "out", N)``: the component's ``Ti) N`` / ``To) N`` lines, N the number of
        the ``T0)`` block whose parameters are the component's ``trunc_in_*`` /
        ``trunc_out_*`` values (see :mod:`galprof.profiles.modifiers`); the writer puts
        the blocks back at these numbers.
    """

    number: int
    profile: str
    values: dict[str, float]
    free: dict[str, bool]
    skip_in_residual: bool = False
    line_numbers: dict[str, int] = field(default_factory=dict, compare=False)
    truncation_blocks: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Feedme:
    """The content of a GALFIT feedme file.

    Attributes
    ----------
    path : pathlib.Path
        The file that was read.
    input_image : str
        ``A)`` input image file name, without any ``[N]`` extension suffix.
    input_extension : int or None
        The N of ``A) image.fits[N]``; None when no extension is given.
    output_image : str
        ``B)`` output image block.
    sigma_image : str or None
        ``C)``; None for ``none`` or blank (the sigma image is then made from the data).
    psf_image : str or None
        ``D)`` first token; None for ``none`` or blank.
    psf_diffusion_kernel : str or None
        ``D)`` optional second token (a charge-diffusion kernel).
    psf_oversampling : int
        ``E)`` PSF fine-sampling factor relative to the data, default 1.
    mask : str or None
        ``F)`` bad-pixel mask (FITS image or ASCII list of 1-based ``x y``).
    constraint_file : str or None
        ``G)`` constraint file.
    fit_region : tuple[int, int, int, int]
        ``H)`` (xmin, xmax, ymin, ymax), 1-based and inclusive.
    convolution_box : tuple[int, int] or None
        ``I)`` (nx, ny) in pixels; None when absent.
    zeropoint : float
        ``J)`` magnitude zeropoint [mag]: mag = J - 2.5 log10(flux [ADU] / EXPTIME).
    plate_scale : tuple[float, float]
        ``K)`` (dx, dy) in arcsec per pixel, default (1, 1).
    display_type : str
        ``O)`` (regular, curses, both); has no effect in galprof.
    mode : int
        ``P)``: 0 optimise, 1 model only, 2 image block without fitting, 3 image block
        and one image per component.
    components : tuple[FeedmeComponent, ...]
        In file order.
    line_numbers : dict[str, int]
        Control key (``"A"``, ``"B"``, ...) -> line number. Not used in comparisons,
        so a feedme equals its :func:`format_feedme` round trip apart from ``path``.
    """

    path: pathlib.Path
    input_image: str
    input_extension: int | None
    output_image: str
    sigma_image: str | None
    psf_image: str | None
    psf_diffusion_kernel: str | None
    psf_oversampling: int
    mask: str | None
    constraint_file: str | None
    fit_region: tuple[int, int, int, int]
    convolution_box: tuple[int, int] | None
    zeropoint: float
    plate_scale: tuple[float, float]
    display_type: str
    mode: int
    components: tuple[FeedmeComponent, ...]
    line_numbers: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def input_spec(self) -> str:
        """``A)`` as written back: ``image.fits`` or ``image.fits[N]``."""
        if self.input_extension is None:
            return self.input_image
        return f"{self.input_image}[{self.input_extension}]"


# ----------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------


def read_feedme(path) -> Feedme:
    """Read a GALFIT feedme (or ``galfit.NN`` restart) file.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Paths written inside it are returned unchanged (not resolved).

    Returns
    -------
    Feedme

    Raises
    ------
    FeedmeError
        For an unreadable file, a malformed or unsupported line (message
        ``"path:line: ..."``) or a missing required line (``A``, ``B``, ``H``, ``J``, at
        least one component).
    """
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise FeedmeError(path, None, f"cannot read the feedme file: {err.strerror or err}") from None
    return parse_feedme(text, path)


def parse_feedme(text: str, path="<feedme>") -> Feedme:
    """Parse the text of a feedme file; ``path`` is used in messages and ``Feedme.path``.

    See :func:`read_feedme`.
    """
    parser = _Parser(str(path))
    for number, raw in enumerate(text.splitlines(), start=1):
        parser.feed(number, raw)
    return parser.finish(pathlib.Path(path))


class _Parser:
    """Line-by-line state machine behind :func:`parse_feedme`."""

    def __init__(self, path: str):
        self.path = path
        self.control: dict[str, tuple[list[str], int]] = {}
        self.components: list[dict] = []
        self.truncations: list[dict] = []  # GALFIT's truncation blocks (T0) ...), in file order
        self.current: dict | None = None
        self.comment = ""  # the current line's comment (after '#')

    def error(self, line: int | None, reason: str) -> FeedmeError:
        return FeedmeError(self.path, line, reason)

    # -- one line ---------------------------------------------------------------------
    def feed(self, number: int, raw: str) -> None:
        body, _, self.comment = raw.partition("#")
        body = body.strip()
        if not body or _RULE_LINE.match(body):
            return
        match = _KEY_LINE.match(body)
        if match is None:
            raise self.error(number, f"cannot parse {raw.strip()!r}: expected 'KEY) values' (e.g. 'J) 26.5')")
        key = match.group(1)
        tokens = match.group(2).split()
        ukey = key.upper()
        if ukey in _GALFITM_BAND_KEYS:
            self.band_line(number, ukey, tokens)
        elif len(key) == 1 and key.isalpha() and ukey != "Z":
            self.control_line(number, ukey, tokens)
        elif key == "0":
            self.start_component(number, tokens)
        elif ukey == "T0":
            self.start_truncation(number, tokens)
        elif self.current is None:
            if key[0].isalpha() and ukey != "Z" and not _HIDDEN_KEY.match(key):
                raise self.error(number, f"galprof does not support the control line '{key})' yet")
            raise self.error(number, f"parameter line '{key})' appears before any '0) type' component line")
        elif "truncation" in self.current:
            self.truncation_line(number, key, tokens)
        else:
            self.component_line(number, key, tokens)

    def band_line(self, number: int, key: str, tokens: list[str]) -> None:
        """GALFITM's band labels (A1) and wavelengths (A2): one band is read (and its label
        ignored); several bands are refused by name."""
        items = [item for item in ",".join(tokens).split(",") if item]
        if len(items) > 1:
            raise self.error(number, f"a multi-band GALFITM feedme ('{key})' lists {len(items)} bands: "
                                     f"{','.join(items)}); read it with galprof.io.galfitm.read_galfitm_feedme")

    def control_line(self, number: int, key: str, tokens: list[str]) -> None:
        if key in _IGNORED_CONTROL_KEYS:
            return
        if key == "U":
            self.galfitm_switch(number, "U", tokens, "GALFITM's non-parametric component")
            return
        if key == "V":
            self.galfitm_switch(number, "V", tokens, "GALFITM's MultiNest sampling (galprof samples the "
                                                      "posterior with --errors posterior)")
            return
        if key == "W":
            self.output_options(number, tokens)
            return
        if key == "A" and tokens and len([item for item in tokens[0].split(",") if item]) > 1:
            raise self.error(number, f"a multi-band GALFITM feedme ('A)' lists {tokens[0].count(',') + 1} images); "
                                     "read it with galprof.io.galfitm.read_galfitm_feedme")
        if key not in _CONTROL_KEYS:
            raise self.error(number, f"galprof does not support the control line '{key})' yet")
        if key in self.control:
            raise self.error(number, f"control line '{key})' given twice (first at line {self.control[key][1]})")
        self.control[key] = (tokens, number)

    def galfitm_switch(self, number: int, key: str, tokens: list[str], what: str) -> None:
        """GALFITM's ``U) n,a,b,c,d[,r,t]`` (non-parametric component, updated every n
        iterations) and ``V) n,...`` (MultiNest options): a first value of 0 turns the
        feature off and is accepted; galprof has neither, so anything else is refused by name."""
        items = [item for item in ",".join(tokens).split(",") if item]
        try:
            switch = float(items[0]) if items else 0.0
        except ValueError:
            raise self.error(number, f"'{key})': {items[0]!r} is not a number") from None
        if switch != 0:
            raise self.error(number, f"'{key}) {' '.join(tokens)}' turns on {what}, which galprof does not "
                                     f"have here (use '{key}) 0')")

    def output_options(self, number: int, tokens: list[str]) -> None:
        """GALFITM's ``W)``: the extensions of the image block. galprof always writes
        GALFIT's blank, input, model and residual; other extensions get a warning."""
        items = {item.lower() for item in ",".join(tokens).split(",") if item}
        extra = sorted(items - {"blank", "input", "model", "residual"})
        if extra:
            warnings.warn(f"{self.path}:{number}: 'W)': galprof writes the image block's blank, input, model and "
                          f"residual extensions, not {', '.join(extra)}", FeedmeWarning, stacklevel=3)

    def start_component(self, number: int, tokens: list[str]) -> None:
        if not tokens:
            raise self.error(number, "'0)' needs a component type")
        # GALFIT reads the first word: "0) sersic   object type" (a comment without '#') is fine
        profile = tokens[0].lower()
        if _profile_class(profile) is None:
            raise self.error(number, f"unknown component type {tokens[0]!r} "
                                     f"(supported: {', '.join(supported_profiles())})")
        self.current = {"profile": profile, "line": number, "values": {}, "free": {}, "lines": {},
                        "seen": {}, "skip": False}
        self.components.append(self.current)

    def component_line(self, number: int, key: str, tokens: list[str]) -> None:
        comp = self.current
        profile = comp["profile"]
        ukey = key.upper()
        if ukey in comp["seen"]:
            raise self.error(number, f"line '{key})' given twice in component {len(self.components)} "
                                     f"(first at line {comp['seen'][ukey]})")
        comp["seen"][ukey] = number
        if tokens and tokens[-1].lower() in _GALFITM_BASES:
            tokens = tokens[:-1]  # GALFITM's wavelength basis of the line: one band has no wavelength dependence
        if ukey == "Z":
            if len(tokens) != 1 or tokens[0] not in ("0", "1"):
                raise self.error(number, f"'Z)' takes one flag, 0 or 1; got {' '.join(tokens) or 'nothing'!r}")
            comp["skip"] = tokens[0] == "1"
            return
        if _HIDDEN_KEY.match(key):
            self.hidden_line(number, key, tokens)
            return
        if _MODIFIER_KEY.match(key):
            cls = _profile_class(profile)
            if not (issubclass(cls, EllipticalProfile) and cls.radial):
                raise self.error(number, f"line '{key})': a {profile} component takes no shape modifiers "
                                         "(C0 and Fourier modes apply to radial elliptical profiles)")
            ukey = key.upper()
            names = ("c0",) if ukey == "C0" else (f"f{ukey[1:]}_amp", f"f{ukey[1:]}_phase")
            values, flags = self.values_and_flags(number, key, tokens, len(names))
            for name, value, flag in zip(names, values, flags):
                comp["values"][name] = value
                comp["free"][name] = flag
                comp["lines"][name] = number
            return
        if not key.isdigit():
            raise self.error(number, f"unknown parameter line '{key})' in a {profile} component")
        names = profile_lines(profile).get(key)
        if names == ("x", "y") and len(tokens) == 2:
            names = ("x",)  # GALFITM writes x on line 1) and y on line 2), each with its own flag
            comp["split_position"] = number
        elif key == "2" and comp.get("split_position") and names is None:
            names = ("y",)
        if comp.get("galfit2") and key in ("9", "10"):
            names = {"9": ("pa",), "10": ("c0",)}[key]  # GALFIT 2: 9) PA, 10) diskiness/boxiness
        elif key == "8" and self.galfit2_axis_ratio(number, profile, tokens):
            comp["galfit2"] = number
            names = ("q",)
        if names is None:
            if profile != "sky" and key in ("2", "4", "5", "6", "7", "8", "9", "10"):
                # GALFIT writes unused lines (6-8 of a sersic as "value 0"; 4-10 of a psf in its
                # own restart files, q and PA with the flag -1): accept and ignore.
                values, flags = self.values_and_flags(number, key, tokens, 1, placeholder=True)
                if flags[0]:
                    raise self.error(number, f"line '{key})' is not a parameter of a {profile} component "
                                             "and cannot be free (flag 1)")
                return
            raise self.error(number, f"line '{key})' is not a parameter of a {profile} component "
                                     f"(it uses lines {', '.join(profile_lines(profile))})")
        values, flags = self.values_and_flags(number, key, tokens, len(names))
        for name, value, flag in zip(names, values, flags):
            comp["values"][name] = value
            comp["free"][name] = flag
            comp["lines"][name] = number

    # -- GALFIT's bending (B), coordinate rotation (R) and truncation (T) lines --------------
    def hidden_line(self, number: int, key: str, tokens: list[str]) -> None:
        """A component's ``B<m>) amplitude flag``, ``R0) function``, ``R<k>) value flag``
        (k = 1-4, 9, 10) or ``Ti) N`` / ``To) N`` (inner / outer truncation by the ``T0)``
        block numbered N); see :mod:`galprof.profiles.modifiers` for their parameters."""
        comp = self.current
        ukey = key.upper()
        cls = _profile_class(comp["profile"])
        if not (issubclass(cls, EllipticalProfile) and cls.radial):
            raise self.error(number, f"line '{key})': a {comp['profile']} component takes no bending, rotation or "
                                     "truncation (they apply to radial elliptical profiles)")
        if ukey in ("TI", "TO"):
            if len(tokens) != 1:
                raise self.error(number, f"'{key})' names one truncation block (its component number), got "
                                         f"{' '.join(tokens) or 'nothing'!r}")
            side = "in" if ukey == "TI" else "out"
            comp.setdefault("truncation_refs", []).append((side, self.integer(number, key, tokens[0]), number))
            return
        if ukey.startswith("T"):
            raise self.error(number, f"line '{key})' belongs in a truncation block, which opens with 'T0) radial' "
                                     "and which a component names on its 'Ti)' or 'To)' line")
        if ukey.startswith("B"):
            if not 1 <= int(ukey[1:]) <= 10:
                raise self.error(number, f"bending modes run from B1) to B10), got '{key})'")
            (value,), (flag,) = self.values_and_flags(number, key, tokens, 1)
            name = f"b{int(ukey[1:])}"
            comp["values"][name], comp["free"][name], comp["lines"][name] = value, flag, number
            return
        if ukey == "R0":
            kind = tokens[0].lower() if len(tokens) == 1 else None
            if kind not in _ROTATION_FUNCTIONS:
                raise self.error(number, f"'R0) {' '.join(tokens)}': the rotation function is one of power, log, "
                                         "tanh or none")
            comp["rotation"] = (_ROTATION_FUNCTIONS[kind], number)
            return
        if ukey[1:] not in ("1", "2", "3", "4", "9", "10"):
            raise self.error(number, f"'{key})' is not a coordinate-rotation line (R0)-R4), R9), R10))")
        (value,), (flag,) = self.values_and_flags(number, key, tokens, 1)
        comp.setdefault("rotation_lines", {})[ukey[1:]] = (value, flag, number)

    def start_truncation(self, number: int, tokens: list[str]) -> None:
        """``T0) type``: a truncation block, a component of its own in GALFIT's numbering."""
        kind = tokens[0].lower() if tokens else ""
        if kind not in _TRUNCATION_TYPES:
            raise self.error(number, f"'T0) {' '.join(tokens)}': galprof reads the truncation types "
                                     f"{', '.join(_TRUNCATION_TYPES)} (not GALFIT's inclined 'b' types)")
        self.current = {"truncation": kind, "line": number, "values": {}, "free": {}, "lines": {}, "seen": {},
                        "after": len(self.components), "number": len(self.components) + len(self.truncations) + 1}
        self.truncations.append(self.current)

    def truncation_line(self, number: int, key: str, tokens: list[str]) -> None:
        """A line of a truncation block: T1) x y fx fy (its own centre), T4) break radius,
        T5) softening length (type 2: softening radius), T9) q, T10) PA; Z) is ignored."""
        block = self.current
        ukey = key.upper()
        if ukey in block["seen"]:
            raise self.error(number, f"line '{key})' given twice in truncation block {block['number']} "
                                     f"(first at line {block['seen'][ukey]})")
        block["seen"][ukey] = number
        if ukey == "Z":
            return
        if tokens and tokens[-1].lower() in _GALFITM_BASES:
            tokens = tokens[:-1]
        geometry, softening = _TRUNCATION_TYPES[block["truncation"]]
        what = {"1": ("x", "y"), "4": ("break",), "5": ("soft_at" if softening == "radius" else "soft",),
                "9": ("q",), "10": ("pa",)}.get(ukey[1:]) if re.fullmatch(r"T\d+", ukey) else None
        if what is None:
            raise self.error(number, f"line '{key})' is not a line of a truncation block (T0) type, T1) x y, "
                                     "T4) break radius, T5) softening, T9) axis ratio, T10) PA)")
        if what == ("q",) and geometry != "radial":
            raise self.error(number, f"a '{block['truncation']}' truncation has no axis ratio (T9))")
        values, flags = self.values_and_flags(number, key, tokens, len(what))
        for name, value, flag in zip(what, values, flags):
            block["values"][name], block["free"][name], block["lines"][name] = value, flag, number

    def resolve_hidden(self) -> None:
        """After the last line: GALFIT's component numbers (truncation blocks count), each
        component's rotation lines as parameters (R9, R10 default to 0, fixed), and the
        truncation blocks its Ti)/To) lines name merged into its values."""
        blocks = {b["number"]: b for b in self.truncations}
        used: dict[int, int] = {}
        for index, comp in enumerate(self.components):
            comp["number"] = index + 1 + sum(1 for b in self.truncations if b["after"] <= index)
            self.resolve_rotation(comp)
            refs = comp.get("truncation_refs", [])
            for side, n, line in refs:
                if [s for s, _, _ in refs].count(side) > 1:
                    raise self.error(line, f"galprof reads one {_SIDE[side]} truncation per component")
                block = blocks.get(n)
                if block is None:
                    raise self.error(line, f"'T{side[0]}) {n}': component {n} is not a truncation block "
                                           "('T0) radial' ...)")
                if n in used:
                    raise self.error(line, f"truncation block {n} is already used by component {used[n]}; "
                                           "give each component a block of its own")
                used[n] = comp["number"]
                if "break" not in block["values"] or not {"soft", "soft_at"} & set(block["values"]):
                    raise self.error(block["line"], f"truncation block {n} needs T4) (break radius) and T5) "
                                                    "(softening)")
                geometry, _ = _TRUNCATION_TYPES[block["truncation"]]
                prefix = f"trunc_{side}" + ("" if geometry == "radial" else f"_{geometry}")
                for what, value in block["values"].items():
                    name = f"{prefix}_{what}"
                    comp["values"][name], comp["free"][name] = value, block["free"][what]
                    comp["lines"][name] = block["lines"][what]
            comp["truncation_blocks"] = tuple((side, n) for side, n, _ in refs)
            if hidden_shape(comp["values"]):
                try:
                    profile_for_values(_profile_class(comp["profile"]), comp["values"].keys())
                except (TypeError, ValueError) as err:
                    raise self.error(comp["line"], f"component {comp['number']} ({comp['profile']}): {err}") from None
        for block in self.truncations:
            if block["number"] not in used:
                warnings.warn(f"{self.path}:{block['line']}: truncation block {block['number']} is not named by any "
                              "component's 'Ti)' or 'To)' line; ignored", FeedmeWarning, stacklevel=3)

    def resolve_rotation(self, comp: dict) -> None:
        lines = comp.get("rotation_lines", {})
        if "rotation" not in comp:
            if lines:
                first = min(line for _, _, line in lines.values())
                raise self.error(first, "coordinate-rotation lines need 'R0)' (the function: power, log, tanh, none)")
            return
        kind, line = comp["rotation"]
        if kind is None:
            if lines:
                warnings.warn(f"{self.path}:{line}: 'R0) none': the rotation lines R1)..R10) are ignored",
                              FeedmeWarning, stacklevel=4)
            return
        names = dict(_ROTATION_NAMES)
        if kind != "tanh":
            names["4"] = "rot_alpha" if kind == "power" else "rot_r_ws"
        elif "4" in lines:
            raise self.error(lines["4"][2], "'R0) tanh' (the pure hyperbolic tangent) takes no R4)")
        missing = [f"R{k})" for k in ("1", "2", "3", "4") if k in names and k not in lines]
        if missing:
            raise self.error(line, f"'R0)' needs {', '.join(missing)} (power: R4) alpha; log: R4) winding radius)")
        for k, name in names.items():
            value, flag, number = lines.get(k, (0.0, False, line))  # R9), R10) default to face-on, fixed
            comp["values"][name], comp["free"][name], comp["lines"][name] = value, flag, number

    def galfit2_axis_ratio(self, number: int, profile: str, tokens: list[str]) -> bool:
        """Whether line 8) of this component is GALFIT 2's axis ratio (pymorph still writes
        GALFIT-2 numbering: 8) q, 9) PA, 10) diskiness/boxiness): a value in (0, 1], free or
        commented as an axis ratio, in a component whose GALFIT-3 lines 9) and 10) are q and PA."""
        lines = profile_lines(profile)
        if lines.get("9") != ("q",) or lines.get("10") != ("pa",) or "8" in lines:
            return False
        if len(tokens) != 2:
            return False
        try:
            value = float(tokens[0])
        except ValueError:
            return False
        comment = self.comment.lower()
        if not (0 < value <= 1 and (tokens[1] == "1" or "axis ratio" in comment or "b/a" in comment)):
            return False
        cls = _profile_class(profile)
        if not (issubclass(cls, EllipticalProfile) and cls.radial):
            raise self.error(number, f"line '8)' is GALFIT 2's axis ratio (GALFIT-2 numbering: 8) q, 9) PA, "
                                     f"10) boxiness), which galprof reads only for radial profiles, not {profile}; "
                                     "renumber to GALFIT 3's 9) q, 10) PA")
        warnings.warn(f"{self.path}:{number}: GALFIT-2 numbering (8) axis ratio, 9) PA, 10) diskiness/boxiness) "
                      "read as GALFIT 3's 9) q, 10) PA and C0)", FeedmeWarning, stacklevel=2)
        return True

    def values_and_flags(self, number: int, key: str, tokens: list[str], count: int, placeholder: bool = False):
        """Values and fit flags (True: free) of a parameter line; ``placeholder``: a line the
        component does not use, where GALFIT's own ``-1`` (not a parameter) is fixed too."""
        if len(tokens) == count and not placeholder:
            # GALFIT reads a line without fit flags (e.g. "F1) 0.2 90"): its parameters stay fixed
            values = [self.number(number, key, t) for t in tokens]
            warnings.warn(f"{self.path}:{number}: line '{key})' has no fit flags; read as fixed (0)",
                          FeedmeWarning, stacklevel=3)
            return values, [False] * count
        if len(tokens) != 2 * count:
            shape = " ".join(["value"] * count + ["flag"] * count)
            raise self.error(number, f"line '{key})' needs {2 * count} tokens ({shape}), got {len(tokens)}")
        values = [self.number(number, key, t) for t in tokens[:count]]
        flags = []
        for t in tokens[count:]:
            if placeholder and t == "-1":
                flags.append(False)
            elif t.isdigit():
                flags.append(t != "0")
            else:
                raise self.error(number, f"line '{key})': fit flag must be 0 (fixed) or 1 (free), got {t!r}")
        above_one = sorted({t for t in tokens[count:] if t.isdigit() and int(t) > 1})
        if above_one:
            # GALFIT accepts flags above 1 and echoes them into its restart files; in GALFITM
            # a flag N >= 1 is N free wavelength terms, which is one free value for one band.
            warnings.warn(f"{self.path}:{number}: line '{key})': fit flag {', '.join(above_one)} read as free (1); "
                          "tie parameters of several components with a constraint file", FeedmeWarning,
                          stacklevel=3)
        return values, flags

    def number(self, number: int, key: str, token: str) -> float:
        try:
            value = float(token)
        except ValueError:
            raise self.error(number, f"line '{key})': {token!r} is not a number") from None
        if not math.isfinite(value):
            raise self.error(number, f"line '{key})': {token!r} is not a finite number")
        return value

    def box_sizes(self, number: int, tokens: list[str]) -> tuple[int, int]:
        """The convolution box of ``I) nx ny`` as GALFIT reads it: two integers read as C's
        ``%d %d`` does, so reading stops at a decimal point. ``I) 109.3333 109.3333`` and
        ``I) 30.0 30.0`` are read as 109 x 0 and 30 x 0: a box with no pixels, which
        convolves nothing (GALFITM records such a run as ``CONVBOX = '30, 0'`` and its
        model images are unconvolved). The caller warns."""
        sizes = []
        for token in tokens:
            match = re.match(r"[+-]?\d+", token)
            if match is None:
                raise self.error(number, f"line 'I)': {token!r} is not a number")
            sizes.append(int(match.group(0)))
            if match.group(0) != token:  # the integer ends inside the token: %d stops there
                break
        sizes += [0] * (2 - len(sizes))
        return sizes[0], sizes[1]

    def integer(self, number: int, key: str, token: str) -> int:
        value = self.number(number, key, token)
        if value != int(value):
            raise self.error(number, f"line '{key})': {token!r} is not an integer")
        return int(value)

    # -- end of file ------------------------------------------------------------------
    def finish(self, path: pathlib.Path) -> Feedme:
        self.resolve_hidden()
        for key, what in _REQUIRED_CONTROL.items():
            if key not in self.control or (key in "ABJ" and not self.control[key][0]):
                if key in self.control:
                    raise self.error(self.control[key][1], f"'{key})' ({what}) is empty")
                raise self.error(None, f"missing required line '{key})' ({what})")
        if not self.components:
            raise self.error(None, "no components: at least one '0) type' block is required")

        def one_file(key: str, allow_none: bool) -> str | None:
            tokens, line = self.control.get(key, ([], None))
            if not tokens:
                return None
            if len(tokens) != 1:
                raise self.error(line, f"'{key})' takes one file name, got {len(tokens)} tokens")
            if allow_none and tokens[0].lower() == "none":
                return None
            return tokens[0]

        input_image, input_extension = self.input_image()
        output_image = one_file("B", allow_none=False)
        sigma_image = self.sigma_image()
        psf_image, psf_kernel = self.psf()
        mask = one_file("F", allow_none=True)
        constraint_file = one_file("G", allow_none=True)

        oversampling = 1
        if "E" in self.control and self.control["E"][0]:
            tokens, line = self.control["E"]
            if len(tokens) != 1:
                raise self.error(line, f"'E)' takes one integer, got {len(tokens)} tokens")
            oversampling = self.integer(line, "E", tokens[0])
            if oversampling < 1:
                raise self.error(line, "'E)': the PSF fine-sampling factor must be a positive integer, "
                                       f"got {oversampling}")

        tokens, line = self.control["H"]
        if len(tokens) != 4:
            raise self.error(line, f"'H)' needs 4 integers (xmin xmax ymin ymax), got {len(tokens)} tokens")
        xmin, xmax, ymin, ymax = (self.integer(line, "H", t) for t in tokens)
        if xmin > xmax or ymin > ymax:
            raise self.error(line, f"'H)': empty fit region, need xmin <= xmax and ymin <= ymax, got "
                                   f"x {xmin}..{xmax}, y {ymin}..{ymax}")
        if xmin < 1 or ymin < 1:
            raise self.error(line, f"'H)': pixel coordinates are 1-based, got xmin={xmin}, ymin={ymin}")

        convolution_box = None
        if "I" in self.control and self.control["I"][0]:
            tokens, line = self.control["I"]
            if len(tokens) != 2:
                raise self.error(line, f"'I)' needs 2 integers (nx ny), got {len(tokens)} tokens")
            for token in tokens:
                self.number(line, "I", token)  # a number, or a clear error
            convolution_box = self.box_sizes(line, tokens)
            if min(convolution_box) < 0:
                raise self.error(line, f"'I)': convolution box sizes must not be negative, got {convolution_box}")
            if any(not re.fullmatch(r"[+-]?\d+", t) for t in tokens):
                effect = ("a box with no pixels: nothing is convolved with the PSF, as in GALFIT"
                          if min(convolution_box) == 0 else "")
                warnings.warn(f"{self.path}:{line}: 'I) {' '.join(tokens)}': GALFIT reads two integers and stops "
                              f"at a decimal point, so the convolution box is {convolution_box[0]} x "
                              f"{convolution_box[1]}{'; ' + effect if effect else ''}; write whole numbers "
                              "(e.g. 'I) 30 30') to convolve", FeedmeWarning, stacklevel=2)
            elif min(convolution_box) == 0:
                warnings.warn(f"{self.path}:{line}: 'I) {' '.join(tokens)}': a box with no pixels: nothing is "
                              "convolved with the PSF, as in GALFIT", FeedmeWarning, stacklevel=2)

        tokens, line = self.control["J"]
        if len(tokens) != 1:
            raise self.error(line, f"'J)' takes one number (the zeropoint), got {len(tokens)} tokens")
        zeropoint = self.number(line, "J", tokens[0])

        plate_scale = (1.0, 1.0)
        if "K" in self.control and self.control["K"][0]:
            tokens, line = self.control["K"]
            if len(tokens) not in (1, 2):
                raise self.error(line, f"'K)' needs 2 numbers (dx dy), got {len(tokens)} tokens")
            scale = [self.number(line, "K", t) for t in tokens]
            plate_scale = (scale[0], scale[-1])

        display_type = "regular"
        if "O" in self.control and self.control["O"][0]:
            display_type = self.control["O"][0][0]

        mode = 0
        if "P" in self.control and self.control["P"][0]:
            tokens, line = self.control["P"]
            if len(tokens) != 1:
                raise self.error(line, f"'P)' takes one integer (0-3), got {len(tokens)} tokens")
            mode = self.integer(line, "P", tokens[0])
            if mode not in (0, 1, 2, 3):
                raise self.error(line, f"'P)' must be 0 (optimise), 1 (model), 2 (image block) or 3 "
                                       f"(image block + components), got {mode}")

        return Feedme(
            path=path,
            input_image=input_image,
            input_extension=input_extension,
            output_image=output_image,
            sigma_image=sigma_image,
            psf_image=psf_image,
            psf_diffusion_kernel=psf_kernel,
            psf_oversampling=oversampling,
            mask=mask,
            constraint_file=constraint_file,
            fit_region=(xmin, xmax, ymin, ymax),
            convolution_box=convolution_box,
            zeropoint=zeropoint,
            plate_scale=plate_scale,
            display_type=display_type,
            mode=mode,
            components=tuple(self.build_component(i, c) for i, c in enumerate(self.components, start=1)),
            line_numbers={k: line for k, (_, line) in self.control.items()},
        )

    def input_image(self) -> tuple[str, int | None]:
        tokens, line = self.control["A"]
        if len(tokens) != 1:
            raise self.error(line, f"'A)' takes one file name, got {len(tokens)} tokens "
                                   "(multi-band GALFITM input is not supported)")
        try:
            return split_extension(tokens[0])
        except InputError as err:
            raise self.error(line, f"'A)': {err}") from None

    def sigma_image(self) -> str | None:
        tokens, line = self.control.get("C", ([], None))
        if not tokens:
            return None
        if len(tokens) > 2:
            raise self.error(line, f"'C)' takes one file name, got {len(tokens)} tokens")
        if len(tokens) == 2:
            # GALFITM allows a minimum-sigma factor as a second number.
            floor = self.number(line, "C", tokens[1])
            if floor != 0.0:
                raise self.error(line, "galprof does not support a minimum-sigma factor on 'C)' yet")
        return None if tokens[0].lower() == "none" else tokens[0]

    def psf(self) -> tuple[str | None, str | None]:
        tokens, line = self.control.get("D", ([], None))
        if not tokens:
            return None, None
        if len(tokens) > 2:
            raise self.error(line, f"'D)' takes a PSF image and an optional diffusion kernel, got {len(tokens)} tokens")
        psf = None if tokens[0].lower() == "none" else tokens[0]
        kernel = None
        if len(tokens) == 2 and tokens[1].lower() != "none":
            kernel = tokens[1]
        if psf is None and kernel is not None:
            raise self.error(line, "'D)': a diffusion kernel needs a PSF image")
        return psf, kernel

    def build_component(self, index: int, comp: dict) -> FeedmeComponent:
        profile = comp["profile"]
        defaults = _OPTIONAL_DEFAULTS.get(profile, {})
        values, free, lines = dict(comp["values"]), dict(comp["free"]), dict(comp["lines"])
        lines_of = profile_lines(profile, values.keys())
        for key, names in lines_of.items():
            for name in names:
                if name in values:
                    continue
                if name in defaults:
                    values[name], free[name], lines[name] = defaults[name], False, comp["line"]
                    continue
                raise self.error(comp["line"], f"component {index} ({profile}) is missing line '{key})' ({name})")
        order = [n for names in lines_of.values() for n in names]
        lines["profile"] = comp["line"]
        return FeedmeComponent(
            number=comp.get("number", index),
            profile=profile,
            values={n: values[n] for n in order},
            free={n: free[n] for n in order},
            skip_in_residual=comp["skip"],
            line_numbers=lines,
            truncation_blocks=comp.get("truncation_blocks", ()),
        )


# ----------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------


def format_number(value: float, decimals: int = 4) -> str:
    """Shortest fixed-point text with at least ``decimals`` decimals that reads back exactly.

    Falls back to Python's shortest round-trip representation, so that
    ``float(format_number(v)) == v`` always holds.
    """
    value = float(value)
    if value == 0.0:
        return f"{0.0:.{decimals}f}"
    if 1e-4 <= abs(value) < 1e12:
        for d in range(decimals, 11):
            text = f"{value:.{d}f}"
            if float(text) == value:
                return text
    return repr(value)


def _fmt_flag(free: bool) -> str:
    return "1" if free else "0"


def _file_or_none(name: str | None) -> str:
    return "none" if name is None else name


def format_feedme(
    feedme: Feedme,
    values: list[dict[str, float]] | None = None,
    *,
    chi2: float | None = None,
    ndof: int | None = None,
    chi2nu: float | None = None,
) -> str:
    """GALFIT-3-style feedme text, e.g. for a ``galfit.NN`` restart file.

    Parameters
    ----------
    feedme : Feedme
        The control lines and components to write.
    values : list of dict, optional
        New parameter values, one dict per component in the order of
        ``feedme.components`` (internal names; a dict may hold only some parameters).
        Free/fixed flags and ``Z)`` are kept.
    chi2, ndof, chi2nu : optional
        When given, written in the ``#  Chi^2/nu = ...`` comment line at the top, as
        GALFIT does in its restart files.

    Returns
    -------
    str
        Text that :func:`read_feedme` reads back to the same settings and values
        (numbers are written with at least 4 decimals and as many more as needed to
        round-trip exactly).

    Raises
    ------
    ValueError
        If ``values`` does not have one dict per component or names unknown parameters.
    """
    comps = list(feedme.components)
    if values is not None:
        if len(values) != len(comps):
            raise ValueError(f"values has {len(values)} entries for {len(comps)} components")
        for comp, new in zip(comps, values):
            unknown = set(new) - set(comp.values)
            if unknown:
                raise ValueError(f"component {comp.number} ({comp.profile}) has no parameter(s) {sorted(unknown)}")
    out: list[str] = [""]
    out.append(f"#  Input menu file: {feedme.path}")
    out.append("")
    if chi2 is not None or chi2nu is not None or ndof is not None:
        parts = []
        if chi2nu is not None:
            parts.append(f"Chi^2/nu = {chi2nu:.3f}")
        if chi2 is not None:
            parts.append(f"Chi^2 = {chi2:.3f}")
        if ndof is not None:
            parts.append(f"Ndof = {int(ndof)}")
        out.append("#  " + ",  ".join(parts))
        out.append("")
    out.append("=" * 80)
    out.append("# IMAGE and GALFIT CONTROL PARAMETERS (written by galprof)")

    def control(key: str, value: str, comment: str) -> None:
        out.append(f"{key}) {value:<18s}  # {comment}")

    xmin, xmax, ymin, ymax = feedme.fit_region
    control("A", feedme.input_spec, "Input data image (FITS file)")
    control("B", feedme.output_image, "Output data image block")
    control("C", _file_or_none(feedme.sigma_image), 'Sigma image name (made from data if blank or "none")')
    psf = _file_or_none(feedme.psf_image)
    if feedme.psf_diffusion_kernel is not None:
        psf = f"{psf} {feedme.psf_diffusion_kernel}"
    control("D", psf, "Input PSF image and (optional) diffusion kernel")
    control("E", str(feedme.psf_oversampling), "PSF fine sampling factor relative to data")
    control("F", _file_or_none(feedme.mask), "Bad pixel mask (FITS image or ASCII coord list)")
    control("G", _file_or_none(feedme.constraint_file), "File with parameter constraints (ASCII file)")
    control("H", f"{xmin} {xmax} {ymin} {ymax}", "Image region to fit (xmin xmax ymin ymax)")
    if feedme.convolution_box is not None:
        control("I", f"{feedme.convolution_box[0]} {feedme.convolution_box[1]}", "Size of the convolution box (x y)")
    control("J", format_number(feedme.zeropoint, 3), "Magnitude photometric zeropoint")
    control("K", f"{format_number(feedme.plate_scale[0])} {format_number(feedme.plate_scale[1])}",
            "Plate scale (dx dy)  [arcsec per pixel]")
    control("O", feedme.display_type, "Display type (regular, curses, both)")
    control("P", str(feedme.mode), "Choose: 0=optimize, 1=model, 2=imgblock, 3=subcomps")
    out.append("")
    out.append("# INITIAL FITTING PARAMETERS")
    out.append("#   par)    par value(s)    fit toggle(s)    # parameter description")

    # truncation blocks (GALFIT numbers them among the components) at their numbers, or after the last
    numbers = [c.number for c in comps] + [n for c in comps for _, n in c.truncation_blocks]
    blocks: list[tuple[int, int, str]] = []
    for i, comp in enumerate(comps):
        recorded = dict(comp.truncation_blocks)
        for truncation in hidden_shape(comp.values).truncations:
            if truncation.side not in recorded:
                recorded[truncation.side] = max(numbers) + 1
                numbers.append(recorded[truncation.side])
            blocks.append((recorded[truncation.side], i, truncation.side))
    blocks.sort()
    all_values = []
    for i, comp in enumerate(comps):
        vals = dict(comp.values)
        if values is not None:
            vals.update({k: float(v) for k, v in values[i].items()})
        all_values.append(vals)
    for i, comp in enumerate(comps):
        vals = all_values[i]
        while blocks and blocks[0][0] < comp.number:
            number, owner, side = blocks.pop(0)
            out += _truncation_lines(comps[owner], all_values[owner], number, side)
        out.append("")
        out.append(f"# Component number: {comp.number}")
        out.append(f" 0) {comp.profile:<22s} #  Component type")
        for key, names in profile_lines(comp.profile, comp.values.keys()).items():
            if key.upper().startswith(("TI", "TO")):
                continue  # written in the truncation block
            if key == "R1":
                kind = "power" if "rot_alpha" in vals else "log" if "rot_r_ws" in vals else "tanh"
                out.append(f"R0) {kind:<23s}#  PA rotation function (power, log, tanh, none)")
            nums = " ".join(format_number(vals[n]) for n in names)
            flags = " ".join(_fmt_flag(comp.free[n]) for n in names)
            comment = _line_comment(comp.profile, key, comp.values.keys())
            out.append(f"{key:>2s}) {nums + '  ' + flags:<23s}#  {comment}")
        for number, owner, side in blocks:
            if owner == i:
                out.append(f"T{side[0]}) {number:<23d}#  {_SIDE[side].capitalize()} truncation by component {number}")
        for side, number in comp.truncation_blocks:
            if not any(owner == i and s == side for _, owner, s in blocks):  # already written above this component
                out.append(f"T{side[0]}) {number:<23d}#  {_SIDE[side].capitalize()} truncation by component {number}")
        out.append(f" Z) {int(comp.skip_in_residual):<23d}#  Skip this model in output image?  (yes=1, no=0)")
    for number, owner, side in blocks:
        out += _truncation_lines(comps[owner], all_values[owner], number, side)
    out.append("")
    out.append("=" * 80)
    out.append("")
    return "\n".join(out)


_RESTART = re.compile(r"^galfit\.(\d{2,})$")


def next_restart_path(directory) -> pathlib.Path:
    """The next restart file name in ``directory``: ``galfit.01``, ``galfit.02``, ...

    Parameters
    ----------
    directory : str or os.PathLike
        Where the restart file will be written.

    Returns
    -------
    pathlib.Path
        ``directory / galfit.NN`` with NN one more than the highest existing number
        (so numbers keep increasing even when an earlier file was deleted), at least 01
        and written with at least two digits.
    """
    d = pathlib.Path(directory)
    highest = 0
    if d.is_dir():
        for entry in d.iterdir():
            match = _RESTART.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return d / f"galfit.{highest + 1:02d}"
