"""Light profiles. Importing this package registers every built-in profile.

Every module of this package is imported here, so a new built-in profile is one new
module using ``@register``; nothing else needs editing.
"""

import importlib
import pkgutil

from .base import EllipticalProfile, ParameterSpec, Profile
from .registry import available_profiles, get_profile, register

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["EllipticalProfile", "ParameterSpec", "Profile", "available_profiles", "get_profile", "register"]
