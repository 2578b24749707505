"""galprep generate: N, seeds, conditions, score threshold, montage, bad input."""

import numpy as np
import pytest

from galtools.arrayfile import read_galaxies, write_galaxies
from galtools.errors import GalError
from galtools.generation import Conditions, generate_file, parse_conditions
from galtools.meta import new_meta
from tests.fakerun import FakeRun, install
from tests.tinyruns import tiny_data, tiny_run


def test_parse_conditions():
    assert parse_conditions("redshift=0.3, log_mass=10.5") == {"redshift": 0.3, "log_mass": 10.5}
    for bad, words in [
        ("redshift", "NAME=VALUE"),
        ("z=abc", "not a number"),
        ("z=1,z=2", "twice"),
        ("z=nan", "finite"),
        ("", "give NAME"),
    ]:
        with pytest.raises(GalError, match=words):
            parse_conditions(bad)


def test_conditions_checks_names():
    run = FakeRun("c", "cgan", conditions=["z", "mass"])
    with pytest.raises(GalError, match="unknown condition colour .*knows z, mass"):
        Conditions(run, {"z": 1, "mass": 2, "colour": 3})
    with pytest.raises(GalError, match="give condition mass"):
        Conditions(run, {"z": 1})
    with pytest.raises(GalError, match="takes no conditions"):
        Conditions(FakeRun("d", "dcgan"), {"z": 1})
    c = Conditions(run, {"z": 0.5}, {"mass": np.array([9.0, 10.0, 11.0])})
    v = c.values([0, 1, 2, 3, 4])
    np.testing.assert_array_equal(v["z"], 0.5)
    np.testing.assert_array_equal(v["mass"], [9, 10, 11, 9, 10])  # rows cycle


def test_generate_n_seed_batches(tmp_path):
    run = FakeRun("g", "dcgan")
    a, b, c = (tmp_path / f"{k}.h5" for k in "abc")
    info = generate_file(
        run, 10, str(a), {"tool": "generate"}, seed=1, batch_size=4, montage=str(tmp_path / "m.png")
    )
    assert info == {"n": 10, "tries": 10, "batches": 3, "output": str(a), "acceptance": 1.0}
    assert run.calls == [] and (tmp_path / "m.png").stat().st_size > 100
    generate_file(run, 10, str(b), {}, seed=1, batch_size=4)
    generate_file(run, 10, str(c), {}, seed=2, batch_size=4)
    da, meta = read_galaxies(a)
    assert da["images"].shape == (10, 8, 8, 3)
    np.testing.assert_array_equal(da["images"], read_galaxies(b)[0]["images"])
    assert not np.allclose(da["images"], read_galaxies(c)[0]["images"])
    # the batches do not repeat each other
    assert not np.allclose(da["images"][:4], da["images"][4:8])
    assert meta["bands"] == ["g", "r", "i"] and meta["generated_by"] == "g"


def test_generate_conditions_are_stored(tmp_path):
    run = FakeRun("c", "cgan", conditions=["z"], input_shape=(4, 4, 1))
    out = tmp_path / "c.npz"
    generate_file(run, 5, str(out), {}, conditions=Conditions(run, {"z": 100.0}))
    data = read_galaxies(out)[0]
    np.testing.assert_array_equal(data["z"], 100.0)
    assert data["images"].mean() > 90  # the fake shifts images by the condition


def test_generate_min_score(tmp_path):
    run = FakeRun("t", "twoinone", input_shape=(4, 4, 1))
    out = tmp_path / "t.h5"
    info = generate_file(run, 20, str(out), {}, min_score=0.1, batch_size=8)
    data = read_galaxies(out)[0]
    assert len(data["images"]) == 20 and info["tries"] > 20
    assert np.all(data["score"] > 0.1)
    np.testing.assert_allclose(data["score"], data["images"].mean(axis=(1, 2, 3)), rtol=1e-5)
    with pytest.raises(GalError, match=r"only \d+ of 5 images scored above 5 in 100 tries"):
        generate_file(run, 5, str(tmp_path / "never.h5"), {}, min_score=5.0)
    assert not (tmp_path / "never.h5").exists()
    with pytest.raises(GalError, match="no score: --min-score needs"):
        generate_file(FakeRun("d", "dcgan"), 5, str(tmp_path / "x.h5"), {}, min_score=0.0)
    # a separate scorer
    generate_file(
        FakeRun("d", "dcgan", input_shape=(4, 4, 1)),
        6,
        str(tmp_path / "s.h5"),
        {},
        min_score=0.0,
        scorer=run,
    )
    assert np.all(read_galaxies(tmp_path / "s.h5")[0]["score"] > 0)


def test_generate_refuses_non_gan(tmp_path):
    with pytest.raises(GalError, match="vgg regression run predicting 'incl', which does not gen"):
        generate_file(FakeRun("v", "vgg", target="incl"), 3, str(tmp_path / "x.h5"), {})
    assert not (tmp_path / "x.h5").exists()


def test_cli_generate_conditions_from(galprep, tmp_path, monkeypatch):
    install(monkeypatch, {"c": FakeRun("c", "cgan", conditions=["z", "mass"])})
    cat = tmp_path / "cat.csv"
    cat.write_text("id,z,mass\n1,0.1,9\n2,0.2,10\n3,0.3,11\n")
    out = tmp_path / "g.h5"
    r = galprep("generate", "c", "-o", out, "--conditions-from", cat)
    assert r.code == 0, r.stderr
    data = read_galaxies(out)[0]
    np.testing.assert_array_equal(data["z"], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(data["mass"], [9, 10, 11])
    # from an array file's label columns, one fixed condition, cycling to N
    arr = tmp_path / "labels.npz"
    write_galaxies(arr, {"images": np.zeros((2, 2, 2, 1)), "z": np.array([1.0, 2.0])}, new_meta())
    r = galprep(
        "generate",
        "c",
        "-n",
        "5",
        "-o",
        tmp_path / "h.h5",
        "--conditions-from",
        arr,
        "--condition",
        "mass=12",
    )
    assert r.code == 0, r.stderr and "cycled" in r.stderr
    data = read_galaxies(tmp_path / "h.h5")[0]
    np.testing.assert_array_equal(data["z"], [1, 2, 1, 2, 1])
    np.testing.assert_array_equal(data["mass"], 12)


@pytest.mark.parametrize(
    "args, words",
    [
        (["v", "-n", "3"], "a vgg regression run predicting 'incl', which does not generate"),
        (["c", "-n", "3", "--condition", "colour=1"], "unknown condition colour"),
        (["c", "-n", "3"], "give condition z"),
        (["c", "--conditions-from", "cat.csv"], "no column z"),
        (["t", "-n", "3", "--min-score", "99"], "only 0 of 3 images scored above 99"),
        (["g", "-n", "3", "--condition", "z"], "not NAME=VALUE"),
    ],
)
def test_cli_generate_bad_input(galprep, tmp_path, monkeypatch, args, words):
    install(
        monkeypatch,
        {
            "v": FakeRun("v", "vgg", target="incl"),
            "c": FakeRun("c", "cgan", conditions=["z"]),
            "t": FakeRun("t", "twoinone"),
            "g": FakeRun("g", "dcgan"),
        },
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cat.csv").write_text("a,b\n1,2\n")
    r = galprep("generate", *args, "-o", "out.h5", "--montage", "m.png")
    assert r.code == 1, r.stderr
    assert words in r.stderr and r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.csv"]


# ----------------------------------------------------------------------------------- real runs


def test_real_dcgan_seeded(galprep, tmp_path):
    run = tiny_run("dcgan")
    outs = [tmp_path / f"{k}.npz" for k in range(3)]
    for out, seed in zip(outs, (4, 4, 5)):
        r = galprep("generate", run, "-n", "7", "-o", out, "--seed", seed, "--batch-size", "3")
        assert r.code == 0, r.stderr
    a, b, c = (read_galaxies(o)[0]["images"] for o in outs)
    assert a.shape == (7, 8, 8, 3) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_real_cgan_conditions_and_twoinone_threshold(galprep, tmp_path):
    cgan = tiny_run("cgan")
    r = galprep(
        "generate",
        cgan,
        "-o",
        tmp_path / "c.h5",
        "--conditions-from",
        tiny_data(),
        "--montage",
        tmp_path / "c.png",
    )
    assert r.code == 0, r.stderr
    data = read_galaxies(tmp_path / "c.h5")[0]
    np.testing.assert_array_equal(data["z"], read_galaxies(tiny_data())[0]["z"])
    assert (tmp_path / "c.png").exists()
    r = galprep("generate", cgan, "-n", "2", "-o", tmp_path / "x.h5", "--condition", "mass=1")
    assert r.code == 1 and "unknown condition mass" in r.stderr

    two = tiny_run("twoinone")
    r = galprep("generate", two, "-n", "16", "-o", tmp_path / "all.h5")
    assert r.code == 0, r.stderr
    scores = np.sort(read_galaxies(tmp_path / "all.h5")[0]["score"])
    threshold = float(scores[8])
    r = galprep("generate", two, "-n", "5", "-o", tmp_path / "best.h5", "--min-score", threshold)
    assert r.code == 0, r.stderr
    kept = read_galaxies(tmp_path / "best.h5")[0]
    assert len(kept["images"]) == 5 and np.all(kept["score"] > threshold)
    r = galprep(
        "generate",
        two,
        "-n",
        "5",
        "-o",
        tmp_path / "never.h5",
        "--min-score",
        scores[-1] + 1e6,
        "--max-tries",
        "40",
    )
    assert r.code == 1 and "in 40 tries" in r.stderr
    assert not (tmp_path / "never.h5").exists()
