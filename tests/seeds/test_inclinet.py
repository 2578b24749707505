"""inclinet (Kourkchi et al.): its galaxies/ folder layout and data_prep.py's file rule.

The folder holds, per galaxy, ``pgc<ID>_d25x2_rot_gri.jpg`` (colour, made locally),
``pgc<ID>_d25x2_rot_gri.sdss.jpg`` (colour, from the survey) and the single-band greyscale
``pgc<ID>_d25x2_rot_{g,r,i}.png``.  data_prep.py's rule: ``-b gri`` reads the colour file (the
``.sdss.jpg`` when present, else the ``.jpg``), ``-b g|r|i`` the band PNG; ``-r`` is the root.
"""

import numpy as np
from PIL import Image

from galtools.arrayfile import read_galaxies

SDSS = (200, 100, 50)  # R, G, B of the survey composite
LOCAL = (150, 120, 90)  # of the locally made one
BANDS = {"g": 10, "r": 20, "i": 30}


def galaxies(folder, ids=(118, 129, 2148), sdss=(118, 129), size=32, root="d25x2_rot"):
    """inclinet's galaxies/ folder: constant images so JPEG keeps the values within 2."""
    folder.mkdir(exist_ok=True)
    for pgc in ids:
        stem = folder / f"pgc{pgc}_{root}"
        for band, value in BANDS.items():
            grey = np.full((size, size), value, np.uint8)
            Image.fromarray(grey, "L").save(f"{stem}_{band}.png")
        Image.fromarray(np.full((size, size, 3), LOCAL, np.uint8)).save(
            f"{stem}_gri.jpg", quality=95
        )
        if pgc in sdss:
            Image.fromarray(np.full((size, size, 3), SDSS, np.uint8)).save(
                f"{stem}_gri.sdss.jpg", quality=95
            )
    return folder


def test_gri_reads_the_colour_file_survey_first(galprep, tmp_path):
    folder = galaxies(tmp_path / "galaxies")
    out = tmp_path / "gri.h5"
    r = galprep("resize", folder, "--band", "gri", "--size", "8", "-o", out, "-j", "1")
    assert r.code == 0, r.stderr
    batch, meta = read_galaxies(out)
    assert meta["bands"] == ["g", "r", "i"]
    ids = [int(i) for i in batch["ids"]]
    pixel = {pgc: batch["images"][k, 4, 4].astype(int) for k, pgc in enumerate(ids)}
    # wavelength order: g = B, r = G, i = R of the composite
    assert np.abs(pixel[118] - SDSS[::-1]).max() <= 2
    assert np.abs(pixel[129] - SDSS[::-1]).max() <= 2
    assert np.abs(pixel[2148] - LOCAL[::-1]).max() <= 2  # no .sdss.jpg: the local composite


def test_single_band_reads_the_band_png(galprep, tmp_path):
    folder = galaxies(tmp_path / "galaxies")
    for band, value in BANDS.items():
        out = tmp_path / f"{band}.h5"
        r = galprep("resize", folder, "--band", band, "--size", "8", "-o", out, "-j", "1")
        assert r.code == 0, r.stderr
        batch, meta = read_galaxies(out)
        assert meta["bands"] == [band] and batch["images"].shape == (3, 8, 8, 1)
        assert np.all(batch["images"] == value)
    # an explicit list stacks the band files
    out = tmp_path / "list.h5"
    assert galprep("resize", folder, "--band", "g,r,i", "--size", "8", "-o", out).code == 0
    batch, _ = read_galaxies(out)
    assert np.array_equal(batch["images"][0, 0, 0], [10, 20, 30])


def test_no_band_with_colour_and_band_files_is_an_error(galprep, tmp_path):
    folder = galaxies(tmp_path / "galaxies")
    out = tmp_path / "all.h5"
    r = galprep("resize", folder, "--size", "8", "-o", out, "-j", "1")
    assert r.code != 0 and not out.exists()
    line = r.stderr.strip().splitlines()[-1]
    assert "pgc118_d25x2_rot_gri" in line and "pgc118_d25x2_rot_g.png" in line
    assert "--band gri" in line and "Traceback" not in r.stderr


def test_two_colour_files_without_survey_one_is_an_error(galprep, tmp_path):
    folder = galaxies(tmp_path / "galaxies", ids=(118,), sdss=())
    Image.fromarray(np.full((32, 32, 3), SDSS, np.uint8)).save(folder / "pgc118_d25x2_rot_gri.png")
    r = galprep("resize", folder, "--band", "gri", "--size", "8", "-o", tmp_path / "o.h5")
    assert r.code != 0
    assert "pgc118_d25x2_rot_gri.jpg and pgc118_d25x2_rot_gri.png" in r.stderr


def test_root_selects_the_name_root(galprep, tmp_path):
    folder = galaxies(tmp_path / "galaxies")
    galaxies(folder, ids=(118, 129), sdss=(), root="d50_raw")  # another root, same galaxies
    out = tmp_path / "root.h5"
    r = galprep("resize", folder, "--band", "gri", "--root", "d25x2_rot", "--size", "8", "-o", out)
    assert r.code == 0, r.stderr
    batch, _ = read_galaxies(out)
    assert sorted(int(i) for i in batch["ids"]) == [118, 129, 2148]
    assert np.abs(batch["images"][0, 4, 4].astype(int) - SDSS[::-1]).max() <= 2
    r = galprep("resize", folder, "--root", "nope", "--size", "8", "-o", tmp_path / "n.h5")
    assert r.code != 0 and "no image file is named <id>_nope_<band>" in r.stderr


def inclinet_catalog(path, ids):
    """catalogs/catalog.csv as inclinet ships it: '|'-delimited, padded cells, text fon."""
    rows = ["    pgc |  inc | inc_flg | fon |           inc_note"]
    for k, pgc in enumerate(ids):
        inc = (0, 30, 45, 52, 61, 75, 88)[k % 7]
        flg = 1 if k % 5 == 0 else 0
        fon = "  F" if inc == 0 else "   "
        note = "[face_on]" if inc == 0 else "[standard]"
        rows.append(f" {pgc:6d} | {inc:4d} | {flg:7d} | {fon} | {note:>18}")
    path.write_text("\n".join(rows) + "\n")
    return path


def readme_lines(*needles):
    from tests.test_readme_commands import COMMANDS

    return [c for c in COMMANDS if any(n in " ".join(c) for n in needles)]


def test_readme_catalog_examples_run_on_inclinets_catalog(galprep, tmp_path, monkeypatch):
    """Every README resize/compress/split line with a catalog or --where runs on inclinet's
    catalog column types (fon is text there; the rule is inc >= 45 and inc_flg == 0)."""
    ids = list(range(100, 135))
    cutouts = tmp_path / "cutouts"
    cutouts.mkdir()
    for pgc in ids:
        Image.fromarray(np.full((96, 96, 3), LOCAL, np.uint8)).save(
            cutouts / f"pgc{pgc}_d25x2_rot_gri.jpg", quality=90
        )
    inclinet_catalog(tmp_path / "catalog.csv", ids)
    galaxies(tmp_path / "galaxies", ids=ids, sdss=ids[::2], size=96)  # inclinet's own layout
    (tmp_path / "catalogs").mkdir()
    inclinet_catalog(tmp_path / "catalogs" / "catalog.csv", ids)
    monkeypatch.chdir(tmp_path)
    r = galprep("resize", "cutouts/", "--size", "16", "--band", "gri", "--to-folder", "resized")
    assert r.code == 0, r.stderr
    lines = [c for c in readme_lines("--catalog", "--where") if c[0] != "import"]
    tools = [c[0] for c in lines]
    assert {"resize", "compress", "split"} <= set(tools) and len(lines) >= 6, tools
    for words in sorted(lines, key=lambda c: ["resize", "compress", "split"].index(c[0])):
        r = galprep(*words)
        assert r.code == 0, (words, r.stderr)
    batch, _ = read_galaxies(tmp_path / "sdss.h5")
    keep = (batch["inc"] >= 45) & (batch["inc_flg"] == 0)
    parts = [read_galaxies(tmp_path / "split" / f"{p}_000.h5")[0] for p in ("train", "val", "test")]
    assert sum(len(p["ids"]) for p in parts) == int(keep.sum())
    for part in parts:
        assert np.all(part["inc"] >= 45) and np.all(part["inc_flg"] == 0)
    rgb, meta = read_galaxies(tmp_path / "RGB_64x64.h5")  # the inclinet block's colour array
    assert meta["bands"] == ["i", "r", "g"] and rgb["images"].shape == (35, 64, 64, 3)


def test_channel_order_is_recorded_and_file_order_matches_inclinets_arrays(galprep, tmp_path):
    """inclinet's arrays keep the JPEG's R, G, B; galtools' default is wavelength order."""
    folder = galaxies(tmp_path / "galaxies", ids=(118,), sdss=(118,))
    default, stored = tmp_path / "wl.h5", tmp_path / "file.h5"
    args = ["resize", folder, "--band", "gri", "--size", "8"]
    assert galprep(*args, "-o", default).code == 0
    r = galprep(*args, "--channel-order", "file", "-o", stored)
    assert r.code == 0, r.stderr
    a, meta_a = read_galaxies(default)
    b, meta_b = read_galaxies(stored)
    assert meta_a["bands"] == ["g", "r", "i"] and meta_a["colour_channels"] == ["B", "G", "R"]
    assert meta_b["bands"] == ["i", "r", "g"] and meta_b["colour_channels"] == ["R", "G", "B"]
    assert meta_b["channel_order"] == "file"
    # inclinet's array: np.asarray(Image.open(jpg)) channel for channel
    assert np.abs(b["images"][0, 4, 4].astype(int) - SDSS).max() <= 2
    np.testing.assert_array_equal(b["images"][..., ::-1], a["images"])
    info = galprep("info", default)
    assert "channels:    g←B, r←G, i←R of the colour files (wavelength order)" in info.out
    # band files have no colour channels to report
    grey = tmp_path / "g.h5"
    assert galprep("resize", folder, "--band", "g", "--size", "8", "-o", grey).code == 0
    assert read_galaxies(grey)[1]["colour_channels"] is None


def inclination_file(path, incs, colour=(200, 100, 50)):
    """uint8 colour stamps (constant per galaxy) with an 'inc' column, as resize writes."""
    from galtools.arrayfile import write_galaxies

    n = len(incs)
    images = np.zeros((n, 8, 8, 3), np.uint8) + np.array(colour[::-1], np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # tells the galaxies apart
    batch = {"images": images, "ids": np.arange(n), "inc": np.asarray(incs, np.float64)}
    write_galaxies(path, batch, {"bands": ["g", "r", "i"]})
    return path


def test_augment_batches_are_each_uniform_with_even_repeats(galprep, tmp_path):
    # four galaxies in [45, 50], two in (50, 55], many in (55, 60]
    incs = [45, 46, 47, 49, 51, 53] + [56 + 0.1 * k for k in range(30)]
    src = inclination_file(tmp_path / "train.h5", incs)
    out = tmp_path / "aug"
    args = ["augment", src, "--uniform", "inc", "--bins", "45:60:5", "--per-bin", "40"]
    r = galprep(*args, "--batches", "5", "--hflip", "0.5", "-o", out, "-j", "1")
    assert r.code == 0, r.stderr
    assert "8 per bin in each batch file" in r.stderr
    copies = {}
    for k in range(5):
        batch, meta = read_galaxies(out / f"batch_{k:03d}.h5")
        per_bin = np.histogram(batch["inc"], bins=[45, 50, 55, 60])[0]
        assert per_bin.tolist() == [8, 8, 8]  # every file is itself uniform
        for row in batch["ids"].tolist():
            copies[row] = copies.get(row, 0) + 1
    assert [copies[g] for g in range(4)] == [10, 10, 10, 10]  # 40 / 4 galaxies: even
    assert [copies[g] for g in (4, 5)] == [20, 20]
    assert sorted(copies[g] for g in range(6, 36)) == [1] * 20 + [2] * 10
    assert meta["history"][-1]["augment"]["bins_closed"] == "left"
    # 42 per bin over 5 files: 8 or 9 per bin in a file, 42 in all; repeats differ by one
    r = galprep(*args[:-1], "42", "--batches", "5", "-o", tmp_path / "b42", "-j", "1")
    assert r.code == 0 and "8–9 per bin in each batch file" in r.stderr
    total = np.zeros(3, int)
    rows = []
    for k in range(5):
        batch, _ = read_galaxies(tmp_path / "b42" / f"batch_{k:03d}.h5")
        per_bin = np.histogram(batch["inc"], bins=[45, 50, 55, 60])[0]
        assert set(per_bin.tolist()) <= {8, 9}
        total += per_bin
        rows += batch["ids"].tolist()
    assert total.tolist() == [42, 42, 42]
    assert sorted(rows.count(g) for g in range(4)) == [10, 10, 11, 11]


def test_bins_closed_right_is_inclinets_convention(galprep, tmp_path):
    src = inclination_file(tmp_path / "t.h5", [45, 50, 50, 52, 55, 58])
    for closed, counts in (("left", "1 3 2"), ("right", "3 2 1")):
        r = galprep(
            "augment", src, "--uniform", "inc", "--bins", "45:60:5", "--per-bin", "2",
            "--bins-closed", closed, "-o", tmp_path / f"{closed}.h5",
        )  # fmt: skip
        assert r.code == 0 and f"'inc' bins: {counts} rows" in r.stderr, r.stderr


def test_half_colour_half_grey_half_of_grey_inverted(galprep, tmp_path):
    src = inclination_file(tmp_path / "t.h5", [46 + (k % 40) for k in range(400)])
    out = tmp_path / "mixed.h5"
    r = galprep(
        "augment", src, "--copies", "1", "--greyscale", "0.5", "--invert-grey", "0.5",
        "-o", out, "--seed", "3",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    x = read_galaxies(out)[0]["images"][:, 4, 4].astype(int)
    colour = (x == [50, 100, 200]).all(axis=1)
    grey = (x == [117, 117, 117]).all(axis=1)  # rint(mean(50, 100, 200))
    inverted = (x == [138, 138, 138]).all(axis=1)
    assert (colour | grey | inverted).all()  # colour images are never inverted
    assert 0.4 < colour.mean() < 0.6 and 0.15 < inverted.mean() < 0.35
    r = galprep("augment", src, "--invert-grey", "0.5", "-o", tmp_path / "x.h5")
    assert r.code == 2 and "--invert-grey inverts images made grey by --greyscale" in r.stderr


def test_resize_option_misuse_is_a_usage_error(galprep, tmp_path):
    folder = galaxies(tmp_path / "galaxies", ids=(118,))
    r = galprep(
        "resize", folder, "--band", "gri", "--size", "8", "--channel-order", "file",
        "--to-folder", tmp_path / "out",
    )  # fmt: skip
    assert r.code == 2 and "--channel-order file is for array files" in r.stderr
    arrays = inclination_file(tmp_path / "a.h5", [50, 60])
    r = galprep("resize", arrays, "--size", "4", "--root", "d25x2_rot", "-o", tmp_path / "b.h5")
    assert r.code == 2 and "--root need image inputs" in r.stderr
