"""The built-in GANs (dcgan, cgan, twoinone): they train a few steps on tiny data on both Keras
backends, their losses behave, the weight average is what samples, a cgan follows its
condition, runs resume exactly after SIGTERM, and runs of the older architecture still
generate but refuse to resume with one clear line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_backends import NO_TF
from tests.tinyruns import sigterm_after, tiny_data, tiny_run

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def built(name):
    """A fresh, untrained GAN of the tiny run ``name``'s config, and that config."""
    from galtools import models
    from galtools.train.rundir import read_config

    config = read_config(tiny_run(name))
    models.quiet_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    return models.get(name).build(config), config


def batch(config, n=16, seed=0):
    from galtools.arrayfile import read_galaxies
    from galtools.train.data import xy

    data = read_galaxies(tiny_data())[0]
    rows = np.random.default_rng(seed).choice(len(data["images"]), n, replace=False)
    return xy({k: v[rows] for k, v in data.items()}, config)


@pytest.mark.parametrize("name", ["dcgan", "cgan", "twoinone"])
def test_each_gan_trains_and_emits_images_of_the_data_shape(name):
    from galtools.models.gan import ARCH
    from galtools.runs import load_run

    run = load_run(tiny_run(name))
    assert run.config["model_config"]["arch"] == ARCH
    steps = json.loads(Path(run.path, "metrics.json").read_text())["steps"]
    for key in ("loss", "d_adv", "g_adv", "r1"):
        assert all(np.isfinite(s[key]) for s in steps), key
    assert steps[0]["r1"] > 0  # the first step computes the penalty
    cond = {"z": np.linspace(0, 1, 5)} if name == "cgan" else None
    images = run.generate(5, seed=2, conditions=cond)
    assert images.shape == (5, 8, 8, 3) and np.isfinite(images).all()
    heads = set(run.discriminator().output)
    expected = {"dcgan": {"real"}, "cgan": {"real", "conditions", "embedding"}}
    assert heads == expected.get(name, {"real", "score", "label"})
    assert run.features(images).shape == (5, 128)
    if name == "twoinone":
        assert run.score(images)["score"].shape == (5,)


def test_discriminator_learns_a_fixed_batch_and_r1_is_finite():
    gan, config = built("dcgan")
    gan.d_opt.learning_rate = gan.g_opt.learning_rate = 2e-3
    x, _ = batch(config)
    logs = [gan.train_on_batch(x, None, return_dict=True) for _ in range(12)]
    d = np.array([r["d_adv"] for r in logs])
    assert d[-3:].mean() < d[:3].mean() - 0.1  # it learns to tell this batch from fakes
    r1 = np.array([r["r1"] for r in logs])
    every = gan.r1_every
    assert np.isfinite(r1).all() and (r1[::every] > 0).all()
    assert not np.delete(r1, np.arange(0, len(r1), every)).any()  # lazy: every k-th step


def test_r1_penalty_changes_the_discriminator_update():
    import keras

    from galtools.models.gan import build_discriminator, build_generator, make_gan_class

    _, config = built("dcgan")
    x, _ = batch(config)
    weights = []
    for gamma in (0.0, 50.0):
        keras.utils.set_random_seed(0)
        gan = make_gan_class()(build_generator(config), build_discriminator(config), r1=gamma)
        gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
        logs = gan.train_on_batch(x, None, return_dict=True)  # step 0 computes R1
        assert ("r1" in logs) == bool(gamma) and logs.get("r1", 1) > 0
        weights.append(gan.critic.get_weights())
    assert any(not np.allclose(a, b) for a, b in zip(*weights))


def test_model_keras_holds_the_weight_average(tmp_path):
    import keras

    from galtools.models import get, load_keras
    from galtools.models.gan import build_discriminator, build_generator, ema_beta, make_gan_class

    _, config = built("cgan")
    keras.utils.set_random_seed(0)
    gan = make_gan_class()(
        build_generator(config), build_discriminator(config), ema=0.5, ema_rampup=0
    )
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    x, y = batch(config)
    expected = gan.live_generator.get_weights()
    for a, b in zip(gan.generator.get_weights(), expected):
        np.testing.assert_array_equal(a, b)  # the average starts at the initial weights
    for _ in range(3):
        gan.train_on_batch(x, y)
        expected = [0.5 * a + 0.5 * b for a, b in zip(expected, gan.live_generator.get_weights())]
    average = gan.generator.get_weights()
    for a, b in zip(average, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(average, gan.live_generator.get_weights()))
    get("cgan").save(gan, tmp_path)
    for a, b in zip(average, load_keras(tmp_path / "model.keras").get_weights()):
        np.testing.assert_array_equal(a, b)
    # the built-in setting: a half-life of 5 % of the steps so far, at most `ema`
    assert ema_beta(0, 0.999, 0.05) < 1e-3 and ema_beta(99, 0.999, 0.05) == 0.5 ** (1 / 5)
    assert ema_beta(10**6, 0.999, 0.05) == 0.999


def test_cgan_output_follows_its_condition():
    from galtools.runs import load_run

    run = load_run(tiny_run("cgan"))
    lo = run.generate(6, seed=3, conditions={"z": np.zeros(6)})
    hi = run.generate(6, seed=3, conditions={"z": np.ones(6)})
    again = run.generate(6, seed=3, conditions={"z": np.zeros(6)})
    np.testing.assert_array_equal(lo, again)
    assert np.abs(lo - hi).mean() > 1e-3 * np.abs(lo).mean()


def _old_run(path, name="dcgan"):
    """A run directory as the GANs before architecture v2 wrote them (transposed
    convolutions, a linear pixel map, no "arch" in model_config)."""
    import keras

    from galtools.models import save_keras
    from galtools.models.layers import denormalise

    norm = {"offset": [0.5, 0.5, 0.5], "scale": [2.0, 2.0, 2.0]}
    z = keras.Input((64,), name="z")
    x = keras.layers.Dense(2 * 2 * 8, name="g_dense")(z)
    x = keras.layers.Reshape((2, 2, 8), name="g_reshape")(x)
    x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="g_up1")(x)
    x = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="g_up2")(x)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", name="g_out")(x)
    os.makedirs(path / "checkpoints")
    save_keras(keras.Model(z, denormalise(x, norm, name="images")), str(path / "model.keras"))
    config = json.loads((tiny_run(name) / "config.json").read_text())
    config["norm"] = norm
    config["model_config"] = {"mode": name, "latent_dim": 64, "width": 4, "conditions": []}
    (path / "config.json").write_text(json.dumps(config))
    (path / "checkpoints" / "step-000000004.npz").write_bytes(b"")


def test_old_format_run_generates_but_refuses_to_resume(tmp_path, galprep):
    from galtools.runs import load_run

    _old_run(tmp_path / "old")
    images = load_run(tmp_path / "old").generate(3, seed=1)
    assert images.shape == (3, 8, 8, 3) and np.isfinite(images).all()
    before = (tmp_path / "old" / "config.json").read_text()
    r = galprep(
        "train-batch", tiny_data(), "-o", tmp_path / "old", "--model", "dcgan", "--width", "4",
        "--batch-size", "16", "--passes", "2",
    )  # fmt: skip
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "GAN architecture v1" in r.stderr and "cannot resume" in r.stderr
    assert "--restart" in r.stderr and "still generates" in r.stderr
    assert (tmp_path / "old" / "config.json").read_text() == before  # nothing written


def _train_cmd(run, *extra):
    return [
        sys.executable, "-m", "galtools.cli", "train-batch", str(tiny_data()), "-o", str(run),
        "--model", "twoinone", "--target", "sc", "--width", "4", "--batch-size", "8",
        "--passes", "6", "--log-every", "1", "-q", *extra,
    ]  # fmt: skip


def test_gan_resumes_exactly_after_sigterm(tmp_path, galprep):
    from galtools.runs import load_run

    run = tmp_path / "run"
    code, err = sigterm_after(_train_cmd(run), run, 3, ENV, timeout=120)
    assert code == 75, err
    stopped = json.loads((run / "metrics.json").read_text())["step"]
    assert 3 <= stopped < 48
    r = galprep(*_train_cmd(run)[3:])
    assert r.code == 0, r.stderr
    m = json.loads((run / "metrics.json").read_text())
    assert m["status"] == "finished" and [s["step"] for s in m["steps"]] == list(range(1, 49))
    # the same as a run never stopped
    r = galprep(*_train_cmd(tmp_path / "whole")[3:])
    assert r.code == 0, r.stderr
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    np.testing.assert_allclose(
        [s["loss"] for s in m["steps"]], [s["loss"] for s in whole["steps"]], rtol=1e-4
    )
    a, b = (load_run(p).generate(4, seed=0) for p in (run, tmp_path / "whole"))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())


JAX_SCRIPT = (
    NO_TF
    + """
import json, sys, numpy as np
import keras
from galtools.runs import load_run
from galtools.train.loop import train
out, data, tf_run = sys.argv[1:4]
m = train([data], out + "/run", "cgan", {"condition": ["z"], "width": 4}, batch_size=16,
          passes=1, log_every=1)
cond = {"z": np.linspace(0, 1, 4)}
np.save(out + "/jax_own.npy", load_run(out + "/run").generate(4, seed=5, conditions=cond))
np.save(out + "/jax_tf.npy", load_run(tf_run).generate(4, seed=5, conditions=cond))
tf = sys.modules.get("tensorflow") is not None
print(json.dumps({"backend": keras.backend.backend(), "tf": tf, "steps": m["steps"]}))
"""
)


def test_trains_on_jax_without_tensorflow_and_runs_cross_backends(tmp_path):
    from galtools.runs import load_run

    tf_run = tiny_run("cgan")
    env = dict(ENV, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path), str(tiny_data()), str(tf_run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["backend"] == "jax" and not got["tf"]
    assert len(got["steps"]) == 4
    for s in got["steps"]:
        assert all(np.isfinite(s[k]) for k in ("loss", "d_adv", "g_adv", "r1", "cond_loss"))
    cond = {"z": np.linspace(0, 1, 4)}
    for run, name in ((tmp_path / "run", "jax_own"), (tf_run, "jax_tf")):
        here = load_run(run).generate(4, seed=5, conditions=cond)  # on TensorFlow
        there = np.load(tmp_path / f"{name}.npy")
        np.testing.assert_allclose(there, here, rtol=1e-4, atol=1e-4 * np.abs(here).max())
