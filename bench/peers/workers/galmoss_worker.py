"""galmoss worker (runs in bench/peers/.venvs/galmoss): drives galmoss 2.2 as its README does
(gm.p parameters, gm.lp profiles, gm.DataSet of FITS paths, gm.Fitting(...).fit()), with all
galaxies of a configuration in one batch.

Conventions of galmoss 2.2 (read from its source) and the conversions used here:
  * grid: pixel centres at x = i + 0.5 (i = 0-based column) and, for rows, the grid runs
    from H - 0.5 (row 0) down to 0.5, with the centre entered as H - cen_y; the net effect
    is cen_x = x_galfit - 0.5, cen_y = y_galfit - 0.5 (0-based pixel edges).
  * pa (degrees, angle=True): the y offset enters the ellipse with the opposite sign and
    the x and y offsets are swapped before the rotation; together these make galmoss's
    angle counter-clockwise from +y, i.e. pa = PA_galfit (checked on simulated images:
    a -(PA + 90) guess converged to the truth's PA itself). Reported in [-90, 90].
  * axis_r = q = b/a (no bound by default; q > 1 is folded back by common.canonical).
  * eff_r: half-light radius along the major axis [pix] (pix_scale=1).
  * mag: total magnitude of the infinite profile with M0 = zeropoint; Sersic b(n) from the
    Ciotti & Bertin expansion.
  * ExpDisk is not usable in 2.2 (its intensity refers to an undefined attribute ``con``),
    so the disk is a Sersic with ser_n fixed at 1 (R_e = 1.678 R_s).
  * the PSF is applied with torch conv2d (a correlation; the benchmark PSF is symmetric).
  * Sky: gm.lp.Sky(sky_bg), not convolved.
--variant default: the README's iteration=1000 (DiffGrad, lr 0.015, its early stop);
--variant converged: --max-iter iterations (default 10000).
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402


def main():
    p = common.parser(__doc__)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    args = p.parse_args()
    clock = common.Clock()
    import torch
    from astropy.io import fits
    import pandas as pd
    import galmoss as gm

    d = common.load(args.data, args.config)
    s, B = d["start"], d["images"].shape[0]
    iterations = args.max_iter or (1000 if args.variant == "default" else 10000)
    work = tempfile.mkdtemp(prefix="galmoss_")
    names, img_paths, sig_paths, psf_paths = [], [], [], []
    psf_path = os.path.join(work, "psf.fits")
    fits.PrimaryHDU(d["psf"].astype(np.float32)).writeto(psf_path)
    for b in range(B):
        names.append(f"g{b:05d}")
        img_paths.append(os.path.join(work, f"g{b:05d}_image.fits"))
        sig_paths.append(os.path.join(work, f"g{b:05d}_sigma.fits"))
        fits.PrimaryHDU(d["images"][b]).writeto(img_paths[-1])
        fits.PrimaryHDU(d["sigma"][b]).writeto(sig_paths[-1])
        psf_paths.append(psf_path)

    def sersic(c, n_fixed=None, size_key="r_e"):
        r_e = s[f"{c}_{size_key}"] * (common.B1 if size_key == "r_s" else 1.0)
        return gm.lp.Sersic(
            cen_x=gm.p(s[f"{c}_x"] - 0.5),
            cen_y=gm.p(s[f"{c}_y"] - 0.5),
            pa=gm.p(common.wrap_pa(s[f"{c}_pa"]), angle=True),
            axis_r=gm.p(s[f"{c}_q"]),
            eff_r=gm.p(r_e, pix_scale=1.0),
            ser_n=gm.p(s[f"{c}_n"], log=True) if n_fixed is None else gm.p(np.full(B, n_fixed), fit=False),
            mag=gm.p(s[f"{c}_mag"], M0=d["zeropoint"]),
        )

    if d["model"] == "sersic":
        profiles = dict(bulge=sersic(1), sky=gm.lp.Sky(sky_bg=gm.p(s["2_sky"])))
    else:
        profiles = dict(bulge=sersic(1), disk=sersic(2, n_fixed=1.0, size_key="r_s"),
                        sky=gm.lp.Sky(sky_bg=gm.p(s["3_sky"])))
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    dataset = gm.DataSet(names, image_path=img_paths, sigma_path=sig_paths, psf_path=psf_paths,
                         result_path=work, result_type="CSV", data_type=dtype, device=args.device)
    dataset.define_profiles(**profiles)
    fitting = gm.Fitting(dataset=dataset, batch_size=B, iteration=iterations)
    clock.start()
    fitting.fit()
    clock.stop()
    table = pd.read_csv(os.path.join(work, "result.csv"))

    def col(profile, param):
        for suffix in ("(varaible)", "(variable)", "(fixed)"):
            name = f"{profile}_{param}_{suffix}"
            if name in table.columns:
                return table[name].to_numpy(dtype=float)
        raise KeyError(f"{profile}_{param} not in {list(table.columns)}")

    values = {}
    comp_names = ["bulge"] if d["model"] == "sersic" else ["bulge", "disk"]
    for c, prof in enumerate(comp_names, start=1):
        values[f"{c}_x"] = col(prof, "cen_x") + 0.5
        values[f"{c}_y"] = col(prof, "cen_y") + 0.5
        values[f"{c}_pa"] = common.wrap_pa(col(prof, "pa"))
        values[f"{c}_q"] = col(prof, "axis_r")
        values[f"{c}_mag"] = col(prof, "mag")
        if prof == "disk":
            values[f"{c}_r_s"] = col(prof, "eff_r") / common.B1
        else:
            values[f"{c}_r_e"] = col(prof, "eff_r")
            values[f"{c}_n"] = col(prof, "ser_n")
    values[f"{len(comp_names) + 1}_sky"] = col("sky", "sky_bg")
    eff_iter = fitting.total_eff_iter.detach().cpu().numpy()
    status = [f"best at iteration {int(i)} of {iterations}" for i in eff_iter]
    for f in glob.glob(os.path.join(work, "*")):
        os.remove(f)
    os.rmdir(work)
    common.write(args, "galmoss", d, values, clock, status=status,
                 settings=dict(iteration=iterations, optimizer="DiffGrad (default)", step_length=0.015,
                               batch_size=B, dtype=args.dtype, threads=torch.get_num_threads(), device=args.device,
                               peak_gpu_mib=common.peak_gpu_mib(args.device)),
                 dists=("galmoss", "torch", "torch-optimizer", "numpy"),
                 notes=["disk fitted as Sersic with n fixed at 1 (galmoss 2.2 ExpDisk is broken)"]
                 if d["model"] == "bulgedisk" else [])


if __name__ == "__main__":
    main()
