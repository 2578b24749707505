"""train-batch's recipe on real runs: what metrics.json and config.json record, augmentation
on the fly (its draws, refused ops), the moving average, early stopping, wrong settings."""

import json

import numpy as np
import pytest

from galtools.train.data import OnTheFly
from tests.test_models import learnable

FAST = ["--batch-size", "8", "--log-every", "1", "-q"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipe")
    learnable(d / "train.h5", n=64)
    learnable(d / "val.h5", n=32, seed=5)
    return d


def one_line(r, *parts):
    assert r.code != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    for part in parts:
        assert part in r.stderr, r.stderr


def test_the_recipe_is_recorded_and_followed(files, tmp_path, galprep):
    run = tmp_path / "run"
    r = galprep("train-batch", files / "train.h5", "-o", run, "--model", "vgg", "--target",
                "inclination", "--val", files / "val.h5", "--passes", "2", "--warmup", "3",
                "--augment", "dihedral", *FAST)  # fmt: skip
    assert r.code == 0, r.stderr
    m = json.loads((run / "metrics.json").read_text())
    tr = json.loads((run / "config.json").read_text())["training"]
    want = {"optimizer": "adamw", "schedule": "cosine", "warmup": 3, "augment": "dihedral"}
    assert {k: m["recipe"][k] for k in want} == want == {k: tr[k] for k in want}
    assert m["recipe"]["ema_used"] == pytest.approx(0.5)  # 16 steps: an average of 2 at most
    lrs = [s["lr"] for s in m["steps"]]
    assert lrs[:3] == pytest.approx([5e-4, 1e-3, 1.5e-3])  # warm-up to vgg's 2e-3
    assert lrs[3] == pytest.approx(2e-3) and lrs[-1] < 1e-4  # then cosine down
    # the saved network is the moving average: it scores as the last evaluation said
    from galtools.runs import load_run
    from galtools.train.evaluate import evaluate_run

    got = evaluate_run(load_run(run), files / "val.h5")
    assert got["val_rmse"] == pytest.approx(m["evals"][-1]["val_rmse"], rel=1e-4)


def test_changing_the_recipe_of_a_run_is_refused(files, tmp_path, galprep):
    run = tmp_path / "run"
    base = ["train-batch", files / "train.h5", "-o", run, "--model", "vgg", "--target",
            "inclination", *FAST]  # fmt: skip
    assert galprep(*base).code == 0
    one_line(galprep(*base, "--ema", "0", "--passes", "2"), "was trained with ema=0.99, now 0.0")
    r = galprep(*base, "--augment", "hflip=0.5", "--passes", "2")
    one_line(r, "was trained with augment='dihedral', now 'hflip=0.5'")


def test_augment_ops_a_model_refuses_and_bad_ops(files, tmp_path, galprep):
    common = ["-o", tmp_path / "r", *FAST]
    r = galprep("train-batch", files / "train.h5", "--model", "resnet-denoiser",
                "--augment", "dihedral,gamma=0.8:1.2", *common)  # fmt: skip
    one_line(r, "--augment gamma: model resnet-denoiser does not keep its labels valid")
    r = galprep("train-batch", files / "train.h5", "--model", "vgg", "--target", "inclination",
                "--augment", "rotate=400:10", *common)  # fmt: skip
    one_line(r, "--augment:", "range 400:10 is reversed")
    r = galprep("train-batch", files / "train.h5", "--model", "vgg", "--target", "inclination",
                "--augment", "spin=3", *common)  # fmt: skip
    one_line(r, "unknown augment op 'spin'")
    assert not (tmp_path / "r").exists()  # nothing written


@pytest.mark.parametrize(
    "args, message",
    [
        (["--weight-decay", "0.1", "--optimizer", "adam"], "--weight-decay needs --optimizer"),
        (["--patience", "2", "--schedule", "cosine"], "--patience halves the rate of --sched"),
        (["--early-stop", "2"], "--early-stop needs --val FILE"),
        (["--ema", "1.5"], "Invalid value for '--ema'"),
    ],
)  # fmt: skip
def test_bad_recipe_settings(files, tmp_path, galprep, args, message):
    r = galprep("train-batch", files / "train.h5", "-o", tmp_path / "r", "--model", "vgg",
                "--target", "inclination", *args, *FAST)  # fmt: skip
    one_line(r, message)


def test_early_stop_restores_the_best_evaluated_weights(files, tmp_path, galprep):
    from galtools.runs import load_run
    from galtools.train.evaluate import evaluate_run

    run = tmp_path / "run"
    # a rate far too high for a flat plateau: validation stops improving within a few passes
    r = galprep("train-batch", files / "train.h5", "-o", run, "--model", "vgg", "--target",
                "inclination", "--val", files / "val.h5", "--passes", "12", "--early-stop", "2",
                "--schedule", "constant", "--lr", "0.05", "--ema", "0", *FAST)  # fmt: skip
    assert r.code == 0, r.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "stopped early" and m["step"] < 96
    best = min(e["val_rmse"] for e in m["evals"])
    assert m["evals"][-1]["val_rmse"] > best  # it stopped after worse evaluations...
    got = evaluate_run(load_run(run), files / "val.h5")
    assert got["val_rmse"] == pytest.approx(best, rel=1e-4)  # ...and kept the best weights
    r = galprep("train-batch", files / "train.h5", "-o", run, "--model", "vgg", "--target",
                "inclination", "--val", files / "val.h5", "--passes", "12", "--early-stop", "2",
                "--schedule", "constant", "--lr", "0.05", "--ema", "0", "--batch-size", "8",
                "--log-every", "1")  # fmt: skip
    assert r.code == 0 and "early stop at step" in r.stderr  # a rerun does not train on


def test_on_the_fly_draws_depend_on_seed_and_step_only():
    x = np.arange(2 * 4 * 4, dtype="f4").reshape(2, 4, 4, 1)
    aug = OnTheFly("dihedral,noise=0.5", seed=3, task="regression")
    a, _ = aug(7, x, None)
    b, _ = OnTheFly("dihedral,noise=0.5", seed=3, task="regression")(7, x, None)
    np.testing.assert_array_equal(a, b)  # the same step of another process or run
    assert not np.array_equal(a, aug(8, x, None)[0])  # another step
    assert not np.array_equal(a, OnTheFly("dihedral", seed=4, task="regression")(7, x, None)[0])
    # a denoiser's clean targets turn with their images; noise goes to the input only
    d = OnTheFly("rot90=1", seed=0, task="denoise")
    xi, yi = d(0, x, x.copy())
    np.testing.assert_array_equal(xi, yi)
    assert not np.array_equal(xi, x)


def test_a_run_of_galtools_0x_continues_with_its_recipe(files, tmp_path, galprep):
    """A run made before the recipe existed (no recipe in config.json, no random generators in
    its checkpoints) continues when given its settings, and is refused in one line without."""
    run = tmp_path / "run"
    old = ["--optimizer", "adam", "--lr", "1e-3", "--schedule", "constant", "--warmup", "0",
           "--ema", "0", "--clip", "0", "--weight-decay", "0", "--augment", "none"]  # fmt: skip
    base = ["train-batch", files / "train.h5", "-o", run, "--model", "vgg", "--target",
            "inclination", *FAST]  # fmt: skip
    assert galprep(*base, *old).code == 0
    config = json.loads((run / "config.json").read_text())
    for key in ("optimizer", "weight_decay", "schedule", "warmup", "ema", "clip", "augment"):
        del config["training"][key]
    (run / "config.json").write_text(json.dumps(config))
    path = run / "checkpoints" / "step-000000008.npz"
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    seeds = sorted(k for k in arrays if k != "state")[-1:]  # the head Dropout's seed state,
    assert arrays[seeds[0]].shape == (2,)  # last, which 0.x did not keep
    np.savez(path, **{k: v for k, v in arrays.items() if k not in seeds})
    one_line(galprep(*base, "--passes", "2"), "was trained with optimizer='adam', now 'adamw'")
    r = galprep(*base, *old, "--passes", "2")
    assert r.code == 0, r.stderr
    assert "resume vgg step 8/16" in (run / "train.log").read_text()


def test_a_model_adds_a_hook_of_its_own(files, tmp_path, monkeypatch):
    from galtools import models
    from galtools.models.vgg import VGG
    from galtools.train.hooks import Hook
    from galtools.train.loop import train

    class Count(Hook):
        name = "count"

        def __init__(self):
            self.n, self.steps = 0, []

        def after_step(self, loop, done, logs):
            self.n += 1
            self.steps.append(done)

        def state(self):
            return {"n": self.n}

    made = []

    class Spec(VGG):
        def hooks(self, config):
            made.append(Count())
            return made[-1:]

    monkeypatch.setattr(models, "get", lambda name: Spec())
    train([files / "train.h5"], tmp_path / "r", "vgg", {"target": "inclination"}, batch_size=8)
    assert made[0].steps == list(range(1, 9))
    with np.load(tmp_path / "r" / "checkpoints" / "step-000000008.npz") as f:
        state = json.loads(str(f["state"]))
    assert state["hooks"]["count"] == {"n": 8} and state["hooks"]["lr"]["scale"] == 1.0


def test_a_model_that_makes_its_own_optimizer_is_held_to_the_recipe():
    """--optimizer adamw and --clip are refused for a model whose optimizers ignore them."""
    import keras

    from galtools.errors import GalError
    from galtools.train.loop import _check_recipe

    class Spec:
        name = "own"

        def optimizers(self, model):
            return [keras.optimizers.Adam(1e-3)]

    _check_recipe(None, Spec(), {"optimizer": "adam", "clip": 0})  # as asked: fine
    with pytest.raises(GalError, match="--optimizer adamw: model own trains with adam"):
        _check_recipe(None, Spec(), {"optimizer": "adamw"})
    with pytest.raises(GalError, match="--clip: model own makes optimizers that do not clip"):
        _check_recipe(None, Spec(), {"optimizer": "adam", "clip": 1.0})


def test_vgg_old_network_on_request(files, tmp_path, galprep):
    """--output-activation tanh --conv-dropout 0.25 build galtools 0.x's vgg; new runs have
    a linear output and no conv-block Dropout."""
    from galtools import models

    base = ["train-batch", files / "train.h5", "--model", "vgg", "--target", "inclination", *FAST]
    assert galprep(*base, "-o", tmp_path / "new").code == 0
    assert galprep(*base, "-o", tmp_path / "old", "--output-activation", "tanh",
                   "--conv-dropout", "0.25").code == 0  # fmt: skip
    for name, act, drops in (
        ("new", "linear", ["head_drop"]),
        ("old", "tanh", ["block1_drop", "block2_drop", "head_drop"]),
    ):
        net = models.load_keras(tmp_path / name / "model.keras")
        assert net.get_layer("output").get_config()["activation"] == act
        assert [layer.name for layer in net.layers if layer.name.endswith("_drop")] == drops
    r = galprep(*base, "-o", tmp_path / "bad", "--conv-dropout", "1")
    one_line(r, "--conv-dropout must be in [0, 1), got 1")
