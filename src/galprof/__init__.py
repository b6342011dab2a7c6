"""galprof: fast, accurate batched galaxy surface-brightness profile fitting on PyTorch.

Conventions (GALFIT's) are stated in :mod:`galprof.conventions`.
"""

from .constraints import FactorRange, PairRange, Range, RelativeRange, Tie
from .errors import GalprofError
from .fitting import Bands, FitResult, MultiBandFitResult, PixelStatistic, fit, fit_bands
from .model import Component, Model, ModelError
from .render.config import RenderConfig

__version__ = "0.1.0"

__all__ = ["Bands", "Component", "FactorRange", "FitResult", "GalprofError", "Model", "ModelError",
           "MultiBandFitResult", "PairRange", "PixelStatistic", "Range", "RelativeRange", "RenderConfig", "Tie",
           "__version__", "fit", "fit_bands"]
