"""AstroPhot BatchLM worker (runs in bench/peers/.venvs/astrophot): every galaxy of one
configuration in one call of AstroPhot 0.18's batched Levenberg-Marquardt,
``ap.fit.BatchLM`` (``vmap`` of ``jacfwd`` of one model over a ``TargetImageBatch`` of
same-shape images), in float32 or float64.

How it is driven. BatchLM has no docstring in 0.18 and the package ships no example of
it; this follows the package's own BatchLM set-up (AstroPhot's tests/test_fit.py,
``_make_batch_lm_setup``) and the rules stated in the ``BatchSceneModel`` /
``ImageBatchMixin`` docstrings:
  * one ``ap.TargetImage(data, pixelscale=1, zeropoint=25, variance=sigma**2, psf=stamp)``
    per galaxy, all gathered in ``ap.TargetImageBatch(images)``; each image's PSF goes
    into the batch's ``psf_stack``, and BatchLM vmaps the model over each image's CD,
    crtan, crpix and PSF;
  * one model built on ``batch.images[0]`` from galaxy 0's start (a ``"group model"`` of
    ``"sersic galaxy model"`` [+ ``"exponential galaxy model"``] + ``"flat sky model"``,
    exactly as the per-galaxy worker astrophot_worker.py builds it), ``initialize()``d,
    then every parameter is set to the batch of starts (``model.n = tuple(...)`` etc.:
    a leading batch dimension, as in that set-up);
  * ``ap.fit.BatchLM(model, batch, batch.window).fit()`` with its defaults (max_iter 100,
    relative_tolerance 1e-5, L0 1, Lup 11, Ldn 9, max_step_iter 3, Gaussian likelihood);
    ``fit()`` also computes the covariance (one more Jacobian), as galprof's fit does.
  Its stopping rule is one for the whole batch (every galaxy's relative chi^2 change
  below the tolerance and every damping below 0.1, or no galaxy moving for 10
  iterations), so all galaxies iterate as long as the slowest one.

dtype. AstroPhot has no dtype argument: its dtype is the module global
``ap.config.DTYPE`` (float64, set by its torch backend at import). ``float32`` sets
``ap.config.DTYPE = torch.float32`` before any image or model is made, so the data, the
parameters, the model and the Jacobian are float32 (checked: ``jacobian(x).dtype``).

Conventions of AstroPhot 0.18 and the conversions (the same as astrophot_worker.py):
  * pixels: pixelscale 1, CD = identity, crpix = crtan = 0: the centre of pixel (i, j)
    (0-based column, row) is at (i, j): x_ap = x_galfit - 1, y_ap = y_galfit - 1.
  * PA: radians in [0, pi), "East of North" = from +y towards -x with this CD, i.e.
    GALFIT's angle: PA_ap = radians(PA_galfit) mod pi.
  * q = b/a in (0.01, 1); Re: half-light radius along the major axis.
  * Ie: surface brightness at Re [flux/arcsec^2 = ADU/pix here], converted from the total
    flux with AstroPhot's b(n) (Ciotti & Bertin expansion) both ways.
  * exponential galaxy model: (Re, Ie) with b(1): R_e = 1.678 R_s.
  * flat sky model: I0 [ADU/pix].

Variants: ``float32``, ``float64`` keep AstroPhot's pixel sampling defaults
(sampling_mode 'auto': Simpson's rule up to 10^4 pixels, i.e. at 64x64, midpoint above,
i.e. at 128x128; integrate_mode 'bright'); ``float32_midpoint``, ``float64_midpoint``
sample pixel centres only (sampling_mode='midpoint', integrate_mode='none'), which is
what an ePSF that already contains the pixel calls for. The timed part is the
construction of ``ap.fit.BatchLM`` and its ``fit()``; building the images and models
and setting the starts are not timed (as for the other workers).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402

VARIANTS = ("float32", "float64", "float32_midpoint", "float64_midpoint")


def main():
    p = common.parser(__doc__)
    args = p.parse_args()
    if args.variant not in VARIANTS:
        p.error(f"--variant must be one of {VARIANTS}")
    clock = common.Clock()
    import astrophot as ap
    import torch

    try:
        ap.config.set_logging_output(stdout=False, filename=None)
    except Exception:
        pass
    dtype_name, _, sampling_name = args.variant.partition("_")
    if dtype_name == "float32":
        ap.config.DTYPE = torch.float32
    sampling = {} if not sampling_name else dict(sampling_mode="midpoint", integrate_mode="none")

    d = common.load(args.data, args.config)
    s, B, zp = d["start"], d["images"].shape[0], d["zeropoint"]
    kinds = ["sersic", "expdisk"] if d["model"] == "bulgedisk" else ["sersic"]
    sky_key = d["keys"][-1]

    images = [ap.TargetImage(data=d["images"][b], pixelscale=1.0, zeropoint=zp, variance=d["sigma"][b] ** 2,
                             psf=d["psf"], name=f"target{b}") for b in range(B)]
    batch = ap.TargetImageBatch(images)
    first = batch.images[0]

    # Starts in AstroPhot's parametrisation, one array of B values per parameter.
    starts = []
    for c, kind in enumerate(kinds, start=1):
        q = np.asarray(s[f"{c}_q"], dtype=float)
        flux = common.flux_from_mag(s[f"{c}_mag"], zp)
        st = dict(center=np.stack([s[f"{c}_x"] - 1.0, s[f"{c}_y"] - 1.0], axis=1), q=q,
                  PA=np.deg2rad(np.asarray(s[f"{c}_pa"], dtype=float)) % np.pi)
        if kind == "sersic":
            st["n"], st["Re"] = np.asarray(s[f"{c}_n"], dtype=float), np.asarray(s[f"{c}_r_e"], dtype=float)
            st["Ie"] = common.sersic_ie_from_flux(flux, st["Re"], st["n"], q)
        else:
            st["Re"] = common.B1 * np.asarray(s[f"{c}_r_s"], dtype=float)
            st["Ie"] = common.sersic_ie_from_flux(flux, st["Re"], 1.0, q)
        starts.append(st)
    starts.append(dict(I0=np.asarray(s[sky_key], dtype=float)))

    def first_value(v):
        v = np.asarray(v[0], dtype=float)
        return v.tolist() if v.ndim else float(v)

    models = []
    for c, (kind, st) in enumerate(zip(kinds, starts), start=1):
        model_type = "sersic galaxy model" if kind == "sersic" else "exponential galaxy model"
        models.append(ap.Model(name=f"comp{c}", model_type=model_type, target=first,
                               **{k: first_value(v) for k, v in st.items()}, **sampling))
    models.append(ap.Model(name="sky", model_type="flat sky model", target=first, I0=first_value(starts[-1]["I0"])))
    group = ap.Model(name="galaxies", model_type="group model", models=models, target=first)
    group.initialize()
    for m, st in zip(models, starts):
        for k, v in st.items():
            setattr(m, k, tuple(tuple(map(float, row)) if np.ndim(row) else float(row) for row in v))
    n_params = int(group.get_values().shape[-1])

    lm_kwargs = {} if args.max_iter is None else dict(max_iter=args.max_iter)
    clock.start()
    res = ap.fit.BatchLM(group, batch, batch.window, verbose=0, **lm_kwargs).fit()
    clock.stop()

    def val(param):
        return np.asarray(param.value.detach().cpu().numpy(), dtype=float)

    out = {}
    for c, kind in enumerate(kinds, start=1):
        m = models[c - 1]
        centre = val(m.center).reshape(B, 2)
        out[f"{c}_x"], out[f"{c}_y"] = centre[:, 0] + 1, centre[:, 1] + 1
        q, r_e, ie = val(m.q).reshape(B), val(m.Re).reshape(B), val(m.Ie).reshape(B)
        out[f"{c}_q"], out[f"{c}_pa"] = q, np.rad2deg(val(m.PA).reshape(B))
        n = val(m.n).reshape(B) if kind == "sersic" else np.ones(B)
        if kind == "sersic":
            out[f"{c}_n"], out[f"{c}_r_e"] = n, r_e
        else:
            out[f"{c}_r_s"] = r_e / common.B1
        out[f"{c}_mag"] = common.mag_from_flux(common.sersic_flux_from_ie(ie, r_e, n, q), zp)
    out[sky_key] = val(models[-1].I0).reshape(B)

    chi2 = np.asarray(res.loss_history[-1], dtype=float).reshape(-1)
    damping = np.asarray(res.L_history[-1], dtype=float).reshape(-1)
    message = str(res.message).strip()
    status = [f"{message}; chi2/ndf {x:.4g}; L {lam:.3g}" for x, lam in zip(chi2, damping)]
    common.write(args, "astrophot_batch", d, out, clock, status=status,
                 settings=dict(fitter="ap.fit.BatchLM", batch=B, dynamic_parameters_per_galaxy=n_params,
                               iterations=len(res.loss_history) - 1, message=message,
                               max_iter=lm_kwargs.get("max_iter", "100 (default)"),
                               **(sampling or dict(sampling_mode="auto (default)", integrate_mode="bright (default)")),
                               dtype=str(ap.config.DTYPE), threads=torch.get_num_threads()),
                 dists=("astrophot", "caskade", "torch", "numpy"))


if __name__ == "__main__":
    main()
