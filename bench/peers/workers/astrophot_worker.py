"""AstroPhot worker (runs in bench/peers/.venvs/astrophot): one AstroPhot model per galaxy as
its Getting Started tutorial builds it (ap.TargetImage with variance and psf, ap.Model
'sersic galaxy model' / 'exponential galaxy model' / 'flat sky model' in a 'group model'),
fitted with ap.fit.LM(model).fit() (its defaults: max_iter 100, relative_tolerance 1e-5).

Conventions of AstroPhot 0.18 (read from its source and docstrings), and the conversions:
  * pixels: with pixelscale 1, CD = identity, crpix = crtan = 0, the centre of pixel
    (i, j) (0-based column i, row j) is at (i, j): x_ap = x_galfit - 1, y_ap = y_galfit - 1.
  * PA: radians in [0, pi), "East of North" = from +y towards -x with this CD, i.e.
    GALFIT's angle: PA_ap = radians(PA_galfit) mod pi.
  * q = b/a in (0.01, 1); Re: half-light radius along the major axis (R = sqrt(x'^2 + (y'/q)^2)).
  * Ie: surface brightness at Re [flux/arcsec^2 = ADU/pix here]; converted from the total
    flux with AstroPhot's b(n) (Ciotti & Bertin expansion), as for imfit.
  * exponential galaxy model: (Re, Ie) with b(1): R_e = 1.678 R_s, total flux as for a
    Sersic with n = 1.
  * flat sky model: I0 [flux/arcsec^2 = ADU/pix].
--variant default keeps AstroPhot's pixel sampling defaults (sampling_mode 'auto':
midpoint above 10^4 pixels, Simpson's rule below; integrate_mode 'bright': extra
quadrature of the brightest pixels). --variant midpoint samples pixel centres only
(sampling_mode='midpoint', integrate_mode='none'), which is what an ePSF that already
contains the pixel calls for.
--n-fit N fits only the first N galaxies (this per-galaxy LM is slow; run_peers.py
--astrophot-galaxies); the batched AstroPhot fitter is astrophot_batch_worker.py.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402


def main():
    p = common.parser(__doc__)
    p.add_argument("--n-fit", type=int, default=None, help="fit only the first N galaxies (default: all)")
    args = p.parse_args()
    clock = common.Clock()
    import astrophot as ap
    import torch

    try:
        ap.config.set_logging_output(stdout=False, filename=None)
    except Exception:
        pass
    d = common.load(args.data, args.config)
    if args.n_fit is not None:
        d["images"], d["sigma"] = d["images"][: args.n_fit], d["sigma"][: args.n_fit]
        d["start"] = {k: v[: args.n_fit] for k, v in d["start"].items()}
    s, B, zp = d["start"], d["images"].shape[0], d["zeropoint"]
    bulgedisk = d["model"] == "bulgedisk"
    kinds = ["sersic", "expdisk"] if bulgedisk else ["sersic"]
    sky_key = d["keys"][-1]
    out = {k: np.full(B, np.nan) for k in d["keys"]}
    errs = {k: np.full(B, np.nan) for k in d["keys"]}
    status = []
    sampling = {} if args.variant == "default" else dict(sampling_mode="midpoint", integrate_mode="none")
    lm_kwargs = {} if args.max_iter is None else dict(max_iter=args.max_iter)
    for b in range(B):
        target = ap.TargetImage(data=d["images"][b], pixelscale=1.0, zeropoint=zp,
                                variance=d["sigma"][b] ** 2, psf=d["psf"], name=f"target{b}")
        models = []
        for c, kind in enumerate(kinds, start=1):
            q, F = float(s[f"{c}_q"][b]), common.flux_from_mag(s[f"{c}_mag"][b], zp)
            geo = dict(center=[float(s[f"{c}_x"][b] - 1), float(s[f"{c}_y"][b] - 1)], q=q,
                       PA=float(np.deg2rad(s[f"{c}_pa"][b]) % np.pi))
            if kind == "sersic":
                n, r_e = float(s[f"{c}_n"][b]), float(s[f"{c}_r_e"][b])
                models.append(ap.Model(name=f"comp{c}", model_type="sersic galaxy model", target=target, n=n,
                                       Re=r_e, Ie=float(common.sersic_ie_from_flux(F, r_e, n, q)), **geo, **sampling))
            else:
                r_e = float(common.B1 * s[f"{c}_r_s"][b])
                models.append(ap.Model(name=f"comp{c}", model_type="exponential galaxy model", target=target,
                                       Re=r_e, Ie=float(common.sersic_ie_from_flux(F, r_e, 1.0, q)), **geo, **sampling))
        models.append(ap.Model(name="sky", model_type="flat sky model", target=target, I0=float(s[sky_key][b])))
        group = ap.Model(name=f"galaxy{b}", model_type="group model", models=models, target=target)
        group.initialize()
        clock.start()
        res = ap.fit.LM(group, verbose=0, **lm_kwargs).fit()
        clock.stop()
        status.append(str(res.message).strip())

        def val(param):
            return np.asarray(param.value.detach().cpu().numpy(), dtype=float)

        for c, kind in enumerate(kinds, start=1):
            m = models[c - 1]
            cx, cy = val(m.center)
            out[f"{c}_x"][b], out[f"{c}_y"][b] = cx + 1, cy + 1
            q, pa = float(val(m.q)), float(val(m.PA))
            out[f"{c}_q"][b], out[f"{c}_pa"][b] = q, np.rad2deg(pa)
            r_e, ie = float(val(m.Re)), float(val(m.Ie))
            if kind == "sersic":
                n = float(val(m.n))
                out[f"{c}_n"][b], out[f"{c}_r_e"][b] = n, r_e
                out[f"{c}_mag"][b] = common.mag_from_flux(common.sersic_flux_from_ie(ie, r_e, n, q), zp)
            else:
                out[f"{c}_r_s"][b] = r_e / common.B1
                out[f"{c}_mag"][b] = common.mag_from_flux(common.sersic_flux_from_ie(ie, r_e, 1.0, q), zp)
        out[sky_key][b] = float(val(models[-1].I0))
    common.write(args, "astrophot", d, out, clock, status=status,
                 settings=dict(fitter="ap.fit.LM", **lm_kwargs, **(sampling or dict(sampling_mode="auto (default)",
                                                                                   integrate_mode="bright (default)")),
                               dtype=str(ap.config.DTYPE), threads=torch.get_num_threads()),
                 dists=("astrophot", "caskade", "torch", "numpy"))


if __name__ == "__main__":
    main()
