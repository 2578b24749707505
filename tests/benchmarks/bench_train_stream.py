"""Benchmark: `train-batch` streaming from an h5 on disk vs `model.fit` on in-memory arrays.

Same model (vgg small regressor, built from the same run config), same batch size, same
process.  Throughput is taken over the second pass/epoch (after tracing).  Goal: ratio ≥ 0.9.

    python tests/benchmarks/bench_train_stream.py [--n 4096] [--size 32] [--batch-size 64]
"""

import argparse
import os
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_data(path, n, size, seed=0):
    from galtools.arrayfile import GalaxyWriter
    from galtools.meta import new_meta

    rng = np.random.default_rng(seed)
    with GalaxyWriter(path, new_meta(bands=["r"])) as writer:
        for start in range(0, n, 1024):
            m = min(1024, n - start)
            b = rng.uniform(0, 1, m)
            images = (b[:, None, None, None] + rng.normal(size=(m, size, size, 1)) * 0.2)
            writer.append(images=images.astype("f4"), inclination=45 + 45 * b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import keras

    from galtools import models
    from galtools.arrayfile import read_galaxies
    from galtools.runs import load_run
    from galtools.train.data import to_unit
    from galtools.train.loop import train

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.h5")
        make_data(data, args.n, args.size)
        run = os.path.join(tmp, "run")
        m = train([data], run, "vgg", {"target": "inclination"}, passes=2,
                  batch_size=args.batch_size, checkpoint_every=0, log_every=10**9)
        steps = m["total_steps"] // 2
        walls = {r["step"]: r["wall"] for r in m["steps"]}
        stream_s = walls[2 * steps] - walls[steps]
        stream_ips = steps * args.batch_size / stream_s

        config = load_run(run).config
        batch, _ = read_galaxies(data)
        x = batch["images"]
        y = to_unit(batch["inclination"], config["columns"][0])[:, None]
        keras.utils.set_random_seed(0)
        model = models.get("vgg").build(config)
        times = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t)

        model.fit(x, y, batch_size=args.batch_size, epochs=2, shuffle=True, verbose=0,
                  callbacks=[Timer()])
        fit_ips = (args.n // args.batch_size) * args.batch_size / times[1]
    print(f"images {args.n}×{args.size}×{args.size}×1, batch {args.batch_size}, vgg small")
    print(f"train-batch streaming from h5: {stream_ips:8.1f} img/s (pass 2, {stream_s:.2f} s)")
    print(f"model.fit on in-memory arrays: {fit_ips:8.1f} img/s (epoch 2, {times[1]:.2f} s)")
    print(f"ratio streaming / in-memory: {stream_ips / fit_ips:.2f} (goal ≥ 0.9)")


if __name__ == "__main__":
    main()
