"""galprof worker (runs in the main environment): fits every galaxy of one configuration
in a single batched call, in float32 or float64 (--variant float32|float64)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from galprof import Component, Model, fit  # noqa: E402

PARAMS = {"sersic": ("x", "y", "mag", "r_e", "n", "q", "pa"), "expdisk": ("x", "y", "mag", "r_s", "q", "pa")}


def main():
    p = common.parser(__doc__)
    args = p.parse_args()
    clock = common.Clock()
    d = common.load(args.data, args.config)
    s = d["start"]
    kinds = ["sersic", "sky"] if d["model"] == "sersic" else ["sersic", "expdisk", "sky"]
    comps = []
    for i, kind in enumerate(kinds, start=1):
        if kind == "sky":
            comps.append(Component("sky", dict(sky=s[f"{i}_sky"], dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"}))
        else:
            comps.append(Component(kind, {name: s[f"{i}_{name}"] for name in PARAMS[kind]}))
    model = Model(comps)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.variant]
    kwargs = {}
    if args.max_iter:
        from galprof.optimise.lm import LMSettings

        kwargs["lm_settings"] = LMSettings(max_iterations=args.max_iter)
    clock.start()
    result = fit(model, d["images"], sigma=d["sigma"], psf=d["psf"], zeropoint=d["zeropoint"], dtype=dtype,
                 device=args.device, **kwargs)
    clock.stop()
    values, errors = {}, {}
    for i, kind in enumerate(kinds, start=1):
        for name in (("sky",) if kind == "sky" else PARAMS[kind]):
            values[f"{i}_{name}"] = result.value(i, name)
            errors[f"{i}_{name}"] = result.error(i, name)
    status = ["converged" if c else "not converged" for c in np.asarray(result.converged)]
    common.write(args, "galprof", d, values, clock, errors=errors, status=status,
                 settings=dict(dtype=args.variant, batch=d["images"].shape[0], threads=torch.get_num_threads(),
                               device=args.device, peak_gpu_mib=common.peak_gpu_mib(args.device),
                               median_iterations=float(np.median(result.iterations)), **(
                                   {"max_iterations": args.max_iter} if args.max_iter else {})),
                 dists=("galprof", "torch", "numpy"))


if __name__ == "__main__":
    main()
