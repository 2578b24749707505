"""Benchmark: the training input pipeline alone against the pipeline feeding a model.

For each stamp size an h5 file of ``--n`` float32 SIZE×SIZE×3 stamps is written to disk, then

1. **loader**: the reader of ``train-batch`` (:class:`galtools.train.data.Producer`, 4 batches
   prefetched) delivers one pass with 1 and with several reading threads: images/s;
2. **loader + model**: ``train-batch`` (the library's ``train``) on a file of the same stamps:
   images/s of the logged steps after the first record (which holds the compilation), and the
   fraction of that time spent waiting for data.

It prints both with their ratio (loader ÷ training: above 1 the loader can keep up; the
data-wait fraction says whether it did).  The files are read right after being written, so
from the page cache: what the loader costs, not the disk.  The backend is KERAS_BACKEND's (on
JAX the steps are compiled by XLA).  Not a timed test.

    python tests/benchmarks/bench_train_input.py [--sizes 64,128] [--n 4096] \\
        [--workers 1,4] [--batch-size 64] [--models vgg] [--train-steps 30] \\
        [--precision float32] [--json OUT]
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODEL_OPTIONS = {
    "vgg": {"target": "inclination"},
    "cnn-classifier": {"target": "kind"},
    "dcgan": {"width": 32},
    "resnet-denoiser": {},
}


def make_data(path, n, size, seed=0):
    """``n`` smooth noisy disks of ``size``² × 3 (float32) with label columns, in blocks."""
    from galtools.arrayfile import GalaxyWriter
    from galtools.meta import new_meta

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    r2 = (x**2 + y**2) / (size / 6) ** 2
    with GalaxyWriter(path, new_meta(bands=["g", "r", "i"])) as writer:
        for start in range(0, n, 256):
            m = min(256, n - start)
            b = rng.uniform(0.5, 2, m).astype("f4")
            clean = b[:, None, None, None] * np.exp(-r2)[None, :, :, None] * [1.0, 1.3, 1.6]
            noisy = clean + rng.normal(0, 0.05, (m, size, size, 3))
            writer.append(
                images=noisy.astype("f4"),
                targets=clean.astype("f4"),
                inclination=45 + 30 * (b - 0.5),
                kind=(b > 1.2).astype(np.int64),
            )
    return path


def loader_rate(path, batch_size=64, workers=1, prefetch=4, max_batches=None):
    """Images/s the train-batch reader delivers over one pass of ``path`` (x and y made)."""
    from galtools.train.data import Plan, Producer, survey

    plan = Plan(survey([path]), batch_size, 1, 1, seed=0)
    config = {"task": "regression", "columns": [{"name": "inclination", "kind": "raw"}]}
    producer = Producer(plan, config, prefetch=prefetch, workers=workers)
    n = 0
    t0 = time.perf_counter()
    try:
        for i, (_, _, _, x, _, _) in enumerate(producer):
            n += len(x)
            if max_batches and i + 1 >= max_batches:
                break
    finally:
        producer.close()
    return n / (time.perf_counter() - t0)


def train_rate(path, run_dir, model="vgg", batch_size=64, precision="float32", workers=1,
               log_every=5, distribute=None, options=None):  # fmt: skip
    """train-batch on ``path`` for one pass: images/s and the data-wait fraction of the logged
    steps after the first record (compilation), and what the run says about its devices."""
    from galtools.settings import state
    from galtools.train.loop import train

    quiet, state.quiet = state.quiet, True
    try:
        t0 = time.perf_counter()
        m = train(
            [path], run_dir, model, options if options is not None else MODEL_OPTIONS[model],
            batch_size=batch_size, precision=precision, workers=workers, log_every=log_every,
            checkpoint_every=0, distribute=distribute, restart=True,
        )  # fmt: skip
        total = time.perf_counter() - t0
    finally:
        state.quiet = quiet
    steps = m["steps"][1:] or m["steps"]
    n = sum(log_every for _ in steps)
    seconds = sum(log_every * batch_size / r["images_per_s"] for r in steps)
    wait = sum(r["data_wait_s"] for r in steps)
    busy = wait + sum(r["step_s"] for r in steps)
    return {
        "images_per_s": n * batch_size / seconds,
        "data_wait_fraction": wait / busy if busy else 0.0,
        "first_record_s": m["steps"][0]["wall"],
        "total_s": total,
        "backend": m["backend"],
        "jit_compile": m["jit_compile"],
        "devices": m["devices"],
        "precision": m["precision"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--n", type=int, default=4096, help="stamps per loader file")
    ap.add_argument("--workers", default="1,4")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--models", default="vgg")
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    import keras

    sizes = [int(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    out = {"backend": keras.backend.backend(), "batch_size": args.batch_size, "rows": []}
    print(f"backend {out['backend']}, batch {args.batch_size}, precision {args.precision}")
    print(f"{'size':>5} {'model':>8} {'loader img/s (threads)':>30} {'train img/s':>12} "
          f"{'ratio':>6} {'wait':>6}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-input-") as tmp:
        for size in sizes:
            path = make_data(os.path.join(tmp, f"s{size}.h5"), args.n, size)
            loader = {w: loader_rate(path, args.batch_size, w) for w in workers}
            small = make_data(
                os.path.join(tmp, f"t{size}.h5"), args.batch_size * args.train_steps, size, 1
            )
            for model in args.models.split(","):
                t = train_rate(
                    small, os.path.join(tmp, f"run-{model}-{size}"), model, args.batch_size,
                    args.precision, max(workers),
                )  # fmt: skip
                best = max(loader.values())
                ratio = best / t["images_per_s"]
                out["rows"].append(
                    {"size": size, "model": model, "loader": loader, "train": t, "ratio": ratio}
                )
                rates = ", ".join(f"{v:,.0f} ({w})" for w, v in loader.items())
                print(
                    f"{size:>5} {model:>8} {rates:>30} {t['images_per_s']:>12,.0f} "
                    f"{ratio:>6.1f} {t['data_wait_fraction']:>6.1%}"
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
