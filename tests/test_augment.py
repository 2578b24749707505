"""galprep augment: ops, uniform label bins, copies, batches, shards."""

import os

import numpy as np
import pytest

from galtools.arrayfile import read_galaxies, write_galaxies
from galtools.augment import Augmenter, Op, parse_bins, parse_op, uniform_plan
from galtools.meta import new_meta


def source(path, n=12, shape=(8, 8, 2), dtype="float32", targets=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 200, size=(n, *shape)).astype(dtype)
    batch = {
        "images": images,
        "ids": np.array([f"g{i}" for i in range(n)]),
        "inclination": np.linspace(45, 90, n),
        "row": np.arange(n),
    }
    if targets:
        batch["targets"] = (images.astype("f4") * 0.5).astype(dtype)
    write_galaxies(path, batch, new_meta(bands=["g", "r"][: shape[-1]]))
    return path


def test_flips_move_images_targets_and_labels_together(galprep, tmp_path):
    src = source(tmp_path / "s.h5")
    out = tmp_path / "a.h5"
    r = galprep("augment", src, "-o", out, "--hflip", "1", "--vflip", "1", "--seed", "2")
    assert r.code == 0, r.stderr
    a, meta = read_galaxies(out)
    s, _ = read_galaxies(src)
    rows = a["row"]
    assert sorted(rows) == list(range(12)) and list(rows) != list(range(12))  # shuffled
    assert np.array_equal(a["images"], s["images"][rows][:, ::-1, ::-1])
    assert np.array_equal(a["targets"], s["targets"][rows][:, ::-1, ::-1])
    assert list(a["ids"]) == [f"g{i}" for i in rows]
    assert np.array_equal(a["inclination"], s["inclination"][rows])
    entry = meta["history"][-1]
    assert entry["tool"] == "augment" and entry["augment"]["ops"] == ["hflip@1", "vflip@1"]


def test_rotate_90_matches_rot90_and_scale_enlarges():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 9, 9, 2)).astype("f4")
    before = x.copy()
    out, t = Augmenter([Op("rotate", 90, 90)])(x, x * 2, np.random.default_rng(1))
    turned = np.rot90(x, 1, axes=(1, 2))
    flipped = np.rot90(x, -1, axes=(1, 2))
    assert np.allclose(out, turned, atol=1e-5) or np.allclose(out, flipped, atol=1e-5)
    assert np.allclose(t, out * 2, atol=1e-5)
    assert np.array_equal(x, before)  # inputs are never modified
    square = np.zeros((1, 11, 11, 1), "f4")
    square[0, 4:7, 4:7] = 1
    big, _ = Augmenter([Op("scale", 2, 2)])(square, None, np.random.default_rng(0))
    assert big.sum() > 3 * square.sum() and big[0, 5, 5, 0] == 1
    moved, _ = Augmenter([Op("shift", 2, 2)])(square, None, np.random.default_rng(0))
    assert np.allclose(moved[0, 6:9, 6:9, 0], 1) and moved[0, 5, 5, 0] == 0


def test_photometric_ops_on_8bit():
    x = np.full((4, 6, 6, 3), 100, np.uint8)
    x[..., 0] = 40
    rng = np.random.default_rng(0)
    out, _ = Augmenter([Op("brightness", 2, 2)])(x, None, rng)
    assert out.dtype == np.uint8 and out[0, 0, 0].tolist() == [80, 200, 200]
    out, _ = Augmenter([Op("offset", 200, 200)])(x, None, rng)
    assert out[0, 0, 0].tolist() == [240, 255, 255]  # clipped to 8 bits
    out, _ = Augmenter([Op("invert", p=1)])(x, None, rng)
    assert out[0, 0, 0].tolist() == [215, 155, 155]
    out, _ = Augmenter([Op("gamma", 2, 2)])(x, None, rng)
    assert out[0, 0, 0, 1] == round(255 * (100 / 255) ** 2)
    out, _ = Augmenter([Op("greyscale", 1, 1)])(x, None, rng)
    assert out[0, 0, 0].tolist() == [80, 80, 80]
    out, _ = Augmenter([Op("greyscale", 0.5, 0.5, p=1)])(x, None, rng)
    assert out[0, 0, 0].tolist() == [60, 90, 90]


def test_noise_blur_and_probabilities():
    x = np.zeros((400, 16, 16, 1), "f4")
    rng = np.random.default_rng(3)
    out, _ = Augmenter([Op("noise", 2, 2)])(x, None, rng)
    assert abs(out.std() - 2) < 0.05
    half, _ = Augmenter([Op("noise", 1, 1, p=0.5)])(x, None, rng)
    touched = (half != 0).any(axis=(1, 2, 3)).mean()
    assert 0.4 < touched < 0.6
    dot = np.zeros((1, 15, 15, 1), "f4")
    dot[0, 7, 7] = 1
    blurred, _ = Augmenter([Op("blur", 1, 1)])(dot, None, rng)
    assert np.isclose(blurred.sum(), 1, atol=1e-3) and blurred[0, 7, 7, 0] < 0.2
    assert np.isclose(blurred[0, 7, 8, 0], blurred[0, 8, 7, 0])


def test_uniform_bins_hold_exactly_n(galprep, tmp_path):
    src = source(tmp_path / "s.h5", n=20)
    out = tmp_path / "u.h5"
    r = galprep(
        "augment",
        src,
        "-o",
        out,
        "--uniform",
        "inclination",
        "--bins",
        "45:90:15",
        "--per-bin",
        "9",
        "--rotate",
        "0:360",
        "--noise",
        "0:2@0.5",
        "--seed",
        "1",
    )
    assert r.code == 0, r.stderr
    a, meta = read_galaxies(out)
    counts, _ = np.histogram(a["inclination"], bins=[45, 60, 75, 90.0001])
    assert counts.tolist() == [9, 9, 9] and a["images"].shape == (27, 8, 8, 2)
    assert meta["history"][-1]["augment"]["per_bin"] == 9
    again = tmp_path / "u2.h5"
    assert (
        galprep(
            "augment",
            src,
            "-o",
            again,
            "--uniform",
            "inclination",
            "--bins",
            "45:90:15",
            "--per-bin",
            "9",
            "--rotate",
            "0:360",
            "--noise",
            "0:2@0.5",
            "--seed",
            "1",
        ).code
        == 0
    )
    b, _ = read_galaxies(again)
    assert np.array_equal(a["images"], b["images"])  # seeded


def test_uniform_plan_small_and_large_bins():
    values = np.array([1, 1, 1, 1, 1, 15, 25, 30])
    plan, counts, outside = uniform_plan(values, parse_bins("0:30:10"), 3, np.random.default_rng(0))
    assert counts == [5, 1, 2] and outside == 0 and len(plan) == 9
    assert len(set(plan[:3])) == 3 and set(plan[3:6]) == {5} and set(plan[6:]) == {6, 7}
    assert parse_bins("0,30,60,90").tolist() == [0, 30, 60, 90]
    assert parse_bins("45:90:5").tolist() == list(range(45, 91, 5))


def test_empty_bin_and_unknown_column(galprep, tmp_path):
    src = source(tmp_path / "s.h5")
    out = tmp_path / "u.h5"
    r = galprep(
        "augment", src, "-o", out, "--uniform", "inclination", "--bins", "0:90:15", "--per-bin", "4"
    )
    assert r.code == 1 and "bin [0, 15) of 'inclination' is empty" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    r = galprep(
        "augment",
        src,
        "-o",
        out,
        "--uniform",
        "inclination",
        "--bins",
        "0:90:15",
        "--per-bin",
        "4",
        "--allow-empty-bins",
    )
    assert r.code == 0
    assert read_galaxies(out)[0]["images"].shape[0] == 12  # three filled bins
    r = galprep(
        "augment",
        src,
        "-o",
        tmp_path / "x.h5",
        "--uniform",
        "incl",
        "--bins",
        "0:90:15",
        "--per-bin",
        "4",
    )
    assert r.code == 1 and "no label column 'incl'" in r.stderr and "s.h5" in r.stderr
    r = galprep(
        "augment",
        src,
        "-o",
        tmp_path / "x.h5",
        "--uniform",
        "inclination",
        "--bins",
        "90:0:5",
        "--per-bin",
        "4",
    )
    assert r.code == 2 and "--bins" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_copies_batches_and_shards(galprep, tmp_path):
    src = source(tmp_path / "s.h5", n=10, dtype="uint8", targets=False)
    out = tmp_path / "batches"
    r = galprep(
        "augment",
        src,
        "-o",
        out,
        "--copies",
        "3",
        "--batches",
        "4",
        "--rot90",
        "1",
        "--shard",
        "0/2",
    )
    assert r.code == 0, r.stderr
    assert sorted(os.listdir(out)) == ["batch_000.h5", "batch_001.h5"]
    r = galprep(
        "augment",
        src,
        "-o",
        out,
        "--copies",
        "3",
        "--batches",
        "4",
        "--rot90",
        "1",
        "--shard",
        "1/2",
    )
    assert r.code == 0
    r = galprep("augment", src, "-o", out, "--copies", "3", "--batches", "4", "--rot90", "1")
    assert r.code == 0 and r.stderr.count("exists, skipped") == 4
    rows = []
    for k in range(4):
        batch, _ = read_galaxies(out / f"batch_{k:03d}.h5")
        assert batch["images"].dtype == np.uint8 and len(batch["row"]) in (7, 8)
        rows.extend(batch["row"].tolist())
    assert sorted(rows) == sorted(list(range(10)) * 3)
    one = tmp_path / "one.h5"
    assert galprep("augment", src, "-o", one, "--copies", "2", "--shard", "1/3").code == 0
    assert read_galaxies(tmp_path / "one.shard001-of-003.h5")[0]["images"].shape[0] == 7


@pytest.mark.parametrize(
    "name, text",
    [
        ("rotate", "10:5"),
        ("scale", "0:2"),
        ("noise", "-1:1"),
        ("hflip", "2"),
        ("gamma", "1:2@1.5"),
        ("blur", "abc"),
    ],
)
def test_bad_op_specs(name, text, galprep, tmp_path):
    with pytest.raises(ValueError):
        parse_op(name, text)
    src = source(tmp_path / "s.h5")
    r = galprep("augment", src, "-o", tmp_path / "o.h5", f"--{name}", text)
    assert r.code == 2 and f"--{name}" in r.stderr and not (tmp_path / "o.h5").exists()


def test_op_spec_forms():
    assert parse_op("rotate", "30") == Op("rotate", -30, 30, 1)
    assert parse_op("scale", "0.9:1.1@0.5") == Op("scale", 0.9, 1.1, 0.5)
    assert parse_op("greyscale", "0.2") == Op("greyscale", 1, 1, 0.2)
    assert parse_op("hflip", "0.5") == Op("hflip", p=0.5)


@pytest.mark.parametrize(
    "fill, mode",
    [
        ("reflect", "reflect"),
        ("nearest", "nearest"),
        ("wrap", "grid-wrap"),
        ("constant", "grid-constant"),
    ],
)
def test_resampling_matches_scipy(fill, mode):
    from scipy import ndimage

    from galtools.augment import _affine_coords, _resample, affine_map

    rng = np.random.default_rng(4)
    x = rng.uniform(size=(3, 10, 12, 2)).astype("f4")
    theta, zoom = rng.uniform(0, 6.3, 3), rng.uniform(0.6, 1.4, 3)
    dy, dx = rng.uniform(-5, 5, 3), rng.uniform(-5, 5, 3)
    coords = _affine_coords(10, 12, *affine_map(theta, zoom, dy, dx))
    out = _resample(x, coords.copy(), fill)
    for k in range(3):
        for c in range(2):
            ref = ndimage.map_coordinates(x[k, ..., c], coords[:, k], order=1, mode=mode)
            assert np.allclose(out[k, ..., c], ref, atol=1e-4), (fill, k, c)


def test_jobs_do_not_change_the_result(galprep, tmp_path):
    src = source(tmp_path / "s.h5", n=15)
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.h5"
        r = galprep(
            "augment",
            src,
            "-o",
            out,
            "--copies",
            "2",
            "--rotate",
            "0:360",
            "--noise",
            "0:1",
            "--chunk-size",
            "4",
            "-j",
            jobs,
            "--seed",
            "5",
        )
        assert r.code == 0, r.stderr
        outs.append(read_galaxies(out)[0])
    assert np.array_equal(outs[0]["images"], outs[1]["images"])
    assert np.array_equal(outs[0]["targets"], outs[1]["targets"])
    assert np.array_equal(outs[0]["ids"], outs[1]["ids"])


@pytest.mark.parametrize("shape", [(9, 9, 2), (8, 11, 3)])
def test_flips_and_quarter_turns_folded_into_the_resampling(shape):
    """Images that are resampled get their flips/rot90 through the coordinate map; the result
    equals flipping and turning the pixels first (the plain-copy path)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, *shape)).astype("f4")
    flips = [Op("hflip", p=0.5), Op("vflip", p=0.5), Op("rot90", p=0.7)]
    plain, tp = Augmenter(flips)(x, x + 1, np.random.default_rng(7))
    folded, tf = Augmenter(flips + [Op("rotate", 0, 0)])(x, x + 1, np.random.default_rng(7))
    assert not np.allclose(plain, x)
    assert np.allclose(folded, plain, atol=1e-6) and np.allclose(tf, tp, atol=1e-6)
    turned, _ = Augmenter([Op("rot90", p=1), Op("rotate", 0, 0)])(x, None, np.random.default_rng(3))
    ks = (1, 2, 3) if shape[0] == shape[1] else (2,)
    for k in range(40):
        assert any(np.allclose(turned[k], np.rot90(x[k], kk)) for kk in ks)


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.5, 6.0])
def test_blur_matches_scipy_gaussian_filter(sigma):
    from scipy import ndimage

    from galtools.augment import gaussian_blur

    x = np.random.default_rng(1).uniform(size=(3, 7, 10, 2)).astype("f4")
    ref = ndimage.gaussian_filter(x, (0, sigma, sigma, 0), mode="reflect", truncate=3.0)
    assert np.allclose(gaussian_blur(x, sigma), ref, atol=1e-5)


def test_gaussian_noise_is_standard_normal_and_seeded():
    from galtools.augment import gaussian_noise

    z = gaussian_noise(np.random.default_rng(2), (301, 99, 7)).astype("f8")
    assert z.shape == (301, 99, 7) and np.isfinite(z).all()
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    assert abs(((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3) < 0.03  # kurtosis
    assert abs((np.abs(z) < 1).mean() - 0.6827) < 0.003
    assert np.array_equal(z, gaussian_noise(np.random.default_rng(2), (301, 99, 7)))


def _stamps(seed, n):
    rng = np.random.default_rng(seed)
    return {
        "images": rng.random((n, 32, 32, 3), dtype=np.float32),
        "n": n,
        "rows": seed * 10**6 + np.arange(n * 1000),
        "name": f"chunk{seed}",
    }


def test_ordered_map_shared_memory_results():
    """The named big arrays come back through shared slots (views, valid until the next
    result), everything else by pipe (kept safely); order and values are those of running
    the tasks here, and a result too big for its slot also comes by pipe."""
    from galtools.parallel import ordered_map

    tasks = [(seed, n) for seed, n in enumerate([40, 3, 40, 90, 17, 40, 40, 2])]
    expected = [_stamps(*t) for t in tasks]
    images, kept = [], []
    for result in ordered_map(
        _stamps,
        tasks,
        jobs=2,
        window=3,
        shared_bytes=40 * 32 * 32 * 3 * 4 + 2**20,
        shared=("images",),
    ):
        images.append(result["images"].copy())
        kept.append(result)  # rows (320 kB, would fit the slot) must stay valid
    assert len(kept) == len(expected)
    assert np.array_equal(kept[-1]["images"], expected[-1]["images"])  # alive after the map
    for got, img, want in zip(kept, images, expected):
        assert got["name"] == want["name"] and got["n"] == want["n"]
        assert np.array_equal(img, want["images"]) and np.array_equal(got["rows"], want["rows"])


def test_gamma_on_float_stamps_matches_the_formula():
    """v**g on the stamp's own min..max range (computed as 2**(g log2 v), exact zeros kept)."""
    x = np.random.default_rng(5).normal(3, 2, size=(6, 7, 7, 2)).astype("f4")
    out, _ = Augmenter([Op("gamma", 0.5, 0.5)])(x, None, np.random.default_rng(0))
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    ref = lo + (hi - lo) * ((x - lo) / (hi - lo)) ** 0.5
    assert np.allclose(out, ref, rtol=1e-5, atol=1e-5) and np.isfinite(out).all()
    assert np.allclose(out.min(axis=(1, 2, 3)), lo.ravel())  # the minimum stays put
