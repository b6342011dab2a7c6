"""docs/custom_profiles.md: its code blocks, run in order, define, register and fit a
user profile from outside the package; the fit must recover the numpy-made truths."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from galprof.profiles import registry

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "custom_profiles.md"


@pytest.fixture
def namespace():
    yield {}
    for name in ("softpower", "softpower_mag"):  # leave the registry as it was
        registry.unregister(name)


def test_custom_profile_page_runs_and_fits(namespace):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 4
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    result, truths = namespace["result"], namespace["truths"]
    assert result.converged.all()
    for b, t in enumerate(truths):
        assert result.value(1, "r_c")[b] == pytest.approx(t["r_c"], rel=2e-3)
        assert result.value(1, "gamma")[b] == pytest.approx(t["gamma"], rel=2e-3)
        assert result.value(1, "I_0")[b] == pytest.approx(t["I_0"], rel=2e-3)
        assert result.value(1, "q")[b] == pytest.approx(t["q"], abs=2e-3)
        assert result.value(1, "x")[b] == pytest.approx(t["x0"], abs=0.01)
    # the feedme round trip of the registered profile
    feedme = namespace["feedme"]
    assert feedme.components[0].values == {"x": 30.4, "y": 31.2, "I_0": 200.0, "r_c": 2.5, "gamma": 1.8,
                                           "q": 0.6, "pa": 25.0}
    written = namespace["format_feedme"](feedme)
    assert re.search(r"^ 5\) 1\.8000 +1 +# +power-law index gamma", written, re.M)
    # closed-form enclosed light against a plain numerical integral of the formula
    import torch
    profile = namespace["SoftenedPowerLaw"]
    derived = profile.setup({k: torch.tensor([[[v]]], dtype=torch.float64)
                             for k, v in dict(x=0.0, y=0.0, I_0=1.0, r_c=2.0, gamma=1.7, q=0.5, pa=0.0).items()})
    s = np.linspace(0, 7.0, 200001)
    numeric = 2 * np.pi * 0.5 * np.trapezoid((1 + s**2 / 4.0) ** -1.7 * s, s)
    got = float(profile.enclosed_fraction(torch.tensor([[[7.0]]], dtype=torch.float64), derived))
    assert got == pytest.approx(numeric, rel=1e-6)
    # imfit configurations know it too, in its own parameterisation (ell = 1 - q)
    from galprof.io.imfit_config import format_imfit_config, model_from_imfit, parse_imfit_config
    config = parse_imfit_config("X0 30.4\nY0 31.2\nFUNCTION SoftenedPowerLaw\nPA 25 fixed\nell 0.4 0,0.9\n"
                                "I_0 200\nr_c 2.5 1,10\ngamma 1.8\n", "custom.dat")
    comp = model_from_imfit(config, (30.5, 30.5)).components[0]
    assert comp.profile == "softpower" and comp.values["q"] == pytest.approx(0.6)
    assert comp.bounds["r_c"] == (1.0, 10.0) and "pa" in comp.fixed
    assert "FUNCTION SoftenedPowerLaw" in format_imfit_config(config)
    # the magnitude twin exists and knows its total
    assert "mag" in namespace["SoftenedPowerLawMag"].parameter_names()
