"""Automatic initial values and masks for a galaxy fit, from a SExtractor-style detection.

The published GPU fitters start from a SExtractor catalogue: the detection of the
galaxy at the centre of a cutout gives its position, magnitude, size, axis ratio and
position angle, and the segmentation map of the other detections gives the mask. This
module does the same with `sep <https://sep.readthedocs.io>`_ (the SExtractor library),
in numpy only, and returns the numbers in galprof's (GALFIT's) conventions (see
:mod:`galprof.conventions`):

* x, y are 1-based (the centre of the first pixel is (1, 1)); sep's are 0-based.
* the position angle is in degrees counter-clockwise from +y (up = 0, left = 90), in
  (-90, 90]; sep's ``theta`` is in radians counter-clockwise from +x, so
  PA = degrees(theta) - 90, wrapped.
* r_e is along the major axis [pix]; mag = zeropoint - 2.5 log10(flux / exptime).

Everything here is an *initial guess* for the fit, not a measurement to publish: the
magnitude is a Kron-aperture magnitude (it misses the far wings of steep profiles: about
0.2 mag for n = 4), the half-light radius is that of the Kron flux in elliptical apertures
and includes the PSF, and the axis ratio comes from isophotal second moments (rounded a
little by the PSF). The fit refines them.

``sep`` is imported when :func:`auto_initial` is called, so importing this module (and
using :func:`mask_from_segmentation`) does not need it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sep

from ..errors import AutoInitError

__all__ = ["AutoInit", "AutoInitError", "BandAutoInit", "auto_initial", "auto_initial_bands", "mask_from_segmentation"]

MASK_MODES = ("others", "target", "none")


@dataclass(frozen=True)
class AutoInit:
    """Initial values and a mask for one galaxy.

    Attributes:
        values: ``x``, ``y`` (1-based pixel coordinates), ``mag``, ``r_e`` (half-light
            radius along the major axis [pix]), ``q`` (b/a in [0.05, 1]), ``pa``
            (degrees from +y towards -x, in (-90, 90]) and ``sky`` (background at the
            image centre ((nx + 1) / 2, (ny + 1) / 2) [ADU]). Plain Python floats.
        mask: bool array of the image's shape; True = pixel excluded from the fit.
        target_label: label of the target in ``segmentation``.
        n_sources: number of sources detected (significant ones, see ``min_snr``).
        segmentation: int32 segmentation map (0 = background, k = sep's object k - 1;
            segments of detections below ``min_snr`` are set to 0).
    """

    values: dict[str, float]
    mask: np.ndarray
    target_label: int
    n_sources: int
    segmentation: np.ndarray


# ----------------------------------------------------------------------------- masks


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2 radius + 1)^2 square, with array shifts (no scipy)."""
    out = np.array(mask, dtype=bool, copy=True)
    if radius <= 0 or not out.any():
        return out
    for axis in (0, 1):
        src = out.copy()
        n = out.shape[axis]
        for k in range(1, min(radius, n - 1) + 1):
            if axis == 0:
                out[k:] |= src[:-k]
                out[:-k] |= src[k:]
            else:
                out[:, k:] |= src[:, :-k]
                out[:, :-k] |= src[:, k:]
    return out


def mask_from_segmentation(segmentation, target_label, *, mode: str = "others", dilate: int = 0) -> np.ndarray:
    """A fit mask (True = excluded) from a segmentation map and the target's label.

    Args:
        segmentation: 2-D integer array; 0 = background, any other value labels a source.
        target_label: the label of the galaxy to fit (must be present and non-zero).
        mode: ``"others"``: mask every other source's segment, grown by ``dilate`` pixels,
            but never a pixel of the target's own segment; ``"target"``: fit only the
            target's segment grown by ``dilate`` pixels, i.e. mask everything outside it,
            and inside it the (grown) segments of other sources, again never a target
            pixel; ``"none"``: mask nothing.
        dilate: growth in pixels (dilation by a (2 dilate + 1)^2 square), >= 0.

    Returns:
        bool array of the segmentation's shape.

    Raises:
        AutoInitError: the label is zero or absent from the map, or the map is not 2-D.
        ValueError: unknown ``mode`` or negative ``dilate``.
    """
    seg = np.asarray(segmentation)
    if seg.ndim != 2:
        raise AutoInitError(f"segmentation map must be 2-D, got shape {seg.shape}")
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    dilate = int(dilate)
    if dilate < 0:
        raise ValueError(f"dilate must be >= 0 pixels, got {dilate}")
    label = int(target_label)
    if label == 0:
        raise AutoInitError("target label 0 is the background in a segmentation map; give a source's label")
    target = seg == label
    if not target.any():
        present = np.unique(seg[seg != 0])
        shown = ", ".join(str(v) for v in present[:10]) + (", ..." if present.size > 10 else "")
        raise AutoInitError(f"target label {label} does not occur in the segmentation map "
                            f"(labels present: {shown or 'none'})")
    if mode == "none":
        return np.zeros(seg.shape, dtype=bool)
    others = _dilate((seg != 0) & ~target, dilate) & ~target
    if mode == "others":
        return others
    return others | ~_dilate(target, dilate)


# ------------------------------------------------------------------------ detection


def _as_sep_array(a) -> np.ndarray:
    """C-contiguous, native-byte-order float64 (what sep's C code needs)."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64))


def _background(sep, data: np.ndarray, mask: np.ndarray):
    """sep.Background with boxes sized for the image (a quarter of its smaller side,
    between 8 and 64 pixels, never larger than the image) and a 3x3 median filter over
    the boxes when there are at least 3 of them along an axis."""
    ny, nx = data.shape
    box = int(np.clip(min(ny, nx) // 4, 8, 64))
    bw, bh = min(box, nx), min(box, ny)
    fw = 3 if nx // bw >= 3 else 1
    fh = 3 if ny // bh >= 3 else 1
    return sep.Background(data, mask=mask, bw=bw, bh=bh, fw=fw, fh=fh)


def _extract(sep, data, thresh, err, mask, min_area, deblend_cont):
    if sep.get_extract_pixstack() < data.size:
        sep.set_extract_pixstack(int(data.size))
    try:
        return sep.extract(data, thresh, err=err, mask=mask, minarea=int(min_area),
                           deblend_cont=float(deblend_cont), segmentation_map=True)
    except Exception as exc:  # sep raises bare Exceptions for buffer overflows etc.
        raise AutoInitError(f"source extraction failed in sep: {exc}") from exc


def _isophotal_snr(objects, segmentation, err) -> np.ndarray:
    """Isophotal S/N of each object: its segment's summed flux over sqrt(sum err^2)."""
    n = len(objects)
    var = np.bincount(segmentation.ravel(), weights=(err * err).ravel(), minlength=n + 1)[1:n + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(objects["flux"], dtype=np.float64) / np.sqrt(var)


def _symmetric_fill(data: np.ndarray, bad: np.ndarray, x0: float, y0: float) -> np.ndarray:
    """Copy of ``data`` with the ``bad`` pixels replaced by their point-symmetric
    counterparts about (x0, y0) [0-based], or by 0 (the background) where the counterpart
    is itself bad or off the image."""
    out = data.copy()
    jj, ii = np.nonzero(bad)
    if jj.size == 0:
        return out
    ny, nx = data.shape
    js = np.rint(2.0 * y0 - jj).astype(np.int64)
    is_ = np.rint(2.0 * x0 - ii).astype(np.int64)
    ok = (js >= 0) & (js < ny) & (is_ >= 0) & (is_ < nx)
    ok[ok] &= ~bad[js[ok], is_[ok]]
    fill = np.zeros(jj.size)
    fill[ok] = data[js[ok], is_[ok]]
    out[jj, ii] = fill
    return out


def _wrap_pa(pa_deg: float) -> float:
    """An axis angle [deg] folded into (-90, 90]."""
    pa = math.fmod(pa_deg, 180.0)
    if pa <= -90.0:
        pa += 180.0
    elif pa > 90.0:
        pa -= 180.0
    return pa


def _centre_value(back: np.ndarray) -> float:
    """Bilinear value of a map at the image centre (0-based ((nx - 1) / 2, (ny - 1) / 2))."""
    ny, nx = back.shape
    yc, xc = (ny - 1) / 2.0, (nx - 1) / 2.0
    j0, i0 = math.floor(yc), math.floor(xc)
    j1, i1 = min(j0 + 1, ny - 1), min(i0 + 1, nx - 1)
    fy, fx = yc - j0, xc - i0
    return float((1 - fy) * ((1 - fx) * back[j0, i0] + fx * back[j0, i1])
                 + fy * ((1 - fx) * back[j1, i0] + fx * back[j1, i1]))


_N_RADII = 96  # elliptical apertures used to find the half-light radius


def _photometry(sep, sub, fill, x0, y0, a, b, theta, label):
    """Kron-aperture flux and half-light semi-major axis of the target at (x0, y0)
    [0-based], with the ``fill`` pixels replaced by their mirror images about it."""
    clean = _as_sep_array(_symmetric_fill(sub, fill, x0, y0))
    xa, ya = np.array([x0]), np.array([y0])
    aa, ba, ta = np.array([a]), np.array([b]), np.array([theta])
    kron, _ = sep.kron_radius(clean, xa, ya, aa, ba, ta, np.array([6.0]))
    kron = float(kron[0])
    r_min = 3.5  # pixels in sqrt(a b), SExtractor's minimum Kron aperture
    scale = 2.5 * kron if np.isfinite(kron) and kron > 0 else 0.0
    scale = max(scale, r_min / math.sqrt(a * b))
    flux, _, _ = sep.sum_ellipse(clean, xa, ya, aa, ba, ta, np.array([scale]), subpix=5)
    flux = float(flux[0])
    if not np.isfinite(flux) or flux <= 0:
        raise AutoInitError(f"target (label {label}) has non-positive aperture flux {flux}")
    # half-light radius along the major axis: the ellipse (shape of the moments) that holds
    # half the Kron flux, from a grid of elliptical apertures (first crossing, linear)
    radii = scale * a * np.arange(1, _N_RADII + 1) / _N_RADII
    sums, _, _ = sep.sum_ellipse(clean, np.full(_N_RADII, x0), np.full(_N_RADII, y0), radii,
                                 radii * (b / a), np.full(_N_RADII, theta), 1.0, subpix=5)
    half = 0.5 * flux
    above = np.nonzero(sums >= half)[0]
    if above.size == 0:
        raise AutoInitError(f"target (label {label}) has no usable half-light radius")
    i = int(above[0])
    if i == 0:
        r_half = radii[0] * half / sums[0] if sums[0] > 0 else radii[0]
    else:
        r_half = radii[i - 1] + (radii[i] - radii[i - 1]) * (half - sums[i - 1]) / (sums[i] - sums[i - 1])
    r_half = float(r_half)
    if not np.isfinite(r_half) or r_half <= 0:
        raise AutoInitError(f"target (label {label}) has no usable half-light radius ({r_half})")
    return flux, r_half


def auto_initial(image, *, sigma=None, mask=None, zeropoint: float = 0.0, exptime: float = 1.0,
                 threshold: float = 1.5, min_area: int = 5, mask_mode: str = "others", dilate: int = 2,
                 deblend_cont: float = 0.005, min_snr: float = 10.0) -> AutoInit:
    """Detect the galaxy nearest the image centre and derive initial values and a mask.

    Steps:

    1. Bad pixels = the input ``mask`` (True = bad), non-finite image pixels and, with a
       ``sigma`` image, pixels whose sigma is not finite and positive. They are filled
       (with the median of the good pixels) before sep sees the image, and passed to sep
       as its mask.
    2. Background: :class:`sep.Background` with boxes a quarter of the image's smaller
       side (8..64 pixels); then, once a source passing ``min_snr`` is found, a second
       estimate with the significant sources (grown by 3 pixels) masked as well, so that
       a galaxy filling the cutout does not raise it, and the detection is redone.
    3. Detection: :func:`sep.extract` on the background-subtracted image at ``threshold``
       times the noise (``sigma`` when given, else sep's background rms), with
       ``min_area``, ``deblend_cont`` and ``segmentation_map=True``. Detections whose
       isophotal S/N (segment flux / sqrt(sum sigma^2)) is below ``min_snr`` are dropped
       (noise peaks at 1.5 sigma easily make 5-pixel groups); their segments become
       background.
    4. Target = the detection whose centroid is nearest the image centre.
    5. Values: x, y = sep's windowed centroid + 1 (SExtractor's XWIN: a Gaussian window
       of FWHM 2 r_half, started from the isophotal centroid, which is kept if the
       windowed one fails or wanders off); q = b / a from the isophotal second moments
       (clipped to [0.05, 1]); PA = degrees(theta) - 90 folded into (-90, 90]; flux =
       sum in the elliptical Kron aperture (2.5 Kron radii, at least 3.5 pixels in
       sqrt(a b)) with the bad pixels and other sources' pixels replaced by their
       mirror images about the target's centre; mag = zeropoint - 2.5 log10(flux /
       exptime); r_e = the semi-major axis of the ellipse (axis ratio and angle of the
       moments) that holds half that flux, found on a grid of 96 elliptical apertures
       (not sep.flux_radius, whose circles would need the r_circ ~ r_e sqrt(q)
       approximation: 6 % too large at q = 0.5, 20 % at q = 0.3). It is measured on the
       PSF-convolved image and relative to the Kron flux, so it is only a starting value
       (the PSF enlarges it, the missing wings of steep profiles shrink it); sky = the
       background map at the image centre.
    6. Mask = :func:`mask_from_segmentation` (``mask_mode``, ``dilate``) OR the bad pixels.

    Args:
        image: 2-D array [ADU].
        sigma: optional noise image (or scalar) [ADU]; used as sep's ``err``.
        mask: optional bool array, True = bad pixel.
        zeropoint, exptime: magnitude zeropoint and exposure time (mag convention above).
        threshold: detection threshold in units of the noise.
        min_area: minimum number of pixels of a detection.
        mask_mode: ``"others"`` / ``"target"`` / ``"none"`` (see mask_from_segmentation).
        dilate: growth of the masked segments [pix].
        deblend_cont: sep's deblending contrast (1.0 disables deblending).
        min_snr: minimum isophotal S/N of a detection to count as a source.

    Returns:
        :class:`AutoInit`.

    Raises:
        AutoInitError: the image is not 2-D, is all NaN/inf, is entirely masked, no source
            is detected, or the target's moments or flux are unusable.
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if exptime <= 0:
        raise ValueError(f"exptime must be > 0, got {exptime}")
    data = np.array(image, dtype=np.float64)  # a native-order copy we may fill
    if data.ndim != 2:
        raise AutoInitError(f"image must be 2-D, got shape {data.shape}")
    if data.size == 0:
        raise AutoInitError("image is empty")
    finite = np.isfinite(data)
    if not finite.any():
        raise AutoInitError("image is all NaN/inf: nothing to detect")
    bad = ~finite
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != data.shape:
            raise AutoInitError(f"mask shape {m.shape} does not match the image's {data.shape}")
        bad |= m.astype(bool)
    err = None
    if sigma is not None:
        try:
            err = np.array(np.broadcast_to(np.asarray(sigma, dtype=np.float64), data.shape))
        except ValueError:
            raise AutoInitError(f"sigma shape {np.shape(sigma)} does not match the image's {data.shape}") from None
        bad_err = ~(np.isfinite(err) & (err > 0))
        bad |= bad_err
    if bad.all():
        raise AutoInitError("every pixel is masked (input mask, NaN/inf pixels or bad sigma)")
    good = ~bad
    data[bad] = np.median(data[good])
    data = _as_sep_array(data)
    bad = np.ascontiguousarray(bad)

    # background and detection; then, if a significant source was found, the background
    # again with the significant sources (grown by 3 px) masked, and the detection again.
    # (Masking the noise peaks too would bias the background low and breed detections.)
    def detect(bkg):
        sub = _as_sep_array(data - bkg.back())
        noise = err if err is not None else bkg.rms()
        noise = _as_sep_array(np.where(bad | ~np.isfinite(noise) | (noise <= 0), 1.0, noise))
        objects, seg = _extract(sep, sub, threshold, noise, bad, min_area, deblend_cont)
        seg = np.asarray(seg, dtype=np.int32)
        snr = _isophotal_snr(objects, seg, noise) if len(objects) else np.zeros(0)
        return sub, objects, seg, np.isfinite(snr) & (snr >= min_snr), snr

    try:
        bkg = _background(sep, data, bad)
    except Exception as exc:
        raise AutoInitError(f"background estimation failed in sep: {exc}") from exc
    sub, objects, seg, significant, snr = detect(bkg)
    if significant.any():
        labels = np.nonzero(significant)[0] + 1
        sources = _dilate(np.isin(seg, labels), 3) | bad
        if (~sources).sum() >= max(0.1 * data.size, 16):
            try:
                bkg2 = _background(sep, data, np.ascontiguousarray(sources))
                if np.all(np.isfinite(bkg2.back())) and np.all(np.isfinite(bkg2.rms())):
                    bkg = bkg2
                    sub, objects, seg, significant, snr = detect(bkg)
            except AutoInitError:
                raise
            except Exception:  # noqa: BLE001, S110 - sep could not: keep the first estimate
                pass

    n_detected = len(objects)
    if n_detected == 0:
        raise AutoInitError(f"no source detected above {threshold} sigma with at least {min_area} pixels")
    if not significant.any():
        raise AutoInitError(f"no source detected with isophotal S/N >= {min_snr} "
                            f"({n_detected} detection(s) below it, best S/N {np.nanmax(snr):.1f})")
    keep = np.concatenate([[False], significant])
    seg = np.where(keep[seg], seg, 0).astype(np.int32)

    ny, nx = data.shape
    xs, ys = np.asarray(objects["x"], float), np.asarray(objects["y"], float)
    dist = np.hypot(xs - (nx - 1) / 2.0, ys - (ny - 1) / 2.0)
    dist[~significant] = np.inf
    dist[~(np.isfinite(xs) & np.isfinite(ys))] = np.inf
    if not np.isfinite(dist).any():
        raise AutoInitError("no detected source has a finite centroid")
    k = int(np.argmin(dist))
    label = k + 1
    obj = objects[k]
    x0, y0 = float(obj["x"]), float(obj["y"])
    a, b, theta = float(obj["a"]), float(obj["b"]), float(obj["theta"])
    if not all(np.isfinite(v) for v in (a, b, theta)) or not a > 0 or not b > 0:
        raise AutoInitError(f"target (label {label}) has non-finite or degenerate second moments "
                            f"(a={a}, b={b}, theta={theta})")
    b = min(b, a)
    q = float(np.clip(b / a, 0.05, 1.0))
    pa = _wrap_pa(math.degrees(theta) - 90.0)

    # photometry on an image with bad pixels and other sources replaced by their mirror
    # images; then a windowed centroid (SExtractor's XWIN), and the photometry again there
    fill = bad | ((seg != 0) & (seg != label))
    flux, r_half = _photometry(sep, sub, fill, x0, y0, a, b, theta, label)
    clean = _as_sep_array(_symmetric_fill(sub, fill, x0, y0))
    sig = 2.0 * r_half * math.sqrt(q) / 2.3548  # SExtractor: FWHM = 2 x the circular r_half
    xw, yw, wflag = sep.winpos(clean, np.array([x0]), np.array([y0]), np.array([sig]))
    xw, yw = float(xw[0]), float(yw[0])
    if (int(wflag[0]) == 0 and np.isfinite(xw) and np.isfinite(yw)
            and math.hypot(xw - x0, yw - y0) <= max(2.0, r_half)):
        x0, y0 = xw, yw
        flux, r_half = _photometry(sep, sub, fill, x0, y0, a, b, theta, label)
    mag = zeropoint - 2.5 * math.log10(flux / exptime)
    r_e = r_half

    values = {"x": x0 + 1.0, "y": y0 + 1.0, "mag": float(mag), "r_e": float(r_e), "q": q,
              "pa": float(pa), "sky": _centre_value(bkg.back())}
    fit_mask = mask_from_segmentation(seg, label, mode=mask_mode, dilate=dilate) | bad
    return AutoInit(values=values, mask=fit_mask, target_label=label,
                    n_sources=int(significant.sum()), segmentation=seg)


@dataclass(frozen=True)
class BandAutoInit:
    """Initial values and a mask for one galaxy imaged in K bands.

    Attributes:
        stacked: the :class:`AutoInit` of the stacked detection image (centre, r_e, q,
            PA and the mask, shared by every band; its ``mag`` and ``sky`` are the
            stack's, not a band's).
        mags: (K,) each band's magnitude (zeropoint_k - 2.5 log10(flux_k / exptime_k)).
        skies: (K,) each band's background at the image centre [ADU].
    """

    stacked: AutoInit
    mags: np.ndarray
    skies: np.ndarray


def auto_initial_bands(images, *, sigma=None, mask=None, zeropoints=0.0, exptimes=1.0, mask_mode: str = "others",
                       **detection) -> BandAutoInit:
    """Detect a galaxy on the stack of its K band images and measure it in every band.

    The detection image is the sum over bands of each band's image divided by its
    median sigma (every band counts in units of its own noise, so a band in larger ADU
    does not dominate), with the matching sigma sqrt(sum_k (sigma_k / median sigma_k)^2);
    :func:`auto_initial` runs on it (centre, R_e, q, PA and the mask of the other
    sources, the same in every band). Each band's flux is its background-subtracted sum
    over the target's segment times the stack's aperture correction (Kron flux of the
    stack / segment sum of the stack): the colours are isophotal colours. A band where
    the segment sum is not positive gets the flux of its noise over the segment (a
    faint start, not an error). Pixels bad in any band are bad for the detection.

    Args:
        images: (K, H, W) [ADU], every band on the same pixel grid.
        sigma: (K, H, W) 1-sigma noise [ADU], or None (sep's background rms per band).
        mask: (K, H, W) or (H, W) bool, True = bad pixel, or None.
        zeropoints, exptimes: a number or (K,) (magnitude convention above).
        mask_mode, detection: as for :func:`auto_initial`.

    Raises:
        AutoInitError: as :func:`auto_initial` (on the stack), or not (K, H, W) images.
    """
    data = np.array(images, dtype=np.float64)
    if data.ndim != 3:
        raise AutoInitError(f"band images must be (K, H, W), got shape {data.shape}")
    n_bands = data.shape[0]
    bad = ~np.isfinite(data)
    if mask is not None:
        bad |= np.broadcast_to(np.asarray(mask, dtype=bool), data.shape)
    if sigma is None:
        noise = np.empty_like(data)
        for k in range(n_bands):
            good = ~bad[k]
            if not good.any():
                raise AutoInitError(f"band {k + 1} has no usable pixel")
            filled = _as_sep_array(np.where(good, data[k], np.median(data[k][good])))
            noise[k] = _background(sep, filled, np.ascontiguousarray(bad[k])).rms()
    else:
        noise = np.array(np.broadcast_to(np.asarray(sigma, dtype=np.float64), data.shape))
    bad |= ~(np.isfinite(noise) & (noise > 0))
    any_bad = bad.any(0)
    if any_bad.all():
        raise AutoInitError("every pixel is bad in at least one band (input masks, NaN/inf pixels or bad sigma)")
    scales = np.array([np.median(noise[k][~any_bad]) for k in range(n_bands)])
    clean = np.where(bad, 0.0, data)
    stack = (clean / scales[:, None, None]).sum(0)
    stack_sigma = np.sqrt(((np.where(bad, 1.0, noise) / scales[:, None, None]) ** 2).sum(0))
    found = auto_initial(stack, sigma=stack_sigma, mask=any_bad, mask_mode=mask_mode, **detection)
    target = found.segmentation == found.target_label
    sources = _dilate(found.segmentation != 0, 3) | any_bad
    zeropoints = np.broadcast_to(np.asarray(zeropoints, dtype=np.float64), (n_bands,))
    exptimes = np.broadcast_to(np.asarray(exptimes, dtype=np.float64), (n_bands,))
    skies, segment_sums, segment_noise = np.zeros(n_bands), np.zeros(n_bands), np.zeros(n_bands)
    for k in range(n_bands):
        usable = ~bad[k]
        background = usable & ~sources
        if background.sum() < 16:
            background = usable
        filled = _as_sep_array(np.where(usable, data[k], np.median(data[k][background])))
        try:
            back = _background(sep, filled, np.ascontiguousarray(~background)).back()
        except Exception:  # noqa: BLE001 - sep could not: a flat background
            back = np.full(data[k].shape, float(np.median(data[k][background])))
        skies[k] = _centre_value(back)
        inside = target & usable
        segment_sums[k] = float((data[k] - back)[inside].sum())
        segment_noise[k] = float(np.sqrt((noise[k][inside] ** 2).sum()))
    stack_segment = float((segment_sums / scales).sum())
    stack_flux = 10.0 ** (-0.4 * found.values["mag"])  # auto_initial's zeropoint 0, exptime 1
    correction = stack_flux / stack_segment if stack_segment > 0 else 1.0
    fluxes = correction * np.maximum(segment_sums, np.maximum(segment_noise, 1e-30))
    mags = zeropoints - 2.5 * np.log10(fluxes / exptimes)
    return BandAutoInit(stacked=found, mags=mags, skies=skies)
