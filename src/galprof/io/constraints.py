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
(1 = x, 2 = y for positions; for the sky 1 = sky, 2 = dsdx, 3 = dsdy). Errors name the
file and line.
"""

from __future__ import annotations

import pathlib
import re

from ..constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from .feedme import FeedmeError, profile_lines

__all__ = ["parse_constraints", "read_constraints"]

_SIZE_NAMES = ("r_e", "r_s", "fwhm")
_NAME_ALIASES = {"re": "size", "rs": "size", "r_e": "size", "r_s": "size", "fwhm": "size", "n": "n",
                 "x": "x", "y": "y", "mag": "mag", "q": "q", "pa": "pa", "beta": "beta", "powerlaw": "beta",
                 "sky": "sky", "dsdx": "dsdx", "dsdy": "dsdy"}
_UNSUPPORTED_NAMES = ("c", "c0", "alpha", "gamma")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][-+]?\d+)?"


def _number(text: str) -> float:
    return float(text.replace("d", "e").replace("D", "e"))


def _parameter_of(profile: str, token: str) -> str | None:
    """galprof's name of parameter ``token`` (name or line number) of a ``profile`` component."""
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
    return alias if alias in names else None


def parse_constraints(text: str, path: str, profiles: list[str]):
    """Constraints from the text of a constraint file.

    Args:
        text: the file's content.
        path: its name, for messages.
        profiles: the profile of each component of the feedme, in order (component
            numbers in the file are 1-based positions in this list).

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
            if not 1 <= c <= len(profiles):
                fail(f"there is no component {c} (the feedme has {len(profiles)})")
            name = _parameter_of(profiles[c - 1], param_text)
            if name is None and re.fullmatch(r"[a-z]+\d*_\d+", param_text.lower()):
                fail(f"{param_text!r} is a GALFITM wavelength-polynomial coefficient (multi-band); galprof fits "
                     "one band per feedme for now")
            if name is None:
                if param_text.lower() in _UNSUPPORTED_NAMES:
                    fail(f"parameter {param_text!r} (GALFIT's hidden or Nuker parameters) is not supported by galprof")
                fail(f"component {c} ({profiles[c - 1]}) has no parameter {param_text!r}")
            names.append(name)
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
