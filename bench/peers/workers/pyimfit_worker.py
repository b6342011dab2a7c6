"""pyimfit worker (runs in bench/peers/.venvs/pyimfit): one imfit fit per galaxy with
pyimfit's documented objects (ModelDescription / FunctionSetDescription /
FunctionDescription / ParameterDescription, Imfit(model, psf=...).fit(image, error=sigma)),
Levenberg-Marquardt solver ('LM', ftol 1e-8: pyimfit's defaults).

Conventions of imfit, and the conversions used here:
  * pixels: 1-based, centre of the first pixel (1, 1), x along NAXIS1: as GALFIT.
  * PA: degrees counter-clockwise from +y: as GALFIT.
  * ell = 1 - q.
  * Sersic (PA, ell, n, I_e, r_e): r_e the half-light radius along the major axis, I_e the
    surface brightness at r_e [ADU/pix]; I_e = F / (2 pi q r_e^2 n e^b b^(-2n) Gamma(2n))
    with imfit's b(n) (Ciotti & Bertin expansion for n > 0.36).
  * Exponential (PA, ell, I_0, h): h the scale length (= galprof's R_s), I_0 the central
    surface brightness: F = 2 pi q h^2 I_0.
  * FlatSky (I_sky) in its own function set (its X0, Y0 are fixed and unused).
  * imfit's defaults are kept: the PSF is normalised, and pixel subsampling near each
    function centre is on (imfit integrates the model over pixels although the ePSF
    already contains the pixel response).
Parameter limits (imfit needs them to keep LM away from unphysical values) are wide:
x, y start +- 10 px; ell [0, 0.95]; n [0.36, 8]; r_e, h [0.1, 500]; I_e, I_0 > 0.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402


def main():
    p = common.parser(__doc__)
    args = p.parse_args()
    clock = common.Clock()
    import pyimfit
    from pyimfit import FunctionDescription, FunctionSetDescription, ModelDescription, ParameterDescription as P

    d = common.load(args.data, args.config)
    s, B, zp = d["start"], d["images"].shape[0], d["zeropoint"]
    bulgedisk = d["model"] == "bulgedisk"
    out = {k: np.full(B, np.nan) for k in d["keys"]}
    errs = {k: np.full(B, np.nan) for k in d["keys"]}
    status = []
    kinds = ["sersic", "expdisk"] if bulgedisk else ["sersic"]
    for b in range(B):
        sets = []
        for c, kind in enumerate(kinds, start=1):
            x0, y0 = s[f"{c}_x"][b], s[f"{c}_y"][b]
            q, pa, F = s[f"{c}_q"][b], s[f"{c}_pa"][b], common.flux_from_mag(s[f"{c}_mag"][b], zp)
            geo = [P("PA", float(pa)), P("ell", float(1 - q), [0.0, 0.95])]
            if kind == "sersic":
                n, r_e = s[f"{c}_n"][b], s[f"{c}_r_e"][b]
                ie = common.sersic_ie_from_flux(F, r_e, n, q)
                f = FunctionDescription("Sersic", label=f"comp{c}", parameters=geo + [
                    P("n", float(n), [0.36, 8.0]), P("I_e", float(ie), [0.0, 1e3 * ie + 1e3]),
                    P("r_e", float(r_e), [0.1, 500.0])])
            else:
                h = s[f"{c}_r_s"][b]
                i0 = F / (2 * np.pi * q * h**2)
                f = FunctionDescription("Exponential", label=f"comp{c}", parameters=geo + [
                    P("I_0", float(i0), [0.0, 1e3 * i0 + 1e3]), P("h", float(h), [0.1, 500.0])])
            sets.append(FunctionSetDescription(f"set{c}", P("X0", float(x0), [x0 - 10, x0 + 10]),
                                               P("Y0", float(y0), [y0 - 10, y0 + 10]), [f]))
        sky_key = d["keys"][-1]
        sky = FunctionDescription("FlatSky", label="sky", parameters=[P("I_sky", float(s[sky_key][b]))])
        centre = (d["size"] + 1) / 2
        sets.append(FunctionSetDescription("skyset", P("X0", centre, fixed=True), P("Y0", centre, fixed=True), [sky]))
        model = ModelDescription(sets)
        imfit = pyimfit.Imfit(model, psf=d["psf"])
        clock.start()
        imfit.fit(d["images"][b], error=d["sigma"][b], solver="LM")
        clock.stop()
        res = imfit.getFitResult()
        vals = np.asarray(res.params, dtype=float)
        perr = np.asarray(imfit.parameterErrors, dtype=float) if imfit.parameterErrors is not None else np.full(len(vals), np.nan)
        names = imfit.numberedParameterNames
        status.append(("converged" if imfit.fitConverged else "not converged") + f", {imfit.nIter} iterations")
        v = dict(zip(names, vals))
        e = dict(zip(names, perr))
        # numbered names: X0_1, Y0_1, PA_1, ell_1, n_1, I_e_1, r_e_1, X0_2, ...; function k's
        # parameters carry the suffix of its function number, X0/Y0 that of the function set.
        for c, kind in enumerate(kinds, start=1):
            out[f"{c}_x"][b], out[f"{c}_y"][b] = v[f"X0_{c}"], v[f"Y0_{c}"]
            errs[f"{c}_x"][b], errs[f"{c}_y"][b] = e[f"X0_{c}"], e[f"Y0_{c}"]
            q = 1 - v[f"ell_{c}"]
            out[f"{c}_q"][b], out[f"{c}_pa"][b] = q, v[f"PA_{c}"]
            if kind == "sersic":
                n, r_e = v[f"n_{c}"], v[f"r_e_{c}"]
                out[f"{c}_n"][b], out[f"{c}_r_e"][b] = n, r_e
                out[f"{c}_mag"][b] = common.mag_from_flux(common.sersic_flux_from_ie(v[f"I_e_{c}"], r_e, n, q), zp)
            else:
                h = v[f"h_{c}"]
                out[f"{c}_r_s"][b] = h
                out[f"{c}_mag"][b] = common.mag_from_flux(2 * np.pi * q * h**2 * v[f"I_0_{c}"], zp)
        out[sky_key][b] = v[f"I_sky_{len(kinds) + 1}"]
    common.write(args, "pyimfit", d, out, clock, status=status,
                 settings=dict(solver="LM", ftol=1e-8, subsampling=True, psf_normalization=True,
                               threads="all (maxThreads=0)"),
                 dists=("pyimfit", "numpy"))


if __name__ == "__main__":
    main()
