"""Batched optimisers. They see only a residual function of theta (B, F)."""

from .adam import AdamSettings, adam_fit
from .lm import LMSettings, levenberg_marquardt
from .problem import BatchProblem

__all__ = ["AdamSettings", "BatchProblem", "LMSettings", "adam_fit", "levenberg_marquardt"]
