"""Benchmark: vectorised morphology (galtools) vs statmorph, per stamp, in one run.

N simulated Sérsic galaxies (64×64 by default, PSF 1.5 px, unit noise) are measured by
``galtools.metrics.morphology.measure`` over the whole chunk and by
``statmorph.source_morphology`` one stamp at a time (statmorph on a subset: it is slow), with
the same segmaps.  Prints ms per stamp and the ratio.  Goal: ≥ 100×.

Usage: python tests/benchmarks/bench_morphology.py [--n 500] [--statmorph-n 30] [--size 64]
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.galaxy_sims import sersic  # noqa: E402


def simulate(n, size, seed=0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size))
    for i in range(n):
        img = sersic(
            size,
            rng.uniform(2, 6),
            rng.uniform(0.7, 4),
            ellip=rng.uniform(0, 0.5),
            angle=rng.uniform(0, np.pi),
            flux=rng.uniform(1e3, 1e4),
            center=(size - 1) / 2 + rng.uniform(-1, 1, 2),
            oversample=3,
        )
        out[i] = ndimage.gaussian_filter(img, 1.5 / 2.355) + rng.normal(0, 1, (size, size))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--statmorph-n", type=int, default=30)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    import statmorph

    from galtools.metrics.morphology import measure, segment

    images = simulate(args.n, args.size)
    seg, _ = segment(images)
    measure(images[:4], segmap=seg[:4])  # warm up imports
    t = time.perf_counter()
    for start in range(0, args.n, 256):
        measure(images[start : start + 256], segmap=seg[start : start + 256])
    ours = (time.perf_counter() - t) / args.n
    t = time.perf_counter()
    m = args.statmorph_n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(m):
            # statmorph measures everything when the source is built (lazy props aside)
            morph = statmorph.source_morphology(
                images[i], seg[i].astype(int), weightmap=np.ones_like(images[i])
            )[0]
            assert morph.asymmetry is not None
    ref = (time.perf_counter() - t) / m
    print(
        f"morphology {args.size}×{args.size}: galtools {ours * 1e3:.2f} ms/stamp "
        f"(N={args.n}), statmorph {ref * 1e3:.1f} ms/stamp (N={m}): "
        f"{ref / ours:.0f}× faster (goal ≥ 100×)"
    )


if __name__ == "__main__":
    main()
