"""Reading and writing imfit configuration files, and mapping them onto galprof models.

The format (imfit 1.9)::

    GAIN        4.725          # optional prelude: GAIN, READNOISE, EXPTIME, NCOMBINED, ORIGINAL_SKY
    X0   129.0   125,135       # a function set: its centre, with optional limits or "fixed"
    Y0   129.0   125,135
    FUNCTION Sersic   # LABEL bulge
    PA    18.0    0,90         # name value [low,high | fixed]
    ell    0.2    0,1
    n      1.5    0,5
    I_e    15     0,500
    r_e    25     0,100

``#`` starts a comment anywhere; ``# LABEL text`` on a FUNCTION line names the
component. A new ``X0`` line starts a new function set; all functions of a set share
its centre (galprof ties their x and y offsets). Inside a function, an
``OPTIONAL_PARAMS_START`` ... ``OPTIONAL_PARAMS_END`` block holds ``name value`` lines
(imfit 1.9: PointSource's ``method``; see :func:`parse_imfit_config`).

Every function of imfit 1.9 is read: the converted built-ins of
:data:`IMFIT_FUNCTIONS`, and the registered profiles whose ``imfit_name`` is the
function (``Sersic_GenEllipse``, ``FerrersBar2D``, the 3-D functions, ...), whose
parameters map one to one by their ``ParameterSpec.imfit`` labels (in the order
``imfit_order`` gives, when set; ``c0`` is galprof's C0 shape modifier).

imfit's parameterisation is converted to galprof's (see :mod:`galprof.conversions`):
ell = 1 - q, surface brightness I_e / I_0 [counts/pix] <-> total magnitude with
zeropoint 0 and EXPTIME 1 (mag = -2.5 log10 F), Gaussian sigma <-> FWHM, the
TiltedSkyPlane's I_0 at the set centre <-> the sky at the centre of the image. Limits
on PA, ell, sizes, n, beta and the centre become bounds; limits on intensities are not
representable as magnitude bounds (the map depends on the shape) and are kept only for
writing the best-fit file back.
"""

from __future__ import annotations

import math
import pathlib
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import conversions as conv
from ..constraints import Tie
from ..model import Component, Model
from ..profiles import available_profiles, get_profile
from ..profiles.modifiers import C0
from .feedme import FeedmeError

__all__ = [
    "IMFIT_FUNCTIONS",
    "ImfitConfig",
    "ImfitFunction",
    "ImfitFunctionSet",
    "ImfitParameter",
    "format_imfit_config",
    "function_parameters",
    "supported_functions",
    "imfit_sigma",
    "model_from_imfit",
    "parse_imfit_config",
    "read_imfit_config",
    "values_to_imfit",
]

#: Supported imfit functions and their parameters, in imfit's order.
IMFIT_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "Sersic": ("PA", "ell", "n", "I_e", "r_e"),
    "Exponential": ("PA", "ell", "I_0", "h"),
    "Gaussian": ("PA", "ell", "I_0", "sigma"),
    "Moffat": ("PA", "ell", "I_0", "fwhm", "beta"),
    "FlatSky": ("I_sky",),
    "TiltedSkyPlane": ("I_0", "m_x", "m_y"),
    "PointSource": ("I_tot",),
    # imfit's unit-test Gaussian (built only with USE_TEST_FUNCS): a Gaussian plus an
    # optional constant "floor"
    "GaussianExtraParams": ("PA", "ell", "I_0", "sigma"),
    # PointSource with the PSF image rotated by PA (galprof: PA fixed at 0 only)
    "PointSourceRot": ("I_tot", "PA"),
}
#: functions read as another built-in one (their extra features handled apart)
_SAME_AS = {"GaussianExtraParams": "Gaussian", "PointSourceRot": "PointSource"}
#: imfit functions outside imfit 1.9's standard set (built only with USE_EXTRA_FUNCS, or
#: newer than 1.9) that galprof does not have
_KNOWN_UNSUPPORTED = ("DattathriPeanut3D", "BPBar3D", "BrokenExpBar3D", "BrokenExponentialBar", "DoubleGaussian",
                      "DoubleBrokenExponentialDisk3D", "ExpDisk3D_PerfectTrunc", "FlatBar3D", "FlatBarTrunc",
                      "GenFlatBar", "GenExponential2", "LogSpiral", "LogSpiral2", "LogSpiral3", "LogSpiralArc",
                      "LogSpiralExp", "LogSpiralGauss", "LogSpiralBrokenExp", "LorentzianRing", "NukerLaw",
                      "Sersic_VarEll", "TriaxBar3D", "TriaxBar3D_SuperQuadric", "TriaxBar3D_GenGaussian_SuperQuadric")
#: imfit's PointSource interpolation methods (OPTIONAL_PARAMS ``method``)
_PSF_METHODS = ("bicubic", "Bicubic", "lanczos2", "Lanczos2", "lanczos3", "Lanczos3")


def _registered_function(name: str):
    """The registered galprof profile whose ``imfit_name`` is ``name`` (beyond the
    converted built-ins of :data:`IMFIT_FUNCTIONS`), or None. Such profiles carry
    imfit's parameterisation: every parameter maps one to one (an axis ratio labelled
    ``ell`` as 1 - ell, ``c0`` to galprof's C0 shape modifier)."""

    for profile in map(get_profile, available_profiles()):
        if profile.imfit_name == name:
            return profile
    return None


def _profile_labels(profile) -> tuple[str, ...]:
    """imfit labels of a registered profile's function, in imfit's order."""
    if profile.imfit_order is not None:
        return tuple(profile.imfit_order)
    labels = [p.imfit for p in profile.parameters if p.imfit and p.imfit not in ("X0", "Y0")]
    head = [k for k in ("PA", "ell") if k in labels]
    return tuple(head + [k for k in labels if k not in head])


def _label_spec(profile, label: str):
    """The ParameterSpec of a registered profile with imfit label ``label`` (``c0``:
    galprof's C0 modifier, with imfit's label)."""
    for spec in profile.parameters:
        if spec.imfit == label:
            return spec
    if label == "c0":
        return C0.relabel(imfit="c0")
    raise KeyError(f"profile {profile.name!r} has no imfit parameter {label!r}")


def function_parameters(name: str) -> tuple[str, ...] | None:
    """imfit parameter names of FUNCTION ``name`` in imfit's order, or None when galprof
    has no such function."""
    if name in IMFIT_FUNCTIONS:
        return IMFIT_FUNCTIONS[name]
    profile = _registered_function(name)
    if profile is None:
        return None
    return _profile_labels(profile)


def supported_functions() -> tuple[str, ...]:
    """The imfit function names galprof reads: the built-in conversions, then the
    registered profiles' imfit names, sorted."""
    extra = [get_profile(n).imfit_name for n in available_profiles()]
    return tuple(IMFIT_FUNCTIONS) + tuple(sorted(n for n in extra if n and n not in IMFIT_FUNCTIONS))


_PRELUDE = ("GAIN", "READNOISE", "EXPTIME", "NCOMBINED", "ORIGINAL_SKY")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass
class ImfitParameter:
    """One parameter line: value, optional limits (low, high) or fixed, and its line number."""

    name: str
    value: float
    low: float | None = None
    high: float | None = None
    fixed: bool = False
    line: int = field(default=0, compare=False)


@dataclass
class ImfitFunction:
    """One FUNCTION: its parameters by imfit label, its label, and the key-value pairs of
    its ``OPTIONAL_PARAMS_START`` ... ``OPTIONAL_PARAMS_END`` block (imfit 1.9), with
    the line of each."""

    name: str
    parameters: dict[str, ImfitParameter]
    label: str = ""
    line: int = field(default=0, compare=False)
    options: dict[str, str] = field(default_factory=dict)
    option_lines: dict[str, int] = field(default_factory=dict, compare=False)


@dataclass
class ImfitFunctionSet:
    x0: ImfitParameter
    y0: ImfitParameter
    functions: list[ImfitFunction] = field(default_factory=list)


@dataclass
class ImfitConfig:
    """A parsed configuration: prelude values (GAIN, READNOISE, ...) and function sets."""

    path: str
    prelude: dict[str, float]
    sets: list[ImfitFunctionSet]

    def functions(self):
        """[(set index, function), ...] in file order."""
        return [(k, f) for k, s in enumerate(self.sets) for f in s.functions]


class ImfitConfigWarning(UserWarning):
    """Something in an imfit configuration that imfit too would ignore or reinterpret
    (an unknown keyword, a parameter line whose name differs from its position's)."""


def _parameter(tokens, name, number, fail) -> ImfitParameter:
    if len(tokens) < 2 or not re.fullmatch(_NUMBER, tokens[1]):
        fail(f"expected '{name} value [low,high | fixed]', got {' '.join(tokens)!r}")
    value = float(tokens[1])
    rest = "".join(tokens[2:])
    if not rest:
        return ImfitParameter(name, value, line=number)
    if rest.lower() == "fixed":
        return ImfitParameter(name, value, fixed=True, line=number)
    match = re.fullmatch(rf"({_NUMBER}),({_NUMBER})", rest)
    if not match:
        fail(f"limits of {name} must be 'low,high' or 'fixed', got {' '.join(tokens[2:])!r}")
    low, high = float(match.group(1)), float(match.group(2))
    if not low <= high:
        fail(f"limits of {name}: low {low:g} > high {high:g}")
    if low == high:
        fail(f"limits of {name} are equal ({low:g},{high:g}); imfit refuses them: hold a parameter with 'fixed'")
    if not low <= value <= high:
        fail(f"{name} = {value:g} lies outside its limits [{low:g}, {high:g}]")
    return ImfitParameter(name, value, low, high, line=number)


_OPTIONS_START, _OPTIONS_END = "OPTIONAL_PARAMS_START", "OPTIONAL_PARAMS_END"


def _is_profilefit_function(name: str) -> bool:
    """imfit's 1-D functions (``Sersic-1D``, ``Core-Sersic-1D``, ...) of ``profilefit``."""
    return name.endswith("-1D") or "-1D-" in name


def _check_options(func: ImfitFunction, path: str, fail) -> None:
    """Refuse, by name, the optional parameters galprof cannot honour (imfit 1.9 takes
    ``method`` for PointSource and PointSourceRot and ``floor`` for its test function
    GaussianExtraParams, and refuses any optional parameter of every other function)."""
    for key, value in func.options.items():
        line = func.option_lines[key]
        where = f"OPTIONAL_PARAMS '{key} {value}' of FUNCTION {func.name}"
        if func.name in ("PointSource", "PointSourceRot") and key == "method":
            if value not in _PSF_METHODS:
                fail(f"{where}: imfit's PSF interpolation methods are bicubic, lanczos2 and lanczos3", line)
            warnings.warn(f"{path}:{line}: {where}: galprof interpolates the PSF with its own "
                          "Lanczos kernel (see RenderConfig.psf_interpolation_order); the method is kept for the "
                          "best-fit file", ImfitConfigWarning, stacklevel=3)
        elif func.name == "GaussianExtraParams" and key == "floor":
            if not re.fullmatch(_NUMBER, value):
                fail(f"{where}: the floor must be a number", line)
            if float(value) != 0.0:
                fail(f"{where}: galprof does not add a constant floor to a Gaussian; give the constant as a "
                     "FlatSky component (the same image after PSF convolution) and drop the floor", line)
        elif func.name in ("PointSource", "PointSourceRot", "GaussianExtraParams"):
            known = "method" if func.name.startswith("PointSource") else "floor"
            fail(f"{where}: imfit's {func.name} takes only the optional parameter '{known}'", line)
        else:
            fail(f"{where}: imfit's {func.name} takes no optional parameters (imfit refuses them too)", line)


def parse_imfit_config(text: str, path: str = "<config>") -> ImfitConfig:
    """Parse the text of an imfit configuration file.

    Raises:
        FeedmeError: ``path:line: what is wrong`` (unknown keyword, an unsupported
            function (named), parameters out of order or missing, bad limits, a bad or
            unsupported OPTIONAL_PARAMS block, a profilefit (1-D) configuration).
    """
    prelude: dict[str, float] = {}
    sets: list[ImfitFunctionSet] = []
    pending_x0 = None
    current: ImfitFunction | None = None
    options_start = None  # line of an open OPTIONAL_PARAMS_START

    def finish_function(number):
        if current is None:
            return
        if options_start is not None:
            raise FeedmeError(path, options_start, f"{_OPTIONS_START} without {_OPTIONS_END} "
                                                   f"(FUNCTION {current.name})")
        expected = function_parameters(current.name)
        missing = [n for n in expected if n not in current.parameters]
        if missing:
            raise FeedmeError(path, current.line, f"FUNCTION {current.name} lacks parameter(s) {', '.join(missing)}")
        _check_options(current, path, lambda reason, line: _raise(path, line, reason))
        if current.name == "PointSourceRot":
            pa = current.parameters["PA"]
            if not (pa.fixed and math.remainder(pa.value, 360.0) == 0.0):
                raise FeedmeError(path, pa.line, "PointSourceRot rotates the PSF image by PA, which galprof's "
                                                 "renderer does not do: only PA fixed at 0 (PointSource) is "
                                                 "supported")

    for number, raw in enumerate(text.splitlines(), start=1):
        body, _, comment = raw.partition("#")
        tokens = body.split()
        if not tokens:
            continue

        def fail(reason, number=number):
            raise FeedmeError(path, number, reason)

        key = tokens[0]
        if key in (_OPTIONS_START, _OPTIONS_END) or options_start is not None:
            if current is None:
                fail(f"{key} outside a FUNCTION (an OPTIONAL_PARAMS block follows a FUNCTION line)")
            if key == _OPTIONS_START:
                if options_start is not None:
                    fail(f"{_OPTIONS_START} inside the OPTIONAL_PARAMS block opened on line {options_start}")
                options_start = number
            elif key == _OPTIONS_END:
                if options_start is None:
                    fail(f"{_OPTIONS_END} without {_OPTIONS_START}")
                options_start = None
            elif key in ("X0", "Y0", "FUNCTION"):
                fail(f"{key} inside the OPTIONAL_PARAMS block opened on line {options_start} (no {_OPTIONS_END})")
            else:
                if len(tokens) < 2:
                    fail(f"optional parameter {key!r} of FUNCTION {current.name} has no value "
                         f"(expected 'name value')")
                if key in current.options:
                    fail(f"optional parameter {key!r} of FUNCTION {current.name} given twice")
                current.options[key] = tokens[1]
                current.option_lines[key] = number
            continue
        if key.upper() in _PRELUDE and not sets and pending_x0 is None:
            if len(tokens) != 2 or not re.fullmatch(_NUMBER, tokens[1]):
                fail(f"expected '{key} value'")
            prelude[key.upper()] = float(tokens[1])
            continue
        if not sets and pending_x0 is None and key not in ("X0", "Y0", "FUNCTION"):
            # imfit warns "Unknown keyword ... ignored" and goes on (makeimage's NCOLS, NROWS ...)
            warnings.warn(f"{path}:{number}: unknown keyword {key!r} before the first function set; ignored, as imfit "
                          "does", ImfitConfigWarning, stacklevel=2)
            continue
        if key == "X0":
            finish_function(number)
            current = None
            pending_x0 = _parameter(tokens, "X0", number, fail)
            continue
        if key == "Y0":
            if pending_x0 is None:
                fail("Y0 must follow an X0 line")
            sets.append(ImfitFunctionSet(pending_x0, _parameter(tokens, "Y0", number, fail)))
            pending_x0 = None
            continue
        if key == "FUNCTION":
            if len(tokens) >= 2 and _is_profilefit_function(tokens[1]):
                fail(f"FUNCTION {tokens[1]}: a profilefit (1-D) configuration; galprof imfit fits images "
                     "(2-D functions with X0 and Y0)")
            if not sets or pending_x0 is not None:
                fail("FUNCTION before a function set's X0 and Y0 lines")
            if len(tokens) != 2:
                fail("expected 'FUNCTION Name'")
            name = tokens[1]
            if function_parameters(name) is None:
                if name in _KNOWN_UNSUPPORTED:
                    fail(f"imfit function {name} is not supported by galprof yet: it is not one of imfit 1.9's "
                         f"standard functions (supported: {', '.join(supported_functions())})")
                fail(f"unknown imfit function {name!r} (supported: {', '.join(supported_functions())})")
            finish_function(number)
            label = ""
            match = re.match(r"\s*LABEL\s+(.*\S)", comment)
            if match:
                label = match.group(1)
            current = ImfitFunction(name, {}, label, number)
            sets[-1].functions.append(current)
            continue
        if current is None:
            fail(f"unexpected {key!r}: expected a prelude keyword ({', '.join(_PRELUDE)}), X0, Y0 or FUNCTION")
        expected = function_parameters(current.name)
        if len(tokens) >= 2 and not re.fullmatch(_NUMBER, tokens[1]) and tokens[1].lower() != "fixed":
            hint = (" (makeimage's flux report pasted after the configuration?)"
                    if raw.strip().startswith("Estimating fluxes") else "")
            fail(f"not a parameter line: {raw.strip()!r}{hint}; imfit refuses it too "
                 f"(a parameter line is 'name value [low,high | fixed]')")
        # imfit takes a function's parameter lines by position and ignores their names
        position = len(current.parameters)
        if position >= len(expected):
            fail(f"FUNCTION {current.name} has {len(expected)} parameters ({', '.join(expected)}); "
                 f"line {key!r} is one too many")
        name = expected[position]
        if key != name:
            warnings.warn(f"{path}:{number}: parameter {position + 1} of FUNCTION {current.name} is {name}; "
                          f"the line names it {key!r} (read as {name}: imfit goes by position)",
                          ImfitConfigWarning, stacklevel=2)
        current.parameters[name] = _parameter(tokens, name, number, fail)
    if pending_x0 is not None:
        raise FeedmeError(path, pending_x0.line, "X0 without a Y0 line")
    finish_function(None)
    if not sets or not any(s.functions for s in sets):
        raise FeedmeError(path, None, "no FUNCTION found")
    for s in sets:
        if not s.functions:
            raise FeedmeError(path, s.x0.line, "a function set without functions")
    return ImfitConfig(path, prelude, sets)


def _raise(path: str, line: int, reason: str):
    raise FeedmeError(path, line, reason)


def read_imfit_config(path: str) -> ImfitConfig:
    """:func:`parse_imfit_config` of a file; an unreadable file is a FeedmeError naming it."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise FeedmeError(path, None, f"cannot read the configuration: {err.strerror or err}") from None
    return parse_imfit_config(text, str(path))


# ----------------------------------------------------------------------- model mapping

def _mag(flux: float) -> float:
    return -2.5 * math.log10(flux) if flux > 0 else 99.0


def _bounds(p: ImfitParameter, transform=None):
    if p.low is None or p.fixed:
        return None
    low, high = (p.low, p.high) if transform is None else sorted((transform(p.low), transform(p.high)))
    return (low, high) if low < high else None


#: bounds of an imfit c0 without limits (galprof's C0 default, (-1, 3), would put imfit's
#: common c0 = -1 on a bound)
_C0_BOUNDS = (-1.9, 10.0)


def _spec_bounds(spec, low: float, high: float) -> tuple[float, float]:
    """imfit limits as galprof bounds of ``spec``: an axis ratio (from ell) floored at
    0.02, a positive (log-scaled) parameter's limit <= 0 raised to its default lower
    bound, and both kept inside the parameter's domain."""
    if spec.imfit == "ell":
        low = max(low, 0.02)
    elif spec.scale == "log" and low <= 0.0:
        low = spec.bounds[0] if spec.bounds and spec.bounds[0] < high else high * 1e-3
    if spec.domain is not None:
        low, high = max(low, spec.domain[0]), min(high, spec.domain[1])
    return low, high


def model_from_imfit(config: ImfitConfig, image_centre: tuple[float, float]) -> Model:
    """The galprof model of a configuration (zeropoint 0, EXPTIME 1: mag = -2.5 log10 F).

    Args:
        config: the parsed configuration.
        image_centre: (x_c, y_c) [1-based pix] of the fitted image, where galprof's sky
            value is defined.
    """
    comps, constraints = [], []
    for set_index, fset in enumerate(config.sets):
        x0, y0 = fset.x0, fset.y0
        members = []
        for func in fset.functions:
            p = func.parameters
            fixed, bounds, values = set(), {}, {}
            if func.name in ("FlatSky", "TiltedSkyPlane"):
                if func.name == "FlatSky":
                    values = dict(sky=p["I_sky"].value, dsdx=0.0, dsdy=0.0)
                    fixed = {"dsdx", "dsdy"} | ({"sky"} if p["I_sky"].fixed else set())
                else:
                    mx, my = p["m_x"].value, p["m_y"].value
                    values = dict(sky=p["I_0"].value + mx * (image_centre[0] - x0.value)
                                  + my * (image_centre[1] - y0.value), dsdx=mx, dsdy=my)
                    fixed = {n for n, k in (("sky", "I_0"), ("dsdx", "m_x"), ("dsdy", "m_y")) if p[k].fixed}
                comps.append(Component("sky", values, fixed=frozenset(fixed)))
                continue
            values.update(x=x0.value, y=y0.value)
            for name, par in (("x", x0), ("y", y0)):
                if par.fixed:
                    fixed.add(name)
                elif _bounds(par):
                    bounds[name] = _bounds(par)
            registered = _registered_function(func.name) if func.name not in IMFIT_FUNCTIONS else None
            if registered is not None:
                for label in _profile_labels(registered):
                    spec, par = _label_spec(registered, label), p[label]
                    transform = (lambda e: 1.0 - e) if label == "ell" else None
                    values[spec.name] = par.value if transform is None else transform(par.value)
                    if par.fixed:
                        fixed.add(spec.name)
                    elif _bounds(par, transform):
                        bounds[spec.name] = _spec_bounds(spec, *_bounds(par, transform))
                    elif label == "c0":
                        bounds[spec.name] = _C0_BOUNDS  # imfit has no default range for c0
                comps.append(Component(registered.name, values, fixed=frozenset(fixed), bounds=bounds))
                members.append(len(comps))
                continue
            if _SAME_AS.get(func.name, func.name) == "PointSource":
                values["mag"] = _mag(p["I_tot"].value)
                if p["I_tot"].fixed:
                    fixed.add("mag")
                comps.append(Component("psf", values, fixed=frozenset(fixed), bounds=bounds))
                members.append(len(comps))
                continue
            q = float(conv.q_from_ell(p["ell"].value))
            values.update(q=q, pa=p["PA"].value)
            for name, key, transform in (("q", "ell", lambda e: 1.0 - e), ("pa", "PA", None)):
                if p[key].fixed:
                    fixed.add(name)
                elif _bounds(p[key], transform):
                    low, high = _bounds(p[key], transform)
                    bounds[name] = (max(low, 0.02), high) if name == "q" else (low, high)
            if func.name == "Sersic":
                profile = "sersic"
                values.update(r_e=p["r_e"].value, n=p["n"].value,
                              mag=_mag(float(conv.sersic_flux(p["I_e"].value, p["r_e"].value, p["n"].value, q))))
                size_keys = (("r_e", "r_e", None), ("n", "n", None))
                flux_key = "I_e"
            elif func.name == "Exponential":
                profile = "expdisk"
                values.update(r_s=p["h"].value, mag=_mag(float(conv.exponential_flux(p["I_0"].value, p["h"].value, q))))
                size_keys = (("r_s", "h", None),)
                flux_key = "I_0"
            elif _SAME_AS.get(func.name, func.name) == "Gaussian":
                profile = "gaussian"
                values.update(fwhm=p["sigma"].value * conv.FWHM_PER_SIGMA,
                              mag=_mag(float(conv.gaussian_flux(p["I_0"].value, p["sigma"].value, q))))
                size_keys = (("fwhm", "sigma", lambda s: s * conv.FWHM_PER_SIGMA),)
                flux_key = "I_0"
            else:  # Moffat
                profile = "moffat"
                values.update(fwhm=p["fwhm"].value, beta=p["beta"].value,
                              mag=_mag(float(conv.moffat_flux(p["I_0"].value, p["fwhm"].value, p["beta"].value, q))))
                size_keys = (("fwhm", "fwhm", None), ("beta", "beta", None))
                flux_key = "I_0"
            for name, key, transform in size_keys:
                if p[key].fixed:
                    fixed.add(name)
                elif _bounds(p[key], transform):
                    low, high = _bounds(p[key], transform)
                    floor = 1.01 if name == "beta" else (0.2 if name == "n" else 1e-3)
                    if high > floor:
                        bounds[name] = (max(low, floor), high)
            if p[flux_key].fixed:
                fixed.add("mag")
            comps.append(Component(profile, values, fixed=frozenset(fixed), bounds=bounds))
            members.append(len(comps))
        if len(members) > 1:  # one centre per function set
            constraints += [Tie(tuple(members), "x", "offset"), Tie(tuple(members), "y", "offset")]
    return Model(tuple(comps), tuple(constraints))


def _intensity_error(func_name: str, v: dict, covariance) -> float | None:
    """1-sigma error of a function's intensity (I_e, I_0) from the covariance of the
    galprof parameters it depends on (magnitude, size, shape, q), by the gradient."""
    names = {"Sersic": ("mag", "r_e", "n", "q"), "Exponential": ("mag", "r_s", "q"),
             "Gaussian": ("mag", "fwhm", "q"), "Moffat": ("mag", "fwhm", "beta", "q")}[func_name]
    cov = covariance(names)
    if cov is None:
        return None

    def intensity(p):
        flux = 10.0 ** (-0.4 * p["mag"])
        if func_name == "Sersic":
            return float(conv.sersic_i_e(flux, p["r_e"], p["n"], p["q"]))
        if func_name == "Exponential":
            return float(conv.exponential_i0(flux, p["r_s"], p["q"]))
        if func_name == "Gaussian":
            return float(conv.gaussian_i0(flux, p["fwhm"] / conv.FWHM_PER_SIGMA, p["q"]))
        return float(conv.moffat_i0(flux, p["fwhm"], p["beta"], p["q"]))

    grad = []
    for name in names:
        step = 1e-6 * max(abs(v[name]), 1e-3)
        up, down = dict(v), dict(v)
        up[name] += step
        down[name] -= step
        grad.append((intensity(up) - intensity(down)) / (2 * step))
    grad = np.array(grad)
    variance = float(grad @ np.asarray(cov) @ grad)
    return math.sqrt(variance) if variance >= 0 else float("nan")


def _intensity_per_flux(func_name: str, v: dict) -> float:
    """The function's intensity (I_e or I_0) per unit total flux at the values ``v``."""
    q = v["q"]
    if func_name == "Sersic":
        return float(conv.sersic_i_e(1.0, v["r_e"], v["n"], q))
    if func_name == "Exponential":
        return float(conv.exponential_i0(1.0, v["r_s"], q))
    if func_name == "Gaussian":
        return float(conv.gaussian_i0(1.0, v["fwhm"] / conv.FWHM_PER_SIGMA, q))
    return float(conv.moffat_i0(1.0, v["fwhm"], v["beta"], q))


def _pa_in_limits(pa: float, p: ImfitParameter) -> float:
    """PA moved by multiples of 180 deg (the same ellipse) into the input limits, if possible."""
    if p.low is None or p.fixed:
        return pa
    for k in range(-3, 4):
        candidate = pa + 180.0 * k
        if p.low <= candidate <= p.high:
            return candidate
    return pa


def values_to_imfit(config: ImfitConfig, component_values: list[dict], component_errors: list[dict],
                    image_centre: tuple[float, float], covariances=None):
    """Best-fit galprof values back in imfit's parameterisation.

    Args:
        covariances: optional callable(component index, parameter names) -> covariance
            matrix of those galprof parameters (zeros for fixed ones), or None. With it,
            intensity errors include the correlations with size, shape and q (as imfit's
            do); without, they come from the magnitude error alone.

    Returns ([(x0, x0_err, y0, y0_err)] per set, [{imfit name: (value, error)}] per function),
    in the order of :meth:`ImfitConfig.functions`. A PA is moved by multiples of 180 deg
    into its input limits when that is possible.
    """
    set_centres = []
    out = []
    k = 0
    for fset in config.sets:
        centre = None
        for func in fset.functions:
            v, e = component_values[k], component_errors[k]
            index = k
            k += 1
            row = {}
            if func.name == "FlatSky":
                row["I_sky"] = (v["sky"], e.get("sky", 0.0))
            elif func.name == "TiltedSkyPlane":
                cx, cy = centre if centre is not None else (fset.x0.value, fset.y0.value)
                i0 = v["sky"] - v["dsdx"] * (image_centre[0] - cx) - v["dsdy"] * (image_centre[1] - cy)
                row.update(I_0=(i0, e.get("sky", 0.0)), m_x=(v["dsdx"], e.get("dsdx", 0.0)),
                           m_y=(v["dsdy"], e.get("dsdy", 0.0)))
            elif func.name not in IMFIT_FUNCTIONS:  # a registered profile in imfit's parameterisation
                if centre is None:
                    centre = (v["x"], v["y"])
                    set_centres.append((v["x"], e.get("x", 0.0), v["y"], e.get("y", 0.0)))
                profile = _registered_function(func.name)
                for label in _profile_labels(profile):
                    spec = _label_spec(profile, label)
                    if label == "ell":
                        row["ell"] = (1.0 - v[spec.name], e.get(spec.name, 0.0))
                    elif label == "PA":
                        row["PA"] = (_pa_in_limits(v[spec.name], func.parameters["PA"]), e.get(spec.name, 0.0))
                    else:
                        row[label] = (v[spec.name], e.get(spec.name, 0.0))
            else:
                if centre is None:
                    centre = (v["x"], v["y"])
                    set_centres.append((v["x"], e.get("x", 0.0), v["y"], e.get("y", 0.0)))
                flux = 10.0 ** (-0.4 * v["mag"])
                rel = 0.4 * math.log(10.0) * e.get("mag", 0.0)
                if _SAME_AS.get(func.name, func.name) == "PointSource":
                    row["I_tot"] = (flux, flux * rel)
                    if func.name == "PointSourceRot":
                        row["PA"] = (func.parameters["PA"].value, 0.0)
                else:
                    q = v["q"]
                    row["PA"] = (_pa_in_limits(v["pa"], func.parameters["PA"]), e.get("pa", 0.0))
                    error = None
                    kind = _SAME_AS.get(func.name, func.name)
                    if covariances is not None:
                        error = _intensity_error(kind, v, lambda names, i=index: covariances(i, names))
                    if error is not None:
                        rel = error / (flux * _intensity_per_flux(kind, v))
                    row["ell"] = (1.0 - q, e.get("q", 0.0))
                    if func.name == "Sersic":
                        i_e = float(conv.sersic_i_e(flux, v["r_e"], v["n"], q))
                        row.update(n=(v["n"], e.get("n", 0.0)), I_e=(i_e, i_e * rel), r_e=(v["r_e"], e.get("r_e", 0.0)))
                    elif func.name == "Exponential":
                        i0 = float(conv.exponential_i0(flux, v["r_s"], q))
                        row.update(I_0=(i0, i0 * rel), h=(v["r_s"], e.get("r_s", 0.0)))
                    elif kind == "Gaussian":
                        sigma = v["fwhm"] / conv.FWHM_PER_SIGMA
                        i0 = float(conv.gaussian_i0(flux, sigma, q))
                        row.update(I_0=(i0, i0 * rel), sigma=(sigma, e.get("fwhm", 0.0) / conv.FWHM_PER_SIGMA))
                    else:
                        i0 = float(conv.moffat_i0(flux, v["fwhm"], v["beta"], q))
                        row.update(I_0=(i0, i0 * rel), fwhm=(v["fwhm"], e.get("fwhm", 0.0)),
                                   beta=(v["beta"], e.get("beta", 0.0)))
            out.append(row)
        if centre is None:
            set_centres.append((fset.x0.value, 0.0, fset.y0.value, 0.0))
    return set_centres, out


def _limits(p: ImfitParameter) -> str:
    if p.fixed:
        return "fixed"
    if p.low is not None:
        return f"{p.low:g},{p.high:g}"
    return ""


def format_imfit_config(config: ImfitConfig, set_centres=None, function_values=None, header_lines=(),
                        raw_header: bool = False) -> str:
    """An imfit configuration: the input one, or (with values) the best-fit file.

    With ``set_centres`` and ``function_values`` (from :func:`values_to_imfit`) each
    value is written with ``# +/- error`` (fixed parameters without), limits as in the
    input; ``header_lines`` are written first as ``#`` comments (statistics, AIC, BIC), or
    as they are with ``raw_header`` (complete lines, e.g.
    :func:`galprof.io.imfit_output.bestfit_header_lines`).
    The result is a valid configuration that :func:`parse_imfit_config` reads back.
    """
    lines = list(header_lines) if raw_header else [f"# {h}" for h in header_lines]
    if header_lines:
        lines.append("")
    for key in _PRELUDE:
        if key in config.prelude:
            lines.append(f"{key:<14s}{config.prelude[key]:.10g}")
    if config.prelude:
        lines.append("")
    k = 0

    def fmt(p: ImfitParameter, value, error):
        if value is not None:
            # keep the value inside the input limits so that the file reads back
            if p.low is not None and not p.fixed:
                value = min(max(value, p.low), p.high)
        text = f"{p.name:<{max(8, len(p.name) + 1)}s}{(p.value if value is None else value):.10g}"
        limits = _limits(p)
        if limits:
            text += f"    {limits}"
        if value is not None and not p.fixed and error is not None:
            text += f"    # +/- {error:.6g}"
        return text

    for s_index, fset in enumerate(config.sets):
        centre = set_centres[s_index] if set_centres is not None else None
        lines.append(fmt(fset.x0, None if centre is None else centre[0], None if centre is None else centre[1]))
        lines.append(fmt(fset.y0, None if centre is None else centre[2], None if centre is None else centre[3]))
        for func in fset.functions:
            head = f"FUNCTION {func.name}"
            if func.label:
                head += f"   # LABEL {func.label}"
            lines.append(head)
            if func.options:
                lines.append(_OPTIONS_START)
                lines += [f"{key:<{max(8, len(key) + 1)}s}{value}" for key, value in func.options.items()]
                lines.append(_OPTIONS_END)
            row = function_values[k] if function_values is not None else {}
            k += 1
            for name in function_parameters(func.name):
                value, error = row.get(name, (None, None))
                lines.append(fmt(func.parameters[name], value, error))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def imfit_sigma(data: np.ndarray, prelude: dict[str, float]) -> np.ndarray:
    """imfit's default (data-based) noise: sigma^2 = (data + sky) / g + N rn^2 / g^2 [ADU^2].

    g = GAIN x NCOMBINED x EXPTIME (the effective gain converting ADU to electrons), rn
    = READNOISE [e-], N = NCOMBINED, sky = ORIGINAL_SKY [ADU] (a sky already subtracted
    from the data). Defaults: GAIN 1, READNOISE 0, NCOMBINED 1, EXPTIME 1, sky 0.
    Pixels whose variance is not positive get sigma 0 (masked by the fit, with a count).
    """
    gain = prelude.get("GAIN", 1.0) * prelude.get("NCOMBINED", 1.0) * prelude.get("EXPTIME", 1.0)
    ncomb = prelude.get("NCOMBINED", 1.0)
    variance = (np.asarray(data, dtype=np.float64) + prelude.get("ORIGINAL_SKY", 0.0)) / gain \
        + ncomb * prelude.get("READNOISE", 0.0) ** 2 / gain**2
    return np.sqrt(np.clip(variance, 0.0, None))
