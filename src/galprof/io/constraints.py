"""Reading GALFIT constraint files (feedme line ``G``).

One constraint per line, ``#`` starts a comment::

    1_2_3     x      offset      # hard: components 1, 2, 3 keep their initial x offsets
    2_3       re     ratio       # hard: R_e of 2 and 3 keep their initial ratio
    3         n      0.7 to 5    # soft: 0.7 <= n(3) <= 5
    2         x      -1  0.5     # soft: x0(2) - 1 <= x(2) <= x0(2) + 0.5 (x0: initial value)
    3-7       mag    -0.5 3      # soft: -0.5 <= mag(7) - mag(3) <= 3
    3/5       re     1  3        # soft: 1 <= re(3) / re(5) <= 3
    1         re     factor 3    # soft (GALFITM): re0(1) / 3 <= re(1) <= 3 re0(1)

The parameter is a name (``x, y, mag, re`` or ``rs`` (the component's size, whatever
its profile calls it: R_e, R_s or FWHM), ``n``, ``beta``, ``q``, ``pa``, ``sky``,
``dsdx``, ``dsdy``) or the number of the component's parameter line in the feedme file
(1 = x, 2 = y for positions; for the sky 1 = sky, 2 = dsdx, 3 = dsdy). GALFIT's hidden
parameters have the names of GALFIT's constraint documentation: ``c`` (or ``c0``: the
generalised ellipse's C0), ``f<m>a`` and ``f<m>p`` (Fourier mode m's amplitude and phase),
``b<m>`` (bending mode m) and ``r<k>`` (coordinate-rotation line R<k>: r1 inner radius,
r2 outer radius, r3 rotation angle, r4 alpha or winding radius, r9 inclination, r10 sky
PA). A truncation block (``T0)``) has a component number of its own, as in GALFIT; its
parameters are named by line number (1 = x, 2 = y of T1, 4 = break radius, 5 =
softening, 9 = q, 10 = PA) or ``x``, ``y``, ``q``, ``pa``. Errors name the file and line.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

from ..constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from ..profiles.modifiers import hidden_shape
from .feedme import FeedmeError, profile_lines

__all__ = ["ConstraintSlot", "constraint_slots", "parse_constraints", "read_constraints"]


@dataclass(frozen=True)
class ConstraintSlot:
    """What component number N of a constraint file means (GALFIT numbers a truncation
    block, ``T0)``, among the components).

    Attributes:
        profile: the component's profile name.
        names: its parameter names (C0, Fourier, bending, rotation and truncation
            parameters included); None: any of GALFIT's hidden parameters is accepted.
        component: the number (1-based position) of the model component it belongs to.
        truncation: for a truncation block, the prefix of its parameters in that
            component (``trunc_out``, ``trunc_in_length``, ...); None for a component.
    """

    profile: str
    names: tuple[str, ...] | None
    component: int
    truncation: str | None = None


def constraint_slots(components) -> list[ConstraintSlot | None]:
    """The slots, by GALFIT component number, of a feedme's components
    (:class:`galprof.io.feedme.FeedmeComponent`: ``number``, ``profile``, ``values``,
    ``truncation_blocks``); None for a number that is none of them."""
    by_number: dict[int, ConstraintSlot] = {}
    for position, comp in enumerate(components, start=1):
        names = tuple(comp.values)
        by_number[comp.number] = ConstraintSlot(comp.profile, names, position)
        prefixes = {t.side: t.prefix for t in hidden_shape(names).truncations}
        for side, number in getattr(comp, "truncation_blocks", ()):
            by_number[number] = ConstraintSlot(comp.profile, names, position, prefixes[side])
    return [by_number.get(n) for n in range(1, max(by_number, default=0) + 1)]

_SIZE_NAMES = ("r_e", "r_s", "fwhm")
_NAME_ALIASES = {"re": "size", "rs": "size", "r_e": "size", "r_s": "size", "fwhm": "size", "n": "n",
                 "x": "x", "y": "y", "mag": "mag", "q": "q", "pa": "pa", "beta": "beta", "powerlaw": "beta",
                 "sky": "sky", "dsdx": "dsdx", "dsdy": "dsdy"}
_UNSUPPORTED_NAMES = ("alpha", "gamma")
_HIDDEN_NAME = re.compile(r"^(?:(c0?)|f(\d+)([ap])|b(\d+)|r(\d+))$")
_ROTATION_LINES = {"1": "rot_r_in", "2": "rot_r_out", "3": "rot_theta_out", "9": "rot_incl", "10": "rot_sky_pa"}
_TRUNCATION_TOKENS = {"1": "x", "x": "x", "2": "y", "y": "y", "4": "break", "5": ("soft", "soft_at"), "9": "q",
                      "q": "q", "10": "pa", "pa": "pa"}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?"


def _number(text: str) -> float:
    return float(text.replace("d", "e").replace("D", "e"))


def _hidden_parameter(token: str, names) -> str | None:
    """galprof's name of GALFIT's hidden-parameter constraint name ``token`` (c, f1a, b2,
    r3, ...), checked against the component's ``names`` (None: not checked)."""
    match = _HIDDEN_NAME.match(token.lower())
    if match is None:
        return None
    c0, mode, part, bending, rotation = match.groups()
    if c0 is not None:
        name = "c0"
    elif mode is not None:
        name = f"f{int(mode)}_{'amp' if part == 'a' else 'phase'}"
    elif bending is not None:
        name = f"b{int(bending)}"
    elif str(int(rotation)) == "4":
        name = "rot_r_ws" if names is not None and "rot_r_ws" in names else "rot_alpha"
    else:
        name = _ROTATION_LINES.get(str(int(rotation)))
    return name if name is not None and (names is None or name in names) else None


def _parameter_of(profile, token: str) -> str | None:
    """galprof's name of parameter ``token`` (name or line number) of a ``profile``
    component (a profile name or a :class:`ConstraintSlot`)."""
    if isinstance(profile, ConstraintSlot):
        if profile.truncation is not None:
            whats = _TRUNCATION_TOKENS.get(token.lower(), ())
            names = [f"{profile.truncation}_{w}" for w in ((whats,) if isinstance(whats, str) else whats)]
            return next((n for n in names if n in profile.names), None)
        hidden = _hidden_parameter(token, profile.names)
        if hidden is not None or _HIDDEN_NAME.match(token.lower()):
            return hidden
        profile = profile.profile
    elif _HIDDEN_NAME.match(token.lower()):
        return _hidden_parameter(token, None)
    lines = profile_lines(profile)
    names = [n for group in lines.values() for n in group]
    if token.isdigit():
        if profile != "sky" and token in ("1", "2") and "1" in lines:
            return lines["1"][int(token) - 1]
        group = lines.get(token)
        return group[0] if group and len(group) == 1 else None
    alias = _NAME_ALIASES.get(token.lower())
    if alias == "size":
        return next((n for n in names if n in _SIZE_NAMES), None)
    if alias == "mag" and "mag" not in names and len(lines.get("3", ())) == 1:
        return lines["3"][0]  # GALFIT's 'mag' is line 3: a surface brightness (corser, nuker, ...)
    return alias if alias in names else None


def parse_constraints(text: str, path: str, profiles: list[str]):
    """Constraints from the text of a constraint file.

    Args:
        text: the file's content.
        path: its name, for messages.
        profiles: the profile of each component of the feedme, in order (component
            numbers in the file are 1-based positions in this list): a profile name, or
            a :class:`ConstraintSlot` (:func:`constraint_slots`: GALFIT's numbering,
            with truncation blocks, and the component's hidden parameters checked);
            the constraints then number the model's components.

    Returns:
        a list of :mod:`galprof.constraints` objects.

    Raises:
        FeedmeError: ``path:line: what is wrong`` for anything that is not a constraint
            this module knows, refers to a missing component or parameter, or has
            ``low >= high``.
    """
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        tokens = body.split()

        def fail(reason, number=number):
            raise FeedmeError(path, number, reason)

        if len(tokens) < 3:
            fail(f"expected 'components parameter range', got {body!r}")
        comps_text, param_text, rest = tokens[0], tokens[1], tokens[2:]
        match = re.fullmatch(r"(\d+)([-/])(\d+)", comps_text)
        if match:
            comps, op = [int(match.group(1)), int(match.group(3))], match.group(2)
        elif re.fullmatch(r"\d+(?:_\d+)*", comps_text):
            comps, op = [int(t) for t in comps_text.split("_")], "_"
        else:
            fail(f"component field {comps_text!r} is not N, N_M_..., N-M or N/M")
        names = []
        for c in comps:
            if not 1 <= c <= len(profiles) or profiles[c - 1] is None:
                fail(f"there is no component {c} (the feedme has {len(profiles)})")
            name = _parameter_of(profiles[c - 1], param_text)
            if name is None and re.fullmatch(r"[a-z]+\d*_\d+", param_text.lower()):
                fail(f"{param_text!r} is a GALFITM Chebyshev coefficient (or per-band value) of a multi-band fit; "
                     "galprof constrains a parameter's value, in every band")
            if name is None:
                if param_text.lower() in _UNSUPPORTED_NAMES:
                    fail(f"parameter {param_text!r} (GALFIT's hidden or Nuker parameters) is not supported by galprof")
                slot = profiles[c - 1]
                what = slot if isinstance(slot, str) else slot.profile if slot.truncation is None else "truncation"
                fail(f"component {c} ({what}) has no parameter {param_text!r}")
            names.append(name)
        comps = [p.component if isinstance(p, ConstraintSlot) else c for c, p in zip(comps, (profiles[c - 1]
                                                                                         for c in comps))]
        if len(set(names)) != 1 and not all(n in _SIZE_NAMES for n in names):
            fail(f"parameter {param_text!r} means different things in components {comps}: {names}")
        name = names[0] if len(set(names)) == 1 else tuple(names)
        words = [w.lower() for w in rest]
        if words in (["offset"], ["ratio"]):
            if op != "_" or len(comps) < 2:
                fail(f"'{words[0]}' needs two or more components joined by '_', e.g. 1_2 {param_text} {words[0]}")
            out.append(Tie(tuple(comps), name, words[0]))
            continue
        if len(rest) == 2 and words[0] == "factor" and re.fullmatch(_NUMBER, rest[1]):
            if op != "_" or len(comps) != 1:
                fail("'factor F' applies to one component")
            factor = _number(rest[1])
            if not factor > 1:
                fail(f"'factor {rest[1]}' needs a factor above 1")
            out.append(FactorRange(comps[0], name, factor))
            continue
        if len(rest) == 3 and words[1] == "to" and all(re.fullmatch(_NUMBER, w) for w in (rest[0], rest[2])):
            if op != "_" or len(comps) != 1:
                fail("'low to high' applies to one component")
            low, high = _number(rest[0]), _number(rest[2])
            if not low < high:
                fail(f"range {low:g} to {high:g} needs low < high")
            out.append(Range(comps[0], name, low, high))
            continue
        if len(rest) == 2 and all(re.fullmatch(_NUMBER, w) for w in rest):
            low, high = _number(rest[0]), _number(rest[1])
            if not low < high:
                fail(f"range {low:g} {high:g} needs the first value below the second")
            if op == "_":
                if len(comps) != 1:
                    fail("a relative range 'low high' applies to one component (or use N-M / N/M)")
                out.append(RelativeRange(comps[0], name, low, high))
            else:
                if op == "/" and low <= 0:
                    fail("a ratio range needs positive limits")
                out.append(PairRange(comps[0], comps[1], name, op, low, high))
            continue
        fail(f"cannot read the range {' '.join(rest)!r}: expected 'offset', 'ratio', 'low to high', 'low high' "
             "or 'factor F'")
    return out


def read_constraints(path: str, profiles: list[str]):
    """:func:`parse_constraints` of a file; a missing or unreadable file is a FeedmeError."""
    p = pathlib.Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise FeedmeError(path, None, f"cannot read the constraint file: {err.strerror or err}") from None
    return parse_constraints(text, str(path), profiles)
