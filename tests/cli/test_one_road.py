"""Every source of galaxies takes the same road (issue: one pipeline).

Each test here failed before feedmes, catalogs and imfit runs shared one runner: a bad
feedme sank its whole batch, runner options were ignored for feedmes, the two tables had
different columns, archival header cards lost a finished fit, and ``--device auto``
reached torch unresolved.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galprof.cli import main
from galprof.pipeline.runner import BatchOptions, run_batch
from galprof.pipeline.sources import feedme_sources
from test_cli import FEEDME, TRUTH, workdir, write_feedme  # noqa: F401  (workdir is a fixture)


def _feedmes(n: int, *, image: str = "img.fits") -> list[str]:
    """n feedmes of the GalSim galaxy, each with its own image block."""
    names = []
    for k in range(n):
        name = f"gal{k:02d}.feedme"
        pathlib.Path(name).write_text(FEEDME.format(mode=0, mask="none").replace("B) out.fits", f"B) out{k:02d}.fits")
                                      .replace("A) img.fits", f"A) {image}"))
        names.append(name)
    return names


def test_one_unusable_feedme_fails_alone_and_the_others_converge(workdir, capsys):
    good = _feedmes(4)
    fits.writeto("nan.fits", np.full((40, 40), np.nan))
    bad = "gal99.feedme"
    pathlib.Path(bad).write_text(FEEDME.format(mode=0, mask="none").replace("A) img.fits", "A) nan.fits")
                                 .replace("B) out.fits", "B) out99.fits"))
    names = good[:2] + [bad] + good[2:]
    assert main(["batch", *names, "-o", "results.ecsv", "--quiet", "--device", "cpu"]) == 2
    table = Table.read("results.ecsv")
    assert list(table["id"]) == names
    for row in table:
        if row["id"] == bad:
            assert row["STATUS"].startswith("failed: ") and "no usable pixel" in row["STATUS"]
            assert np.isnan(row["1_N"])
        else:
            assert row["STATUS"] == "converged", row["STATUS"]
            assert row["1_N"] == pytest.approx(TRUTH["n"], rel=0.01)
            assert pathlib.Path(f"out{row['id'][3:5]}.fits").exists()
    assert "gal99.feedme" in capsys.readouterr().err
    assert not pathlib.Path("out99.fits").exists()


def test_dask_options_are_not_ignored_for_feedmes(workdir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as on a machine without dask
    assert main(["batch", write_feedme(), "-o", "r.ecsv", "--quiet", "--device", "cpu", "--dask-workers", "2"]) == 2
    assert "dask.distributed" in capsys.readouterr().err
    assert not pathlib.Path("r.ecsv").exists()
    assert main(["fit", write_feedme(), "--quiet", "--device", "cpu", "--scheduler", "tcp://127.0.0.1:1"]) == 2


def test_options_that_cannot_act_are_refused(workdir, capsys):
    assert main(["batch", write_feedme(), "-o", "r.ecsv", "--template", "g.feedme", "--quiet"]) == 2
    assert "--template" in capsys.readouterr().err
    assert main(["fit", write_feedme(), "--quiet", "--auto-init", "never", "--mask-mode", "target"]) == 2
    assert "--mask-mode" in capsys.readouterr().err
    assert main(["fit", write_feedme(), "--quiet", "--covariance-file", "c.fits", "--dask-workers", "1"]) == 2
    assert "Dask" in capsys.readouterr().err
    assert not pathlib.Path("galfit.01").exists()


def test_auto_init_is_honoured_for_feedmes(workdir):
    names = _feedmes(1)
    assert main(["batch", *names, "-o", "plain.ecsv", "--quiet", "--device", "cpu"]) == 0
    assert main(["batch", *names, "-o", "auto.ecsv", "--quiet", "--device", "cpu", "--auto-init", "always"]) == 0
    plain, auto = Table.read("plain.ecsv"), Table.read("auto.ecsv")
    assert not plain["AUTO_INIT"][0] and auto["AUTO_INIT"][0]
    assert auto["1_N"][0] == pytest.approx(TRUTH["n"], rel=0.01)
    assert auto["1_XC"][0] == pytest.approx(TRUTH["x"], abs=0.01)  # image pixels, as the feedme's


def test_a_killed_feedme_batch_resumes_without_refitting_finished_chunks(workdir):
    sources = feedme_sources(_feedmes(3))
    options = BatchOptions(batch_size=1, device="cpu", pad_shapes=True)

    class Killed(Exception):
        pass

    def kill_after_first(k):
        raise Killed

    with pytest.raises(Killed):
        run_batch(sources, None, "r.ecsv", options, progress=False, chunk_hook=kill_after_first)
    assert sorted(p.name for p in pathlib.Path(".").glob("galfit.*")) == ["galfit.01"]
    again = run_batch(sources, None, "r.ecsv", options, progress=False)
    assert again.n_fitted_now == 2 and again.n_failed == 0
    assert sorted(p.name for p in pathlib.Path(".").glob("galfit.*")) == ["galfit.01", "galfit.02", "galfit.03"]
    assert list(Table.read("r.ecsv")["id"]) == [s.id for s in sources]


def test_feedme_and_catalog_batches_write_the_same_columns(workdir):
    assert main(["batch", write_feedme(), "-o", "feedmes.ecsv", "--quiet", "--device", "cpu"]) == 0
    Table({"id": ["g"], "image": ["img.fits"], "sigma": ["sig.fits"], "psf": ["psf.fits"],
           "1_XC": [21.0], "1_YC": [19.5]}).write("catalog.csv", format="ascii.csv")
    assert main(["batch", "catalog.csv", "--template", "g.feedme", "-o", "catalog.ecsv", "--quiet",
                 "--device", "cpu", "--auto-init", "never"]) == 0
    from_feedmes, from_catalog = Table.read("feedmes.ecsv"), Table.read("catalog.ecsv")
    assert from_feedmes.colnames == from_catalog.colnames
    for name in ("_ERR_SCALED", "ITERATIONS", "COV_FLAG", "AUTO_INIT"):
        assert any(c.endswith(name) for c in from_feedmes.colnames), name
    assert from_feedmes["STATUS"][0] == from_catalog["STATUS"][0] == "converged"


def test_a_nonstandard_header_card_does_not_lose_the_fit(workdir, capsys):
    """HST headers write exponents in lower case (``4.73142247055e-06``), which astropy
    refuses to write back; GALFIT's own example image has four such CD cards."""
    header = fits.Header()
    header["CD1_1"] = (4.73142247055e-06, "partial of first axis coordinate w.r.t. x")
    fits.writeto("hst.fits", fits.getdata("img.fits"), header)
    raw = pathlib.Path("hst.fits").read_bytes()
    at = raw.index(b"CD1_1")
    card = b"CD1_1   =    4.73142247055e-06 / partial of first axis coordinate w.r.t. x".ljust(80)
    pathlib.Path("hst.fits").write_bytes(raw[:at] + card + raw[at + 80:])
    pathlib.Path("hst.feedme").write_text(FEEDME.format(mode=0, mask="none").replace("A) img.fits", "A) hst.fits"))
    assert main(["fit", "hst.feedme", "--quiet", "--device", "cpu"]) == 0
    with fits.open("out.fits") as hdus:
        assert hdus[1].header["CD1_1"] == pytest.approx(4.73142247055e-06, rel=1e-12)
        assert float(hdus[2].header["1_N"].split()[0]) == pytest.approx(TRUTH["n"], rel=0.01)
    assert "galprof: warning: input image header: 1 non-standard card(s) rewritten in standard form: CD1_1" \
        in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "imfit"])
def test_device_auto_means_the_same_in_every_subcommand(workdir, command):
    if command == "fit":
        assert main(["fit", write_feedme(), "--quiet", "--device", "auto"]) == 0
        assert pathlib.Path("galfit.01").exists()
    else:
        pathlib.Path("config.dat").write_text("X0 21 15,25\nY0 19.5 15,25\nFUNCTION Sersic\nPA 40 0,180\n"
                                              "ell 0.3 0,0.9\nn 2 0.5,6\nI_e 1 0.001,1000\nr_e 4 1,20\n")
        assert main(["imfit", "img.fits", "-c", "config.dat", "--psf", "psf.fits", "--noise", "sig.fits",
                     "--quiet", "--device", "auto"]) == 0
        assert "#   Reduced value: " in pathlib.Path("bestfit_parameters_imfit.dat").read_text()


def test_feedmes_run_on_dask_workers_as_in_one_process(workdir):
    pytest.importorskip("dask.distributed")
    names = _feedmes(3)
    assert main(["batch", *names, "-o", "one.ecsv", "--quiet", "--device", "cpu", "--batch-size", "1"]) == 0
    for path in pathlib.Path(".").glob("galfit.*"):
        path.unlink()
    assert main(["batch", *names, "-o", "dask.ecsv", "--quiet", "--device", "cpu", "--batch-size", "1",
                 "--dask-workers", "2"]) == 0
    one, dask = Table.read("one.ecsv"), Table.read("dask.ecsv")
    assert list(dask["id"]) == names and list(dask["STATUS"]) == ["converged"] * 3
    np.testing.assert_allclose(np.asarray(dask["1_N"]), np.asarray(one["1_N"]), rtol=1e-6)
    # each worker wrote its feedmes' GALFIT files, one restart file each
    assert sorted(p.name for p in pathlib.Path(".").glob("galfit.*")) == ["galfit.01", "galfit.02", "galfit.03"]
