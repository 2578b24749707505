"""galprep denoise: MSE/PSNR before and after, robustness table, bad input."""

import json
import math

import numpy as np
import pytest

from galtools.arrayfile import read_galaxies, write_galaxies
from galtools.denoising import (
    CASES,
    SquaredError,
    denoise_file,
    format_table,
    make_case,
    psnr,
    robustness,
)
from galtools.errors import GalError
from galtools.meta import new_meta
from tests import tinyruns
from tests.fakerun import FakeRun, install


def blobs(n=6, size=16, bands=3, seed=0):
    return tinyruns.blobs(n, size, bands, seed, width=(2, 4))


def pair_file(path, n=6, size=16, sigma=0.3, seed=0):
    clean = blobs(n, size, seed=seed)
    noisy = clean + np.random.default_rng(seed + 1).normal(0, sigma, clean.shape)
    batch = {
        "images": noisy.astype(np.float32),
        "targets": clean,
        "ids": np.array([f"d{i}" for i in range(n)]),
        "incl": np.arange(n) * 10.0,
    }
    write_galaxies(path, batch, new_meta(bands="gri"))
    return batch


def denoiser(path="den", **config):
    return FakeRun(
        path,
        "resnet-denoiser",
        input_shape=None,
        config={"bands": ["g", "r", "i"], "training": config},
    )


def test_psnr_and_accumulator_by_hand():
    assert psnr(0.01, 1.0) == pytest.approx(20.0)
    assert psnr(0.0, 1.0) == math.inf
    acc = SquaredError()
    t = np.array([[0.0, 2.0]])
    acc.add(np.array([[1.0, 2.0]]), t)
    acc.add(np.array([[0.0, 0.0]]), t)
    assert acc.mse == pytest.approx((1 + 0 + 0 + 4) / 4)
    assert acc.peak == 2.0


def test_auto_batch_follows_image_size():
    from galtools.denoising import auto_batch

    assert auto_batch((16, 16, 3)) == 64
    assert auto_batch((512, 512, 3)) == 4
    assert auto_batch((4096, 4096, 1)) == 1
    assert auto_batch((512, 512, 3), 7) == 7


def test_cases():
    t = np.zeros((1, 4, 4, 1))
    x = t + np.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(make_case("as given", x, t), x)
    np.testing.assert_array_equal(make_case("noise ×4", x, t), 4 * x)
    half = make_case("half resolution", x, t)
    assert half.shape == x.shape and half[0, 0, 0, 0] == np.mean([0, 1, 4, 5])
    np.testing.assert_array_equal(make_case("both", x, t), 4 * half)


def test_denoise_file_lowers_mse(tmp_path):
    src = tmp_path / "pairs.h5"
    batch = pair_file(src)
    out = tmp_path / "clean.npz"
    info = denoise_file(denoiser(), str(src), str(out), {"tool": "denoise"}, chunk_size=4)
    data, meta = read_galaxies(out)
    assert data["images"].shape == batch["images"].shape
    np.testing.assert_array_equal(data["targets"], batch["targets"])
    np.testing.assert_array_equal(data["ids"], batch["ids"])
    np.testing.assert_array_equal(data["incl"], batch["incl"])
    before = np.mean((batch["images"].astype(np.float64) - batch["targets"]) ** 2)
    after = np.mean((data["images"].astype(np.float64) - batch["targets"]) ** 2)
    assert info["before"]["mse"] == pytest.approx(before, rel=1e-6)
    assert info["after"]["mse"] == pytest.approx(after, rel=1e-5)
    assert after < 0.5 * before
    assert info["after"]["psnr"] > info["before"]["psnr"] + 3
    assert meta["history"][-1] == {"tool": "denoise"}


def test_robustness_table(tmp_path):
    src = tmp_path / "pairs.h5"
    pair_file(src)
    runs = [denoiser("a", alpha=0.0), denoiser("b", alpha=0.5, mix="m.h5")]
    table = robustness(runs, str(src), chunk_size=4)
    assert table["cases"] == list(CASES)
    assert [r["label"] for r in table["runs"]] == ["a", "b (α=0.5)"]
    raw = table["without_denoising"]
    # ×4 noise has 16× the MSE of the noise as given
    assert raw["noise ×4"]["mse"] == pytest.approx(16 * raw["as given"]["mse"], rel=1e-5)
    for case in CASES:
        assert table["runs"][0]["cases"][case]["psnr_gain"] > 0
    text = format_table(table)
    assert "no denoising" in text and "half resolution" in text and "b (α=0.5)" in text


def test_robustness_groups_repeats_by_training_setup(tmp_path):
    """Runs trained alike except for the seed are one group: MSE mean ± std over them."""
    src = tmp_path / "pairs.h5"
    pair_file(src)
    sim = {"data": ["/d/pairs_sim.h5"], "mix": None, "alpha": 0.0}
    mixed = {"data": ["/d/pairs_sim.h5"], "mix": "/d/pairs_gen.h5", "alpha": 0.5}
    runs = [
        denoiser("a0", seed=0, **sim),
        denoiser("a1", seed=1, **sim),
        denoiser("m0", seed=0, **mixed),
    ]
    runs[1].offset = 0.0
    table = robustness(runs, str(src), chunk_size=4)
    groups = table["groups"]
    assert [g["label"] for g in groups] == ["pairs_sim.h5", "pairs_sim.h5 + 0.5·pairs_gen.h5"]
    assert [g["seeds"] for g in groups] == [[0, 1], [0]]
    for case in CASES:
        mses = [table["runs"][j]["cases"][case]["mse"] for j in (0, 1)]
        got = groups[0]["cases"][case]
        assert got["mse_mean"] == pytest.approx(np.mean(mses))
        assert got["mse_std"] == pytest.approx(np.std(mses, ddof=1))
        assert got["n"] == 2
        assert groups[1]["cases"][case]["mse_std"] == 0.0
    text = format_table(table)
    assert "MSE mean ± std over repeats" in text and "pairs_sim.h5 " in text


def test_robustness_needs_targets_and_denoiser(tmp_path):
    src = tmp_path / "plain.h5"
    write_galaxies(src, {"images": blobs(2)}, new_meta(bands="gri"))
    with pytest.raises(GalError, match="needs clean 'targets'"):
        robustness([denoiser()], str(src))
    with pytest.raises(GalError, match="a vgg regression run, not a denoiser"):
        denoise_file(FakeRun("v", "vgg", target="t"), str(src), str(tmp_path / "o.h5"), {})
    two = denoiser()
    two.config = {"bands": ["g", "r"]}
    with pytest.raises(GalError, match="images have 3 bands, run den takes 2"):
        denoise_file(two, str(src), str(tmp_path / "o.h5"), {})
    assert not (tmp_path / "o.h5").exists()


def test_cli_denoise_with_fake_runs(galprep, tmp_path, monkeypatch):
    src = tmp_path / "pairs.h5"
    pair_file(src)
    install(monkeypatch, {"a": denoiser("a", alpha=0.0), "b": denoiser("b", alpha=1.0)})
    out, rep = tmp_path / "clean.h5", tmp_path / "rep.json"
    r = galprep("denoise", "a", src, "-o", out, "--report", rep)
    assert r.code == 0, r.stderr
    assert "PSNR" in r.stderr and out.exists()
    info = json.loads(rep.read_text())
    assert info["after"]["mse"] < info["before"]["mse"]
    table = tmp_path / "rob.json"
    r = galprep("denoise", "a", "b", src, "--robustness", table)
    assert r.code == 0, r.stderr
    assert len(json.loads(table.read_text())["runs"]) == 2
    assert (tmp_path / "rob.png").read_bytes()[:4] == b"\x89PNG"
    assert "half resolution" in r.stderr


@pytest.mark.parametrize(
    "args, words, code",
    [
        (["a", "b", "F", "-o", "x.h5"], "-o takes one RUN", 2),
        (["a", "F"], "give -o OUT", 2),
        (["v", "F", "-o", "x.h5"], "not a denoiser", 1),
        (["a", "F", "-o", "x.h5", "--robustness", "t.json"], "", 0),
    ],
)
def test_cli_denoise_bad_input(galprep, tmp_path, monkeypatch, args, words, code):
    pair_file(tmp_path / "F.h5")
    install(
        monkeypatch, {"a": denoiser("a"), "b": denoiser("b"), "v": FakeRun("v", "vgg", target="t")}
    )
    monkeypatch.chdir(tmp_path)
    r = galprep("denoise", *[a if a != "F" else "F.h5" for a in args])
    assert r.code == code, r.stderr
    assert words in r.stderr
    if code:
        assert r.stderr.count("\n") == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["F.h5"]


# ----------------------------------------------------------------------------------- real runs


def test_real_denoiser_lowers_mse_any_size(galprep, tmp_path):
    from tests.tinyruns import tiny_data, tiny_run

    run, data = tiny_run("resnet-denoiser"), tiny_data()
    rep = tmp_path / "rep.json"
    r = galprep("denoise", run, data, "-o", tmp_path / "d.h5", "--report", rep)
    assert r.code == 0, r.stderr
    info = json.loads(rep.read_text())
    assert info["after"]["mse"] < 0.9 * info["before"]["mse"]
    # fully convolutional: another image size works
    big = tmp_path / "big.h5"
    pair_file(big, n=2, size=12)
    r = galprep("denoise", run, big, "-o", tmp_path / "b.h5", "--robustness", tmp_path / "rob.json")
    assert r.code == 0, r.stderr
    assert read_galaxies(tmp_path / "b.h5")[0]["images"].shape == (2, 12, 12, 3)
    table = json.loads((tmp_path / "rob.json").read_text())
    assert set(table["runs"][0]["cases"]) == set(CASES)
    one_band = tmp_path / "one.h5"
    write_galaxies(one_band, {"images": np.zeros((2, 8, 8, 1), np.float32)}, new_meta())
    r = galprep("denoise", run, one_band, "-o", tmp_path / "o.h5")
    assert r.code == 1 and "images have 1 band, run" in r.stderr


def test_repeats_with_a_mix_group_together_though_their_plans_differ():
    """--mix draws its batches by the seed, so repeats differ in their number of steps (and
    the weight average's decay that follows from it): still one training setup."""
    from types import SimpleNamespace

    from galtools.denoising import group_seeds

    def run(seed, steps):
        training = {"data": ["sim.h5"], "mix": "gen.h5", "alpha": 0.5, "seed": seed,
                    "steps": steps, "ema_used": 1 - 10 / steps}  # fmt: skip
        return SimpleNamespace(config={"training": training, "model_config": {}},
                               model_name="resnet-denoiser", path=f"r{seed}")  # fmt: skip

    rows = [{"run": f"r{s}", "cases": {"as given": {"mse": m, "psnr": 1.0}}} for s, m in
            ((0, 2.0), (1, 4.0))]  # fmt: skip
    [group] = group_seeds([run(0, 84), run(1, 94)], rows)
    assert group["label"] == "sim.h5 + 0.5·gen.h5" and group["seeds"] == [0, 1]
    assert group["cases"]["as given"]["mse_mean"] == 3.0
