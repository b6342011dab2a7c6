"""GALFIT-compatible input and output (pure I/O; no fitting happens here).

* :mod:`galprof.io.feedme`: read and write GALFIT feedme / ``galfit.NN`` files.
* :mod:`galprof.io.fits_io`: read images and bad-pixel masks; GALFIT's default sigma
  image built from the data and header.
* :mod:`galprof.io.galfit_output`: the image block, model image and ``fit.log``.
* :mod:`galprof.io.constraints`: GALFIT constraint files (line G).
* :mod:`galprof.io.imfit_config`: imfit configuration and best-fit files, and their
  mapping onto galprof models.
* :mod:`galprof.io.galfitm`: GALFITM's multi-band feedmes and constraint files, and its
  restart file, ``fit.log`` entry and multi-band image block.

GALFIT's labels (numbered lines, header keywords) are mapped to galprof's internal
parameter names (``x, y, mag, r_e, n, q, pa, r_s, fwhm, beta, sky, dsdx, dsdy``) only
inside this package. Pixel coordinates are 1-based as in GALFIT.
"""

from .feedme import (
    Feedme,
    FeedmeComponent,
    FeedmeError,
    format_feedme,
    next_restart_path,
    parse_feedme,
    read_feedme,
)
from .fits_io import (
    InputError,
    SigmaImageWarning,
    exposure_time,
    image_unit_kind,
    read_image,
    read_mask,
    sigma_from_header,
    sky_statistics,
)
from .galfit_output import (
    ComponentReport,
    append_fit_log,
    format_parameter,
    galfit_header_cards,
    write_imgblock,
    write_model_image,
)
from .galfitm import (
    MultiBandComponent,
    MultiBandFeedme,
    format_galfitm_restart,
    multiband_model,
    parse_galfitm_feedme,
    read_galfitm_feedme,
    write_galfitm_imgblock,
)

__all__ = [
    "ComponentReport",
    "Feedme",
    "FeedmeComponent",
    "FeedmeError",
    "InputError",
    "MultiBandComponent",
    "MultiBandFeedme",
    "SigmaImageWarning",
    "append_fit_log",
    "exposure_time",
    "format_feedme",
    "format_galfitm_restart",
    "format_parameter",
    "galfit_header_cards",
    "image_unit_kind",
    "multiband_model",
    "next_restart_path",
    "parse_feedme",
    "parse_galfitm_feedme",
    "read_feedme",
    "read_galfitm_feedme",
    "read_image",
    "read_mask",
    "sigma_from_header",
    "sky_statistics",
    "write_galfitm_imgblock",
    "write_imgblock",
    "write_model_image",
]
