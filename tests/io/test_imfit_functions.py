"""imfit 1.9's function list in imfit configurations: every function's parameter order
and labels, limits and ``fixed`` mapped onto galprof's profiles, OPTIONAL_PARAMS blocks,
imfit's test function GaussianExtraParams, PointSource(Rot), refusals (profilefit
configurations, imfit's bad files) naming file and line, best-fit files written back in
imfit's format, and `galprof imfit` fits with the new functions.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from astropy.io import fits

from galprof.cli.main import main
from galprof.io.feedme import FeedmeError
from galprof.io.imfit_config import (
    ImfitConfigWarning,
    format_imfit_config,
    function_parameters,
    model_from_imfit,
    parse_imfit_config,
    supported_functions,
    values_to_imfit,
)
from galprof.profiles import get_profile
from galprof.profiles.modifiers import profile_for_values
from galprof.render.scene import Frame, render_model

#: imfit 1.9's parameter order of each function (its reference manual, Appendix A, and
#: --list-parameters; FerrersBar2D as imfit's code reads it: n before I_0)
IMFIT_ORDER = {
    "Sersic_GenEllipse": ("PA", "ell", "c0", "n", "I_e", "r_e"),
    "Exponential_GenEllipse": ("PA", "ell", "c0", "I_0", "h"),
    "FerrersBar2D": ("PA", "ell", "c0", "n", "I_0", "a_bar"),
    "FlatBar": ("PA", "ell", "deltaPA_max", "I_0", "h1", "h2", "r_break", "alpha"),
    "ModifiedKing": ("PA", "ell", "I_0", "r_c", "r_t", "alpha"),
    "ModifiedKing2": ("PA", "ell", "I_0", "r_c", "c", "alpha"),
    "GaussianRing2Side": ("PA", "ell", "A", "R_ring", "sigma_r_in", "sigma_r_out"),
    "GaussianRingAz": ("PA", "ell", "A_maj", "A_min_rel", "R_ring", "sigma_r"),
    "EdgeOnRing": ("PA", "I_0", "r", "sigma_r", "sigma_z"),
    "EdgeOnRing2Side": ("PA", "I_0", "r", "sigma_r_in", "sigma_r_out", "sigma_z"),
    "DoubleBrokenExponential": ("PA", "ell", "I_0", "h1", "h2", "h3", "r_break1", "r_break2", "alpha1", "alpha2"),
    "BrokenExponential2D": ("PA", "I_0", "h1", "h2", "r_break", "alpha", "h_z"),
    "ExponentialDisk3D": ("PA", "inc", "J_0", "h", "n", "z_0"),
    "BrokenExponentialDisk3D": ("PA", "inc", "J_0", "h1", "h2", "r_break", "alpha", "n", "z_0"),
    "GaussianRing3D": ("PA", "inc", "PA_ring", "ell", "J_0", "a_ring", "sigma", "h_z"),
    "FerrersBar3D": ("PA", "inc", "barPA", "J_0", "R_bar", "q", "q_z", "n"),
    "Core-Sersic": ("PA", "ell", "n", "I_b", "r_e", "r_b", "alpha", "gamma"),
    "BrokenExponential": ("PA", "ell", "I_0", "h1", "h2", "r_break", "alpha"),
    "GaussianRing": ("PA", "ell", "A", "R_ring", "sigma_r"),
    "EdgeOnDisk": ("PA", "L_0", "h", "n", "z_0"),
    "GaussianExtraParams": ("PA", "ell", "I_0", "sigma"),
    "PointSourceRot": ("I_tot", "PA"),
}

#: a sample value of each imfit label (inside galprof's domains)
SAMPLE = {"PA": 30.0, "ell": 0.3, "c0": -0.5, "n": 1.5, "I_e": 4.0, "r_e": 6.0, "I_0": 5.0, "h": 4.0, "a_bar": 9.0,
          "deltaPA_max": 25.0, "h1": 5.0, "h2": 2.5, "h3": 1.5, "r_break": 7.0, "alpha": 1.2, "r_c": 2.0, "r_t": 12.0,
          "c": 6.0, "A": 3.0, "R_ring": 8.0, "sigma_r_in": 2.0, "sigma_r_out": 1.0, "A_maj": 3.0, "A_min_rel": 0.4,
          "sigma_r": 1.5, "r": 7.0, "sigma_z": 1.2, "r_break1": 4.0, "r_break2": 10.0, "alpha1": 1.0, "alpha2": 2.0,
          "h_z": 1.1, "inc": 60.0, "J_0": 0.5, "z_0": 0.8, "PA_ring": 20.0, "a_ring": 9.0, "sigma": 1.7,
          "barPA": 40.0, "R_bar": 8.0, "q": 0.5, "q_z": 0.4, "I_b": 3.0, "r_b": 1.0, "gamma": 0.2, "L_0": 0.3,
          "I_tot": 100.0}


def config_text(name, labels, *, limits=None, fixed=()):
    lines = ["X0 20.5 15,25", "Y0 19.5 fixed", f"FUNCTION {name}   # LABEL thing"]
    for label in labels:
        value = 0.0 if (name, label) == ("PointSourceRot", "PA") else SAMPLE[label]
        extra = "fixed" if label in fixed else (limits or {}).get(label, "")
        lines.append(f"{label}  {value:g}  {extra}")
    return "\n".join(lines) + "\n"


def test_every_imfit_19_function_is_supported_in_imfits_parameter_order():
    for name, order in IMFIT_ORDER.items():
        assert function_parameters(name) == order, name
        assert name in supported_functions()


@pytest.mark.parametrize("name", [n for n in IMFIT_ORDER if n not in ("GaussianExtraParams", "PointSourceRot")])
def test_function_maps_values_limits_and_fixed_onto_its_profile(name):
    order = IMFIT_ORDER[name]
    free = [label for label in order if label != "PA"]
    limited = free[0]
    low, high = SAMPLE[limited] * 0.5, SAMPLE[limited] * 1.5
    if limited == "ell":
        low, high = 0.1, 0.6
    text = config_text(name, order, limits={limited: f"{low:g},{high:g}"}, fixed=("PA",))
    config = parse_imfit_config(text, "f.dat")
    (function,) = config.sets[0].functions
    assert function.label == "thing" and tuple(function.parameters) == order
    (component,) = model_from_imfit(config, (20.0, 20.0)).components
    profile = component.profile_class
    assert profile.imfit_name == name
    specs = {spec.imfit: spec for spec in profile.parameters if spec.imfit}
    for label in order:
        spec = specs.get(label) or (profile.spec("c0") if label == "c0" else None)
        assert spec is not None, (name, label)
        expected = 1.0 - SAMPLE[label] if label == "ell" else SAMPLE[label]
        assert component.values[spec.name] == pytest.approx(expected), (name, label)
    assert component.values["x"] == 20.5 and component.values["y"] == 19.5
    assert {"y", specs["PA"].name} <= component.fixed and len(component.fixed) == 2
    assert component.bounds["x"] == (15.0, 25.0)
    name_limited = (specs.get(limited) or profile.spec("c0")).name
    bounds = component.bounds[name_limited]
    assert bounds == pytest.approx((1.0 - high, 1.0 - low) if limited == "ell" else (low, high))
    # and back: the best-fit row of the initial values is the input
    values = [dict(component.values)]
    centres, rows = values_to_imfit(config, values, [{}], (20.0, 20.0))
    assert centres == [(20.5, 0.0, 19.5, 0.0)]
    inputs = {k: p.value for k, p in function.parameters.items()}
    assert {k: v for k, (v, _) in rows[0].items()} == pytest.approx(inputs)
    written = format_imfit_config(config, centres, rows)
    assert f"FUNCTION {name}   # LABEL thing" in written
    assert parse_imfit_config(written, "again.dat").sets == config.sets


def test_c0_without_limits_gets_room_on_both_sides_of_minus_one():
    text = "X0 10\nY0 10\nFUNCTION Sersic_GenEllipse\nPA 30\nell 0.5\nc0 -1.0\nn 2.5\nI_e 100\nr_e 50\n"
    (component,) = model_from_imfit(parse_imfit_config(text, "g.dat"), (10.0, 10.0)).components
    assert component.values["c0"] == -1.0
    low, high = component.bounds["c0"]
    assert -2.0 < low < -1.0 < high
    assert component.profile == "sersic_genellipse" and component.profile_class.shape_modified


def test_imfit_limits_reaching_a_positive_parameters_zero_stay_in_its_domain():
    text = "X0 10\nY0 10\nFUNCTION FerrersBar2D\nPA 90 fixed\nell 0.7 0.6,0.8\nc0 0.5 0,1\nn 2 0,2\n" \
           "I_0 115 110,125\na_bar 17 15,20\n"
    (component,) = model_from_imfit(parse_imfit_config(text, "au.dat"), (10.0, 10.0)).components
    assert component.bounds["n"][0] > 0.0 and component.bounds["n"][1] == 2.0
    assert component.bounds["q"] == pytest.approx((0.2, 0.4))


# ---------------------------------------------------------------- OPTIONAL_PARAMS

PSF_EXTRA = ("X0 12\nY0 12\nFUNCTION PointSource\nOPTIONAL_PARAMS_START\nmethod {method}\nOPTIONAL_PARAMS_END\n"
             "I_tot 2e4\n")


def test_pointsource_interpolation_method_is_read_kept_and_written_back():
    with pytest.warns(ImfitConfigWarning, match=r"ps.dat:5: OPTIONAL_PARAMS 'method lanczos3' of FUNCTION "
                                                r"PointSource: galprof interpolates the PSF"):
        config = parse_imfit_config(PSF_EXTRA.format(method="lanczos3"), "ps.dat")
    (function,) = config.sets[0].functions
    assert function.options == {"method": "lanczos3"} and function.parameters["I_tot"].value == 2e4
    assert model_from_imfit(config, (12.0, 12.0)).components[0].profile == "psf"
    written = format_imfit_config(config)
    assert "OPTIONAL_PARAMS_START\nmethod  lanczos3\nOPTIONAL_PARAMS_END" in written
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImfitConfigWarning)
        assert parse_imfit_config(written, "again.dat").sets == config.sets


@pytest.mark.parametrize("text, line, fragment", [
    (PSF_EXTRA.format(method="spline"), 5, "imfit's PSF interpolation methods are bicubic, lanczos2 and lanczos3"),
    ("X0 10\nY0 10\nFUNCTION Sersic_GenEllipse\nOPTIONAL_PARAMS_START\nmode alpha\nOPTIONAL_PARAMS_END\nPA 30\n"
     "ell 0.5\nc0 -1\nn 2.5\nI_e 100\nr_e 50\n", 5, "'mode alpha' of FUNCTION Sersic_GenEllipse: imfit's "
     "Sersic_GenEllipse takes no optional parameters"),
    ("X0 10\nY0 10\nFUNCTION Sersic\nOPTIONAL_PARAMS_START\nmode\nOPTIONAL_PARAMS_END\n", 5,
     "optional parameter 'mode' of FUNCTION Sersic has no value"),
    ("X0 10\nY0 10\nFUNCTION PointSource\nOPTIONAL_PARAMS_START\nmethod bicubic\nI_tot 3\n", 4,
     "OPTIONAL_PARAMS_START without OPTIONAL_PARAMS_END"),
    ("X0 10\nY0 10\nFUNCTION PointSource\nI_tot 3\nOPTIONAL_PARAMS_END\n", 5, "OPTIONAL_PARAMS_END without"),
    ("OPTIONAL_PARAMS_START\nX0 10\nY0 10\nFUNCTION PointSource\nI_tot 3\n", 1, "outside a FUNCTION"),
    ("X0 10\nY0 10\nFUNCTION PointSource\nOPTIONAL_PARAMS_START\nX0 12\n", 5, "X0 inside the OPTIONAL_PARAMS block"),
    ("X0 10\nY0 10\nFUNCTION PointSource\nOPTIONAL_PARAMS_START\nmethod bicubic\nmethod lanczos2\n"
     "OPTIONAL_PARAMS_END\nI_tot 3\n", 6, "given twice"),
    ("X0 10\nY0 10\nFUNCTION PointSource\nOPTIONAL_PARAMS_START\nfloor 2\nOPTIONAL_PARAMS_END\nI_tot 3\n", 5,
     "PointSource takes only the optional parameter 'method'"),
    ("X0 10\nY0 10\nFUNCTION GaussianExtraParams\nOPTIONAL_PARAMS_START\nfloor 1.5\nOPTIONAL_PARAMS_END\nPA 30\n"
     "ell 0.5\nA 100\nsigma 10\n", 5, "galprof does not add a constant floor to a Gaussian"),
])
def test_unsupported_optional_parameters_are_refused_by_name_with_file_and_line(text, line, fragment):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImfitConfigWarning)
        with pytest.raises(FeedmeError) as info:
            parse_imfit_config(text, "opt.dat")
    assert str(info.value).startswith(f"opt.dat:{line}:")
    assert fragment in str(info.value)


def test_an_empty_optional_params_block_and_gaussian_extra_params_read_as_imfit_does():
    """imfit ignores an empty block; GaussianExtraParams (imfit's unit-test Gaussian,
    I_0 exp(-r^2 / 2 sigma^2) + floor) with floor 0 is imfit's Gaussian."""
    text = ("X0 256\nY0 256\nFUNCTION Sersic_GenEllipse\nOPTIONAL_PARAMS_START\nOPTIONAL_PARAMS_END\nPA 30\nell 0.5\n"
            "c0 -1.0\nn 2.5\nI_e 100\nr_e 50\n"
            "FUNCTION GaussianExtraParams\nOPTIONAL_PARAMS_START\nfloor 0\nOPTIONAL_PARAMS_END\nPA 30\nell 0.5\n"
            "A 100\nsigma 10\n")
    with pytest.warns(ImfitConfigWarning, match="parameter 3 of FUNCTION GaussianExtraParams is I_0"):
        config = parse_imfit_config(text, "o.dat")
    sersic, gauss = config.sets[0].functions
    assert sersic.options == {} and gauss.options == {"floor": "0"}
    model = model_from_imfit(config, (256.0, 256.0))
    assert [c.profile for c in model.components] == ["sersic_genellipse", "gaussian"]
    assert model.components[1].values["fwhm"] == pytest.approx(10.0 * 2.0 * math.sqrt(2.0 * math.log(2.0)))
    values = [dict(c.values) for c in model.components]
    _, rows = values_to_imfit(config, values, [{}, {}], (256.0, 256.0))
    assert rows[1]["I_0"][0] == pytest.approx(100.0) and rows[1]["sigma"][0] == pytest.approx(10.0)


def test_pointsource_rot_with_pa_fixed_at_zero_is_a_point_source_and_otherwise_refused():
    config = parse_imfit_config("X0 10\nY0 10\nFUNCTION PointSourceRot\nI_tot 50\nPA 0 fixed\n", "r.dat")
    (component,) = model_from_imfit(config, (10.0, 10.0)).components
    assert component.profile == "psf" and 10 ** (-0.4 * component.values["mag"]) == pytest.approx(50.0)
    _, rows = values_to_imfit(config, [dict(component.values)], [{}], (10.0, 10.0))
    assert rows[0]["PA"] == (0.0, 0.0) and rows[0]["I_tot"][0] == pytest.approx(50.0)
    with pytest.raises(FeedmeError, match=r"^r.dat:5: PointSourceRot rotates the PSF image by PA"):
        parse_imfit_config("X0 10\nY0 10\nFUNCTION PointSourceRot\nI_tot 50\nPA 30\n", "r.dat")


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("text, line, fragment", [
    ("X0 0.0 fixed\nFUNCTION Core-Sersic-1D\nn 4\nmu_b 15\n", 2, "a profilefit (1-D) configuration; galprof imfit "
     "fits images"),
    ("FUNCTION Sersic-1D\nn 4\n", 1, "a profilefit (1-D) configuration"),
    ("X0 256\nY0 255 250,260\nFUNCTION Sersic_GenEllipse\nPA 30 30,30\n", 4, "limits of PA are equal"),
    ("X0 256\nY0 255 250,260\nFUNCTION Sersic_GenEllipse\nPA 30 30\n", 4, "limits of PA must be 'low,high'"),
    ("X0 256\nY0 255\nFUNCTION Sersic_GenEllipse\nPA 30 45,100\n", 4, "PA = 30 lies outside its limits"),
    ("X0 256\nFUNCTION Sersic_GenEllipse\n", 2, "FUNCTION before a function set's X0 and Y0 lines"),
    ("X0 10\nY0 10\nFUNCTION Exponential\nPA 0\nell 0\nI_0 150\nh 29\n\nEstimating fluxes on 256 x 256 image...\n",
     9, "makeimage's flux report"),
    ("X0 10\nY0 10\nFUNCTION DoubleBrokenExponential\nPA 1\nell 0\nI_0 1\nh1 2\nh2 3\nh3 4\nr_break1 5\n"
     "r_break2 6\n", 3, "lacks parameter(s) alpha1, alpha2"),
    ("X0 10\nY0 10\nFUNCTION LogSpiralExp\n", 3, "not one of imfit 1.9's standard functions"),
])
def test_refusals_name_file_and_line(text, line, fragment):
    with pytest.raises(FeedmeError) as info:
        parse_imfit_config(text, "bad.dat")
    assert str(info.value).startswith(f"bad.dat:{line}:")
    assert fragment in str(info.value)


# ---------------------------------------------------------------- galprof imfit end to end

def _simulate(profile_name, values, size, path):
    profile = profile_for_values(get_profile(profile_name), values.keys())
    params = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
    image = render_model([(profile, params)], Frame(1, 1, size, size))[0].numpy()
    fits.writeto(path, image)
    fits.writeto("noise.fits", np.full(image.shape, 1e-3 * image.max()))
    return image


@pytest.mark.parametrize("function, profile, truth, config, checks", [
    ("Sersic_GenEllipse", "sersic_genellipse",
     dict(x=20.3, y=19.6, I_e=3.0, r_e=5.0, n=1.5, c0=-0.6, q=0.6, pa=30.0),
     "X0 20 15,25\nY0 20 15,25\nFUNCTION Sersic_GenEllipse\nPA 25 0,90\nell 0.3 0,0.8\nc0 0 -1.5,1.5\nn 2 0.5,5\n"
     "I_e 2 0.1,100\nr_e 6 1,20\n", dict(c0=-0.6, n=1.5, r_e=5.0, I_e=3.0, ell=0.4, PA=30.0)),
    ("FerrersBar2D", "ferrersbar2d",
     dict(x=20.2, y=19.7, I_0=4.0, n=2.0, a_bar=10.0, c0=0.5, q=0.4, pa=60.0),
     "X0 20 15,25\nY0 20 15,25\nFUNCTION FerrersBar2D\nPA 55 0,90\nell 0.5 0.2,0.8\nc0 0.2 -1,2\nn 1.5 0.5,4\n"
     "I_0 3 0.1,100\na_bar 9 5,15\n", dict(c0=0.5, n=2.0, a_bar=10.0, I_0=4.0, ell=0.6, PA=60.0)),
])
def test_galprof_imfit_fits_a_new_function_end_to_end(tmp_path, monkeypatch, function, profile, truth, config,
                                                      checks):
    monkeypatch.chdir(tmp_path)
    _simulate(profile, truth, 40, "gal.fits")
    open("config.dat", "w").write(config)
    assert main(["imfit", "gal.fits", "-c", "config.dat", "--noise", "noise.fits", "--quiet"]) == 0
    text = open("bestfit_parameters_imfit.dat").read()
    assert f"FUNCTION {function}" in text
    best = parse_imfit_config(text, "bestfit_parameters_imfit.dat")
    assert best.sets[0].x0.value == pytest.approx(truth["x"], abs=1e-3)
    p = best.sets[0].functions[0].parameters
    assert tuple(p) == function_parameters(function)
    for label, value in checks.items():
        assert p[label].value == pytest.approx(value, rel=1e-3, abs=1e-3), label
