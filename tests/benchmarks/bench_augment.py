"""Benchmark: galprep augment to uniform label bins vs a per-image Python loop, and its peak
memory.

1. N (default 2000) 64×64×3 float32 stamps with a skewed inclination distribution are
   resampled and augmented to 9 bins × 1000 images with flips, rot90, rotation, scale, shift,
   blur, brightness, gamma and noise.  The naive way loops over the output images in Python
   with scipy.ndimage / numpy per image (as research scripts do).  Both run as separate
   processes reading and writing .h5, alternately, ``--repeat`` times; the best wall time of
   each is compared (as timeit does: noise on a shared machine only ever adds time).
   Goal: ≥ 10× faster.  galprep pays ~0.35 s once (imports, worker pool, final flush), so
   the ratio grows with the job: ~8× at 4500 outputs (--per-bin 500), ~10× at 9000.
2. Peak memory (max RSS of the main process or a worker) of ``galprep augment`` on M
   and 10×M images, where 10×M float32 images (M=4300 by default: 2 GB) are 10× a 200 MB
   budget.  Goal: flat.

Usage: python tests/benchmarks/bench_augment.py [--n 2000] [--per-bin 1000] [--repeat 3]
       [--memory-n 4300] [--no-memory] [--jobs 2]
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

OPS = [
    "--hflip",
    "0.5",
    "--vflip",
    "0.5",
    "--rot90",
    "1",
    "--rotate",
    "0:360",
    "--scale",
    "0.9:1.1",
    "--shift",
    "2",
    "--blur",
    "0:1@0.3",
    "--brightness",
    "0.9:1.1",
    "--gamma",
    "0.9:1.1",
    "--noise",
    "0:0.05",
]

NAIVE = r"""
import sys
import h5py
import numpy as np
from scipy import ndimage

src, out, per_bin = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(src, "r") as f:
    images = f["images"][...]
    inc = f["inclination"][...]
rng = np.random.default_rng(0)
edges = np.arange(45, 91, 5)
chosen = []
for lo, hi in zip(edges[:-1], edges[1:]):
    rows = np.flatnonzero((inc >= lo) & ((inc < hi) | (hi == 90) & (inc <= hi)))
    chosen.extend(rng.choice(rows, per_bin, replace=rows.size < per_bin))
result, labels = [], []
for i in chosen:
    img = images[i].copy()
    if rng.random() < 0.5:
        img = np.fliplr(img)
    if rng.random() < 0.5:
        img = np.flipud(img)
    img = np.rot90(img, rng.integers(1, 4))
    img = ndimage.rotate(img, rng.uniform(0, 360), axes=(0, 1), reshape=False, order=1,
                         mode="reflect")
    z = rng.uniform(0.9, 1.1)
    zoomed = ndimage.zoom(img, (z, z, 1), order=1)
    h = img.shape[0]
    if zoomed.shape[0] >= h:
        o = (zoomed.shape[0] - h) // 2
        img = zoomed[o:o + h, o:o + h]
    else:
        p = h - zoomed.shape[0]
        img = np.pad(zoomed, ((p // 2, p - p // 2), (p // 2, p - p // 2), (0, 0)), "reflect")
    img = ndimage.shift(img, (rng.uniform(-2, 2), rng.uniform(-2, 2), 0), order=1,
                        mode="reflect")
    if rng.random() < 0.3:
        s = rng.uniform(0, 1)
        img = ndimage.gaussian_filter(img, (s, s, 0))
    img = img * rng.uniform(0.9, 1.1)
    lo, hi = img.min(), img.max()
    img = lo + (hi - lo) * ((img - lo) / (hi - lo)) ** rng.uniform(0.9, 1.1)
    img = img + rng.normal(0, rng.uniform(0, 0.05), img.shape)
    result.append(img.astype(np.float32))
    labels.append(inc[i])
with h5py.File(out, "w") as f:
    f["images"] = np.stack(result)
    f["inclination"] = np.array(labels)
"""

PEAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peak_rss.py")


def make_file(path, n, seed=0, chunk=2000):
    """Disc-like float32 stamps with inclinations skewed towards face-on."""
    from galtools.arrayfile import GalaxyWriter
    from galtools.meta import new_meta

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64] - 31.5
    with GalaxyWriter(path, new_meta(bands=["g", "r", "i"])) as w:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            inc = 45 + 45 * rng.beta(1, 2, m)
            q = np.cos(np.deg2rad(inc))[:, None, None]
            disc = np.exp(-np.hypot(xx, yy / np.maximum(q, 0.15)) / 8)
            img = disc[..., None] * rng.uniform(0.5, 1, (m, 1, 1, 3))
            img = img + rng.normal(0, 0.02, img.shape)
            w.append(
                images=img.astype("f4"),
                inclination=inc,
                ids=np.array([f"g{start + k}" for k in range(m)]),
            )


def cpu_of_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd, cpu=False):
    """Wall seconds (and CPU seconds of the process and its workers) of a command."""
    c0, t0 = cpu_of_children(), time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall, used = time.perf_counter() - t0, cpu_of_children() - c0
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:4])}: {res.stderr}")
    return (wall, used, res.stdout) if cpu else (wall, res.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--per-bin", type=int, default=1000)
    ap.add_argument("--memory-n", type=int, default=4300)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_augment-")
    galprep = [sys.executable, "-m", "galtools.cli"]
    try:
        src = os.path.join(tmp, "src.h5")
        make_file(src, args.n)
        naive_cmd = [
            sys.executable,
            "-c",
            NAIVE,
            src,
            os.path.join(tmp, "naive.h5"),
            str(args.per_bin),
        ]
        fast_cmd = (
            galprep
            + [
                "augment",
                src,
                "-o",
                os.path.join(tmp, "fast.h5"),
                "--uniform",
                "inclination",
                "--bins",
                "45:90:5",
                "--per-bin",
                str(args.per_bin),
                "-q",
                "-j",
                str(args.jobs),
            ]
            + OPS
        )
        naive_runs, fast_runs = [], []
        for _ in range(args.repeat):
            for name in ("naive.h5", "fast.h5"):  # both write a new file every time
                if os.path.exists(os.path.join(tmp, name)):
                    os.unlink(os.path.join(tmp, name))
            naive_runs.append(timed(naive_cmd, True)[:2])
            fast_runs.append(timed(fast_cmd, True)[:2])
        (t_naive, c_naive), (t_fast, c_fast) = min(naive_runs), min(fast_runs)
        with h5py.File(os.path.join(tmp, "fast.h5")) as f:
            counts, _ = np.histogram(f["inclination"][...], np.arange(45, 91, 5))
        assert counts.tolist() == [args.per_bin] * 9, counts
        total = 9 * args.per_bin
        print(
            f"augment {args.n} stamps 64x64x3 -> 9 bins x {args.per_bin} = {total}, "
            f"{len(OPS) // 2} ops; best of {args.repeat}"
        )
        print(f"  per-image loop     : {t_naive:7.2f} s wall, {c_naive:7.2f} s CPU")
        print(f"  galprep augment -j{args.jobs}: {t_fast:7.2f} s wall, {c_fast:7.2f} s CPU")
        print(
            f"  speed-up           : {t_naive / t_fast:7.1f}x wall, {c_naive / c_fast:5.1f}x CPU"
            "  (goal >= 10x)"
        )
        if args.no_memory:
            return
        m = args.memory_n
        peaks = {}
        for count in (m, 10 * m):
            path = os.path.join(tmp, f"mem{count}.h5")
            make_file(path, count, seed=count)
            secs, out = timed(
                [
                    sys.executable,
                    PEAK,
                    "augment",
                    path,
                    "-o",
                    os.path.join(tmp, f"mem{count}-out.h5"),
                    "--hflip",
                    "0.5",
                    "--rot90",
                    "1",
                    "--rotate",
                    "0:360",
                    "--noise",
                    "0:0.05",
                    "-q",
                    "-j",
                    str(args.jobs),
                ]
            )
            self_kb, child_kb, code = out.split()[-3:]
            if code != "0":
                sys.exit(f"augment failed on {count} images")
            peaks[count] = (max(int(self_kb), int(child_kb)) / 1024, secs)
            os.unlink(path)
            os.unlink(os.path.join(tmp, f"mem{count}-out.h5"))
        per = 64 * 64 * 3 * 4 / 2**20
        print(f"peak memory of augment (input {m * per:.0f} MB vs {10 * m * per:.0f} MB)")
        for count, (mb, secs) in peaks.items():
            print(f"  {count:6d} images: {mb:6.0f} MB  ({secs:.1f} s)")
        print(f"  peak ratio 10x/1x  : {peaks[10 * m][0] / peaks[m][0]:7.2f}   (goal: flat, ~1)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
