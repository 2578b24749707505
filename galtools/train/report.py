"""metrics.json, curves.png and the run log."""

import os
import time

from galtools import atomic


def write_json(path, data):
    """A run file's JSON (indent 1, sorted keys), written atomically."""
    atomic.write_json(path, data, indent=1, sort_keys=True, default=float)


def log(run_dir, message):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(os.path.join(run_dir, "train.log"), "a") as fh:
        fh.write(f"{stamp} {message}\n")


def plot_curves(path, metrics):
    """Training losses (per logged step) and validation metrics (per segment) → PNG."""
    from matplotlib.figure import Figure

    steps = metrics.get("steps", [])
    evals = [e for e in metrics.get("evals", []) if len(e) > 4]
    skip = {
        "step",
        "pass",
        "file",
        "epoch",
        "batch_file",
        "wall",
        "images_per_s",
        "main_batches",
        "mix_batches",
        "lr",
        "cpu_s",
        "data_wait_s",
        "step_s",
    }
    fig = Figure(figsize=(11 if evals else 6, 4))
    axes = fig.subplots(1, 2 if evals else 1, squeeze=False)
    ax = axes[0, 0]
    keys = sorted({k for r in steps for k in r if k not in skip})
    for k in keys:
        pts = [(r["step"], r[k]) for r in steps if k in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k)
    ax.set_xlabel("step")
    ax.set_title("training")
    if keys:
        ax.legend(fontsize=7)
    if evals:
        ax = axes[0, 1]
        keys = sorted({k for e in evals for k in e if k.startswith("val_")})
        for k in keys:
            pts = [(e["step"], e[k]) for e in evals if k in e]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=k)
        ax.set_xlabel("step")
        ax.set_title("validation")
        if keys:
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=80)
