"""galprep split and the --where expression language."""

import os

import numpy as np
import pytest

from galtools import expr
from galtools.arrayfile import open_galaxies, read_galaxies, write_galaxies
from galtools.meta import new_meta


def labelled(path, n=40, seed=0, bands=("g",)):
    rng = np.random.default_rng(seed)
    batch = {
        "images": rng.normal(size=(n, 4, 4, len(bands))).astype("f4"),
        "ids": np.array([f"pgc{i}" for i in range(n)]),
        "inclination": np.arange(n, dtype=float) * 90 / n,
        "fon": np.arange(n) % 2,
        "morph": np.arange(n) % 4 // 3,  # class codes: 0 = Sc (30), 1 = E (10)
    }
    write_galaxies(path, batch, new_meta(bands=list(bands), classes={"morph": ["Sc", "E"]}))
    return path


def ids_of(path):
    with open_galaxies(path) as r:
        return list(r.ids())


def test_test_val_train_partition(galprep, tmp_path):
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    r = galprep("split", src, "-o", out, "--test", "0.25", "--val", "0.1", "--seed", "3")
    assert r.code == 0, r.stderr
    assert sorted(os.listdir(out)) == ["test_000.h5", "train_000.h5", "val_000.h5"]
    parts = {p: ids_of(out / f"{p}_000.h5") for p in ("train", "test", "val")}
    assert len(parts["test"]) == 10 and len(parts["val"]) == 4 and len(parts["train"]) == 26
    all_ids = sum(parts.values(), [])
    assert sorted(all_ids) == sorted(f"pgc{i}" for i in range(40))
    batch, meta = read_galaxies(out / "test_000.h5")
    src_batch, _ = read_galaxies(src)
    rows = [int(i[3:]) for i in batch["ids"]]
    assert np.array_equal(batch["images"], src_batch["images"][rows])
    assert np.array_equal(batch["inclination"], src_batch["inclination"][rows])
    entry = meta["history"][-1]
    assert entry["tool"] == "split" and entry["split"]["part"] == "test_000"
    assert entry["split"]["rows"] == 10 and entry["options"]["seed"] == 3
    # same seed, same split; another seed, another split
    again = tmp_path / "again"
    assert (
        galprep("split", src, "-o", again, "--test", "0.25", "--val", "0.1", "--seed", "3").code
        == 0
    )
    assert ids_of(again / "test_000.h5") == parts["test"]
    other = tmp_path / "other"
    assert galprep("split", src, "-o", other, "--test", "0.25", "--seed", "4").code == 0
    assert ids_of(other / "test_000.h5") != parts["test"]


def test_where_percentage_and_npz(galprep, tmp_path):
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    r = galprep(
        "split",
        src,
        "-o",
        out,
        "--where",
        "inclination >= 45 and (fon == 0 or morph == 'E')",
        "--format",
        "npz",
    )
    assert r.code == 0, r.stderr
    assert os.listdir(out) == ["train_000.npz"]
    batch, _ = read_galaxies(out / "train_000.npz")
    expect = [i for i in range(40) if i * 90 / 40 >= 45 and (i % 2 == 0 or i % 4 == 3)]
    assert [int(i[3:]) for i in batch["ids"]] == expect
    out2 = tmp_path / "p"
    assert galprep("split", src, "-o", out2, "--percentage", "0.5", "--test", "0.2").code == 0
    assert len(ids_of(out2 / "train_000.h5")) == 16 and len(ids_of(out2 / "test_000.h5")) == 4


def test_stratify_keeps_class_ratios(galprep, tmp_path):
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    assert galprep("split", src, "-o", out, "--test", "0.2", "--stratify", "morph").code == 0
    batch, _ = read_galaxies(out / "test_000.h5")
    assert np.bincount(batch["morph"]).tolist() == [6, 2]


def test_bagging_subsamples(galprep, tmp_path):
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    assert (
        galprep(
            "split", src, "-o", out, "--test", "0.25", "--subsamples", "3", "--fraction", "0.67"
        ).code
        == 0
    )
    train = set(ids_of(out / "train_000.h5"))
    bags = []
    for k in (1, 2, 3):
        bag, rest = set(ids_of(out / f"train_00{k}.h5")), set(ids_of(out / f"test_00{k}.h5"))
        assert len(bag) == round(0.67 * 30) and bag | rest == train and not bag & rest
        bags.append(bag)
    assert bags[0] != bags[1]


def test_match_and_same_split_as(galprep, tmp_path):
    g = labelled(tmp_path / "g.h5", seed=1)
    r_band = tmp_path / "r.h5"
    batch, _ = read_galaxies(labelled(tmp_path / "tmp.h5", seed=2, bands=("r",)))
    order = np.random.default_rng(5).permutation(40)  # same objects, another order
    write_galaxies(r_band, {k: v[order] for k, v in batch.items()}, new_meta(bands=["r"]))
    out = tmp_path / "s"
    r = galprep("split", g, "-o", out, "--test", "0.3", "--match", r_band)
    assert r.code == 0, r.stderr
    for part in ("train_000", "test_000"):
        assert ids_of(out / f"{part}.h5") == ids_of(out / "r" / f"{part}.h5")
    again = tmp_path / "again"
    assert galprep("split", r_band, "-o", again, "--same-split-as", out).code == 0
    for part in ("train_000", "test_000"):
        assert sorted(ids_of(again / f"{part}.h5")) == sorted(ids_of(out / f"{part}.h5"))


def test_match_with_missing_ids_is_error(galprep, tmp_path):
    g = labelled(tmp_path / "g.h5")
    short = tmp_path / "short.h5"
    batch, _ = read_galaxies(g)
    write_galaxies(short, {k: v[:30] for k, v in batch.items()}, new_meta(bands=["g"]))
    out = tmp_path / "s"
    r = galprep("split", g, "-o", out, "--test", "0.5", "--match", short)
    assert r.code == 1 and "short.h5" in r.stderr and "missing" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--where", "inclination >= "], "expected a number"),
        (["--where", "inclination >> 3"], "inclination >> 3"),
        (["--where", "(fon == 1"], "missing ')'"),
        (["--where", "__import__('os') == 1"], "unexpected"),
        (["--where", "colour == 'red'"], "unknown column 'colour'"),
        (["--stratify", "nope"], "no label column 'nope'"),
        (["--test", "0.6", "--val", "0.5"], "leaves no training rows"),
        (["--where", "inclination > 1000"], "no rows left"),
    ],
)
def test_bad_split_options(galprep, tmp_path, args, message):
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    r = galprep("split", src, "-o", out, *args)
    assert r.code == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not out.exists()


def test_test_out_of_range_is_usage_error(galprep, tmp_path):
    src = labelled(tmp_path / "d.h5")
    r = galprep("split", src, "-o", tmp_path / "s", "--test", "1.5")
    assert r.code == 2 and "--test" in r.stderr and not (tmp_path / "s").exists()


def test_existing_split_needs_overwrite(galprep, tmp_path):
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    assert galprep("split", src, "-o", out, "--test", "0.5").code == 0
    before = ids_of(out / "test_000.h5")
    r = galprep("split", src, "-o", out, "--test", "0.5", "--seed", "9")
    assert r.code == 1 and "--overwrite" in r.stderr and ids_of(out / "test_000.h5") == before


def test_expression_language():
    cols = {"a": np.array([1, 2, 3, 4]), "s": np.array(["x", "y", "x", "z"])}

    def get(names):
        return {n: cols[n] for n in names}

    def ev(text):
        return expr.evaluate(text, get, 4).tolist()

    assert ev("a >= 2 and a < 4") == [False, True, True, False]
    assert ev("not a == 2 or s == 'z'") == [True, False, True, True]
    assert ev('not (a == 2 or s == "z")') == [True, False, True, False]
    assert ev("a > 1 and a < 4 or s = 'x'") == [True, True, True, False]  # and binds tighter
    assert ev("a != -1 and a <= 2.5e0") == [True, True, False, False]
    assert expr.columns(expr.parse("a > 1 or (s == 'x' and b)")) == {"a", "s", "b"}
    for bad in ("a >", "a > 1 and", "(a > 1", "a > 1)", "a < 2 < 3", "s", "a ~ 2", ""):
        with pytest.raises(expr.ExprError):
            ev(bad)
    with pytest.raises(expr.ExprError, match="cannot compare text"):
        ev("s > 1")


def test_stratify_on_a_continuous_label_uses_deciles(galprep, tmp_path):
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    assert galprep("split", src, "-o", out, "--test", "0.25", "--stratify", "inclination").code == 0
    batch, _ = read_galaxies(out / "test_000.h5")
    counts, _ = np.histogram(batch["inclination"], bins=[0, 22.5, 45, 67.5, 90])
    assert batch["inclination"].size == 10 and counts.min() >= 2


def test_overwrite_replaces_a_whole_earlier_split(galprep, tmp_path):
    """Bags of an earlier split of the same file are not left beside a new one: without
    --overwrite that is an error naming them; with it they are removed once the new split is
    written.  Parts of other files, and inputs that look like parts, are never touched."""
    src = labelled(tmp_path / "d.h5")
    out = tmp_path / "s"
    assert galprep("split", src, "-o", out, "--test", "0.2", "--subsamples", "2").code == 0
    assert sorted(os.listdir(out)) == [
        "test_000.h5",
        "test_001.h5",
        "test_002.h5",
        "train_000.h5",
        "train_001.h5",
        "train_002.h5",
    ]
    r = galprep("split", src, "-o", tmp_path / "s", "--test", "0.3", "--format", "npz")
    assert r.code == 1 and "earlier split" in r.stderr and "--overwrite" in r.stderr
    assert len(os.listdir(out)) == 6
    r = galprep("split", src, "-o", out, "--test", "0.3", "--format", "npz", "--overwrite")
    assert r.code == 0, r.stderr
    assert sorted(os.listdir(out)) == ["test_000.npz", "train_000.npz"]
    # a training part split again into train/val beside its test part: nothing else goes
    part = out / "train_000.npz"
    r = galprep("split", part, "-o", out, "--val", "0.5", "--overwrite")
    assert r.code == 0, r.stderr
    assert sorted(os.listdir(out)) == [
        "test_000.npz",
        "train_000.h5",
        "train_000.npz",
        "val_000.h5",
    ]
    (out / "val_001.h5").write_bytes(b"not a galaxy file")  # unreadable: left alone
    r = galprep("split", part, "-o", out, "--val", "0.4", "--overwrite")
    assert r.code == 0 and (out / "val_001.h5").exists()
