"""Direct (pread) row reads of HDF5 stamps agree with h5py in every storage layout."""

import h5py
import numpy as np
import pytest

from galtools.arrayfile import open_galaxies
from galtools.h5direct import RowStore


def _file(path, layout, dtype="<f4", shape=(23, 5, 6, 3)):
    rng = np.random.default_rng(0)
    data = (rng.normal(size=shape) * 100).astype(dtype)
    with h5py.File(path, "w") as f:
        kw = {
            "contiguous": {},
            "chunked": {"chunks": (4,) + shape[1:]},
            "gzip": {"chunks": (4,) + shape[1:], "compression": "gzip"},
            "split-rows": {"chunks": (4, 5, 3, 3)},
        }[layout]
        f.create_dataset("images", data=data, **kw)
    return data


@pytest.mark.parametrize(
    "layout, direct",
    [("contiguous", True), ("chunked", True), ("gzip", False), ("split-rows", False)],
)
@pytest.mark.parametrize("dtype", ["<f4", ">f4", "u1", "<i2"])
def test_reads_match_h5py(tmp_path, layout, direct, dtype):
    path = tmp_path / "s.h5"
    data = _file(path, layout, dtype)
    with open_galaxies(path) as reader:
        _, store = reader._dataset("images")
        assert (store is not None) == direct
        for start, stop in [(0, 23), (3, 9), (7, 8), (20, 23), (4, 4)]:
            assert np.array_equal(reader.read(start, stop)["images"], data[start:stop])
        rows = np.array([22, 0, 5, 5, 6, 7, 13, 3, 22, 12])
        got = reader.take(rows)["images"]
        assert got.dtype == data.dtype and np.array_equal(got, data[rows])


def test_three_dimensional_and_unallocated_chunks(tmp_path):
    path = tmp_path / "s.h5"
    data = np.arange(10 * 4 * 4, dtype="f4").reshape(10, 4, 4)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "images", shape=(10, 4, 4), dtype="f4", chunks=(3, 4, 4), fillvalue=-1
        )
        ds[0:3] = data[0:3]
        ds[9] = data[9]  # chunks of rows 3-5 and 6-8 are never written
    with open_galaxies(path) as reader:
        assert reader._dataset("images")[1] is not None
        got = reader.take([9, 4, 1, 7])["images"]
        assert got.shape == (4, 4, 4, 1)
        assert np.array_equal(got[0, ..., 0], data[9]) and np.array_equal(got[2, ..., 0], data[1])
        assert (got[1] == -1).all() and (got[3] == -1).all()
        with h5py.File(path) as f:
            assert np.array_equal(reader.read(0, 10)["images"][..., 0], f["images"][...])


def test_truncated_file_is_a_clear_error(tmp_path, galprep):
    path = tmp_path / "s.h5"
    _file(path, "contiguous")
    with open_galaxies(path) as reader:
        offset = reader._dataset("images")[1].base
    with open(path, "r+b") as fh:
        fh.truncate(offset + 100)
    r = galprep("show", path, "-o", tmp_path / "m.png")
    assert r.code == 1 and str(path) in r.stderr and "Traceback" not in r.stderr


def test_store_refuses_non_numeric(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        ds = f.create_dataset("ids", data=np.array([b"a", b"b"]))
        assert RowStore.open(ds, 0) is None


@pytest.mark.parametrize("chunks", [None, (3, 4, 4, 2)])
def test_file_with_a_user_block(tmp_path, chunks):
    """Byte offsets count from the start of the file, user block included."""
    x = np.random.default_rng(0).random((10, 4, 4, 2)).astype("f4")
    path = tmp_path / "ub.h5"
    with h5py.File(path, "w", userblock_size=1024) as f:
        f.create_dataset("images", data=x, chunks=chunks)
    with open_galaxies(path) as reader:
        assert reader._dataset("images")[1] is not None
        assert np.array_equal(reader.take([5, 1, 9, 1])["images"], x[[5, 1, 9, 1]])
