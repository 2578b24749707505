"""Built-in models: each builds, learns a trivially learnable task, and its run is usable."""

import json

import numpy as np
import pytest

from galtools.arrayfile import write_galaxies
from galtools.errors import GalError
from galtools.meta import new_meta

KW = dict(batch_size=16, seed=1, log_every=1)


def learnable(path, n=192, shape=(8, 8, 1), seed=0, noise=0.1):
    """Images whose mean brightness b∈[0,1] decides every label; targets = noiseless images."""
    rng = np.random.default_rng(seed)
    b = rng.uniform(0, 1, n)
    clean = np.broadcast_to(b[:, None, None, None], (n, *shape)).astype("f4")
    clean = clean * np.linspace(0.5, 1.5, shape[1], dtype="f4")[None, None, :, None]
    images = (clean + rng.normal(size=clean.shape) * noise).astype("f4")
    batch = {
        "images": images,
        "targets": clean.copy(),
        "inclination": 45 + 45 * b,
        "kind": (b > 0.5).astype(int),
        "real": (b > 0.3).astype(int),
        "redshift": 0.1 + b,
    }
    write_galaxies(
        path,
        batch,
        new_meta(bands=[f"b{i}" for i in range(shape[-1])], classes={"kind": ["faint", "bright"]}),
    )
    return batch


def losses(metrics, key="loss"):
    return np.array([r[key] for r in metrics["steps"]])


def falls(values, k=4):
    return values[-k:].mean() < 0.8 * values[:k].mean()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    batch = learnable(d / "train.h5")
    learnable(d / "val.h5", n=64, seed=5)
    return d, batch


def test_registry_lists_builtins():
    from galtools import models

    assert {
        "vgg",
        "cnn-classifier",
        "dcgan",
        "twoinone",
        "cgan",
        "resnet-denoiser",
        "ridge-histogram",
    } <= set(models.known())
    with pytest.raises(GalError, match="unknown model 'nope'.*known: .*vgg"):
        models.get("nope")


def test_vgg_regression_learns_and_inverts_scaling(data, tmp_path):
    from galtools.runs import load_run
    from galtools.train.loop import train

    d, batch = data
    m = train(
        [d / "train.h5"],
        tmp_path / "run",
        "vgg",
        {"target": "inclination"},
        val=str(d / "val.h5"),
        passes=3,
        lr=3e-3,
        **KW,
    )
    assert m["status"] == "finished" and m["step"] == 36
    assert falls(losses(m))
    run = load_run(tmp_path / "run")
    assert run.task == "regression" and run.target == "inclination"
    assert run.config["columns"][0]["lo"] == pytest.approx(batch["inclination"].min())
    pred = run.predict(batch["images"][:40])
    assert pred.shape == (40,)
    assert 40 < pred.mean() < 95  # physical units, not the [-1, 1] the network sees
    rmse = np.sqrt(np.mean((pred - batch["inclination"][:40]) ** 2))
    assert rmse < np.std(batch["inclination"])
    assert run.features(batch["images"][:5]).shape == (5, 128)
    assert m["evals"][-1]["val_rmse"] < np.std(batch["inclination"])
    for name in ("config.json", "model.keras", "metrics.json", "curves.png", "train.log"):
        assert (tmp_path / "run" / name).is_file()
    with pytest.raises(GalError, match="takes 8×8×1 images, got 6×8×1"):
        run.predict(np.zeros((2, 6, 8, 1)))


@pytest.mark.parametrize(
    "model,extra",
    [
        ("vgg", {}),
        ("cnn-classifier", {"backbone": "8,16", "head": "32,relu,16", "normalize": "global"}),
    ],
)
def test_classifiers_learn(data, tmp_path, model, extra):
    from galtools.runs import load_run
    from galtools.train.loop import train

    d, batch = data
    m = train(
        [d / "train.h5"],
        tmp_path / "run",
        model,
        dict(target="kind", **extra),
        val=str(d / "val.h5"),
        passes=3,
        lr=3e-3,
        **KW,
    )
    assert falls(losses(m))
    run = load_run(tmp_path / "run")
    assert run.class_names == ["faint", "bright"]
    p = run.predict(batch["images"][:64])
    assert p.shape == (64, 2) and np.allclose(p.sum(1), 1, atol=1e-4)
    assert (p.argmax(1) == batch["kind"][:64]).mean() > 0.8
    assert "top1" in m["steps"][0] and m["evals"][-1]["val_top1"] > 0.8


def test_cnn_classifier_head_spec_and_top3(tmp_path):
    from galtools.models.classifier import parse_head
    from galtools.runs import load_run
    from galtools.train.loop import train

    assert parse_head("2048,relu,1024,relu,512") == [2048, "relu", 1024, "relu", 512]
    with pytest.raises(GalError, match="neither a width"):
        parse_head("64,bogus")
    rng = np.random.default_rng(3)
    k = rng.integers(0, 5, 80)
    images = (k[:, None, None, None] + rng.normal(size=(80, 8, 8, 1)) * 0.1).astype("f4")
    write_galaxies(tmp_path / "five.h5", {"images": images, "k": k}, new_meta(bands=["r"]))
    m = train(
        [tmp_path / "five.h5"],
        tmp_path / "run",
        "cnn-classifier",
        {"target": "k", "backbone": "8", "head": "16,relu", "normalize": "global"},
        passes=1,
        **KW,
    )
    assert "top3" in m["steps"][-1]
    assert load_run(tmp_path / "run").class_names == ["0", "1", "2", "3", "4"]


def test_cnn_classifier_judges_shape_not_brightness(tmp_path):
    """Default per-image standardisation: predictions do not change when an image is made
    100× brighter, so a bright star and a faint one are the same class (the heavy-tailed
    fluxes of real stamps no longer upset batch-norm statistics at inference)."""
    from galtools.runs import load_run
    from galtools.train.loop import train

    rng = np.random.default_rng(4)
    n = 96
    y, x = np.mgrid[0:8, 0:8] - 3.5
    round_ = np.exp(-(x**2 + y**2) / 4)
    elongated = np.exp(-(x**2 / 12 + y**2 / 1.5))
    k = rng.integers(0, 2, n)
    flux = 10 ** rng.uniform(0, 3, n)  # three decades of brightness
    images = (
        np.where(k[:, None, None], elongated, round_) * flux[:, None, None]
        + rng.normal(size=(n, 8, 8)) * 0.05
    )[..., None].astype("f4")
    write_galaxies(
        tmp_path / "shapes.h5",
        {"images": images, "k": k},
        new_meta(bands=["r"], classes={"k": ["round", "elongated"]}),
    )
    train(
        [tmp_path / "shapes.h5"],
        tmp_path / "run",
        "cnn-classifier",
        {"target": "k", "backbone": "8,16", "head": "16,relu"},
        passes=10,
        lr=3e-3,
        **KW,
    )
    run = load_run(tmp_path / "run")
    assert run.config["model_config"]["per_image"] is True
    p = run.predict(images)
    np.testing.assert_allclose(run.predict(images * 100), p, atol=1e-4)
    assert (p.argmax(1) == k).mean() > 0.9


def test_denoiser_learns_any_size(data, tmp_path):
    from galtools.runs import load_run
    from galtools.train.loop import train

    d, batch = data
    m = train([d / "train.h5"], tmp_path / "run", "resnet-denoiser", {}, passes=2, lr=2e-3, **KW)
    assert falls(losses(m))
    run = load_run(tmp_path / "run")
    assert run.input_shape is None and run.bands == ["b0"]
    out = run.predict(np.ones((3, 13, 5, 1), "f4"))
    assert out.shape == (3, 13, 5, 1)
    with pytest.raises(GalError, match="takes 1 bands, got 2"):
        run.predict(np.ones((3, 13, 5, 2), "f4"))


def test_ridge_histogram(data, tmp_path):
    from galtools.runs import load_run
    from galtools.train.loop import train

    d, _ = data
    val = learnable(tmp_path / "v.h5", n=100, seed=9)
    m = train(
        [d / "train.h5"],
        tmp_path / "run",
        "ridge-histogram",
        {"target": "inclination", "features": "quantile"},
        val=str(tmp_path / "v.h5"),
        **KW,
    )
    run = load_run(tmp_path / "run")
    pred = run.predict(val["images"])
    rmse = np.sqrt(np.mean((pred - val["inclination"]) ** 2))
    assert rmse < 0.25 * np.std(val["inclination"])
    assert m["evals"][0]["val_rmse"] == pytest.approx(rmse)
    assert run.features(val["images"][:4]).shape == (4, 32)
    with np.load(tmp_path / "run" / "weights.npz", allow_pickle=False) as f:
        assert f["alpha"] in f["alphas"]


@pytest.mark.parametrize(
    "model,opts,aux",
    [
        ("dcgan", {}, None),
        ("twoinone", {"target": "inclination"}, "score_loss"),
        ("cgan", {"condition": ["redshift"]}, "cond_loss"),
    ],
)
def test_gans(tmp_path, model, opts, aux):
    from galtools.runs import load_run
    from galtools.train.loop import train

    batch = learnable(tmp_path / "g.h5", n=96, shape=(10, 6, 2))
    m = train(
        [tmp_path / "g.h5"],
        tmp_path / "run",
        model,
        opts,
        passes=2,
        lr=2e-3,
        batch_size=16,
        seed=1,
        log_every=1,
    )
    assert m["step"] == 12
    if aux:
        assert falls(losses(m, aux), 3)
    run = load_run(tmp_path / "run")
    cond = {"redshift": np.linspace(0.1, 1.1, 5)} if model == "cgan" else None
    gen = run.generate(5, seed=3, conditions=cond)
    assert gen.shape == (5, 10, 6, 2) and np.isfinite(gen).all()
    assert np.array_equal(gen, run.generate(5, seed=3, conditions=cond))
    assert not np.array_equal(gen, run.generate(5, seed=4, conditions=cond))
    assert (tmp_path / "run" / "samples" / "pass-002.png").is_file()
    assert run.features(batch["images"][:3]).shape == (3, 128)
    if model == "twoinone":
        s = run.score(batch["images"][:7])
        assert s["score"].shape == (7,) and ((s["p_real"] >= 0) & (s["p_real"] <= 1)).all()
        assert 40 < s["score"].mean() < 95
    else:
        with pytest.raises(GalError, match="no score head"):
            run.score(batch["images"][:2])
    if model == "cgan":
        with pytest.raises(GalError, match="needs conditions"):
            run.generate(2)
    with pytest.raises(GalError, match="does not predict"):
        run.predict(batch["images"][:2])
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"] == model and cfg["task"] == "gan"


def test_builtin_specs_declare_options_columns_and_abilities():
    from galtools import models

    specs = {name: models.get(name) for name in models.known()}
    flags = {name: [o.flag for o in spec.options] for name, spec in specs.items()}
    assert flags["vgg"] == [
        "--target", "--target-range", "--classes", "--arch", "--output-activation",
        "--conv-dropout",
    ]  # fmt: skip
    assert flags["cnn-classifier"][2:] == ["--backbone", "--head", "--normalize"]
    assert flags["dcgan"] == ["--width"] and flags["cgan"] == ["--condition", "--width"]
    assert flags["twoinone"] == ["--target", "--real-column", "--width"]
    assert flags["ridge-histogram"] == ["--target", "--features", "--bins"]
    assert flags["resnet-denoiser"] == []
    assert specs["twoinone"].abilities == {"generates", "scores"}
    assert specs["cgan"].abilities == {"generates", "conditions"}
    assert specs["resnet-denoiser"].abilities == {"denoises"}
    assert specs["vgg"].abilities == {"predicts"}
    assert [(c.option, c.kind, c.role) for c in specs["twoinone"].columns] == [
        ("target", "scaled", "target"),
        ("real_column", "binary", "label"),
    ]
    assert models.with_ability("scores") == ["twoinone"]
    assert models.able("generates") == "cgan, dcgan, ddpm or twoinone"
    assert specs["ddpm"].abilities == {"generates", "conditions"}
    for spec in specs.values():
        assert models.check(spec) is spec


def test_check_rejects_bad_declarations():
    from galtools import models
    from galtools.params import Option

    class Spec(models.ModelSpec):
        name = "bad"
        task = "gan"
        abilities = frozenset({"generates"})

        def build(self, config):
            return None

    def fails(match, **attrs):
        spec = Spec()
        for key, value in attrs.items():
            setattr(spec, key, value)
        with pytest.raises((TypeError, ValueError), match=match):
            models.check(spec)

    models.check(Spec())
    fails("is one of train-batch's own", options=(Option("lr", "x", kind="float"),))
    fails("column option 'target' is not one of its options", columns=(models.Column("target"),))
    fails("column kind 'log'", options=(models.TARGET,), columns=(models.Column("target", "log"),))
    fails("column role 'x'", options=(models.TARGET,), columns=(models.Column("target", role="x"),))
    fails("more than one target", options=(models.TARGET, Option("b", "y")),
          columns=(models.Column("target"), models.Column("b")))  # fmt: skip
    fails("the 'conditions' ability and a condition column",
          abilities=frozenset({"generates", "conditions"}))  # fmt: skip
    fails("a regression model needs a target column", task="regression")
    fails("columns must be a tuple", columns="target")


def test_runs_written_before_abilities_were_recorded(tmp_path):
    """Old config.json files (no "abilities") still load: the model spec answers."""
    from galtools.runs import load_run

    config = {
        "format": "galtools-run",
        "version": 1,
        "model": "twoinone",
        "task": "gan",
        "target": "sc",
        "columns": [{"name": "sc", "kind": "scaled", "lo": 0, "hi": 5}],
    }
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert load_run(tmp_path / "old").abilities == {"generates", "scores"}
    config["abilities"] = ["generates"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    run = load_run(tmp_path / "old")
    with pytest.raises(
        GalError, match=r"has no score head \(a run of a model that can: twoinone\)"
    ):
        run.score(np.zeros((1, 8, 8, 3)))
    del config["columns"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    with pytest.raises(GalError, match="config.json lacks 'columns'"):
        load_run(tmp_path / "old")
    (tmp_path / "old" / "config.json").write_text("{")
    with pytest.raises(GalError, match="corrupt config.json"):
        load_run(tmp_path / "old")
