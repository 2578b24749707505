"""A run stopped by SIGTERM mid-pass and continued with the same command ends with exactly the
state of a run that was never stopped: every variable of the last checkpoint (weights,
optimizer, weight average, random generators) within 1e-6, for the predictive models (Dropout
and BatchNorm, on-the-fly augmentation, validation, early-stop state) and the generators."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.test_models import learnable
from tests.tinyruns import sigterm_after, tiny_data

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("exact")
    learnable(d / "train.h5", n=96, shape=(8, 8, 1), seed=3)
    learnable(d / "val.h5", n=32, shape=(8, 8, 1), seed=4)
    return d


def cases(data):
    train, val = str(data / "train.h5"), str(data / "val.h5")
    return {
        "vgg": [train, "--model", "vgg", "--target", "inclination", "--val", val, "--passes", "3",
                "--augment", "dihedral,rotate=30@0.5,noise=0:0.05@0.5", "--early-stop", "5"],
        "cnn-classifier": [train, "--model", "cnn-classifier", "--target", "kind",
                           "--backbone", "4,8", "--head", "8,relu,dropout:0.3", "--passes", "3",
                           "--val", val],
        "cgan": [str(tiny_data()), "--model", "cgan", "--condition", "z", "--width", "4",
                 "--passes", "3"],
        "ddpm": [str(tiny_data()), "--model", "ddpm", "--condition", "z", "--width", "8",
                 "--blocks", "1", "--levels", "1", "--passes", "2"],
    }  # fmt: skip


def _cmd(args, run):
    return [sys.executable, "-m", "galtools.cli", "train-batch", *args, "-o", str(run),
            "--batch-size", "8", "--log-every", "1", "--checkpoint-every", "0", "-q"]  # fmt: skip


def _last(run):
    ckpts = sorted(f for f in os.listdir(run / "checkpoints") if f.startswith("step-"))
    with np.load(run / "checkpoints" / ckpts[-1], allow_pickle=False) as f:
        return ckpts[-1], {k: f[k] for k in f.files if k != "state"}


@pytest.mark.parametrize("model", ["vgg", "cnn-classifier", "cgan", "ddpm"])
def test_stopped_and_continued_equals_unbroken(model, data, tmp_path):
    args = cases(data)[model]
    whole = tmp_path / "whole"
    r = subprocess.run(_cmd(args, whole), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    total = json.loads((whole / "metrics.json").read_text())["step"]

    run = tmp_path / "run"
    code, err = sigterm_after(_cmd(args, run), run, 3, ENV)
    assert code == 75, err
    log = run / "train.log"
    stopped = json.loads((run / "metrics.json").read_text())["step"]
    assert 3 <= stopped < total
    r = subprocess.run(_cmd(args, run), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"resume {model} step {stopped}/{total}" in log.read_text()

    name_a, a = _last(run)
    name_b, b = _last(whole)
    assert name_a == name_b and a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-6, err_msg=key)
