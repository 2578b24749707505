"""Tests that need a GPU: skipped without one (CI), run on the lent GPU machine by
tests/gpu/run.sh (or ``pytest tests/gpu`` wherever ``nvidia-smi`` sees a GPU and JAX has
CUDA).  They read the figures of tests/gpu/check.py ($GALTOOLS_GPU_CHECK_OUT/gpu.json, written
by run.sh) or make them, and train with --distribute data on the GPU."""

import json
import os
import shutil
import subprocess
import sys

import pytest


def _gpu():
    if not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


pytestmark = pytest.mark.skipif(not _gpu(), reason="no GPU (nvidia-smi sees none)")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    path = os.path.join(os.environ.get("GALTOOLS_GPU_CHECK_OUT", ""), "gpu.json")
    if not os.path.isfile(path):
        path = str(tmp_path_factory.mktemp("gpu") / "gpu.json")
        env = dict(os.environ, KERAS_BACKEND="jax")
        subprocess.run(
            [sys.executable, os.path.join(HERE, "check.py"), "--out", path], env=env,
            timeout=900, check=False,
        )  # fmt: skip
    with open(path) as fh:
        return json.load(fh)


def test_the_check_ran_on_the_gpu(figures):
    env = figures["stages"]["environment"]
    assert figures["mode"] == "gpu" and any("cuda" in d.lower() for d in env["devices"]), env
    assert env["keras_backend"] == "jax"
    loader = figures["stages"]["loader"]
    assert all(v > 0 for v in loader.values())
    train = figures["stages"]["train_batch"]
    for key in ("vgg_float32", "vgg_mixed_bfloat16"):
        t = train[key]
        assert t["backend"] == "jax" and t["jit_compile"] and t["images_per_s"] > 0, t
    assert train["vgg_mixed_bfloat16_distribute_data"]["devices"] >= 1
    fid = figures["stages"]["fid_features"]
    assert fid["device"] == "cuda" and fid["extractor_images_per_s"] > 0
    assert not figures["errors"], figures["errors"]


def test_distribute_data_uses_every_gpu(tmp_path):
    code = (
        "import json, sys\n"
        "sys.path.insert(0, 'tests/benchmarks'); sys.path.insert(0, '.')\n"
        "from bench_train_input import make_data\n"
        "from galtools.train.loop import train\n"
        f"p = make_data({str(tmp_path / 'd.h5')!r}, 512, 32)\n"
        "import jax\n"
        "n = len(jax.devices())\n"
        f"m = train([p], {str(tmp_path / 'run')!r}, 'vgg', {{'target': 'inclination'}},\n"
        "          batch_size=64 * n, distribute='data')\n"
        "print(json.dumps({'n': n, 'devices': m['devices'], 'kinds': m['device_kinds'],\n"
        "                  'step': m['step']}))\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    root = os.path.dirname(os.path.dirname(HERE))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] == got["n"] and got["kinds"] != ["cpu"], got
