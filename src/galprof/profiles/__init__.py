"""Light profiles. Importing this package registers every built-in profile."""

from . import devauc, exponential, gaussian, moffat, point, sersic, sky  # noqa: F401  (registration)
from .base import EllipticalProfile, ParameterSpec, Profile
from .registry import available_profiles, get_profile, register

__all__ = ["EllipticalProfile", "ParameterSpec", "Profile", "available_profiles", "get_profile", "register"]
