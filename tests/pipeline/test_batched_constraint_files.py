"""Feedmes with constraint files batch like any other (issue 21, "tied components
batched"): three feedmes with different image sizes and fit regions, whose constraint
files have one structure but different numbers, are padded into ONE batch; each result
equals the same feedme fitted alone and obeys its own constraints, including a narrow
absolute range on ``x`` in its own image pixels: the padded batch shifts it with the
galaxy's origin (unshifted, two of the ranges would exclude both the start and the truth).

Images are GalSim's bulge (Sersic) + exponential disk with a Moffat PSF and a little
Gaussian noise; positions are 1-based pixels of each full image, PA in degrees
counter-clockwise from +y.
"""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest
from astropy.io import fits

from galprof.pipeline.runner import BatchOptions, run_batch
from galprof.pipeline.sources import feedme_sources
from references import FFT_GSPARAMS, galsim_moffat, galsim_sersic, moffat_epsf

ZP = 25.0
BETA, FWHM = 3.5, 2.8
SIGMA = 0.2  # [ADU] noise of every pixel
#: per feedme: image size (nx, ny), fit region (H line), truth (centre in image pixels,
#: bulge and disk), starting values, and its constraint file's numbers
CASES = [
    dict(size=(50, 46), region=(3, 48, 2, 44), x=25.3, y=22.8, dx=0.0, dy=0.0,
         bulge=dict(mag=18.0, r_e=2.5, n=3.0, q=0.8, pa=20.0), disk=dict(mag=17.4, r_s=5.0, q=0.5, pa=30.0),
         start=dict(x=25.9, y=22.3, dx=0.0, dy=0.0), x_range=(24.5, 26.5), n_range=(1.0, 6.0), factor=2.0,
         pa_range=(-20.0, 20.0), dmag=(-1.5, 0.5)),
    dict(size=(58, 54), region=(1, 58, 1, 54), x=28.7, y=27.4, dx=0.6, dy=-0.4,
         bulge=dict(mag=18.3, r_e=3.0, n=2.2, q=0.7, pa=-40.0), disk=dict(mag=17.2, r_s=6.6, q=0.45, pa=-35.0),
         start=dict(x=29.3, y=27.0, dx=0.6, dy=-0.4), x_range=(27.5, 30.0), n_range=(0.8, 5.0), factor=1.8,
         pa_range=(-25.0, 15.0), dmag=(-2.0, 1.0)),
    # region from (4, 6): padded, its pixels shift by (3, 5), and so must its x range
    dict(size=(46, 52), region=(4, 45, 6, 50), x=27.6, y=28.1, dx=-0.5, dy=0.3,
         bulge=dict(mag=17.8, r_e=2.0, n=4.0, q=0.9, pa=70.0), disk=dict(mag=17.6, r_s=4.5, q=0.6, pa=60.0),
         start=dict(x=26.6, y=28.7, dx=-0.5, dy=0.3), x_range=(26.5, 28.0), n_range=(1.5, 7.0), factor=2.5,
         pa_range=(-15.0, 25.0), dmag=(-1.0, 1.5)),
]

CONSTRAINTS = """# one structure, this feedme's numbers
1_2 x offset
1_2 y offset
1 x {x_range[0]} to {x_range[1]}
1 n {n_range[0]} to {n_range[1]}
2 re factor {factor}
2 pa {pa_range[0]} {pa_range[1]}
1-2 mag {dmag[0]} {dmag[1]}
"""

FEEDME = """A) img{k}.fits
B) {out}
C) sig{k}.fits
D) psf.fits
E) 1
F) none
G) c{k}.constraints
H) {region[0]} {region[1]} {region[2]} {region[3]}
I) 100 100
J) {zp}
K) 0.4 0.4
O) regular
P) 0
 0) sersic
 1) {x1:.3f} {y1:.3f} 1 1
 3) {mag1:.3f} 1
 4) {r_e:.3f} 1
 5) 2.5 1
 9) {q1:.3f} 1
10) {pa1:.3f} 1
 0) expdisk
 1) {x2:.3f} {y2:.3f} 1 1
 3) {mag2:.3f} 1
 4) {r_s:.3f} 1
 9) {q2:.3f} 1
10) {pa2:.3f} 1
 0) sky
 1) 0.0 1
 2) 0.0 0
 3) 0.0 0
"""

#: the parameters compared between the batch and the fits alone
NAMES = ((1, "x"), (1, "y"), (1, "mag"), (1, "r_e"), (1, "n"), (1, "q"), (1, "pa"), (2, "x"), (2, "y"),
         (2, "mag"), (2, "r_s"), (2, "q"), (2, "pa"), (3, "sky"))


def _galsim_image(case: dict) -> np.ndarray:
    b, d = case["bulge"], case["disk"]
    bulge = galsim_sersic(b["n"], b["r_e"], b["q"], b["pa"], 10 ** (-0.4 * (b["mag"] - ZP)), gsparams=FFT_GSPARAMS)
    disk = galsim.Exponential(scale_radius=d["r_s"] * math.sqrt(d["q"]), flux=10 ** (-0.4 * (d["mag"] - ZP)),
                              gsparams=FFT_GSPARAMS).shear(q=d["q"], beta=(d["pa"] + 90.0) * galsim.degrees)
    conv = galsim.Convolve(bulge + disk.shift(case["dx"], case["dy"]), galsim_moffat(BETA, FWHM, gsparams=FFT_GSPARAMS),
                           gsparams=FFT_GSPARAMS)
    nx, ny = case["size"]
    return conv.drawImage(nx=nx, ny=ny, scale=1.0,
                          offset=(case["x"] - (nx + 1) / 2, case["y"] - (ny + 1) / 2)).array


def _start(case: dict) -> dict:
    s, b, d = case["start"], case["bulge"], case["disk"]
    return dict(x1=s["x"], y1=s["y"], x2=s["x"] + s["dx"], y2=s["y"] + s["dy"], mag1=b["mag"] + 0.4,
                mag2=d["mag"] + 0.4, r_e=b["r_e"] * 1.4, r_s=d["r_s"] * 1.3, q1=b["q"] + 0.05, q2=d["q"] + 0.05,
                pa1=b["pa"] + 10.0, pa2=d["pa"] + 10.0)


@pytest.fixture
def feedmes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fits.writeto("psf.fits", moffat_epsf(BETA, FWHM, 25))
    rng = np.random.default_rng(21)
    for k, case in enumerate(CASES):
        image = _galsim_image(case)
        fits.writeto(f"img{k}.fits", image + rng.normal(0.0, SIGMA, image.shape))
        fits.writeto(f"sig{k}.fits", np.full(image.shape, SIGMA))
        open(f"c{k}.constraints", "w").write(CONSTRAINTS.format(**case))
        for stem in ("batch", "alone"):
            open(f"{stem}{k}.feedme", "w").write(FEEDME.format(k=k, out=f"{stem}{k}.fits", region=case["region"],
                                                               zp=ZP, **_start(case)))
    return tmp_path


def _run(paths: list[str]) -> dict:
    """{feedme: (batch size it was fitted in, {(component, name): value})} of a run of
    ``paths`` through the runner (as ``galprof fit`` runs them)."""
    got = {}

    def collect(prepared, result, b, extra):
        got[prepared.source.id] = (result.batch_size, {key: float(result.value(*key)[b]) for key in NAMES},
                                   str(result.status[b]),
                                   {key: float(result.errors[b, result.column(*key)]) for key in NAMES})

    summary = run_batch(feedme_sources(paths), None, None, BatchOptions(pad_shapes=True, verbose=True),
                        progress=False, on_fitted=collect)
    assert summary.n_failed == 0
    return got


def test_feedmes_with_constraint_files_of_one_structure_are_fitted_as_one_padded_batch(feedmes, capsys):
    batch = _run([f"batch{k}.feedme" for k in range(3)])
    assert "fitting 3 feedmes together" in capsys.readouterr().out
    for k, case in enumerate(CASES):
        size, values, status, errors = batch[f"batch{k}.feedme"]
        assert size == 3, "the three feedmes are one batch"
        alone_size, alone, alone_status, _ = _run([f"alone{k}.feedme"])[f"alone{k}.feedme"]
        assert alone_size == 1 and status == alone_status, (k, status, alone_status)
        for key in NAMES:  # the same fit, batched (padded) or alone: within 1 % of its error
            assert abs(values[key] - alone[key]) <= 0.01 * errors[key] + 1e-6, (k, key, values[key], alone[key],
                                                                               errors[key])

        # its own constraints, in its own image pixels
        s = case["start"]
        assert values[(2, "x")] - values[(1, "x")] == pytest.approx(s["dx"], abs=1e-6)
        assert values[(2, "y")] - values[(1, "y")] == pytest.approx(s["dy"], abs=1e-6)
        assert case["x_range"][0] <= values[(1, "x")] <= case["x_range"][1]
        assert case["n_range"][0] <= values[(1, "n")] <= case["n_range"][1]
        r_s0 = _start(case)["r_s"]
        assert r_s0 / case["factor"] <= values[(2, "r_s")] <= r_s0 * case["factor"]
        pa0 = _start(case)["pa2"]
        assert pa0 + case["pa_range"][0] <= values[(2, "pa")] <= pa0 + case["pa_range"][1]
        assert case["dmag"][0] <= values[(2, "mag")] - values[(1, "mag")] <= case["dmag"][1]
        assert status == "converged", (k, status)  # inside every range: the truth, within 4 sigma
        for key, truth in (((1, "x"), case["x"]), ((1, "y"), case["y"]), ((1, "n"), case["bulge"]["n"]),
                           ((1, "r_e"), case["bulge"]["r_e"]), ((2, "r_s"), case["disk"]["r_s"]),
                           ((1, "mag"), case["bulge"]["mag"]), ((2, "mag"), case["disk"]["mag"])):
            assert abs(values[key] - truth) <= 4 * errors[key] + 0.005 * abs(truth), (k, key, values[key], truth,
                                                                                       errors[key])
