"""Shared test fixtures: run galprep in-process, make small galaxy files."""

import io
import os
import sys
from dataclasses import dataclass

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str

    @property
    def out(self):
        return self.stdout.decode("utf-8", "replace")


def run_galprep(*args, input=None):
    """Run ``galprep ARGS`` in-process (through main(): its error handling and exit codes)."""
    from galtools.cli import main

    streams = (
        io.TextIOWrapper(io.BytesIO(input or b"")),
        io.TextIOWrapper(io.BytesIO(), write_through=True),
        io.TextIOWrapper(io.BytesIO(), write_through=True),
    )
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = streams
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    out, err = (s.detach() if not s.closed else None for s in streams[1:])
    return Result(
        code,
        out.getvalue() if out else b"",
        err.getvalue().decode("utf-8", "replace") if err else "",
    )


@pytest.fixture
def galprep():
    """``galprep("info", path)`` → Result(code, stdout bytes, stderr text)."""
    return run_galprep


def make_batch(
    n=12, shape=(8, 8, 3), seed=0, targets=False, ids=True, labels=("inclination",), dtype="float32"
):
    """A small random batch with label columns."""
    rng = np.random.default_rng(seed)
    batch = {"images": rng.normal(size=(n, *shape)).astype(dtype)}
    if targets:
        batch["targets"] = rng.normal(size=(n, *shape)).astype(dtype)
    if ids:
        batch["ids"] = np.array([f"obj{i:04d}" for i in range(n)])
    for name in labels:
        batch[name] = rng.uniform(0, 90, n)
    return batch


@pytest.fixture
def small_file(tmp_path):
    """Factory: write a small galaxy file and return its path."""
    from galtools.arrayfile import write_galaxies
    from galtools.meta import new_meta

    def make(name="data.h5", bands=None, meta_extra=None, **kw):
        batch = make_batch(**kw)
        bands = bands or (
            "gri"[: batch["images"].shape[-1]]
            if batch["images"].shape[-1] <= 3
            else [f"b{i}" for i in range(batch["images"].shape[-1])]
        )
        path = tmp_path / name
        write_galaxies(path, batch, new_meta(bands=list(bands), **(meta_extra or {})))
        return path

    return make
