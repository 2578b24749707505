"""Closed-form models (``kind = "closed-form"``): one streamed pass of ``spec.fit`` over DATA."""

import os
import time

from galtools.progress import say
from galtools.train import report
from galtools.train.data import chunk_images, fields_needed, xy


def chunks(info, config, batch_size):
    """(x, y) of every row of the DATA files, chunk by chunk."""
    from galtools.arrayfile import open_galaxies

    size = chunk_images(info.image_shape, info.dtype, batch_size)
    for path in info.paths:
        with open_galaxies(path) as reader:
            for _, batch in reader.chunks(size, fields_needed(config)):
                yield xy(batch, config, path)


def fit(spec, config, run_dir, info, val):
    """Fit, validate on ``val``, write metrics.json (and curves.png when the fit has a CV)."""
    t0 = time.time()
    report.log(run_dir, f"fit {spec.name} on {info.n} images")
    result = spec.fit(chunks(info, config, 256), config, run_dir)
    metrics = {
        "model": spec.name,
        "task": config["task"],
        "status": "finished",
        "n_train": info.n,
        "wall": time.time() - t0,
        "fit": result,
        "evals": [],
    }
    if val:
        from galtools.runs import load_run
        from galtools.train.evaluate import evaluate_run

        metrics["evals"].append(dict(step=0, **evaluate_run(load_run(run_dir), val)))
    report.write_json(os.path.join(run_dir, "metrics.json"), metrics)
    cv = isinstance(result, dict) and {"alpha", "alphas", "cv_rmse"} <= set(result)
    if cv:
        plot_cv(os.path.join(run_dir, "curves.png"), result)
        best = min(result["cv_rmse"])
        report.log(run_dir, f"done: alpha={result['alpha']:.3g} cv_rmse={best:.4g}")
        say(f"{spec.name}: α={result['alpha']:.3g}, CV RMSE {best:.4g} → {run_dir}")
    else:
        report.log(run_dir, "done")
        say(f"{spec.name}: fitted → {run_dir}")
    return metrics


def plot_cv(path, result):
    """K-fold CV RMSE against the regularisation α (log axis), the chosen α marked → PNG."""
    from matplotlib.figure import Figure

    from galtools.atomic import save_figure

    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    ax.semilogx(result["alphas"], result["cv_rmse"], "o-")
    ax.axvline(result["alpha"], color="k", ls=":")
    ax.set_xlabel("ridge α")
    ax.set_ylabel("K-fold CV RMSE")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
