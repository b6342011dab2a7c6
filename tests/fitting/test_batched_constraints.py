"""Constraints in a batch whose galaxies start at different values (issue 21, "tied
components batched"): relative and factor ranges around each galaxy's *own* start, ties
that keep each galaxy's *own* initial offset or ratio, and constraint numbers given per
galaxy, all in one :func:`galprof.fit` call.

The images are GalSim's (independent of galprof's renderer), noise-free, bulge (Sersic) +
exponential disk convolved with a Moffat PSF; positions are 1-based pixels, PA in degrees
counter-clockwise from +y, sizes along the major axis in pixels.
"""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest
import torch

from galprof import Component, FactorRange, Model, ModelError, Range, RelativeRange, Tie, fit
from galprof.fitting.layout import ParameterLayout
from references import FFT_GSPARAMS, galsim_moffat, galsim_sersic, moffat_epsf

ZP = 25.0
SIZE = 48
BETA, FWHM = 3.5, 2.8
#: per galaxy: bulge centre, the disk's offset from it [pix], bulge and disk parameters
TRUTHS = [
    dict(x=24.3, y=23.8, dx=0.0, dy=0.0, bulge=dict(mag=18.0, r_e=2.5, n=3.0, q=0.8, pa=20.0),
         disk=dict(mag=17.4, r_s=5.0, q=0.5, pa=30.0)),
    dict(x=22.7, y=25.4, dx=0.6, dy=-0.4, bulge=dict(mag=18.3, r_e=3.0, n=2.2, q=0.7, pa=-40.0),
         disk=dict(mag=17.2, r_s=6.6, q=0.45, pa=-35.0)),
    dict(x=25.1, y=24.6, dx=-0.5, dy=0.3, bulge=dict(mag=17.8, r_e=2.0, n=4.0, q=0.9, pa=70.0),
         disk=dict(mag=17.6, r_s=4.5, q=0.6, pa=60.0)),
]
#: per-galaxy numbers of an absolute range on the disk's q
Q_LOW, Q_HIGH = (0.3, 0.3, 0.4), (0.7, 0.6, 0.8)
R_E_START_FACTOR = 1.4  # both sizes start 1.4x too large (the ratio tie keeps r_s / r_e)
PA_START_OFFSET = 15.0  # [deg]


def galsim_image(t: dict) -> np.ndarray:
    """GalSim's noise-free image of one galaxy (pixel response included)."""
    b, d = t["bulge"], t["disk"]
    bulge = galsim_sersic(b["n"], b["r_e"], b["q"], b["pa"], 10 ** (-0.4 * (b["mag"] - ZP)), gsparams=FFT_GSPARAMS)
    disk = galsim.Exponential(scale_radius=d["r_s"] * math.sqrt(d["q"]), flux=10 ** (-0.4 * (d["mag"] - ZP)),
                              gsparams=FFT_GSPARAMS).shear(q=d["q"], beta=(d["pa"] + 90.0) * galsim.degrees)
    disk = disk.shift(t["dx"], t["dy"])
    conv = galsim.Convolve(bulge + disk, galsim_moffat(BETA, FWHM, gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
    centre = (SIZE + 1) / 2
    return conv.drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=(t["x"] - centre, t["y"] - centre)).array


def starts() -> tuple[dict, dict]:
    """Per-galaxy (B,) starting values of the bulge and the disk: centres 0.7 px off (the
    disk's own offset from the bulge kept), sizes 1.4x, magnitudes +0.4, PA +15 deg."""
    col = {k: np.array([t[k] for t in TRUTHS]) for k in ("x", "y", "dx", "dy")}
    b = {k: np.array([t["bulge"][k] for t in TRUTHS]) for k in TRUTHS[0]["bulge"]}
    d = {k: np.array([t["disk"][k] for t in TRUTHS]) for k in TRUTHS[0]["disk"]}
    x0, y0 = col["x"] + 0.5, col["y"] - 0.5
    bulge = dict(x=x0, y=y0, mag=b["mag"] + 0.4, r_e=b["r_e"] * R_E_START_FACTOR, n=np.full(3, 2.5),
                 q=b["q"] + 0.05, pa=b["pa"] + PA_START_OFFSET)
    disk = dict(x=x0 + col["dx"], y=y0 + col["dy"], mag=d["mag"] + 0.4, r_s=d["r_s"] * R_E_START_FACTOR,
                q=d["q"] + 0.05, pa=d["pa"] + PA_START_OFFSET)
    return bulge, disk


CONSTRAINTS = (
    Tie((1, 2), "x", "offset"),  # each galaxy's own initial offset (0, 0.6, -0.5 px)
    Tie((1, 2), "y", "offset"),
    Tie((1, 2), ("r_e", "r_s"), "ratio"),  # each galaxy's own R_s / R_e (2, 2.2, 2.25)
    FactorRange(1, "r_e", 2.0),  # within a factor 2 of each galaxy's own start
    RelativeRange(2, "pa", -25.0, 25.0),  # within 25 deg of each galaxy's own start
    Range(2, "q", Q_LOW, Q_HIGH),  # one range per galaxy
)


def test_a_batch_with_per_galaxy_constraints_recovers_each_galaxy_in_one_fit():
    images = np.stack([galsim_image(t) for t in TRUTHS])
    bulge, disk = starts()
    model = Model([Component("sersic", bulge), Component("expdisk", disk),
                   Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})], CONSTRAINTS)
    psf = moffat_epsf(BETA, FWHM, 25)
    result = fit(model, images, psf=psf, zeropoint=ZP)
    assert result.batch_size == 3
    assert list(result.status) == ["converged"] * 3, result.status

    # every constraint holds exactly, each with the galaxy's own numbers
    x1, y1, x2, y2 = (result.value(c, n) for c, n in ((1, "x"), (1, "y"), (2, "x"), (2, "y")))
    np.testing.assert_allclose(x2 - x1, disk["x"] - bulge["x"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(y2 - y1, disk["y"] - bulge["y"], rtol=0, atol=1e-9)
    assert np.ptp(disk["x"] - bulge["x"]) > 1.0  # the offsets do differ between galaxies
    np.testing.assert_allclose(result.value(2, "r_s") / result.value(1, "r_e"), disk["r_s"] / bulge["r_e"],
                               rtol=1e-9)
    r_e = result.value(1, "r_e")
    assert np.all((r_e >= bulge["r_e"] / 2) & (r_e <= bulge["r_e"] * 2)), r_e
    pa = result.value(2, "pa")
    assert np.all((pa >= disk["pa"] - 25.0) & (pa <= disk["pa"] + 25.0)), pa
    q = result.value(2, "q")
    assert np.all((q >= np.array(Q_LOW)) & (q <= np.array(Q_HIGH))), q

    # and each galaxy's truth is recovered (GalSim's and galprof's renderings differ by
    # ~1e-3 of the peak)
    for b, t in enumerate(TRUTHS):
        assert abs(x1[b] - t["x"]) < 0.03 and abs(y1[b] - t["y"]) < 0.03, (b, x1[b], y1[b])
        for name in ("r_e", "n"):
            assert abs(result.value(1, name)[b] / t["bulge"][name] - 1) < 0.01, (b, name, result.value(1, name)[b])
        assert abs(result.value(2, "r_s")[b] / t["disk"]["r_s"] - 1) < 0.01, (b, result.value(2, "r_s")[b])
        for component, truth in ((1, t["bulge"]), (2, t["disk"])):
            assert abs(result.value(component, "mag")[b] - truth["mag"]) < 0.02, (b, component)
            assert abs(result.value(component, "q")[b] - truth["q"]) < 0.01, (b, component)
            assert abs(result.value(component, "pa")[b] - truth["pa"]) < 1.5, (b, component)

    # each galaxy of the batch is the fit of that galaxy alone, with its own constraints
    sky = model.components[2]
    for b in range(3):
        alone = Model([Component("sersic", {k: v[b] for k, v in bulge.items()}),
                       Component("expdisk", {k: v[b] for k, v in disk.items()}), sky],
                      [c.select(b) for c in CONSTRAINTS])
        single = fit(alone, images[b], psf=psf, zeropoint=ZP)
        np.testing.assert_allclose(result.values[b], single.values[0], rtol=1e-4, atol=2e-4, err_msg=str(b))


def _two_sersics(**second) -> list:
    x = np.array([20.0, 24.0, 28.0])
    first = dict(x=x, y=x, mag=17.0, r_e=3.0, n=2.0, q=0.8, pa=0.0)
    values = dict(x=x + 0.5, y=x, mag=18.0, r_e=6.0, n=1.0, q=0.5, pa=0.0)
    values.update(second)
    return [Component("sersic", first), Component("sersic", values)]


BOUNDS = ((0.5, 48.5), (0.5, 48.5))


def test_layout_bounds_and_tie_constants_follow_each_row_s_galaxy():
    """Per-galaxy bounds and tie constants are (B,) arrays (floats where all agree); the
    transforms use the bounds of each row's galaxy, so that several starts of one galaxy
    (rows 0, 0, 2, 1) map back exactly."""
    comps = _two_sersics(r_e=np.array([6.0, 5.0, 7.5]))
    model = Model(comps, [RelativeRange(1, "x", -1.0, 2.0), FactorRange(2, "r_e", 3.0),
                          Tie((1, 2), "r_e", "ratio"), Tie((1, 2), "x", "offset"), Range(1, "n", (1, 1.5, 2), 5)])
    layout = ParameterLayout(model, BOUNDS)
    assert layout.batch_size == 3
    x = layout.entries[layout.index(0, "x")]
    np.testing.assert_allclose(x.low, [19.0, 23.0, 27.0])
    np.testing.assert_allclose(x.high, [22.0, 26.0, 30.0])
    assert layout.entries[layout.index(1, "x")].const == pytest.approx(0.5)  # one offset: a float
    np.testing.assert_allclose(layout.entries[layout.index(1, "r_e")].const, [2.0, 5 / 3, 2.5])
    n = layout.entries[layout.index(0, "n")]
    np.testing.assert_allclose(n.low, [1.0, 1.5, 2.0])
    assert n.high == 5.0

    values = torch.as_tensor(layout.initial_values(3))
    rows = torch.tensor([0, 0, 2, 1])
    theta = layout.to_internal(values[rows], rows)
    back = layout.to_user(theta, values[rows], rows)
    torch.testing.assert_close(back, values[rows], rtol=1e-9, atol=1e-9)
    # the same theta means galaxy 2's bounds on row 2, and galaxy 0's on rows 0 and 1
    centre = layout.to_user(torch.zeros(4, layout.n_free, dtype=torch.float64), values[rows], rows)
    torch.testing.assert_close(centre[:, layout.index(0, "x")], torch.tensor([20.5, 20.5, 28.5, 24.5],
                                                                             dtype=torch.float64))
    low, high = layout.coordinate_bounds(rows)
    assert low.shape == (4, layout.n_free)
    # a start on its own galaxy's limit (n = 2 on galaxy 2's lower bound) is moved inside
    # that galaxy's range (5 % of it in ln n), the others are left where they are
    moved = layout.move_inside_constraints(layout.initial_values(3))[:, layout.index(0, "n")]
    np.testing.assert_allclose(moved, [2.0, 2.0, 2.0 * 2.5 ** 0.05], rtol=1e-12)
    with pytest.raises(ValueError, match="pass rows"):
        layout.to_user(theta, values[rows])  # 4 rows, 3 galaxies: which bounds is ambiguous


def test_invalid_per_galaxy_constraints_name_the_galaxy():
    with pytest.raises(ModelError, match="leading initial value is 0 .galaxy 1."):
        first, second = _two_sersics(pa=3.0)
        lead = Component("sersic", {**first.values, "pa": np.array([5.0, 0.0, 1.0])})
        ParameterLayout(Model([lead, second], [Tie((1, 2), "pa", "ratio")]), BOUNDS)
    with pytest.raises(ModelError, match="leaves no room for x of component 1 in galaxy 2"):
        ParameterLayout(Model(_two_sersics(), [Range(1, "x", (10.0, 10.0, 10.0), (30.0, 30.0, 27.0)),
                                               RelativeRange(1, "x", 0.5, 1.0)]), BOUNDS)
    with pytest.raises(ModelError, match="of galaxy 1: needs low < high"):
        Model(_two_sersics(), [Range(1, "n", (1.0, 6.0, 1.0), (5.0, 5.0, 5.0))])
    with pytest.raises(ModelError, match="needs a positive initial value, got -1 .galaxy 2."):
        ParameterLayout(Model(_two_sersics(x=np.array([1.0, 2.0, -1.0])), [FactorRange(2, "x", 2.0)]),
                        ((-5.0, 48.5), (0.5, 48.5)))
    with pytest.raises(ModelError, match="numbers for 2 galaxies"):
        Model(_two_sersics(), [Range(1, "n", (1.0, 1.5), 5.0)])
