"""Benchmark: the training recipe of galtools 0.x (Adam, constant rate, no average, no
augmentation) against each model's recipe today, on the same data and budget, side by side.

1. **inclination** (vgg): resolved disks simulated with GalSim as in the demo (``--size`` px,
   ``--n`` training disks, seed 1), trained with the plain command
   ``train-batch --target inclination --target-range 45,90 --epochs E --batch-size 64``; scored
   on ``--held`` disks of seed 2: RMSE, bias and the largest |mean residual| of the 5° bins;
   with ``--bagged 3``, the ensemble of three bagged runs (``split --subsamples 3``);
2. **kinds** (cnn-classifier, the demo's command): top-1 on a test split;
3. **denoising** (resnet-denoiser): MSE on test pairs against no denoising;
4. **augmentation cost**: images/s of the vgg steps with and without ``--augment dihedral``.

The old recipe is the same command with ``--optimizer adam --lr 1e-3 --schedule constant
--warmup 0 --ema 0 --clip 0 --augment none`` (and vgg's network of galtools 0.x,
``--output-activation tanh --conv-dropout 0.25``).  Not a timed test; at the defaults it takes about
half an hour on 2 cores (``--quick``: a few minutes, figures not meaningful).

    python tests/benchmarks/bench_recipe.py [--size 64] [--n 6000] [--held 800] [--epochs 12]
        [--tasks inclination,kinds,denoise,augment] [--bagged 3] [--quick] [--json OUT]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

OLD = ["--optimizer", "adam", "--lr", "1e-3", "--schedule", "constant", "--warmup", "0",
       "--ema", "0", "--clip", "0", "--weight-decay", "0", "--augment", "none"]  # fmt: skip
OLD_VGG = ["--output-activation", "tanh", "--conv-dropout", "0.25"]  # galtools 0.x's network
DISKS = ["--pixel-scale", "0.2", "--bands", "gri", "--kinds", "disk", "--inclination", "45:90",
         "--disk-hlr", "1:2.5", "--bulge-fraction", "0:0.3", "--flux", "2e4:2e5"]  # fmt: skip


def galprep(*args):
    cmd = [sys.executable, "-m", "galtools.cli", *map(str, args)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"galprep {' '.join(map(str, args[:2]))}: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def residuals(csv_path):
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    pred = np.array([float(r["inclination"]) for r in rows])
    truth = np.array([float(r["truth"]) for r in rows])
    return pred, truth


def figures(pred, truth):
    r = pred - truth
    edges = np.arange(45, 91, 5)
    idx = np.clip(np.digitize(truth, edges) - 1, 0, len(edges) - 2)
    bins = [float(r[idx == i].mean()) for i in range(len(edges) - 1) if (idx == i).any()]
    return {
        "rmse": float(np.sqrt(np.mean(r**2))),
        "bias": float(r.mean()),
        "worst_bin": float(np.max(np.abs(bins))),
        "bins": [round(b, 2) for b in bins],
    }


def inclination(args, d, recipes):
    recipes = dict(recipes, old=recipes["old"] + OLD_VGG)
    train, held = f"{d}/disks.h5", f"{d}/held.h5"
    galprep("simulate", "-n", args.n, "--size", args.size, *DISKS, "--seed", 1, "-q", "-o", train)
    galprep("simulate", "-n", args.held, "--size", args.size, *DISKS, "--seed", 2, "-q", "-o", held)
    if args.bagged > 1:
        galprep("split", train, "--subsamples", args.bagged, "--seed", 0, "-q", "-o", f"{d}/bags")
    out = {}
    for name, extra in recipes.items():
        run = f"{d}/vgg-{name}"
        common = ["--model", "vgg", "--target", "inclination", "--target-range", "45,90",
                  "--epochs", args.epochs, "--batch-size", 64, "-q", *extra]  # fmt: skip
        t = galprep("train-batch", train, "-o", run, *common)
        galprep("score", run, held, "--truth", "inclination", "-q", "-o", f"{run}.csv")
        row = figures(*residuals(f"{run}.csv")) | {"train_s": round(t, 1)}
        if args.bagged > 1:
            bags = []
            for k in range(args.bagged):
                bag = f"{d}/bags/train_{k + 1:03d}.h5"  # split --subsamples: train_001...
                galprep("train-batch", bag, "-o", f"{run}-bag{k}", *common, "--seed", k)
                bags.append(f"{run}-bag{k}")
            galprep("score", *bags, held, "--truth", "inclination", "-q", "-o", f"{run}-ens.csv")
            ens = figures(*residuals(f"{run}-ens.csv"))
            one = figures(*residuals_of(bags[0], held, f"{run}-bag0.csv"))
            row.update(ensemble_rmse=ens["rmse"], bag_rmse=one["rmse"])
        out[name] = row
    return out


def residuals_of(run, data, csv_path):
    galprep("score", run, data, "--truth", "inclination", "-q", "-o", csv_path)
    return residuals(csv_path)


def find(tree, key):
    """The first value of ``key`` in a JSON tree (depth first)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = find(item, key)
            if found is not None:
                return found
    return None


def kinds(args, d, recipes):
    data = f"{d}/kinds.h5"
    galprep("simulate", "-n", args.kinds_n, "--size", 32, "--pixel-scale", 0.4, "--bands", "gri",
            "--kinds", "disk:0.4,elliptical:0.25,merger:0.15,star:0.1,artifact:0.1",
            "--seed", 3, "-q", "-o", data)  # fmt: skip
    galprep("split", data, "--test", 0.2, "--stratify", "kind", "--seed", 0, "-q", "-o", f"{d}/k")
    out = {}
    for name, extra in recipes.items():
        run = f"{d}/cls-{name}"
        cmd = ["--model", "cnn-classifier", "--target", "kind", "--backbone", "16,32",
               "--head", "64,relu", "--epochs", args.kinds_epochs, "--batch-size", 64]  # fmt: skip
        t = galprep("train-batch", f"{d}/k/train_000.h5", *cmd, "-q", "-o", run, *extra)
        galprep("score", run, f"{d}/k/test_000.h5", "--truth", "kind", "--report",
                f"{run}.json", "-q", "-o", f"{run}.csv")  # fmt: skip
        with open(f"{run}.json") as fh:
            report = json.load(fh)
        top1 = find(report, "accuracy")
        out[name] = {"top1": top1, "train_s": round(t, 1)}
    return out


def denoise(args, d, recipes):
    from galtools.arrayfile import open_galaxies

    data = f"{d}/pairs.h5"
    galprep("simulate", "-n", args.denoise_n, "--size", 32, "--pixel-scale", 0.4, "--bands",
            "gri", "--kinds", "disk", "--targets", "-q", "--seed", 4, "-o", data)  # fmt: skip
    galprep("split", data, "--test", 0.2, "--seed", 0, "-q", "-o", f"{d}/p")
    test = f"{d}/p/test_000.h5"
    with open_galaxies(test) as r:
        b = r.read(0, r.n, ("images", "targets"))
    out = {"none": {"mse": float(np.mean((b["images"] - b["targets"]) ** 2))}}
    for name, extra in recipes.items():
        run = f"{d}/den-{name}"
        cmd = ["--model", "resnet-denoiser", "--epochs", args.denoise_epochs, "--batch-size", 32]
        t = galprep("train-batch", f"{d}/p/train_000.h5", *cmd, "-q", "-o", run, *extra)
        galprep("denoise", run, test, "-q", "-o", f"{run}.h5")
        with open_galaxies(f"{run}.h5") as r:
            clean = r.read(0, r.n, ("images",))["images"]
        out[name] = {"mse": float(np.mean((clean - b["targets"]) ** 2)), "train_s": round(t, 1)}
    return out


def augment_cost(args, d):
    data = f"{d}/disks.h5"
    if not os.path.exists(data):
        galprep("simulate", "-n", args.n, "--size", args.size, *DISKS, "--seed", 1, "-q",
                "-o", data)  # fmt: skip
    out = {}
    for name, extra in {
        "plain": ["--augment", "none"],
        "augment": ["--augment", "dihedral"],
    }.items():
        run = f"{d}/speed-{name}"
        galprep("train-batch", data, "-o", run, "--model", "vgg", "--target", "inclination",
                "--epochs", 1, "--batch-size", 64, "--log-every", 5, "-q", *extra)  # fmt: skip
        with open(f"{run}/metrics.json") as fh:
            steps = json.load(fh)["steps"]
        steps = steps[1:] or steps  # the first record holds the compilation
        out[name] = {
            "images_per_s": float(np.median([s["images_per_s"] for s in steps])),
            "data_wait": float(
                sum(s["data_wait_s"] for s in steps) / sum(s["step_s"] for s in steps)
            ),
        }
    out["ratio"] = out["augment"]["images_per_s"] / out["plain"]["images_per_s"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--held", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--bagged", type=int, default=1)
    ap.add_argument("--kinds-n", type=int, default=2000)
    ap.add_argument("--kinds-epochs", type=int, default=20)
    ap.add_argument("--denoise-n", type=int, default=2000)
    ap.add_argument("--denoise-epochs", type=int, default=4)
    ap.add_argument("--tasks", default="inclination,kinds,denoise,augment")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.size, args.n, args.held, args.epochs = 32, 512, 200, 1
        args.kinds_n, args.kinds_epochs, args.denoise_n, args.denoise_epochs = 400, 1, 256, 1
    recipes = {"old": OLD, "new": []}
    tasks = args.tasks.split(",")
    result = {}
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as d:
        if "inclination" in tasks:
            result["inclination"] = r = inclination(args, d, recipes)
            print(f"inclination ({args.n} disks, {args.size} px, {args.epochs} epochs): "
                  f"RMSE {r['old']['rmse']:.2f}° → {r['new']['rmse']:.2f}° "
                  f"({r['new']['rmse'] / r['old']['rmse']:.2f}×); worst bin mean "
                  f"{r['old']['worst_bin']:.2f}° → {r['new']['worst_bin']:.2f}°; training "
                  f"{r['old']['train_s']:.0f} s → {r['new']['train_s']:.0f} s")  # fmt: skip
            for name in recipes:
                print(f"  {name:4s} bins {r[name]['bins']}")
                if "ensemble_rmse" in r[name]:
                    e = r[name]
                    gain = e["ensemble_rmse"] / e["bag_rmse"]
                    print(f"  {name:4s} bagged: one {e['bag_rmse']:.2f}°, ensemble "
                          f"{e['ensemble_rmse']:.2f}° ({gain:.2f}×)")  # fmt: skip
        if "kinds" in tasks:
            result["kinds"] = r = kinds(args, d, recipes)
            print(f"kinds: top-1 {r['old']['top1']:.3f} → {r['new']['top1']:.3f}")
        if "denoise" in tasks:
            result["denoise"] = r = denoise(args, d, recipes)
            gain = r["new"]["mse"] / r["none"]["mse"]
            print(f"denoise: MSE none {r['none']['mse']:.4g}, old {r['old']['mse']:.4g}, "
                  f"new {r['new']['mse']:.4g} (new/none {gain:.3f})")  # fmt: skip
        if "augment" in tasks:
            result["augment"] = r = augment_cost(args, d)
            print(f"augmentation on the fly: {r['plain']['images_per_s']:.0f} → "
                  f"{r['augment']['images_per_s']:.0f} images/s ({r['ratio']:.3f}×), data wait "
                  f"{r['plain']['data_wait']:.1%} → {r['augment']['data_wait']:.1%}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
