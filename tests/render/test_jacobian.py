"""The fitter's Jacobian (analytic columns for magnitudes and sky, vmapped forward-mode
autodiff for the rest, chained through the bound transforms) against central finite
differences of the rendered model in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galprof import Component, Model, RenderConfig
from galprof.fitting.functions import ModelFunctions
from galprof.fitting.layout import ParameterLayout
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame
from references import moffat_epsf

SIZE = 32
FRAME = Frame(1, 1, SIZE, SIZE, zeropoint=25.0, exptime=2.0)


def _model():
    bulge = Component("sersic", dict(x=[16.3, 15.6], y=[15.8, 16.4], mag=[17.0, 17.5], r_e=[2.5, 4.0],
                                     n=[3.2, 1.3], q=[0.6, 0.85], pa=[30.0, -70.0]))
    # (not x = 15.5: a centre exactly on a pixel edge puts an exact-box edge through the
    # cusp, where float64 renders carry ~1e-8 relative quadrature noise that swamps
    # central differences with a 1e-5 step)
    disk = Component("expdisk", dict(x=[16.2, 15.45], y=[15.9, 16.3], mag=[17.2, 16.8], r_s=[4.0, 3.0],
                                     q=[0.4, 0.5], pa=[35.0, 10.0]), fixed={"x", "y"})
    sky = Component("sky", dict(sky=[0.3, -0.2], dsdx=[0.01, 0.0], dsdy=[-0.02, 0.005]))
    return Model([bulge, disk, sky])


def _finite_differences(functions, free, index, step):
    columns = []
    for k in range(free.shape[1]):
        up, down = free.clone(), free.clone()
        up[:, k] += step
        down[:, k] -= step
        columns.append((functions.render(up, index) - functions.render(down, index)) / (2 * step))
    return torch.stack(columns, dim=-1)


@pytest.mark.parametrize("internal", [True, False], ids=["theta", "user"])
@pytest.mark.parametrize("with_psf", [True, False], ids=["psf", "nopsf"])
def test_jacobian_matches_central_differences(internal, with_psf):
    model = _model()
    layout = ParameterLayout(model, ((0.5, SIZE + 0.5), (0.5, SIZE + 0.5)))
    values = torch.tensor(layout.initial_values(2), dtype=torch.float64)
    psf = prepare_psf(moffat_epsf(3.5, 2.8, 25), dtype=torch.float64) if with_psf else None
    functions = ModelFunctions(layout, values, FRAME, psf, RenderConfig(), internal=internal)
    free = layout.to_internal(values) if internal else values[:, list(layout.free_index)]
    index = torch.arange(2)
    model_image, jac = functions.jacobian(free, index)
    np.testing.assert_allclose(model_image.numpy(), functions.render(free, index).numpy(), rtol=1e-12, atol=1e-12)
    reference = _finite_differences(functions, free, index, 1e-5)
    scale = reference.abs().amax(dim=(1, 2), keepdim=True)  # per galaxy and column
    err = ((jac - reference).abs() / scale).amax().item()
    assert err < 1e-6, err
    assert jac.shape == (2, SIZE, SIZE, layout.n_free)
