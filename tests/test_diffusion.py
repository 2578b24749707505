"""The diffusion model ``ddpm``: it trains on tiny data with a falling loss, model.keras holds
the weight average, the DDIM sampler is deterministic for a seed and a step count,
classifier-free guidance changes the output, a run resumes exactly after SIGTERM, it trains
on JAX without TensorFlow and its run samples on either backend, and bad sampler settings
are one-line errors that write nothing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.test_backends import NO_TF
from tests.tinyruns import sigterm_after, tiny_data, tiny_run

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
# a small U-Net (one level) so that tracing the step takes seconds; 48 steps of 16 images
TINY = ["--width", "8", "--blocks", "1", "--levels", "1", "--lr", "0.003"]
STEPS = 48


def _train_args(run, *extra):
    return [
        "train-batch", str(tiny_data()), "-o", str(run), "--model", "ddpm", "--condition", "z",
        *TINY, "--batch-size", "16", "--epochs", "12", "--log-every", "1", "-q", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cond(cond_run):
    """The tiny conditional run, loaded once (its network traced once)."""
    from galtools.runs import load_run

    return load_run(cond_run)


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    """A tiny conditional run trained in one go."""
    from tests.conftest import run_galprep

    run = tmp_path_factory.mktemp("ddpm") / "whole"
    r = run_galprep(*_train_args(run))
    assert r.code == 0, r.stderr
    return run


def test_trains_with_falling_loss_and_emits_images_of_the_data_shape(cond_run, cond):
    m = _metrics(cond_run)
    loss = np.array([s["loss"] for s in m["steps"]])
    assert m["status"] == "finished" and len(loss) == STEPS and np.isfinite(loss).all()
    assert loss[-8:].mean() < 0.9 * loss[:8].mean()
    run = cond
    assert run.task == "diffusion" and run.conditions == ["z"] and "conditions" in run.abilities
    mc = run.config["model_config"]
    assert mc["scaling"]["kind"] == "asinh"
    assert mc["sampler"] == {"name": "ddim", "steps": 40, "guidance": 2.0}
    images = run.generate(5, seed=1, conditions={"z": np.linspace(0, 1, 5)}, steps=4)
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.float32
    assert np.isfinite(images).all()
    assert (cond_run / "samples" / "pass-001.png").stat().st_size > 100
    with pytest.raises(Exception, match="no 'features' layer"):
        run.features(images)


def test_model_keras_holds_the_weight_average(cond_run):
    from galtools import models
    from galtools.train import checkpoint
    from galtools.train.rundir import read_config

    config = read_config(cond_run)
    model = models.get("ddpm").build(config)
    state = checkpoint.restore(str(cond_run / "checkpoints"), model.checkpoint_variables())
    assert state["step"] == STEPS
    saved = models.load_keras(cond_run / "model.keras").get_weights()
    ema, raw = model.ema.get_weights(), model.net.get_weights()
    assert len(saved) == len(ema) == len(raw)
    for s, e in zip(saved, ema):
        np.testing.assert_array_equal(s, e)
    assert any(not np.allclose(s, r) for s, r in zip(saved, raw))


def test_sampler_is_deterministic_for_a_seed_and_step_count(cond):
    run = cond
    cond = {"z": np.full(5, 0.3)}

    def gen(**kw):
        return run.generate(5, conditions=cond, **{"seed": 3, "steps": 4, "batch_size": 2, **kw})

    a = gen()
    np.testing.assert_array_equal(a, gen())
    assert a.shape == (5, 8, 8, 3)  # in chunks of 2
    assert not np.allclose(a, gen(steps=5))
    assert not np.allclose(a, gen(seed=4))


def test_guidance_changes_the_output_and_zero_ignores_the_condition(cond):
    run = cond
    lo, hi = {"z": np.zeros(4)}, {"z": np.ones(4)}

    def gen(cond, guidance):
        return run.generate(4, seed=2, conditions=cond, steps=3, guidance=guidance)

    plain = gen(lo, 1.0)
    assert not np.allclose(plain, gen(hi, 1.0))  # the condition matters
    guided = gen(lo, 2.0)
    assert not np.allclose(plain, guided)  # guidance strengthens it
    np.testing.assert_array_equal(guided, gen(lo, None))  # 2 is the default
    np.testing.assert_allclose(gen(lo, 0.0), gen(hi, 0.0), rtol=1e-5, atol=1e-5)


def test_resumes_exactly_after_sigterm(cond_run, cond, tmp_path, galprep):
    from galtools import models

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "galtools.cli", *_train_args(run)]
    code, err = sigterm_after(cmd, run, 3, ENV)
    assert code == 75, err
    stopped = _metrics(run)["step"]
    assert 3 <= stopped < STEPS
    r = galprep(*_train_args(run))
    assert r.code == 0, r.stderr
    assert f"resume ddpm step {stopped}/{STEPS}" in (run / "train.log").read_text()
    m = _metrics(run)
    assert m["status"] == "finished" and [s["step"] for s in m["steps"]] == list(
        range(1, STEPS + 1)
    )
    whole = _metrics(cond_run)["steps"]
    np.testing.assert_allclose(
        [s["loss"] for s in m["steps"]], [s["loss"] for s in whole], rtol=1e-4
    )
    resumed = models.load_keras(run / "model.keras").get_weights()
    for a, b in zip(resumed, cond.keras_model().get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


JAX_SCRIPT = (
    NO_TF
    + """
import json, sys, numpy as np
import keras
from galtools.runs import load_run
from galtools.train.loop import train
out, data = sys.argv[1:3]
m = train([data], out, "ddpm", {"width": 8, "blocks": 1, "levels": 1}, batch_size=16,
          epochs=3, lr=0.003, log_every=1)
np.save(out + "/jax.npy", load_run(out).generate(3, seed=5, steps=3))
tf = sys.modules.get("tensorflow") is not None
print(json.dumps({"backend": keras.backend.backend(), "tf": tf,
                  "loss": [s["loss"] for s in m["steps"]]}))
"""
)


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """A tiny unconditional run trained on JAX with TensorFlow unimportable; its stdout."""
    run = tmp_path_factory.mktemp("ddpm-jax") / "run"
    env = dict(ENV, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(run), str(tiny_data())],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return run, json.loads(out.stdout.strip().splitlines()[-1])


def test_trains_on_jax_without_tensorflow_and_samples_on_tensorflow(jax_run):
    from galtools.runs import load_run

    run, got = jax_run
    assert got["backend"] == "jax" and not got["tf"]
    assert len(got["loss"]) == 12 and np.isfinite(got["loss"]).all()
    assert np.mean(got["loss"][-4:]) < np.mean(got["loss"][:4])
    here = load_run(run).generate(3, seed=5, steps=3)  # on TensorFlow
    there = np.load(run / "jax.npy")
    np.testing.assert_allclose(there, here, rtol=1e-3, atol=1e-3 * np.abs(here).max())


@pytest.mark.parametrize(
    "which, args, words",
    [
        ("cond", ["--condition", "z=0.5", "--steps", "0"], "--steps: must be ≥ 1, got 0"),
        ("cond", ["--condition", "z=0.5", "--guidance", "-1"], "--guidance: must be ≥ 0"),
        ("cond", ["--condition", "mass=1"], "unknown condition mass"),
        ("cond", ["--guidance", "2"], "give condition z"),
        ("jax", ["--guidance", "2"], "--guidance needs conditions"),
        ("jax", ["--condition", "z=1"], "takes no conditions"),
    ],
)
def test_cli_bad_sampler_settings(cond_run, jax_run, galprep, tmp_path, which, args, words):
    run = cond_run if which == "cond" else jax_run[0]
    out, png = tmp_path / "g.h5", tmp_path / "m.png"
    r = galprep("generate", run, "-n", "3", "-o", out, "--montage", png, *args)
    assert r.code == 1, r.stderr
    assert words in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not list(tmp_path.iterdir())


def test_a_run_without_dropped_conditions_refuses_guidance(cond_run, galprep, tmp_path):
    """--cond-drop 0 never trains the unconditional prediction that guidance mixes in."""
    import json
    import shutil

    from galtools.models import get

    run = tmp_path / "nodrop"
    shutil.copytree(cond_run, run)
    config = json.loads((run / "config.json").read_text())
    config["model_config"]["cond_drop"] = 0.0
    (run / "config.json").write_text(json.dumps(config))
    out = tmp_path / "g.h5"
    r = galprep("generate", run, "-n", "2", "--condition", "z=0.5", "--guidance", "2", "-o", out)
    assert r.code == 1 and "trained with --cond-drop 0" in r.stderr, r.stderr
    assert "use --guidance 1" in r.stderr and not out.exists()
    spec = get("ddpm")
    opts = {o.name: o.default for o in spec.options} | {"condition": ["z"], "cond_drop": 0.0}
    info = type("Info", (), {"paths": [str(tiny_data())]})()
    assert spec.configure(opts, info)["sampler"]["guidance"] == 1.0


@pytest.mark.parametrize("args", [["--steps", "5"], ["--guidance", "2"]])
def test_cli_sampler_settings_do_not_apply_to_a_gan(galprep, tmp_path, args):
    out = tmp_path / "out"
    out.mkdir()
    r = galprep("generate", tiny_run("dcgan"), "-n", "3", "-o", out / "g.h5", *args)
    assert r.code == 1, r.stderr
    assert f"{args[0]} does not apply to a dcgan run (it samples in one step)" in r.stderr
    assert r.stderr.count("\n") == 1 and not list(out.iterdir())


def test_cli_generates_with_steps_guidance_and_montage(cond_run, galprep, tmp_path):
    from galtools.arrayfile import read_galaxies

    outs = []
    for name, extra in (("a", []), ("b", ["--guidance", "1"])):
        out = tmp_path / f"{name}.h5"
        r = galprep(
            "generate", cond_run, "--conditions-from", tiny_data(), "-n", "6", "-o", out,
            "--steps", "3", "--seed", "7", "--batch-size", "6", "--montage", tmp_path / "m.png",
            "--overwrite", *extra,
        )  # fmt: skip
        assert r.code == 0, r.stderr
        outs.append(read_galaxies(out)[0])
    a, b = outs
    assert a["images"].shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(a["z"], read_galaxies(tiny_data())[0]["z"][:6])
    assert not np.allclose(a["images"], b["images"])
    assert (tmp_path / "m.png").stat().st_size > 100
