"""Benchmark: `train-batch` streaming from an h5 on disk vs `model.fit` on in-memory arrays.

Same model (vgg small regressor, built from the same run config), same batch size, same
process.  Throughput is taken over the second pass/epoch (after tracing), median of interleaved
repeats.  Goal: ratio ≥ 0.9.

    python tests/benchmarks/bench_train_stream.py [--n 4096] [--size 32] [--batch-size 64] \\
        [--repeat 3]
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
            images = b[:, None, None, None] + rng.normal(size=(m, size, size, 1)) * 0.2
            writer.append(images=images.astype("f4"), inclination=45 + 45 * b)


def epoch_timer_class():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append((time.perf_counter() - self.t[0], time.process_time() - self.t[1]))

    return EpochTimer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import keras

    from galtools import models
    from galtools.arrayfile import read_galaxies
    from galtools.runs import load_run
    from galtools.train.data import to_unit
    from galtools.train.loop import train

    EpochTimer = epoch_timer_class()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.h5")
        make_data(data, args.n, args.size)
        batch, _ = read_galaxies(data)
        stream, memory, stream_cpu, memory_cpu = [], [], [], []
        for rep in range(args.repeat):  # interleaved: the machine may be shared
            run = os.path.join(tmp, f"run{rep}")
            m = train(
                [data],
                run,
                "vgg",
                {"target": "inclination"},
                passes=2,
                batch_size=args.batch_size,
                checkpoint_every=0,
                log_every=10**9,
            )
            steps = m["total_steps"] // 2
            rec = {r["step"]: r for r in m["steps"]}
            images = steps * args.batch_size
            stream.append(images / (rec[2 * steps]["wall"] - rec[steps]["wall"]))
            stream_cpu.append(images / (rec[2 * steps]["cpu_s"] - rec[steps]["cpu_s"]))

            config = load_run(run).config
            x = batch["images"]
            y = to_unit(batch["inclination"], config["columns"][0])[:, None]
            keras.utils.set_random_seed(0)
            model = models.get("vgg").build(config)
            timer = EpochTimer()
            model.fit(
                x,
                y,
                batch_size=args.batch_size,
                epochs=2,
                shuffle=True,
                verbose=0,
                callbacks=[timer],
            )
            images = -(-args.n // args.batch_size) * args.batch_size
            memory.append(images / timer.times[1][0])
            memory_cpu.append(images / timer.times[1][1])
            print(
                f"repeat {rep + 1}: streaming {stream[-1]:7.1f} img/s "
                f"({stream_cpu[-1]:7.1f} per CPU-s), in-memory {memory[-1]:7.1f} img/s "
                f"({memory_cpu[-1]:7.1f} per CPU-s)",
                flush=True,
            )
    s, f = float(np.median(stream)), float(np.median(memory))
    sc, fc = float(np.median(stream_cpu)), float(np.median(memory_cpu))
    print(
        f"images {args.n}×{args.size}×{args.size}×1, batch {args.batch_size}, vgg small, "
        f"median of {args.repeat}"
    )
    print(f"train-batch streaming from h5: {s:8.1f} img/s (pass 2, checkpoint + save included)")
    print(f"model.fit on in-memory arrays: {f:8.1f} img/s (epoch 2)")
    print(
        f"ratio streaming / in-memory: {s / f:.2f} wall-clock, {sc / fc:.2f} per CPU-second "
        "(goal ≥ 0.9; the CPU-time ratio is robust to other load on the machine)"
    )


if __name__ == "__main__":
    main()
