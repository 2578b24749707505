"""Validation during training: metrics of a model on a file."""

import numpy as np

from galtools.train.data import fields_needed, from_unit, xy


def metrics_of(config, pred, truth):
    """``val_*`` figures of predictions (physical units) against the truth, by the run's task."""
    task = config["task"]
    if task == "regression":
        err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
        return {"val_rmse": float(np.sqrt(np.mean(err**2))), "val_mae": float(np.mean(np.abs(err)))}
    if task == "classification":
        values = config["columns"][0]["values"]
        lookup = {v: i for i, v in enumerate(values)}
        y = np.array([lookup.get(v, -1) for v in np.asarray(truth).tolist()])
        order = np.argsort(-pred, axis=1)
        out = {
            "val_top1": float(np.mean(order[:, 0] == y)),
            "val_loss": float(
                -np.mean(np.log(np.clip(pred[np.arange(len(y)), np.clip(y, 0, None)], 1e-7, 1)))
            ),
        }
        if pred.shape[1] > 3:
            out["val_top3"] = float(np.mean((order[:, :3] == y[:, None]).any(axis=1)))
        return out
    if task == "denoise":
        return {"val_mse": float(np.mean((pred - truth) ** 2))}
    return {}


def _truth(batch, config):
    return batch["targets"] if config["task"] == "denoise" else batch[config["columns"][0]["name"]]


def evaluate_run(run, val_path, batch_size=256):
    """Validation metrics of a finished/loaded run on a file (physical units)."""
    from galtools.arrayfile import open_galaxies

    with open_galaxies(val_path) as reader:
        preds, truth = [], []
        for _, batch in reader.chunks(batch_size * 8, fields_needed(run.config)):
            preds.append(run.predict(batch["images"], batch_size))
            truth.append(_truth(batch, run.config))
    return metrics_of(run.config, np.concatenate(preds), np.concatenate(truth))


def _predict_on_batch(model, x, batch_size):
    out = []
    for s in range(0, len(x), batch_size):
        out.append(np.asarray(model.predict_on_batch(x[s : s + batch_size]), np.float32))
    return np.concatenate(out)


def validate(model, config, val, batch_size, predict=None):
    """Validation metrics of the model being trained (nothing for GANs).

    ``predict(model, x, batch_size)``: the model's outputs for ``x`` (default: batch by batch
    with ``predict_on_batch``; data-parallel training splits each batch over its devices and
    processes and gathers the outputs, so that every rank computes the same metrics).
    """
    from galtools.arrayfile import open_galaxies

    if config["task"] not in ("regression", "classification", "denoise"):
        return {}
    predict = predict or _predict_on_batch
    preds, truth = [], []
    with open_galaxies(val) as reader:
        for _, batch in reader.chunks(batch_size * 8, fields_needed(config)):
            x, _ = xy(batch, config, val)
            preds.append(np.asarray(predict(model, x, batch_size), np.float32))
            truth.append(_truth(batch, config))
    pred = np.concatenate(preds)
    if config["task"] == "regression":
        col = config["columns"][0]
        pred = from_unit(pred[:, 0], col) if col["kind"] == "scaled" else pred[:, 0]
    return metrics_of(config, pred, np.concatenate(truth))
