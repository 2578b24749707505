"""Benchmark: batched power spectra (stamps/s at 64×64) vs a per-image numpy loop.

The naive way: for each image, ``np.fft.fftshift(np.fft.fft2(img))``, |·|², and a
``np.bincount`` azimuthal average.  galtools: one ``rfft2`` per chunk and one matrix product
for the radial binning.  Goal: ≥ 20 000 stamps/s.

Usage: python tests/benchmarks/bench_power.py [--n 20000] [--naive-n 2000]
"""

import argparse
import time

import numpy as np


def naive(images):
    h, w = images.shape[1:3]
    y, x = np.indices((h, w))
    r = np.rint(np.hypot(y - h // 2, x - w // 2)).astype(int).ravel()
    counts = np.bincount(r)
    out = []
    for img in images[..., 0]:
        p = np.abs(np.fft.fftshift(np.fft.fft2(img))) ** 2 / (h * w)
        out.append(np.bincount(r, p.ravel()) / counts)
    return np.array(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--naive-n", type=int, default=2000)
    args = ap.parse_args()
    from galtools.metrics.power import PowerSpectra

    images = np.random.default_rng(0).normal(size=(args.n, 64, 64, 1)).astype(np.float32)
    engine = PowerSpectra(64, 64)
    engine(images[:16])
    t = time.perf_counter()
    for s in range(0, args.n, 4096):
        ours = engine(images[s : s + 4096])
    rate = args.n / (time.perf_counter() - t)
    t = time.perf_counter()
    ref = naive(images[: args.naive_n])
    naive_rate = args.naive_n / (time.perf_counter() - t)
    np.testing.assert_allclose(engine(images[:10])[:, 0], ref[:10], rtol=1e-3)
    del ours
    print(
        f"power spectra 64×64: {rate:,.0f} stamps/s batched, {naive_rate:,.0f} stamps/s "
        f"per-image loop: {rate / naive_rate:.1f}× (goal ≥ 20,000 stamps/s)"
    )


if __name__ == "__main__":
    main()
