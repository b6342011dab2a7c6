"""galprof: fast, accurate batched galaxy surface-brightness profile fitting on PyTorch."""

__version__ = "0.1.0"
