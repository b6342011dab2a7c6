"""``galprof.fit`` as a GPU runs it.

On a device other than the CPU a fit never splits its batch among CPU workers (nothing
forked: no fork after CUDA, no heap trim before a fork, no threads), forms each Jacobian
pass from a far larger budget, and its special functions use static bounds. Here those
branches run on the CPU (``cuda_paths.emulate_other_device``): the fit must equal the
CPU's, keep the heap retained throughout, read no value on the host and synchronise a
bounded number of times per LM iteration. The ``gpu`` cases compare CUDA with the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cuda_paths import DEVICE_CASES, HostSyncs, emulate_other_device, moffat_stamp, skip_without
from galprof import Component, Model, RenderConfig, fit
from galprof.fitting import heap, strategy, workers
from galprof.fitting.functions import ModelFunctions
from galprof.fitting.layout import ParameterLayout
from galprof.optimise.lm import LMSettings
from galprof.render.psf import prepare_psf
from galprof.render.scene import Frame, render_model

SIZE = 24
BATCH = 4


def _survey():
    """(model with offset starts, images, sigma, psf) of BATCH noisy Sersic + sky galaxies."""
    rng = np.random.default_rng(7)
    truth = dict(x=12.5 + rng.uniform(-1, 1, BATCH), y=12.5 + rng.uniform(-1, 1, BATCH),
                 mag=rng.uniform(16.5, 17.5, BATCH), r_e=rng.uniform(2.0, 4.0, BATCH), n=rng.uniform(0.8, 3.0, BATCH),
                 q=rng.uniform(0.5, 0.9, BATCH), pa=rng.uniform(-60, 60, BATCH))
    psf = moffat_stamp(11)
    comps = Model([Component("sersic", truth), Component("sky", dict(sky=0.3, dsdx=0.0, dsdy=0.0))])
    layout = ParameterLayout(comps, ((0.5, SIZE + 0.5), (0.5, SIZE + 0.5)))
    values = torch.tensor(layout.initial_values(BATCH), dtype=torch.float64)
    images = render_model(layout.components(values), Frame(1, 1, SIZE, SIZE, zeropoint=25.0),
                          prepare_psf(psf)).numpy()
    images = images + rng.normal(0, 0.05, images.shape)
    start = {**truth, "r_e": truth["r_e"] * 1.3, "n": truth["n"] + 0.5, "mag": truth["mag"] + 0.2}
    model = Model([Component("sersic", start),
                   Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    return model, images, np.full(images.shape, 0.05), psf


def _fit(survey, **kwargs):
    model, images, sigma, psf = survey
    return fit(model, images, sigma=sigma, psf=psf, zeropoint=25.0, **kwargs)


def test_other_devices_are_never_split_and_take_large_jacobian_passes():
    for device in (torch.device("cuda"), torch.device("meta")):
        assert workers.cpu_worker_parts(256, device, None) == [slice(0, 256)]
    # 128x128 Sersic + sky with a 25x25 PSF: on a GPU, LM's passes of galaxies are not split further
    model = Model([Component("sersic", dict(x=64.0, y=64.0, mag=18.0, r_e=5.0, n=2.0, q=0.8, pa=10.0)),
                   Component("sky", dict(sky=0.0, dsdx=0.0, dsdy=0.0), fixed={"dsdx", "dsdy"})])
    layout = ParameterLayout(model, ((0.5, 128.5), (0.5, 128.5)))
    functions = ModelFunctions(layout, torch.tensor(layout.initial_values(1), dtype=torch.float64),
                               Frame(1, 1, 128, 128, zeropoint=25.0), prepare_psf(moffat_stamp(25)), RenderConfig(),
                               internal=True)
    assert functions._chunk_size(torch.device("cuda")) >= LMSettings().pass_size > functions._chunk_size(
        torch.device("cpu"))


def test_a_fit_as_a_gpu_runs_it(monkeypatch):
    survey = _survey()
    reference = _fit(survey, dtype=torch.float64, cpu_workers=1)
    emulate_other_device(monkeypatch)

    def never(*args, **kwargs):
        raise AssertionError("a fit on a non-CPU device split its batch or trimmed the heap")

    for name in ("solve_in_processes", "solve_in_threads"):
        monkeypatch.setattr(strategy, name, never)
    monkeypatch.setattr(workers, "release_free_memory", never)
    depths = []
    outcomes = []
    lm = strategy.levenberg_marquardt

    def counted_lm(*args, **kwargs):
        outcomes.append(lm(*args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(strategy, "levenberg_marquardt", counted_lm)
    with HostSyncs() as syncs:
        result = _fit(survey, dtype=torch.float64, progress=lambda it, n: depths.append(heap.retention_depth()))
    assert depths and set(depths) == {1}  # the heap stays retained while the batch is fitted
    assert syncs.counts["value reads"] == 0, dict(syncs.counts)
    iterations = [int(out.iterations.max()) for out in outcomes]
    trials = LMSettings().max_trials
    # per LM iteration: the running galaxies, those needing a Jacobian, each trial; a few per round of starts
    assert syncs.gathers <= sum((n + 1) * (2 + trials) + 4 for n in iterations), (dict(syncs.counts), iterations)
    assert list(result.status) == list(reference.status)
    np.testing.assert_allclose(result.values, reference.values, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device, dtype", DEVICE_CASES)
def test_a_fit_on_the_device_equals_the_cpus(device, dtype):
    skip_without(device)
    survey = _survey()
    reference = _fit(survey, dtype=dtype, cpu_workers=1)
    result = _fit(survey, dtype=dtype, device=device)
    assert list(result.status) == list(reference.status)
    # the device changes no fit by more than a tenth of its error (rounding may move LM's
    # last step within its stopping tolerances), nor any error by more than 10 %
    free = np.isfinite(reference.errors) & (reference.errors > 0)
    assert np.all(np.abs(result.values - reference.values)[free] <= 0.1 * reference.errors[free])
    np.testing.assert_allclose(result.errors[free], reference.errors[free], rtol=0.1)
