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
from galprof.fitting import functions as model_functions_module
from galprof.fitting.functions import ModelFunctions
from galprof.fitting.layout import ParameterLayout
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
        m.setattr(model_functions_module, "supports_tangents", lambda *args: False)
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


@pytest.mark.parametrize("name", ["sersic", "devauc", "expdisk"])
def test_core_transport_derivatives_match_central_differences(name):
    """d(exact cell integrals)/d(size, q, PA) as the flux of the light's flow through the
    cell edges (line integrals of the brightness) against central differences of the
    Green's-theorem integrals (enclosed flux), on the fine cells of the exact core."""
    from galprof.render.quadrature import (cell_integrals_exact, cell_integrals_transport_derivatives,
                                           transport_parameters)

    profile = get_profile(name)
    size_name = "r_s" if name == "expdisk" else "r_e"
    bsz = 6
    params = {"x": torch.zeros(bsz, dtype=torch.float64), "y": torch.zeros(bsz, dtype=torch.float64),
              "mag": torch.zeros(bsz, dtype=torch.float64),
              size_name: torch.tensor([0.3, 0.8, 2.0, 5.0, 15.0, 1.2], dtype=torch.float64),
              "q": torch.tensor([0.97, 0.3, 0.7, 0.05, 0.9, 0.5], dtype=torch.float64),
              "pa": torch.tensor([0.0, 30.0, -75.0, 10.0, 89.0, 45.0], dtype=torch.float64)}
    if name == "sersic":
        params["n"] = torch.tensor([0.5, 1.0, 4.0, 8.0, 2.5, 10.0], dtype=torch.float64)
    kinds = transport_parameters(profile, [size_name, "n", "q", "pa"])
    assert kinds == {size_name: "size", "q": "q", "pa": "pa"}
    cell = 0.2
    edges = (torch.arange(4, dtype=torch.float64) - 1.5) * cell
    x_edges, y_edges = edges.expand(bsz, 1, -1), edges.view(1, -1, 1).expand(bsz, -1, 1)

    def core(p):
        return cell_integrals_exact(profile, profile.setup({k: v[:, None, None] for k, v in p.items()}),
                                    x_edges, y_edges, 48, cell)  # the reference: twice the nodes

    got = cell_integrals_transport_derivatives(profile, profile.setup({k: v[:, None, None] for k, v in params.items()}),
                                               params[size_name][:, None, None], x_edges, y_edges, 24, kinds)
    for parameter in kinds:
        # a fourth-order stencil with a step large enough that rounding stays small where
        # the derivative is (PA of a nearly round galaxy)
        step = 1e-3 * params[parameter].abs().clamp(min=1.0) * (0.01 if parameter == "q" else 1.0)

        def shifted(k):
            return core({**params, parameter: params[parameter] + k * step})

        reference = (8.0 * (shifted(1) - shifted(-1)) - (shifted(2) - shifted(-2))) / (12.0 * step[:, None, None])
        scale = reference.abs().amax((1, 2))
        error = (got[parameter] - reference).abs().amax((1, 2)) / scale
        assert scale.min() > 0
        assert error.max() < 1e-7, f"{parameter}: {error.tolist()}"


def test_core_n_derivative_matches_central_differences():
    """d(exact cell integrals)/dn of the Sérsic from the series' own derivative of the
    incomplete gamma function (cell_integrals_exact_tangents, with db/dn from scipy's
    gammaincinv) against fourth-order central differences of the Green's-theorem
    integrals with twice the edge nodes; the cells themselves equal cell_integrals_exact's."""
    from scipy.special import gammaincinv

    from galprof.render.quadrature import cell_integrals_exact, cell_integrals_exact_tangents

    profile = get_profile("sersic")
    bsz = 6
    params = {"x": torch.zeros(bsz, dtype=torch.float64), "y": torch.zeros(bsz, dtype=torch.float64),
              "mag": torch.zeros(bsz, dtype=torch.float64),
              "r_e": torch.tensor([0.3, 0.8, 2.0, 5.0, 15.0, 1.2], dtype=torch.float64),
              "n": torch.tensor([0.5, 1.0, 4.0, 8.0, 2.5, 10.0], dtype=torch.float64),
              "q": torch.tensor([0.97, 0.3, 0.7, 0.05, 0.9, 0.5], dtype=torch.float64),
              "pa": torch.tensor([0.0, 30.0, -75.0, 10.0, 89.0, 45.0], dtype=torch.float64)}
    cell = 0.2
    edges = (torch.arange(4, dtype=torch.float64) - 1.5) * cell
    x_edges, y_edges = edges.expand(bsz, 1, -1), edges.view(1, -1, 1).expand(bsz, -1, 1)

    def setup(p):
        return profile.setup({k: v[:, None, None] for k, v in p.items()})

    def core(p, nodes=48):
        return cell_integrals_exact(profile, setup(p), x_edges, y_edges, nodes, cell)

    n = params["n"].numpy()
    h = 1e-6 * n
    db_dn = (gammaincinv(2 * (n + h), 0.5) - gammaincinv(2 * (n - h), 0.5)) / (2 * h)
    derived = setup(params)
    tangent = {k: torch.zeros_like(v) for k, v in derived.items()}
    tangent["n"] = torch.ones_like(derived["n"])
    tangent["b"] = torch.as_tensor(db_dn)[:, None, None]
    value, slope = cell_integrals_exact_tangents(profile, derived, [("n", tangent)], x_edges, y_edges, 24)
    np.testing.assert_allclose(value.numpy(), core(params, 24).numpy(), rtol=1e-13, atol=1e-16)
    step = 1e-3 * params["n"]

    def shifted(k):
        return core({**params, "n": params["n"] + k * step})

    reference = (8.0 * (shifted(1) - shifted(-1)) - (shifted(2) - shifted(-2))) / (12.0 * step[:, None, None])
    scale = reference.abs().amax((1, 2))
    error = (slope - reference).abs().amax((1, 2)) / scale
    assert scale.min() > 0
    assert error.max() < 1e-8, error.tolist()


def test_sersic_setup_tangents_match_central_differences():
    """Sersic.setup_tangents (b_n through the implicit function, log I_0 in closed form)
    and the quadratic form's slopes against fourth-order central differences of
    Sersic.setup and elliptical_quadratic_form in float64."""
    from galprof.conventions import elliptical_quadratic_form, elliptical_quadratic_form_slopes

    profile = get_profile("sersic")
    params = {"x": torch.zeros(5, dtype=torch.float64), "y": torch.zeros(5, dtype=torch.float64),
              "mag": torch.zeros(5, dtype=torch.float64),
              "r_e": torch.tensor([0.3, 1.5, 4.0, 12.0, 40.0], dtype=torch.float64),
              "n": torch.tensor([0.25, 0.8, 2.0, 5.5, 9.5], dtype=torch.float64),
              "q": torch.tensor([0.05, 0.3, 0.7, 0.95, 1.8], dtype=torch.float64),
              "pa": torch.tensor([-80.0, -10.0, 0.0, 45.0, 89.0], dtype=torch.float64)}
    names = ["r_e", "n", "q", "pa"]
    p3 = {k: v[:, None, None] for k, v in params.items()}
    got = profile.setup_tangents(profile.setup(p3), names)

    def derived_of(p):
        d = profile.setup({k: v[:, None, None] for k, v in p.items()})
        a, c, h = elliptical_quadratic_form(d["pa"], d["q"])
        return {**d, "_a": a, "_c": c, "_h": h}

    for name, slopes in zip(names, got):
        step = 1e-4 * params[name].abs().clamp(min=1.0)

        def at(k):
            return derived_of({**params, name: params[name] + k * step})

        plus1, minus1, plus2, minus2 = at(1), at(-1), at(2), at(-2)
        form = dict(zip(("_a", "_c", "_h"), elliptical_quadratic_form_slopes(p3["pa"], p3["q"], name)))
        for key in list(slopes) + ["_a", "_c", "_h"]:
            reference = (8 * (plus1[key] - minus1[key]) - (plus2[key] - minus2[key])) / (12 * step[:, None, None])
            value = form[key] if key in form else slopes[key]
            np.testing.assert_allclose(value.numpy(), reference.numpy(), rtol=1e-7, atol=1e-9, err_msg=f"{key}/{name}")


def test_transport_parameters_need_a_single_size():
    """With two lengths (a broken exponential) neither is a pure dilation."""
    from galprof.render.quadrature import transport_parameters

    broken = get_profile("brokenexp")
    sizes = [s.name for s in broken.parameters if s.is_size]
    assert len(sizes) >= 2
    assert set(transport_parameters(broken, sizes + ["q", "pa"])) <= {"q", "pa"}
