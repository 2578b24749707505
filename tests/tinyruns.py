"""Tiny real runs trained once per test session with ``galprep train-batch`` (in-process).

``tiny_run("vgg")`` trains (or reuses) a run on :func:`tiny_data` and returns its directory;
the test is skipped only when ``train-batch`` is not installed.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

CLASSES = ["elliptical", "spiral", "merger"]
TRAIN = {
    "vgg": ["--target", "inclination"],
    "vgg-b": ["--model", "vgg", "--target", "inclination", "--seed", "1"],
    "cnn-classifier": ["--target", "kind", "--backbone", "8,8", "--head", "16,relu"],
    "dcgan": ["--width", "4"],
    "cgan": ["--condition", "z", "--width", "4"],
    "twoinone": ["--target", "sc", "--width", "4"],
    "resnet-denoiser": ["--epochs", "15", "--lr", "0.002"],
}
_root = None
_runs = {}


def _dir():
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="galtools-tinyruns-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def blobs(n, size=8, bands=3, seed=0, width=(1.5, 3)):
    """Smooth Gaussian blobs of random position, width (σ range in pixels) and colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    out = np.empty((n, size, size, bands), np.float32)
    for k in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        r2 = (x - cx) ** 2 + (y - cy) ** 2
        out[k] = np.exp(-r2 / (2 * rng.uniform(*width) ** 2))[..., None] * rng.uniform(1, 3, bands)
    return out


def tiny_data(n=64):
    """The training file: noisy blobs (images), clean blobs (targets), label columns."""
    from galtools.arrayfile import write_galaxies
    from galtools.meta import new_meta

    path = _dir() / "tiny.h5"
    if not path.exists():
        rng = np.random.default_rng(0)
        clean = blobs(n)
        batch = {
            "images": (clean + rng.normal(0, 0.3, clean.shape)).astype(np.float32),
            "targets": clean,
            "ids": np.array([f"t{i:03d}" for i in range(n)]),
            "inclination": rng.uniform(0, 90, n),
            "kind": rng.integers(0, 3, n),
            "z": rng.uniform(0, 1, n),
            "sc": rng.uniform(0, 5, n),
            "real": rng.integers(0, 2, n).astype(np.float64),
        }
        write_galaxies(path, batch, new_meta(bands="gri", classes={"kind": CLASSES}))
    return path


def tiny_run(name):
    """A trained run directory for model ``name`` (a key of :data:`TRAIN`)."""
    from galtools import registry
    from tests.conftest import run_galprep

    if "train-batch" not in registry.entries("galtools.commands"):
        pytest.skip("galprep train-batch is not installed")
    if name not in _runs:
        out = _dir() / name
        args = TRAIN[name]
        model = [] if "--model" in args else ["--model", name]
        r = run_galprep(
            "train-batch", tiny_data(), "-o", out, *model, *args, "--batch-size", "16", "-q"
        )
        assert r.code == 0, r.stderr
        _runs[name] = out
    return _runs[name]


def sigterm_after(cmd, run, step, env=None, timeout=180):
    """Start the training command ``cmd`` (writing RUN), send it SIGTERM once its train.log
    has logged step ``step``; return (exit status, stderr)."""
    import signal
    import subprocess
    import time
    from pathlib import Path

    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, text=True)
    log = Path(run) / "train.log"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and f"step {step} " in log.read_text():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err
