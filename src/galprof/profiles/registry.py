"""Name -> profile class registry. A new profile is one small module using ``@register``."""

from __future__ import annotations

from .base import Profile

_REGISTRY: dict[str, type[Profile]] = {}


def register(cls: type[Profile]) -> type[Profile]:
    """Class decorator adding a profile under its ``name`` (GALFIT's component name)."""
    if cls.name in _REGISTRY:
        raise ValueError(f"profile {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> type[Profile] | None:
    """Remove the profile called ``name`` and return its class (None if no such profile
    is registered): for code that registers profiles temporarily, such as tests."""
    return _REGISTRY.pop(name, None)


def get_profile(name: str) -> type[Profile]:
    """The profile class called ``name``; a KeyError lists the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown profile {name!r}; galprof knows: {known}") from None


def available_profiles() -> tuple[str, ...]:
    """The names of all registered profiles, sorted."""
    return tuple(sorted(_REGISTRY))
