"""pyimfit worker for bench/bench_multicomponent.py (runs in bench/peers/.venvs/pyimfit):
multi-component scenes (bulge + disk, bar + disk, two overlapping galaxies), each galaxy
fitted from two sets of starts (``truth`` and ``offset``) with imfit's Levenberg-Marquardt
solver (``solver='LM'``, ftol 1e-8: pyimfit's defaults).

Protocol: ``--data IN.npz --out OUT.json``. The .npz holds ``images``, ``sigma`` (B, H, W),
``psf`` (h, w), ``spec`` (a JSON string: ``zeropoint``, ``tied`` and ``components``, a list
of ``{"kind": "sersic" | "expdisk" | "ferrer"}``), and the starts
``<set>/<c>_<param>`` (B,) in GALFIT conventions, c the 1-based component number, for
``set`` in ``truth`` and ``offset``. The JSON holds, per set: imfit's chi^2 (its fit
statistic with the sigma image), ``fitConverged``, ``fitTerminated``, ``fitError``,
iterations, model evaluations, parameters pegged at a limit, the fitted values converted
back to GALFIT conventions, and the seconds spent in ``Imfit.fit`` (data loading + fit).

Conventions of imfit, and the conversions used here (galprof = GALFIT conventions):
  * pixels: 1-based, the centre of the first pixel is (1, 1), x along NAXIS1: as GALFIT.
  * PA: degrees counter-clockwise from +y: as GALFIT. ell = 1 - q.
  * imfit's amplitudes are intensities [ADU/pix], GALFIT's total magnitudes
    (F = 10^(-0.4 (mag - zp)), EXPTIME 1):
      - ``sersic`` -> ``Sersic`` (PA, ell, n, I_e, r_e): r_e the half-light radius along
        the major axis, I_e the intensity at r_e, F = 2 pi q r_e^2 I_e n e^b b^(-2n)
        Gamma(2n), with imfit's b(n) (Ciotti & Bertin 1999 expansion; common.py);
      - ``expdisk`` -> ``Exponential`` (PA, ell, I_0, h): h = GALFIT's R_s,
        F = 2 pi q h^2 I_0;
      - ``ferrer`` (GALFIT's Ferrer with beta = 0 held fixed) -> ``FerrersBar2D``
        (PA, ell, c0, n, I_0, a_bar): I = I_0 (1 - (m / a_bar)^2)^n, so a_bar = r_out,
        n = alpha, c0 = 0 fixed (a plain ellipse); F = pi q a_bar^2 I_0 / (n + 1).
        This is GALFIT's profile exactly; a Ferrer with beta != 0 has no imfit twin.
  * centres: ``tied`` = one function set (one X0, Y0) holding every component; otherwise
    one function set per component. The sky is a ``FlatSky`` in its own function set
    (its X0, Y0 fixed and unused), started at 0.
  * imfit's defaults are kept: the PSF stamp is normalised, pixel subsampling near each
    function centre is on, all cores (maxThreads 0).
Limits (imfit's LM needs them for ell and n): x, y start +- 10 px; ell [0, 0.95];
Sersic n [0.36, 8]; Ferrers n [0.05, 10] (galprof's alpha bounds); r_e, h, a_bar
[0.1, 500] px; intensities [0, 1e3 I_start + 1e3]; PA and the sky free.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
import numpy as np

SETS = ("truth", "offset")


def ferrer_flux_per_i0(a_bar, n, q):
    """Total light of imfit's FerrersBar2D (c0 = 0) per unit I_0: pi q a_bar^2 / (n + 1)."""
    return math.pi * q * a_bar**2 / (n + 1.0)


def build(kind: str, c: int, s: dict, b: int, zp: float):
    """(FunctionDescription of component ``c`` of galaxy ``b``, the names of its parameters in imfit's order)."""
    from pyimfit import FunctionDescription
    from pyimfit import ParameterDescription as P

    q, pa = float(s[f"{c}_q"][b]), float(s[f"{c}_pa"][b])
    flux = float(common.flux_from_mag(s[f"{c}_mag"][b], zp))
    geo = [P("PA", pa), P("ell", 1.0 - q, [0.0, 0.95])]
    if kind == "sersic":
        n, r_e = float(s[f"{c}_n"][b]), float(s[f"{c}_r_e"][b])
        ie = float(common.sersic_ie_from_flux(flux, r_e, n, q))
        params = geo + [P("n", n, [0.36, 8.0]), P("I_e", ie, [0.0, 1e3 * ie + 1e3]), P("r_e", r_e, [0.1, 500.0])]
        names = ["pa", "ell", "n", "I_e", "r_e"]
        return FunctionDescription("Sersic", label=f"comp{c}", parameters=params), names
    if kind == "expdisk":
        h = float(s[f"{c}_r_s"][b])
        i0 = flux / (2 * math.pi * q * h**2)
        params = geo + [P("I_0", i0, [0.0, 1e3 * i0 + 1e3]), P("h", h, [0.1, 500.0])]
        return FunctionDescription("Exponential", label=f"comp{c}", parameters=params), ["pa", "ell", "I_0", "h"]
    if kind == "ferrer":
        if f"{c}_beta" in s and np.any(s[f"{c}_beta"] != 0):
            raise ValueError("FerrersBar2D is GALFIT's Ferrer with beta = 0 only")
        a_bar, n = float(s[f"{c}_r_out"][b]), float(s[f"{c}_alpha"][b])
        i0 = flux / ferrer_flux_per_i0(a_bar, n, q)
        params = geo + [P("c0", 0.0, fixed=True), P("n", n, [0.05, 10.0]), P("I_0", i0, [0.0, 1e3 * i0 + 1e3]),
                        P("a_bar", a_bar, [0.1, 500.0])]
        return FunctionDescription("FerrersBar2D", label=f"comp{c}", parameters=params), \
            ["pa", "ell", "c0", "n", "I_0", "a_bar"]
    raise ValueError(f"no imfit function for {kind!r}")


def to_galfit(kind: str, v: dict, zp: float) -> dict:
    """imfit values of one component -> GALFIT conventions (mag, sizes, q, pa)."""
    q = 1.0 - v["ell"]
    out = dict(x=v["x"], y=v["y"], q=q, pa=float(common.wrap_pa(v["pa"])))
    if kind == "sersic":
        out.update(n=v["n"], r_e=v["r_e"],
                   mag=float(common.mag_from_flux(common.sersic_flux_from_ie(v["I_e"], v["r_e"], v["n"], q), zp)))
    elif kind == "expdisk":
        out.update(r_s=v["h"], mag=float(common.mag_from_flux(2 * math.pi * q * v["h"] ** 2 * v["I_0"], zp)))
    else:
        out.update(alpha=v["n"], beta=0.0, r_out=v["a_bar"],
                   mag=float(common.mag_from_flux(v["I_0"] * ferrer_flux_per_i0(v["a_bar"], v["n"], q), zp)))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import pyimfit
    from pyimfit import FunctionDescription, FunctionSetDescription, ModelDescription
    from pyimfit import ParameterDescription as P

    z = np.load(args.data)
    spec = json.loads(str(z["spec"]))
    zp, tied, kinds = float(spec["zeropoint"]), bool(spec["tied"]), [c["kind"] for c in spec["components"]]
    images, sigma, psf = z["images"], z["sigma"], z["psf"]
    nb, size = images.shape[0], images.shape[-1]
    out = dict(tool="pyimfit", kinds=kinds, tied=tied, n_galaxies=int(nb),
               versions=common.versions(("pyimfit", "numpy")),
               settings=dict(solver="LM", ftol=1e-8, subsampling=True, psf_normalization=True,
                             threads="all (maxThreads=0)"))
    for which in SETS:
        s = {k[len(which) + 1:]: z[k] for k in z.files if k.startswith(which + "/")}
        res = dict(chi2=[], converged=[], terminated=[], error=[], iterations=[], func_evals=[], pegged=[],
                   values=[], seconds=0.0)
        for b in range(nb):
            sets, layout = [], []  # layout: (components sharing it, name) per raw imfit parameter
            functions = []
            for c, kind in enumerate(kinds, start=1):
                f, names = build(kind, c, s, b, zp)
                functions.append((c, f, names))
            groups = [functions] if tied else [[f] for f in functions]
            for group in groups:
                c0 = group[0][0]
                x0, y0 = float(s[f"{c0}_x"][b]), float(s[f"{c0}_y"][b])
                sets.append(FunctionSetDescription(f"set{c0}", P("X0", x0, [x0 - 10, x0 + 10]),
                                                   P("Y0", y0, [y0 - 10, y0 + 10]), [f for _, f, _ in group]))
                layout += [([c for c, _, _ in group], "x"), ([c for c, _, _ in group], "y")]
                layout += [([c], name) for c, _, names in group for name in names]
            sky = FunctionDescription("FlatSky", label="sky", parameters=[P("I_sky", 0.0)])
            centre = (size + 1) / 2
            sets.append(FunctionSetDescription("skyset", P("X0", centre, fixed=True), P("Y0", centre, fixed=True),
                                               [sky]))
            layout += [([], "X0_sky"), ([], "Y0_sky"), ([0], "sky")]
            imfit = pyimfit.Imfit(ModelDescription(sets), psf=psf)
            clock = common.Clock()
            clock.start()
            imfit.fit(images[b], error=sigma[b], solver="LM")
            clock.stop()
            res["seconds"] += clock.fit
            raw = np.asarray(imfit.getRawParameters(), dtype=float)
            if len(raw) != len(layout):
                raise RuntimeError(f"{len(raw)} imfit parameters, expected {len(layout)}")
            per = {c: {} for c in range(len(kinds) + 1)}
            for (comps, name), value in zip(layout, raw):
                for c in comps:
                    per[c][name] = float(value)
            values = {f"{c}_{k}": v for c, kind in enumerate(kinds, start=1)
                      for k, v in to_galfit(kind, per[c], zp).items()}
            values["sky"] = per[0]["sky"]
            res["values"].append(values)
            res["chi2"].append(float(imfit.fitStatistic))
            res["converged"].append(bool(imfit.fitConverged))
            res["terminated"].append(bool(imfit.fitTerminated))
            res["error"].append(bool(imfit.fitError))
            res["iterations"].append(int(imfit.nIter))
            res["func_evals"].append(int(imfit.nFuncEvals))
            res["pegged"].append(int(imfit.nPegged))
        out[which] = res
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1, allow_nan=True)


if __name__ == "__main__":
    main()
