"""Benchmark the built-in generators: training and sampling speed, and (``--quality``) the
demo-scale quality table.

Speed (default): each generating model (dcgan, cgan, twoinone, and ddpm when ``galprep
plugins`` lists it) trains on tiny synthetic stamps at 32² and 64² and samples from the run;
training images/s is the median over the logged steps after the first pass (tracing and
compilation excluded), sampling images/s the second of two ``Run.generate`` calls.  Printed
as a table; nothing is asserted (the machine may be shared).

    python tests/benchmarks/bench_generators.py [--sizes 32,64] [--n 512] [--batch-size 32]
        [--width 32] [--passes 2] [--sample 256] [--models dcgan,cgan,twoinone,ddpm]

Quality (``--quality``): the demo's table on /work/data13-like data.  Real test vs real
held-out first (the floor), then each model trained on TRAIN for the given epochs, N images
generated (conditional models: the conditions of TEST, row by row), and for each: FID and KID
on the FEATURES run's features (and their ratio to real-vs-real), the power-spectrum distance,
the fraction measurable by ``--morph``, the W1 distances of Gini, M20, C and ellipticity,
training time and sampling speed; for conditional models the read-back RMSE and bias of each
condition the REGRESSOR run predicts (and the regressor's own RMSE on TEST), and the rank
correlation between a flux-like condition and the flux of the generated images.

    python tests/benchmarks/bench_generators.py --quality --train T.h5 --test TEST.h5 \\
        --heldout H.h5 --features RUN --regressor RUN [--bias BIAS.json] \\
        [--condition inclination,flux] \\
        [--epochs dcgan=10,cgan=10] [--batch-size 32] [--width 32] [--lr 5e-4] [--n 600] \\
        [--precision auto] [--out DIR] [--models dcgan,cgan]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BUILTIN = ("dcgan", "cgan", "twoinone", "ddpm")


def registered(names):
    from galtools import models

    known = set(models.known())
    return [n for n in names if n in known]


def options_for(name, conditions=("z",), width=None):
    """The model's own options for a benchmark run (only those it declares)."""
    from galtools import models

    spec = models.get(name)
    declared = {o.name for o in spec.options}
    opts = {}
    if "condition" in declared and "conditions" in spec.abilities:
        opts["condition"] = list(conditions)
    if "target" in declared:
        opts["target"] = "score"
    if "real_column" in declared:
        opts["real_column"] = "real"
    if width and "width" in declared:
        opts["width"] = width
    return opts


def synthetic(path, n, size, seed=0):
    """Gaussian-blob 'galaxies' with a few label columns (z, score, real)."""
    from galtools.arrayfile import write_galaxies
    from galtools.meta import new_meta

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    images = np.empty((n, size, size, 3), np.float32)
    for k in range(n):
        cy, cx = rng.uniform(0.4, 0.6, 2) * size
        sig = rng.uniform(0.05, 0.12) * size
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sig**2))
        images[k] = blob[..., None] * rng.uniform(50, 500, 3) + rng.normal(0, 5, (size, size, 3))
    labels = {
        "z": rng.uniform(0, 1, n),
        "score": rng.uniform(0, 1, n),
        "real": (rng.random(n) < 0.8).astype(np.float64),
    }
    write_galaxies(path, {"images": images, **labels}, new_meta(bands="gri"))


def speed(args):
    from galtools.runs import load_run
    from galtools.train.loop import train

    names = registered(args.models.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",")]:
            data = os.path.join(tmp, f"data{size}.h5")
            synthetic(data, args.n, size)
            for name in names:
                run = os.path.join(tmp, f"{name}{size}")
                row = {"model": name, "size": size}
                try:
                    t0 = time.perf_counter()
                    m = train(
                        [data],
                        run,
                        name,
                        options_for(name, width=args.width),
                        passes=args.passes,
                        batch_size=args.batch_size,
                        log_every=5,
                    )
                    row["train_s"] = time.perf_counter() - t0
                    first = m["passes"][0]["step"] if m.get("passes") else 0
                    rates = [r["images_per_s"] for r in m["steps"] if r["step"] > first + 5]
                    row["train_img_s"] = float(np.median(rates)) if rates else float("nan")
                    r = load_run(run)
                    cond = None
                    if r.conditions:
                        cond = {c: np.full(args.sample, 0.5) for c in r.conditions}
                    for _ in range(2):  # the first call loads and compiles
                        t0 = time.perf_counter()
                        r.generate(args.sample, seed=0, conditions=cond)
                        dt = time.perf_counter() - t0
                    row["sample_img_s"] = args.sample / dt
                except Exception as exc:  # a model that fails is a row, not the end
                    traceback.print_exc()
                    row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
                rows.append(row)
                print(_speed_line(row), flush=True)
    print()
    print(f"{'model':10s} {'size':>5s} {'train img/s':>12s} {'sample img/s':>13s} {'train s':>8s}")
    for row in rows:
        print(_speed_line(row))


def _speed_line(row):
    if "error" in row:
        return f"{row['model']:10s} {row['size']:5d}  failed: {row['error']}"
    return (
        f"{row['model']:10s} {row['size']:5d} {row['train_img_s']:12.1f} "
        f"{row['sample_img_s']:13.1f} {row['train_s']:8.1f}"
    )


# ---------------------------------------------------------------------------------- quality


def galprep(*args):
    cmd = [sys.executable, "-m", "galtools.cli", *map(str, args)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"galprep {' '.join(map(str, args[:2]))}: {r.stderr.strip()[-300:]}")
    return time.perf_counter() - t0


def metrics_of(real, other, features, out, regressor=None, bias=None):
    """The comparison figures (:func:`galtools.metrics.table.figures`) of OTHER against REAL;
    with a regressor, the condition check too (read-back and flux ordering; ``bias``: the
    regressor's calibration, as ``score --fit-bias`` wrote it)."""
    from galtools.metrics.table import figures

    check = ["--condition-check", regressor] if regressor else []
    if regressor and bias:
        check += ["--readback-bias", bias]
    galprep("metrics", real, other, "--fid", "--kid", "--power", "--morph",
            "--features", f"run:{features}", *check, "-q", "-o", out)  # fmt: skip
    with open(out) as fh:
        return figures(json.load(fh))


def quality(args):
    from galtools import models
    from galtools.arrayfile import read_galaxies
    from galtools.metrics.table import markdown

    out = args.out or tempfile.mkdtemp(prefix="bench-generators-")
    os.makedirs(out, exist_ok=True)
    conditions = [c for c in (args.condition or "").split(",") if c]
    epochs = dict(kv.split("=") for kv in args.epochs.split(",")) if args.epochs else {}
    rr = metrics_of(
        args.test, args.heldout, args.features, f"{out}/rr.json", args.regressor, args.bias
    )
    columns, extra = {"real vs real": rr}, {}
    for name in registered(args.models.split(",")):
        run, gen = f"{out}/{name}", f"{out}/{name}.h5"
        opts = ["--model", name, "--batch-size", args.batch_size, "--seed", "0"]
        spec = models.get(name)
        declared = {o.name for o in spec.options}
        conditional = "conditions" in spec.abilities
        if conditional:
            opts += ["--condition", ",".join(conditions)]
        if "width" in declared and args.width:
            opts += ["--width", args.width]
        if args.lr:
            opts += ["--lr", args.lr]
        opts += ["--epochs", epochs.get(name, "10"), "--precision", args.precision]
        try:
            train_s = galprep("train-batch", args.train, "-o", run, "--restart", "-q", *opts)
            more = ["--conditions-from", args.test] if conditional else ["-n", args.n]
            t = galprep("generate", run, *more, "--seed", "1", "--overwrite",
                        "--montage", f"{out}/{name}.png", "-q", "-o", gen)  # fmt: skip
            n = len(read_galaxies(gen)[0]["images"])
            extra[name] = {"training (s)": train_s, "sampling (images/s, with start-up)": n / t}
            regressor = args.regressor if conditional else None
            columns[name] = metrics_of(
                args.test, gen, args.features, f"{out}/{name}_metrics.json", regressor, args.bias
            )
        except Exception as exc:
            columns[name] = {}
            print(f"{name}: failed: {str(exc).splitlines()[0][:200]}", flush=True)
            continue
        print(name, json.dumps(columns[name]), flush=True)
    print()
    print(markdown(columns, "real vs real", extra))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", action="store_true", help="the demo-scale quality table")
    ap.add_argument("--models", default=",".join(BUILTIN))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--width", type=int, default=None)
    # speed
    ap.add_argument("--sizes", default="32,64")
    ap.add_argument("--n", type=int, default=None, help="images (speed: per file; quality: -n)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--sample", type=int, default=256)
    # quality
    ap.add_argument("--train")
    ap.add_argument("--test")
    ap.add_argument("--heldout")
    ap.add_argument("--features", help="run whose features FID/KID use")
    ap.add_argument("--regressor", help="run that reads a condition back")
    ap.add_argument("--bias", help="the regressor's calibration (score --fit-bias FILE)")
    ap.add_argument("--condition", default="inclination,flux")
    ap.add_argument("--epochs", default="", help="per model, e.g. dcgan=10,cgan=10")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--precision", default="auto", help="train-batch --precision")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.quality:
        missing = [f for f in ("train", "test", "heldout", "features", "regressor")
                   if not getattr(args, f)]  # fmt: skip
        if missing:
            ap.error("--quality needs " + ", ".join("--" + m for m in missing))
        args.n = args.n or 600
        if args.models == ",".join(BUILTIN):
            args.models = "dcgan,cgan,ddpm"
        quality(args)
    else:
        args.n = args.n or 512
        speed(args)


if __name__ == "__main__":
    main()
