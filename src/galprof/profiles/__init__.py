"""Light profiles. Importing this package registers every built-in profile.

Every module of this package is imported here, so a new built-in profile is one new
module using ``@register``; nothing else needs editing. Profiles with a closed-form total
light also get a magnitude-parameterised ``<name>_mag`` (see :mod:`.variants`).
"""

import importlib
import pkgutil

from .base import EllipticalProfile, ParameterSpec, Profile
from .registry import available_profiles, get_profile, register, unregister
from .variants import has_closed_form_total, magnitude_variant

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")


def _register_magnitude_variants() -> None:
    """``<name>_mag`` for every built-in profile with a closed-form total light."""

    for name in available_profiles():
        profile = get_profile(name)
        if has_closed_form_total(profile) and f"{name}_mag" not in available_profiles():
            register(magnitude_variant(profile))


_register_magnitude_variants()

__all__ = ["EllipticalProfile", "ParameterSpec", "Profile", "available_profiles", "get_profile", "register",
           "unregister"]
