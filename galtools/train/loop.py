"""``train-batch``: set up (or resume) a run directory and train a registered model from disk.

Exit status: 0 done; 1 error; **75 (EX_TEMPFAIL) = preempted**: SIGTERM or SIGUSR1 arrived,
the step in progress finished, a checkpoint was written, and running the same command again
continues from it (a batch script requeues itself on 75, see examples/train_requeue.sbatch).
"""

import json
import os
import shutil
import signal
import threading
import time

import numpy as np

from galtools import models
from galtools.errors import GalError, InputError
from galtools.progress import detail, progress, say
from galtools.train import checkpoint, report
from galtools.train.data import (
    Plan,
    Producer,
    column_range,
    column_values,
    from_unit,
    image_norm,
    survey,
    xy,
)

PREEMPTED = 75  # EX_TEMPFAIL from sysexits.h: "try again later"
RUN_FORMAT = "galtools-run"
RUN_FILES = (
    "config.json",
    "model.keras",
    "discriminator.keras",
    "weights.npz",
    "metrics.json",
    "curves.png",
    "train.log",
    "checkpoints",
    "samples",
)


class Preempted(GalError):
    """Stopped by a signal after saving a checkpoint: run the same command to continue."""

    exit_code = PREEMPTED


class StopFlag:
    """Remember SIGTERM/SIGUSR1 instead of dying; the loop checks after every batch."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


# ------------------------------------------------------------------------------ configuration


def _read_config(run_dir):
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable run config ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise InputError(path, "not a galtools run config")
    return config


def _column_kind(paths, name):
    from galtools.arrayfile import open_galaxies

    with open_galaxies(paths[0]) as reader:
        if name not in reader.label_names:
            known = ", ".join(reader.label_names) or "none"
            raise InputError(paths[0], f"no label column '{name}' (label columns: {known})")
        return reader.column(name).dtype.kind, name in reader.classes


def _task(spec, opts, info):
    task = spec.task
    if task != "auto":
        return task
    if not opts.get("target"):
        return "regression"
    kind, named = _column_kind(info.paths, opts["target"])
    return "classification" if (opts.get("classes") or named or kind in "USbO") else "regression"


def _columns(task, spec, opts, info):
    """Column specs (how each label enters y) and class names."""
    target = opts.get("target")
    paths = info.paths
    if task in ("regression", "classification") or spec.name == "twoinone":
        if not target:
            raise GalError(
                f"--target COL is needed for {spec.name} "
                f"(label columns: {', '.join(info.label_names) or 'none'})"
            )
    if task == "regression":
        lo, hi = column_range(paths, target)
        if opts.get("target_range"):
            lo, hi = opts["target_range"]
        kind = "raw" if spec.kind == "closed-form" else "scaled"
        return [{"name": target, "kind": kind, "lo": lo, "hi": hi}], None
    if task == "classification":
        values, names = column_values(paths, target)
        numeric = all(isinstance(v, (int, float)) and float(v).is_integer() for v in values)
        if numeric:
            values = [int(v) for v in values]
            k = opts.get("classes") or (len(names) if names else max(values) + 1)
            if names and len(names) < k:
                names = None
            if min(values) < 0 or max(values) >= k:
                raise GalError(
                    f"--target {target}: class values {min(values)}..{max(values)} "
                    f"do not fit {k} classes"
                )
            values = list(range(k))
            names = list(names[:k]) if names else [str(v) for v in values]
        else:
            names = [str(v) for v in values]
            if opts.get("classes") and opts["classes"] != len(values):
                raise GalError(
                    f"--classes {opts['classes']} but column '{target}' holds {len(values)} classes"
                )
        if len(values) < 2:
            raise GalError(f"--target {target}: a classifier needs at least 2 classes")
        return [{"name": target, "kind": "class", "values": values}], names
    if task == "gan":
        cols = []
        if spec.name == "twoinone":
            lo, hi = column_range(paths, target)
            cols.append({"name": target, "kind": "scaled", "lo": lo, "hi": hi})
            real = opts.get("real_column") or "real"
            column_range(paths, real)
            cols.append({"name": real, "kind": "binary"})
        for name in opts.get("conditions") or []:
            lo, hi = column_range(paths, name)
            cols.append({"name": name, "kind": "scaled", "lo": lo, "hi": hi})
        return cols, None
    if task == "denoise":
        if not info.has_targets:
            raise InputError(paths[0], "has no 'targets' (clean images) to learn from")
        return [], None
    raise GalError(f"model {spec.name}: unknown task '{task}'")


def new_config(spec, opts, info, training, history):
    task = _task(spec, opts, info)
    if task not in models.TASKS:
        raise GalError(f"model {spec.name} declares unknown task '{task}'")
    columns, class_names = _columns(task, spec, opts, info)
    info.extra["conditions"] = list(opts.get("conditions") or [])
    norm = image_norm(info.paths[0], "range" if task == "gan" else "std")
    config = {
        "format": RUN_FORMAT,
        "version": 1,
        "model": spec.name,
        "task": task,
        "target": opts.get("target")
        if task in ("regression", "classification") or spec.name == "twoinone"
        else None,
        "class_names": class_names,
        "conditions": list(opts.get("conditions") or []),
        "columns": columns,
        "input_shape": None if task == "denoise" else list(info.image_shape),
        "bands": list(info.bands),
        "norm": norm,
        "training": training,
        "history": [history] if history else [],
    }
    config["model_config"] = spec.configure(opts, info)
    return config


# the options that must match to continue a run (others may change between invocations)
RESUME_KEYS = ("data", "batch_size", "seed", "mix", "alpha", "freeze_until")


def _check_resume(config, spec, training, info, run_dir):
    if config["model"] != spec.name:
        raise GalError(
            f"{run_dir}: holds a '{config['model']}' run, not '{spec.name}' "
            "(use --restart to replace it, or another -o)"
        )
    old = config["training"]
    for key in RESUME_KEYS:
        if old.get(key) != training.get(key):
            raise GalError(
                f"{run_dir}: was trained with {key}={old.get(key)!r}, now "
                f"{training.get(key)!r} (use --restart to start over)"
            )
    shape = config["input_shape"]
    if shape is not None and tuple(shape) != tuple(info.image_shape):
        raise GalError(f"{run_dir}: model takes images {tuple(shape)}, data has {info.image_shape}")


def prepare_run(run_dir, spec, opts, info, training, history, restart):
    """Create, reuse or replace RUN; return (config, resuming)."""
    cfg_path = os.path.join(run_dir, "config.json")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise GalError(f"{run_dir}: exists and is not a run directory")
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        if not os.path.exists(cfg_path):
            raise GalError(
                f"{run_dir}: directory exists and is not a run (no config.json); "
                "refusing to write into it"
            )
        config = _read_config(run_dir)  # only ever continue or wipe a real run
        if not restart:
            _check_resume(config, spec, training, info, run_dir)
            config["training"].update({k: v for k, v in training.items() if k not in RESUME_KEYS})
            if history:
                config.setdefault("history", []).append(history)
            report.write_json(cfg_path, config)
            return config, True
        config = new_config(spec, opts, info, training, history)  # may fail: nothing lost yet
        for name in RUN_FILES:
            path = os.path.join(run_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)
        report.write_json(cfg_path, config)
        return config, False
    config = new_config(spec, opts, info, training, history)
    os.makedirs(run_dir, exist_ok=True)
    report.write_json(cfg_path, config)
    return config, False


# ---------------------------------------------------------------------------------- training


def train(
    data,
    run_dir,
    model,
    opts=None,
    val=None,
    mix=None,
    alpha=0.5,
    passes=1,
    epochs=1,
    batch_size=32,
    lr=1e-3,
    seed=0,
    restart=False,
    keep=3,
    checkpoint_every=0,
    log_every=10,
    patience=None,
    distribute="none",
    history=None,
):
    """Train model ``model`` on DATA files into ``run_dir``; return the final metrics dict.

    ``opts``: model options (target, target_range, classes, conditions, real_column, arch,
    head, backbone, weight_decay, width, bins, init_from, freeze_until).
    """
    opts = dict(opts or {})
    models.quiet_tensorflow()
    spec = models.get(model)
    data = [os.fspath(p) for p in data]
    if "-" in data + [val, mix]:
        raise GalError("train-batch reads its inputs several times: give files, not '-'")
    info = survey(data)
    if mix is not None and not 0 <= alpha < 1:
        raise GalError(f"--alpha must be in [0, 1), got {alpha}")
    training = {
        "data": data,
        "val": val,
        "mix": mix,
        "alpha": alpha if mix else 0.0,
        "passes": passes,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "keep": keep,
        "init_from": opts.get("init_from"),
        "freeze_until": opts.get("freeze_until"),
    }
    mix_info = None
    if mix:
        mix_info = survey([mix], "--mix")
        if mix_info.image_shape != info.image_shape:
            raise InputError(mix, f"images are {mix_info.image_shape}, DATA has {info.image_shape}")
    if val:
        val_info = survey([val], "--val")
        if val_info.image_shape != info.image_shape and spec.task != "denoise":
            raise InputError(val, f"images are {val_info.image_shape}, DATA has {info.image_shape}")
    created = not os.path.exists(run_dir)
    try:
        config, resuming = prepare_run(run_dir, spec, opts, info, training, history, restart)
        needed = [c["name"] for c in config["columns"]]
        for extra in filter(None, (mix, val)):
            survey_cols(extra, needed, config)
        if getattr(spec, "kind", "keras") == "closed-form":
            return _fit_closed_form(spec, config, run_dir, info, val)
        return _train_keras(
            spec,
            config,
            run_dir,
            info,
            mix_info,
            val,
            resuming,
            opts,
            checkpoint_every,
            log_every,
            patience,
            distribute,
        )
    except BaseException:
        # a run that this call created and that has nothing worth keeping goes away
        if (
            created
            and os.path.isdir(run_dir)
            and not checkpoint.listing(os.path.join(run_dir, "checkpoints"))
        ):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def survey_cols(path, needed, config):
    from galtools.arrayfile import open_galaxies

    with open_galaxies(path) as reader:
        missing = [c for c in needed if c not in reader.label_names]
        if missing:
            raise InputError(
                path,
                f"no label column '{missing[0]}' (label columns: "
                f"{', '.join(reader.label_names) or 'none'})",
            )
        if config["task"] == "denoise" and not reader.has_targets:
            raise InputError(path, "has no 'targets' (clean images)")


def _chunks(info, config, batch_size):
    from galtools.arrayfile import open_galaxies
    from galtools.train.data import chunk_images, fields_needed

    size = chunk_images(info.image_shape, info.dtype, batch_size)
    for path in info.paths:
        with open_galaxies(path) as reader:
            for _, batch in reader.chunks(size, fields_needed(config)):
                yield xy(batch, config, path)


def _fit_closed_form(spec, config, run_dir, info, val):
    t0 = time.time()
    report.log(run_dir, f"fit {spec.name} on {info.n} images")
    result = spec.fit(_chunks(info, config, 256), config, run_dir)
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

        metrics["evals"].append(dict(step=0, **evaluate_run(load_run(run_dir), val)))
    report.write_json(os.path.join(run_dir, "metrics.json"), metrics)
    _plot_cv(os.path.join(run_dir, "curves.png"), result)
    report.log(run_dir, f"done: alpha={result['alpha']:.3g} cv_rmse={min(result['cv_rmse']):.4g}")
    say(f"{spec.name}: α={result['alpha']:.3g}, CV RMSE {min(result['cv_rmse']):.4g} → {run_dir}")
    return metrics


def _plot_cv(path, result):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogx(result["alphas"], result["cv_rmse"], "o-")
    ax.axvline(result["alpha"], color="k", ls=":")
    ax.set_xlabel("ridge α")
    ax.set_ylabel("K-fold CV RMSE")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def evaluate_run(run, val_path, batch_size=256):
    """Validation metrics of a finished/loaded run on a file (physical units)."""
    from galtools.arrayfile import open_galaxies

    with open_galaxies(val_path) as reader:
        fields = ["images"] + [c["name"] for c in run.config["columns"]]
        if run.task == "denoise":
            fields.append("targets")
        preds, truth = [], []
        for _, batch in reader.chunks(batch_size * 8, fields):
            preds.append(run.predict(batch["images"], batch_size))
            truth.append(
                batch["targets"]
                if run.task == "denoise"
                else batch[run.config["columns"][0]["name"]]
            )
    return metrics_of(run.config, np.concatenate(preds), np.concatenate(truth))


def metrics_of(config, pred, truth):
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


def _variables(model):
    if hasattr(model, "checkpoint_variables"):
        return model.checkpoint_variables()
    model.optimizer.build(model.trainable_variables)
    return list(model.weights) + list(model.optimizer.variables)


def _init_from(model, source, freeze_until):
    """Copy weights by layer name from an earlier run; freeze layers up to ``freeze_until``."""
    names = [layer.name for layer in model.layers]
    if source:
        from galtools.runs import load_run

        src = load_run(source).keras_model()
        copied = 0
        own = {layer.name: layer for layer in model.layers}
        for layer in src.layers:
            mine = own.get(layer.name)
            if mine is None or not layer.weights:
                continue
            theirs = layer.get_weights()
            if [w.shape for w in theirs] == [tuple(w.shape) for w in mine.weights]:
                mine.set_weights(theirs)
                copied += 1
        if not copied:
            raise GalError(f"--init-from {source}: no layer of that run fits this model")
        say(f"initialised {copied} layers from {source}")
    if freeze_until:
        if freeze_until not in names:
            raise GalError(
                f"--freeze-until: no layer '{freeze_until}' (layers: {', '.join(names)})"
            )
        for layer in model.layers[: names.index(freeze_until) + 1]:
            layer.trainable = False


def _train_keras(
    spec,
    config,
    run_dir,
    info,
    mix_info,
    val,
    resuming,
    opts,
    checkpoint_every,
    log_every,
    patience,
    distribute,
):
    import keras

    tr = config["training"]
    plan = Plan(
        info, tr["batch_size"], tr["passes"], tr["epochs"], tr["seed"], mix_info, tr["alpha"]
    )
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    metrics_path = os.path.join(run_dir, "metrics.json")
    keras.utils.set_random_seed(tr["seed"])
    scope = _strategy(distribute)
    with scope:
        model = spec.build(config)
        fresh = not resuming or not checkpoint.listing(ckpt_dir)  # else weights come from there
        _init_from(model, tr.get("init_from") if fresh else None, tr.get("freeze_until"))
        variables = _variables(model)
        state = checkpoint.restore(ckpt_dir, variables) if resuming else None
    start = state["step"] if state else 0
    metrics = _load_metrics(metrics_path, start) if state else {}
    metrics.update(
        model=spec.name,
        task=config["task"],
        total_steps=plan.total,
        batch_size=tr["batch_size"],
        status="running",
    )
    for key in ("steps", "evals", "passes"):
        metrics.setdefault(key, [])
    patience = patience if patience is not None else getattr(spec, "patience", None)
    plateau = (state or {}).get("plateau") or {"best": None, "wait": 0}
    lr = (state or {}).get("lr", tr["lr"])
    _set_lr(model, lr)
    wall0 = (state or {}).get("wall", 0.0)
    if start >= plan.total:
        say(
            f"{run_dir}: already trained {start} of {plan.total} steps (more --passes to go "
            "on, --restart to start over)"
        )
        spec.save(model, run_dir)
        return metrics
    if start:
        say(f"resuming {run_dir} at step {start} of {plan.total}")
        keras.utils.set_random_seed(tr["seed"] + start)
    report.log(run_dir, f"{'resume' if start else 'start'} {spec.name} step {start}/{plan.total}")
    ends = dict(plan.segment_ends())
    pass_ends = {step: p for p, step in plan.pass_ends().items()}
    bs = tr["batch_size"]
    t_start, cpu_start = time.time(), time.process_time()

    def wall():
        return wall0 + time.time() - t_start

    def save_ckpt(step):
        checkpoint.save(
            ckpt_dir, step, variables, {"lr": lr, "plateau": plateau, "wall": wall()}, tr["keep"]
        )
        metrics["step"] = step
        report.write_json(metrics_path, metrics)

    producer = Producer(plan, config, start)
    acc, n_acc, counts = {}, 0, [0, 0]
    t_rec = time.time()
    bar = progress(total=plan.total - start, desc=f"train {spec.name}", unit="step")
    step = start
    try:
        with StopFlag() as flag:
            for step, path, seg, x, y in producer:
                logs = model.train_on_batch(x, y, return_dict=True)
                for k, v in logs.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc += 1
                counts[seg is None] += 1
                done = step + 1
                bar.update(1)
                seg_end = ends.get(done)
                if done % log_every == 0 or seg_end or done == plan.total:
                    now = time.time()
                    rec = {
                        "step": done,
                        "batch_file": path,
                        "wall": round(wall(), 3),
                        "cpu_s": round(time.process_time() - cpu_start, 3),
                        "images_per_s": round(n_acc * bs / max(now - t_rec, 1e-9), 2),
                        "main_batches": counts[0],
                        "mix_batches": counts[1],
                        "lr": lr,
                    }
                    if seg is not None:
                        rec.update({"pass": seg[0], "file": seg[1], "epoch": seg[2]})
                    rec.update({k: v / n_acc for k, v in acc.items()})
                    metrics["steps"].append(rec)
                    if not np.isfinite(rec.get("loss", 0.0)):
                        raise GalError(
                            f"loss became {rec['loss']} at step {done} (try a smaller --lr)"
                        )
                    detail(f"step {done}/{plan.total} loss {rec.get('loss', float('nan')):.4g}")
                    report.log(run_dir, f"step {done} loss {rec.get('loss', float('nan')):.5g}")
                    acc, n_acc, counts, t_rec = {}, 0, [0, 0], time.time()
                if seg_end:
                    ev = {
                        "step": done,
                        "pass": seg_end[0],
                        "file": seg_end[1],
                        "epoch": seg_end[2],
                        "wall": round(wall(), 3),
                    }
                    if val:
                        ev.update(_validate(model, config, val, bs))
                    metrics["evals"].append(ev)
                    lr = _plateau(model, plateau, patience, ev, metrics["steps"], lr, run_dir)
                    if done in pass_ends:
                        p = pass_ends[done]
                        metrics["passes"].append({"pass": p, "step": done, "wall": ev["wall"]})
                        _samples(model, config, run_dir, p)
                        spec.save(model, run_dir)
                        say(
                            f"pass {p + 1}/{tr['passes']} done (step {done}/{plan.total})"
                            + "".join(
                                f", {k} {v:.4g}" for k, v in ev.items() if k.startswith("val_")
                            )
                        )
                    save_ckpt(done)
                elif checkpoint_every and done % checkpoint_every == 0:
                    save_ckpt(done)
                if flag.signum is not None and done < plan.total:
                    save_ckpt(done)
                    metrics["status"] = "preempted"
                    report.write_json(metrics_path, metrics)
                    name = signal.Signals(flag.signum).name
                    report.log(run_dir, f"{name}: checkpoint at step {done}; exit {PREEMPTED}")
                    raise Preempted(
                        f"{name} at step {done}/{plan.total}: checkpoint saved in "
                        f"{run_dir}; run the same command to continue "
                        f"(exit {PREEMPTED})"
                    )
    finally:
        producer.close()
        bar.close()
    spec.save(model, run_dir)
    metrics["status"] = "finished"
    metrics["step"] = plan.total
    metrics["wall"] = round(wall(), 3)
    report.write_json(metrics_path, metrics)
    report.plot_curves(os.path.join(run_dir, "curves.png"), metrics)
    report.log(run_dir, f"finished {plan.total} steps in {metrics['wall']:.1f} s")
    return metrics


def _strategy(distribute):
    import contextlib

    if distribute in (None, "none"):
        return contextlib.nullcontext()
    if distribute == "mirrored":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy().scope()
    raise GalError(f"--distribute must be none or mirrored, got {distribute}")


def _set_lr(model, lr):
    for opt in (
        getattr(model, "g_opt", None),
        getattr(model, "d_opt", None),
        getattr(model, "optimizer", None),
    ):
        if opt is not None and hasattr(opt, "learning_rate"):
            opt.learning_rate = lr


def _plateau(model, plateau, patience, ev, steps, lr, run_dir):
    """Halve the learning rate after ``patience`` evaluations without improvement."""
    if not patience:
        return lr
    value = ev.get("val_loss", ev.get("val_rmse", ev.get("val_mse")))
    if value is None:
        recent = [r["loss"] for r in steps[-5:] if "loss" in r]
        value = float(np.mean(recent)) if recent else None
    if value is None:
        return lr
    if plateau["best"] is None or value < plateau["best"] * (1 - 1e-4):
        plateau.update(best=value, wait=0)
        return lr
    plateau["wait"] += 1
    if plateau["wait"] >= patience:
        lr = lr * 0.5
        plateau["wait"] = 0
        _set_lr(model, lr)
        report.log(run_dir, f"plateau: learning rate → {lr:.3g}")
        detail(f"learning rate reduced to {lr:.3g}")
    return lr


def _validate(model, config, val, batch_size):
    from galtools.arrayfile import open_galaxies
    from galtools.train.data import fields_needed

    preds, truth = [], []
    task = config["task"]
    if task == "gan":
        return {}
    with open_galaxies(val) as reader:
        for _, batch in reader.chunks(batch_size * 8, fields_needed(config)):
            x, _ = xy(batch, config, val)
            for s in range(0, len(x), batch_size):
                preds.append(np.asarray(model.predict_on_batch(x[s : s + batch_size])))
            truth.append(
                batch["targets"] if task == "denoise" else batch[config["columns"][0]["name"]]
            )
    pred = np.concatenate(preds)
    if task == "regression":
        pred = from_unit(pred[:, 0], config["columns"][0])
    return metrics_of(config, pred, np.concatenate(truth))


def _samples(model, config, run_dir, p):
    """A montage of 16 generated stamps (fixed noise) after each pass of a GAN."""
    if config["task"] != "gan":
        return
    from galtools.montage import save_montage

    rng = np.random.default_rng(config["training"]["seed"])
    z = rng.normal(size=(16, config["model_config"]["latent_dim"])).astype(np.float32)
    cond = None
    if config["model_config"]["conditions"]:
        cond = np.tile(
            np.linspace(-1, 1, 4, dtype=np.float32)[:, None],
            (4, len(config["model_config"]["conditions"])),
        )
    images = model.sample(z, cond)
    os.makedirs(os.path.join(run_dir, "samples"), exist_ok=True)
    save_montage(os.path.join(run_dir, "samples", f"pass-{p + 1:03d}.png"), images, columns=4)


def _load_metrics(path, step):
    """metrics.json cut back to ``step`` (the checkpoint being resumed)."""
    try:
        with open(path) as fh:
            metrics = json.load(fh)
    except (OSError, ValueError):
        return {}
    metrics["steps"] = [r for r in metrics.get("steps", []) if r["step"] <= step]
    metrics["evals"] = [r for r in metrics.get("evals", []) if r["step"] <= step]
    metrics["passes"] = [r for r in metrics.get("passes", []) if r["step"] <= step]
    return metrics
