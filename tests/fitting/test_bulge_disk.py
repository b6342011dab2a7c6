"""Bulge + disk from the offset starts GALFIT users write (issue 21): the fit must find the
truth's minimum, not switch the disk off or push it off the frame.

The image is GalSim's (independent of galprof's renderer), noise-free, with unit weights:
the issue's noise-free case scaled to 64x64 (bulge n 3.5, R_e 3 px, mag 17.6, q 0.85;
exponential disk R_s 6 px, mag 17.0, q 0.5; Moffat PSF FWHM 2.8 px, beta 3.5; one shared
centre) and started as in the issue: R_e x1.5, n 2.5, both magnitudes +0.5, R_s x1.5,
q +0.15, PA +20 deg, each centre 1.3 px off in its own direction, free and separate.
Before the trust region on every LM step (issue 21), this start pushed the disk into the
frame's corner (x 0.5, y 64.5, q 0.02 on its bound, R_s 177 px) and gave the bulge most of
the light (mag 16.10, R_e 11.8 px), flagged ``off the region: 2_x,2_y`` after 177 iterations.
The recovered values are compared with GalSim's truth; from the truth itself, the fit
of this image ends within 0.35 % of it in n and R_e (galprof's and GalSim's renderings
differ by ~1e-3 of the peak).
"""

from __future__ import annotations

import math

import galsim
import numpy as np

from galprof import Component, Model, fit
from references import FFT_GSPARAMS, galsim_moffat, galsim_sersic, moffat_epsf

ZP = 25.0
SIZE = 64
X, Y = 32.691, 32.179  # 1-based pixel coordinates
BULGE = dict(x=X, y=Y, mag=17.6, r_e=3.0, n=3.5, q=0.85, pa=-18.674)
DISK = dict(x=X, y=Y, mag=17.0, r_s=6.0, q=0.5, pa=-88.952)
ANGLE_BULGE, ANGLE_DISK = 1.649, 2.646  # directions [rad] of the 1.3 px start offsets


def galsim_bulge_disk() -> np.ndarray:
    """GalSim's image of BULGE + DISK convolved with the Moffat (pixel response included)."""
    bulge = galsim_sersic(BULGE["n"], BULGE["r_e"], BULGE["q"], BULGE["pa"], 10 ** (-0.4 * (BULGE["mag"] - ZP)),
                          gsparams=FFT_GSPARAMS)
    disk = galsim.Exponential(scale_radius=DISK["r_s"] * math.sqrt(DISK["q"]), flux=10 ** (-0.4 * (DISK["mag"] - ZP)),
                              gsparams=FFT_GSPARAMS).shear(q=DISK["q"], beta=(DISK["pa"] + 90.0) * galsim.degrees)
    conv = galsim.Convolve(bulge + disk, galsim_moffat(3.5, 2.8, gsparams=FFT_GSPARAMS), gsparams=FFT_GSPARAMS)
    centre = (SIZE + 1) / 2
    return conv.drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=(X - centre, Y - centre)).array


def test_offset_start_recovers_a_noise_free_bulge_and_disk():
    image = galsim_bulge_disk()
    bulge = dict(x=X + 1.3 * math.cos(ANGLE_BULGE), y=Y + 1.3 * math.sin(ANGLE_BULGE), mag=BULGE["mag"] + 0.5,
                 r_e=BULGE["r_e"] * 1.5, n=2.5, q=min(BULGE["q"] + 0.15, 1.0), pa=BULGE["pa"] + 20.0)
    disk = dict(x=X + 1.3 * math.cos(ANGLE_DISK), y=Y + 1.3 * math.sin(ANGLE_DISK), mag=DISK["mag"] + 0.5,
                r_s=DISK["r_s"] * 1.5, q=DISK["q"] + 0.15, pa=DISK["pa"] + 20.0)
    model = Model([Component("sersic", bulge), Component("expdisk", disk),
                   Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    result = fit(model, image, psf=moffat_epsf(3.5, 2.8, 25), zeropoint=ZP)
    assert result.status[0] == "converged", result.status[0]
    for name in ("n", "r_e"):  # the target: 0.5 %
        assert abs(result.value(1, name)[0] / BULGE[name] - 1) < 0.005, (name, result.value(1, name)[0])
    assert abs(result.value(2, "r_s")[0] / DISK["r_s"] - 1) < 0.005, result.value(2, "r_s")[0]
    for component, truth in ((1, BULGE), (2, DISK)):
        assert abs(result.value(component, "mag")[0] - truth["mag"]) < 0.01
        assert abs(result.value(component, "q")[0] - truth["q"]) < 0.005
        for name in ("x", "y"):
            assert abs(result.value(component, name)[0] - truth[name]) < 0.02


def test_a_disk_lost_off_the_frame_is_reseeded_on_the_bulge():
    """A disk started 35 px from the galaxy runs into the frame's corner and is flagged
    (``retries=0``); the retry round restarts it on the bulge's fitted centre (the
    strongest component that was not lost) and finds the truth."""
    image = galsim_bulge_disk()
    bulge = dict(x=X + 1.0, y=Y - 0.8, mag=BULGE["mag"] + 0.5, r_e=BULGE["r_e"] * 1.5, n=2.5, q=0.95,
                 pa=BULGE["pa"] + 20.0)
    disk = dict(x=X - 25.0, y=Y - 25.0, mag=DISK["mag"] + 0.5, r_s=DISK["r_s"] * 1.5, q=DISK["q"] + 0.15,
                pa=DISK["pa"] + 20.0)
    model = Model([Component("sersic", bulge), Component("expdisk", disk),
                   Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    psf = moffat_epsf(3.5, 2.8, 25)
    lost = fit(model, image, psf=psf, zeropoint=ZP, retries=0, perturbed_starts=False)
    assert lost.status[0].startswith("off the region: 2_"), lost.status[0]
    result = fit(model, image, psf=psf, zeropoint=ZP, perturbed_starts=False)  # retries=2, the default
    assert result.status[0] == "converged", result.status[0]
    assert abs(result.value(2, "r_s")[0] / DISK["r_s"] - 1) < 0.005
    assert abs(result.value(2, "mag")[0] - DISK["mag"]) < 0.01
    assert abs(result.value(1, "n")[0] / BULGE["n"] - 1) < 0.005
    for name in ("x", "y"):
        assert abs(result.value(2, name)[0] - DISK[name]) < 0.02
