"""The galaxy array file: round trips, streaming, validation, atomic writes."""

import json
import os
import zipfile

import h5py
import numpy as np
import pytest

from galtools.arrayfile import (
    GalaxyWriter,
    open_galaxies,
    read_galaxies,
    write_galaxies,
)
from galtools.errors import GalError, InputError
from galtools.meta import new_meta
from tests.conftest import make_batch


@pytest.mark.parametrize("ext", ["h5", "npz"])
def test_round_trip_chunked(tmp_path, ext):
    batch = make_batch(n=37, shape=(6, 5, 2), targets=True, labels=("inclination", "fon"))
    batch["kind"] = np.arange(37) % 3
    meta = new_meta(bands=["g", "r"], pixel_scale=0.396, classes={"kind": ["a", "b", "c"]})
    path = tmp_path / f"x.{ext}"
    with GalaxyWriter(path, meta) as w:
        for s in range(0, 37, 10):
            w.append({k: v[s : s + 10] for k, v in batch.items()})
    with open_galaxies(path) as r:
        assert r.n == 37 and r.image_shape == (6, 5, 2) and r.dtype == np.float32
        assert r.bands == ["g", "r"] and r.meta["pixel_scale"] == 0.396
        assert r.classes == {"kind": ["a", "b", "c"]}
        assert sorted(r.label_names) == ["fon", "inclination", "kind"]
        assert r.has_targets and r.has_ids
        got = {}
        for _offset, chunk in r.chunks(8):
            assert len(chunk["images"]) <= 8
            for k, v in chunk.items():
                got.setdefault(k, []).append(v)
        for k, v in batch.items():
            np.testing.assert_array_equal(np.concatenate(got[k]), v)
        idx = [30, 2, 2, 17]
        t = r.take(idx)
        np.testing.assert_array_equal(t["images"], batch["images"][idx])
        np.testing.assert_array_equal(t["ids"], batch["ids"][idx])
        part = r.read(5, 9, fields=["targets", "kind"])
        assert set(part) == {"targets", "kind"}
        np.testing.assert_array_equal(part["targets"], batch["targets"][5:9])


def test_three_dimensional_images_are_one_band(tmp_path):
    np.savez(tmp_path / "grey.npz", images=np.ones((4, 5, 5), np.uint8), score=np.arange(4.0))
    with open_galaxies(tmp_path / "grey.npz") as r:
        assert r.image_shape == (5, 5, 1)
        assert r.read()["images"].shape == (4, 5, 5, 1)
        assert r.bands == ["0"]


def test_research_npz_without_meta(tmp_path):
    # plain np.savez from a research script: images + labels, no metadata
    images = np.random.default_rng(1).integers(0, 255, (6, 4, 4, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "r.npz", images=images, inc=np.linspace(40, 90, 6))
    batch, meta = read_galaxies(tmp_path / "r.npz")
    np.testing.assert_array_equal(batch["images"], images)
    assert meta["history"] == [] and meta["format_version"] == 1


def test_string_and_int_columns_survive(tmp_path):
    for ext in ("h5", "npz"):
        path = tmp_path / f"s.{ext}"
        write_galaxies(
            path,
            {
                "images": np.zeros((3, 2, 2, 1)),
                "ids": np.array([7, 8, 9]),
                "name": np.array(["NGC 1", "M 31", "ü"]),
            },
        )
        batch, _ = read_galaxies(path)
        assert batch["ids"].tolist() == [7, 8, 9]
        assert batch["name"].tolist() == ["NGC 1", "M 31", "ü"]


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v


@pytest.mark.parametrize(
    "maker,problem",
    [
        (lambda p: _h5(p, labels=np.zeros(3)), "no 'images'"),
        (
            lambda p: _h5(p, images=np.zeros((3, 4, 4, 1)), inc=np.zeros(2)),
            "column 'inc' has length 2, expected N=3",
        ),
        (lambda p: _h5(p, images=np.zeros((3, 4))), "images must be N×H×W×C"),
        (
            lambda p: _h5(p, images=np.zeros((3, 4, 4, 1)), targets=np.zeros((3, 4, 4, 2))),
            "targets shape",
        ),
    ],
)
def test_invalid_h5_files(tmp_path, maker, problem):
    path = tmp_path / "bad.h5"
    maker(path)
    with pytest.raises(InputError) as err:
        open_galaxies(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_invalid_npz_files(tmp_path):
    np.savez(tmp_path / "noimg.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="no 'images'"):
        open_galaxies(tmp_path / "noimg.npz")
    np.savez(
        tmp_path / "obj.npz",
        images=np.zeros((2, 2, 2, 1)),
        ids=np.array([{"a": 1}, None], dtype=object),
    )
    with pytest.raises(InputError, match="Python objects"):
        open_galaxies(tmp_path / "obj.npz")
    good = tmp_path / "good.npz"
    write_galaxies(good, make_batch(n=40, shape=(16, 16, 3)))
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.npz"):
        open_galaxies(tmp_path / "trunc.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        open_galaxies(tmp_path / "empty.npz")
    with pytest.raises(InputError, match="unknown container"):
        open_galaxies(tmp_path / "data.fits")


def test_corrupt_member_is_reported_on_read(tmp_path):
    path = tmp_path / "c.npz"
    write_galaxies(path, make_batch(n=20, shape=(8, 8, 1)), compression="gzip")
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("images.npy")
    mid = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[mid : mid + 40] = bytes(40)
    (tmp_path / "c2.npz").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="c2.npz"):
        with open_galaxies(tmp_path / "c2.npz") as r:
            r.read()


def test_writer_refuses_existing_and_inputs(tmp_path):
    path = tmp_path / "o.h5"
    write_galaxies(path, make_batch(n=2))
    with pytest.raises(GalError, match="output exists"):
        write_galaxies(path, make_batch(n=3))
    assert read_galaxies(path)[0]["images"].shape[0] == 2
    write_galaxies(path, make_batch(n=3), overwrite=True)
    assert read_galaxies(path)[0]["images"].shape[0] == 3
    with pytest.raises(GalError, match="also an input"):
        write_galaxies(path, make_batch(n=3), overwrite=True, inputs=[path])


@pytest.mark.parametrize("ext", ["h5", "npz"])
def test_failed_write_leaves_no_file(tmp_path, ext):
    path = tmp_path / f"out.{ext}"
    with pytest.raises(RuntimeError):
        with GalaxyWriter(path) as w:
            w.append(make_batch(n=4))
            raise RuntimeError("crash in the middle")
    assert os.listdir(tmp_path) == []


def test_chunks_must_agree(tmp_path):
    with pytest.raises(ValueError, match="differ"):
        with GalaxyWriter(tmp_path / "x.h5") as w:
            w.append(make_batch(n=4))
            w.append(make_batch(n=4, labels=("other",)))
    with pytest.raises(ValueError, match="metadata names 3 bands"):
        write_galaxies(tmp_path / "y.h5", make_batch(n=2, shape=(4, 4, 1)), new_meta(bands="gri"))
    assert os.listdir(tmp_path) == []


def test_h5_is_chunked_and_meta_is_json_attribute(tmp_path):
    path = tmp_path / "m.h5"
    write_galaxies(
        path, make_batch(n=10, shape=(16, 16, 3)), new_meta(bands="gri"), compression="gzip"
    )
    with h5py.File(path) as f:
        assert f["images"].chunks[1:] == (16, 16, 3) and f["images"].compression == "gzip"
        meta = json.loads(f.attrs["meta"])
    assert meta["bands"] == ["g", "r", "i"] and meta["format"] == "galtools-array"


def test_npz_reads_with_plain_numpy(tmp_path):
    """npz outputs are ordinary npz files that research code can np.load."""
    path = tmp_path / "plain.npz"
    batch = make_batch(n=5)
    write_galaxies(path, batch, new_meta(bands="gri"))
    with np.load(path, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["images"], batch["images"])
        assert json.loads(str(z["meta"]))["bands"] == ["g", "r", "i"]


def test_npz_writer_memory_does_not_hold_images(tmp_path):
    """The npz writer spools images to disk: appending does not grow Python memory."""
    import tracemalloc

    chunk = make_batch(n=64, shape=(64, 64, 3), ids=False, labels=())
    tracemalloc.start()
    with GalaxyWriter(tmp_path / "big.npz") as w:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(20):  # 20 × 3 MB of images
            w.append(chunk)
        grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 2 * 2**20
    with open_galaxies(tmp_path / "big.npz") as r:
        assert r.n == 64 * 20
