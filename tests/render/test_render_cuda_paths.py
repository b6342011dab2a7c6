"""The render and Jacobian passes as a GPU runs them.

On any device but the CPU the special functions use static bounds (the power series of
P(a, x) takes its worst-case 224 terms; b_n takes its full Newton iterations) so that
nothing is read on the host, and the Jacobian is formed in one pass for a whole batch.
Here those branches run on the CPU (``cuda_paths.emulate_other_device``): they must give
the CPU's images and Jacobians and make no host synchronisation. The ``gpu`` cases
compare CUDA itself with the CPU.
"""

from __future__ import annotations

import pytest
import torch

from cuda_paths import DEVICE_CASES, HostSyncs, emulate_other_device, moffat_stamp, skip_without
from galprof import Component, Model, RenderConfig
from galprof.fitting.functions import ModelFunctions
from galprof.fitting.layout import ParameterLayout
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame
from galprof.special import gammainc_lower_regularized, sersic_b

SIZE = 24
CENTRE = dict(x=12.3, y=11.8)

MODELS = {
    "sersic batch": lambda: [Component("sersic", dict(
        x=[12.0, 11.4, 12.8], y=[12.5, 12.0, 11.6], mag=[18.0, 17.0, 19.0], r_e=[0.3, 1.7, 6.0],
        n=[0.6, 5.5, 2.2], q=[0.9, 0.3, 0.55], pa=[10.0, -60.0, 85.0]))],
    "bulge, disk, point source, sky": lambda: [
        Component("devauc", dict(CENTRE, mag=18.0, r_e=2.0, q=0.8, pa=20.0)),
        Component("expdisk", dict(CENTRE, mag=17.5, r_s=4.0, q=0.35, pa=25.0)),
        Component("psf", dict(x=18.3, y=8.2, mag=19.0)),
        Component("sky", dict(sky=0.2, dsdx=0.01, dsdy=0.0))],
    "boxy sersic": lambda: [Component("sersic", dict(CENTRE, mag=18.0, r_e=3.0, n=1.5, q=0.5, pa=40.0, c0=0.4))],
    "ferrer": lambda: [Component("ferrer", dict(CENTRE, mu_0=18.0, r_out=6.0, alpha=2.0, beta=0.5, q=0.7, pa=10.0))],
    "king": lambda: [Component("king", dict(CENTRE, mu_0=18.0, r_c=2.0, r_t=10.0, alpha=2.0, q=0.7, pa=10.0))],
    "edgedisk": lambda: [Component("edgedisk", dict(CENTRE, mu_0=18.0, h_s=1.0, r_s=4.0, pa=10.0))],
}


def _passes(components, *, psf: bool = True, dtype=torch.float64, device="cpu"):
    """(model images, Jacobian) of one render and one Jacobian pass at the start values."""
    model = Model(components)
    layout = ParameterLayout(model, ((0.5, SIZE + 0.5), (0.5, SIZE + 0.5)))
    bsz = model.batch_size() or 1
    values = torch.tensor(layout.initial_values(bsz), dtype=torch.float64, device=device)
    prepared = prepare_psf(moffat_stamp(11), dtype=dtype, device=device) if psf else None
    functions = ModelFunctions(layout, values, Frame(1, 1, SIZE, SIZE, zeropoint=25.0), prepared, RenderConfig(),
                               internal=True)
    free = layout.to_internal(values).to(dtype)
    index = torch.arange(bsz, device=device)
    image = functions.render(free, index)
    _, jac = functions.jacobian(free, index)
    return image, jac


def _assert_close(got, reference, rtol):
    """Equal within ``rtol`` of each galaxy's (and Jacobian column's) largest value."""
    got, reference = got.to("cpu", torch.float64), reference.to("cpu", torch.float64)
    scale = reference.abs().flatten(1, 2).amax(1, keepdim=True).unsqueeze(1).clamp(min=1e-300)
    assert ((got - reference).abs() / scale).max().item() <= rtol


def test_static_bounds_give_the_cpus_special_functions(monkeypatch):
    n = torch.linspace(0.2, 10.0, 157, dtype=torch.float64, requires_grad=True)
    a = torch.linspace(0.3, 20.0, 64, dtype=torch.float64)[:, None]
    x = torch.linspace(0.0, 60.0, 50, dtype=torch.float64)[None, :]
    b_cpu = sersic_b(n)
    (slope_cpu,) = torch.autograd.grad(b_cpu.sum(), n)
    p_cpu = gammainc_lower_regularized(a, x)
    emulate_other_device(monkeypatch)
    b_other = sersic_b(n)
    (slope_other,) = torch.autograd.grad(b_other.sum(), n)
    torch.testing.assert_close(b_other, b_cpu, rtol=1e-13, atol=0)
    torch.testing.assert_close(slope_other, slope_cpu, rtol=1e-10, atol=0)
    torch.testing.assert_close(gammainc_lower_regularized(a, x), p_cpu, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", list(MODELS))
def test_render_and_jacobian_read_nothing_on_the_host(name, monkeypatch):
    """The non-CPU branches render the CPU's images and Jacobians, and synchronise
    nothing: no value read, no index gather (once the per-device table of b_n, whose
    construction reads two numbers, exists: the CPU pass makes it)."""
    image_cpu, jac_cpu = _passes(MODELS[name]())
    emulate_other_device(monkeypatch)
    with HostSyncs() as syncs:
        image, jac = _passes(MODELS[name]())
    assert not syncs.counts, dict(syncs.counts)
    _assert_close(image, image_cpu, 1e-12)
    _assert_close(jac, jac_cpu, 1e-9)


def test_the_cpu_reads_values_where_other_devices_do_not():
    """The counter sees the CPU-only reads (the data-dependent series length), so the
    test above would see them too."""
    _passes(MODELS["sersic batch"]())
    with HostSyncs() as syncs:
        _passes(MODELS["sersic batch"]())
    assert syncs.counts["value reads"] > 0


@pytest.mark.parametrize("device, dtype", DEVICE_CASES)
@pytest.mark.parametrize("name", ["sersic batch", "bulge, disk, point source, sky", "ferrer"])
def test_render_and_jacobian_on_the_device_equal_the_cpus(name, device, dtype):
    skip_without(device)
    image_cpu, jac_cpu = _passes(MODELS[name]())
    image, jac = _passes(MODELS[name](), dtype=dtype, device=device)
    assert image.device.type == jac.device.type == torch.device(device).type
    rtol = 1e-10 if dtype == torch.float64 else 2e-5
    _assert_close(image, image_cpu, rtol)
    _assert_close(jac, jac_cpu, 1e-8 if dtype == torch.float64 else 2e-3)
