"""Properties of the renderer (galprof against itself): symmetries, linearity, translation,
batching, continuity in the centre, differentiability and precision.

Hypothesis draws a few, reproducible examples per property (``FEW``), in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galprof.profiles import get_profile
from galprof.render.config import RenderConfig
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model
from references import moffat_epsf

pytestmark = pytest.mark.usefixtures("float64")

# few, reproducible examples and no deadline (each example renders a few images)
FEW = settings(max_examples=6, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

SERSIC = get_profile("sersic")
FRAME = Frame(x_min=1, y_min=1, width=26, height=24, zeropoint=20.0, exptime=2.0)
PSF = prepare_psf(moffat_epsf(3.5, 2.8, 15))
PSF_OPTIONS = [None, PSF]
PSF_IDS = ["nopsf", "psf"]


def galaxy(x=13.2, y=12.7, mag=18.0, r_e=2.5, n=1.5, q=0.6, pa=30.0, dtype=torch.float64):
    """Parameters of one Sérsic as (1,) tensors (or (B,) if sequences are given)."""
    values = dict(x=x, y=y, mag=mag, r_e=r_e, n=n, q=q, pa=pa)
    return {k: torch.as_tensor(np.atleast_1d(v), dtype=dtype) for k, v in values.items()}


def render(params, psf=None, frame=FRAME, config=RenderConfig()):
    return render_model([(SERSIC, params)], frame, psf=psf, config=config)


galaxies = st.fixed_dictionaries({
    "x": st.floats(12.0, 14.0), "y": st.floats(11.0, 13.0), "r_e": st.floats(0.8, 8.0),
    "n": st.floats(0.4, 6.0), "q": st.floats(0.2, 1.0), "pa": st.floats(-90.0, 90.0),
})


def assert_close_to_peak(a, b, tol):
    peak = b.abs().max()
    err = (a - b).abs().max() / peak
    assert err <= tol, f"max difference {err.item():.2e} of the peak > {tol:g}"


@pytest.mark.parametrize("psf", PSF_OPTIONS, ids=PSF_IDS)
@FEW
@given(g=galaxies)
def test_pa_plus_180_is_the_same_image(psf, g):
    a = render(galaxy(**g), psf)
    b = render(galaxy(**{**g, "pa": g["pa"] + 180.0}), psf)
    assert_close_to_peak(a, b, 1e-11)


@pytest.mark.parametrize("psf", PSF_OPTIONS, ids=PSF_IDS)
@FEW
@given(g=galaxies, pa2=st.floats(-180.0, 180.0))
def test_pa_does_nothing_at_q_1(psf, g, pa2):
    a = render(galaxy(**{**g, "q": 1.0}), psf)
    b = render(galaxy(**{**g, "q": 1.0, "pa": pa2}), psf)
    assert_close_to_peak(a, b, 1e-11)


@pytest.mark.parametrize("psf", PSF_OPTIONS, ids=PSF_IDS)
@FEW
@given(g=galaxies, dmag=st.floats(-3.0, 3.0))
def test_flux_is_linear_in_ten_to_the_minus_0p4_mag(psf, g, dmag):
    a = render(galaxy(**g, mag=18.0), psf)
    b = render(galaxy(**g, mag=18.0 + dmag), psf)
    torch.testing.assert_close(b, a * 10 ** (-0.4 * dmag), rtol=1e-12, atol=1e-14 * a.abs().max().item())
    # and a model of two components is the sum of the two images
    both = render_model([(SERSIC, galaxy(**g, mag=18.0)), (SERSIC, galaxy(**g, mag=18.0 + dmag))], FRAME, psf=psf)
    torch.testing.assert_close(both, a + b, rtol=1e-12, atol=1e-14 * a.abs().max().item())


@pytest.mark.parametrize("psf", PSF_OPTIONS, ids=PSF_IDS)
@FEW
@given(g=galaxies, dx=st.integers(-4, 4), dy=st.integers(-4, 4))
def test_integer_shift_translates_the_image(psf, g, dx, dy):
    a = render(galaxy(**g), psf)
    # same offsets in a frame moved with the source: identical images
    moved = Frame(x_min=FRAME.x_min + dx, y_min=FRAME.y_min + dy, width=FRAME.width, height=FRAME.height,
                  zeropoint=FRAME.zeropoint, exptime=FRAME.exptime)
    b = render(galaxy(**{**g, "x": g["x"] + dx, "y": g["y"] + dy}), psf, frame=moved)
    assert_close_to_peak(b, a, 1e-12)
    # shifted source in the same frame: the image moves by (dx, dy) pixels
    c = render(galaxy(**{**g, "x": g["x"] + dx, "y": g["y"] + dy}), psf)
    h, w = FRAME.height, FRAME.width
    shifted = c[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
    original = a[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    assert_close_to_peak(shifted, original, 1e-12)


@pytest.mark.parametrize("psf", PSF_OPTIONS, ids=PSF_IDS)
def test_batch_equals_single_renders(psf):
    rng = np.random.default_rng(7)
    b = 5
    values = dict(x=rng.uniform(4.0, 22.0, b), y=rng.uniform(4.0, 20.0, b), mag=rng.uniform(15.0, 19.0, b),
                  r_e=rng.uniform(0.8, 8.0, b), n=rng.uniform(0.4, 6.0, b), q=rng.uniform(0.2, 1.0, b),
                  pa=rng.uniform(-90.0, 90.0, b))
    batch = render(galaxy(**values), psf)
    assert batch.shape == (b, FRAME.height, FRAME.width)
    for i in range(b):
        single = render(galaxy(**{k: v[i] for k, v in values.items()}), psf)
        torch.testing.assert_close(batch[i:i + 1], single, rtol=1e-12, atol=1e-13 * single.abs().max().item())


def _jump(psf, g, axis, boundary, delta=1e-6):
    """Discontinuity at ``boundary`` of the image as a function of the centre along ``axis``:
    the difference of linear extrapolations from both sides (|jump| / peak)."""
    def at(offset):
        p = dict(g)
        p[axis] = boundary + offset
        return render(galaxy(**p), psf)

    m3, m1, p1, p3 = at(-3 * delta), at(-delta), at(delta), at(3 * delta)
    left = m1 + (m1 - m3) / 2.0
    right = p1 - (p3 - p1) / 2.0
    return ((right - left).abs().max() / p1.abs().max()).item(), ((p1 - m1).abs().max() / p1.abs().max()).item()


CONTINUITY_GALAXIES = [
    dict(x=12.3, y=11.6, r_e=2.0, n=1.0, q=1.0, pa=0.0),  # round exponential
    dict(x=12.3, y=11.6, r_e=1.0, n=1.0, q=0.25, pa=0.0),  # thin, major axis along y
    dict(x=12.3, y=11.6, r_e=5.4, n=1.9, q=0.23, pa=-87.0),  # thin, major axis along x
    dict(x=12.3, y=11.6, r_e=7.0, n=3.4, q=0.44, pa=-14.0),
    dict(x=12.3, y=11.6, r_e=6.7, n=5.5, q=0.69, pa=41.0),
    dict(x=12.3, y=11.6, r_e=1.0, n=1.1, q=0.74, pa=26.0),
]

# (psf?, galaxy index, axis) -> |jump| / peak measured with the renderer as of this writing.
# Without a PSF the 3 x 3 box of exactly integrated pixels (and the patch of pixels with
# more Gauss-Legendre nodes) is anchored on the nearest integer pixel and jumps with it;
# with a PSF the pixel patch with gl_order nodes (outer pixels: outer_gl_order) does.
# With gl_order == outer_gl_order the PSF jumps vanish (1e-15); without a PSF they stay.
KNOWN_JUMPS: dict[tuple, float] = {
    ("nopsf", 0, "x"): 2.24e-06, ("nopsf", 0, "y"): 2.20e-06,
    ("nopsf", 1, "y"): 6.87e-04, ("nopsf", 2, "x"): 3.25e-04, ("nopsf", 3, "y"): 3.92e-05,
    ("psf", 1, "y"): 1.21e-06, ("psf", 2, "x"): 2.15e-05, ("psf", 3, "y"): 1.33e-06,
}


def _continuity_params():
    out = []
    for psf_id in PSF_IDS:
        for i in range(len(CONTINUITY_GALAXIES)):
            for axis in ("x", "y"):
                key = (psf_id, i, axis)
                marks = []
                if key in KNOWN_JUMPS:
                    marks.append(pytest.mark.xfail(strict=True, reason=f"measured jump {KNOWN_JUMPS[key]:.2e} of the peak"))
                out.append(pytest.param(psf_id, i, axis, marks=marks, id=f"{psf_id}-g{i}-{axis}"))
    return out


@pytest.mark.parametrize("psf_id, index, axis", _continuity_params())
def test_continuous_across_pixel_boundaries(psf_id, index, axis):
    """Moving the centre by ±1e-6 px across a pixel boundary (where the integer pixel that
    anchors the exact box / fine grid changes) must not change any pixel by more than
    1e-6 of the peak beyond the smooth change: the jump between the linear extrapolations
    from both sides is < 1e-6 of the peak. (The raw change also holds the slope term,
    2e-6 px times the gradient, which alone can reach ~1e-6 of the peak.)"""
    psf = PSF_OPTIONS[PSF_IDS.index(psf_id)]
    boundary = 12.5 if axis == "x" else 11.5
    jump, raw = _jump(psf, CONTINUITY_GALAXIES[index], axis, boundary)
    assert jump < 1e-6, f"jump of {jump:.2e} of the peak (raw change {raw:.2e})"


GRAD_NAMES = ("x", "y", "r_e", "n", "q", "pa")
SMALL = Frame(x_min=1, y_min=1, width=9, height=8)
SMALL_PSF = prepare_psf(moffat_epsf(3.5, 2.6, 9))


def _image_fn(psf, config=RenderConfig()):
    def fn(x, y, r_e, n, q, pa):
        params = dict(x=x, y=y, r_e=r_e, n=n, q=q, pa=pa, mag=torch.zeros_like(x))
        return render_model([(SERSIC, params)], SMALL, psf=psf, config=config)
    return fn


def _inputs(x=5.3, y=4.2, r_e=1.8, n=2.2, q=0.55, pa=25.0, requires_grad=True):
    return tuple(torch.tensor([v], dtype=torch.float64, requires_grad=requires_grad) for v in (x, y, r_e, n, q, pa))


@pytest.mark.parametrize("psf", [None, SMALL_PSF], ids=PSF_IDS)
@pytest.mark.parametrize("where", [dict(), dict(x=5.0, y=4.0), dict(n=0.7, q=0.9, x=4.8, y=4.45)],
                         ids=["generic", "pixel-centre", "smooth"])
def test_gradcheck(psf, where):
    assert torch.autograd.gradcheck(_image_fn(psf), _inputs(**where), eps=1e-6, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("psf", [None, SMALL_PSF], ids=PSF_IDS)
def test_jacfwd_equals_jacrev(psf):
    fn = _image_fn(psf)

    def image(theta):
        return fn(*[theta[i:i + 1] for i in range(6)])[0]

    theta = torch.cat(_inputs(requires_grad=False))
    jf = torch.func.jacfwd(image)(theta)
    jr = torch.func.jacrev(image)(theta)
    assert jf.shape == (SMALL.height, SMALL.width, 6)
    scale = jr.abs().amax(dim=(0, 1))
    torch.testing.assert_close(jf / scale, jr / scale, rtol=0, atol=1e-10)


def _nan_params():
    out = []
    for psf_id, psf in zip(PSF_IDS, [None, SMALL_PSF]):
        for config_id, config in (("default", RenderConfig()), ("odd-gl", RenderConfig(gl_order=5, outer_gl_order=3))):
            for centre_id, centre in (("pixel-centre", (5.0, 4.0)), ("corner", (5.5, 4.5)), ("edge", (5.5, 4.0))):
                out.append(pytest.param(psf, config, centre, id=f"{psf_id}-{config_id}-{centre_id}"))
    return out


@pytest.mark.parametrize("psf, config, centre", _nan_params())
def test_no_nan_gradient_at_r_zero(psf, config, centre):
    """Centre on a pixel centre / corner / edge; with odd Gauss-Legendre orders a node sits at r = 0."""
    inputs = _inputs(x=centre[0], y=centre[1], n=4.0)
    image = _image_fn(psf, config)(*inputs)
    grads = torch.autograd.grad(image.sum() + (image ** 2).sum(), inputs)
    for name, g in zip(GRAD_NAMES, grads):
        assert torch.isfinite(g).all(), name
    assert torch.isfinite(image).all()


@pytest.mark.parametrize("psf", PSF_OPTIONS, ids=PSF_IDS)
@FEW
@given(g=galaxies)
def test_float32_matches_float64(psf, g):
    a64 = render(galaxy(**g), psf)
    a32 = render(galaxy(**g, dtype=torch.float32), psf)
    assert a32.dtype == torch.float32
    assert_close_to_peak(a32.to(torch.float64), a64, 1e-5)


@pytest.mark.parametrize("psf", PSF_OPTIONS, ids=PSF_IDS)
def test_sky_is_not_convolved(psf):
    sky = {"sky": torch.tensor([2.0]), "dsdx": torch.tensor([0.03]), "dsdy": torch.tensor([-0.01])}
    gal = galaxy()
    with_sky = render_model([(SERSIC, gal), (get_profile("sky"), sky)], FRAME, psf=psf)
    without = render(gal, psf)
    sky_only = render_model([(get_profile("sky"), sky)], FRAME)
    torch.testing.assert_close(with_sky, without + sky_only, rtol=1e-13, atol=1e-13)


def test_cached_quadrature_constants_made_under_inference_mode_serve_autograd_later():
    """The renderer caches its quadrature constants (fine grid, Gauss-Legendre nodes) on
    first use; a first render inside ``torch.inference_mode`` must not leave inference
    tensors in the cache that a later autograd render cannot save for backward."""
    from galprof.render import canvas, quadrature

    config = RenderConfig(gl_order=5)  # a configuration no other test has cached
    for cache in (canvas.fine_grid, quadrature.gauss_legendre_unit, quadrature.gauss_legendre):
        cache.cache_clear()
    with torch.inference_mode():
        first = render(galaxy(), psf=PSF, config=config)
    params = galaxy()
    params["r_e"].requires_grad_(True)
    image = render(params, psf=PSF, config=config)
    (grad,) = torch.autograd.grad(image.sum(), params["r_e"])
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(image.detach(), first, rtol=0, atol=0)


@pytest.mark.parametrize("g", [dict(n=6.0, r_e=1.5, q=0.3), dict(n=0.5, r_e=1.5, q=1.0),
                               dict(n=4.0, r_e=0.8, q=0.5, x=13.0, y=12.5), dict(n=2.5, r_e=8.0, q=0.7)],
                         ids=["cusp", "gaussian", "compact-pixel-centre", "extended"])
def test_two_level_fine_grid_is_converged(g):
    """The default fine grid has 1/5-pixel cells only in the central 3 pixels and
    1/2-pixel cells over the rest of its 7 pixels, where the windowed light is smooth:
    the same image as 1/5-pixel cells everywhere (2.9x the nodes) to < 2e-6 of the peak
    (measured <= 2.7e-7), and the same flux to 1e-7."""
    fine_everywhere = render(galaxy(**g), psf=PSF, config=RenderConfig(fine_inner_box=7))
    default = render(galaxy(**g), psf=PSF)
    assert RenderConfig().fine_inner_box == 3 and RenderConfig().coarse_factor == 2
    assert_close_to_peak(default, fine_everywhere, 2e-6)
    assert abs(default.sum() / fine_everywhere.sum() - 1.0) < 1e-7


@pytest.mark.parametrize("changes", [dict(fine_inner_box=4), dict(fine_inner_box=9), dict(coarse_factor=0),
                                     dict(fine_inner_box=1, fine_factor=1)])
def test_fine_grid_settings_are_checked(changes):
    with pytest.raises(ValueError, match="RenderConfig"):
        RenderConfig(**changes)
