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
