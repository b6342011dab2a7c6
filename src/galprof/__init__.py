"""galprof: fast, accurate batched galaxy surface-brightness profile fitting on PyTorch.

Conventions (GALFIT's) are stated in :mod:`galprof.conventions`.
"""

from .constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from .errors import GalprofError
from .fitting import FitResult, PixelStatistic, fit
from .model import Component, Model, ModelError
from .render.config import RenderConfig

__version__ = "0.1.0"

__all__ = ["Component", "FactorRange", "FitResult", "GalprofError", "Model", "ModelError", "PairRange", "PixelStatistic", "Range", "RelativeRange",
           "RenderConfig", "Tie", "__version__", "fit"]
