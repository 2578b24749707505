"""Benchmark: galprep simulate against a naive per-object GalSim loop.

1. ``galprep simulate -n N --size 64 --bands gri -j 1`` end to end (one process: start-up,
   GalSim tables, rendering, noise, writing the .h5), and the rendering alone
   (``make_chunk`` in-process, CPU time), as stamps per second per core.
2. The naive way of research scripts: for each object build a GalSim inclined exponential disk
   and a Sérsic bulge with a new n drawn from a continuous range, convolve with a Moffat PSF,
   draw each of the three bands with ``drawImage`` and add GalSim CCD noise.
3. The same naive loop with n from the fixed grid galprep uses (GalSim caches per-n tables),
   to separate the cost of a new n from the cost of per-object drawing.

Goal: ≥ 800 stamps/s per core at 64×64 (gri) for galprep; the ratios are printed.

Usage: python tests/benchmarks/bench_simulate.py [--n 5000] [--naive-n 60]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)


def naive(n, continuous_n, seed=0):
    """Stamps per second (CPU) of the per-object GalSim loop."""
    import galsim

    rng = np.random.default_rng(seed)
    grng = galsim.BaseDeviate(seed)
    colours = {"disk": (1.1, 1.0, 0.9), "bulge": (0.7, 1.0, 1.3)}
    t = time.process_time()
    for _ in range(n):
        flux = np.exp(rng.uniform(np.log(1e3), np.log(1e5)))
        bf = rng.uniform(0, 0.6)
        sersic_n = rng.uniform(1, 6) if continuous_n else rng.choice(GRID)
        disk = galsim.InclinedExponential(
            np.arccos(rng.uniform(0, 1)) * galsim.radians, half_light_radius=rng.uniform(0.4, 2.0)
        ).rotate(rng.uniform(0, np.pi) * galsim.radians)
        bulge = galsim.Sersic(sersic_n, half_light_radius=rng.uniform(0.1, 0.6)).shear(
            q=rng.uniform(0.6, 1), beta=rng.uniform(0, np.pi) * galsim.radians
        )
        psf = galsim.Moffat(beta=3.5, fwhm=rng.uniform(0.6, 1.2))
        offset = rng.uniform(-0.5, 0.5, 2)
        for b in range(3):
            gal = disk * ((1 - bf) * flux * colours["disk"][b]) + bulge * (
                bf * flux * colours["bulge"][b]
            )
            img = galsim.Convolve(gal, psf).drawImage(nx=64, ny=64, scale=0.2, offset=offset)
            img.addNoise(galsim.CCDNoise(grng, sky_level=100.0, read_noise=5.0))
    return n / (time.process_time() - t)


def rendering(n):
    """Stamps per second (CPU) of galprep's chunked renderer, in-process."""
    from galtools_galsim.render import Renderer
    from galtools_galsim.simulate import CHUNK, Config, make_chunk

    cfg = Config()
    renderer = Renderer(cfg.size, cfg.pixel_scale, cfg.psf, cfg.moffat_beta, cfg.sersic_grid)
    make_chunk(cfg, 0, renderer)  # warm-up
    chunks = max(1, n // CHUNK)
    t = time.process_time()
    for j in range(chunks):
        make_chunk(cfg, j, renderer)
    return chunks * CHUNK / (time.process_time() - t)


def end_to_end(n):
    """Stamps per second of the whole command (wall and CPU of the child), one process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sim.h5")
        before = os.times()
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "galtools.cli",
                "simulate",
                "-n",
                str(n),
                "--size",
                "64",
                "--pixel-scale",
                "0.2",
                "--bands",
                "gri",
                "-j",
                "1",
                "-q",
                "-o",
                out,
            ],
            check=True,
        )
        wall = time.perf_counter() - t
        after = os.times()
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        size = os.path.getsize(out)
    return n / wall, n / cpu, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--naive-n", type=int, default=60)
    args = parser.parse_args()
    wall_rate, cpu_rate, size = end_to_end(args.n)
    print(
        f"galprep simulate, {args.n} stamps 64×64×3, -j 1: {wall_rate:7.0f} stamps/s wall, "
        f"{cpu_rate:7.0f} stamps/s per core (CPU), {size / 2**20:.0f} MB written"
    )
    render = rendering(args.n)
    print(f"rendering + noise alone (in-process):          {render:7.0f} stamps/s per core")
    slow = naive(max(5, args.naive_n // 3), continuous_n=True)
    print(f"naive GalSim loop, new Sérsic n per object:    {slow:7.1f} stamps/s per core")
    grid = naive(args.naive_n, continuous_n=False)
    print(f"naive GalSim loop, n from the fixed grid:      {grid:7.1f} stamps/s per core")
    print(
        f"speed-up (per core, end to end): {cpu_rate / slow:.0f}× vs new-n loop, "
        f"{cpu_rate / grid:.1f}× vs fixed-grid loop; goal ≥ 800 stamps/s per core: "
        f"{'met' if cpu_rate >= 800 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
