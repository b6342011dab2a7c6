"""d(user values) / d(optimiser coordinates) of a parameter layout with every kind of
constraint (ties by offset and ratio, pair ranges by difference and ratio, ranges,
relative and factor ranges, per-galaxy numbers), against central differences of the
layout's own map in float64."""

from __future__ import annotations

import numpy as np
import torch

from galprof import Component, Model
from galprof.constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from galprof.fitting.layout import ParameterLayout


def layout_and_values():
    rng = np.random.default_rng(3)
    bsz = 3

    def sersic(x):
        return Component("sersic", dict(x=x + rng.uniform(-1, 1, bsz), y=40.0 + rng.uniform(-1, 1, bsz),
                                        mag=rng.uniform(17, 19, bsz), r_e=rng.uniform(2, 5, bsz),
                                        n=rng.uniform(1, 3, bsz), q=rng.uniform(0.4, 0.9, bsz),
                                        pa=rng.uniform(-60, 60, bsz)))

    disk = Component("expdisk", dict(x=30.0, y=40.0, mag=17.0, r_s=6.0, q=0.5, pa=10.0), fixed={"pa"})
    constraints = (Tie((1, 2), "x", "offset"), Tie((1, 2), "y", "offset"), Tie((1, 3), "pa", "ratio"),
                   PairRange(1, 2, "mag", "-", -1.5, 1.0), PairRange(1, 2, ("r_e", "r_s"), "/", 0.2, 1.5),
                   Range(1, "n", 0.5, 6.0), RelativeRange(2, "q", -0.2, 0.3),
                   FactorRange(3, "n", 3.0), Range(3, "x", [28.0, 27.5, 29.0], [34.0, 33.5, 35.0]))
    model = Model((sersic(30.0), disk, sersic(31.0)), constraints)
    layout = ParameterLayout(model, ((1.0, 60.0), (1.0, 80.0)))
    values = torch.as_tensor(layout.initial_values(bsz), dtype=torch.float64)
    return layout, values


def test_value_jacobian_matches_central_differences():
    layout, values = layout_and_values()
    assert layout.constrained_index  # ties and coupled ranges are in play
    for internal in (True, False):
        free = layout.to_internal(values) if internal else layout.free_coordinates(values)

        def user(f):
            return layout.to_user(f, values) if internal else layout.from_free_coordinates(f, values)

        analytic = layout.value_jacobian(free, values, internal)
        assert analytic.shape == (values.shape[0], layout.n_params, layout.n_free)
        for k in range(layout.n_free):
            step = torch.zeros_like(free)
            step[:, k] = 1e-6
            numeric = (user(free + step) - user(free - step)) / 2e-6
            torch.testing.assert_close(analytic[:, :, k], numeric, atol=1e-6, rtol=1e-6)
        fixed = [i for i in range(layout.n_params) if i not in layout.varying_index]
        assert fixed and torch.all(analytic[:, fixed, :] == 0)
