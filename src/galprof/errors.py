"""galprof's errors: one root, one class per kind of bad input.

Every error a user can cause derives from :class:`GalprofError`, so the command line
catches one class, prints its message (which names the file, line, column or galaxy)
and exits with status 2, and a batch turns it into that galaxy's ``STATUS = failed:
<message>`` while the other galaxies go on. Each class is also a ``ValueError`` (except
:class:`UsageError`), so code written against the built-in exceptions keeps working.

Every class accepts keyword context that names the bad value, kept in ``context``::

    raise InputError("sigma image has NaNs", path="sigma.fits")
    err.context  # {"path": "sigma.fits"}

Nothing here imports the rest of galprof: every room may import it.
"""

from __future__ import annotations


class GalprofError(Exception):
    """Root of galprof's user-facing errors: the message says what is wrong and where.

    Attributes:
        context: keyword arguments given at construction (e.g. ``path``, ``line``,
            ``value``, ``galaxy``): the bad value and where it came from.
    """

    def __init__(self, message: str = "", **context):
        super().__init__(message)
        self.context = dict(context)


class InputError(GalprofError, ValueError):
    """An input file (image, mask, sigma image, PSF, catalog, configuration) cannot be used."""


class FeedmeError(InputError):
    """A feedme file cannot be read. The message is ``"path:line: what is wrong"``.

    Attributes:
        path: the file, as given to :func:`galprof.io.feedme.read_feedme`.
        line: 1-based line number, or None for a problem with the file as a whole (a
            missing required line); the message is then ``"path: what is wrong"``.
        reason: what is wrong, without the location.
    """

    def __init__(self, path, line: int | None, reason: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}", path=self.path, line=line)


class CatalogError(InputError):
    """A catalog or template cannot be used (names the file and the column or row)."""


class ModelError(GalprofError, ValueError):
    """A model description is inconsistent (unknown profile or parameter, bad bounds...)."""


class PSFError(GalprofError, ValueError):
    """The PSF image cannot be used (NaNs, non-positive sum, wrong shape or size)."""


class RenderError(GalprofError, ValueError):
    """A model cannot be rendered as asked (e.g. a point source without a PSF)."""


class LikelihoodError(GalprofError, ValueError):
    """The data cannot be fitted (e.g. every pixel of a galaxy is masked)."""


class AutoInitError(GalprofError, ValueError):
    """The automatic initialisation (source detection) could not be done; the message says why."""


class PlotError(GalprofError, ValueError):
    """A result cannot be shown (unreadable file, missing image, unknown row); the message
    names the file and, for tables, the row."""


class UsageError(GalprofError):
    """A command line or option that cannot be honoured (conflicting options, an option a
    path does not support, a missing optional dependency)."""


__all__ = ["AutoInitError", "CatalogError", "FeedmeError", "GalprofError", "InputError", "LikelihoodError",
           "ModelError", "PSFError", "PlotError", "RenderError", "UsageError"]
