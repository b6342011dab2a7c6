"""Magnitude-parameterised variants of profiles whose amplitude is a surface brightness
or an intensity but whose total light has a closed form.

GALFIT gives ``ferrer``, ``king``, ``nuker`` and ``edgedisk`` a surface-brightness
amplitude and imfit gives its functions intensities; where the total light per unit
amplitude is known in closed form (the profile defines ``total_per_amplitude``), the
variant ``<name>_mag`` takes the component's total magnitude instead (zp - 2.5
log10(flux / EXPTIME), like ``sersic``), with the same shape parameters. The variants are
galprof-only: neither GALFIT nor imfit has them, so they have no GALFIT or imfit name.
"""

from __future__ import annotations

import dataclasses

from .base import MAGNITUDE, EllipticalProfile


def has_closed_form_total(profile) -> bool:
    """Whether ``profile`` defines a closed-form ``total_per_amplitude`` (not None)."""
    return (issubclass(profile, EllipticalProfile) and profile.amplitude_kind != "total_magnitude"
            and callable(getattr(profile, "total_per_amplitude", None)))


def magnitude_variant(base: type[EllipticalProfile]) -> type[EllipticalProfile]:
    """The class ``<base.name>_mag``: ``base`` with its amplitude replaced by a total
    magnitude ``mag``; register it with :func:`galprof.profiles.register`.

    A profile whose total is finite only in part of its domain declares
    ``magnitude_variant_specs = {name: {field: value}}`` (e.g. the Nuker profile's
    beta > 2): those ParameterSpec fields are replaced in the variant."""
    if not has_closed_form_total(base):
        raise TypeError(f"profile {base.name!r} has no closed-form total light (total_per_amplitude)")
    mag = dataclasses.replace(MAGNITUDE, galfit=None, imfit=None)
    overrides = getattr(base, "magnitude_variant_specs", {})
    parameters = tuple(mag if p.name == base.amplitude
                       else dataclasses.replace(p, galfit=None, imfit=None, **overrides.get(p.name, {}))
                       for p in base.parameters)

    def setup(cls, params):
        derived = base.setup(params)
        derived["per_flux"] = 1.0 / base.total_per_amplitude(derived)
        return derived

    def surface_brightness(rho, derived):
        return base.surface_brightness(rho, derived) * derived["per_flux"]

    def surface_brightness_squared(cls, rho_squared, derived):
        return base.surface_brightness_squared(rho_squared, derived) * derived["per_flux"]

    def enclosed_fraction(cls, rho, derived):
        return base.enclosed_fraction(rho, derived) * derived["per_flux"]

    def brightness(cls, dx, dy, derived):
        return base.brightness(dx, dy, derived) * derived["per_flux"]

    def total_per_amplitude(cls, derived):
        return base.total_per_amplitude(derived) * derived["per_flux"]

    namespace = {
        "name": f"{base.name}_mag",
        "description": f"{base.description}, parameterised by its total magnitude",
        "parameters": parameters,
        "amplitude": "mag",
        "amplitude_kind": "total_magnitude",
        "galfit_name": None,
        "imfit_name": None,
        "galfit_comments": {},
        "setup": classmethod(setup),
        "surface_brightness": staticmethod(surface_brightness),
        "surface_brightness_squared": classmethod(surface_brightness_squared),
        "enclosed_fraction": classmethod(enclosed_fraction),
        "brightness": classmethod(brightness),
        "total_per_amplitude": classmethod(total_per_amplitude),
        "__module__": __name__,
        "__doc__": f"{base.__name__} with a total magnitude instead of {base.amplitude} (see galprof.profiles.variants).",
    }
    return type(f"{base.__name__}Magnitude", (base,), namespace)
