"""galprof: fast, accurate batched galaxy surface-brightness profile fitting on PyTorch.

Conventions (GALFIT's) are stated in :mod:`galprof.conventions`.
"""

from .constraints import PairRange, Range, RelativeRange, Tie
from .fitting import fit
from .likelihood import PixelStatistic
from .model import Component, Model, ModelError
from .optimise.result import FitResult
from .render.config import RenderConfig

__version__ = "0.1.0"

__all__ = ["Component", "FitResult", "Model", "ModelError", "PairRange", "PixelStatistic", "Range", "RelativeRange",
           "RenderConfig", "Tie", "__version__", "fit"]
