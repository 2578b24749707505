"""galprep resize / compress: image folders and catalogs to galaxy array files."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from galtools.arrayfile import read_galaxies


def rgb_jpeg(path, color, size=32):
    img = np.zeros((size, size, 3), np.uint8) + np.array(color, np.uint8)
    Image.fromarray(img).save(path, quality=95)


def composites(folder, n=6, size=32):
    """pgc<100+i>_d25x2_rot_gri.jpg with R=200+i, G=100, B=50 (i band brightest)."""
    folder.mkdir(exist_ok=True)
    for i in range(n):
        rgb_jpeg(folder / f"pgc{100 + i}_d25x2_rot_gri.jpg", (200 + i, 100, 50), size)
    return folder


def catalog(path, ids, sep=","):
    rows = [f"pgc{sep}inc{sep}fon{sep}morph"]
    rows += [f"{i}{sep}{(i % 9) * 10}{sep}{i % 2}{sep}{'Sc' if i % 3 else 'E'}" for i in ids]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_jpeg_composites_with_catalog(galprep, tmp_path):
    folder = composites(tmp_path / "img")
    cat = catalog(tmp_path / "cat.csv", range(100, 110))
    out = tmp_path / "out.h5"
    r = galprep("resize", folder, "-o", out, "--size", "8", "--catalog", cat, "-j", "1")
    assert r.code == 0, r.stderr
    assert "6 of 6 images matched" in r.stderr and "4 rows without an image" in r.stderr
    batch, meta = read_galaxies(out)
    assert batch["images"].shape == (6, 8, 8, 3) and batch["images"].dtype == np.uint8
    assert meta["bands"] == ["g", "r", "i"]
    g, r_, i = (batch["images"][..., c].mean(axis=(1, 2)) for c in range(3))
    assert np.allclose(g, 50, atol=3) and np.allclose(r_, 100, atol=3)
    assert np.allclose(i, 200 + np.arange(6), atol=3)
    assert list(batch["ids"]) == [str(100 + k) for k in range(6)]
    assert list(batch["inc"]) == [((100 + k) % 9) * 10 for k in range(6)]
    assert meta["classes"]["morph"] == ["E", "Sc"]
    assert list(batch["morph"]) == [0 if (100 + k) % 3 == 0 else 1 for k in range(6)]
    assert meta["history"][-1]["tool"] == "resize"
    assert meta["history"][-1]["options"]["size"] == [8, 8]


def test_pipe_catalog_sdss_names_and_missing_rows(galprep, tmp_path):
    folder = tmp_path / "img"
    folder.mkdir()
    for i in range(4):
        rgb_jpeg(folder / f"pgc{i + 1}_d25x2_rot_gri.sdss.jpg", (90, 60, 30))
    cat = catalog(tmp_path / "cat.txt", [1, 2, 3], sep="|")
    out = tmp_path / "o.npz"
    r = galprep(
        "resize",
        folder,
        "-o",
        out,
        "--size",
        "4x6",
        "--catalog",
        cat,
        "--labels",
        "inc",
        "--band",
        "i",
    )
    assert r.code == 0, r.stderr
    assert "1 without a catalog row" in r.stderr
    batch, meta = read_galaxies(out)
    assert batch["images"].shape == (4, 4, 6, 1) and meta["bands"] == ["i"]
    assert np.allclose(batch["images"], 90, atol=3)
    assert set(batch) == {"images", "ids", "inc"}
    assert np.isnan(batch["inc"][3]) and batch["inc"][0] == 10
    r = galprep(
        "resize",
        folder,
        "-o",
        tmp_path / "p.h5",
        "--size",
        "4",
        "--catalog",
        cat,
        "--require-labels",
    )
    assert r.code == 1 and "1 of 4 images have no catalog row" in r.stderr
    assert "first: id '4'" in r.stderr and not (tmp_path / "p.h5").exists()


def test_band_files_stack_and_select(galprep, tmp_path):
    folder = tmp_path / "bands"
    folder.mkdir()
    for k in range(3):
        for band, value in zip("irg", (30, 20, 10)):
            Image.fromarray(np.full((16, 16), value + k, np.uint8)).save(
                folder / f"pgc{k + 7}_d25x2_rot_{band}.png"
            )
    out = tmp_path / "o.h5"
    assert galprep("resize", folder, "-o", out, "--size", "8").code == 0
    batch, meta = read_galaxies(out)
    assert meta["bands"] == ["g", "r", "i"] and batch["images"].shape == (3, 8, 8, 3)
    assert np.array_equal(batch["images"][1, 0, 0], [11, 21, 31])
    assert (
        galprep("resize", folder, "-o", tmp_path / "gi.h5", "--size", "8", "--band", "i,g").code
        == 0
    )
    batch, meta = read_galaxies(tmp_path / "gi.h5")
    assert meta["bands"] == ["i", "g"] and np.array_equal(batch["images"][0, 0, 0], [30, 10])
    assert (
        galprep("resize", folder, "-o", tmp_path / "grey.h5", "--size", "8", "--band", "grey").code
        == 0
    )
    batch, meta = read_galaxies(tmp_path / "grey.h5")
    assert meta["bands"] == ["grey"] and batch["images"][2, 0, 0, 0] == 22


def test_crop_and_filters(galprep, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    img = np.zeros((32, 32), np.uint8)
    img[8:24, 8:24] = 255
    Image.fromarray(img).save(folder / "gal1.png")
    for filt in ("area", "bilinear", "bicubic", "lanczos"):
        out = tmp_path / f"{filt}.h5"
        assert (
            galprep(
                "resize", folder, "-o", out, "--size", "8", "--crop", "0.5", "--filter", filt
            ).code
            == 0
        )
        batch, _ = read_galaxies(out)
        assert batch["images"].shape == (1, 8, 8, 1)
        inner = batch["images"] if filt == "area" else batch["images"][:, 3:5, 3:5]
        assert (inner == 255).all(), filt  # wider filters see the zeros beyond the crop box
        assert batch["images"].min() > 150, filt
        assert batch["ids"][0] == "gal1"
    out = tmp_path / "full.h5"
    assert galprep("resize", folder, "-o", out, "--size", "8").code == 0
    batch, _ = read_galaxies(out)
    assert batch["images"][0, 0, 0, 0] == 0 and batch["images"][0, 4, 4, 0] == 255


def fits_files(folder):
    from astropy.io import fits

    folder.mkdir()
    yy = np.arange(16, dtype=np.float32)[:, None] * np.ones(16, np.float32)
    fits.writeto(folder / "pgc5_r.fits", yy)
    fits.writeto(folder / "pgc6_gri.fits", np.stack([yy, yy + 100, yy + 200]))
    hdus = fits.HDUList(
        [fits.PrimaryHDU()]
        + [
            fits.ImageHDU(yy + off, header=fits.Header({"FILTER": band}))
            for band, off in (("g", 0), ("r", 100), ("i", 200))
        ]
    )
    hdus.writeto(folder / "pgc7.fits")
    return yy


def test_fits_images_cubes_and_hdus(galprep, tmp_path):
    fits_files(tmp_path / "f")
    out = tmp_path / "cube.h5"
    r = galprep(
        "resize",
        tmp_path / "f" / "pgc6_gri.fits",
        tmp_path / "f" / "pgc7.fits",
        "-o",
        out,
        "--size",
        "8",
    )
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert batch["images"].dtype == np.float32 and batch["images"].shape == (2, 8, 8, 3)
    assert meta["bands"] == ["g", "r", "i"]
    # area filter: row 0 of the output averages input rows 0 and 1
    assert np.allclose(batch["images"][:, 0, 0], [[0.5, 100.5, 200.5]] * 2)
    out = tmp_path / "r.h5"
    assert galprep("resize", tmp_path / "f", "-o", out, "--size", "8", "--band", "r").code == 0
    batch, meta = read_galaxies(out)
    assert batch["images"].shape == (3, 8, 8, 1) and np.allclose(batch["images"][1, 0, 0], 100.5)


def test_fits_nan_is_error_unless_filled(galprep, tmp_path):
    from astropy.io import fits

    data = np.ones((8, 8), np.float32)
    data[2, 3] = np.nan
    path = tmp_path / "pgc9.fits"
    fits.writeto(path, data)
    out = tmp_path / "o.h5"
    r = galprep("resize", path, "-o", out, "--size", "4")
    assert r.code == 1 and str(path) in r.stderr and "NaN" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
    r = galprep("resize", path, "-o", out, "--size", "8", "--nan", "fill=-5")
    assert r.code == 0
    batch, _ = read_galaxies(out)
    assert batch["images"][0, 2, 3, 0] == -5 and batch["images"][0, 0, 0, 0] == 1


def test_to_folder_round_trip_through_compress(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=3)
    out_dir = tmp_path / "small"
    r = galprep("resize", folder, "--to-folder", out_dir, "--size", "8", "--format", "png")
    assert r.code == 0, r.stderr
    names = sorted(os.listdir(out_dir))
    assert names == [f"pgc{100 + i}_8x8.gri.png" for i in range(3)]
    cat = catalog(tmp_path / "cat.csv", range(100, 103))
    packed = tmp_path / "packed.h5"
    assert galprep("compress", out_dir, "-o", packed, "--catalog", cat).code == 0
    direct = tmp_path / "direct.h5"
    assert galprep("resize", folder, "-o", direct, "--size", "8").code == 0
    a, meta = read_galaxies(packed)
    b, _ = read_galaxies(direct)
    assert np.array_equal(a["images"], b["images"]) and meta["bands"] == ["g", "r", "i"]
    assert list(a["ids"]) == ["100", "101", "102"] and list(a["fon"]) == [0, 1, 0]


def test_to_folder_shards_compress_to_the_unsharded_file(galprep, tmp_path):
    """The two-step research pipeline on a job array: each shard writes its own folder, a
    requeued shard is skipped, and compress packs all folders like one unsharded run."""
    folder = composites(tmp_path / "img", n=5)
    stem = tmp_path / "stamps"
    for k in (0, 1):
        r = galprep("resize", folder, "--to-folder", stem, "--size", "8", "--shard", f"{k}/2")
        assert r.code == 0, r.stderr
    parts = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("stamps."))
    assert parts == ["stamps.shard000-of-002", "stamps.shard001-of-002"]
    counts = [len(os.listdir(tmp_path / p)) for p in parts]
    assert sorted(counts) == [2, 3]
    again = galprep("resize", folder, "--to-folder", stem, "--size", "8", "--shard", "1/2")
    assert again.code == 0 and "skipped" in again.stderr
    packed, direct = tmp_path / "packed.h5", tmp_path / "direct.h5"
    r = galprep("compress", *[tmp_path / p for p in parts], "-o", packed)
    assert r.code == 0, r.stderr
    assert galprep("resize", folder, "-o", direct, "--size", "8").code == 0
    a, _ = read_galaxies(packed)
    b, _ = read_galaxies(direct)
    assert list(a["ids"]) == list(b["ids"]) and np.array_equal(a["images"], b["images"])


def test_jobs_and_chunks_give_identical_output(galprep, tmp_path):
    folder = tmp_path / "n"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(9):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), np.uint8)).save(
            folder / f"pgc{i}_gri.png"
        )
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    assert galprep("resize", folder, "-o", one, "--size", "6", "-j", "1").code == 0
    assert (
        galprep("resize", folder, "-o", two, "--size", "6", "-j", "2", "--chunk-size", "2").code
        == 0
    )
    a, _ = read_galaxies(one)
    b, _ = read_galaxies(two)
    assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["ids"], b["ids"])


def test_shards_merge_to_whole_and_resume(galprep, tmp_path, monkeypatch):
    folder = composites(tmp_path / "img", n=5)
    whole = tmp_path / "whole.h5"
    assert galprep("resize", folder, "-o", whole, "--size", "4").code == 0
    out = tmp_path / "part.h5"
    assert galprep("resize", folder, "-o", out, "--size", "4", "--shard", "0/2").code == 0
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert galprep("resize", folder, "-o", out, "--size", "4").code == 0
    shards = [tmp_path / f"part.shard00{k}-of-002.h5" for k in range(2)]
    assert all(p.exists() for p in shards)
    r = galprep("resize", folder, "-o", out, "--size", "4")
    assert r.code == 0 and "exists, skipped" in r.stderr
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    merged = tmp_path / "merged.h5"
    assert galprep("merge", *shards, "-o", merged).code == 0
    a, _ = read_galaxies(whole)
    b, _ = read_galaxies(merged)
    assert np.array_equal(a["images"], b["images"]) and list(a["ids"]) == list(b["ids"])
    assert read_galaxies(shards[0])[0]["images"].shape[0] == 2


def test_resize_array_file_keeps_labels(galprep, small_file, tmp_path):
    src = small_file("in.h5", n=5, shape=(16, 16, 3), targets=True)
    out = tmp_path / "o.h5"
    assert galprep("resize", src, "-o", out, "--size", "8", "--band", "r").code == 0
    batch, meta = read_galaxies(out)
    ref, _ = read_galaxies(src)
    assert batch["images"].shape == (5, 8, 8, 1) and batch["targets"].shape == (5, 8, 8, 1)
    assert meta["bands"] == ["r"]
    expect = ref["images"][0, :2, :2, 1].mean()
    assert np.isclose(batch["images"][0, 0, 0, 0], expect, atol=1e-5)
    assert np.array_equal(batch["inclination"], ref["inclination"])


def test_skip_bad_writes_side_report(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=3)
    (folder / "pgc900_gri.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("hello")
    out = tmp_path / "o.h5"
    r = galprep("resize", folder, "-o", out, "--size", "4", "--skip-bad")
    assert r.code == 0, r.stderr
    assert read_galaxies(out)[0]["images"].shape[0] == 3
    report = (tmp_path / "o.h5.skipped.csv").read_text().splitlines()
    assert report[0] == "path,reason" and len(report) == 3
    assert any("pgc900_gri.jpg" in line and "unreadable" in line for line in report)
    assert any("notes.txt" in line for line in report)


def _bad(galprep, tmp_path, *args, expect, code=1):
    out = tmp_path / "bad_out.h5"
    r = galprep(*args, "-o", out)
    assert r.code == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], r.stderr
    assert expect in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".bad_out")]
    return lines[0]


def test_bad_corrupt_jpeg(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=2)
    good = (folder / "pgc100_d25x2_rot_gri.jpg").read_bytes()
    (folder / "pgc555_gri.jpg").write_bytes(good[: len(good) // 3])
    _bad(galprep, tmp_path, "resize", folder, "--size", "4", expect="pgc555_gri.jpg")


def test_bad_zero_byte_and_non_image(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=2)
    (folder / "pgc1_gri.jpg").write_bytes(b"")
    line = _bad(galprep, tmp_path, "resize", folder, "--size", "4", expect="pgc1_gri.jpg")
    assert "empty file" in line
    (folder / "pgc1_gri.jpg").unlink()
    (folder / "readme.txt").write_text("x")
    line = _bad(galprep, tmp_path, "resize", folder, "--size", "4", expect="readme.txt")
    assert "not an image" in line


def test_bad_wrong_band_count(galprep, tmp_path):
    folder = tmp_path / "grey"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "gal.png")
    line = _bad(
        galprep, tmp_path, "resize", folder, "--size", "4", "--band", "gri", expect="gal.png"
    )
    assert "no band 'g'" in line and "1 channel" in line
    _bad(galprep, tmp_path, "resize", folder, "--size", "4", "--band", "0,2", expect="band index 2")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "gal2.png")
    line = _bad(galprep, tmp_path, "compress", folder, expect="gal2.png")
    assert "differ" in line


def test_bad_catalogs(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=2)
    cat = tmp_path / "dup.csv"
    cat.write_text("pgc,inc\n100,10\n101,20\n100,30\n")
    line = _bad(
        galprep, tmp_path, "resize", folder, "--size", "4", "--catalog", cat, expect="dup.csv"
    )
    assert "duplicate id '100'" in line
    cat2 = catalog(tmp_path / "c.csv", [100, 101])
    _bad(
        galprep,
        tmp_path,
        "resize",
        folder,
        "--size",
        "4",
        "--catalog",
        cat2,
        "--labels",
        "nope",
        expect="no label column 'nope'",
    )


def test_bad_empty_folder_and_size(galprep, tmp_path):
    (tmp_path / "empty").mkdir()
    _bad(galprep, tmp_path, "resize", tmp_path / "empty", "--size", "4", expect="empty")
    folder = composites(tmp_path / "img", n=1)
    _bad(galprep, tmp_path, "resize", folder, "--size", "0", expect="--size", code=2)
    _bad(galprep, tmp_path, "resize", folder, "--size", "4x", expect="--size", code=2)


def test_compress_size_mismatch_names_file_and_sizes(galprep, tmp_path):
    folder = tmp_path / "eq"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(folder / f"a{i}.png")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(folder / "b.png")
    line = _bad(galprep, tmp_path, "compress", folder, expect="b.png")
    assert "8x10" in line and "8x8" in line and "a0.png" in line
    os.unlink(folder / "b.png")
    out = tmp_path / "ok.h5"
    assert galprep("compress", folder, "-o", out).code == 0
    batch, _ = read_galaxies(out)
    assert batch["images"].shape == (3, 8, 8, 1) and list(batch["images"][:, 0, 0, 0]) == [0, 1, 2]


def test_existing_output_needs_overwrite(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=1)
    out = tmp_path / "o.h5"
    out.write_bytes(b"keep")
    r = galprep("resize", folder, "-o", out, "--size", "4")
    assert r.code == 1 and "--overwrite" in r.stderr and out.read_bytes() == b"keep"
    assert galprep("resize", folder, "-o", out, "--size", "4", "--overwrite").code == 0


@pytest.mark.parametrize("tool", ["resize", "compress", "split", "augment"])
def test_help_is_light(tool):
    code = (
        "import sys\nfrom galtools.cli import main\n"
        f"try:\n    main(['{tool}', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'astropy', 'scipy', 'PIL', 'h5py', "
        "'matplotlib', 'galsim') if m in sys.modules]\nprint('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out and "Usage" in out


def test_error_in_a_worker_stops_cleanly(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=8)
    (folder / "pgc150_gri.jpg").write_bytes(b"")
    for _ in range(3):
        _bad(
            galprep,
            tmp_path,
            "resize",
            folder,
            "--size",
            "4",
            "-j",
            "2",
            "--chunk-size",
            "1",
            expect="pgc150_gri.jpg",
        )


def test_sharded_catalog_run_reports_its_own_count(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=5)
    cat = catalog(tmp_path / "cat.csv", range(100, 105))
    r = galprep(
        "resize", folder, "-o", tmp_path / "s.h5", "--size", "4", "--catalog", cat, "--shard", "1/2"
    )
    assert r.code == 0 and "5 of 5 images matched" in r.stderr
    assert "3 images 4×4×3" in r.stderr
    assert read_galaxies(tmp_path / "s.shard001-of-002.h5")[0]["images"].shape[0] == 3


def test_fits_catalog_custom_id_pattern_and_column(galprep, tmp_path):
    from astropy.table import Table

    folder = tmp_path / "ngc"
    folder.mkdir()
    for k, name in enumerate(("NGC0001", "NGC0007", "NGC0100")):
        Image.fromarray(np.full((8, 8), k, np.uint8)).save(folder / f"{name}_cutout_g.png")
    cat = tmp_path / "cat.fits"
    Table(
        {"objname": ["NGC0100", "NGC0001", "NGC0007", "NGC0999"], "t_type": [5.0, 3.0, -2.0, 1.0]}
    ).write(cat)
    out = tmp_path / "o.h5"
    r = galprep(
        "resize",
        folder,
        "-o",
        out,
        "--size",
        "4",
        "--catalog",
        cat,
        "--id-column",
        "objname",
        "--id-pattern",
        r"(NGC\d+)",
        "--require-labels",
    )
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert list(batch["ids"]) == ["NGC0001", "NGC0007", "NGC0100"]
    assert batch["t_type"].tolist() == [3.0, -2.0, 5.0] and meta["bands"] == ["g"]
    assert "1 rows without an image" in r.stderr


def test_to_folder_leaves_nothing_on_error(galprep, tmp_path):
    folder = composites(tmp_path / "img", n=3)
    (folder / "pgc7_gri.jpg").write_bytes(b"garbage")
    r = galprep("resize", folder, "--to-folder", tmp_path / "small", "--size", "4", "-j", "1")
    assert r.code == 1 and "pgc7_gri.jpg" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["img"]


def test_resize_array_file_updates_pixel_scale(galprep, small_file, tmp_path):
    """Cropping 64 px to 48 and resizing to 32 makes each pixel 1.5× bigger on the sky."""
    src = small_file("ps.h5", n=3, shape=(64, 64, 1), bands="r", meta_extra={"pixel_scale": 0.2})
    out = tmp_path / "ps_out.h5"
    assert galprep("resize", src, "-o", out, "--size", "32", "--crop", "0.75").code == 0
    _, meta = read_galaxies(out)
    assert np.isclose(meta["pixel_scale"], 0.3)
