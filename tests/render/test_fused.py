"""Fused rendering (RenderConfig.fused: the light canvas and its analytic derivatives
through torch.compile) gives the eager path's model and Jacobian, and falls back to the
eager path, saying so, where compilation fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galprof import Component, Model
from galprof.fitting import ModelFunctions, prepare_fit
from galprof.render import fusion
from galprof.render.config import RenderConfig


def psf_stamp(size: int = 9, fwhm: float = 2.5) -> np.ndarray:
    y, x = np.mgrid[:size, :size] - size // 2
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / 3.5) - 1))
    stamp = (1 + (x**2 + y**2) / alpha**2) ** -3.5
    return stamp / stamp.sum()


def jacobian(config: RenderConfig, dtype=torch.float32):
    values = dict(x=np.array([12.3, 11.6]), y=np.array([11.8, 12.4]), mag=np.array([18.0, 18.5]),
                  r_e=np.array([3.0, 2.2]), n=np.array([1.5, 3.5]), q=np.array([0.7, 0.5]), pa=np.array([20.0, -50.0]))
    model = Model([Component("sersic", values), Component("expdisk", dict(x=12.0, y=12.0, mag=18.2, r_s=3.5,
                                                                          q=0.6, pa=10.0))])
    setup = prepare_fit(model, np.zeros((2, 24, 24)), psf=psf_stamp(), zeropoint=25.0, dtype=dtype)
    fixed = torch.as_tensor(setup.initial, dtype=torch.float64)
    functions = ModelFunctions(setup.layout, fixed, setup.frame, setup.psf, config, internal=True)
    theta = setup.layout.to_internal(fixed).to(dtype)
    model, jac = functions.jacobian(theta, torch.arange(2))
    return model, jac, functions.render(theta, torch.arange(2))


def test_fused_jacobian_and_render_equal_the_eager_ones():
    model, jac, rendered = jacobian(RenderConfig())
    fused_model, fused_jac, fused_rendered = jacobian(RenderConfig(fused=True))
    status = fusion.fusion_status()
    assert status == "compiled" or status.startswith("eager:")
    scale = jac.abs().amax((1, 2), keepdim=True)
    torch.testing.assert_close(fused_model, model, rtol=1e-5, atol=1e-6 * float(model.abs().max()))
    torch.testing.assert_close(fused_jac / scale, jac / scale, rtol=0, atol=1e-5)
    torch.testing.assert_close(fused_rendered, rendered, rtol=1e-5, atol=1e-6 * float(rendered.abs().max()))


def test_a_failed_compilation_falls_back_to_the_eager_path(monkeypatch):
    def broken(function, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler here")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    fusion.reset_fusion()
    model, jac, _ = jacobian(RenderConfig())
    with pytest.warns(RuntimeWarning, match="fused rendering is not available here"):
        fused_model, fused_jac, _ = jacobian(RenderConfig(fused=True))
    assert fusion.fusion_status() == "eager: RuntimeError: no C++ compiler here"
    torch.testing.assert_close(fused_jac, jac)
    torch.testing.assert_close(fused_model, model)
    fusion.reset_fusion()
