"""galprep metrics --condition-check / --flux-check: read-back and flux ordering of conditions."""

import json

import numpy as np
import pytest

from galtools.arrayfile import write_galaxies
from galtools.meta import new_meta
from tests.fakerun import FakeRun, install
from tests.tinyruns import blobs


def labelled(path, n, seed, labels=("inclination", "flux"), nan_image=None):
    """Blobs 8×8×3 with an inclination column and a flux column that orders their brightness
    loosely (a rank correlation well inside (-1, 1))."""
    rng = np.random.default_rng(seed)
    images = blobs(n, seed=seed)
    batch = {"images": images, "ids": np.array([f"s{seed}_{i}" for i in range(n)])}
    total = images.sum(axis=(1, 2, 3), dtype=np.float64)
    columns = {
        "inclination": rng.uniform(0, 90, n),
        "flux": total * rng.uniform(0.5, 2.0, n),
        "z": rng.uniform(0, 1, n),
    }
    for name in labels:
        batch[name] = columns[name]
    if nan_image is not None:
        batch["images"][nan_image, 2, 3, 1] = np.nan
    write_galaxies(path, batch, new_meta(bands=list("gri")))
    return path


def spearman_by_hand(x, y):
    from scipy.stats import rankdata

    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.corrcoef(rankdata(x[ok]), rankdata(y[ok]))[0, 1])


def test_figures_equal_a_hand_computation_with_a_tiny_regressor(galprep, tmp_path):
    from galtools.arrayfile import read_galaxies
    from galtools.runs import load_run
    from tests.tinyruns import tiny_run

    run_dir = tiny_run("vgg")
    real = labelled(tmp_path / "real.h5", 20, seed=1)
    gen = labelled(tmp_path / "gen.h5", 23, seed=2, nan_image=4)
    out, plots = tmp_path / "rep.json", tmp_path / "plots"
    r = galprep(
        "metrics",
        real,
        gen,
        "--condition-check",
        run_dir,
        "--chunk-size",
        "5",  # streamed: 5 chunks, predictions in batches
        "--plots",
        plots,
        "-o",
        out,
    )
    assert r.code == 0, r.stderr
    rep = json.loads(out.read_text())
    check = rep["condition_check"]
    run = load_run(run_dir)
    for name, path in (("real", real), ("generated", gen)):
        batch, _ = read_galaxies(path)
        pred = run.predict(batch["images"])
        truth = batch["inclination"]
        ok = np.isfinite(batch["images"]).all(axis=(1, 2, 3))  # damaged images left out
        resid = pred[ok] - truth[ok]
        got = check["readback"][0][name]
        assert got["n"] == ok.sum() and got["missing"] == (~ok).sum()
        assert got["rmse"] == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-6)
        assert got["bias"] == pytest.approx(resid.mean(), rel=1e-6, abs=1e-9)
        assert got["spread"] == pytest.approx(resid.std(), rel=1e-6)
        assert got["mae"] == pytest.approx(np.abs(resid).mean(), rel=1e-6)
        assert got["condition_std"] == pytest.approx(truth[ok].std(), rel=1e-9)
        measured = batch["images"].astype(np.float64).sum(axis=(1, 2, 3))
        flux = check["flux"][0][name]
        assert flux["n"] == np.isfinite(measured).sum()
        rho = spearman_by_hand(batch["flux"], measured)
        assert -0.99 < rho < 0.99 and flux["spearman"] == pytest.approx(rho, abs=1e-12)
        green = batch["images"][..., 1].astype(np.float64).sum(axis=(1, 2))
        assert flux["per_band"]["r"] == pytest.approx(spearman_by_hand(batch["flux"], green))
    assert check["readback"][0]["generated"]["n"] == 22  # the NaN image is left out
    assert check["readback"][0]["column"] == "inclination"
    assert check["flux"][0]["column"] == "flux"  # checked by default: the file has 'flux'
    assert check["flux"][0]["generated"]["nonfinite_images"] == 1
    assert "sum of pixel values" in check["measured_flux"]
    assert sorted(p.name for p in plots.iterdir()) == ["flux_flux.png", "readback_inclination.png"]
    assert rep["plots"] == [str(plots / "readback_inclination.png"), str(plots / "flux_flux.png")]
    assert rep["metrics"] == {}
    assert "condition inclination read back by" in r.stderr and "on real: RMSE" in r.stderr
    assert "condition flux vs measured flux: Spearman" in r.stderr


def test_library_function_and_array_helpers(tmp_path):
    from galtools.metrics.conditions import (
        condition_check,
        measured_flux,
        rank_correlation,
        readback_stats,
    )

    s = readback_stats([1.0, 3.0, np.nan, 10.0], [0.0, 1.0, 5.0, np.nan])
    assert s["n"] == 2 and s["missing"] == 2
    assert s["bias"] == 1.5 and s["spread"] == 0.5 and s["rmse"] == pytest.approx(np.sqrt(2.5))
    assert np.isnan(readback_stats([np.nan], [1.0])["rmse"])
    images = np.ones((3, 4, 4, 2), np.float32)
    images[1] *= 2
    images[2, 0, 0, 0] = np.inf
    flux = measured_flux(images)
    assert flux[:2].tolist() == [32.0, 64.0] and np.isnan(flux[2])
    c = rank_correlation([1, 2, 3, 4], [10, 20, 15, 40])
    assert c["n"] == 4 and c["spearman"] == pytest.approx(0.8)
    assert np.isnan(rank_correlation([1, 1, 1], [1, 2, 3])["spearman"])
    # from Python, with a run object and an explicit flux column; REAL lacks 'inclination'
    real = labelled(tmp_path / "real.h5", 6, seed=3, labels=("flux",))
    gen = labelled(tmp_path / "gen.h5", 7, seed=4, labels=("inclination", "z"))
    fake = FakeRun("fake", target="inclination", scale=2.0, offset=1.0)
    rep = condition_check(real, gen, [fake], flux_columns=["z"])
    entry = rep["readback"][0]
    assert entry["real"] is None and "has no column 'inclination'" in entry["note"]
    assert entry["generated"]["n"] == 7 and rep["flux"][0]["real"] is None
    assert rep["flux"][0]["generated"]["n"] == 7


def test_a_real_set_without_the_column_is_said_in_one_line(galprep, tmp_path, monkeypatch):
    install(monkeypatch, {"runs/inc": FakeRun("runs/inc", target="inclination")})
    real = labelled(tmp_path / "real.h5", 6, seed=5, labels=("z",))
    gen = labelled(tmp_path / "gen.h5", 6, seed=6)
    r = galprep("metrics", real, gen, "--condition-check", "runs/inc", "-o", tmp_path / "r.json")
    assert r.code == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "read back" in ln]
    assert len(lines) == 1 and lines[0].endswith("real set has no such column")
    rep = json.loads((tmp_path / "r.json").read_text())["condition_check"]
    assert rep["readback"][0]["real"] is None and rep["flux"][0]["real"] is None
    # --flux-check none: no flux entry; --flux-check alone: no run needed
    r = galprep(
        "metrics",
        *(real, gen, "--condition-check", "runs/inc", "--flux-check", "none"),
        *("-o", tmp_path / "n.json"),
    )
    assert (
        r.code == 0
        and json.loads((tmp_path / "n.json").read_text())["condition_check"]["flux"] == []
    )
    r = galprep("metrics", gen, gen, "--flux-check", "flux", "-o", tmp_path / "f.json")
    assert r.code == 0, r.stderr
    flux = json.loads((tmp_path / "f.json").read_text())["condition_check"]["flux"][0]
    assert flux["real"]["spearman"] == flux["generated"]["spearman"]


RUNS = {
    "runs/inc": FakeRun("runs/inc", target="inclination"),
    "runs/z": FakeRun("runs/z", target="redshift"),
    "runs/gan": FakeRun("runs/gan", model_name="dcgan"),
    "runs/clf": FakeRun("runs/clf", model_name="cnn-classifier", class_names=["a", "b"]),
    "runs/big": FakeRun("runs/big", target="inclination", input_shape=(16, 16, 3)),
}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--condition-check", "runs/gan"], "runs/gan: a dcgan"),
        (["--condition-check", "runs/clf"], "does not predict a label column"),
        (["--condition-check", "runs/z"], "no column 'redshift', the target of the regressor"),
        (["--condition-check", "runs/inc", "--flux-check", "mass"], "no column 'mass' for the"),
        (["--condition-check", "runs/big"], "images are 8×8×3 but the regressor runs/big takes"),
        (["--condition-check", "runs/nothere"], "runs/nothere: not a training run"),
        (["--flux-check", "none"], "nothing to check"),
    ],
)
def test_bad_input_fails_in_one_line_writing_nothing(galprep, tmp_path, monkeypatch, args, message):
    install(monkeypatch, RUNS)
    real = labelled(tmp_path / "real.h5", 6, seed=7)
    gen = labelled(tmp_path / "gen.h5", 6, seed=8)
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    r = galprep("metrics", real, gen, *args, "--power", "--plots", plots, "-o", out)
    assert r.code == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    if "does not predict" in message or "dcgan" in message:
        assert "needs a regression run" in lines[0]
    assert not out.exists() and not plots.exists()


def test_a_generated_file_without_labels_and_usage_errors(galprep, tmp_path, monkeypatch):
    install(monkeypatch, RUNS)
    real = labelled(tmp_path / "real.h5", 6, seed=9)
    bare = labelled(tmp_path / "bare.h5", 6, seed=10, labels=())
    out = tmp_path / "r.json"
    r = galprep("metrics", real, bare, "--condition-check", "runs/inc", "-o", out)
    assert r.code == 1 and len(r.stderr.strip().splitlines()) == 1
    assert f"{bare}: has no label columns" in r.stderr and not out.exists()
    r = galprep("metrics", real, "--condition-check", "runs/inc", "-o", tmp_path / "t.json")
    assert r.code == 2 and "need REAL and OTHER" in r.stderr
    r = galprep("metrics", real, bare, "-o", out)
    assert r.code == 2 and "--condition-check RUN" in r.stderr


def test_readback_bias_correction_applies_to_real_and_generated(galprep, tmp_path, monkeypatch):
    """--readback-bias FILE (galprep score --fit-bias's JSON): i = (pred + b)/(1 − m) on both
    sets, recorded in the report; a correction no run uses is one line, nothing written."""
    from galtools.arrayfile import read_galaxies

    install(monkeypatch, RUNS)
    real = labelled(tmp_path / "real.h5", 12, seed=11)
    gen = labelled(tmp_path / "gen.h5", 14, seed=12)
    corr = {"m": 0.2, "b": 3.0, "target": "inclination", "n": 100}
    (tmp_path / "bias.json").write_text(json.dumps(corr))
    out = tmp_path / "r.json"
    r = galprep("metrics", real, gen, "--condition-check", "runs/inc", "--flux-check", "none",
                "--readback-bias", tmp_path / "bias.json", "-o", out)  # fmt: skip
    assert r.code == 0, r.stderr
    entry = json.loads(out.read_text())["condition_check"]["readback"][0]
    assert entry["bias_correction"]["m"] == 0.2 and entry["bias_correction"]["b"] == 3.0
    for name, path in (("real", real), ("generated", gen)):
        batch, _ = read_galaxies(path)
        pred = RUNS["runs/inc"].predict(batch["images"])
        resid = (pred + 3.0) / 0.8 - batch["inclination"]
        assert entry[name]["bias"] == pytest.approx(resid.mean(), rel=1e-9)
        assert entry[name]["rmse"] == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-9)
    assert "read back (bias-corrected) by runs/inc" in r.stderr

    (tmp_path / "z.json").write_text(json.dumps(dict(corr, target="redshift")))
    for args, message in [
        (["--condition-check", "runs/inc", "--readback-bias", tmp_path / "z.json"],
         "corrects 'redshift', which no --condition-check run predicts (inclination)"),
        (["--readback-bias", tmp_path / "bias.json"], "--readback-bias corrects a"),
        (["--condition-check", "runs/inc", "--readback-bias", tmp_path / "none.json"],
         "cannot read"),
    ]:  # fmt: skip
        r = galprep("metrics", real, gen, *args, "-o", tmp_path / "bad.json")
        assert r.code in (1, 2) and message in r.stderr, r.stderr
        assert not (tmp_path / "bad.json").exists()
