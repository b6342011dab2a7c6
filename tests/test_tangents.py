"""Analytic canvas tangents (galprof.render.tangents) against forward-mode autodiff of the
whole render and against central finite differences, in float64.

The Jacobian with a PSF is assembled from per-component canvas derivatives; forward-mode
autodiff through the complete renderer is an independent derivation of the same
derivative, and central differences of the rendered images check both.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galprof import Component, Model, RenderConfig
from galprof import evaluation
from galprof.evaluation import ModelFunctions
from galprof.params import ParameterLayout
from galprof.profiles import get_profile
from galprof.profiles.modifiers import with_modifiers
from galprof.render.psf import prepare_psf, stack_psfs
from galprof.render.scene import Frame
from galprof.render.tangents import has_analytic_tangents, supports_tangents
from references import moffat_epsf
from test_jacobian import _finite_differences

SIZE = 30
FRAME = Frame(1, 1, SIZE, SIZE, zeropoint=25.0)


def _functions(model, psf, frame=FRAME, config=RenderConfig()):
    layout = ParameterLayout(model, ((0.5, SIZE + 0.5), (0.5, SIZE + 0.5)))
    bsz = model.batch_size() or 1
    values = torch.tensor(layout.initial_values(bsz), dtype=torch.float64)
    functions = ModelFunctions(layout, values, frame, psf, config, internal=True)
    return functions, layout.to_internal(values), torch.arange(bsz)


def _forward_mode_jacobian(functions, free, index, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(evaluation, "supports_tangents", lambda *args: False)
        return functions.jacobian(free, index)


def _relative_column_error(jac, reference):
    scale = reference.abs().amax(dim=(1, 2), keepdim=True).clamp(min=1e-300)
    return ((jac - reference).abs() / scale).amax().item()


MODELS = {
    # compact, cuspy and extended Sérsics (R_e down to 0.3 px), centres on and off pixel centres
    "sersic": lambda: Model([Component("sersic", dict(
        x=[15.0, 14.37, 16.81], y=[15.5, 16.02, 14.6], mag=[18.0, 17.0, 19.0], r_e=[0.3, 1.7, 6.0],
        n=[0.6, 5.5, 2.2], q=[0.9, 0.3, 0.55], pa=[10.0, -60.0, 85.0]))]),
    "bulge, disk, point source and sky": lambda: Model([
        Component("devauc", dict(x=[15.2, 14.9], y=[15.7, 16.1], mag=[18.0, 17.5], r_e=[2.0, 3.5], q=[0.8, 0.6],
                                 pa=[20.0, -30.0])),
        Component("expdisk", dict(x=[15.3, 15.0], y=[15.6, 16.0], mag=[17.5, 17.0], r_s=[4.0, 2.5], q=[0.35, 0.7],
                                  pa=[25.0, -20.0])),
        Component("psf", dict(x=[20.3, 10.6], y=[12.2, 18.9], mag=[19.0, 18.5])),
        Component("sky", dict(sky=[0.2, -0.1], dsdx=[0.01, 0.0], dsdy=[0.0, -0.02]))]),
    "fixed centre and angle": lambda: Model([Component("sersic", dict(
        x=[15.4], y=[15.2], mag=[18.0], r_e=[3.0], n=[1.5], q=[0.5], pa=[40.0]), fixed={"x", "pa"})]),
    "boxy Sérsic (forward-mode fallback)": lambda: Model([Component("sersic", dict(
        x=[15.4], y=[15.2], mag=[18.0], r_e=[3.0], n=[1.5], q=[0.5], pa=[40.0], c0=[0.4]))]),
    "gaussian and moffat": lambda: Model([
        Component("gaussian", dict(x=[15.4], y=[15.2], mag=[18.0], fwhm=[3.0], q=[0.5], pa=[40.0])),
        Component("moffat", dict(x=[14.4], y=[16.2], mag=[18.0], fwhm=[2.0], beta=[2.5], q=[0.8], pa=[-10.0]))]),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_tangent_jacobian_equals_forward_mode(name, monkeypatch):
    psf = prepare_psf(moffat_epsf(3.5, 2.8, 21), dtype=torch.float64)
    functions, free, index = _functions(MODELS[name](), psf)
    model, jac = functions.jacobian(free, index)
    reference_model, reference = _forward_mode_jacobian(functions, free, index, monkeypatch)
    tolerance = 1e-12 * float(model.abs().max())
    np.testing.assert_allclose(model.numpy(), functions.render(free, index).numpy(), rtol=0, atol=tolerance)
    np.testing.assert_allclose(model.numpy(), reference_model.numpy(), rtol=0, atol=tolerance)
    # the profile set-up and the exact core cells are differentiated by central
    # differences in float64 (~1e-9 relative), everything else analytically
    assert _relative_column_error(jac, reference) < 1e-7


def test_tangent_jacobian_matches_central_differences():
    psf = prepare_psf(moffat_epsf(4.5, 2.5, 19), dtype=torch.float64)
    functions, free, index = _functions(MODELS["sersic"](), psf)
    _, jac = functions.jacobian(free, index)
    assert _relative_column_error(jac, _finite_differences(functions, free, index, 1e-5)) < 1e-6


def test_per_galaxy_psfs(monkeypatch):
    psf = stack_psfs([prepare_psf(moffat_epsf(3.5, fwhm, 21), dtype=torch.float64) for fwhm in (2.4, 2.9, 3.3)])
    functions, free, index = _functions(MODELS["sersic"](), psf)
    _, jac = functions.jacobian(free, index)
    _, reference = _forward_mode_jacobian(functions, free, index, monkeypatch)
    assert _relative_column_error(jac, reference) < 1e-7


def test_which_profiles_are_analytic():
    for name in ("sersic", "devauc", "expdisk"):
        assert has_analytic_tangents(get_profile(name)), name
    # a subclass that changes the brightness (a magnitude variant, a shape modifier) or a
    # point source falls back to forward mode
    assert not has_analytic_tangents(with_modifiers(get_profile("sersic"), True, ()))
    assert not has_analytic_tangents(get_profile("psf"))
    for name in ("ferrer", "king", "edgedisk"):
        assert not has_analytic_tangents(get_profile(name)), name


def test_where_the_tangent_path_applies():
    psf = prepare_psf(moffat_epsf(3.5, 2.8, 21), dtype=torch.float64)
    assert supports_tangents(FRAME, psf, RenderConfig())
    assert not supports_tangents(FRAME, None, RenderConfig())
    assert not supports_tangents(FRAME, psf, RenderConfig(legacy_pixel_integration=True))
    boxed = Frame(1, 1, SIZE, SIZE, convolution_box=(10, 10))
    assert not supports_tangents(boxed, psf, RenderConfig())
    assert supports_tangents(Frame(1, 1, SIZE, SIZE, convolution_box=(SIZE, SIZE)), psf, RenderConfig())
