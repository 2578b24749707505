"""galprep import: Galaxy10 h5, Kaggle-style PNG folders, npy arrays, FITS folders."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from galtools.arrayfile import open_galaxies, read_galaxies
from galtools.importers import Importer, Option
from galtools.importers.galaxy10 import DECALS_CLASSES, SDSS_CLASSES
from galtools.options import Shard
from galtools.registry import entries


def _galaxy10(path, n=10, size=256, extra=True):
    """A Galaxy10 DECals file in the published layout (smaller images)."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f["images"] = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        f["ans"] = (np.arange(n) % 10).astype(np.uint8)
        if extra:
            f["ra"] = np.linspace(10, 20, n)
            f["dec"] = np.linspace(-5, 5, n)
            f["redshift"] = np.linspace(0.01, 0.2, n)
            f["pxscale"] = np.full(n, 0.262)
    return path


def test_every_importer_is_registered_and_follows_the_protocol():
    found = entries("galtools.importers")
    assert {"galaxy10", "kaggle-png", "npy", "fits-folder"} <= set(found)
    for name in ("galaxy10", "kaggle-png", "npy", "fits-folder"):
        imp = found[name].load()
        assert isinstance(imp, Importer) and imp.name == name and imp.summary
        assert all(isinstance(o, Option) for o in imp.options)


def test_import_help_lists_formats_without_heavy_imports():
    script = (
        "import sys, json\nfrom galtools.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'h5py', 'astropy', "
        "'PIL', 'numpy', 'scipy', 'galsim', 'photutils', 'skimage'})\n"
        "print(json.dumps([code, heavy]), file=sys.stderr)\n"
    )
    for args in (["import", "--help"], ["import", "galaxy10", "--help"]):
        r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
        code, heavy = json.loads(r.stderr.strip().splitlines()[-1])
        assert code == 0 and heavy == [], (args, heavy)
        if args[1] == "--help":
            for name in ("galaxy10", "kaggle-png", "npy", "fits-folder"):
                assert name in r.stdout


def test_unknown_format_lists_the_known(galprep, tmp_path):
    r = galprep("import", "nosuch", "x", "-o", tmp_path / "o.h5")
    assert r.code == 2
    assert "unknown format 'nosuch'" in r.stderr and "galaxy10" in r.stderr


# ----------------------------------------------------------------------------------- galaxy10


def test_galaxy10_keeps_images_labels_and_class_names(galprep, tmp_path):
    src = _galaxy10(tmp_path / "Galaxy10_DECals.h5")
    out = tmp_path / "g10.h5"
    r = galprep("import", "galaxy10", src, "-o", out, "--chunk-size", "3")
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    with h5py.File(src, "r") as f:
        np.testing.assert_array_equal(batch["images"], f["images"][...])
        np.testing.assert_array_equal(batch["label"], f["ans"][...])
        np.testing.assert_allclose(batch["redshift"], f["redshift"][...])
        np.testing.assert_allclose(batch["ra"], f["ra"][...])
    assert batch["images"].dtype == np.uint8
    assert meta["classes"]["label"] == DECALS_CLASSES
    assert meta["bands"] == ["g", "r", "z"] and meta["pixel_scale"] == pytest.approx(0.262)
    assert meta["history"][-1]["tool"] == "import"
    assert meta["history"][-1]["options"]["format"] == "galaxy10"
    assert list(batch["ids"][:2]) == ["galaxy10-000000", "galaxy10-000001"]


def test_galaxy10_streams_in_chunks(tmp_path):
    from galtools.importers.galaxy10 import importer

    src = _galaxy10(tmp_path / "g.h5", n=10, extra=False)
    gen = importer.read(str(src), chunk_size=4)
    sizes = []
    while True:
        try:
            sizes.append(len(next(gen)["images"]))
        except StopIteration as stop:
            meta = stop.value
            break
    assert sizes == [4, 4, 2]
    assert "redshift" not in meta and meta["classes"]["label"][0] == "Disturbed"


def test_galaxy10_sdss_layout_and_shards(galprep, tmp_path):
    src = _galaxy10(tmp_path / "Galaxy10.h5", n=9, size=69, extra=False)
    for k in range(3):
        r = galprep("import", "galaxy10", src, "-o", tmp_path / "s.h5", "--shard", f"{k}/3")
        assert r.code == 0, r.stderr
    parts = [read_galaxies(tmp_path / f"s.shard{k:03d}-of-003.h5") for k in range(3)]
    labels = np.concatenate([b["label"] for b, _ in parts])
    np.testing.assert_array_equal(labels, np.arange(9) % 10)
    assert parts[0][1]["classes"]["label"] == SDSS_CLASSES
    assert parts[0][1]["bands"] == ["g", "r", "i"]
    r = galprep("import", "galaxy10", src, "-o", tmp_path / "s.h5", "--shard", "1/3")
    assert r.code == 0 and "exists, skipped" in r.stderr


def test_galaxy10_not_hdf5_is_one_line_error(galprep, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    r = galprep("import", "galaxy10", bad, "-o", tmp_path / "o.h5")
    assert r.code == 1 and "not a readable HDF5 file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.h5").exists()


# --------------------------------------------------------------------------------- kaggle-png


def _kaggle(folder, ids, size=12, csv=True, value=lambda i: f"{0.1 * i:.3f}"):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for key in ids:
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            folder / f"{key}.png"
        )
    if csv:
        lines = ["Id,Actual"] + [f"{key},{value(i)}" for i, key in enumerate(ids)]
        (folder.parent / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_kaggle_png_scores_from_csv(galprep, tmp_path):
    ids = ["1000", "1001", "1002", "1003", "1004"]
    folder = _kaggle(tmp_path / "images", ids)
    out = tmp_path / "k.h5"
    r = galprep("import", "kaggle-png", folder, "-o", out, "--chunk-size", "2")
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert batch["images"].shape == (5, 12, 12, 1) and batch["images"].dtype == np.uint8
    assert list(batch["ids"]) == ids
    np.testing.assert_allclose(batch["actual"], [0.0, 0.1, 0.2, 0.3, 0.4])
    with Image.open(folder / "1003.png") as im:
        np.testing.assert_array_equal(batch["images"][3, ..., 0], np.asarray(im))
    assert meta["bands"] == ["L"]


def test_kaggle_png_text_labels_become_classes(galprep, tmp_path):
    folder = _kaggle(
        tmp_path / "imgs", ["a", "b", "c"], value=lambda i: ["lens", "none", "lens"][i]
    )
    r = galprep(
        "import", "kaggle-png", folder, "--csv", tmp_path / "labels.csv", "-o", tmp_path / "k.h5"
    )
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(tmp_path / "k.h5")
    assert meta["classes"]["actual"] == ["lens", "none"]
    np.testing.assert_array_equal(batch["actual"], [0, 1, 0])


def test_kaggle_png_missing_image_is_an_error(galprep, tmp_path):
    folder = _kaggle(tmp_path / "imgs", ["a", "b"])
    (folder / "b.png").unlink()
    r = galprep("import", "kaggle-png", folder, "-o", tmp_path / "k.h5")
    assert r.code == 1 and "missing image for id 'b'" in r.stderr
    assert not (tmp_path / "k.h5").exists()


def test_kaggle_png_full_size_grayscale(galprep, tmp_path):
    """The original task's layout: 1000×1000 grey PNGs named by Id, CSV Id,Actual."""
    folder = _kaggle(tmp_path / "train", ["100100", "100203"], size=1000)
    r = galprep(
        "import",
        "kaggle-png",
        folder,
        "--csv",
        tmp_path / "labels.csv",
        "-o",
        tmp_path / "k.h5",
        "--chunk-size",
        "1",
    )
    assert r.code == 0, r.stderr
    with open_galaxies(tmp_path / "k.h5") as reader:
        assert reader.image_shape == (1000, 1000, 1) and reader.n == 2
        np.testing.assert_allclose(reader.column("actual"), [0.0, 0.1])


def test_kaggle_png_without_csv_imports_every_image(galprep, tmp_path):
    folder = _kaggle(tmp_path / "imgs", ["x2", "x1"], csv=False)
    r = galprep("import", "kaggle-png", folder, "-o", tmp_path / "k.npz")
    assert r.code == 0, r.stderr
    batch, _ = read_galaxies(tmp_path / "k.npz")
    assert list(batch["ids"]) == ["x1", "x2"] and set(batch) == {"images", "ids"}


# ---------------------------------------------------------------------------------------- npy


def test_npy_channels_first_ids_and_catalog_with_duplicates(galprep, tmp_path):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(6, 2, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "ids.npy", np.array([10, 11, 12, 13, 14, 15]))
    (tmp_path / "cat.csv").write_text(
        "objid,z,morph\n11,0.5,spiral\n10,0.3,elliptical\n11,0.9,merger\n13,,spiral\n"
        "99,1.0,spiral\n"
    )
    out = tmp_path / "n.h5"
    r = galprep(
        "import",
        "npy",
        tmp_path / "x.npy",
        "--channels-first",
        "--ids",
        tmp_path / "ids.npy",
        "--catalog",
        tmp_path / "cat.csv",
        "--catalog-id",
        "objid",
        "--bands",
        "gr",
        "--pixel-scale",
        "0.5",
        "-o",
        out,
    )
    assert r.code == 0, r.stderr
    assert "1 repeated ids (kept the first row): 11" in r.stderr
    assert "3 objects not in the catalog" in r.stderr
    batch, meta = read_galaxies(out)
    np.testing.assert_array_equal(batch["images"], images.transpose(0, 2, 3, 1))
    assert list(batch["ids"]) == ["10", "11", "12", "13", "14", "15"]
    np.testing.assert_allclose(batch["z"], [0.3, 0.5, np.nan, np.nan, np.nan, np.nan])
    assert list(batch["morph"]) == ["elliptical", "spiral", "", "spiral", "", ""]
    assert meta["bands"] == ["g", "r"] and meta["pixel_scale"] == 0.5


def test_npy_three_d_and_row_ids(galprep, tmp_path):
    np.save(tmp_path / "x.npy", np.arange(3 * 4 * 4, dtype=np.uint16).reshape(3, 4, 4))
    r = galprep("import", "npy", tmp_path / "x.npy", "-o", tmp_path / "o.h5")
    assert r.code == 0, r.stderr
    with open_galaxies(tmp_path / "o.h5") as reader:
        assert reader.image_shape == (4, 4, 1) and reader.dtype == np.uint16
        assert list(reader.ids()) == ["0", "1", "2"]


def test_npy_refuses_pickles_and_bad_shapes(galprep, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    r = galprep("import", "npy", tmp_path / "obj.npy", "-o", tmp_path / "o.h5")
    assert r.code == 1 and "not a plain .npy array" in r.stderr
    np.save(tmp_path / "flat.npy", np.zeros((3, 4)))
    r = galprep("import", "npy", tmp_path / "flat.npy", "-o", tmp_path / "o.h5")
    assert r.code == 1 and "expected N×H×W×C" in r.stderr
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4)))
    np.save(tmp_path / "ids.npy", np.arange(2))
    r = galprep(
        "import", "npy", tmp_path / "x.npy", "--ids", tmp_path / "ids.npy", "-o", tmp_path / "o.h5"
    )
    assert r.code == 1 and "ids of shape (2,), expected (3,)" in r.stderr
    r = galprep("import", "npy", tmp_path / "x.npy", "--bands", "gri", "-o", tmp_path / "o.h5")
    assert r.code == 1 and "3 band names for 1 channels" in r.stderr
    assert not (tmp_path / "o.h5").exists()


def test_existing_output_is_not_overwritten(galprep, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 4)))
    (tmp_path / "o.h5").write_bytes(b"keep")
    r = galprep("import", "npy", tmp_path / "x.npy", "-o", tmp_path / "o.h5")
    assert r.code == 1 and "output exists" in r.stderr
    assert (tmp_path / "o.h5").read_bytes() == b"keep"


# -------------------------------------------------------------------------------- fits-folder


def _fits_folder(folder, n=3, cube=False):
    from astropy.io import fits

    folder.mkdir()
    rng = np.random.default_rng(5)
    stamps = rng.normal(size=(n, 3, 10, 10)).astype(np.float32)
    for k in range(n):
        header = fits.Header()
        header.update(
            {
                "CTYPE1": "RA---TAN",
                "CTYPE2": "DEC--TAN",
                "CDELT1": -0.25 / 3600,
                "CDELT2": 0.25 / 3600,
                "CRPIX1": 5,
                "CRPIX2": 5,
                "CRVAL1": 150.0,
                "CRVAL2": 2.0,
            }
        )
        if cube:
            hdul = fits.HDUList([fits.PrimaryHDU(stamps[k], header=header)])
        else:
            hdus = [fits.PrimaryHDU()]
            for b, band in enumerate("gri"):
                h = header.copy()
                h["FILTER"] = band
                hdus.append(fits.ImageHDU(stamps[k, b], header=h))
            hdul = fits.HDUList(hdus)
        hdul.writeto(folder / f"obj{k}.fits")
    return stamps


@pytest.mark.parametrize("cube", [False, True])
def test_fits_folder_bands_as_hdus_or_cube(galprep, tmp_path, cube):
    stamps = _fits_folder(tmp_path / "f", cube=cube)
    out = tmp_path / "f.h5"
    r = galprep("import", "fits-folder", tmp_path / "f", "-o", out)
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    np.testing.assert_allclose(batch["images"], stamps.transpose(0, 2, 3, 1))
    assert list(batch["ids"]) == ["obj0", "obj1", "obj2"]
    assert meta["pixel_scale"] == pytest.approx(0.25)
    assert meta["bands"] == (["0", "1", "2"] if cube else ["g", "r", "i"])


def test_fits_folder_hdu_selection(galprep, tmp_path):
    stamps = _fits_folder(tmp_path / "f", n=2)
    r = galprep("import", "fits-folder", tmp_path / "f", "--hdus", "3,1", "-o", tmp_path / "o.h5")
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(tmp_path / "o.h5")
    np.testing.assert_allclose(batch["images"], stamps[:, [2, 0]].transpose(0, 2, 3, 1))
    assert meta["bands"] == ["i", "g"]
    r = galprep("import", "fits-folder", tmp_path / "f", "--hdus", "7", "-o", tmp_path / "x.h5")
    assert r.code == 1 and "no HDU '7'" in r.stderr


def test_fits_folder_mismatched_shapes(galprep, tmp_path):
    from astropy.io import fits

    _fits_folder(tmp_path / "f", n=2, cube=True)
    fits.PrimaryHDU(np.zeros((3, 8, 8), np.float32)).writeto(tmp_path / "f" / "obj9.fits")
    r = galprep("import", "fits-folder", tmp_path / "f", "-o", tmp_path / "o.h5")
    assert r.code == 1 and "obj9.fits" in r.stderr and "differs from the first" in r.stderr


def test_importer_shard_bounds_are_contiguous():
    assert [Shard(k, 3).bounds(10) for k in range(3)] == [(0, 3), (3, 6), (6, 10)]
