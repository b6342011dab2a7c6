"""galprof: fast, accurate batched galaxy surface-brightness profile fitting on PyTorch.

Conventions (GALFIT's) are stated in :mod:`galprof.conventions`.
"""

from .fitting import fit
from .model import Component, Model, ModelError
from .optimise.result import FitResult
from .render.config import RenderConfig

__version__ = "0.1.0"

__all__ = ["Component", "FitResult", "Model", "ModelError", "RenderConfig", "fit", "__version__"]
