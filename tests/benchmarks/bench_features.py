"""Benchmark: feature-extractor throughput (images/s on this CPU) for FID/KID.

- protocol: holzschuh2022 (band 1, min-max, magma, 256 px, 8-bit) on 64×64×3 stamps;
- inception-2015 (galtools-inception plugin, torch CPU, 299×299) when installed;
- run: the penultimate layer of a small trained classifier (``galprep train-batch`` on tiny
  data; skipped when train-batch is missing).

Usage: python tests/benchmarks/bench_features.py [--n 64]
"""

import argparse
import importlib.util
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def rate(fn, x, repeat=1):
    fn(x[:2])
    t = time.perf_counter()
    for _ in range(repeat):
        fn(x)
    return repeat * len(x) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    from galtools.features import load_extractor
    from galtools.features import protocol as protomod
    from tests.galaxy_sims import population

    images = population(args.n, 64, bands=3)
    holz = protomod.parse("holzschuh2022")
    r = rate(lambda x: protomod.apply(holz, x, ["g", "r", "i"]), images)
    print(f"protocol holzschuh2022 (64→256 px, magma): {r:,.0f} images/s")
    if importlib.util.find_spec("galtools_inception") and importlib.util.find_spec("torch"):
        ext = load_extractor("inception-2015")
        rgb = protomod.apply(protomod.parse("rgb"), images, ["g", "r", "i"])
        print(f"inception-2015 (299 px, torch CPU): {rate(ext.features, rgb):.1f} images/s")
    else:
        print("inception-2015: not installed (pip install -e plugins/galtools-inception)")
    from galtools import registry

    if "train-batch" in registry.entries("galtools.commands"):
        from tests.conftest import run_galprep
        from tests.tinyruns import tiny_data

        out = os.path.join(tempfile.mkdtemp(prefix="bench-features-"), "run")
        res = run_galprep(
            "train-batch",
            tiny_data(),
            "-o",
            out,
            "--model",
            "cnn-classifier",
            "--target",
            "kind",
            "--backbone",
            "8,8",
            "--head",
            "16,relu",
            "-q",
        )
        if res.code == 0:
            ext = load_extractor(f"run:{out}")
            x = population(max(args.n, 512), 8, bands=3)
            print(f"run:cnn-classifier (8×8×3): {rate(ext.features, x, 3):,.0f} images/s")
        else:
            print(f"run extractor: training failed: {res.stderr.strip()[:200]}")


if __name__ == "__main__":
    main()
