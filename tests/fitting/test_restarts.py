"""Restarts near the fit go to galaxies whose components are nested (a bulge in its disk),
not to fields of separate galaxies: which components `restart_components` picks from
hand-placed centres and sizes, and a fit of two separate galaxies that recovers its
GalSim truth without any restart iterations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from galprof import Component, Model, fit
from galprof.fitting.layout import ParameterLayout
from galprof.fitting.strategy import NEST_RADIUS_PX, restart_components, starts_near_fit

BOUNDS = ((0.5, 64.5), (0.5, 64.5))


def sersic(x, y, r_e, n=2.0, fixed=()):
    return Component("sersic", dict(x=x, y=y, mag=18.0, r_e=r_e, n=n, q=0.8, pa=10.0), fixed=set(fixed))


def values_of(layout: ParameterLayout, model: Model) -> np.ndarray:
    """(1, P) user values of the model's starts, in the layout's column order."""
    return np.array([[float(np.asarray(model.components[ci].values[name]).ravel()[0])
                      for ci, name in layout.names]])


def picked(*components) -> list[bool]:
    model = Model(list(components))
    layout = ParameterLayout(model, BOUNDS)
    return restart_components(layout, values_of(layout, model))[0].tolist()


def test_a_bulge_in_its_disk_is_restarted_and_the_disk_has_no_index_to_perturb():
    disk = Component("expdisk", dict(x=30.4, y=29.8, mag=17.0, r_s=6.0, q=0.5, pa=40.0))
    assert picked(sersic(30.0, 30.0, 2.0), disk) == [True, False]


def test_separate_galaxies_are_not_restarted():
    # 20 px apart, each R_e 3: neither centre lies within the other's reach
    assert picked(sersic(20.0, 30.0, 3.0), sersic(40.0, 30.0, 3.0)) == [False, False]
    # neighbours one smaller R_e apart or more (bench_multicomponent's pairs: 1-2 R_e)
    assert picked(sersic(20.0, 30.0, 6.0), sersic(26.0, 30.0, 9.0)) == [False, False]


def test_nesting_reaches_the_smaller_size_or_the_pixel_floor():
    # 5 px apart, sizes 6 and 9: within the smaller size
    assert picked(sersic(20.0, 30.0, 6.0), sersic(25.0, 30.0, 9.0)) == [True, True]
    # tiny components 1.5 px apart: within NEST_RADIUS_PX
    assert 1.5 < NEST_RADIUS_PX
    assert picked(sersic(20.0, 30.0, 0.5), sersic(21.5, 30.0, 0.7)) == [True, True]
    # a fixed index is not perturbed, though its partner is
    assert picked(sersic(20.0, 30.0, 3.0, fixed=("n",)), sersic(20.5, 30.0, 5.0)) == [False, True]


def test_starts_near_fit_move_only_the_picked_components():
    model = Model([sersic(30.0, 30.0, 2.0, n=3.0), sersic(30.5, 30.0, 6.0, n=1.0), sersic(50.0, 50.0, 3.0, n=1.5)])
    layout = ParameterLayout(model, BOUNDS)
    values = values_of(layout, model)
    which = restart_components(layout, values)
    assert which[0].tolist() == [True, True, False]
    starts = starts_near_fit(layout, values, np.array([0]), which)
    assert starts.shape == (2, values.shape[1])
    for ci in (0, 1):
        assert starts[0, layout.index(ci, "n")] > values[0, layout.index(ci, "n")]
        assert starts[1, layout.index(ci, "r_e")] < values[0, layout.index(ci, "r_e")]
    for name in ("n", "r_e", "mag"):  # the separate third galaxy stays as fitted
        assert np.all(starts[:, layout.index(2, name)] == values[0, layout.index(2, name)])


def test_a_field_of_separate_galaxies_fits_without_restart_iterations():
    galsim = pytest.importorskip("galsim")
    size, zeropoint, noise = 64, 25.0, 0.02
    truths = [dict(x=20.3, y=22.7, mag=18.2, r_e=3.0, n=1.5, q=0.7, pa=30.0),
              dict(x=44.6, y=41.2, mag=18.8, r_e=4.0, n=3.0, q=0.55, pa=-50.0)]
    psf = galsim.Moffat(beta=3.5, fwhm=2.5)
    image = galsim.ImageD(size, size, scale=1.0)
    for t in truths:
        profile = galsim.Sersic(n=t["n"], half_light_radius=t["r_e"] * math.sqrt(t["q"]),
                                flux=10 ** (-0.4 * (t["mag"] - zeropoint)))
        # GALFIT's PA is counter-clockwise from +y: GalSim's angle from +x is PA + 90 deg
        profile = profile.shear(q=t["q"], beta=(t["pa"] + 90.0) * galsim.degrees)
        offset = galsim.PositionD(t["x"] - (size / 2 + 0.5), t["y"] - (size / 2 + 0.5))
        galsim.Convolve(profile, psf).drawImage(image=image, offset=offset, add_to_image=True)
    data = image.array + np.random.default_rng(5).normal(0.0, noise, (size, size))
    stamp = psf.drawImage(nx=21, ny=21, scale=1.0).array
    starts = [dict(t, x=t["x"] + 0.8, y=t["y"] - 0.6, mag=t["mag"] + 0.3, r_e=t["r_e"] * 1.3, n=2.5)
              for t in truths]
    model = Model([Component("sersic", s) for s in starts]
                  + [Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    kwargs = dict(sigma=np.full((size, size), noise), psf=stamp / stamp.sum(), zeropoint=zeropoint)
    auto = fit(model, data, **kwargs)
    without = fit(model, data, perturbed_starts=False, **kwargs)
    # restarts are on for this model (two luminous components with a free n) but no
    # component is nested, so no galaxy is restarted: the same fit, the same iterations
    assert auto.iterations[0] == without.iterations[0]
    assert auto.status[0] == "converged"
    for ci, t in enumerate(truths, start=1):
        for name in ("x", "y", "mag", "r_e", "n"):
            assert abs(auto.value(ci, name)[0] - t[name]) < 5 * auto.error(ci, name)[0], (ci, name)
