"""``galprof check FILE...``: read feedmes, constraint files and imfit files without fitting.

The kind of each file is told from its content: an imfit configuration or best-fit file
has ``FUNCTION`` lines; a feedme has GALFIT's ``A)``...``P)`` control lines and ``0)``
component lines; a constraint file has lines such as ``1 n 0.5 to 8`` or ``1_2 x
offset``. For each file ``check`` prints what it understood (for a feedme its control
lines, for every file its components with their values and free/fixed flags, and the
constraints) or why it refuses the file, naming the line. A referenced file that does not
exist (an image, PSF, mask) is a warning, not an error. ``--json`` writes one record per
file. Exit status 0 when every file is understood, 1 otherwise. Conventions are GALFIT's
(1-based pixels, PA in degrees counter-clockwise from +y) and imfit's for imfit files.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
import warnings

from ..errors import GalprofError
from ..io.constraints import constraint_slots, parse_constraints
from ..io.feedme import parse_feedme, supported_profiles
from ..io.galfitm import (
    is_multiband_feedme,
    parse_galfitm_feedme,
    read_galfitm_constraints,
)
from ..io.imfit_config import function_parameters, parse_imfit_config

KINDS = ("feedme", "constraints", "imfit-config", "imfit-bestfit", "unknown")

_FEEDME_LINE = re.compile(r"^\s*(?:[A-PS-Z]|0)\)\s", re.MULTILINE)
_CONSTRAINT_LINE = re.compile(r"^\s*\d+(?:[_/-]\d+)*\s+\S+\s+\S+", re.MULTILINE)


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="read feedmes, constraint files and imfit files without fitting",
                       description="Say what galprof understands of each file (kind told from its content), or "
                                   "why it refuses it. Exit status 0 when every file is understood, 1 otherwise.")
    p.add_argument("files", nargs="+", help="feedmes, constraint files, imfit configurations or best-fit files")
    p.add_argument("--json", action="store_true", help="one JSON record per file on standard output")


def file_kind(text: str) -> str:
    """The kind of a file from its content: one of :data:`KINDS`."""
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    if re.search(r"^\s*FUNCTION\s", body, re.MULTILINE):
        return "imfit-bestfit" if re.search(r"^#\s+(Reduced value|Best-fit value):", text, re.MULTILINE) \
            else "imfit-config"
    if len(_FEEDME_LINE.findall(body)) >= 2 and re.search(r"^\s*0\)\s", body, re.MULTILINE):
        return "feedme"
    if _CONSTRAINT_LINE.search(body):
        return "constraints"
    return "unknown"


def _multiband_record(text: str, path: str, record: dict) -> None:
    """A multi-band GALFITM feedme (:mod:`galprof.io.galfitm`): per-band lists, each
    parameter's band values and terms (0 fixed, 1 shared, N polynomial terms, K per band)."""
    feedme = parse_galfitm_feedme(text, path)
    base = pathlib.Path(".")
    record["bands"] = {"labels": list(feedme.bands.labels), "wavelengths": list(feedme.bands.wavelengths)}
    record["control"] = {"A": list(feedme.input_images), "B": feedme.output_image,
                         "C": [s or "none" for s in feedme.sigma_images], "D": [p or "none" for p in feedme.psf_images],
                         "E": feedme.psf_oversampling, "F": [m or "none" for m in feedme.masks],
                         "G": feedme.constraint_file or "none", "H": list(feedme.fit_region),
                         "I": list(feedme.convolution_box) if feedme.convolution_box else None,
                         "J": list(feedme.zeropoints), "K": list(feedme.plate_scale), "P": feedme.mode}
    for key, names in (("A", feedme.input_images), ("C", feedme.sigma_images), ("D", feedme.psf_images),
                       ("F", feedme.masks), ("G", (feedme.constraint_file,))):
        for name in dict.fromkeys(n for n in names if n and n.lower() != "none"):
            if not (base / name.split("[")[0]).is_file():
                line = feedme.line_numbers.get(key, "?")
                record["warnings"].append(f"{path}:{line}: file {name!r} (line {key}) does not exist")
    record["components"] = [{"number": c.number, "profile": c.profile,
                             "values": {n: [float(x) for x in v] for n, v in c.values.items()},
                             "free": dict(c.free), "terms": dict(c.terms)} for c in feedme.components]
    if feedme.constraint_file and (base / feedme.constraint_file).is_file():
        constraints = read_galfitm_constraints(str(base / feedme.constraint_file), feedme.components, feedme.bands)
        record["constraints"] = [c.describe() for c in constraints]


def _feedme_record(text: str, path: str, record: dict) -> None:
    if is_multiband_feedme(text):
        _multiband_record(text, path, record)
        return
    feedme = parse_feedme(text, path)
    base = pathlib.Path(".")
    record["control"] = {"A": feedme.input_image, "B": feedme.output_image, "C": feedme.sigma_image or "none",
                         "D": feedme.psf_image or "none", "E": feedme.psf_oversampling, "F": feedme.mask or "none",
                         "G": feedme.constraint_file or "none", "H": list(feedme.fit_region),
                         "I": list(feedme.convolution_box) if feedme.convolution_box else None,
                         "J": feedme.zeropoint, "K": list(feedme.plate_scale), "P": feedme.mode}
    for key, name in (("A", feedme.input_image), ("C", feedme.sigma_image), ("D", feedme.psf_image),
                      ("F", feedme.mask), ("G", feedme.constraint_file)):
        if name and not (base / name).is_file():
            line = feedme.line_numbers.get(key, "?")
            record["warnings"].append(f"{path}:{line}: file {name!r} (line {key}) does not exist")
    record["components"] = [{"number": c.number, "profile": c.profile, "values": dict(c.values), "free": dict(c.free)}
                            for c in feedme.components]
    if feedme.constraint_file and (base / feedme.constraint_file).is_file():
        constraints_text = (base / feedme.constraint_file).read_text(errors="replace")
        constraints = parse_constraints(constraints_text, feedme.constraint_file,
                                        constraint_slots(feedme.components))
        record["constraints"] = [c.describe() for c in constraints]


def _constraints_record(text: str, path: str, record: dict) -> None:
    """A constraint file alone: each line must be understood for some component type (the
    feedme that uses it says which; ``galprof check`` on the feedme checks that too)."""
    lines = text.splitlines()
    understood = []
    numbers = [int(n) for n in re.findall(r"\d+", " ".join(line.split("#", 1)[0].split()[0] for line in lines
                                                                   if line.split("#", 1)[0].split()))]
    count = max(numbers, default=1)
    for index, line in enumerate(lines):
        if not line.split("#", 1)[0].strip():
            continue
        padded = "\n" * index + line  # keep the file's line numbers in messages
        first_error = None
        for profile in ("sersic",) + tuple(p for p in supported_profiles() if p != "sersic"):
            try:
                understood += parse_constraints(padded, path, [profile] * count)
                break
            except GalprofError as err:
                first_error = first_error or err
        else:
            raise first_error
    record["constraints"] = [c.describe() for c in understood]


def _imfit_record(text: str, path: str, record: dict) -> None:
    config = parse_imfit_config(text, path)
    record["prelude"] = dict(config.prelude)
    components = []
    for k, function_set in enumerate(config.sets):
        for function in function_set.functions:
            params = {"X0": function_set.x0, "Y0": function_set.y0}
            params.update({name: function.parameters[name] for name in function_parameters(function.name)})
            components.append({"number": len(components) + 1, "function_set": k + 1, "profile": function.name,
                               "label": function.label, "values": {n: p.value for n, p in params.items()},
                               "free": {n: not p.fixed for n, p in params.items()}})
            if function.options:  # imfit 1.9's OPTIONAL_PARAMS block
                components[-1]["options"] = dict(function.options)
    record["components"] = components


def check_file(path: str) -> dict:
    """What galprof understands of one file: a record with ``file``, ``kind``, ``status``
    (``ok`` or ``refused``), ``message``, ``warnings`` and ``components``."""
    record = {"file": path, "kind": "unknown", "status": "ok", "message": "", "warnings": [], "components": []}
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        record.update(status="refused", message=f"{path}: cannot read the file: {err.strerror or err}")
        return record
    record["kind"] = kind = file_kind(text)
    readers = {"feedme": _feedme_record, "constraints": _constraints_record, "imfit-config": _imfit_record,
               "imfit-bestfit": _imfit_record}
    if kind not in readers:
        record.update(status="refused", message=f"{path}: not a feedme, constraint file or imfit file (no '0)' "
                                                "component, constraint or FUNCTION line)")
        return record
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            readers[kind](text, path, record)
        except GalprofError as err:
            record.update(status="refused", message=str(err))
        except Exception as err:  # noqa: BLE001 - one file's surprise never stops the check of the others
            text = str(err).splitlines()[0] if str(err) else ""
            record.update(status="refused", message=f"{path}: galprof could not read it ({type(err).__name__}: {text})")
    record["warnings"] += [str(w.message) for w in caught]
    return record


def _show(record: dict) -> None:
    print(f"{record['file']}: {record['kind']}, {record['status']}" +
          (f": {record['message']}" if record["message"] else ""))
    if "bands" in record:
        print("  bands: " + ", ".join(f"{label} ({wave:g})" for label, wave in zip(record["bands"]["labels"],
                                                                                  record["bands"]["wavelengths"])))
    if "control" in record:
        print("  control: " + "  ".join(f"{k}) {v}" for k, v in record["control"].items() if v is not None))
    for comp in record["components"]:
        values = ", ".join(f"{n}={_value_text(v)}{_freedom(comp, n)}" for n, v in comp["values"].items())
        print(f"  {comp['number']} {comp['profile']}: {values}")
    for constraint in record.get("constraints", []):
        print(f"  constraint: {constraint}")
    for warning in record["warnings"]:
        print(f"  warning: {warning}")


def _value_text(value) -> str:
    """A value, or a multi-band parameter's band values as ``[v1,v2,...]``."""
    if isinstance(value, list):
        return "[" + ",".join(f"{v:.6g}" for v in value) + "]"
    return f"{value:.6g}"


def _freedom(comp: dict, name: str) -> str:
    if not comp["free"][name]:
        return " (fixed)"
    if "terms" in comp:
        return f" ({comp['terms'][name]} terms)"
    return ""


def run(args) -> int:
    records = [check_file(path) for path in args.files]
    if args.json:
        for record in records:
            json.dump(record, sys.stdout)
            sys.stdout.write("\n")
    else:
        for record in records:
            _show(record)
    return 0 if all(r["status"] == "ok" for r in records) else 1
