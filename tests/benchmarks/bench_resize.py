"""Benchmark: galprep resize vs the per-image loop of research scripts, and its peak memory.

1. N (default 1000) 256×256 JPEG cut-outs → 64×64: ``galprep resize -j 2`` (one process,
   end to end, into one array file) against PIL open → convert → resize → save, one by one.
   Goal: ≥ 4× faster on 2 cores.
2. Peak memory (max RSS of the main process and its workers) of ``galprep resize`` on M and
   10×M images, where 10×M decoded images (M=1000 by default: 2 GB) are 10× a 200 MB budget.
   Goal: flat (ratio ≈ 1).

Usage: python tests/benchmarks/bench_resize.py [--n 1000] [--memory-n 1000] [--no-memory]
       [--repeat 3]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

PEAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peak_rss.py")


def make_jpegs(folder, n, size=256, seed=0):
    """Galaxy-like JPEGs: an inclined exponential disc with noise, random colours."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    for i in range(n):
        a = rng.uniform(0, np.pi)
        q = rng.uniform(0.2, 1)
        u = xx * np.cos(a) + yy * np.sin(a)
        v = (-xx * np.sin(a) + yy * np.cos(a)) / q
        disc = np.exp(-np.hypot(u, v) / rng.uniform(8, 30))
        img = disc[..., None] * rng.uniform(120, 250, 3) + rng.normal(0, 6, (size, size, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"pgc{i:06d}_d25x2_rot_gri.jpg"), quality=90
        )


NAIVE = r"""
import os, sys
from PIL import Image
folder, out = sys.argv[1:]
os.makedirs(out, exist_ok=True)
for name in sorted(os.listdir(folder)):
    img = Image.open(os.path.join(folder, name))
    img = img.convert("RGB")
    img = img.resize((64, 64))
    img.save(os.path.join(out, name.replace(".jpg", "_64x64.png")))
"""


def naive(folder, out):
    """The research-script way, as its own process: one image at a time through PIL, each
    saved as a file."""
    subprocess.run([sys.executable, "-c", NAIVE, folder, out], check=True)


def galprep(*args, peak=False):
    cmd = [sys.executable, PEAK] if peak else [sys.executable, "-m", "galtools.cli"]
    res = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True)
    if res.returncode != 0 or (peak and res.stdout.split()[-1:] != ["0"]):
        sys.exit(f"galprep failed: {res.stderr or res.stdout}")
    return res.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--memory-n", type=int, default=1000)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_resize-")
    try:
        folder = os.path.join(tmp, "jpg")
        make_jpegs(folder, args.n)
        naive(folder, os.path.join(tmp, "warm"))  # warm the page cache for both
        shutil.rmtree(os.path.join(tmp, "warm"))

        def best(fn):  # best of --repeat runs: the machine may be shared
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return min(times)

        def run_naive():
            shutil.rmtree(os.path.join(tmp, "naive"), ignore_errors=True)
            naive(folder, os.path.join(tmp, "naive"))

        def run_galprep(jobs):
            return lambda: galprep(
                "resize",
                folder,
                "-o",
                os.path.join(tmp, "fast.h5"),
                "--size",
                "64",
                "-j",
                str(jobs),
                "-q",
                "--overwrite",
            )

        t_naive = best(run_naive)
        t_one = best(run_galprep(1))
        t_two = best(run_galprep(2))
        print(
            f"resize {args.n} JPEGs 256x256 -> 64x64 (best of {args.repeat}, each a "
            "separate process, start-up included)"
        )
        print(f"  per-image PIL loop : {t_naive:7.2f} s  ({args.n / t_naive:7.0f} img/s)")
        print(
            f"  galprep resize -j1 : {t_one:7.2f} s  ({args.n / t_one:7.0f} img/s)"
            f"  {t_naive / t_one:5.1f}x"
        )
        print(
            f"  galprep resize -j2 : {t_two:7.2f} s  ({args.n / t_two:7.0f} img/s)"
            f"  {t_naive / t_two:5.1f}x  (goal >= 4x on 2 cores)"
        )
        if args.no_memory:
            return
        m = args.memory_n
        peaks = {}
        for count in (m, 10 * m):
            sub = os.path.join(tmp, f"mem{count}")
            make_jpegs(sub, count, seed=count)
            out = os.path.join(tmp, f"mem{count}.h5")
            t0 = time.perf_counter()
            _, self_kb, child_kb, _ = galprep(
                "resize", sub, "-o", out, "--size", "64", "-j", "2", "-q", peak=True
            ).split()[-4:]
            peaks[count] = (int(self_kb) / 1024, int(child_kb) / 1024, time.perf_counter() - t0)
            shutil.rmtree(sub)
        decoded = 256 * 256 * 3 / 2**20
        print(
            f"peak memory of resize (decoded input {m * decoded:.0f} MB vs "
            f"{10 * m * decoded:.0f} MB)"
        )
        for count, (main_mb, worker_mb, secs) in peaks.items():
            print(
                f"  {count:6d} images: main {main_mb:6.0f} MB, worker {worker_mb:6.0f} MB"
                f"  ({secs:.1f} s)"
            )
        ratio = max(peaks[10 * m][:2]) / max(peaks[m][:2])
        print(f"  peak ratio 10x/1x  : {ratio:7.2f}   (goal: flat, ~1)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
