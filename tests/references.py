"""Independent reference renderers (GalSim, scipy) and a thin galprof wrapper for the tests.

Nothing here calls galprof's numerics except :func:`render_sersic` (clearly separated at
the bottom), so the references can be compared with galprof.

Mapping between galprof and GalSim (verified against scipy quadrature in
``test_render_nopsf.py::test_galsim_reference_matches_scipy``):

* galprof Sérsic (n, R_e along the major axis, q, PA CCW from +y) is
  ``galsim.Sersic(n, half_light_radius=R_e * sqrt(q)).shear(q=q, beta=(PA + 90) deg)``:
  GalSim's half-light radius is that of the circular profile, and shearing with q
  conserves area, so the major axis becomes R_e sqrt(q) / sqrt(q) = R_e. GalSim's beta
  is measured CCW from +x, galprof's PA from +y, hence the 90 degrees.
* A frame (x_min, y_min, W, H) is drawn with ``drawImage(nx=W, ny=H, scale=1, offset=...)``
  where the offset is the profile centre minus the frame's true centre,
  (x_min + (W - 1) / 2, y_min + (H - 1) / 2): GalSim places the profile at the true
  centre of the image plus ``offset`` (in pixels).
* Without a PSF, ``method='real_space'`` with tightened real-space tolerances agrees with
  scipy to ~1e-10 of the peak; GalSim's default FFT drawing is off by up to 4e-3 of the
  peak, and the default real-space tolerances by up to 1.6e-3 at the cusp of n = 6.
"""

from __future__ import annotations

import functools
import math

import galsim
import numpy as np
from scipy import integrate, optimize, special

# Real-space drawing: tightened so that GalSim's pixel integrals agree with scipy dblquad.
REALSPACE_GSPARAMS = galsim.GSParams(realspace_relerr=1e-9, realspace_abserr=1e-12)
# FFT drawing (PSF convolution): converged to ~1e-7 of the peak (checked against
# folding_threshold=5e-5, maxk_threshold=1e-6, kvalue_accuracy=1e-9).
FFT_GSPARAMS = galsim.GSParams(folding_threshold=2e-4, maxk_threshold=1e-5, kvalue_accuracy=1e-7,
                               maximum_fft_size=16384)


# --------------------------------------------------------------------------- scipy

@functools.lru_cache(maxsize=None)
def sersic_b_scipy(n: float) -> float:
    """b_n as the root of P(2n, b) = 1/2, by Brent's method on scipy's gammainc."""
    return optimize.brentq(lambda b: special.gammainc(2.0 * n, b) - 0.5, 1e-8, 100.0, xtol=1e-15, rtol=1e-15)


def flux_from_mag_reference(mag: float, zeropoint: float, exptime: float) -> float:
    """mag = zp - 2.5 log10(flux / exptime), solved for flux."""
    return exptime * 10.0 ** (-0.4 * (mag - zeropoint))


def sersic_intensity(x, y, *, x0, y0, flux, r_e, n, q, pa):
    """Surface brightness [flux / pix^2] of a galprof-convention Sérsic at (x, y), numpy.

    Written from the formulae in ``galprof.conventions`` (PA CCW from +y, R_e along the
    major axis, q = b/a, the total flux ``flux`` over the plane), independent of galprof.
    """
    b = sersic_b_scipy(float(n))
    i0 = flux * b ** (2 * n) / (2 * math.pi * q * r_e**2 * n * math.gamma(2 * n))
    th = math.radians(pa)
    dx, dy = np.asarray(x, dtype=float) - x0, np.asarray(y, dtype=float) - y0
    u = -dx * math.sin(th) + dy * math.cos(th)
    v = -dx * math.cos(th) - dy * math.sin(th)
    r = np.hypot(u, v / q)
    return i0 * np.exp(-b * (r / r_e) ** (1.0 / n))


def sersic_pixel_integral(xc: int, yc: int, **params) -> float:
    """Integral of :func:`sersic_intensity` over the pixel centred at (xc, yc) (scipy dblquad).

    If the profile centre lies inside the pixel, the pixel is split at the centre so
    that the cusp sits on sub-rectangle corners, where the adaptive rule copes with it.
    """
    x0, y0 = params["x0"], params["y0"]
    xs = [xc - 0.5, xc + 0.5]
    ys = [yc - 0.5, yc + 0.5]
    if xs[0] < x0 < xs[1]:
        xs.insert(1, x0)
    if ys[0] < y0 < ys[1]:
        ys.insert(1, y0)
    total = 0.0
    for xa, xb in zip(xs[:-1], xs[1:]):
        for ya, yb in zip(ys[:-1], ys[1:]):
            value, _ = integrate.dblquad(lambda y, x: float(sersic_intensity(x, y, **params)), xa, xb, ya, yb,
                                         epsabs=1e-14, epsrel=1e-11)
            total += value
    return total


def radial_flux_integral(surface_brightness, q: float, scale: float) -> float:
    """2 pi q ∫_0^∞ I(r) r dr for a callable I (numpy in, numpy out), by scipy quad.

    Integrated over ln r (the integrand I(r) r^2 is smooth there for cusps and power-law
    tails alike) from scale * 1e-12 to scale * 1e12 in decades.
    """
    edges = np.log(scale) + np.log(10.0) * np.arange(-12.0, 12.5, 1.0)
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        value, _ = integrate.quad(lambda t: float(np.ravel(surface_brightness(np.exp(t)))[0]) * np.exp(2.0 * t), a, b,
                                  epsabs=0.0, epsrel=1e-12, limit=200)
        total += value
    return 2.0 * math.pi * q * total


# --------------------------------------------------------------------------- GalSim

def galsim_sersic(n: float, r_e: float, q: float, pa: float, flux: float = 1.0, gsparams=None):
    """The galprof Sérsic (n, R_e, q, PA) as a GalSim object (see the module docstring)."""
    gal = galsim.Sersic(n, half_light_radius=r_e * math.sqrt(q), flux=flux, gsparams=gsparams)
    return gal.shear(q=q, beta=(pa + 90.0) * galsim.degrees)


def galsim_offset(x0: float, y0: float, frame) -> tuple[float, float]:
    """GalSim ``offset`` putting a profile at galprof pixel coordinates (x0, y0) in ``frame``."""
    return (x0 - (frame.x_min + (frame.width - 1) / 2.0), y0 - (frame.y_min + (frame.height - 1) / 2.0))


def galsim_draw(obj, frame, x0: float, y0: float, method: str = "auto") -> np.ndarray:
    """Draw a GalSim object centred at (x0, y0) into ``frame``; float64 array (H, W)."""
    image = obj.drawImage(nx=frame.width, ny=frame.height, scale=1.0, offset=galsim_offset(x0, y0, frame),
                          method=method, dtype=np.float64)
    return image.array.copy()


def galsim_sersic_image(frame, *, x0, y0, flux, r_e, n, q, pa) -> np.ndarray:
    """Pixel-integrated Sérsic without PSF: GalSim real-space drawing, tight tolerances."""
    gal = galsim_sersic(n, r_e, q, pa, flux, REALSPACE_GSPARAMS)
    return galsim_draw(gal, frame, x0, y0, method="real_space")


def galsim_moffat(beta: float, fwhm: float, gsparams=None):
    return galsim.Moffat(beta, fwhm=fwhm, gsparams=gsparams)


def galsim_sersic_moffat_image(frame, *, x0, y0, flux, r_e, n, q, pa, beta, fwhm, extra_pixel=False) -> np.ndarray:
    """Sérsic ⊗ Moffat ⊗ pixel sampled at pixel centres (GalSim FFT, tight GSParams).

    ``method='auto'`` convolves with the pixel once, which makes the Moffat an ePSF. With
    ``extra_pixel`` a second unit pixel is convolved in: what GALFIT-style pixel
    integration followed by a discrete convolution with the ePSF computes.
    """
    parts = [galsim_sersic(n, r_e, q, pa, flux, FFT_GSPARAMS), galsim_moffat(beta, fwhm, FFT_GSPARAMS)]
    if extra_pixel:
        parts.append(galsim.Pixel(1.0, gsparams=FFT_GSPARAMS))
    # 'fft' convolves with the pixel like 'auto' but does not warn about the explicit Pixel
    return galsim_draw(galsim.Convolve(parts, gsparams=FFT_GSPARAMS), frame, x0, y0,
                       method="fft" if extra_pixel else "auto")


def galsim_moffat_image(frame, *, x0, y0, flux, beta, fwhm) -> np.ndarray:
    """A point source: the Moffat ePSF (pixel included) centred at (x0, y0)."""
    return galsim_draw(galsim_moffat(beta, fwhm, FFT_GSPARAMS).withFlux(flux), frame, x0, y0)


@functools.lru_cache(maxsize=None)
def _moffat_epsf_cached(beta: float, fwhm: float, size: int, centre_even: bool) -> np.ndarray:
    # GalSim puts a profile at the *true centre* of the image, (1 + N) / 2 in its 1-based
    # pixel coordinates. For odd N that is the middle pixel, 0-based index N // 2, which
    # is galprof's PSF centre. For even N it lies between 0-based pixels N/2 - 1 and N/2,
    # half a pixel below/left of galprof's centre (index N // 2 = N/2, the pixel just
    # above/right of the middle, as in GALFIT). offset=(0.5, 0.5) moves the Moffat by
    # half a pixel up and right so that its peak lands exactly on index N // 2.
    # (tests/test_render_psf.py::test_even_stamp_centring checks both statements.)
    # Tight GSParams: with GalSim's defaults the drawn ePSF is off by 4e-4 - 7e-4 of its
    # peak (Moffat (x) pixel is drawn by FFT), a third of the budget of the PSF tests.
    offset = (0.5, 0.5) if (size % 2 == 0 and centre_even) else (0.0, 0.0)
    image = galsim_moffat(beta, fwhm, FFT_GSPARAMS).drawImage(nx=size, ny=size, scale=1.0, offset=offset, dtype=np.float64)
    array = image.array.copy()
    array.setflags(write=False)
    return array


def moffat_epsf(beta: float, fwhm: float, size: int, *, centre_even: bool = True) -> np.ndarray:
    """Moffat ePSF stamp (pixel response included, ``method='auto'``), size x size, sum ~ 1.

    The Moffat is centred on galprof's PSF centre, 0-based index size // 2, also for even
    sizes (set ``centre_even=False`` to get GalSim's own, between-pixel centring).
    """
    return _moffat_epsf_cached(float(beta), float(fwhm), int(size), bool(centre_even)).copy()


def moffat_oversampled(beta: float, fwhm: float, size: int, factor: int) -> np.ndarray:
    """Moffat PSF *without* the pixel, sampled ``factor`` times finer: (size*factor)^2 samples.

    Its centre is the fine sample with 0-based index (size * factor) // 2 (the even-size
    half-pixel offset as in :func:`moffat_epsf`, in fine pixels).
    """
    fine = size * factor
    offset = (0.5, 0.5) if fine % 2 == 0 else (0.0, 0.0)
    image = galsim_moffat(beta, fwhm).drawImage(nx=fine, ny=fine, scale=1.0 / factor, offset=offset,
                                                method="no_pixel", dtype=np.float64)
    return image.array.copy()


# --------------------------------------------------------------------------- galprof wrapper

def render_sersic(frame, *, x0, y0, mag=0.0, r_e, n, q, pa, psf=None, config=None, dtype=None):
    """galprof image (H, W) of one Sérsic (numpy float64), for comparisons with the above.

    Scalars or 1-D sequences (a batch) are accepted; a batch returns (B, H, W).
    """
    import torch

    from galprof.profiles import get_profile
    from galprof.render.config import RenderConfig
    from galprof.render.scene import render_model

    dtype = dtype or torch.float64
    values = {"x": x0, "y": y0, "mag": mag, "r_e": r_e, "n": n, "q": q, "pa": pa}
    batched = any(np.ndim(v) == 1 for v in values.values())
    size = max(np.size(v) for v in values.values())
    params = {k: torch.as_tensor(np.broadcast_to(np.asarray(v, dtype=float), (size,)).copy(), dtype=dtype)
              for k, v in values.items()}
    with torch.no_grad():
        image = render_model([(get_profile("sersic"), params)], frame, psf=psf, config=config or RenderConfig())
    image = image.to(torch.float64).numpy()
    return image if batched else image[0]
