"""Keras backends other than TensorFlow: a run trained with TensorFlow is used without it."""

import json
import os
import subprocess
import sys

import numpy as np

from tests.tinyruns import blobs, tiny_run

# Runs the code after it with TensorFlow unimportable, as on a machine without it.
NO_TF = "import sys; sys.modules['tensorflow'] = None\n"


def test_run_predicts_on_the_jax_backend_without_tensorflow(tmp_path):
    run = tiny_run("vgg")
    images = blobs(6, seed=11)
    np.save(tmp_path / "x.npy", images)
    from galtools.runs import load_run

    expected = load_run(run).predict(images)
    code = NO_TF + (
        "import json, numpy as np\n"
        "from galtools.runs import load_run\n"
        "import keras\n"
        f"pred = load_run({str(run)!r}).predict(np.load({str(tmp_path / 'x.npy')!r}))\n"
        "tf = sys.modules.get('tensorflow') is not None\n"
        "print(json.dumps({'backend': keras.backend.backend(), 'tf': tf,\n"
        "                  'pred': np.asarray(pred, float).tolist()}))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["backend"] == "jax" and not got["tf"]
    np.testing.assert_allclose(got["pred"], expected, rtol=1e-4, atol=1e-3)


# Trains the non-GAN built-in models a few steps on the JAX backend (TensorFlow unimportable),
# then prints each run's raw network outputs on the same images.
JAX_TRAIN = NO_TF + (
    "import json, numpy as np\n"
    "import keras\n"
    "from galtools.runs import load_run\n"
    "from galtools.train.loop import train\n"
    "data, root, x, models = json.loads(sys.argv[1])\n"
    "x = np.load(x)\n"
    "out = {'backend': keras.backend.backend(), 'runs': {}}\n"
    "for name, model, opts, precision in models:\n"
    "    m = train([data], f'{root}/{name}', model, opts, batch_size=16, log_every=2,\n"
    "              precision=precision)\n"
    "    net = load_run(f'{root}/{name}').keras_model()\n"
    "    out['runs'][name] = {'step': m['step'], 'jit': m['jit_compile'],\n"
    "        'backend': m['backend'], 'policy': keras.config.dtype_policy().name,\n"
    "        'pred': np.asarray(net.predict_on_batch(x), float).tolist()}\n"
    "out['tf'] = sys.modules.get('tensorflow') is not None\n"
    "print(json.dumps(out))\n"
)
JAX_MODELS = [
    ["vgg", "vgg", {"target": "inclination"}, "float32"],
    ["cnn-classifier", "cnn-classifier", {"target": "kind", "backbone": "8,8"}, "float32"],
    ["resnet-denoiser", "resnet-denoiser", {}, "float32"],
    ["vgg-bf16", "vgg", {"target": "inclination"}, "mixed_bfloat16"],
]


def test_models_train_on_jax_without_tensorflow_and_load_on_tensorflow(tmp_path):
    """vgg, cnn-classifier and resnet-denoiser train with KERAS_BACKEND=jax where TensorFlow
    cannot be imported (steps compiled by XLA); their model.keras files predict the same on
    TensorFlow.  A mixed_bfloat16 run saves a network that computes in float32."""
    from galtools.models import load_keras
    from tests.tinyruns import tiny_data

    images = blobs(6, seed=12)
    np.save(tmp_path / "x.npy", images)
    args = json.dumps([str(tiny_data()), str(tmp_path), str(tmp_path / "x.npy"), JAX_MODELS])
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", JAX_TRAIN, args], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["backend"] == "jax" and not got["tf"]
    for name, _, _, precision in JAX_MODELS:
        r = got["runs"][name]
        assert r["step"] == 4 and r["backend"] == "jax" and r["jit"] is True, (name, r)
        assert r["policy"] == "float32"  # the caller's dtype policy is back after training
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["training"]["precision"] == precision
        net = load_keras(tmp_path / name / "model.keras")  # this process: TensorFlow
        assert all(layer.dtype_policy.name == "float32" for layer in net.layers), name
        pred = np.asarray(net.predict_on_batch(images))
        assert pred.dtype == np.float32
        np.testing.assert_allclose(pred, np.asarray(r["pred"]), rtol=1e-4, atol=1e-4)
