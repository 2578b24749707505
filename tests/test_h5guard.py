"""HDF5 files that point outside themselves are refused in one line by every reader, and no
byte of the other file reaches an output (issue 21: external storage, virtual datasets,
external links, on images and on label columns)."""

import h5py
import numpy as np
import pytest

SECRET = b"root:x:0:0:secret line of someone's own file\n" * 64


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "private.txt"
    path.write_bytes(SECRET)
    return path


def _plain(f, n=4, images=True):
    if images:
        f.create_dataset("images", data=np.zeros((n, 4, 4, 1), "f4"))
    f.create_dataset("inclination", data=np.linspace(45, 90, n))


def external_images(path, secret):
    with h5py.File(path, "w") as f:
        f.create_dataset("images", shape=(4, 4, 4, 1), dtype="u1",
                         external=[(str(secret), 0, 64)])  # fmt: skip
        f.create_dataset("inclination", data=np.linspace(45, 90, 4))


def external_column(path, secret):
    with h5py.File(path, "w") as f:
        _plain(f)
        f.create_dataset("ids", shape=(4,), dtype="S16", external=[(str(secret), 0, 64)])


def virtual_images(path, secret):
    other = path.parent / "other.h5"
    with h5py.File(other, "w") as g:
        g.create_dataset("data", data=np.frombuffer(SECRET[:64], "u1").reshape(4, 4, 4, 1))
    layout = h5py.VirtualLayout(shape=(4, 4, 4, 1), dtype="u1")
    layout[...] = h5py.VirtualSource(str(other), "data", shape=(4, 4, 4, 1))
    with h5py.File(path, "w") as f:
        f.create_virtual_dataset("images", layout, fillvalue=0)
        f.create_dataset("inclination", data=np.linspace(45, 90, 4))


def linked_column(path, secret):
    other = path.parent / "other.h5"
    with h5py.File(other, "w") as g:
        g.create_dataset("z", data=np.arange(4.0))
    with h5py.File(path, "w") as f:
        _plain(f)
        f["redshift"] = h5py.ExternalLink(str(other), "z")


MAKERS = {
    "external": (external_images, "keeps its data in other files"),
    "external column": (external_column, "'ids' keeps its data in other files"),
    "virtual": (virtual_images, "is a virtual dataset drawing on"),
    "external link": (linked_column, "'redshift' is a link into another file"),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("tool", ["info", "merge", "show"])
def test_files_drawing_on_other_files_are_refused(kind, tool, tmp_path, secret, galprep):
    make, message = MAKERS[kind]
    bad = tmp_path / "bad.h5"
    make(bad, secret)
    out = tmp_path / ("out.png" if tool == "show" else "out.npz")
    args = {"info": [bad], "merge": [bad, "-o", out], "show": [bad, "-o", out]}[tool]
    r = galprep(tool, *args)
    assert r.code == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(bad) in r.stderr and message in r.stderr and "refused" in r.stderr
    assert not out.exists()


def test_galaxy10_import_refuses_external_storage(tmp_path, secret, galprep):
    bad = tmp_path / "Galaxy10_DECals.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("images", shape=(1, 4, 4, 3), dtype="u1",
                         external=[(str(secret), 0, 48)])  # fmt: skip
        f.create_dataset("ans", data=np.zeros(1, "u1"))
    r = galprep("import", "galaxy10", bad, "-o", tmp_path / "g.h5")
    assert r.code == 1 and "keeps its data in other files" in r.stderr, r.stderr
    assert not (tmp_path / "g.h5").exists()


def test_soft_links_and_groups_inside_the_file_are_fine(tmp_path, galprep):
    path = tmp_path / "ok.h5"
    with h5py.File(path, "w") as f:
        _plain(f)
        f["angle"] = h5py.SoftLink("/inclination")
        f.create_group("extra").create_dataset("note", data=np.arange(3))
    r = galprep("info", path, "--no-scan")
    assert r.code == 0, r.stderr
